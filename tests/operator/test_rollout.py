"""rollout: the next actions from existing vs desired daemon objects, one node at a time."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from vrrp_operator.manifests import DaemonSettings, manifests
from vrrp_operator.objects import ANNOTATION_STATUS, PodInfo
from vrrp_operator.render import render
from vrrp_operator.rollout import Create, Delete, Existing, Patch, plan, rollout_order
from vrrp_operator.status import NodeReport, reports_from_pods

from tests.operator.builders import edge_nodes, vip

SETTINGS = DaemonSettings()


def desired(
    vips: list[dict[str, Any]] | None = None, nodes: int = 3, **settings: Any
) -> dict[str, list[dict[str, Any]]]:
    r = render(vips or [vip("web")], edge_nodes(nodes), {})
    s = DaemonSettings(**settings)
    return {n: manifests(c, s) for n, c in r.nodes.items()}


def running(pod: dict[str, Any], *, ready: bool = True, master: bool = False) -> dict[str, Any]:
    """The pod as the API shows it once the kubelet runs it (and its daemon reports)."""
    out = copy.deepcopy(pod)
    out["status"] = {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
    }
    if master:
        row = {"name": "default/web/ipv4", "state": "MASTER"}
        out["metadata"]["annotations"][ANNOTATION_STATUS] = json.dumps({"instances": [row]})
    return out


def existing_from(want: dict[str, list[dict[str, Any]]], **pod_kw: Any) -> Existing:
    want = copy.deepcopy(want)  # the plan must see the API's copies, not the wanted objects
    cms = {objs[0]["metadata"]["name"]: objs[0] for objs in want.values()}
    secrets = {objs[1]["metadata"]["name"]: objs[1] for objs in want.values()}
    pods = {objs[2]["metadata"]["name"]: running(objs[2], **pod_kw) for objs in want.values()}
    return Existing(cms, secrets, pods)


def describe(actions: list[Any]) -> list[tuple[str, str, str]]:
    out = []
    for a in actions:
        verb = type(a).__name__
        out.append((verb, a.kind, a.name))
    return out


def test_rollout_order_puts_unready_first_and_masters_last() -> None:
    pods = [
        PodInfo("vrrpd-c", "c", "Running", ready=True),
        PodInfo("vrrpd-a", "a", "Running", ready=True),
        PodInfo("vrrpd-m", "m", "Running", ready=True),
        PodInfo("vrrpd-z", "z", "Running", ready=False),
        PodInfo("vrrpd-b", "b", "Running", ready=True),
    ]
    assert [p.node for p in rollout_order(pods, masters={"m", "b"})] == ["z", "a", "c", "b", "m"]


def test_new_nodes_get_secret_configmap_then_pod() -> None:
    want = desired(nodes=2)
    p = plan(want, Existing(), {})
    assert describe(p.actions) == [
        ("Create", "Secret", "vrrpd-node-1"),
        ("Create", "Secret", "vrrpd-node-2"),
        ("Create", "ConfigMap", "vrrpd-node-1"),
        ("Create", "ConfigMap", "vrrpd-node-2"),
        ("Create", "Pod", "vrrpd-node-1"),
        ("Create", "Pod", "vrrpd-node-2"),
    ]
    assert p.waiting == []


def test_nothing_to_do_when_everything_matches() -> None:
    want = desired()
    p = plan(want, existing_from(want), {})
    assert p.actions == [] and p.waiting == []


def test_config_change_patches_the_configmap_only() -> None:
    before = desired([vip("web")])
    after = desired([vip("web"), vip("api", "192.168.77.101/24")])
    p = plan(after, existing_from(before), {})
    assert describe(p.actions) == [("Patch", "ConfigMap", f"vrrpd-node-{i}") for i in (1, 2, 3)]
    patch = p.actions[0]
    assert isinstance(patch, Patch)
    assert set(patch.patch) == {"data", "metadata"}
    assert set(patch.patch["metadata"]) == {"annotations"}


def test_removed_secret_keys_are_nulled() -> None:
    auth = {"authentication": {"password": "pw"}, "version": 2}
    before = desired([vip("web", **auth)])
    after = desired([vip("web")])
    p = plan(after, existing_from(before), {})
    secret_patches = [a for a in p.actions if isinstance(a, Patch) and a.kind == "Secret"]
    assert [a.patch["data"] for a in secret_patches] == [{"default__web": None}] * 3


def test_deleted_pod_is_recreated() -> None:
    want = desired()
    existing = existing_from(want)
    pods = dict(existing.pods)
    del pods["vrrpd-node-2"]
    p = plan(want, Existing(existing.config_maps, existing.secrets, pods), {})
    assert describe(p.actions) == [("Create", "Pod", "vrrpd-node-2")]


def test_terminating_pod_is_waited_for() -> None:
    want = desired()
    existing = existing_from(want)
    existing.pods["vrrpd-node-2"]["metadata"]["deletionTimestamp"] = "2025-01-01T00:00:00Z"  # type: ignore[index]
    p = plan(want, existing, {})
    assert p.actions == []
    assert p.waiting == ["pod vrrpd-node-2 is terminating; it is recreated once gone"]


@pytest.mark.parametrize("phase", ["Failed", "Succeeded"])
def test_ended_pod_is_deleted_unless_held(phase: str) -> None:
    want = desired(nodes=1)
    existing = existing_from(want)
    existing.pods["vrrpd-node-1"]["status"]["phase"] = phase  # type: ignore[index]
    assert describe(plan(want, existing, {}).actions) == [("Delete", "Pod", "vrrpd-node-1")]
    held = plan(want, existing, {}, hold={"node-1"})
    assert held.actions == [] and "backoff" in held.waiting[0]


def test_node_leaving_loses_pod_first_then_configuration() -> None:
    before = desired(nodes=3)
    after = desired(nodes=2)
    existing = existing_from(before)
    p = plan(after, existing, {})
    assert describe(p.actions) == [("Delete", "Pod", "vrrpd-node-3")]
    assert "ConfigMap vrrpd-node-3 is deleted once pod vrrpd-node-3 is gone" in p.waiting
    pods = {k: v for k, v in existing.pods.items() if k != "vrrpd-node-3"}
    p = plan(after, Existing(existing.config_maps, existing.secrets, pods), {})
    assert describe(p.actions) == [
        ("Delete", "ConfigMap", "vrrpd-node-3"),
        ("Delete", "Secret", "vrrpd-node-3"),
    ]


def test_image_change_replaces_one_pod_at_a_time_master_last() -> None:
    old = desired(nodes=3)
    new = desired(nodes=3, image="kube-vrrp/vrrpd:0.2.0")
    existing = existing_from(old)
    existing.pods["vrrpd-node-1"].update(running(old["node-1"][2], master=True))  # type: ignore[attr-defined]
    reports = reports_from_pods_of(existing)
    masters = {"node-1"}

    order = []
    for _ in range(3):
        p = plan(new, existing, reports, masters)
        deletes = [a for a in p.actions if isinstance(a, Delete)]
        assert len(deletes) == 1, p
        name = deletes[0].name
        order.append(name)
        # The pod terminates ...
        existing.pods[name]["metadata"]["deletionTimestamp"] = "now"  # type: ignore[index]
        p = plan(new, existing, reports, masters)
        assert not [a for a in p.actions if isinstance(a, Delete)]
        # ... is gone and recreated ...
        pods = {k: v for k, v in existing.pods.items() if k != name}
        existing = Existing(existing.config_maps, existing.secrets, pods)
        p = plan(new, existing, reports, masters)
        assert describe(p.actions) == [("Create", "Pod", name)]
        # ... and nothing else moves until the new pod is up.
        fresh = dict(p.actions[0].obj) if isinstance(p.actions[0], Create) else {}
        existing.pods[name] = running(fresh, ready=False)  # type: ignore[index]
        p = plan(new, existing, reports, masters)
        assert p.actions == []
        if len(order) < 3:
            assert "not up yet" in " ".join(p.waiting)
        existing.pods[name] = running(fresh, ready=True)  # type: ignore[index]
    assert order == ["vrrpd-node-2", "vrrpd-node-3", "vrrpd-node-1"]
    assert plan(new, existing, reports, masters).actions == []


def reports_from_pods_of(existing: Existing) -> dict[str, NodeReport]:
    from vrrp_operator.objects import pod_from_object

    return reports_from_pods(pod_from_object(p) for p in existing.pods.values())


def test_pods_that_are_not_up_are_replaced_at_once() -> None:
    old = desired(nodes=3)
    new = desired(nodes=3, image="kube-vrrp/vrrpd:0.2.0")
    existing = existing_from(old)
    existing.pods["vrrpd-node-2"]["status"]["phase"] = "Pending"  # type: ignore[index]
    existing.pods["vrrpd-node-3"]["status"]["phase"] = "Pending"  # type: ignore[index]
    p = plan(new, existing, {})
    assert describe(p.actions) == [
        ("Delete", "Pod", "vrrpd-node-2"),
        ("Delete", "Pod", "vrrpd-node-3"),
    ]


def test_readiness_master_backups_count_as_up_when_reporting_the_config() -> None:
    old = desired(nodes=2)
    new = desired(nodes=2, image="kube-vrrp/vrrpd:0.2.0")
    existing = existing_from(old, ready=False)  # readiness: Master makes backups unready
    reports = {
        n: NodeReport(n, config_hash=objs[0]["metadata"]["annotations"]["kubevrrp.io/config-hash"])
        for n, objs in new.items()
    }
    p = plan(new, existing, reports)
    assert describe(p.actions) == [("Delete", "Pod", "vrrpd-node-1")]  # one at a time


def test_pod_on_an_unreachable_node_does_not_block_the_rollout() -> None:
    old = desired(nodes=3)
    new = desired(nodes=3, image="kube-vrrp/vrrpd:0.2.0")
    existing = existing_from(old)
    # node-3 died mid-rollout: its new pod never came up.
    existing.pods["vrrpd-node-3"] = running(new["node-3"][2], ready=False)  # type: ignore[index]
    blocked = plan(new, existing, {})
    assert [a for a in blocked.actions if isinstance(a, Delete)] == []
    p = plan(new, existing, {}, unreachable={"node-3"})
    assert describe(p.actions) == [("Delete", "Pod", "vrrpd-node-1")]


def test_longer_grace_needed_replaces_the_pod_shorter_does_not() -> None:
    fast = desired([vip("web", advertInterval="1s")], nodes=1)
    slow = desired([vip("web", advertInterval="20s")], nodes=1)
    p = plan(slow, existing_from(fast), {})
    assert [(type(a).__name__, a.kind) for a in p.actions] == [
        ("Patch", "ConfigMap"),
        ("Delete", "Pod"),
    ]
    assert "grace period 10s < 66s" in p.actions[1].reason  # type: ignore[union-attr]
    p = plan(fast, existing_from(slow), {})
    assert describe(p.actions) == [("Patch", "ConfigMap", "vrrpd-node-1")]


def test_owner_and_labels_are_patched_back() -> None:
    want = desired(nodes=1)
    existing = existing_from(want)
    existing.config_maps["vrrpd-node-1"]["metadata"]["labels"] = {}  # type: ignore[index]
    p = plan(want, existing, {})
    assert describe(p.actions) == [("Patch", "ConfigMap", "vrrpd-node-1")]
    assert "labels" in p.actions[0].patch["metadata"]  # type: ignore[union-attr]
