"""VirtualIPPool: address pools for LoadBalancer Services, read from the API (pure).

A pool (kubevrrp.io/v1alpha1, cluster-scoped) lists addresses as CIDRs, single addresses
and ranges ("a-b"), IPv4 and IPv6; which nodes may hold them (spec.nodeSelector); which
Services may draw from it (spec.serviceAllocation); whether it hands out addresses by
itself (spec.autoAssign); and the VRRP settings of the instances that carry them
(spec.vrrp: the fields of a VirtualIP spec that make sense for a pool, validated by the
VirtualIP model itself, so a pool accepts and refuses exactly what a VirtualIP does).

`parse_pool` raises ConfigError naming every problem ("spec.<field>: what is wrong; what
works"), as `vrrpd.spec.load.parse_virtualip` does. Addresses are counted as integers, so a
/64 of IPv6 is a range like any other.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import (
    IPv4Address,
    IPv6Address,
    ip_address,
    ip_network,
)
from typing import Any

from pydantic import ValidationError

from vrrpd.spec import API_VERSION, KIND
from vrrpd.spec.errors import ConfigError
from vrrpd.spec.load import parse_virtualip
from vrrpd.spec.selectors import LabelSelector, match_labels

POOL_PLURAL = "virtualippools"
MAX_ENTRIES = 64  # spec.addresses entries (the CRD's maxItems)
# The fields of a VirtualIP spec a pool's spec.vrrp may set. The others belong to the pool
# (addresses, nodeSelector), to the operator (vrid, peers, serviceRef), or cannot serve a
# pool: VRRPv2 (version, authentication) carries no IPv6 and no sub-second adverts, an
# address label names one interface's addresses, and a sync group or per-pod readiness
# would tie Services of different owners together.
VRRP_FIELDS = (
    "interface",
    "advertInterval",
    "priority",
    "nodePriorities",
    "preempt",
    "accept",
    "unicast",
    "garp",
    "trackInterfaces",
    "probes",
    "notify",
)
_PLACEHOLDER = {4: "192.0.2.1/32", 6: "2001:db8::1/128"}  # validates spec.vrrp alone

IPAddress = IPv4Address | IPv6Address


@dataclass(frozen=True, slots=True, order=True)
class AddressRange:
    """first..last inclusive, as integers, of one family."""

    family: int
    first: int
    last: int
    text: str = field(compare=False, default="")  # as written in spec.addresses

    @property
    def size(self) -> int:
        return self.last - self.first + 1

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, IPv4Address | IPv6Address):
            return False
        return value.version == self.family and self.first <= int(value) <= self.last


@dataclass(frozen=True)
class Pool:
    """A valid VirtualIPPool, resolved."""

    name: str
    created: str  # metadata.creationTimestamp ("" when unknown): older pools win overlaps
    ranges: tuple[AddressRange, ...]  # sorted by family, then address
    auto_assign: bool = True
    node_selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    service_selector: LabelSelector | None = None
    vrrp: Mapping[str, Any] = field(default_factory=dict)  # VirtualIP spec fields, as written
    uid: str | None = None

    @property
    def order(self) -> tuple[str, str]:
        return (self.created, self.name)

    @property
    def families(self) -> tuple[int, ...]:
        return tuple(f for f in (4, 6) if any(r.family == f for r in self.ranges))

    def size(self, family: int | None = None) -> int:
        return sum(r.size for r in self.ranges if family is None or r.family == family)

    def offset(self, address: IPAddress) -> int | None:
        """The address's position among the pool's addresses of its family (0-based)."""
        before = 0
        for r in self.ranges:
            if r.family != address.version:
                continue
            if address in r:
                return before + int(address) - r.first
            before += r.size
        return None

    def addresses(self, family: int, start: int = 0) -> Iterator[IPAddress]:
        """The pool's addresses of `family` in order, from offset `start` on."""
        skipped = 0
        for r in self.ranges:
            if r.family != family:
                continue
            if start >= skipped + r.size:
                skipped += r.size
                continue
            first = r.first + max(0, start - skipped)
            skipped += r.size
            for value in range(first, r.last + 1):
                yield ip_address(value)

    def allows(
        self, namespace_labels: Mapping[str, str], service_labels: Mapping[str, str]
    ) -> bool:
        """May a Service with these labels, in a namespace with those, draw from the pool?"""
        if self.namespace_selector is not None and not match_labels(
            self.namespace_selector, namespace_labels
        ):
            return False
        return self.service_selector is None or match_labels(self.service_selector, service_labels)


