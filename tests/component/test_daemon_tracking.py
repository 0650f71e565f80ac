"""Probes, tracked interfaces and sync groups in the daemon, on the fake wire in fake time.

File probes keep the checks instant and deterministic: the test writes the file.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.component.fakes import FakeHost, FakeWire, LinkEvent
from vrrpd import supervisor
from vrrpd.probes.runners import FileProbe
from vrrpd.resolve import instances_for_node
from vrrpd.spec.load import load_manifests
from vrrpd.vrrp.fsm import State

pytestmark = pytest.mark.looptime

VIP = "192.168.77.100/24"
WEB = "default/web/ipv4"


def manifest(name: str, vrid: int, vip: str, extra: str = "") -> str:
    return f"""
apiVersion: kubevrrp.io/v1alpha1
kind: VirtualIP
metadata: {{name: {name}}}
spec:
  addresses: ["{vip}"]
  vrid: {vrid}
  advertInterval: 1s
  priority: 100
  nodePriorities:
    - {{nodeName: node-a, priority: 150}}
{extra}"""


def probe(path: Path, weight: int) -> str:
    return f"""  probes:
    - name: health
      file: {{path: {path}}}
      interval: 1s
      weight: {weight}
"""


def script_probe(weight: int, rise: int, fall: int) -> str:
    """A script probe, for rise and fall (a file probe has none); `script_reads` makes it
    read a file instead of running, so the test still writes its results."""
    return f"""  probes:
    - name: health
      exec: {{command: [/usr/local/bin/check]}}
      interval: 1s
      rise: {rise}
      fall: {fall}
      weight: {weight}
