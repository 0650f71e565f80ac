"""kubevrrp.io/switchover-to in the operator (vrrp_operator/switchover.py): the request
checked against render's placement, carried in the per-node documents to the daemons
(which resolve it into a hold), and the Switchover condition with its Events."""

from __future__ import annotations

from typing import Any

import pytest
from vrrp_operator.render import render
from vrrp_operator.switchover import (
    carry,
    events,
    outdated,
    refusal,
    requested,
    shown_differently,
    with_condition,
)

from tests.operator.builders import edge_nodes, node, vip
from vrrpd.resolve import instances_for_node
from vrrpd.spec.load import load_manifests
from vrrpd.switchover import SWITCHOVER_TO

KEY = "default/web"
TO = "kubevrrp.io/switchover-to"


def annotated(target: str, **spec: Any) -> dict[str, Any]:
    obj = vip("web", **spec)
    obj["metadata"]["annotations"] = {TO: target}
    return obj


def holds(rendered: Any, name: str) -> bool:
    """What the daemon on `name` resolves from its rendered ConfigMap text."""
    config = rendered.nodes[name]
    (instance,) = instances_for_node(load_manifests(config.text), name)
    return instance.hold


def test_an_accepted_request_reaches_every_node_and_only_the_named_one_holds() -> None:
    nodes = edge_nodes(3)
    obj = annotated("node-2")
    plain = render([vip("web")], nodes, {})
    rendered = carry(render([obj], nodes, {}), [obj], nodes)
    assert [holds(rendered, n) for n in ("node-1", "node-2", "node-3")] == [False, True, False]
    # The ConfigMaps change, so the daemons reload (in place: no re-election).
    assert all(rendered.nodes[n].config_hash != plain.nodes[n].config_hash for n in plain.nodes)
    assert carry(plain, [vip("web")], nodes) is plain


@pytest.mark.parametrize(
    ("target", "nodes", "spec", "why"),
    [
        ("node-9", edge_nodes(2), {}, "node-9: no such node (nodes: node-1, node-2)"),
        (
            "other",
            [*edge_nodes(2), node("other", "192.168.77.50")],
            {"nodeSelector": {"matchLabels": {"role": "edge"}}},
            "other: not selected by spec.nodeSelector (selected: node-1, node-2)",
        ),
        (
            "node-3",
            [*edge_nodes(2), node("node-3", "192.168.77.13", ready=False)],
            {},
            "node-3: the node is not Ready",
        ),
        (
            "node-3",
            [*edge_nodes(2), node("node-3", "192.168.77.13", cordoned=True)],
            {},
            "node-3: the node does not run the VirtualIP (cordoned",
        ),
    ],
)
def test_a_node_that_cannot_take_it_is_refused_with_the_reason(
    target: str, nodes: list[Any], spec: dict[str, Any], why: str
) -> None:
    obj = annotated(target, **spec)
    rendered = render([obj], nodes, {})
    message = refusal(target, rendered.placements[KEY], {n.name: n for n in nodes})
    assert message is not None and message.startswith(f"{TO}: {why}")
    carried = carry(rendered, [obj], nodes)
    assert not any(holds(carried, n) for n in carried.nodes)
    status = with_condition(obj, {"master": "node-1", "conditions": []}, None, nodes, None)
    condition = status["conditions"][-1]
    assert (condition["type"], condition["status"], condition["reason"]) == (
        "Switchover", "False", "Refused",
    )  # fmt: skip
    assert events({}, status) == [("SwitchoverRefused", "Warning", condition["message"])]
    assert events(status, status) == []  # said once


def test_the_condition_follows_the_move_and_the_event_names_both_nodes() -> None:
    nodes = edge_nodes(3)
    obj = annotated("node-2")
    placement = render([obj], nodes, {}).placements[KEY]

    def status(master: str, previous: dict[str, Any] | None) -> dict[str, Any]:
        base = {"master": master, "conditions": [{"type": "Ready", "status": "True",
                "lastTransitionTime": "2026-12-04T00:00:00Z"}]}  # fmt: skip
        return with_condition(obj, base, placement, nodes, previous)

    asked = status("node-1", {"master": "node-1"})
    assert asked["conditions"][-1]["reason"] == "Pending"
    assert events({"master": "node-1"}, asked) == []
    moved = status("node-2", asked)
    assert moved["conditions"][-1] == {
        "type": "Switchover", "status": "True", "reason": "Held",
        "message": f"node-2 holds the VIP ({TO})",
        "lastTransitionTime": "2026-12-04T00:00:00Z",
    }  # fmt: skip
    assert events(asked, moved) == [
        ("SwitchedOver", "Normal", f"the VIP moved from node-1 to node-2 ({TO})")
    ]
    assert events(moved, status("node-2", moved)) == []
    failed = status("node-1", moved)  # a probe failure on node-2 ended the hold
    assert failed["conditions"][-1]["reason"] == "Ended"
    assert events(moved, failed) == [
        ("SwitchoverEnded", "Warning", failed["conditions"][-1]["message"])
    ]
    released = with_condition(
        vip("web"), {"master": "node-1", "conditions": []}, placement, nodes, failed
    )
    assert released["conditions"] == [] and requested(vip("web")) is None


def test_outdated_until_the_rendering_carries_what_the_annotation_asks() -> None:
    nodes = edge_nodes(2)
    plain, asked = vip("web"), annotated("node-2")
    before = render([plain], nodes, {})
    assert not outdated(plain, before, nodes)
    assert outdated(asked, before, nodes)  # the timer asks for a reconcile
    assert not outdated(asked, carry(render([asked], nodes, {}), [asked], nodes), nodes)
    assert not outdated(annotated("node-9"), before, nodes)  # refused: nothing to carry


def test_the_status_looks_again_while_a_request_or_its_condition_stands() -> None:
    # kopf hands no annotation change to the change handlers, and the status follower wakes
    # only when asked: a removed request must still take its condition away.
    plain_vip = {"metadata": {"name": "web", "namespace": "default"}, "status": {}}
    asked = {"metadata": {**plain_vip["metadata"], "annotations": {SWITCHOVER_TO: "n2"}}}
    shown = {**plain_vip, "status": {"conditions": [{"type": "Switchover", "status": "True"}]}}
    assert not shown_differently(plain_vip)
    assert shown_differently(asked)
    assert shown_differently(shown)
