"""The system under test on the real API server: the chart installed with helm, the operator
as its ServiceAccount, three lab nodes (network namespaces on one bridge) and a test kubelet
that runs each daemon pod as a real `vrrpd` in its node's namespace, as the daemon
ServiceAccount with a token of its own.

Every test runs twice, once per kubelet runtime (`runtime`, test ids [process] and
[podman]): `process` runs the pod's command from this checkout as a process; `podman` runs
the pod's container from the image under test (tests/image/conftest.py: KUBEVRRP_IMAGE, or
built from this checkout) as its spec says, the artefact users install. Where podman
cannot run, the [podman] tests skip with one line saying why (under CI they fail).

    test process (host network namespace)                 lab node namespaces n1 n2 n3
    ┌──────────────────────────────────────────┐           ┌──────────────────────────────┐
    │ kube-apiserver + etcd (kube_api) ◄─ operator          │ vrrpd --kube (a process, or  │
    │   ▲    ▲                     (a subprocess)│           │ a container on the node's    │
    │   │    └── test kubelet (pods → processes  │           │ network) → 127.0.0.1:6443    │
    │   │                         or containers) │           │        │                     │
    │   └── UnixForwarder api.sock ◄─────────────┼───────────┼── relay.py 127.0.0.1:6443    │
    └──────────────────────────────────────────┘ filesystem └──────────────────────────────┘

The relay is a process in the node's namespace, on the host's filesystem: a container on
the node's network reaches it on the namespace's loopback and needs no mount for it.

Each test has its own API nodes (`nodes`: <test>-1..3 at the lab nodes' addresses) and its
own namespace for its VirtualIPs, so Events and names of one test never meet another's. The
operator is one process per test module (tests/conftest.py). `System` is what a test sees,
with node names as the lab's (n1, n2, n3) wherever it reads the API.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.envtest import ApiServer
from tests.image.conftest import image, podman  # noqa: F401 (fixtures of the podman runtime)
from tests.realapi.cluster import (
    NAMESPACE,
    Operator,
    Release,
    TestNodes,
    admin,
    api_in_namespaces,
    daemon_objects,
    get_virtualip,
)
from tests.system.kubelet import Kubelet, PodmanRuntime, ProcessRuntime, RunningPod, Runtime
from vrrpd.lab.netns import Lab

LAB_PREFIX = "kvs"
TIMEOUT = 30.0  # for anything that takes a few adverts and a status round or two


@pytest.fixture(scope="session", autouse=True)
def _remove_stale_labs() -> None:
    if os.geteuid() == 0:
        Lab.cleanup_stale(LAB_PREFIX)


@pytest.fixture
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="kv-sys-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def lab(workdir: Path) -> Iterator[Lab]:
    """Three nodes n1..n3 at 192.168.77.11..13 on eth0 and a client; torn down whatever
    happens."""
    lab = Lab(3, prefix=LAB_PREFIX, unique=True, workdir=workdir / "lab")
    try:
        yield lab
    finally:
        lab.close()


class System:
    """What a test sees: the API (as the admin), the nodes (lab) and the daemons (kubelet)."""

    def __init__(
        self, api: ApiServer, lab: Lab, kubelet: Kubelet, nodes: TestNodes, namespace: str
    ) -> None:
        self.api = api
        self.lab = lab
        self.kubelet = kubelet
        self.nodes = nodes
        self.namespace = namespace  # of this test's VirtualIPs
        self.names = {n.name: f"{nodes.test}-{n.index}" for n in lab.nodes}  # n1 -> API node
        self._short = {v: k for k, v in self.names.items()}

    def short(self, text: str) -> str:
        """`text` with API node names written as the lab's (n1, n2, n3)."""
        for name, short in sorted(self._short.items(), key=lambda kv: -len(kv[0])):
            text = text.replace(name, short)
        return text

    def instance(self, name: str) -> str:
        """A daemon's instance name for VirtualIP `name` (IPv4)."""
        return f"{self.namespace}/{name}/ipv4"

    # -- API ------------------------------------------------------------------------------------

    def virtualip(
        self, name: str, address: str, vrid: int, priorities: dict[str, int]
    ) -> dict[str, Any]:
        """A VirtualIP on this test's nodes: 100 ms adverts, preempt Always, per-node
        priorities by lab node name."""
        return {
            "apiVersion": "kubevrrp.io/v1alpha1",
            "kind": "VirtualIP",
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": {
                "addresses": [f"{address}/24"],
                "vrid": vrid,
                "advertInterval": "100ms",
                "nodeSelector": self.nodes.selector,
                "priority": 100,
                "nodePriorities": [
                    {"nodeName": self.names[n], "priority": p} for n, p in priorities.items()
                ],
                "preempt": {"mode": "Always"},
            },
        }

    def apply(self, obj: dict[str, Any]) -> None:
        self.api.apply(obj)

    def patch(self, name: str, patch: dict[str, Any]) -> None:
        self.api.kubectl(
            "patch", "vip", name, "-n", self.namespace, "--type=merge", "-p", json.dumps(patch)
        )

    def delete(self, name: str) -> None:
        self.api.kubectl("delete", "vip", name, "-n", self.namespace, "--wait=false")

    def delete_pod(self, node: str) -> None:
        """`kubectl delete pod` of a node's daemon: the API server begins a graceful deletion."""
        self.api.kubectl("delete", "pod", self.pod_name(node), "-n", NAMESPACE, "--wait=false")

    def exists(self, name: str) -> bool:
        return get_virtualip(self.api, self.namespace, name) is not None

    def status(self, name: str) -> dict[str, Any]:
        """status of VirtualIP `name`, node names as the lab's."""
        obj = get_virtualip(self.api, self.namespace, name) or {}
        return dict(json.loads(self.short(json.dumps(obj.get("status") or {}))))

    def master(self, name: str) -> str | None:
        value = self.status(name).get("master")
        return str(value) if value else None

    def node_status(self, name: str, node: str) -> dict[str, Any]:
        return next((n for n in self.status(name).get("nodes") or () if n["name"] == node), {})

    def events(self, reason: str, name: str) -> list[str]:
        """Messages of the Events with `reason` about VirtualIP `name`, oldest first."""
        from kubernetes import client

        selector = f"involvedObject.name={name},reason={reason}"
        found = client.CoreV1Api(admin(self.api)).list_namespaced_event(
            self.namespace, field_selector=selector
        )
        items = sorted(found.items, key=lambda e: e.metadata.creation_timestamp)
        return [self.short(str(e.message)) for e in items]

    def events_like(self, reason: str, name: str, starts: str) -> list[str]:
        return [m for m in self.events(reason, name) if m.startswith(starts)]

    def pod_name(self, node: str) -> str:
        return f"vrrpd-{self.names[node]}"

    def pod(self, node: str) -> dict[str, Any] | None:
        return daemon_objects(self.api, "pods").get(self.pod_name(node))

    @staticmethod
    def report(pod: dict[str, Any]) -> dict[str, Any]:
        """The daemon's report on its pod (annotation kubevrrp.io/status)."""
        text = (pod["metadata"].get("annotations") or {}).get("kubevrrp.io/status")
        return dict(json.loads(text)) if text else {}

    def state_files(self, node: str) -> list[Path]:
        """The files in the hostPath volume of `node`'s daemon pod, on the node."""
        found = daemon_objects(self.api, "pods")[self.pod_name(node)]
        (volume,) = [v for v in found["spec"]["volumes"] if "hostPath" in v]
        directory = self.kubelet.host_path(found["spec"]["nodeName"], volume["hostPath"]["path"])
        return [f for f in directory.iterdir() if f.is_file()] if directory.is_dir() else []

    def pod_ready(self, node: str) -> bool:
        conditions = ((self.pod(node) or {}).get("status") or {}).get("conditions") or ()
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def daemon_objects(self, kind: str) -> list[str]:
        """The names of this test's daemon objects of `kind` ("pods", ...), as n1, n2..."""
        mine = {self.pod_name(n): n for n in self.names}
        return sorted(mine[name] for name in daemon_objects(self.api, kind) if name in mine)

    # -- nodes ----------------------------------------------------------------------------------

    def holders(self, vip: str) -> list[str]:
        return [self.lab.node(i).name for i in self.lab.holders(vip)]

    def held_by(self, vip: str, nodes: list[str]) -> bool:
        return self.holders(vip) == nodes

    def daemon(self, node: str) -> RunningPod:
        pod = self.kubelet.running(self.names[node])
        assert pod is not None, f"no daemon runs on {node}\n{self.kubelet.describe()}"
        return pod

    # -- waiting ----------------------------------------------------------------------------------

    def until(self, what: str, check: Callable[[], Any], timeout: float = TIMEOUT) -> Any:
        """Poll `check` until it is truthy, which is returned; fail with the whole picture."""
        deadline = time.monotonic() + timeout
        while True:
            result = check()
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"not within {timeout:g}s: {what}\n{self.picture()}")
            time.sleep(0.2)

    def picture(self) -> str:
        lines = []
        for obj in self._virtualips():
            name = obj["metadata"]["name"]
            holders = {a: self.holders(a.split("/")[0]) for a in obj["spec"]["addresses"]}
            lines.append(f"{name}: held by {holders}; status {self.status(name)}"[:2000])
            for reason in ("MasterChanged", "ProbeFailed", "SplitBrain"):
                lines.extend(f"  event {reason}: {m}" for m in self.events(reason, name))
        lines.append(f"pods: {self.daemon_objects('pods')}")
        lines.append(self.kubelet.describe())
        return "\n".join(lines)

    def _virtualips(self) -> list[dict[str, Any]]:
        from kubernetes import client

        found = client.CustomObjectsApi(admin(self.api)).list_namespaced_custom_object(
            "kubevrrp.io", "v1alpha1", self.namespace, "virtualips"
        )
        return list(found["items"])

    def up(self, obj: dict[str, Any], master: str) -> None:
        """Create a VirtualIP and wait until `master` holds it and its status says so."""
        self.apply(obj)
        name, vip = obj["metadata"]["name"], obj["spec"]["addresses"][0].split("/")[0]
        self.until(f"{vip} on {master} only", lambda: self.held_by(vip, [master]))
        self.until(f"{name} status.master == {master}", lambda: self.master(name) == master)

    def no_crashes(self) -> None:
        crashed = [p for p in self.kubelet.history if p.unexpected_exits]
        assert not crashed, f"daemons exited on their own:\n{self.kubelet.describe()}"

    def delete_all(self) -> None:
        """Delete this test's VirtualIPs and wait until they and their daemon objects are
        gone (the kubelet stopping the pods as the operator deletes them)."""
        self.api.kubectl("delete", "vip", "--all", "-n", self.namespace, "--wait=false")
        self.until("this test's VirtualIPs deleted", lambda: not self._virtualips(), 60)
        self.until(
            "this test's daemon objects deleted",
            lambda: not any(self.daemon_objects(k) for k in ("pods", "configmaps", "secrets")),
            60,
        )


