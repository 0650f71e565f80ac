"""Planned switchover in the daemon (Daemon.switchover), on the fake wire in fake time:
the holder takes the VIP make-before-break and keeps it until released or until it fails;
a sync group moves as one."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.component.fakes import FakeHost, FakeWire, LinkEvent
from tests.component.test_daemon_tracking import GROUP, manifest, probe, start, state, wire
from vrrpd.resolve import instances_for_node
from vrrpd.spec.load import load_manifests
from vrrpd.switchover import UnknownInstance
from vrrpd.vrrp.fsm import State

pytestmark = pytest.mark.looptime
__all__ = ["wire"]  # the fixture, shared with test_daemon_tracking

VIP = "192.168.77.100/24"
WEB = "default/web/ipv4"


def row(host: FakeHost, name: str = WEB) -> dict[str, object]:
    assert host.daemon is not None
    return next(r for r in host.daemon.status()["instances"] if r["name"] == name)


async def test_the_backup_takes_over_make_before_break_and_keeps_it(wire: FakeWire) -> None:
    a, b = await start(wire, manifest("web", 51, VIP))
    await asyncio.sleep(10)
    assert (state(a), state(b)) == (State.MASTER, State.BACKUP)
    assert b.daemon is not None
    t0 = asyncio.get_running_loop().time()
    assert b.daemon.switchover() == {WEB: "held, took over"}
    await asyncio.sleep(0.01)
    assert (state(a), state(b)) == (State.BACKUP, State.MASTER)
    b_added = next(t for t, op, _ in b.log if op == "add")
    a_removed = next(t for t, op, _ in a.log if op == "remove")
    assert t0 <= b_added <= a_removed  # the old master let go only after
    assert b.announced and not a.holds(VIP) and b.holds(VIP)
    assert (row(b)["held"], row(b)["effectivePriority"]) == (True, 254)
    await asyncio.sleep(30)  # node-a (150, preempt Always) does not take it back
    assert (state(a), state(b)) == (State.BACKUP, State.MASTER)
    assert b.daemon.switchover(release=True) == {WEB: "released"}
    await asyncio.sleep(0.01)
    assert (state(a), state(b)) == (State.MASTER, State.BACKUP)  # ordinary rules again
    assert (row(b)["held"], row(b)["holdEnded"]) == (False, "switchover released")
    assert b.daemon.switchover(release=True) == {
        WEB: "not held (the last hold ended: switchover released)"
    }


async def test_the_hold_ends_when_the_holder_fails(wire: FakeWire, tmp_path: Path) -> None:
    health, fine = tmp_path / "health", tmp_path / "fine"
    health.write_text("0")
    fine.write_text("0")
    web = manifest("web", 51, VIP, probe(health, -60))
    a, b = await start(wire, web, manifest("web", 51, VIP, probe(fine, -60)))
    await asyncio.sleep(10)
    assert a.daemon is not None
    a.daemon.switchover()
    assert state(a) == State.MASTER and row(a)["held"]
    health.write_text("1")  # 150 - 60 = 90: a failure of the holder, the hold ends
    await asyncio.sleep(2)
    assert (state(a), state(b)) == (State.BACKUP, State.MASTER)
    assert row(a)["holdEnded"] == "effective priority fell 150 -> 90"


async def test_a_link_fault_ends_the_hold(wire: FakeWire) -> None:
    a, b = await start(wire, manifest("web", 51, VIP))
    await asyncio.sleep(10)
    assert b.daemon is not None
    b.daemon.switchover()
    b.set_link(False)
    await asyncio.sleep(4)
    assert (state(a), state(b)) == (State.MASTER, State.FAULT)
    assert "down" in str(row(b)["holdEnded"]) and not row(b)["held"]
    b.set_link(True)
    await asyncio.sleep(10)
    assert (state(a), state(b)) == (State.MASTER, State.BACKUP)


async def test_a_sync_group_moves_as_one(wire: FakeWire) -> None:
    text = (
        manifest("inside", 10, VIP, GROUP)
        + "---"
        + manifest("outside", 11, "192.168.77.101/24", GROUP)
    )
    a, b = await start(wire, text)
    inside, outside = "default/inside/ipv4", "default/outside/ipv4"
    await asyncio.sleep(10)
    assert b.daemon is not None
    assert b.daemon.switchover([inside]) == {
        inside: "held, took over",
        outside: "held, took over",
    }
    await asyncio.sleep(30)
    assert [state(b, n) for n in (inside, outside)] == [State.MASTER, State.MASTER]
    assert [state(a, n) for n in (inside, outside)] == [State.BACKUP, State.BACKUP]


async def test_a_failed_request_names_what_is_wrong(wire: FakeWire) -> None:
    a, b = await start(wire, manifest("web", 51, VIP))
    assert b.daemon is not None
    with pytest.raises(
        UnknownInstance, match="no instance 'web' on this node; it runs default/web/ipv4"
    ):
        b.daemon.switchover(["web"])
    a.links.events.append(LinkEvent("eth0", False))
    b.set_link(False)
    assert b.daemon.switchover() == {
        WEB: "refused: this router is FAULT; only a BACKUP or MASTER can take over"
    }


def annotated(text: str, node: str) -> str:
    return text.replace(
        "metadata: {name: web}",
        f"metadata: {{name: web, annotations: {{kubevrrp.io/switchover-to: {node}}}}}",
    )


async def test_the_annotation_holds_on_the_named_node_and_its_removal_releases(
    wire: FakeWire,
) -> None:
    plain = manifest("web", 51, VIP)
    a, b = await start(wire, plain)
    await asyncio.sleep(10)
    assert a.daemon is not None and b.daemon is not None
    wanted = load_manifests(annotated(plain, "node-b"))
    # Only node-b's instance changes; it is reconfigured in place, as a ConfigMap brings it.
    assert a.daemon.apply(instances_for_node(wanted, "node-a")).unchanged == (WEB,)
    result = b.daemon.apply(instances_for_node(wanted, "node-b"))
    assert result.changed == (WEB,) and not result.restarted
    await asyncio.sleep(0.01)
    assert (state(a), state(b)) == (State.BACKUP, State.MASTER)
    assert row(b)["held"] and not row(a)["held"]
    await asyncio.sleep(30)
    assert state(b) == State.MASTER
    for host in (a, b):
        assert host.daemon is not None
        host.daemon.apply(instances_for_node(load_manifests(plain), host.name))
    await asyncio.sleep(0.01)
    assert (state(a), state(b)) == (State.MASTER, State.BACKUP)
    assert row(b)["holdEnded"] == "switchover released"
