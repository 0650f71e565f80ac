"""What a failure would do: the what-if analysis of a VirtualIP, pure.

For one VRRP instance (a VirtualIP and address family) resolved on every node that runs it,
`analyse` takes every single failure — a probe failing on a node, a tracked interface going
down, a node going down — and says which node holds the VIP before, after, and once the
failure clears, and why. Pairs of probe failures are added when few enough to list. It
then names the traps (`Finding`): a probe whose failure can never move the VIP (its weight
is smaller than the gap, with the weight that would work), a weight that moves it from one
holder but not from another, a weighted probe under preempt Never (only FAULT moves a VIP
there), priority ties, clamping at 1 and 254, a node that no single failure makes master,
and sync-group members that would split.

No second copy of the rules. A node's standing (its effective priority, or FAULT) comes from
`vrrpd.probes.tracking` (`effective_priority`, `shared_priority`), the functions the daemon
calls. The election is the daemon's own state machine, `vrrpd.vrrp.fsm.VirtualRouter`, one
per node on a simulated wire (adverts delivered after `LATENCY_S`, time explicit): RFC 5798's
rules, this project's deviations (a backup takes over from a lower-priority master at once
under preempt Always; preempt Never holds on every node) and any later change to them are
the ones the prediction uses.

Assumptions, stated in every report (`Analysis.assumptions`): every node hears every other;
every probe passes before the failure; "down" is a silent stop (crash, power, cable) — a
clean stop hands over sooner, to the same node; the holder before is the one an election of
nodes starting together gives (under preempt Never whoever won last keeps it); a node's
primary address is its spec.peers entry, and where it is unknown, a tie between equal
priorities lists every node that could win it. Sync groups: each member is analysed with the
group's shared weights and faults, as the daemon computes them; the members following each
other into MASTER is not simulated, and where members would be held by different nodes the
analysis says so (SyncGroupSplit).

Pure: no sockets, no clock, no event loop.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from ipaddress import ip_address
from typing import Any, Literal

from vrrpd.config import InstanceConfig, ProbeConfig
from vrrpd.limits import PRIORITY_OWNER, PROBE_WEIGHT_MAX, IPAddress
from vrrpd.probes.tracking import (
    Fault,
    Priority,
    ProbeTracker,
    effective_priority,
    shared_priority,
    weighing_members,
)
from vrrpd.resolve import instances_for_node
from vrrpd.spec.errors import ConfigError
from vrrpd.spec.fields import format_duration_cs
from vrrpd.spec.load import parse_virtualip
from vrrpd.spec.virtualip import VirtualIP
from vrrpd.vrrp.fsm import (
    Action,
    PreemptMode,
    RouterConfig,
    SendAdvertisement,
    State,
    Transition,
    VirtualRouter,
    master_down_interval_cs,
)
from vrrpd.vrrp.packet import Advertisement

LATENCY_S = 0.0001  # one advert's trip between two nodes: 0.1 ms, a LAN
PAIR_LIMIT = 45  # both-fail cases listed when there are at most this many (10 probe failures)
MAX_EVENTS_PER_PHASE = 200_000  # a guard: a phase is ~10 adverts per node

Severity = Literal["warning", "note"]

# Finding codes (CamelCase: the operator's condition shows them).
NEVER_MOVES = "NeverMoves"
MOVES_FROM_SOME = "MovesFromSome"
ONLY_THROUGH_FAULT = "OnlyThroughFault"
TIE = "Tie"
CLAMPED = "Clamped"
NEVER_MASTER = "NeverMaster"
SYNC_GROUP_SPLIT = "SyncGroupSplit"

ProbeKey = tuple[str, str]  # (virtualip "<namespace>/<name>", probe name)


# --- values ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, order=True)
class Failure:
    """One thing that goes wrong on one node."""

    node: str
    kind: Literal["probe", "interface", "node"]
    name: str = ""  # the probe or the interface
    virtualip: str | None = None  # a probe of another sync-group member: its VirtualIP

    def __str__(self) -> str:
        if self.kind == "node":
            return f"{self.node} down"
        if self.kind == "interface":
            return f"{self.name} down on {self.node}"
        of = f" of {self.virtualip}" if self.virtualip else ""
        return f"probe {self.name}{of} fails on {self.node}"

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "node": self.node}
        if self.name:
            out["name"] = self.name
        if self.virtualip:
            out["virtualip"] = self.virtualip
        return out


@dataclass(frozen=True, slots=True)
class Standing:
    """A node under a scenario: the priority it advertises, and whether it takes part."""

    node: str
    state: Literal["up", "FAULT", "down"]
    priority: int  # effective (clamped) priority; kept in FAULT, as the router keeps it
    base: int
    total: int  # before clamping
    adjustments: tuple[tuple[str, int], ...] = ()  # (probe, contribution), non-zero only
    reasons: tuple[str, ...] = ()  # why FAULT

    @property
    def eligible(self) -> bool:
        return self.state == "up"

    @property
    def clamped(self) -> bool:
        return self.base != PRIORITY_OWNER and self.total != self.priority

    def arithmetic(self) -> str:
        """ "150 - 60 (haproxy) = 90", "100", "100 + 200 (x) = 300 → 254"."""
        if not self.adjustments:
            return str(self.priority)
        terms = "".join(
            f" {'+' if c > 0 else '-'} {abs(c)} ({name})" for name, c in self.adjustments
        )
        text = f"{self.base}{terms} = {self.total}"
        return f"{text} → {self.priority}" if self.total != self.priority else text

    def __str__(self) -> str:
        if self.state == "down":
            return "down"
        if self.state == "FAULT":
            return "FAULT (" + "; ".join(self.reasons) + ")"
        return self.arithmetic()

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"node": self.node, "state": self.state}
        if self.state != "down":
            out |= {"priority": self.priority, "base": self.base, "total": self.total}
        if self.adjustments:
            out["adjustments"] = [{"probe": n, "weight": c} for n, c in self.adjustments]
        if self.reasons:
            out["reasons"] = list(self.reasons)
        return out


@dataclass(frozen=True, slots=True)
class Outcome:
    """One scenario: who holds the VIP before, after the failures, and once they clear.

    A holder tuple has one node, none (nobody holds the VIP), or several when a tie between
    equal priorities decides and the addresses that break it are unknown.
    """

    failures: tuple[Failure, ...]
    before: tuple[str, ...]
    after: tuple[str, ...]
    recovered: tuple[str, ...]
    why: str
    standings: tuple[Standing, ...]  # under the failures
    tie: tuple[str, ...] = ()  # nodes that met as masters at equal priority after the failure

    @property
    def moved(self) -> bool:
        return self.after != self.before

    def as_dict(self) -> dict[str, Any]:
        return {
            "failures": [f.as_dict() for f in self.failures],
            "failure": " + ".join(map(str, self.failures)),
            "before": list(self.before),
            "after": list(self.after),
            "recovered": list(self.recovered),
            "moved": self.moved,
            "why": self.why,
            "tie": list(self.tie),
            "standings": [s.as_dict() for s in self.standings],
        }


@dataclass(frozen=True, slots=True)
class Finding:
    code: str
    severity: Severity
    message: str
    node: str | None = None
    probe: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "severity": self.severity}
        if self.node is not None:
            out["node"] = self.node
        if self.probe is not None:
            out["probe"] = self.probe
        out["message"] = self.message
        return out


@dataclass(frozen=True)
class Analysis:
    instance: str  # "<namespace>/<virtualip>/ipv4"
    virtualip: str
    vrid: int
    preempt: PreemptMode
    preempt_delay_cs: int
    sync_group: str | None
    steady: tuple[Standing, ...]  # every node, all probes passing
    addresses: Mapping[str, str | None]  # node -> primary address, None: unknown
    holder: tuple[str, ...]
    singles: tuple[Outcome, ...]
    pairs: tuple[Outcome, ...]
    pairs_omitted: int  # both-fail cases not listed (too many)
    findings: tuple[Finding, ...]
    assumptions: tuple[str, ...]

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "warning")

    def as_dict(self) -> dict[str, Any]:
        preempt: dict[str, Any] = {"mode": self.preempt.value}
        if self.preempt is PreemptMode.DELAY:
            preempt["delay"] = format_duration_cs(self.preempt_delay_cs)
        return {
            "instance": self.instance,
            "virtualip": self.virtualip,
            "vrid": self.vrid,
            "preempt": preempt,
            "syncGroup": self.sync_group,
            "nodes": [s.as_dict() | {"address": self.addresses.get(s.node)} for s in self.steady],
            "holder": list(self.holder),
            "failures": [o.as_dict() for o in self.singles],
            "pairs": [o.as_dict() for o in self.pairs],
            "pairsOmitted": self.pairs_omitted,
            "findings": [f.as_dict() for f in self.findings],
            "assumptions": list(self.assumptions),
        }


# --- the nodes, as the daemon would run them -------------------------------------------------


@dataclass(frozen=True)
class _NodeModel:
    node: str
    config: InstanceConfig
    members: tuple[InstanceConfig, ...]  # this instance first, then its sync-group siblings
    interfaces: tuple[str, ...]  # tracked by any member: any of them down is a group FAULT

    def probes(self) -> list[tuple[ProbeKey, str]]:
        """(key, label) of every probe that counts here, this VirtualIP's first. The other
        family of this VirtualIP runs the same probes: one failure fails both trackers."""
        seen: dict[ProbeKey, str] = {}
        for member in self.members:
            for probe in member.probes:
                key = (member.virtualip, probe.name)
                own = member.virtualip == self.config.virtualip
                seen.setdefault(key, probe.name if own else f"{member.virtualip}/{probe.name}")
        return list(seen.items())


def _tracker(label: str, probe: ProbeConfig, weight: int, *, failed: bool) -> ProbeTracker:
    """A probe in the steady state or failed; a file probe (keepalived track_file) fails by
    holding 1, the drain convention, and is steady at 0."""
    if probe.check.scaled:
        return ProbeTracker(label, 1, 1, weight, scaled=True, value=int(failed))
    return ProbeTracker(label, probe.rise, probe.fall, weight, initially_up=not failed)


def _standing(
    model: _NodeModel, failures: Iterable[Failure], weights: Mapping[ProbeKey, int]
) -> Standing:
    """What vrrpd.standing (probe_standing, sync_fault) makes of these failures on the node."""
    here = [f for f in failures if f.node == model.node]
    base = model.config.priority
    if any(f.kind == "node" for f in here):
        return Standing(model.node, "down", 0, base, base)
    own_vip = model.config.virtualip
    failing = {(f.virtualip or own_vip, f.name) for f in here if f.kind == "probe"}
    reasons = [
        f"tracked interface {f.name} down"
        for f in here
        if f.kind == "interface" and f.name in model.interfaces
    ]
    trackers: list[list[ProbeTracker]] = []
    counted = weighing_members(model.members, lambda m: m.virtualip)
    for member in model.members:
        own = []
        for probe in member.probes:
            key = (member.virtualip, probe.name)
            label = (
                probe.name if member.virtualip == own_vip else f"{member.virtualip}/{probe.name}"
            )
            weight = weights.get(key, probe.weight)
            own.append(_tracker(label, probe, weight, failed=key in failing))
        if member in counted:
            trackers.append(own)
        result = effective_priority(member.priority, own)
        if isinstance(result, Fault):
            failing_probes = ", ".join(result.failing)
            reasons.append(f"probe {failing_probes} failing, weight 0")
    shared = shared_priority(base, trackers)
    assert isinstance(shared, Priority)  # weighted probes only, none in INIT
    state: Literal["up", "FAULT"] = "FAULT" if reasons else "up"
    return Standing(
        model.node,
        state,
        shared.value,
        base,
        shared.total,
        shared.adjustments,
        tuple(dict.fromkeys(reasons)),
    )


# --- the simulated wire ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Phase:
    holders: tuple[str, ...]  # MASTER at the end of the phase
    tie: frozenset[str] = frozenset()  # met as masters at equal priority during the phase


@dataclass
class _Wire:
    """Every node's VirtualRouter on one segment; adverts arrive LATENCY_S after they leave."""

    rconfigs: Mapping[str, RouterConfig]
    routers: dict[str, VirtualRouter | None] = field(default_factory=dict)
    now: float = 0.0
    queue: list[tuple[float, int, str, IPAddress, Advertisement]] = field(default_factory=list)
    seq: itertools.count[int] = field(default_factory=itertools.count)
    tie: set[str] = field(default_factory=set)
    deadlines: dict[str, float] = field(default_factory=dict)  # each live router's next one

    def apply(self, standings: Mapping[str, Standing]) -> None:
        """Bring each node to its standing as the daemon would: a node that comes up starts
        a fresh router; otherwise the priority first, then the fault (the daemon's order)."""
        for node in sorted(standings):
            st = standings[node]
            router = self.routers.get(node)
            if st.state == "down":
                self.routers[node] = None  # silent: no priority-0 advert
                self.deadlines.pop(node, None)
                continue
            if router is None:
                router = VirtualRouter(self.rconfigs[node])
                self.routers[node] = router
                router.set_priority(st.priority, self.now)
                self._do(node, router.start(self.now, fault=st.state == "FAULT"))
                continue
            self._do(node, router.set_priority(st.priority, self.now))
            reason = "; ".join(st.reasons) or "recovered"
            self._do(node, router.set_fault(st.state == "FAULT", reason, self.now))

    def run(self, until: float) -> None:
        for _ in range(MAX_EVENTS_PER_PHASE):
            timer, timer_node = math.inf, ""
            for node, deadline in self.deadlines.items():
                if deadline < timer:
                    timer, timer_node = deadline, node
            arrival = self.queue[0][0] if self.queue else math.inf
            if min(timer, arrival) > until:
                self.now = until
                return
            if timer <= arrival:
                self.now = timer
                router = self.routers[timer_node]
                assert router is not None
                self._do(timer_node, router.handle_timer(timer))
            else:
                self.now, _, node, source, advert = heapq.heappop(self.queue)
                router = self.routers.get(node)
                if router is not None:
                    self._do(node, router.receive(advert, source, self.now))
        raise RuntimeError(f"simulation did not settle within {MAX_EVENTS_PER_PHASE} events")

    def _do(self, node: str, actions: list[Action]) -> None:
        router = self.routers.get(node)
        deadline = router.next_deadline() if router is not None else None
        if deadline is None:
            self.deadlines.pop(node, None)
        else:
            self.deadlines[node] = deadline
        for action in actions:
            if isinstance(action, SendAdvertisement):
                source = self.rconfigs[node].primary_address
                for other, router in self.routers.items():
                    if other != node and router is not None:
                        item = (self.now + LATENCY_S, next(self.seq), other, source)
                        heapq.heappush(self.queue, (*item, action.advertisement))
            elif isinstance(action, Transition) and action.new is State.MASTER:
                me = self.routers[node]
                assert me is not None
                for other, router in self.routers.items():
                    if (
                        other != node
                        and router is not None
                        and router.state is State.MASTER
                        and router.effective_priority == me.effective_priority
                    ):
                        self.tie |= {node, other}

    def holders(self) -> tuple[str, ...]:
        return tuple(
            sorted(n for n, r in self.routers.items() if r is not None and r.state is State.MASTER)
        )


