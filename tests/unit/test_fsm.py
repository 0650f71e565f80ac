"""The VRRP state machine (vrrpd.vrrp.fsm): RFC 5798 §6 scenarios with explicit time.

Each scenario is a table of steps: at time t an event happens, and the step states the
actions the router returns, the state it is in afterwards and its next deadline. Times
are chosen so that the deadlines are exact binary fractions (skew keeps its fraction:
at priority 100 and 1 s, Skew_Time = 156 * 100 / 256 = 60.9375 cs).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv6Address
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from vrrpd.limits import IPAddress
from vrrpd.vrrp.fsm import (
    Action,
    AddAddresses,
    Announce,
    PreemptMode,
    RemoveAddresses,
    RouterConfig,
    SendAdvertisement,
    State,
    Stopped,
    Transition,
    VirtualRouter,
    master_down_interval_cs,
    skew_time_cs,
)
from vrrpd.vrrp.packet import AUTH_PASS, Advertisement

PRIMARY = IPv4Address("192.168.77.10")
LOWER_ADDR = IPv4Address("192.168.77.9")
HIGHER_ADDR = IPv4Address("192.168.77.11")
VIPS: tuple[IPAddress, ...] = (IPv4Address("192.168.77.100"),)
RESIGNED = "master 192.168.77.11 resigned (priority 0)"

INIT, BACKUP, MASTER, FAULT, STOPPED = (
    State.INITIALIZE,
    State.BACKUP,
    State.MASTER,
    State.FAULT,
    State.STOPPED,
)

# Priority 100 at 1 s: Master_Down_Interval = 300 + 60.9375 cs.
MDI_100 = 3.609375
# A priority-1 backup's Master_Down_Interval at 1 s: 300 + 255 * 100 / 256 cs.
HANDOVER_1S = 3.99609375


def config(**changes: Any) -> RouterConfig:
    base: dict[str, Any] = {
        "vrid": 51,
        "version": 3,
        "priority": 100,
        "advert_interval_cs": 100,
        "addresses": VIPS,
        "primary_address": PRIMARY,
    }
    base.update(changes)
    return RouterConfig(**base)


def advert(priority: int, interval_cs: int = 100, version: int = 3) -> Advertisement:
    return Advertisement(
        version=version, vrid=51, priority=priority, advert_interval_cs=interval_cs, addresses=VIPS
    )


def sent(priority: int, cfg: RouterConfig | None = None) -> SendAdvertisement:
    """The advertisement a router with `cfg` sends at `priority`."""
    c = cfg or config()
    return SendAdvertisement(
        Advertisement(
            version=c.version,
            vrid=c.vrid,
            priority=priority,
            advert_interval_cs=c.advert_interval_cs,
            addresses=c.addresses,
            auth_type=c.auth_type,
            auth_data=c.auth_data,
        )
    )


class T:
    """Matches a Transition whose reason contains `reason`."""

    def __init__(self, old: State, new: State, reason: str = "") -> None:
        self.old, self.new, self.reason = old, new, reason

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Transition)
            and (other.old, other.new) == (self.old, self.new)
            and self.reason in other.reason
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"T({self.old}->{self.new}, {self.reason!r})"


class S:
    """Matches a Stopped whose reason contains `reason`."""

    def __init__(self, reason: str = "") -> None:
        self.reason = reason

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Stopped) and self.reason in other.reason

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"S({self.reason!r})"


def takeover(reason: str, old: State = BACKUP, priority: int = 100) -> list[object]:
    return [T(old, MASTER, reason), AddAddresses(), Announce(), sent(priority)]


# Events: callables with a readable repr, so a failing step names itself.


@dataclass(frozen=True)
class Start:
    fault: bool = False

    def __call__(self, r: VirtualRouter, now: float) -> list[Action]:
        return r.start(now, fault=self.fault)


@dataclass(frozen=True)
class Recv:
    priority: int
    source: IPAddress = HIGHER_ADDR
    interval_cs: int = 100

    def __call__(self, r: VirtualRouter, now: float) -> list[Action]:
        return r.receive(advert(self.priority, self.interval_cs), self.source, now)


@dataclass(frozen=True)
class Timer:
    def __call__(self, r: VirtualRouter, now: float) -> list[Action]:
        return r.handle_timer(now)


@dataclass(frozen=True)
class Fault:
    on: bool
    reason: str = "link eth0 down"

    def __call__(self, r: VirtualRouter, now: float) -> list[Action]:
        return r.set_fault(self.on, self.reason, now)


@dataclass(frozen=True)
class Prio:
    effective: int

    def __call__(self, r: VirtualRouter, now: float) -> list[Action]:
        return r.set_priority(self.effective, now)


@dataclass(frozen=True)
class Sync:
    """Another sync-group member became MASTER (up=True) or fell back to BACKUP."""

    up: bool

    def __call__(self, r: VirtualRouter, now: float) -> list[Action]:
        if self.up:
            return r.sync_master("sync group g: member became MASTER", now)
        return r.sync_backup("sync group g: member fell back to BACKUP", now)


@dataclass(frozen=True)
class Shutdown:
    def __call__(self, r: VirtualRouter, now: float) -> list[Action]:
        return r.shutdown(now)


@dataclass(frozen=True)
class Reconf:
    """A new configuration in place: `changes` to the router's current one."""

    changes: tuple[tuple[str, Any], ...]
    effective: int | None = None

    def __call__(self, r: VirtualRouter, now: float) -> list[Action]:
        return r.reconfigure(replace(r.config, **dict(self.changes)), now, effective=self.effective)


def reconf(effective: int | None = None, **changes: Any) -> Reconf:
    return Reconf(tuple(sorted(changes.items())), effective)


ANY = object()

Step = tuple[float, Callable[[VirtualRouter, float], list[Action]], list[object], State, object]


@dataclass
class Scenario:
    name: str
    steps: list[Step]
    cfg: RouterConfig = field(default_factory=config)


def run(scenario: Scenario) -> VirtualRouter:
    r = VirtualRouter(scenario.cfg)
    for i, (t, event, want_actions, want_state, want_deadline) in enumerate(scenario.steps):
        got = event(r, t)
        where = f"step {i}: {event} at t={t}"
        assert got == want_actions, where
        assert r.state is want_state, where
        if want_deadline is not ANY:
            assert r.next_deadline() == want_deadline, where
    return r


