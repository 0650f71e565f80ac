"""Services: which LoadBalancer Services show which VIPs in status.loadBalancer.ingress (pure).

A Service is ours when it is of type LoadBalancer and either has loadBalancerClass
kubevrrp.io/vrrp, or has no class and a VirtualIP of its namespace names it in
spec.serviceRef. A Service of another class is never touched (another load balancer owns
it), even when a VirtualIP refers to it. A kubevrrp.io/vrrp Service that no VirtualIP
refers to may name one in the annotation kubevrrp.io/virtualip.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vrrp_operator.objects import GROUP
from vrrp_operator.render import Placement

LOAD_BALANCER_CLASS = f"{GROUP}/vrrp"
ANNOTATION_VIRTUALIP = f"{GROUP}/virtualip"


def service_ingress(
    service: Mapping[str, Any], placements: Mapping[str, Placement]
) -> list[dict[str, str]] | None:
    """The ingress list the Service should show, or None when it is not ours to manage.

    Only rendered VirtualIPs count: a VirtualIP in conflict or without nodes holds no
    address, so publishing it would send traffic nowhere.
    """
    spec = service.get("spec") or {}
    if spec.get("type") != "LoadBalancer":
        return None
    meta = service.get("metadata") or {}
    namespace = meta.get("namespace") or "default"
    name = meta.get("name")
    lb_class = spec.get("loadBalancerClass")
    if lb_class not in (None, LOAD_BALANCER_CLASS):
        return None
    keys = sorted(
        key
        for key, p in placements.items()
        if p.service_ref == name and key.split("/", 1)[0] == namespace
    )
    named = (meta.get("annotations") or {}).get(ANNOTATION_VIRTUALIP)
    if lb_class == LOAD_BALANCER_CLASS and isinstance(named, str):
        keys = sorted({*keys, f"{namespace}/{named}"})
    if lb_class is None and not keys:
        return None
    ingress: list[dict[str, str]] = []
    for key in keys:
        p = placements.get(key)
        if p is None or not p.rendered:
            continue
        for address in p.addresses:
            ip = address.split("/", 1)[0]
            if {"ip": ip} not in ingress:
                ingress.append({"ip": ip})
    return ingress


def current_ingress(service: Mapping[str, Any]) -> list[dict[str, Any]]:
    status = service.get("status") or {}
    return list((status.get("loadBalancer") or {}).get("ingress") or [])


def ingress_patch(
    service: Mapping[str, Any], wanted: list[dict[str, str]]
) -> dict[str, Any] | None:
    """The status patch that sets `wanted`, or None when the Service shows it already."""
    have = [{"ip": i.get("ip")} for i in current_ingress(service) if i.get("ip")]
    if have == wanted and len(have) == len(current_ingress(service)):
        return None
    return {"status": {"loadBalancer": {"ingress": wanted}}}


def release_patch(service: Mapping[str, Any], addresses: list[str]) -> dict[str, Any] | None:
    """When a VirtualIP stops referring to a class-less Service (deleted, serviceRef changed):
    the patch that takes its addresses out of the ingress list, if they are there."""
    ips = {a.split("/", 1)[0] for a in addresses}
    have = current_ingress(service)
    keep = [i for i in have if i.get("ip") not in ips]
    if len(keep) == len(have):
        return None
    return {"status": {"loadBalancer": {"ingress": keep}}}
