"""Probe state and the priority it yields: keepalived's vrrp_script rise/fall and weights, pure.

Everything here follows keepalived 2.x (acassen/keepalived), read from the source:

* ``keepalived/vrrp/vrrp_scheduler.c`` ``vrrp_init_script`` and ``vrrp_script_child_thread``:
  the per-script counter ``result`` runs from 0 to ``rise + fall - 1``; the script is up while
  ``result >= rise``. A success below ``rise - 1`` counts up, the success that reaches ``rise``
  makes it up and fills the counter to ``rise + fall - 1``; any further success refills it. A
  failure above ``rise`` counts down, the failure at ``rise`` makes it down and empties the
  counter to 0; any further failure keeps it at 0. So a down probe needs ``rise`` successes in a
  row and an up probe ``fall`` failures in a row, and one contrary result restarts the count.
* Initial state: without ``init_fail`` a script starts in ``SCRIPT_INIT_STATE_INIT`` with
  ``result = rise - 1`` ("one success is enough"), and the first failure also takes effect at
  once (the ``init_state == SCRIPT_INIT_STATE_INIT`` clause), so the *first* result decides,
  whatever rise and fall are. Until then the script adds nothing to the priority
  (``initialise_track_script_state`` skips weighted scripts in INIT) and a weight-0 script holds
  its instance in INIT (``num_script_init``). With ``init_fail`` it starts down with
  ``result = 0`` and needs ``rise`` successes.
* ``keepalived/vrrp/vrrp_track.c`` ``process_script_update_priority``: weight > 0 adds while
  the script is up, weight < 0 subtracts while it is down, weight 0 puts the instance in FAULT
  while it is down (checked before the address-owner test, so it applies to priority 255 too).
  ``vrrp_set_effective_priority``: an address owner (base 255) is never adjusted, and the total
  is clamped to [1, 254].

* ``keepalived/trackers/track_file.c`` ``update_track_file_status`` and
  ``process_update_vrrp_track_file_status`` (a track_file, our ``file`` probe: "scaled"
  here): the number read times the weight, the result held to [-254, 253]; -254 (the
  product at or below it) puts the instance in FAULT, anything else is added to the base
  priority. With weight 0 a non-zero number is FAULT and 0 is fine. A number that cannot
  be read changes nothing (keepalived ignores an invalid number). No rise or fall: each
  number read takes effect at once.

keepalived applies those weights incrementally on each state change; here the priority is
recomputed from the probes' current states, which gives the same numbers and makes "a probe
changes the priority once per state change, never cumulatively" true by construction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, TypeVar

from vrrpd.limits import PRIORITY_MIN, PRIORITY_OWNER, PROBE_WEIGHT_MAX, clamp_priority

# keepalived's bounds of a track_file's number times its weight (track_file.c): the floor
# means FAULT.
SCALED_FAULT, SCALED_MAX = -254, 253


class ProbeState(StrEnum):
    INIT = "init"  # no result yet: contributes nothing, a weight-0 probe holds the instance
    UP = "up"
    DOWN = "down"


class ProbeTracker:
    """One probe's hysteresis: feed it results with ``record``; read ``state``.

    ``initially_up``:
      * ``None`` — keepalived's default: INIT until the first result, which alone decides.
      * ``False`` — keepalived's ``init_fail``: DOWN, ``rise`` successes to come up.
      * ``True`` — UP, ``fall`` failures to go down. keepalived has no such option; it is for
        carrying a probe's state over a config reload (keepalived's INIT_RELOAD keeps the old
        script's state the same way).

    ``scaled`` (keepalived track_file): ``record`` takes the number the check read, which
    times the weight is the contribution; rise, fall and ``initially_up`` do not apply, and
    ``value`` is the number carried over a reload (None: INIT until the first).
    """

    __slots__ = ("_fall", "_name", "_result", "_rise", "_scaled", "_state", "_value", "_weight")

    def __init__(
        self,
        name: str,
        rise: int,
        fall: int,
        weight: int,
        initially_up: bool | None = None,
        *,
        scaled: bool = False,
        value: int | None = None,
    ) -> None:
        if rise < 1:
            raise ValueError(f"probe {name!r}: rise must be at least 1, got {rise}")
        if fall < 1:
            raise ValueError(f"probe {name!r}: fall must be at least 1, got {fall}")
        if not -PROBE_WEIGHT_MAX <= weight <= PROBE_WEIGHT_MAX:
            raise ValueError(
                f"probe {name!r}: weight must be in [-{PROBE_WEIGHT_MAX}, {PROBE_WEIGHT_MAX}], "
                f"got {weight}"
            )
        self._name = name
        self._rise = rise
        self._fall = fall
        self._weight = weight
        self._scaled = scaled
        self._value: int | None = None
        if scaled:
            self._state = ProbeState.INIT
            self._result = 0
            if value is not None:
                self._take(value)
            return
        # `_result` is keepalived's counter, kept with the same meaning so the transitions can
        # be checked line by line against vrrp_script_child_thread.
        if initially_up is None:
            self._state = ProbeState.INIT
            self._result = rise - 1
        elif initially_up:
            self._state = ProbeState.UP
            self._result = rise + fall - 1
        else:
            self._state = ProbeState.DOWN
            self._result = 0

    @property
    def name(self) -> str:
        return self._name

    @property
    def rise(self) -> int:
        return self._rise

    @property
    def fall(self) -> int:
        return self._fall

    @property
    def weight(self) -> int:
        return self._weight

    @property
    def state(self) -> ProbeState:
        return self._state

    @property
    def scaled(self) -> bool:
        return self._scaled

    @property
    def value(self) -> int | None:
        """The last number a scaled probe read (None: none yet, or not scaled)."""
        return self._value

    @property
    def faulting(self) -> bool:
        """Down in a way that puts the instance in FAULT: weight 0, or a scaled probe whose
        number times its weight reached keepalived's floor."""
        return self._state is ProbeState.DOWN and (self._weight == 0 or self._scaled)

    def _scaled_status(self, value: int) -> int:
        """keepalived's status of a track_file: SCALED_FAULT (FAULT) or what it adds."""
        if self._weight == 0:
            return SCALED_FAULT if value else 0
        return max(SCALED_FAULT, min(SCALED_MAX, value * self._weight))

    def _take(self, value: int) -> None:
        self._value = value
        fault = self._scaled_status(value) == SCALED_FAULT
        self._state = ProbeState.DOWN if fault else ProbeState.UP

    def record(self, ok: bool, value: int | None = None) -> bool:
        """Count one result; True when the state changed (INIT counts as a state to leave)
        or, for a scaled probe, what it adds to the priority did."""
        if self._scaled:
            if value is None:  # unreadable: keepalived keeps the last number it read
                return False
            before = (self._state, self.contribution())
            self._take(value)
            return (self._state, self.contribution()) != before
        old = self._state
        top = self._rise + self._fall - 1
        if ok:
            if self._result < self._rise - 1:
                self._result += 1
            else:
                # Reaching rise (or any success while up) fills the counter, so a later
                # failure streak must be a full `fall` long.
                self._result = top
                self._state = ProbeState.UP
        else:
            if self._result > self._rise:
                self._result -= 1
            else:
                # At rise while up, or the first result out of INIT: down. While down this
                # just restarts the success count.
                self._result = 0
                self._state = ProbeState.DOWN
        return self._state is not old

    def contribution(self) -> int:
        """What this probe adds to the base priority now (weight 0 is a FAULT, not a number)."""
        if self._scaled:
            if self._value is None or self._state is not ProbeState.UP:
                return 0
            return self._scaled_status(self._value)
        if self._weight > 0 and self._state is ProbeState.UP:
            return self._weight
        if self._weight < 0 and self._state is ProbeState.DOWN:
            return self._weight
        return 0

    def __repr__(self) -> str:
        scaled = f", scaled, value={self._value}" if self._scaled else ""
        return (
            f"ProbeTracker({self._name!r}, rise={self._rise}, fall={self._fall}, "
            f"weight={self._weight}, state={self._state.value}{scaled})"
        )


