"""Status: the daemons' reports -> VirtualIP.status, and status changes -> Events (pure).

Each daemon writes one JSON report on its own pod (vrrpd/contract.py: a `Report` in the
`STATUS_ANNOTATION`; docs/operator.md), read here leniently (`parse_report`).
`aggregate_status` folds the reports of every node into the status of one VirtualIP: vrid,
master, nodes[] and the conditions Ready, Degraded, SplitBrain, VRIDConflict and Advisory
(the what-if warnings of advisory.py). `events` compares two statuses and names what a
person should hear about. Time is an argument (`now`), never read from a clock.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from vrrp_operator.objects import PodInfo
from vrrp_operator.render import (
    ADDRESS_CONFLICT,
    INVALID_SPEC,
    NO_ADDRESS,
    NO_FREE_VRID,
    NODE_EXCLUDED,
    VRID_CONFLICT,
    Finding,
    Placement,
    object_key,
)

STATES = ("INITIALIZE", "BACKUP", "MASTER", "FAULT", "STOPPED")
UNKNOWN = "Unknown"
# When one node shows several families in different states, the one that matters most.
_STATE_WEIGHT = {"FAULT": 5, "MASTER": 4, "BACKUP": 3, "INITIALIZE": 2, "STOPPED": 1, UNKNOWN: 0}
EVENT_MESSAGE_MAX = 1024  # an Event says what changed; the condition holds the whole text
STATUS_FIELDS = ("vrid", "master", "nodes", "conditions", "transitions", "observedGeneration")
SPLIT_BRAIN_ADVERTS = 2  # two MASTER reports overlapping longer than this many adverts
# How far one daemon's report may lag behind another's. Each daemon writes its own report
# through the API server, a moment after its own change, so a handover (two changes, on
# two nodes, a few ms apart on the wire) reaches the operator as two reports up to this far
# apart: two MASTER claims, or none, in between. Measured on the system test: 0.01-0.15 s.
REPORT_LAG_S = 2.0
REPORT_LAG = timedelta(seconds=REPORT_LAG_S)


# --- time ----------------------------------------------------------------------------------


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# --- reports -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InstanceReport:
    """One VRRP instance as its daemon reports it."""

    name: str  # "<namespace>/<virtualip>/ipv4" | ".../ipv6"
    state: str
    priority: int | None = None  # base priority (after nodePriorities)
    effective_priority: int | None = None  # after probe weights
    healthy: bool = True
    since: datetime | None = None  # when it entered `state`
    reason: str | None = None
    vrid: int | None = None
    split_brain: str | None = None  # what this node, MASTER, hears of another master

    @property
    def family(self) -> int:
        return 6 if self.name.endswith("/ipv6") else 4


@dataclass(frozen=True, slots=True)
class NodeReport:
    node: str
    instances: Mapping[str, InstanceReport] = field(default_factory=dict)
    config_hash: str | None = None  # the ConfigMap hash the daemon runs
    config_error: str | None = None  # why it refused the latest ConfigMap, if it did
    refused: Mapping[str, str] = field(default_factory=dict)  # VirtualIP key -> why not run
    updated: datetime | None = None
    # The daemon pod's phase, or Terminating once it is being deleted (PodInfo.lifecycle).
    pod_phase: str = "Running"

    @property
    def pod_running(self) -> bool:
        """Running and not terminating: otherwise its MASTER may be stale or not yet true."""
        return self.pod_phase == "Running"


def parse_report(node: str, text: str | None, *, pod_phase: str = "Running") -> NodeReport:
    """A NodeReport from the annotation text; an unreadable report is a report of nothing."""
    if not text:
        return NodeReport(node, pod_phase=pod_phase)
    try:
        data = json.loads(text)
    except ValueError as exc:
        return NodeReport(
            node, config_error=f"unreadable status report: {exc}", pod_phase=pod_phase
        )
    if not isinstance(data, Mapping):
        return NodeReport(
            node, config_error="status report is not a JSON object", pod_phase=pod_phase
        )
    instances: dict[str, InstanceReport] = {}
    for row in data.get("instances") or ():
        if not isinstance(row, Mapping) or not isinstance(row.get("name"), str):
            continue
        state = row.get("state") if row.get("state") in STATES else UNKNOWN
        healthy = row.get("healthy")
        instances[row["name"]] = InstanceReport(
            name=row["name"],
            state=str(state),
            priority=_int(row.get("priority")),
            effective_priority=_int(row.get("effectivePriority")),
            healthy=bool(healthy) if isinstance(healthy, bool) else state != "FAULT",
            since=parse_time(row.get("since")),
            reason=str(row["reason"]) if row.get("reason") else None,
            vrid=_int(row.get("vrid")),
            split_brain=_split_brain(row.get("splitBrain")),
        )
    refused = {
        str(r["virtualip"]): str(r.get("error") or "refused")
        for r in data.get("refused") or ()
        if isinstance(r, Mapping) and isinstance(r.get("virtualip"), str)
    }
    error = data.get("configError")
    config_hash = data.get("configHash")
    return NodeReport(
        node=node,
        instances=instances,
        config_hash=config_hash if isinstance(config_hash, str) else None,
        config_error=str(error) if error else None,
        refused=refused,
        updated=parse_time(data.get("updated")),
        pod_phase=pod_phase,
    )


def _split_brain(value: Any) -> str | None:
    if not isinstance(value, Mapping):
        return None
    return str(value.get("detail") or value.get("evidence") or "another master heard")[:512]


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def reports_from_pods(
    pods: Iterable[PodInfo], parse: Callable[..., NodeReport] = parse_report
) -> dict[str, NodeReport]:
    """One report per node from its daemon pod (the newest pod when a node has two).

    `parse` may be a caching wrapper of parse_report (reports are read far more often than
    they change)."""
    out: dict[str, NodeReport] = {}
    for p in sorted(pods, key=lambda p: p.terminating, reverse=True):
        out[p.node] = parse(p.node, p.report, pod_phase=p.lifecycle)
    return out


def masters(reports: Mapping[str, NodeReport]) -> set[str]:
    """Nodes that hold at least one VIP now (the rollout replaces them last)."""
    return {
        node
        for node, report in reports.items()
        if report.pod_running and any(i.state == "MASTER" for i in report.instances.values())
    }


def affected(
    node: str,
    before: NodeReport | None,
    after: NodeReport | None,
    placements: Mapping[str, Placement],
) -> set[str]:
    """The VirtualIPs whose status a change of `node`'s report or pod phase can change:
    those it reported or reports, and those placed on it."""
    keys = {
        name.rsplit("/", 1)[0]
        for report in (before, after)
        if report is not None
        for name in report.instances
    }
    keys.update(key for key, p in placements.items() if node in p.nodes)
    return keys


# --- aggregation ---------------------------------------------------------------------------


def aggregate_status(
    virtualip: Mapping[str, Any],
    reports: Mapping[str, NodeReport],
    now: datetime,
    *,
    placement: Placement | None = None,
    findings: Sequence[Finding] = (),
    advisory: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The status of one VirtualIP object from every node's report.

    `placement` is what render decided for it (None: not valid, see `findings`); the old
    status (in `virtualip`) keeps condition transition times and the transition count.
    `advisory`: its what-if warnings (advisory.py), None when it was not analysed.
    """
    key = object_key(virtualip)
    old: Mapping[str, Any] = virtualip.get("status") or {}
    interval_cs = placement.advert_interval_cs if placement is not None else 100
    families = _families(placement)
    expected = set(placement.nodes) if placement is not None else set()

    per_node = _reported(key, reports, families)
    nodes: list[dict[str, Any]] = []
    for node in sorted(expected | set(per_node)):
        nodes.append(
            _node_entry(
                node, per_node.get(node, []), reports.get(node), placement, node in expected, key
            )
        )
    limit = _split_limit(interval_cs)
    masters_by_family, split = _masters(per_node, reports, families, now, limit)
    split = heard_splits(split, per_node, limit)
    all_masters = sorted({n for ms in masters_by_family.values() for n in ms})

    master: str | None = ",".join(all_masters) or None
    status: dict[str, Any] = {
        "vrid": placement.vrid if placement is not None else None,
        "master": master,
        "nodes": nodes,
    }
    one_master = bool(families) and all(len(masters_by_family[f]) == 1 for f in families)
    conditions = [
        _ready(placement, findings, split, one_master, all_masters, families),
        _degraded(nodes, findings, expected),
        _split_condition(split),
        _conflict_condition(placement, findings),
        _advisory_condition(advisory),
    ]
    status["conditions"] = _stamp(conditions, old.get("conditions") or (), now)
    transitions = _int(old.get("transitions")) or 0
    if master is not None and master != old.get("master"):
        transitions += 1
    status["transitions"] = transitions
    generation = (virtualip.get("metadata") or {}).get("generation")
    if isinstance(generation, int):
        status["observedGeneration"] = generation
    return status


