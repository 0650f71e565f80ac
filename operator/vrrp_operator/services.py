"""Services: which LoadBalancer Services show which VIPs in status.loadBalancer.ingress (pure).

A Service is ours when it is of type LoadBalancer and either has loadBalancerClass
kubevrrp.io/vrrp, or has no class and a VirtualIP of its namespace names it in
spec.serviceRef. A Service of another class is never touched (another load balancer owns
it), even when a VirtualIP refers to it. A kubevrrp.io/vrrp Service that no VirtualIP
refers to may name one in the annotation kubevrrp.io/virtualip.

Two paths fill a Service's ingress: a VirtualIP that names it (above), or, when none does,
the address pools (`pooled`; allocation.py). The pool path also says on the Service what
happened, in two conditions of its own types (kubevrrp.io/AddressAllocated: which address,
or why none; kubevrrp.io/Announced: which node holds it, or why none does) and an Event
whenever one of them changes (`pool_status_patch`). Other controllers' conditions are left
as they are: the patch is a strategic merge, keyed by condition type.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vrrp_operator.allocation import ANNOTATION_VIRTUALIP, LOAD_BALANCER_CLASS
from vrrp_operator.objects import GROUP
from vrrp_operator.render import Placement

CONDITION_ALLOCATED = f"{GROUP}/AddressAllocated"
CONDITION_ANNOUNCED = f"{GROUP}/Announced"
POOL_CONDITIONS = (CONDITION_ALLOCATED, CONDITION_ANNOUNCED)
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"


def service_ingress(
    service: Mapping[str, Any], placements: Mapping[str, Placement]
) -> list[dict[str, str]] | None:
    """The ingress list the Service should show, or None when it is not ours to manage.

    Only rendered VirtualIPs count: a VirtualIP in conflict or without nodes holds no
    address, so publishing it would send traffic nowhere. (A Service the pools serve,
    `pooled`, is not asked about.)
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


# --- the pool path ----------------------------------------------------------------------------


def referenced_services(virtualips: Iterable[Mapping[str, Any]]) -> set[str]:
    """ "<namespace>/<name>" of every Service a VirtualIP names in spec.serviceRef (valid or
    not: a VirtualIP that names a Service keeps it on the VirtualIP path)."""
    out: set[str] = set()
    for obj in virtualips:
        ref = (obj.get("spec") or {}).get("serviceRef")
        name = ref.get("name") if isinstance(ref, Mapping) else None
        if isinstance(name, str):
            namespace = (obj.get("metadata") or {}).get("namespace") or "default"
            out.add(f"{namespace}/{name}")
    return out


def pooled(service: Mapping[str, Any], referenced: Collection[str], default_class: bool) -> bool:
    """Does this Service get its address from the pools?

    A LoadBalancer Service of class kubevrrp.io/vrrp (or of no class when the chart's
    loadBalancer.defaultClass is on) that no VirtualIP names, by serviceRef or by the
    annotation kubevrrp.io/virtualip."""
    spec = service.get("spec") or {}
    if spec.get("type") != "LoadBalancer":
        return False
    lb_class = spec.get("loadBalancerClass")
    if lb_class != LOAD_BALANCER_CLASS and not (lb_class is None and default_class):
        return False
    meta = service.get("metadata") or {}
    if ANNOTATION_VIRTUALIP in (meta.get("annotations") or {}):
        return False
    return f"{meta.get('namespace') or 'default'}/{meta.get('name')}" not in referenced


def class_mismatch(service: Mapping[str, Any], asks: bool, default_class: bool) -> str | None:
    """What to tell a LoadBalancer Service that asks the pools for something (`asks`: it
    has a kubevrrp.io/ pool annotation) but is not of our class; None when that is fine."""
    spec = service.get("spec") or {}
    if not asks or spec.get("type") != "LoadBalancer":
        return None
    lb_class = spec.get("loadBalancerClass")
    if lb_class == LOAD_BALANCER_CLASS or (lb_class is None and default_class):
        return None
    if lb_class is None:
        return (
            "it has kubevrrp.io/ annotations but no spec.loadBalancerClass, and kube-vrrp "
            f"serves only class {LOAD_BALANCER_CLASS} here; set spec.loadBalancerClass: "
            f"{LOAD_BALANCER_CLASS} (on a new Service: the class cannot change), or install "
            "the chart with loadBalancer.defaultClass: true"
        )
    return (
        f"it has kubevrrp.io/ annotations but spec.loadBalancerClass {lb_class}, which another "
        f"load balancer serves; use class {LOAD_BALANCER_CLASS} to take an address from a "
        "VirtualIPPool (a new Service: the class cannot change), or drop the annotations"
    )


@dataclass(frozen=True, slots=True)
class Condition:
    type: str
    ok: bool
    reason: str
    message: str

    def same_as(self, existing: Mapping[str, Any] | None) -> bool:
        return existing is not None and (
            existing.get("status"),
            existing.get("reason"),
            existing.get("message"),
        ) == ("True" if self.ok else "False", self.reason, self.message)


def current_conditions(service: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    conditions = (service.get("status") or {}).get("conditions") or ()
    return {c["type"]: dict(c) for c in conditions if isinstance(c, Mapping) and "type" in c}


def pool_status_patch(
    service: Mapping[str, Any],
    ingress: Sequence[str] | None,
    conditions: Sequence[Condition],
    now: str,
    *,
    remove: Sequence[str] = (),
) -> tuple[dict[str, Any] | None, list[Condition]]:
    """The strategic-merge status patch that makes the Service show `ingress` (None: leave
    it) and `conditions`, and takes our condition types in `remove` off; None when it shows
    them already. Also the conditions that changed: each is worth an Event.

    lastTransitionTime moves only when a condition's status does (metav1.Condition)."""
    status: dict[str, Any] = {}
    if ingress is not None:
        have = [i.get("ip") for i in current_ingress(service)]
        if have != list(ingress) or any(
            set(i) - {"ip", "ipMode"} for i in current_ingress(service)
        ):
            status["loadBalancer"] = {"ingress": [{"ip": ip} for ip in ingress]}
    existing = current_conditions(service)
    changed: list[Condition] = []
    entries: list[dict[str, Any]] = []
    for condition in conditions:
        old = existing.get(condition.type)
        if condition.same_as(old):
            continue
        value = "True" if condition.ok else "False"
        since = old.get("lastTransitionTime") if old and old.get("status") == value else now
        entries.append(
            {
                "type": condition.type,
                "status": value,
                "reason": condition.reason,
                "message": condition.message[:32768],
                "lastTransitionTime": since or now,
            }
        )
        changed.append(condition)
    entries.extend({"type": t, "$patch": "delete"} for t in remove if t in existing)
    if entries:
        status["conditions"] = entries
    return ({"status": status} if status else None), changed
