"""Allocation: LoadBalancer Services x VirtualIPPools -> addresses, and addresses -> the
VRRP instances that carry them, as VirtualIP documents for render (pure).

`allocate` gives each Service its addresses (or the reason it has none); `instances` groups
the allocated addresses into VirtualIP-equivalent documents that `render` places like any
hand-written VirtualIP (same VRID allocation, same per-node ConfigMaps, same daemon).

How addresses share VRRP instances (docs/architecture.md, "Address pools"): a VRID is one
of 255 per segment and family, so one instance per Service would stop at 255 Services.
An instance is a VRRP router that carries many addresses, so:

- Services with externalTrafficPolicy Cluster may be held by any node of the pool: their
  addresses share one instance per pool, family and window, a window being 255 (IPv4) or
  90 (IPv6) consecutive addresses of the pool (what one advert carries, MAX_ADDRESSES).
  An address's window depends on the address alone, so a Service that comes or goes never
  moves another Service's address to another instance. 500 IPv4 Services: 2 instances.
- Services with externalTrafficPolicy Local may only be held where a ready endpoint runs,
  which is their own node set. Their addresses share one instance per pool, family,
  namespace and pod selector (and window): the Services of one workload follow the same
  pods, and the instance keeps its identity while those pods move, so a moved pod only
  adds or removes that node's part (no new election for the others, no VRID churn).

Who gets an address, in this order (older Services first within each step, by
creationTimestamp then namespace/name): Services keep the addresses their status already
shows while those stay valid (a restart of the operator changes nothing); then requested
addresses (annotation kubevrrp.io/loadBalancerIPs, else spec.loadBalancerIP); then
automatic assignment, lowest free address first, from the pool the Service names
(kubevrrp.io/address-pool) or the first pool (oldest first) that allows it and has
autoAssign. A Service with kubevrrp.io/allow-shared-ip shares an address with the Services
of the same key whose ports differ (and, with externalTrafficPolicy Local, that select the
same pods). Addresses of hand-written VirtualIPs are never handed out; a VirtualIP that
names an address a Service already holds is blocked instead.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import ip_address, ip_interface
from typing import Any

from vrrp_operator.objects import GROUP
from vrrp_operator.pools import IPAddress, Pool, PoolSet
from vrrpd.limits import MAX_ADDRESSES
from vrrpd.spec import API_VERSION, KIND

LOAD_BALANCER_CLASS = f"{GROUP}/vrrp"
ANNOTATION_POOL = f"{GROUP}/address-pool"
ANNOTATION_ADDRESSES = f"{GROUP}/loadBalancerIPs"
ANNOTATION_SHARED = f"{GROUP}/allow-shared-ip"
ANNOTATION_VIRTUALIP = f"{GROUP}/virtualip"  # the VirtualIP path (services.py)
# Annotations that ask the pools for something: on a Service of another class they are a
# mistake worth saying (ClassMismatch).
POOL_ANNOTATIONS = (ANNOTATION_POOL, ANNOTATION_ADDRESSES, ANNOTATION_SHARED)
FAMILIES = {"IPv4": 4, "IPv6": 6}

# Assignment reasons: the reason of the Service's kubevrrp.io/AddressAllocated condition
# and of its Events.
ALLOCATED = "Allocated"
POOL_EXHAUSTED = "PoolExhausted"
ADDRESS_TAKEN = "AddressTaken"
ADDRESS_NOT_IN_POOL = "AddressNotInPool"
NO_MATCHING_POOL = "NoMatchingPool"
POOL_NOT_ALLOWED = "PoolNotAllowed"
INVALID_REQUEST = "InvalidRequest"
FAMILY_MISMATCH = "FamilyMismatch"
CLASS_MISMATCH = "ClassMismatch"


# --- Services --------------------------------------------------------------------------------


@dataclass(frozen=True)
class LBService:
    """What allocation reads of a Service."""

    key: str  # "<namespace>/<name>"
    namespace: str
    name: str
    created: str = ""
    uid: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    lb_class: str | None = None
    load_balancer: bool = True  # spec.type LoadBalancer
    families: tuple[int, ...] = (4,)  # spec.ipFamilies, primary first
    require_all: bool = True  # False: PreferDualStack (the second family is optional)
    local: bool = False  # externalTrafficPolicy Local
    ports: frozenset[tuple[str, int]] = frozenset()  # (protocol, port)
    selector: tuple[tuple[str, str], ...] | None = None  # spec.selector, sorted
    current: tuple[IPAddress, ...] = ()  # status.loadBalancer.ingress[].ip
    requested: tuple[IPAddress, ...] | None = None
    request_problem: str | None = None
    pool: str | None = None  # kubevrrp.io/address-pool
    sharing_key: str | None = None  # kubevrrp.io/allow-shared-ip
    annotations: frozenset[str] = frozenset()  # the kubevrrp.io/ annotation keys it has

    @property
    def order(self) -> tuple[str, str]:
        return (self.created, self.key)


def service_from_object(obj: Mapping[str, Any]) -> LBService:
    """An LBService from a v1 Service as the API returns it (lenient: defaults for gaps)."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    annotations = meta.get("annotations") or {}
    namespace = str(meta.get("namespace") or "default")
    name = str(meta.get("name") or "")
    families = tuple(FAMILIES[f] for f in spec.get("ipFamilies") or ("IPv4",) if f in FAMILIES)
    ports = frozenset(
        (str(p.get("protocol") or "TCP"), int(p["port"]))
        for p in spec.get("ports") or ()
        if isinstance(p, Mapping) and isinstance(p.get("port"), int)
    )
    selector = spec.get("selector")
    current: list[IPAddress] = []
    for entry in (status.get("loadBalancer") or {}).get("ingress") or ():
        try:
            current.append(ip_address(str((entry or {}).get("ip", ""))))
        except ValueError:
            continue
    requested, problem = _requested(annotations, spec.get("loadBalancerIP"))
    return LBService(
        key=f"{namespace}/{name}",
        namespace=namespace,
        name=name,
        created=str(meta.get("creationTimestamp") or ""),
        uid=meta.get("uid"),
        labels=dict(meta.get("labels") or {}),
        lb_class=spec.get("loadBalancerClass"),
        load_balancer=spec.get("type") == "LoadBalancer",
        families=families or (4,),
        require_all=spec.get("ipFamilyPolicy") != "PreferDualStack",
        local=spec.get("externalTrafficPolicy") == "Local",
        ports=ports,
        selector=tuple(sorted(selector.items())) if isinstance(selector, Mapping) else None,
        current=tuple(current),
        requested=requested,
        request_problem=problem,
        pool=annotations.get(ANNOTATION_POOL) or None,
        sharing_key=annotations.get(ANNOTATION_SHARED) or None,
        annotations=frozenset(k for k in annotations if k.startswith(f"{GROUP}/")),
    )


