"""A small test kubelet: runs the pods bound to lab nodes in their nodes' network namespaces.

It plays the kubelet of every lab node at once, against the real API server (tests/envtest.py)
with the admin's credentials, and does what the operator relies on a kubelet for:

- Every `poll_s` it lists the pods of one namespace (the daemons') and takes those whose
  spec.nodeName is a lab node; `hold(node)` leaves a node's new pods Pending (a kubelet
  slow to start them) until `release(node)`.
- A new pod's volumes become directories: `hostPath` per node (it outlives the pod, as on
  a host); `secret` and `configMap` as one file per key; `emptyDir` per pod; `projected`,
  the ServiceAccount admission's kube-api-access-*: a token of the pod's ServiceAccount
  from the TokenRequest API bound to the pod, so valid while the pod exists, the CA from
  kube-root-ca.crt and the namespace. Env `valueFrom.fieldRef` is resolved. A pod waits,
  as ContainerCreating, while a Secret or ConfigMap it mounts is missing.
- A runtime turns the prepared pod into something running; `start_container` is the one
  place that starts it.
  - `ProcessRuntime`: the container's command and args, `$(VAR)` expanded,
    as a process from this checkout in the node's namespace. There is no mount namespace,
    so each mountPath is rewritten to its directory in env values and arguments, and what
    the in-cluster configuration would read from the service-account volume is given as
    `--kube-api` (the API server as seen from the node, through the relay),
    `--kube-token-file` and `--kube-ca-file`.
  - `PodmanRuntime`: the pod's container from the image under test, through podman, as
    the pod spec says (tests/image/podman.py: `run_argv`): `--network ns:/run/netns/NODE`
    (its hostNetwork), command, args, env, user, capabilities, no privilege escalation,
    read-only root filesystem, seccomp, limits, the volumes at their own paths (emptyDir
    as tmpfs), and KUBERNETES_SERVICE_HOST/PORT as a kubelet sets them: the daemon's
    in-cluster configuration reaches the API server through the relay on the node's
    loopback, which the container shares with the namespace. `podman create`, then
    `podman start --attach` with its output in the pod's log; `podman stop` with the
    pod's grace period; the container is removed when it has ended.
- Its status goes through the status subresource: phase Running, hostIP/podIP (host
  network: the node's address), the container's state and id; Ready and ContainersReady
  from the readinessProbe (httpGet, sent from inside the node's namespace; other probes
  are not run). A status the API server did not take (it is down) is sent again on the
  next round.
- restartPolicy Always: a container that exits on its own starts again after a backoff.
- Graceful deletion: the API server sets deletionTimestamp; the kubelet sends SIGTERM,
  SIGKILL after deletionGracePeriodSeconds, reports the container terminated and the pod's
  terminal phase, and `linger_s` later deletes the pod with grace period 0 (uid
  precondition). A pod that vanishes otherwise (a forced deletion) is stopped the same way.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import json
import logging
import math
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from tests.image.podman import Podman, PodSpecError, container_name, expand, run_argv
from tests.realapi.cluster import ROOT, script_command
from vrrpd.lab.netns import Lab

RESTART_BACKOFF_S = (1.0, 10.0)
SERVICE_ACCOUNT_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"

log = logging.getLogger("test-kubelet")


class PodRejected(Exception):
    """The pod asks for something this kubelet cannot do; it is marked Failed."""


class NotYet(Exception):
    """The pod cannot start yet (a Secret is missing); retried on the next round."""


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- a readiness probe inside a network namespace --------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000


def enter_netns(netns: str) -> None:
    """Move the calling thread into network namespace `netns` (only that thread moves: call
    it in a thread of its own that ends after)."""
    fd = os.open(f"/run/netns/{netns}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({netns}): {os.strerror(err)}")
    finally:
        os.close(fd)


def http_probe(host: str, port: int, path: str, timeout: float) -> bool:
    """An httpGet probe: success on an HTTP status 200..399 within `timeout`."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/test\r\n"
                "Connection: close\r\n\r\n".encode()
            )
            head = b""
            while b"\r\n" not in head and len(head) < 4096:
                chunk = s.recv(1024)
                if not chunk:
                    break
                head += chunk
    except OSError:
        return False
    parts = head.split(b"\r\n", 1)[0].split()
    return len(parts) >= 2 and parts[1].isdigit() and 200 <= int(parts[1]) < 400


