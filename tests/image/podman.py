"""Running pods through podman: the `podman run` argv of a rendered Pod, and the podman CLI.

`run_argv(pod, ...)` is pure. It turns a Pod (as the operator renders it, or as the API
server returns it) plus what a kubelet would supply — the network namespace, the values of
fieldRefs, host directories for the volumes, the service-account files, the cluster's
environment variables — into the command line that runs the pod's one container as its
spec says: command and args (with `$(VAR)` expanded), env, user and group, capabilities,
privilege escalation, read-only root filesystem, seccomp, memory and CPU limits, volumes,
grace period and pull policy. A field it cannot honour raises PodSpecError naming it, so
no pod ever runs with a setting silently dropped. Scheduling fields (nodeName, tolerations,
affinity, ...) are a scheduler's and ignored; probes and restarts are the caller's.

`Podman` runs the podman CLI with this repository's settings (scripts/containers.conf,
unless CONTAINERS_CONF is set). Used by tests/image, bench/image.py and the system test's
kubelet (tests/system/kubelet.py, its podman runtime).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CONTAINERS_CONF = REPO / "scripts" / "containers.conf"
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
DEFAULT_GRACE_S = 30  # Kubernetes' terminationGracePeriodSeconds default

# Pod and container fields that decide where and whether a pod runs, or that a kubelet
# handles itself: nothing in the container's command line.
_SCHEDULING = {
    "nodeName", "nodeSelector", "affinity", "tolerations", "priorityClassName", "priority",
    "schedulerName", "imagePullSecrets", "restartPolicy", "dnsPolicy", "enableServiceLinks",
    "serviceAccountName", "serviceAccount", "topologySpreadConstraints", "preemptionPolicy",
}  # fmt: skip
_POD_FIELDS = _SCHEDULING | {
    "hostNetwork", "securityContext", "containers", "volumes", "terminationGracePeriodSeconds",
    "automountServiceAccountToken",
}  # fmt: skip
_CONTAINER_FIELDS = {
    "name", "image", "imagePullPolicy", "command", "args", "env", "ports", "resources",
    "securityContext", "volumeMounts", "workingDir", "readinessProbe", "livenessProbe",
    "startupProbe", "terminationMessagePath", "terminationMessagePolicy",
}  # fmt: skip
_POD_SECURITY = {"runAsUser", "runAsGroup", "runAsNonRoot", "seccompProfile"}
_CONTAINER_SECURITY = _POD_SECURITY | {
    "capabilities", "privileged", "allowPrivilegeEscalation", "readOnlyRootFilesystem",
}  # fmt: skip
_PULL = {"Always": "always", "IfNotPresent": "missing", "Never": "never"}
_HOST_DIR_VOLUMES = ("hostPath", "secret", "configMap", "projected")
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")
_FACTORS = {
    None: 1, "m": 0.001, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
}  # fmt: skip
_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


class PodSpecError(ValueError):
    """The pod asks for something run_argv cannot honour; the message names the field."""


def quantity(value: Any, field: str) -> float:
    """A Kubernetes quantity ("16Mi", "500m", 1e9) as a number of base units."""
    match = _QUANTITY.match(str(value))
    if not match:
        raise PodSpecError(f"{field}: {value!r} is not a quantity such as 16Mi, 500m or 2")
    return float(match.group(1)) * _FACTORS[match.group(2)]


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: defined variables replaced, `$$` is a `$`, others kept."""

    def sub(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _VAR_REF.sub(sub, text)


def _only(obj: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise PodSpecError(
            f"{where}: {', '.join(unknown)} not supported here (supported: {sorted(allowed)})"
        )


def _uid(user: str) -> int | None:
    """The numeric uid of an image's USER ("65532:65532" -> 65532; "" -> 0; a name -> None)."""
    head = user.split(":", 1)[0]
    if not head:
        return 0
    return int(head) if head.isdigit() else None


def run_argv(
    pod: Mapping[str, Any],
    *,
    name: str,
    network: str,
    image: str | None = None,
    image_user: str = "",
    fields: Mapping[str, str] | None = None,
    volume_dirs: Mapping[str, str | os.PathLike[str]] | None = None,
    service_account_dir: str | os.PathLike[str] | None = None,
    cluster_env: Mapping[str, str] | None = None,
    podman: Sequence[str] = ("podman",),
) -> list[str]:
    """`podman run` for the pod's one container.

    name         the container's name
    network      podman's --network: "host", or "ns:/run/netns/NODE" for a lab node
    image        instead of the container's image (e.g. a locally built tag)
    image_user   the image's USER, to check runAsNonRoot when the pod sets no runAsUser
    fields       values of env fieldRefs by path ("spec.nodeName": "n1", ...)
    volume_dirs  a host directory per volume name for hostPath, secret, configMap and
                 projected volumes (emptyDir becomes a tmpfs)
    service_account_dir  mounted read-only at the service-account path (token, ca.crt,
                 namespace), unless the pod sets automountServiceAccountToken: false
    cluster_env  the variables a kubelet adds (KUBERNETES_SERVICE_HOST, ...); the
                 container's own env wins over them
    """
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    _only(spec, _POD_FIELDS, "spec")
    containers = spec.get("containers") or []
    if len(containers) != 1:
        raise PodSpecError(f"spec.containers: {len(containers)} containers; exactly one runs")
    (container,) = containers
    _only(container, _CONTAINER_FIELDS, "spec.containers[0]")
    fields = dict(fields or {})
    volume_dirs = dict(volume_dirs or {})
    argv = [*podman, "run", "--name", name, "--network", network]

    hostname = fields.get("spec.nodeName") if spec.get("hostNetwork") else meta.get("name")
    if hostname:
        argv += ["--hostname", hostname]

    # Environment: the kubelet's variables, then the container's in order; each value may
    # refer to the variables before it.
    env: dict[str, str] = dict(cluster_env or {})
    for i, entry in enumerate(container.get("env") or ()):
        where = f"spec.containers[0].env[{i}] ({entry.get('name')})"
        if "value" in entry:
            env[entry["name"]] = expand(str(entry["value"]), env)
            continue
        ref = ((entry.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")
        if ref is None:
            raise PodSpecError(f"{where}: only value and valueFrom.fieldRef are supported")
        if ref not in fields:
            raise PodSpecError(f"{where}: fieldRef {ref} has no value (give it in fields)")
        env[entry["name"]] = fields[ref]
    for key, value in env.items():
        argv += ["--env", f"{key}={value}"]

    # Security: the container's settings win over the pod's.
    pod_security = spec.get("securityContext") or {}
    security = container.get("securityContext") or {}
    _only(pod_security, _POD_SECURITY, "spec.securityContext")
    _only(security, _CONTAINER_SECURITY, "spec.containers[0].securityContext")
    merged = {**pod_security, **security}
    uid, gid = merged.get("runAsUser"), merged.get("runAsGroup")
    if gid is not None and uid is None:
        raise PodSpecError("securityContext: runAsGroup without runAsUser is not supported")
    if uid is not None:
        argv += ["--user", f"{uid}" if gid is None else f"{uid}:{gid}"]
    if merged.get("runAsNonRoot"):
        effective = uid if uid is not None else _uid(image_user)
        if effective is None or effective == 0:
            raise PodSpecError(
                f"securityContext.runAsNonRoot: the container would run as "
                f"{uid if uid is not None else repr(image_user or 'root')}; a kubelet refuses it"
            )
    if merged.get("privileged"):
        argv.append("--privileged")
    capabilities = merged.get("capabilities") or {}
    _only(capabilities, {"add", "drop"}, "securityContext.capabilities")
    argv += [x for cap in capabilities.get("drop") or () for x in ("--cap-drop", cap)]
    argv += [x for cap in capabilities.get("add") or () for x in ("--cap-add", cap)]
    if merged.get("allowPrivilegeEscalation") is False:
        argv += ["--security-opt", "no-new-privileges"]
    if merged.get("readOnlyRootFilesystem"):
        # No tmpfs of podman's own on /tmp, /run and /var/tmp: a pod has none either.
        argv += ["--read-only", "--read-only-tmpfs=false"]
    seccomp = (merged.get("seccompProfile") or {}).get("type", "RuntimeDefault")
    if seccomp == "Unconfined":
        argv += ["--security-opt", "seccomp=unconfined"]
    elif seccomp != "RuntimeDefault":
        raise PodSpecError(f"securityContext.seccompProfile.type: {seccomp} is not supported")

    limits = (container.get("resources") or {}).get("limits") or {}
    if "memory" in limits:
        argv += ["--memory", str(int(quantity(limits["memory"], "resources.limits.memory")))]
    if "cpu" in limits:
        argv += ["--cpus", f"{quantity(limits['cpu'], 'resources.limits.cpu'):g}"]

    argv += _volume_args(spec, container, volume_dirs)
    if service_account_dir is not None and spec.get("automountServiceAccountToken") is not False:
        argv += ["--volume", f"{service_account_dir}:{SERVICE_ACCOUNT_DIR}:ro"]

    grace = spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE_S)
    argv += ["--stop-timeout", str(grace)]
    policy = container.get("imagePullPolicy", "IfNotPresent")
    if policy not in _PULL:
        raise PodSpecError(f"imagePullPolicy: {policy!r}; use Always, IfNotPresent or Never")
    argv += ["--pull", _PULL[policy]]
    if container.get("workingDir"):
        argv += ["--workdir", container["workingDir"]]

    # command replaces the image's ENTRYPOINT (and drops its CMD), args replace its CMD.
    command = [expand(str(a), env) for a in container.get("command") or ()]
    args = [expand(str(a), env) for a in container.get("args") or ()]
    if command:
        argv += ["--entrypoint", json.dumps(command)]
    argv.append(image or container["image"])
    return argv + args


def _volume_args(
    spec: Mapping[str, Any],
    container: Mapping[str, Any],
    volume_dirs: Mapping[str, str | os.PathLike[str]],
) -> list[str]:
    volumes = {v["name"]: v for v in spec.get("volumes") or ()}
    out: list[str] = []
    for i, mount in enumerate(container.get("volumeMounts") or ()):
        where = f"spec.containers[0].volumeMounts[{i}] ({mount.get('name')})"
        _only(mount, {"name", "mountPath", "readOnly"}, where)
        volume = volumes.get(mount["name"])
        if volume is None:
            raise PodSpecError(f"{where}: no volume of that name in spec.volumes")
        path = mount["mountPath"]
        if "emptyDir" in volume:
            options = ["rw", "mode=1777"]
            size = (volume["emptyDir"] or {}).get("sizeLimit")
            if size is not None:
                options.append(f"size={int(quantity(size, 'emptyDir.sizeLimit'))}")
            out += ["--tmpfs", f"{path}:{','.join(options)}"]
            continue
        kind = next((k for k in _HOST_DIR_VOLUMES if k in volume), None)
        if kind is None:
            raise PodSpecError(f"{where}: volume kind {sorted(set(volume) - {'name'})} unsupported")
        if mount["name"] not in volume_dirs:
            raise PodSpecError(f"{where}: a {kind} volume needs a host directory (volume_dirs)")
        # Secrets, ConfigMaps and projected volumes are always read-only in a pod.
        read_only = mount.get("readOnly") or kind != "hostPath"
        out += ["--volume", f"{volume_dirs[mount['name']]}:{path}{':ro' if read_only else ''}"]
    return out


# --- the podman CLI -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Podman:
    """The podman CLI with this repository's settings (CONTAINERS_CONF)."""

    binary: str = "podman"

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "CONTAINERS_CONF": os.environ.get("CONTAINERS_CONF", str(CONTAINERS_CONF)),
        }

    def __call__(
        self, *args: str, check: bool = True, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.binary, *args], capture_output=True, text=True, timeout=timeout,
            env=self.env, check=False,
        )  # fmt: skip
        if check and result.returncode != 0:
            raise RuntimeError(
                f"podman {' '.join(args)} failed ({result.returncode}): "
                f"{(result.stderr or result.stdout).strip()[-2000:]}"
            )
        return result

    def popen(self, argv: Sequence[str], log: Path) -> subprocess.Popen[bytes]:
        """Start `argv` (from run_argv) attached, its output into `log`."""
        with open(log, "ab") as out:
            return subprocess.Popen(
                list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env=self.env, start_new_session=True,
            )  # fmt: skip

    def image_user(self, image: str) -> str:
        return self("image", "inspect", "--format", "{{.Config.User}}", image).stdout.strip()


_names = iter(range(1, 1_000_000))
NAME_PATTERN = re.compile(r"^kvimg-[a-z0-9-]+?-(\d+)-\d+$")


class Container:
    """One `podman run` (argv from run_argv), attached, its output logged to a file.

    `stop()` is what a kubelet does on pod deletion (SIGTERM, SIGKILL after the grace);
    `kill()` is SIGKILL; `remove()` removes the container whatever its state.
    """

    def __init__(self, podman: Podman, name: str, argv: Sequence[str], log: Path) -> None:
        self.podman, self.name, self.argv, self.log = podman, name, list(argv), log
        self.proc = podman.popen(argv, log)

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def pid(self, timeout: float = 30.0) -> int:
        """The container's main process, as the host sees it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.podman("inspect", "--format", "{{.State.Pid}}", self.name, check=False)
            if found.returncode == 0 and found.stdout.strip() not in ("", "0"):
                return int(found.stdout.strip())
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"container {self.name} is not running:\n{self.text()[-3000:]}")

    def stop(self, grace: int | None = None) -> int:
        """SIGTERM, then SIGKILL after `grace` s (default: the pod's, via --stop-timeout)."""
        args = ["stop", self.name] if grace is None else ["stop", "--time", str(grace), self.name]
        self.podman(*args, check=False, timeout=120)
        return self.proc.wait(30)

    def kill(self) -> None:
        self.podman("kill", "--signal", "KILL", self.name, check=False)
        self.proc.wait(30)

    def remove(self) -> None:
        self.podman("rm", "--force", "--time", "0", self.name, check=False)
        if self.proc.poll() is None:
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)


def proc_status(pid: int) -> dict[str, str]:
    """/proc/PID/status as a dict: Uid, CapEff, NoNewPrivs, Seccomp, ..."""
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}


def container_name(prefix: str) -> str:
    """A name no other test or run uses: kvimg-<prefix>-<pid>-<n>."""
    return f"kvimg-{re.sub(r'[^a-z0-9-]', '-', prefix)}-{os.getpid()}-{next(_names)}"
