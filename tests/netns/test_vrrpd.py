"""Real vrrpd daemons in network namespaces on one bridge: election, failover, preempt,
unicast, IPv6, authentication, crash recovery and live reload."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from vrrpd.lab.daemons import VrrpdProcess
from vrrpd.lab.netns import Lab, wait_until
from vrrpd.lab.prober import Prober

pytestmark = pytest.mark.root

VIP = "192.168.77.100"
WEB = "default/web/ipv4"


def manifest(
    name: str = "web",
    vrid: int = 51,
    addresses: str = '["192.168.77.100/24"]',
    priorities: tuple[int, ...] = (150, 100, 50),
    interval: str = "100ms",
    extra: str = "",
) -> str:
    nodes = "\n".join(
        f"    - {{nodeName: n{i}, priority: {p}}}" for i, p in enumerate(priorities, 1)
    )
    return f"""\
apiVersion: kubevrrp.io/v1alpha1
kind: VirtualIP
metadata: {{name: {name}}}
spec:
  addresses: {addresses}
  vrid: {vrid}
  advertInterval: {interval}
  nodePriorities:
{nodes}
{extra}"""


def write(lab: Lab, text: str, name: str = "vip.yaml") -> Path:
    path = Path(lab.workdir) / name
    path.write_text(text)
    return path


def start_all(lab: Lab, config: Path, nodes: int = 2) -> list[VrrpdProcess]:
    return [VrrpdProcess(lab, i, config).start() for i in range(1, nodes + 1)]


def until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    return wait_until(predicate, timeout, 0.02)


def test_the_highest_priority_node_alone_holds_the_vip(lab_factory: Callable[..., Lab]) -> None:
    lab = lab_factory(3)
    d = start_all(lab, write(lab, manifest()), 3)
    assert d[0].wait_state(WEB, "MASTER", 15), d[0].log_text()
    assert until(lambda: d[1].state(WEB) == "BACKUP" and d[2].state(WEB) == "BACKUP")
    time.sleep(0.5)
    assert lab.holders(VIP) == [1]
    assert lab.ping(lab.client, VIP)
    assert all(x.state(WEB) == s for x, s in zip(d, ["MASTER", "BACKUP", "BACKUP"], strict=True))


def test_link_down_moves_the_vip_and_link_up_brings_it_back(lab: Lab) -> None:
    d = start_all(lab, write(lab, manifest()))
    assert d[0].wait_state(WEB, "MASTER", 15)
    lab.link_down(1)
    assert d[0].wait_state(WEB, "FAULT", 15)
    # Each daemon logs a transition after the kernel has acknowledged its address change.
    assert until(lambda: lab.holders(VIP) == [2] and d[1].state(WEB) == "MASTER")
    lab.link_up(1)
    assert until(lambda: d[0].state(WEB) == "MASTER" and lab.holders(VIP) == [1])
    assert until(lambda: d[1].state(WEB) == "BACKUP")


def test_sigterm_hands_over_without_losing_a_probe(lab: Lab) -> None:
    d = start_all(lab, write(lab, manifest()))
    assert d[0].wait_state(WEB, "MASTER", 15)
    time.sleep(0.3)
    with Prober(lab, VIP) as prober:
        time.sleep(0.5)
        assert d[0].terminate() == 0
        assert until(lambda: lab.holders(VIP) == [2])
        time.sleep(0.5)
    result = prober.stop()
    assert d[1].state(WEB) == "MASTER"
    assert result.received > 50
    # Make before break: the old master answered until the new one had taken over.
    assert result.lost == 0, result
    assert "took over" in d[0].log_text()


def test_kill_9_then_restart_never_leaves_two_holders(lab: Lab) -> None:
    config = write(lab, manifest())
    d = start_all(lab, config)
    assert d[0].wait_state(WEB, "MASTER", 15)
    d[0].kill()
    # A crash leaves the VIP on n1's interface; n2 takes over after Master_Down_Interval.
    assert until(lambda: d[1].state(WEB) == "MASTER")
    assert until(lambda: lab.holders(VIP) == [1, 2])
    restarted = VrrpdProcess(lab, 1, config).start()
    assert restarted.wait_state(WEB, "MASTER", 15)
    # It removed its predecessor's VIP before joining as BACKUP, then took the VIP back
    # by preemption (Always) from n2, which let go: one holder.
    log = restarted.log_text()
    assert log.index("left behind") < log.index("INITIALIZE -> BACKUP")
    assert [e["state"] for e in restarted.transitions(WEB)] == ["BACKUP", "MASTER"]
    assert until(lambda: lab.holders(VIP) == [1])
    time.sleep(0.5)
    assert lab.holders(VIP) == [1]
    assert d[1].state(WEB) == "BACKUP"


def test_preempt_never_keeps_the_running_master(lab: Lab) -> None:
    config = write(lab, manifest(extra="  preempt: {mode: Never}\n"))
    # Under Never whoever is master first stays master, so n1 starts alone: if n2's
    # daemon won the start-up race, n1 would rightly never take over.
    d = [VrrpdProcess(lab, 1, config).start()]
    assert d[0].wait_state(WEB, "MASTER", 15)
    d.append(VrrpdProcess(lab, 2, config).start())
    assert d[1].wait_state(WEB, "BACKUP", 15)
    lab.link_down(1)
    assert d[1].wait_state(WEB, "MASTER", 15)
    lab.link_up(1)
    assert d[0].wait_state(WEB, "BACKUP", 15)
    time.sleep(1.5)  # many advert intervals: a preempting node would have taken over
    assert d[0].state(WEB) == "BACKUP" and d[1].state(WEB) == "MASTER"
    assert lab.holders(VIP) == [2]


def test_preempt_delay_waits_before_taking_over(lab: Lab) -> None:
    extra = "  preempt: {mode: Delay, delay: 2s}\n"
    d = start_all(lab, write(lab, manifest(extra=extra)))
    assert d[0].wait_state(WEB, "MASTER", 15)
    # Settled first: if n2 started first it was master until n1 preempted, and a link down
    # before n2 has stepped down would leave neither advertising when n1 comes back (n1
    # then takes over by Master_Down_Interval, not after the delay).
    assert until(lambda: d[1].state(WEB) == "BACKUP" and lab.holders(VIP) == [1])
    lab.link_down(1)
    assert d[1].wait_state(WEB, "MASTER", 15)
    lab.link_up(1)
    back = time.monotonic()
    assert d[0].wait_state(WEB, "BACKUP", 15)
    time.sleep(1.0)
    assert lab.holders(VIP) == [2], "preempted before the delay"
    assert d[0].wait_state(WEB, "MASTER", 15)
    assert time.monotonic() - back >= 2.0
    assert until(lambda: lab.holders(VIP) == [1])


def test_unicast_elects_and_fails_over(lab: Lab) -> None:
    extra = (
        "  unicast: true\n  peers:\n"
        "    - {nodeName: n1, address: 192.168.77.11}\n"
        "    - {nodeName: n2, address: 192.168.77.12}\n"
    )
    d = start_all(lab, write(lab, manifest(priorities=(150, 100), extra=extra)))
    assert d[0].wait_state(WEB, "MASTER", 15)
    assert until(lambda: d[1].state(WEB) == "BACKUP")
    assert "unicast to 192.168.77.12" in d[0].log_text()
    lab.link_down(1)
    assert d[1].wait_state(WEB, "MASTER", 15)
    assert until(lambda: lab.holders(VIP) == [2])


def test_ipv6_vip_moves(lab: Lab) -> None:
    vip6 = "fd00:77::100"
    config = manifest(addresses=f'["{vip6}/64"]', priorities=(150, 100))
    d = start_all(lab, write(lab, config))
    name = "default/web/ipv6"
    assert d[0].wait_state(name, "MASTER", 15), d[0].log_text()
    assert until(lambda: lab.holders(vip6) == [1])
    assert lab.ping(lab.client, vip6)
    lab.link_down(1)
    assert d[1].wait_state(name, "MASTER", 15)
    assert until(lambda: lab.holders(vip6) == [2])
    assert until(lambda: lab.ping(lab.client, vip6), 5)


def test_v2_adverts_with_a_wrong_password_are_ignored(lab: Lab) -> None:
    base = manifest(interval="1s", priorities=(150, 100), extra="  version: 2\n")
    good = write(lab, base + "  authentication: {password: right}\n", "a.yaml")
    bad = write(lab, base + "  authentication: {password: wrong}\n", "b.yaml")
    a = VrrpdProcess(lab, 1, good).start()
    b = VrrpdProcess(lab, 2, bad).start()
    assert a.wait_state(WEB, "MASTER", 15)
    # b never accepts a's adverts, so it becomes master too: the check is what we see.
    assert b.wait_state(WEB, "MASTER", 15)
    assert until(lambda: "dropped advert (auth)" in b.log_text(), 3)
    assert lab.holders(VIP) == [1, 2]


def test_reload_applies_one_change_and_leaves_the_other_instance_alone(lab: Lab) -> None:
    web = manifest(priorities=(150, 100))
    api = manifest("api", 52, '["192.168.77.101/24"]', priorities=(100, 150))
    config = write(lab, web + "---\n" + api)
    d = start_all(lab, config)
    api_name = "default/api/ipv4"
    assert d[0].wait_state(WEB, "MASTER", 15) and d[1].wait_state(api_name, "MASTER", 5)
    # Settled on both nodes before counting: the daemon that starts first is master of both
    # until the other preempts, and the preempted one logs its step down a moment later.
    assert until(lambda: d[1].state(WEB) == "BACKUP" and d[0].state(api_name) == "BACKUP")
    before = [len(x.transitions(WEB)) for x in d]
    # Swap api's priorities on both nodes: api moves to n1, web must not notice.
    config.write_text(web + "---\n" + manifest("api", 52, '["192.168.77.101/24"]',
                                                priorities=(200, 100)))  # fmt: skip
    for x in d:
        x.reload()
    assert until(lambda: lab.holders("192.168.77.101") == [1])
    time.sleep(1.0)
    assert [len(x.transitions(WEB)) for x in d] == before
    assert lab.holders(VIP) == [1]
    assert "1 changed, 1 unchanged" in d[0].log_text()


def test_an_invalid_file_exits_non_zero_and_changes_nothing(lab: Lab) -> None:
    config = write(lab, manifest(vrid=0, interval="15ms"))
    proc = lab.exec(1, [sys.executable, "-m", "vrrpd", "run", "--config", str(config),
                        "--node", "n1"], check=False)  # fmt: skip
    assert proc.returncode == 2
    assert "spec.vrid: 0" in proc.stderr and "spec.advertInterval" in proc.stderr
    assert lab.holders(VIP) == []
    assert (
        VIP
        not in subprocess.run(
            ["ip", "-n", lab.node(1).netns, "addr"], capture_output=True, text=True, check=True
        ).stdout
    )
