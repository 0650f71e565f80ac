"""kopf glue of the pool path: indexes, events and the status writes of Services and pools.

The reconcile (handlers.py) calls `PoolPath.plan` before render, feeds the pool instances'
VirtualIP documents to render beside the hand-written VirtualIPs, and calls
`PoolPath.publish` after applying the per-node objects. Each pool's timer re-publishes its
Services' Announced condition from the daemons' reports (a failover changes no object the
reconcile watches) and the pool's status. Everything decided here is decided by the pure
modules (loadbalancing, allocation, services); this module reads indexes and writes.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import kopf

from vrrp_operator.kube import FIELD_MANAGER, ApiError, KubeClient
from vrrp_operator.loadbalancing import (
    LoadBalancing,
    endpoint_nodes,
    plan,
    pool_status,
    service_conditions,
    slice_nodes,
)
from vrrp_operator.objects import GROUP, plain
from vrrp_operator.pools import POOL_PLURAL
from vrrp_operator.render import Rendered, object_key
from vrrp_operator.services import (
    POOL_CONDITIONS,
    STRATEGIC_MERGE_PATCH,
    current_conditions,
    pool_status_patch,
)
from vrrp_operator.status import NodeReport, format_time

VERSION = "v1alpha1"
WRITE_CONCURRENCY = 16  # status patches in flight at once (500 Services on the first run)
MEMO_S = 10.0  # how long our own write counts over an index that has not caught up yet
NAMESPACE_TTL_S = 30.0  # a namespace's labels are read again after this long

log = logging.getLogger("vrrp_operator")


def index_values(index: Any) -> list[Any]:
    """Every value of a kopf index whose keys are unique per object."""
    if index is None:
        return []
    return [value for key in list(index) for value in index.get(key, ())]


@dataclass
class PoolPath:
    """The pool path's state between handler calls (one per operator process)."""

    client: KubeClient
    namespace: str
    default_class: bool = False
    last: LoadBalancing | None = None
    rendered: Rendered | None = None
    indexes: dict[str, Any] = field(default_factory=dict)
    # What this process last wrote: Service key -> (uid, status part, when); pool -> status.
    shown: dict[str, tuple[str | None, dict[str, Any], float]] = field(default_factory=dict)
    pool_shown: dict[str, tuple[dict[str, Any], float]] = field(default_factory=dict)
    endpoint_memo: dict[str, frozenset[str]] = field(default_factory=dict)
    service_memo: dict[str, str] = field(default_factory=dict)  # key -> what allocation reads
    namespace_labels: dict[str, tuple[dict[str, str], float]] = field(default_factory=dict)
    vrids: dict[str, int] = field(default_factory=dict)  # instance key -> VRID last rendered

    def remember(self, kwargs: Mapping[str, Any]) -> None:
        for name in ("pool_index", "endpointslice_index", "lb_service_index"):
            if name in kwargs:
                self.indexes[name] = kwargs[name]

    # --- reading -------------------------------------------------------------------------

    def pools(self) -> list[dict[str, Any]]:
        return index_values(self.indexes.get("pool_index"))

    def services(self) -> list[dict[str, Any]]:
        return index_values(self.indexes.get("lb_service_index"))

    def endpoints(self) -> dict[str, frozenset[str]]:
        return endpoint_nodes(index_values(self.indexes.get("endpointslice_index")))

    async def namespaces(self, pools: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
        """The labels of the Services' namespaces, read only when a pool selects by them
        (GET by name, kept for NAMESPACE_TTL_S: no cluster-wide watch on namespaces)."""
        if not any(
            ((p.get("spec") or {}).get("serviceAllocation") or {}).get("namespaceSelector")
            for p in pools
        ):
            return {}
        wanted = {
            str((s.get("metadata") or {}).get("namespace") or "default") for s in self.services()
        }
        now = _now()
        stale = sorted(
            n for n in wanted if now - self.namespace_labels.get(n, ({}, -1e9))[1] > NAMESPACE_TTL_S
        )
        found = await asyncio.gather(*(self.client.get("Namespace", None, n) for n in stale))
        for name, obj in zip(stale, found, strict=True):
            labels = dict(((obj or {}).get("metadata") or {}).get("labels") or {})
            self.namespace_labels[name] = (labels, now)
        return {n: self.namespace_labels[n][0] for n in wanted}

    async def plan(self, virtualips: Iterable[Mapping[str, Any]]) -> LoadBalancing:
        pools = self.pools()
        # What we wrote last counts while the index may lag behind it: the allocation of
        # the previous run is the next run's starting point, not a guess from stale status.
        self.last = plan(
            virtualips,
            pools,
            [self._view(s) for s in self.services()],
            await self.namespaces(pools),
            self.endpoints(),
            namespace=self.namespace,
            default_class=self.default_class,
            known_vrids=self.vrids,
        )
        return self.last

    # --- writing -------------------------------------------------------------------------

    async def publish(
        self, lb: LoadBalancing, rendered: Rendered, reports: Mapping[str, NodeReport]
    ) -> None:
        """Every served Service's ingress and conditions, and every pool's status."""
        self.rendered = rendered
        self.vrids = {
            i.key: p.vrid
            for i in lb.instances
            if (p := rendered.placements.get(i.key)) is not None and p.vrid is not None
        }
        services = {object_key(s): s for s in self.services()}
        keys = sorted((lb.service_keys | set(lb.mismatched)) & set(services))
        gone = [k for k, s in services.items() if k not in keys and _has_ours(s)]
        await _bounded(
            [self._publish_service(services[k], lb, rendered, reports) for k in keys]
            + [self.forget_service(services[k]) for k in gone]
        )
        await _bounded([self._publish_pool(p, lb, rendered, reports) for p in self.pools()])

    async def refresh_pool(
        self, pool: Mapping[str, Any], reports: Mapping[str, NodeReport]
    ) -> None:
        """A pool's timer: its status, and its Services' conditions (a failover, a daemon
        that came up) from the latest reports."""
        lb, rendered = self.last, self.rendered
        if lb is None or rendered is None:
            return
        name = (pool.get("metadata") or {}).get("name")
        services = {object_key(s): s for s in self.services()}
        mine = sorted(
            a.service
            for a in lb.allocation.assignments.values()
            if a.pool == name and a.service in services
        )
        await _bounded([self._publish_service(services[k], lb, rendered, reports) for k in mine])
        await self._publish_pool(pool, lb, rendered, reports)

    def _view(self, service: Mapping[str, Any]) -> Mapping[str, Any]:
        """The Service as our last write left it, when the index may not show that yet."""
        key = object_key(service)
        memo = self.shown.get(key)
        uid = (service.get("metadata") or {}).get("uid")
        if memo is None or memo[0] != uid or _now() - memo[2] > MEMO_S:
            return service
        status = dict(service.get("status") or {})
        if "loadBalancer" in memo[1]:
            status["loadBalancer"] = memo[1]["loadBalancer"]
        conditions = current_conditions(service)
        for condition in memo[1].get("conditions") or ():
            if condition.get("$patch") == "delete":
                conditions.pop(condition["type"], None)
            else:
                conditions[condition["type"]] = condition
        status["conditions"] = list(conditions.values())
        return {**service, "status": status}

    async def _publish_service(
        self,
        service: Mapping[str, Any],
        lb: LoadBalancing,
        rendered: Rendered,
        reports: Mapping[str, NodeReport],
    ) -> None:
        key = object_key(service)
        ingress, conditions = service_conditions(key, lb, rendered, reports)
        view = self._view(service)
        remove = [c for c in POOL_CONDITIONS if c not in {x.type for x in conditions}]
        patch, changed = pool_status_patch(
            view, ingress, conditions, format_time(datetime.now(UTC)), remove=remove
        )
        if patch is None:
            return
        await self._patch_service(service, patch)
        for condition in changed:
            kopf.event(
                cast(kopf.Body, _reference(service)),
                type="Normal" if condition.ok else "Warning",
                reason=condition.reason,
                message=condition.message[:1024],
            )

    async def forget_service(self, service: Mapping[str, Any]) -> None:
        """A Service the pools no longer serve: our conditions go (its ingress is the API
        server's business on a type change, or the VirtualIP path's)."""
        view = self._view(service)
        patch, _ = pool_status_patch(view, None, [], "", remove=POOL_CONDITIONS)
        if patch is not None:
            await self._patch_service(service, patch)

    async def _patch_service(self, service: Mapping[str, Any], patch: dict[str, Any]) -> None:
        meta = service.get("metadata") or {}
        namespace, name = meta.get("namespace") or "default", meta.get("name")
        log.info("service %s/%s status: %s", namespace, name, patch["status"])
        try:
            await self.client.request(
                "PATCH",
                f"/api/v1/namespaces/{namespace}/services/{name}/status",
                query={"fieldManager": FIELD_MANAGER},
                body=patch,
                content_type=STRATEGIC_MERGE_PATCH,
            )
        except ApiError as exc:
            if exc.status in (404, 409):
                return  # deleted or replaced meanwhile: the next run sees the new one
            raise
        self.shown[f"{namespace}/{name}"] = (meta.get("uid"), patch["status"], _now())

    async def _publish_pool(
        self,
        pool: Mapping[str, Any],
        lb: LoadBalancing,
        rendered: Rendered,
        reports: Mapping[str, NodeReport],
    ) -> None:
        meta = pool.get("metadata") or {}
        name = str(meta.get("name") or "")
        if meta.get("deletionTimestamp"):
            return
        memo = self.pool_shown.get(name)
        seen = pool.get("status") or {}
        old = memo[0] if memo is not None and _now() - memo[1] < MEMO_S else seen
        new = pool_status({**pool, "status": old}, lb, rendered, reports, datetime.now(UTC))
        # The status is ours alone: a field that went (ipv6, reservedByVirtualIPs) is deleted.
        changes = {k: v for k, v in new.items() if old.get(k) != v}
        changes.update({k: None for k in old if k not in new})
        if not changes:
            return
        try:
            await self.client.patch(
                "VirtualIPPool", None, name, {"status": changes}, subresource="status"
            )
        except ApiError as exc:
            if exc.status == 404:
                return
            raise
        self.pool_shown[name] = (new, _now())

    # --- events that change the allocation -----------------------------------------------

    def endpoints_changed(self, service_key: str) -> bool:
        """Did the ready nodes of a Local Service the pools serve change?"""
        lb = self.last
        if lb is None or not any(s.key == service_key and s.local for s in lb.services):
            return False
        nodes = self.endpoints().get(service_key, frozenset())
        if self.endpoint_memo.get(service_key) == nodes:
            return False
        self.endpoint_memo[service_key] = nodes
        return True


def _has_ours(service: Mapping[str, Any]) -> bool:
    return any(t in current_conditions(service) for t in POOL_CONDITIONS)


def _reference(service: Mapping[str, Any]) -> dict[str, Any]:
    meta = service.get("metadata") or {}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {k: meta[k] for k in ("name", "namespace", "uid") if k in meta},
    }


