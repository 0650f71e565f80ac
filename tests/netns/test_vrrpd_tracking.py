"""Real daemons with probes, notify hooks and the HTTP face, in network namespaces."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from tests.netns.test_vrrpd import VIP, WEB, manifest, start_all, until, write
from vrrpd.lab.daemons import VrrpdProcess
from vrrpd.lab.netns import Lab, LabError

pytestmark = pytest.mark.root


def serve_http(lab: Lab, node: int, port: int = 8080) -> None:
    """A web server on the node's loopback: what a haproxy health check would look at."""
    argv = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    proc = lab.run(node, argv, stdout=None, stderr=None)
    assert until(lambda: lab.exec(node, ["ss", "-ltn"]).stdout.count(f":{port} ") > 0, 10)
    setattr(lab, f"_web{node}", proc)


def stop_http(lab: Lab, node: int) -> None:
    proc = getattr(lab, f"_web{node}")
    proc.kill()
    proc.wait()


def get(lab: Lab, node: int, path: str) -> tuple[int, str]:
    code = (
        "import sys, urllib.request, urllib.error\n"
        "try:\n"
        f"    r = urllib.request.urlopen('http://127.0.0.1:9655{path}', timeout=5)\n"
        "    print(r.status); print(r.read().decode())\n"
        "except urllib.error.HTTPError as e:\n"
        "    print(e.code); print(e.read().decode())\n"
    )
    out = lab.exec(node, [sys.executable, "-c", code]).stdout
    status, _, body = out.partition("\n")
    return int(status), body


@pytest.mark.parametrize("kind", ["tcp: {port: 8080}", "http: {port: 8080, path: /}"])
def test_a_failing_probe_on_the_master_moves_the_vip(lab: Lab, kind: str) -> None:
    probes = (
        "  probes:\n"
        f"    - {{name: web, {kind}, interval: 200ms, timeout: 100ms, fall: 1, weight: -60}}\n"
    )
    for node in (1, 2):
        serve_http(lab, node)
    d = start_all(lab, write(lab, manifest(priorities=(150, 100), extra=probes)))
    assert d[0].wait_state(WEB, "MASTER", 15)
    stop_http(lab, 1)  # 150 - 60 = 90 < 100
    assert d[1].wait_state(WEB, "MASTER", 10), d[1].log_text()
    assert until(lambda: lab.holders(VIP) == [2])
    assert "probe web is down" in d[0].log_text()


def test_notify_scripts_get_keepalived_arguments_and_a_hanging_one_delays_nothing(
    lab: Lab,
) -> None:
    work = Path(lab.workdir)
    record = work / "notify.log"
    hang = work / "hang.sh"
    hang.write_text("#!/bin/sh\nsleep 60\n")
    log_all = work / "all.sh"
    log_all.write_text(f'#!/bin/sh\necho "$(hostname) $@" >> {record}\n')
    for script in (hang, log_all):
        script.chmod(0o755)
    # n1's master hook hangs (its later notifications wait for it, in order, up to the
    # timeout); n2 only records. Nothing of it may slow the election.
    hanging = f"  notify:\n    master: [{hang}]\n    all: [{log_all}]\n    timeout: 30s\n"
    recording = f"  notify:\n    all: [{log_all}]\n"
    base = manifest(priorities=(150, 100))
    d = [
        VrrpdProcess(lab, 1, write(lab, base + hanging, "a.yaml")).start(),
        VrrpdProcess(lab, 2, write(lab, base + recording, "b.yaml")).start(),
    ]
    assert d[0].wait_state(WEB, "MASTER", 15)
    assert until(lambda: record.exists() and "MASTER 150" in record.read_text(), 5)
    lab.link_down(1)
    assert d[1].wait_state(WEB, "MASTER", 5)
    assert until(lambda: "MASTER 100" in record.read_text(), 5)
    lines = record.read_text().splitlines()
    assert any(line.endswith(f"INSTANCE {WEB} MASTER 150") for line in lines)
    assert any(line.endswith(f"INSTANCE {WEB} MASTER 100") for line in lines)
    assert any(line.endswith(f"INSTANCE {WEB} BACKUP 100") for line in lines)
    # n1's FAULT waits behind its hanging master hook: delivered in order, later.
    assert not any(f"INSTANCE {WEB} FAULT" in line for line in lines)


