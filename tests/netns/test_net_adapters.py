"""The net adapters (transport, addresses, announce, links) against a real kernel: two
network namespaces joined by veth pairs; the adapters run inside namespace A (opened via
setns on the test thread, see netns_util), peers and sniffers in namespace B. scapy is
the oracle for frames and checksums.

Topology (fresh namespaces, deleted in teardown even when a test fails):

    ns A  va 10.77.0.1/24 fd00:77::1/64  ====  vb 10.77.0.2/24 fd00:77::2/64  ns B
          vc (no addresses; link tests)  ====  vd
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import functools
import logging
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_interface
from pathlib import Path

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

from vrrpd.net.addresses import VRRPD_ADDR_PROTO, AddressError, AddressManager, IPInterface
from vrrpd.net.announce import AnnounceError, Announcer
from vrrpd.net.links import LinkEvent, LinkMonitor
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


@pytest.fixture
def manager(lab: Pair) -> Iterator[AddressManager]:
    with entered(lab.a):
        mgr = AddressManager()
    try:
        yield mgr
    finally:
        mgr.close()
        with entered(lab.a), AddressManager() as cleanup:
            cleanup.remove_leftovers()  # whatever a failing test left behind


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


def test_add_remove_idempotent_with_label_and_nodad(lab: Pair, manager: AddressManager) -> None:
    v4, v6 = ip_interface("10.77.0.100/24"), ip_interface("fd00:77::100/64")
    assert manager.add("va", v4, label="va:vip") is True
    assert manager.add("va", v4, label="va:vip") is False  # already there: fine
    assert manager.add("va", v6) is True
    assert manager.has("va", v4) and manager.has("va", v6)
    assert not manager.has("va", ip_interface("10.77.0.100/25"))

    on_v4 = entry(lab.a, "va", "10.77.0.100")
    on_v6 = entry(lab.a, "va", "fd00:77::100")
    assert on_v4 is not None and on_v4["label"] == "va:vip" and on_v4["prefixlen"] == 24
    assert on_v6 is not None and on_v6.get("nodad") and not on_v6.get("tentative")

    assert manager.remove("va", v4) is True
    assert manager.remove("va", v4) is False  # already gone: fine
    assert manager.remove("va", v6) is True
    assert manager.remove("nosuch0", v6) is False
    assert entry(lab.a, "va", "10.77.0.100") is None
    assert entry(lab.a, "va", "fd00:77::100") is None


def test_removing_one_vip_keeps_another_in_the_same_subnet(
    lab: Pair, manager: AddressManager
) -> None:
    # 10.99.0.0/24 is no subnet of va's own: the first VIP is primary, the second secondary.
    first, second = ip_interface("10.99.0.1/24"), ip_interface("10.99.0.2/24")
    with entered(lab.a):  # the sysctl is set through /proc of the caller's namespace
        assert manager.add("va", first) and manager.add("va", second)
    assert manager.remove("va", first)
    assert entry(lab.a, "va", "10.99.0.2") is not None, "the kernel deleted the secondary"
    assert manager.remove("va", second)


def test_add_rejects_what_cannot_work(manager: AddressManager) -> None:
    with pytest.raises(AddressError, match="label"):
        manager.add("va", ip_interface("10.77.0.101/24"), label="eth0:vip")
    with pytest.raises(AddressError) as raised:
        manager.add("nosuch0", ip_interface("10.77.0.101/24"))
    assert raised.value.errno == errno.ENODEV


OWNED_SNIPPET = """
import json, sys
from vrrpd.net.addresses import AddressManager
with AddressManager() as m:
    found = m.remove_leftovers() if sys.argv[1] == "remove" else m.owned()
