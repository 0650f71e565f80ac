"""Reload by difference: what changes in place (no re-election) and what restarts an instance,
on the fake wire in fake (looptime) time."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.component.fakes import FakeHost, FakeWire
from vrrpd.daemon import Daemon, Instance
from vrrpd.probes.tracking import ProbeState
from vrrpd.resolve import instances_for_node
from vrrpd.spec.load import load_manifests
from vrrpd.vrrp import packet
from vrrpd.vrrp.fsm import State

pytestmark = pytest.mark.looptime

VIP = "192.168.77.100/24"
WEB = "default/web/ipv4"
API = "default/api/ipv4"


def manifest(
    a: int = 150,
    b: int = 100,
    *,
    name: str = "web",
    vrid: int = 51,
    vip: str = VIP,
    interval: str = "1s",
    extra: str = "",
) -> str:
    return f"""
apiVersion: kubevrrp.io/v1alpha1
kind: VirtualIP
metadata: {{name: {name}}}
spec:
  addresses: ["{vip}"]
  vrid: {vrid}
  advertInterval: {interval}
  nodePriorities:
    - {{nodeName: node-a, priority: {a}}}
    - {{nodeName: node-b, priority: {b}}}
{extra}"""


def file_probe(path: Path, weight: int, name: str = "health", interval: str = "1s") -> str:
    return (
        f"  probes:\n    - {{name: {name}, file: {{path: {path}}}, interval: {interval}, "
        f"weight: {weight}}}\n"
    )


@pytest.fixture
def wire() -> Iterator[FakeWire]:
    w = FakeWire()
    yield w
    w.close()


def daemon(host: FakeHost) -> Daemon:
    assert host.daemon is not None
    return host.daemon


def load(host: FakeHost, text: str) -> None:
    daemon(host).apply(instances_for_node(load_manifests(text), host.name))


async def elected(wire: FakeWire, text: str, text_b: str | None = None) -> list[FakeHost]:
    hosts = [wire.host("node-a", "192.168.77.11/24"), wire.host("node-b", "192.168.77.12/24")]
    for h, t in zip(hosts, (text, text_b or text), strict=True):
        await daemon(h).start(instances_for_node(load_manifests(t), h.name))
    await asyncio.sleep(10)
    assert [state(h) for h in hosts] == [State.MASTER, State.BACKUP]
    return hosts


def inst(host: FakeHost, name: str = WEB) -> Instance:
    return daemon(host).instances[name]


def state(host: FakeHost, name: str = WEB) -> State:
    return inst(host, name).state


def adverts(host: FakeHost, since: float = 0.0) -> list[tuple[float, packet.Advertisement]]:
    """What the host sent, decoded."""
    out = []
    for t, payload, destination in host.sockets[0].sent:
        if t < since:
            continue
        ad = packet.decode(payload, source=host.addresses[0].ip, destination=destination, ttl=255)
        assert isinstance(ad, packet.Advertisement)
        out.append((t, ad))
    return out


def now() -> float:
    return asyncio.get_running_loop().time()


async def test_raising_the_masters_priority_is_advertised_without_a_transition(
    wire: FakeWire,
) -> None:
    a, b = await elected(wire, manifest())
    before = [inst(a), inst(b)]
    counts = [inst(h).transitions for h in (a, b)]
    t0 = now()
    result = daemon(a).apply(instances_for_node(load_manifests(manifest(200)), "node-a"))
    assert (result.changed, result.restarted) == ((WEB,), ())
    await asyncio.sleep(5)
    assert [inst(a), inst(b)] == before  # the same instances: nothing restarted
    assert [inst(h).transitions for h in (a, b)] == counts
    assert a.holds(VIP) and not b.holds(VIP)
    sent = adverts(a, t0)
    assert sent[0] == (t0, sent[0][1]) and sent[0][1].priority == 200  # at once
    assert {ad.priority for _, ad in sent} == {200}
    assert inst(b).router.master_priority == 200


async def test_a_master_lowered_below_the_backup_hands_over_in_one_advert(wire: FakeWire) -> None:
    a, b = await elected(wire, manifest())
    t0 = now()
    load(a, manifest(90))
    await asyncio.sleep(0.1)
    assert (state(a), state(b)) == (State.BACKUP, State.MASTER)
    assert b.holds(VIP) and not a.holds(VIP)
    b_added = next(t for t, op, _ in b.log if op == "add")
    assert b_added == t0  # preempted on the advert at 90, not after Master_Down_Interval
    # No priority-0 resignation: this was an election, not a stop.
    assert all(ad.priority == 90 for _, ad in adverts(a, t0))


async def test_under_preempt_never_a_lowered_master_keeps_the_vip(wire: FakeWire) -> None:
    never = "  preempt: {mode: Never}\n"
    a, b = await elected(wire, manifest(extra=never))
    counts = [inst(h).transitions for h in (a, b)]
    load(a, manifest(90, extra=never))
    load(b, manifest(90, extra=never))
    await asyncio.sleep(10)
    assert [inst(h).transitions for h in (a, b)] == counts
    assert a.holds(VIP) and not b.holds(VIP)


async def test_a_backup_raised_above_the_master_takes_over_at_its_next_advert(
    wire: FakeWire,
) -> None:
    a, b = await elected(wire, manifest())
    backup = inst(b)
    t0 = now()
    load(b, manifest(150, 200))
    assert state(b) == State.BACKUP  # it does not advertise: it waits for the master's
    await asyncio.sleep(1.0)
    assert (state(a), state(b)) == (State.BACKUP, State.MASTER)
    assert inst(b) is backup and b.holds(VIP) and not a.holds(VIP)
    assert next(t for t, op, _ in b.log if op == "add") - t0 <= 1.0


async def test_raising_a_backup_below_the_master_moves_nothing(wire: FakeWire) -> None:
    a, b = await elected(wire, manifest())
    counts = [inst(h).transitions for h in (a, b)]
    for h in (a, b):
        load(h, manifest(150, 140))
    await asyncio.sleep(10)
    assert [inst(h).transitions for h in (a, b)] == counts
    assert inst(b).router.effective_priority == 140
    assert a.holds(VIP) and not b.holds(VIP)


@pytest.mark.parametrize("order", ["master first", "backup first"])
@pytest.mark.parametrize("interval", ["100ms", "3s"])
async def test_a_new_advert_interval_keeps_the_master(
    wire: FakeWire, order: str, interval: str
) -> None:
    a, b = await elected(wire, manifest())
    counts = [inst(h).transitions for h in (a, b)]
    first, second = (a, b) if order == "master first" else (b, a)
    load(first, manifest(interval=interval))
    await asyncio.sleep(0.5)  # the nodes of a cluster get their ConfigMaps apart
    load(second, manifest(interval=interval))
    t1 = now()
    await asyncio.sleep(12)
    assert [inst(h).transitions for h in (a, b)] == counts
    assert a.holds(VIP) and not b.holds(VIP)
    times = [t for t, _ in adverts(a, t1)]
    step = 0.1 if interval == "100ms" else 3.0
    assert {round(t2 - t1_, 6) for t1_, t2 in itertools.pairwise(times)} == {step}


async def test_a_changed_probe_keeps_its_state_and_a_new_one_holds_nothing_back(
    wire: FakeWire, tmp_path: Path
) -> None:
    health, extra = tmp_path / "health", tmp_path / "extra"
    health.write_text("0")
    a, b = await elected(wire, manifest(extra=file_probe(health, -60)), manifest())
    tracker = inst(a).trackers["health"]
    assert tracker.state == ProbeState.UP
    counts = [inst(h).transitions for h in (a, b)]
    # Another interval: the probe restarts with its state carried over.
    load(a, manifest(extra=file_probe(health, -60, interval="2s")))
    assert inst(a).trackers["health"] is not tracker
    assert inst(a).trackers["health"].state == ProbeState.UP
    # A weight-0 probe added to a running master: no FAULT while it has not spoken ...
    extra.write_text("0")
    both = file_probe(health, -60) + "    - {name: extra, file: {path: %s}, interval: 1s}\n"
    load(a, manifest(extra=both % extra))
    assert state(a) == State.MASTER and inst(a).trackers["extra"].state == ProbeState.INIT
    await asyncio.sleep(5)
    assert [inst(h).transitions for h in (a, b)] == counts
    assert inst(a).trackers["extra"].state == ProbeState.UP
    # ... and it counts like any other once it has.
    extra.write_text("1")
    await asyncio.sleep(2)
    assert state(a) == State.FAULT and b.holds(VIP)
    assert "probe extra failing" in inst(a).last_reason
    # Removing it clears its fault.
    load(a, manifest(extra=file_probe(health, -60)))
    await asyncio.sleep(10)
    assert state(a) == State.MASTER and set(inst(a).trackers) == {"health"}


async def test_removing_a_weighted_probe_restores_the_base_priority(
    wire: FakeWire, tmp_path: Path
) -> None:
    down = tmp_path / "down"
    down.write_text("1")
    a, _ = await elected(wire, manifest(200, extra=file_probe(down, -60)), manifest(200))
    assert inst(a).router.effective_priority == 140
    load(a, manifest(200))
    assert inst(a).router.effective_priority == 200
    assert adverts(a, now())[-1][1].priority == 200


async def test_leaving_a_sync_group_clears_the_fault_the_group_imposed(
    wire: FakeWire, tmp_path: Path
) -> None:
    grouped = "  syncGroup: edge\n"
    drained = tmp_path / "drained"
    drained.write_text("1")
    failing = grouped + file_probe(drained, 0)
    api = manifest(name="api", vrid=52, vip="192.168.77.101/24", extra=failing)
    a, _ = await elected(wire, manifest(extra=grouped), manifest())
    load(a, manifest(extra=grouped) + "---" + api)
    await asyncio.sleep(2)
    assert state(a, API) == State.FAULT and state(a) == State.FAULT
    assert "sync group" in inst(a).last_reason
    load(a, manifest() + "---" + api)
    await asyncio.sleep(10)
    assert state(a) == State.MASTER and state(a, API) == State.FAULT


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"vrid: 51": "vrid: 53"}, "vrid changed"),
        ({VIP: "192.168.77.102/24"}, "addresses changed"),
        ({"advertInterval: 1s": "advertInterval: 1s\n  interface: eth1"}, "interface eth0 -> eth1"),
    ],
)
async def test_what_makes_another_router_restarts_the_instance_with_a_handover(
    wire: FakeWire, change: dict[str, str], why: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "vrrpd")
    a, _ = await elected(wire, manifest())
    old = inst(a)
    text = manifest()
    for before, after in change.items():
        text = text.replace(before, after)
    result = daemon(a).apply(instances_for_node(load_manifests(text), "node-a"))
    assert result.restarted == (WEB,) and result.changed == (WEB,)
    assert f"configuration changed: {why}" in caplog.text
    await asyncio.sleep(10)
    assert inst(a) is not old and old.state == State.STOPPED
