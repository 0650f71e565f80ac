"""The host's interfaces and addresses over rtnetlink, through pyroute2's AsyncIPRoute in
the daemon's own event loop.

`Rtnl` keeps a mirror of the namespace's links and addresses: filled by a dump, kept
current by the kernel's link and address events (subscribed before the dump, so nothing
falls between), rebuilt from a fresh dump if the kernel ever drops events (ENOBUFS). The
questions VRRP asks (is the link up, which address do adverts come from, which interface
does a VIP belong on) are answered from the mirror without a round trip; the changes
(adding and removing VIPs) are coroutines that return once the kernel has acknowledged.

Every VIP carries IFA_PROTO = VRRPD_ADDR_PROTO. The kernel keeps that byte with the
address, so a daemon restarted after kill -9 finds its leftovers without a state file and
never mistakes an address someone else configured for one of its own. Linux before 5.18
has no IFA_PROTO: it accepts the attribute and drops it (old kernels ignore attributes
they do not know), so there `marks` is False and the leftovers are found by
configuration instead (`remove_leftovers`).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from ipaddress import IPv4Interface, IPv6Interface, ip_interface
from typing import Any

from pyroute2.iproute.linux import AsyncIPRoute
from pyroute2.netlink import NLM_F_ACK, NLM_F_REQUEST, nla, nlmsg
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl import (
    RTM_DELADDR,
    RTM_DELLINK,
    RTM_NEWADDR,
    RTM_NEWLINK,
    RTM_SETLINK,
    RTMGRP_IPV4_IFADDR,
    RTMGRP_IPV6_IFADDR,
    RTMGRP_LINK,
)
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

from vrrpd.limits import IFNAMSIZ, IPAddress, IPInterface
from vrrpd.net.startup import VRRPD_ADDR_PROTO

__all__ = ["VRRPD_ADDR_PROTO", "AddressError", "Rtnl"]

log = logging.getLogger("vrrpd")

IFA_F_SECONDARY = 0x01
IFA_F_NODAD = 0x02
IFA_F_DADFAILED = 0x08
IFA_F_TENTATIVE = 0x40
RT_SCOPE_UNIVERSE = 0
RT_SCOPE_LINK = 253
RT_SCOPE_HOST = 254
IFF_UP = 0x1
IFF_LOWER_UP = 0x10000
IFLA_AF_SPEC = 26
IFLA_INET_CONF = 1
IPV4_DEVCONF_ARP_ANNOUNCE = 18  # linux/ip.h
IPV4_DEVCONF_ARP_IGNORE = 19
IPV4_DEVCONF_PROMOTE_SECONDARIES = 20
_AF = {4: socket.AF_INET, 6: socket.AF_INET6}


class AddressError(OSError):
    """An address operation failed; `errno` is the kernel's reason when there is one."""

    def __init__(self, message: str, errno_: int | None = None) -> None:
        # An OSError, so that callers guarding I/O with `except OSError` catch it too.
        if errno_ is None:
            super().__init__(message)
        else:
            super().__init__(errno_, message)


def marks_supported(release: str | None = None) -> bool:
    """Whether the kernel keeps IFA_PROTO (Linux 5.18 and later)."""
    parts = (release or os.uname().release).split(".")
    try:
        return (int(parts[0]), int(parts[1].split("-")[0])) >= (5, 18)
    except (IndexError, ValueError):
        return True  # an unparsable release is a new one more often than not


@dataclass(frozen=True, slots=True)
class Link:
    index: int
    ifname: str
    flags: int
    operstate: str

    @property
    def up(self) -> bool:
        """Usable for VRRP: administratively up, carrier present, operationally up.

        IFF_LOWER_UP is the carrier; operstate catches what carrier alone does not (a VLAN
        whose lower device is down is LOWERLAYERDOWN, 802.1X-blocked ports are DORMANT).
        UNKNOWN is what drivers without operstate support (and lo) report: usable.
        """
        return (
            bool(self.flags & IFF_UP)
            and bool(self.flags & IFF_LOWER_UP)
            and self.operstate in ("UP", "UNKNOWN")
        )


@dataclass(frozen=True, slots=True)
class Address:
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


