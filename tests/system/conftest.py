"""The system under test, without a cluster: kmock as the API server, the operator (kopf) in
this process, three lab nodes (network namespaces on one bridge) and a test kubelet that runs
each daemon pod as a real `vrrpd` in its node's namespace.

    test process (host network namespace)                 lab node namespaces n1 n2 n3
    ┌──────────────────────────────────────────┐           ┌──────────────────────────────┐
    │ kmock :PORT on 127.0.0.1  ◄── kopf        │           │ vrrpd --kube --kube-api      │
    │   ▲        ▲                 operator     │           │   http://127.0.0.1:6443      │
    │   │        └── test kubelet (pods → procs)│           │        │                     │
    │   └── UNIX server api.sock ◄──────────────┼───────────┼── relay.py 127.0.0.1:6443    │
    └──────────────────────────────────────────┘ filesystem └──────────────────────────────┘

A namespace cannot reach the host's loopback, but UNIX sockets live in the shared
filesystem: relay.py (in each node namespace) forwards every TCP connection to api.sock,
where this process forwards it to kmock's TCP port.

The emulator adds what kmock leaves out and the system needs: uid, resourceVersion and
creationTimestamp on create, names for generateName (kopf's Events), and graceful pod
deletion (a finalizer the kubelet removes once the process has stopped; see kubelet.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

OPERATOR_DIR = Path(__file__).resolve().parents[2] / "operator"
if str(OPERATOR_DIR) not in sys.path:
    sys.path.insert(0, str(OPERATOR_DIR))

import kmock  # noqa: E402

from tests.operator.harness import running_operator  # noqa: E402
from tests.system.kubelet import KUBELET_FINALIZER, Kubelet  # noqa: E402
from vrrpd.lab.netns import Lab  # noqa: E402

NS = "kube-vrrp"  # the operator's namespace: daemon ConfigMaps, Secrets, Pods
VIPS = "kubevrrp.io/v1alpha1/virtualips"
LAB_PREFIX = "kvs"
RELAY_PORT = 6443  # on each node namespace's own loopback
RELAY = Path(__file__).with_name("relay.py")
NODE_LABELS = {"role": "edge"}


class SystemEmulator(kmock.KubernetesEmulator):
    """kmock plus what an API server does on create, and graceful pod deletion."""

    async def _handle(self, request: Any) -> Any:
        if request.action == kmock.action.CREATE and isinstance(request.data, dict):
            meta = request.data.setdefault("metadata", {})
            if "name" not in meta and "generateName" in meta:  # kopf's Events
                meta["name"] = meta["generateName"] + uuid.uuid4().hex[:8]
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("resourceVersion", "1")  # never changes: kopf's test op holds
            meta.setdefault("creationTimestamp", datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
            if request.resource is not None and request.resource.plural == "pods":
                # DELETE then only sets deletionTimestamp; the kubelet removes the finalizer
                # when the process is gone, as kubelet + API server do with a grace period.
                finalizers = meta.setdefault("finalizers", [])
                if KUBELET_FINALIZER not in finalizers:
                    finalizers.append(KUBELET_FINALIZER)
                request.data.setdefault("status", {"phase": "Pending"})
        return await super()._handle(request)


def node_object(name: str, address: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "uid": f"uid-{name}",
            "labels": {"kubernetes.io/hostname": name, **NODE_LABELS},
        },
        "spec": {},
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": address},
                {"type": "Hostname", "address": name},
            ],
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


# --- the lab and the way into it ------------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def _remove_stale_labs() -> None:
    if os.geteuid() == 0:
        Lab.cleanup_stale(LAB_PREFIX)


@pytest.fixture
def workdir() -> Iterator[Path]:
    """Short paths (UNIX socket paths stop at 107 bytes), removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="kv-sys-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def lab(workdir: Path) -> Iterator[Lab]:
    """Three nodes n1..n3 at 192.168.77.11..13 on eth0; torn down whatever happens."""
    lab = Lab(3, prefix=LAB_PREFIX, unique=True, workdir=workdir / "lab")
    try:
        yield lab
    finally:
        lab.close()


@pytest.fixture
async def cluster(kmock: kmock.KubernetesEmulator, lab: Lab) -> kmock.KubernetesEmulator:
    """kmock with the VirtualIP resource and one Node per lab node."""
    kmock.resources.load_bundled()
    kmock.resources[VIPS] = kmock.ResourceInfo(
        kind="VirtualIP",
        singular="virtualip",
        shortnames={"vip"},
        namespaced=True,
        subresources={"status"},
        verbs={"get", "list", "watch", "create", "patch", "delete"},
    )
    for node in lab.nodes:
        kmock.objects["v1/nodes", None, node.name] = node_object(node.name, node.address4)
    return kmock


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass


@pytest.fixture
async def api_socket(cluster: kmock.KubernetesEmulator, workdir: Path) -> AsyncIterator[Path]:
    """The host half of the relay: a UNIX socket forwarding each connection to kmock."""
    path = workdir / "api.sock"
    host, port = cluster.url.host, cluster.url.port
    assert host is not None and port is not None
    writers: set[asyncio.StreamWriter] = set()

    async def on_connect(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        writers.add(w)
        try:
            up_r, up_w = await asyncio.open_connection(host, port)
        except OSError:
            w.close()
            writers.discard(w)
            return
        writers.add(up_w)
        try:
            await asyncio.gather(_pipe(r, up_w), _pipe(up_r, w))
        finally:
            for x in (w, up_w):
                x.close()
                writers.discard(x)

    server = await asyncio.start_unix_server(on_connect, str(path))
    try:
        yield path
    finally:
        server.close()
        for w in list(writers):
            w.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 5)
        path.unlink(missing_ok=True)


@pytest.fixture
def node_api(lab: Lab, api_socket: Path, workdir: Path) -> str:
    """The API server as a daemon inside any node namespace sees it (relay.py on each node;
    the lab stops the relays when it closes)."""
    for node in lab.nodes:
        log = open(workdir / f"relay-{node.name}.log", "ab")  # noqa: SIM115
        proc = lab.run(
            node.netns,
            [sys.executable, str(RELAY), f"127.0.0.1:{RELAY_PORT}", str(api_socket)],
            stdout=subprocess.PIPE,
            stderr=log,
        )
        log.close()
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 15.0)
        line = proc.stdout.readline().decode() if ready else ""
        if not line.startswith("ready"):
            raise RuntimeError(f"relay in {node.netns} did not start: {line!r}")
    return f"http://127.0.0.1:{RELAY_PORT}"


# --- the operator ------------------------------------------------------------------------------


@pytest.fixture
async def operator(cluster: kmock.KubernetesEmulator) -> AsyncIterator[Any]:
    async with running_operator(
        str(cluster.url), namespace=NS, image="kube-vrrp/vrrpd:system-test",
        status_interval_s=0.5,
    ) as runtime:  # fmt: skip
        yield runtime


@pytest.fixture
async def kubelet(
    cluster: kmock.KubernetesEmulator, lab: Lab, node_api: str, workdir: Path, operator: Any
) -> AsyncIterator[Kubelet]:
    """The test kubelet on every lab node; it stops its processes before the operator stops."""
    k = Kubelet(
        str(cluster.url),
        lab,
        {node.name: node.index for node in lab.nodes},
        workdir / "kubelet",
        extra_args=("--kube-api", node_api),
    )
    await k.start()
    try:
        yield k
    finally:
        await k.close()