def _requested(
    annotations: Mapping[str, str], load_balancer_ip: Any
) -> tuple[tuple[IPAddress, ...] | None, str | None]:
    text = annotations.get(ANNOTATION_ADDRESSES)
    legacy = str(load_balancer_ip).strip() if load_balancer_ip else ""
    if text is None and not legacy:
        return None, None
    if text is not None and legacy:
        return None, (
            f"both annotation {ANNOTATION_ADDRESSES} ({text!r}) and spec.loadBalancerIP "
            f"({legacy!r}) are set; keep the annotation and remove spec.loadBalancerIP"
        )
    where = f"annotation {ANNOTATION_ADDRESSES}" if text is not None else "spec.loadBalancerIP"
    items = [t for t in re.split(r"[,\s]+", text if text is not None else legacy) if t]
    if not items:
        return None, f"{where} is empty; give one address per family, e.g. 192.168.10.5"
    out: list[IPAddress] = []
    for item in items:
        try:
            address = ip_address(item)
        except ValueError:
            return None, (
                f"{where}: {item!r} is not an IP address; give addresses without a prefix "
                "length, comma-separated, e.g. 192.168.10.5,fd00:10::5"
            )
        if any(a.version == address.version for a in out):
            return None, (
                f"{where} lists two IPv{address.version} addresses; a Service has at most "
                "one address per family"
            )
        out.append(address)
    return tuple(out), None