# --- the analysis -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Run:
    phases: tuple[_Phase, _Phase, _Phase]  # before, with the failures, after they clear
    steady: Mapping[str, Standing]
    failed: Mapping[str, Standing]


class _Analyser:
    def __init__(self, models: Sequence[_NodeModel]) -> None:
        self.models = sorted(models, key=lambda m: m.node)
        self.nodes = [m.node for m in self.models]
        first = self.models[0].config
        self.config = first
        self.preempt = first.preempt
        self.delay_cs = first.preempt_delay_cs
        known = {m.node: m.config.source_address for m in self.models}
        self.addresses_known = all(a is not None for a in known.values())
        self.known = known
        interval = max(m.config.advert_interval_cs for m in self.models)
        delay = max(m.config.preempt_delay_cs for m in self.models)
        # Long enough for a backup to time out at priority 1 twice, and for a delayed preempt.
        self.phase_s = (delay + 2 * master_down_interval_cs(1, interval) + 3 * interval) / 100
        self._runs: dict[tuple[frozenset[Failure], tuple[tuple[ProbeKey, int], ...]], _Run] = {}

    # -- standings and runs --

    def standings(
        self, failures: Iterable[Failure], weights: Mapping[ProbeKey, int]
    ) -> dict[str, Standing]:
        failures = list(failures)
        return {m.node: _standing(m, failures, weights) for m in self.models}

    def _rconfigs(self, top: str | None) -> dict[str, RouterConfig]:
        out = {}
        family = self.config.family
        order = [n for n in self.nodes if n != top] + ([top] if top is not None else [])
        for i, node in enumerate(order, start=1):
            model = next(m for m in self.models if m.node == node)
            c = model.config
            address = self.known[node] if self.addresses_known else None
            if address is None:  # synthetic, in a known order: documentation ranges
                address = ip_address(f"192.0.2.{i}" if family == 4 else f"2001:db8::{i}")
            out[node] = RouterConfig(
                vrid=c.vrid,
                version=c.version,
                priority=c.priority,
                advert_interval_cs=c.advert_interval_cs,
                addresses=tuple(a.ip for a in c.addresses),
                primary_address=address,
                preempt=c.preempt,
                preempt_delay_cs=c.preempt_delay_cs,
                accept=c.accept,
            )
        return out

    def _simulate(
        self, steady: Mapping[str, Standing], failed: Mapping[str, Standing], top: str | None
    ) -> tuple[_Phase, _Phase, _Phase]:
        wire = _Wire(self._rconfigs(top))
        phases = []
        for k, standings in enumerate((steady, failed, steady), start=1):
            wire.tie = set()
            wire.apply(standings)
            wire.run(k * self.phase_s)
            phases.append(_Phase(wire.holders(), frozenset(wire.tie)))
        return phases[0], phases[1], phases[2]

    def run(
        self, failures: Iterable[Failure], weights: Mapping[ProbeKey, int] | None = None
    ) -> _Run:
        weights = weights or {}
        key = (frozenset(failures), tuple(sorted(weights.items())))
        cached = self._runs.get(key)
        if cached is not None:
            return cached
        steady = self.standings((), weights)
        failed = self.standings(key[0], weights)
        phases = self._simulate(steady, failed, None)
        tied = frozenset().union(*(p.tie for p in phases))
        if tied and not self.addresses_known:
            # The addresses that break the tie are unknown: every tied node may have the
            # highest. The holder is then any node some address order makes master.
            variants = [phases] + [self._simulate(steady, failed, top) for top in sorted(tied)]
            phases = tuple(  # type: ignore[assignment]
                _Phase(
                    tuple(sorted({n for v in variants for n in v[i].holders})),
                    frozenset().union(*(v[i].tie for v in variants)),
                )
                for i in range(3)
            )
        result = _Run(phases, steady, failed)
        self._runs[key] = result
        return result

    # -- failures --

    def single_failures(self) -> list[Failure]:
        out: list[Failure] = []
        for m in self.models:
            own = m.config.virtualip
            for (vip, name), _ in m.probes():
                out.append(Failure(m.node, "probe", name, None if vip == own else vip))
            out.extend(Failure(m.node, "interface", name) for name in m.interfaces)
            out.append(Failure(m.node, "node"))
        return out

    def outcome(self, failures: Sequence[Failure]) -> Outcome:
        run = self.run(failures)
        before, after, recovered = run.phases
        return Outcome(
            failures=tuple(failures),
            before=before.holders,
            after=after.holders,
            recovered=recovered.holders,
            why=self._why(failures, run),
            standings=tuple(run.failed[n] for n in self.nodes),
            tie=tuple(sorted(after.tie)),
        )

    # -- words --

    def _best_other(self, failed: Mapping[str, Standing], holder: str) -> Standing | None:
        others = [s for n, s in failed.items() if n != holder and s.eligible]
        return max(others, key=lambda s: s.priority, default=None)

    def _why(self, failures: Sequence[Failure], run: _Run) -> str:
        before, after, recovered = (p.holders for p in run.phases)
        steady, failed = run.steady, run.failed
        touched = list(dict.fromkeys(f.node for f in failures))
        what = "; ".join(_change(steady[n], failed[n]) for n in touched)
        holder = before[0] if len(before) == 1 else None
        alone = touched == [holder]
        if not after:
            effect = "no node is left to hold the VIP"
        elif after == before and holder is not None:
            effect = self._why_stays(holder, alone, touched, steady, failed)
        elif holder is not None:
            effect = self._why_moves(holder, after, alone, failed)
        else:
            effect = f"{_holders(after)} takes it"
        if run.phases[1].tie:
            effect += "; " + self._tie_words(run.phases[1], failed)
        text = f"{what}: {effect}" if what else effect
        if recovered != after:
            text += f"; back to {_holders(recovered)} once it clears"
            if self.preempt is PreemptMode.DELAY and after:
                text += f" (after the {format_duration_cs(self.delay_cs)} preempt delay)"
        elif after != before and after:
            why = (
                "preempt Never"
                if self.preempt is PreemptMode.NEVER
                else "a backup takes over only from a lower-priority master"
            )
            text += f"; it stays on {_holders(after)} once the failure clears ({why})"
        return text

    def _why_stays(
        self,
        holder: str,
        alone: bool,
        touched: list[str],
        steady: Mapping[str, Standing],
        failed: Mapping[str, Standing],
    ) -> str:
        if holder not in touched:
            several = len(touched) > 1
            if any(not failed[n].eligible for n in touched):
                what = "backups fewer" if several else "a backup fewer"
            elif any(failed[n].priority < steady[n].priority for n in touched):
                what = "weaker backups" if several else "a weaker backup"
            elif any(failed[n].priority > steady[n].priority for n in touched):
                # a file probe's number can raise it (track_file: number times weight)
                stronger = "stronger backups" if several else "a stronger backup"
                what = f"{stronger}, still below {holder}"
            else:
                what = "no change in priority"
            return f"{what}: {holder} keeps the VIP"
        mine = failed[holder]
        best = self._best_other(failed, holder)
        if best is None:
            return "no other node can take the VIP"
        subject = "" if alone else f"{holder}'s {mine.priority} is "
        if self.preempt is PreemptMode.NEVER and best.priority > mine.priority:
            return (
                f"preempt Never: {holder} keeps the VIP while it advertises, though "
                f"{best.node} has {best.priority}"
            )
        if mine.priority == best.priority:
            return (
                f"{subject}equal to {best.node}'s {best.priority}, and a backup takes over "
                "only from a lower-priority master"
            )
        if mine.priority > best.priority:
            return f"{subject}still above {best.node}'s {best.priority}"
        return f"{holder} keeps the VIP"

    def _why_moves(
        self, holder: str, new: tuple[str, ...], alone: bool, failed: Mapping[str, Standing]
    ) -> str:
        mine = failed[holder]
        priority = failed[new[0]].priority
        if len(new) == 1:
            who, has, takes = new[0], "has", "takes"
            whose = f"{new[0]}'s"
        else:
            who, has, takes = " and ".join(new), "have", "take"
            whose = f"{who}'s"
        if mine.state == "down":
            return (
                f"{who} {has} the highest priority left ({priority}) and {takes} over when "
                "the master-down timer runs out"
            )
        if mine.state == "FAULT":
            return (
                f"{holder} resigns (priority 0); {who} {has} the highest priority left "
                f"({priority}) and {takes} over after the skew time"
            )
        if mine.priority >= priority:
            return f"{who} {takes} over"
        if self.preempt is PreemptMode.DELAY:
            when = f"after the {format_duration_cs(self.delay_cs)} preempt delay"
        else:
            when = "at once"
        subject = "below" if alone else f"{holder}'s {mine.priority} is below"
        return f"{subject} {whose} {priority}, so {who} {takes} over {when}"

    def _tie_words(self, phase: _Phase, standings: Mapping[str, Standing]) -> str:
        tied = sorted(phase.tie)
        head = f"{' and '.join(tied)} tie at {standings[tied[0]].priority}"
        if not self.addresses_known:
            which = "(unknown here: not every node has a spec.peers address)"
        elif len(phase.holders) == 1 and phase.holders[0] in phase.tie:
            winner = phase.holders[0]  # as the state machine decided it
            which = f"({winner}, {self.known[winner]})"
        else:
            which = "(" + ", ".join(f"{n} {self.known[n]}" for n in tied) + ")"
        return (
            f"{head}: of nodes that take over together the higher primary address keeps the "
            f"VIP {which}; one that takes over alone first keeps it"
        )


