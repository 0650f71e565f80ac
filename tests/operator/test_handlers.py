"""The kopf handlers against kmock (kopf's own API mock) with looptime (fake event-loop time).

kmock quirks this file works around (DESIGN.md): no namespace list (the operator runs
cluster-wide); no uid / resourceVersion: kopf keys its per-object memory by uid, so objects
without one share it and their handlers see each other's bodies, and it guards finalizer
patches with a test on resourceVersion, so `UidEmulator` stamps both on create; labelSelector
ignored (the operator filters too); PUT answers 404 (the operator only patches); /status
patches merge into the whole object.
No kubelet runs: `kubelet_runs` plays one by patching pod status and the daemon's report.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import kmock
import kopf
import pytest
from vrrp_operator.handlers import Runtime, register
from vrrp_operator.kube import KubeClient
from vrrp_operator.manifests import DaemonSettings
from vrrp_operator.settings import OperatorSettings
from vrrp_operator.status import REPORT_LAG_S

from tests.operator.harness import HarnessTasks, running_operator


class UidEmulator(kmock.KubernetesEmulator):
    """kmock that gives created objects a uid, a resourceVersion and (generateName) a name,
    as an API server does."""

    async def _handle(self, request: Any) -> Any:
        if request.action == kmock.action.CREATE and isinstance(request.data, dict):
            meta = request.data.setdefault("metadata", {})
            if "name" not in meta and "generateName" in meta:  # kopf's Events
                meta["name"] = meta["generateName"] + uuid.uuid4().hex[:8]
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("resourceVersion", "1")  # never changes: kopf's test op holds
        return await super()._handle(request)


pytestmark = [
    pytest.mark.looptime,
    pytest.mark.kmock(cls=UidEmulator),
    pytest.mark.filterwarnings("ignore:read_binary is deprecated:DeprecationWarning"),
]

NS = "kube-vrrp"
VIPS = "kubevrrp.io/v1alpha1/virtualips"
VIP_PATH = "/apis/kubevrrp.io/v1alpha1/namespaces/default/virtualips"
NODES = {
    "node-1": ("192.168.77.11", {"role": "edge"}),
    "node-2": ("192.168.77.12", {"role": "edge"}),
    "node-3": ("192.168.77.13", {"role": "worker"}),
}


def node_object(name: str, address: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels, "uid": f"uid-{name}"},
        "spec": {},
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": address},
                {"type": "Hostname", "address": name},
            ],
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def virtualip(name: str, address: str = "192.168.77.100/24", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kubevrrp.io/v1alpha1",
        "kind": "VirtualIP",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"addresses": [address], **spec},
    }


def live(
    cluster: kmock.KubernetesEmulator, resource: str, namespace: str | None, name: str
) -> dict[str, Any] | None:
    try:
        obj = cluster.objects[resource, namespace, name]
    except KeyError:
        return None
    return None if obj.deleted else obj.raw


def names(cluster: kmock.KubernetesEmulator, resource: str) -> set[str]:
    found = set()
    for n in [*NODES, "node-9"]:
        if live(cluster, resource, NS, f"vrrpd-{n}") is not None:
            found.add(f"vrrpd-{n}")
    return found


async def eventually(check: Callable[[], Any], timeout: float = 60.0) -> Any:
    """Poll until `check()` is truthy (in loop time: looptime makes the waits free)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"not reached within {timeout}s: {check}")
        await asyncio.sleep(0.2)


@pytest.fixture
async def cluster(kmock: kmock.KubernetesEmulator) -> kmock.KubernetesEmulator:
    kmock.resources.load_bundled()
    kmock.resources[VIPS] = kmock.ResourceInfo(
        kind="VirtualIP",
        singular="virtualip",
        shortnames={"vip"},
        namespaced=True,
        subresources={"status"},
        verbs={"get", "list", "watch", "create", "patch", "delete"},
    )
    for name, (address, labels) in NODES.items():
        kmock.objects["v1/nodes", None, name] = node_object(name, address, labels)
    return kmock