def _families(placement: Placement | None) -> tuple[int, ...]:
    if placement is None:
        return ()
    found = {6 if ":" in a else 4 for a in placement.addresses}
    return tuple(sorted(found))


def _node_entry(
    node: str,
    insts: list[InstanceReport],
    report: NodeReport | None,
    placement: Placement | None,
    expected: bool,
    key: str,
) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": node}
    base = placement.priorities.get(node) if placement is not None else None
    if not insts:
        entry["state"] = UNKNOWN
        entry["healthy"] = False
        if base is not None:
            entry["basePriority"] = base
        entry["reason"] = _why_no_report(node, report, key)
        return entry
    insts = sorted(insts, key=lambda i: i.family)
    state = max((i.state for i in insts), key=lambda s: _STATE_WEIGHT.get(s, 0))
    entry["state"] = state
    priorities = [i.priority for i in insts if i.priority is not None]
    if priorities or base is not None:
        entry["basePriority"] = min(priorities) if priorities else base
    effective = [i.effective_priority for i in insts if i.effective_priority is not None]
    if effective:
        entry["effectivePriority"] = min(effective)
    entry["healthy"] = all(i.healthy for i in insts)
    sinces = [i.since for i in insts if i.since is not None]
    if sinces:
        entry["since"] = format_time(max(sinces))
    reasons: list[str] = []
    if len({i.state for i in insts}) > 1:
        reasons.append(", ".join(f"IPv{i.family} {i.state}" for i in insts))
    reasons.extend(i.reason for i in insts if i.reason)
    if report is not None and not report.pod_running:
        reasons.append(_pod_not_running(report.pod_phase))
    if not expected:
        reasons.append("leaving: this node no longer runs the VirtualIP")
    if reasons:
        entry["reason"] = "; ".join(dict.fromkeys(reasons))[:1024]
    return entry