@dataclass(frozen=True, slots=True)
class LinkEvent:
    ifname: str
    up: bool


class SetInetConf(nlmsg):  # type: ignore[misc]
    """RTM_SETLINK with IFLA_AF_SPEC / AF_INET / IFLA_INET_CONF: IPv4 per-interface settings
    (the /proc/sys/net/ipv4/conf/IF/* values) set over netlink. That needs CAP_NET_ADMIN,
    as adding an address does, and works where /proc/sys is mounted read-only (every
    container). pyroute2's ifinfmsg decodes AF_INET as the dump's flat array, so the
    request's nesting is declared here."""

    fields = ifinfmsg.fields  # struct ifinfomsg
    nla_map = ((IFLA_AF_SPEC, "IFLA_AF_SPEC", "vrrpd_af_spec"),)

    class vrrpd_af_spec(nla):  # type: ignore[misc]
        nla_map = ((socket.AF_INET, "AF_INET", "vrrpd_af_inet"),)

        class vrrpd_af_inet(nla):  # type: ignore[misc]
            nla_map = ((IFLA_INET_CONF, "IFLA_INET_CONF", "vrrpd_inet_conf"),)

            class vrrpd_inet_conf(nla):  # type: ignore[misc]
                nla_map = (
                    (IPV4_DEVCONF_ARP_ANNOUNCE, "ARP_ANNOUNCE", "uint32"),
                    (IPV4_DEVCONF_ARP_IGNORE, "ARP_IGNORE", "uint32"),
                    (IPV4_DEVCONF_PROMOTE_SECONDARIES, "PROMOTE_SECONDARIES", "uint32"),
                )


def _family(address: IPInterface | IPAddress) -> int:
    return socket.AF_INET if address.version == 4 else socket.AF_INET6


def _strerror(exc: NetlinkError) -> str:
    return os.strerror(exc.code) if exc.code else str(exc)


def _parse_link(msg: Any) -> Link | None:
    # The bridge driver sends AF_BRIDGE messages about its ports on the same group; an
    # AF_BRIDGE RTM_DELLINK means "left the bridge". Only AF_UNSPEC ones are the link.
    ifname = msg.get("IFLA_IFNAME")
    if msg["family"] != socket.AF_UNSPEC or ifname is None:
        return None
    return Link(msg["index"], ifname, msg["flags"], msg.get("IFLA_OPERSTATE") or "UNKNOWN")


def _parse_address(msg: Any) -> Address | None:
    # IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer on point-to-point
    # links and equal to IFA_LOCAL otherwise. IPv6 sends only IFA_ADDRESS unless a peer.
    raw = msg.get("IFA_LOCAL") or msg.get("IFA_ADDRESS")
    if msg["family"] not in (socket.AF_INET, socket.AF_INET6) or raw is None:
        return None
    flags = msg.get("IFA_FLAGS")
    return Address(
        index=msg["index"],
        interface=ip_interface(f"{raw}/{msg['prefixlen']}"),
        flags=msg["flags"] if flags is None else flags,
        scope=msg["scope"],
        proto=msg.get("IFA_PROTO") or 0,
        label=msg.get("IFA_LABEL"),
    )


