"""Takeover announcements: `Announcer` sends one gratuitous ARP (IPv4) or one unsolicited
Neighbor Advertisement (IPv6) for a VIP, so that hosts and switches on the segment move
their ARP / neighbour / MAC-table entries to the new master at once.

Frames are built with struct (no scapy at runtime). The caller (the driver) decides how
many to send and when (keepalived: 5 on takeover and 5 more after vrrp_garp_master_delay).
"""

from __future__ import annotations

import errno
import fcntl
import socket
import struct
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface

from vrrpd.limits import IPAddress, IPInterface

ETH_P_ARP = 0x0806
ARPHRD_ETHER = 1
ARPOP_REQUEST = 1
BROADCAST_MAC = b"\xff" * 6

ND_NEIGHBOR_ADVERT = 136
ND_NA_FLAG_OVERRIDE = 0x20000000  # R=0x80000000 and S=0x40000000 stay clear
ND_OPT_TARGET_LINKADDR = 2
ALL_NODES = IPv6Address("ff02::1")
ND_HOP_LIMIT = 255  # RFC 4861 §7.1.2: receivers drop NAs with any other hop limit

ICMP6_FILTER = 1  # linux/icmpv6.h, option level IPPROTO_ICMPV6
SIOCGIFHWADDR = 0x8927
SIOCGIFINDEX = 0x8933
_IFREQ = struct.Struct("16s24s")  # struct ifreq: name, then a 24-byte union


class AnnounceError(OSError):
    """An announcement could not be sent; `errno` says why when the kernel said so."""

    def __init__(self, message: str, errno_: int | None = None) -> None:
        # An OSError, so that callers guarding I/O with `except OSError` catch it too.
        if errno_ is None:
            super().__init__(message)
        else:
            super().__init__(errno_, message)


def garp_frame(mac: bytes, address: IPv4Address) -> bytes:
    """Ethernet broadcast ARP request with sender = target = the VIP (RFC 5227 §2.3's
    "ARP Announcement"; keepalived sends requests, which every stack accepts)."""
    ethernet = BROADCAST_MAC + mac + struct.pack("!H", ETH_P_ARP)
    arp = struct.pack("!HHBBH", ARPHRD_ETHER, 0x0800, 6, 4, ARPOP_REQUEST)
    # Target hardware address: receivers ignore it. RFC 5227 suggests zero, the Linux
    # kernel sends zero; keepalived and arping -U send broadcast, and so do we, so that a
    # capture of our takeover looks like keepalived's.
    arp += mac + address.packed + BROADCAST_MAC + address.packed
    return ethernet + arp


def neighbor_advert(mac: bytes, address: IPv6Address) -> bytes:
    """ICMPv6 unsolicited NA (RFC 4861 §7.2.6): Override set so caches replace the old
    master's MAC, Solicited clear, Router clear; target link-layer address option.
    The checksum field is zero: the kernel fills it in for ICMPv6 raw sockets."""
    header = struct.pack("!BBHI", ND_NEIGHBOR_ADVERT, 0, 0, ND_NA_FLAG_OVERRIDE)
    option = struct.pack("!BB", ND_OPT_TARGET_LINKADDR, 1) + mac  # length in 8-octet units
    return header + address.packed + option


