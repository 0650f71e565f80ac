"""The chart installed for real and the operator running as its ServiceAccount, on kube_api.

    release = install_chart(kube_api)                   # helm install, CRDs included
    with running_operator(release) as operator:         # the Deployment's env, its SA's token
        ...
        assert kube_api.forbidden(release.operator_user) == []

`install_chart` runs the real helm binary (tests/chart/kubetools.py) against the real API
server; `running_operator` starts the operator the way the chart's Deployment runs it (its
command, args and environment as the API server stores them, the peering mode they
configure), authenticated only by a token of the Deployment's ServiceAccount from the
TokenRequest API. No controller-manager or kubelet runs, so what they would do is done here
on request: a namespace's `default` ServiceAccount (`kube_api.namespace`), finishing the
graceful deletion of pods (`finish_pod_deletions`), a pod's phase (`set_pod_phase`).

A daemon in a network namespace reaches the API server through `UnixForwarder` (the host
half) and tests/system/relay.py (the half inside the namespace), both started for every
node of a lab by `api_in_namespaces`: TLS passes through both, so the daemon checks the
server's certificate for 127.0.0.1 as it would any other.

Shared by the real-API tests, and meant for the system test and the benchmarks too.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

from tests.chart.kubetools import tool
from tests.envtest import ApiServer, free_port

if TYPE_CHECKING:
    from vrrpd.lab.netns import Lab

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "kube-vrrp"
RELEASE = "kube-vrrp"
NAMESPACE = "kube-vrrp"
VIP_RESOURCE = "virtualips.kubevrrp.io"
CHART_CRDS = (VIP_RESOURCE, "virtualippools.kubevrrp.io")  # what a release installs and keeps
DAEMON_SELECTOR = "app.kubernetes.io/name=kube-vrrp,app.kubernetes.io/component=daemon"
STOP_TIMEOUT_S = 30.0
RELAY = ROOT / "tests" / "system" / "relay.py"
RELAY_PORT = 6443  # on each node namespace's own loopback

T = TypeVar("T")


def wait_for(check: Callable[[], T], what: str, timeout: float = 30.0, every: float = 0.2) -> T:
    """Poll `check()` until it returns something truthy, which is returned."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what} (last: {result!r})")
        time.sleep(every)


def service_account_user(namespace: str, name: str) -> str:
    """The username a ServiceAccount's token authenticates as (what the audit log shows)."""
    return f"system:serviceaccount:{namespace}:{name}"


class TestNodes:
    """Ready nodes for one test: `nodes(2, role="edge")` makes <test>-1, <test>-2 at
    192.168.77.11, .12 with those labels and kubevrrp.io/test=<test>; `selector` selects
    exactly this test's nodes. The operator serves the whole cluster, so a test's
    VirtualIPs select its own nodes and no other test's."""

    __test__ = False  # not a test class, whatever its name says to pytest
    LABEL = "kubevrrp.io/test"

    def __init__(self, api: ApiServer, test: str) -> None:
        self.api = api
        words = re.sub(r"[^a-z0-9]+", "-", test.lower().removeprefix("test_")).strip("-")
        digest = hashlib.sha256(test.encode()).hexdigest()[:6]
        self.test = f"{words[:30].strip('-')}-{digest}"  # a node name and a label value
        self.made: list[str] = []

    def __call__(self, count: int, first: int = 1, **labels: str) -> dict[str, str]:
        """{name: InternalIP} of the nodes made."""
        out = {}
        for i in range(first, first + count):
            name, address = f"{self.test}-{i}", f"192.168.77.{10 + i}"
            self.api.ready_node(name, address, {self.LABEL: self.test, **labels})
            self.made.append(name)
            out[name] = address
        return out

    @property
    def selector(self) -> dict[str, Any]:
        return {"matchLabels": {self.LABEL: self.test}}

    def delete(self) -> None:
        """Delete the nodes; wait until the operator removed their daemon objects (if it
        made any), finishing the pods' deletion as their kubelet would."""
        if not self.made:
            return
        self.api.kubectl("delete", "node", "--ignore-not-found", "--wait=false", *self.made)
        names = {f"vrrpd-{n}" for n in self.made}
        self.made.clear()

        def gone() -> bool:
            finish_pod_deletions(self.api, NAMESPACE)
            left = (set(daemon_objects(self.api, k)) for k in ("pods", "configmaps", "secrets"))
            return not any(names & found for found in left)

        wait_for(gone, "the deleted nodes' daemon objects gone")


