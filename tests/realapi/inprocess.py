"""The operator's kopf handlers in this process, against the real API server of `kube_api`,
logged in as its admin; and what a kubelet would do to the daemon pods (there is none).
Shared by the pool tests and bench/loadbalancer.py."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import kopf
from vrrp_operator.handlers import Runtime, register
from vrrp_operator.kube import KubeClient
from vrrp_operator.manifests import DaemonSettings
from vrrp_operator.settings import OperatorSettings

from tests.envtest import ApiServer
from tests.operator.harness import HarnessTasks
from tests.realapi.cluster import set_pod_phase

ROOT = Path(__file__).resolve().parents[2]


def system_namespace(api: ApiServer, namespace: str) -> None:
    """The operator's namespace, with the ServiceAccount its daemon pods name."""
    api.namespace(namespace)
    api.apply(
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": DaemonSettings().service_account, "namespace": namespace},
        }
    )


@contextlib.asynccontextmanager
async def running_operator(
    api: ApiServer,
    namespace: str,
    *,
    status_interval_s: float = 0.5,
    default_class: bool = False,
) -> AsyncIterator[Runtime]:
    settings = OperatorSettings(
        daemon=DaemonSettings(namespace=namespace, image="kube-vrrp:test"),
        status_interval_s=status_interval_s,
        peering="standalone",
        liveness_endpoint=None,
        default_load_balancer_class=default_class,
    )
    runtime = Runtime(settings, KubeClient(api.client()))
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(
            server=api.url,
            ca_path=str(api.ca_file),
            certificate_path=str(api.workdir / "admin.crt"),
            private_key_path=str(api.workdir / "admin.key"),
        )

    register(registry, runtime)
    stop = asyncio.Event()
    tasks = await kopf.spawn_tasks(
        registry=registry, clusterwide=True, standalone=True, stop_flag=stop
    )
    task = asyncio.create_task(kopf.run_tasks(tasks, ignored=HarnessTasks()))
    try:
        yield runtime
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=60)


async def eventually(check: Callable[[], Any], timeout: float = 60.0, what: str = "") -> Any:
    """`check` (run in a thread: it may call the API) until it returns something true."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await asyncio.to_thread(check)
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {timeout} s: {what or check.__doc__}")
        await asyncio.sleep(0.2)


def report_master(api: ApiServer, namespace: str, node: str, instances: dict[str, str]) -> None:
    """What a running daemon and its kubelet would show: the pod vrrpd-<node> Running, and
    its report naming each instance's state ({"<ns>/<name>/ipv4": "MASTER", ...})."""
    pod = f"vrrpd-{node}"
    set_pod_phase(api, namespace, pod, "Running")
    report = {"instances": [{"name": n, "state": state} for n, state in instances.items()]}
    patch = {"metadata": {"annotations": {"kubevrrp.io/status": json.dumps(report)}}}
    api.kubectl("patch", "pod", pod, "-n", namespace, "--type=merge", "-p", json.dumps(patch))


class Sync:
    """Blocking calls for tests and benchmarks (run them in threads from async code)."""

    def __init__(self, api: ApiServer) -> None:
        self.client = KubeClient(api.client())

    def call(self, method: str, path: str, body: Any = None, content_type: str = "") -> Any:
        return self.client._call(method, path, None, body, content_type or "application/json")

    def get(self, path: str) -> Any:
        try:
            return self.call("GET", path)
        except Exception as exc:
            if getattr(exc, "status", None) == 404:
                return None
            raise

    def create(self, path: str, obj: dict[str, Any]) -> Any:
        return self.call("POST", path, obj)

    def delete(self, path: str) -> None:
        try:
            self.call("DELETE", path)
        except Exception as exc:
            if getattr(exc, "status", None) != 404:
                raise

    def merge(self, path: str, patch: dict[str, Any]) -> Any:
        return self.call("PATCH", path, patch, "application/merge-patch+json")


def service_path(namespace: str, name: str = "") -> str:
    return f"/api/v1/namespaces/{namespace}/services" + (f"/{name}" if name else "")


POOLS = "/apis/kubevrrp.io/v1alpha1/virtualippools"


def load_balancer(
    name: str,
    namespace: str,
    *,
    port: int = 80,
    annotations: dict[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A LoadBalancer Service of class kubevrrp.io/vrrp (spec keys override)."""
    body: dict[str, Any] = {
        "type": "LoadBalancer",
        "loadBalancerClass": "kubevrrp.io/vrrp",
        "selector": {"app": name},
        "ports": [{"name": "p", "port": port, "protocol": "TCP"}],
        **spec,
    }
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations or {}},
        "spec": {k: v for k, v in body.items() if v is not None},
    }


def ingress_ips(service: dict[str, Any] | None) -> list[str]:
    ingress = ((service or {}).get("status") or {}).get("loadBalancer", {}).get("ingress") or []
    return [i.get("ip") for i in ingress]


def condition(service: dict[str, Any] | None, kind: str) -> dict[str, Any] | None:
    for c in ((service or {}).get("status") or {}).get("conditions") or ():
        if c.get("type") == kind:
            return dict(c)
    return None