def _why_no_report(node: str, report: NodeReport | None, key: str) -> str:
    if report is None:
        return f"no running vrrpd pod on {node}"
    if key in report.refused:
        return f"vrrpd refused this VirtualIP: {report.refused[key]}"[:1024]
    if report.config_error:
        return f"vrrpd refused its configuration: {report.config_error}"[:1024]
    if not report.pod_running:
        return _pod_not_running(report.pod_phase)
    return "vrrpd has not reported this VirtualIP yet (configuration not applied)"


def _pod_not_running(phase: str) -> str:
    """Why a node's daemon pod does not count as running, true for every phase."""
    if phase == "Terminating":
        return "daemon pod is stopping"
    if phase == "Pending":
        return "daemon pod is starting (phase Pending)"
    if phase in ("Succeeded", "Failed"):
        return f"daemon pod has exited (phase {phase})"
    return f"daemon pod is in phase {phase} (its node's kubelet does not report it)"


def recheck_in(
    key: str, reports: Mapping[str, NodeReport], now: datetime, placement: Placement | None
) -> float | None:
    """Seconds until the status of VirtualIP `key` changes with no new report: MASTER claims
    that overlap now (the newest one is the master meanwhile) become a split brain once they
    have overlapped longer than `_split_limit`. None when nothing is pending."""
    if placement is None:
        return None
    families = _families(placement)
    per_node = _reported(key, reports, families)
    limit = _split_limit(placement.advert_interval_cs)
    pending = [
        (limit - (now - max(claims.values()))).total_seconds()
        for family in families
        if len(claims := _claims(per_node, reports, family, now)) >= 2
        and now - max(claims.values()) <= limit
    ]
    return min(pending) if pending else None


def _reported(
    key: str, reports: Mapping[str, NodeReport], families: Sequence[int]
) -> dict[str, list[InstanceReport]]:
    """node -> the instances of VirtualIP `key` its daemon reports."""
    per_node: dict[str, list[InstanceReport]] = {}
    for node, report in reports.items():
        for family in families:
            inst = report.instances.get(f"{key}/ipv{family}")
            if inst is not None:
                per_node.setdefault(node, []).append(inst)
    return per_node


def _split_limit(interval_cs: int) -> timedelta:
    """How long MASTER claims may overlap before they are a split brain (see _Split)."""
    return max(timedelta(milliseconds=10 * interval_cs * SPLIT_BRAIN_ADVERTS), REPORT_LAG)