# --- the chart --------------------------------------------------------------------------------


@dataclass
class Release:
    """A helm release of charts/kube-vrrp on `api`, as the API server stores it."""

    api: ApiServer
    name: str
    namespace: str
    values: dict[str, Any]
    install_s: float  # helm install, from start to exit
    workdir: Path  # helm's home, tokens, operator logs: the caller removes it

    def deployment(self) -> dict[str, Any]:
        result = self.api.kubectl(
            "get", "deployment", f"{self.name}-operator", "-n", self.namespace, "-o", "json"
        )
        return dict(json.loads(result.stdout))

    @property
    def operator_service_account(self) -> str:
        return str(self.deployment()["spec"]["template"]["spec"]["serviceAccountName"])

    @property
    def daemon_service_account(self) -> str:
        env = {e["name"]: e.get("value") for e in _container(self.deployment()).get("env", [])}
        return str(env["KUBEVRRP_DAEMON_SERVICE_ACCOUNT"])

    @property
    def operator_user(self) -> str:
        return service_account_user(self.namespace, self.operator_service_account)

    @property
    def daemon_user(self) -> str:
        return service_account_user(self.namespace, self.daemon_service_account)

    def kubeconfig(self, service_account: str, *, seconds: int = 3600) -> Path:
        """A kubeconfig holding only a TokenRequest token of `service_account` (and the CA)."""
        token = self.api.token(self.namespace, service_account, seconds=seconds)
        return self.api.kubeconfig_for_token(token, f"{self.namespace}-{service_account}")

    def token_file(self, service_account: str, *, seconds: int = 3600) -> Path:
        """The token alone, as a pod's projected volume holds it."""
        path = self.workdir / f"{service_account}.token"
        path.write_text(self.api.token(self.namespace, service_account, seconds=seconds))
        path.chmod(0o600)
        return path


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(container)


def _adopt(api: ApiServer, release: str, namespace: str) -> None:
    """Let the release own the chart's CRDs where they exist already (created by kubectl, or
    kept by an earlier release of the same run: the chart keeps its CRDs on uninstall), as
    Helm documents for adopting existing objects; otherwise `helm install` refuses them as
    "not managed by Helm" or as another release's."""
    for crd in CHART_CRDS:
        found = api.kubectl("get", "crd", crd, "--ignore-not-found", "-o", "name").stdout
        if not found.strip():
            continue
        api.kubectl("label", "--overwrite", "crd", crd, "app.kubernetes.io/managed-by=Helm")
        api.kubectl(
            "annotate", "--overwrite", "crd", crd,
            f"meta.helm.sh/release-name={release}", f"meta.helm.sh/release-namespace={namespace}",
        )  # fmt: skip


