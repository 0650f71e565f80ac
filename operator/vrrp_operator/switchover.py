"""Planned switchover in a cluster (pure): the VirtualIP's `kubevrrp.io/switchover-to`
annotation checked against what render placed, carried to the daemons in the per-node
documents, and reported as the Switchover condition with its Events.

`kubectl annotate virtualip web kubevrrp.io/switchover-to=node-b --overwrite` moves the
VIP to node-b and keeps it there; `kubectl annotate virtualip web kubevrrp.io/switchover-to-`
releases it. Why an annotation: docs/operations.md. The daemon's side is
vrrpd/switchover.py and `VirtualRouter.hold`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from vrrp_operator.objects import Node
from vrrp_operator.render import NodeConfig, Placement, Rendered, object_key
from vrrpd.switchover import SWITCHOVER_TO

CONDITION = "Switchover"
HELD, PENDING, ENDED, REFUSED = "Held", "Pending", "Ended", "Refused"

Event = tuple[str, str, str]  # (reason, type, message), as status.events


def requested(obj: Mapping[str, Any]) -> str | None:
    """The node a VirtualIP asks to hold its VIP, or None."""
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(SWITCHOVER_TO)
    return value.strip() or None if isinstance(value, str) else None


def refusal(node: str, placement: Placement | None, nodes: Mapping[str, Node]) -> str | None:
    """Why `node` cannot take the VirtualIP (None: it can), worded for a person."""
    where = f"{SWITCHOVER_TO}: {node}"
    if node not in nodes:
        known = ", ".join(sorted(nodes)[:10]) or "none"
        return f"{where}: no such node (nodes: {known})"
    if placement is None or not placement.rendered:
        return f"{where}: the VirtualIP runs on no node (see its Ready condition)"
    if node not in placement.selected:
        chosen = ", ".join(placement.selected) or "none"
        return f"{where}: not selected by spec.nodeSelector (selected: {chosen})"
    if not nodes[node].ready:
        return f"{where}: the node is not Ready"
    if node not in placement.nodes:
        return (
            f"{where}: the node does not run the VirtualIP (cordoned, tainted or without a"
            " usable address: see status.nodes)"
        )
    return None


def carry(
    rendered: Rendered, virtualips: Iterable[Mapping[str, Any]], nodes: Sequence[Node]
) -> Rendered:
    """The rendering with each accepted request's annotation on every node's document of
    that VirtualIP: the daemon on the named node holds, the others see who does."""
    by_name = {n.name: n for n in nodes}
    accepted = {}
    for obj in virtualips:
        key, node = object_key(obj), requested(obj)
        if node is not None and refusal(node, rendered.placements.get(key), by_name) is None:
            accepted[key] = node
    if not accepted:
        return rendered
    configs = {}
    for name, config in rendered.nodes.items():
        documents = tuple(_annotated(d, accepted) for d in config.documents)
        configs[name] = config if documents == config.documents else _with(config, documents)
    return replace(rendered, nodes=configs)


def shown_differently(obj: Mapping[str, Any]) -> bool:
    """The VirtualIP's status may not show its request (or its absence) yet: a request
    stands, or a Switchover condition does. Its status follower looks again."""
    conditions = (obj.get("status") or {}).get("conditions") or ()
    return requested(obj) is not None or any(c.get("type") == CONDITION for c in conditions)


def outdated(obj: Mapping[str, Any], rendered: Rendered, nodes: Sequence[Node]) -> bool:
    """The rendering does not carry what the VirtualIP's annotation asks (yet)."""
    key, node = object_key(obj), requested(obj)
    placement = rendered.placements.get(key)
    if node is not None and refusal(node, placement, {n.name: n for n in nodes}) is not None:
        node = None  # refused: nothing to carry
    config = rendered.nodes.get(placement.nodes[0]) if placement and placement.nodes else None
    documents = config.documents if config is not None else ()
    carried = next(
        (
            ((d.get("metadata") or {}).get("annotations") or {}).get(SWITCHOVER_TO)
            for d in documents
            if object_key(d) == key
        ),
        None,
    )
    return carried != node


