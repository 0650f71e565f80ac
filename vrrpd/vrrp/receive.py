"""What a received datagram must pass before a `VirtualRouter` hears it, sans-I/O.

The codec (`packet.decode`) judges the bytes: TTL / hop limit, version, length, checksum,
address count, VRID 0. Here they are judged against the routers listening on one interface
and address family (RFC 5798 §7.1, FRR's vrrp_recv_advertisement): our own adverts looped
back are ignored, the VRID picks the router, then that router's own checks: a unicast
router hears only its peers; `packet.check_instance` compares version, v2 authentication
and interval, and the address list. The driver only counts and logs what comes back.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from vrrpd.limits import IPAddress
from vrrpd.vrrp import packet
from vrrpd.vrrp.fsm import RouterConfig
from vrrpd.vrrp.packet import Advertisement, Dropped, DropReason

K = TypeVar("K")  # what the caller knows a router by


@dataclass(frozen=True, slots=True)
class Listener(Generic[K]):
    """A router listening on the socket, and what only its driver knows of it."""

    key: K
    config: RouterConfig
    peers: tuple[IPAddress, ...] | None = None  # unicast: the only sources it hears
    verify_addresses: bool = True  # False: its list changes while it runs (pools)


@dataclass(frozen=True, slots=True)
class Verdict(Generic[K]):
    """One router's verdict on a decoded advert: `dropped` None means it hears it."""

    key: K
    dropped: Dropped | None


def screen(advert: Advertisement, source: IPAddress, listener: Listener[K]) -> Dropped | None:
    """One router's checks, its VRID matched: why it drops the advert, or None (it hears
    it). The detail names the source, ready for a log line."""
    if listener.peers is not None and source not in listener.peers:
        return Dropped(DropReason.PEER, f"advert from {source}, not a configured peer")
    config = listener.config
    drop = packet.check_instance(
        advert,
        version=config.version,
        advert_interval_cs=config.advert_interval_cs,
        addresses=config.addresses if listener.verify_addresses else None,
        auth_type=config.auth_type,
        auth_data=config.auth_data,
    )
    if drop is None:
        return None
    return Dropped(drop.reason, f"from {source}: {drop.detail}")


def sort_out(
    payload: bytes,
    *,
    source: IPAddress,
    destination: IPAddress,
    ttl: int,
    listeners: Iterable[Listener[K]],
) -> tuple[Advertisement, list[Verdict[K]]] | Dropped | None:
    """One datagram received on a socket the `listeners` share: None for one of our own
    (its source is one of theirs; not even decoded), the codec's `Dropped` for bytes no
    router could take, or the advert with the verdict of each router of its VRID (none:
    no router here has that VRID, which is no error: a LAN carries other routers)."""
    listeners = list(listeners)
    if any(source == listener.config.primary_address for listener in listeners):
        return None
    result = packet.decode(payload, source=source, destination=destination, ttl=ttl)
    if isinstance(result, Dropped):
        return result
    verdicts = [
        Verdict(listener.key, screen(result, source, listener))
        for listener in listeners
        if listener.config.vrid == result.vrid
    ]
    return result, verdicts
