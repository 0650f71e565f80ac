"""Plain records read from Kubernetes API objects (Node, daemon Pod, toleration rules).

The pure core works on these records, never on API objects or client models, so render and
status tests are tables of small values. Parsing is lenient: a field the API left out takes
its Kubernetes default, because a record must be buildable from any object the API returns.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import ip_address
from typing import Any

from vrrpd.contract import CONFIG_HASH_ANNOTATION, STATUS_ANNOTATION
from vrrpd.limits import IPAddress
from vrrpd.spec import API_GROUP

APP_NAME = "kube-vrrp"
COMPONENT = "daemon"
GROUP = API_GROUP
LABEL_NAME = "app.kubernetes.io/name"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_NODE = f"{GROUP}/node"
ANNOTATION_STATUS = STATUS_ANNOTATION  # the daemon's report on its own pod (vrrpd/contract.py)
ANNOTATION_TEMPLATE_HASH = f"{GROUP}/template-hash"  # what replaces a pod when it changes
ANNOTATION_CONFIG_HASH = CONFIG_HASH_ANNOTATION  # on the ConfigMap; reported back by the daemon
DAEMON_LABELS: Mapping[str, str] = {LABEL_NAME: APP_NAME, LABEL_COMPONENT: COMPONENT}
LABEL_VALUE_MAX = 63


def plain(value: Any) -> Any:
    """A deep copy of an API object (kopf hands read-only views) as plain dicts and lists."""
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def daemon_name(node: str) -> str:
    """The name of a node's ConfigMap, Secret and Pod: vrrpd-<node> (<= 253 characters)."""
    name = f"vrrpd-{node}"
    if len(name) <= 253:
        return name
    # A node name is at most 253 characters, so only the longest ones need shortening.
    return f"vrrpd-{node[:200]}-{_short_hash(node)}"


def node_label_value(node: str) -> str:
    """The node's name as a label value; label values stop at 63 characters, names do not."""
    if len(node) <= LABEL_VALUE_MAX:
        return node
    return f"{node[:50].rstrip('.-')}-{_short_hash(node)}"


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class Taint:
    key: str
    effect: str  # NoSchedule | PreferNoSchedule | NoExecute
    value: str = ""


@dataclass(frozen=True, slots=True)
class Toleration:
    """A pod toleration, matched as the scheduler and the taint manager do."""

    key: str = ""  # "" with operator Exists: every key
    operator: str = "Equal"  # Equal | Exists
    value: str = ""
    effect: str = ""  # "": every effect

    def tolerates(self, taint: Taint) -> bool:
        if self.effect and self.effect != taint.effect:
            return False
        if not self.key:
            return self.operator == "Exists"
        if self.key != taint.key:
            return False
        return self.operator == "Exists" or self.value == taint.value

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"operator": self.operator}
        if self.key:
            out["key"] = self.key
        if self.operator == "Equal":
            out["value"] = self.value
        if self.effect:
            out["effect"] = self.effect
        return out

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> Toleration:
        return cls(
            key=str(obj.get("key") or ""),
            operator=str(obj.get("operator") or "Equal"),
            value=str(obj.get("value") or ""),
            effect=str(obj.get("effect") or ""),
        )


# What the DaemonSet controller adds to every daemon pod, so a node that goes NotReady or
# comes under pressure never evicts its VRRP daemon: the VIP must stay with a node whose
# kubelet is unhappy but whose network works. NoExecute without tolerationSeconds = forever.
DAEMON_TOLERATIONS: tuple[Toleration, ...] = (
    Toleration("node.kubernetes.io/not-ready", "Exists", effect="NoExecute"),
    Toleration("node.kubernetes.io/unreachable", "Exists", effect="NoExecute"),
    Toleration("node.kubernetes.io/disk-pressure", "Exists", effect="NoSchedule"),
    Toleration("node.kubernetes.io/memory-pressure", "Exists", effect="NoSchedule"),
    Toleration("node.kubernetes.io/pid-pressure", "Exists", effect="NoSchedule"),
    Toleration("node.kubernetes.io/unschedulable", "Exists", effect="NoSchedule"),
    Toleration("node.kubernetes.io/network-unavailable", "Exists", effect="NoSchedule"),
)


