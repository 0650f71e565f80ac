"""The operator benchmark on a real API server (`python -m bench.operator --api real`).

etcd + kube-apiserver from KUBEBUILDER_ASSETS (tests/envtest.py), the chart installed with
the real helm and the operator run as its Deployment runs it, as its ServiceAccount
(tests/realapi/cluster.py: `install_chart`, `running_operator`). The fleet is bench.operator's
(20 nodes in 5 racks, 500 VirtualIPs in 7 namespaces). No kubelet runs: daemon pods stay
Pending unless the benchmark sets a phase, and the daemons' reports are written by the
benchmark as a daemon would write them.

1. bulk: all but the last K VirtualIPs created at once (8 client threads) -> every node's
   ConfigMap holds every VirtualIP meant for it.
2. settle: until the operator sent no request (watches aside) for 5 s.
3. idle: a window with nothing changing: the operator's CPU (of one core), RSS, log lines
   and API requests (the audit log, one per auditID), per minute.
4. report -> status: a node's daemon reports MASTER for one VirtualIP more, K times; time
   until that VirtualIP's status names it master. Then one report flipping all 100 of a
   node's VirtualIPs at once: time until the last status shows it.
5. apply: K more VirtualIPs, one at a time: create -> every ConfigMap of its nodes holds it.

Figures come from watches (the benchmark's own, as the admin), never from polling the
operator. A benchmark: it prints figures, it never fails on them.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import json
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vrrp_operator.objects import node_from_object
from vrrp_operator.render import render

from bench.common import percentile
from bench.operator import (
    NAMESPACE,
    SECRETS,
    ProcessMeter,
    idle_window,
    node_objects,
    virtualip_objects,
)

SETTLE_QUIET_S = 5.0
GROUP, VERSION, PLURAL = "kubevrrp.io", "v1alpha1", "virtualips"
DAEMON_SELECTOR = "app.kubernetes.io/name=kube-vrrp,app.kubernetes.io/component=daemon"
HANDLED = "kubevrrp.io/last-handled-configuration"  # kopf's, once the create handlers ran


# --- the operator process and what it sends ------------------------------------------------------


class AuditTail:
    """The requests of one user in the audit log, read on from where the last read stopped;
    one per auditID (a watch logs ResponseStarted and ResponseComplete)."""

    def __init__(self, path: Path, user: str) -> None:
        self.path = path
        self.user = user
        self.offset = 0
        self.seen: set[str] = set()

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with self.path.open("rb") as f:
            f.seek(self.offset)
            data = f.read()
        end = data.rfind(b"\n") + 1  # a line being written waits for the next read
        self.offset += end
        out = []
        for line in data[:end].splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("user", {}).get("username") != self.user:
                continue
            if event.get("auditID") in self.seen:
                continue
            self.seen.add(event.get("auditID"))
            out.append(event)
        return out


def request_kind(event: dict[str, Any]) -> str:
    ref = event.get("objectRef") or {}
    sub = f"/{ref['subresource']}" if ref.get("subresource") else ""
    return f"{event.get('verb')} {ref.get('resource', event.get('requestURI', '?'))}{sub}"


# --- what the benchmark watches ------------------------------------------------------------------


class Mirror:
    """The objects of one list call, kept up to date by a watch in a thread; `wait_for`
    blocks until a predicate over them holds (evaluated on every event)."""

    def __init__(self, list_call: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self._list = list_call
        self._args = args
        self._kwargs = kwargs
        self.objects: dict[str, dict[str, Any]] = {}
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def _key(obj: dict[str, Any]) -> str:
        meta = obj["metadata"]
        return f"{meta.get('namespace')}/{meta['name']}"

    def _run(self) -> None:
        import urllib3
        from kubernetes import watch
        from kubernetes.client.rest import ApiException

        while not self._stop.is_set():
            try:
                listed = self._list(*self._args, **self._kwargs, _preload_content=False)
                body = json.loads(listed.data)
                with self._changed:
                    self.objects = {self._key(o): o for o in body["items"]}
                    self._changed.notify_all()
                version = body["metadata"]["resourceVersion"]
                stream = watch.Watch().stream(
                    self._list, *self._args, **self._kwargs, resource_version=version,
                    timeout_seconds=60, deserialize=False,
                )  # fmt: skip
                for event in stream:  # plain JSON events: {"type": ..., "object": ...}
                    if self._stop.is_set():
                        return
                    obj = event["object"]
                    if event["type"] == "ERROR":
                        break
                    with self._changed:
                        if event["type"] == "DELETED":
                            self.objects.pop(self._key(obj), None)
                        else:
                            self.objects[self._key(obj)] = obj
                        self._changed.notify_all()
            except (OSError, ApiException, urllib3.exceptions.HTTPError):  # list again
                time.sleep(0.5)

    def wait_for(self, check: Callable[[dict[str, dict[str, Any]]], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not check(self.objects):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 1.0))
        return True

    def close(self) -> None:
        self._stop.set()


def config_names(config_maps: dict[str, dict[str, Any]]) -> dict[str, str]:
    """node -> its ConfigMap's text."""
    return {
        key.split("/", 1)[1].removeprefix("vrrpd-"): (cm.get("data") or {}).get(
            "virtualips.yaml", ""
        )
        for key, cm in config_maps.items()
    }


