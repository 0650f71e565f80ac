"""The daemon's ports: what the driver needs from the network, as small Protocols.

The real adapters live in vrrpd.net (raw sockets, rtnetlink through pyroute2, AF_PACKET);
tests pass fakes. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence, Set
from dataclasses import dataclass
from typing import Protocol

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
    firewall: FirewallPort | None = None  # None: accept: false is not enforced (tests' fakes)