class _Check(Protocol):
    @property
    def scaled(self) -> bool: ...


class _Probe(Protocol):  # vrrpd.config.ProbeConfig, which this module does not import
    @property
    def name(self) -> str: ...
    @property
    def rise(self) -> int: ...
    @property
    def fall(self) -> int: ...
    @property
    def weight(self) -> int: ...
    @property
    def check(self) -> _Check: ...


def tracker_for(
    probe: _Probe, initially_up: bool | None = None, value: int | None = None
) -> ProbeTracker:
    """The tracker of a configured probe: scaled when its check yields a number."""
    return ProbeTracker(
        probe.name,
        probe.rise,
        probe.fall,
        probe.weight,
        initially_up,
        scaled=probe.check.scaled,
        value=value,
    )


@dataclass(frozen=True)
class Priority:
    """The instance takes part in the election with ``value``."""

    value: int  # clamped to [1, 254], or 255 for an address owner
    base: int
    total: int  # base + contributions before clamping: shows how far out of range it went
    adjustments: tuple[tuple[str, int], ...] = ()  # (probe name, contribution), non-zero only


@dataclass(frozen=True)
class Fault:
    """A weight-0 probe is down, or a scaled one at its floor: the instance must be in FAULT
    (it never holds the VIP)."""

    failing: tuple[str, ...]


