"""Fake ports for the daemon driver: an in-memory L2 segment joining several daemons.

Time is the event loop's (looptime makes it fake); packets cross the fake wire with
loop.call_soon, so nothing here sleeps or touches the host.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, ip_interface

from vrrpd.config import RouteConfig, RuleConfig
from vrrpd.daemon import Daemon
from vrrpd.limits import IPAddress, IPInterface
from vrrpd.ports import Ports

MULTICAST = {IPv4Address("224.0.0.18"), IPv6Address("ff02::12")}


@dataclass(frozen=True)
class FakePacket:
    payload: bytes
    source: IPAddress
    destination: IPAddress
    ttl: int = 255


class _Fd:
    """A real file descriptor that never becomes readable, for loop.add_reader."""

    def __init__(self) -> None:
        self.r, self.w = os.pipe()

    def fileno(self) -> int:
        return self.r

    def close(self) -> None:
        for fd in (self.r, self.w):
            with contextlib.suppress(OSError):
                os.close(fd)


class FakeSocket(_Fd):
    def __init__(self, host: FakeHost, ifname: str, family: int) -> None:
        super().__init__()
        self.host, self.ifname, self.family = host, ifname, family
        self.sent: list[tuple[float, bytes, IPAddress]] = []
        self.closed = False

    def send(self, payload: bytes, destination: IPAddress, source: IPAddress | None = None) -> None:
        if not self.host.link.get(self.ifname, True):
            raise OSError(100, "Network is down")
        self.sent.append((asyncio.get_running_loop().time(), payload, destination))
        self.host.wire.carry(
            self, FakePacket(payload, source or self.host.primary(self.family), destination)
        )

    def receive(self) -> list[FakePacket]:
        return []

    def close(self) -> None:
        self.closed = True
        super().close()


class FakeAddresses:
    def __init__(self, host: FakeHost) -> None:
        self.host = host

    async def add(self, ifname: str, address: IPInterface, label: str | None = None) -> None:
        if self.host.kernel_delay:
            await asyncio.sleep(self.host.kernel_delay)
        self.host.vips.setdefault(ifname, set()).add(address)
        self.host.log.append((asyncio.get_running_loop().time(), "add", str(address)))

    async def remove(self, ifname: str, address: IPInterface) -> None:
        if self.host.kernel_delay:
            await asyncio.sleep(self.host.kernel_delay)
        self.host.vips.get(ifname, set()).discard(address)
        self.host.log.append((asyncio.get_running_loop().time(), "remove", str(address)))

    async def remove_leftovers(
        self, configured: Iterable[tuple[str, IPInterface]] = ()
    ) -> list[tuple[str, IPInterface]]:
        self.host.configured_at_start = list(configured)
        gone = [(i, a) for i, addrs in self.host.vips.items() for a in addrs]
        self.host.vips.clear()
        return gone

    def primary_address(self, ifname: str, family: int) -> IPAddress | None:
        return self.host.primary(family)

    def interface_for(self, address: IPInterface) -> str | None:
        for own in self.host.addresses:
            if own.version == address.version and address.ip in own.network:
                return "eth0"
        return None

    def link_up(self, ifname: str) -> bool:
        return self.host.link.get(ifname, True)


class FakeRoutes:
    """Routes and rules in the host's log, in the order the daemon changes them."""

    def __init__(self, host: FakeHost) -> None:
        self.host = host
        self.installed: set[object] = set()
        self.closed = False

    def _change(self, op: str, what: object, add: bool) -> bool:
        self.host.log.append((asyncio.get_running_loop().time(), op, str(what)))
        changed = (what not in self.installed) if add else (what in self.installed)
        (self.installed.add if add else self.installed.discard)(what)
        return changed

    async def add_route(self, route: RouteConfig) -> bool:
        return self._change("add route", route.to, True)

    async def remove_route(self, route: RouteConfig) -> bool:
        return self._change("remove route", route.to, False)

    async def add_rule(self, rule: RuleConfig) -> bool:
        return self._change("add rule", rule.table, True)

    async def remove_rule(self, rule: RuleConfig) -> bool:
        return self._change("remove rule", rule.table, False)

    async def remove_leftovers(self) -> list[str]:
        gone = sorted(map(str, self.installed))
        self.installed.clear()
        return gone

    def close(self) -> None:
        self.closed = True


class FakeAnnouncer:
    def __init__(self, host: FakeHost) -> None:
        self.host = host
        self.closed = False

    def announce(self, ifname: str, address: IPAddress) -> None:
        self.host.announced.append((asyncio.get_running_loop().time(), str(address)))
        if self.host.link.get(ifname, True):
            self.host.wire.announce(self.host, ifname, address)

    def close(self) -> None:
        self.closed = True


@dataclass(frozen=True)
class LinkEvent:
    ifname: str
    up: bool


