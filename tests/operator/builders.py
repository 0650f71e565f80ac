"""Small builders for VirtualIP objects and nodes, shared by the operator tests."""

from __future__ import annotations

from ipaddress import ip_address
from typing import Any

from vrrp_operator.objects import Node, Taint


def vip(
    name: str,
    *addresses: str,
    namespace: str = "default",
    created: str | None = None,
    status: dict[str, Any] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A VirtualIP object as the API returns it; spec keys in camelCase."""
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if created is not None:
        meta["creationTimestamp"] = created
    obj: dict[str, Any] = {
        "apiVersion": "kubevrrp.io/v1alpha1",
        "kind": "VirtualIP",
        "metadata": meta,
        "spec": {"addresses": list(addresses or ("192.168.77.100/24",)), **spec},
    }
    if status is not None:
        obj["status"] = status
    return obj


def node(
    name: str,
    *addresses: str,
    labels: dict[str, str] | None = None,
    cordoned: bool = False,
    taints: tuple[Taint, ...] = (),
    ready: bool = True,
    uid: str | None = None,
) -> Node:
    return Node(
        name=name,
        labels=labels or {},
        addresses=tuple(ip_address(a) for a in addresses),
        ready=ready,
        unschedulable=cordoned,
        taints=taints,
        uid=uid,
    )


def edge_nodes(count: int = 3, *, dual: bool = False) -> list[Node]:
    """node-1..node-N on 192.168.77.0/24 (and fd00:77::/64), labelled role=edge."""
    out = []
    for i in range(1, count + 1):
        addresses = [f"192.168.77.{10 + i}"] + ([f"fd00:77::{10 + i}"] if dual else [])
        out.append(node(f"node-{i}", *addresses, labels={"role": "edge", "rack": f"r{i}"}))
    return out
