"""The operator from the image, run as the chart's Deployment runs it, on the real API server.

The chart is installed with helm into the real-API tier's kube-apiserver
(tests/realapi/cluster.py's install_chart; release and namespace kube-vrrp-image), and the
Deployment's pod template, as the API server stores it, runs through podman (`run_argv`):
its command, env, uid 65532, no capabilities, no privilege escalation, read-only root
filesystem, its emptyDir. The pod's network is the host's, the only one that reaches the
API server's loopback address, and its service account is mounted as a kubelet mounts it:
a TokenRequest token of the chart's operator ServiceAccount, the API server's CA and the
namespace. So the operator authenticates with the chart's RBAC and nothing more.
"""

from __future__ import annotations

import shutil
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.envtest import ApiServer
from tests.image.podman import Container, Podman, container_name, proc_status, run_argv
from tests.realapi.cluster import (
    Release,
    daemon_objects,
    finish_pod_deletions,
    get_virtualip,
    install_chart,
    virtualip,
)

RELEASE = NAMESPACE = "kube-vrrp-image"  # holds "kube-vrrp": objects are named after it
VIP_NAMESPACE = "kv-image-vips"
NODE = "kv-image-node-1"
NODE_LABEL = "kubevrrp.io/image-test"
VIP = "192.168.77.100/24"
TIMEOUT_S = 60.0


def wait_for(check: Any, what: str, operator: Container, timeout: float = TIMEOUT_S) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline or operator.proc.poll() is not None:
            raise AssertionError(f"not within {timeout:g} s: {what}\n{operator.text()[-4000:]}")
        time.sleep(0.25)


@pytest.fixture(scope="module")
def release(kube_api: ApiServer) -> Iterator[Release]:
    installed = install_chart(kube_api, name=RELEASE, namespace=NAMESPACE)
    yield installed
    shutil.rmtree(installed.workdir, ignore_errors=True)


@pytest.fixture
def deployment(release: Release) -> dict[str, Any]:
    return release.deployment()


@pytest.fixture
def operator(
    kube_api: ApiServer, release: Release, deployment: dict[str, Any], podman: Podman,
    image: str, tmp_path: Path, containers: list[Container],
) -> Iterator[Container]:  # fmt: skip
    template = deployment["spec"]["template"]
    pod_name = f"{deployment['metadata']['name']}-image-test"
    pod = {"metadata": {**template["metadata"], "name": pod_name, "namespace": NAMESPACE},
           "spec": template["spec"]}  # fmt: skip
    account = tmp_path / "serviceaccount"
    account.mkdir()
    files = {
        "token": kube_api.token(NAMESPACE, release.operator_service_account),
        "ca.crt": kube_api.ca_file.read_text(),
        "namespace": NAMESPACE,
    }
    for name, text in files.items():
        (account / name).write_text(text)
        (account / name).chmod(0o644)  # as a projected service-account volume: uid 65532 reads
    name = container_name("operator")
    argv = run_argv(
        pod,
        name=name,
        network="host",
        image=image,
        image_user=podman.image_user(image),
        fields={"metadata.name": pod_name, "metadata.namespace": NAMESPACE},
        service_account_dir=account,
        cluster_env={
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": str(kube_api.port),
        },
        podman=(podman.binary,),
    )
    running = Container(podman, name, argv, tmp_path / f"{name}.log")
    containers.append(running)
    yield running
    # VirtualIPs carry the operator's finalizer: delete them while it still runs, finishing
    # the daemon pods' deletion as their kubelet would.
    kube_api.kubectl("delete", "vip", "--all", "-n", VIP_NAMESPACE, "--wait=false", check=False)
    deadline = time.monotonic() + TIMEOUT_S
    while get_virtualip(kube_api, VIP_NAMESPACE, "web") and time.monotonic() < deadline:
        finish_pod_deletions(kube_api, NAMESPACE)
        time.sleep(0.25)
    kube_api.kubectl("delete", "node", NODE, "--ignore-not-found", check=False)


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def test_the_operator_renders_a_virtualips_pods_and_configmaps(
    kube_api: ApiServer, release: Release, deployment: dict[str, Any], operator: Container
) -> None:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    port = next(p["containerPort"] for p in container["ports"] if p["name"] == "health")
    wait_for(lambda: healthy(f"http://127.0.0.1:{port}/healthz"), "kopf's /healthz", operator)

    # As the chart's pod spec says: uid and gid 65532, no capabilities at all.
    status = proc_status(operator.pid())
    assert status["Uid"].split()[:2] == ["65532", "65532"]
    assert status["Gid"].split()[:2] == ["65532", "65532"]
    assert (status["CapEff"], status["CapPrm"], status["CapBnd"]) == ("0" * 16,) * 3
    assert status["NoNewPrivs"] == "1"

    kube_api.ready_node(NODE, "192.168.77.11", {NODE_LABEL: "yes"})
    kube_api.namespace(VIP_NAMESPACE)
    kube_api.apply(virtualip("web", {"matchLabels": {NODE_LABEL: "yes"}}, VIP_NAMESPACE))
    daemon = f"vrrpd-{NODE}"
    configmap = wait_for(
        lambda: daemon_objects(kube_api, "configmaps", NAMESPACE).get(daemon),
        f"ConfigMap {NAMESPACE}/{daemon}",
        operator,
    )
    (document,) = yaml.safe_load_all(configmap["data"]["virtualips.yaml"])
    assert document["metadata"] == {"name": "web", "namespace": VIP_NAMESPACE}
    assert document["spec"]["addresses"] == [VIP]
    pod = wait_for(
        lambda: daemon_objects(kube_api, "pods", NAMESPACE).get(daemon),
        f"Pod {NAMESPACE}/{daemon}",
        operator,
    )
    (daemon_container,) = pod["spec"]["containers"]
    assert daemon_container["image"] == container["image"]  # what the chart told it
    assert daemon_container["securityContext"]["capabilities"] == {
        "drop": ["ALL"],
        "add": ["NET_ADMIN", "NET_RAW"],
    }
    assert pod["spec"]["nodeName"] == NODE
    assert pod["spec"]["serviceAccountName"] == release.daemon_service_account
    status_of_vip = wait_for(
        lambda: (get_virtualip(kube_api, VIP_NAMESPACE, "web") or {}).get("status"),
        "the VirtualIP's status",
        operator,
    )
    assert status_of_vip["vrid"] == 1
    assert kube_api.audit(release.operator_user), "requests as the chart's ServiceAccount"
    assert kube_api.forbidden(release.operator_user) == []
