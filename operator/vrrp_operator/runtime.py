"""The operator's state between handler calls and its one reconcile (`Runtime`, `Reconciler`).

One reconcile renders every VirtualIP over every node and applies the difference; any event
that can change the result (a VirtualIP, a Node, a daemon Pod) requests it, and concurrent
requests coalesce into one run (`Reconciler`). kopf indexes hold the cluster state, so a
reconcile reads no VirtualIP or Node from the API; kopf fills them before any handler runs,
so the first reconcile already sees every object. Daemon ConfigMaps, Secrets and Pods are
listed in the operator's namespace on each run (never stale, and no cluster-wide watch on
Secrets). Each run hands its rendering to the status writer (status_writer.py) and to the
pool path (lbhandlers.py). handlers.py registers the kopf handlers that call into this.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from vrrp_operator import switchover
from vrrp_operator.kube import ApiError, KubeClient
from vrrp_operator.lbhandlers import PoolPath
from vrrp_operator.lbhandlers import index_values as _values
from vrrp_operator.manifests import manifests
from vrrp_operator.objects import (
    DAEMON_LABELS,
    Node,
    PodInfo,
    is_daemon_object,
    pod_from_object,
)
from vrrp_operator.render import (
    NodeConfig,
    Rendered,
    allocated_vrids,
    object_key,
    render,
    secret_refs,
)
from vrrp_operator.rollout import Create, Delete, Existing, Patch, plan
from vrrp_operator.services import (
    ingress_patch,
    pooled,
    referenced_services,
    release_patch,
    service_ingress,
)
from vrrp_operator.settings import OperatorSettings
from vrrp_operator.status import NodeReport, masters
from vrrp_operator.status_writer import ReportCache, StatusWriter

LABEL_SELECTOR = ",".join(f"{k}={v}" for k, v in DAEMON_LABELS.items())
FAILED_POD_BACKOFF_S = (5.0, 300.0)  # first and longest wait before recreating a failed pod
RESYNC_RETRY_S = 5.0  # a resync that failed is tried again after this long

log = logging.getLogger("vrrp_operator")


class Reconciler:
    """Runs the reconcile once for any number of concurrent requests.

    A request waits for the run that starts after it (that run reads the indexes as they
    are by then); runs never overlap. A run that fails leaves the requests pending, so the
    next waiter runs again, and the error reaches the caller (kopf retries VirtualIP
    handlers). A resync (`max_age`) is skipped while the last run is younger than
    `max_age`, and for RESYNC_RETRY_S after a failed one: every VirtualIP's timer asks for
    it, and while the API server is away they must not each try and log.
    """

    def __init__(self, run: Callable[[], Awaitable[None]]) -> None:
        self._run = run
        self._lock = asyncio.Lock()
        self._requested = 0
        self._done = 0
        self.last_success: float | None = None
        self.last_failure: float | None = None
        self.runs = 0

    def _fresh(self, max_age: float | None) -> bool:
        if max_age is None:
            return False
        now = asyncio.get_running_loop().time()
        succeeded = self.last_success is not None and now - self.last_success < max_age
        failed = self.last_failure is not None and now - self.last_failure < RESYNC_RETRY_S
        return succeeded or failed

    async def request(self, *, max_age: float | None = None) -> None:
        if self._fresh(max_age):
            return
        self._requested += 1
        ticket = self._requested
        async with self._lock:
            if self._done >= ticket:
                return
            if self._fresh(max_age):
                return  # a resync ran (or failed) while this one waited
            covered = self._requested
            self.runs += 1
            try:
                await self._run()
            except Exception:
                self.last_failure = asyncio.get_running_loop().time()
                raise
            self._done = covered
            self.last_success = asyncio.get_running_loop().time()


@dataclass
class Runtime:
    """The operator's state between handler calls (one per operator process)."""

    settings: OperatorSettings
    client: KubeClient
    rendered: Rendered | None = None
    indexes: dict[str, Any] = field(default_factory=dict)  # kopf indexes, kept live
    deleting: set[str] = field(default_factory=set)  # VirtualIPs whose finalizer runs
    nodes_seen: dict[str, Node] = field(default_factory=dict)
    pods_seen: dict[str, PodInfo] = field(default_factory=dict)
    failed_pods: dict[str, tuple[int, float]] = field(default_factory=dict)  # node -> (n, t)
    written_vrids: dict[str, int] = field(default_factory=dict)
    report_cache: ReportCache = field(default_factory=ReportCache)
    reconciler: Reconciler = field(init=False)
    pools: PoolPath = field(init=False)  # LoadBalancer Services from VirtualIPPools
    statuses: StatusWriter = field(init=False)
    _rendered_for: tuple[str, Rendered] | None = field(default=None, init=False, repr=False)
    _analysed: Rendered | None = field(default=None, init=False, repr=False)
    _manifests_for: dict[str, tuple[str, list[dict[str, Any]]]] = field(
        default_factory=dict, init=False, repr=False
    )

    def _node_manifests(self, config: NodeConfig) -> list[dict[str, Any]]:
        """manifests() for one node, reused while its configuration is the same (dumping the
        YAML of every node on every run is most of a reconcile's CPU)."""
        key = json.dumps(
            [config.documents, sorted(config.secret_data.items()), config.node_uid,
             config.advert_intervals_cs],
            default=str,
        )  # fmt: skip
        cached = self._manifests_for.get(config.node)
        if cached is not None and cached[0] == key:
            return cached[1]
        objs = manifests(config, self.settings.daemon)
        self._manifests_for[config.node] = (key, objs)
        return objs

    def __post_init__(self) -> None:
        self.reconciler = Reconciler(self._reconcile)
        self.pools = PoolPath(
            self.client, self.settings.namespace, self.settings.default_load_balancer_class
        )
        self.statuses = StatusWriter(
            self.client,
            self.report_cache,
            interval_s=self.settings.status_interval_s,
            resync_s=self.settings.resync_interval_s,
        )
        self.statuses.nodes = self.nodes

    def remember(self, kwargs: Mapping[str, Any]) -> None:
        """Keep the kopf indexes passed to a handler (the same live objects every time)."""
        for name in ("vip_index", "node_index", "daemon_pod_index", "lb_service_index"):
            if name in kwargs:
                self.indexes[name] = kwargs[name]
        self.pools.remember(kwargs)

    # --- reading the indexes -------------------------------------------------------------

    def virtualips(self) -> list[dict[str, Any]]:
        return [
            v for v in _values(self.indexes.get("vip_index")) if object_key(v) not in self.deleting
        ]

    def nodes(self) -> list[Node]:
        return _values(self.indexes.get("node_index"))

    def daemon_pods(self) -> list[PodInfo]:
        return _values(self.indexes.get("daemon_pod_index"))

    def lb_services(self) -> list[dict[str, Any]]:
        return _values(self.indexes.get("lb_service_index"))

    def reports(self) -> dict[str, NodeReport]:
        return self.report_cache.reports(self.daemon_pods())

    # --- reconcile -----------------------------------------------------------------------

    async def _secrets(
        self, vips: Iterable[Mapping[str, Any]]
    ) -> dict[tuple[str, str], dict[str, bytes]]:
        out: dict[tuple[str, str], dict[str, bytes]] = {}
        refs = sorted(secret_refs(vips))
        objs = await asyncio.gather(*(self.client.get("Secret", ns, name) for ns, name in refs))
        for (namespace, name), obj in zip(refs, objs, strict=True):
            if obj is None:
                continue
            data: dict[str, bytes] = {}
            for key, value in (obj.get("data") or {}).items():
                try:
                    data[key] = base64.b64decode(value, validate=True)
                except (binascii.Error, TypeError):
                    continue
            out[(namespace, name)] = data
        return out

    async def _reconcile(self) -> None:
        started = asyncio.get_running_loop().time()
        settings = self.settings
        vips = self.virtualips()
        nodes = self.nodes()
        secrets = await self._secrets(vips)
        # The pools' instances go to render beside the hand-written VirtualIPs, as VirtualIP
        # documents; a VirtualIP naming an address a Service holds is left out (blocked).
        lb = await self.pools.plan(vips)
        placed = [v for v in vips if object_key(v) not in lb.allocation.blocked]
        placed.extend(lb.documents)
        allocated = {**allocated_vrids(vips), **lb.recorded_vrids}
        # Most runs follow an event that changed nothing render reads (kopf re-running a
        # handler, a pod event, our own status.vrid arriving, a resync): reuse the last
        # rendering when its inputs match, and each node's manifests when its config does.
        inputs = _render_inputs(placed, nodes, secrets) + json.dumps(
            sorted((k, sorted(v)) for k, v in lb.only.items())
        )
        last = self._rendered_for
        if last is not None and last[0] == inputs and _agrees(allocated, last[1]):
            rendered = last[1]
        else:
            rendered = render(
                placed, nodes, secrets, allocated, options=settings.render, only=lb.only
            )
            self._rendered_for = (inputs, rendered)
        if lb.allocation.blocked:
            rendered = replace(rendered, invalid=(*rendered.invalid, *lb.blocked_findings()))
        rendered = switchover.carry(rendered, vips, nodes)  # kubevrrp.io/switchover-to
        desired = {n: self._node_manifests(c) for n, c in rendered.nodes.items()}
        self.rendered = rendered
        await self._record_vrids(vips, rendered)

        namespace = settings.namespace

        async def listed(kind: str) -> dict[str, dict[str, Any]]:
            objs = await self.client.list(kind, namespace, LABEL_SELECTOR)
            # kmock ignores labelSelector; a real server does not, and this costs nothing.
            return {o["metadata"]["name"]: o for o in objs if is_daemon_object(o)}

        config_maps, secrets_, pods = await asyncio.gather(
            listed("ConfigMap"), listed("Secret"), listed("Pod")
        )
        existing = Existing(config_maps=config_maps, secrets=secrets_, pods=pods)
        reports = self.report_cache.reports(pod_from_object(p) for p in existing.pods.values())
        now = asyncio.get_running_loop().time()
        hold = {
            node
            for node, (count, when) in self.failed_pods.items()
            if now < when + min(FAILED_POD_BACKOFF_S[0] * 2 ** (count - 1), FAILED_POD_BACKOFF_S[1])
        }
        the_plan = plan(
            desired,
            existing,
            reports,
            masters(reports),
            hold=hold,
            unreachable={n.name for n in nodes if not n.ready},
        )
        for why in the_plan.waiting:
            log.debug("waiting: %s", why)
        # The plan's order matters between kinds (Secrets, ConfigMaps, Pods, deletions), not
        # within one: each group goes out concurrently, the groups one after the other.
        for group in _groups(the_plan.actions):
            await asyncio.gather(*(self._apply(a, existing) for a in group))
        await self._publish_services(rendered)
        await self.pools.publish(lb, rendered, reports)
        if rendered is not self._analysed:
            self._analysed = rendered
            self.statuses.analyse(rendered)
        # A resync that finds nothing to do is not worth a line.
        log.log(
            logging.INFO if the_plan.actions else logging.DEBUG,
            "reconciled %d VirtualIPs over %d nodes: %d actions, %d waiting, %.3f s",
            len(vips),
            len(nodes),
            len(the_plan.actions),
            len(the_plan.waiting),
            asyncio.get_running_loop().time() - started,
        )

    async def _record_vrids(self, vips: list[dict[str, Any]], rendered: Rendered) -> None:
        """status.vrid keeps an allocation across restarts: write it before it is used."""
        by_key = {object_key(v): v for v in vips}

        async def record(key: str, vrid: int) -> None:
            namespace, name = key.split("/", 1)
            try:
                await self.client.patch(
                    "VirtualIP", namespace, name, {"status": {"vrid": vrid}}, subresource="status"
                )
            except ApiError as exc:
                if exc.status == 404:
                    return  # deleted meanwhile: nothing to record
                raise
            # Remembered: until the object shows it, every reconcile would send it again.
            self.written_vrids[key] = vrid

        new = {
            key: placement.vrid
            for key, placement in rendered.placements.items()
            if (obj := by_key.get(key)) is not None
            and placement.allocated
            and placement.vrid is not None
            and placement.vrid
            not in ((obj.get("status") or {}).get("vrid"), self.written_vrids.get(key))
        }
        # Many at once after a bulk create: concurrently (the client's threads bound them).
        await asyncio.gather(*(record(key, vrid) for key, vrid in new.items()))

    async def _apply(self, action: Create | Patch | Delete, existing: Existing) -> None:
        if isinstance(action, Create):
            log.info("create %s %s: %s", action.kind, action.name, action.reason)
            try:
                await self.client.create(action.obj)
            except ApiError as exc:
                if exc.status != 409:  # created meanwhile: the next run compares it
                    raise
        elif isinstance(action, Patch):
            log.info("patch %s %s: %s", action.kind, action.name, action.reason)
            try:
                await self.client.patch(action.kind, action.namespace, action.name, action.patch)
            except ApiError as exc:
                if exc.status != 404:
                    raise
        else:
            log.info("delete %s %s: %s", action.kind, action.name, action.reason)
            if action.kind == "Pod" and "recreate" in action.reason:
                node = str((existing.pods[action.name].get("spec") or {}).get("nodeName", ""))
                count, _ = self.failed_pods.get(node, (0, 0.0))
                self.failed_pods[node] = (count + 1, asyncio.get_running_loop().time())
            await self.client.delete(action.kind, action.namespace, action.name)

    # --- what the handlers hand over --------------------------------------------------

    async def virtualip_updated(
        self, old: Mapping[str, Any], new: Mapping[str, Any], namespace: str | None
    ) -> None:
        await self.reconciler.request()
        self.statuses.wake([object_key(new)])  # observedGeneration, whatever render made of it
        before = ((old.get("spec") or {}).get("serviceRef") or {}).get("name")
        after = ((new.get("spec") or {}).get("serviceRef") or {}).get("name")
        if before and before != after:
            await self.release_service(
                namespace, before, list((old.get("spec") or {}).get("addresses") or [])
            )

    async def virtualip_deleting(self, key: str) -> list[str]:
        """A VirtualIP's deletion began: render without it; the nodes whose daemons still
        report it (the handler waits, bounded, until there are none)."""
        self.deleting.add(key)
        await self.reconciler.request()
        return self.still_reported(key)

    async def virtualip_deleted(
        self, key: str, namespace: str | None, obj: Mapping[str, Any]
    ) -> None:
        """The daemons dropped it (or the wait ended): its Service address and our memory
        of it go."""
        ref = ((obj.get("spec") or {}).get("serviceRef") or {}).get("name")
        if ref:
            await self.release_service(
                namespace, ref, list((obj.get("spec") or {}).get("addresses") or [])
            )
        self.deleting.discard(key)
        self.statuses.forget(key)
        self.written_vrids.pop(key, None)

    def node_changed(self, node: Node, *, gone: bool) -> bool:
        """A Node event: whether it changed what render reads (not a heartbeat)."""
        if gone:
            self.nodes_seen.pop(node.name, None)
        elif self.nodes_seen.get(node.name) == node:
            return False
        else:
            self.nodes_seen[node.name] = node
        return True

    def pod_changed(self, pod: PodInfo, *, gone: bool) -> bool:
        """A daemon pod event: the statuses its report concerns are woken; whether it
        changed what render or rollout reads (more than the report)."""
        before = self.pods_seen.pop(pod.name, None)
        after = None if gone else pod
        if after is not None:
            self.pods_seen[pod.name] = after
        if before == after:
            return False
        self.statuses.pod_changed(before, after)
        if before and after and before.without_report() == after.without_report():
            return False  # only the daemon's report changed: nothing render or rollout reads
        if after is not None and after.running:
            self.failed_pods.pop(pod.node, None)
        return True

    async def _publish_services(self, rendered: Rendered) -> None:
        referenced = referenced_services(self.virtualips())
        for service in self.lb_services():
            await self.publish_service(service, rendered, referenced)

    async def publish_service(
        self,
        service: Mapping[str, Any],
        rendered: Rendered,
        referenced: Collection[str] | None = None,
    ) -> None:
        if referenced is None:
            referenced = referenced_services(self.virtualips())
        if pooled(service, referenced, self.settings.default_load_balancer_class):
            return  # the pool path's (lbhandlers.py)
        wanted = service_ingress(service, rendered.placements)
        if wanted is None:
            return
        patch = ingress_patch(service, wanted)
        if patch is None:
            return
        meta = service["metadata"]
        log.info("service %s/%s ingress -> %s", meta.get("namespace"), meta["name"], wanted)
        try:
            await self.client.patch(
                "Service", meta.get("namespace"), meta["name"], patch, subresource="status"
            )
        except ApiError as exc:
            if exc.status != 404:
                raise

    async def release_service(self, namespace: str | None, name: str, addresses: list[str]) -> None:
        """A VirtualIP no longer points at a class-less Service: take its addresses out."""
        service = await self.client.get("Service", namespace, name)
        if service is None or (service.get("spec") or {}).get("loadBalancerClass") is not None:
            return  # a kubevrrp.io/vrrp Service is kept up to date by the reconcile
        patch = release_patch(service, addresses)
        if patch is not None:
            await self.client.patch("Service", namespace, name, patch, subresource="status")

    def still_reported(self, key: str) -> list[str]:
        """Nodes whose running daemon still reports an instance of the VirtualIP."""
        reports = self.reports()
        prefix = f"{key}/"
        return sorted(
            node
            for node, report in reports.items()
            if report.pod_running and any(name.startswith(prefix) for name in report.instances)
        )