def _change(was: Standing, now: Standing) -> str:
    """What a failure did to one node, in words."""
    if now.state != "up":
        return f"{now.node} {'in ' if now.state == 'FAULT' else ''}{now}"
    if now.priority == was.priority:
        shown = now.arithmetic() if now.adjustments != was.adjustments else now.priority
        return f"{now.node} stays at {shown}"
    if was.adjustments:  # a bonus lost, or a second weight on top of one
        return f"{now.node} {was.priority} → {now.arithmetic()}"
    return f"{now.node} {now.arithmetic()}"


# --- findings ---------------------------------------------------------------------------------


def _findings(
    an: _Analyser, steady_holder: tuple[str, ...], singles: list[Outcome], pairs: list[Outcome]
) -> list[Finding]:
    out: list[Finding] = []
    out.extend(_probe_findings(an, steady_holder))
    out.extend(_tie_findings(an, singles))
    scenarios: list[tuple[tuple[Failure, ...], Mapping[str, Standing]]] = [((), an.run(()).steady)]
    scenarios += [(o.failures, {s.node: s for s in o.standings}) for o in [*singles, *pairs]]
    out.extend(_clamp_findings(scenarios))
    holders = set(steady_holder) | {n for o in singles for n in o.after}
    never = [n for n in an.nodes if n not in holders]
    if never and len(an.nodes) > 1:
        which, verb = (never[0], "holds") if len(never) == 1 else (", ".join(never), "hold")
        out.append(
            Finding(
                NEVER_MASTER,
                "note",
                f"{which} {verb} the VIP after no single failure: only when several nodes fail",
                node=never[0] if len(never) == 1 else None,
            )
        )
    return out


