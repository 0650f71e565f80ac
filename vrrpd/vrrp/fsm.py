"""The VRRP virtual router state machine (RFC 5798 §6), sans-I/O.

`VirtualRouter` takes events with an explicit `now` (seconds, any monotonic origin) and
returns the actions the caller must carry out, in order. It owns no timer: the caller
asks `next_deadline()` and calls `handle_timer(now)` once that time has come. Intervals
are kept in centiseconds, as the RFC specifies them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from vrrpd.vrrp.packet import AUTH_NONE, Advertisement, IPAddress


class State(StrEnum):
    INITIALIZE = "INITIALIZE"
    BACKUP = "BACKUP"
    MASTER = "MASTER"
    FAULT = "FAULT"  # a tracked interface is down (or, later, a weight-0 probe fails)
    STOPPED = "STOPPED"  # after shutdown() has completed its handover


class PreemptMode(StrEnum):
    ALWAYS = "Always"
    NEVER = "Never"
    DELAY = "Delay"


@dataclass(frozen=True, slots=True)
class RouterConfig:
    vrid: int
    version: int  # 2 or 3
    priority: int  # 1..255; 255 = address owner
    advert_interval_cs: int
    addresses: tuple[IPAddress, ...]  # the virtual addresses, as advertised
    primary_address: IPAddress  # our source address; the tie-breaker
    preempt: PreemptMode = PreemptMode.ALWAYS
    preempt_delay_cs: int = 0
    accept: bool = True
    auth_type: int = AUTH_NONE
    auth_data: bytes = b""


# Actions, returned in the order the caller must carry them out.


@dataclass(frozen=True, slots=True)
class SendAdvertisement:
    advertisement: Advertisement


@dataclass(frozen=True, slots=True)
class AddAddresses:
    """Put the virtual addresses on the interface."""


@dataclass(frozen=True, slots=True)
class RemoveAddresses:
    """Take the virtual addresses off the interface."""


@dataclass(frozen=True, slots=True)
class Announce:
    """Send gratuitous ARP / unsolicited NA for the virtual addresses (the caller repeats)."""


@dataclass(frozen=True, slots=True)
class Transition:
    old: State
    new: State
    reason: str


@dataclass(frozen=True, slots=True)
class Stopped:
    """The shutdown handover is complete: the caller may exit."""

    reason: str


Action = SendAdvertisement | AddAddresses | RemoveAddresses | Announce | Transition | Stopped


class VirtualRouter:
    def __init__(self, config: RouterConfig) -> None:
        raise NotImplementedError

    def start(self, now: float, *, fault: bool = False) -> list[Action]:
        """Startup event (§6.4.1). With fault=True (tracked link down) go to FAULT instead."""
        raise NotImplementedError

    def receive(self, advert: Advertisement, source: IPAddress, now: float) -> list[Action]:
        """An advertisement for this VRID that passed decode() and check_instance()."""
        raise NotImplementedError

    def handle_timer(self, now: float) -> list[Action]:
        raise NotImplementedError

    def next_deadline(self) -> float | None:
        raise NotImplementedError

    def set_fault(self, fault: bool, reason: str, now: float) -> list[Action]:
        raise NotImplementedError

    def set_priority(self, effective: int, now: float) -> list[Action]:
        raise NotImplementedError

    def shutdown(self, now: float) -> list[Action]:
        raise NotImplementedError
