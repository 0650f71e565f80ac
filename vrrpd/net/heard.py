"""Announcements heard: gratuitous ARP / ARP replies and unsolicited Neighbor Advertisements
that another host sends for an address, so a master learns that someone else claims its VIP.

`AnnouncementListener` opens, in the daemon's network namespace, an AF_PACKET socket bound to
the ARP EtherType (every interface) and an ICMPv6 socket whose filter passes Neighbor
Advertisements only. It reports (interface, address, sender MAC) for every frame that
another MAC sent; what is one of our VIPs, and whether we hold it, the driver decides.
Frames we sent ourselves (PACKET_OUTGOING, or our interface's MAC) are left out.
`recheck` asks who has an IPv4 address now (an RFC 5227 ARP probe: sender address 0.0.0.0,
so no cache learns anything from it); the holder's kernel answers, and the answer is heard
like any other claim.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from vrrpd.limits import IPAddress
from vrrpd.net.announce import (
    ARPHRD_ETHER,
    ARPOP_REQUEST,
    BROADCAST_MAC,
    ETH_P_ARP,
    ICMP6_FILTER,
    ND_NEIGHBOR_ADVERT,
    ND_OPT_TARGET_LINKADDR,
    SIOCGIFHWADDR,
)

PACKET_OUTGOING = 4  # linux/if_packet.h: a frame this host sent, seen on the way out
ARPOP_REPLY = 2
_ARP = struct.Struct("!HHBBH6s4s6s4s")  # Ethernet/IPv4 ARP, RFC 826
_IFREQ = struct.Struct("16s24s")
NA_HEADER = 24  # type, code, checksum, flags, reserved, target address


@dataclass(frozen=True, slots=True)
class Heard:
    ifname: str
    address: IPAddress  # the address the frame claims
    mac: str  # who claims it, aa:bb:cc:dd:ee:ff


def format_mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def parse_arp(frame: bytes) -> tuple[IPv4Address, bytes] | None:
    """(sender address, sender MAC) of an Ethernet/IPv4 ARP request or reply that claims an
    address: a gratuitous ARP, or an answer for it. A probe (sender 0.0.0.0) claims none."""
    if len(frame) < _ARP.size:
        return None
    htype, ptype, hlen, plen, op, sha, spa, _tha, _tpa = _ARP.unpack_from(frame)
    if (htype, ptype, hlen, plen) != (ARPHRD_ETHER, 0x0800, 6, 4) or op not in (1, ARPOP_REPLY):
        return None
    sender = IPv4Address(spa)
    return None if sender.is_unspecified else (sender, sha)


def parse_na(message: bytes) -> tuple[IPv6Address, bytes] | None:
    """(target, target link-layer address) of an ICMPv6 Neighbor Advertisement that says
    which MAC has the target (RFC 4861 §4.4); None without that option."""
    if len(message) < NA_HEADER or message[0] != ND_NEIGHBOR_ADVERT:
        return None
    target = IPv6Address(message[8:24])
    offset = NA_HEADER
    while offset + 2 <= len(message):
        kind, units = message[offset], message[offset + 1]
        if units == 0:
            return None  # RFC 4861 §4.6: a zero length is invalid; the kernel drops it too
        if kind == ND_OPT_TARGET_LINKADDR and units == 1 and offset + 8 <= len(message):
            return target, message[offset + 2 : offset + 8]
        offset += 8 * units
    return None


def _na_only_filter() -> bytes:
    """ICMP6_FILTER: a bit set blocks that type (linux/icmpv6.h ICMP6_FILTER_SETBLOCK)."""
    words = [0xFFFFFFFF] * 8
    words[ND_NEIGHBOR_ADVERT >> 5] &= ~(1 << (ND_NEIGHBOR_ADVERT & 31))
    return struct.pack("=8I", *words)


class AnnouncementListener:
    """The sockets, their reader on the event loop, and what they heard since `poll`."""

    def __init__(self) -> None:
        self._arp = socket.socket(
            socket.AF_PACKET,
            socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC,
            socket.htons(ETH_P_ARP),
        )
        self._na: socket.socket | None = None
        try:
            self._na = socket.socket(
                socket.AF_INET6,
                socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC,
                socket.IPPROTO_ICMPV6,
            )
            self._na.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, _na_only_filter())
            self._na.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
        except OSError:
            if self._na is not None:
                self._na.close()
            self._na = None  # IPv6 disabled on this host: ARP still tells
        self._heard: list[Heard] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def subscribe(self, on_heard: Callable[[], None]) -> None:
        """Read on the running loop; call `on_heard` when there is something to `poll`."""
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._arp.fileno(), self._read_arp, on_heard)
        if self._na is not None:
            self._loop.add_reader(self._na.fileno(), self._read_na, on_heard)

    def recheck(self, ifname: str, address: IPAddress) -> None:
        """Ask on `ifname` who has `address` (IPv4 only; IPv6 claims are not re-checked)."""
        mac = self._own_mac(ifname)
        if address.version != 4 or mac is None:
            return
        probe = _ARP.pack(ARPHRD_ETHER, 0x0800, 6, 4, ARPOP_REQUEST, mac, bytes(4), bytes(6),
                          address.packed)  # fmt: skip
        self._arp.sendto(probe, (ifname, ETH_P_ARP, 0, ARPHRD_ETHER, BROADCAST_MAC))

    def poll(self) -> list[Heard]:
        heard, self._heard = self._heard, []
        return heard

    def close(self) -> None:
        for sock in (self._arp, self._na):
            if sock is None:
                continue
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(sock.fileno())
            sock.close()

    def _read_arp(self, on_heard: Callable[[], None]) -> None:
        before = len(self._heard)
        for _ in range(64):  # a storm must not starve VRRP: the rest waits for the next turn
            try:
                frame, (ifname, _proto, pkttype, _hatype, _addr) = self._arp.recvfrom(2048)
            except BlockingIOError:
                break
            except OSError:
                break  # an interface gone under the frame: nothing to learn from it
            if pkttype == PACKET_OUTGOING or (claim := parse_arp(frame)) is None:
                continue
            self._keep(ifname, claim[0], claim[1])
        if len(self._heard) > before:
            on_heard()

    def _read_na(self, on_heard: Callable[[], None]) -> None:
        assert self._na is not None
        before = len(self._heard)
        for _ in range(64):
            try:
                message, ancillary, _flags, _source = self._na.recvmsg(2048, 64)
            except BlockingIOError:
                break
            except OSError:
                break
            claim = parse_na(message)
            ifindex = next(
                (
                    struct.unpack_from("=16sI", data)[1]
                    for level, kind, data in ancillary
                    if (level, kind) == (socket.IPPROTO_IPV6, socket.IPV6_PKTINFO)
                ),
                None,
            )
            if claim is None or ifindex is None:
                continue
            with contextlib.suppress(OSError):
                self._keep(socket.if_indextoname(ifindex), claim[0], claim[1])
        if len(self._heard) > before:
            on_heard()

    def _keep(self, ifname: str, address: IPAddress, mac: bytes) -> None:
        if mac == self._own_mac(ifname):
            return  # our own answer, looped back on a bridge or a bond
        self._heard.append(Heard(ifname, address, format_mac(mac)))

    def _own_mac(self, ifname: str) -> bytes | None:
        # Read at each frame (a cache would go stale on a MAC change); frames that claim
        # an address are rare next to the adverts.
        try:
            reply = fcntl.ioctl(
                self._arp.fileno(), SIOCGIFHWADDR, _IFREQ.pack(ifname.encode()[:15], b"")
            )
        except OSError:
            return None
        return bytes(_IFREQ.unpack(reply)[1][2:8])
