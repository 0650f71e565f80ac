"""The Advisory condition's content: the what-if warnings of what render gives each node."""

from __future__ import annotations

from typing import Any

from vrrp_operator.advisory import advisory
from vrrp_operator.render import render

from tests.operator.builders import edge_nodes, vip

PROBE = {"name": "hc", "tcp": {"port": 443}, "weight": -20}


def by_name(priorities: dict[str, int]) -> list[dict[str, Any]]:
    return [{"nodeName": n, "priority": p} for n, p in priorities.items()]


def test_a_weight_smaller_than_the_gap_is_a_warning() -> None:
    obj = vip("web", priority=70, nodePriorities=by_name({"node-1": 100}), probes=[PROBE])
    rendered = render([obj], edge_nodes(2), {})
    (warning,) = advisory(rendered, "default/web") or ()
    assert warning == (
        "ipv4: probe hc (weight -20) failing never moves the VIP: node-1 goes from 100 to "
        "100 - 20 (hc) = 80, still above node-2's 70; weight -31 would move it "
        "(or weight 0: FAULT)"
    )


def test_nothing_to_say_and_nothing_rendered() -> None:
    ok = vip("ok", priority=70, nodePriorities=by_name({"node-1": 80}), probes=[PROBE])
    # Equal priorities everywhere (the default) are a note, not a warning.
    plain = vip("plain", "192.168.77.101/24")
    nowhere = vip("nowhere", "192.168.77.102/24", nodeSelector={"matchLabels": {"x": "y"}})
    rendered = render([ok, plain, nowhere], edge_nodes(3), {})
    assert advisory(rendered, "default/ok") == ()
    assert advisory(rendered, "default/plain") == ()
    assert advisory(rendered, "default/nowhere") is None
    assert advisory(rendered, "default/absent") is None


def test_unicast_peers_give_the_addresses_that_break_ties() -> None:
    # node-1 and node-2 tie at 100 once node-1's probe fails (120 - 20): a warning that
    # names the winner, since unicast peers are the nodes' InternalIPs.
    obj = vip(
        "web",
        unicast=True,
        priority=100,
        nodePriorities=by_name({"node-1": 120}),
        probes=[PROBE],
    )
    (warning,) = advisory(render([obj], edge_nodes(2), {}), "default/web") or ()
    assert "node-1 goes from 120 to 120 - 20 (hc) = 100, equal to node-2's 100" in warning


def test_a_secret_password_takes_no_part() -> None:
    obj = vip(
        "legacy",
        version=2,
        priority=70,
        nodePriorities=by_name({"node-1": 100}),
        probes=[PROBE],
        authentication={"secretRef": {"name": "vrrp", "key": "password"}},
    )
    rendered = render([obj], edge_nodes(2), {("default", "vrrp"): {"password": b"s3cret"}})
    assert rendered.placements["default/legacy"].rendered
    assert len(advisory(rendered, "default/legacy") or ()) == 1


def test_sync_group_members_are_analysed_together() -> None:
    one = vip("one", priority=100, nodePriorities=by_name({"node-1": 150}), syncGroup="edge")
    two = vip(
        "two", "192.168.77.101/24", priority=100, nodePriorities=by_name({"node-2": 150}),
        syncGroup="edge",
    )  # fmt: skip
    rendered = render([one, two], edge_nodes(2), {})
    for key in ("default/one", "default/two"):
        (warning,) = advisory(rendered, key) or ()
        assert warning.startswith("ipv4: sync group default/edge: its members would not agree")


def test_dual_stack_warnings_are_said_once() -> None:
    obj = vip(
        "web", "192.168.77.100/24", "fd00:77::100/64",
        priority=70, nodePriorities=by_name({"node-1": 100}), probes=[PROBE],
    )  # fmt: skip
    (warning,) = advisory(render([obj], edge_nodes(2, dual=True), {}), "default/web") or ()
    assert warning.startswith("ipv4+ipv6: probe hc (weight -20) failing never moves the VIP")
