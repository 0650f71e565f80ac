"""services: which LoadBalancer Services show which VIPs, and which are left alone."""

from __future__ import annotations

from typing import Any

import pytest
from vrrp_operator.render import render
from vrrp_operator.services import (
    LOAD_BALANCER_CLASS,
    ingress_patch,
    release_patch,
    service_ingress,
)

from tests.operator.builders import edge_nodes, vip


def svc(
    name: str,
    namespace: str = "default",
    lb_class: str | None = None,
    type_: str = "LoadBalancer",
    annotations: dict[str, str] | None = None,
    ingress: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": type_}
    if lb_class is not None:
        spec["loadBalancerClass"] = lb_class
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "annotations": annotations or {}}
    out: dict[str, Any] = {"metadata": meta, "spec": spec}
    if ingress is not None:
        out["status"] = {"loadBalancer": {"ingress": ingress}}
    return out


PLACEMENTS = render(
    [
        vip("web", "192.168.77.100/24", "fd00:77::100/64", serviceRef={"name": "ingress"}),
        vip("api", "192.168.77.101/24", namespace="kube-system"),
        vip(
            "clash",
            "192.168.77.102/24",
            vrid=1,
            created="2030-01-01T00:00:00Z",
            serviceRef={"name": "broken"},
        ),
        vip("old", "192.168.77.103/24", vrid=1, created="2020-01-01T00:00:00Z"),
    ],
    edge_nodes(dual=True),
    {},
).placements


@pytest.mark.parametrize(
    ("service", "expected"),
    [
        (svc("ingress"), [{"ip": "192.168.77.100"}, {"ip": "fd00:77::100"}]),
        (
            svc("ingress", lb_class=LOAD_BALANCER_CLASS),
            [{"ip": "192.168.77.100"}, {"ip": "fd00:77::100"}],
        ),
        (svc("ingress", lb_class="metallb.io/metallb"), None),  # another load balancer's
        (svc("ingress", type_="ClusterIP"), None),
        (svc("ingress", namespace="other"), None),  # serviceRef is same-namespace only
        (svc("unrelated"), None),
        (svc("pending", lb_class=LOAD_BALANCER_CLASS), []),  # ours, but no VirtualIP yet
        (
            svc(
                "apiserver",
                "kube-system",
                LOAD_BALANCER_CLASS,
                annotations={"kubevrrp.io/virtualip": "api"},
            ),
            [{"ip": "192.168.77.101"}],
        ),
        (svc("broken"), []),  # its VirtualIP is in conflict: nothing to publish
    ],
)
def test_service_ingress(service: dict[str, Any], expected: list[dict[str, str]] | None) -> None:
    assert service_ingress(service, PLACEMENTS) == expected


def test_ingress_patch_only_when_different() -> None:
    wanted = [{"ip": "192.168.77.100"}]
    assert ingress_patch(svc("x", ingress=wanted), wanted) is None
    assert ingress_patch(svc("x"), wanted) == {"status": {"loadBalancer": {"ingress": wanted}}}
    # Another field beside the same address (a hostname, ports) is left alone: no write.
    extra = [{"ip": "192.168.77.100", "hostname": "x"}]
    assert ingress_patch(svc("x", ingress=extra), wanted) is None
    # A second address, or another one, is rewritten.
    two = [{"ip": "192.168.77.100"}, {"ip": "10.0.0.1"}]
    assert ingress_patch(svc("x", ingress=two), wanted) == {
        "status": {"loadBalancer": {"ingress": wanted}}
    }
    assert ingress_patch(svc("x", ingress=[{"ip": "10.0.0.1"}]), wanted) is not None


def test_release_patch_takes_out_only_our_addresses() -> None:
    service = svc("x", ingress=[{"ip": "192.168.77.100"}, {"ip": "10.0.0.1"}])
    assert release_patch(service, ["192.168.77.100/24"]) == {
        "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]}}
    }
    assert release_patch(service, ["192.168.77.200/24"]) is None