@pytest.fixture
async def operator(cluster: kmock.KubernetesEmulator) -> AsyncIterator[Runtime]:
    async with running_operator(
        str(cluster.url), namespace=NS, image="kube-vrrp/vrrpd:test", status_interval_s=1.0
    ) as runtime:
        yield runtime
    await asyncio.sleep(1)


async def kubelet_runs(
    cluster: kmock.KubernetesEmulator, node: str, *instances: dict[str, Any]
) -> None:
    """Play the kubelet and the daemon: the pod runs, is ready, and reports `instances`."""
    report = {"node": node, "instances": list(instances)}
    patch = {
        "metadata": {"annotations": {"kubevrrp.io/status": json.dumps(report)}},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
    }
    resp = await cluster.patch(f"/api/v1/namespaces/{NS}/pods/vrrpd-{node}", json=patch)
    assert resp.status == 200


async def test_apply_creates_daemon_objects_for_selected_nodes(
    cluster: kmock.KubernetesEmulator, operator: Runtime
) -> None:
    resp = await cluster.post(
        VIP_PATH, json=virtualip("web", nodeSelector={"matchLabels": {"role": "edge"}})
    )
    assert resp.status == 200
    want = {"vrrpd-node-1", "vrrpd-node-2"}
    await eventually(lambda: names(cluster, "v1/pods") == want)
    assert names(cluster, "v1/configmaps") == want
    assert names(cluster, "v1/secrets") == want

    cm = live(cluster, "v1/configmaps", NS, "vrrpd-node-1")
    assert cm is not None
    docs = cm["data"]["virtualips.yaml"]
    assert "name: web" in docs and "vrid: 1" in docs and "nodeName: node-1" in docs
    pod = live(cluster, "v1/pods", NS, "vrrpd-node-1")
    assert pod is not None
    assert pod["spec"]["nodeName"] == "node-1" and pod["spec"]["hostNetwork"] is True
    assert pod["metadata"]["ownerReferences"][0]["uid"] == "uid-node-1"
    assert pod["spec"]["containers"][0]["image"] == "kube-vrrp/vrrpd:test"

    vip = await eventually(
        lambda: (
            (live(cluster, VIPS, "default", "web") or {}).get("status", {}).get("vrid")
            and live(cluster, VIPS, "default", "web")
        )
    )
    assert vip["status"]["vrid"] == 1
    assert "kubevrrp.io/finalizer" in vip["metadata"]["finalizers"]


async def test_deleted_pod_is_recreated(
    cluster: kmock.KubernetesEmulator, operator: Runtime
) -> None:
    await cluster.post(VIP_PATH, json=virtualip("web"))
    await eventually(lambda: len(names(cluster, "v1/pods")) == 3)
    created = len(cluster.objects["v1/pods", NS, "vrrpd-node-2"].history)
    resp = await cluster.delete(f"/api/v1/namespaces/{NS}/pods/vrrpd-node-2")
    assert resp.status == 200
    await eventually(
        lambda: (
            len(cluster.objects["v1/pods", NS, "vrrpd-node-2"].history) > created + 1
            and live(cluster, "v1/pods", NS, "vrrpd-node-2")
        )
    )
    assert names(cluster, "v1/pods") == {"vrrpd-node-1", "vrrpd-node-2", "vrrpd-node-3"}


