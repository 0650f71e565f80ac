"""Planned switchover with real daemons in network namespaces: `vrrpd switchover` on the
node that should take the VIP moves it with no client probe lost (10 ms probes), keeps it
there, gives it back under the ordinary rules on release, loses it on a probe failure; and
no other node can reach the control endpoint."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.netns.test_vrrpd import VIP, WEB, manifest, until, write
from vrrpd.lab.daemons import VrrpdProcess
from vrrpd.lab.netns import Lab
from vrrpd.lab.prober import Prober

pytestmark = pytest.mark.root


def probe_on(path: Path) -> str:
    """A file probe (weight -60): writing 1 into `path` makes that node fail."""
    return f"""\
  probes:
    - name: health
      file: {{path: {path}}}
      interval: 100ms
      rise: 1
      fall: 1
      weight: -60
"""


def three_nodes(lab: Lab, *, probes: bool = False) -> tuple[list[VrrpdProcess], list[Path]]:
    """n1 150, n2 100, n3 50, preempt Always at 100 ms; with `probes`, each node its own
    health file."""
    daemons, files = [], []
    for i in (1, 2, 3):
        health = Path(lab.workdir) / f"health-n{i}"
        health.write_text("0")
        files.append(health)
        text = manifest(extra=probe_on(health) if probes else "")
        daemons.append(VrrpdProcess(lab, i, write(lab, text, f"vip-n{i}.yaml")).start())
    assert daemons[0].wait_state(WEB, "MASTER", 15), daemons[0].log_text()
    assert until(lambda: lab.holders(VIP) == [1])
    time.sleep(0.3)
    return daemons, files


def status(lab: Lab, node: int) -> dict[str, object]:
    out = lab.exec(node, [sys.executable, "-m", "vrrpd", "status", "--json"]).stdout
    row: dict[str, object] = json.loads(out)["instances"][0]
    return row


def test_switchover_moves_the_vip_without_a_lost_probe_and_release_gives_it_back(
    lab_factory: Callable[..., Lab],
) -> None:
    lab = lab_factory(3)
    d, _ = three_nodes(lab)
    with Prober(lab, VIP) as prober:
        time.sleep(0.3)
        asked = d[1].switchover()
        assert asked.returncode == 0, asked.stderr
        assert asked.stdout == f"{WEB}: held, took over\n"
        assert until(lambda: lab.holders(VIP) == [2])
        time.sleep(0.5)
    moved = prober.stop()
    # Make before break: n1 let go only after n2 had the VIP and had announced it.
    assert moved.received > 50 and moved.lost == 0, moved
    assert [mac for _, mac in moved.answerers] == [lab.node(1).mac, lab.node(2).mac]
    time.sleep(1.0)  # n1 (150, preempt Always) does not take it back from a hold
    assert lab.holders(VIP) == [2] and d[1].state(WEB) == "MASTER"
    row = status(lab, 2)
    assert (row["state"], row["held"], row["effectivePriority"]) == ("MASTER", True, 254)
    table = lab.exec(2, [sys.executable, "-m", "vrrpd", "status"]).stdout
    assert "MASTER (held)" in table

    with Prober(lab, VIP) as prober:
        time.sleep(0.3)
        released = d[1].switchover(release=True)
        assert released.returncode == 0 and released.stdout == f"{WEB}: released\n"
        assert until(lambda: lab.holders(VIP) == [1])  # preempt Always: 150 takes it back
        time.sleep(0.5)
    back = prober.stop()
    assert back.received > 50 and back.lost == 0, back  # the same order on the way back
    assert status(lab, 2)["holdEnded"] == "switchover released"


def test_a_probe_failure_ends_the_hold(lab_factory: Callable[..., Lab]) -> None:
    lab = lab_factory(3)
    d, health = three_nodes(lab, probes=True)
    assert d[2].switchover().returncode == 0
    assert until(lambda: lab.holders(VIP) == [3])
    health[2].write_text("1")  # n3's probe fails: 50 - 60, the hold ends, n1 preempts
    assert until(lambda: lab.holders(VIP) == [1] and d[0].state(WEB) == "MASTER")
    row = status(lab, 3)
    assert row["held"] is False and row["holdEnded"] == "effective priority fell 50 -> 1"
    health[2].write_text("0")
    time.sleep(1.0)
    assert lab.holders(VIP) == [1]  # the ordinary rules: n3 at 50 stays BACKUP


ATTEMPT = """
import json, sys, urllib.error, urllib.request
request = urllib.request.Request(sys.argv[1], data=json.dumps({"instances": []}).encode())
try:
    print(json.dumps(urllib.request.urlopen(request, timeout=3).status))
except urllib.error.HTTPError as exc:
    print(json.dumps(exc.code))
except urllib.error.URLError as exc:
    print(json.dumps(type(exc.reason).__name__))
"""


def post(lab: Lab, node: int, url: str) -> object:
    """POST a switchover request to `url` from node `node`: the HTTP status, or the error."""
    return json.loads(lab.exec(node, [sys.executable, "-c", ATTEMPT, url]).stdout)


def test_the_control_endpoint_is_out_of_reach_of_other_nodes(lab: Lab) -> None:
    # n1 serves HTTP on every address, as in a cluster (hostNetwork, 0.0.0.0:9641).
    config = write(lab, manifest(priorities=(50, 150)))
    d = [
        VrrpdProcess(lab, 1, config, extra_args=("--http-address", "0.0.0.0:9641")).start(),
        VrrpdProcess(lab, 2, config).start(),
    ]
    assert d[1].wait_state(WEB, "MASTER", 15) and until(lambda: d[0].state(WEB) == "BACKUP")
    n1, n2 = lab.node(1).address4, lab.node(2).address4
    moves = len(d[0].transitions(WEB))
    assert until(lambda: post(lab, 2, f"http://{n1}:9641/healthz") == 405, 15)  # it is up
    # n1's HTTP face, open to the network, has no switchover route: refused, nothing moves.
    assert post(lab, 2, f"http://{n1}:9641/switchover") == 404
    # n2's, on loopback by default (standalone), is not on the network at all.
    assert post(lab, 1, f"http://{n2}:9655/switchover") == "ConnectionRefusedError"
    time.sleep(0.5)
    assert d[0].state(WEB) == "BACKUP" and lab.holders(VIP) == [2]
    assert len(d[0].transitions(WEB)) == moves
    assert "switchover held" not in d[0].log_text()
    # The control socket answers n1's own root.
    assert d[0].switchover().returncode == 0
    assert until(lambda: lab.holders(VIP) == [1])