def _agrees(allocated: Mapping[str, int], rendered: Rendered) -> bool:
    """The recorded VRIDs are the ones `rendered` used (typically: it chose them)."""
    for key, vrid in allocated.items():
        placement = rendered.placements.get(key)
        if placement is None or placement.vrid != vrid:
            return False
    return True


def _render_inputs(
    vips: list[dict[str, Any]],
    nodes: list[Node],
    secrets: Mapping[tuple[str, str], Mapping[str, bytes]],
) -> str:
    """Everything render reads but the recorded VRIDs (see `_agrees`), as one string."""
    parts = [
        (
            object_key(v),
            (v.get("metadata") or {}).get("creationTimestamp"),
            (v.get("metadata") or {}).get("deletionTimestamp"),
            v.get("spec"),
        )
        for v in vips
    ]
    return json.dumps(
        [
            sorted(parts, key=lambda p: p[0]),
            sorted(repr(n) for n in nodes),
            sorted((f"{ns}/{name}", sorted(d.items())) for (ns, name), d in secrets.items()),
        ],
        sort_keys=True,
        default=repr,
    )


def _groups(actions: list[Create | Patch | Delete]) -> list[list[Create | Patch | Delete]]:
    """Consecutive actions of one kind and verb, in plan order."""
    groups: list[list[Create | Patch | Delete]] = []
    for action in actions:
        if groups and (type(groups[-1][0]), groups[-1][0].kind) == (type(action), action.kind):
            groups[-1].append(action)
        else:
            groups.append([action])
    return groups
