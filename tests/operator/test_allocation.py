"""Allocation, the pure core of the pool path: Services x pools -> addresses -> instances
-> render. No API, no clock: tables of small objects."""

from __future__ import annotations

from collections import Counter
from ipaddress import ip_address
from typing import Any

import pytest
from vrrp_operator.allocation import (
    ADDRESS_NOT_IN_POOL,
    ADDRESS_TAKEN,
    ALLOCATED,
    FAMILY_MISMATCH,
    INVALID_REQUEST,
    NO_MATCHING_POOL,
    POOL_EXHAUSTED,
    POOL_NOT_ALLOWED,
    allocate,
    service_from_object,
)
from vrrp_operator.loadbalancing import ADDRESS_IN_USE, plan, service_conditions, slice_nodes
from vrrp_operator.pools import PoolSet, parse_pool
from vrrp_operator.render import render
from vrrp_operator.status import InstanceReport, NodeReport

from tests.operator.builders import edge_nodes, vip
from vrrpd.limits import MAX_ADDRESSES, VRID_MAX

NS = "kube-vrrp"
CLASS = "kubevrrp.io/vrrp"


def pool_obj(
    name: str, *addresses: str, created: str = "2026-01-01T00:00:00Z", **spec: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "kubevrrp.io/v1alpha1",
        "kind": "VirtualIPPool",
        "metadata": {"name": name, "creationTimestamp": created},
        "spec": {"addresses": list(addresses), **spec},
    }


def svc(
    name: str,
    namespace: str = "default",
    *,
    n: int = 0,
    port: int = 80,
    protocol: str = "TCP",
    families: tuple[str, ...] = ("IPv4",),
    policy: str | None = None,
    local: bool = False,
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    ingress: tuple[str, ...] = (),
    lb_class: str | None = CLASS,
    selector: dict[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "LoadBalancer",
        "ports": [{"port": port, "protocol": protocol}],
        "ipFamilies": list(families),
        "selector": selector or {"app": name},
        **spec,
    }
    if lb_class is not None:
        body["loadBalancerClass"] = lb_class
    if policy:
        body["ipFamilyPolicy"] = policy
    if local:
        body["externalTrafficPolicy"] = "Local"
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{namespace}-{name}",
            "creationTimestamp": f"2026-01-02T{n // 3600:02d}:{n // 60 % 60:02d}:{n % 60:02d}Z",
            "annotations": annotations or {},
            "labels": labels or {},
        },
        "spec": body,
    }
    if ingress:
        obj["status"] = {"loadBalancer": {"ingress": [{"ip": ip} for ip in ingress]}}
    return obj


def assigned(lb: Any, key: str) -> tuple[str, tuple[str, ...], str]:
    a = lb.allocation.assignments[key]
    return a.reason, tuple(str(x) for x in a.addresses), a.message


def run(pools: list[dict[str, Any]], services: list[dict[str, Any]], **kw: Any) -> Any:
    return plan(
        kw.pop("virtualips", []),
        pools,
        services,
        kw.pop("namespaces", {}),
        kw.pop("endpoints", {}),
        namespace=NS,
        **kw,
    )


PUBLIC = pool_obj("public", "192.168.77.100-192.168.77.103", "fd00:77::100-fd00:77::101")


# --- one Service at a time -------------------------------------------------------------------


def test_lowest_free_address_first_and_status_kept() -> None:
    lb = run([PUBLIC], [svc("a", n=1), svc("b", n=2, ingress=("192.168.77.100",))])
    # b already shows .100 (its status, e.g. before an operator restart): it keeps it, and
    # a, although older, gets the next free one.
    assert assigned(lb, "default/b")[:2] == (ALLOCATED, ("192.168.77.100",))
    assert assigned(lb, "default/a")[:2] == (ALLOCATED, ("192.168.77.101",))
    assert assigned(lb, "default/a")[2] == "192.168.77.101 from pool public"


