"""Pool instances (verifyAddresses: false) change their address list in place: no
re-election, the master adds and announces what is new and removes what is gone, and a
backup that has not caught up yet keeps accepting the master's adverts."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.component.fakes import FakeHost, FakeWire
from vrrpd.config import InstanceConfig
from vrrpd.resolve import instances_for_node
from vrrpd.spec.load import load_manifests
from vrrpd.vrrp.fsm import State

pytestmark = pytest.mark.looptime

NAME = "kube-vrrp/pool-public-0123456789/ipv4"


def configs(node: str, addresses: list[str], *, verify: bool = False) -> list[InstanceConfig]:
    text = f"""
apiVersion: kubevrrp.io/v1alpha1
kind: VirtualIP
metadata: {{name: pool-public-0123456789, namespace: kube-vrrp}}
spec:
  addresses: {addresses}
  vrid: 7
  advertInterval: 1s
  verifyAddresses: {str(verify).lower()}
  nodePriorities:
    - {{nodeName: node-a, priority: 150}}
"""
    return instances_for_node(load_manifests(text), node)


@pytest.fixture
def wire() -> Iterator[FakeWire]:
    w = FakeWire()
    yield w
    w.close()


async def pair(
    wire: FakeWire, addresses: list[str], verify: bool = False
) -> tuple[FakeHost, FakeHost]:
    a = wire.host("node-a", "192.168.77.11/24")
    b = wire.host("node-b", "192.168.77.12/24")
    for h in (a, b):
        assert h.daemon is not None
        await h.daemon.start(configs(h.name, addresses, verify=verify))
    return a, b


async def test_a_new_address_list_is_applied_without_reelection(wire: FakeWire) -> None:
    a, b = await pair(wire, ["192.168.77.100/32", "192.168.77.101/32"])
    await asyncio.sleep(10)
    assert a.daemon is not None and b.daemon is not None
    master = a.daemon.instances[NAME]
    assert master.state == State.MASTER
    transitions = master.transitions
    announced_before = len(a.announced)

    new = ["192.168.77.101/32", "192.168.77.102/32"]
    result = a.daemon.apply(configs("node-a", new))
    assert result.changed == (NAME,)
    await asyncio.sleep(0.1)  # the kernel round trips of the address changes
    assert a.daemon.instances[NAME] is master and master.transitions == transitions
    assert a.holds("192.168.77.102/32") and a.holds("192.168.77.101/32")
    assert not a.holds("192.168.77.100/32")
    fresh = {addr for _, addr in a.announced[announced_before:]}
    assert fresh == {"192.168.77.102"}  # only the new address is announced

    # b has the old list for a while: it still hears a as master (no takeover, no drop).
    await asyncio.sleep(10)
    assert b.daemon.instances[NAME].state == State.BACKUP
    assert b.daemon.instances[NAME].drops == {}  # no advert dropped for its address list
    b.daemon.apply(configs("node-b", new))
    await asyncio.sleep(5)
    assert master.state == State.MASTER and master.transitions == transitions
    assert not b.holds("192.168.77.102/32")


async def test_a_backup_changes_its_list_without_touching_the_interface(wire: FakeWire) -> None:
    _a, b = await pair(wire, ["192.168.77.100/32"])
    await asyncio.sleep(10)
    assert b.daemon is not None
    backup = b.daemon.instances[NAME]
    b.daemon.apply(configs("node-b", ["192.168.77.100/32", "192.168.77.103/32"]))
    await asyncio.sleep(0.1)
    assert b.daemon.instances[NAME] is backup and backup.state == State.BACKUP
    assert not b.holds("192.168.77.103/32")
    assert [op for _, op, _ in b.log if op in ("add", "remove")] == []


async def test_verified_instances_still_restart_on_a_new_list(wire: FakeWire) -> None:
    a, _ = await pair(wire, ["192.168.77.100/32"], verify=True)
    await asyncio.sleep(10)
    assert a.daemon is not None
    before = a.daemon.instances[NAME]
    a.daemon.apply(configs("node-a", ["192.168.77.104/32"], verify=True))
    await asyncio.sleep(10)
    assert a.daemon.instances[NAME] is not before


async def test_changes_in_quick_succession_end_in_the_last_list(wire: FakeWire) -> None:
    # Each address change is a kernel round trip (10 ms here): a second list while the
    # first is being applied waits for it, and the interface ends with the second.
    a, _ = await pair(wire, ["192.168.77.100/32"])
    await asyncio.sleep(10)
    assert a.daemon is not None
    a.kernel_delay = 0.01
    a.daemon.apply(configs("node-a", ["192.168.77.100/32", "192.168.77.101/32"]))
    a.daemon.apply(configs("node-a", ["192.168.77.102/32"]))
    await asyncio.sleep(1)
    held = {str(x) for x in a.vips.get("eth0", set())}
    assert held == {"192.168.77.102/32"}
    assert a.daemon.instances[NAME].state == State.MASTER