def holds(texts: dict[str, str], nodes: tuple[str, ...], name: str) -> bool:
    return all(f"name: {name}\n" in texts.get(node, "") for node in nodes)


# --- the cluster ---------------------------------------------------------------------------------


def _node(core: Any, obj: dict[str, Any]) -> None:
    """A Ready node as its kubelet would leave it: labels, addresses, no not-ready taint."""
    meta = obj["metadata"]
    core.create_node({"apiVersion": "v1", "kind": "Node",
                      "metadata": {"name": meta["name"], "labels": meta["labels"]}})  # fmt: skip
    core.patch_node(meta["name"], [{"op": "replace", "path": "/spec/taints", "value": []}])
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    ready = {"type": "Ready", "status": "True", "reason": "KubeletReady",
             "lastHeartbeatTime": now, "lastTransitionTime": now}  # fmt: skip
    core.patch_node_status(
        meta["name"], {"status": {"addresses": obj["status"]["addresses"], "conditions": [ready]}}
    )


def _report(node: str, instances: list[dict[str, Any]]) -> dict[str, Any]:
    """A daemon's status annotation (docs/operator.md) as a merge patch of its pod."""
    document = {
        "node": node, "configHash": None, "configError": None, "instances": instances,
        "updated": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }  # fmt: skip
    return {"metadata": {"annotations": {"kubevrrp.io/status": json.dumps(document)}}}


def _master_rows(key: str, vrid: int, families: tuple[int, ...]) -> list[dict[str, Any]]:
    since = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    row = {"vrid": vrid, "state": "MASTER", "priority": 150, "effectivePriority": 150,
           "healthy": True, "since": since}  # fmt: skip
    return [{"name": f"{key}/ipv{f}", **row} for f in families]


@contextlib.contextmanager
def _cluster() -> Iterator[tuple[Any, Any]]:
    from tests.envtest import ApiServer
    from tests.realapi.cluster import install_chart

    with ApiServer.start() as api:
        release = install_chart(api)
        try:
            yield api, release
        finally:
            shutil.rmtree(release.workdir, ignore_errors=True)


def bench_real(
    vips: int, nodes: int, applies: int, window: float, timeout: float
) -> dict[str, Any]:
    from kubernetes import client

    from tests.realapi.cluster import running_operator, set_pod_phase

    objs = virtualip_objects(vips, nodes)
    for o in objs:
        del o["metadata"]["creationTimestamp"]  # the server's, not the fleet's
    node_objs = node_objects(nodes)
    placement = render(objs, [node_from_object(o) for o in node_objs], SECRETS, {}).placements

    def key(o: dict[str, Any]) -> str:
        return f"{o['metadata']['namespace']}/{o['metadata']['name']}"

    with _cluster() as (api, release):
        admin = api.client()
        core, custom = client.CoreV1Api(admin), client.CustomObjectsApi(admin)
        for o in node_objs:
            _node(core, o)
        for namespace, secret in SECRETS:
            api.namespace(namespace)
            core.create_namespaced_secret(namespace, {
                "metadata": {"name": secret},
                "stringData": {k: v.decode() for k, v in SECRETS[(namespace, secret)].items()},
            })  # fmt: skip
        config_maps = Mirror(
            core.list_namespaced_config_map, NAMESPACE, label_selector=DAEMON_SELECTOR
        )
        virtualips = Mirror(custom.list_cluster_custom_object, GROUP, VERSION, PLURAL)
        audit = AuditTail(api.audit_log, release.operator_user)
        try:
            with running_operator(release) as operator:
                meter = ProcessMeter(operator.process.pid, operator.log_path)
                try:
                    return _measure(
                        api, custom, core, objs, placement, key, applies, window, timeout,
                        meter, audit, config_maps, virtualips, set_pod_phase,
                    )  # fmt: skip
                except Exception:
                    print("operator log (last lines):", *meter.tail(), sep="\n  ")
                    raise
        finally:
            config_maps.close()
            virtualips.close()