async def test_node_leaving_the_selection_loses_its_daemon(
    cluster: kmock.KubernetesEmulator, operator: Runtime
) -> None:
    await cluster.post(
        VIP_PATH, json=virtualip("web", nodeSelector={"matchLabels": {"role": "edge"}})
    )
    await eventually(lambda: names(cluster, "v1/pods") == {"vrrpd-node-1", "vrrpd-node-2"})
    await cluster.patch("/api/v1/nodes/node-2", json={"metadata": {"labels": {"role": "worker"}}})
    await eventually(lambda: names(cluster, "v1/pods") == {"vrrpd-node-1"})
    await eventually(lambda: names(cluster, "v1/configmaps") == {"vrrpd-node-1"})
    assert names(cluster, "v1/secrets") == {"vrrpd-node-1"}
    # ... and the remaining node's unicast-free config is untouched by it:
    await cluster.patch("/api/v1/nodes/node-3", json={"metadata": {"labels": {"role": "edge"}}})
    await eventually(lambda: names(cluster, "v1/pods") == {"vrrpd-node-1", "vrrpd-node-3"})


async def test_delete_virtualip_removes_everything(
    cluster: kmock.KubernetesEmulator, operator: Runtime
) -> None:
    await cluster.post(VIP_PATH, json=virtualip("web"))
    await cluster.post(
        VIP_PATH,
        json=virtualip("api", "192.168.77.101/24", nodeSelector={"matchLabels": {"role": "edge"}}),
    )
    await eventually(lambda: len(names(cluster, "v1/pods")) == 3)
    await eventually(
        lambda: (
            "name: api"
            in (live(cluster, "v1/configmaps", NS, "vrrpd-node-1") or {})
            .get("data", {})
            .get("virtualips.yaml", "")
        )
    )

    await cluster.delete(f"{VIP_PATH}/web")
    # node-3 only ran web: its daemon goes; node-1/2 keep api only.
    await eventually(lambda: names(cluster, "v1/pods") == {"vrrpd-node-1", "vrrpd-node-2"})
    await eventually(lambda: live(cluster, VIPS, "default", "web") is None)
    text = (live(cluster, "v1/configmaps", NS, "vrrpd-node-1") or {})["data"]["virtualips.yaml"]
    assert "name: web" not in text and "name: api" in text

    await cluster.delete(f"{VIP_PATH}/api")
    await eventually(lambda: names(cluster, "v1/pods") == set())
    await eventually(
        lambda: names(cluster, "v1/configmaps") == names(cluster, "v1/secrets") == set()
    )
    await eventually(lambda: live(cluster, VIPS, "default", "api") is None)


async def test_password_reaches_the_secret_not_the_configmap(
    cluster: kmock.KubernetesEmulator, operator: Runtime
) -> None:
    password = "p4ss"
    resp = await cluster.post(
        "/api/v1/namespaces/default/secrets",
        json={
            "metadata": {"name": "vrrp-auth", "namespace": "default"},
            "data": {"password": base64.b64encode(password.encode()).decode()},
        },
    )
    assert resp.status == 200
    await cluster.post(
        VIP_PATH,
        json=virtualip(
            "legacy",
            version=2,
            authentication={"secretRef": {"name": "vrrp-auth", "key": "password"}},
        ),
    )
    await eventually(lambda: len(names(cluster, "v1/secrets")) == 3)
    secret = live(cluster, "v1/secrets", NS, "vrrpd-node-1")
    assert secret is not None
    assert secret["data"] == {
        "default_vrrp-auth_password": base64.b64encode(password.encode()).decode()
    }
    for n in NODES:
        cm = live(cluster, "v1/configmaps", NS, f"vrrpd-{n}")
        assert cm is not None and password not in json.dumps(cm)