# --- one pod ----------------------------------------------------------------------------------


@dataclass
class RunningPod:
    """A pod this kubelet runs: its container, its files and what it last reported."""

    uid: str
    namespace: str
    name: str
    node: str
    netns: str
    argv: list[str]  # what the runtime runs (a process's argv, or `podman run`'s)
    env: dict[str, str]  # the process's environment (podman's argv holds the container's)
    workdir: Path
    log_path: Path
    grace_s: float
    readiness: Mapping[str, Any] | None
    pod_ip: str
    container: str
    image: str
    ports: list[Mapping[str, Any]] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None  # the process, or `podman start --attach`
    ids: list[str] = field(default_factory=list)  # of every container started, in order
    restarts: int = 0
    exits: list[int] = field(default_factory=list)  # exit codes of containers that ended
    unexpected_exits: list[int] = field(default_factory=list)  # ... on their own (crashes)
    restart_at: float | None = None
    stopping: bool = False  # SIGTERM sent or about to be
    deleting: bool = False  # stopping because the API server began its graceful deletion
    terminated_at: float | None = None  # the container has ended for good
    ready: bool = False
    ready_since: str = ""
    started_at: str = ""
    start_time: str = ""
    next_probe: float = 0.0
    probing: bool = False
    reported: dict[str, Any] | None = None  # the last status the API server took

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def container_id(self) -> str | None:
        """The container running now (a pid for a process, podman's id): a new one on
        every start."""
        return self.ids[-1] if self.ids else None

    # -- observing the daemon through its JSON log -------------------------------------------

    def log_events(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return out
        for line in text.splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                entry = {"msg": line, "level": "raw"}
            out.append(entry if isinstance(entry, dict) else {"msg": line, "level": "raw"})
        return out

    def transitions(self, instance: str | None = None) -> list[dict[str, Any]]:
        return [
            e
            for e in self.log_events()
            if "state" in e and (instance is None or e.get("instance") == instance)
        ]

    def state(self, instance: str) -> str | None:
        found = self.transitions(instance)
        return str(found[-1]["state"]) if found else None

    def messages(self, contains: str) -> list[str]:
        return [str(e.get("msg")) for e in self.log_events() if contains in str(e.get("msg"))]


# --- runtimes: a prepared pod -> something running ---------------------------------------------


@dataclass
class Prepared:
    """What every runtime gets from the kubelet for one pod."""

    pod: Mapping[str, Any]  # as the API server returned it
    container: Mapping[str, Any]
    netns: str
    fields: dict[str, str]  # fieldRef values: spec.nodeName, metadata.name, ...
    volumes: dict[str, Path]  # volume name -> its directory (emptyDir too)
    mounts: dict[str, Path]  # mountPath -> the directory of its volume


class Runtime(Protocol):
    scheme: str  # of the status' containerID: "process://1234", "podman://3f2a..."

    def command(self, prepared: Prepared) -> tuple[list[str], dict[str, str]]:
        """(argv, environment) that run the pod's container; PodRejected if it cannot."""

    def start(self, p: RunningPod) -> tuple[subprocess.Popen[bytes], str]:
        """Start the container; the process that ends with it and the container's id."""

    def stop(self, p: RunningPod, proc: subprocess.Popen[bytes]) -> bool:
        """SIGTERM, SIGKILL after p.grace_s; until `proc` has ended. False if it needed
        the SIGKILL."""

    def remove(self, p: RunningPod) -> None:
        """Forget the container that ended (its log file stays)."""


class ProcessRuntime:
    """The container's command as a process from this checkout, in the node's namespace."""

    scheme = "process"

    def __init__(self, lab: Lab, api_url: str) -> None:
        self.lab = lab
        self.api_url = api_url  # the API server as a process in a node namespace reaches it

    def command(self, prepared: Prepared) -> tuple[list[str], dict[str, str]]:
        container = prepared.container

        def rewrite(value: str) -> str:  # no mount namespace: mountPath -> its directory
            for path, directory in sorted(prepared.mounts.items(), key=lambda m: -len(m[0])):
                if value == path or value.startswith(path + "/"):
                    return str(directory) + value[len(path) :]
            return value

        env: dict[str, str] = {}
        for entry in container.get("env") or ():
            if "value" in entry:
                env[entry["name"]] = expand(str(entry["value"]), env)
                continue
            ref = ((entry.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")
            if ref not in prepared.fields:
                raise PodRejected(
                    f"env {entry['name']}: only fieldRefs {sorted(prepared.fields)} work"
                )
            env[entry["name"]] = prepared.fields[ref]
        env = {k: rewrite(v) for k, v in env.items()}
        command = [*(container.get("command") or ()), *(container.get("args") or ())]
        if not command:
            raise PodRejected("no command: this kubelet has no image entry points")
        argv = script_command([rewrite(expand(a, env)) for a in command])
        account = prepared.mounts.get(SERVICE_ACCOUNT_MOUNT)
        if account is not None:  # what the in-cluster configuration would read
            argv += [
                "--kube-api", self.api_url, "--kube-token-file", str(account / "token"),
                "--kube-ca-file", str(account / "ca.crt"),
            ]  # fmt: skip
        process_env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "PYTHONPATH": str(ROOT),
            "PYTHONDONTWRITEBYTECODE": "1",
            **env,
        }
        return argv, process_env

    def start(self, p: RunningPod) -> tuple[subprocess.Popen[bytes], str]:
        with open(p.log_path, "ab") as out:
            proc = self.lab.run(
                p.netns, p.argv, env=p.env, cwd=str(p.workdir),
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        return proc, str(proc.pid)

    def stop(self, p: RunningPod, proc: subprocess.Popen[bytes]) -> bool:
        """SIGTERM, then SIGKILL to the process group (its stragglers too)."""
        graceful = True
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=p.grace_s)
        except subprocess.TimeoutExpired:
            graceful = False
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return graceful

    def remove(self, p: RunningPod) -> None:
        pass


class PodmanRuntime:
    """The pod's container from `image`, through podman, as its spec says (run_argv)."""

    scheme = "podman"
    NAME = "<name>"  # in the prepared argv; each start gets a container name of its own

    def __init__(self, podman: Podman, image: str, api_url: str) -> None:
        self.podman = podman
        self.image = image  # instead of the pod's image: the image under test
        self.image_user = podman.image_user(image)
        api = urllib.parse.urlsplit(api_url)
        # What a kubelet gives every container: the in-cluster configuration's API server
        # (here: the relay on the node's loopback, which the container shares).
        self.cluster_env = {
            "KUBERNETES_SERVICE_HOST": str(api.hostname),
            "KUBERNETES_SERVICE_PORT": str(api.port),
            "KUBERNETES_SERVICE_PORT_HTTPS": str(api.port),
        }

    def command(self, prepared: Prepared) -> tuple[list[str], dict[str, str]]:
        try:
            argv = run_argv(
                prepared.pod,
                name=self.NAME,
                network=f"ns:/run/netns/{prepared.netns}",
                image=self.image,
                image_user=self.image_user,
                fields=prepared.fields,
                volume_dirs=prepared.volumes,
                cluster_env=self.cluster_env,
                podman=(self.podman.binary,),
            )
        except PodSpecError as exc:
            raise PodRejected(str(exc)) from None
        return argv, {}

    def start(self, p: RunningPod) -> tuple[subprocess.Popen[bytes], str]:
        """`podman create`, then `podman start --attach`: the id at once, the output in the
        log, and the attached process ends with the container's exit code."""
        argv = [container_name(p.name) if a == self.NAME else a for a in p.argv]
        assert argv[1] == "run", argv
        created = self.podman("create", *argv[2:]).stdout.strip().splitlines()[-1]
        proc = self.podman.popen([self.podman.binary, "start", "--attach", created], p.log_path)
        return proc, created

    def stop(self, p: RunningPod, proc: subprocess.Popen[bytes]) -> bool:
        grace = math.ceil(p.grace_s)
        stopped = self.podman(
            "stop", "--time", str(grace), p.ids[-1], check=False, timeout=grace + 60
        )
        try:  # (stopped before `start` had started it: it may start now)
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.podman("rm", "--force", "--time", "0", p.ids[-1], check=False)
            proc.wait(timeout=30)
        return "resorting to SIGKILL" not in stopped.stderr

    def remove(self, p: RunningPod) -> None:
        if p.ids:
            self.podman("rm", "--force", "--time", "0", p.ids[-1], check=False)


# --- the kubelet ------------------------------------------------------------------------------


class Kubelet:
    def __init__(
        self,
        client: Any,
        lab: Lab,
        nodes: Mapping[str, int],
        workdir: Path,
        *,
        namespace: str,
        runtime: Runtime,
        poll_s: float = 0.25,
        linger_s: float = 0.5,
    ) -> None:
        from kubernetes import client as k8s

        self.core = k8s.CoreV1Api(client)  # kubernetes.client.ApiClient, the admin's
        self.lab = lab
        self.nodes = dict(nodes)  # node name -> lab node index
        self.workdir = workdir
        self.namespace = namespace
        self.runtime = runtime
        self.poll_s = poll_s
        self.linger_s = linger_s  # between the container's end and the pod object's removal
        self.pods: dict[str, RunningPod] = {}  # uid -> pod, until its object is deleted
        self.history: list[RunningPod] = []  # every pod ever started, in order
        self.problems: list[str] = []  # API errors, rejected pods: shown when a test fails
        self._held: set[str] = set()
        self._done: set[str] = set()  # uids started, stopped and deleted, or rejected
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="test-kubelet", daemon=True)

    # -- control ----------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Stop the loop, then every container (SIGTERM, SIGKILL after the grace period); the
        pod objects stay."""
        self._stop.set()
        self._thread.join(timeout=30)
        with self._lock:
            pods = list(self.pods.values())
        stops = [threading.Thread(target=self._terminate, args=(p,)) for p in pods]
        for t in stops:
            t.start()
        for t in stops:
            t.join()

    def hold(self, node: str) -> None:
        """Leave new pods on `node` Pending until `release(node)`."""
        self._held.add(node)

    def release(self, node: str) -> None:
        self._held.discard(node)

    def running(self, node: str) -> RunningPod | None:
        """The pod whose container runs on `node` now (not one being stopped)."""
        with self._lock:
            pods = list(self.pods.values())
        return next((p for p in pods if p.node == node and p.running and not p.stopping), None)

    def describe(self) -> str:
        """What ran and how it ended, with the tail of each log: for failure messages."""
        lines = []
        for p in self.history:
            state = "running" if p.running else f"exited {p.exits}"
            lines.append(
                f"--- {p.name} ({p.uid[:8]}) on {p.node}: {state}, {self.runtime.scheme} {p.ids}, "
                f"restarts {p.restarts}"
            )
            try:
                tail = p.log_path.read_text(errors="replace").splitlines()[-25:]
            except OSError:
                tail = []
            lines.extend("    " + t for t in tail)
        lines.extend(f"!!! {p}" for p in self.problems[-20:])
        return "\n".join(lines)

    def _problem(self, what: str, exc: BaseException) -> None:
        text = f"{what}: {type(exc).__name__}: {str(exc)[:300]}"
        if not self.problems or self.problems[-1] != text:
            self.problems.append(text)

    # -- the loop -----------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._sync()
            except Exception as exc:  # the API server down, mostly: the next round retries
                self._problem("sync", exc)
            with self._lock:
                pods = list(self.pods.values())
            for p in pods:
                try:
                    self._tend(p)
                except Exception as exc:
                    self._problem(f"tend {p.name}", exc)
            self._stop.wait(self.poll_s)

    def _sync(self) -> None:
        """Start new pods, begin the deletion of those the API server is deleting."""
        listing = self.core.list_namespaced_pod(self.namespace, _preload_content=False)
        items = json.loads(listing.data)["items"]
        seen: set[str] = set()
        for pod in items:
            meta, spec = pod["metadata"], pod["spec"]
            uid, node = meta["uid"], spec.get("nodeName")
            if node not in self.nodes:
                continue
            seen.add(uid)
            with self._lock:
                current = self.pods.get(uid)
            if current is None:
                if uid in self._done:
                    continue
                if meta.get("deletionTimestamp"):  # never started: nothing to stop
                    self._delete(meta["name"], uid)
                elif node not in self._held:
                    self._start(pod)
            elif meta.get("deletionTimestamp") and not current.stopping:
                grace = meta.get("deletionGracePeriodSeconds")
                if isinstance(grace, int):
                    current.grace_s = float(grace)
                current.deleting = True
                self._stop_in_background(current)
        with self._lock:
            vanished = [p for uid, p in self.pods.items() if uid not in seen and not p.stopping]
        for p in vanished:  # gone without a graceful deletion (forced): stop it all the same
            self._stop_in_background(p)

    # -- starting -----------------------------------------------------------------------------

    def _start(self, pod: Mapping[str, Any]) -> None:
        meta = pod["metadata"]
        try:
            p = self._prepare(pod)
        except NotYet as exc:
            self._problem(f"pod {meta['name']} waits", exc)
            return
        except PodRejected as exc:
            self._done.add(meta["uid"])
            self.problems.append(f"pod {meta['name']} rejected: {exc}")
            self.core.patch_namespaced_pod_status(meta["name"], self.namespace, {"status": {
                "phase": "Failed", "reason": "TestKubelet", "message": str(exc),
            }})  # fmt: skip
            return
        p.start_time = _now()
        self.start_container(p)
        with self._lock:
            self.pods[p.uid] = p
            self.history.append(p)

    def _prepare(self, pod: Mapping[str, Any]) -> RunningPod:
        meta, spec = pod["metadata"], pod["spec"]
        containers = spec.get("containers") or []
        if len(containers) != 1:
            raise PodRejected(f"{len(containers)} containers; this kubelet runs exactly one")
        container = containers[0]
        if not spec.get("hostNetwork"):
            raise PodRejected("only hostNetwork pods run here (the node's namespace is the pod's)")
        node = spec["nodeName"]
        lab_node = self.lab.node(self.nodes[node])
        uid = meta["uid"]
        pod_dir = self.workdir / "pods" / f"{meta['name']}-{uid[:8]}"
        pod_dir.mkdir(parents=True, exist_ok=True)

        volumes: dict[str, Path] = {}
        mounts: dict[str, Path] = {}
        for volume in spec.get("volumes") or ():
            volumes[volume["name"]] = self._volume(volume, pod, pod_dir)
        for mount in container.get("volumeMounts") or ():
            if mount["name"] not in volumes:
                raise PodRejected(f"volumeMount {mount['name']} names no volume")
            mounts[mount["mountPath"].rstrip("/")] = volumes[mount["name"]]
        fields = {
            "spec.nodeName": node,
            "metadata.name": meta["name"],
            "metadata.namespace": meta["namespace"],
            "status.hostIP": lab_node.address4,
            "status.podIP": lab_node.address4,
        }
        argv, env = self.runtime.command(
            Prepared(pod, container, lab_node.netns, fields, volumes, mounts)
        )
        grace = spec.get("terminationGracePeriodSeconds")
        return RunningPod(
            uid=uid,
            namespace=meta["namespace"],
            name=meta["name"],
            node=node,
            netns=lab_node.netns,
            argv=argv,
            env=env,
            workdir=pod_dir,
            log_path=pod_dir / "container.log",
            grace_s=float(grace) if isinstance(grace, int) else 30.0,
            readiness=container.get("readinessProbe"),
            pod_ip=lab_node.address4,
            container=str(container.get("name", "")),
            image=str(container.get("image", "")),
            ports=list(container.get("ports") or ()),
        )

    def host_path(self, node: str, path: str) -> Path:
        """Where `path` of API node `node` is (hostPath volumes): one tree per node."""
        return self.workdir / "nodes" / node / path.lstrip("/")

    def _volume(self, volume: Mapping[str, Any], pod: Mapping[str, Any], pod_dir: Path) -> Path:
        name = volume["name"]
        if "hostPath" in volume:
            directory = self.host_path(pod["spec"]["nodeName"], volume["hostPath"]["path"])
            directory.mkdir(parents=True, exist_ok=True)
            return directory
        directory = pod_dir / "volumes" / name
        directory.mkdir(parents=True, exist_ok=True)
        if "emptyDir" in volume:
            return directory
        if "secret" in volume:
            source = volume["secret"]
            data = self._object_data("secret", source)
            files = {k: base64.b64decode(v) for k, v in data.items()}
            _write(directory, files, int(source.get("defaultMode", 0o644)))
            return directory
        if "projected" in volume:  # the ServiceAccount admission's kube-api-access-*
            files = {}
            for item in volume["projected"].get("sources") or ():
                files.update(self._projection(item, pod))
            _write(directory, files, int(volume["projected"].get("defaultMode", 0o644)))
            return directory
        if "configMap" in volume:
            source = volume["configMap"]
            _write(directory, self._config_map_files(source), int(source.get("defaultMode", 0o644)))
            return directory
        raise PodRejected(f"volume {name}: not hostPath, emptyDir, secret, configMap or projected")

    def _object_data(self, kind: str, source: Mapping[str, Any]) -> dict[str, str]:
        """`data` of the Secret or ConfigMap a volume names; NotYet while it does not exist,
        unless the volume says it is optional."""
        from kubernetes.client.rest import ApiException

        read = self.core.read_namespaced_secret if kind == "secret" else (
            self.core.read_namespaced_config_map)  # fmt: skip
        name = source["secretName" if kind == "secret" else "name"]
        try:
            return dict(read(name, self.namespace).data or {})
        except ApiException as exc:
            if exc.status != 404:
                raise
            if source.get("optional"):
                return {}
            raise NotYet(f"{kind} {name} not found") from None

    def _config_map_files(self, source: Mapping[str, Any]) -> dict[str, bytes]:
        """A ConfigMap's keys (or the `items` chosen) as files."""
        data = self._object_data("configmap", source)
        items = source.get("items") or [{"key": k, "path": k} for k in data]
        return {i["path"]: data[i["key"]].encode() for i in items if i["key"] in data}

    def _projection(self, item: Mapping[str, Any], pod: Mapping[str, Any]) -> dict[str, bytes]:
        meta = pod["metadata"]
        if "serviceAccountToken" in item:
            source = item["serviceAccountToken"]
            token = self._token(
                pod["spec"].get("serviceAccountName") or "default",
                meta,
                audience=source.get("audience"),
                seconds=int(source.get("expirationSeconds", 3600)),
            )
            return {source["path"]: token.encode()}
        if "configMap" in item:
            return self._config_map_files(item["configMap"])
        if "downwardAPI" in item:
            fields = {"metadata.namespace": meta["namespace"], "metadata.name": meta["name"]}
            out = {}
            for i in item["downwardAPI"].get("items") or ():
                path = (i.get("fieldRef") or {}).get("fieldPath")
                if path not in fields:
                    raise PodRejected(f"downwardAPI {path}: only {sorted(fields)} work")
                out[i["path"]] = fields[path].encode()
            return out
        raise PodRejected(f"projected source {sorted(item)}: not a token, ConfigMap or fields")

    def _token(
        self, service_account: str, meta: Mapping[str, Any], *, audience: str | None, seconds: int
    ) -> str:
        """A token of the pod's ServiceAccount bound to the pod (TokenRequest): valid while
        the pod exists, as a kubelet's is."""
        from kubernetes import client as k8s

        request = k8s.AuthenticationV1TokenRequest(
            spec=k8s.V1TokenRequestSpec(
                audiences=[audience] if audience else [],  # none: the API server's own
                expiration_seconds=seconds,
                bound_object_ref=k8s.V1BoundObjectReference(
                    api_version="v1", kind="Pod", name=meta["name"], uid=meta["uid"]
                ),
            )
        )
        answer = self.core.create_namespaced_service_account_token(
            service_account, self.namespace, request
        )
        return str(answer.status.token)

    def start_container(self, p: RunningPod) -> None:
        """Start the pod's container (again, after a crash) through the runtime."""
        if p.ids:
            self.runtime.remove(p)  # the one that crashed
        p.proc, container_id = self.runtime.start(p)
        p.ids.append(container_id)
        p.ready = False
        p.ready_since = p.started_at = _now()
        p.next_probe = time.monotonic() + float((p.readiness or {}).get("initialDelaySeconds", 0))
        log.info("started %s on %s: %s://%s", p.name, p.node, self.runtime.scheme, container_id)

    # -- tending a pod ------------------------------------------------------------------------

    def _tend(self, p: RunningPod) -> None:
        now = time.monotonic()
        if p.terminated_at is not None:
            self._report(p)
            if p.deleting and now >= p.terminated_at + self.linger_s:
                self._delete(p.name, p.uid)
            if not p.deleting or p.uid in self._done:
                with self._lock:
                    self.pods.pop(p.uid, None)
            return
        if p.stopping:
            return
        if p.proc is not None and p.proc.poll() is not None and p.restart_at is None:
            code = p.proc.returncode
            p.exits.append(code)
            p.unexpected_exits.append(code)
            n = len(p.unexpected_exits)
            delay = min(RESTART_BACKOFF_S[0] * 2 ** (n - 1), RESTART_BACKOFF_S[1])
            p.restart_at = now + delay
            p.ready = False
            self.problems.append(f"{p.name} on {p.node} exited with {code}; restart in {delay:g}s")
        elif p.restart_at is not None and now >= p.restart_at:
            p.restart_at = None
            p.restarts += 1
            self.start_container(p)
        elif p.readiness and p.running and now >= p.next_probe and not p.probing:
            p.next_probe = now + float(p.readiness.get("periodSeconds", 10))
            p.probing = True
            threading.Thread(target=self._probe, args=(p,), daemon=True).start()
        self._report(p)

    def _probe(self, p: RunningPod) -> None:
        """In a thread of its own (it enters the node's namespace)."""
        try:
            get = (p.readiness or {}).get("httpGet")
            if not get:
                ok = True  # exec / tcpSocket probes: not run here, counted as passing
            else:
                port = get.get("port")
                if isinstance(port, str):  # a named container port
                    port = next(
                        (q["containerPort"] for q in p.ports if q.get("name") == port), None
                    )
                timeout = float((p.readiness or {}).get("timeoutSeconds", 1))
                enter_netns(p.netns)
                host = str(get.get("host") or p.pod_ip)
                ok = isinstance(port, int) and http_probe(
                    host, port, str(get.get("path", "/")), timeout
                )
            if ok != p.ready and p.running and not p.stopping:
                p.ready = ok
                p.ready_since = _now()
        finally:
            p.probing = False

    def _status(self, p: RunningPod) -> dict[str, Any]:
        """The pod's status as this kubelet sees it now."""
        container: dict[str, Any] = {
            "name": p.container, "image": p.image, "imageID": "",
            "containerID": f"{self.runtime.scheme}://{p.container_id}" if p.ids else "",
            "ready": p.ready, "started": p.running, "restartCount": p.restarts,
        }  # fmt: skip
        phase = "Running"
        if p.terminated_at is not None:
            code = p.exits[-1] if p.exits else 137
            phase = "Succeeded" if code == 0 else "Failed"
            container["state"] = {"terminated": {"exitCode": code, "reason": (
                "Completed" if code == 0 else "Error")}}  # fmt: skip
        elif p.restart_at is not None:
            container["state"] = {"waiting": {"reason": "CrashLoopBackOff"}}
            container["lastState"] = {"terminated": {"exitCode": p.exits[-1]}}
        else:
            container["state"] = {"running": {"startedAt": p.started_at}}
        ready = "True" if p.ready and phase == "Running" else "False"
        return {
            "phase": phase,
            "hostIP": p.pod_ip,
            "podIP": p.pod_ip,
            "podIPs": [{"ip": p.pod_ip}],
            "startTime": p.start_time,
            "conditions": [
                {"type": "PodScheduled", "status": "True"},
                {"type": "Initialized", "status": "True"},
                {"type": "ContainersReady", "status": ready, "lastTransitionTime": p.ready_since},
                {"type": "Ready", "status": ready, "lastTransitionTime": p.ready_since},
            ],
            "containerStatuses": [container],
        }

    def _report(self, p: RunningPod) -> None:
        """Send the pod's status if it changed since the API server last took it."""
        from kubernetes.client.rest import ApiException

        status = self._status(p)
        if status == p.reported:
            return
        try:
            self.core.patch_namespaced_pod_status(p.name, self.namespace, {"status": status})
        except ApiException as exc:
            if exc.status != 404:
                raise
        p.reported = status

    # -- stopping -----------------------------------------------------------------------------

    def _stop_in_background(self, p: RunningPod) -> None:
        p.stopping = True
        threading.Thread(target=self._terminate, args=(p,), daemon=True).start()

    def _terminate(self, p: RunningPod) -> None:
        """SIGTERM, SIGKILL after the grace period; the container removed."""
        p.stopping = True
        proc = p.proc
        if proc is not None and proc.poll() is None:
            log.info("stopping %s on %s (grace %gs)", p.name, p.node, p.grace_s)
            if not self.runtime.stop(p, proc):
                self.problems.append(f"{p.name} on {p.node} ignored SIGTERM for {p.grace_s:g}s")
        if proc is not None and p.restart_at is None and p.terminated_at is None:
            p.exits.append(proc.wait())  # (a crash waiting for its restart is counted)
        self.runtime.remove(p)
        p.ready = False
        p.terminated_at = time.monotonic()

    def _delete(self, name: str, uid: str) -> None:
        """Delete the pod object at once (grace period 0), if it is still the pod `uid`."""
        from kubernetes import client as k8s
        from kubernetes.client.rest import ApiException

        options = k8s.V1DeleteOptions(
            grace_period_seconds=0, preconditions=k8s.V1Preconditions(uid=uid)
        )
        try:
            self.core.delete_namespaced_pod(name, self.namespace, body=options)
        except ApiException as exc:
            if exc.status not in (404, 409):  # gone, or a new pod of the same name
                raise
        self._done.add(uid)


def _write(directory: Path, files: Mapping[str, bytes], mode: int) -> None:
    for path, data in files.items():
        target = directory / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        target.chmod(mode)