"""


@pytest.fixture
def wire() -> Iterator[FakeWire]:
    w = FakeWire()
    yield w
    w.close()


async def start(
    wire: FakeWire, text_a: str, text_b: str | None = None
) -> tuple[FakeHost, FakeHost]:
    a = wire.host("node-a", "192.168.77.11/24")
    b = wire.host("node-b", "192.168.77.12/24")
    for h, text in ((a, text_a), (b, text_b or text_a)):
        assert h.daemon is not None
        await h.daemon.start(instances_for_node(load_manifests(text), h.name))
    return a, b


def state(host: FakeHost, name: str = WEB) -> State:
    assert host.daemon is not None
    return host.daemon.instances[name].state


async def test_a_failing_weighted_probe_hands_the_vip_to_the_backup(
    wire: FakeWire, tmp_path: Path
) -> None:
    health, fine = tmp_path / "health", tmp_path / "fine"
    health.write_text("0")
    fine.write_text("0")
    a, b = await start(
        wire,
        manifest("web", 51, VIP, probe(health, -60)),
        manifest("web", 51, VIP, probe(fine, -60)),
    )
    await asyncio.sleep(10)
    assert (state(a), state(b)) == (State.MASTER, State.BACKUP)
    assert a.daemon is not None
    inst = a.daemon.instances[WEB]
    assert inst.router.effective_priority == 150
    health.write_text("1")
    t0 = asyncio.get_running_loop().time()
    await asyncio.sleep(1.5)  # one probe interval: 150 - 60 = 90 < 100
    assert inst.router.effective_priority == 90
    assert (state(a), state(b)) == (State.BACKUP, State.MASTER)
    b_added = next(t for t, op, _ in b.log if op == "add")
    # The master advertised 90 at once and the backup preempted at once: no Master_Down wait.
    assert b_added - t0 <= 1.0
    health.write_text("0")
    await asyncio.sleep(2)
    assert (state(a), state(b)) == (State.MASTER, State.BACKUP)


async def test_a_failing_weight_zero_probe_is_a_fault(wire: FakeWire, tmp_path: Path) -> None:
    health, fine = tmp_path / "health", tmp_path / "fine"
    health.write_text("0")
    fine.write_text("0")
    a, b = await start(
        wire, manifest("web", 51, VIP, probe(health, 0)), manifest("web", 51, VIP, probe(fine, 0))
    )
    await asyncio.sleep(10)
    assert state(a) == State.MASTER
    health.write_text("1")
    await asyncio.sleep(1.5)
    assert state(a) == State.FAULT and not a.holds(VIP)
    await asyncio.sleep(1)
    assert state(b) == State.MASTER and b.holds(VIP)
    assert a.daemon is not None
    assert "probe health failing" in a.daemon.instances[WEB].last_reason


async def test_an_instance_waits_in_fault_for_its_first_weight_zero_result(
    wire: FakeWire, tmp_path: Path
) -> None:
    unreadable = tmp_path / "not-yet"
    unreadable.mkdir()  # a directory: no number to read (a missing file would read as 0)
    a, _ = await start(
        wire, manifest("web", 51, VIP, probe(unreadable, 0)), manifest("web", 51, VIP)
    )
    await asyncio.sleep(0)
    # The first check ran at once and read nothing: FAULT, never a premature MASTER.
    await asyncio.sleep(5)
    assert state(a) == State.FAULT
    unreadable.rmdir()
    unreadable.write_text("0")
    await asyncio.sleep(10)
    assert state(a) == State.MASTER


def script_reads(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    """Script probes pass or fail as the file holds 0 or not (real scripts take real time,
    which fake time would count as a timeout)."""
    monkeypatch.setattr(supervisor, "probe_for", lambda config: FileProbe(str(path)))


async def test_fall_hysteresis_keeps_a_flapping_probe_from_moving_the_vip(
    wire: FakeWire, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    health = tmp_path / "health"
    health.write_text("0")
    script_reads(monkeypatch, health)
    a, b = await start(
        wire, manifest("web", 51, VIP, script_probe(0, rise=1, fall=3)), manifest("web", 51, VIP)
    )
    await asyncio.sleep(10)
    assert state(a) == State.MASTER
    # keepalived counts up on success and down on failure (0..rise+fall-1, up while
    # >= rise): two failures then two successes never reach the bottom.
    # The writes fall halfway between the checks (every second from the start). At the same
    # fake instant as a check, whether its read (in a thread, real time) sees the old value
    # or the new one would be a race, and reads of 1, 1 then a late 1 make three failures.
    await asyncio.sleep(0.5)
    for value in ["1", "1", "0", "0"] * 3:
        health.write_text(value)
        await asyncio.sleep(1)
    assert (state(a), state(b)) == (State.MASTER, State.BACKUP)
    assert a.daemon is not None and a.daemon.instances[WEB].transitions == 3  # INIT, BACKUP, MASTER


async def test_a_tracked_interface_down_is_a_fault(wire: FakeWire) -> None:
    a, b = await start(wire, manifest("web", 51, VIP, "  trackInterfaces: [eth1]\n"))
    await asyncio.sleep(10)
    assert state(a) == State.MASTER
    assert a.daemon is not None
    a.links.events.append(LinkEvent("eth1", False))
    a.daemon._on_link_events()
    assert state(a) == State.FAULT
    await asyncio.sleep(1)
    assert state(b) == State.MASTER
    a.links.events.append(LinkEvent("eth1", True))
    a.daemon._on_link_events()
    await asyncio.sleep(2)
    assert (state(a), state(b)) == (State.MASTER, State.BACKUP)


GROUP = "  syncGroup: edge\n"


async def test_a_sync_group_fails_over_together(wire: FakeWire) -> None:
    text = (
        manifest("inside", 10, "192.168.77.100/24", GROUP + "  trackInterfaces: [eth1]\n")
        + "---"
        + manifest("outside", 11, "192.168.77.101/24", GROUP)
    )
    a, b = await start(wire, text)
    inside, outside = "default/inside/ipv4", "default/outside/ipv4"
    await asyncio.sleep(10)
    assert [state(a, n) for n in (inside, outside)] == [State.MASTER, State.MASTER]
    assert a.daemon is not None
    # Only `inside` tracks eth1; its fault takes `outside` along.
    a.links.events.append(LinkEvent("eth1", False))
    a.daemon._on_link_events()
    assert [state(a, n) for n in (inside, outside)] == [State.FAULT, State.FAULT]
    assert "sync group default/edge" in a.daemon.instances[outside].last_reason
    await asyncio.sleep(1)
    assert [state(b, n) for n in (inside, outside)] == [State.MASTER, State.MASTER]
    assert not a.holds("192.168.77.101/24") and b.holds("192.168.77.101/24")
    a.links.events.append(LinkEvent("eth1", True))
    a.daemon._on_link_events()
    await asyncio.sleep(2)
    assert [state(a, n) for n in (inside, outside)] == [State.MASTER, State.MASTER]
    assert [state(b, n) for n in (inside, outside)] == [State.BACKUP, State.BACKUP]


async def test_a_sync_group_member_follows_another_into_master(
    wire: FakeWire, tmp_path: Path
) -> None:
    # `inside` loses priority on node-a (probe weight -60: 150 -> 90 < 100) while
    # `outside` keeps 150 there: without the group, the two VIPs would split across nodes.
    health, fine = tmp_path / "health", tmp_path / "fine"
    health.write_text("0")
    fine.write_text("0")

    def text(path: Path) -> str:
        return (
            manifest("inside", 10, "192.168.77.100/24", GROUP + probe(path, -60))
            + "---"
            + manifest("outside", 11, "192.168.77.101/24", GROUP)
        )

    a, b = await start(wire, text(health), text(fine))
    inside, outside = "default/inside/ipv4", "default/outside/ipv4"
    await asyncio.sleep(10)
    assert [state(a, n) for n in (inside, outside)] == [State.MASTER, State.MASTER]
    health.write_text("1")
    await asyncio.sleep(10)
    assert [state(b, n) for n in (inside, outside)] == [State.MASTER, State.MASTER]
    assert [state(a, n) for n in (inside, outside)] == [State.BACKUP, State.BACKUP]
    assert b.holds("192.168.77.101/24") and not a.holds("192.168.77.101/24")
    assert a.daemon is not None
    # node-a's `outside` (150) does not preempt node-b's (100) while `inside` yields.
    assert a.daemon.instances[outside].transitions == 3
    health.write_text("0")
    await asyncio.sleep(5)
    assert [state(a, n) for n in (inside, outside)] == [State.MASTER, State.MASTER]
    assert [state(b, n) for n in (inside, outside)] == [State.BACKUP, State.BACKUP]


async def test_preempt_never_keeps_a_demoted_master_but_a_fault_still_moves_the_vip(
    wire: FakeWire, tmp_path: Path
) -> None:
    # keepalived's nopreempt question, answered: with preempt Never a backup never takes
    # over from a live master, even one whose probes pulled it below the backup's priority.
    # Only a master that stops advertising (FAULT, stop, crash, link down) loses the VIP.
    weighted, fault = tmp_path / "weighted", tmp_path / "fault"
    weighted.write_text("0")
    fault.write_text("0")
    never = "  preempt: {mode: Never}\n"
    probes = (
        "  probes:\n"
        f"    - {{name: weighted, file: {{path: {weighted}}}, interval: 1s, weight: -60}}\n"
        f"    - {{name: fatal, file: {{path: {fault}}}, interval: 1s, weight: 0}}\n"
    )
    a, b = await start(
        wire, manifest("web", 51, VIP, never + probes), manifest("web", 51, VIP, never)
    )
    await asyncio.sleep(10)
    assert (state(a), state(b)) == (State.MASTER, State.BACKUP)
    weighted.write_text("1")
    await asyncio.sleep(10)
    assert a.daemon is not None
    assert a.daemon.instances[WEB].router.effective_priority == 90  # below b's 100
    assert (state(a), state(b)) == (State.MASTER, State.BACKUP)  # and still the master
    fault.write_text("1")
    await asyncio.sleep(2)
    assert (state(a), state(b)) == (State.FAULT, State.MASTER)
    assert b.holds(VIP) and not a.holds(VIP)


async def test_a_dual_stack_virtualips_probe_weighs_once_in_its_sync_group(
    wire: FakeWire, tmp_path: Path
) -> None:
    # A VirtualIP with an IPv4 and an IPv6 address is two instances running the same probe;
    # in a sync group every member takes every member's weights, and that probe counts once.
    health = tmp_path / "health"
    health.write_text("0")
    dual = 'addresses: ["192.168.77.100/24", "fd00:77::100/64"]\n  interface: eth0'
    text = (
        manifest("web", 10, "192.168.77.100/24", GROUP + probe(health, -60)).replace(
            'addresses: ["192.168.77.100/24"]', dual
        )
        + "---"
        + manifest("api", 11, "192.168.77.101/24", GROUP)
    )
    a = wire.host("node-a", "192.168.77.11/24", "fe80::11/64")
    assert a.daemon is not None
    await a.daemon.start(instances_for_node(load_manifests(text), a.name))
    names = ("default/web/ipv4", "default/web/ipv6", "default/api/ipv4")
    members = [a.daemon.instances[n] for n in names]
    await asyncio.sleep(5)
    assert [m.router.effective_priority for m in members] == [150] * 3
    health.write_text("1")
    await asyncio.sleep(1.5)
    assert [m.router.effective_priority for m in members] == [90] * 3