class Rtnl:
    """Links and addresses of the network namespace the sockets were opened in.

    Open with `await Rtnl.open()` inside the running loop; `close()` when done. Implements
    the daemon's AddressPort and LinkPort.
    """

    def __init__(self, *, marks: bool | None = None, rcvbuf: int = 1 << 20) -> None:
        self.marks = marks_supported() if marks is None else marks
        self._rcvbuf = rcvbuf  # the kernel's queue for events; tests shrink it to overflow
        self._links: dict[int, Link] = {}
        self._addresses: dict[tuple[int, IPInterface], Address] = {}
        self._changes: list[LinkEvent] = []
        self._on_change: Callable[[], None] | None = None
        self._promoted: set[int] = set()
        self._events: AsyncIPRoute | None = None
        self._requests: AsyncIPRoute | None = None
        self._reader: asyncio.Task[None] | None = None
        self._closed = False

    @classmethod
    async def open(cls, *, marks: bool | None = None, rcvbuf: int = 1 << 20) -> Rtnl:
        self = cls(marks=marks, rcvbuf=rcvbuf)
        try:
            await self._connect()
        except BaseException:
            self.close()
            raise
        return self

    async def _connect(self) -> None:
        # Subscribe before dumping: a change between the dump and the first event is then
        # seen twice at worst, and applying events in order converges on the kernel's state.
        self._events = AsyncIPRoute(rcvbuf=self._rcvbuf)
        await self._events.bind(groups=RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR)
        self._requests = AsyncIPRoute()
        await self._resync()
        self._changes.clear()  # the state at open is the baseline, not a change
        self._reader = asyncio.get_running_loop().create_task(self._read_events())

    def close(self) -> None:
        self._closed = True
        if self._reader is not None:
            self._reader.cancel()
        for ipr in (self._events, self._requests):
            if ipr is not None:
                ipr.close()

    async def __aenter__(self) -> Rtnl:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self.close()

    def _ipr(self) -> AsyncIPRoute:
        if self._requests is None or self._closed:
            raise AddressError("the netlink connection is closed", errno.EBADF)
        return self._requests

    # --- the mirror ---

    async def _resync(self) -> None:
        """Rebuild the mirror from dumps; link changes since the last state are reported."""
        ipr = self._ipr()
        links = [k async for m in await ipr.get_links() if (k := _parse_link(m)) is not None]
        addresses = [a async for m in await ipr.get_addr() if (a := _parse_address(m)) is not None]
        seen = {link.index for link in links}
        for index in [i for i in self._links if i not in seen]:
            self._forget_link(index)
        for link in links:
            self._update_link(link)
        self._addresses = {(a.index, a.interface): a for a in addresses}

    async def _read_events(self) -> None:
        assert self._events is not None
        while not self._closed:
            try:
                async for msg in self._events.get():
                    self._apply(msg)
            except Exception as exc:  # whatever it is, the mirror must go on
                if self._closed:
                    return
                code = exc.code if isinstance(exc, NetlinkError) else getattr(exc, "errno", None)
                if code == errno.ENOBUFS:  # we were too slow and the kernel dropped events
                    log.info("netlink events overflowed; re-reading links and addresses")
                else:
                    log.warning("netlink events: %s; re-reading links and addresses", exc)
                    await asyncio.sleep(0.1)
                try:
                    await self._resync()
                except Exception as resync_exc:
                    log.warning("cannot re-read links and addresses: %s", resync_exc)
            if self._changes and self._on_change is not None:
                self._on_change()

    def _apply(self, msg: Any) -> None:
        kind = msg["header"]["type"]
        if kind in (RTM_NEWLINK, RTM_DELLINK):
            link = _parse_link(msg)
            if link is None:
                return
            if kind == RTM_NEWLINK:
                self._update_link(link)
            else:
                self._forget_link(link.index)
        elif kind in (RTM_NEWADDR, RTM_DELADDR):
            address = _parse_address(msg)
            if address is None:
                return
            key = (address.index, address.interface)
            if kind == RTM_NEWADDR:
                self._addresses[key] = address
            else:
                self._addresses.pop(key, None)

    def _update_link(self, link: Link) -> None:
        old = self._links.get(link.index)
        self._links[link.index] = link
        if old is None:
            self._changes.append(LinkEvent(link.ifname, link.up))
        elif old.ifname != link.ifname:  # renamed: the old name is gone, the new one appears
            if old.up:
                self._changes.append(LinkEvent(old.ifname, False))
            self._changes.append(LinkEvent(link.ifname, link.up))
        elif old.up != link.up:
            self._changes.append(LinkEvent(link.ifname, link.up))

    def _forget_link(self, index: int) -> None:
        old = self._links.pop(index, None)
        self._promoted.discard(index)
        for key in [k for k in self._addresses if k[0] == index]:
            del self._addresses[key]
        if old is not None and old.up:
            self._changes.append(LinkEvent(old.ifname, False))

    # --- link events (LinkPort) ---

    def subscribe(self, on_change: Callable[[], None]) -> None:
        """Call `on_change` (in the loop) whenever `poll` has link changes to hand out."""
        self._on_change = on_change

    def poll(self) -> list[LinkEvent]:
        """Up/down changes since the last call: only changes (MTU, MAC, promiscuity... are
        none), an interface first seen with its state, a deleted one as down."""
        changes, self._changes = self._changes, []
        return changes

    # --- questions (AddressPort) ---

    def _link(self, ifname: str) -> Link | None:
        return next((link for link in self._links.values() if link.ifname == ifname), None)

    def ifindex(self, ifname: str) -> int | None:
        link = self._link(ifname)
        return None if link is None else link.index

    def is_up(self, ifname: str) -> bool | None:
        """The link's state; None for an interface that does not exist."""
        link = self._link(ifname)
        return None if link is None else link.up

    def link_up(self, ifname: str) -> bool:
        return bool(self.is_up(ifname))

    def _name(self, index: int) -> str:
        link = self._links.get(index)
        return str(index) if link is None else link.ifname

    def addresses(self, ifname: str | None = None) -> list[Address]:
        """Every IPv4/IPv6 address (of one interface)."""
        if ifname is None:
            return list(self._addresses.values())
        index = self.ifindex(ifname)
        return [a for a in self._addresses.values() if a.index == index]

    def has(self, ifname: str, address: IPInterface) -> bool:
        """Whether the address (same IP and prefix length) is on the interface, ours or not."""
        index = self.ifindex(ifname)
        return index is not None and (index, address) in self._addresses

    def owned(self, ifname: str | None = None) -> list[tuple[str, IPInterface]]:
        """Addresses carrying our mark, as (interface name, address)."""
        return [(self._name(a.index), a.interface) for a in self.addresses(ifname) if a.ours]

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
        for address in self.addresses(ifname):
            if address.ours or _family(address.interface) != family:
                continue
            if family == socket.AF_INET:
                if not address.flags & IFA_F_SECONDARY:
                    return address.interface.ip
            elif address.interface.ip.is_link_local and not address.flags & (
                IFA_F_TENTATIVE | IFA_F_DADFAILED
            ):
                return address.interface.ip
        return None

    def interface_for(self, address: IPInterface | IPAddress) -> str | None:
        """The interface with a (non-VIP) address whose subnet holds `address`.

        Longest prefix wins when several match. IPv6 link-local and host-scope (loopback)
        subnets are skipped: fe80::/64 is on every interface and says nothing.
        """
        ip = address.ip if isinstance(address, IPv4Interface | IPv6Interface) else address
        best: tuple[int, int] | None = None  # (prefix length, index)
        for own in self._addresses.values():
            if own.ours or own.interface.version != ip.version:
                continue
            if own.scope == RT_SCOPE_HOST or own.interface.ip.is_link_local:
                continue
            network = own.interface.network
            if ip in network and (best is None or network.prefixlen > best[0]):
                best = (network.prefixlen, own.index)
        return None if best is None else self._name(best[1])

    # --- changes (AddressPort) ---

    async def _index(self, ifname: str) -> int | None:
        """From the mirror, or from the kernel for a link whose event is still on its way
        (a virtual MAC interface made a moment ago, vrrpd.net.vmac)."""
        index = self.ifindex(ifname)
        if index is None:
            found = await self._ipr().link_lookup(ifname=ifname)
            index = int(found[0]) if found else None
        return index

    async def _require_index(self, ifname: str) -> int:
        index = await self._index(ifname)
        if index is None:
            raise AddressError(f"no interface {ifname!r}", errno.ENODEV)
        return index

    async def add(self, ifname: str, address: IPInterface, label: str | None = None) -> bool:
        """Put a VIP on the interface, marked as ours. False if it was there already.

        IPv6 VIPs get IFA_F_NODAD: usable at once, and no DAD failure while the previous
        master still holds the address during a handover. `label` (IPv4 only, like
        `ip addr add ... label eth0:vip`) must start with the interface name.
        """
        family = _family(address)
        if family == socket.AF_INET6 and label is not None:
            raise AddressError(f"{address}: IPv6 addresses have no label")
        if label is not None and (not label.startswith(ifname) or len(label.encode()) >= IFNAMSIZ):
            raise AddressError(
                f"label {label!r} must start with the interface name {ifname!r} "
                f"and be at most {IFNAMSIZ - 1} bytes"
            )
        index = await self._require_index(ifname)
        request: dict[str, Any] = {
            "index": index,
            "address": str(address.ip),
            "prefixlen": address.network.prefixlen,
        }
        if family == socket.AF_INET:
            await self._promote_secondaries(index, ifname)
            # The kernel derives IPv6 scope from the address; IPv4 takes what we say.
            request["scope"] = RT_SCOPE_LINK if address.ip.is_link_local else RT_SCOPE_UNIVERSE
        else:
            request["flags"] = IFA_F_NODAD
        if label is not None:
            request["label"] = label
        if self.marks:
            request["proto"] = VRRPD_ADDR_PROTO
        try:
            await self._ipr().addr("add", **request)
        except NetlinkError as exc:
            if exc.code == errno.EEXIST:
                return False
            message = f"cannot add {address} to {ifname}: {_strerror(exc)}"
            raise AddressError(message, exc.code) from exc
        # Known now; the kernel's event, with the flags it chose, follows and replaces it.
        proto = VRRPD_ADDR_PROTO if self.marks else 0
        self._addresses[(index, address)] = Address(index, address, 0, 0, proto, label)
        return True

    async def remove(self, ifname: str, address: IPInterface) -> bool:
        """Take the address off the interface. False if it was not there (or the interface
        is gone, which took the address with it)."""
        index = await self._index(ifname)
        if index is None:
            return False
        request = {"address": str(address.ip), "prefixlen": address.network.prefixlen}
        try:
            await self._ipr().addr("del", index=index, **request)
        except NetlinkError as exc:
            if exc.code in (errno.EADDRNOTAVAIL, errno.ENODEV):
                return False
            message = f"cannot remove {address} from {ifname}: {_strerror(exc)}"
            raise AddressError(message, exc.code) from exc
        self._addresses.pop((index, address), None)
        return True

    async def remove_leftovers(
        self, configured: Iterable[tuple[str, IPInterface]] = ()
    ) -> list[tuple[str, IPInterface]]:
        """Remove what a vrrpd that did not stop cleanly left behind; return it.

        That is every address with our mark; on a kernel without marks (before 5.18), every
        configured VIP (interface, address) found on its interface instead, which a
        restart after a crash finds there and nobody else should have put there.
        """
        configured = set() if self.marks else set(configured)
        found = [
            (self._name(a.index), a.interface)
            for a in self.addresses()
            if a.ours or (self._name(a.index), a.interface) in configured
        ]
        for ifname, address in found:
            # A secondary may already have gone with its primary (promotion off); it was
            # still a leftover.
            await self.remove(ifname, address)
        return found

    async def _promote_secondaries(self, index: int, ifname: str) -> None:
        """Without promote_secondaries, removing an interface's primary IPv4 address in a
        subnet deletes every secondary of that subnet with it: two VIPs in a subnet the
        node has no address in would lose the second when the first moves away.

        Set over netlink, not /proc/sys: in a container /proc/sys is read-only, netlink is
        not (CAP_NET_ADMIN, which adding the VIP needs anyway). Once per interface."""
        if index in self._promoted:
            return
        self._promoted.add(index)
        msg = SetInetConf()
        msg["family"] = socket.AF_UNSPEC
        msg["index"] = index
        conf = {"attrs": [("PROMOTE_SECONDARIES", 1)]}
        inet = {"attrs": [("IFLA_INET_CONF", conf)]}
        msg["attrs"] = [("IFLA_AF_SPEC", {"attrs": [("AF_INET", inet)]})]
        try:
            replies = await self._ipr().nlm_request(
                msg, msg_type=RTM_SETLINK, msg_flags=NLM_F_REQUEST | NLM_F_ACK
            )
            async for _ in replies:
                pass
        except NetlinkError as exc:
            log.warning(
                "cannot set promote_secondaries on %s: %s; removing one VIP may remove "
                "others of its subnet",
                ifname,
                _strerror(exc),
            )