def _now() -> float:
    return asyncio.get_running_loop().time()


async def _bounded(work: Sequence[Awaitable[None]]) -> None:
    """Run `work` WRITE_CONCURRENCY at a time; the first failure is raised after all ran."""
    gate = asyncio.Semaphore(WRITE_CONCURRENCY)

    async def one(item: Awaitable[None]) -> None:
        async with gate:
            await item

    results = await asyncio.gather(*(one(w) for w in work), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


def register_pools(
    registry: kopf.OperatorRegistry,
    path: PoolPath,
    request: Callable[..., Awaitable[None]],
    reports: Callable[[], Mapping[str, NodeReport]],
    status_interval_s: float,
    resync_interval_s: float,
) -> None:
    """The pool path's indexes and handlers. `request` asks for a reconcile (the
    Reconciler's); `reports` gives the daemons' latest reports."""

    async def quietly(work: Awaitable[None]) -> None:
        try:
            await work
        except (ApiError, OSError) as exc:
            log.warning("pool path: failed, retried on the next event or resync: %s", exc)

    @kopf.index(GROUP, VERSION, POOL_PLURAL, id="pool_index", registry=registry)
    def pool_index(body: kopf.Body, **_: Any) -> dict[str, dict[str, Any]]:
        return {str(body.get("metadata", {}).get("name")): plain(body)}

    @kopf.index(
        "discovery.k8s.io", "v1", "endpointslices", id="endpointslice_index", registry=registry
    )
    def endpointslice_index(body: kopf.Body, **_: Any) -> dict[str, tuple[str, frozenset[str]]]:
        found = slice_nodes(body)
        return {} if found is None else {object_key(body): found}

    @kopf.on.event(GROUP, VERSION, POOL_PLURAL, registry=registry)
    async def pool_event(**kwargs: Any) -> None:
        path.remember(kwargs)
        await quietly(request())

    @kopf.timer(GROUP, VERSION, POOL_PLURAL, interval=status_interval_s, registry=registry)
    async def pool_refresh(body: kopf.Body, **kwargs: Any) -> None:
        path.remember(kwargs)
        if kwargs.get("stopped"):
            return
        await request(max_age=resync_interval_s)
        await path.refresh_pool(plain(body), reports())

    @kopf.on.event("discovery.k8s.io", "v1", "endpointslices", registry=registry)
    async def endpointslice_event(body: kopf.Body, **kwargs: Any) -> None:
        path.remember(kwargs)
        found = slice_nodes(body)
        if found is not None and path.endpoints_changed(found[0]):
            await quietly(request())

    @kopf.on.event("", "v1", "services", registry=registry)
    async def service_event(event: Mapping[str, Any], body: kopf.Body, **kwargs: Any) -> None:
        """Any Service: a LoadBalancer one may need an address (or give one back); one that
        stopped being a LoadBalancer gives its address back and loses our conditions. Our
        own status writes come back as events too: they change nothing allocation reads."""
        path.remember(kwargs)
        service = plain(body)
        key = object_key(service)
        is_lb = (service.get("spec") or {}).get("type") == "LoadBalancer"
        if not is_lb and event.get("type") != "DELETED" and _has_ours(service):
            await quietly(path.forget_service(service))
        lb = path.last
        known = lb is not None and (key in lb.service_keys or key in lb.mismatched)
        if not (is_lb or known):
            return
        meta = service.get("metadata") or {}
        seen = json.dumps(
            [event.get("type"), meta.get("uid"), meta.get("labels"), meta.get("annotations"),
             meta.get("deletionTimestamp"), service.get("spec")],
            sort_keys=True, default=str,
        )  # fmt: skip
        if path.service_memo.get(key) == seen:
            return
        path.service_memo[key] = seen
        if event.get("type") == "DELETED":
            path.service_memo.pop(key, None)
        await quietly(request())
