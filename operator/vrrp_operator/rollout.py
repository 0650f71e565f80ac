"""Rollout: existing daemon objects vs the desired ones -> the next API actions (pure).

Rules, in the order the actions are returned:
- Secrets before ConfigMaps (a ConfigMap may name a key only the new Secret has), then
  ConfigMaps, then pods: nothing starts before its configuration exists.
- A missing pod is created at once (a deleted pod comes back; a new node gets its daemon).
- A pod whose template changed (image, settings) is replaced one node at a time, the
  current master last: the next one only when no daemon pod is terminating and every pod
  already on the new template is up. Deleting the pod is the graceful handover: the daemon
  sends priority 0 on SIGTERM and a backup takes over within skew time.
- A node that leaves every selection loses its pod (handing over first); its ConfigMap and
  Secret go once the pod is gone, so a terminating daemon never loses its configuration.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vrrp_operator.objects import (
    ANNOTATION_CONFIG_HASH,
    ANNOTATION_TEMPLATE_HASH,
    PodInfo,
    pod_from_object,
)
from vrrp_operator.status import NodeReport


@dataclass(frozen=True)
class Create:
    obj: Mapping[str, Any]
    reason: str

    @property
    def kind(self) -> str:
        return str(self.obj["kind"])

    @property
    def name(self) -> str:
        return str(self.obj["metadata"]["name"])


@dataclass(frozen=True)
class Patch:
    kind: str
    namespace: str
    name: str
    patch: Mapping[str, Any]  # JSON merge patch (RFC 7386)
    reason: str


@dataclass(frozen=True)
class Delete:
    kind: str
    namespace: str
    name: str
    reason: str


Action = Create | Patch | Delete


@dataclass(frozen=True)
class Existing:
    """The daemon objects in the operator's namespace, by name."""

    config_maps: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    secrets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    pods: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Plan:
    actions: list[Action]
    waiting: list[str]  # why further steps wait (for the log), empty when done


def rollout_order(pods: Sequence[PodInfo], masters: Collection[str]) -> list[PodInfo]:
    """The order to replace pods in: not-ready ones first (they serve nothing), then the
    backups by node name, the nodes holding a VIP last (fewest handovers)."""
    return sorted(pods, key=lambda p: (p.node in masters, p.ready, p.node))


def _needs_replacement(current: PodInfo, desired: Mapping[str, Any], node: str) -> str | None:
    want_hash = desired["metadata"]["annotations"][ANNOTATION_TEMPLATE_HASH]
    if current.node != node:
        return f"runs on {current.node or 'no node'}, belongs on {node}"
    if current.template_hash != want_hash:
        return f"template {current.template_hash} -> {want_hash}"
    want_grace = int(desired["spec"]["terminationGracePeriodSeconds"])
    if current.grace_period_s is not None and current.grace_period_s < want_grace:
        return f"grace period {current.grace_period_s}s < {want_grace}s needed"
    return None


def _is_up(p: PodInfo, report: NodeReport | None, config_hash: str | None) -> bool:
    """Running and serving: Ready, or (readiness Master makes backups unready) reporting the
    current configuration."""
    if not p.running:
        return False
    return p.ready or (report is not None and report.config_hash == config_hash)


def _data_patch(current: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any] | None:
    """A merge patch making `current` carry desired's data, labels, annotations and owners."""
    cur_meta = current.get("metadata") or {}
    want_meta = desired["metadata"]
    patch: dict[str, Any] = {}
    cur_data = current.get("data") or {}
    want_data = desired.get("data") or {}
    if cur_data != want_data:
        data: dict[str, Any] = dict(want_data)
        data.update({k: None for k in cur_data if k not in want_data})
        patch["data"] = data
    meta: dict[str, Any] = {}
    for part in ("labels", "annotations"):
        want = want_meta.get(part) or {}
        have = cur_meta.get(part) or {}
        if any(have.get(k) != v for k, v in want.items()):
            meta[part] = dict(want)
    if (cur_meta.get("ownerReferences") or []) != (want_meta.get("ownerReferences") or []):
        meta["ownerReferences"] = want_meta.get("ownerReferences") or None
    if meta:
        patch["metadata"] = meta
    return patch or None


