"""The daemon's ports: what the driver needs from the network, as small Protocols.

The real adapters live in vrrpd.net (raw sockets, rtnetlink through pyroute2, AF_PACKET);
tests pass fakes. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence, Set
from dataclasses import dataclass
from typing import Protocol

from vrrpd.config import RouteConfig, RuleConfig
from vrrpd.limits import IPAddress, IPInterface


class Packet(Protocol):
    @property
    def payload(self) -> bytes: ...
    @property
    def source(self) -> IPAddress: ...
    @property
    def destination(self) -> IPAddress: ...
    @property
    def ttl(self) -> int: ...


class AdvertSocket(Protocol):
    """One raw VRRP socket per (interface, family), shared by the instances on it."""

    def fileno(self) -> int: ...
    def send(
        self, payload: bytes, destination: IPAddress, source: IPAddress | None = None
    ) -> None: ...
    def receive(self) -> Sequence[Packet]: ...
    def close(self) -> None: ...


class AddressPort(Protocol):
    """Changes are coroutines (done when the kernel has acknowledged); questions are
    answered from what the adapter already knows, without a round trip."""

    async def add(self, ifname: str, address: IPInterface, label: str | None = None) -> object: ...
    async def remove(self, ifname: str, address: IPInterface) -> object: ...
    async def remove_leftovers(
        self, configured: Iterable[tuple[str, IPInterface]] = ()
    ) -> list[tuple[str, IPInterface]]: ...
    def primary_address(self, ifname: str, family: int) -> IPAddress | None: ...
    def interface_for(self, address: IPInterface) -> str | None: ...
    def link_up(self, ifname: str) -> bool: ...


class RoutePort(Protocol):
    """Routes and rules that follow the VIPs; changes are done when the kernel has
    acknowledged them, and return False when there was nothing to do."""

    async def add_route(self, route: RouteConfig) -> bool: ...
    async def remove_route(self, route: RouteConfig) -> bool: ...
    async def add_rule(self, rule: RuleConfig) -> bool: ...
    async def remove_rule(self, rule: RuleConfig) -> bool: ...
    async def remove_leftovers(self) -> list[str]: ...
    def close(self) -> None: ...


class VmacPort(Protocol):
    """Virtual MAC interfaces (macvlans with the RFC 5798 MAC); synchronous, as launching
    an instance is."""

    def create(self, base: str, vrid: int, family: int) -> str: ...
    def delete(self, name: str) -> bool: ...
    def close(self) -> None: ...


class AnnouncerPort(Protocol):
    def announce(self, ifname: str, address: IPAddress) -> None: ...
    def close(self) -> None: ...


class LinkChange(Protocol):
    @property
    def ifname(self) -> str: ...
    @property
    def up(self) -> bool: ...


class LinkPort(Protocol):
    def subscribe(self, on_change: Callable[[], None]) -> None: ...
    def poll(self) -> Sequence[LinkChange]: ...
    def close(self) -> None: ...


class HeardAnnouncement(Protocol):
    """A gratuitous ARP / ARP reply / unsolicited NA from another MAC than ours."""

    @property
    def ifname(self) -> str: ...
    @property
    def address(self) -> IPAddress: ...
    @property
    def mac(self) -> str: ...


class AnnouncementPort(Protocol):
    def subscribe(self, on_heard: Callable[[], None]) -> None: ...
    def recheck(self, ifname: str, address: IPAddress) -> None: ...  # the answer is heard
    def poll(self) -> Sequence[HeardAnnouncement]: ...
    def close(self) -> None: ...


class FirewallPort(Protocol):
    """Accept_Mode false: drops what is sent to these addresses (vrrpd.net.nft)."""

    async def block(self, addresses: Set[IPAddress]) -> bool: ...


class SocketFactory(Protocol):
    def __call__(self, ifname: str, family: int) -> AdvertSocket: ...


@dataclass
class Ports:
    open_socket: SocketFactory
    addresses: AddressPort
    announcer: AnnouncerPort
    links: LinkPort | None = None
    heard: AnnouncementPort | None = None  # None: split brain is seen from adverts only
    routes: RoutePort | None = None  # None: an instance with routes or rules cannot start
    vmacs: VmacPort | None = None  # None: an instance with useVmac cannot start
    firewall: FirewallPort | None = None  # None: accept: false is not enforced (tests' fakes)