def _claims(
    per_node: Mapping[str, list[InstanceReport]],
    reports: Mapping[str, NodeReport],
    family: int,
    now: datetime,
) -> dict[str, datetime]:
    """node -> since when it reports MASTER for `family`.

    A stopping pod's last report says MASTER until its handover is done: it counts only
    while no running pod claims MASTER, so a planned stop is no split brain."""
    claims = {
        n: i.since or now
        for n, insts in per_node.items()
        for i in insts
        if i.family == family and i.state == "MASTER"
    }
    running = {n: t for n, t in claims.items() if (r := reports.get(n)) is None or r.pod_running}
    return running or claims


def _masters(
    per_node: Mapping[str, list[InstanceReport]],
    reports: Mapping[str, NodeReport],
    families: Sequence[int],
    now: datetime,
    limit: timedelta,
) -> tuple[dict[int, list[str]], list[_Split]]:
    """family -> its master(s), and the families in a split brain."""
    masters: dict[int, list[str]] = {}
    split: list[_Split] = []
    for family in families:
        claims = _claims(per_node, reports, family, now)
        newest = max(claims.values(), default=now)
        if len(claims) < 2 or now - newest > limit:
            masters[family] = sorted(claims)
            if len(claims) >= 2:
                split.append(_Split(family, tuple(sorted(claims)), now - newest, limit))
            continue
        # A takeover whose loser has not reported yet: the older master yields (or has gone)
        # when it hears the newer one, so the newer one is the master.
        masters[family] = sorted(n for n, t in claims.items() if t == newest)
    return masters, split


@dataclass(frozen=True, slots=True)
class _Split:
    """Two or more nodes MASTER together longer than a takeover takes to be reported: the
    larger of SPLIT_BRAIN_ADVERTS adverts (a preempting node and the old master overlap for
    up to one advert) and REPORT_LAG_S. Or a MASTER whose daemon hears another master
    (`heard`, node -> what it hears): that needs no second report, and no waiting."""

    family: int
    nodes: tuple[str, ...]
    overlap: timedelta
    limit: timedelta
    heard: tuple[tuple[str, str], ...] = ()


def heard_splits(
    split: list[_Split], per_node: Mapping[str, list[InstanceReport]], limit: timedelta
) -> list[_Split]:
    """`split` with what the daemons themselves report (vrrpd.vrrp.splitbrain): a MASTER that
    hears another master for its VRID or VIP, which its daemon confirms within two adverts."""
    out = {s.family: s for s in split}
    for family in sorted({i.family for insts in per_node.values() for i in insts}):
        heard = tuple(
            (node, i.split_brain)
            for node, insts in sorted(per_node.items())
            for i in insts
            if i.family == family and i.state == "MASTER" and i.split_brain
        )
        if not heard:
            continue
        known = out.get(family)
        nodes = tuple(sorted({*(known.nodes if known else ()), *(n for n, _ in heard)}))
        overlap = known.overlap if known else timedelta(0)
        out[family] = _Split(family, nodes, overlap, limit, heard)
    return [out[f] for f in sorted(out)]


def _condition(kind: str, ok: bool, reason: str, message: str) -> dict[str, Any]:
    return {"type": kind, "status": "True" if ok else "False", "reason": reason, "message": message}


def _blocking(findings: Sequence[Finding]) -> Finding | None:
    """The VirtualIP-wide finding that keeps it from running, if any."""
    return next((f for f in findings if f.node is None), None)


def _ready(
    placement: Placement | None,
    findings: Sequence[Finding],
    split: list[_Split],
    one_master: bool,
    all_masters: list[str],
    families: tuple[int, ...],
) -> dict[str, Any]:
    blocking = _blocking(findings)
    if placement is None or not placement.rendered:
        if blocking is not None:
            return _condition("Ready", False, blocking.reason, blocking.message)
        return _condition("Ready", False, "NotRendered", "the operator has not placed it yet")
    if split:
        return _condition("Ready", False, "SplitBrain", _split_text(split))
    if one_master:
        holder = all_masters[0] if len(all_masters) == 1 else ", ".join(all_masters)
        return _condition(
            "Ready", True, "MasterElected", f"{holder} holds {', '.join(placement.addresses)}"
        )
    missing = [f"IPv{f}" for f in families]
    return _condition(
        "Ready", False, "NoMaster", f"no node reports MASTER for {' and '.join(missing)} yet"
    )


