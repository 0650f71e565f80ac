"""kopf handlers: they register, keep kopf's indexes and delegate; nothing else.

Every event that can change the rendering (a VirtualIP, a Node, a daemon Pod, a
LoadBalancer Service) asks the reconcile of runtime.py for a run; a daemon pod's report
wakes the status writer (status_writer.py), which keeps one kopf daemon per VirtualIP; the
pool path registers its own (lbhandlers.py). The kopf settings the operator needs
(finalizer, peering, watch selectors, retries) are set here, at start-up.

All writes happen inside kopf handlers, so kopf peering pauses them: of two replicas, only
the one with the highest priority acts.
"""

from __future__ import annotations

import itertools
import logging
import socket
from collections.abc import Awaitable, Iterator, Mapping
from typing import Any

import kopf

from vrrp_operator import switchover
from vrrp_operator.kube import FIELD_MANAGER, ApiError
from vrrp_operator.lbhandlers import register_pools
from vrrp_operator.objects import (
    DAEMON_LABELS,
    GROUP,
    Node,
    PodInfo,
    node_from_object,
    plain,
    pod_from_object,
)
from vrrp_operator.render import object_key
from vrrp_operator.runtime import LABEL_SELECTOR, RESYNC_RETRY_S, Reconciler, Runtime
from vrrpd.switchover import SWITCHOVER_TO

VERSION = "v1alpha1"
PLURAL = "virtualips"
FINALIZER = f"{GROUP}/finalizer"

log = logging.getLogger("vrrp_operator")

# Runtime and Reconciler live in runtime.py; importable from here as they always were.
__all__ = ["FINALIZER", "PLURAL", "RESYNC_RETRY_S", "VERSION", "Reconciler", "Runtime", "register"]


class RetryForever:
    """kopf's delays between tries of a request the API server failed or did not answer: a
    few quick ones, then one every few seconds for as long as it takes.

    kopf's default (1, 1, 2, ... 21 s) gives up after 54 s: a status patch that gives up
    ends its VirtualIP's timer for good, and a watch between its last tries reconnects up
    to 21 s after the server is back. An iterable, not an iterator: each request starts
    over."""

    def __iter__(self) -> Iterator[float]:
        yield from (1.0, 2.0)
        yield from itertools.repeat(3.0)


