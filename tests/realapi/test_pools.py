"""Address pools on a real kube-apiserver: the VirtualIPPool CRD as the server validates it,
and the operator (kopf, in this process) giving LoadBalancer Services addresses, writing
their ingress, conditions and Events, the pools' status, and the per-node ConfigMaps the
daemons run; 500 Services at once."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import yaml
from vrrp_operator.kube import ApiError

from tests.envtest import ApiServer
from tests.realapi.cluster import Release, finish_pod_deletions
from tests.realapi.inprocess import (
    POOLS,
    ROOT,
    Sync,
    condition,
    eventually,
    ingress_ips,
    load_balancer,
    report_master,
    running_operator,
    service_path,
    system_namespace,
)

SYSTEM = "kv-pools-system"
ALLOCATED, ANNOUNCED = "kubevrrp.io/AddressAllocated", "kubevrrp.io/Announced"
LABEL = {"kubevrrp.io/pools-test": "yes"}


@pytest.fixture(scope="module")
def api(kube_api: ApiServer, release: Release) -> Sync:
    """The admin's client, with the chart's CRDs installed (by helm: the session's release;
    the chart's own operator is not running in this module, the one under test is)."""
    system_namespace(kube_api, SYSTEM)
    return Sync(kube_api)


def pool(name: str, *addresses: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kubevrrp.io/v1alpha1",
        "kind": "VirtualIPPool",
        "metadata": {"name": name},
        "spec": {"addresses": list(addresses), "nodeSelector": {"matchLabels": LABEL}, **spec},
    }


# --- the CRD -------------------------------------------------------------------------------


def test_the_server_accepts_the_examples_and_refuses_what_never_works(api: Sync) -> None:
    examples = yaml.safe_load_all((ROOT / "examples/loadbalancer/pools.yaml").read_text())
    for doc in examples:
        stored = api.create(POOLS, {**doc, "metadata": {"name": f"crd-{doc['metadata']['name']}"}})
        assert stored["spec"]["vrrp"]["priority"] == 100  # defaults filled in
        api.delete(f"{POOLS}/{stored['metadata']['name']}")
    refused = {
        "192.168.10.70/27": "its host bits must be zero",
        "192.168.10.1-fd00::1": "same address family",
        "127.0.0.1": "unicast addresses a host can hold",
        "hello": "must be a CIDR",
    }
    for text, fragment in refused.items():
        with pytest.raises(ApiError) as caught:
            api.create(POOLS, pool("crd-bad", text))
        assert caught.value.status == 422 and fragment in str(caught.value)
    with pytest.raises(ApiError) as caught:
        api.create(POOLS, pool("crd-bad", "192.168.10.5", vrrp={"advertInterval": "15ms"}))
    assert "spec.vrrp.advertInterval" in str(caught.value) and "10 ms steps" in str(caught.value)
    with pytest.raises(ApiError) as caught:
        api.create(POOLS, {**pool("crd-bad", "10.0.0.1"), "metadata": {"name": "Not Valid"}})
    assert caught.value.status == 422


# --- Services ------------------------------------------------------------------------------


def events(api: Sync, namespace: str, name: str) -> list[tuple[str, str, str]]:
    found = api.get(f"/api/v1/namespaces/{namespace}/events") or {"items": []}
    return [
        (e["type"], e["reason"], e["message"])
        for e in found["items"]
        if e["involvedObject"].get("name") == name and e["involvedObject"].get("kind") == "Service"
    ]


async def test_services_get_addresses_and_say_why_not(kube_api: ApiServer, api: Sync) -> None:
    ns = kube_api.namespace("kv-pools")
    for i in (1, 2):
        kube_api.ready_node(f"pool-{i}", f"10.88.0.{10 + i}", labels=LABEL)
    api.create(POOLS, pool("svc-v4", "10.88.1.0-10.88.1.3", "fd00:88::1-fd00:88::2"))
    api.create(POOLS, pool("svc-small", "10.88.2.1", autoAssign=False))

    def get(name: str) -> dict[str, Any] | None:
        return api.get(service_path(ns, name))  # type: ignore[no-any-return]

    async def settled(name: str, kind: str = ALLOCATED) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            """the condition is there"""
            return condition(get(name), kind)

        return await eventually(check, what=f"{name}: {kind}")  # type: ignore[no-any-return]

    async with running_operator(kube_api, SYSTEM):
        api.create(service_path(ns), load_balancer("auto", ns))
        api.create(
            service_path(ns),
            load_balancer("chosen", ns, annotations={"kubevrrp.io/loadBalancerIPs": "10.88.1.2"}),
        )
        api.create(
            service_path(ns),
            load_balancer("outside", ns, annotations={"kubevrrp.io/loadBalancerIPs": "10.99.0.1"}),
        )
        api.create(service_path(ns), load_balancer("legacy", ns, loadBalancerIP="10.88.2.1"))
        api.create(
            service_path(ns),
            load_balancer(
                "dual", ns, ipFamilyPolicy="RequireDualStack", ipFamilies=["IPv4", "IPv6"]
            ),
        )
        api.create(
            service_path(ns),
            load_balancer(
                "metallb",
                ns,
                loadBalancerClass="metallb.io/metallb",
                annotations={"kubevrrp.io/address-pool": "svc-v4"},
            ),
        )
        api.create(service_path(ns), load_balancer("classless", ns, loadBalancerClass=None))

        auto = await settled("auto")
        assert auto["status"] == "True" and auto["reason"] == "Allocated"
        assert ingress_ips(get("auto")) == ["10.88.1.0"]
        assert ingress_ips(get("chosen")) == ["10.88.1.2"]
        assert ingress_ips(get("legacy")) == ["10.88.2.1"]  # a pool without autoAssign
        dual = await settled("dual")
        assert dual["status"] == "True"
        assert ingress_ips(get("dual")) == ["10.88.1.1", "fd00:88::1"]

        outside = await settled("outside")
        assert (outside["status"], outside["reason"]) == ("False", "AddressNotInPool")
        assert "10.99.0.1 is in no VirtualIPPool" in outside["message"]
        assert ingress_ips(get("outside")) == []
        mismatch = await settled("metallb")
        assert mismatch["reason"] == "ClassMismatch"
        assert "spec.loadBalancerClass metallb.io/metallb" in mismatch["message"]
        assert ingress_ips(get("metallb")) == []
        await asyncio.sleep(2)
        assert condition(get("classless"), ALLOCATED) is None  # not ours: left alone

        # The Events say the same, in `kubectl describe service`.
        def warned() -> list[tuple[str, str, str]]:
            """the outside Service has its Warning Event"""
            return [e for e in events(api, ns, "outside") if e[1] == "AddressNotInPool"]

        ((kind, _, message),) = await eventually(warned)
        assert kind == "Warning" and "10.99.0.1" in message
        described = kube_api.kubectl("describe", "service", "auto", "-n", ns).stdout
        assert "Allocated" in described and "10.88.1.0 from pool svc-v4" in described

        # A request for a taken address; then the pool runs out.
        api.create(
            service_path(ns),
            load_balancer("thief", ns, annotations={"kubevrrp.io/loadBalancerIPs": "10.88.1.2"}),
        )
        taken = await settled("thief")
        assert taken["reason"] == "AddressTaken" and "Service kv-pools/chosen" in taken["message"]
        api.create(service_path(ns), load_balancer("fourth", ns))
        api.create(service_path(ns), load_balancer("fifth", ns))

        # Either may be allocated first (the older wins; both were made within a second).
        def one_each() -> tuple[dict[str, Any], dict[str, Any]] | None:
            """one of fourth and fifth got the last address, the other is told why not"""
            pair = condition(get("fourth"), ALLOCATED), condition(get("fifth"), ALLOCATED)
            reasons = sorted(c["reason"] for c in pair if c)
            return pair if reasons == ["Allocated", "PoolExhausted"] else None  # type: ignore[return-value]

        fourth, fifth = await eventually(one_each)
        starved = "fourth" if fourth["reason"] == "PoolExhausted" else "fifth"
        full = fourth if starved == "fourth" else fifth
        assert "no free IPv4 address in pool svc-v4" in full["message"]

        # The pool's status and printer columns.
        def counted() -> dict[str, Any] | None:
            """svc-v4 counts 4 IPv4 addresses used"""
            status = (api.get(f"{POOLS}/svc-v4") or {}).get("status") or {}
            return status if (status.get("ipv4") or {}).get("used") == 4 else None

        status = await eventually(counted)
        assert (status["size"], status["used"], status["free"]) == (6, 5, 1)
        assert status["ipv6"] == {"size": 2, "used": 1, "free": 1}
        families = sorted((i["family"], i["addresses"]) for i in status["instances"])
        assert families == [("IPv4", 4), ("IPv6", 1)]
        assert all(1 <= i["vrid"] <= 255 for i in status["instances"])
        table = kube_api.kubectl("get", "vipp", "svc-v4").stdout.split()
        assert table[:6] == ["NAME", "AUTO", "SIZE", "USED", "FREE", "READY"]
        assert table[7:12] == ["svc-v4", "true", "6", "5", "1"]

        # The addresses reach the daemons through the ConfigMaps render writes.
        def rendered() -> list[str]:
            """node pool-1's ConfigMap carries the pool's addresses"""
            cm = api.get(f"/api/v1/namespaces/{SYSTEM}/configmaps/vrrpd-pool-1") or {}
            docs = yaml.safe_load_all((cm.get("data") or {}).get("virtualips.yaml", ""))
            return sorted(a for d in docs if d for a in d["spec"]["addresses"])

        wanted = {"10.88.1.0/32", "10.88.1.1/32", "10.88.1.2/32", "10.88.1.3/32", "fd00:88::1/128"}
        await eventually(lambda: set(rendered()) == wanted | {"10.88.2.1/32"}, what="rendered")

        # A daemon reports MASTER: the Services say who holds their address.
        instance = next(i for i in status["instances"] if i["family"] == "IPv4")
        name = f"{SYSTEM}/{instance['name']}/ipv4"
        await asyncio.to_thread(report_master, kube_api, SYSTEM, "pool-2", {name: "MASTER"})
        held = await eventually(
            lambda: (c := condition(get("auto"), ANNOUNCED)) and c["status"] == "True" and c
        )
        assert held["message"] == f"10.88.1.0 on pool-2 (VRID {instance['vrid']})"
        assert ("Normal", "Held", held["message"]) in events(api, ns, "auto")

        # Delete one, change another's type: their addresses go back to the pool.
        api.delete(service_path(ns, "auto"))
        api.merge(
            service_path(ns, "chosen"),
            {
                "spec": {
                    "type": "ClusterIP",
                    "loadBalancerClass": None,
                    "externalTrafficPolicy": None,
                }
            },
        )

        def released() -> bool:
            """chosen has no address and none of our conditions; thief got 10.88.1.2"""
            chosen = get("chosen") or {}
            return (
                not ingress_ips(chosen)
                and condition(chosen, ALLOCATED) is None
                and ingress_ips(get("thief")) == ["10.88.1.2"]
            )

        await eventually(released)
        again = await eventually(lambda: ingress_ips(get(starved)))
        assert again == ["10.88.1.0"]  # the exhausted one got the freed lowest address

        # A hand-written VirtualIP on an address a Service holds is not rendered.
        vip = {
            "apiVersion": "kubevrrp.io/v1alpha1",
            "kind": "VirtualIP",
            "metadata": {"name": "squatter", "namespace": ns},
            "spec": {"addresses": ["10.88.1.2/24"], "nodeSelector": {"matchLabels": LABEL}},
        }
        api.create(f"/apis/kubevrrp.io/v1alpha1/namespaces/{ns}/virtualips", vip)

        def blocked() -> dict[str, Any] | None:
            """the VirtualIP's Ready condition says AddressInUse"""
            obj = api.get(f"/apis/kubevrrp.io/v1alpha1/namespaces/{ns}/virtualips/squatter")
            ready = condition(obj, "Ready")
            return ready if ready and ready["reason"] == "AddressInUse" else None

        ready = await eventually(blocked)
        assert "held by Service kv-pools/thief from pool svc-v4" in ready["message"]
        api.delete(f"/apis/kubevrrp.io/v1alpha1/namespaces/{ns}/virtualips/squatter")
        before = {n: ingress_ips(get(n)) for n in ("thief", "dual", "legacy")}

    # A new operator (a restart) keeps every address and every VRID.
    async with running_operator(kube_api, SYSTEM):
        await asyncio.sleep(3)
        assert {n: ingress_ips(get(n)) for n in before} == before
        vrids = {
            i["name"]: i["vrid"] for i in (api.get(f"{POOLS}/svc-v4") or {})["status"]["instances"]
        }
        assert vrids[instance["name"]] == instance["vrid"]
        for name in ("outside", "thief", "dual", "legacy", "metallb", "classless", "chosen"):
            api.delete(service_path(ns, name))
        for name in ("fourth", "fifth"):
            api.delete(service_path(ns, name))
        api.delete(f"{POOLS}/svc-v4")
        api.delete(f"{POOLS}/svc-small")
    for i in (1, 2):
        kube_api.kubectl("delete", "node", f"pool-{i}", "--wait=false")


async def test_local_services_are_held_only_where_an_endpoint_is_ready(
    kube_api: ApiServer, api: Sync
) -> None:
    ns = kube_api.namespace("kv-pools-local")
    for i in (1, 2, 3):
        kube_api.ready_node(f"local-{i}", f"10.89.0.{10 + i}", labels=LABEL)
    api.create(POOLS, pool("local", "10.89.1.0/29"))

    def slice_(nodes: dict[str, bool]) -> dict[str, Any]:
        return {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": "web-abc",
                "namespace": ns,
                "labels": {"kubernetes.io/service-name": "web"},
            },
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": [f"10.244.{i}.5"], "nodeName": node, "conditions": {"ready": ready}}
                for i, (node, ready) in enumerate(nodes.items())
            ],
            "ports": [{"name": "p", "port": 8080, "protocol": "TCP"}],
        }

    def documents(node: str) -> list[dict[str, Any]]:
        cm = api.get(f"/api/v1/namespaces/{SYSTEM}/configmaps/vrrpd-{node}") or {}
        return [
            d for d in yaml.safe_load_all((cm.get("data") or {}).get("virtualips.yaml", "")) if d
        ]

    def holders() -> set[str]:
        finish_pod_deletions(kube_api, SYSTEM)  # a node that leaves keeps its ConfigMap till then
        return {
            n
            for n in ("local-1", "local-2", "local-3")
            if any("10.89.1.0/32" in d["spec"]["addresses"] for d in documents(n))
        }

    async with running_operator(kube_api, SYSTEM):
        api.create(service_path(ns), load_balancer("web", ns, externalTrafficPolicy="Local"))
        nowhere = await eventually(
            lambda: (
                (c := condition(api.get(service_path(ns, "web")), ANNOUNCED))
                and c["reason"] == "NoReadyEndpoints"
                and c
            )
        )
        assert "externalTrafficPolicy Local" in nowhere["message"]
        assert ingress_ips(api.get(service_path(ns, "web"))) == ["10.89.1.0"]

        api.create(
            f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices",
            slice_({"local-1": True, "local-2": False}),
        )
        await eventually(lambda: holders() == {"local-1"}, what="held on local-1 only")
        # The pod on local-2 becomes ready, the one on local-1 moves to local-3.
        api.merge(
            f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices/web-abc",
            {"endpoints": slice_({"local-2": True, "local-3": True})["endpoints"]},
        )
        await eventually(lambda: holders() == {"local-2", "local-3"}, what="moved with the pods")
        api.delete(service_path(ns, "web"))
        await eventually(lambda: holders() == set(), what="released")
        api.delete(f"{POOLS}/local")
    for i in (1, 2, 3):
        kube_api.kubectl("delete", "node", f"local-{i}", "--wait=false")