def parse_pool(obj: Mapping[str, Any]) -> Pool:
    """A Pool from a VirtualIPPool object as the API returns it; ConfigError lists every
    problem, each "spec.<field>: what is wrong; what works"."""
    meta = obj.get("metadata") or {}
    name = str(meta.get("name") or "")
    spec = obj.get("spec")
    problems: list[str] = []
    if not isinstance(spec, Mapping):
        raise ConfigError(
            ["spec: required; e.g. spec: {addresses: [192.168.10.100-192.168.10.150]}"]
        )
    known = {"addresses", "autoAssign", "nodeSelector", "serviceAllocation", "vrrp"}
    for key in spec:
        if key not in known:
            problems.append(f"spec.{key}: unknown field; known fields: {', '.join(sorted(known))}")
    ranges = _ranges(spec.get("addresses"), problems)
    auto = spec.get("autoAssign", True)
    if not isinstance(auto, bool):
        problems.append(f"spec.autoAssign: {auto!r} is not a boolean; use true or false")
        auto = True
    node_selector = _selector(spec.get("nodeSelector"), "spec.nodeSelector", problems)
    allocation = spec.get("serviceAllocation") or {}
    namespace_selector = service_selector = None
    if not isinstance(allocation, Mapping):
        problems.append(
            "spec.serviceAllocation: expected a mapping such as "
            "{namespaceSelector: {matchLabels: {team: web}}}"
        )
    else:
        for key in allocation:
            if key not in ("namespaceSelector", "serviceSelector"):
                problems.append(
                    f"spec.serviceAllocation.{key}: unknown field; known fields: "
                    "namespaceSelector, serviceSelector"
                )
        namespace_selector = _selector(
            allocation.get("namespaceSelector"),
            "spec.serviceAllocation.namespaceSelector",
            problems,
        )
        service_selector = _selector(
            allocation.get("serviceSelector"), "spec.serviceAllocation.serviceSelector", problems
        )
    vrrp = spec.get("vrrp") or {}
    if not isinstance(vrrp, Mapping):
        problems.append("spec.vrrp: expected a mapping such as {advertInterval: 100ms}")
        vrrp = {}
    else:
        problems.extend(_vrrp_problems(vrrp, families=tuple(sorted({r.family for r in ranges}))))
    if problems:
        raise ConfigError(problems)
    return Pool(
        name=name,
        created=str(meta.get("creationTimestamp") or ""),
        ranges=tuple(sorted(ranges)),
        auto_assign=auto,
        node_selector=node_selector,
        namespace_selector=namespace_selector,
        service_selector=service_selector,
        vrrp={k: v for k, v in vrrp.items() if v is not None},
        uid=meta.get("uid"),
    )


_RANGE_HINT = "write a CIDR (192.168.10.64/27), an address (192.168.10.5) or a range (a-b)"


def parse_range(text: Any) -> AddressRange:
    """One spec.addresses entry; ValueError says what is wrong (to follow the value)."""
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not a string; {_RANGE_HINT}")
    value = text.strip()
    if "-" in value:
        left, _, right = (part.strip() for part in value.partition("-"))
        try:
            first, last = ip_address(left), ip_address(right)
        except ValueError:
            raise ValueError(f"{text!r} is not a range of two addresses; {_RANGE_HINT}") from None
        if first.version != last.version:
            raise ValueError(f"{text!r} mixes IPv{first.version} and IPv{last.version}")
        if int(first) > int(last):
            raise ValueError(f"{text!r} ends before it starts; write {right}-{left}")
    elif "/" in value:
        try:
            network = ip_network(value)
        except ValueError:
            try:
                loose = ip_network(value, strict=False)
            except ValueError:
                raise ValueError(f"{text!r} is not a CIDR; {_RANGE_HINT}") from None
            raise ValueError(
                f"{text!r} has host bits set: the block is {loose}; write that, or a range"
            ) from None
        first, last = network.network_address, network.broadcast_address
    else:
        try:
            first = last = ip_address(value)
        except ValueError:
            raise ValueError(f"{text!r} is not an address; {_RANGE_HINT}") from None
    for end in {first, last}:
        if not _usable(end):
            raise ValueError(
                f"{text!r}: {end} is not a unicast address a host can hold (not unspecified, "
                "loopback, multicast or link-local)"
            )
    if first.version == 4 and int(last) - int(first) > 0 and _spans_special(first, last):
        raise ValueError(f"{text!r} spans multicast or reserved addresses; narrow it")
    return AddressRange(first.version, int(first), int(last), text)


def _usable(address: IPAddress) -> bool:
    return not (
        address.is_unspecified
        or address.is_loopback
        or address.is_multicast
        or address.is_link_local
        or (address.version == 4 and int(address) == 0xFFFFFFFF)
    )