async def test_reports_become_status_and_events(
    cluster: kmock.KubernetesEmulator, operator: Runtime
) -> None:
    await cluster.post(
        VIP_PATH, json=virtualip("web", nodeSelector={"matchLabels": {"role": "edge"}})
    )
    await eventually(lambda: names(cluster, "v1/pods") == {"vrrpd-node-1", "vrrpd-node-2"})
    row = {
        "name": "default/web/ipv4",
        "priority": 100,
        "effectivePriority": 100,
        "since": "2025-01-01T00:00:00Z",
    }
    await kubelet_runs(cluster, "node-1", {**row, "state": "MASTER"})
    await kubelet_runs(cluster, "node-2", {**row, "state": "BACKUP"})

    def status() -> dict[str, Any]:
        return dict((live(cluster, VIPS, "default", "web") or {}).get("status") or {})

    await eventually(lambda: status().get("master") == "node-1")
    s = status()
    assert [n["state"] for n in s["nodes"]] == ["MASTER", "BACKUP"]
    ready = next(c for c in s["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "MasterElected")

    # The master fails over: status and a MasterChanged Event follow.
    await kubelet_runs(
        cluster, "node-1", {**row, "state": "FAULT", "reason": "probe haproxy failed"}
    )
    await kubelet_runs(cluster, "node-2", {**row, "state": "MASTER"})
    await eventually(lambda: status().get("master") == "node-2")
    assert status()["transitions"] == 2

    def reasons() -> list[str]:
        found = []
        for (resource, _, _), obj in cluster.objects.items():
            if resource.plural == "events" and not obj.deleted:
                found.append(obj.raw.get("reason"))
        return found

    await eventually(lambda: {"MasterChanged", "ProbeFailed"} <= set(reasons()))


async def test_a_handover_keeps_the_master_until_the_new_one_reports(
    cluster: kmock.KubernetesEmulator, operator: Runtime
) -> None:
    await cluster.post(
        VIP_PATH, json=virtualip("web", nodeSelector={"matchLabels": {"role": "edge"}})
    )
    await eventually(lambda: names(cluster, "v1/pods") == {"vrrpd-node-1", "vrrpd-node-2"})
    row = {"name": "default/web/ipv4", "priority": 100, "since": "2025-01-01T00:00:00Z"}
    await kubelet_runs(cluster, "node-1", {**row, "state": "MASTER"})
    await kubelet_runs(cluster, "node-2", {**row, "state": "BACKUP"})

    def status() -> dict[str, Any]:
        return dict((live(cluster, VIPS, "default", "web") or {}).get("status") or {})

    def messages() -> list[str]:
        return [
            str(obj.raw.get("message"))
            for (resource, _, _), obj in cluster.objects.items()
            if resource.plural == "events" and obj.raw.get("reason") == "MasterChanged"
        ]

    await eventually(lambda: status().get("master") == "node-1")
    # node-1 handed over: its report says so before node-2's report of the takeover comes.
    await kubelet_runs(cluster, "node-1", {**row, "state": "BACKUP"})
    await asyncio.sleep(REPORT_LAG_S - 0.2)  # status rounds every 1 s saw no MASTER
    assert status()["master"] == "node-1"
    await kubelet_runs(cluster, "node-2", {**row, "state": "MASTER"})
    await eventually(lambda: status().get("master") == "node-2")
    assert messages() == ["node-1 is now MASTER", "node-2 is now MASTER (was node-1)"]

    # A master lost for good is reported REPORT_LAG_S later.
    await kubelet_runs(cluster, "node-2", {**row, "state": "FAULT"})
    await eventually(lambda: status().get("master") is None)
    assert messages()[-1] == "no node is MASTER any more (was node-2)"


async def test_load_balancer_service_gets_the_vip(
    cluster: kmock.KubernetesEmulator, operator: Runtime
) -> None:
    service = {
        "metadata": {"name": "ingress", "namespace": "default"},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 443}]},
    }
    classed = {
        "metadata": {
            "name": "api",
            "namespace": "default",
            "annotations": {"kubevrrp.io/virtualip": "api"},
        },
        "spec": {"type": "LoadBalancer", "loadBalancerClass": "kubevrrp.io/vrrp"},
    }
    await cluster.post("/api/v1/namespaces/default/services", json=service)
    await cluster.post("/api/v1/namespaces/default/services", json=classed)
    await cluster.post(VIP_PATH, json=virtualip("web", serviceRef={"name": "ingress"}))
    await cluster.post(VIP_PATH, json=virtualip("api", "192.168.77.101/24"))

    def ingress(name: str) -> Any:
        return (
            ((live(cluster, "v1/services", "default", name) or {}).get("status") or {})
            .get("loadBalancer", {})
            .get("ingress")
        )

    await eventually(lambda: ingress("ingress") == [{"ip": "192.168.77.100"}])
    await eventually(lambda: ingress("api") == [{"ip": "192.168.77.101"}])
    await cluster.delete(f"{VIP_PATH}/web")
    await eventually(lambda: ingress("ingress") == [])