@pytest.fixture(params=["process", "podman"])
def runtime(request: pytest.FixtureRequest) -> Callable[[Lab, str], Runtime]:
    """How the kubelet runs pods: given the lab and the API server's URL in its namespaces."""
    if request.param == "process":
        return ProcessRuntime
    tool, tag = request.getfixturevalue("podman"), request.getfixturevalue("image")
    return lambda lab, api_url: PodmanRuntime(tool, tag, api_url)


@pytest.fixture
def system(
    kube_api: ApiServer,
    release: Release,
    operator: Operator,
    nodes: TestNodes,
    lab: Lab,
    workdir: Path,
    runtime: Callable[[Lab, str], Runtime],
) -> Iterator[System]:
    made = nodes(len(lab.nodes))
    namespace = kube_api.namespace(f"sys-{nodes.test}")
    with api_in_namespaces(kube_api, lab) as api_url:
        kubelet = Kubelet(
            admin(kube_api),
            lab,
            {name: i for i, name in enumerate(made, start=1)},
            workdir / "kubelet",
            namespace=release.namespace,
            runtime=runtime(lab, api_url),
        )
        kubelet.start()
        s = System(kube_api, lab, kubelet, nodes, namespace)
        try:
            yield s
            s.delete_all()
            s.no_crashes()  # whatever the test did to them, no daemon exited on its own
            assert kube_api.forbidden(release.operator_user) == []
            assert kube_api.forbidden(release.daemon_user) == []
        finally:
            kubelet.close()
