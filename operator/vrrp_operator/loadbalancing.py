"""Load balancing: the cluster's pools, Services, namespaces and endpoints -> what render
gets and what the Services and pools show (pure).

`plan` reads the API objects (as the kopf indexes hold them), calls the pure core
(pools.parse_pool, allocation.allocate, allocation.instances) and returns a
`LoadBalancing`: the VirtualIP documents of the pool instances and the node sets of the
externalTrafficPolicy Local ones (render's input, beside the hand-written VirtualIPs), the
VRIDs the pools' status recorded, the hand-written VirtualIPs blocked because a Service
holds their address, and each Service's assignment. After render, `service_conditions` and
`pool_status` say what the Services and pools show, from the placements and the daemons'
reports.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from ipaddress import ip_interface
from typing import Any

from vrrp_operator.allocation import (
    CLASS_MISMATCH,
    POOL_ANNOTATIONS,
    Allocation,
    Assignment,
    LBService,
    PoolInstance,
    allocate,
    instances,
    service_from_object,
)
from vrrp_operator.pools import IPAddress, Pool, PoolSet, parse_pool
from vrrp_operator.render import NO_FREE_VRID, NO_NODES, Finding, Rendered, object_key
from vrrp_operator.services import (
    CONDITION_ALLOCATED,
    CONDITION_ANNOUNCED,
    Condition,
    class_mismatch,
    pooled,
    referenced_services,
)
from vrrp_operator.status import NodeReport, format_time
from vrrpd.spec.errors import ConfigError

ADDRESS_IN_USE = "AddressInUse"  # a VirtualIP finding: a Service holds its address
INT64_MAX = 2**63 - 1  # status counts of a /64 and larger stop here


@dataclass(frozen=True)
class LoadBalancing:
    pools: PoolSet
    invalid_pools: Mapping[str, tuple[str, ...]]  # pool name -> its problems
    services: tuple[LBService, ...]  # the Services the pools serve
    mismatched: Mapping[str, str]  # Service key -> why its kubevrrp.io/ annotations are unheard
    allocation: Allocation
    instances: tuple[PoolInstance, ...]
    recorded_vrids: Mapping[str, int] = field(default_factory=dict)  # instance key -> VRID
    _by_address: dict[IPAddress, PoolInstance] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        for inst in self.instances:
            for address in inst.addresses:
                self._by_address[address] = inst

    @property
    def documents(self) -> list[dict[str, Any]]:
        return [dict(i.document) for i in self.instances]

    @property
    def only(self) -> dict[str, frozenset[str]]:
        return {i.key: i.nodes for i in self.instances if i.nodes is not None}

    @property
    def service_keys(self) -> set[str]:
        return {s.key for s in self.services}

    def instance_of(self, address: IPAddress) -> PoolInstance | None:
        return self._by_address.get(address)

    def blocked_findings(self) -> tuple[Finding, ...]:
        return tuple(
            Finding(vip, ADDRESS_IN_USE, message)
            for vip, message in sorted(self.allocation.blocked.items())
        )


def plan(
    virtualips: Iterable[Mapping[str, Any]],
    pool_objects: Iterable[Mapping[str, Any]],
    service_objects: Iterable[Mapping[str, Any]],
    namespaces: Mapping[str, Mapping[str, str]],
    endpoints: Mapping[str, frozenset[str]],
    *,
    namespace: str,
    default_class: bool = False,
    known_vrids: Mapping[str, int] | None = None,
) -> LoadBalancing:
    """Everything the pool path decides, from the objects as the API returns them.

    `virtualips`: the hand-written ones (their addresses are never handed out);
    `namespaces`: namespace -> labels; `endpoints`: Service key -> nodes with a ready
    endpoint; `namespace`: the operator's, where the instance documents live;
    `default_class`: class-less LoadBalancer Services are served too (the chart's
    loadBalancer.defaultClass); `known_vrids`: instance key -> the VRID its last rendering
    gave it, over what the pools' status records (which may not show it yet): a VRID that
    moved while its record lags would restart the instance on every node.
    """
    vips = list(virtualips)
    parsed: list[Pool] = []
    invalid: dict[str, tuple[str, ...]] = {}
    recorded: dict[str, int] = {}
    for obj in pool_objects:
        name = str((obj.get("metadata") or {}).get("name") or "")
        if (obj.get("metadata") or {}).get("deletionTimestamp"):
            continue
        try:
            parsed.append(parse_pool(obj))
        except ConfigError as exc:
            invalid[name] = tuple(exc.problems)
            continue
        for entry in (obj.get("status") or {}).get("instances") or ():
            vrid = entry.get("vrid") if isinstance(entry, Mapping) else None
            if isinstance(vrid, int) and not isinstance(vrid, bool) and 1 <= vrid <= 255:
                recorded[f"{namespace}/{entry.get('name')}"] = vrid
    pools = PoolSet.of(parsed)

    referenced = referenced_services(vips)
    served: list[LBService] = []
    mismatched: dict[str, str] = {}
    for obj in service_objects:
        if (obj.get("metadata") or {}).get("deletionTimestamp"):
            continue
        if pooled(obj, referenced, default_class):
            served.append(service_from_object(obj))
            continue
        svc = service_from_object(obj)
        asks = any(a in svc.annotations for a in POOL_ANNOTATIONS)
        why = class_mismatch(obj, asks, default_class)
        if why is not None:
            mismatched[svc.key] = why

    taken: dict[IPAddress, str] = {}
    for obj in vips:
        key = object_key(obj)
        for text in (obj.get("spec") or {}).get("addresses") or ():
            try:
                taken.setdefault(ip_interface(str(text)).ip, key)
            except ValueError:
                continue
    allocation = allocate(served, pools, namespaces, taken)
    grouped = instances(allocation, served, pools, endpoints, namespace)
    live = {i.key for i in grouped}
    return LoadBalancing(
        pools=pools,
        invalid_pools=invalid,
        services=tuple(served),
        mismatched=mismatched,
        allocation=allocation,
        instances=grouped,
        recorded_vrids={k: v for k, v in {**recorded, **(known_vrids or {})}.items() if k in live},
    )


# --- what a Service shows --------------------------------------------------------------------


def service_conditions(
    key: str,
    lb: LoadBalancing,
    rendered: Rendered | None,
    reports: Mapping[str, NodeReport],
) -> tuple[tuple[str, ...] | None, list[Condition]]:
    """The ingress addresses and the conditions of Service `key` (one the pools serve, or
    one whose annotations go unheard); ingress None: leave it alone (not ours)."""
    if key in lb.mismatched:
        return None, [Condition(CONDITION_ALLOCATED, False, CLASS_MISMATCH, lb.mismatched[key])]
    assignment = lb.allocation.assignments.get(key)
    if assignment is None:
        return None, []
    allocated = Condition(CONDITION_ALLOCATED, assignment.ok, assignment.reason, assignment.message)
    if not assignment.ok:
        announced = Condition(
            CONDITION_ANNOUNCED,
            False,
            "NoAddress",
            f"no address to announce ({CONDITION_ALLOCATED}: {assignment.reason})",
        )
        return (), [allocated, announced]
    ingress = tuple(str(a) for a in assignment.addresses)
    return ingress, [allocated, _announced(assignment, lb, rendered, reports)]


def _announced(
    assignment: Assignment,
    lb: LoadBalancing,
    rendered: Rendered | None,
    reports: Mapping[str, NodeReport],
) -> Condition:
    held: list[str] = []
    problems: list[tuple[str, str]] = []
    for address in assignment.addresses:
        inst = lb.instance_of(address)
        placement = rendered.placements.get(inst.key) if rendered and inst else None
        if inst is None or rendered is None:
            problems.append(("NotPlaced", f"{address}: not placed yet"))
            continue
        if placement is None or not placement.rendered:
            findings = rendered.findings(inst.key)
            finding = next((f for f in findings if f.node is None), None)
            if finding is not None and finding.reason == NO_NODES:
                if inst.nodes is not None:
                    problems.append(
                        (
                            "NoReadyEndpoints",
                            f"{address}: no node of pool {inst.pool} has a ready endpoint of "
                            "this Service (externalTrafficPolicy Local: only those may hold it)",
                        )
                    )
                else:
                    problems.append(
                        (
                            "NoEligibleNodes",
                            f"{address}: no node can hold it: {finding.message} (pool "
                            f"{inst.pool}, spec.nodeSelector)",
                        )
                    )
            elif finding is not None:
                reason = "NoFreeVRID" if finding.reason == NO_FREE_VRID else finding.reason
                problems.append((reason, f"{address}: {finding.message}"))
            else:
                problems.append(("NotPlaced", f"{address}: not placed yet"))
            continue
        name = f"{inst.key}/ipv{address.version}"
        masters = sorted(
            node
            for node, report in reports.items()
            if report.pod_running
            and (i := report.instances.get(name)) is not None
            and i.state == "MASTER"
        )
        if len(masters) == 1:
            held.append(f"{address} on {masters[0]} (VRID {placement.vrid})")
        elif masters:
            problems.append(("SplitBrain", f"{address}: {', '.join(masters)} all hold it"))
        else:
            problems.append(
                (
                    "NoMaster",
                    f"{address}: no node holds it yet (VRID {placement.vrid} on "
                    f"{', '.join(placement.nodes)})",
                )
            )
    if not problems:
        return Condition(CONDITION_ANNOUNCED, True, "Held", ", ".join(held))
    message = "; ".join([m for _, m in problems] + held)
    return Condition(CONDITION_ANNOUNCED, False, problems[0][0], message)


# --- what a pool shows -----------------------------------------------------------------------


def pool_status(
    obj: Mapping[str, Any],
    lb: LoadBalancing,
    rendered: Rendered | None,
    reports: Mapping[str, NodeReport],
    now: datetime,
) -> dict[str, Any]:
    """status of one VirtualIPPool: counts, instances (VRID, master) and conditions."""
    meta = obj.get("metadata") or {}
    name = str(meta.get("name") or "")
    old = obj.get("status") or {}
    status: dict[str, Any] = {}
    problems = lb.invalid_pools.get(name)
    pool = lb.pools.by_name(name)
    if problems is not None or pool is None:
        message = "; ".join(problems or ("not read yet",))
        status.update(size=0, used=0, free=0, instances=[])
        conditions = [_condition("Ready", False, "InvalidSpec", message)]
    else:
        reserved = [
            {"address": address, "virtualIP": vip}
            for address, vip in lb.allocation.reserved.get(name, ())
        ]
        totals = [0, 0, 0]
        for family in pool.families:
            size = pool.size(family)
            used = lb.allocation.used(name, family)
            kept = sum(1 for r in reserved if (":" in r["address"]) == (family == 6))
            free = max(0, size - used - kept)
            status[f"ipv{family}"] = {
                "size": min(size, INT64_MAX),
                "used": used,
                "free": min(free, INT64_MAX),
            }
            for i, value in enumerate((size, used, free)):
                totals[i] += value
        status.update(
            size=min(totals[0], INT64_MAX),
            used=totals[1],
            free=min(totals[2], INT64_MAX),
            instances=[
                _instance_entry(i, rendered, reports) for i in lb.instances if i.pool == name
            ],
        )
        if reserved:
            status["reservedByVirtualIPs"] = reserved
        services = sum(1 for a in lb.allocation.assignments.values() if a.ok and a.pool == name)
        conditions = [
            _condition(
                "Ready",
                True,
                "Valid",
                f"{totals[1]} of {totals[0]} addresses used by {services} Services in "
                f"{len(status['instances'])} VRRP instances",
            )
        ]
        older = lb.pools.overlaps.get(name)
        if older:
            conditions.append(
                _condition(
                    "Overlap",
                    True,
                    "Overlap",
                    f"addresses also listed by older pool {', '.join(older)} belong to "
                    "that pool; remove them from one of the two",
                )
            )
        else:
            conditions.append(
                _condition("Overlap", False, "NoOverlap", "no other pool lists its addresses")
            )
    before = {c.get("type"): c for c in old.get("conditions") or () if isinstance(c, Mapping)}
    for c in conditions:
        prev = before.get(c["type"])
        same = prev is not None and prev.get("status") == c["status"]
        c["lastTransitionTime"] = (prev or {}).get("lastTransitionTime") if same else None
        c["lastTransitionTime"] = c["lastTransitionTime"] or format_time(now)
    status["conditions"] = conditions
    generation = meta.get("generation")
    if isinstance(generation, int):
        status["observedGeneration"] = generation
    return status


def _condition(kind: str, ok: bool, reason: str, message: str) -> dict[str, Any]:
    return {"type": kind, "status": "True" if ok else "False", "reason": reason, "message": message}


def _instance_entry(
    inst: PoolInstance, rendered: Rendered | None, reports: Mapping[str, NodeReport]
) -> dict[str, Any]:
    placement = rendered.placements.get(inst.key) if rendered is not None else None
    entry: dict[str, Any] = {
        "name": inst.name,
        "family": f"IPv{inst.family}",
        "addresses": len(inst.addresses),
        "services": len(inst.services),
    }
    if placement is not None and placement.vrid is not None:
        entry["vrid"] = placement.vrid
    if placement is not None and placement.rendered:
        entry["nodes"] = list(placement.nodes)
        name = f"{inst.key}/ipv{inst.family}"
        masters = sorted(
            node
            for node, r in reports.items()
            if r.pod_running and (i := r.instances.get(name)) is not None and i.state == "MASTER"
        )
        if masters:
            entry["master"] = ",".join(masters)
    if inst.nodes is not None:
        entry["externalTrafficPolicy"] = "Local"
    return entry


def endpoint_nodes(slices: Iterable[tuple[str, frozenset[str]]]) -> dict[str, frozenset[str]]:
    """Service key -> nodes with a ready endpoint, from (Service key, nodes) per slice."""
    out: dict[str, frozenset[str]] = {}
    for key, nodes in slices:
        out[key] = out.get(key, frozenset()) | nodes
    return out


def slice_nodes(obj: Mapping[str, Any]) -> tuple[str, frozenset[str]] | None:
    """(Service key, nodes with a ready endpoint) of one EndpointSlice; None when it belongs
    to no Service (the kubernetes.io/service-name label)."""
    meta = obj.get("metadata") or {}
    service = (meta.get("labels") or {}).get("kubernetes.io/service-name")
    if not service:
        return None
    nodes = set()
    for endpoint in obj.get("endpoints") or ():
        if not isinstance(endpoint, Mapping):
            continue
        ready = (endpoint.get("conditions") or {}).get("ready")
        if ready is False or not endpoint.get("nodeName"):
            continue  # unset means ready (discovery.k8s.io/v1)
        nodes.add(str(endpoint["nodeName"]))
    return f"{meta.get('namespace') or 'default'}/{service}", frozenset(nodes)