# --- allocation ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Assignment:
    """What one Service gets: its addresses (primary family first), or why it has none."""

    service: str
    addresses: tuple[IPAddress, ...] = ()
    pool: str | None = None
    reason: str = ALLOCATED
    message: str = ""
    shared_with: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.reason == ALLOCATED


@dataclass
class _Claim:
    """Who uses an address: one Service, or several that share it."""

    pool: str
    services: list[LBService]

    @property
    def sharing_key(self) -> str | None:
        return self.services[0].sharing_key

    def conflict(self, service: LBService) -> str | None:
        """Why `service` may not share the address (None: it may)."""
        first = self.services[0]
        holders = ", ".join(s.key for s in self.services)
        if first.sharing_key is None or service.sharing_key != first.sharing_key:
            return (
                f"used by Service {holders}; to share it, give both Services the annotation "
                f"{ANNOTATION_SHARED} with the same key, and different ports"
            )
        taken = {p for s in self.services for p in s.ports}
        clash = sorted(taken & service.ports)
        if clash:
            shown = ", ".join(f"{port}/{proto}" for proto, port in clash)
            return (
                f"shared with {holders} under key {first.sharing_key!r}, but port {shown} is "
                "theirs too; use other ports"
            )
        if service.local != first.local:
            return (
                f"shared with {holders}, whose externalTrafficPolicy is "
                f"{'Local' if first.local else 'Cluster'}; sharing Services must agree"
            )
        if service.local and (service.namespace, service.selector) != (
            first.namespace,
            first.selector,
        ):
            return (
                f"shared with {holders} (externalTrafficPolicy Local) which select other pods; "
                "with Local, sharing Services must select the same pods"
            )
        return None


@dataclass(frozen=True)
class Allocation:
    assignments: Mapping[str, Assignment]  # by Service key
    # Hand-written VirtualIPs that name an address a Service holds: VirtualIP -> message.
    blocked: Mapping[str, str] = field(default_factory=dict)
    # Addresses of hand-written VirtualIPs that lie in a pool: pool -> [(address, VirtualIP)].
    reserved: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)

    def used(self, pool: str, family: int | None = None) -> int:
        seen = {
            a
            for x in self.assignments.values()
            if x.pool == pool
            for a in x.addresses
            if family is None or a.version == family
        }
        return len(seen)


