"""Fixtures of the image tier: podman, the image under test, containers that clean up.

`image`: the tag in KUBEVRRP_IMAGE (.ci/run builds it with `make image` and sets it), else
the image scripts/image builds now from this checkout (layers cached: a few seconds when
nothing changed), so a local run never tests a stale image. Where podman is missing, the
image cannot be built or podman cannot run a container, the tier skips with one line
saying why; under CI it fails.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tests.image.podman import REPO, Podman
from vrrpd.lab.netns import pid_alive

OPERATOR_DIR = REPO / "operator"
if str(OPERATOR_DIR) not in sys.path:
    sys.path.insert(0, str(OPERATOR_DIR))

VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
DEFAULT_TAG = f"kube-vrrp/vrrpd:{VERSION}"
BUILD_TIMEOUT_S = 900


def unavailable(what: str) -> None:
    """Skip with one line, or fail under CI (env CI set): CI never passes by skipping."""
    message = f"image tier: {what}"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def podman() -> Podman:
    if shutil.which("podman") is None:
        unavailable("no podman (apt-get install podman runc mmdebstrap, then `make image`)")
    tool = Podman()
    info = tool("info", check=False)
    if info.returncode != 0:
        unavailable(f"podman does not work here: {info.stderr.strip()[-300:]}")
    # Containers of an earlier run that was killed before its teardown (named by its pid).
    names = tool("ps", "--all", "--format", "{{.Names}}").stdout.split()
    for name in names:
        match = _NAME.match(name)
        if match and not pid_alive(int(match.group(1))):
            tool("rm", "--force", "--time", "0", name, check=False)
    return tool


@pytest.fixture(scope="session")
def image(podman: Podman) -> str:
    """The image under test, built from this checkout unless KUBEVRRP_IMAGE names one."""
    tag = os.environ.get("KUBEVRRP_IMAGE")
    if tag:
        if podman("image", "exists", tag, check=False).returncode != 0:
            pytest.fail(f"KUBEVRRP_IMAGE={tag}: no such image (run `make image IMAGE={tag}`)")
    else:
        tag = DEFAULT_TAG
        built = subprocess.run(
            [str(REPO / "scripts" / "image"), tag], capture_output=True, text=True,
            timeout=BUILD_TIMEOUT_S, env=podman.env, check=False,
        )  # fmt: skip
        if built.returncode != 0:  # e.g. no base image: neither a registry nor mmdebstrap
            last = (built.stderr.strip() or built.stdout.strip() or "no output").splitlines()[-1]
            unavailable(f"`scripts/image {tag}` failed (run it to see why): {last}")
    smoke = podman("run", "--rm", tag, "true", check=False)
    if smoke.returncode != 0:
        unavailable(f"podman cannot run a container here: {smoke.stderr.strip()[-300:]}")
    return tag


_names = iter(range(1, 1_000_000))
_NAME = re.compile(r"^kvimg-[a-z0-9-]+?-(\d+)-\d+$")


class Container:
    """One `podman run` (argv from tests.image.podman.run_argv), attached, logging to a file.

    `stop()` is what a kubelet does on pod deletion (SIGTERM, SIGKILL after the grace);
    `kill()` is SIGKILL. Every container is removed at the end of its test.
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


@pytest.fixture
def containers(podman: Podman, tmp_path: Path) -> Iterator[list[Container]]:
    """Started containers (append them); removed after the test whatever happens."""
    started: list[Container] = []
    yield started
    for container in started:
        container.remove()


def proc_status(pid: int) -> dict[str, str]:
    """/proc/PID/status as a dict: Uid, CapEff, NoNewPrivs, Seccomp, ..."""
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}


def container_name(prefix: str) -> str:
    """A name no other test or run uses: kvimg-<prefix>-<pid>-<n>."""
    return f"kvimg-{re.sub(r'[^a-z0-9-]', '-', prefix)}-{os.getpid()}-{next(_names)}"
