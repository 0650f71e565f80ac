"""The daemon from the image in cluster mode: `vrrpd run --kube` against the real API server.

tests/image/test_daemon_pods.py runs the daemon pods from their ConfigMaps as files; this
runs the same image's daemon as the pods do, reading its ConfigMap through the kubernetes
client: its LIST and watch, its reports on its own pod, a change applied through the
watch. The image's venv holds only the parts of the client that something imports
(scripts/prune_venv.py): this is what proves those are enough for the daemon, as
tests/image/test_operator_pod.py does for the operator.

The daemon runs in a lab node's namespace (`--network ns:...`, the pod's hostNetwork), as
uid 0 with NET_ADMIN and NET_RAW only and a read-only root, and reaches the API server
through the relay of tests/realapi/daemons.py on the namespace's loopback, with the chart's
daemon ServiceAccount token and the API server's CA mounted as files.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.envtest import ApiServer
from tests.image.podman import Container, Podman, container_name
from tests.realapi.daemons import (
    DAEMON_USER,
    NS,
    RELAY_PORT,
    ClusterNodes,
    cluster_nodes,
    virtualip,
    wait_report,
)

pytestmark = pytest.mark.root

WEB = "default/web/ipv4"
MOUNT = "/var/run/kube-vrrp-test"


@pytest.fixture
def cluster(kube_api: ApiServer) -> Iterator[ClusterNodes]:
    with cluster_nodes(kube_api, 1, "kvimgk") as nodes:
        yield nodes


def daemon_argv(podman: Podman, image: str, cluster: ClusterNodes, name: str) -> list[str]:
    node = cluster.lab.node(1)
    files = cluster.workdir / "mounted"
    files.mkdir()
    (files / "token").write_text(cluster.token_file.read_text())
    (files / "ca.crt").write_text(cluster.api.ca_file.read_text())
    return [
        podman.binary, "run", "--rm", "--name", name, "--network", f"ns:/run/netns/{node.netns}",
        "--user", "0", "--cap-drop", "ALL", "--cap-add", "NET_ADMIN", "--cap-add", "NET_RAW",
        "--security-opt", "no-new-privileges", "--read-only", "--tmpfs", "/tmp",
        "--volume", f"{files}:{MOUNT}:ro",
        image, "vrrpd", "run", "--kube", f"--kube-api=https://127.0.0.1:{RELAY_PORT}",
        f"--kube-ca-file={MOUNT}/ca.crt", f"--kube-token-file={MOUNT}/token",
        f"--namespace={NS}", f"--pod=vrrpd-{node.name}", f"--node={node.name}",
        "--state-dir=/tmp/state", "--secrets-dir=/tmp/secrets", "--http-address=none",
    ]  # fmt: skip


def instance(report: dict[str, Any]) -> dict[str, Any]:
    return next((i for i in report.get("instances", []) if i["name"] == WEB), {})


def test_the_daemon_from_the_image_follows_its_configmap_and_reports_on_its_pod(
    cluster: ClusterNodes, kube_api: ApiServer, podman: Podman, image: str,
    containers: list[Container], tmp_path: Path,
) -> None:  # fmt: skip
    node = cluster.lab.node(1).name
    cluster.set_config(node, [virtualip("web", "192.168.77.100/24", 51, 150, node)])
    cluster.create_pod(node)
    name = container_name("daemon-kube")
    daemon = Container(podman, name, daemon_argv(podman, image, cluster, name),
                       tmp_path / f"{name}.log")  # fmt: skip
    containers.append(daemon)

    def log() -> str:
        return daemon.text()[-4000:]

    # Alone on its link: elected after Master_Down_Interval, then reported on its pod.
    try:
        wait_report(cluster, node, lambda r: instance(r).get("state") == "MASTER", 60)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{log()}") from None
    # A change of priority through the watch, applied in place and reported.
    cluster.set_config(node, [virtualip("web", "192.168.77.100/24", 51, 200, node)])
    report = wait_report(cluster, node, lambda r: instance(r).get("priority") == 200, 20)
    assert instance(report)["state"] == "MASTER"
    assert "reconfigured in place" in daemon.text(), log()
    assert kube_api.forbidden(DAEMON_USER) == []
    assert daemon.proc.poll() is None, log()
