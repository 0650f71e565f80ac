"""LoadBalancer Services from a pool, end to end on the real API server: the chart's
operator gives them addresses, real daemons on the lab nodes (the test kubelet's `vrrpd run
--kube`) hold them, a client reaches them, and each Service says which node holds its
address from the daemons' own reports. A Service deleted takes its address off the node
with no lost probe for the others (their instance changes in place); a failed node hands
every address over, and the Services say so."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.realapi.inprocess import POOLS, Sync, condition, ingress_ips, load_balancer, service_path
from tests.system.conftest import System
from vrrpd.lab.prober import Prober

pytestmark = pytest.mark.root

ANNOUNCED = "kubevrrp.io/Announced"


def held_message(api: Sync, namespace: str, name: str) -> str:
    found = condition(api.get(service_path(namespace, name)), ANNOUNCED) or {}
    return str(found.get("message") or "") if found.get("status") == "True" else ""


def test_pool_addresses_are_held_by_real_daemons(system: System) -> None:
    api = Sync(system.api)
    ns = system.namespace
    n1, n2 = system.names["n1"], system.names["n2"]
    pool: dict[str, Any] = {
        "apiVersion": "kubevrrp.io/v1alpha1",
        "kind": "VirtualIPPool",
        "metadata": {"name": f"pool-{system.nodes.test}"},
        "spec": {
            "addresses": ["192.168.77.150-192.168.77.170", "fd00:77::150-fd00:77::160"],
            "nodeSelector": system.nodes.selector,
            "vrrp": {
                "advertInterval": "100ms",
                "nodePriorities": [
                    {"nodeName": n1, "priority": 150},
                    {"nodeName": n2, "priority": 120},
                ],
            },
        },
    }
    api.create(POOLS, pool)
    shared = {"kubevrrp.io/allow-shared-ip": "dns", "kubevrrp.io/loadBalancerIPs": "192.168.77.160"}
    services = [
        load_balancer("web", ns),
        load_balancer("dual", ns, ipFamilyPolicy="RequireDualStack", ipFamilies=["IPv4", "IPv6"]),
        load_balancer("local", ns, externalTrafficPolicy="Local"),
        load_balancer(
            "dns-udp", ns, annotations=shared, ports=[{"name": "d", "port": 53, "protocol": "UDP"}]
        ),
        load_balancer("dns-tcp", ns, port=53, annotations=shared),
    ]
    names = [s["metadata"]["name"] for s in services]
    try:
        for service in services:
            api.create(service_path(ns), service)
        api.create(
            f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices",
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": "local-1",
                    "namespace": ns,
                    "labels": {"kubernetes.io/service-name": "local"},
                },
                "addressType": "IPv4",
                "endpoints": [{"addresses": ["10.244.2.7"], "nodeName": n2}],
                "ports": [{"name": "p", "port": 8080, "protocol": "TCP"}],
            },
        )

        def addresses() -> dict[str, list[str]] | None:
            shown = {n: ingress_ips(api.get(service_path(ns, n))) for n in names}
            return shown if all(shown.values()) else None

        shown = system.until("every Service's addresses", addresses)
        assert shown["dns-udp"] == shown["dns-tcp"] == ["192.168.77.160"]
        assert len(shown["dual"]) == 2

        def held() -> dict[str, str] | None:
            found = {n: held_message(api, ns, n) for n in names}
            return found if all(found.values()) else None

        def settled() -> dict[str, str] | None:
            """the highest priority holds them (a node whose daemon starts first may hold
            them for a moment)"""
            found = held()
            on_n1 = found and all(f"on {n1} (VRID" in found[n] for n in ("web", "dual", "dns-tcp"))
            return found if on_n1 else None

        messages = system.until("every address held where it belongs", settled, 90)
        assert system.short(messages["local"]).startswith(f"{shown['local'][0]} on n2 (VRID ")
        for name in names:
            for address in shown[name]:
                assert system.lab.ping(system.lab.client, address), f"{name}: {address}"
        assert system.holders(shown["web"][0]) == ["n1"]
        assert system.holders(shown["local"][0]) == ["n2"]

        # Deleting a Service changes its instance's address list in place: the others keep
        # answering, without a lost probe.
        with Prober(system.lab, shown["dual"][0], interval=0.01) as prober:
            api.delete(service_path(ns, "web"))
            system.until("web's address gone", lambda: system.holders(shown["web"][0]) == [])
            time.sleep(0.5)
        result = prober.stop()
        assert result.sent > 50 and result.lost == 0, result
        assert system.holders(shown["dual"][0]) == ["n1"]

        # n1 fails: n2 takes every address of n1, and the Services say so.
        system.lab.link_down(1)
        system.until("dual held by n2", lambda: f"on {n2} (VRID" in held_message(api, ns, "dual"))
        assert system.lab.ping(system.lab.client, shown["dual"][1])  # the IPv6 one too
        assert system.holders(shown["dns-tcp"][0]) == ["n2"]
        system.lab.link_up(1)
    finally:
        for name in names:
            api.delete(service_path(ns, name))
        api.delete(f"{POOLS}/{pool['metadata']['name']}")
        system.until(
            "every address released",
            lambda: all(system.holders(a) == [] for a in ("192.168.77.150", "192.168.77.160")),
            60,
        )
