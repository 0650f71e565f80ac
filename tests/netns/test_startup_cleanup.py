"""`vrrpd run` removes a dead predecessor's VIPs before it validates its file, and never a
live one's: real daemons in a lab's namespaces (see vrrpd/net/startup.py)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from vrrpd.lab.daemons import VrrpdProcess
from vrrpd.lab.netns import Lab, wait_until

pytestmark = pytest.mark.root

VIP = "192.168.77.100"
WEB = "default/web/ipv4"
VALID = """\
apiVersion: kubevrrp.io/v1alpha1
kind: VirtualIP
metadata: {name: web}
spec:
  addresses: ["192.168.77.100/24"]
  vrid: 51
  advertInterval: 100ms
  nodePriorities:
    - {nodeName: n1, priority: 150}
"""
INVALID = VALID.replace("vrid: 51", "vrid: 300")


@pytest.fixture
def lab(lab_factory: Callable[..., Lab]) -> Lab:
    return lab_factory(1)


def config(lab: Lab, text: str, name: str) -> Path:
    path = Path(lab.workdir) / name
    path.write_text(text)
    return path


def deletions(lab: Lab) -> subprocess.Popen[str]:
    return lab.run(1, ["ip", "monitor", "address"], stdout=subprocess.PIPE, text=True)


def deleted_lines(monitor: subprocess.Popen[str]) -> list[str]:
    monitor.terminate()
    out, _ = monitor.communicate(timeout=5)
    return [line for line in out.splitlines() if line.startswith("Deleted") and VIP in line]


def test_a_dead_daemons_vips_go_even_if_the_new_file_is_invalid(lab: Lab) -> None:
    first = VrrpdProcess(lab, 1, config(lab, VALID, "valid.yaml")).start()
    assert first.wait_state(WEB, "MASTER", 15), first.log_text()
    first.kill()
    assert lab.holders(VIP) == [1]  # left behind
    restarted = VrrpdProcess(lab, 1, config(lab, INVALID, "invalid.yaml")).start()
    assert restarted.proc is not None and restarted.proc.wait(30) == 2
    assert "vrid" in restarted.log_text()
    # Whatever the file says, nothing could want a dead vrrpd's VIP kept.
    assert lab.holders(VIP) == []


def test_a_live_daemons_vips_stay_and_a_second_daemon_waits_for_it(lab: Lab) -> None:
    valid = config(lab, VALID, "valid.yaml")
    first = VrrpdProcess(lab, 1, valid).start()
    assert first.wait_state(WEB, "MASTER", 15), first.log_text()
    time.sleep(0.3)
    monitor = deletions(lab)
    time.sleep(0.2)
    try:
        # An invalid file: refused, and nothing on the host changed (the VIP is the live
        # daemon's, not a leftover).
        refused = VrrpdProcess(lab, 1, config(lab, INVALID, "invalid.yaml")).start()
        assert refused.proc is not None and refused.proc.wait(30) == 2
        # A valid one: waits for the namespace, names who holds it, touches nothing.
        second = VrrpdProcess(lab, 1, valid).start()
        assert first.proc is not None
        assert wait_until(lambda: f"pid {first.proc.pid}" in second.log_text(), 15), (
            second.log_text()
        )
        time.sleep(0.5)
        assert second.transitions() == [] and lab.holders(VIP) == [1]
        assert first.state(WEB) == "MASTER"
    finally:
        gone = deleted_lines(monitor)
    assert gone == [], gone
    # The first stops (its handover finds no one and times out, then it lets go); the
    # second then takes the namespace and the VIP.
    assert first.terminate() == 0
    assert second.wait_state(WEB, "MASTER", 15), second.log_text()
    assert "left behind" not in second.log_text()  # the first cleaned up after itself
    assert lab.holders(VIP) == [1]
