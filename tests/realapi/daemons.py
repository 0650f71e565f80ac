"""Cluster-mode daemons for real: `vrrpd run --kube` in lab namespaces against the real API
server, with the token of the chart's daemon ServiceAccount bound to the chart's daemon Role
(rendered by the real helm), so a request the Role does not allow shows as a 403.

    test process (host)                                      lab node namespaces n1 n2 ...
    kube-apiserver https://127.0.0.1:PORT                    vrrpd --kube --kube-api
      ▲                                                        https://127.0.0.1:6443
      └── cluster.UnixForwarder: api.sock ◄── filesystem ─── relay.py 127.0.0.1:6443

A namespace cannot reach the host's loopback; UNIX sockets live in the shared filesystem.
Each node runs tests/system/relay.py on its own loopback, and the host half forwards each
connection to the API server's port. TLS goes end to end: the server's certificate names
127.0.0.1, which is what the daemon dials. The daemons' objects live in a namespace of
their own (NS), apart from the chart release the other real-API tests install.

Used by tests/realapi/test_daemon_kube.py and bench/kube.py.
"""

from __future__ import annotations

import contextlib
import json
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from tests.envtest import ApiServer
from tests.realapi.cluster import UnixForwarder
from vrrpd.lab.daemons import VrrpdProcess
from vrrpd.lab.netns import Lab, wait_until

ROOT = Path(__file__).resolve().parents[2]
RELAY = ROOT / "tests" / "system" / "relay.py"
CHART = ROOT / "charts" / "kube-vrrp"
NS = "kv-daemons"
DAEMON_SA = "kube-vrrp-daemon"
DAEMON_USER = f"system:serviceaccount:{NS}:{DAEMON_SA}"
RELAY_PORT = 6443


def virtualip(
    name: str,
    address: str,
    vrid: int,
    priority: int,
    node: str,
    *,
    namespace: str = "default",
    interval: str = "100ms",
) -> dict[str, Any]:
    """A document as the operator renders it into a node's ConfigMap."""
    return {
        "apiVersion": "kubevrrp.io/v1alpha1",
        "kind": "VirtualIP",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "addresses": [address],
            "vrid": vrid,
            "advertInterval": interval,
            "nodePriorities": [{"nodeName": node, "priority": priority}],
        },
    }