def plan(
    desired: Mapping[str, Sequence[Mapping[str, Any]]],
    existing: Existing,
    reports: Mapping[str, NodeReport],
    masters: Collection[str] = (),
    *,
    hold: Collection[str] = (),
    unreachable: Collection[str] = (),
) -> Plan:
    """The actions that move `existing` towards `desired` (node -> [ConfigMap, Secret, Pod]).

    `hold`: nodes whose failed pod must not be recreated yet (the caller's backoff: a pod
    the kubelet rejects would otherwise be recreated in a tight loop). `unreachable`: nodes
    that are NotReady; their pods neither pace nor block a rollout (a pod stuck terminating
    on a dead node would otherwise stop every upgrade).
    """
    secrets: list[Action] = []
    config_maps: list[Action] = []
    pods: list[Action] = []
    deletes: list[Action] = []
    waiting: list[str] = []

    wanted_pods: dict[str, tuple[str, Mapping[str, Any]]] = {}
    config_hash: dict[str, str | None] = {}
    for node, objs in sorted(desired.items()):
        for obj in objs:
            kind, meta = obj["kind"], obj["metadata"]
            name, namespace = meta["name"], meta["namespace"]
            if kind == "Pod":
                wanted_pods[name] = (node, obj)
                continue
            pool = existing.secrets if kind == "Secret" else existing.config_maps
            out = secrets if kind == "Secret" else config_maps
            if kind == "ConfigMap":
                config_hash[node] = (meta.get("annotations") or {}).get(ANNOTATION_CONFIG_HASH)
            have = pool.get(name)
            if have is None:
                out.append(Create(obj, f"node {node} runs VirtualIPs"))
                continue
            patch = _data_patch(have, obj)
            if patch is not None:
                out.append(
                    Patch(kind, namespace, name, patch, f"configuration of node {node} changed")
                )

    current_pods = {name: pod_from_object(obj) for name, obj in existing.pods.items()}
    replace: list[tuple[PodInfo, str]] = []
    for name, (node, obj) in wanted_pods.items():
        current = current_pods.get(name)
        namespace = obj["metadata"]["namespace"]
        if current is None:
            pods.append(Create(obj, f"node {node} has no daemon pod"))
        elif current.terminating:
            waiting.append(f"pod {name} is terminating; it is recreated once gone")
        elif current.phase in ("Failed", "Succeeded"):
            if node in hold:
                waiting.append(f"pod {name} {current.phase}; recreating after a backoff")
            else:
                pods.append(Delete("Pod", namespace, name, f"pod {current.phase}; recreate it"))
        else:
            why = _needs_replacement(current, obj, node)
            if why is not None:
                replace.append((current, why))

    for name, info in sorted(current_pods.items()):
        if name in wanted_pods:
            continue
        if info.terminating:
            waiting.append(f"pod {name} is terminating (its node left every selection)")
            continue
        namespace = (existing.pods[name].get("metadata") or {}).get("namespace", "")
        deletes.append(Delete("Pod", namespace, name, "its node runs no VirtualIP any more"))
    wanted_objects = {obj["metadata"]["name"] for objs in desired.values() for obj in objs}
    for kind, pool in (("ConfigMap", existing.config_maps), ("Secret", existing.secrets)):
        for name, obj in sorted(pool.items()):
            if name in wanted_objects:
                continue
            if name in current_pods:  # same name as the pod: wait until the pod is gone
                waiting.append(f"{kind} {name} is deleted once pod {name} is gone")
                continue
            namespace = (obj.get("metadata") or {}).get("namespace", "")
            deletes.append(Delete(kind, namespace, name, "its node runs no VirtualIP any more"))

    if replace:
        steps, why_waiting = _rollout_steps(
            replace, current_pods, wanted_pods, reports, config_hash, masters, unreachable
        )
        pods.extend(steps)
        waiting.extend(why_waiting)
    return Plan([*secrets, *config_maps, *pods, *deletes], waiting)


def _rollout_steps(
    replace: list[tuple[PodInfo, str]],
    current_pods: Mapping[str, PodInfo],
    wanted_pods: Mapping[str, tuple[str, Mapping[str, Any]]],
    reports: Mapping[str, NodeReport],
    config_hash: Mapping[str, str | None],
    masters: Collection[str],
    unreachable: Collection[str],
) -> tuple[list[Action], list[str]]:
    """The pods to replace now, and why the others wait.

    Pods that are not up serve nothing: all of them go at once (as a DaemonSet does). Pods
    that are up go one at a time, when nothing else is in flight: no pod terminating, no
    wanted pod missing or not up (pods on unreachable nodes aside).
    """

    def up(p: PodInfo) -> bool:
        return _is_up(p, reports.get(p.node), config_hash.get(p.node))

    def namespace(p: PodInfo) -> str:
        return str(wanted_pods[p.name][1]["metadata"]["namespace"])

    why = {p.name: w for p, w in replace}
    down = [p for p, _ in replace if not up(p)]
    steps: list[Action] = [
        Delete("Pod", namespace(p), p.name, f"rolling update, not up ({why[p.name]})")
        for p in rollout_order(down, masters)
    ]
    candidates = [p for p, _ in replace if up(p)]
    if not candidates:
        return steps, []
    if steps:
        return steps, ["rollout waits: replacing pods that are not up first"]
    pending = {p.name for p in candidates}
    in_flight: list[str] = []
    for name, (node, _) in sorted(wanted_pods.items()):
        if node in unreachable or name in pending:
            continue
        current = current_pods.get(name)
        if current is None or current.terminating or not up(current):
            in_flight.append(name)
    in_flight.extend(
        n
        for n, p in sorted(current_pods.items())
        if p.terminating and p.node not in unreachable and n not in wanted_pods
    )
    if in_flight:
        return [], [f"rollout waits: {', '.join(in_flight)} not up yet"]
    first = rollout_order(candidates, masters)[0]
    return [Delete("Pod", namespace(first), first.name, f"rolling update ({why[first.name]})")], []