def install_chart(
    api: ApiServer,
    *,
    name: str = RELEASE,
    namespace: str = NAMESPACE,
    values: dict[str, Any] | None = None,
) -> Release:
    """`helm install` charts/kube-vrrp into `api` with the chart's defaults plus `values`.

    The operator's health port is moved to a free one (other operators may run on this
    host); nothing else differs from a user's install unless `values` says so.
    """
    workdir = Path(tempfile.mkdtemp(prefix="kv-release-"))
    chosen = {"operator": {"healthPort": free_port()}}
    for key, value in (values or {}).items():
        if isinstance(value, dict) and isinstance(chosen.get(key), dict):
            chosen[key] = {**chosen[key], **value}
        else:
            chosen[key] = value
    values_file = workdir / "values.yaml"
    values_file.write_text(yaml.safe_dump(chosen))
    api.namespace(namespace)  # with its `default` ServiceAccount, as a controller-manager makes
    _adopt(api, name, namespace)
    # helm keeps caches and settings under these; a run of its own touches no one else's.
    env = {
        **os.environ,
        **{
            f"HELM_{k}_HOME": str(workdir / "helm" / k.lower()) for k in ("CACHE", "CONFIG", "DATA")
        },
    }
    argv = [
        str(tool("helm")), "install", name, str(CHART), "--namespace", namespace,
        f"--kubeconfig={api.kubeconfig}", "--values", str(values_file), "--timeout", "2m",
    ]  # fmt: skip
    started = time.monotonic()
    result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=180, check=False)
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        raise AssertionError(f"helm install failed ({result.returncode}):\n{result.stderr}")
    return Release(api, name, namespace, chosen, elapsed, workdir)


# --- the operator -----------------------------------------------------------------------------


def script_command(argv: list[str]) -> list[str]:
    """`argv` whose first word is a console script of this project (pyproject's
    [project.scripts], what the image has on its PATH: `vrrpd`, `kube-vrrp-operator`), as
    this interpreter running the script's function from this checkout."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    if not argv or argv[0] not in scripts:
        raise AssertionError(f"{argv}: the first word is none of the scripts {sorted(scripts)}")
    module, function = str(scripts[argv[0]]).split(":")
    bootstrap = f"import sys; from {module} import {function} as f; sys.exit(f())"
    return [sys.executable, "-c", bootstrap, *argv[1:]]


def operator_environment(container: dict[str, Any], *, pod: str, namespace: str) -> dict[str, str]:
    """The container's environment as the kubelet would resolve it for pod `pod`."""
    fields = {"metadata.name": pod, "metadata.namespace": namespace}
    env: dict[str, str] = {}
    for entry in container.get("env", []):
        if "value" in entry:
            env[entry["name"]] = str(entry["value"])
            continue
        path = entry.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
        if path not in fields:
            raise AssertionError(f"env {entry['name']}: {entry.get('valueFrom')} not resolvable")
        env[entry["name"]] = fields[path]
    return env


@dataclass
class Operator:
    """The operator process of a release; its log is `log_path`."""

    release: Release
    pod: str
    process: subprocess.Popen[bytes]
    log_path: Path
    health_url: str

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:  # the release's workdir is gone (the session is over)
            return ""

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.health_url, timeout=2) as response:
                return bool(response.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def stop(self) -> int:
        """SIGTERM, as the kubelet stops a pod; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        return self.process.returncode


@contextlib.contextmanager
def running_operator(
    release: Release, *, pod: str | None = None, env: dict[str, str] | None = None
) -> Iterator[Operator]:
    """The operator as the release's Deployment runs it, as its ServiceAccount; stopped (and
    its peering record released by kopf) on exit. `env` overrides the Deployment's values."""
    deployment = release.deployment()
    container = _container(deployment)
    pod = pod or f"{release.name}-operator-{secrets.token_hex(4)}"
    environment = operator_environment(container, pod=pod, namespace=release.namespace)
    environment.update(env or {})
    kubeconfig = release.kubeconfig(deployment["spec"]["template"]["spec"]["serviceAccountName"])
    process_env = {
        # Only what runs Python from this checkout; no credentials but the token's.
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "operator")]),
        "HOME": str(release.workdir),
        "KUBECONFIG": str(kubeconfig),
        **environment,
    }
    health = environment.get("KUBEVRRP_LIVENESS_ENDPOINT", "").replace("0.0.0.0", "127.0.0.1")
    log_path = release.workdir / f"{pod}.log"
    with log_path.open("wb") as log:
        argv = script_command([*container["command"], *container.get("args", [])])
        process = subprocess.Popen(
            argv, env=process_env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, cwd=release.workdir,
        )  # fmt: skip
    operator = Operator(release, pod, process, log_path, health)
    try:
        wait_for(
            lambda: process.poll() is not None or operator.healthy(),
            f"the operator's health endpoint {health}",
        )
        if process.poll() is not None:
            raise AssertionError(
                f"the operator exited with {process.returncode}:\n{operator.log()}"
            )
        yield operator
    finally:
        operator.stop()