@dataclass(frozen=True)
class Pending:
    """A weight-0 probe has no result yet: keepalived keeps the instance in INIT until it has."""

    awaiting: tuple[str, ...]


Result = Priority | Fault | Pending


def effective_priority(base: int, trackers: Iterable[ProbeTracker]) -> Result:
    """The instance's standing given its base priority and its probes' current states.

    FAULT wins over Pending (keepalived faults an instance on a failing weight-0 script even
    while others are still in INIT). An address owner keeps 255 whatever weighted probes say,
    but a failing weight-0 probe still faults it, as in keepalived.
    """
    if not PRIORITY_MIN <= base <= PRIORITY_OWNER:
        raise ValueError(f"base priority must be in [1, 255], got {base}")
    trackers = list(trackers)
    failing = tuple(t.name for t in trackers if t.faulting)
    if failing:
        return Fault(failing)
    awaiting = tuple(t.name for t in trackers if t.weight == 0 and t.state is ProbeState.INIT)
    if awaiting:
        return Pending(awaiting)
    adjustments = tuple((t.name, c) for t in trackers if (c := t.contribution()))
    total = base + sum(c for _, c in adjustments)
    return Priority(clamp_priority(base, total), base, total, adjustments)


def shared_priority(base: int, members: Iterable[Iterable[ProbeTracker]]) -> Result:
    """A sync-group member's priority: its own base with the weighted probes of every member
    (keepalived's group track_script), so the members of one node advertise in the same order
    and the group's elections agree. Weight-0 probes stay each member's own: their FAULT
    spreads through the group instead. For an instance outside a group, `members` is its own
    trackers alone."""
    weighted = [t for trackers in members for t in trackers if t.weight != 0]
    # A scaled probe at its floor faults its own member (and so the group), not the sum.
    return effective_priority(base, [t for t in weighted if not t.faulting])


_M = TypeVar("_M")


def weighing_members(members: Iterable[_M], virtualip: Callable[[_M], str]) -> list[_M]:
    """The sync-group members whose weighted probes `shared_priority` counts: the first of
    each VirtualIP. A dual-stack VirtualIP is two instances, one per address family, that
    run the same probes: its weights count once, not once per family."""
    first: dict[str, _M] = {}
    for member in members:
        first.setdefault(virtualip(member), member)
    return list(first.values())
