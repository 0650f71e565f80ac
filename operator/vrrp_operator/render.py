"""Render: VirtualIPs x Nodes x Secrets -> what the daemon on each node runs (pure).

The operator resolves everything that is cluster policy (which nodes take part, each node's
priority, unicast peers, VRIDs, passwords) into one concrete per-node configuration; the
daemon executes it. The output documents are standalone-format VirtualIP manifests, so the
daemon's own loader and `instances_for_node(vips, node)` read them unchanged, with one
exception: `authentication` names a key of the node's own Secret instead of holding the
password (passwords never go into a ConfigMap; docs/operator.md, "Secrets").

VRIDs. A VirtualIP without spec.vrid gets the lowest VRID that no colliding VirtualIP uses;
status.vrid records it (the `allocated` input) so it stays put. Two VirtualIPs collide when
they share an address family and either sit on one segment (the interface hint, else the
subnet of the first address) or share a node without naming two different interfaces (the
daemon rejects a node's configuration holding such a pair: an unset interface may turn out
to be any interface). A host address (/32, /128, as the pools' instances have) says nothing
of its subnet, so such a VirtualIP may share a segment with any other of its family. A
duplicate explicit VRID loses to the older VirtualIP (creation time, then namespace/name):
it is reported as VRIDConflict and not rendered.

Addresses. A virtual address belongs to the oldest valid VirtualIP that names it (the same
order); a newer one naming it too is refused as AddressConflict, whatever else is true of
either, so the holder never changes while it exists. A refused VirtualIP is left out of
every node's configuration (and takes no VRID); the others render as if it were absent, so
one tenant's mistake never reaches another's VIPs through the daemon's refusal of a node
file holding both.

Nothing here raises for bad input: invalid VirtualIPs, conflicts and nodes that cannot run
a VirtualIP come back as `Finding` values, which the status code turns into conditions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import yaml

from vrrp_operator.objects import (
    DAEMON_TOLERATIONS,
    Node,
    Toleration,
    daemon_name,
    untolerated,
)
from vrrpd.contract import CONFIG_KEY as CONFIG_KEY
from vrrpd.contract import config_hash
from vrrpd.limits import PASSWORD_MAX_BYTES, PRIORITY_OWNER, VRID_MAX, VRID_MIN, IPAddress
from vrrpd.spec import API_VERSION, KIND
from vrrpd.spec.errors import ConfigError
from vrrpd.spec.load import parse_virtualip
from vrrpd.spec.virtualip import VirtualIP

# Fields only the operator reads: resolved here, absent from what the daemon gets.
_OPERATOR_FIELDS = ("nodeSelector", "serviceRef", "nodePriorities")

# libyaml when present: dumping 10 000 documents in pure Python takes seconds.
_Dumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


# --- findings ------------------------------------------------------------------------------

# Finding reasons (they become condition reasons and Event reasons, so CamelCase).
INVALID_SPEC = "InvalidSpec"
VRID_CONFLICT = "VRIDConflict"
ADDRESS_CONFLICT = "AddressConflict"
NO_FREE_VRID = "NoFreeVRID"
NO_NODES = "NoNodes"
NODE_EXCLUDED = "NodeExcluded"
NO_ADDRESS = "NoAddress"
SECRET_MISSING = "SecretMissing"
UNICAST_NEEDS_PEERS = "UnicastNeedsPeers"


@dataclass(frozen=True, slots=True)
class Finding:
    """Why a VirtualIP (or one node of it) is not rendered; a value, never an exception."""

    virtualip: str  # "<namespace>/<name>"
    reason: str
    message: str
    node: str | None = None  # None: the whole VirtualIP


@dataclass(frozen=True, slots=True)
class RenderOptions:
    # Cordoned nodes (kubectl cordon / drain) lose their VIPs: a drain then hands the VIP
    # over gracefully instead of the operator recreating the daemon on a node being emptied.
    exclude_cordoned: bool = True
    # What the daemon pods tolerate besides DAEMON_TOLERATIONS (the chart's setting):
    # a node with a NoSchedule/NoExecute taint outside both takes no part.
    tolerations: tuple[Toleration, ...] = ()


@dataclass(frozen=True, slots=True)
class Placement:
    """Where and how one valid VirtualIP runs (rendered or not), for status and Services."""

    key: str
    vrid: int | None  # None: conflict or no free VRID
    allocated: bool  # the operator chose the VRID (record it in status.vrid)
    rendered: bool
    selected: tuple[str, ...]  # nodes matching spec.nodeSelector
    nodes: tuple[str, ...]  # nodes that run it (empty when not rendered)
    priorities: Mapping[str, int]  # resolved base priority per selected node
    addresses: tuple[str, ...]  # spec.addresses as written (with prefix length)
    advert_interval_cs: int
    service_ref: str | None = None


@dataclass(frozen=True)
class NodeConfig:
    """Everything the daemon on one node runs: its VirtualIP documents and their passwords."""

    node: str
    documents: tuple[Mapping[str, Any], ...]  # standalone manifests, sorted by namespace/name
    secret_data: Mapping[str, str] = field(default_factory=dict)  # Secret key -> password
    node_uid: str | None = None
    advert_intervals_cs: tuple[int, ...] = ()  # one per document, for the grace period

    @cached_property
    def text(self) -> str:
        """The ConfigMap's virtualips.yaml: the documents, "---"-separated."""
        body = yaml.dump_all(
            self.documents, Dumper=_Dumper, sort_keys=False, default_flow_style=False
        )
        return f"# Rendered by the kube-vrrp operator for node {self.node}; do not edit.\n{body}"

    @cached_property
    def config_hash(self) -> str:
        """Identifies the configuration; the daemon reports the hash it runs."""
        return config_hash(self.text)