def _degraded(
    nodes: list[dict[str, Any]], findings: Sequence[Finding], expected: set[str]
) -> dict[str, Any]:
    problems: list[str] = []
    reason = ""
    unhealthy = [n for n in nodes if n["name"] in expected and not n.get("healthy", False)]
    for n in unhealthy:
        problems.append(f"{n['name']}: {n.get('reason') or n.get('state', UNKNOWN)}")
    if unhealthy:
        reason = "NoReport" if all(n["state"] == UNKNOWN for n in unhealthy) else "NodeUnhealthy"
    excluded = [
        f for f in findings if f.node is not None and f.reason in (NODE_EXCLUDED, NO_ADDRESS)
    ]
    problems.extend(f.message for f in excluded)
    if excluded and not reason:
        reason = "NodesExcluded"
    if not problems:
        return _condition("Degraded", False, "AllHealthy", "every node that runs it is healthy")
    return _condition("Degraded", True, reason, "; ".join(problems)[:32768])


def _split_text(split: list[_Split]) -> str:
    return "; ".join(_one_split_text(s) for s in split)


def _one_split_text(s: _Split) -> str:
    heard = "".join(f"; {node} (MASTER) hears {what}" for node, what in s.heard)
    if s.overlap <= s.limit and s.heard:  # only the daemons say so, so far
        return f"IPv{s.family}{heard}: check that the nodes hear each other's adverts"
    return (
        f"{', '.join(s.nodes)} all MASTER for IPv{s.family} for "
        f"{s.overlap.total_seconds():.1f}s (> {s.limit.total_seconds():g}s){heard}: check "
        "that they hear each other's adverts"
    )


def master_lost(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """The status named a master and the reports now show none. In a handover the old
    master's last report, or its pod, can be gone before the new master's first report
    arrives: the caller keeps the old status for up to REPORT_LAG_S before it says so."""
    return bool(old.get("master")) and not new.get("master")


def _split_condition(split: list[_Split]) -> dict[str, Any]:
    if split:
        return _condition("SplitBrain", True, "SplitBrain", _split_text(split))
    return _condition("SplitBrain", False, "SingleMaster", "no two nodes hold the VIP")


def _conflict_condition(placement: Placement | None, findings: Sequence[Finding]) -> dict[str, Any]:
    conflict = next((f for f in findings if f.reason in (VRID_CONFLICT, NO_FREE_VRID)), None)
    if conflict is not None:
        return _condition("VRIDConflict", True, conflict.reason, conflict.message)
    if placement is None:
        invalid = next((f for f in findings if f.reason == INVALID_SPEC), None)
        message = "not checked: the spec is invalid" if invalid else "not checked yet"
        return _condition("VRIDConflict", False, "NotChecked", message)
    if placement.vrid is None:
        blocking = _blocking(findings)
        why = f" ({blocking.reason})" if blocking is not None else ""
        return _condition("VRIDConflict", False, "NotChecked", f"not checked: refused{why}")
    return _condition(
        "VRIDConflict",
        False,
        "Unique",
        f"VRID {placement.vrid} is used by no other VirtualIP on its segment or nodes",
    )


def _advisory_condition(advisory: Sequence[str] | None) -> dict[str, Any]:
    if advisory is None:
        return {
            "type": "Advisory",
            "status": "Unknown",
            "reason": "NotAnalysed",
            "message": "not rendered: no node runs it, so there is nothing to analyse",
        }
    if not advisory:
        return _condition(
            "Advisory", False, "NoFindings", "the what-if analysis finds nothing to warn about"
        )
    return _condition("Advisory", True, "WhatIfFindings", "; ".join(advisory)[:32768])


def _stamp(
    conditions: list[dict[str, Any]], old: Iterable[Mapping[str, Any]], now: datetime
) -> list[dict[str, Any]]:
    """Keep lastTransitionTime while a condition's status stays the same."""
    before = {c.get("type"): c for c in old if isinstance(c, Mapping)}
    for c in conditions:
        prev = before.get(c["type"])
        same = (
            prev is not None
            and prev.get("status") == c["status"]
            and prev.get("lastTransitionTime")
        )
        c["lastTransitionTime"] = prev["lastTransitionTime"] if same and prev else format_time(now)
    return conditions


# --- events --------------------------------------------------------------------------------

Event = tuple[str, str, str]  # (reason, type Normal|Warning, message)


def _conditions(status: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]]:
    return {
        c.get("type", ""): c
        for c in (status or {}).get("conditions") or ()
        if isinstance(c, Mapping)
    }


