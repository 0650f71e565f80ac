"""VRRP advertisement transport: `VrrpSocket`, one raw IP protocol 112 socket per
(interface, address family), shared by every VRRP instance on that interface.

The socket only moves bytes: the codec (vrrpd.vrrp.packet) builds and checks the VRRP
message, the driver demultiplexes received packets by VRID. It is synchronous and
non-blocking; the asyncio driver watches `fileno()` with loop.add_reader and calls
`receive()`, which drains everything pending.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
import struct
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address

from vrrpd.limits import IPAddress
from vrrpd.vrrp.packet import IPPROTO_VRRP, MULTICAST_V4, MULTICAST_V6, VRRP_TTL

log = logging.getLogger(__name__)


# Not all of these are exported by Python's socket module (values from linux/in.h, in6.h).
IP_PKTINFO = 8
IP_MULTICAST_ALL = 49
IPV6_MULTICAST_ALL = 29

# DSCP CS6 (network control) in the TOS / traffic class byte, as keepalived sends adverts:
# switches that prioritise control traffic keep adverts flowing when the link is congested.
TOS_CS6 = 0xC0

# Largest VRRP message: v3 IPv6 with 255 addresses is 8 + 255 * 16 = 4088 bytes; with an
# IPv4 header of up to 60 bytes. Anything longer is not VRRP and is reported truncated.
_RECV_SIZE = 8192
_ANCILLARY_SIZE = socket.CMSG_SPACE(4) + socket.CMSG_SPACE(20) + 64

# ICMP errors (a unicast peer without a VRRP listener answers "protocol unreachable") are
# not reported to us: Linux queues them on a raw socket only if it is connected or has
# IP_RECVERR, and this one has neither, so sends stay independent of each other.


class TransportError(OSError):
    """Opening or sending failed; `errno` says why. Measured on kernel 6.18 (veth):

    - ENETUNREACH: the interface is administratively down (nothing can leave it);
    - ENODEV: the interface is gone, or was deleted and re-created under the same name;
      the socket is bound to the old one for good: close it and open a new one
      (`interface_gone`);
    - ENOBUFS: the device queue is full; EADDRNOTAVAIL / EINVAL: the pinned source is not
      an address of the interface (or the IPv6 link-local is still tentative).

    Loss of carrier alone is no error: the kernel accepts and drops the packet.
    """

    def __init__(self, message: str, errno_: int | None = None) -> None:
        # An OSError, so that callers guarding I/O with `except OSError` catch it too.
        if errno_ is None:
            super().__init__(message)
        else:
            super().__init__(errno_, message)

    @property
    def interface_gone(self) -> bool:
        return self.errno in (errno.ENODEV, errno.ENXIO)


@dataclass(frozen=True, slots=True)
class ReceivedPacket:
    """One datagram: the VRRP message and what the IP header said about it."""

    payload: bytes
    source: IPAddress
    destination: IPAddress
    ttl: int  # IPv4 TTL or IPv6 hop limit; RFC 5798 §7.1 drops anything but 255


def parse_ipv4(datagram: bytes) -> ReceivedPacket | None:
    """An IPv4 raw socket delivers the IP header too: take TTL, addresses and payload.

    None for anything that is not a whole, unfragmented IPv4 datagram of protocol 112.
    """
    if len(datagram) < 20:
        return None
    version_ihl, _tos, total_length = struct.unpack_from("!BBH", datagram)
    header_length = (version_ihl & 0x0F) * 4
    if version_ihl >> 4 != 4 or header_length < 20 or len(datagram) < header_length:
        return None
    fragment = struct.unpack_from("!H", datagram, 6)[0]
    if fragment & 0x3FFF:  # more-fragments flag or an offset: VRRP is never fragmented
        return None
    ttl, protocol = datagram[8], datagram[9]
    if protocol != IPPROTO_VRRP:
        return None
    # Linux hands raw sockets the header as received (total length in network order); a
    # datagram shorter than it claims is truncated junk, trailing bytes are link padding.
    if total_length < header_length or total_length > len(datagram):
        return None
    return ReceivedPacket(
        payload=datagram[header_length:total_length],
        source=IPv4Address(datagram[12:16]),
        destination=IPv4Address(datagram[16:20]),
        ttl=ttl,
    )


def parse_ipv6(
    payload: bytes, source: str, ancillary: list[tuple[int, int, bytes]]
) -> ReceivedPacket | None:
    """An IPv6 raw socket delivers only the payload; hop limit and destination come from
    the IPV6_HOPLIMIT / IPV6_PKTINFO control messages. None if either is missing."""
    hop_limit: int | None = None
    destination: IPv6Address | None = None
    for level, kind, data in ancillary:
        if level != socket.IPPROTO_IPV6:
            continue
        if kind == socket.IPV6_HOPLIMIT and len(data) >= 4:
            hop_limit = struct.unpack("=i", data[:4])[0]
        elif kind == socket.IPV6_PKTINFO and len(data) >= 20:
            destination = IPv6Address(data[:16])
    if hop_limit is None or destination is None:
        return None
    try:
        # Python appends the scope to link-local sources ("fe80::1%eth0").
        origin = IPv6Address(source.split("%", 1)[0])
    except ValueError:
        return None
    return ReceivedPacket(payload, origin, destination, hop_limit)


class VrrpSocket:
    """Raw VRRP socket bound to one interface, for one address family."""

    def __init__(self, sock: socket.socket, ifname: str, ifindex: int, family: int) -> None:
        self._sock = sock
        self.ifname = ifname
        self.ifindex = ifindex
        self.family = family
        self.malformed = 0  # datagrams dropped by receive() as not parseable (for metrics)

    @classmethod
    def open(cls, ifname: str, family: int, *, multicast: bool) -> VrrpSocket:
        """Open, bind to the interface and, with `multicast`, join 224.0.0.18 / ff02::12.
        `family` is AF_INET / AF_INET6 or the IP version 4 / 6.

        A socket opened with multicast=False still sends to the group if asked; it only
        does not receive it.
        """
        family = {4: socket.AF_INET, 6: socket.AF_INET6}.get(family, family)
        if family not in (socket.AF_INET, socket.AF_INET6):
            raise ValueError(f"address family {family}: AF_INET / AF_INET6 (or 4 / 6)")
        try:
            ifindex = socket.if_nametoindex(ifname)
        except OSError as exc:
            raise TransportError(f"no interface {ifname!r}", errno.ENODEV) from exc
        try:
            sock = socket.socket(
                family, socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC, IPPROTO_VRRP
            )
        except OSError as exc:
            raise TransportError(f"raw VRRP socket: {exc.strerror}", exc.errno) from exc
        try:
            # SO_BINDTODEVICE: receive only what arrived on this interface, send only out
            # of it, whatever the routing table says.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
            if family == socket.AF_INET:
                _setup_ipv4(sock, ifindex, multicast)
            else:
                _setup_ipv6(sock, ifindex, multicast)
        except OSError as exc:
            sock.close()
            raise TransportError(f"VRRP socket on {ifname}: {exc.strerror}", exc.errno) from exc
        return cls(sock, ifname, ifindex, family)

    def fileno(self) -> int:
        return self._sock.fileno()

    def close(self) -> None:
        self._sock.close()

    @property
    def closed(self) -> bool:
        return self._sock.fileno() < 0

    def send(
        self,
        payload: bytes,
        destination: IPAddress | str,
        source: IPAddress | str | None = None,
    ) -> None:
        """Send one VRRP message to the group or a unicast peer, out of this interface.

        `source` pins the source address (it must be on the interface; it must equal the
        one the checksum's pseudo-header was computed with). Without it the kernel picks
        the interface's primary IPv4 address / the link-local IPv6 address for ff02::12.
        """
        destination = ip_address(destination)
        source = None if source is None else ip_address(source)
        if destination.version != (4 if self.family == socket.AF_INET else 6) or (
            source is not None and source.version != destination.version
        ):
            raise TransportError(
                f"{source or ''}->{destination}: wrong address family for this socket",
                errno.EAFNOSUPPORT,
            )
        if self.family == socket.AF_INET:
            # IP_PKTINFO per message rather than bind(): a raw socket bound to an address
            # receives only datagrams addressed to it, which would lose the multicast
            # group; and ipi_spec_dst lets each send choose its own source.
            spec_dst = source.packed if source is not None else b"\0" * 4
            control = [
                (
                    socket.IPPROTO_IP,
                    IP_PKTINFO,
                    struct.pack("=I4s4s", self.ifindex, spec_dst, b"\0" * 4),
                )
            ]
            address: tuple[str, int] | tuple[str, int, int, int] = (str(destination), 0)
        else:
            # IPV6_PKTINFO pins source (the link-local, RFC 5798 §5.1.2.1) and interface.
            src = source.packed if source is not None else b"\0" * 16
            control = [
                (socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, struct.pack("=16sI", src, self.ifindex))
            ]
            scoped = destination.is_link_local or destination.is_multicast
            address = (str(destination), 0, 0, self.ifindex if scoped else 0)
        try:
            self._sock.sendmsg([payload], control, 0, address)
        except OSError as exc:
            raise TransportError(
                f"sending VRRP on {self.ifname} to {destination}: {exc.strerror}", exc.errno
            ) from exc

    def receive(self) -> list[ReceivedPacket]:
        """Every datagram pending on the socket (never blocks). Malformed ones are
        counted in `malformed` and skipped; errors are logged, never raised."""
        packets: list[ReceivedPacket] = []
        while True:
            try:
                data, ancillary, flags, source = self._sock.recvmsg(_RECV_SIZE, _ANCILLARY_SIZE)
            except BlockingIOError:
                return packets
            except OSError as exc:
                # Nothing is expected here (no pending ICMP errors, see above); whatever it
                # is ends this drain rather than spinning on it. A closed socket is quiet.
                if exc.errno != errno.EBADF:
                    log.warning("%s: VRRP receive failed: %s", self.ifname, exc)
                return packets
            if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
                self.malformed += 1
                continue
            if self.family == socket.AF_INET:
                packet = parse_ipv4(data)
            else:
                packet = parse_ipv6(data, source[0], ancillary)
            if packet is None:
                self.malformed += 1
                continue
            packets.append(packet)


def _setup_ipv4(sock: socket.socket, ifindex: int, multicast: bool) -> None:
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, VRRP_TTL)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, VRRP_TTL)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, TOS_CS6)
    # Our own adverts must not come back to us as if a peer sent them.
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
    # Receive only the groups this socket joined, not every group some other socket on
    # the host joined (a keepalived next to us, another interface's membership).
    sock.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_ALL, 0)
    mreqn = struct.pack("=4s4si", MULTICAST_V4.packed, b"\0" * 4, ifindex)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, mreqn)
    if multicast:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreqn)


def _setup_ipv6(sock: socket.socket, ifindex: int, multicast: bool) -> None:
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, VRRP_TTL)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, VRRP_TTL)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, TOS_CS6)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
    with contextlib.suppress(OSError):  # kernels before 4.20; it only limits what we receive
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_MULTICAST_ALL, 0)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex)
    # The raw IPv6 socket gives no header: ask for hop limit and destination as ancillary
    # data. No IPV6_CHECKSUM: the codec computes the VRRP checksum itself.
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
    if multicast:
        mreq = struct.pack("=16si", MULTICAST_V6.packed, ifindex)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