@pytest.mark.parametrize(
    ("service", "reason", "addresses", "fragment"),
    [
        (
            svc("x", annotations={"kubevrrp.io/loadBalancerIPs": "192.168.77.102"}),
            ALLOCATED,
            ("192.168.77.102",),
            "from pool public",
        ),
        (
            svc("x", loadBalancerIP="192.168.77.103"),
            ALLOCATED,
            ("192.168.77.103",),
            "from pool public",
        ),
        (
            svc("x", annotations={"kubevrrp.io/loadBalancerIPs": "10.1.1.1"}),
            ADDRESS_NOT_IN_POOL,
            (),
            "10.1.1.1 is in no VirtualIPPool (pools: public)",
        ),
        (
            svc("x", annotations={"kubevrrp.io/loadBalancerIPs": "fd00:77::100"}),
            FAMILY_MISMATCH,
            (),
            "fd00:77::100 is IPv6, but the Service's ipFamilies are IPv4",
        ),
        (
            svc("x", annotations={"kubevrrp.io/loadBalancerIPs": "not-an-ip"}),
            INVALID_REQUEST,
            (),
            "'not-an-ip' is not an IP address",
        ),
        (
            svc(
                "x",
                annotations={"kubevrrp.io/loadBalancerIPs": "192.168.77.100"},
                loadBalancerIP="192.168.77.101",
            ),
            INVALID_REQUEST,
            (),
            "remove spec.loadBalancerIP",
        ),
        (
            svc("x", annotations={"kubevrrp.io/address-pool": "private"}),
            NO_MATCHING_POOL,
            (),
            "names pool 'private', which does not exist",
        ),
        (svc("x", families=("IPv6",)), ALLOCATED, ("fd00:77::100",), "from pool public"),
        (
            svc("x", families=("IPv4", "IPv6"), policy="RequireDualStack"),
            ALLOCATED,
            ("192.168.77.100", "fd00:77::100"),
            "192.168.77.100 and fd00:77::100",
        ),
        (
            svc("x", families=("IPv6", "IPv4"), policy="PreferDualStack"),
            ALLOCATED,
            ("fd00:77::100", "192.168.77.100"),
            "from pool public",
        ),
    ],
    ids=[
        "annotation",
        "loadBalancerIP",
        "outside-every-pool",
        "family",
        "unparsable",
        "both-ways",
        "unknown-pool",
        "ipv6",
        "dual",
        "dual-v6-first",
    ],
)
def test_one_service(
    service: dict[str, Any], reason: str, addresses: tuple[str, ...], fragment: str
) -> None:
    got = assigned(run([PUBLIC], [service]), "default/x")
    assert got[:2] == (reason, addresses)
    assert fragment in got[2]


def test_pool_exhausted_names_the_pool_and_what_to_do() -> None:
    services = [svc(f"s{i}", n=i) for i in range(5)]
    lb = run([PUBLIC], services)
    assert [assigned(lb, f"default/s{i}")[0] for i in range(5)] == [ALLOCATED] * 4 + [
        POOL_EXHAUSTED
    ]
    assert assigned(lb, "default/s4")[2].startswith(
        "no free IPv4 address in pool public; add addresses"
    )


def test_prefer_dual_stack_takes_what_there_is_require_takes_nothing() -> None:
    v6_full = [svc(f"v6-{i}", n=i, families=("IPv6",)) for i in range(2)]
    prefer = svc("p", n=10, families=("IPv4", "IPv6"), policy="PreferDualStack")
    require = svc("r", n=11, families=("IPv4", "IPv6"), policy="RequireDualStack")
    lb = run([PUBLIC], [*v6_full, prefer, require])
    reason, addresses, message = assigned(lb, "default/p")
    assert (reason, addresses) == (ALLOCATED, ("192.168.77.100",))
    assert message.endswith("; IPv6: no address free (ipFamilyPolicy PreferDualStack: IPv4 only)")
    assert assigned(lb, "default/r")[:2] == (POOL_EXHAUSTED, ())  # and .101 is not held back
    assert lb.allocation.used("public", 4) == 1


def test_address_taken_by_an_older_service() -> None:
    want = {"kubevrrp.io/loadBalancerIPs": "192.168.77.102"}
    lb = run([PUBLIC], [svc("old", n=1, annotations=want), svc("new", n=2, annotations=want)])
    assert assigned(lb, "default/old")[:2] == (ALLOCATED, ("192.168.77.102",))
    reason, _, message = assigned(lb, "default/new")
    assert reason == ADDRESS_TAKEN
    assert message.startswith("192.168.77.102 is used by Service default/old; to share it")


