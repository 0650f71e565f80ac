"""Fixtures of the image tier: podman, the image under test, containers that clean up.

`image`: the tag in KUBEVRRP_IMAGE (.ci/run builds it with `make image` and sets it), else
the image scripts/image builds now from this checkout (layers cached: a few seconds when
nothing changed), so a local run never tests a stale image. Where podman is missing, the
image cannot be built or podman cannot run a container, the tier skips with one line
saying why; under CI it fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator

import pytest

from tests.image.podman import NAME_PATTERN, REPO, Container, Podman
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
        match = NAME_PATTERN.match(name)
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


@pytest.fixture
def containers(podman: Podman) -> Iterator[list[Container]]:
    """Started containers (append them); removed after the test whatever happens."""
    started: list[Container] = []
    yield started
    for container in started:
        container.remove()
