"""The control-plane VIP in a lab: kube-apiservers sharing one etcd, each on a lab node,
and on each of those nodes `vrrpd control-plane`'s files run as the static pod would run them.

What tests/netns/test_control_plane.py and bench/control_plane.py share. The binaries are the
envtest assets (KUBEBUILDER_ASSETS: `etcd`, `kube-apiserver`); there is no kubelet,
controller-manager or scheduler, and none is needed: the VIP only has to reach a
kube-apiserver.

    with Lab(4, unique=True) as lab:
        cp = ControlPlaneLab(lab, assets, vip="192.168.77.100", nodes=[1, 2, 3], etcd_node=4)
        cp.start_daemons()        # `vrrpd control-plane` on each node, then its command line
        cp.api.start()            # etcd, then the kube-apiservers
        cp.holder()               # the node holding the VIP

- etcd runs on its own lab node and every kube-apiserver reaches it across the bridge
  (http://<etcd node>:2379), as with kubeadm's external etcd: a node whose link goes down
  loses its store too.
- Each kube-apiserver binds 0.0.0.0:6443 in its node's namespace, as kubeadm's do, so it
  also answers on the VIP while its node holds it. Its serving certificate names the VIP,
  the node's address, 127.0.0.1 and the in-cluster names, from one CA; an admin client
  certificate (system:masters) and a kubeconfig whose server is https://VIP:6443 go with it.
- On each node `vrrpd control-plane` runs in the node's namespace (the same command line on
  every node but --node-name and the folders), and the daemon runs as a process from the
  command line of the static pod it wrote.
- Everything runs through `lab.run`, so `lab.close()` ends it (by PID, then whatever is
  left in the namespaces); files live in the lab's workdir.

`in_netns` runs a function in another network namespace (a thread of its own: setns(2)
moves only the calling thread), and `HttpsProber` sends an authenticated request through the
VIP on a fixed schedule from the lab's client, which is how the lost time is measured.
"""

from __future__ import annotations

import ctypes
import datetime
import http.client
import ipaddress
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from vrrpd.controlplane.render import DEFAULT_HTTP_PORT, DEFAULT_PRIORITY, MANIFEST_FILE
from vrrpd.lab.daemons import ROOT
from vrrpd.lab.netns import Lab, LabError, wait_until
from vrrpd.lab.prober import ProbeResult, summarize

APISERVER_PORT = 6443
ETCD_CLIENT_PORT = 2379
SERVICE_CIDR = "10.96.0.0/16"
READY_TIMEOUT_S = 90.0  # three API servers starting at once on two loaded cores
CLONE_NEWNET = 0x40000000
T = TypeVar("T")


class ApiServerError(LabError):
    """etcd or a kube-apiserver did not come up; the message holds its log's tail."""


def in_netns(netns: str, fn: Callable[[], T]) -> T:
    """`fn()` run inside network namespace `netns`, from a thread that ends right after."""
    result: list[Any] = []

    def work() -> None:
        try:
            enter_netns(netns)
            result.append((True, fn()))
        except BaseException as exc:  # handed to the caller's thread
            result.append((False, exc))

    thread = threading.Thread(target=work, name=f"netns-{netns}")
    thread.start()
    thread.join()
    ok, value = result[0]
    if not ok:
        raise value
    return value  # type: ignore[no-any-return]