def test_a_requested_address_a_service_holds_beats_older_requests_and_virtualips() -> None:
    want = {"kubevrrp.io/loadBalancerIPs": "192.168.77.102"}
    lb = run(
        [PUBLIC],
        [
            svc("old", n=1, annotations=want),
            svc("holder", n=2, annotations=want, ingress=("192.168.77.102",)),
        ],
        virtualips=[vip("late", "192.168.77.102/24")],
    )
    assert assigned(lb, "default/holder")[:2] == (ALLOCATED, ("192.168.77.102",))
    assert assigned(lb, "default/old")[0] == ADDRESS_TAKEN
    assert set(lb.allocation.blocked) == {"default/late"}


def test_a_service_keeps_its_address_against_a_newer_request() -> None:
    # b holds .102 (status); a request by an older Service does not take it away.
    lb = run(
        [PUBLIC],
        [
            svc("a", n=1, annotations={"kubevrrp.io/loadBalancerIPs": "192.168.77.102"}),
            svc("b", n=2, ingress=("192.168.77.102",)),
        ],
    )
    assert assigned(lb, "default/b")[:2] == (ALLOCATED, ("192.168.77.102",))
    assert assigned(lb, "default/a")[0] == ADDRESS_TAKEN


def test_sharing_with_disjoint_ports_and_refusals() -> None:
    key = {"kubevrrp.io/allow-shared-ip": "dns"}
    lb = run(
        [PUBLIC],
        [
            svc("udp", n=1, port=53, protocol="UDP", annotations=key, selector={"app": "dns"}),
            svc("tcp", n=2, port=53, protocol="TCP", annotations=key, selector={"app": "dns"}),
            svc("other", n=5, port=8053, annotations=key, ingress=("192.168.77.103",)),
            svc(
                "clash",
                n=3,
                port=53,
                protocol="TCP",
                annotations={**key, "kubevrrp.io/loadBalancerIPs": "192.168.77.100"},
            ),
            svc("nokey", n=4, annotations={"kubevrrp.io/loadBalancerIPs": "192.168.77.100"}),
        ],
    )
    # Requests come before automatic assignment: clash took .100 first (no port of the
    # UDP Service), so udp shares it and tcp (53/TCP like clash) shares other's .103.
    assert assigned(lb, "default/udp")[1] == ("192.168.77.100",)
    assert "shared with default/clash" in assigned(lb, "default/udp")[2]
    assert assigned(lb, "default/tcp")[1] == ("192.168.77.103",)
    assert lb.allocation.used("public") == 2
    steady = run(
        [PUBLIC],
        [
            svc("udp", n=1, port=53, protocol="UDP", annotations=key, ingress=("192.168.77.100",)),
            svc("tcp", n=2, port=53, protocol="TCP", annotations=key, ingress=("192.168.77.100",)),
            svc(
                "clash",
                n=3,
                port=53,
                protocol="TCP",
                annotations={**key, "kubevrrp.io/loadBalancerIPs": "192.168.77.100"},
            ),
            svc("nokey", n=4, annotations={"kubevrrp.io/loadBalancerIPs": "192.168.77.100"}),
        ],
    )
    assert (
        assigned(steady, "default/udp")[1]
        == assigned(steady, "default/tcp")[1]
        == ("192.168.77.100",)
    )
    assert "shared with default/tcp" in assigned(steady, "default/udp")[2]
    lb = steady
    clash = assigned(lb, "default/clash")
    assert clash[0] == ADDRESS_TAKEN and "port 53/TCP is theirs too" in clash[2]
    assert (
        "give both Services the annotation kubevrrp.io/allow-shared-ip"
        in assigned(lb, "default/nokey")[2]
    )


def test_local_services_share_only_with_the_same_pods() -> None:
    key = {"kubevrrp.io/allow-shared-ip": "k"}
    lb = run(
        [PUBLIC],
        [
            svc(
                "a",
                n=1,
                port=80,
                local=True,
                annotations=key,
                selector={"app": "web"},
                ingress=("192.168.77.100",),
            ),
            svc(
                "b",
                n=2,
                port=81,
                local=True,
                annotations={**key, "kubevrrp.io/loadBalancerIPs": "192.168.77.100"},
                selector={"app": "other"},
            ),
        ],
    )
    assert assigned(lb, "default/b")[0] == ADDRESS_TAKEN
    assert "select other pods" in assigned(lb, "default/b")[2]


