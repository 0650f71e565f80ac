"""The net adapters (transport, rtnetlink, announce, the start-up clean-up) against a real
kernel: two network namespaces joined by veth pairs; the adapters run inside namespace A
(opened via setns on the test thread, see netns_util), peers and sniffers in namespace B.
scapy is the oracle for frames and checksums.

Topology (fresh namespaces, deleted in teardown even when a test fails):

    ns A  va 10.77.0.1/24 fd00:77::1/64  ====  vb 10.77.0.2/24 fd00:77::2/64  ns B
          vc (no addresses; link tests)  ====  vd
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import functools
import json
import logging
import select
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_interface
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.inet import IP
from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6NDOptDstLLAddr, IPv6
from scapy.layers.l2 import ARP, Ether
from scapy.layers.vrrp import VRRPv3
from scapy.packet import Packet, Raw

sys.path.insert(0, str(Path(__file__).parent))  # netns_util sits next to this file
from netns_util import (
    Pair,
    Sniffer,
    addr_info,
    entered,
    ip,
    link_info,
    link_local,
    link_local_ready,
    mac_of,
    make_pair,
    require_root,
    wait_for,
)

from vrrpd.net import startup
from vrrpd.net.announce import AnnounceError, Announcer
from vrrpd.net.rtnl import AddressError, LinkEvent, Rtnl, marks_supported
from vrrpd.net.transport import (
    ReceivedPacket,
    TransportError,
    VrrpSocket,
    parse_ipv4,
    parse_ipv6,
)
from vrrpd.vrrp.packet import MULTICAST_V4, MULTICAST_V6

pytestmark = pytest.mark.root

REPO = Path(__file__).resolve().parents[2]
A_V4, B_V4 = "10.77.0.1", "10.77.0.2"
A_V6, B_V6 = "fd00:77::1", "fd00:77::2"


@pytest.fixture(scope="module")
def lab() -> Iterator[Pair]:
    require_root()
    pair = make_pair("net", {"va": "vb", "vc": "vd"})
    try:
        ip("addr", "add", f"{A_V4}/24", "dev", "va", ns=pair.a)
        ip("addr", "add", f"{A_V6}/64", "dev", "va", "nodad", ns=pair.a)
        ip("addr", "add", f"{B_V4}/24", "dev", "vb", ns=pair.b)
        ip("addr", "add", f"{B_V6}/64", "dev", "vb", "nodad", ns=pair.b)
        # DAD stays on (as on real hosts): wait until the link-locals are usable sources.
        for ns, ifname in ((pair.a, "va"), (pair.b, "vb")):
            wait_for(functools.partial(link_local_ready, ns, ifname), 10, ifname)
        yield pair
    finally:
        pair.destroy()


def open_in(ns: str, ifname: str, family: int, *, multicast: bool) -> VrrpSocket:
    with entered(ns):
        return VrrpSocket.open(ifname, family, multicast=multicast)


@pytest.fixture
def sockets() -> Iterator[list[VrrpSocket]]:
    """Collects sockets a test opens and closes them afterwards."""
    opened: list[VrrpSocket] = []
    yield opened
    for sock in opened:
        sock.close()


def receive_within(sock: VrrpSocket, timeout: float = 2.0) -> list[ReceivedPacket]:
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select([sock.fileno()], [], [], left)
        if readable:
            packets = sock.receive()
            if packets:
                return packets
    return []


def advert(source: str, destination: str, vip: str, vrid: int = 51) -> bytes:
    """A valid VRRPv3 advertisement (checksum over the real pseudo-header), by scapy."""
    if ip_address(source).version == 4:
        return bytes(IP(src=source, dst=destination) / VRRPv3(vrid=vrid, addrlist=[vip]))[20:]
    return bytes(IPv6(src=source, dst=destination) / VRRPv3(vrid=vrid, addrlist=[vip]))[40:]


def checksum_ok(packet: ReceivedPacket) -> bool:
    """scapy recomputes the v3 checksum from the received source / destination."""
    parsed: Packet
    if packet.source.version == 4:
        lower = IP(src=str(packet.source), dst=str(packet.destination), proto=112)
        parsed = IP(bytes(lower / Raw(packet.payload)))
    else:
        lower6 = IPv6(src=str(packet.source), dst=str(packet.destination), nh=112)
        parsed = IPv6(bytes(lower6 / Raw(packet.payload)))
    sent = parsed[VRRPv3].chksum
    parsed[VRRPv3].chksum = None  # scapy recomputes it when building
    return bool(parsed.__class__(bytes(parsed))[VRRPv3].chksum == sent)


# --- transport ---------------------------------------------------------------------------


def test_ipv4_multicast_advert_arrives_with_ttl_255(lab: Pair, sockets: list[VrrpSocket]) -> None:
    sender = open_in(lab.a, "va", socket.AF_INET, multicast=True)
    receiver = open_in(lab.b, "vb", socket.AF_INET, multicast=True)
    sockets += [sender, receiver]
    payload = advert(A_V4, str(MULTICAST_V4), "10.77.0.100")

    with Sniffer(lab.b, "vb") as sniffer:
        sender.send(payload, MULTICAST_V4, source=IPv4Address(A_V4))
        frame = Ether(sniffer.wait(lambda f: IP in Ether(f) and Ether(f)[IP].proto == 112))
    [packet] = receive_within(receiver)

    assert packet == ReceivedPacket(payload, IPv4Address(A_V4), MULTICAST_V4, 255)
    assert checksum_ok(packet)
    assert not checksum_ok(dataclasses.replace(packet, source=IPv4Address(B_V4)))  # the oracle
    # On the wire: the group's MAC, TTL 255 and DSCP CS6 like keepalived.
    assert frame.dst == "01:00:5e:00:00:12"
    assert frame.src == mac_of(lab.a, "va")
    assert frame[IP].ttl == 255
    assert frame[IP].tos == 0xC0


def test_ipv4_unicast_and_source_pinning(lab: Pair, sockets: list[VrrpSocket]) -> None:
    sender = open_in(lab.a, "va", socket.AF_INET, multicast=False)
    receiver = open_in(lab.b, "vb", socket.AF_INET, multicast=False)
    sockets += [sender, receiver]
    ip("addr", "add", "10.77.0.50/24", "dev", "va", ns=lab.a)  # a secondary address
    try:
        payload = advert("10.77.0.50", B_V4, "10.77.0.100")
        sender.send(payload, B_V4, source="10.77.0.50")
        [pinned] = receive_within(receiver)
        sender.send(b"no source given", IPv4Address(B_V4))
        [chosen] = receive_within(receiver)
    finally:
        ip("addr", "del", "10.77.0.50/24", "dev", "va", ns=lab.a)

    assert pinned == ReceivedPacket(payload, IPv4Address("10.77.0.50"), IPv4Address(B_V4), 255)
    assert checksum_ok(pinned)
    # Without a source the kernel takes the interface's primary address.
    assert chosen.source == IPv4Address(A_V4)
    assert chosen.payload == b"no source given"


def test_ipv6_multicast_advert_from_link_local(lab: Pair, sockets: list[VrrpSocket]) -> None:
    sender = open_in(lab.a, "va", socket.AF_INET6, multicast=True)
    receiver = open_in(lab.b, "vb", socket.AF_INET6, multicast=True)
    sockets += [sender, receiver]
    source = IPv6Address(str(link_local(lab.a, "va")))
    payload = advert(str(source), str(MULTICAST_V6), "fd00:77::100")

    with Sniffer(lab.b, "vb") as sniffer:
        sender.send(payload, MULTICAST_V6, source=source)
        frame = Ether(sniffer.wait(lambda f: IPv6 in Ether(f) and Ether(f)[IPv6].nh == 112))
    [packet] = receive_within(receiver)

    assert packet == ReceivedPacket(payload, source, MULTICAST_V6, 255)
    assert checksum_ok(packet)
    assert frame.dst == "33:33:00:00:00:12"
    assert frame[IPv6].hlim == 255
    assert frame[IPv6].tc == 0xC0


def test_ipv6_unicast_to_global_and_link_local_peer(lab: Pair, sockets: list[VrrpSocket]) -> None:
    sender = open_in(lab.a, "va", socket.AF_INET6, multicast=False)
    receiver = open_in(lab.b, "vb", socket.AF_INET6, multicast=False)
    sockets += [sender, receiver]
    source = IPv6Address(str(link_local(lab.a, "va")))
    peer_link_local = IPv6Address(str(link_local(lab.b, "vb")))

    for destination in (IPv6Address(B_V6), peer_link_local):
        payload = advert(str(source), str(destination), "fd00:77::100")
        sender.send(payload, destination, source=source)
        [packet] = receive_within(receiver)
        assert packet == ReceivedPacket(payload, source, destination, 255)
        assert checksum_ok(packet)


def test_own_adverts_do_not_loop_back(lab: Pair, sockets: list[VrrpSocket]) -> None:
    for family, group in ((socket.AF_INET, MULTICAST_V4), (socket.AF_INET6, MULTICAST_V6)):
        sender = open_in(lab.a, "va", family, multicast=True)
        sockets.append(sender)
        sender.send(b"own advert", group)
        assert receive_within(sender, timeout=0.3) == []


def test_socket_without_multicast_gets_unicast_only(lab: Pair, sockets: list[VrrpSocket]) -> None:
    sender = open_in(lab.a, "va", socket.AF_INET, multicast=True)
    unicast_only = open_in(lab.b, "vb", socket.AF_INET, multicast=False)
    sockets += [sender, unicast_only]
    sender.send(b"to the group", MULTICAST_V4)
    assert receive_within(unicast_only, timeout=0.3) == []
    sender.send(b"to the peer", B_V4)
    assert [p.payload for p in receive_within(unicast_only)] == [b"to the peer"]


def test_unicast_to_peer_without_listener_does_not_break_sending(
    lab: Pair, sockets: list[VrrpSocket]
) -> None:
    # No VRRP socket in B: its kernel answers ICMP protocol unreachable. That must not
    # turn into an error on later sends or receives (unconnected raw sockets without
    # IP_RECVERR do not queue ICMP errors; this pins that down).
    sender = open_in(lab.a, "va", socket.AF_INET, multicast=False)
    sockets.append(sender)
    with Sniffer(lab.a, "va") as sniffer:
        sender.send(b"anyone?", B_V4)
        sniffer.wait(lambda f: IP in Ether(f) and Ether(f)[IP].proto == 1)  # the ICMP
    time.sleep(0.05)
    for _ in range(3):
        sender.send(b"still sending", B_V4)
    assert sender.receive() == []


def test_send_on_down_link_raises_transport_error(lab: Pair, sockets: list[VrrpSocket]) -> None:
    ip("addr", "add", "10.78.0.1/24", "dev", "vc", ns=lab.a)
    sock = open_in(lab.a, "vc", socket.AF_INET, multicast=True)
    sockets.append(sock)
    ip("link", "set", "vc", "down", ns=lab.a)
    try:
        with pytest.raises(TransportError) as raised:
            sock.send(b"x", MULTICAST_V4)
        assert raised.value.errno in (errno.ENETDOWN, errno.ENETUNREACH, errno.ENXIO)
        assert "vc" in str(raised.value)
    finally:
        ip("link", "set", "vc", "up", ns=lab.a)
        ip("addr", "flush", "dev", "vc", "scope", "global", ns=lab.a)


def test_socket_on_recreated_interface_must_be_reopened(lab: Pair) -> None:
    def make_link() -> None:
        ip("link", "add", "vx", "type", "veth", "peer", "name", "vy", ns=lab.a)
        for ifname in ("vx", "vy"):
            ip("link", "set", ifname, "up", ns=lab.a)
        ip("addr", "add", "10.79.0.1/24", "dev", "vx", ns=lab.a)

    make_link()
    try:
        old = open_in(lab.a, "vx", socket.AF_INET, multicast=True)
        old.send(b"x", MULTICAST_V4)
        ip("link", "del", "vx", ns=lab.a)
        make_link()  # same name, new interface: the old socket is bound to the old one
        with pytest.raises(TransportError) as raised:
            old.send(b"x", MULTICAST_V4)
        assert raised.value.interface_gone and raised.value.errno == errno.ENODEV
        old.close()
        new = open_in(lab.a, "vx", socket.AF_INET, multicast=True)
        new.send(b"x", MULTICAST_V4)
        new.close()
    finally:
        ip("link", "del", "vx", ns=lab.a, check=False)


def test_open_unknown_interface_raises(lab: Pair) -> None:
    with pytest.raises(TransportError) as raised:
        open_in(lab.a, "nosuch0", socket.AF_INET, multicast=True)
    assert raised.value.errno == errno.ENODEV


def test_parsers_drop_junk() -> None:
    header = bytes.fromhex("45c0001c000000000ff70000") + bytes([10, 0, 0, 1, 224, 0, 0, 18])
    good = header[:8] + bytes([255, 112]) + header[10:] + b"12345678"
    assert parse_ipv4(good) == ReceivedPacket(
        b"12345678", IPv4Address("10.0.0.1"), MULTICAST_V4, 255
    )
    assert parse_ipv4(good[:19]) is None  # shorter than a header
    assert parse_ipv4(good[:24]) is None  # shorter than its total length
    assert parse_ipv4(good[:9] + b"\x11" + good[10:]) is None  # not protocol 112
    assert parse_ipv4(b"\x48" + good[1:]) is None  # header longer than the datagram
    assert parse_ipv4(good[:6] + b"\x20\x00" + good[8:]) is None  # a fragment
    assert parse_ipv4(good + b"\0" * 6) is not None  # link padding is fine
    hop = (socket.IPPROTO_IPV6, socket.IPV6_HOPLIMIT, (255).to_bytes(4, sys.byteorder))
    info = (socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, MULTICAST_V6.packed + b"\0" * 4)
    assert parse_ipv6(b"m", "fe80::1%va", [hop, info]) == ReceivedPacket(
        b"m", IPv6Address("fe80::1"), MULTICAST_V6, 255
    )
    assert parse_ipv6(b"m", "fe80::1", [hop]) is None
    assert parse_ipv6(b"m", "fe80::1", [info]) is None


# --- addresses -----------------------------------------------------------------------------


def entry(ns: str, ifname: str, address: str) -> dict[str, object] | None:
    for info in addr_info(ns, ifname):
        if info["local"] == address:
            return info
    return None


async def eventually(predicate: Callable[[], Any], timeout: float = 3.0, what: str = "") -> None:
    """Let the loop run (the mirror follows the kernel's events) until `predicate` holds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        await asyncio.sleep(0.01)


@pytest.fixture
async def rtnl(lab: Pair) -> AsyncIterator[Rtnl]:
    with entered(lab.a):
        adapter = await Rtnl.open()
    try:
        yield adapter
    finally:
        adapter.close()
        with entered(lab.a):
            startup.remove_marked()  # whatever a failing test left behind


async def test_add_remove_idempotent_with_label_and_nodad(lab: Pair, rtnl: Rtnl) -> None:
    v4, v6 = ip_interface("10.77.0.100/24"), ip_interface("fd00:77::100/64")
    assert await rtnl.add("va", v4, label="va:vip") is True
    assert await rtnl.add("va", v4, label="va:vip") is False  # already there: fine
    assert await rtnl.add("va", v6) is True
    assert rtnl.has("va", v4) and rtnl.has("va", v6)
    assert not rtnl.has("va", ip_interface("10.77.0.100/25"))

    on_v4 = entry(lab.a, "va", "10.77.0.100")
    on_v6 = entry(lab.a, "va", "fd00:77::100")
    assert on_v4 is not None and on_v4["label"] == "va:vip" and on_v4["prefixlen"] == 24
    assert on_v6 is not None and on_v6.get("nodad") and not on_v6.get("tentative")
    # The kernel's own word on the mark, through the events the mirror follows.
    await eventually(lambda: rtnl.owned("va") == [("va", v4), ("va", v6)], what="marked")

    assert await rtnl.remove("va", v4) is True
    assert await rtnl.remove("va", v4) is False  # already gone: fine
    assert await rtnl.remove("va", v6) is True
    assert await rtnl.remove("nosuch0", v6) is False
    assert entry(lab.a, "va", "10.77.0.100") is None
    assert entry(lab.a, "va", "fd00:77::100") is None
    await eventually(lambda: rtnl.owned() == [], what="the mirror empty of VIPs")


def promote_secondaries(ns: str, ifname: str, value: str | None = None) -> str:
    path = Path(f"/proc/sys/net/ipv4/conf/{ifname}/promote_secondaries")
    with entered(ns):  # /proc/sys/net shows the namespace of the thread that opens it
        if value is not None:
            path.write_text(value)
        return path.read_text().strip()


async def test_removing_one_vip_keeps_another_in_the_same_subnet(lab: Pair, rtnl: Rtnl) -> None:
    # 10.99.0.0/24 is no subnet of va's own: the first VIP is primary, the second secondary.
    # With promote_secondaries off, removing the first would take the second along; the
    # adapter turns it on over netlink (no /proc/sys write: see the daemon test with a
    # read-only /proc/sys in test_read_only_sysctls.py).
    promote_secondaries(lab.a, "va", "0")
    first, second = ip_interface("10.99.0.1/24"), ip_interface("10.99.0.2/24")
    assert await rtnl.add("va", first) and await rtnl.add("va", second)
    assert promote_secondaries(lab.a, "va") == "1"
    assert await rtnl.remove("va", first)
    assert entry(lab.a, "va", "10.99.0.2") is not None, "the kernel deleted the secondary"
    assert await rtnl.remove("va", second)


async def test_add_rejects_what_cannot_work(rtnl: Rtnl) -> None:
    with pytest.raises(AddressError, match="label"):
        await rtnl.add("va", ip_interface("10.77.0.101/24"), label="eth0:vip")
    with pytest.raises(AddressError, match="no label"):
        await rtnl.add("va", ip_interface("fd00:77::101/64"), label="va:v6")
    with pytest.raises(AddressError) as raised:
        await rtnl.add("nosuch0", ip_interface("10.77.0.101/24"))
    assert raised.value.errno == errno.ENODEV


MARKED_SNIPPET = """
import json, sys
from vrrpd.net import startup
if sys.argv[1] == "remove":
    found = startup.remove_marked()
else:
    import asyncio
    from vrrpd.net.rtnl import Rtnl
    async def owned():
        async with await Rtnl.open() as rtnl:
            return [[name, str(address)] for name, address in rtnl.owned()]
    found = asyncio.run(owned())
print(json.dumps(found))
"""


def in_fresh_process(ns: str, action: str) -> list[list[str]]:
    """What a restarted daemon sees: a new process in the namespace, no state carried."""
    result = subprocess.run(
        ["ip", "netns", "exec", ns, sys.executable, "-c", MARKED_SNIPPET, action],
        capture_output=True, text=True, cwd=REPO, timeout=60, check=True,
    )  # fmt: skip
    return sorted(json.loads(result.stdout))


async def test_proto_mark_lets_a_restarted_daemon_find_its_leftovers(lab: Pair, rtnl: Rtnl) -> None:
    await rtnl.add("va", ip_interface("10.77.0.100/24"))
    await rtnl.add("va", ip_interface("fd00:77::100/64"))
    await rtnl.add("vc", ip_interface("192.0.2.10/32"))
    ip("addr", "add", "10.77.0.60/24", "dev", "va", ns=lab.a)  # an admin's, not ours
    rtnl.close()  # as after kill -9: nothing of the first daemon survives but the kernel
    try:
        # iproute2 6.1 does not print the address protocol, so the kernel's word is read
        # by a fresh process; `ip -j` confirms the addresses themselves are still there.
        assert entry(lab.a, "va", "10.77.0.100") and entry(lab.a, "vc", "192.0.2.10")
        assert in_fresh_process(lab.a, "owned") == [
            ["va", "10.77.0.100/24"], ["va", "fd00:77::100/64"], ["vc", "192.0.2.10/32"],
        ]  # fmt: skip
        # The early clean-up (standard library only) removes exactly those.
        assert in_fresh_process(lab.a, "remove") == [
            ["va", "10.77.0.100/24"], ["va", "fd00:77::100/64"], ["vc", "192.0.2.10/32"],
        ]  # fmt: skip
        assert in_fresh_process(lab.a, "owned") == []
        assert entry(lab.a, "va", "10.77.0.100") is None
        assert entry(lab.a, "va", "10.77.0.60") is not None  # the admin's address stays
    finally:
        ip("addr", "del", "10.77.0.60/24", "dev", "va", ns=lab.a, check=False)
        ip("addr", "del", "192.0.2.10/32", "dev", "vc", ns=lab.a, check=False)


async def test_remove_leftovers_takes_marked_addresses_only(lab: Pair, rtnl: Rtnl) -> None:
    va_vip, vc_vip = ip_interface("10.77.0.100/24"), ip_interface("192.0.2.10/32")
    await rtnl.add("va", va_vip)
    await rtnl.add("vc", vc_vip)
    ip("addr", "add", "10.77.0.61/24", "dev", "va", ns=lab.a)  # configured as a VIP, not ours
    try:
        await eventually(lambda: len(rtnl.owned()) == 2, what="both VIPs marked")
        assert rtnl.owned("vc") == [("vc", vc_vip)]
        configured = [("va", ip_interface("10.77.0.61/24"))]
        assert sorted(await rtnl.remove_leftovers(configured)) == [("va", va_vip), ("vc", vc_vip)]
        assert rtnl.owned() == [] and entry(lab.a, "va", "10.77.0.100") is None
        # Where the kernel keeps marks, an unmarked address is someone else's.
        assert entry(lab.a, "va", "10.77.0.61") is not None
    finally:
        ip("addr", "del", "10.77.0.61/24", "dev", "va", ns=lab.a, check=False)


async def test_without_marks_the_configured_vips_are_the_leftovers(lab: Pair) -> None:
    # A kernel before 5.18 drops IFA_PROTO. Injected here: an adapter that neither sends
    # nor trusts the mark stores the address exactly as such a kernel would, unmarked.
    with entered(lab.a):
        crashed = await Rtnl.open(marks=False)
    vip, other = ip_interface("10.77.0.100/24"), ip_interface("10.77.0.101/24")
    try:
        await crashed.add("va", vip, label="va:vip")
        await crashed.add("va", other)
        crashed.close()  # killed
        assert in_fresh_process(lab.a, "owned") == []  # no mark to find
        assert in_fresh_process(lab.a, "remove") == []  # so the early clean-up finds nothing
        with entered(lab.a):
            restarted = await Rtnl.open(marks=False)
        try:
            # The restarted daemon's configuration still holds `vip` (on va), no longer
            # `other`: the configured one goes, the other stays (nothing says it is ours).
            assert await restarted.remove_leftovers([("va", vip)]) == [("va", vip)]
            assert entry(lab.a, "va", "10.77.0.100") is None
            assert entry(lab.a, "va", "10.77.0.101") is not None
        finally:
            restarted.close()
    finally:
        ip("addr", "flush", "dev", "va", "to", "10.77.0.100/31", ns=lab.a, check=False)


def test_marks_supported_by_kernel_release() -> None:
    assert marks_supported("5.18.0") and marks_supported("6.18.44-fc-v1252")
    assert not marks_supported("5.17.15") and not marks_supported("5.15.0-91-generic")
    assert not marks_supported("4.19.0-26-amd64")
    assert marks_supported("7.0") and marks_supported("weird")  # unparsable: assume new


async def test_primary_address_ignores_vips(lab: Pair, rtnl: Rtnl) -> None:
    assert rtnl.primary_address("va", socket.AF_INET) == IPv4Address(A_V4)
    assert rtnl.primary_address("va", 6) == IPv6Address(str(link_local(lab.a, "va")))
    # A VIP in a subnet of its own is "primary" to the kernel; on an interface without
    # addresses of its own it is the only one. Neither may become the advert source.
    await rtnl.add("va", ip_interface("198.51.100.7/32"))
    await rtnl.add("vc", ip_interface("198.51.100.8/32"))
    await eventually(lambda: len(rtnl.owned()) == 2, what="the kernel's events")
    assert rtnl.primary_address("va", 4) == IPv4Address(A_V4)
    assert rtnl.primary_address("vc", socket.AF_INET) is None
    assert rtnl.primary_address("nosuch0", socket.AF_INET) is None


async def test_interface_for_uses_non_vip_subnets(rtnl: Rtnl) -> None:
    assert rtnl.interface_for(ip_interface("10.77.0.100/24")) == "va"
    assert rtnl.interface_for(ip_interface("fd00:77::100/64")) == "va"
    assert rtnl.interface_for(IPv4Address("10.77.0.200")) == "va"
    assert rtnl.interface_for(ip_interface("203.0.113.1/24")) is None
    assert rtnl.interface_for(ip_interface("fe80::99/64")) is None  # every link has fe80::
    await rtnl.add("vc", ip_interface("203.0.113.5/24"))  # a VIP's subnet does not count
    await eventually(lambda: rtnl.owned("vc") != [], what="the kernel's event")
    assert rtnl.interface_for(ip_interface("203.0.113.1/24")) is None


async def test_ifindex_and_link_up(lab: Pair, rtnl: Rtnl) -> None:
    with entered(lab.a):
        assert rtnl.ifindex("va") == socket.if_nametoindex("va")
    assert rtnl.ifindex("nosuch0") is None
    assert rtnl.link_up("va") is True
    assert rtnl.link_up("nosuch0") is False
    ip("link", "set", "vd", "down", ns=lab.b)  # carrier lost on vc
    try:
        await eventually(lambda: not rtnl.link_up("vc"), what="vc without carrier")
    finally:
        ip("link", "set", "vd", "up", ns=lab.b)
    await eventually(lambda: rtnl.link_up("vc"), what="vc up again")


# --- one daemon per namespace ----------------------------------------------------------------


def test_namespace_lock_is_per_namespace_and_dies_with_its_holder(lab: Pair) -> None:
    with entered(lab.a):
        first, second = startup.NamespaceLock(), startup.NamespaceLock()
        assert first.acquire() and first.acquire()  # idempotent
        assert not second.acquire()  # a live vrrpd holds this namespace
    with entered(lab.b):
        elsewhere = startup.NamespaceLock()
        assert elsewhere.acquire()  # another namespace, another lock
    elsewhere.release()
    first.release()
    with entered(lab.a):
        assert second.acquire()
    second.release()
    # A holder killed with SIGKILL releases it: the kernel closes its socket.
    holder = subprocess.Popen(
        ["ip", "netns", "exec", lab.a, sys.executable, "-c",
         "from vrrpd.net.startup import NamespaceLock as L; import time; "
         "lock = L(); assert lock.acquire(); print(flush=True); time.sleep(60)"],
        cwd=REPO, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "\n"
        with entered(lab.a):
            assert not startup.NamespaceLock().acquire()
            assert startup.NamespaceLock.holder() == holder.pid  # named in the daemon's log
        holder.kill()
        holder.wait(5)
        with entered(lab.a):
            again = startup.NamespaceLock()
            assert again.acquire()
            again.release()
    finally:
        holder.kill()
        holder.wait(5)


# --- announcements -------------------------------------------------------------------------


def test_gratuitous_arp_frame_and_effect(lab: Pair) -> None:
    vip = "10.77.0.100"
    ip("addr", "add", f"{vip}/24", "dev", "va", ns=lab.a)
    # B believes the VIP is at some other MAC (the old master's): the GARP must fix that.
    ip("neigh", "replace", vip, "lladdr", "02:00:00:00:00:99", "nud", "stale", "dev", "vb",
       ns=lab.b)  # fmt: skip
    with entered(lab.a):
        announcer = Announcer()
    try:
        with Sniffer(lab.b, "vb") as sniffer:
            announcer.announce("va", IPv4Address(vip))
            frame = Ether(sniffer.wait(lambda f: ARP in Ether(f)))
    finally:
        announcer.close()
        ip("addr", "del", f"{vip}/24", "dev", "va", ns=lab.a)

    mac = mac_of(lab.a, "va")
    assert frame.dst == "ff:ff:ff:ff:ff:ff" and frame.src == mac
    arp = frame[ARP]
    assert (arp.hwtype, arp.ptype, arp.hwlen, arp.plen, arp.op) == (1, 0x0800, 6, 4, 1)
    assert (arp.hwsrc, arp.psrc, arp.pdst) == (mac, vip, vip)
    assert arp.hwdst == "ff:ff:ff:ff:ff:ff"  # as keepalived and arping -U
    neigh = [n for n in ip_json_neigh(lab.b) if n["dst"] == vip]
    assert neigh and neigh[0]["lladdr"] == mac


def ip_json_neigh(ns: str) -> list[dict[str, str]]:
    return list(json.loads(ip("-j", "neigh", "show", "dev", "vb", ns=ns) or "[]"))


def test_unsolicited_neighbor_advertisement_frame_and_effect(lab: Pair) -> None:
    vip = "fd00:77::100"
    ip("addr", "add", f"{vip}/64", "dev", "va", "nodad", ns=lab.a)
    ip("neigh", "replace", vip, "lladdr", "02:00:00:00:00:99", "nud", "stale", "dev", "vb",
       ns=lab.b)  # fmt: skip
    with entered(lab.a):
        announcer = Announcer()
    try:
        with Sniffer(lab.b, "vb") as sniffer:
            announcer.announce("va", ip_interface(f"{vip}/64"))
            frame = Ether(sniffer.wait(lambda f: ICMPv6ND_NA in Ether(f)))
    finally:
        announcer.close()
        ip("addr", "del", f"{vip}/64", "dev", "va", ns=lab.a)

    mac = mac_of(lab.a, "va")
    assert frame.dst == "33:33:00:00:00:01" and frame.src == mac
    ipv6 = frame[IPv6]
    assert (ipv6.dst, ipv6.hlim) == ("ff02::1", 255)
    assert ipv6.src == vip  # like the kernel's own unsolicited NA and keepalived
    na = frame[ICMPv6ND_NA]
    assert (na.R, na.S, na.O, na.tgt) == (0, 0, 1, vip)
    assert frame[ICMPv6NDOptDstLLAddr].lladdr == mac
    sent = na.cksum
    na.cksum = None
    assert IPv6(bytes(ipv6))[ICMPv6ND_NA].cksum == sent  # the kernel's checksum is right
    neigh = [n for n in ip_json_neigh(lab.b) if n["dst"] == vip]
    assert neigh and neigh[0]["lladdr"] == mac


def test_announce_errors_are_announce_errors(lab: Pair) -> None:
    with entered(lab.a):
        announcer = Announcer()
    try:
        with pytest.raises(AnnounceError) as raised:
            announcer.announce("nosuch0", IPv4Address("10.77.0.100"))
        assert raised.value.errno == errno.ENODEV
        with pytest.raises(AnnounceError):  # not on the interface: not a valid NA source
            announcer.announce("va", IPv6Address("fd00:77::123"))
        ip("link", "set", "vc", "down", ns=lab.a)
        try:
            with pytest.raises(AnnounceError) as raised:
                announcer.announce("vc", IPv4Address("10.78.0.100"))
            assert raised.value.errno == errno.ENETDOWN
        finally:
            ip("link", "set", "vc", "up", ns=lab.a)
        # The announcer still works after errors.
        announcer.announce("va", IPv4Address(A_V4))
    finally:
        announcer.close()


# --- link events ---------------------------------------------------------------------------


async def events_until(rtnl: Rtnl, wanted: LinkEvent, timeout: float = 3.0) -> list[LinkEvent]:
    """Collect what the adapter hands out (as the driver does on its wake-up) until `wanted`."""
    woken = asyncio.Event()
    rtnl.subscribe(woken.set)
    seen: list[LinkEvent] = []
    deadline = time.monotonic() + timeout
    while wanted not in seen and (left := deadline - time.monotonic()) > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(woken.wait(), left)
        woken.clear()
        seen += rtnl.poll()
    assert wanted in seen, f"{wanted} not among {seen}"
    return seen


def operational(ns: str, ifname: str) -> bool:
    return bool(link_info(ns, ifname)["operstate"] == "UP")


async def test_link_events_report_changes_only(lab: Pair) -> None:
    # Carrier changes reach operstate through the kernel's linkwatch, up to a second late:
    # start from a settled link.
    wait_for(lambda: operational(lab.a, "vc"), 3, "vc operationally up")
    with entered(lab.a):
        rtnl = await Rtnl.open()
    try:
        assert rtnl.is_up("vc") is True and rtnl.is_up("nosuch0") is None
        assert rtnl.poll() == []

        ip("link", "set", "vc", "down", ns=lab.a)  # admin down
        assert await events_until(rtnl, LinkEvent("vc", False)) == [LinkEvent("vc", False)]
        ip("link", "set", "vc", "up", ns=lab.a)
        assert await events_until(rtnl, LinkEvent("vc", True)) == [LinkEvent("vc", True)]

        ip("link", "set", "vd", "down", ns=lab.b)  # the peer goes away: carrier lost
        assert await events_until(rtnl, LinkEvent("vc", False)) == [LinkEvent("vc", False)]
        ip("link", "set", "vd", "up", ns=lab.b)
        assert await events_until(rtnl, LinkEvent("vc", True)) == [LinkEvent("vc", True)]

        ip("link", "set", "vc", "mtu", "1400", ns=lab.a)  # a change that is no up/down
        await asyncio.sleep(0.2)
        assert rtnl.poll() == []

        # A bridge reports its ports with AF_BRIDGE messages; leaving the bridge is an
        # AF_BRIDGE RTM_DELLINK. Neither is about vc itself.
        ip("link", "add", "vbr", "type", "bridge", ns=lab.a)
        ip("link", "set", "vc", "master", "vbr", ns=lab.a)
        ip("link", "set", "vc", "nomaster", ns=lab.a)
        ip("link", "del", "vbr", ns=lab.a)
        seen = await events_until(rtnl, LinkEvent("vbr", False))  # the bridge came and went
        await asyncio.sleep(0.2)
        seen += rtnl.poll()
        assert [e for e in seen if e.ifname == "vc"] == [] and rtnl.is_up("vc") is True

        ip("link", "add", "vx", "type", "veth", "peer", "name", "vy", ns=lab.a)
        await events_until(rtnl, LinkEvent("vx", False))  # new interfaces are reported
        ip("link", "set", "vx", "up", ns=lab.a)
        ip("link", "set", "vy", "up", ns=lab.a)
        await events_until(rtnl, LinkEvent("vx", True))
        ip("link", "del", "vx", ns=lab.a)
        await events_until(rtnl, LinkEvent("vx", False))  # deleted: down
        await eventually(lambda: rtnl.is_up("vx") is None, what="vx forgotten")
    finally:
        rtnl.close()
        ip("link", "set", "vc", "mtu", "1500", ns=lab.a, check=False)
        ip("link", "del", "vx", ns=lab.a, check=False)
        ip("link", "del", "vbr", ns=lab.a, check=False)


async def test_link_events_recover_from_overflow(
    lab: Pair, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="vrrpd")
    wait_for(lambda: operational(lab.a, "vc"), 3, "vc operationally up")
    with entered(lab.a):
        rtnl = await Rtnl.open(rcvbuf=1)  # the kernel's minimum: a few messages
    try:
        # The loop is not running while `ip` flaps the link: far more events than fit,
        # and the kernel drops them (ENOBUFS).
        for _ in range(20):
            ip("link", "set", "vc", "down", ns=lab.a)
            ip("link", "set", "vc", "up", ns=lab.a)
        ip("link", "set", "vc", "down", ns=lab.a)
        seen = await events_until(rtnl, LinkEvent("vc", False))
        assert seen[-1] == LinkEvent("vc", False) and rtnl.is_up("vc") is False
        assert "overflowed" in caplog.text  # the resync path ran, not the normal one
    finally:
        rtnl.close()
        ip("link", "set", "vc", "up", ns=lab.a)
