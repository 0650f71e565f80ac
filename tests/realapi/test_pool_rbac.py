"""The pool path run as the chart installs it: the operator as its ServiceAccount, with the
chart's RBAC and CRDs, gives Services addresses from a pool that selects by namespace
labels, follows EndpointSlices, writes Service and pool status, and no request of it is
refused."""

from __future__ import annotations

from typing import Any

import yaml

from tests.envtest import ApiServer
from tests.realapi.cluster import (
    NAMESPACE,
    Operator,
    Release,
    TestNodes,
    daemon_objects,
    finish_pod_deletions,
    wait_for,
)
from tests.realapi.inprocess import POOLS, Sync, condition, ingress_ips, load_balancer, service_path


def test_the_charts_operator_serves_pools_with_the_charts_permissions(
    kube_api: ApiServer, release: Release, operator: Operator, nodes: TestNodes
) -> None:
    api = Sync(kube_api)
    made = list(nodes(2))
    ns = kube_api.namespace("kv-rbac-pools")
    kube_api.kubectl("label", "namespace", ns, "team=web")
    pool: dict[str, Any] = {
        "apiVersion": "kubevrrp.io/v1alpha1",
        "kind": "VirtualIPPool",
        "metadata": {"name": "rbac-pool"},
        "spec": {
            "addresses": ["192.168.77.200-192.168.77.201"],
            "nodeSelector": nodes.selector,
            "serviceAllocation": {"namespaceSelector": {"matchLabels": {"team": "web"}}},
        },
    }
    api.create(POOLS, pool)
    try:
        api.create(service_path(ns), load_balancer("web", ns, externalTrafficPolicy="Local"))
        api.create(
            f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices",
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": "web-1",
                    "namespace": ns,
                    "labels": {"kubernetes.io/service-name": "web"},
                },
                "addressType": "IPv4",
                "endpoints": [{"addresses": ["10.244.0.5"], "nodeName": made[1]}],
                "ports": [{"name": "p", "port": 8080, "protocol": "TCP"}],
            },
        )

        def shown() -> list[str]:
            return ingress_ips(api.get(service_path(ns, "web")))

        assert wait_for(shown, "the Service's address") == ["192.168.77.200"]
        allocated = condition(api.get(service_path(ns, "web")), "kubevrrp.io/AddressAllocated")
        assert allocated is not None and allocated["reason"] == "Allocated"

        def carriers() -> set[str]:
            out = set()
            for cm in daemon_objects(kube_api, "configmaps").values():
                docs = [d for d in yaml.safe_load_all(cm["data"]["virtualips.yaml"]) if d]
                if any("192.168.77.200/32" in d["spec"]["addresses"] for d in docs):
                    out.add(cm["metadata"]["name"].removeprefix("vrrpd-"))
            return out

        wait_for(lambda: carriers() == {made[1]}, "only the endpoint's node carries it")

        def counted() -> dict[str, Any] | None:
            status = (api.get(f"{POOLS}/rbac-pool") or {}).get("status") or {}
            return status if status.get("used") == 1 else None

        status = wait_for(counted, "the pool's status")
        assert status["instances"][0]["externalTrafficPolicy"] == "Local"
        assert kube_api.forbidden(release.operator_user) == []
    finally:
        api.delete(service_path(ns, "web"))
        api.delete(f"{POOLS}/rbac-pool")

        def released() -> bool:
            finish_pod_deletions(kube_api, NAMESPACE)  # a node that leaves: its kubelet's part
            return not any(
                "192.168.77.200/32" in cm["data"]["virtualips.yaml"]
                for cm in daemon_objects(kube_api, "configmaps", NAMESPACE).values()
            )

        wait_for(released, "the address gone from every ConfigMap")