def test_selectors_and_auto_assign_decide_who_draws_from_a_pool() -> None:
    pools = [
        pool_obj(
            "payments",
            "10.0.0.1",
            autoAssign=False,
            serviceAllocation={"namespaceSelector": {"matchLabels": {"team": "payments"}}},
        ),
        pool_obj(
            "web-only",
            "10.0.1.1",
            serviceAllocation={"serviceSelector": {"matchLabels": {"tier": "web"}}},
        ),
    ]
    namespaces = {"pay": {"team": "payments"}, "default": {}}
    lb = run(
        pools,
        [
            svc("auto", "pay", n=1),  # payments does not auto-assign; web-only wants tier=web
            svc("named", "pay", n=2, annotations={"kubevrrp.io/address-pool": "payments"}),
            svc("stranger", "default", n=3, annotations={"kubevrrp.io/address-pool": "payments"}),
            svc("web", "default", n=4, labels={"tier": "web"}),
        ],
        namespaces=namespaces,
    )
    assert assigned(lb, "pay/auto")[0] == NO_MATCHING_POOL
    assert assigned(lb, "pay/named")[:2] == (ALLOCATED, ("10.0.0.1",))
    assert assigned(lb, "default/stranger")[0] == POOL_NOT_ALLOWED
    assert assigned(lb, "default/web")[:2] == (ALLOCATED, ("10.0.1.1",))


def test_overlapping_pools_the_older_one_owns_the_overlap() -> None:
    older = pool_obj("older", "192.168.77.100-192.168.77.101", created="2026-01-01T00:00:00Z")
    newer = pool_obj(
        "newer", "192.168.77.101-192.168.77.102", created="2026-02-01T00:00:00Z", autoAssign=True
    )
    lb = run([newer, older], [svc("x", n=1, annotations={"kubevrrp.io/address-pool": "newer"})])
    assert assigned(lb, "default/x")[:2] == (ALLOCATED, ("192.168.77.102",))  # .101 is older's
    assert lb.pools.overlaps == {"newer": ("older",)}


# --- hand-written VirtualIPs -----------------------------------------------------------------


def test_a_virtualips_address_is_never_handed_out_and_a_holder_blocks_a_late_virtualip() -> None:
    early = vip("early", "192.168.77.100/24")
    late = vip("late", "192.168.77.103/24")
    lb = run(
        [PUBLIC],
        [
            svc("a", n=1),
            svc("b", n=2, annotations={"kubevrrp.io/loadBalancerIPs": "192.168.77.100"}),
            svc("c", n=3, ingress=("192.168.77.103",)),  # held before VirtualIP late existed
        ],
        virtualips=[early, late],
    )
    assert assigned(lb, "default/a")[1] == ("192.168.77.101",)  # .100 is early's
    reason, _, message = assigned(lb, "default/b")
    assert reason == ADDRESS_TAKEN and "address of VirtualIP default/early" in message
    assert assigned(lb, "default/c")[1] == ("192.168.77.103",)
    assert dict(lb.allocation.blocked) == {
        "default/late": "192.168.77.103 is held by Service default/c from pool public; "
        "remove it from this VirtualIP, or release it from the Service first"
    }
    assert [f.reason for f in lb.blocked_findings()] == [ADDRESS_IN_USE]
    assert lb.allocation.reserved == {"public": (("192.168.77.100", "default/early"),)}


# --- which Services are the pools' -----------------------------------------------------------