def _annotated(document: Mapping[str, Any], accepted: Mapping[str, str]) -> Mapping[str, Any]:
    node = accepted.get(object_key(document))
    if node is None:
        return document
    meta = dict(document["metadata"])
    meta["annotations"] = {**(meta.get("annotations") or {}), SWITCHOVER_TO: node}
    return {**document, "metadata": meta}


def _with(config: NodeConfig, documents: tuple[Mapping[str, Any], ...]) -> NodeConfig:
    return NodeConfig(
        node=config.node,
        documents=documents,
        secret_data=config.secret_data,
        node_uid=config.node_uid,
        advert_intervals_cs=config.advert_intervals_cs,
    )


def with_condition(
    obj: Mapping[str, Any],
    status: dict[str, Any],
    placement: Placement | None,
    nodes: Sequence[Node],
    previous: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """`status` (aggregate_status's) with the Switchover condition while a request stands.

    Held: the named node is the master. Pending: accepted, not master yet. Ended: it was
    held and another node is master now (the hold ended on a failure; the request stands
    until the annotation goes). Refused: the node cannot take it, and why.
    """
    node = requested(obj)
    if node is None:
        return status
    before = next(
        (c for c in (previous or {}).get("conditions") or () if c.get("type") == CONDITION), None
    )
    why = refusal(node, placement, {n.name: n for n in nodes})
    master = status.get("master")
    if why is not None:
        condition = _condition(False, REFUSED, why)
    elif master == node:
        condition = _condition(True, HELD, f"{node} holds the VIP ({SWITCHOVER_TO})")
    elif before is not None and before.get("reason") in (HELD, ENDED):
        condition = _condition(
            False, ENDED, f"{node} no longer holds the VIP (master: {master or 'none'}); "
            f"the hold ended on a failure: set {SWITCHOVER_TO} again to retry",
        )  # fmt: skip
    else:
        condition = _condition(
            False, PENDING, f"waiting for {node} to take over (master: {master or 'none'})"
        )
    same = before is not None and before.get("status") == condition["status"]
    condition["lastTransitionTime"] = (
        before.get("lastTransitionTime") if same and before else _newest_time(status)
    )
    conditions = [c for c in status.get("conditions") or () if c.get("type") != CONDITION]
    return {**status, "conditions": [*conditions, condition]}


def events(old_status: Mapping[str, Any] | None, new_status: Mapping[str, Any]) -> list[Event]:
    """SwitchedOver (Normal) when the named node comes to hold the VIP, naming both nodes;
    SwitchoverRefused and SwitchoverEnded (Warning) when a request is refused or a hold
    ends. Only edges, as status.events."""
    old = _find(old_status)
    new = _find(new_status)
    if new is None:
        return []
    reason, message = new.get("reason"), str(new.get("message", ""))
    if old is not None and old.get("reason") == reason and old.get("message") == message:
        return []
    if reason == HELD and (old is None or old.get("reason") != HELD):
        was = (old_status or {}).get("master")
        holder = new_status.get("master")
        source = f"from {was} " if was and was != holder else ""
        return [("SwitchedOver", "Normal", f"the VIP moved {source}to {holder} ({SWITCHOVER_TO})")]
    if reason == REFUSED:
        return [("SwitchoverRefused", "Warning", message)]
    if reason == ENDED and (old is None or old.get("reason") != ENDED):
        return [("SwitchoverEnded", "Warning", message)]
    return []


def _find(status: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    return next(
        (c for c in (status or {}).get("conditions") or () if c.get("type") == CONDITION), None
    )


def _condition(ok: bool, reason: str, message: str) -> dict[str, Any]:
    return {"type": CONDITION, "status": "True" if ok else "False", "reason": reason,
            "message": message}  # fmt: skip


def _newest_time(status: Mapping[str, Any]) -> str | None:
    """The moment aggregate_status stamped (its newest transition time)."""
    times = [str(c["lastTransitionTime"]) for c in status.get("conditions") or ()
             if c.get("lastTransitionTime")]  # fmt: skip
    return max(times, default=None)