def _holder_contexts(
    an: _Analyser, holder: tuple[str, ...]
) -> list[tuple[frozenset[Failure], str]]:
    """The situations in which each node holds the VIP: the steady state, and each single
    node down (the failover an operator meets first)."""
    contexts: list[tuple[frozenset[Failure], str]] = []
    if len(holder) == 1:
        contexts.append((frozenset(), holder[0]))
    for node in an.nodes:
        after = an.run([Failure(node, "node")]).phases[1].holders
        if len(after) == 1 and all(after[0] != x for _, x in contexts):
            contexts.append((frozenset({Failure(node, "node")}), after[0]))
    return contexts


def _moves(
    an: _Analyser,
    probe: Failure,
    contexts: list[tuple[frozenset[Failure], str]],
    weights: Mapping[ProbeKey, int],
) -> dict[str, tuple[bool, _Run, frozenset[Failure]]]:
    """Per holder: does the probe failing on it take the VIP away?"""
    out = {}
    for context, holder in contexts:
        model = next(m for m in an.models if m.node == holder)
        if (probe.virtualip or model.config.virtualip, probe.name) not in dict(model.probes()):
            continue  # per-node files: this node runs no such probe
        run = an.run(context | {replace(probe, node=holder)}, weights)
        if not any(s.eligible for n, s in run.failed.items() if n != holder):
            continue  # nowhere to go
        out[holder] = (holder not in run.phases[1].holders, run, context)
    return out