async def test_500_services_at_once(kube_api: ApiServer, api: Sync) -> None:
    ns = kube_api.namespace("kv-pools-500")
    for i in (1, 2, 3):
        kube_api.ready_node(f"many-{i}", f"10.90.0.{10 + i}", labels=LABEL)
    api.create(POOLS, pool("many", "10.90.4.0/22"))
    count = 500
    async with running_operator(kube_api, SYSTEM, status_interval_s=2.0):

        async def create(i: int) -> None:
            await asyncio.to_thread(api.create, service_path(ns), load_balancer(f"s{i:03d}", ns))

        gate = asyncio.Semaphore(16)

        async def bounded(i: int) -> None:
            async with gate:
                await create(i)

        await asyncio.gather(*(bounded(i) for i in range(count)))

        def all_have_addresses() -> dict[str, list[str]] | None:
            """every Service shows its address"""
            items = (api.get(service_path(ns)) or {}).get("items") or []
            shown = {s["metadata"]["name"]: ingress_ips(s) for s in items}
            return shown if len(shown) == count and all(shown.values()) else None

        shown = await eventually(all_have_addresses, timeout=300)
        addresses = [ips[0] for ips in shown.values()]
        assert len(set(addresses)) == count

        def pool_status() -> dict[str, Any] | None:
            """the pool counts 500 used in 2 instances"""
            status = (api.get(f"{POOLS}/many") or {}).get("status") or {}
            return (
                status
                if status.get("used") == count and len(status.get("instances", [])) == 2
                else None
            )

        status = await eventually(pool_status, timeout=120)
        assert sorted(i["addresses"] for i in status["instances"]) == [245, 255]
        assert len({i["vrid"] for i in status["instances"]}) == 2
        cm = api.get(f"/api/v1/namespaces/{SYSTEM}/configmaps/vrrpd-many-1") or {}
        docs = [d for d in yaml.safe_load_all(cm["data"]["virtualips.yaml"]) if d]
        assert sum(len(d["spec"]["addresses"]) for d in docs) == count
        assert json.dumps(docs).count("verifyAddresses") == 2
        api.call("DELETE", service_path(ns) + "?labelSelector=")  # deletecollection
        await eventually(
            lambda: not ((api.get(f"{POOLS}/many") or {}).get("status") or {}).get("used"),
            timeout=120,
            what="every address back",
        )
        api.delete(f"{POOLS}/many")
    for i in (1, 2, 3):
        kube_api.kubectl("delete", "node", f"many-{i}", "--wait=false")
