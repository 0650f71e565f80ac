"""The Advisory condition on a real kube-apiserver: the operator (kopf, in this process) puts
the what-if warnings of a VirtualIP on its status, posts a Warning Event when they appear or
change, and `kubectl describe vip` shows them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import kopf
from kubernetes import client
from vrrp_operator.handlers import Runtime, register
from vrrp_operator.kube import KubeClient
from vrrp_operator.manifests import DaemonSettings
from vrrp_operator.settings import OperatorSettings

from tests.envtest import ApiServer
from tests.operator.harness import HarnessTasks

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "crds" / "virtualips.kubevrrp.io.yaml"
GROUP, VERSION, PLURAL = "kubevrrp.io", "v1alpha1", "virtualips"
SYSTEM, NS = "kv-advisory-system", "kv-advisory"
LABEL = {"kubevrrp.io/advisory-test": "yes"}  # the nodes of this test, apart from others'


@contextlib.asynccontextmanager
async def operator(api: ApiServer) -> AsyncIterator[Runtime]:
    """kopf with the operator's handlers, logged in as the admin (client certificate)."""
    settings = OperatorSettings(
        daemon=DaemonSettings(namespace=SYSTEM, image="kube-vrrp:test"),
        status_interval_s=0.5,
        peering="standalone",
        liveness_endpoint=None,
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


async def eventually(check: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await asyncio.to_thread(check)
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {timeout} s: {check.__doc__}")
        await asyncio.sleep(0.2)


def virtualip(weight: int) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "VirtualIP",
        "metadata": {"name": "web", "namespace": NS},
        "spec": {
            "addresses": ["10.77.0.100/24"],
            "nodeSelector": {"matchLabels": LABEL},
            "priority": 70,
            "nodePriorities": [{"nodeName": "adv-1", "priority": 100}],
            "probes": [{"name": "hc", "tcp": {"port": 443}, "weight": weight}],
        },
    }


async def test_advisory_condition_event_and_describe(kube_api: ApiServer) -> None:
    kube_api.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
    kube_api.kubectl(
        "wait", "--for=condition=Established", "crd/virtualips.kubevrrp.io", "--timeout=30s"
    )
    kube_api.namespace(SYSTEM)
    kube_api.namespace(NS)
    # The daemon pods name their ServiceAccount; the API server refuses them without it.
    kube_api.apply(
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": DaemonSettings().service_account, "namespace": SYSTEM},
        }
    )
    for i in (1, 2):
        kube_api.ready_node(f"adv-{i}", f"10.77.0.{10 + i}", labels=LABEL)
    api = kube_api.client()
    custom, core = client.CustomObjectsApi(api), client.CoreV1Api(api)

    def advisory() -> dict[str, Any] | None:
        """the Advisory condition"""
        obj = custom.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "web")
        conditions = (obj.get("status") or {}).get("conditions") or []
        return next((c for c in conditions if c["type"] == "Advisory"), None)

    def events() -> list[Any]:
        found = core.list_namespaced_event(NS, field_selector="involvedObject.name=web").items
        return [e for e in found if e.reason == "Advisory"]

    def weight(value: int) -> None:
        custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            NS,
            PLURAL,
            "web",
            {"spec": {"probes": virtualip(value)["spec"]["probes"]}},
        )

    async with operator(kube_api):
        custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, virtualip(-20))
        try:
            # 100 - 20 = 80 is still above 70: the probe's failure would never move the VIP.
            first = await eventually(lambda: (c := advisory()) and c["status"] == "True" and c)
            assert first["reason"] == "WhatIfFindings"
            assert first["message"] == (
                "ipv4: probe hc (weight -20) failing never moves the VIP: adv-1 goes from 100 "
                "to 100 - 20 (hc) = 80, still above adv-2's 70; weight -31 would move it "
                "(or weight 0: FAULT)"
            )
            (event,) = await eventually(events)
            assert (event.type, event.message) == ("Warning", first["message"])

            described = kube_api.kubectl("describe", "vip", "web", "-n", NS).stdout
            assert "Advisory" in described and "WhatIfFindings" in described
            assert "failing never moves the VIP" in described

            # Other findings: the condition changes and a new Warning Event says so.
            weight(-25)
            second = await eventually(
                lambda: (c := advisory()) and "100 - 25 (hc) = 75" in c["message"] and c
            )
            assert second["status"] == "True"
            later = await eventually(lambda: [e for e in events() if "= 75" in e.message])
            assert later[0].type == "Warning"

            # A weight that works: nothing to warn about, and no Event for that.
            weight(-40)
            fixed = await eventually(lambda: (c := advisory()) and c["status"] == "False" and c)
            assert fixed["reason"] == "NoFindings"
            await asyncio.sleep(2)
            assert len(events()) == 2, [e.message for e in events()]
        finally:
            custom.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "web")

            def gone() -> bool:
                """the VirtualIP is deleted (its finalizer ran)"""
                listed = custom.list_namespaced_custom_object(GROUP, VERSION, NS, PLURAL)
                return not listed["items"]

            await eventually(gone)
    for i in (1, 2):
        kube_api.kubectl("delete", "node", f"adv-{i}", "--wait=false")