def _probe_findings(an: _Analyser, holder: tuple[str, ...]) -> list[Finding]:
    """NeverMoves, MovesFromSome and OnlyThroughFault: each weighted probe of this
    VirtualIP failing on each node that can hold the VIP."""
    contexts = _holder_contexts(an, holder)
    out: list[Finding] = []
    own_vip = an.config.virtualip
    seen: set[str] = set()
    for model in an.models:
        for probe in model.config.probes:
            if probe.weight == 0 or probe.name in seen:
                continue
            seen.add(probe.name)
            key = (own_vip, probe.name)
            template = Failure(model.node, "probe", probe.name)
            moves = _moves(an, template, contexts, {})
            if not moves:
                continue
            moving = [h for h, (m, _, _) in moves.items() if m]
            staying = [h for h, (m, _, _) in moves.items() if not m]
            if not staying:
                continue
            label = f"probe {probe.name} (weight {probe.weight})"
            reasons = "; ".join(_stay_words(an, h, moves[h][1], moves[h][2]) for h in staying)
            if not moving and an.preempt is PreemptMode.NEVER:
                out.append(
                    Finding(
                        ONLY_THROUGH_FAULT,
                        "warning",
                        f"{label} never moves the VIP under preempt Never: a master keeps it "
                        "while it advertises, whatever its priority, and the weight only ranks "
                        "the backups for the next failover. Only FAULT moves it (weight 0, a "
                        "tracked interface, the node stopping): set weight: 0 if this probe's "
                        "failure must move the VIP",
                        probe=probe.name,
                    )
                )
                continue
            better = _working_weight(an, key, probe.weight, template, contexts)
            if better is None:
                fix = (
                    "no weight can (priorities stop at 1 and 254); use weight: 0, which puts "
                    "the node in FAULT"
                )
            else:
                fix = f"weight {better} would move it (or weight 0: FAULT)"
            if not moving:
                message = f"{label} failing never moves the VIP: {reasons}; {fix}"
                out.append(
                    Finding(NEVER_MOVES, "warning", message, node=staying[0], probe=probe.name)
                )
            else:
                message = (
                    f"{label} moves the VIP away from {', '.join(moving)} but not from "
                    f"{', '.join(staying)}: {reasons}; {fix}"
                )
                out.append(
                    Finding(MOVES_FROM_SOME, "warning", message, node=staying[0], probe=probe.name)
                )
    return out