def _is_true(conditions: Mapping[str, Mapping[str, Any]], kind: str) -> bool:
    return conditions.get(kind, {}).get("status") == "True"


def events(old_status: Mapping[str, Any] | None, new_status: Mapping[str, Any]) -> list[Event]:
    """What changed that a person should hear about: MasterChanged, ProbeFailed, SplitBrain,
    VRIDConflict, AddressConflict (naming the VirtualIP that holds the address), Advisory.
    Only edges: a condition that stays True says nothing again
    (Advisory speaks again when its findings change)."""
    old_status = old_status or {}
    out: list[Event] = []
    before, after = old_status.get("master"), new_status.get("master")
    if before != after:
        if after:
            was = f" (was {before})" if before else ""
            out.append(("MasterChanged", "Normal", f"{after} is now MASTER{was}"))
        else:
            out.append(("MasterChanged", "Warning", f"no node is MASTER any more (was {before})"))
    old_nodes = {n.get("name"): n for n in old_status.get("nodes") or () if isinstance(n, Mapping)}
    for n in new_status.get("nodes") or ():
        if n.get("healthy", True) or n.get("state") == UNKNOWN:
            continue  # Unknown = no report: a missing pod, not a failing probe
        prev = old_nodes.get(n["name"])
        if prev is None or prev.get("healthy", True) or prev.get("state") == UNKNOWN:
            why = n.get("reason") or f"state {n.get('state')}"
            out.append(("ProbeFailed", "Warning", f"{n['name']}: {why}"))
    old_c, new_c = _conditions(old_status), _conditions(new_status)
    for kind in ("SplitBrain", "VRIDConflict"):
        if _is_true(new_c, kind) and not _is_true(old_c, kind):
            out.append((kind, "Warning", str(new_c[kind].get("message", ""))))
    refused, reason_before = new_c.get("Ready", {}), old_c.get("Ready", {}).get("reason")
    if refused.get("reason") == ADDRESS_CONFLICT and reason_before != ADDRESS_CONFLICT:
        holder = str(refused.get("message", ""))[:EVENT_MESSAGE_MAX]  # it names the holder
        out.append((ADDRESS_CONFLICT, "Warning", holder))
    advice = str(new_c.get("Advisory", {}).get("message", ""))
    if _is_true(new_c, "Advisory") and (
        not _is_true(old_c, "Advisory") or old_c["Advisory"].get("message") != advice
    ):
        if len(advice) > EVENT_MESSAGE_MAX:
            advice = advice[: EVENT_MESSAGE_MAX - 40] + " ... (kubectl describe shows the rest)"
        out.append(("Advisory", "Warning", advice))
    return out


def status_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON merge patch turning `old` status into `new` (None deletes a field).

    Only the fields aggregate_status owns are deleted; anything else in status (another
    tool's) is left alone.
    """
    patch: dict[str, Any] = {k: v for k, v in new.items() if old.get(k) != v}
    for k in STATUS_FIELDS:
        if k in old and k not in new:
            patch[k] = None
    return patch


def status_write(
    seen: Mapping[str, Any],
    written: Mapping[str, Any] | None,
    new: Mapping[str, Any],
    *,
    written_age_s: float,
    lost_for_s: float | None,
    resync_s: float,
) -> tuple[dict[str, Any], float | None]:
    """What to write of status `new`, and when to look again: (merge patch, None) or, held
    back, ({}, seconds).

    `seen` is the status on the object as the operator last saw it, `written` what it wrote
    last, `written_age_s` ago (the object may not show that yet: against `written`, what
    was written is not sent again, which under load would feed a storm of watch events).
    `lost_for_s`: for how long the master has been missing (`master_lost`), or None; the
    new master's first report may still be on its way, so a lost master is written only
    once it has been lost REPORT_LAG_S. Once a write is older than `resync_s`, a status
    that still disagrees with it (someone else changed it) is written again.
    """
    if lost_for_s is not None and lost_for_s < REPORT_LAG_S:
        return {}, REPORT_LAG_S - lost_for_s
    changes = status_patch(written if written is not None else seen, new)
    if not changes and written_age_s > resync_s:
        changes = status_patch(seen, new)
    return changes, None
