"""A real Kubernetes API server for tests: etcd + kube-apiserver from KUBEBUILDER_ASSETS.

controller-runtime's envtest convention: KUBEBUILDER_ASSETS names a folder holding the
`etcd` and `kube-apiserver` binaries (a user gets them with `setup-envtest use 1.36 -p
path`; CI unpacks them). `ApiServer.start()` gives each run its own ports, certificates and
data directory, and `stop()` removes them. There is no controller-manager, scheduler or
kubelet, so what those would do is done by the helpers here when a test needs it: a
namespace's `default` ServiceAccount, a Ready node without its not-ready taint.

    with ApiServer.start() as api:
        api.kubectl("apply", "-f", "crds/")
        core = kubernetes.client.CoreV1Api(api.client())
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

ASSETS_ENV = "KUBEBUILDER_ASSETS"
SKIP_REASON = (
    f"real-API tier skipped: {ASSETS_ENV} is not set (a folder with the etcd and "
    "kube-apiserver binaries: `setup-envtest use 1.36 -p path`; .ci/run sets it)"
)
READY_TIMEOUT_S = 60.0
SERVICE_CIDR = "10.96.0.0/16,fd00:10:96::/112"


class EnvtestError(RuntimeError):
    """The API server could not be started; the message says why and what it printed."""


def assets() -> Path | None:
    """The KUBEBUILDER_ASSETS folder, or None when unset; an unusable folder is an error."""
    value = os.environ.get(ASSETS_ENV)
    if not value:
        return None
    folder = Path(value)
    missing = [b for b in ("etcd", "kube-apiserver") if not os.access(folder / b, os.X_OK)]
    if missing:
        raise EnvtestError(f"{ASSETS_ENV}={value}: no executable {' or '.join(missing)} there")
    return folder


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- certificates ---------------------------------------------------------------------------


def _pem_key(key: Any) -> bytes:
    return bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _certificate(
    subject: x509.Name,
    key: Any,
    issuer: tuple[x509.Name, Any] | None = None,
    *,
    ca: bool = False,
    sans: list[x509.GeneralName] | None = None,
    usage: list[x509.ObjectIdentifier] | None = None,
) -> x509.Certificate:
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
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def write_pki(folder: Path) -> None:
    """ca.crt, apiserver.crt/key (127.0.0.1, kubernetes.default), admin.crt/key
    (system:masters), sa.key/pub (service-account token signing)."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("kube-vrrp-envtest-ca")
    ca_cert = _certificate(ca_name, ca_key, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _certificate(
        _name("kube-apiserver"),
        server_key,
        (ca_name, ca_key),
        sans=[
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("10.96.0.1")),
            x509.DNSName("localhost"),
            x509.DNSName("kubernetes.default.svc"),
        ],
        usage=[x509.oid.ExtendedKeyUsageOID.SERVER_AUTH],
    )
    admin_key = ec.generate_private_key(ec.SECP256R1())
    admin = _certificate(
        _name("envtest-admin", "system:masters"),
        admin_key,
        (ca_name, ca_key),
        usage=[x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH],
    )
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    files = {
        "ca.crt": _pem_cert(ca_cert),
        "apiserver.crt": _pem_cert(server),
        "apiserver.key": _pem_key(server_key),
        "admin.crt": _pem_cert(admin),
        "admin.key": _pem_key(admin_key),
        "sa.key": _pem_key(sa_key),
        "sa.pub": sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
        (folder / name).chmod(0o600)


# --- the server -----------------------------------------------------------------------------


@dataclass
class ApiServer:
    """A running etcd + kube-apiserver pair; `url`, `ca_file` and `kubeconfig` reach it."""

    workdir: Path
    assets: Path
    port: int
    etcd_port: int
    etcd_peer_port: int
    _etcd: subprocess.Popen[bytes] | None = None
    _apiserver: subprocess.Popen[bytes] | None = None
    _clients: list[Any] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> Path:
        return self.workdir / "ca.crt"

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "admin.kubeconfig"

    @classmethod
    @contextlib.contextmanager
    def start(cls, folder: Path | None = None) -> Iterator[ApiServer]:
        folder = folder or assets()
        if folder is None:
            raise EnvtestError(SKIP_REASON)
        workdir = Path(tempfile.mkdtemp(prefix="kv-envtest-"))
        server = cls(workdir, folder, free_port(), free_port(), free_port())
        try:
            write_pki(workdir)
            server._write_kubeconfig()
            server._start_etcd()
            server.start_apiserver()
            yield server
        finally:
            server.close()
            shutil.rmtree(workdir, ignore_errors=True)

    def _write_kubeconfig(self, path: Path | None = None, *, token: str | None = None) -> Path:
        user: dict[str, str] = (
            {"token": token}
            if token
            else {
                "client-certificate": str(self.workdir / "admin.crt"),
                "client-key": str(self.workdir / "admin.key"),
            }
        )
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "envtest",
                    "cluster": {"server": self.url, "certificate-authority": str(self.ca_file)},
                }
            ],
            "users": [{"name": "user", "user": user}],
            "contexts": [{"name": "envtest", "context": {"cluster": "envtest", "user": "user"}}],
            "current-context": "envtest",
        }
        path = path or self.kubeconfig
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path

    def kubeconfig_for_token(self, token: str, name: str) -> Path:
        """A kubeconfig that authenticates with `token` only (a ServiceAccount's identity)."""
        return self._write_kubeconfig(self.workdir / f"{name}.kubeconfig", token=token)

    def _start_etcd(self) -> None:
        data = self.workdir / "etcd"
        client = f"http://127.0.0.1:{self.etcd_port}"
        peer = f"http://127.0.0.1:{self.etcd_peer_port}"
        argv = [
            str(self.assets / "etcd"),
            "--name=envtest",
            f"--data-dir={data}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=envtest={peer}",
            "--unsafe-no-fsync",  # a throwaway store: durability costs seconds per test
        ]
        self._etcd = self._spawn(argv, "etcd.log")

    def start_apiserver(self) -> None:
        """Start (or restart, after `stop_apiserver`) kube-apiserver and wait until ready."""
        pki = self.workdir
        argv = [
            str(self.assets / "kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
            "--bind-address=127.0.0.1",
            f"--secure-port={self.port}",
            f"--cert-dir={pki / 'apiserver-certs'}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=RBAC",
            "--allow-privileged=true",
            "--endpoint-reconciler-type=none",
            "--advertise-address=127.0.0.1",
            f"--audit-policy-file={self._write_audit_policy()}",
            f"--audit-log-path={self.audit_log}",
            "--audit-log-mode=blocking",
            "--audit-log-format=json",
        ]
        self._apiserver = self._spawn(argv, "kube-apiserver.log")
        self._wait_ready()

    @property
    def audit_log(self) -> Path:
        return self.workdir / "audit.log"

    def _write_audit_policy(self) -> Path:
        # Metadata for every request once it is answered: who, verb, resource, response
        # code. Enough to count a client's requests and its refusals (403).
        policy = {
            "apiVersion": "audit.k8s.io/v1",
            "kind": "Policy",
            "omitStages": ["RequestReceived"],
            "rules": [{"level": "Metadata"}],
        }
        path = self.workdir / "audit-policy.yaml"
        path.write_text(yaml.safe_dump(policy))
        return path

    def audit(self, user: str | None = None) -> list[dict[str, Any]]:
        """The audit events so far (ResponseComplete and Panic stages; a watch appears once
        it ends), optionally only those of `user` (e.g.
        "system:serviceaccount:kube-vrrp:kube-vrrp-operator")."""
        if not self.audit_log.exists():
            return []
        events = []
        for line in self.audit_log.read_text(errors="replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a line being written
            if user is None or event.get("user", {}).get("username") == user:
                events.append(event)
        return events

    def forbidden(self, user: str) -> list[str]:
        """`verb uri` of every request of `user` the server refused with 403, but those it
        refused while starting (after `start_apiserver`, annotated "early=true" in the audit
        log): until its RBAC caches are loaded it refuses every ServiceAccount, whatever its
        roles, and a client that retries meets that after any restart."""
        return [
            f"{e['verb']} {e['requestURI']}"
            for e in self.audit(user)
            if e.get("responseStatus", {}).get("code") == 403 and not _while_starting(e)
        ]

    def stop_apiserver(self) -> None:
        """Stop kube-apiserver only (etcd keeps the data): an API-server outage."""
        self._terminate(self._apiserver)
        self._apiserver = None

    def _spawn(self, argv: list[str], log: str) -> subprocess.Popen[bytes]:
        with (self.workdir / log).open("ab") as out:
            return subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )

    def log_tail(self, name: str = "kube-apiserver.log", lines: int = 30) -> str:
        path = self.workdir / name
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        context.load_cert_chain(str(self.workdir / "admin.crt"), str(self.workdir / "admin.key"))
        return context

    def _wait_ready(self) -> None:
        context = self.ssl_context()
        deadline = time.monotonic() + READY_TIMEOUT_S
        last = ""
        while time.monotonic() < deadline:
            for proc, name in ((self._etcd, "etcd"), (self._apiserver, "kube-apiserver")):
                if proc is not None and proc.poll() is not None:
                    raise EnvtestError(
                        f"{name} exited with {proc.returncode}:\n{self.log_tail(name + '.log')}"
                    )
            try:
                with urllib.request.urlopen(
                    f"{self.url}/readyz", context=context, timeout=2
                ) as response:
                    if response.status == 200:
                        return
            except (OSError, urllib.error.URLError) as exc:
                last = str(exc)
            time.sleep(0.2)
        raise EnvtestError(
            f"kube-apiserver not ready after {READY_TIMEOUT_S:.0f} s ({last}):\n{self.log_tail()}"
        )

    @staticmethod
    def _terminate(proc: subprocess.Popen[bytes] | None) -> None:
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def close(self) -> None:
        for client in self._clients:
            with contextlib.suppress(Exception):
                client.close()
        self._clients.clear()
        self._terminate(self._apiserver)
        self._terminate(self._etcd)

    # --- clients ----------------------------------------------------------------------------

    def client(self, kubeconfig: Path | None = None) -> Any:
        """A `kubernetes.client.ApiClient` for the admin (or for `kubeconfig`'s identity)."""
        from kubernetes import client, config

        configuration = client.Configuration()
        config.load_kube_config(
            config_file=str(kubeconfig or self.kubeconfig), client_configuration=configuration
        )
        api = client.ApiClient(configuration)
        self._clients.append(api)
        return api

    def kubectl(
        self, *args: str, kubeconfig: Path | None = None, check: bool = True, input: str = ""
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl (the pinned binary of tests/chart/kubetools.py) against this server."""
        from tests.chart.kubetools import tool

        argv = [str(tool("kubectl")), f"--kubeconfig={kubeconfig or self.kubeconfig}", *args]
        result = subprocess.run(
            argv, capture_output=True, text=True, input=input, timeout=120, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stderr or result.stdout}"
            )
        return result

    def apply(self, objects: list[dict[str, Any]] | dict[str, Any]) -> None:
        """`kubectl apply --server-side` the objects (a list, or one)."""
        items = objects if isinstance(objects, list) else [objects]
        self.kubectl(
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            "-",
            input=yaml.safe_dump_all(items),
        )

    # --- what controllers and kubelets would do ---------------------------------------------

    def namespace(self, name: str) -> str:
        """Create namespace `name` with its `default` ServiceAccount and the CA ConfigMaps
        (no controller-manager here to make them). The ServiceAccount admission plugin needs
        the first for pods; a kubelet needs the others for a pod's service-account volume:
        `kube-root-ca.crt`, and `openshift-service-ca.crt`, which this kube-apiserver
        (built from microshift's tree) projects too."""
        ca = self.ca_file.read_text()
        self.apply(
            [
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
                {
                    "apiVersion": "v1",
                    "kind": "ServiceAccount",
                    "metadata": {"name": "default", "namespace": name},
                },
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": "kube-root-ca.crt", "namespace": name},
                    "data": {"ca.crt": ca},
                },
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": "openshift-service-ca.crt", "namespace": name},
                    "data": {"service-ca.crt": ca},
                },
            ]
        )
        return name

    def token(self, namespace: str, service_account: str, *, seconds: int = 3600) -> str:
        """A token for the ServiceAccount from the TokenRequest API (its own RBAC identity)."""
        result = self.kubectl(
            "create", "token", service_account, "-n", namespace, f"--duration={seconds}s"
        )
        return result.stdout.strip()

    def ready_node(
        self, name: str, address: str, labels: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """Create (or update) a Node that looks Ready, as a kubelet would make it look:
        labels, an InternalIP, a Ready condition and no not-ready taint."""
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": {"kubernetes.io/hostname": name, **(labels or {})},
            },
        }
        self.apply(node)
        # The node lifecycle admission adds the not-ready taint on create; a kubelet clears it.
        no_taints = [{"op": "replace", "path": "/spec/taints", "value": []}]
        self.kubectl("patch", "node", name, "--type=json", "-p", json.dumps(no_taints))
        status = {
            "status": {
                "addresses": [
                    {"type": "InternalIP", "address": address},
                    {"type": "Hostname", "address": name},
                ],
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "KubeletReady",
                        "message": "envtest: set by the test",
                        "lastHeartbeatTime": _now(),
                        "lastTransitionTime": _now(),
                    }
                ],
            }
        }
        self.kubectl(
            "patch", "node", name, "--subresource=status", "--type=merge", "-p", json.dumps(status)
        )
        return node


def _while_starting(event: dict[str, Any]) -> bool:
    """The server answered the request before it was ready (after a start or restart)."""
    startup = str(event.get("annotations", {}).get("apiserver.k8s.io/startup", ""))
    return startup.startswith("early=true")


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