def test_which_services_the_pools_serve() -> None:
    services = [
        svc("ours", n=1),
        svc("classless", n=2, lb_class=None),
        svc(
            "metallb",
            n=3,
            lb_class="metallb.io/metallb",
            annotations={"kubevrrp.io/address-pool": "public"},
        ),
        svc(
            "asks",
            n=4,
            lb_class=None,
            annotations={"kubevrrp.io/loadBalancerIPs": "192.168.77.100"},
        ),
        svc("byref", n=5),
        svc("byannotation", n=6, annotations={"kubevrrp.io/virtualip": "web"}),
    ]
    ref = vip("web", "10.9.9.9/24", serviceRef={"name": "byref"})
    lb = run([PUBLIC], services, virtualips=[ref])
    assert lb.service_keys == {"default/ours"}
    assert set(lb.mismatched) == {"default/metallb", "default/asks"}
    ingress, conditions = service_conditions("default/metallb", lb, None, {})
    assert ingress is None and conditions[0].reason == "ClassMismatch"
    assert "spec.loadBalancerClass metallb.io/metallb" in conditions[0].message
    assert "loadBalancer.defaultClass: true" in lb.mismatched["default/asks"]
    everything = run([PUBLIC], services, virtualips=[ref], default_class=True)
    assert everything.service_keys == {"default/ours", "default/classless", "default/asks"}


# --- instances -------------------------------------------------------------------------------


def test_600_services_share_five_instances() -> None:
    big = pool_obj("big", "10.20.0.0/22", "fd00:20::/120")
    services = [svc(f"s{i}", n=i) for i in range(500)]
    services += [
        svc(f"d{i}", n=1000 + i, families=("IPv4", "IPv6"), policy="RequireDualStack")
        for i in range(100)
    ]
    lb = run([big], services)
    assert all(a.ok for a in lb.allocation.assignments.values())
    assert len({a.addresses[0] for a in lb.allocation.assignments.values()}) == 600
    by_family = Counter(i.family for i in lb.instances)
    # 600 IPv4 addresses: windows of 255 -> 3 instances; 100 IPv6: windows of 90 -> 2.
    assert by_family == {4: 3, 6: 2}
    assert all(len(i.addresses) <= MAX_ADDRESSES[i.family] for i in lb.instances)
    rendered = render(lb.documents, edge_nodes(), {}, lb.recorded_vrids, only=lb.only)
    assert not rendered.conflicts and not rendered.invalid and not rendered.unschedulable
    for family in (4, 6):  # /32s may share a segment: distinct within a family
        keys = {i.key for i in lb.instances if i.family == family}
        assert len({rendered.placements[k].vrid for k in keys}) == by_family[family]
    config = rendered.nodes["node-1"]
    assert sum(len(d["spec"]["addresses"]) for d in config.documents) == 700


def test_a_service_that_comes_or_goes_moves_no_other_address() -> None:
    big = pool_obj("big", "10.20.0.0/22")
    before = run([big], [svc(f"s{i}", n=i) for i in range(300)])
    kept = {
        k: (a.addresses, before.instance_of(a.addresses[0]).key)  # type: ignore[union-attr]
        for k, a in before.allocation.assignments.items()
    }
    after_services = [
        svc(f"s{i}", n=i, ingress=tuple(str(x) for x in kept[f"default/s{i}"][0]))
        for i in range(300)
        if i != 7
    ]
    after_services.append(svc("new", n=999))
    after = run([big], after_services)
    for key, assignment in after.allocation.assignments.items():
        if key == "default/new":
            continue
        assert (assignment.addresses, after.instance_of(assignment.addresses[0]).key) == kept[key]  # type: ignore[union-attr]
    assert assigned(after, "default/new")[1] == ("10.20.0.7",)  # the freed one, lowest first


def test_local_services_get_instances_on_their_endpoints_nodes() -> None:
    endpoints = {
        "default/web": frozenset({"node-1", "node-2"}),
        "default/web2": frozenset({"node-1", "node-2"}),
        "default/api": frozenset({"node-3"}),
    }
    services = [
        svc("web", n=1, local=True, selector={"app": "web"}),
        svc("web2", n=2, local=True, selector={"app": "web"}, port=443),
        svc("api", n=3, local=True),
        svc("gone", n=4, local=True),  # no ready endpoint anywhere
        svc("cluster", n=5),
    ]
    lb = run([pool_obj("public", "192.168.77.96/28")], services, endpoints=endpoints)
    groups = {i.group: (i.nodes, len(i.addresses)) for i in lb.instances}
    assert groups == {
        "cluster": (None, 1),
        "local:default/app=web": (frozenset({"node-1", "node-2"}), 2),  # one workload: one instance
        "local:default/app=api": (frozenset({"node-3"}), 1),
        "local:default/app=gone": (frozenset(), 1),
    }
    rendered = render(lb.documents, edge_nodes(), {}, lb.recorded_vrids, only=lb.only)
    web = lb.instance_of(ip_address(assigned(lb, "default/web")[1][0]))
    assert web is not None and rendered.placements[web.key].nodes == ("node-1", "node-2")
    reports = {
        "node-2": NodeReport(
            "node-2", {f"{web.key}/ipv4": InstanceReport(f"{web.key}/ipv4", "MASTER")}
        ),
    }
    _, (allocated, announced) = service_conditions("default/web", lb, rendered, reports)
    assert allocated.ok and announced.ok and announced.reason == "Held"
    assert announced.message.endswith(f"on node-2 (VRID {rendered.placements[web.key].vrid})")
    _, (_, nowhere) = service_conditions("default/gone", lb, rendered, reports)
    assert (nowhere.ok, nowhere.reason) == (False, "NoReadyEndpoints")
    _, (_, waiting) = service_conditions("default/cluster", lb, rendered, reports)
    assert (waiting.ok, waiting.reason) == (False, "NoMaster")