def register(registry: kopf.OperatorRegistry, runtime: Runtime) -> None:
    """Attach every handler to `registry`; handlers share `runtime`."""
    settings = runtime.settings

    def ours(namespace: str | None, **_: Any) -> bool:
        return namespace == settings.namespace

    @kopf.on.startup(registry=registry)
    async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.persistence.finalizer = FINALIZER
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=GROUP, key="last-handled-configuration"
        )
        # kopf posts its own log lines as Events from INFO up; ours are chosen (events()).
        settings.posting.level = logging.WARNING
        # The Events' source, as `kubectl get events` and `describe` show it (kopf: "kopf",
        # "dev"); in a pod the host name is the pod's name.
        settings.posting.reporting_component = FIELD_MANAGER
        settings.posting.reporting_instance = socket.gethostname()
        settings.peering.name = runtime.settings.peering_name
        settings.peering.clusterwide = True
        settings.peering.mandatory = runtime.settings.peering == "mandatory"
        settings.peering.standalone = runtime.settings.peering == "standalone"
        # The status followers return within a moment of being stopped (a write in flight).
        settings.background.instant_exit_timeout = 2.0
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330
        settings.networking.error_backoffs = RetryForever()
        # Only the daemon pods of our namespace, filtered by the API server: kopf's `labels`
        # and `when` filters below are client-side, after every pod of the cluster arrived.
        pods = ("", "v1", "pods")
        settings.watching.label_selectors[pods] = LABEL_SELECTOR
        settings.watching.field_selectors[pods] = f"metadata.namespace={runtime.settings.namespace}"

    # --- indexes: the cluster state a reconcile reads ------------------------------------

    # Explicit ids: kopf passes each index to every handler as a keyword argument named
    # after its id, and the default id of a nested function is "register.<locals>.name".
    # Async: kopf runs a sync handler in a worker thread, an index function on every event.
    @kopf.index(GROUP, VERSION, PLURAL, id="vip_index", registry=registry)
    async def vip_index(body: kopf.Body, **_: Any) -> dict[str, dict[str, Any]]:
        return {object_key(body): _without_bookkeeping(body)}

    @kopf.index("", "v1", "nodes", id="node_index", registry=registry)
    async def node_index(body: kopf.Body, **_: Any) -> dict[str, Node]:
        node = node_from_object(body)
        return {node.name: node}

    @kopf.index(
        "",
        "v1",
        "pods",
        labels=dict(DAEMON_LABELS),
        when=ours,
        id="daemon_pod_index",
        registry=registry,
    )
    async def daemon_pod_index(body: kopf.Body, **_: Any) -> dict[str, PodInfo]:
        pod = pod_from_object(body)
        return {pod.name: pod}

    @kopf.index(
        "",
        "v1",
        "services",
        field="spec.type",
        value="LoadBalancer",
        id="lb_service_index",
        registry=registry,
    )
    async def lb_service_index(body: kopf.Body, **_: Any) -> dict[str, dict[str, Any]]:
        return {object_key(body): plain(body)}

    # --- VirtualIPs ----------------------------------------------------------------------

    @kopf.on.resume(GROUP, VERSION, PLURAL, registry=registry)
    @kopf.on.create(GROUP, VERSION, PLURAL, registry=registry)
    async def virtualip_changed(**kwargs: Any) -> None:
        runtime.remember(kwargs)
        await runtime.reconciler.request()

    @kopf.on.update(GROUP, VERSION, PLURAL, registry=registry)
    async def virtualip_updated(old: Any, new: Any, namespace: str | None, **kwargs: Any) -> None:
        runtime.remember(kwargs)
        await runtime.virtualip_updated(old, new, namespace)

    @kopf.on.delete(GROUP, VERSION, PLURAL, registry=registry)
    async def virtualip_deleted(body: kopf.Body, namespace: str | None, **kwargs: Any) -> None:
        runtime.remember(kwargs)
        key = object_key(body)
        # The ConfigMaps no longer hold it; wait (bounded) until the daemons dropped it, so
        # the object disappears only when its VIPs did.
        holders = await runtime.virtualip_deleting(key)
        elapsed = kwargs.get("runtime")  # kopf: time since this handler first ran
        waited = elapsed.total_seconds() if elapsed is not None else 0.0
        if holders and waited < settings.delete_timeout_s:
            raise kopf.TemporaryError(f"waiting for {', '.join(holders)} to drop the VIP", delay=1)
        if holders:
            kopf.warn(body, reason="DeleteTimeout", message=f"{', '.join(holders)} still report it")
        await runtime.virtualip_deleted(key, namespace, plain(body))

    # The status follower of each VirtualIP (status_writer.py): kopf stops it on deletion
    # and while peering pauses the operator; its resync is the periodic reconcile (Secret
    # rotation, missed events, a failed pod's backoff ended).
    @kopf.daemon(
        GROUP, VERSION, PLURAL, id="virtualip_status", cancellation_timeout=10.0, registry=registry
    )
    async def virtualip_status(body: kopf.Body, stopped: kopf.DaemonStopped, **kwargs: Any) -> None:
        runtime.remember(kwargs)
        await runtime.statuses.follow(
            body,
            stopped,
            runtime.reports,
            lambda: _quietly(runtime.reconciler.request(max_age=settings.resync_interval_s)),
        )

    # --- what else changes the rendering -------------------------------------------------

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    async def virtualip_event(body: kopf.Body, **kwargs: Any) -> None:
        # kopf hands no change of an annotation under its own prefix (kubevrrp.io/) to the
        # change handlers: a switchover request (kubevrrp.io/switchover-to) is seen here.
        rendered, obj = runtime.rendered, plain(body)
        if rendered is None:
            return
        if switchover.outdated(obj, rendered, runtime.nodes()):
            await _quietly(runtime.reconciler.request())
        if switchover.shown_differently(obj):
            runtime.statuses.wake([object_key(obj)])

    @kopf.on.event("", "v1", "nodes", registry=registry)
    async def node_event(event: Mapping[str, Any], body: kopf.Body, **kwargs: Any) -> None:
        runtime.remember(kwargs)
        if runtime.node_changed(node_from_object(body), gone=event.get("type") == "DELETED"):
            await _quietly(runtime.reconciler.request())

    @kopf.on.event("", "v1", "pods", labels=dict(DAEMON_LABELS), when=ours, registry=registry)
    async def daemon_pod_event(event: Mapping[str, Any], body: kopf.Body, **kwargs: Any) -> None:
        runtime.remember(kwargs)
        if runtime.pod_changed(pod_from_object(body), gone=event.get("type") == "DELETED"):
            await _quietly(runtime.reconciler.request())

    @kopf.on.event("", "v1", "services", field="spec.type", value="LoadBalancer", registry=registry)
    async def lb_service_event(event: Mapping[str, Any], body: kopf.Body, **kwargs: Any) -> None:
        runtime.remember(kwargs)
        if runtime.rendered is None or event.get("type") == "DELETED":
            return
        await _quietly(runtime.publish_service(plain(body), runtime.rendered))

    register_pools(
        registry,
        runtime.pools,
        runtime.reconciler.request,
        runtime.reports,
        settings.status_interval_s,
        settings.resync_interval_s,
    )


def _without_bookkeeping(body: Mapping[str, Any]) -> dict[str, Any]:
    """A VirtualIP as render and the reconcile read it: without managedFields and the
    annotations they do not read (kopf's last-handled-configuration repeats the spec),
    which 500 objects' worth of index would otherwise keep in memory. A switchover request
    (kubevrrp.io/switchover-to) stays: the reconcile carries it to the daemons."""
    obj = plain(body)
    meta = obj.get("metadata") or {}
    meta.pop("managedFields", None)
    kept = {k: v for k, v in (meta.pop("annotations", None) or {}).items() if k == SWITCHOVER_TO}
    if kept:
        meta["annotations"] = kept
    return dict(obj)


async def _quietly(work: Awaitable[None]) -> None:
    """Event handlers are not retried by kopf: log the failure, the next event or the
    resync tries again."""
    try:
        await work
    except (ApiError, OSError) as exc:
        log.warning("reconcile failed, retried on the next event or resync: %s", exc)
