"""The operator outside the chart, as people debug operators: `kube-vrrp-operator` on a
laptop with a kubeconfig (an admin's), against a cluster that lacks, step by step, what the
chart would have installed. A server of its own, fresh: no CRD, no namespace, no peering.

It logs the peering mode it uses; waiting for a peering object it says so and how to run
standalone; a missing CRD or namespace is one line on stderr and exit code 1."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.envtest import SKIP_REASON, ApiServer, assets, free_port
from tests.realapi.cluster import (
    ROOT,
    TestNodes,
    daemon_objects,
    script_command,
    virtualip,
    wait_for,
)

COMMAND = ["kube-vrrp-operator"]  # the console script a `pip install kube-vrrp[operator]` gives


@pytest.fixture(scope="module")
def laptop_api() -> Iterator[ApiServer]:
    if assets() is None:
        pytest.skip(SKIP_REASON)
    with ApiServer.start() as server:
        yield server


def environment(api: ApiServer, **extra: str) -> dict[str, str]:
    """A shell's environment: a kubeconfig, no pod, no chart settings."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "operator")]),
        "HOME": str(api.workdir),
        "KUBECONFIG": str(api.kubeconfig),
        # Port 8080 may be taken on a shared host: a free one, as the user would pick.
        "KUBEVRRP_LIVENESS_ENDPOINT": f"http://127.0.0.1:{free_port()}/healthz",
        **extra,
    }


def run_to_exit(api: ApiServer, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        script_command(COMMAND), env=environment(api, **extra), capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_missing_crd_is_one_line_and_exit_1(laptop_api: ApiServer) -> None:
    line = one_line(run_to_exit(laptop_api))
    assert line.startswith("vrrp-operator: the VirtualIP CRD is not installed on https://")
    assert "kubectl apply -f crds/" in line


def test_a_missing_namespace_is_one_line_and_exit_1(laptop_api: ApiServer) -> None:
    laptop_api.kubectl("apply", "-f", str(ROOT / "crds"))
    laptop_api.kubectl(
        "wait", "--for=condition=Established", "crd/virtualips.kubevrrp.io", "--timeout=30s"
    )
    line = one_line(run_to_exit(laptop_api))
    assert line == (
        "vrrp-operator: namespace kube-vrrp does not exist (the daemons' ConfigMaps, Secrets "
        "and Pods go there): kubectl create namespace kube-vrrp, or name another with "
        "POD_NAMESPACE"
    )
    elsewhere = one_line(run_to_exit(laptop_api, POD_NAMESPACE="vrrp-elsewhere"))
    assert "namespace vrrp-elsewhere does not exist" in elsewhere


class Started:
    """An operator process started in the background, its output in a file."""

    def __init__(self, api: ApiServer, log: Path, **extra: str) -> None:
        self.log_path = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                script_command(COMMAND), env=environment(api, **extra), stdout=out,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def says(self, text: str) -> bool:
        return text in self.log()

    def stop(self) -> int:
        self.process.terminate()
        return self.process.wait(timeout=30)


def test_waiting_for_a_peering_object_says_so_and_how_to_run_standalone(
    laptop_api: ApiServer, tmp_path: Path
) -> None:
    laptop_api.namespace("kube-vrrp")
    nodes = TestNodes(laptop_api, "laptop")
    (node,) = nodes(1)
    laptop_api.apply(virtualip("laptop", nodes.selector))
    operator = Started(laptop_api, tmp_path / "mandatory.log")
    try:
        wait_for(lambda: operator.says("peering: "), "the peering line")
        line = next(x for x in operator.log().splitlines() if "peering: " in x)
        assert "WARNING" in line
        assert "peering: mandatory (KUBEVRRP_PEERING), but ClusterKopfPeering kube-vrrp does " \
            "not exist: waiting for it" in line  # fmt: skip
        assert "run this operator alone with KUBEVRRP_PEERING=standalone" in line
        assert operator.process.poll() is None  # it waits, as it said
        assert f"vrrpd-{node}" not in daemon_objects(laptop_api, "configmaps")
        # The peering object appears (its CRD from the chart): it goes to work.
        laptop_api.kubectl("apply", "-f", str(ROOT / "charts" / "kube-vrrp" / "crds"))
        laptop_api.kubectl("wait", "--for=condition=Established",
                           "crd/clusterkopfpeerings.kopf.dev", "--timeout=30s")  # fmt: skip
        laptop_api.apply(
            {
                "apiVersion": "kopf.dev/v1",
                "kind": "ClusterKopfPeering",
                "metadata": {"name": "kube-vrrp"},
            }
        )
        wait_for(lambda: f"vrrpd-{node}" in daemon_objects(laptop_api, "configmaps"), "work")
    finally:
        assert operator.stop() == 0, operator.log()


def test_standalone_says_so_and_works(laptop_api: ApiServer, tmp_path: Path) -> None:
    laptop_api.namespace("kube-vrrp")
    nodes = TestNodes(laptop_api, "standalone")
    (node,) = nodes(1)
    laptop_api.apply(virtualip("alone", nodes.selector, addresses=["192.168.77.120/24"]))
    operator = Started(laptop_api, tmp_path / "standalone.log", KUBEVRRP_PEERING="standalone")
    try:
        wait_for(lambda: operator.says("peering: standalone (KUBEVRRP_PEERING=standalone)"),
                 "the peering line")  # fmt: skip
        wait_for(lambda: f"vrrpd-{node}" in daemon_objects(laptop_api, "configmaps"), "work")
    finally:
        assert operator.stop() == 0, operator.log()