# --- reading and writing as the admin ---------------------------------------------------------


def virtualip(
    name: str, selector: dict[str, Any], namespace: str = "default", **spec: Any
) -> dict[str, Any]:
    """A VirtualIP manifest on `selector`'s nodes (192.168.77.100/24 unless `addresses`)."""
    return {
        "apiVersion": "kubevrrp.io/v1alpha1",
        "kind": "VirtualIP",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"addresses": ["192.168.77.100/24"], "nodeSelector": selector, **spec},
    }


_ADMIN: dict[Path, Any] = {}


def admin(api: ApiServer) -> Any:
    """One admin ApiClient per server (kube_api.client() makes a new one per call)."""
    if api.workdir not in _ADMIN:
        _ADMIN[api.workdir] = api.client()
    return _ADMIN[api.workdir]


def get_virtualip(api: ApiServer, namespace: str, name: str) -> dict[str, Any] | None:
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    try:
        obj = client.CustomObjectsApi(admin(api)).get_namespaced_custom_object(
            "kubevrrp.io", "v1alpha1", namespace, "virtualips", name
        )
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return dict(obj)


def daemon_objects(api: ApiServer, kind: str, namespace: str = NAMESPACE) -> dict[str, Any]:
    """The daemon ConfigMaps, Secrets or Pods ("configmaps", ...) of `namespace`, by name,
    as plain dicts (the API's JSON)."""
    core = admin(api)
    path = f"/api/v1/namespaces/{namespace}/{kind}"
    response = core.call_api(
        *core.param_serialize(
            "GET", path, query_params=[("labelSelector", DAEMON_SELECTOR)],
            header_params={"Accept": "application/json"}, auth_settings=["BearerToken"],
        )
    )  # fmt: skip
    items = json.loads(response.read())["items"]
    return {o["metadata"]["name"]: o for o in items}


def delete_virtualips(api: ApiServer, namespace: str, *names: str) -> None:
    """Delete VirtualIPs and wait until they are gone (the operator's finalizer done),
    finishing daemon pods' deletion on the way as their kubelet would."""
    api.kubectl("delete", "vip", "-n", namespace, "--ignore-not-found", "--wait=false", *names)

    def gone() -> bool:
        finish_pod_deletions(api, NAMESPACE)
        return all(get_virtualip(api, namespace, n) is None for n in names)

    wait_for(gone, f"VirtualIPs {', '.join(names)} deleted")


# --- what a daemon would write ----------------------------------------------------------------


def report(api: ApiServer, kubeconfig: Any, node: str, rows: list[dict[str, Any]]) -> None:
    """Write node's daemon report on its pod as the daemon does: one merge patch with its
    ServiceAccount's token (its Role allows no GET, which `kubectl patch` would send)."""
    from kubernetes import client

    document = {"node": node, "configHash": None, "configError": None, "instances": rows,
                "updated": _iso(datetime.now(UTC))}  # fmt: skip
    patch = {"metadata": {"annotations": {"kubevrrp.io/status": json.dumps(document)}}}
    client.CoreV1Api(api.client(kubeconfig)).patch_namespaced_pod(
        f"vrrpd-{node}", NAMESPACE, patch, _content_type="application/merge-patch+json"
    )


def row(key: str, state: str, *, vrid: int, healthy: bool = True, priority: int = 100,
        since_s: float = 60, reason: str = "") -> dict[str, Any]:  # fmt: skip
    """One instance of a report (its IPv4 family), in state `state` for `since_s` seconds."""
    return {
        "name": f"{key}/ipv4", "vrid": vrid, "state": state, "priority": priority,
        "effectivePriority": priority, "healthy": healthy,
        "since": _iso(datetime.now(UTC) - timedelta(seconds=since_s)),
        "reason": reason, "master": None,
    }  # fmt: skip


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# --- what a kubelet would do ------------------------------------------------------------------