def test_vrids_run_out_per_segment_and_the_service_says_so() -> None:
    # Every Local workload on its own node set needs its own instance: 256 of them on one
    # segment cannot all have a VRID; the last one says so on its Service.
    pool = pool_obj("wide", "10.30.0.0/22")
    services = [svc(f"w{i}", n=i, local=True) for i in range(VRID_MAX + 1)]
    endpoints = {f"default/w{i}": frozenset({"node-1"}) for i in range(VRID_MAX + 1)}
    lb = run([pool], services, endpoints=endpoints)
    rendered = render(lb.documents, edge_nodes(), {}, lb.recorded_vrids, only=lb.only)
    assert len(rendered.conflicts) == 1 and rendered.conflicts[0].reason == "NoFreeVRID"
    starved = next(i for i in lb.instances if i.key == rendered.conflicts[0].virtualip)
    _, (_, announced) = service_conditions(starved.services[0], lb, rendered, {})
    assert announced.reason == "NoFreeVRID" and "all VRIDs 1..255 are taken" in announced.message


def test_recorded_vrids_are_kept() -> None:
    first = run([PUBLIC], [svc("a", n=1)])
    (inst,) = first.instances
    recorded = {**PUBLIC, "status": {"instances": [{"name": inst.name, "vrid": 42}]}}
    again = run([recorded], [svc("a", n=1)])
    assert again.recorded_vrids == {inst.key: 42}
    rendered = render(again.documents, edge_nodes(), {}, again.recorded_vrids, only=again.only)
    assert rendered.placements[inst.key].vrid == 42


def test_pool_instances_and_hand_written_virtualips_get_distinct_vrids() -> None:
    lb = run([PUBLIC], [svc("a", n=1)])
    hand = vip("hand", "192.168.77.50/24")
    rendered = render([hand, *lb.documents], edge_nodes(), {}, lb.recorded_vrids, only=lb.only)
    assert len({p.vrid for p in rendered.placements.values()}) == 2


def test_pool_documents_are_what_the_daemon_accepts() -> None:
    from vrrpd.resolve import instances_for_node
    from vrrpd.spec.load import load_manifests

    lb = run(
        [pool_obj("p", "192.168.77.100/31", vrrp={"advertInterval": "100ms", "priority": 90})],
        [svc("a", n=1), svc("b", n=2)],
    )
    rendered = render(lb.documents, edge_nodes(), {}, lb.recorded_vrids, only=lb.only)
    configs = instances_for_node(load_manifests(rendered.nodes["node-1"].text), "node-1")
    (instance,) = configs
    assert [str(a) for a in instance.addresses] == ["192.168.77.100/32", "192.168.77.101/32"]
    assert (instance.verify_addresses, instance.advert_interval_cs, instance.priority) == (
        False,
        10,
        90,
    )


# --- parsing ---------------------------------------------------------------------------------


def test_service_from_object_reads_what_allocation_needs() -> None:
    s = service_from_object(
        svc(
            "x",
            families=("IPv6", "IPv4"),
            policy="PreferDualStack",
            local=True,
            ingress=("fd00::1", "bogus"),
            annotations={"kubevrrp.io/allow-shared-ip": "k"},
        )
    )
    assert (s.families, s.require_all, s.local, s.sharing_key) == ((6, 4), False, True, "k")
    assert s.current == (ip_address("fd00::1"),)
    assert s.ports == frozenset({("TCP", 80)})