print(json.dumps([[name, str(address)] for name, address in found]))
"""


def in_fresh_process(ns: str, action: str) -> list[list[str]]:
    """What a restarted daemon sees: a new process in the namespace, no state carried."""
    result = subprocess.run(
        ["ip", "netns", "exec", ns, sys.executable, "-c", OWNED_SNIPPET, action],
        capture_output=True, text=True, cwd=REPO, timeout=60, check=True,
    )  # fmt: skip
    import json

    return list(json.loads(result.stdout))


def test_proto_mark_lets_a_restarted_daemon_find_its_leftovers(
    lab: Pair, manager: AddressManager
) -> None:
    manager.add("va", ip_interface("10.77.0.100/24"))
    manager.add("va", ip_interface("fd00:77::100/64"))
    manager.add("vc", ip_interface("192.0.2.10/32"))
    ip("addr", "add", "10.77.0.60/24", "dev", "va", ns=lab.a)  # an admin's, not ours
    manager.close()  # as after kill -9: nothing of the first daemon survives but the kernel
    try:
        # iproute2 6.1 does not print the address protocol, so the kernel's word is read
        # by a fresh process; `ip -j` confirms the addresses themselves are still there.
        assert entry(lab.a, "va", "10.77.0.100") and entry(lab.a, "vc", "192.0.2.10")
        assert sorted(in_fresh_process(lab.a, "owned")) == [
            ["va", "10.77.0.100/24"], ["va", "fd00:77::100/64"], ["vc", "192.0.2.10/32"],
        ]  # fmt: skip
        assert len(in_fresh_process(lab.a, "remove")) == 3
        assert in_fresh_process(lab.a, "owned") == []
        assert entry(lab.a, "va", "10.77.0.100") is None
        assert entry(lab.a, "va", "10.77.0.60") is not None  # the admin's address stays
    finally:
        ip("addr", "del", "10.77.0.60/24", "dev", "va", ns=lab.a, check=False)
        ip("addr", "del", "192.0.2.10/32", "dev", "vc", ns=lab.a, check=False)


def test_owned_filters_and_remove_leftovers_by_interface(
    lab: Pair, manager: AddressManager
) -> None:
    va_vip, vc_vip = ip_interface("10.77.0.100/24"), ip_interface("192.0.2.10/32")
    manager.add("va", va_vip)
    manager.add("vc", vc_vip)
    assert manager.owned("vc") == [("vc", vc_vip)]
    assert manager.remove_leftovers(["vc"]) == [("vc", vc_vip)]
    assert manager.owned() == [("va", va_vip)]
    assert all(info.proto == VRRPD_ADDR_PROTO for info in manager.addresses("va") if info.ours)


def test_primary_address_ignores_vips(lab: Pair, manager: AddressManager) -> None:
    assert manager.primary_address("va", socket.AF_INET) == IPv4Address(A_V4)
    assert manager.primary_address("va", socket.AF_INET6) == IPv6Address(
        str(link_local(lab.a, "va"))
    )
    # A VIP in a subnet of its own is "primary" to the kernel; on an interface without
    # addresses of its own it is the only one. Neither may become the advert source.
    manager.add("va", ip_interface("198.51.100.7/32"))
    manager.add("vc", ip_interface("198.51.100.8/32"))
    assert manager.primary_address("va", socket.AF_INET) == IPv4Address(A_V4)
    assert manager.primary_address("vc", socket.AF_INET) is None
    assert manager.primary_address("nosuch0", socket.AF_INET) is None


def test_interface_for_uses_non_vip_subnets(manager: AddressManager) -> None:
    assert manager.interface_for(ip_interface("10.77.0.100/24")) == "va"
    assert manager.interface_for(ip_interface("fd00:77::100/64")) == "va"
    assert manager.interface_for(IPv4Address("10.77.0.200")) == "va"
    assert manager.interface_for(ip_interface("203.0.113.1/24")) is None
    assert manager.interface_for(ip_interface("fe80::99/64")) is None  # every link has fe80::
    manager.add("vc", ip_interface("203.0.113.5/24"))  # a VIP's subnet does not count
    assert manager.interface_for(ip_interface("203.0.113.1/24")) is None


def test_ifindex_and_link_up(lab: Pair, manager: AddressManager) -> None:
    with entered(lab.a):
        assert manager.ifindex("va") == socket.if_nametoindex("va")
    assert manager.ifindex("nosuch0") is None
    assert manager.link_up("va") is True
    assert manager.link_up("nosuch0") is False
    ip("link", "set", "vd", "down", ns=lab.b)  # carrier lost on vc
    try:
        wait_for(lambda: not manager.link_up("vc"), 3, "vc without carrier")
    finally:
        ip("link", "set", "vd", "up", ns=lab.b)
    wait_for(lambda: manager.link_up("vc"), 3, "vc up again")


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
    import json

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


# --- link monitor --------------------------------------------------------------------------


def events_until(monitor: LinkMonitor, wanted: LinkEvent, timeout: float = 3.0) -> list[LinkEvent]:
    """Poll as the driver would (on readability) until `wanted` shows up; all events seen."""
    seen: list[LinkEvent] = []
    deadline = time.monotonic() + timeout
    while wanted not in seen and (left := deadline - time.monotonic()) > 0:
        if select.select([monitor.fileno()], [], [], left)[0]:
            seen += monitor.poll()
    assert wanted in seen, f"{wanted} not among {seen}"
    return seen


def operational(ns: str, ifname: str) -> bool:
    return bool(link_info(ns, ifname)["operstate"] == "UP")


def test_link_monitor_reports_changes_only(lab: Pair) -> None:
    # Carrier changes reach operstate through the kernel's linkwatch, up to a second late:
    # start from a settled link.
    wait_for(lambda: operational(lab.a, "vc"), 3, "vc operationally up")
    with entered(lab.a):
        monitor = LinkMonitor()
    try:
        assert monitor.is_up("vc") is True and monitor.is_up("nosuch0") is None
        assert monitor.poll() == []

        ip("link", "set", "vc", "down", ns=lab.a)  # admin down
        assert events_until(monitor, LinkEvent("vc", False)) == [LinkEvent("vc", False)]
        ip("link", "set", "vc", "up", ns=lab.a)
        assert events_until(monitor, LinkEvent("vc", True)) == [LinkEvent("vc", True)]

        ip("link", "set", "vd", "down", ns=lab.b)  # the peer goes away: carrier lost
        assert events_until(monitor, LinkEvent("vc", False)) == [LinkEvent("vc", False)]
        ip("link", "set", "vd", "up", ns=lab.b)
        assert events_until(monitor, LinkEvent("vc", True)) == [LinkEvent("vc", True)]

        ip("link", "set", "vc", "mtu", "1400", ns=lab.a)  # a change that is no up/down
        time.sleep(0.2)
        assert monitor.poll() == []

        # A bridge reports its ports with AF_BRIDGE messages; leaving the bridge is an
        # AF_BRIDGE RTM_DELLINK. Neither is about vc itself.
        ip("link", "add", "vbr", "type", "bridge", ns=lab.a)
        ip("link", "set", "vc", "master", "vbr", ns=lab.a)
        ip("link", "set", "vc", "nomaster", ns=lab.a)
        ip("link", "del", "vbr", ns=lab.a)
        seen = events_until(monitor, LinkEvent("vbr", False))  # the bridge came and went
        time.sleep(0.2)
        seen += monitor.poll()
        assert [e for e in seen if e.ifname == "vc"] == [] and monitor.is_up("vc") is True

        ip("link", "add", "vx", "type", "veth", "peer", "name", "vy", ns=lab.a)
        events_until(monitor, LinkEvent("vx", False))  # new interfaces are reported
        ip("link", "set", "vx", "up", ns=lab.a)
        ip("link", "set", "vy", "up", ns=lab.a)
        events_until(monitor, LinkEvent("vx", True))
        ip("link", "del", "vx", ns=lab.a)
        events_until(monitor, LinkEvent("vx", False))  # deleted: down
        assert monitor.is_up("vx") is None
    finally:
        monitor.close()
        ip("link", "set", "vc", "mtu", "1500", ns=lab.a, check=False)
        ip("link", "del", "vx", ns=lab.a, check=False)
        ip("link", "del", "vbr", ns=lab.a, check=False)


def test_link_monitor_recovers_from_overflow(lab: Pair, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="vrrpd.net.links")
    wait_for(lambda: operational(lab.a, "vc"), 3, "vc operationally up")
    with entered(lab.a):
        monitor = LinkMonitor(rcvbuf=1)  # the kernel's minimum: a few messages
    try:
        for _ in range(20):  # far more events than fit: the kernel drops them (ENOBUFS)
            ip("link", "set", "vc", "down", ns=lab.a)
            ip("link", "set", "vc", "up", ns=lab.a)
        ip("link", "set", "vc", "down", ns=lab.a)
        seen = events_until(monitor, LinkEvent("vc", False))
        assert seen[-1] == LinkEvent("vc", False) and monitor.is_up("vc") is False
        assert "overflowed" in caplog.text  # the resync path ran, not the normal one
    finally:
        monitor.close()
        ip("link", "set", "vc", "up", ns=lab.a)


def test_adapters_work_inside_a_running_event_loop(lab: Pair) -> None:
    """The driver calls everything from its asyncio loop: nothing here may run a loop of
    its own (pyroute2 0.9's sync IPRoute does, and fails there)."""

    async def scenario() -> tuple[list[LinkEvent], list[tuple[str, IPInterface]]]:
        with entered(lab.a):
            monitor = LinkMonitor()
            manager = AddressManager()
        loop = asyncio.get_running_loop()
        got: asyncio.Queue[list[LinkEvent]] = asyncio.Queue()
        loop.add_reader(monitor.fileno(), lambda: got.put_nowait(monitor.poll()))
        try:
            manager.add("va", ip_interface("10.77.0.100/24"))
            owned = list(manager.owned("va"))
            manager.remove("va", ip_interface("10.77.0.100/24"))
            ip("link", "set", "vc", "down", ns=lab.a)
            events: list[LinkEvent] = []
            while LinkEvent("vc", False) not in events:
                events += await asyncio.wait_for(got.get(), 3)
            return events, owned
        finally:
            loop.remove_reader(monitor.fileno())
            monitor.close()
            manager.close()
            ip("link", "set", "vc", "up", ns=lab.a)

    events, owned = asyncio.run(scenario())
    assert owned == [("va", ip_interface("10.77.0.100/24"))]
    assert LinkEvent("vc", False) in events