def allocate(
    services: Iterable[LBService],
    pools: PoolSet,
    namespaces: Mapping[str, Mapping[str, str]],
    virtualip_addresses: Mapping[IPAddress, str],
) -> Allocation:
    """Addresses for every Service (see the module docstring for the order).

    `namespaces`: namespace name -> its labels (for spec.serviceAllocation.namespaceSelector);
    `virtualip_addresses`: every address of a hand-written VirtualIP -> "<namespace>/<name>".
    """
    ordered = sorted(services, key=lambda s: s.order)
    claims: dict[IPAddress, _Claim] = {}
    got: dict[str, dict[int, IPAddress]] = {s.key: {} for s in ordered}
    failed: dict[str, Assignment] = {}

    def allowed(pool: Pool, svc: LBService) -> bool:
        return pool.allows(namespaces.get(svc.namespace, {}), svc.labels)

    def claim(address: IPAddress, pool: str, svc: LBService) -> str | None:
        held = claims.get(address)
        if held is None:
            claims[address] = _Claim(pool, [svc])
            return None
        problem = held.conflict(svc)
        if problem is None:
            held.services.append(svc)
        return problem

    # 1. What the status shows stays, while valid (and, with a request, requested).
    for svc in ordered:
        if svc.request_problem is not None:
            continue
        for address in svc.current:
            if svc.requested is not None and address not in svc.requested:
                continue
            pool = pools.owner(address)
            if (
                pool is None
                or address.version not in svc.families
                or address.version in got[svc.key]
                or not allowed(pool, svc)
                or (svc.pool is not None and pool.name != svc.pool)
            ):
                continue
            if claim(address, pool.name, svc) is None:
                got[svc.key][address.version] = address

    # 2. Requested addresses.
    for svc in ordered:
        if svc.request_problem is not None:
            failed[svc.key] = Assignment(
                svc.key, reason=INVALID_REQUEST, message=svc.request_problem
            )
            continue
        if svc.requested is None:
            continue
        held = set(got[svc.key].values())
        problem = _request_problem(svc, held, pools, allowed, virtualip_addresses)
        if problem is not None:
            _release(svc, got, claims)
            failed[svc.key] = Assignment(svc.key, reason=problem[0], message=problem[1])
            continue
        for address in svc.requested:
            if address in held:
                continue
            pool = pools.owner(address)
            assert pool is not None  # _request_problem checked it
            why = claim(address, pool.name, svc)
            if why is not None:
                failed[svc.key] = Assignment(
                    svc.key, reason=ADDRESS_TAKEN, message=f"{address} is {why}"
                )
                _release(svc, got, claims)
                break
            got[svc.key][address.version] = address

    # 3. Automatic assignment for what is still missing.
    cursors: dict[tuple[str, int], int] = {}
    for svc in ordered:
        if svc.key in failed or svc.requested is not None:
            continue
        needed = [f for f in svc.families if f not in got[svc.key]]
        if not needed:
            continue
        for address, pool_name in _shared_addresses(svc, claims, needed, pools, allowed):
            if claim(address, pool_name, svc) is None:
                got[svc.key][address.version] = address
        needed = [f for f in svc.families if f not in got[svc.key]]
        if not needed:
            continue
        outcome = _automatic(
            svc, needed, got[svc.key], pools, allowed, claims, virtualip_addresses, cursors
        )
        if isinstance(outcome, Assignment):
            _release(svc, got, claims)
            cursors.clear()  # what it gave back may lie below a cursor
            failed[svc.key] = outcome
            continue
        for address, pool_name in outcome:
            claims[address] = _Claim(pool_name, [svc])
            got[svc.key][address.version] = address

    assignments: dict[str, Assignment] = {}
    for svc in ordered:
        if svc.key in failed:
            assignments[svc.key] = failed[svc.key]
            continue
        by_family = got[svc.key]
        addresses = tuple(by_family[f] for f in svc.families if f in by_family)
        pool_names = sorted({claims[a].pool for a in addresses})
        others = sorted({s.key for a in addresses for s in claims[a].services} - {svc.key})
        missing = [f for f in svc.families if f not in by_family]
        text = " and ".join(str(a) for a in addresses)
        message = f"{text} from pool {', '.join(pool_names)}"
        if others:
            message += f", shared with {', '.join(others)}"
        if missing:
            why = "none requested" if svc.requested is not None else "no address free"
            message += (
                f"; IPv{missing[0]}: {why} (ipFamilyPolicy PreferDualStack: "
                f"IPv{addresses[0].version} only)"
            )
        assignments[svc.key] = Assignment(
            svc.key,
            addresses,
            pool_names[0] if pool_names else None,
            ALLOCATED,
            message,
            tuple(others),
        )

    blocked: dict[str, str] = {}
    reserved: dict[str, list[tuple[str, str]]] = {}
    for address, vip in sorted(virtualip_addresses.items(), key=lambda kv: (kv[0].version, kv[0])):
        claim_ = claims.get(address)
        if claim_ is not None:
            holders = ", ".join(s.key for s in claim_.services)
            blocked.setdefault(
                vip,
                f"{address} is held by Service {holders} from pool {claim_.pool}; remove it from "
                "this VirtualIP, or release it from the Service first",
            )
            continue
        pool = pools.owner(address)
        if pool is not None:
            reserved.setdefault(pool.name, []).append((str(address), vip))
    return Allocation(
        assignments=assignments,
        blocked=blocked,
        reserved={k: tuple(v) for k, v in reserved.items()},
    )