def test_endpoint_slices_give_the_nodes_with_a_ready_endpoint() -> None:
    slice_ = {
        "metadata": {"namespace": "default", "labels": {"kubernetes.io/service-name": "web"}},
        "endpoints": [
            {"nodeName": "node-1", "conditions": {"ready": True}},
            {"nodeName": "node-2", "conditions": {"ready": False}},
            {"nodeName": "node-3"},  # unset means ready
            {"conditions": {"ready": True}},  # no node: nowhere to hold it
        ],
    }
    assert slice_nodes(slice_) == ("default/web", frozenset({"node-1", "node-3"}))
    assert slice_nodes({"metadata": {"name": "x"}}) is None


def test_pool_set_owner_is_the_oldest_pool() -> None:
    a = parse_pool(pool_obj("a", "10.0.0.0/30", created="2026-01-01T00:00:00Z"))
    b = parse_pool(pool_obj("b", "10.0.0.2-10.0.0.9", created="2026-01-02T00:00:00Z"))
    pools = PoolSet.of([b, a])
    assert [pools.owner(ip_address(f"10.0.0.{i}")).name for i in (0, 2, 3, 4)] == [
        "a",
        "a",
        "a",
        "b",
    ]  # type: ignore[union-attr]
    assert pools.owner(ip_address("10.0.0.10")) is None
    assert allocate([], pools, {}, {}).assignments == {}


# --- what render learnt for the pools --------------------------------------------------------


def test_host_addresses_may_share_a_segment_with_any_virtualip_of_their_family() -> None:
    nodes = edge_nodes(4)
    only = {"default/a": frozenset({"node-1"}), "default/b": frozenset({"node-2"})}
    vips = [
        vip("a", "10.1.0.5/32", nodeSelector={"matchLabels": {"rack": "r1"}}),
        vip("b", "10.2.0.5/32", nodeSelector={"matchLabels": {"rack": "r2"}}),
        vip("c", "10.3.0.5/24", nodeSelector={"matchLabels": {"rack": "r3"}}),
        vip("d", "fd00::5/128", nodeSelector={"matchLabels": {"rack": "r4"}}),
    ]
    rendered = render(vips, nodes, {}, only=only)
    vrids = {k: p.vrid for k, p in rendered.placements.items()}
    # Disjoint nodes, different subnets: only a host address makes them possibly one segment.
    assert len({vrids["default/a"], vrids["default/b"], vrids["default/c"]}) == 3
    assert vrids["default/d"] == 1  # another family: its own VRIDs
    assert rendered.placements["default/a"].nodes == ("node-1",)
    explicit = render(
        [
            vip("a", "10.1.0.5/32", vrid=7, nodeSelector={"matchLabels": {"rack": "r1"}}),
            vip("e", "10.9.0.5/24", vrid=7, nodeSelector={"matchLabels": {"rack": "r2"}}),
        ],
        nodes,
        {},
    )
    (conflict,) = explicit.conflicts
    assert conflict.virtualip == "default/e" and "possibly the same segment" in conflict.message


def test_an_instance_keeps_its_vrid_when_another_appears_before_its_record() -> None:
    pool = [pool_obj("p", "192.168.77.96/28")]
    first = run(pool, [svc("web", n=1)])
    rendered = render(first.documents, edge_nodes(), {}, first.recorded_vrids, only=first.only)
    known = {k: p.vrid for k, p in rendered.placements.items() if p.vrid is not None}
    (cluster,) = first.instances
    # A Local Service brings a second instance; the pool's status does not show the first
    # one's VRID yet. Without what the last rendering gave it, the two could swap VRIDs.
    services = [svc("web", n=1), svc("local", n=2, local=True)]
    endpoints = {"default/local": frozenset({"node-2"})}
    again = run(pool, services, endpoints=endpoints, known_vrids=known)
    placed = render(again.documents, edge_nodes(), {}, again.recorded_vrids, only=again.only)
    assert len(again.instances) == 2
    assert placed.placements[cluster.key].vrid == known[cluster.key]
    assert not placed.conflicts