class FakeLinks:
    def __init__(self) -> None:
        self.events: list[LinkEvent] = []
        self.on_change: Callable[[], None] | None = None

    def subscribe(self, on_change: Callable[[], None]) -> None:
        self.on_change = on_change

    def close(self) -> None:
        pass

    def poll(self) -> list[LinkEvent]:
        events, self.events = self.events, []
        return events


@dataclass(frozen=True)
class HeardFrame:
    ifname: str
    address: IPAddress
    mac: str


class FakeHeard:
    """Gratuitous ARP / NA that other hosts on the wire sent (vrrpd.net.heard's port)."""

    def __init__(self, host: FakeHost | None = None) -> None:
        self.host = host
        self.frames: list[HeardFrame] = []
        self.rechecked: list[str] = []
        self.on_heard: Callable[[], None] | None = None

    def subscribe(self, on_heard: Callable[[], None]) -> None:
        self.on_heard = on_heard

    def poll(self) -> list[HeardFrame]:
        frames, self.frames = self.frames, []
        return frames

    def recheck(self, ifname: str, address: IPAddress) -> None:
        self.rechecked.append(str(address))
        assert self.host is not None
        self.host.wire.answer(self.host, ifname, address)

    def close(self) -> None:
        pass


@dataclass
class FakeHost:
    name: str
    wire: FakeWire
    addresses: list[IPInterface]
    vips: dict[str, set[IPInterface]] = field(default_factory=dict)
    link: dict[str, bool] = field(default_factory=dict)
    announced: list[tuple[float, str]] = field(default_factory=list)
    log: list[tuple[float, str, str]] = field(default_factory=list)
    configured_at_start: list[tuple[str, IPInterface]] = field(default_factory=list)
    kernel_delay: float = 0.0  # how long each address change takes to be acknowledged
    sockets: list[FakeSocket] = field(default_factory=list)
    daemon: Daemon | None = None

    def __post_init__(self) -> None:
        self.links = FakeLinks()
        self.heard = FakeHeard(self)
        self.ports = Ports(
            open_socket=self.open_socket,
            addresses=FakeAddresses(self),
            announcer=FakeAnnouncer(self),
            links=self.links,
            heard=self.heard,
            routes=FakeRoutes(self),
        )

    @property
    def mac(self) -> str:
        return f"02:00:00:00:00:{self.wire.hosts.index(self) + 1:02x}"

    def primary(self, family: int) -> IPAddress | None:
        for own in self.addresses:
            if own.version == family:
                return own.ip
        return None

    def open_socket(self, ifname: str, family: int) -> FakeSocket:
        sock = FakeSocket(self, ifname, family)
        self.sockets.append(sock)
        return sock

    def holds(self, vip: str) -> bool:
        return any(ip_interface(vip) in addrs for addrs in self.vips.values())

    def set_link(self, up: bool) -> None:
        self.link["eth0"] = up
        self.links.events.append(LinkEvent("eth0", up))
        assert self.links.on_change is not None, "the daemon subscribes to link events"
        self.links.on_change()

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        self.links.close()


class FakeWire:
    """One L2 segment: multicast reaches every other host, unicast the addressed one."""

    def __init__(self) -> None:
        self.hosts: list[FakeHost] = []
        self.filter: list[object] = []  # hosts whose outgoing adverts are lost (not ARP)

    def host(self, name: str, *addresses: str) -> FakeHost:
        h = FakeHost(name, self, [ip_interface(a) for a in addresses])
        h.daemon = Daemon(h.ports, node=name)
        self.hosts.append(h)
        return h

    def carry(self, sock: FakeSocket, pkt: FakePacket) -> None:
        sender = sock.host
        if sender in self.filter:
            return
        loop = asyncio.get_running_loop()
        for host in self.hosts:
            if host is sender or not host.link.get("eth0", True) or host.daemon is None:
                continue
            own = {a.ip for a in host.addresses}
            if pkt.destination in MULTICAST or pkt.destination in own:
                loop.call_soon(host.daemon.deliver, (sock.ifname, sock.family), pkt)

    def announce(self, sender: FakeHost, ifname: str, address: IPAddress) -> None:
        """A gratuitous ARP / NA: every other host on the segment hears it."""
        for host in self.hosts:
            if host is sender or not host.link.get("eth0", True) or host.heard.on_heard is None:
                continue
            host.heard.frames.append(HeardFrame(ifname, address, sender.mac))
            asyncio.get_running_loop().call_soon(host.heard.on_heard)

    def answer(self, asker: FakeHost, ifname: str, address: IPAddress) -> None:
        """An ARP request for `address`: a host holding it answers (only IPv4 is asked)."""
        if not asker.link.get("eth0", True) or asker.heard.on_heard is None:
            return
        for host in self.hosts:
            if host is asker or not host.link.get("eth0", True):
                continue
            if any(a.ip == address for addrs in host.vips.values() for a in addrs):
                asker.heard.frames.append(HeardFrame(ifname, address, host.mac))
                asyncio.get_running_loop().call_soon(asker.heard.on_heard)

    def close(self) -> None:
        for h in self.hosts:
            h.close()