def untolerated(taints: Sequence[Taint], tolerations: Sequence[Toleration]) -> list[Taint]:
    """The taints that keep a pod off the node: NoSchedule / NoExecute ones nobody tolerates."""
    return [
        t
        for t in taints
        if t.effect in ("NoSchedule", "NoExecute") and not any(x.tolerates(t) for x in tolerations)
    ]


@dataclass(frozen=True, slots=True)
class Node:
    """What render needs to know about a node."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    addresses: tuple[IPAddress, ...] = ()  # InternalIP addresses, in the node's order
    ready: bool = True
    unschedulable: bool = False  # cordoned (kubectl cordon / drain)
    taints: tuple[Taint, ...] = ()
    uid: str | None = None  # for ownerReferences; kmock and hand-made nodes have none

    def address(self, family: int) -> IPAddress | None:
        """The first InternalIP of a family: the node's address as a unicast peer."""
        return next((a for a in self.addresses if a.version == family), None)


def node_from_object(obj: Mapping[str, Any]) -> Node:
    """A Node record from a v1 Node object."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    addresses: list[IPAddress] = []
    for entry in status.get("addresses") or ():
        if entry.get("type") != "InternalIP":
            continue
        try:
            addresses.append(ip_address(str(entry.get("address", "")).strip()))
        except ValueError:
            continue  # a malformed address is the kubelet's bug; the node stays usable
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or ()
    )
    taints = tuple(
        Taint(
            key=str(t.get("key", "")),
            effect=str(t.get("effect", "")),
            value=str(t.get("value") or ""),
        )
        for t in spec.get("taints") or ()
    )
    return Node(
        name=str(meta.get("name", "")),
        labels=dict(meta.get("labels") or {}),
        addresses=tuple(addresses),
        ready=ready,
        unschedulable=bool(spec.get("unschedulable", False)),
        taints=taints,
        uid=meta.get("uid") or None,
    )


@dataclass(frozen=True, slots=True)
class PodInfo:
    """A daemon pod as the rollout plan and status aggregation see it."""

    name: str
    node: str
    phase: str = "Pending"  # Pending | Running | Succeeded | Failed | Unknown
    ready: bool = False
    terminating: bool = False  # deletionTimestamp set: handing over, going away
    template_hash: str | None = None
    grace_period_s: int | None = None
    report: str | None = None  # the raw kubevrrp.io/status annotation

    @property
    def running(self) -> bool:
        return self.phase == "Running" and not self.terminating

    @property
    def lifecycle(self) -> str:
        """The phase, or Terminating once the pod is being deleted (as kubectl shows it)."""
        return "Terminating" if self.terminating else self.phase

    def without_report(self) -> PodInfo:
        """The pod minus its report: what the rollout depends on (reports change often)."""
        return PodInfo(
            self.name,
            self.node,
            self.phase,
            self.ready,
            self.terminating,
            self.template_hash,
            self.grace_period_s,
        )


def pod_from_object(obj: Mapping[str, Any]) -> PodInfo:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    annotations = meta.get("annotations") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or ()
    )
    grace = spec.get("terminationGracePeriodSeconds")
    return PodInfo(
        name=str(meta.get("name", "")),
        node=str(spec.get("nodeName") or ""),
        phase=str(status.get("phase") or "Pending"),
        ready=ready,
        terminating=bool(meta.get("deletionTimestamp")),
        template_hash=annotations.get(ANNOTATION_TEMPLATE_HASH),
        grace_period_s=int(grace) if isinstance(grace, int) else None,
        report=annotations.get(ANNOTATION_STATUS),
    )


def is_daemon_object(obj: Mapping[str, Any]) -> bool:
    """Carries the daemon labels (checked here too: kmock ignores labelSelector)."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in DAEMON_LABELS.items())