def _release(
    svc: LBService, got: dict[str, dict[int, IPAddress]], claims: dict[IPAddress, _Claim]
) -> None:
    """Give back what `svc` claimed (it failed): a Service gets all it needs or nothing."""
    for address in got[svc.key].values():
        held = claims.get(address)
        if held is None:
            continue
        held.services = [s for s in held.services if s.key != svc.key]
        if not held.services:
            del claims[address]
    got[svc.key].clear()


def _request_problem(
    svc: LBService,
    held: set[IPAddress],
    pools: PoolSet,
    allowed: Callable[[Pool, LBService], bool],
    virtualip_addresses: Mapping[IPAddress, str],
) -> tuple[str, str] | None:
    assert svc.requested is not None
    for address in svc.requested:
        if address.version not in svc.families:
            shown = "/".join(f"IPv{f}" for f in svc.families)
            return FAMILY_MISMATCH, (
                f"{address} is IPv{address.version}, but the Service's ipFamilies are "
                f"{shown}; request an address of its families, or change spec.ipFamilies"
            )
        pool = pools.owner(address)
        if pool is None:
            names = ", ".join(p.name for p in pools.pools) or "none exists"
            return ADDRESS_NOT_IN_POOL, (
                f"{address} is in no VirtualIPPool (pools: {names}); request an address of "
                "a pool, or add it to one"
            )
        if svc.pool is not None and pool.name != svc.pool:
            return ADDRESS_NOT_IN_POOL, (
                f"{address} is in pool {pool.name}, not in pool {svc.pool} that annotation "
                f"{ANNOTATION_POOL} names"
            )
        if not allowed(pool, svc):
            return POOL_NOT_ALLOWED, (
                f"{address} is in pool {pool.name}, whose spec.serviceAllocation does not "
                f"admit Service {svc.key}; change the pool's selectors or the Service's labels"
            )
        if address in virtualip_addresses and address not in held:
            return ADDRESS_TAKEN, (
                f"{address} is an address of VirtualIP {virtualip_addresses[address]}; "
                "request another address"
            )
    missing = [f for f in svc.families if f not in {a.version for a in svc.requested}]
    if missing and (svc.require_all or missing[0] == svc.families[0]):
        return INVALID_REQUEST, (
            f"the Service's ipFamilies include IPv{missing[0]}, but the requested addresses "
            f"have none; add an IPv{missing[0]} address to annotation {ANNOTATION_ADDRESSES}"
        )
    return None


def _shared_addresses(
    svc: LBService,
    claims: Mapping[IPAddress, _Claim],
    families: Sequence[int],
    pools: PoolSet,
    allowed: Callable[[Pool, LBService], bool],
) -> list[tuple[IPAddress, str]]:
    """Addresses that Services of the same sharing key hold, for the families needed."""
    if svc.sharing_key is None:
        return []
    out: list[tuple[IPAddress, str]] = []
    for address, held in sorted(claims.items(), key=lambda kv: (kv[0].version, kv[0])):
        if address.version not in families or any(a.version == address.version for a, _ in out):
            continue
        pool = pools.by_name(held.pool)
        if (
            held.sharing_key == svc.sharing_key
            and held.conflict(svc) is None
            and pool is not None
            and allowed(pool, svc)
            and (svc.pool is None or svc.pool == pool.name)
        ):
            out.append((address, pool.name))
    return out