class Announcer:
    """Sends GARP / unsolicited NA. Opens two sockets at construction (so a missing
    CAP_NET_RAW shows at start-up, not at the first takeover) and keeps them, shared by
    all interfaces: a packet socket that receives nothing (protocol 0) and an ICMPv6
    socket whose receive filter blocks everything. The interface's MAC and index are read
    at each announcement, in the sockets' own namespace, so a re-created interface or a
    changed MAC never leaves a stale cache behind."""

    def __init__(self) -> None:
        try:
            # Protocol 0: never bound to a protocol, so nothing is queued for it; each
            # sendto names interface and EtherType.
            self._packet = socket.socket(
                socket.AF_PACKET, socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC, 0
            )
        except OSError as exc:
            raise AnnounceError(f"packet socket: {exc.strerror}", exc.errno) from exc
        self._icmp6: socket.socket | None = None
        try:
            self._icmp6 = _open_icmp6()
        except OSError as exc:
            if exc.errno != errno.EAFNOSUPPORT:
                self._packet.close()
                raise AnnounceError(f"ICMPv6 socket: {exc.strerror}", exc.errno) from exc
            # A host booted with ipv6.disable=1 still announces its IPv4 VIPs.

    def close(self) -> None:
        self._packet.close()
        if self._icmp6 is not None:
            self._icmp6.close()

    def announce(self, ifname: str, address: IPAddress | IPInterface) -> None:
        """Send one announcement for `address` out of `ifname`; AnnounceError on failure."""
        ip = address.ip if isinstance(address, IPv4Interface | IPv6Interface) else address
        try:
            mac = self._hardware_address(ifname)
            if isinstance(ip, IPv4Address):
                self._packet.sendto(garp_frame(mac, ip), (ifname, ETH_P_ARP))
            else:
                self._send_na(ifname, mac, ip)
        except AnnounceError:
            raise
        except OSError as exc:
            kind = "gratuitous ARP" if ip.version == 4 else "neighbor advertisement"
            raise AnnounceError(
                f"{kind} for {ip} on {ifname}: {exc.strerror or exc}", exc.errno
            ) from exc

    def _ioctl(self, ifname: str, request: int) -> bytes:
        name = ifname.encode()
        if not name or len(name) >= 16:
            raise AnnounceError(f"invalid interface name {ifname!r}", errno.EINVAL)
        try:
            reply = fcntl.ioctl(self._packet.fileno(), request, _IFREQ.pack(name, b""))
        except OSError as exc:
            if exc.errno == errno.ENODEV:
                raise AnnounceError(f"no interface {ifname!r}", exc.errno) from exc
            raise
        union: bytes = _IFREQ.unpack(reply)[1]
        return union

    def _hardware_address(self, ifname: str) -> bytes:
        data = self._ioctl(ifname, SIOCGIFHWADDR)
        hatype = struct.unpack_from("=H", data)[0]
        if hatype != ARPHRD_ETHER:
            raise AnnounceError(
                f"{ifname} is not an Ethernet interface (ARPHRD {hatype})", errno.EPFNOSUPPORT
            )
        return data[2:8]

    def _send_na(self, ifname: str, mac: bytes, address: IPv6Address) -> None:
        ifindex = struct.unpack_from("=i", self._ioctl(ifname, SIOCGIFINDEX))[0]
        # Source = the VIP itself, as the kernel's own unsolicited NA (ndisc_send_unsol_na)
        # and keepalived 2.2.7 do (captured). RFC 4861 leaves it open; receivers update
        # their cache from target and option, not from the source. It needs the VIP on
        # the interface, which is also the only time announcing it is right; the VIP is
        # added with NODAD, so it is a valid source at once.
        pktinfo = struct.pack("=16sI", address.packed, ifindex)
        if self._icmp6 is None:
            raise AnnounceError("IPv6 is disabled on this host", errno.EAFNOSUPPORT)
        self._icmp6.sendmsg(
            [neighbor_advert(mac, address)],
            [(socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, pktinfo)],
            0,
            (str(ALL_NODES), 0, 0, ifindex),
        )


def _open_icmp6() -> socket.socket:
    sock = socket.socket(
        socket.AF_INET6,
        socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC,
        socket.IPPROTO_ICMPV6,
    )
    try:
        # A raw ICMPv6 socket would otherwise queue every ICMPv6 message the host
        # receives; we only send.
        sock.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, b"\xff" * 32)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, ND_HOP_LIMIT)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, ND_HOP_LIMIT)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
    except BaseException:
        sock.close()
        raise
    return sock
