"""A small test kubelet: runs the pods bound to lab nodes as real processes in their namespaces.

It plays the part of the kubelet on every lab node at once, against kmock over HTTP:

- It polls the pods (GET /api/v1/pods) and picks those whose spec.nodeName is a lab node.
- A new pod (by uid) starts: the container's command and args with `$(VAR)` expanded from
  its env; env `valueFrom.fieldRef` resolved (spec.nodeName, metadata.name,
  metadata.namespace, status.hostIP, status.podIP); volumes materialised in a work directory:
  `hostPath` as a per-node directory (it outlives the pod, as on a host), `secret` as one file
  per key with the base64-decoded value from the Secret in the API (the pod waits while the
  Secret is missing, as ContainerCreating), `emptyDir` as a per-pod directory. There is no
  mount namespace, so each mountPath is rewritten to its directory in env values and
  arguments. `extra_args` (here `--kube-api http://127.0.0.1:<relay port>`) stand in for the
  in-cluster service account the daemon would use. The image's `vrrpd` entry point is the
  checkout's `python -m vrrpd`. The process runs in the node's namespace (`ip netns exec`,
  host network = the node's network) with a clean environment, its output in a log file.
- Once started it patches the pod's status: phase Running, hostIP/podIP (host network:
  the node's address), a running containerStatus; readiness comes from the container's
  readinessProbe (httpGet, sent from inside the node's namespace), as Ready / ContainersReady
  conditions and containerStatuses[].ready. Liveness probes are not run.
- A process that exits on its own is restarted (restartPolicy Always) after a backoff; the
  restart count goes into containerStatuses.
- Graceful deletion: the emulator (conftest.SystemEmulator) puts KUBELET_FINALIZER on every
  pod, so DELETE only sets deletionTimestamp, as a real API server does while the kubelet
  works. The kubelet then sends SIGTERM, waits up to terminationGracePeriodSeconds, sends
  SIGKILL after that, and only then removes its finalizer: the object goes when the process
  has gone. A pod that vanishes without it (force deletion) is stopped the same way.
- `hold(node)` keeps new pods on a node Pending (a kubelet slow to start them), `release`
  lets them start.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from vrrpd.lab.netns import Lab

ROOT = str(Path(__file__).resolve().parents[2])  # the checkout: `vrrpd` runs from here
KUBELET_FINALIZER = "kubelet.test.kubevrrp.io/graceful-termination"
FIELD_PATHS = (
    "spec.nodeName",
    "metadata.name",
    "metadata.namespace",
    "status.hostIP",
    "status.podIP",
)
RESTART_BACKOFF_S = (1.0, 10.0)

log = logging.getLogger("test-kubelet")

T = TypeVar("T")


class PodRejected(Exception):
    """The pod asks for something this kubelet cannot do; it is marked Failed."""


class NotYet(Exception):
    """The pod cannot start yet (a Secret is missing); retried on the next poll."""


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- running code inside a network namespace ------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000


async def in_netns(netns: str, fn: Callable[[], T]) -> T:
    """Run `fn` in a fresh thread that has entered network namespace `netns`.

    setns(CLONE_NEWNET) moves only the calling thread, so a throwaway thread is used (never
    an executor's thread, which other code would reuse: kopf's API client, for one).
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def deliver(ok: bool, value: Any) -> None:
        if future.done():
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def target() -> None:
        try:
            fd = os.open(f"/run/netns/{netns}", os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns({netns}): {os.strerror(err)}")
            finally:
                os.close(fd)
            result = fn()
        except BaseException as exc:
            loop.call_soon_threadsafe(deliver, False, exc)
        else:
            loop.call_soon_threadsafe(deliver, True, result)

    threading.Thread(target=target, name=f"netns-{netns}", daemon=True).start()
    return await future


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
    """A pod this kubelet runs: its process and where its files are."""

    uid: str
    namespace: str
    name: str
    node: str
    netns: str
    argv: list[str]
    env: dict[str, str]
    workdir: Path
    log_path: Path
    grace_s: float
    readiness: Mapping[str, Any] | None
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    exits: list[int] = field(default_factory=list)  # exit codes of processes that ended
    unexpected_exits: list[int] = field(default_factory=list)  # ... on their own (crashes)
    stopping: bool = False
    stopped: bool = False
    released: bool = False  # our finalizer is off the pod: the API server removed it
    ready: bool = False
    next_probe: float = 0.0
    restart_at: float | None = None
    pod_ip: str = ""
    container: str = ""
    image: str = ""
    ports: list[Mapping[str, Any]] = field(default_factory=list)
    started_at: str = ""

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

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


# --- the kubelet ------------------------------------------------------------------------------


class Kubelet:
    def __init__(
        self,
        api_url: str,
        lab: Lab,
        nodes: Mapping[str, int],
        workdir: Path,
        *,
        extra_args: tuple[str, ...] = (),
        poll_s: float = 0.2,
        linger_s: float = 0.0,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.lab = lab
        self.nodes = dict(nodes)  # node name -> lab node index
        self.workdir = workdir
        self.extra_args = extra_args
        self.poll_s = poll_s
        self.linger_s = linger_s  # between the process's exit and the pod object's removal
        self.pods: dict[str, RunningPod] = {}  # uid -> pod, while it runs or stops
        self.history: list[RunningPod] = []  # every pod ever started, in order
        self.problems: list[str] = []  # API errors, rejected pods: shown when a test fails
        self._held: set[str] = set()
        self._rejected: set[str] = set()  # uids marked Failed: never tried again
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._stops: set[asyncio.Task[None]] = set()
        self._probes: set[asyncio.Task[None]] = set()

    # -- control ----------------------------------------------------------------------------

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        self._task = asyncio.create_task(self._loop(), name="test-kubelet")

    async def close(self) -> None:
        """Stop every process (SIGTERM, then SIGKILL after the grace period); pods stay."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for task in [*self._probes]:
            task.cancel()
        stops = [self._terminate(p) for p in self.pods.values()]
        await asyncio.gather(*stops, *self._stops, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    def hold(self, node: str) -> None:
        """Leave new pods on `node` Pending until `release(node)`."""
        self._held.add(node)

    def release(self, node: str) -> None:
        self._held.discard(node)

    def running(self, node: str) -> RunningPod | None:
        """The pod whose process runs on `node` now (not one being stopped)."""
        for p in self.pods.values():
            if p.node == node and p.running and not p.stopping:
                return p
        return None

    def describe(self) -> str:
        """What ran and how it ended, with the tail of each log: for failure messages."""
        lines = []
        for p in self.history:
            state = "running" if p.running else f"exited {p.exits}"
            lines.append(f"--- {p.name} ({p.uid[:8]}) on {p.node}: {state}, restarts {p.restarts}")
            try:
                tail = p.log_path.read_text(errors="replace").splitlines()[-25:]
            except OSError:
                tail = []
            lines.extend("    " + t for t in tail)
        lines.extend(f"!!! {p}" for p in self.problems[-20:])
        return "\n".join(lines)

    # -- API ----------------------------------------------------------------------------------

    async def _api(self, method: str, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        assert self._session is not None
        headers = {}
        if method == "PATCH":
            headers["Content-Type"] = "application/merge-patch+json"
        async with self._session.request(
            method, self.api_url + path, data=None if body is None else json.dumps(body),
            headers=headers, **kw,
        ) as resp:  # fmt: skip
            text = await resp.text()
            try:
                return resp.status, json.loads(text) if text else None
            except ValueError:
                return resp.status, text

    async def _patch_pod(
        self, namespace: str, name: str, patch: Mapping[str, Any], sub: str = ""
    ) -> None:
        path = f"/api/v1/namespaces/{namespace}/pods/{name}" + (f"/{sub}" if sub else "")
        code, answer = await self._api("PATCH", path, patch)
        if code != 200 and code != 404:
            self.problems.append(f"PATCH {path}: HTTP {code}: {str(answer)[:200]}")

    # -- the loop -----------------------------------------------------------------------------

    async def _loop(self) -> None:
        while True:
            try:
                await self._sync()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the API going away at teardown, mostly
                self.problems.append(f"sync failed: {type(exc).__name__}: {exc}")
            await asyncio.sleep(self.poll_s)

    async def _sync(self) -> None:
        code, listing = await self._api("GET", "/api/v1/pods")
        if code != 200 or not isinstance(listing, Mapping):
            self.problems.append(f"GET /api/v1/pods: HTTP {code}")
            return
        seen: set[str] = set()
        for pod in listing.get("items") or ():
            meta = pod.get("metadata") or {}
            node = (pod.get("spec") or {}).get("nodeName")
            uid = meta.get("uid")
            if node not in self.nodes or not uid:
                continue
            seen.add(uid)
            current = self.pods.get(uid)
            if current is None:
                done = next((h for h in self.history if h.uid == uid), None)
                if done is not None:  # stopped already; release it (again, if that failed)
                    if done.released and meta.get("deletionTimestamp"):
                        await self._release(meta["namespace"], meta["name"], uid)
                    continue
                if meta.get("deletionTimestamp"):
                    await self._release(meta["namespace"], meta["name"])  # never started
                elif node not in self._held and uid not in self._rejected:
                    await self._start(pod)
                continue
            if meta.get("deletionTimestamp") and not current.stopping:
                grace = meta.get("deletionGracePeriodSeconds")
                if isinstance(grace, int):
                    current.grace_s = float(grace)
                self._spawn_stop(current, release=True)
            elif not current.stopping:
                await self._tend(current)
        for uid, p in list(self.pods.items()):
            if uid not in seen and not p.stopping:  # gone without graceful deletion
                self._spawn_stop(p, release=False)

    # -- starting -----------------------------------------------------------------------------

    async def _start(self, pod: Mapping[str, Any]) -> None:
        meta, spec = pod["metadata"], pod["spec"]
        try:
            running = await self._prepare(pod)
        except NotYet as exc:
            log.info("pod %s/%s waits: %s", meta["namespace"], meta["name"], exc)
            return
        except PodRejected as exc:
            self._rejected.add(meta["uid"])
            self.problems.append(f"pod {meta['name']} rejected: {exc}")
            await self._patch_pod(
                meta["namespace"], meta["name"],
                {"status": {"phase": "Failed", "reason": "TestKubelet", "message": str(exc)}},
                "status",
            )  # fmt: skip
            return
        self.pods[running.uid] = running
        self.history.append(running)
        self._spawn(running)
        node_ip = self.lab.node(self.nodes[spec["nodeName"]]).address4
        await self._patch_pod(running.namespace, running.name, {"status": {
            "phase": "Running", "hostIP": node_ip, "podIP": node_ip,
            "podIPs": [{"ip": node_ip}], "startTime": _now(),
            "conditions": self._conditions(False),
            "containerStatuses": [self._container_status(running)],
        }}, "status")  # fmt: skip

    async def _prepare(self, pod: Mapping[str, Any]) -> RunningPod:
        meta, spec = pod["metadata"], pod["spec"]
        containers = spec.get("containers") or []
        if len(containers) != 1:
            raise PodRejected(f"{len(containers)} containers; this kubelet runs exactly one")
        container = containers[0]
        node = spec["nodeName"]
        lab_node = self.lab.node(self.nodes[node])
        if not spec.get("hostNetwork"):
            raise PodRejected("only hostNetwork pods run here (the node's namespace is the pod's)")
        uid = meta["uid"]
        pod_dir = self.workdir / "pods" / f"{meta['name']}-{uid[:8]}"
        pod_dir.mkdir(parents=True, exist_ok=True)

        # Volumes -> directories; mountPath -> directory, for rewriting paths.
        volumes = {v["name"]: v for v in spec.get("volumes") or ()}
        mounts: list[tuple[str, Path]] = []
        for mount in container.get("volumeMounts") or ():
            volume = volumes.get(mount["name"])
            if volume is None:
                raise PodRejected(f"volumeMount {mount['name']} names no volume")
            mounts.append(
                (mount["mountPath"].rstrip("/"), await self._volume(volume, meta, node, pod_dir))
            )

        def rewrite(value: str) -> str:
            for path, directory in sorted(mounts, key=lambda m: -len(m[0])):
                if value == path or value.startswith(path + "/"):
                    return str(directory) + value[len(path) :]
            return value

        fields = {
            "spec.nodeName": node,
            "metadata.name": meta["name"],
            "metadata.namespace": meta["namespace"],
            "status.hostIP": lab_node.address4,
            "status.podIP": lab_node.address4,
        }
        env: dict[str, str] = {}
        for entry in container.get("env") or ():
            if "value" in entry:
                env[entry["name"]] = _expand(str(entry["value"]), env)
                continue
            ref = ((entry.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")
            if ref not in fields:
                raise PodRejected(
                    f"env {entry['name']}: only fieldRefs {FIELD_PATHS} are supported"
                )
            env[entry["name"]] = fields[ref]
        env = {k: rewrite(v) for k, v in env.items()}
        command = [*(container.get("command") or ()), *(container.get("args") or ())]
        if not command:
            raise PodRejected("no command: this kubelet has no image entry points")
        argv = [rewrite(_expand(a, env)) for a in command]
        if argv[0] == "vrrpd":
            argv = [sys.executable, "-m", "vrrpd", *argv[1:]]
        argv += list(self.extra_args)
        process_env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "PYTHONPATH": ROOT,
            "PYTHONDONTWRITEBYTECODE": "1",
            **env,
        }
        grace = spec.get("terminationGracePeriodSeconds")
        return RunningPod(
            uid=uid,
            namespace=meta["namespace"],
            name=meta["name"],
            node=node,
            netns=lab_node.netns,
            argv=argv,
            env=process_env,
            workdir=pod_dir,
            log_path=pod_dir / "container.log",
            grace_s=float(grace) if isinstance(grace, int) else 30.0,
            readiness=container.get("readinessProbe"),
            pod_ip=lab_node.address4,
            container=str(container.get("name", "")),
            image=str(container.get("image", "")),
            ports=list(container.get("ports") or ()),
        )

    async def _volume(
        self, volume: Mapping[str, Any], meta: Mapping[str, Any], node: str, pod_dir: Path
    ) -> Path:
        name = volume["name"]
        if "hostPath" in volume:
            directory = self.workdir / "nodes" / node / volume["hostPath"]["path"].lstrip("/")
            directory.mkdir(parents=True, exist_ok=True)
            return directory
        if "emptyDir" in volume:
            directory = pod_dir / "volumes" / "empty-dir" / name
            directory.mkdir(parents=True, exist_ok=True)
            return directory
        if "secret" in volume:
            secret_name = volume["secret"]["secretName"]
            path = f"/api/v1/namespaces/{meta['namespace']}/secrets/{secret_name}"
            code, secret = await self._api("GET", path)
            if code == 404:
                raise NotYet(f"Secret {secret_name} not found")
            if code != 200 or not isinstance(secret, Mapping):
                raise NotYet(f"GET {path}: HTTP {code}")
            directory = pod_dir / "volumes" / "secret" / name
            directory.mkdir(parents=True, exist_ok=True)
            mode = int(volume["secret"].get("defaultMode", 0o644))
            for key, value in (secret.get("data") or {}).items():
                target = directory / key
                target.write_bytes(base64.b64decode(value))
                target.chmod(mode)
            return directory
        raise PodRejected(f"volume {name}: only hostPath, emptyDir and secret are supported")

    def _spawn(self, p: RunningPod) -> None:
        with open(p.log_path, "ab") as out:
            p.proc = self.lab.run(
                p.netns, p.argv, env=p.env, cwd=str(p.workdir),
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        p.ready = False
        p.started_at = _now()
        p.next_probe = time.monotonic() + float((p.readiness or {}).get("initialDelaySeconds", 0))
        log.info("started %s on %s: pid %d", p.name, p.node, p.proc.pid)

    def _conditions(self, ready: bool) -> list[dict[str, Any]]:
        value = "True" if ready else "False"
        return [
            {"type": "PodScheduled", "status": "True"},
            {"type": "Initialized", "status": "True"},
            {"type": "ContainersReady", "status": value, "lastTransitionTime": _now()},
            {"type": "Ready", "status": value, "lastTransitionTime": _now()},
        ]

    @staticmethod
    def _container_status(p: RunningPod, **fields: Any) -> dict[str, Any]:
        status: dict[str, Any] = {
            "name": p.container,
            "image": p.image,
            "ready": p.ready,
            "started": p.running,
            "restartCount": p.restarts,
            "state": {"running": {"startedAt": p.started_at}},
        }
        status.update(fields)
        return status

    # -- tending a running pod ------------------------------------------------------------------

    async def _tend(self, p: RunningPod) -> None:
        now = time.monotonic()
        if p.proc is not None and p.proc.poll() is not None and p.restart_at is None:
            code = p.proc.returncode
            p.exits.append(code)
            p.unexpected_exits.append(code)
            delay = min(
                RESTART_BACKOFF_S[0] * 2 ** (len(p.unexpected_exits) - 1), RESTART_BACKOFF_S[1]
            )
            p.restart_at = now + delay
            self.problems.append(
                f"{p.name} on {p.node} exited with {code}; restarting in {delay:g}s"
            )
            await self._patch_pod(p.namespace, p.name, {"status": {
                "conditions": self._conditions(False),
                "containerStatuses": [self._container_status(
                    p, ready=False, started=False,
                    state={"waiting": {"reason": "CrashLoopBackOff"}},
                    lastState={"terminated": {"exitCode": code}},
                )],
            }}, "status")  # fmt: skip
            return
        if p.restart_at is not None:
            if now >= p.restart_at:
                p.restart_at = None
                p.restarts += 1
                self._spawn(p)
                await self._patch_pod(p.namespace, p.name, {"status": {
                    "conditions": self._conditions(False),
                    "containerStatuses": [self._container_status(p)],
                }}, "status")  # fmt: skip
            return
        if (
            p.readiness
            and now >= p.next_probe
            and not any(not t.done() for t in self._probes if t.get_name() == p.uid)
        ):
            period = float(p.readiness.get("periodSeconds", 10))
            p.next_probe = now + period
            task = asyncio.create_task(self._probe(p), name=p.uid)
            self._probes.add(task)
            task.add_done_callback(self._probes.discard)

    async def _probe(self, p: RunningPod) -> None:
        probe = p.readiness or {}
        get = probe.get("httpGet")
        if not get:
            ok = True  # exec / tcpSocket probes: not run here, counted as passing
        else:
            port = get.get("port")
            if isinstance(port, str):  # a named container port
                port = next((q["containerPort"] for q in p.ports if q.get("name") == port), None)
            if not isinstance(port, int):
                port = 0
            timeout = float(probe.get("timeoutSeconds", 1))
            path = str(get.get("path", "/"))
            host = str(get.get("host") or p.pod_ip)
            ok = bool(port) and await in_netns(
                p.netns, lambda: http_probe(host, port, path, timeout)
            )
        if ok != p.ready and not p.stopping and p.running:
            p.ready = ok
            await self._patch_pod(p.namespace, p.name, {"status": {
                "conditions": self._conditions(ok),
                "containerStatuses": [self._container_status(p)],
            }}, "status")  # fmt: skip

    # -- stopping -----------------------------------------------------------------------------

    def _spawn_stop(self, p: RunningPod, *, release: bool) -> None:
        p.stopping = True
        task = asyncio.create_task(self._stop(p, release=release))
        self._stops.add(task)
        task.add_done_callback(self._stops.discard)

    async def _stop(self, p: RunningPod, *, release: bool) -> None:
        await self._terminate(p)
        self.pods.pop(p.uid, None)
        if release:
            await asyncio.sleep(self.linger_s)
            await self._release(p.namespace, p.name, p.uid)
        p.released = True

    async def _terminate(self, p: RunningPod) -> None:
        """SIGTERM, wait up to the grace period, then SIGKILL (the process group)."""
        p.stopping = True
        proc = p.proc
        if proc is None or p.stopped:
            return
        if proc.poll() is None:
            log.info("stopping %s on %s (grace %gs)", p.name, p.node, p.grace_s)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
            deadline = time.monotonic() + p.grace_s
            while proc.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if proc.poll() is None:
                self.problems.append(
                    f"{p.name} on {p.node} ignored SIGTERM for {p.grace_s:g}s: SIGKILL"
                )
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # stragglers of the group too
            while proc.poll() is None:
                await asyncio.sleep(0.05)
        p.exits.append(proc.returncode)
        p.stopped = True

    async def _release(self, namespace: str, name: str, uid: str | None = None) -> None:
        """Remove our finalizer: the API server then deletes the pod object."""
        path = f"/api/v1/namespaces/{namespace}/pods/{name}"
        code, pod = await self._api("GET", path)
        if code != 200 or not isinstance(pod, Mapping):
            return
        meta = pod.get("metadata") or {}
        if uid is not None and meta.get("uid") != uid:
            return  # a new pod of the same name already
        rest = [f for f in meta.get("finalizers") or () if f != KUBELET_FINALIZER]
        await self._patch_pod(namespace, name, {"metadata": {"finalizers": rest or None}})


_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def _expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: known variables expand, $$ escapes, the rest stays."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return _VAR.sub(sub, text)