def _automatic(
    svc: LBService,
    needed: Sequence[int],
    have: Mapping[int, IPAddress],
    pools: PoolSet,
    allowed: Callable[[Pool, LBService], bool],
    claims: Mapping[IPAddress, _Claim],
    virtualip_addresses: Mapping[IPAddress, str],
    cursors: dict[tuple[str, int], int],
) -> list[tuple[IPAddress, str]] | Assignment:
    """The lowest free address of each needed family from the first pool that has them."""
    if svc.pool is not None:
        named = pools.by_name(svc.pool)
        if named is None:
            names = ", ".join(p.name for p in pools.pools) or "none exists"
            return Assignment(
                svc.key,
                reason=NO_MATCHING_POOL,
                message=f"annotation {ANNOTATION_POOL} names pool {svc.pool!r}, which does not "
                f"exist or is invalid (pools: {names})",
            )
        if not allowed(named, svc):
            return Assignment(
                svc.key,
                reason=POOL_NOT_ALLOWED,
                message=f"pool {named.name}'s spec.serviceAllocation does not admit Service "
                f"{svc.key}; change the pool's selectors or the Service's labels",
            )
        candidates = [named]
    else:
        candidates = [p for p in pools.pools if p.auto_assign and allowed(p, svc)]
    # The pool of an address the Service keeps (the other family) comes first.
    kept = {claims[a].pool for a in have.values() if a in claims}
    candidates.sort(key=lambda p: p.name not in kept)
    required = [f for f in needed if svc.require_all or f == svc.families[0]]
    fitting = [p for p in candidates if set(required) <= set(p.families)]
    if not fitting:
        shown = "/".join(f"IPv{f}" for f in required)
        if not candidates:
            return Assignment(
                svc.key,
                reason=NO_MATCHING_POOL,
                message="no VirtualIPPool with autoAssign admits this Service; create one, "
                f"name one in annotation {ANNOTATION_POOL}, or request an address",
            )
        return Assignment(
            svc.key,
            reason=NO_MATCHING_POOL,
            message=f"no pool that admits this Service has {shown} addresses "
            f"(pools: {', '.join(p.name for p in candidates)})",
        )
    for pool in fitting:
        found: list[tuple[IPAddress, str]] = []
        for family in needed:
            if family not in pool.families:
                continue
            address = _lowest_free(pool, pools, family, claims, virtualip_addresses, cursors)
            if address is not None:
                found.append((address, pool.name))
        if set(required) <= {a.version for a, _ in found}:
            return found
    names = ", ".join(p.name for p in fitting)
    shown = " and ".join(f"IPv{f}" for f in required)
    return Assignment(
        svc.key,
        reason=POOL_EXHAUSTED,
        message=f"no free {shown} address in pool {names}; add addresses to a pool, or delete "
        "LoadBalancer Services that no longer need one",
    )


def _lowest_free(
    pool: Pool,
    pools: PoolSet,
    family: int,
    claims: Mapping[IPAddress, _Claim],
    virtualip_addresses: Mapping[IPAddress, str],
    cursors: dict[tuple[str, int], int],
) -> IPAddress | None:
    # Below the cursor every address is taken (within one run allocation only adds, and a
    # release clears the cursors), so N automatic assignments scan each address once.
    start = cursors.get((pool.name, family), 0)
    for offset, address in enumerate(pool.addresses(family, start), start=start):
        if address in claims or address in virtualip_addresses:
            continue
        if pools.owner(address) is not pool:  # listed by an older pool too: the older one's
            continue
        cursors[(pool.name, family)] = offset
        return address
    cursors[(pool.name, family)] = pool.size(family)
    return None


# --- instances -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PoolInstance:
    """One VRRP instance (a VirtualIP document for render) carrying pool addresses."""

    key: str  # "<namespace>/<name>": the document's, and the daemon's instance prefix
    pool: str
    family: int
    group: str  # "cluster", or "local:<namespace>/<pod selector>" (externalTrafficPolicy Local)
    window: int  # address offset in the pool // MAX_ADDRESSES[family]
    addresses: tuple[IPAddress, ...]
    services: tuple[str, ...]
    nodes: frozenset[str] | None  # Local: the nodes with a ready endpoint; None: the pool's
    document: Mapping[str, Any] = field(compare=False, repr=False)

    @property
    def name(self) -> str:
        return self.key.split("/", 1)[1]