def _spans_special(first: IPAddress, last: IPAddress) -> bool:
    multicast = (int(IPv4Address("224.0.0.0")), int(IPv4Address("255.255.255.255")))
    loopback = (int(IPv4Address("127.0.0.0")), int(IPv4Address("127.255.255.255")))
    return any(int(first) <= hi and lo <= int(last) for lo, hi in (multicast, loopback))


def _ranges(value: Any, problems: list[str]) -> list[AddressRange]:
    if not isinstance(value, list) or not value:
        problems.append(
            "spec.addresses: required, 1..64 entries; e.g. [192.168.10.100-192.168.10.150, "
            "fd00:10::/120]"
        )
        return []
    if len(value) > MAX_ENTRIES:
        problems.append(f"spec.addresses: {len(value)} entries; at most {MAX_ENTRIES}")
    out: list[AddressRange] = []
    for i, item in enumerate(value):
        try:
            out.append(parse_range(item))
        except ValueError as exc:
            problems.append(f"spec.addresses[{i}]: {exc}")
    ordered = sorted(out)
    for a, b in itertools.pairwise(ordered):
        if a.family == b.family and b.first <= a.last:
            problems.append(
                f"spec.addresses: {a.text} and {b.text} overlap; list each address once"
            )
    return out


def _selector(value: Any, path: str, problems: list[str]) -> LabelSelector | None:
    if value is None:
        return None
    try:
        return LabelSelector.model_validate(value)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            where = ".".join(str(p) for p in err["loc"])
            ctx = err.get("ctx") or {}
            if err["type"] == "kubevrrp" and "problems" in ctx:
                for sub, message in ctx["problems"]:
                    problems.append(f"{path}{'.' + where if where else ''}{sub}: {message}")
            else:
                problems.append(f"{path}{'.' + where if where else ''}: {err['msg']}")
        return None


def _vrrp_problems(vrrp: Mapping[str, Any], families: Sequence[int]) -> list[str]:
    """spec.vrrp checked by the VirtualIP model, with a placeholder address of each of the
    pool's families (so an IPv6 pool meets the IPv6 rules)."""
    problems = [
        f"spec.vrrp.{key}: not a pool setting; a pool's VIPs take "
        f"{', '.join(VRRP_FIELDS)}" + (" (the operator allocates VRIDs)" if key == "vrid" else "")
        for key in vrrp
        if key not in VRRP_FIELDS
    ]
    allowed = {k: v for k, v in vrrp.items() if k in VRRP_FIELDS}
    document = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": "pool", "namespace": "pool"},
        "spec": {"addresses": [_PLACEHOLDER[f] for f in families or (4,)], **allowed},
    }
    try:
        parse_virtualip(document)
    except ConfigError as exc:
        problems.extend(re.sub(r"^spec\.", "spec.vrrp.", line) for line in exc.problems)
    return problems


# --- which pool an address is in ------------------------------------------------------------


@dataclass(frozen=True)
class PoolSet:
    """Every valid pool, and which pool an address belongs to: an address two pools list
    belongs to the older one (creationTimestamp, then name)."""

    pools: tuple[Pool, ...]  # oldest first
    overlaps: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # newer -> older
    _starts: dict[int, list[tuple[int, int, int]]] = field(
        default_factory=dict, init=False, repr=False
    )

    def __post_init__(self) -> None:
        for index, pool in enumerate(self.pools):
            for r in pool.ranges:
                self._starts.setdefault(r.family, []).append((r.first, r.last, index))
        for entries in self._starts.values():
            entries.sort()

    @classmethod
    def of(cls, pools: Sequence[Pool]) -> PoolSet:
        ordered = tuple(sorted(pools, key=lambda p: p.order))
        overlaps: dict[str, list[str]] = {}
        for i, newer in enumerate(ordered):
            for older in ordered[:i]:
                if _overlap(newer, older):
                    overlaps.setdefault(newer.name, []).append(older.name)
        return cls(ordered, {k: tuple(v) for k, v in overlaps.items()})

    def by_name(self, name: str) -> Pool | None:
        return next((p for p in self.pools if p.name == name), None)

    def owner(self, address: IPAddress) -> Pool | None:
        """The (oldest) pool that lists `address`."""
        entries = self._starts.get(address.version, [])
        value = int(address)
        i = bisect.bisect_right(entries, (value, float("inf"), float("inf")))
        best: int | None = None
        # Ranges of different pools may overlap: look back over every range that starts
        # at or before the address (few pools, few entries each).
        for first, last, index in reversed(entries[:i]):
            if first <= value <= last and (best is None or index < best):
                best = index
        return None if best is None else self.pools[best]


def _overlap(a: Pool, b: Pool) -> bool:
    return any(
        x.family == y.family and x.first <= y.last and y.first <= x.last
        for x in a.ranges
        for y in b.ranges
    )