def _stay_words(an: _Analyser, holder: str, run: _Run, context: frozenset[Failure]) -> str:
    mine = run.failed[holder]
    best = an._best_other(run.failed, holder)
    assert best is not None
    where = f" (holding after {' and '.join(map(str, sorted(context)))})" if context else ""
    was = run.steady[holder].priority
    relation = "equal to" if best.priority == mine.priority else "still above"
    if mine.priority < best.priority:  # kept by preempt Never or a tie on the way
        relation = "below"
    return (
        f"{holder}{where} goes from {was} to {mine.arithmetic()}, {relation} "
        f"{best.node}'s {best.priority}"
    )


def _working_weight(
    an: _Analyser,
    key: ProbeKey,
    weight: int,
    probe: Failure,
    contexts: list[tuple[frozenset[Failure], str]],
) -> int | None:
    """The weight of the same sign closest to `weight` that moves the VIP from every holder
    (the result only grows with the weight's size, so a bisection finds it)."""
    sign = 1 if weight > 0 else -1

    def works(size: int) -> bool:
        moves = _moves(an, probe, contexts, {key: sign * size})
        return bool(moves) and all(m for m, _, _ in moves.values())

    lo, hi = abs(weight) + 1, PROBE_WEIGHT_MAX
    if lo > hi or not works(hi):
        return None
    while lo < hi:
        mid = (lo + hi) // 2
        if works(mid):
            hi = mid
        else:
            lo = mid + 1
    return sign * lo


def _tie_findings(an: _Analyser, singles: list[Outcome]) -> list[Finding]:
    out: list[Finding] = []
    seen: set[tuple[tuple[str, ...], int]] = set()
    steady = an.run(())
    scenarios = [("when the nodes start", steady.phases[0], steady.steady)]
    for o in singles:
        run = an.run(o.failures)
        scenarios.append((f"after {o.failures[0]}", run.phases[1], run.failed))
    for where, phase, standings in scenarios:
        if not phase.tie:
            continue
        tied = tuple(sorted(phase.tie))
        priority = standings[tied[0]].priority
        if (tied, priority) in seen:
            continue
        seen.add((tied, priority))
        bases = {steady.steady[n].base for n in tied}
        # Equal base priorities are a choice ("any of these"); a tie the weights make is not.
        severity: Severity = "note" if bases == {priority} else "warning"
        out.append(Finding(TIE, severity, f"{where}: {an._tie_words(phase, standings)}"))
    return out


def _clamp_findings(
    scenarios: list[tuple[tuple[Failure, ...], Mapping[str, Standing]]],
) -> list[Finding]:
    """Priorities the clamp to 1..254 changed; a warning where that makes two nodes equal."""
    out: list[Finding] = []
    seen: set[tuple[str, int]] = set()
    for failures, standings in scenarios:
        where = (
            "with every probe passing"
            if not failures
            else "after " + " + ".join(map(str, failures))
        )
        for st in standings.values():
            if st.state != "up" or not st.clamped or (st.node, st.total) in seen:
                continue
            equal = [
                o
                for o in standings.values()
                if o.node != st.node and o.eligible and o.priority == st.priority
            ]
            shown = [st, *(o for o in equal if o.clamped)]
            seen.update((o.node, o.total) for o in shown)
            text = " and ".join(f"{o.node} {o.arithmetic()}" for o in shown)
            message = f"{text} {where}: priorities stop at 1 and 254"
            if equal:
                others = ", ".join(o.node for o in equal if o not in shown)
                message += ", so they tie" if not others else f", so {st.node} ties with {others}"
            out.append(Finding(CLAMPED, "warning" if equal else "note", message, node=st.node))
    return out


# --- entry points -----------------------------------------------------------------------------