def instance_name(pool: str, family: int, group: str, window: int) -> str:
    """A DNS label (the document's metadata.name), stable for (pool, family, group, window)."""
    digest = hashlib.sha256(f"{pool}\0{family}\0{group}\0{window}".encode()).hexdigest()[:10]
    slug = re.sub(r"[^a-z0-9-]", "-", pool)[:40].strip("-") or "pool"
    return f"pool-{slug}-{digest}"


def _group(services: Sequence[LBService]) -> str:
    first = services[0]
    if not first.local:
        return "cluster"
    if first.selector is None:  # endpoints managed by hand: the Service is its own group
        return f"local:{first.key}"
    selector = ",".join(f"{k}={v}" for k, v in first.selector)
    return f"local:{first.namespace}/{selector}"


def instances(
    allocation: Allocation,
    services: Iterable[LBService],
    pools: PoolSet,
    endpoints: Mapping[str, frozenset[str]],
    namespace: str,
) -> tuple[PoolInstance, ...]:
    """The allocated addresses grouped into instances (see the module docstring).

    `endpoints`: Service key -> the nodes with a ready endpoint of it (EndpointSlices);
    `namespace`: where the documents live (the operator's own: instance names never
    collide with a VirtualIP of another namespace).
    """
    by_key = {s.key: s for s in services}
    holders: dict[IPAddress, list[LBService]] = {}
    for assignment in allocation.assignments.values():
        svc = by_key.get(assignment.service)
        if svc is None or not assignment.ok:
            continue
        for address in assignment.addresses:
            holders.setdefault(address, []).append(svc)
    grouped: dict[tuple[str, int, str, int], list[IPAddress]] = {}
    members: dict[tuple[str, int, str, int], set[str]] = {}
    node_sets: dict[tuple[str, int, str, int], frozenset[str] | None] = {}
    for address, held in holders.items():
        pool = pools.owner(address)
        if pool is None:
            continue
        offset = pool.offset(address)
        assert offset is not None
        group = _group(sorted(held, key=lambda s: s.order))
        key: tuple[str, int, str, int] = (
            pool.name,
            address.version,
            group,
            offset // MAX_ADDRESSES[address.version],
        )
        grouped.setdefault(key, []).append(address)
        members.setdefault(key, set()).update(s.key for s in held)
        if group != "cluster":
            nodes = frozenset.intersection(*(endpoints.get(s.key, frozenset()) for s in held))
            before = node_sets.get(key)
            node_sets[key] = nodes if before is None else before & nodes
        else:
            node_sets[key] = None
    out: list[PoolInstance] = []
    for key, addresses in sorted(grouped.items(), key=lambda kv: kv[0]):
        pool_name, family, group, window = key
        pool = pools.by_name(pool_name)
        assert pool is not None
        name = instance_name(pool_name, family, group, window)
        addresses.sort()
        out.append(
            PoolInstance(
                key=f"{namespace}/{name}",
                pool=pool_name,
                family=family,
                group=group,
                window=window,
                addresses=tuple(addresses),
                services=tuple(sorted(members[key])),
                nodes=node_sets[key],
                document=_document(pool, name, namespace, addresses),
            )
        )
    return tuple(out)


def _document(
    pool: Pool, name: str, namespace: str, addresses: Sequence[IPAddress]
) -> dict[str, Any]:
    """The VirtualIP document render places: the pool's VRRP settings, its node selector,
    the addresses as host routes (/32, /128: the pool says nothing of the subnet; the
    daemon picks the interface whose subnet holds them), and no address-list check (the
    list changes with every Service; the daemons apply it in place)."""
    spec: dict[str, Any] = {
        **pool.vrrp,
        "addresses": [str(ip_interface(f"{a}/{a.max_prefixlen}")) for a in addresses],
        "verifyAddresses": False,
    }
    if pool.node_selector is not None:
        spec["nodeSelector"] = pool.node_selector.model_dump(
            mode="json", by_alias=True, exclude_defaults=True
        )
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if pool.created:
        meta["creationTimestamp"] = pool.created
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": meta, "spec": spec}