async def test_vrid_conflict_is_reported(
    cluster: kmock.KubernetesEmulator, operator: Runtime
) -> None:
    first = virtualip("first", vrid=42)
    first["metadata"]["creationTimestamp"] = "2025-01-01T00:00:00Z"
    second = virtualip("second", "192.168.77.101/24", vrid=42)
    second["metadata"]["creationTimestamp"] = "2025-02-01T00:00:00Z"
    await cluster.post(VIP_PATH, json=first)
    await cluster.post(VIP_PATH, json=second)

    def conditions() -> dict[str, Any]:
        obj = live(cluster, VIPS, "default", "second") or {}
        return {c["type"]: c for c in (obj.get("status") or {}).get("conditions", [])}

    await eventually(lambda: conditions().get("VRIDConflict", {}).get("status") == "True")
    assert "default/first" in conditions()["VRIDConflict"]["message"]
    text = (live(cluster, "v1/configmaps", NS, "vrrpd-node-1") or {})["data"]["virtualips.yaml"]
    assert "name: first" in text and "name: second" not in text


async def test_a_split_brain_is_reported_once_two_masters_overlap_long_enough(
    cluster: kmock.KubernetesEmulator, operator: Runtime
) -> None:
    # Status time follows the loop's (fake) time, so two adverts pass for both.
    loop = asyncio.get_running_loop()
    start = datetime.now(UTC) - timedelta(seconds=loop.time())
    operator.statuses.clock = lambda: start + timedelta(seconds=loop.time())
    await cluster.post(VIP_PATH, json=virtualip("web", advertInterval="1s"))
    await eventually(lambda: len(names(cluster, "v1/pods")) == 3)
    since = operator.statuses.clock()
    row = {"name": "default/web/ipv4", "priority": 100,
           "since": since.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}  # fmt: skip
    await kubelet_runs(cluster, "node-1", {**row, "state": "MASTER"})
    await kubelet_runs(cluster, "node-2", {**row, "state": "MASTER"})
    await kubelet_runs(cluster, "node-3", {**row, "state": "BACKUP"})

    def split() -> dict[str, Any]:
        obj = live(cluster, VIPS, "default", "web") or {}
        found = {c["type"]: c for c in (obj.get("status") or {}).get("conditions", [])}
        return found.get("SplitBrain", {})

    await eventually(lambda: (obj := live(cluster, VIPS, "default", "web"))
                     and obj.get("status", {}).get("master") == "node-1,node-2")  # fmt: skip
    assert split()["status"] == "False"  # a preemption overlaps this long too
    # No report changes any more: the overlap alone makes it one, after two adverts.
    await eventually(lambda: split().get("status") == "True")
    assert 2.0 < (operator.statuses.clock() - since).total_seconds() < 3.0
    assert "node-1, node-2 all MASTER for IPv4" in split()["message"]