def test_readyz_metrics_and_status_answer_what_the_state_is(lab: Lab) -> None:
    extra = "  readiness: Master\n"
    d = start_all(lab, write(lab, manifest(priorities=(150, 100), extra=extra)))
    assert d[0].wait_state(WEB, "MASTER", 15) and d[1].wait_state(WEB, "BACKUP", 15)
    assert d[0].wait_http(15) and d[1].wait_http(15)
    assert get(lab, 1, "/healthz")[0] == 200
    assert get(lab, 1, "/readyz")[0] == 200
    code, body = get(lab, 2, "/readyz")
    assert code == 503 and "readiness Master" in body
    _, metrics = get(lab, 1, "/metrics")
    state_line = next(m for m in metrics.splitlines() if m.startswith("keepalived_vrrp_state{"))
    assert state_line == (
        'keepalived_vrrp_state{iname="default/web/ipv4",intf="eth0",ip_address="192.168.77.100",'
        'vrid="51"} 2.0'  # MASTER in keepalived's numbering
    )
    assert "keepalived_advertisements_sent_total{" in metrics
    status = json.loads(get(lab, 1, "/status")[1])
    (inst,) = status["instances"]
    assert (inst["state"], inst["effectivePriority"], inst["master"]) == (
        "MASTER", 150, "192.168.77.11",
    )  # fmt: skip
    table = lab.exec(1, [sys.executable, "-m", "vrrpd", "status"]).stdout
    assert "default/web/ipv4" in table and "MASTER" in table and "150/150" in table


def test_a_flapping_probe_does_not_flap_the_vip(lab: Lab) -> None:
    work = Path(lab.workdir)
    toggle, broken = work / "toggle", work / "broken"
    # A script that fails every other run (a file probe has no rise or fall), and every
    # run once `broken` exists.
    script = work / "flap.sh"
    script.write_text(
        f"#!/bin/sh\n[ -e {broken} ] && exit 1\n"
        f"if [ -e {toggle} ]; then rm {toggle}; exit 1; fi\ntouch {toggle}\n"
    )
    script.chmod(0o755)
    probes = (
        "  probes:\n"
        f"    - {{name: flag, exec: {{command: [{script}]}}, interval: 200ms, rise: 3, "
        "fall: 3, weight: 0}\n"
    )
    d = [
        VrrpdProcess(lab, 1, write(lab, manifest(priorities=(150, 100), extra=probes), "a.yaml")),
        VrrpdProcess(lab, 2, write(lab, manifest(priorities=(150, 100)), "b.yaml")),
    ]
    for x in d:
        x.start()
    assert d[0].wait_state(WEB, "MASTER", 15)
    time.sleep(3)  # 15 runs, one in two failing: keepalived's counter never runs down
    assert d[0].state(WEB) == "MASTER" and lab.holders(VIP) == [1], d[0].log_text()
    broken.touch()
    assert d[0].wait_state(WEB, "FAULT", 5)
    assert until(lambda: lab.holders(VIP) == [2])


def test_a_track_file_adds_its_number_times_its_weight(lab: Lab) -> None:
    """keepalived track_file: 150 - 30 x N on n1 against 100 on n2; -254 or less is FAULT."""
    number = Path(lab.workdir) / "n1.number"  # n1's file; absent: 0
    probes = (
        f"  probes:\n    - {{name: load, file: {{path: {number}}}, interval: 100ms, weight: -30}}\n"
    )
    d = [
        VrrpdProcess(lab, 1, write(lab, manifest(priorities=(150, 100), extra=probes), "a.yaml")),
        VrrpdProcess(lab, 2, write(lab, manifest(priorities=(150, 100)), "b.yaml")),
    ]
    for x in d:
        x.start()
    assert d[0].wait_state(WEB, "MASTER", 15) and d[1].wait_state(WEB, "BACKUP", 15)

    def effective() -> int | None:
        try:
            (inst,) = json.loads(get(lab, 1, "/status")[1])["instances"]
        except LabError:  # the HTTP face starts after the instances
            return None
        return int(inst["effectivePriority"])

    number.write_text("1\n")  # 120: still above n2
    assert until(lambda: effective() == 120), d[0].log_text()
    assert d[0].state(WEB) == "MASTER" and lab.holders(VIP) == [1]
    number.write_text("2\n")  # 90: n2 takes over
    assert d[1].wait_state(WEB, "MASTER", 10), d[1].log_text()
    assert until(lambda: lab.holders(VIP) == [2]) and effective() == 90
    number.write_text("9\n")  # -270: FAULT
    assert d[0].wait_state(WEB, "FAULT", 10), d[0].log_text()
    assert "probe load failing" in d[0].log_text()
    number.unlink()  # a missing file reads as 0: back to 150, and n1 takes over again
    assert d[0].wait_state(WEB, "MASTER", 10), d[0].log_text()
    assert until(lambda: lab.holders(VIP) == [1]) and effective() == 150