@dataclass(frozen=True)
class Rendered:
    nodes: dict[str, NodeConfig]  # only nodes that run at least one VirtualIP
    placements: dict[str, Placement]  # every valid VirtualIP, by namespace/name
    conflicts: tuple[Finding, ...] = ()  # AddressConflict, VRIDConflict, NoFreeVRID
    unschedulable: tuple[Finding, ...] = ()  # NoNodes, NodeExcluded, NoAddress, SecretMissing...
    invalid: tuple[Finding, ...] = ()  # InvalidSpec

    def findings(self, key: str) -> list[Finding]:
        return self._findings.get(key, [])

    @cached_property
    def _findings(self) -> dict[str, list[Finding]]:
        out: dict[str, list[Finding]] = {}
        for f in (*self.invalid, *self.conflicts, *self.unschedulable):
            out.setdefault(f.virtualip, []).append(f)
        return out

    @cached_property
    def documents(self) -> dict[str, dict[str, Mapping[str, Any]]]:
        """VirtualIP key -> node -> the document that node's daemon runs for it."""
        out: dict[str, dict[str, Mapping[str, Any]]] = {}
        for node, config in self.nodes.items():
            for doc in config.documents:
                out.setdefault(object_key(doc), {})[node] = doc
        return out


# --- secrets -------------------------------------------------------------------------------

SecretStore = Mapping[tuple[str, str], Mapping[str, bytes]]  # (namespace, name) -> key -> value


def secret_key(namespace: str, secret: str, key: str) -> str:
    """The key of a password in the node's Secret.

    "<namespace>_<secret>_<key>": '_' never occurs in a namespace or a Secret name, so this
    is unambiguous where "<ns>.<secret>.<key>" would not be (dots are legal in Secret names
    and keys). Secret keys stop at 253 characters; longer ones become a hash.
    """
    joined = f"{namespace}_{secret}_{key}"
    if len(joined) <= 253:
        return joined
    return f"{namespace}_sha256-{hashlib.sha256(joined.encode()).hexdigest()[:40]}"


def inline_secret_key(namespace: str, virtualip: str) -> str:
    """Where an inline spec.authentication.password goes ('__': no secretRef produces it)."""
    return f"{namespace}__{virtualip}"


def secret_refs(virtualips: Iterable[Mapping[str, Any]]) -> set[tuple[str, str]]:
    """The (namespace, name) of every Secret the VirtualIPs refer to: what to read."""
    refs: set[tuple[str, str]] = set()
    for obj in virtualips:
        auth = (obj.get("spec") or {}).get("authentication") or {}
        ref = auth.get("secretRef") if isinstance(auth, Mapping) else None
        if isinstance(ref, Mapping) and isinstance(ref.get("name"), str):
            namespace = (obj.get("metadata") or {}).get("namespace") or "default"
            refs.add((namespace, ref["name"]))
    return refs