def analyse(
    configs: Mapping[str, Sequence[InstanceConfig]], instance: str, *, pairs: bool = True
) -> Analysis | None:
    """The what-if analysis of `instance` ("<namespace>/<name>/ipv4") over the nodes of
    `configs` (node -> every InstanceConfig the node runs, as `instances_for_node` gives).
    None when no node runs it. `pairs=False` leaves out the both-fail cases."""
    models = []
    for node, instances in sorted(configs.items()):
        mine = next((c for c in instances if c.name == instance), None)
        if mine is None:
            continue
        siblings = tuple(
            c
            for c in instances
            if c is not mine and mine.sync_group is not None and c.sync_group == mine.sync_group
        )
        members = (mine, *siblings)
        interfaces = tuple(dict.fromkeys(i for m in members for i in m.track_interfaces))
        models.append(_NodeModel(node, mine, members, interfaces))
    if not models:
        return None
    an = _Analyser(models)
    base = an.run(())
    holder = base.phases[0].holders
    singles = [an.outcome([f]) for f in an.single_failures()]
    probe_failures = [f for f in an.single_failures() if f.kind == "probe"]
    combos = list(itertools.combinations(probe_failures, 2))
    listed: list[Outcome] = []
    omitted = 0
    if pairs and len(combos) <= PAIR_LIMIT:
        listed = [an.outcome(list(c)) for c in combos]
    elif pairs:
        omitted = len(combos)
    findings = _findings(an, holder, singles, listed)
    return Analysis(
        instance=instance,
        virtualip=an.config.virtualip,
        vrid=an.config.vrid,
        preempt=an.preempt,
        preempt_delay_cs=an.delay_cs,
        sync_group=an.config.sync_group,
        steady=tuple(base.steady[n] for n in an.nodes),
        addresses={n: (str(a) if a is not None else None) for n, a in an.known.items()},
        holder=holder,
        singles=tuple(singles),
        pairs=tuple(listed),
        pairs_omitted=omitted,
        findings=tuple(findings),
        assumptions=tuple(_assumptions(an, models)),
    )


def _assumptions(an: _Analyser, models: Sequence[_NodeModel]) -> list[str]:
    out = [
        "every node hears every other node's adverts, and every probe passes before a failure",
        '"down" is a silent stop (crash, power, cable); a clean stop hands over sooner, to '
        "the same node",
    ]
    if an.preempt is PreemptMode.NEVER:
        out.append(
            "preempt Never: the holder before is the winner when all nodes start together; "
            "after a failover the VIP stays where it went"
        )
    if an.addresses_known:
        shown = ", ".join(f"{n} {a}" for n, a in an.known.items())
        out.append(f"primary addresses (spec.peers): {shown}")
    else:
        missing = ", ".join(n for n, a in an.known.items() if a is None)
        out.append(
            f"primary addresses unknown for {missing} (no spec.peers entry): where equal "
            "priorities meet, every node that could win is listed"
        )
    groups = {m.config.sync_group for m in models if len(m.members) > 1}
    for group in sorted(g for g in groups if g is not None):
        out.append(
            f"sync group {group}: analysed with the group's shared probe weights and faults; "
            "the members following each other into MASTER is not simulated"
        )
    return out


def analyse_all(
    configs: Mapping[str, Sequence[InstanceConfig]],
    instances: Iterable[str] | None = None,
    *,
    pairs: bool = True,
) -> list[Analysis]:
    """`analyse` for each instance (every one `configs` holds when None), sorted by name;
    sync-group members that the analysis puts on different nodes get a SyncGroupSplit."""
    names = (
        sorted({c.name for cs in configs.values() for c in cs})
        if instances is None
        else sorted(set(instances))
    )
    analyses = [a for name in names if (a := analyse(configs, name, pairs=pairs)) is not None]
    return _sync_splits(analyses)


def _sync_splits(analyses: list[Analysis]) -> list[Analysis]:
    groups: dict[str, list[Analysis]] = {}
    for a in analyses:
        if a.sync_group is not None:
            groups.setdefault(a.sync_group, []).append(a)
    out = []
    for a in analyses:
        splits = []
        for other in groups.get(a.sync_group or "", []):
            if other is a:
                continue
            theirs = {o.failures: o.after for o in other.singles}
            if other.holder != a.holder:
                splits.append(
                    f"with every probe passing {other.instance} is on {_on(other.holder)}"
                )
            for o in a.singles:
                if o.failures in theirs and theirs[o.failures] != o.after:
                    where = _on(theirs[o.failures])
                    splits.append(f"after {o.failures[0]} {other.instance} is on {where}")
        if splits:
            mine = _on(a.holder)
            shown = "; ".join(splits[:3]) + (
                f"; and {len(splits) - 3} more" if len(splits) > 3 else ""
            )
            finding = Finding(
                SYNC_GROUP_SPLIT,
                "warning",
                f"sync group {a.sync_group}: its members would not agree ({a.instance} is on "
                f"{mine} with every probe passing; {shown}); the group makes them follow one "
                "another, which one leads is not predicted: give the members the same "
                "priorities on every node",
            )
            a = replace(a, findings=(*a.findings, finding))
        out.append(a)
    return out


def _on(holders: tuple[str, ...]) -> str:
    return ", ".join(holders) or "no node"


def named_nodes(vips: Iterable[VirtualIP]) -> list[str]:
    """Every node a standalone file names (spec.peers, nodePriorities[].nodeName)."""
    names: set[str] = set()
    for vip in vips:
        names.update(p.node_name for p in vip.spec.peers)
        names.update(e.node_name for e in vip.spec.node_priorities if e.node_name is not None)
    return sorted(names)


