"""An instance's standing, sans-I/O: its fault sources, what its probes make of its priority,
and the sync-group rules. keepalived keeps these apart from its scheduler
(``vrrp_track.c``, ``vrrp_sync.c``); so do we: the driver (vrrpd.daemon) keeps each
instance's fault sources and probe trackers, asks here what they mean, and carries the
answers out on the state machine.

Fault sources are named, so that the recovery of one never hides another: "link" (the
instance's own interface), "interface <name>" (a tracked interface), "probes" (a failing
weight-0 probe, or one not heard from yet), "sync" (another member of the sync group is in
FAULT). An instance with any fault source is in FAULT.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol, TypeVar

from vrrpd.config import InstanceConfig
from vrrpd.probes.tracking import (
    Fault,
    Pending,
    Priority,
    ProbeState,
    ProbeTracker,
    effective_priority,
    shared_priority,
    weighing_members,
)
from vrrpd.vrrp.fsm import State, Transition, VirtualRouter

LINK = "link"
PROBES = "probes"
SYNC = "sync"


class Member(Protocol):
    """What the rules read of an instance (vrrpd.daemon.Instance is one)."""

    config: InstanceConfig
    router: VirtualRouter
    faults: dict[str, str]  # reason by fault source; empty: it may run
    trackers: dict[str, ProbeTracker]  # by probe name


M = TypeVar("M", bound=Member)


# ---------------------------------------------------------------- fault sources


def tracked(ifname: str) -> str:
    """The fault source of a tracked interface."""
    return f"interface {ifname}"


def link_down(ifname: str) -> str:
    return f"link {ifname} down"


def tracked_down(ifname: str) -> str:
    return f"tracked interface {ifname} down"


def set_fault(faults: dict[str, str], source: str, reason: str | None) -> bool:
    """Set (reason) or clear (None) one fault source; True when that changed anything."""
    if reason is None:
        return faults.pop(source, None) is not None
    if faults.get(source) == reason:
        return False
    faults[source] = reason
    return True


def fault_reason(faults: dict[str, str], cleared: str) -> str:
    """Why the instance is in FAULT (every source), or `cleared` when nothing holds it."""
    return "; ".join(faults.values()) if faults else cleared


def link_faults(
    config: InstanceConfig, ifname: str, link_up: Callable[[str], bool]
) -> dict[str, str]:
    """The link faults an instance starts with: its interface, then its tracked ones."""
    faults = {} if link_up(ifname) else {LINK: link_down(ifname)}
    for name in config.track_interfaces:
        if not link_up(name):
            faults[tracked(name)] = tracked_down(name)
    return faults


def retrack(
    faults: dict[str, str],
    old: InstanceConfig,
    new: InstanceConfig,
    link_up: Callable[[str], bool],
) -> None:
    """A reload changed the tracked interfaces: forget the dropped ones, check the added."""
    for name in old.track_interfaces:
        if name not in new.track_interfaces:
            faults.pop(tracked(name), None)
    for name in new.track_interfaces:
        if name not in old.track_interfaces and not link_up(name):
            faults[tracked(name)] = tracked_down(name)


# ---------------------------------------------------------------- probes


def probe_standing(member: Member, group: Iterable[Member]) -> tuple[str | None, int | None]:
    """Why the probes hold the instance in FAULT (None: they do not), and the effective
    priority they give it (None: no probe touches it, the base priority stands); in a sync
    group, with every member's weights (`shared_priority`).

    A weight-0 probe not heard from yet holds an instance that has not joined (at start,
    or in FAULT) as keepalived does; one added to a running instance by a reload does not
    make it leave its state before the probe has said anything.
    """
    members = [member, *group]
    if not any(m.trackers for m in members):
        return None, None
    base = member.config.priority
    own = effective_priority(base, member.trackers.values())
    fault = None
    if isinstance(own, Fault):
        fault = "probe " + ", ".join(own.failing) + " failing"
    elif isinstance(own, Pending) and member.router.state in (State.INITIALIZE, State.FAULT):
        fault = "waiting for probe " + ", ".join(own.awaiting)
    # A dual-stack VirtualIP's families run the same probes: its weights count once.
    counted = weighing_members(members, lambda m: m.config.virtualip)
    shared = shared_priority(base, (m.trackers.values() for m in counted))
    return fault, shared.value if isinstance(shared, Priority) else None


def assess_probes(member: Member, group: Iterable[Member]) -> tuple[bool, int | None]:
    """keepalived's arithmetic: weights move the priority; a failing weight-0 probe, or one
    not heard from yet, holds the instance in FAULT. Records the probes' fault source and
    returns whether it changed, and the effective priority (None: the base stands)."""
    fault, effective = probe_standing(member, group)
    return set_fault(member.faults, PROBES, fault), effective


def unhealthy(member: Member) -> str | None:
    """Why this node is not a healthy candidate for the instance, or None."""
    if member.router.state == State.FAULT:
        return f"in FAULT: {'; '.join(member.faults.values())}"
    down = [n for n, t in member.trackers.items() if t.state != ProbeState.UP]
    return f"probe {', '.join(down)} not passing" if down else None


def readiness(members: Sequence[Member]) -> tuple[bool, str]:
    """Pod readiness: this node is a healthy candidate for every instance (readiness
    Healthy) or holds its VIP (Master); False with the first reason why not."""
    if not members:
        return False, "no VRRP instance configured for this node"
    for m in members:
        if (why := unhealthy(m)) is not None:
            return False, f"{m.config.name}: {why}"
        if m.config.readiness == "Master" and m.router.state != State.MASTER:
            return False, f"{m.config.name} is {m.router.state}, readiness Master"
    return True, f"{len(members)} instance(s) healthy"


# ---------------------------------------------------------------- sync groups


def group_of(member: M, everyone: Iterable[M]) -> list[M]:
    """The other members of the instance's sync group ([] outside a group)."""
    group = member.config.sync_group
    if group is None:
        return []
    return [m for m in everyone if m is not member and m.config.sync_group == group]


def sync_fault(member: Member, members: Sequence[Member]) -> str | None:
    """A member with a fault of its own puts the whole group in FAULT (keepalived): the
    "sync" fault of `member`, None when no other member has a fault of its own."""
    culprit = next(
        (o for o in members if o is not member and any(k != SYNC for k in o.faults)),
        None,
    )
    if culprit is None:
        return None
    return f"sync group {member.config.sync_group}: {culprit.config.name} in FAULT"


def sync_cleared(member: Member) -> str:
    return f"sync group {member.config.sync_group} clear"


def preempt_held(member: Member, members: Sequence[Member]) -> bool:
    """While one member yields to a higher master, its siblings do not preempt (see
    `VirtualRouter.inhibit_preempt`): True when a member other than `member` yields."""
    return any(
        m is not member
        and m.router.state == State.BACKUP
        and (theirs := m.router.master_priority) is not None
        and theirs > m.router.effective_priority
        for m in members
    )


def follow(leader: Member, transition: Transition) -> tuple[State, str] | None:
    """Members follow one another into MASTER and back into BACKUP: after the leader's
    transition, the state its siblings follow it into and why, or None."""
    group = leader.config.sync_group
    if transition.new == State.MASTER:
        return State.MASTER, f"sync group {group}: {leader.config.name} became MASTER"
    if transition.old == State.MASTER and transition.new == State.BACKUP:
        return State.BACKUP, f"sync group {group}: {leader.config.name} fell back to BACKUP"
    return None