# Reaching MASTER at 1 s / priority 100 from a quiet start takes exactly MDI_100.
BECOME_MASTER: list[Step] = [
    (0.0, Start(), [T(INIT, BACKUP, "startup")], BACKUP, MDI_100),
    (MDI_100, Timer(), takeover("master down timer expired"), MASTER, MDI_100 + 1),
]
M = MDI_100  # shorthand for "the time we became master" in the tables below

SCENARIOS = [
    Scenario(
        "startup backup becomes master after exactly Master_Down_Interval",
        [
            (0.0, Start(), [T(INIT, BACKUP, "startup")], BACKUP, MDI_100),
            (3.6, Timer(), [], BACKUP, MDI_100),
            (MDI_100, Timer(), takeover("master down timer expired"), MASTER, M + 1),
            (M + 0.5, Timer(), [], MASTER, M + 1),
            (M + 1, Timer(), [sent(100)], MASTER, M + 2),
            # A late timer gives one advertisement, re-armed from now (no burst).
            (M + 3.5, Timer(), [sent(100)], MASTER, M + 4.5),
        ],
    ),
    Scenario(
        "address owner is master at once",
        [
            (0.0, Start(), takeover("address owner", INIT, 255), MASTER, 1.0),
        ],
        config(priority=255),
    ),
    Scenario(
        "an advertisement resets the master down timer",
        [
            (0.0, Start(), [T(INIT, BACKUP)], BACKUP, MDI_100),
            (1.0, Recv(150), [], BACKUP, 1 + MDI_100),
            (MDI_100, Timer(), [], BACKUP, 1 + MDI_100),
            (2.0, Recv(150), [], BACKUP, 2 + MDI_100),
            (2 + MDI_100, Timer(), takeover("master down timer expired"), MASTER, 3 + MDI_100),
        ],
    ),
    Scenario(
        "priority 0 from the master: take over after Skew_Time",
        [
            (0.0, Start(), [T(INIT, BACKUP)], BACKUP, MDI_100),
            (1.0, Recv(150), [], BACKUP, 1 + MDI_100),
            (1.5, Recv(0), [], BACKUP, 1.5 + 0.609375),
            (2.109375, Timer(), takeover(RESIGNED), MASTER, 3.109375),
        ],
    ),
    Scenario(
        "master yields to a higher priority",
        [
            *BECOME_MASTER,
            (
                4.0,
                Recv(150, LOWER_ADDR),
                [
                    T(MASTER, BACKUP, "higher priority 150 > 100 from 192.168.77.9"),
                    RemoveAddresses(),
                ],
                BACKUP,
                4 + MDI_100,
            ),
        ],
    ),
    Scenario(
        "master yields to an equal priority with a higher primary address",
        [
            *BECOME_MASTER,
            (
                4.0,
                Recv(100, HIGHER_ADDR),
                [
                    T(MASTER, BACKUP, "equal priority 100 and higher address 192.168.77.11"),
                    RemoveAddresses(),
                ],
                BACKUP,
                4 + MDI_100,
            ),
        ],
    ),
    Scenario(
        "master keeps against a lower priority or an equal one with a lower address",
        [
            *BECOME_MASTER,
            (4.0, Recv(99, HIGHER_ADDR), [], MASTER, M + 1),
            (4.1, Recv(100, LOWER_ADDR), [], MASTER, M + 1),
            (4.2, Recv(100, PRIMARY), [], MASTER, M + 1),  # our own, looped back
        ],
    ),
    Scenario(
        "master answers priority 0 with an advertisement at once",
        [
            *BECOME_MASTER,
            (4.0, Recv(0), [sent(100)], MASTER, 5.0),
            (5.0, Timer(), [sent(100)], MASTER, 6.0),
        ],
    ),
    Scenario(
        "v3 backup learns the master's interval",
        [
            (0.0, Start(), [T(INIT, BACKUP)], BACKUP, MDI_100),
            # 3 * 50 + 156 * 50 / 256 = 150 + 30.46875 cs
            (1.0, Recv(150, interval_cs=50), [], BACKUP, 1 + 1.8046875),
            (2.0, Recv(0), [], BACKUP, 2 + 0.3046875),
        ],
    ),
    Scenario(
        "v3 master that yields learns the new master's interval",
        [
            *BECOME_MASTER,
            (
                4.0,
                Recv(150, interval_cs=200),
                [T(MASTER, BACKUP), RemoveAddresses()],
                BACKUP,
                4 + 6 + 1.21875,
            ),
        ],
    ),
    Scenario(
        "v2 keeps the configured interval",
        [
            (0.0, Start(), [T(INIT, BACKUP)], BACKUP, MDI_100),
            (1.0, Recv(150, interval_cs=200), [], BACKUP, 1 + MDI_100),
        ],
        config(version=2),
    ),
    Scenario(
        "preempt Always: a lower master is preempted at once",
        [
            (0.0, Start(), [T(INIT, BACKUP)], BACKUP, MDI_100),
            (
                1.0,
                Recv(90),
                takeover("preempting lower priority master 90 < 100 from 192.168.77.11"),
                MASTER,
                2.0,
            ),
        ],
    ),
    Scenario(
        "preempt Always: an equal priority master is not preempted",
        [
            (0.0, Start(), [T(INIT, BACKUP)], BACKUP, MDI_100),
            (1.0, Recv(100, LOWER_ADDR), [], BACKUP, 1 + MDI_100),
        ],
    ),
    Scenario(
        "preempt Delay: take over when the delay fires and the master is still lower",
        [
            (0.0, Start(), [T(INIT, BACKUP)], BACKUP, MDI_100),
            (1.0, Recv(90), [], BACKUP, 1 + MDI_100),  # preempt due at 6.0
            (2.0, Recv(90), [], BACKUP, 2 + MDI_100),
            (3.0, Recv(90), [], BACKUP, 6.0),
            (4.0, Recv(90), [], BACKUP, 6.0),
            (5.0, Recv(90), [], BACKUP, 6.0),
            (5.5, Timer(), [], BACKUP, 6.0),
            (
                6.0,
                Timer(),
                takeover("90 < 100 from 192.168.77.11 after 5 s preempt delay"),
                MASTER,
                7.0,
            ),
        ],
        config(preempt=PreemptMode.DELAY, preempt_delay_cs=500),
    ),
    Scenario(
        "preempt Delay: a lower advertisement after the delay takes over",
        [
            (0.0, Start(), [T(INIT, BACKUP)], BACKUP, MDI_100),
            (1.0, Recv(90), [], BACKUP, 3.0),
            (2.0, Recv(90), [], BACKUP, 3.0),
            (3.0, Recv(90), takeover("after 2 s preempt delay"), MASTER, 4.0),
        ],
        config(preempt=PreemptMode.DELAY, preempt_delay_cs=200),
    ),
    Scenario(
        "preempt Delay: an advertisement >= ours cancels the pending preempt",
        [
            (0.0, Start(), [T(INIT, BACKUP)], BACKUP, MDI_100),
            (1.0, Recv(90), [], BACKUP, 3.0),  # preempt due at 3.0
            (2.0, Recv(100), [], BACKUP, 2 + MDI_100),  # cancelled
            (3.0, Timer(), [], BACKUP, 2 + MDI_100),
            (3.5, Recv(90), [], BACKUP, 5.5),  # a fresh delay: due at 5.5
            (5.0, Recv(90), [], BACKUP, 5.5),
            (5.5, Timer(), takeover("preempt delay"), MASTER, 6.5),
        ],
        config(preempt=PreemptMode.DELAY, preempt_delay_cs=200),
    ),
    Scenario(
        "preempt Delay: no takeover when our priority fell below the master meanwhile",
        [
            (0.0, Start(), [T(INIT, BACKUP)], BACKUP, MDI_100),
            (1.0, Recv(90), [], BACKUP, 3.0),  # preempt due at 3.0
            (2.0, Prio(80), [], BACKUP, 3.0),
            (3.0, Timer(), [], BACKUP, 1 + MDI_100),
        ],
        config(preempt=PreemptMode.DELAY, preempt_delay_cs=200),
    ),
    Scenario(
        "preempt Delay 0 behaves as Always",
        [
            (0.0, Start(), [T(INIT, BACKUP)], BACKUP, MDI_100),
            (1.0, Recv(90), takeover("after 0 s preempt delay"), MASTER, 2.0),
        ],
        config(preempt=PreemptMode.DELAY, preempt_delay_cs=0),
    ),
    Scenario(
        "preempt Never: no takeover from a live master, even at much higher priority",
        [
            (0.0, Start(), [T(INIT, BACKUP)], BACKUP, 3 + 0.2265625),
            (1.0, Recv(1), [], BACKUP, 4.2265625),
            (2.0, Recv(1), [], BACKUP, 5.2265625),
            (3.0, Recv(1), [], BACKUP, 6.2265625),
            # the master falls silent
            (6.2265625, Timer(), takeover("master down timer expired", priority=198), MASTER, ANY),
        ],
        config(priority=198, preempt=PreemptMode.NEVER),
    ),
    Scenario(
        "preempt Never applies to a router that was master before",
        [
            *BECOME_MASTER,
            (4.0, Recv(150), [T(MASTER, BACKUP), RemoveAddresses()], BACKUP, 4 + MDI_100),
            (5.0, Recv(50), [], BACKUP, 5 + MDI_100),  # the master's priority dropped
            (6.0, Recv(50), [], BACKUP, 6 + MDI_100),
            (7.0, Recv(0), [], BACKUP, 7.609375),  # it resigns: now we take over
            (7.609375, Timer(), takeover(RESIGNED), MASTER, 8.609375),
        ],
        config(preempt=PreemptMode.NEVER),
    ),
    Scenario(
        "the address owner preempts even with preempt Never",
        [
            (0.0, Start(), takeover("owner", INIT, 255), MASTER, 1.0),
            (
                0.5,
                Recv(255),
                [T(MASTER, BACKUP, "equal priority 255"), RemoveAddresses()],
                BACKUP,
                ANY,
            ),
            (
                1.0,
                Recv(200),
                takeover("preempting lower priority master 200 < 255", priority=255),
                MASTER,
                2.0,
            ),
        ],
        config(priority=255, preempt=PreemptMode.NEVER),
    ),
    Scenario(
        "fault from INITIALIZE and back",
        [
            (0.0, Start(fault=True), [T(INIT, FAULT, "fault at startup")], FAULT, None),
            (1.0, Timer(), [], FAULT, None),
            (1.5, Recv(150), [], FAULT, None),
            (2.0, Fault(True), [], FAULT, None),
            (
                3.0,
                Fault(False, "link eth0 up"),
                [T(FAULT, BACKUP, "link eth0 up")],
                BACKUP,
                3 + MDI_100,
            ),
            (3.5, Fault(False), [], BACKUP, 3 + MDI_100),
        ],
    ),
    Scenario(
        "fault before start: start is then a no-op",
        [
            (0.0, Fault(True), [T(INIT, FAULT, "link eth0 down")], FAULT, None),
            (0.5, Start(), [], FAULT, None),
            (1.0, Fault(False, "link eth0 up"), [T(FAULT, BACKUP)], BACKUP, 1 + MDI_100),
        ],
    ),
    Scenario(
        "fault from BACKUP",
        [
            (0.0, Start(), [T(INIT, BACKUP)], BACKUP, MDI_100),
            (1.0, Recv(150), [], BACKUP, 1 + MDI_100),
            (2.0, Fault(True), [T(BACKUP, FAULT, "link eth0 down")], FAULT, None),
            (1 + MDI_100, Timer(), [], FAULT, None),
            (5.0, Fault(False, "up"), [T(FAULT, BACKUP, "up")], BACKUP, 5 + MDI_100),
        ],
    ),
    Scenario(
        "fault from MASTER resigns with priority 0, then removes the addresses",
        [
            *BECOME_MASTER,
            (
                4.0,
                Fault(True),
                [sent(0), T(MASTER, FAULT, "link eth0 down"), RemoveAddresses()],
                FAULT,
                None,
            ),
            (5.0, Fault(False), [T(FAULT, BACKUP)], BACKUP, 5 + MDI_100),
        ],
    ),
    Scenario(
        "the owner leaves FAULT as master",
        [
            (0.0, Start(fault=True), [T(INIT, FAULT)], FAULT, None),
            (1.0, Fault(False, "link up"), takeover("link up", FAULT, 255), MASTER, 2.0),
            (
                1.5,
                Fault(True),
                [sent(0, config(priority=255)), T(MASTER, FAULT), RemoveAddresses()],
                FAULT,
                None,
            ),
        ],
        config(priority=255),
    ),
    Scenario(
        "set_priority on a master advertises at once",
        [
            *BECOME_MASTER,
            (4.0, Prio(120), [sent(120)], MASTER, 5.0),
            (4.5, Prio(120), [], MASTER, 5.0),
            (5.0, Timer(), [sent(120)], MASTER, 6.0),
            (5.5, Prio(300), [sent(254)], MASTER, 6.5),
            (5.75, Prio(-20), [sent(1)], MASTER, 6.75),
        ],
    ),
    Scenario(
        "set_priority on a backup changes the skew from the next reset only",
        [
            (0.0, Start(), [T(INIT, BACKUP)], BACKUP, MDI_100),
            (1.0, Prio(200), [], BACKUP, MDI_100),
            (2.0, Recv(250), [], BACKUP, 2 + 3.21875),  # 3 s + 56 * 100 / 256 cs
        ],
    ),
    Scenario(
        "shutdown handover completes when another router advertises",
        [
            *BECOME_MASTER,
            (10.0, Shutdown(), [sent(0)], MASTER, 10 + HANDOVER_1S),
            (10.3, Timer(), [], MASTER, 10 + HANDOVER_1S),  # no periodic adverts
            (10.4, Recv(0, PRIMARY), [], MASTER, 10 + HANDOVER_1S),  # our own, looped
            (10.5, Shutdown(), [], MASTER, 10 + HANDOVER_1S),
            (
                10.7,
                Recv(90, HIGHER_ADDR),
                [RemoveAddresses(), T(MASTER, STOPPED, "192.168.77.11 took over"), S("took over")],
                STOPPED,
                None,
            ),
            (11.0, Recv(150), [], STOPPED, None),
            (12.0, Shutdown(), [], STOPPED, None),
            (13.0, Fault(True), [], STOPPED, None),
            (14.0, Fault(False), [], STOPPED, None),
        ],
    ),
    Scenario(
        "shutdown handover completes at the handover deadline",
        [
            *BECOME_MASTER,
            (10.0, Shutdown(), [sent(0)], MASTER, 10 + HANDOVER_1S),
            (11.0, Timer(), [], MASTER, 10 + HANDOVER_1S),
            (12.0, Prio(150), [], MASTER, 10 + HANDOVER_1S),  # noted, not advertised
            (
                10 + HANDOVER_1S,
                Timer(),
                [RemoveAddresses(), T(MASTER, STOPPED, "handover timed out"), S("3.996 s")],
                STOPPED,
                None,
            ),
            (15.0, Timer(), [], STOPPED, None),
        ],
    ),
    Scenario(
        "a fault during the handover finishes the shutdown",
        [
            *BECOME_MASTER,
            (10.0, Shutdown(), [sent(0)], MASTER, ANY),
            (
                10.5,
                Fault(True),
                [RemoveAddresses(), T(MASTER, STOPPED, "link eth0 down"), S("link eth0 down")],
                STOPPED,
                None,
            ),
        ],
    ),
    Scenario(
        "shutdown in BACKUP stops at once without advertising",
        [
            (0.0, Start(), [T(INIT, BACKUP)], BACKUP, MDI_100),
            (1.0, Shutdown(), [T(BACKUP, STOPPED, "shutdown"), S("shutdown")], STOPPED, None),
            (2.0, Shutdown(), [], STOPPED, None),
            (MDI_100, Timer(), [], STOPPED, None),
            (5.0, Start(), [], STOPPED, None),
        ],
    ),
    Scenario(
        "shutdown in FAULT",
        [
            (0.0, Start(fault=True), [T(INIT, FAULT)], FAULT, None),
            (1.0, Shutdown(), [T(FAULT, STOPPED), S()], STOPPED, None),
        ],
    ),
    Scenario(
        "shutdown before start",
        [(0.0, Shutdown(), [T(INIT, STOPPED), S()], STOPPED, None)],
    ),
    Scenario(
        "events before start are ignored",
        [
            (0.0, Timer(), [], INIT, None),
            (0.1, Recv(150), [], INIT, None),
            (0.2, Prio(120), [], INIT, None),
            (0.3, Fault(False), [], INIT, None),
            (0.5, Start(), [T(INIT, BACKUP)], BACKUP, 0.5 + 3.53125),  # skew at 120
            (0.75, Start(), [], BACKUP, ANY),
        ],
    ),
    Scenario(
        "reconfigured master advertises its new priority at once and stays master",
        [
            *BECOME_MASTER,
            (M + 0.5, reconf(priority=120), [sent(120)], MASTER, M + 1.5),
            (M + 1.5, Timer(), [sent(120)], MASTER, M + 2.5),
        ],
    ),
    Scenario(
        "reconfigured master advertises a longer interval at once, then paces by it",
        [
            *BECOME_MASTER,
            (
                M + 0.5,
                reconf(advert_interval_cs=300),
                [sent(100, config(advert_interval_cs=300))],
                MASTER,
                M + 3.5,
            ),
            (M + 3.5, Timer(), [sent(100, config(advert_interval_cs=300))], MASTER, M + 6.5),
        ],
    ),
    Scenario(
        "a reconfiguration that changes nothing advertised sends nothing",
        [
            *BECOME_MASTER,
            (M + 0.5, reconf(accept=False), [], MASTER, M + 1),
            (M + 0.6, reconf(preempt=PreemptMode.NEVER), [], MASTER, M + 1),
        ],
    ),
    Scenario(
        "backup raised above the master preempts at the master's next advert (Always)",
        [
            (0.0, Start(), [T(INIT, BACKUP)], BACKUP, MDI_100),
            (1.0, Recv(150), [], BACKUP, 1 + MDI_100),
            (1.5, reconf(priority=200), [], BACKUP, 1 + MDI_100),
            (2.0, Recv(150), takeover("master 150 < 200", priority=200), MASTER, 3.0),
        ],
    ),
    Scenario(
        "backup raised above the master under Never keeps following it",
        [
            (0.0, Start(), [T(INIT, BACKUP)], BACKUP, MDI_100),
            (1.0, Recv(150), [], BACKUP, 1 + MDI_100),
            (1.5, reconf(priority=200), [], BACKUP, 1 + MDI_100),
            (2.0, Recv(150), [], BACKUP, 2 + 3.21875),  # Master_Down_Interval at 200
        ],
        config(preempt=PreemptMode.NEVER),
    ),
    Scenario(
        "a router in FAULT takes a new configuration and joins with it",
        [
            (0.0, Start(fault=True), [T(INIT, FAULT)], FAULT, None),
            (1.0, reconf(priority=255), [], FAULT, None),
            (2.0, Fault(False), takeover("address owner", FAULT, 255), MASTER, 3.0),
        ],
    ),
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_scenario(scenario: Scenario) -> None:
    run(scenario)


# Details the tables do not show -------------------------------------------------------


def test_owner_start_actions_in_order() -> None:
    cfg = config(priority=255)
    r = VirtualRouter(cfg)
    actions = r.start(0.0)
    assert actions[1:] == [AddAddresses(), Announce(), sent(255, cfg)]
    assert r.master_address == PRIMARY
    assert r.master_since == 0.0


def test_advertisement_carries_the_configuration() -> None:
    cfg = config(
        version=2,
        vrid=7,
        priority=255,
        advert_interval_cs=300,
        addresses=(IPv4Address("10.0.0.1"), IPv4Address("10.0.0.2")),
        auth_type=AUTH_PASS,
        auth_data=b"secret\0\0",
    )
    actions = VirtualRouter(cfg).start(5.0)
    sends = [a for a in actions if isinstance(a, SendAdvertisement)]
    assert sends == [
        SendAdvertisement(
            Advertisement(
                version=2,
                vrid=7,
                priority=255,
                advert_interval_cs=300,
                addresses=(IPv4Address("10.0.0.1"), IPv4Address("10.0.0.2")),
                auth_type=AUTH_PASS,
                auth_data=b"secret\0\0",
            )
        )
    ]


def test_status_properties_follow_the_state() -> None:
    r = VirtualRouter(config())
    assert (r.state, r.master_address, r.master_since) == (INIT, None, None)
    assert r.skew_time_cs == 60.9375
    assert r.master_down_interval_cs == 360.9375
    r.start(0.0)
    r.receive(advert(150, 50), HIGHER_ADDR, 1.0)
    assert r.master_address == HIGHER_ADDR
    assert r.master_adver_interval_cs == 50
    assert r.master_down_interval_cs == 150 + 30.46875
    r.receive(advert(0), HIGHER_ADDR, 2.0)
    assert r.master_address is None  # the master resigned
    r.handle_timer(2.5)
    assert (r.state, r.master_address, r.master_since) == (MASTER, PRIMARY, 2.5)
    assert r.master_adver_interval_cs == 100  # our own again
    r.receive(advert(200), HIGHER_ADDR, 3.0)
    assert (r.state, r.master_address, r.master_since) == (BACKUP, HIGHER_ADDR, None)
    r.set_fault(True, "link down", 4.0)
    assert (r.master_address, r.next_deadline()) == (None, None)


def test_sync_master_moves_a_backup_member_up_at_once() -> None:
    r = VirtualRouter(config())
    r.start(0.0)
    actions = r.sync_master("sync group edge: inside became MASTER", 1.0)
    assert actions[0] == T(BACKUP, MASTER, "sync group edge: inside became MASTER")
    assert actions[1:] == [AddAddresses(), Announce(), sent(100)]
    assert r.state == MASTER and r.next_deadline() == 2.0
    assert r.sync_master("again", 1.5) == []  # already master: nothing


def test_sync_backup_steps_a_master_member_down_resigning() -> None:
    r = VirtualRouter(config())
    r.start(0.0)
    r.handle_timer(r.next_deadline() or 0.0)
    assert r.state == MASTER
    actions = r.sync_backup("sync group edge: inside fell back", 10.0)
    assert actions == [sent(0), T(MASTER, BACKUP, "sync group edge: inside fell back"),
                       RemoveAddresses()]  # fmt: skip
    assert r.state == BACKUP and r.next_deadline() == 10.0 + 3.609375
    assert r.sync_backup("again", 11.0) == []


@pytest.mark.parametrize("state", ["fault", "stopping", "init"])
def test_sync_events_leave_other_states_alone(state: str) -> None:
    r = VirtualRouter(config())
    if state == "fault":
        r.start(0.0, fault=True)
    elif state == "stopping":
        r.start(0.0)
        r.handle_timer(r.next_deadline() or 0.0)
        r.shutdown(5.0)
    assert r.sync_master("x", 6.0) == [] and r.sync_backup("x", 6.0) == []


def test_preempt_deadline_is_visible() -> None:
    r = VirtualRouter(config(preempt=PreemptMode.DELAY, preempt_delay_cs=3000))
    r.start(0.0)
    assert r.preempt_deadline is None
    r.receive(advert(50), HIGHER_ADDR, 1.0)
    assert r.preempt_deadline == 31.0
    r.receive(advert(0), HIGHER_ADDR, 2.0)
    assert r.preempt_deadline is None


def test_ipv6_tie_break_compares_addresses_as_integers() -> None:
    low, high = IPv6Address("fe80::9"), IPv6Address("fe80::a")
    r = VirtualRouter(config(primary_address=low, addresses=(IPv6Address("fd00::100"),)))
    r.start(0.0)
    r.handle_timer(MDI_100)
    assert r.receive(advert(100), IPv6Address("fe80::8"), 4.0) == []
    assert r.receive(advert(100), high, 4.1)[0] == T(MASTER, BACKUP, "higher address fe80::a")


@pytest.mark.parametrize(
    "changes",
    [
        {"vrid": 52},
        {"version": 2},
        {"addresses": (IPv4Address("192.168.77.101"),)},
        {"primary_address": LOWER_ADDR},
    ],
)
def test_reconfigure_refuses_what_makes_another_router(changes: dict[str, Any]) -> None:
    r = VirtualRouter(config())
    r.start(0.0)
    with pytest.raises(ValueError, match=f"{next(iter(changes))} changed"):
        r.reconfigure(replace(r.config, **changes), 1.0)
    assert r.config == config() and r.state is BACKUP


def test_reconfigure_checks_the_new_values() -> None:
    r = VirtualRouter(config())
    with pytest.raises(ValueError, match="advert_interval_cs 5000"):
        r.reconfigure(config(advert_interval_cs=5000), 0.0)
    assert r.config == config()


def test_reconfigure_takes_the_effective_priority_clamped() -> None:
    r = VirtualRouter(config())
    r.start(0.0)
    r.handle_timer(MDI_100)
    assert r.reconfigure(config(priority=120), 4.0, effective=300) == [sent(254)]
    assert r.effective_priority == 254
    assert r.reconfigure(config(priority=255), 4.1, effective=10) == [sent(255)]
    assert r.effective_priority == 255


def test_reconfigure_restarts_a_pending_delay_preempt_when_the_delay_changes() -> None:
    r = VirtualRouter(config(preempt=PreemptMode.DELAY, preempt_delay_cs=3000))
    r.start(0.0)
    r.receive(advert(50), HIGHER_ADDR, 1.0)
    assert r.preempt_deadline == 31.0
    r.reconfigure(config(preempt=PreemptMode.DELAY, preempt_delay_cs=500), 2.0)
    assert r.preempt_deadline is None and r.state is BACKUP
    r.receive(advert(50), HIGHER_ADDR, 3.0)
    assert r.preempt_deadline == 8.0


def test_reconfigure_of_a_v2_backup_counts_on_its_new_interval() -> None:
    r = VirtualRouter(config(version=2))
    r.start(0.0)
    r.receive(advert(150, version=2), HIGHER_ADDR, 1.0)
    r.reconfigure(config(version=2, advert_interval_cs=200), 1.5)
    assert r.master_adver_interval_cs == 200
    r.receive(advert(150, 200, version=2), HIGHER_ADDR, 2.0)
    assert r.next_deadline() == 2.0 + master_down_interval_cs(100, 200) / 100


def test_set_priority_is_ignored_by_the_owner() -> None:
    r = VirtualRouter(config(priority=255))
    r.start(0.0)
    assert r.set_priority(10, 0.5) == []
    assert r.effective_priority == 255


@pytest.mark.parametrize(
    ("given", "effective"), [(0, 1), (1, 1), (254, 254), (255, 254), (-1000, 1), (10**6, 254)]
)
def test_set_priority_clamps_without_raising(given: int, effective: int) -> None:
    r = VirtualRouter(config())
    r.set_priority(given, 0.0)
    assert r.effective_priority == effective


@pytest.mark.parametrize(
    "changes",
    [
        {"vrid": 0},
        {"vrid": 256},
        {"version": 4},
        {"priority": 0},
        {"priority": 256},
        {"advert_interval_cs": 0},
        {"advert_interval_cs": 4096},
        {"version": 2, "advert_interval_cs": 25600},
        {"preempt_delay_cs": -1},
    ],
)
def test_invalid_config_is_refused_with_the_field_named(changes: dict[str, int]) -> None:
    name = list(changes)[-1]  # the field in error is the last one given
    with pytest.raises(ValueError, match=name):
        VirtualRouter(config(**changes))


def test_v2_accepts_intervals_up_to_255_seconds() -> None:
    r = VirtualRouter(config(version=2, advert_interval_cs=25500))
    r.start(0.0)
    assert r.next_deadline() == 3 * 255 + 156 * 255 / 256


def test_advertised_interval_zero_counts_as_one_centisecond() -> None:
    r = VirtualRouter(config())
    r.start(0.0)
    r.receive(advert(150, 0), HIGHER_ADDR, 1.0)
    assert r.master_adver_interval_cs == 1
    deadline = r.next_deadline()
    assert deadline is not None and deadline > 1.0


def test_skew_keeps_its_fraction() -> None:
    assert skew_time_cs(100, 100) == 60.9375
    assert master_down_interval_cs(100, 100) == 360.9375
    assert skew_time_cs(255, 1) == 1 / 256
    assert master_down_interval_cs(1, 100) == 300 + 99.609375


@given(interval=st.integers(1, 4095), priority=st.integers(1, 254))
def test_skew_is_strictly_ordered_by_priority(interval: int, priority: int) -> None:
    # Integer truncation (FRR) would give equal skews to neighbouring priorities.
    assert skew_time_cs(priority + 1, interval) < skew_time_cs(priority, interval)
    assert 0 < skew_time_cs(priority, interval) < interval


# Several routers on one simulated link ------------------------------------------------


class Link:
    """Routers on one lossless, zero-latency segment, driven by their own deadlines."""

    def __init__(self, configs: list[RouterConfig]) -> None:
        self.routers = [VirtualRouter(c) for c in configs]
        self.holding = [False] * len(configs)
        self.now = 0.0
        self.log: list[tuple[float, int, Action]] = []

    def apply(self, index: int, actions: list[Action]) -> None:
        queue = [(index, actions)]
        while queue:
            i, acts = queue.pop(0)
            for a in acts:
                self.log.append((self.now, i, a))
                if isinstance(a, AddAddresses):
                    self.holding[i] = True
                elif isinstance(a, RemoveAddresses):
                    self.holding[i] = False
                elif isinstance(a, SendAdvertisement):
                    source = self.routers[i].config.primary_address
                    for j, other in enumerate(self.routers):
                        if j != i:
                            queue.append((j, other.receive(a.advertisement, source, self.now)))

    def event(self, index: int, call: Callable[[VirtualRouter, float], list[Action]]) -> None:
        self.apply(index, call(self.routers[index], self.now))

    def run_until(self, end: float) -> None:
        while True:
            due = [
                (d, i) for i, r in enumerate(self.routers) if (d := r.next_deadline()) is not None
            ]
            if not due or min(due)[0] > end:
                break
            self.now, i = min(due)
            self.event(i, Timer())
        self.now = end

    def masters(self) -> list[int]:
        return [i for i, r in enumerate(self.routers) if r.state is MASTER]


def node(i: int, priority: int, **changes: Any) -> RouterConfig:
    return config(priority=priority, primary_address=IPv4Address(f"192.168.77.{10 + i}"), **changes)


def test_link_make_before_break_shutdown() -> None:
    link = Link([node(0, 150), node(1, 100)])
    link.event(0, Start())
    link.event(1, Start())
    link.run_until(10.0)
    assert link.masters() == [0] and link.holding == [True, False]
    link.event(0, Shutdown())
    assert link.holding == [True, False]  # the master keeps the VIP while resigning
    link.run_until(10.5)
    assert link.holding == [True, False]
    link.run_until(10.609375)  # the backup's Skew_Time: it takes over, the old master goes
    assert link.masters() == [1] and link.holding == [False, True]
    assert link.routers[0].state is STOPPED


def test_link_probe_driven_priority_drop_fails_over_at_once() -> None:
    link = Link([node(0, 150), node(1, 100)])
    link.event(0, Start())
    link.event(1, Start())
    link.run_until(10.0)
    link.event(0, Prio(90))
    assert link.masters() == [1] and link.holding == [False, True]
    link.event(0, Prio(150))  # a backup does not advertise: it preempts on the next advert
    assert link.masters() == [1]
    link.run_until(11.0)
    assert link.masters() == [0] and link.holding == [True, False]


def started_link(*configs: RouterConfig) -> Link:
    link = Link(list(configs))
    for i in range(len(configs)):
        link.event(i, Start())
    link.run_until(10.0)
    return link


def transitions_after(link: Link, t: float) -> list[tuple[int, Transition]]:
    return [(i, a) for when, i, a in link.log if when >= t and isinstance(a, Transition)]


def test_link_master_lowered_below_a_backup_hands_over_under_always() -> None:
    link = started_link(node(0, 150), node(1, 100))
    assert link.masters() == [0]
    link.event(0, reconf(priority=90))
    # Its advert at 90 makes the backup preempt; the backup's advert makes it yield.
    assert link.masters() == [1] and link.holding == [False, True]
    assert [a for _, a in transitions_after(link, 10.0)] == [
        T(BACKUP, MASTER, "lower priority master 90 < 100"),
        T(MASTER, BACKUP, "higher priority 100 > 90"),
    ]


def test_link_master_lowered_below_a_backup_keeps_the_vip_under_never() -> None:
    never = {"preempt": PreemptMode.NEVER}
    link = started_link(node(0, 150, **never), node(1, 100, **never))
    link.event(0, reconf(priority=90))
    link.run_until(30.0)
    assert link.masters() == [0] and transitions_after(link, 10.0) == []


def test_link_backup_raised_above_the_master_takes_over_under_always() -> None:
    link = started_link(node(0, 150), node(1, 100))
    link.event(1, reconf(priority=200))
    assert link.masters() == [0]  # a backup does not advertise: the master's next advert
    link.run_until(11.0)
    assert link.masters() == [1] and link.holding == [False, True]


def test_link_backup_raised_above_the_master_moves_nothing_under_never() -> None:
    never = {"preempt": PreemptMode.NEVER}
    link = started_link(node(0, 150, **never), node(1, 100, **never))
    link.event(1, reconf(priority=200))
    link.run_until(30.0)
    assert link.masters() == [0] and transitions_after(link, 10.0) == []


def test_link_raising_the_masters_priority_moves_nothing() -> None:
    link = started_link(node(0, 150), node(1, 100))
    link.event(0, reconf(priority=200))
    link.event(1, reconf(priority=120))
    link.run_until(30.0)
    assert link.masters() == [0] and transitions_after(link, 10.0) == []
    assert link.routers[1].master_priority == 200


@pytest.mark.parametrize("interval_cs", [10, 300, 4095])
def test_link_a_new_interval_on_every_node_keeps_the_master(interval_cs: int) -> None:
    link = started_link(node(0, 150), node(1, 100), node(2, 50))
    for i in (1, 2, 0):  # backups first or last: neither may take over
        link.event(i, reconf(advert_interval_cs=interval_cs))
    link.run_until(10.0 + 5 * interval_cs / 100)
    assert link.masters() == [0] and transitions_after(link, 10.0) == []
    assert link.routers[1].master_adver_interval_cs == interval_cs


@settings(max_examples=60, deadline=None)
@given(
    priorities=st.lists(st.integers(1, 255), min_size=2, max_size=4),
    starts=st.lists(st.integers(0, 500), min_size=4, max_size=4),
    preempt=st.sampled_from(list(PreemptMode)),
    interval=st.sampled_from([1, 10, 100, 300]),
)
def test_link_converges_to_one_master(
    priorities: list[int], starts: list[int], preempt: PreemptMode, interval: int
) -> None:
    link = Link(
        [
            node(i, p, preempt=preempt, preempt_delay_cs=50, advert_interval_cs=interval)
            for i, p in enumerate(priorities)
        ]
    )
    order = sorted(range(len(priorities)), key=lambda i: starts[i])
    for i in order:
        link.run_until(starts[i] / 100 * interval / 100)
        link.event(i, Start())
    link.run_until(link.now + 20 * interval / 100 + 1.0)  # also past the 0.5 s preempt delay
    masters = link.masters()
    assert len(masters) == 1
    assert link.holding == [r.state is MASTER for r in link.routers]
    if preempt is not PreemptMode.NEVER or 255 in priorities:
        # Among equal priorities the first to become master stays (a backup with the
        # same priority accepts it), so only the priority is certain.
        assert priorities[masters[0]] == max(priorities)


# Random event sequences ----------------------------------------------------------------

SOURCES = [LOWER_ADDR, PRIMARY, HIGHER_ADDR, IPv4Address("192.168.77.200")]

PRIORITIES = st.one_of(st.integers(0, 255), st.sampled_from([0, 1, 99, 100, 101, 254, 255]))
receives = st.builds(
    Recv,
    PRIORITIES,
    st.sampled_from(SOURCES),
    st.one_of(st.integers(0, 4095), st.sampled_from([1, 100])),
)
# Weighted by repetition: adverts and timers are most of a router's life.
# (A shutdown ends the interesting part of a run, so it is rare.)
timers_or_shutdown = st.integers(0, 15).map(lambda i: Shutdown() if i == 0 else Timer())
events = st.one_of(
    receives,
    receives,
    receives,
    timers_or_shutdown,
    timers_or_shutdown,
    st.builds(Fault, st.booleans(), st.just("probe")),
    st.builds(Prio, st.one_of(st.integers(-300, 300), st.sampled_from([99, 100, 101]))),
    st.builds(Start, st.booleans()),
    st.builds(Sync, st.booleans()),
    st.builds(
        lambda effective, **changes: reconf(effective, **changes),
        st.one_of(st.none(), st.integers(-300, 300)),
        priority=st.one_of(st.integers(1, 255), st.sampled_from([1, 100, 254, 255])),
        advert_interval_cs=st.sampled_from([1, 7, 100, 4095]),
        preempt=st.sampled_from(list(PreemptMode)),
        preempt_delay_cs=st.integers(0, 1000),
        auth_data=st.sampled_from([b"", b"secret"]),
    ),
)
configs = st.builds(
    config,
    version=st.sampled_from([2, 3]),
    priority=st.one_of(st.integers(1, 255), st.sampled_from([1, 100, 254, 255])),
    advert_interval_cs=st.sampled_from([1, 7, 100, 4095]),
    preempt=st.sampled_from(list(PreemptMode)),
    preempt_delay_cs=st.one_of(st.just(0), st.integers(0, 1000)),
)
# Time moves on before each event: to the next deadline (hitting boundaries exactly), a
# little, or a lot.
time_steps = st.one_of(
    st.just("deadline"),
    st.floats(0, 2, allow_nan=False),
    st.floats(0, 60, allow_nan=False),
)


def read_everything(r: VirtualRouter) -> None:
    for name in (
        "state",
        "effective_priority",
        "master_address",
        "master_adver_interval_cs",
        "master_since",
        "skew_time_cs",
        "master_down_interval_cs",
        "stopping",
        "preempt_deadline",
        "config",
    ):
        getattr(r, name)
    r.next_deadline()


class RandomEvents(RuleBasedStateMachine):
    """Random event sequences against one router, checking what must always hold."""

    def __init__(self) -> None:
        super().__init__()
        self.cfg = config()
        self.router = VirtualRouter(self.cfg)
        self.now = 0.0
        self.holding = False  # as the caller sees it, from the actions applied so far
        self.ever_added = False

    @initialize(cfg=configs, fault=st.sampled_from([False, False, False, True]))
    def start(self, cfg: RouterConfig, fault: bool) -> None:
        self.cfg = cfg
        self.router = VirtualRouter(cfg)
        self.apply(Start(fault))

    @rule(when=time_steps, event=events)
    def event(
        self, when: str | float, event: Callable[[VirtualRouter, float], list[Action]]
    ) -> None:
        if when == "deadline":
            deadline = self.router.next_deadline()
            self.now = max(self.now, deadline) if deadline is not None else self.now + 1
        else:
            assert isinstance(when, float)
            self.now += when
        self.apply(event)

    def apply(self, event: Callable[[VirtualRouter, float], list[Action]]) -> None:
        r, now = self.router, self.now
        before_state = r.state
        actions = event(r, now)
        cfg = self.cfg = r.config  # a Reconf changes it

        if before_state is STOPPED:
            assert actions == []
        transitions = [a for a in actions if isinstance(a, Transition)]
        assert len(transitions) <= 1
        if transitions:
            assert (transitions[0].old, transitions[0].new) == (before_state, r.state)
            assert transitions[0].reason
        else:
            assert r.state is before_state
        for a in actions:
            if isinstance(a, AddAddresses):
                assert not self.holding, "AddAddresses twice without RemoveAddresses"
                self.holding = self.ever_added = True
            elif isinstance(a, RemoveAddresses):
                assert self.holding, "RemoveAddresses without AddAddresses"
                self.holding = False
            elif isinstance(a, SendAdvertisement):
                adv = a.advertisement
                assert self.holding, "only a router holding the addresses advertises"
                assert adv.priority in (0, r.effective_priority)
                assert adv.advert_interval_cs == cfg.advert_interval_cs
                assert (adv.version, adv.vrid, adv.addresses) == (cfg.version, cfg.vrid, VIPS)
        stopped_now = r.state is STOPPED and before_state is not STOPPED
        assert any(isinstance(a, Stopped) for a in actions) == stopped_now
        if isinstance(event, Timer):
            deadline = r.next_deadline()
            assert deadline is None or deadline > now
            assert r.handle_timer(now) == [], "a second call at the same time finds nothing due"

    @invariant()
    def state_is_valid(self) -> None:
        assert self.router.state in State

    @invariant()
    def master_exactly_when_holding_the_addresses(self) -> None:
        assert self.holding == (self.router.state is MASTER)
        if self.router.state is MASTER:
            assert self.ever_added

    @invariant()
    def effective_priority_is_clamped(self) -> None:
        if self.cfg.priority == 255:
            assert self.router.effective_priority == 255
        else:
            assert 1 <= self.router.effective_priority <= 254

    @invariant()
    def a_timer_runs_exactly_in_master_and_backup(self) -> None:
        running = self.router.next_deadline() is not None
        assert running == (self.router.state in (MASTER, BACKUP))

    @invariant()
    def queries_are_pure(self) -> None:
        # Asking changes nothing; a dropped packet, which is no call at all, neither.
        before = dict(vars(self.router))  # every attribute is an immutable value
        read_everything(self.router)
        assert vars(self.router) == before


RandomEvents.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_random_events_keep_the_invariants = RandomEvents.TestCase
