"""Virtual IPs on interfaces over rtnetlink: `AddressManager` adds and removes the VIPs,
finds the ones a previous run left behind, and answers the address questions VRRP asks
(primary IPv4 address, IPv6 link-local source, which interface a VIP belongs on, link state).

Every VIP we add carries IFA_PROTO = VRRPD_ADDR_PROTO. The kernel stores that byte with the
address, so a daemon restarted after kill -9 finds its leftovers without a state file, and
never mistakes an address someone else configured for one of its own. Works in the network
namespace the process runs in (the lab starts daemons with `ip netns exec`).
"""

from __future__ import annotations

import errno
import logging
import socket
import struct
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface

from vrrpd.net.links import (
    NLM_F_CREATE,
    NLM_F_DUMP,
    NLM_F_EXCL,
    LinkInfo,
    NetlinkError,
    RtnlSocket,
    attr_str,
    dump_links,
    get_link,
    pack_attr,
    parse_attrs,
)

IPAddress = IPv4Address | IPv6Address
IPInterface = IPv4Interface | IPv6Interface

# Our mark in IFA_PROTO ('V'). The kernel uses 0 (unspec) and 1-3 (kernel_lo, kernel_ra,
# kernel_ll); keepalived 2.2.7 leaves it 0 (checked on its VIPs here). iproute2 6.1 can
# neither set nor show it (6.3+ can: `ip addr show` prints "proto 0x56").
VRRPD_ADDR_PROTO = 0x56

RTM_NEWADDR = 20
RTM_DELADDR = 21
RTM_GETADDR = 22

IFA_ADDRESS = 1
IFA_LOCAL = 2
IFA_LABEL = 3
IFA_FLAGS = 8
IFA_PROTO = 11

IFA_F_SECONDARY = 0x01
IFA_F_NODAD = 0x02
IFA_F_DADFAILED = 0x08
IFA_F_TENTATIVE = 0x40

RT_SCOPE_UNIVERSE = 0
RT_SCOPE_LINK = 253
RT_SCOPE_HOST = 254

IFNAMSIZ = 16

_AF = {4: socket.AF_INET, 6: socket.AF_INET6}
_IFADDRMSG = struct.Struct("=BBBBI")  # family, prefixlen, flags, scope, index

log = logging.getLogger("vrrpd")


class AddressError(OSError):
    """An address operation failed; `errno` is the kernel's reason when there is one."""

    def __init__(self, message: str, errno_: int | None = None) -> None:
        # An OSError, so that callers guarding I/O with `except OSError` catch it too.
        if errno_ is None:
            super().__init__(message)
        else:
            super().__init__(errno_, message)


@dataclass(frozen=True, slots=True)
class AddressInfo:
    """One address as the kernel reports it (RTM_NEWADDR)."""

    index: int
    interface: IPInterface
    flags: int  # IFA_FLAGS (32 bit) when present, else the 8-bit ifa_flags
    scope: int
    proto: int
    label: str | None

    @property
    def ours(self) -> bool:
        return self.proto == VRRPD_ADDR_PROTO


def _family(address: IPInterface | IPAddress) -> int:
    return socket.AF_INET if address.version == 4 else socket.AF_INET6


def _promote_secondaries(ifname: str) -> None:
    """Without promote_secondaries, removing an interface's primary IPv4 address in a subnet
    deletes every secondary of that subnet with it: two VIPs in a subnet of their own would
    lose the second when the first moves away. keepalived users set this sysctl by hand."""
    path = f"/proc/sys/net/ipv4/conf/{ifname}/promote_secondaries"
    try:
        with open(path, "r+") as f:
            if f.read().strip() != "1":
                f.seek(0)
                f.write("1")
    except OSError as exc:
        log.warning("cannot set %s: %s; removing one VIP may remove others", path, exc)


def parse_address(payload: bytes) -> AddressInfo | None:
    """An RTM_NEWADDR payload; None for families we do not handle or malformed data."""
    if len(payload) < _IFADDRMSG.size:
        return None
    family, prefixlen, flags, scope, index = _IFADDRMSG.unpack_from(payload)
    attrs = parse_attrs(payload, _IFADDRMSG.size)
    # IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer on point-to-point
    # links and equal to IFA_LOCAL otherwise. IPv6 sends only IFA_ADDRESS unless a peer.
    raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
    if family == socket.AF_INET and raw is not None and len(raw) == 4:
        interface: IPInterface = IPv4Interface((IPv4Address(raw), prefixlen))
    elif family == socket.AF_INET6 and raw is not None and len(raw) == 16:
        interface = IPv6Interface((IPv6Address(raw), prefixlen))
    else:
        return None
    if IFA_FLAGS in attrs and len(attrs[IFA_FLAGS]) >= 4:
        flags = struct.unpack("=I", attrs[IFA_FLAGS][:4])[0]
    proto = attrs[IFA_PROTO][0] if attrs.get(IFA_PROTO) else 0
    label = attr_str(attrs[IFA_LABEL]) if IFA_LABEL in attrs else None
    return AddressInfo(index, interface, flags, scope, proto, label)