def config_text(documents: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(documents, sort_keys=False)


def daemon_token(api: ApiServer, chart: Path = CHART) -> str:
    """The chart's daemon ServiceAccount, Role and RoleBinding (helm template, the real
    binary), applied; a token for that ServiceAccount from the TokenRequest API."""
    from tests.chart.kubetools import tool

    api.namespace(NS)
    rendered = subprocess.run(
        [str(tool("helm")), "template", "kube-vrrp", str(chart), "--namespace", NS,
         "--show-only", "templates/rbac-daemon.yaml",
         "--show-only", "templates/serviceaccounts.yaml"],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout  # fmt: skip
    objects = [o for o in yaml.safe_load_all(rendered) if o]
    assert any(o["kind"] == "Role" for o in objects), rendered
    api.apply(objects)
    return api.token(NS, DAEMON_SA)


class ClusterNodes:
    """Lab nodes n1..nN, each with a ConfigMap and a Pod vrrpd-<node> in the API server and
    a `vrrpd run --kube` in its namespace as that node's daemon."""

    def __init__(self, api: ApiServer, lab: Lab, workdir: Path, chart: Path = CHART) -> None:
        self.api, self.lab, self.workdir = api, lab, workdir
        # The audit log is the whole run's: daemons of earlier tests (tests/image too) had
        # the same user and user agent. Requests from before this set-up are not ours.
        self.born = time.time()
        self.core = _core(api)
        self.token_file = workdir / "token"
        self.token_file.write_text(daemon_token(api, chart))
        self.daemons: dict[str, VrrpdProcess] = {}
        self._clear()
        self.relay = UnixForwarder(workdir / "api.sock", api.port)
        for node in lab.nodes:
            self._start_node_relay(node.netns)

    def _start_node_relay(self, netns: str) -> None:
        log = open(self.workdir / f"relay-{netns}.log", "ab")  # noqa: SIM115
        proc = self.lab.run(
            netns,
            [sys.executable, str(RELAY), f"127.0.0.1:{RELAY_PORT}", str(self.relay.path)],
            stdout=subprocess.PIPE,
            stderr=log,
        )
        log.close()
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 15.0)
        line = proc.stdout.readline().decode() if ready else ""
        if not line.startswith("ready"):
            raise RuntimeError(f"relay in {netns} did not start: {line!r}")

    # ---------------------------------------------------------------- objects

    def _clear(self) -> None:
        """No ConfigMap or Pod of an earlier test in the namespace."""
        for kind in ("configmaps", "pods"):
            self.api.kubectl("delete", kind, "--all", "-n", NS, "--grace-period=0", "--force",
                             "--ignore-not-found", "--wait=false")  # fmt: skip

    def set_config(self, node: str, documents: list[dict[str, Any]] | str) -> float:
        """Create or replace the node's ConfigMap; returns the time just before the write."""
        text = documents if isinstance(documents, str) else config_text(documents)
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"vrrpd-{node}", "namespace": NS},
            "data": {"virtualips.yaml": text},
        }
        from kubernetes.client.exceptions import ApiException

        t0 = time.time()
        try:
            self.core.replace_namespaced_config_map(f"vrrpd-{node}", NS, body)
        except ApiException as exc:
            if exc.status != 404:
                raise
            self.core.create_namespaced_config_map(NS, body)
        return t0

    def create_pod(self, node: str) -> None:
        """The daemon's Pod object (no kubelet here: it stays Pending), for its reports."""
        self.core.create_namespaced_pod(NS, {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"vrrpd-{node}", "namespace": NS},
            "spec": {"nodeName": node, "serviceAccountName": DAEMON_SA,
                     "containers": [{"name": "vrrpd", "image": "kube-vrrp/vrrpd:test"}]},
        })  # fmt: skip

    def report(self, node: str) -> dict[str, Any]:
        pod = self.core.read_namespaced_pod(f"vrrpd-{node}", NS)
        text = (pod.metadata.annotations or {}).get("kubevrrp.io/status")
        return json.loads(text) if text else {}

    # ---------------------------------------------------------------- daemons

    def start(self, index: int, *extra: str, baseline: Path | None = None) -> VrrpdProcess:
        """Node `index`'s daemon; `baseline`: run the vrrpd of that checkout instead, an
        earlier one, perhaps without --kube-ca-file (it is given the CA as SSL_CERT_FILE)."""
        node = self.lab.node(index).name
        state = self.workdir / f"state-{node}"
        secrets = self.workdir / f"secrets-{node}"
        secrets.mkdir(exist_ok=True)
        ca = [] if baseline else [f"--kube-ca-file={self.api.ca_file}"]
        daemon = VrrpdProcess(
            self.lab, index, None,
            extra_args=(
                "--kube", f"--kube-api=https://127.0.0.1:{RELAY_PORT}", *ca,
                f"--kube-token-file={self.token_file}", f"--namespace={NS}",
                f"--pod=vrrpd-{node}", f"--state-dir={state}", f"--secrets-dir={secrets}",
                "--http-address=none", *extra,
            ),
            root=baseline or ROOT,
            env={"SSL_CERT_FILE": str(self.api.ca_file)} if baseline else None,
        ).start()  # fmt: skip
        self.daemons[node] = daemon
        return daemon

    def requests(self, node: str | None, since: float, until: float | None = None) -> list[str]:
        """`verb uri` of each request node's daemon made (its user agent names the node;
        None: every daemon's) between `since` and `until` (Unix time, when the server
        received it). The audit log has a watch twice (when its response starts and when
        it ends): counted once."""
        out, seen = [], set()
        for event in self.api.audit(DAEMON_USER):
            if event["auditID"] in seen:
                continue
            if node is not None and event.get("userAgent") != f"vrrpd/{node}":
                continue
            seen.add(event["auditID"])
            at = _unix(event.get("requestReceivedTimestamp"))
            if at >= max(since, self.born) and (until is None or at < until):
                out.append(f"{event['verb']} {event['requestURI']}")
        return out

    def close(self) -> None:
        for daemon in self.daemons.values():
            with contextlib.suppress(Exception):
                daemon.terminate(10)
        self.relay.close()


def _unix(stamp: Any) -> float:
    if not isinstance(stamp, str):
        return 0.0
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _core(api: ApiServer) -> Any:
    from kubernetes import client

    return client.CoreV1Api(api.client())


def log_time(event: dict[str, Any]) -> float:
    """A JSON log line's time (vrrpd writes milliseconds, UTC)."""
    return _unix(event.get("ts"))


def first_after(
    daemon: VrrpdProcess, since: float, matches: Callable[[dict[str, Any]], bool]
) -> dict[str, Any] | None:
    for event in daemon.events():
        if log_time(event) >= since and matches(event):
            return event
    return None


@contextlib.contextmanager
def cluster_nodes(
    api: ApiServer, nodes: int, prefix: str, chart: Path = CHART
) -> Iterator[ClusterNodes]:
    """A lab of `nodes` nodes with daemons' plumbing, the daemon RBAC of `chart`;
    everything removed afterwards."""
    workdir = Path(tempfile.mkdtemp(prefix="kv-kube-"))  # short: UNIX socket paths
    lab = Lab(nodes, prefix=prefix, unique=True, workdir=workdir / "lab")
    cluster = None
    try:
        cluster = ClusterNodes(api, lab, workdir, chart)
        yield cluster
    finally:
        if cluster is not None:
            cluster.close()
        lab.close()
        shutil.rmtree(workdir, ignore_errors=True)


def wait_report(
    cluster: ClusterNodes, node: str, check: Callable[[dict[str, Any]], bool], timeout: float
) -> dict[str, Any]:
    """The node's report once `check` holds (AssertionError with the last one otherwise)."""
    seen: dict[str, Any] = {}

    def ok() -> bool:
        nonlocal seen
        seen = cluster.report(node)
        return bool(seen) and check(seen)

    if not wait_until(ok, timeout, 0.2):
        raise AssertionError(f"{node}'s report never matched: {json.dumps(seen, indent=1)}")
    return seen