def resolve(
    vips: Sequence[VirtualIP], nodes: Iterable[str]
) -> tuple[dict[str, list[InstanceConfig]], list[str]]:
    """What each node would run from a standalone file, and what that assumes.

    A node absent from a unicast VirtualIP's peers does not run that VirtualIP. Labels are
    unknown standalone, so a nodePriorities entry with a nodeSelector applies to no node (as
    in the daemon): that is said.
    """
    configs: dict[str, list[InstanceConfig]] = {}
    for node in nodes:
        mine: list[InstanceConfig] = []
        for vip in vips:
            try:
                mine.extend(instances_for_node([vip], node))
            except ConfigError:
                continue  # a unicast VirtualIP without this node among its peers
        configs[node] = mine
    notes = [
        f"{vip.key}: spec.nodePriorities[{i}] selects nodes by labels; a standalone daemon has "
        "no node labels, so it applies to no node here"
        for vip in vips
        for i, entry in enumerate(vip.spec.node_priorities)
        if entry.node_selector is not None
    ]
    return configs, notes


OTHER_NODE = "other-node"  # convert: a node whose keepalived.conf was not converted


def conversion_warnings(documents: Sequence[Mapping[str, Any]]) -> list[str]:
    """`vrrpd convert`'s what-if warnings on the VirtualIPs it wrote, as lines.

    A keepalived.conf is one node's file: when the documents name fewer than two nodes,
    OTHER_NODE stands for the rest, at spec.priority, which is what applying the YAML as it
    is gives them (a line says so). Documents that are not valid standalone are skipped.
    """
    vips = []
    for doc in documents:
        try:
            vips.append(parse_virtualip(doc, standalone=True))
        except ConfigError:
            continue
    nodes = named_nodes(vips)
    assumed = []
    while len(nodes) < 2:
        name = OTHER_NODE if OTHER_NODE not in nodes else f"{OTHER_NODE}-{len(nodes)}"
        nodes.append(name)
        assumed.append(name)
    configs, _ = resolve(vips, nodes)
    lines = [
        f"warning: what-if: {line}" for line in warnings_text(analyse_all(configs, pairs=False))
    ]
    if lines and assumed:
        lines.insert(
            0,
            f"info: what-if: {' and '.join(assumed)} "
            f"{'stands' if len(assumed) == 1 else 'stand'} for the nodes whose keepalived.conf "
            "was not converted: they run at spec.priority, as this YAML makes them",
        )
    return lines


# --- reports ----------------------------------------------------------------------------------


def _holders(nodes: tuple[str, ...]) -> str:
    return " or ".join(nodes) if nodes else "nobody"


def _table(rows: list[list[str]], header: list[str]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    lines = []
    for r in [header, *rows]:
        cells = [c.ljust(w) for c, w in zip(r, widths, strict=False)] + [r[-1]]
        lines.append("  " + "  ".join(cells).rstrip())
    return lines


def _outcome_rows(outcomes: Iterable[Outcome]) -> list[list[str]]:
    return [
        [
            " + ".join(map(str, o.failures)),
            _holders(o.before),
            _holders(o.after),
            _holders(o.recovered),
            o.why,
        ]
        for o in outcomes
    ]


def format_text(analyses: Sequence[Analysis], notes: Sequence[str] = ()) -> str:
    """The what-if tables and findings, for people."""
    lines: list[str] = []
    for note in notes:
        lines.append(f"note: {note}")
    if notes:
        lines.append("")
    header = ["FAILURE", "BEFORE", "AFTER", "ONCE CLEARED", "WHY"]
    for a in _merge_families(analyses):
        preempt = a.preempt.value + (
            f" {format_duration_cs(a.preempt_delay_cs)}" if a.preempt is PreemptMode.DELAY else ""
        )
        nodes = ", ".join(f"{s.node} {s}" for s in a.steady)
        lines.append(f"{a.instance}: VRID {a.vrid}, preempt {preempt}; {nodes}")
        lines.append(f"  holder: {_holders(a.holder)}")
        lines.append("")
        lines.extend(_table(_outcome_rows(a.singles), header))
        if a.pairs:
            lines.append("")
            lines.append("  both fail:")
            lines.extend(_table(_outcome_rows(a.pairs), header))
        elif a.pairs_omitted:
            lines.append(
                f"  ({a.pairs_omitted} both-fail cases not listed: more than {PAIR_LIMIT})"
            )
        lines.append("")
        if a.findings:
            for f in a.findings:
                lines.append(f"  {f.severity}: {f.message}")
        else:
            lines.append("  no findings")
        lines.append("  assuming: " + "; ".join(a.assumptions))
        lines.append("")
    if not analyses:
        lines.append("no VirtualIP runs on the nodes given")
    return "\n".join(lines).rstrip() + "\n"


def _merge_families(analyses: Sequence[Analysis]) -> list[Analysis]:
    """An IPv6 instance whose table says exactly what its IPv4 sibling's says is shown once,
    named "<namespace>/<name>/ipv4+ipv6"."""
    out: list[Analysis] = []
    for a in analyses:
        prev = out[-1] if out else None
        if (
            prev is not None
            and prev.virtualip == a.virtualip
            and _comparable(prev) == _comparable(a)
        ):
            out[-1] = replace(prev, instance=prev.instance + "+ipv6")
            continue
        out.append(a)
    return out


def _comparable(a: Analysis) -> Any:
    return (a.steady, a.holder, a.singles, a.pairs, a.findings)


def as_json(analyses: Sequence[Analysis], notes: Sequence[str] = ()) -> dict[str, Any]:
    return {"notes": list(notes), "analyses": [a.as_dict() for a in analyses]}


def warnings_text(analyses: Sequence[Analysis]) -> list[str]:
    """One line per warning, "<instance>: <message>", each message once per VirtualIP."""
    lines: list[str] = []
    for a in _merge_families(analyses):
        lines.extend(f"{a.instance}: {f.message}" for f in a.warnings)
    return list(dict.fromkeys(lines))
