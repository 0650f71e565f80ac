"""The daemon driver against fake ports on a fake wire, in fake (looptime) time."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator

import pytest

from tests.component.fakes import FakeHost, FakeWire
from vrrpd.config import InstanceConfig
from vrrpd.resolve import instances_for_node
from vrrpd.spec.load import load_manifests
from vrrpd.vrrp import packet
from vrrpd.vrrp.fsm import State

pytestmark = pytest.mark.looptime

VIP = "192.168.77.100/24"

TWO_NODES = """
apiVersion: kubevrrp.io/v1alpha1
kind: VirtualIP
metadata: {name: web}
spec:
  addresses: ["192.168.77.100/24"]
  vrid: 51
  advertInterval: 1s
  priority: 100
  nodePriorities:
    - {nodeName: node-a, priority: 150}
  {extra}
"""

SECOND = """
---
apiVersion: kubevrrp.io/v1alpha1
kind: VirtualIP
metadata: {name: api}
spec:
  addresses: ["192.168.77.101/24"]
  vrid: 52
  priority: 100
  nodePriorities:
    - {nodeName: node-b, priority: 150}
"""


def configs(node: str, extra: str = "", more: str = "") -> list[InstanceConfig]:
    text = TWO_NODES.replace("{extra}", extra) + more
    return instances_for_node(load_manifests(text), node)


@pytest.fixture
def wire() -> Iterator[FakeWire]:
    w = FakeWire()
    yield w
    w.close()


async def pair(wire: FakeWire, extra: str = "", more: str = "") -> tuple[FakeHost, FakeHost]:
    a = wire.host("node-a", "192.168.77.11/24")
    b = wire.host("node-b", "192.168.77.12/24")
    for h in (a, b):
        assert h.daemon is not None
        await h.daemon.start(configs(h.name, extra, more))
    return a, b


def state(host: FakeHost, name: str = "default/web/ipv4") -> State:
    assert host.daemon is not None
    return host.daemon.instances[name].state


async def test_highest_priority_becomes_the_only_master(wire: FakeWire) -> None:
    a, b = await pair(wire)
    await asyncio.sleep(10)
    assert (state(a), state(b)) == (State.MASTER, State.BACKUP)
    assert a.holds(VIP) and not b.holds(VIP)
    # Master from 3 + (256-150)/256 s (its Master_Down_Interval), then one advert a second.
    sent_a = [t for t, _, _ in a.sockets[0].sent]
    assert sent_a[0] == pytest.approx(3 + 106 / 256)
    assert [round(t2 - t1, 6) for t1, t2 in itertools.pairwise(sent_a)] == [1.0] * 6
    assert b.sockets[0].sent == []


async def test_sigterm_handover_keeps_the_vip_until_the_new_master_speaks(
    wire: FakeWire,
) -> None:
    a, b = await pair(wire)
    await asyncio.sleep(10)
    assert a.daemon is not None and b.daemon is not None
    t0 = asyncio.get_running_loop().time()
    await a.daemon.shutdown()
    # a's last advert had priority 0; b took over after its skew time.
    last = packet.decode(
        a.sockets[0].sent[-1][1], source=a.addresses[0].ip, destination=packet.MULTICAST_V4, ttl=255
    )
    assert isinstance(last, packet.Advertisement) and last.priority == 0
    assert state(b) == State.MASTER and b.holds(VIP) and not a.holds(VIP)
    b_added = next(t for t, op, _ in b.log if op == "add")
    a_removed = next(t for t, op, _ in a.log if op == "remove")
    # Make before break: the old master let go only after the new one took the VIP.
    assert t0 < b_added <= a_removed
    assert b_added - t0 < 1.0  # skew time of priority 100 at 1 s, not master_down
    assert a.sockets[0].closed


async def test_link_down_moves_the_vip_and_link_up_returns_it(wire: FakeWire) -> None:
    a, b = await pair(wire)
    await asyncio.sleep(10)
    a.set_link(False)
    assert state(a) == State.FAULT
    await asyncio.sleep(0.001)  # the removal is a kernel round trip
    assert not a.holds(VIP)
    await asyncio.sleep(4)
    assert state(b) == State.MASTER and b.holds(VIP)
    a.set_link(True)
    await asyncio.sleep(5)  # preempt Always: the higher priority takes it back
    assert (state(a), state(b)) == (State.MASTER, State.BACKUP)
    assert a.holds(VIP) and not b.holds(VIP)


async def test_reload_leaves_unchanged_instances_alone(wire: FakeWire) -> None:
    a, b = await pair(wire, more=SECOND)
    await asyncio.sleep(10)
    assert state(a) == State.MASTER and state(b, "default/api/ipv4") == State.MASTER
    assert a.daemon is not None
    web = a.daemon.instances["default/web/ipv4"]
    transitions = web.transitions
    changed = SECOND.replace("vrid: 52", "vrid: 53")
    result = a.daemon.apply(configs("node-a", more=changed))
    assert result.unchanged == ("default/web/ipv4",)
    assert result.changed == ("default/api/ipv4",)
    await asyncio.sleep(5)
    assert a.daemon.instances["default/web/ipv4"] is web
    assert web.transitions == transitions and web.state == State.MASTER
    assert a.daemon.instances["default/api/ipv4"].config.vrid == 53


async def test_leftover_vips_are_removed_before_joining(wire: FakeWire) -> None:
    a = wire.host("node-a", "192.168.77.11/24")
    from ipaddress import ip_interface

    a.vips["eth0"] = {ip_interface(VIP)}  # as after kill -9
    assert a.daemon is not None
    await a.daemon.start(configs("node-a"))
    assert not a.holds(VIP)
    # The configured VIPs go along: kernels without address marks find leftovers by them.
    assert a.configured_at_start == [("eth0", ip_interface(VIP))]
    assert state(a) == State.BACKUP


async def test_gratuitous_arp_bursts_on_takeover(wire: FakeWire) -> None:
    a, _ = await pair(wire, extra="garp: {masterDelay: 5s, masterRepeat: 3}")
    await asyncio.sleep(20)
    times = [t for t, _ in a.announced]
    assert len(times) == 6
    became_master = next(t for t, op, _ in a.log if op == "add")
    assert times[:3] == [became_master] * 3
    assert all(t == pytest.approx(became_master + 5) for t in times[3:])


async def test_wrong_password_is_dropped_and_counted(wire: FakeWire) -> None:
    a = wire.host("node-a", "192.168.77.11/24")
    b = wire.host("node-b", "192.168.77.12/24")
    assert a.daemon is not None and b.daemon is not None
    await a.daemon.start(configs("node-a", "version: 2\n  authentication: {password: right}"))
    await b.daemon.start(configs("node-b", "version: 2\n  authentication: {password: wrong}"))
    await asyncio.sleep(10)
    # Both are master: each ignores the other's adverts, as keepalived does.
    assert state(a) == State.MASTER and state(b) == State.MASTER
    assert b.daemon.instances["default/web/ipv4"].drops.get("auth", 0) >= 5


async def test_unicast_sends_to_peers_only(wire: FakeWire) -> None:
    peers = (
        "unicast: true\n  peers:\n"
        "    - {nodeName: node-a, address: 192.168.77.11}\n"
        "    - {nodeName: node-b, address: 192.168.77.12}"
    )
    a, b = await pair(wire, peers)
    await asyncio.sleep(10)
    assert (state(a), state(b)) == (State.MASTER, State.BACKUP)
    assert {str(d) for _, _, d in a.sockets[0].sent} == {"192.168.77.12"}


async def test_a_second_signal_drops_the_vips_at_once(wire: FakeWire) -> None:
    a, b = await pair(wire)
    await asyncio.sleep(10)
    wire.filter.append(b)  # b never answers: the handover would wait master_down
    assert a.daemon is not None
    stopping = asyncio.create_task(a.daemon.shutdown())
    await asyncio.sleep(0.5)
    assert a.holds(VIP)
    await a.daemon.abort()
    await stopping
    assert not a.holds(VIP)


async def until_state(host: FakeHost, wanted: State, timeout: float = 30) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while state(host) != wanted:
        assert loop.time() < deadline, f"{host.name} never {wanted}"
        await asyncio.sleep(0.001)


async def test_garp_and_adverts_wait_until_the_vip_is_on_the_interface(wire: FakeWire) -> None:
    a = wire.host("node-a", "192.168.77.11/24")
    a.kernel_delay = 0.05  # a slow kernel: each address change takes 50 ms to acknowledge
    assert a.daemon is not None
    await a.daemon.start(configs("node-a"))
    await until_state(a, State.MASTER)
    await asyncio.sleep(1)
    [(added, _, _)] = [entry for entry in a.log if entry[1] == "add"]
    assert a.announced and all(t >= added for t, _ in a.announced)
    assert a.sockets[0].sent and all(t >= added for t, _, _ in a.sockets[0].sent)


async def test_effects_of_an_instance_never_overtake_one_another(wire: FakeWire) -> None:
    a = wire.host("node-a", "192.168.77.11/24")
    a.kernel_delay = 1.0
    assert a.daemon is not None
    await a.daemon.start(configs("node-a"))
    await until_state(a, State.MASTER)  # its VIP is on its way to the interface
    a.set_link(False)  # and the link goes down before it got there
    assert state(a) == State.FAULT
    await asyncio.sleep(5)
    assert [op for _, op, _ in a.log] == ["add", "remove"] and not a.holds(VIP)
    # No gratuitous ARP or advert for a mastership that was over when the VIP arrived.
    assert a.announced == [] and a.sockets[0].sent == []


ROUTES = """routes:
    - {to: 10.50.0.0/16, via: 192.168.77.1}
  rules:
    - {from: 192.168.77.100/32, table: 100}"""


async def test_routes_come_after_the_addresses_and_go_before_them(wire: FakeWire) -> None:
    a, b = await pair(wire, ROUTES)
    await asyncio.sleep(10)
    assert state(a) == State.MASTER
    assert [op for _, op, _ in a.log] == ["add", "add route", "add rule"]
    assert [op for _, op, _ in b.log] == []  # a backup installs nothing
    assert a.daemon is not None
    await a.daemon.shutdown()
    assert [op for _, op, _ in a.log][3:] == ["remove rule", "remove route", "remove"]
    assert [op for _, op, _ in b.log] == ["add", "add route", "add rule"]
    assert a.ports.routes is not None and a.ports.routes.closed  # type: ignore[attr-defined]