async def test_a_claimant_of_a_held_address_is_refused_alone(
    cluster: kmock.KubernetesEmulator, operator: Runtime
) -> None:
    holder = virtualip("web")
    holder["metadata"] |= {"namespace": "tenant-a", "creationTimestamp": "2025-01-01T00:00:00Z"}
    claimant = virtualip("web")
    claimant["metadata"] |= {"namespace": "tenant-b", "creationTimestamp": "2025-02-01T00:00:00Z"}
    third = virtualip("api", "192.168.77.101/24")
    for obj in (claimant, third, holder):
        ns = obj["metadata"]["namespace"]
        await cluster.post(f"/apis/kubevrrp.io/v1alpha1/namespaces/{ns}/virtualips", json=obj)

    def ready(namespace: str) -> dict[str, Any]:
        obj = live(cluster, VIPS, namespace, "web") or {}
        found = {c["type"]: c for c in (obj.get("status") or {}).get("conditions", [])}
        return found.get("Ready", {})

    await eventually(lambda: ready("tenant-b").get("reason") == "AddressConflict")
    assert "belongs to tenant-a/web" in ready("tenant-b")["message"]
    for n in NODES:
        text = (live(cluster, "v1/configmaps", NS, f"vrrpd-{n}") or {})["data"]["virtualips.yaml"]
        assert "namespace: tenant-a" in text and "name: api" in text
        assert "namespace: tenant-b" not in text

    def events() -> list[dict[str, Any]]:
        return [
            obj.raw for (resource, _, _), obj in cluster.objects.items()
            if resource.plural == "events" and not obj.deleted
            and obj.raw.get("reason") == "AddressConflict"
        ]  # fmt: skip

    (event,) = await eventually(events)
    assert event["involvedObject"]["namespace"] == "tenant-b"
    assert "192.168.77.100 belongs to tenant-a/web" in event["message"]


class CountingClient(KubeClient):
    """Counts the writes one operator replica makes."""

    writes = 0

    async def request(self, method: str, path: str, **kw: Any) -> Any:
        if method != "GET":
            self.writes += 1
        return await super().request(method, path, **kw)


async def test_two_replicas_never_both_act(cluster: kmock.KubernetesEmulator) -> None:
    cluster.resources["kopf.dev/v1/clusterkopfpeerings"] = kmock.ResourceInfo(
        kind="ClusterKopfPeering",
        namespaced=False,
        verbs={"get", "list", "watch", "create", "patch", "delete"},
    )
    resp = await cluster.post(
        "/apis/kopf.dev/v1/clusterkopfpeerings", json={"metadata": {"name": "kube-vrrp"}}
    )
    assert resp.status == 200
    replicas: list[tuple[CountingClient, asyncio.Event, asyncio.Task[None]]] = []
    for priority in (10, 20):
        settings = OperatorSettings(
            daemon=DaemonSettings(namespace=NS),
            peering="mandatory",
            liveness_endpoint=None,
        )
        client = CountingClient.for_host(str(cluster.url))
        assert isinstance(client, CountingClient)
        registry = kopf.OperatorRegistry()

        @kopf.on.login(registry=registry)
        def login(**_: Any) -> kopf.ConnectionInfo:
            return kopf.ConnectionInfo(server=str(cluster.url))

        register(registry, Runtime(settings, client))
        stop = asyncio.Event()
        root = await kopf.spawn_tasks(
            registry=registry,
            clusterwide=True,
            priority=priority,
            peering_name="kube-vrrp",
            identity=f"replica-{priority}",  # type: ignore[arg-type]  # one process, two peers
            stop_flag=stop,
        )
        replicas.append(
            (client, stop, asyncio.create_task(kopf.run_tasks(root, ignored=HarnessTasks())))
        )
    try:
        await asyncio.sleep(5)  # the peers see each other; the lower one pauses
        await cluster.post(VIP_PATH, json=virtualip("web"))
        await eventually(lambda: len(names(cluster, "v1/pods")) == 3)
        await asyncio.sleep(5)
        low, high = replicas[0][0], replicas[1][0]
        assert low.writes == 0
        assert high.writes > 0
    finally:
        for _, stop, _ in replicas:
            stop.set()
        # Each replica's kopf cancels every kopf task it did not start, the other replica's
        # included (kopf assumes it owns the loop): their cancellation is expected here.
        tasks = [t for _, _, t in replicas]
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout=120)
