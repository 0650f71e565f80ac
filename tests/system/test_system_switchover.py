"""Planned switchover in a cluster, end to end: `kubectl annotate` on a VirtualIP moves its
VIP to the named node through the operator, the rendered ConfigMaps and the real daemons,
with no client probe lost; status and a SwitchedOver Event follow; removing the annotation
gives the VIP back under the ordinary rules (preempt Always: the highest priority)."""

from __future__ import annotations

import time

import pytest

from tests.system.conftest import System
from vrrpd.lab.prober import Prober

pytestmark = pytest.mark.root

VIP = "192.168.77.100"
PRIORITIES = {"n1": 150, "n2": 120, "n3": 100}
TO = "kubevrrp.io/switchover-to"


def switchover(system: System) -> dict[str, str]:
    found = [c for c in system.status("web").get("conditions") or () if c["type"] == "Switchover"]
    return {k: system.short(str(v)) for k, v in found[0].items()} if found else {}


@pytest.mark.parametrize("runtime", ["process"], indirect=True)
def test_kubectl_annotate_moves_the_vip_without_a_lost_probe_and_removing_it_releases(
    system: System,
) -> None:
    system.up(system.virtualip("web", VIP, 51, PRIORITIES), "n1")
    annotate = ["annotate", "vip", "web", "-n", system.namespace]
    with Prober(system.lab, VIP) as prober:
        time.sleep(0.3)
        system.api.kubectl(*annotate, f"{TO}={system.names['n3']}")
        system.until(f"{VIP} on n3 only", lambda: system.held_by(VIP, ["n3"]))
        time.sleep(0.5)
    moved = prober.stop()
    assert moved.received > 30 and moved.lost == 0, moved  # make before break
    system.until("Switchover Held", lambda: switchover(system).get("reason") == "Held")
    assert switchover(system)["message"] == f"n3 holds the VIP ({TO})"
    system.until("SwitchedOver Event", lambda: system.events_like(
        "SwitchedOver", "web", f"the VIP moved from n1 to n3 ({TO})"
    ))  # fmt: skip
    time.sleep(2.0)  # n1 (150, preempt Always) does not take it back from a hold
    assert system.held_by(VIP, ["n3"]) and system.master("web") == "n3"

    with Prober(system.lab, VIP) as prober:
        time.sleep(0.3)
        system.api.kubectl(*annotate, f"{TO}-")
        system.until(f"{VIP} back on n1 only", lambda: system.held_by(VIP, ["n1"]))
        time.sleep(0.5)
    back = prober.stop()
    assert back.received > 30 and back.lost == 0, back
    system.until("the condition gone", lambda: switchover(system) == {})
    system.until("status.master == n1", lambda: system.master("web") == "n1")