def _measure(
    api: Any, custom: Any, core: Any, objs: list[dict[str, Any]], placement: Any,
    key: Callable[[dict[str, Any]], str], applies: int, window: float, timeout: float,
    meter: ProcessMeter, audit: AuditTail, config_maps: Mirror, virtualips: Mirror,
    set_pod_phase: Callable[..., None],
) -> dict[str, Any]:  # fmt: skip
    rss_start = meter.rss_kib()[0]
    bulk, single = objs[: len(objs) - applies], objs[len(objs) - applies :]

    def create(o: dict[str, Any]) -> None:
        custom.create_namespaced_custom_object(GROUP, VERSION, o["metadata"]["namespace"],
                                               PLURAL, o)  # fmt: skip

    def all_held(names: list[dict[str, Any]]) -> Callable[[dict[str, Any]], bool]:
        def check(cms: dict[str, Any]) -> bool:
            texts = config_names(cms)
            return all(holds(texts, placement[key(o)].nodes, o["metadata"]["name"]) for o in names)

        return check

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(create, bulk))
    created_s = time.perf_counter() - start
    if not config_maps.wait_for(all_held(bulk), timeout):
        raise RuntimeError(f"the ConfigMaps did not hold every VirtualIP within {timeout} s")
    bulk_s = time.perf_counter() - start

    # Settled: every VirtualIP has its status and kopf's record of the handled spec, and
    # then the operator sent nothing for a while (quiet alone can be a busy operator).
    def handled(objs: dict[str, Any]) -> bool:
        return all(
            ((objs.get(key(o)) or {}).get("status") or {}).get("conditions")
            and HANDLED in ((objs.get(key(o)) or {}).get("metadata", {}).get("annotations") or {})
            for o in bulk
        )

    if not virtualips.wait_for(handled, timeout):
        raise RuntimeError(f"not every VirtualIP was handled within {timeout} s")
    handled_s = time.perf_counter() - start - bulk_s
    settle_s = handled_s + _settle(audit, timeout)

    # Idle: nothing changes; what does the operator do?
    audit.read()
    mix: collections.Counter[str] = collections.Counter()

    def sent() -> int:
        mix.update(request_kind(e) for e in audit.read())
        return sum(mix.values())

    idle = asyncio.run(idle_window(meter, window, sent))
    rss, hwm = meter.rss_kib()

    # Report -> status. The node's pod Running first, as a kubelet would mark it.
    node = placement[key(bulk[0])].nodes[0]
    pod = f"vrrpd-{node}"
    set_pod_phase(api, NAMESPACE, pod, "Running")
    _settle(audit, timeout)
    on_node = [o for o in bulk if node in placement[key(o)].nodes]

    def vrid_of(o: dict[str, Any]) -> int:
        return int(((virtualips.objects.get(key(o)) or {}).get("status") or {}).get("vrid") or 0)

    def families(o: dict[str, Any]) -> tuple[int, ...]:
        return tuple(sorted({6 if ":" in a else 4 for a in o["spec"]["addresses"]}))

    def master_is(o: dict[str, Any]) -> Callable[[dict[str, Any]], bool]:
        return lambda objs: ((objs.get(key(o)) or {}).get("status") or {}).get("master") == node

    rows: list[dict[str, Any]] = []
    report_s = []
    for o in on_node[:applies]:
        rows += _master_rows(key(o), vrid_of(o), families(o))
        t = time.perf_counter()
        core.patch_namespaced_pod(pod, NAMESPACE, _report(node, rows))
        if not virtualips.wait_for(master_is(o), timeout):
            raise RuntimeError(f"{key(o)}: status.master is not {node} within {timeout} s")
        report_s.append(time.perf_counter() - t)
    rest = on_node[applies:]
    rows = [r for o in on_node for r in _master_rows(key(o), vrid_of(o), families(o))]
    t = time.perf_counter()
    core.patch_namespaced_pod(pod, NAMESPACE, _report(node, rows))
    if not virtualips.wait_for(lambda objs: all(master_is(o)(objs) for o in rest), timeout):
        raise RuntimeError(f"not every status names {node} master within {timeout} s")
    burst_s = time.perf_counter() - t
    _settle(audit, timeout)

    latencies = []
    for o in single:
        t = time.perf_counter()
        create(o)
        if not config_maps.wait_for(all_held([o]), timeout):
            raise RuntimeError(f"{key(o)} not in its ConfigMaps within {timeout} s")
        latencies.append(time.perf_counter() - t)
    return {
        "bulk_virtualips": len(bulk),
        "bulk_created_s": created_s,
        "bulk_converged_s": bulk_s,
        "bulk_settled_s": settle_s,
        **idle,
        "idle_requests": dict(mix.most_common()),
        "rss_start_mib": rss_start / 1024,
        "rss_end_mib": rss / 1024,
        "rss_peak_mib": hwm / 1024,
        "report_status_p50_s": percentile(report_s, 50),
        "report_status_p95_s": percentile(report_s, 95),
        "report_burst_virtualips": len(rest),
        "report_burst_s": burst_s,
        "applies": len(latencies),
        "apply_p50_s": percentile(latencies, 50),
        "apply_p95_s": percentile(latencies, 95),
        "apply_max_s": max(latencies) if latencies else float("nan"),
    }


def _settle(audit: AuditTail, timeout: float) -> float:
    """Seconds until the operator sent no request but watches for SETTLE_QUIET_S."""
    start = quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < SETTLE_QUIET_S:
        if time.monotonic() - start > timeout:
            raise RuntimeError(f"the operator never went quiet within {timeout} s")
        time.sleep(0.5)
        if any(e.get("verb") != "watch" for e in audit.read()):
            quiet_since = time.monotonic()
    return quiet_since - start