def enter_netns(netns: str) -> None:
    """Move the calling thread into `netns`; only for threads that never come back."""
    libc = ctypes.CDLL(None, use_errno=True)
    with open(f"/run/netns/{netns}") as target:
        if libc.setns(target.fileno(), CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({netns}): {os.strerror(err)}")


# --- certificates -----------------------------------------------------------------------------


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def _issue(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None = None,
    *,
    sans: Sequence[x509.GeneralName] = (),
    usage: x509.ObjectIdentifier | None = None,
) -> bytes:
    issuer_name, issuer_key = issuer or (subject, key)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def write_pki(folder: Path, vip: str, servers: dict[str, str]) -> None:
    """ca.crt; <name>.crt/.key serving certificates for each `servers` name -> address (SANs:
    the VIP, the address, 127.0.0.1, the in-cluster names); admin.crt/.key (system:masters);
    sa.key/.pub (service-account tokens, shared by every kube-apiserver)."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (_name("kube-vrrp-control-plane-ca"), ca_key)
    files = {"ca.crt": _issue(*ca)}
    for server, address in servers.items():
        key = ec.generate_private_key(ec.SECP256R1())
        ips = [vip, address, "127.0.0.1", str(ipaddress.ip_network(SERVICE_CIDR)[1])]
        sans: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address(a)) for a in ips]
        sans += [x509.DNSName(n) for n in ("kubernetes", "kubernetes.default", "localhost")]
        usage = ExtendedKeyUsageOID.SERVER_AUTH
        files[f"{server}.crt"] = _issue(_name("kube-apiserver"), key, ca, sans=sans, usage=usage)
        files[f"{server}.key"] = _key_pem(key)
    admin_key = ec.generate_private_key(ec.SECP256R1())
    admin = _name("kube-vrrp-admin", "system:masters")
    files["admin.crt"] = _issue(admin, admin_key, ca, usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    files["admin.key"] = _key_pem(admin_key)
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    files["sa.key"] = _key_pem(sa_key)
    files["sa.pub"] = sa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
        (folder / name).chmod(0o600)


# --- the servers ------------------------------------------------------------------------------


class ApiServers:
    """etcd on `etcd_node`, a kube-apiserver on each of `apiserver_nodes` (lab node indexes)."""

    def __init__(
        self,
        lab: Lab,
        assets: Path,
        *,
        vip: str,
        apiserver_nodes: Sequence[int],
        etcd_node: int,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.lab = lab
        self.assets = assets
        self.extra_args = list(extra_args)  # more kube-apiserver flags
        self.vip = vip
        self.nodes = list(apiserver_nodes)
        self.etcd_node = lab.node(etcd_node)
        self.dir = lab.workdir / "apiservers"
        self.pki = self.dir / "pki"
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        self._etcd: subprocess.Popen[bytes] | None = None

    @property
    def etcd_url(self) -> str:
        return f"http://{self.etcd_node.address4}:{ETCD_CLIENT_PORT}"

    def start(self) -> ApiServers:
        """PKI, etcd and every kube-apiserver; returns once all are ready."""
        write_pki(self.pki, self.vip, {f"n{i}": self.lab.node(i).address4 for i in self.nodes})
        self.write_kubeconfig()
        self._start_etcd()
        for i in self.nodes:
            self.start_apiserver(i, wait=False)
        for i in self.nodes:
            self.wait_ready(i)
        return self

    def _spawn(self, node: int, argv: list[str], log: str) -> subprocess.Popen[bytes]:
        with (self.dir / log).open("ab") as out:
            return self.lab.run(node, argv, stdout=out, stderr=subprocess.STDOUT)

    def _start_etcd(self) -> None:
        peer = "http://127.0.0.1:2380"  # one member: peers stay inside its namespace
        self._etcd = self._spawn(
            self.etcd_node.index,
            [
                str(self.assets / "etcd"),
                "--name=etcd",
                f"--data-dir={self.dir / 'etcd'}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=etcd={peer}",
                "--unsafe-no-fsync",  # a throwaway store
            ],
            "etcd.log",
        )

    def start_apiserver(self, node: int, *, wait: bool = True) -> None:
        """Start (or restart) node `node`'s kube-apiserver, as kubeadm configures one."""
        pki, name = self.pki, f"n{node}"
        argv = [
            str(self.assets / "kube-apiserver"),
            f"--etcd-servers={self.etcd_url}",
            "--bind-address=0.0.0.0",
            f"--secure-port={APISERVER_PORT}",
            f"--advertise-address={self.lab.node(node).address4}",
            f"--cert-dir={self.dir / (name + '-certs')}",
            f"--tls-cert-file={pki / (name + '.crt')}",
            f"--tls-private-key-file={pki / (name + '.key')}",
            f"--client-ca-file={pki / 'ca.crt'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=Node,RBAC",
            "--allow-privileged=true",
            *self.extra_args,
        ]
        self.processes[node] = self._spawn(node, argv, self._log(node))
        if wait:
            self.wait_ready(node)

    def stop_apiserver(self, node: int, sig: signal.Signals = signal.SIGTERM) -> None:
        """Stop node `node`'s kube-apiserver (SIGTERM: as the kubelet stops a static pod;
        SIGKILL: a crash) and wait until it has exited."""
        proc = self.processes.pop(node)
        if proc.poll() is None:
            proc.send_signal(sig)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def running(self, node: int) -> bool:
        proc = self.processes.get(node)
        return proc is not None and proc.poll() is None

    @staticmethod
    def _log(node: int) -> str:
        return f"n{node}-kube-apiserver.log"

    def log_tail(self, name: str, lines: int = 20) -> str:
        path = self.dir / name
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_ready(self, node: int, timeout: float = READY_TIMEOUT_S) -> None:
        """Until node `node`'s kube-apiserver answers /readyz with 200 (asked from its own
        namespace, as the VIP's probe asks)."""
        context = self.ssl_context()
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            logs = ((self._etcd, "etcd.log"), (self.processes.get(node), self._log(node)))
            for proc, log in logs:
                if proc is not None and proc.poll() is not None:
                    raise ApiServerError(f"{log}: exited {proc.returncode}:\n{self.log_tail(log)}")
            try:
                status, _ = in_netns(
                    self.lab.node(node).netns,
                    lambda: get("127.0.0.1", "/readyz", context, timeout=2.0),
                )
                if status == 200:
                    return
                last = f"status {status}"
            except OSError as exc:
                last = str(exc)
            time.sleep(0.5)
        raise ApiServerError(
            f"n{node}'s kube-apiserver not ready after {timeout:.0f} s ({last}):\n"
            + self.log_tail(self._log(node))
        )

    # --- clients ------------------------------------------------------------------------------

    def ssl_context(self, *, client_certificate: bool = True) -> ssl.SSLContext:
        """Trusts the cluster's CA; with `client_certificate`, authenticates as the admin."""
        context = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        if client_certificate:
            context.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        return context

    @property
    def kubeconfig(self) -> Path:
        return self.dir / "admin.kubeconfig"

    def write_kubeconfig(self) -> Path:
        """The admin's kubeconfig, its server the VIP (kubeadm's admin.conf with
        --control-plane-endpoint VIP:6443)."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "control-plane-vip",
                    "cluster": {
                        "server": f"https://{self.vip}:{APISERVER_PORT}",
                        "certificate-authority": str(self.pki / "ca.crt"),
                    },
                }
            ],
            "users": [
                {
                    "name": "admin",
                    "user": {
                        "client-certificate": str(self.pki / "admin.crt"),
                        "client-key": str(self.pki / "admin.key"),
                    },
                }
            ],
            "contexts": [
                {"name": "admin", "context": {"cluster": "control-plane-vip", "user": "admin"}}
            ],
            "current-context": "admin",
        }
        self.dir.mkdir(parents=True, exist_ok=True)
        self.kubeconfig.write_text(yaml.safe_dump(config))
        self.kubeconfig.chmod(0o600)
        return self.kubeconfig


def get(host: str, path: str, context: ssl.SSLContext, *, timeout: float) -> tuple[int, bytes]:
    """One HTTPS GET on a new connection to host:6443: (status, body). OSError on failure."""
    conn = http.client.HTTPSConnection(host, APISERVER_PORT, context=context, timeout=timeout)
    try:
        conn.request("GET", path, headers={"User-Agent": "kube-vrrp-lab"})
        response = conn.getresponse()
        return response.status, response.read()
    except (http.client.HTTPException, ssl.SSLError) as exc:
        raise OSError(f"{type(exc).__name__}: {exc}") from None
    finally:
        conn.close()


class HttpsProber:
    """From namespace `netns`, GET `path` from https://`host`:6443 every `interval` seconds
    on a fixed schedule, each on a new connection (a new TCP and TLS handshake: what a
    `kubectl` run does), each allowed `timeout`; a 200 within it counts as answered.

    Requests overlap when they take longer than the interval, so a hung connection does not
    hold the schedule back. `stop()` gives the outage figures of vrrpd.lab.prober.summarize.
    """

    def __init__(
        self,
        netns: str,
        host: str,
        context: ssl.SSLContext,
        *,
        path: str = "/api/v1/namespaces/default",
        interval: float = 0.02,
        timeout: float = 1.0,
    ) -> None:
        self.netns, self.host, self.context, self.path = netns, host, context, path
        self.interval, self.timeout = interval, timeout
        self._pool = ThreadPoolExecutor(
            max_workers=int(timeout / interval) + 8,
            thread_name_prefix=f"https-{netns}",
            initializer=enter_netns,
            initargs=(netns,),
        )
        self._sent: list[tuple[float, Future[bool]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._schedule, name="https-prober", daemon=True)

    def start(self) -> HttpsProber:
        self._thread.start()
        return self

    def _schedule(self) -> None:
        start = time.monotonic()
        k = 0
        while not self._stop.is_set():
            due = start + k * self.interval
            delay = due - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
                continue
            self._sent.append((time.monotonic(), self._pool.submit(self._one)))
            k += 1

    def _one(self) -> bool:
        started = time.monotonic()
        try:
            status, _ = get(self.host, self.path, self.context, timeout=self.timeout)
        except OSError:
            return False
        return status == 200 and time.monotonic() - started <= self.timeout

    def answered_since(self, since: float) -> int:
        """Requests sent after `since` (time.monotonic) that have been answered so far."""
        return sum(1 for t, f in list(self._sent) if t >= since and f.done() and f.result())

    def sends(self) -> list[tuple[float, bool]]:
        """(sent at, answered) of every request whose result is in, in order."""
        return [(t, bool(f.result())) for t, f in list(self._sent) if f.done()]

    def clean(self, window: float) -> bool:
        """True when every request of the last `window` seconds whose time is up succeeded
        (those sent within the last timeout may still be waiting) and there were some."""
        end = time.monotonic() - self.timeout
        judged = [f for t, f in list(self._sent) if end - window <= t <= end]
        return len(judged) >= window / self.interval / 2 and all(
            f.done() and f.result() for f in judged
        )

    def stop(self) -> ProbeResult:
        self._stop.set()
        self._thread.join()
        self._pool.shutdown(wait=True)
        sent = list(self._sent)
        return summarize([t for t, _ in sent], [f.result() for _, f in sent], self.interval)


# --- the VIP in front of them -----------------------------------------------------------------


class ControlPlaneLab:
    """`vrrpd control-plane` and its daemon on each of `nodes`, API servers behind the VIP."""

    def __init__(
        self,
        lab: Lab,
        assets: Path,
        *,
        vip: str,
        nodes: Sequence[int],
        etcd_node: int,
        prefix_length: int = 24,
        flags: Sequence[str] = (),
        apiserver_args: Sequence[str] = (),
    ) -> None:
        self.lab = lab
        self.vip = vip
        self.nodes = list(nodes)
        self.api = ApiServers(
            lab,
            assets,
            vip=vip,
            apiserver_nodes=nodes,
            etcd_node=etcd_node,
            extra_args=apiserver_args,
        )
        self.prefix_length = prefix_length
        self.flags = list(flags)  # more `vrrpd control-plane` flags, the same on every node
        self.daemons: dict[int, subprocess.Popen[bytes]] = {}
        self.pods: dict[int, dict[str, Any]] = {}  # the static pod each node's command wrote

    @staticmethod
    def env() -> dict[str, str]:
        path = os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))
        return {**os.environ, "PYTHONPATH": path}

    def node_dir(self, node: int) -> Path:
        return self.lab.workdir / f"n{node}"

    def log(self, node: int) -> Path:
        return self.node_dir(node) / "vrrpd.log"

    def control_plane_args(self, node: int) -> list[str]:
        """The arguments of `vrrpd control-plane` on node `node`: the same on every node
        but --node-name and the folders (under the node's own directory)."""
        peers = ",".join(self.lab.node(i).address4 for i in self.nodes)
        folder = self.node_dir(node)
        return [
            "--vip", f"{self.vip}/{self.prefix_length}", "--interface", "eth0",
            "--peer", peers, "--node-name", f"cp-{node}",
            "--manifests-dir", str(folder / "manifests"),
            "--config-dir", str(folder / "kube-vrrp"),
            *self.flags,
        ]  # fmt: skip

    def run_control_plane(self, node: int, args: list[str]) -> subprocess.CompletedProcess[str]:
        """`vrrpd control-plane ARGS` in node `node`'s namespace (this checkout's)."""
        argv = [sys.executable, "-m", "vrrpd", "control-plane", *args]
        return subprocess.run(
            self.lab.command(node, argv),
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def generate(self, node: int) -> dict[str, Any]:
        """Run `vrrpd control-plane` for node `node`; the static pod it wrote."""
        self.node_dir(node).mkdir(parents=True, exist_ok=True)
        done = self.run_control_plane(node, self.control_plane_args(node))
        if done.returncode != 0:
            raise LabError(f"vrrpd control-plane on n{node} failed: {done.stderr.strip()}")
        manifest = self.node_dir(node) / "manifests" / MANIFEST_FILE
        pod: dict[str, Any] = yaml.safe_load(manifest.read_text())
        return pod

    def start_daemons(self) -> None:
        for node in self.nodes:
            self.pods[node] = self.generate(node)
            self.start_daemon(node)

    def start_daemon(self, node: int) -> None:
        """The static pod's command line as a process in the node's namespace (its `vrrpd`
        is this checkout's, run by this Python)."""
        command: list[str] = self.pods[node]["spec"]["containers"][0]["command"]
        if command[0] != "vrrpd":
            raise LabError(f"n{node}: the static pod runs {command[0]!r}, not vrrpd")
        with self.log(node).open("ab") as log:
            self.daemons[node] = self.lab.run(
                node, [sys.executable, "-m", *command], stdout=log, stderr=log, env=self.env()
            )

    def stop_daemon(self, node: int, sig: signal.Signals = signal.SIGTERM) -> int:
        """Signal node `node`'s daemon as the kubelet stops a static pod; its exit code."""
        proc = self.daemons[node]
        proc.send_signal(sig)
        return proc.wait(30)

    def holders(self) -> list[int]:
        return self.lab.holders(self.vip)

    def holder(self, timeout: float = 20.0) -> int:
        """The one node holding the VIP, once there is exactly one."""
        if not wait_until(lambda: len(self.holders()) == 1, timeout):
            raise LabError(f"not one holder of {self.vip} after {timeout:g} s: {self.holders()}")
        return self.holders()[0]

    def status(self, node: int) -> dict[str, Any]:
        """The /status of node `node`'s daemon: its one instance."""
        url = f"http://127.0.0.1:{DEFAULT_HTTP_PORT}/status"

        def fetch() -> Any:
            with urllib.request.urlopen(url, timeout=2) as response:
                return json.load(response)

        (instance,) = in_netns(self.lab.node(node).netns, fetch)["instances"]
        return dict(instance)

    def priority(self, node: int) -> int | None:
        """The daemon's effective priority; None while it does not answer."""
        try:
            return int(self.status(node)["effectivePriority"])
        except (OSError, ValueError):
            return None

    def wait_healthy(self, timeout: float = 60.0) -> bool:
        """Until every daemon's probe passes (effective priority back to the base)."""
        return wait_until(
            lambda: all(self.priority(i) == DEFAULT_PRIORITY for i in self.nodes), timeout, 0.2
        )

    def logs(self, tail: int = 3000) -> str:
        return "\n".join(
            f"--- n{i} vrrpd\n{self.log(i).read_text(errors='replace')[-tail:]}"
            for i in self.nodes
            if self.log(i).exists()
        )