class AddressManager:
    """Synchronous VIP management for one network namespace (the process's own).

    Thread-compatible, not thread-safe: one netlink socket, one request at a time. Every
    call is a kernel round trip of well under a millisecond, so the asyncio driver calls it
    directly from its loop.
    """

    def __init__(self) -> None:
        self._rtnl = RtnlSocket()

    def close(self) -> None:
        self._rtnl.close()

    def __enter__(self) -> AddressManager:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # --- interfaces ---

    def ifindex(self, ifname: str) -> int | None:
        """The interface index, None if there is no such interface."""
        link = self._get_link(ifname)
        return None if link is None else link.index

    def link_up(self, ifname: str) -> bool:
        """Admin up, carrier and operationally up (see links.LinkInfo.up); False if absent."""
        link = self._get_link(ifname)
        return link is not None and link.up

    def _get_link(self, ifname: str) -> LinkInfo | None:
        try:
            return get_link(self._rtnl, ifname)
        except NetlinkError as exc:
            message = f"cannot look up interface {ifname}: {exc.strerror}"
            raise AddressError(message, exc.errno) from exc

    def _require_index(self, ifname: str) -> int:
        index = self.ifindex(ifname)
        if index is None:
            raise AddressError(f"no interface {ifname!r}", errno.ENODEV)
        return index

    def _names(self) -> dict[int, str]:
        try:
            return {link.index: link.ifname for link in dump_links(self._rtnl)}
        except NetlinkError as exc:
            raise AddressError(f"cannot list interfaces: {exc.strerror}", exc.errno) from exc

    # --- reading addresses ---

    def addresses(self, ifname: str | None = None) -> list[AddressInfo]:
        """Every IPv4/IPv6 address (of one interface), in the kernel's order.

        The kernel's order matters: for IPv4 it lists an interface's primary addresses
        before their secondaries.
        """
        index = None if ifname is None else self.ifindex(ifname)
        if ifname is not None and index is None:
            return []
        body = _IFADDRMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
        try:
            replies = self._rtnl.request(RTM_GETADDR, body, NLM_F_DUMP)
        except NetlinkError as exc:
            raise AddressError(f"cannot list addresses: {exc.strerror}", exc.errno) from exc
        found = []
        for msg_type, payload in replies:
            info = parse_address(payload) if msg_type == RTM_NEWADDR else None
            if info is not None and (index is None or info.index == index):
                found.append(info)
        return found

    def has(self, ifname: str, address: IPInterface) -> bool:
        """Whether the address (same IP and prefix length) is on the interface, ours or not."""
        return any(info.interface == address for info in self.addresses(ifname))

    def owned(self, ifname: str | None = None) -> list[tuple[str, IPInterface]]:
        """Addresses carrying our IFA_PROTO mark, as (interface name, address)."""
        names = self._names()
        return [
            (names.get(info.index, str(info.index)), info.interface)
            for info in self.addresses(ifname)
            if info.ours
        ]

    def primary_address(self, ifname: str, family: int) -> IPAddress | None:
        """The source address VRRP adverts use on this interface. `family` is AF_INET /
        AF_INET6 or the IP version 4 / 6 (the config's spelling; the values do not clash).

        IPv4: the interface's first primary address that is not one of our VIPs (a VIP in a
        subnet of its own is "primary" to the kernel, but it moves away with mastership).
        IPv6: the link-local address, which RFC 5798 §5.1.2.1 requires as the source; None
        while it is still tentative (DAD running), because the kernel refuses to send from
        it until then.
        """
        family = _AF.get(family, family)
        for info in self.addresses(ifname):
            if info.ours or _family(info.interface) != family:
                continue
            if family == socket.AF_INET:
                if not info.flags & IFA_F_SECONDARY:
                    return info.interface.ip
            elif info.interface.ip.is_link_local and not info.flags & (
                IFA_F_TENTATIVE | IFA_F_DADFAILED
            ):
                return info.interface.ip
        return None

    def interface_for(self, address: IPInterface | IPAddress) -> str | None:
        """The interface with a (non-VIP) address whose subnet holds `address`.

        Longest prefix wins when several match. IPv6 link-local and host-scope (loopback)
        subnets are skipped: fe80::/64 is on every interface and says nothing.
        """
        ip = address.ip if isinstance(address, IPv4Interface | IPv6Interface) else address
        best: tuple[int, int] | None = None  # (prefix length, index)
        for info in self.addresses():
            if info.ours or info.interface.version != ip.version:
                continue
            if info.scope == RT_SCOPE_HOST or info.interface.ip.is_link_local:
                continue
            network = info.interface.network
            if ip in network and (best is None or network.prefixlen > best[0]):
                best = (network.prefixlen, info.index)
        if best is None:
            return None
        return self._names().get(best[1])

    # --- changing addresses ---

    def add(self, ifname: str, address: IPInterface, label: str | None = None) -> bool:
        """Put a VIP on the interface, marked as ours. False if it was there already.

        IPv6 VIPs get IFA_F_NODAD: usable at once, and no DAD failure while the previous
        master still holds the address during a handover. `label` (IPv4 only, like
        `ip addr add ... label eth0:vip`) must start with the interface name.
        """
        index = self._require_index(ifname)
        family = _family(address)
        flags = 0
        if family == socket.AF_INET6:
            flags |= IFA_F_NODAD
            if label is not None:
                raise AddressError(f"{address}: IPv6 addresses have no label")
        elif label is not None and (
            not label.startswith(ifname) or len(label.encode()) >= IFNAMSIZ
        ):
            raise AddressError(
                f"label {label!r} must start with the interface name {ifname!r} "
                f"and be at most {IFNAMSIZ - 1} bytes"
            )
        if family == socket.AF_INET:
            _promote_secondaries(ifname)
        # The kernel derives IPv6 scope from the address; IPv4 takes what we say.
        scope = RT_SCOPE_LINK if address.ip.is_link_local else RT_SCOPE_UNIVERSE
        body = _IFADDRMSG.pack(family, address.network.prefixlen, flags & 0xFF, scope, index)
        packed = address.ip.packed
        if family == socket.AF_INET:
            body += pack_attr(IFA_LOCAL, packed)
        body += pack_attr(IFA_ADDRESS, packed)
        if label is not None:
            body += pack_attr(IFA_LABEL, label.encode() + b"\0")
        body += pack_attr(IFA_FLAGS, struct.pack("=I", flags))
        body += pack_attr(IFA_PROTO, bytes([VRRPD_ADDR_PROTO]))
        try:
            self._rtnl.request(RTM_NEWADDR, body, NLM_F_CREATE | NLM_F_EXCL)
        except NetlinkError as exc:
            if exc.errno == errno.EEXIST:
                return False
            message = f"cannot add {address} to {ifname}: {exc.strerror}"
            raise AddressError(message, exc.errno) from exc
        return True

    def remove(self, ifname: str, address: IPInterface) -> bool:
        """Take the address off the interface. False if it was not there (or the interface
        is gone, which took the address with it)."""
        index = self.ifindex(ifname)
        if index is None:
            return False
        return self._remove(index, ifname, address)

    def _remove(self, index: int, ifname: str, address: IPInterface) -> bool:
        family = _family(address)
        body = _IFADDRMSG.pack(family, address.network.prefixlen, 0, 0, index)
        if family == socket.AF_INET:
            body += pack_attr(IFA_LOCAL, address.ip.packed)
        body += pack_attr(IFA_ADDRESS, address.ip.packed)
        try:
            self._rtnl.request(RTM_DELADDR, body)
        except NetlinkError as exc:
            if exc.errno in (errno.EADDRNOTAVAIL, errno.ENODEV):
                return False
            message = f"cannot remove {address} from {ifname}: {exc.strerror}"
            raise AddressError(message, exc.errno) from exc
        return True

    def remove_leftovers(self, ifnames: list[str] | None = None) -> list[tuple[str, IPInterface]]:
        """Remove every address carrying our mark (on the given interfaces); return them.

        Run at start-up, before joining as BACKUP: a VIP left by a killed daemon would
        otherwise be answered for by two nodes.
        """
        names = self._names()
        wanted = None if ifnames is None else set(ifnames)
        removed: list[tuple[str, IPInterface]] = []
        for info in self.addresses():
            name = names.get(info.index, str(info.index))
            if not info.ours or (wanted is not None and name not in wanted):
                continue
            # Secondaries of a removed primary vanish with it (without promote_secondaries);
            # _remove then reports False and we still list the address as removed.
            self._remove(info.index, name, info.interface)
            removed.append((name, info.interface))
        return removed