def allocated_vrids(virtualips: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """status.vrid of the VirtualIPs that leave spec.vrid unset: earlier allocations."""
    out: dict[str, int] = {}
    for obj in virtualips:
        if (obj.get("spec") or {}).get("vrid") is not None:
            continue
        vrid = (obj.get("status") or {}).get("vrid")
        if isinstance(vrid, int) and not isinstance(vrid, bool) and VRID_MIN <= vrid <= VRID_MAX:
            out[object_key(obj)] = vrid
    return out


def object_key(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace') or 'default'}/{meta.get('name', '')}"


# --- render --------------------------------------------------------------------------------


@dataclass
class _Candidate:
    """A valid VirtualIP on its way through render."""

    key: str
    obj: Mapping[str, Any]
    vip: VirtualIP
    order: tuple[str, str]  # (creationTimestamp, key): older first
    families: frozenset[int]
    segment: tuple[str, str]
    nodes: set[str]  # nodes that will run it
    selected: list[Node]
    priorities: dict[str, int]
    peers: dict[int, list[tuple[str, IPAddress]]]  # family -> [(node, address)], unicast only
    secret: tuple[str, str] | None = None  # (Secret key in the node's Secret, password)
    vrid: int | None = None
    allocated: bool = False
    blocked: bool = False  # a finding keeps it from rendering


def render(
    virtualips: Iterable[Mapping[str, Any]],
    nodes: Iterable[Node],
    secrets: SecretStore,
    allocated: Mapping[str, int] | None = None,
    *,
    options: RenderOptions = RenderOptions(),
    only: Mapping[str, frozenset[str]] | None = None,
) -> Rendered:
    """Resolve VirtualIP objects (as read from the API) into per-node configurations.

    `allocated` maps "<namespace>/<name>" to the VRID recorded in status (see
    `allocated_vrids`). VirtualIPs being deleted (deletionTimestamp set) are left out, so
    their VIPs leave every node. `only` narrows some VirtualIPs to a set of node names on
    top of their nodeSelector (the instances of Services with externalTrafficPolicy Local:
    the nodes with a ready endpoint).
    """
    allocated = allocated or {}
    all_nodes = sorted(nodes, key=lambda n: n.name)
    tolerations = (*DAEMON_TOLERATIONS, *options.tolerations)
    invalid: list[Finding] = []
    unschedulable: list[Finding] = []
    conflicts: list[Finding] = []

    candidates: list[_Candidate] = []
    for obj in virtualips:
        meta = obj.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            continue
        key = object_key(obj)
        try:
            vip = parse_virtualip(obj)
        except ConfigError as exc:
            invalid.append(Finding(key, INVALID_SPEC, "; ".join(exc.problems)))
            continue
        eligible = all_nodes
        if only is not None and key in only:
            eligible = [n for n in all_nodes if n.name in only[key]]
        candidate = _place(key, obj, vip, eligible, tolerations, options, unschedulable)
        _resolve_secret(candidate, secrets, unschedulable)
        candidates.append(candidate)
    candidates.sort(key=lambda c: c.order)

    refused = address_conflicts(
        [(c.key, c.order[0], tuple(str(a.ip) for a in c.vip.spec.addresses)) for c in candidates]
    )
    for c in candidates:
        if c.key in refused:
            c.blocked = True
            conflicts.append(Finding(c.key, ADDRESS_CONFLICT, refused[c.key]))
    _assign_vrids([c for c in candidates if c.key not in refused], allocated, conflicts)

    per_node: dict[str, list[tuple[_Candidate, dict[str, Any]]]] = {}
    for c in candidates:
        if c.blocked or c.vrid is None:
            continue
        for node in sorted(c.nodes):
            per_node.setdefault(node, []).append((c, _document(c, node)))
    by_name = {n.name: n for n in all_nodes}
    configs: dict[str, NodeConfig] = {}
    for node, entries in sorted(per_node.items()):
        entries.sort(key=lambda e: e[0].key)
        configs[node] = NodeConfig(
            node=node,
            documents=tuple(doc for _, doc in entries),
            secret_data={c.secret[0]: c.secret[1] for c, _ in entries if c.secret is not None},
            node_uid=by_name[node].uid,
            advert_intervals_cs=tuple(c.vip.spec.advert_interval_cs for c, _ in entries),
        )

    placements = {}
    for c in candidates:
        rendered = not c.blocked and c.vrid is not None and bool(c.nodes)
        spec = c.vip.spec
        placements[c.key] = Placement(
            key=c.key,
            vrid=c.vrid,
            allocated=c.allocated,
            rendered=rendered,
            selected=tuple(n.name for n in c.selected),
            nodes=tuple(sorted(c.nodes)) if rendered else (),
            priorities=dict(c.priorities),
            addresses=tuple(str(a) for a in spec.addresses),
            advert_interval_cs=spec.advert_interval_cs,
            service_ref=spec.service_ref.name if spec.service_ref is not None else None,
        )
    return Rendered(
        nodes=configs,
        placements=placements,
        conflicts=tuple(conflicts),
        unschedulable=tuple(unschedulable),
        invalid=tuple(invalid),
    )


def _place(
    key: str,
    obj: Mapping[str, Any],
    vip: VirtualIP,
    all_nodes: Sequence[Node],
    tolerations: Sequence[Toleration],
    options: RenderOptions,
    findings: list[Finding],
) -> _Candidate:
    """Which nodes run the VirtualIP, at which priority, with which unicast peers."""
    spec = vip.spec
    families = frozenset(spec.families)
    first = spec.addresses[0]
    segment = ("if", spec.interface) if spec.interface else ("net", str(first.network))
    if segment[0] == "net" and first.network.prefixlen == first.max_prefixlen:
        # A host address (/32, /128: pool addresses) tells nothing of its subnet: it may
        # share a segment with any other VirtualIP of its family.
        segment = ("any", "")
    created = str((obj.get("metadata") or {}).get("creationTimestamp") or "")
    selected = [n for n in all_nodes if spec.takes_part(n.labels)]
    priorities = {n.name: spec.priority_for(n.name, n.labels) for n in selected}
    candidate = _Candidate(
        key=key,
        obj=obj,
        vip=vip,
        order=(created, key),
        families=families,
        segment=segment,
        nodes=set(),
        selected=selected,
        priorities=priorities,
        peers={},
    )
    if not selected:
        findings.append(
            Finding(
                key,
                NO_NODES,
                "no node matches spec.nodeSelector; label the nodes that should hold the VIP "
                "or change the selector",
            )
        )
        return candidate

    if spec.unicast:
        # Peers are the selected nodes, cordoned or tainted ones included: excluding a node
        # then changes no other node's configuration, and a node that keeps running VRRP
        # while it is NotReady stays a peer instead of becoming a second master.
        for family in sorted(families):
            if spec.peers:
                listed = [
                    (p.node_name, p.address) for p in spec.peers if p.address.version == family
                ]
            else:
                listed = []
                for n in selected:
                    address = n.address(family)
                    if address is not None:
                        listed.append((n.name, address))
            candidate.peers[family] = listed

    running: set[str] = set()
    for n in selected:
        why = _excluded(n, tolerations, options)
        if why is None and spec.unicast:
            missing = [
                f for f in sorted(families) if all(name != n.name for name, _ in candidate.peers[f])
            ]
            if missing:
                what = " and ".join(f"IPv{f}" for f in missing)
                source = "in spec.peers" if spec.peers else "among its InternalIP addresses"
                findings.append(
                    Finding(
                        key,
                        NO_ADDRESS,
                        f"node {n.name} has no {what} address {source}; unicast needs one to "
                        "send adverts from",
                        n.name,
                    )
                )
                continue
        if why is not None:
            findings.append(Finding(key, NODE_EXCLUDED, f"node {n.name} {why}", n.name))
            continue
        running.add(n.name)

    if not running:
        findings.append(
            Finding(key, NO_NODES, "every selected node is excluded (see the node findings)")
        )
        return candidate
    if spec.unicast:
        for family in sorted(families):
            if len(candidate.peers[family]) < 2:
                findings.append(
                    Finding(
                        key,
                        UNICAST_NEEDS_PEERS,
                        f"unicast needs at least two selected nodes with an IPv{family} "
                        f"address, found {len(candidate.peers[family])}; select another node "
                        "or set unicast: false",
                    )
                )
                candidate.blocked = True
                return candidate
    owners = sorted(n for n in running if priorities[n] == PRIORITY_OWNER)
    if len(owners) > 1:
        findings.append(
            Finding(
                key,
                INVALID_SPEC,
                f"nodes {', '.join(owners)} would all have priority 255 (address owner); give "
                "255 to one node at most, through nodePriorities",
            )
        )
        candidate.blocked = True
        return candidate
    candidate.nodes = running
    return candidate


def _excluded(node: Node, tolerations: Sequence[Toleration], options: RenderOptions) -> str | None:
    if options.exclude_cordoned and node.unschedulable:
        return "is cordoned (spec.unschedulable); uncordon it to give it the VIP again"
    bad = untolerated(node.taints, tolerations)
    if bad:
        shown = ", ".join(
            f"{t.key}={t.value}:{t.effect}" if t.value else f"{t.key}:{t.effect}" for t in bad
        )
        return f"has taints the daemon does not tolerate ({shown}); add tolerations to the chart"
    return None


def _resolve_secret(candidate: _Candidate, secrets: SecretStore, findings: list[Finding]) -> None:
    auth = candidate.vip.spec.authentication
    if auth is None:
        return
    namespace = candidate.vip.metadata.namespace
    if auth.password is not None:
        candidate.secret = (
            inline_secret_key(namespace, candidate.vip.metadata.name),
            auth.password,
        )
        return
    ref = auth.secret_ref
    assert ref is not None  # the model demands exactly one of password / secretRef
    value = (secrets.get((namespace, ref.name)) or {}).get(ref.key)
    password: str | None = None
    problem = f"Secret {namespace}/{ref.name} has no key {ref.key}"
    if value is not None:
        try:
            password = value.decode()
        except UnicodeDecodeError:
            problem = f"Secret {namespace}/{ref.name} key {ref.key} is not UTF-8 text"
        else:
            if not 1 <= len(value) <= PASSWORD_MAX_BYTES:
                problem = (
                    f"Secret {namespace}/{ref.name} key {ref.key} holds {len(value)} bytes; "
                    f"VRRPv2 PASS carries 1..{PASSWORD_MAX_BYTES}"
                )
                password = None
    if password is None:
        findings.append(Finding(candidate.key, SECRET_MISSING, problem))
        candidate.blocked = True
        return
    candidate.secret = (secret_key(namespace, ref.name, ref.key), password)


def address_conflicts(claims: Iterable[tuple[str, str, Sequence[str]]]) -> dict[str, str]:
    """Which VirtualIPs name an address an older one names, and why (the message).

    `claims` are (namespace/name, creationTimestamp, addresses without prefix length), in
    any order. Each address belongs to its oldest claimant (creationTimestamp, then
    namespace/name); every later claimant is refused, even when the holder does not run
    (refused itself, or on no node): the holder of an address changes only when it stops
    naming it or is deleted.
    """
    holders: dict[str, tuple[str, str]] = {}  # address -> (key, creationTimestamp)
    refused: dict[str, str] = {}
    for key, created, addresses in sorted(claims, key=lambda c: (c[1], c[0])):
        taken = [(a, holders[a]) for a in dict.fromkeys(addresses) if a in holders]
        for address in addresses:
            holders.setdefault(address, (key, created))
        if not taken:
            continue
        shown = "; ".join(
            f"{address} belongs to {holder} (created {when or 'earlier'})"
            for address, (holder, when) in taken
        )
        refused[key] = (
            f"spec.addresses: {shown}; an address belongs to one VirtualIP only, the oldest "
            "that names it: choose another address, or delete the other VirtualIP"
        )
    return refused


def _may_collide(a: _Candidate, b: _Candidate) -> bool:
    """Must these two VirtualIPs use different VRIDs? (see the module docstring)"""
    if not a.families & b.families:
        return False
    if a.segment == b.segment and a.segment[0] != "any":
        return True
    mine, theirs = a.vip.spec.interface, b.vip.spec.interface
    if mine is not None and theirs is not None and mine != theirs:
        return False
    if "any" in (a.segment[0], b.segment[0]):
        return True
    return bool(a.nodes & b.nodes)


def _assign_vrids(
    candidates: list[_Candidate], allocated: Mapping[str, int], conflicts: list[Finding]
) -> None:
    placed: dict[int, list[_Candidate]] = {}

    def holder(vrid: int, c: _Candidate) -> _Candidate | None:
        return next((o for o in placed.get(vrid, ()) if _may_collide(c, o)), None)

    # Fixed VRIDs first, oldest first: an explicit or recorded VRID is never moved for a
    # newer VirtualIP.
    pending: list[_Candidate] = []
    for c in candidates:
        explicit = c.vip.spec.vrid
        vrid = explicit if explicit is not None else allocated.get(c.key)
        if vrid is None:
            pending.append(c)
            continue
        other = holder(vrid, c)
        if other is None:
            c.vrid, c.allocated = vrid, explicit is None
            placed.setdefault(vrid, []).append(c)
        elif explicit is None:
            pending.append(c)  # an allocation we chose may move; a user's choice may not
        else:
            if "any" in (c.segment[0], other.segment[0]):
                where = "possibly the same segment (a host address /32 or /128 may be on any)"
            elif other.segment == c.segment:
                where = f"the same segment ({_segment_text(c)})"
            else:
                where = f"node(s) {', '.join(sorted(c.nodes & other.nodes))}"
            conflicts.append(
                Finding(
                    c.key,
                    VRID_CONFLICT,
                    f"spec.vrid {vrid} is already used by {other.key} on {where}; pick another "
                    "vrid, or leave it unset and the operator allocates a free one",
                )
            )
    for c in pending:
        for vrid in range(VRID_MIN, VRID_MAX + 1):
            if holder(vrid, c) is None:
                c.vrid, c.allocated = vrid, True
                placed.setdefault(vrid, []).append(c)
                break
        else:
            conflicts.append(
                Finding(
                    c.key,
                    NO_FREE_VRID,
                    f"all VRIDs {VRID_MIN}..{VRID_MAX} are taken on {_segment_text(c)} or on "
                    "its nodes; set spec.interface to split segments, or remove VirtualIPs",
                )
            )


def _segment_text(c: _Candidate) -> str:
    kind, value = c.segment
    if kind == "any":
        return "any segment of its address family (host addresses: /32, /128)"
    return f"interface {value}" if kind == "if" else f"subnet {value}"


def _document(c: _Candidate, node: str) -> dict[str, Any]:
    """The standalone VirtualIP manifest the daemon on `node` runs for this VirtualIP."""
    raw_spec = c.obj.get("spec") or {}
    spec = {k: v for k, v in raw_spec.items() if k not in _OPERATOR_FIELDS and v is not None}
    spec["vrid"] = c.vrid
    # One entry naming the node: the daemon resolves it without knowing node labels.
    spec["nodePriorities"] = [{"nodeName": node, "priority": c.priorities[node]}]
    if c.vip.spec.unicast:
        spec["peers"] = [
            {"nodeName": name, "address": str(address)}
            for family in sorted(c.peers)
            for name, address in c.peers[family]
        ]
    if c.secret is not None:
        spec["authentication"] = {"secretRef": {"name": daemon_name(node), "key": c.secret[0]}}
    meta = c.vip.metadata
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": meta.name, "namespace": meta.namespace},
        "spec": spec,
    }


def resolve_secret_refs(
    documents: Iterable[Mapping[str, Any]], secret_name: str, secret_data: Mapping[str, str]
) -> list[dict[str, Any]]:
    """What the daemon does before validating: secretRef to its own Secret -> inline password.

    Raises ConfigError naming a missing key. Lives here for the tests and as the reference
    of the contract (docs/operator.md); the daemon implements the same step.
    """
    out: list[dict[str, Any]] = []
    problems: list[str] = []
    for doc in documents:
        spec = dict(doc.get("spec") or {})
        ref = (spec.get("authentication") or {}).get("secretRef")
        if ref is not None:
            if ref.get("name") != secret_name or ref.get("key") not in secret_data:
                problems.append(f"authentication.secretRef {ref} is not in Secret {secret_name}")
                continue
            spec["authentication"] = {"password": secret_data[ref["key"]]}
        out.append({**doc, "spec": spec})
    if problems:
        raise ConfigError(problems)
    return out
