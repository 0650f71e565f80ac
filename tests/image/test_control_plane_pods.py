"""The control-plane VIP's static pods from the image, in front of real kube-apiservers.

tests/netns/test_control_plane.py runs `vrrpd control-plane` and the static pod's command
line as processes from this checkout; here both come from the image: the command runs in a
container on the node's network (as docs/control-plane.md shows), and each node's pod, as
it wrote it, runs through
`run_argv` from the image: uid 0 with only NET_ADMIN and NET_RAW, no privilege
escalation, a read-only root filesystem, the VirtualIP file from its hostPath folder
mounted at its own path, the node's network namespace as its host network. What a kubelet
would add is nothing: a static pod has no service account, no ConfigMap, no fieldRef.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chart.kubetools import tool
from tests.envtest import SKIP_REASON, assets
from tests.image.podman import Container, Podman, container_name, proc_status, run_argv
from vrrpd.lab.control_plane import ControlPlaneLab
from vrrpd.lab.netns import Lab, wait_until

pytestmark = pytest.mark.root

LAB_PREFIX = "kvimgcp"
VIP = "192.168.77.100"
NODES = (1, 2, 3)
CAP_NET_ADMIN, CAP_NET_RAW = 12, 13


class PodmanControlPlane(ControlPlaneLab):
    """The daemons as containers of the image, run as their static pods say."""

    def __init__(
        self, lab: Lab, folder: Path, podman: Podman, image: str, containers: list[Container]
    ) -> None:
        super().__init__(lab, folder, vip=VIP, nodes=NODES, etcd_node=4)
        self.podman, self.image, self.containers = podman, image, containers
        self.running: dict[int, Container] = {}

    def run_control_plane(self, node: int, args: list[str]) -> subprocess.CompletedProcess[str]:
        """The command from the image, as docs/control-plane.md shows it: as root, on the
        node's network, the folders it writes bound at their own paths."""
        folder = str(self.node_dir(node))
        return self.podman(
            "run", "--rm", "--user", "0",
            "--network", f"ns:/run/netns/{self.lab.node(node).netns}",
            "--volume", f"{folder}:{folder}",
            self.image, "vrrpd", "control-plane", *args,
            check=False,
        )  # fmt: skip

    def start_daemon(self, node: int) -> None:
        pod = self.pods[node]
        (volume,) = [v for v in pod["spec"]["volumes"] if "hostPath" in v]
        name = container_name(f"cp-n{node}")
        argv = run_argv(
            pod,
            name=name,
            network=f"ns:/run/netns/{self.lab.node(node).netns}",
            image=self.image,
            volume_dirs={volume["name"]: volume["hostPath"]["path"]},
            podman=(self.podman.binary,),
        )
        container = Container(self.podman, name, argv, self.log(node))
        self.containers.append(container)
        self.running[node] = container
        self.daemons[node] = container.proc

    def stop_daemon(self, node: int, sig: signal.Signals = signal.SIGTERM) -> int:
        """`podman stop`: SIGTERM, then SIGKILL after the pod's grace period."""
        assert sig is signal.SIGTERM
        return self.running.pop(node).stop()


@pytest.fixture
def cluster(
    tmp_path: Path, podman: Podman, image: str, containers: list[Container]
) -> Iterator[PodmanControlPlane]:
    folder = assets()
    if folder is None:
        pytest.skip(SKIP_REASON)
    Lab.cleanup_stale(LAB_PREFIX)
    lab = Lab(4, prefix=LAB_PREFIX, unique=True, workdir=tmp_path / "lab")
    try:
        cp = PodmanControlPlane(lab, folder, podman, image, containers)
        cp.start_daemons()  # before any API server, as kubeadm init would find them
        yield cp
    finally:
        for container in containers:
            container.remove()
        lab.close()


def test_the_static_pods_from_the_image_hold_the_vip_in_front_of_the_api_servers(
    cluster: PodmanControlPlane,
) -> None:
    # The process is what the static pod asks for, as the kernel sees it.
    first = cluster.running[1]
    status = proc_status(first.pid())
    assert status["Uid"].split()[:2] == ["0", "0"]
    wanted = f"{(1 << CAP_NET_ADMIN) | (1 << CAP_NET_RAW):016x}"
    assert (status["CapEff"], status["CapPrm"], status["CapBnd"]) == (wanted,) * 3
    assert status["NoNewPrivs"] == "1"
    written = cluster.podman("exec", first.name, "touch", "/probe", check=False)
    assert written.returncode != 0 and "Read-only file system" in written.stderr

    # One of them holds the VIP before any API server runs; then every probe passes.
    assert wait_until(lambda: len(cluster.holders()) == 1, 30), cluster.logs()
    cluster.api.start()
    assert cluster.wait_healthy(), cluster.logs()
    old = cluster.holder()

    def kubectl_works() -> bool:
        argv = [str(tool("kubectl")), f"--kubeconfig={cluster.api.kubeconfig}",
                "--request-timeout=3s", "get", "--raw", "/readyz"]  # fmt: skip
        done = subprocess.run(
            cluster.lab.command(cluster.lab.client, argv),
            capture_output=True, text=True, timeout=30, check=False, env=os.environ.copy(),
        )  # fmt: skip
        return done.returncode == 0 and done.stdout.strip() == "ok"

    assert kubectl_works()

    # The holder's kube-apiserver stops: its probe moves the VIP, kubectl goes on.
    cluster.api.stop_apiserver(old)
    assert wait_until(lambda: cluster.holders() not in ([], [old]), 30), cluster.logs()
    assert wait_until(kubectl_works, 30), cluster.logs()
    assert cluster.status(old)["effectivePriority"] == 1

    # The kubelet stops the holder's pod (SIGTERM): the daemon hands over and exits 0.
    new = cluster.holder()
    assert cluster.stop_daemon(new) == 0, cluster.logs()
    assert wait_until(lambda: cluster.holders() not in ([], [new]), 30), cluster.logs()
    assert cluster.api.running(cluster.holder())
    assert wait_until(kubectl_works, 30), cluster.logs()