def finish_pod_deletions(api: ApiServer, namespace: str) -> list[str]:
    """Remove the pods of `namespace` whose graceful deletion has begun, as their kubelet
    does once the containers have stopped (none ran here); their names."""
    pods = json.loads(api.kubectl("get", "pods", "-n", namespace, "-o", "json").stdout)["items"]
    doomed = [p["metadata"]["name"] for p in pods if p["metadata"].get("deletionTimestamp")]
    if doomed:
        api.kubectl(
            "delete", "pods", "-n", namespace, "--grace-period=0", "--force",
            "--ignore-not-found", "--wait=false", *doomed,
        )  # fmt: skip
    return doomed


def set_pod_phase(api: ApiServer, namespace: str, pod: str, phase: str) -> None:
    """The pod's phase (and Ready with Running) through the status subresource."""
    ready = "True" if phase == "Running" else "False"
    status = {"status": {"phase": phase, "conditions": [{"type": "Ready", "status": ready}]}}
    api.kubectl(
        "patch", "pod", pod, "-n", namespace, "--subresource=status", "--type=merge",
        "-p", json.dumps(status),
    )  # fmt: skip


# --- the way into a network namespace ---------------------------------------------------------


class UnixForwarder:
    """A UNIX socket whose every connection is forwarded to a TCP port on this host.

    A network namespace cannot reach the host's loopback, where kube-apiserver listens, but
    it shares the filesystem: tests/system/relay.py inside the namespace forwards its TCP
    port to this socket. Bytes are copied unchanged (TLS included)."""

    def __init__(self, path: Path, port: int, host: str = "127.0.0.1") -> None:
        self.path = path
        self.target = (host, port)
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(path))
        self._server.listen(64)
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._bridge, args=(client,), daemon=True).start()

    def _bridge(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        with self._lock:
            self._open |= {client, upstream}
        back = threading.Thread(target=_copy, args=(upstream, client), daemon=True)
        back.start()
        _copy(client, upstream)
        back.join()
        with self._lock:
            self._open -= {client, upstream}
        client.close()
        upstream.close()

    def close(self) -> None:
        self._server.close()
        with self._lock:
            for sock in list(self._open):
                with contextlib.suppress(OSError):
                    sock.close()
            self._open.clear()
        self.path.unlink(missing_ok=True)


def _copy(source: socket.socket, sink: socket.socket) -> None:
    """Until EOF, then half-close `sink` (an HTTP client may read until the server closes)."""
    try:
        while data := source.recv(65536):
            sink.sendall(data)
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        pass


@contextlib.contextmanager
def api_in_namespaces(api: ApiServer, lab: Lab) -> Iterator[str]:
    """The API server as a process in any node namespace of `lab` reaches it: its URL there.

    A relay on each node's loopback (stopped when the lab closes), a forwarder on this host.
    """
    sockets = Path(tempfile.mkdtemp(prefix="kv-api-"))  # UNIX socket paths stop at 107 bytes
    forwarder = UnixForwarder(sockets / "api.sock", api.port)
    try:
        for node in lab.nodes:
            relay = lab.run(
                node.netns,
                [sys.executable, str(RELAY), f"127.0.0.1:{RELAY_PORT}", str(forwarder.path)],
                stdout=subprocess.PIPE,
            )
            assert relay.stdout is not None
            ready, _, _ = select.select([relay.stdout], [], [], 15.0)
            line = relay.stdout.readline().decode() if ready else ""
            if not line.startswith("ready"):
                raise AssertionError(f"the relay in {node.netns} did not start: {line!r}")
        yield f"https://127.0.0.1:{RELAY_PORT}"
    finally:
        forwarder.close()
        shutil.rmtree(sockets, ignore_errors=True)
