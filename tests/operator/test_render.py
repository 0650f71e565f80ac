"""render: node selection, priorities, unicast peers, VRID allocation and conflicts, secrets."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from vrrp_operator.manifests import DaemonSettings, manifests
from vrrp_operator.objects import Taint, Toleration
from vrrp_operator.render import (
    ADDRESS_CONFLICT,
    CONFIG_KEY,
    INVALID_SPEC,
    NO_ADDRESS,
    NO_FREE_VRID,
    NO_NODES,
    NODE_EXCLUDED,
    SECRET_MISSING,
    UNICAST_NEEDS_PEERS,
    VRID_CONFLICT,
    NodeConfig,
    Rendered,
    RenderOptions,
    address_conflicts,
    allocated_vrids,
    render,
    resolve_secret_refs,
    secret_key,
    secret_refs,
)

from tests.operator.builders import edge_nodes, node, vip
from vrrpd.resolve import instances_for_node
from vrrpd.spec.load import load_manifests

EDGE = {"matchLabels": {"role": "edge"}}


def run(vips: list[dict[str, Any]], nodes: Any = None, secrets: Any = None, **kw: Any) -> Rendered:
    return render(vips, edge_nodes() if nodes is None else nodes, secrets or {}, **kw)


def doc(r: Rendered, node_name: str, key: str) -> dict[str, Any]:
    for d in r.nodes[node_name].documents:
        if f"{d['metadata']['namespace']}/{d['metadata']['name']}" == key:
            return dict(d)
    raise AssertionError(f"{key} not rendered on {node_name}")


def daemon_view(config: NodeConfig) -> list[Any]:
    """What the daemon does with the ConfigMap: resolve secretRefs, load standalone, resolve."""
    docs = resolve_secret_refs(
        yaml.safe_load_all(config.text), f"vrrpd-{config.node}", config.secret_data
    )
    text = yaml.safe_dump_all(docs)
    vips = load_manifests(text, source=f"vrrpd-{config.node}")
    return instances_for_node(vips, config.node)


# --- node selection ------------------------------------------------------------------------


def test_no_selector_runs_on_every_node() -> None:
    r = run([vip("web")])
    assert sorted(r.nodes) == ["node-1", "node-2", "node-3"]
    assert r.placements["default/web"].nodes == ("node-1", "node-2", "node-3")


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ({"matchLabels": {"rack": "r2"}}, ["node-2"]),
        (
            {"matchExpressions": [{"key": "rack", "operator": "In", "values": ["r1", "r3"]}]},
            ["node-1", "node-3"],
        ),
        (
            {"matchExpressions": [{"key": "rack", "operator": "NotIn", "values": ["r1"]}]},
            ["node-2", "node-3"],
        ),
        (
            {"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]},
            ["node-1", "node-2", "node-3"],
        ),
        ({"matchLabels": {"role": "edge"}}, ["node-1", "node-2", "node-3"]),
    ],
)
def test_node_selector_picks_nodes(selector: dict[str, Any], expected: list[str]) -> None:
    r = run([vip("web", nodeSelector=selector)])
    assert list(r.placements["default/web"].nodes) == expected
    assert sorted(r.nodes) == expected


def test_selector_matching_nothing_is_no_nodes() -> None:
    r = run([vip("web", nodeSelector={"matchLabels": {"role": "db"}})])
    assert r.nodes == {}
    assert [f.reason for f in r.unschedulable] == [NO_NODES]
    assert not r.placements["default/web"].rendered


def test_cordoned_node_is_excluded_but_stays_a_unicast_peer() -> None:
    nodes = edge_nodes()
    nodes[1] = node("node-2", "192.168.77.12", labels={"role": "edge"}, cordoned=True)
    r = run([vip("web", unicast=True)], nodes)
    assert sorted(r.nodes) == ["node-1", "node-3"]
    assert [(f.reason, f.node) for f in r.unschedulable] == [(NODE_EXCLUDED, "node-2")]
    peers = doc(r, "node-1", "default/web")["spec"]["peers"]
    assert [p["nodeName"] for p in peers] == ["node-1", "node-2", "node-3"]


def test_cordon_can_be_ignored() -> None:
    nodes = [node("node-1", "192.168.77.11", cordoned=True)]
    r = run([vip("web")], nodes, options=RenderOptions(exclude_cordoned=False))
    assert sorted(r.nodes) == ["node-1"]


@pytest.mark.parametrize(
    ("taint", "tolerations", "runs"),
    [
        (Taint("dedicated", "NoSchedule", "db"), (), False),
        (Taint("dedicated", "NoExecute", "db"), (), False),
        (Taint("dedicated", "PreferNoSchedule", "db"), (), True),
        (Taint("dedicated", "NoSchedule", "db"), (Toleration("dedicated", "Equal", "db"),), True),
        (Taint("dedicated", "NoSchedule", "db"), (Toleration("dedicated", "Equal", "web"),), False),
        (Taint("dedicated", "NoSchedule", "db"), (Toleration(operator="Exists"),), True),
        (Taint("node.kubernetes.io/unreachable", "NoExecute"), (), True),  # DaemonSet default
        (Taint("node-role.kubernetes.io/control-plane", "NoSchedule"), (), False),
    ],
)
def test_taints_and_tolerations(
    taint: Taint, tolerations: tuple[Toleration, ...], runs: bool
) -> None:
    nodes = [node("node-1", "192.168.77.11", taints=(taint,))]
    r = run([vip("web")], nodes, options=RenderOptions(tolerations=tolerations))
    assert ("node-1" in r.nodes) is runs


def test_not_ready_node_keeps_its_configuration() -> None:
    # A NotReady node may still run VRRP (kubelet down, network fine): removing it would make
    # it a second master for its peers.
    nodes = [node("node-1", "192.168.77.11", ready=False), node("node-2", "192.168.77.12")]
    r = run([vip("web", unicast=True)], nodes)
    assert sorted(r.nodes) == ["node-1", "node-2"]


def test_deleted_virtualip_is_not_rendered() -> None:
    gone = vip("old", "192.168.77.101/24")
    gone["metadata"]["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    r = run([vip("web"), gone])
    assert set(r.placements) == {"default/web"}
    assert all(len(c.documents) == 1 for c in r.nodes.values())


def test_invalid_virtualip_is_a_finding() -> None:
    r = run([vip("bad", "10.0.0.1/24", priority=300), vip("web")])
    assert [(f.virtualip, f.reason) for f in r.invalid] == [("default/bad", INVALID_SPEC)]
    assert "spec.priority" in r.invalid[0].message
    assert "default/web" in r.placements


# --- priorities ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({}, {"node-1": 100, "node-2": 100, "node-3": 100}),
        ({"priority": 120}, {"node-1": 120, "node-2": 120, "node-3": 120}),
        (
            {"nodePriorities": [{"nodeName": "node-2", "priority": 150}]},
            {"node-1": 100, "node-2": 150, "node-3": 100},
        ),
        (
            {"nodePriorities": [{"nodeSelector": {"matchLabels": {"rack": "r3"}}, "priority": 90}]},
            {"node-1": 100, "node-2": 100, "node-3": 90},
        ),
        (  # first match wins
            {
                "nodePriorities": [
                    {"nodeSelector": {"matchLabels": {"role": "edge"}}, "priority": 110},
                    {"nodeName": "node-1", "priority": 200},
                ]
            },
            {"node-1": 110, "node-2": 110, "node-3": 110},
        ),
        ({"priority": 255, "nodeSelector": {"matchLabels": {"rack": "r1"}}}, {"node-1": 255}),
    ],
)
def test_priorities_are_resolved_per_node(spec: dict[str, Any], expected: dict[str, int]) -> None:
    r = run([vip("web", **spec)])
    got = {}
    for name in r.nodes:
        entries = doc(r, name, "default/web")["spec"]["nodePriorities"]
        assert entries == [{"nodeName": name, "priority": expected[name]}]
        got[name] = daemon_view(r.nodes[name])[0].priority
    assert got == expected


def test_two_address_owners_are_refused() -> None:
    r = run(
        [
            vip(
                "web",
                nodePriorities=[
                    {"nodeSelector": {"matchLabels": {"role": "edge"}}, "priority": 255}
                ],
            )
        ]
    )
    assert r.nodes == {}
    assert [f.reason for f in r.unschedulable] == [INVALID_SPEC]
    assert "255" in r.unschedulable[0].message


# --- unicast peers -------------------------------------------------------------------------


def test_unicast_peers_from_internal_ips_per_family() -> None:
    r = run(
        [vip("web", "192.168.77.100/24", "fd00:77::100/64", unicast=True)], edge_nodes(dual=True)
    )
    peers = doc(r, "node-2", "default/web")["spec"]["peers"]
    assert peers == [
        {"nodeName": "node-1", "address": "192.168.77.11"},
        {"nodeName": "node-2", "address": "192.168.77.12"},
        {"nodeName": "node-3", "address": "192.168.77.13"},
        {"nodeName": "node-1", "address": "fd00:77::11"},
        {"nodeName": "node-2", "address": "fd00:77::12"},
        {"nodeName": "node-3", "address": "fd00:77::13"},
    ]
    by_family = {i.family: i for i in daemon_view(r.nodes["node-2"])}
    assert str(by_family[4].source_address) == "192.168.77.12"
    assert [str(p) for p in by_family[4].peers] == ["192.168.77.11", "192.168.77.13"]
    assert [str(p) for p in by_family[6].peers] == ["fd00:77::11", "fd00:77::13"]


def test_node_without_an_address_of_a_family_is_excluded_from_unicast() -> None:
    nodes = edge_nodes(dual=True)
    nodes[2] = node("node-3", "192.168.77.13", labels={"role": "edge"})  # no IPv6
    r = run([vip("web", "192.168.77.100/24", "fd00:77::100/64", unicast=True)], nodes)
    assert sorted(r.nodes) == ["node-1", "node-2"]
    assert [(f.reason, f.node) for f in r.unschedulable] == [(NO_ADDRESS, "node-3")]
    assert "IPv6" in r.unschedulable[0].message


def test_multicast_needs_no_node_address() -> None:
    nodes = [node("node-1"), node("node-2")]
    r = run([vip("web")], nodes)
    assert sorted(r.nodes) == ["node-1", "node-2"]
    assert "peers" not in doc(r, "node-1", "default/web")["spec"]


def test_explicit_peers_are_kept() -> None:
    peers = [
        {"nodeName": "node-1", "address": "10.9.0.1"},
        {"nodeName": "node-2", "address": "10.9.0.2"},
    ]
    r = run([vip("web", "10.9.0.100/24", unicast=True, peers=peers)])
    assert sorted(r.nodes) == ["node-1", "node-2"]  # node-3 is not listed: no source address
    assert doc(r, "node-1", "default/web")["spec"]["peers"] == peers


def test_unicast_with_a_single_selected_node_is_reported() -> None:
    r = run([vip("web", unicast=True, nodeSelector={"matchLabels": {"rack": "r1"}})])
    assert r.nodes == {}
    assert [f.reason for f in r.unschedulable] == [UNICAST_NEEDS_PEERS]


# --- VRIDs ---------------------------------------------------------------------------------


def test_lowest_free_vrid_is_allocated_in_age_order() -> None:
    vips = [
        vip("c", "192.168.77.103/24", created="2025-01-03T00:00:00Z"),
        vip("a", "192.168.77.101/24", created="2025-01-01T00:00:00Z"),
        vip("b", "192.168.77.102/24", created="2025-01-02T00:00:00Z", vrid=1),
    ]
    r = run(vips)
    got = {k: (p.vrid, p.allocated) for k, p in r.placements.items()}
    assert got == {"default/a": (2, True), "default/b": (1, False), "default/c": (3, True)}


def test_allocation_is_stable_with_the_recorded_vrids() -> None:
    vips = [vip("a", "192.168.77.101/24"), vip("b", "192.168.77.102/24")]
    first = run(vips)
    recorded = {k: p.vrid for k, p in first.placements.items() if p.vrid is not None}
    # A new, older-named VirtualIP arrives: the recorded ones keep their VRIDs.
    more = [vip("0new", "192.168.77.103/24"), *vips]
    second = run(more, allocated=recorded)
    assert {k: p.vrid for k, p in second.placements.items()} == {
        "default/a": recorded["default/a"],
        "default/b": recorded["default/b"],
        "default/0new": 3,
    }


def test_allocated_vrids_reads_status_only_without_spec_vrid() -> None:
    objs = [vip("a", status={"vrid": 7}), vip("b", vrid=9, status={"vrid": 9}), vip("c")]
    assert allocated_vrids(objs) == {"default/a": 7}


def test_duplicate_explicit_vrid_loses_to_the_older_virtualip() -> None:
    vips = [
        vip("new", "192.168.77.102/24", vrid=51, created="2025-02-01T00:00:00Z"),
        vip("old", "192.168.77.101/24", vrid=51, created="2025-01-01T00:00:00Z"),
    ]
    r = run(vips)
    assert [(f.virtualip, f.reason) for f in r.conflicts] == [("default/new", VRID_CONFLICT)]
    assert "default/old" in r.conflicts[0].message
    assert r.placements["default/new"].vrid is None
    assert not r.placements["default/new"].rendered
    assert all(len(c.documents) == 1 for c in r.nodes.values())


def test_equal_creation_times_fall_back_to_the_name() -> None:
    vips = [vip("b", "192.168.77.102/24", vrid=5), vip("a", "192.168.77.101/24", vrid=5)]
    r = run(vips)
    assert [f.virtualip for f in r.conflicts] == ["default/b"]


def test_a_recorded_allocation_is_kept_against_a_newer_explicit_vrid() -> None:
    vips = [
        vip("mine", "192.168.77.101/24", created="2025-01-01T00:00:00Z"),
        vip("theirs", "192.168.77.102/24", vrid=4, created="2025-02-01T00:00:00Z"),
    ]
    r = run(vips, allocated={"default/mine": 4})
    # The newer VirtualIP loses, whoever chose the VRID: a running VIP is not disturbed.
    assert [(f.virtualip, f.reason) for f in r.conflicts] == [("default/theirs", VRID_CONFLICT)]
    assert r.placements["default/mine"].vrid == 4


def test_a_recorded_allocation_that_now_collides_moves() -> None:
    # "mine" was allocated 4 on its own subnet; it moved onto the subnet of an older
    # VirtualIP that asked for 4 explicitly. An allocation may move, a user's choice may not.
    vips = [
        vip("theirs", "192.168.77.102/24", vrid=4, created="2025-01-01T00:00:00Z"),
        vip("mine", "192.168.77.101/24", created="2025-02-01T00:00:00Z"),
    ]
    r = run(vips, allocated={"default/mine": 4})
    assert r.conflicts == ()
    assert r.placements["default/theirs"].vrid == 4
    assert (r.placements["default/mine"].vrid, r.placements["default/mine"].allocated) == (1, True)


@pytest.mark.parametrize(
    ("a", "b", "collide"),
    [
        # same subnet, no interface: one segment
        ({"addresses": ["192.168.77.101/24"]}, {"addresses": ["192.168.77.102/24"]}, True),
        # different subnets but the same nodes and no interface: the daemon could not tell
        ({"addresses": ["10.1.0.1/24"]}, {"addresses": ["10.2.0.1/24"]}, True),
        # distinct interfaces named on both: different links
        (
            {"addresses": ["10.1.0.1/24"], "interface": "eth1"},
            {"addresses": ["10.2.0.1/24"], "interface": "eth2"},
            False,
        ),
        # the same interface named: one segment
        (
            {"addresses": ["10.1.0.1/24"], "interface": "eth1"},
            {"addresses": ["10.2.0.1/24"], "interface": "eth1"},
            True,
        ),
        # different families never collide (VRIDs are per address family)
        ({"addresses": ["192.168.77.101/24"]}, {"addresses": ["fd00:77::101/64"]}, False),
        # different subnets on disjoint nodes
        (
            {"addresses": ["10.1.0.1/24"], "nodeSelector": {"matchLabels": {"rack": "r1"}}},
            {"addresses": ["10.2.0.1/24"], "nodeSelector": {"matchLabels": {"rack": "r2"}}},
            False,
        ),
        # same subnet on disjoint nodes: adverts still meet on the wire
        (
            {"addresses": ["10.1.0.1/24"], "nodeSelector": {"matchLabels": {"rack": "r1"}}},
            {"addresses": ["10.1.0.2/24"], "nodeSelector": {"matchLabels": {"rack": "r2"}}},
            True,
        ),
    ],
)
def test_which_virtualips_must_differ(a: dict[str, Any], b: dict[str, Any], collide: bool) -> None:
    first = vip("a", created="2025-01-01T00:00:00Z", vrid=7, **{k: v for k, v in a.items()})
    second = vip("b", created="2025-01-02T00:00:00Z", vrid=7, **{k: v for k, v in b.items()})
    r = run([first, second], edge_nodes(dual=True))
    assert bool(r.conflicts) is collide
    # and allocation agrees: without explicit VRIDs they get 1 and 1, or 1 and 2
    for obj in (first, second):
        del obj["spec"]["vrid"]
    r = run([first, second], edge_nodes(dual=True))
    vrids = sorted(p.vrid or 0 for p in r.placements.values())
    assert vrids == ([1, 2] if collide else [1, 1])


def test_no_free_vrid() -> None:
    vips = [
        vip(
            f"v{i:03d}",
            f"10.0.{i // 200}.{i % 200 + 1}/16",
            created=f"2025-01-01T00:00:{i // 60:02d}.{i % 60:02d}Z",
        )
        for i in range(256)
    ]
    r = run(vips)
    assert [f.reason for f in r.conflicts] == [NO_FREE_VRID]
    assert r.conflicts[0].virtualip == "default/v255"
    assert sorted(p.vrid for p in r.placements.values() if p.vrid is not None) == list(
        range(1, 256)
    )


def test_rendered_vrids_are_unique_per_node_and_family() -> None:
    vips = [vip(f"v{i}", f"10.{i}.0.1/24") for i in range(20)]
    vips += [vip(f"w{i}", f"fd00:{i}::1/64") for i in range(20)]
    r = run(vips, edge_nodes())
    for config in r.nodes.values():
        instances = daemon_view(config)
        seen = [(i.family, i.vrid) for i in instances]
        assert len(seen) == len(set(seen)) == 40


# --- one address, one VirtualIP ------------------------------------------------------------


def test_an_address_belongs_to_the_oldest_virtualip_that_names_it() -> None:
    holder = vip("web", namespace="tenant-a", created="2025-01-01T00:00:00Z")
    claimant = vip("web", namespace="tenant-b", created="2025-02-01T00:00:00Z")
    other = vip("api", "192.168.77.101/24", created="2025-03-01T00:00:00Z")
    alone = run([holder, other])
    r = run([claimant, other, holder])
    assert [(f.virtualip, f.reason) for f in r.conflicts] == [("tenant-b/web", ADDRESS_CONFLICT)]
    assert r.conflicts[0].message == (
        "spec.addresses: 192.168.77.100 belongs to tenant-a/web (created 2025-01-01T00:00:00Z); "
        "an address belongs to one VirtualIP only, the oldest that names it: choose another "
        "address, or delete the other VirtualIP"
    )
    refused = r.placements["tenant-b/web"]
    assert (refused.vrid, refused.rendered, refused.nodes) == (None, False, ())
    # Everything else renders as if the claimant were not there: the daemons get the same
    # files, which their own loader accepts.
    assert {n: c.text for n, c in r.nodes.items()} == {n: c.text for n, c in alone.nodes.items()}
    for config in r.nodes.values():
        assert len(daemon_view(config)) == 2


def test_the_holder_never_changes_while_it_names_the_address() -> None:
    # Refused or placed nowhere, the holder keeps its address: a claimant never takes it
    # over for a while and hands it back later.
    holder = vip("old", "192.168.77.100/24", "192.168.77.101/24", created="2025-01-01T00:00:00Z",
                 nodeSelector={"matchLabels": {"role": "nowhere"}})  # fmt: skip
    late = vip("late", "192.168.77.101/32", created="2025-02-01T00:00:00Z")
    r = run([late, holder])
    assert [f.reason for f in r.findings("default/old")] == [NO_NODES]
    assert [f.reason for f in r.findings("default/late")] == [ADDRESS_CONFLICT]
    assert "192.168.77.101 belongs to default/old" in r.findings("default/late")[0].message
    assert r.nodes == {}


def test_a_refused_claimant_still_holds_its_other_addresses() -> None:
    # b is refused for .100 (a's) but is older than c for .101: when a goes, b runs with
    # .101, so c was never the holder of .101.
    a = vip("a", "192.168.77.100/24", created="2025-01-01T00:00:00Z")
    b = vip("b", "192.168.77.100/24", "192.168.77.101/24", created="2025-02-01T00:00:00Z")
    c = vip("c", "192.168.77.101/24", created="2025-03-01T00:00:00Z")
    assert sorted(f.virtualip for f in run([a, b, c]).conflicts) == ["default/b", "default/c"]
    without_a = run([b, c])
    assert [f.virtualip for f in without_a.conflicts] == ["default/c"]
    assert without_a.placements["default/b"].rendered


def test_a_refused_virtualip_takes_no_vrid() -> None:
    holder = vip("a", created="2025-01-01T00:00:00Z")
    claimant = vip("b", created="2025-02-01T00:00:00Z", status={"vrid": 2})
    later = vip("c", "192.168.77.101/24", created="2025-03-01T00:00:00Z")
    objs = [holder, claimant, later]
    r = run(objs, allocated=allocated_vrids(objs))
    assert {k: p.vrid for k, p in r.placements.items()} == {
        "default/a": 1, "default/b": None, "default/c": 2,
    }  # fmt: skip


SAME_SECOND = [("ns/b", "t1", ["10.0.0.1"]), ("ns/a", "t1", ["10.0.0.1"])]
NOT_YET_STAMPED = [("ns/a", "", ["10.0.0.1"]), ("ns/b", "t1", ["10.0.0.1"])]
SPELLINGS = [("x/a", "t1", ["fd00::1"]), ("y/a", "t2", ["fd00:0::1"])]


@pytest.mark.parametrize(
    ("claims", "refused"),
    [
        pytest.param(SAME_SECOND, {"ns/b"}, id="same second: namespace/name decides"),
        pytest.param(NOT_YET_STAMPED, {"ns/b"}, id="no timestamp yet sorts first"),
        pytest.param(SPELLINGS, set(), id="compared as given: render passes canonical text"),
        pytest.param([("x/a", "t1", ["10.0.0.1", "10.0.0.1"])], set(), id="a repeat is its own"),
    ],
)
def test_address_conflicts(claims: list[Any], refused: set[str]) -> None:
    assert set(address_conflicts(claims)) == refused


def test_ipv6_addresses_conflict_whatever_their_spelling_and_prefix() -> None:
    a = vip("a", "fd00:77::100/64", created="2025-01-01T00:00:00Z")
    b = vip("b", "fd00:77:0:0::100/128", created="2025-02-01T00:00:00Z")
    r = run([a, b], edge_nodes(dual=True))
    assert [(f.virtualip, f.reason) for f in r.conflicts] == [("default/b", ADDRESS_CONFLICT)]
    assert "fd00:77::100 belongs to default/a" in r.conflicts[0].message


# --- secrets -------------------------------------------------------------------------------

PASSWORD = "s3cr3t!"


def auth_vip(**kw: Any) -> dict[str, Any]:
    return vip(
        "legacy",
        "192.168.77.120/24",
        version=2,
        authentication={"secretRef": {"name": "vrrp-auth", "key": "password"}},
        **kw,
    )


def test_secret_refs_lists_what_to_read() -> None:
    assert secret_refs([auth_vip(), vip("web")]) == {("default", "vrrp-auth")}


def test_password_goes_to_the_node_secret_never_to_the_configmap() -> None:
    r = run([auth_vip()], secrets={("default", "vrrp-auth"): {"password": PASSWORD.encode()}})
    key = secret_key("default", "vrrp-auth", "password")
    assert key == "default_vrrp-auth_password"
    for name, config in r.nodes.items():
        assert config.secret_data == {key: PASSWORD}
        assert doc(r, name, "default/legacy")["spec"]["authentication"] == {
            "secretRef": {"name": f"vrrpd-{name}", "key": key}
        }
        cm, secret, pod = manifests(config, DaemonSettings())
        assert PASSWORD not in str(cm) and PASSWORD not in str(pod)
        assert PASSWORD not in cm["data"][CONFIG_KEY]
        assert secret["data"] == {key: "czNjcjN0IQ=="}
        assert daemon_view(config)[0].auth_password == PASSWORD.encode()


def test_inline_password_is_moved_to_the_secret_too() -> None:
    r = run([vip("legacy", version=2, authentication={"password": PASSWORD})])
    config = r.nodes["node-1"]
    assert PASSWORD not in config.text
    assert config.secret_data == {"default__legacy": PASSWORD}
    assert daemon_view(config)[0].auth_password == PASSWORD.encode()


@pytest.mark.parametrize(
    "secrets",
    [
        {},
        {("default", "vrrp-auth"): {"other": b"x"}},
        {("default", "vrrp-auth"): {"password": b"much-too-long"}},
        {("default", "vrrp-auth"): {"password": b"\xff\xfe"}},
        {("other-ns", "vrrp-auth"): {"password": b"pw"}},  # only the VirtualIP's namespace
    ],
)
def test_missing_or_unusable_secret_is_reported(secrets: dict[Any, Any]) -> None:
    r = run([auth_vip(), vip("web")], secrets=secrets)
    assert [(f.virtualip, f.reason) for f in r.unschedulable] == [
        ("default/legacy", SECRET_MISSING)
    ]
    assert all(c.secret_data == {} for c in r.nodes.values())
    assert not r.placements["default/legacy"].rendered


def test_secret_keys_cannot_collide() -> None:
    # Dots are legal in Secret names and keys: "a.b"/"c" and "a"/"b.c" stay distinct.
    assert secret_key("ns", "a.b", "c") != secret_key("ns", "a", "b.c")
    long = secret_key("ns", "s" * 200, "k" * 200)
    assert len(long) <= 253 and long.startswith("ns_")


# --- the documents -------------------------------------------------------------------------


def test_operator_fields_are_resolved_away_and_the_rest_passes_through() -> None:
    spec = {
        "nodeSelector": EDGE,
        "serviceRef": {"name": "ingress"},
        "preempt": {"mode": "Delay", "delay": "30s"},
        "advertInterval": "100ms",
        "readiness": "Master",
        "probes": [{"name": "haproxy", "tcp": {"port": 443}, "weight": -20}],
        "syncGroup": "edge",
    }
    r = run([vip("web", **spec)])
    d = doc(r, "node-1", "default/web")["spec"]
    assert "nodeSelector" not in d and "serviceRef" not in d
    assert d["preempt"] == {"mode": "Delay", "delay": "30s"}
    assert d["probes"] == spec["probes"] and d["readiness"] == "Master"
    inst = daemon_view(r.nodes["node-1"])[0]
    assert inst.advert_interval_cs == 10 and inst.vrid == 1
    assert r.nodes["node-1"].advert_intervals_cs == (10,)


def test_every_node_config_is_a_valid_standalone_file() -> None:
    vips = [
        vip("web", "192.168.77.100/24", "fd00:77::100/64", unicast=True, nodeSelector=EDGE),
        vip("api", "192.168.77.101/24", priority=150, preempt={"mode": "Never"}),
        vip("db", "192.168.77.102/24", namespace="data", vrid=200, interface="eth0"),
        auth_vip(),
    ]
    r = run(vips, edge_nodes(dual=True), {("default", "vrrp-auth"): {"password": b"pw"}})
    assert r.invalid == r.conflicts == r.unschedulable == ()
    for name, config in r.nodes.items():
        instances = daemon_view(config)
        assert len(instances) == 5, name
        assert config.config_hash.startswith("sha256:")


def test_render_is_deterministic() -> None:
    vips = [vip(f"v{i}", f"10.0.{i}.1/24") for i in range(10)]
    a, b = run(vips), run(list(reversed(vips)))
    assert {n: c.text for n, c in a.nodes.items()} == {n: c.text for n, c in b.nodes.items()}
