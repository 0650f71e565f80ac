"""The operator from the image, run as the chart's Deployment runs it, on the real API server.

`helm template` renders the chart; everything but the Deployment (and helm's test hook)
is applied to the real-API tier's kube-apiserver, and the Deployment's pod template runs
through podman (`run_argv`): its command, env, uid 65532, no capabilities, no privilege
escalation, read-only root filesystem, its emptyDir. The pod's network is the host's, the
only one that reaches the API server's loopback address, and its service account is
mounted as a kubelet mounts it: a TokenRequest token of the chart's operator
ServiceAccount, the API server's CA and the namespace. So the operator authenticates with
the chart's RBAC and nothing more.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.kubetools import tool
from tests.envtest import ApiServer, free_port
from tests.image.podman import Container, Podman, container_name, proc_status, run_argv

RELEASE = NAMESPACE = "kv-image"
VIP_NAMESPACE = "kv-image-vips"
NODE = "kv-image-node-1"
NODE_LABEL = "kubevrrp.io/image-test"
VIP = "192.168.77.100/24"
TIMEOUT_S = 60.0
CHART = Path(__file__).resolve().parents[2] / "charts" / "kube-vrrp"


def wait_for(check: Any, what: str, operator: Container, timeout: float = TIMEOUT_S) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline or operator.proc.poll() is not None:
            raise AssertionError(f"not within {timeout:g} s: {what}\n{operator.text()[-4000:]}")
        time.sleep(0.25)


def get(api: ApiServer, *args: str) -> dict[str, Any] | None:
    result = api.kubectl("get", *args, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


@pytest.fixture(scope="module")
def chart(kube_api: ApiServer) -> Iterator[dict[str, Any]]:
    """The chart rendered and applied (all but the Deployment and helm's test hook), removed
    again afterwards but for the CRDs, which other modules use; yields the Deployment."""
    rendered = subprocess.run(
        [str(tool("helm")), "template", RELEASE, str(CHART), "--namespace", NAMESPACE,
         "--include-crds", "--set", f"operator.healthPort={free_port()}"],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    objects = [o for o in yaml.safe_load_all(rendered) if o]
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    kube_api.namespace(NAMESPACE)
    crds = [o for o in objects if o["kind"] == "CustomResourceDefinition"]
    kube_api.apply(crds)
    for crd in crds:
        kube_api.kubectl("wait", "--for=condition=Established", "--timeout=30s",
                         f"crd/{crd['metadata']['name']}")  # fmt: skip
    release = [
        o
        for o in objects
        if o["kind"] not in ("CustomResourceDefinition", "Deployment")
        and "helm.sh/hook" not in (o["metadata"].get("annotations") or {})
    ]
    kube_api.apply(release)
    yield deployment
    kube_api.kubectl("delete", "--ignore-not-found", "--wait=false", "-f", "-",
                     input=yaml.safe_dump_all(release), check=False)  # fmt: skip


@pytest.fixture
def operator(
    kube_api: ApiServer, chart: dict[str, Any], podman: Podman, image: str, tmp_path: Path,
    containers: list[Container],
) -> Iterator[Container]:  # fmt: skip
    template = chart["spec"]["template"]
    pod_name = f"{chart['metadata']['name']}-image-test"
    pod = {"metadata": {**template["metadata"], "name": pod_name, "namespace": NAMESPACE},
           "spec": template["spec"]}  # fmt: skip
    account = tmp_path / "serviceaccount"
    account.mkdir()
    files = {
        "token": kube_api.token(NAMESPACE, template["spec"]["serviceAccountName"]),
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
    # VirtualIPs carry the operator's finalizer: delete them while it still runs.
    kube_api.kubectl("delete", "virtualips.kubevrrp.io", "--all", "-n", VIP_NAMESPACE,
                     "--ignore-not-found", "--timeout=60s", check=False)  # fmt: skip
    kube_api.kubectl("delete", "node", NODE, "--ignore-not-found", check=False)


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def test_the_operator_renders_a_virtualips_pods_and_configmaps(
    kube_api: ApiServer, chart: dict[str, Any], operator: Container
) -> None:
    (container,) = chart["spec"]["template"]["spec"]["containers"]
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
    kube_api.apply(
        {
            "apiVersion": "kubevrrp.io/v1alpha1",
            "kind": "VirtualIP",
            "metadata": {"name": "web", "namespace": VIP_NAMESPACE},
            "spec": {
                "addresses": [VIP],
                "nodeSelector": {"matchLabels": {NODE_LABEL: "yes"}},
            },
        }
    )
    daemon = f"vrrpd-{NODE}"
    configmap = wait_for(
        lambda: get(kube_api, "configmap", daemon, "-n", NAMESPACE),
        f"ConfigMap {NAMESPACE}/{daemon}",
        operator,
    )
    (document,) = yaml.safe_load_all(configmap["data"]["virtualips.yaml"])
    assert document["metadata"] == {"name": "web", "namespace": VIP_NAMESPACE}
    assert document["spec"]["addresses"] == [VIP]
    pod = wait_for(
        lambda: get(kube_api, "pod", daemon, "-n", NAMESPACE), f"Pod {NAMESPACE}/{daemon}", operator
    )
    (daemon_container,) = pod["spec"]["containers"]
    assert daemon_container["image"] == container["image"]  # what the chart told it
    assert daemon_container["securityContext"]["capabilities"] == {
        "drop": ["ALL"],
        "add": ["NET_ADMIN", "NET_RAW"],
    }
    assert pod["spec"]["nodeName"] == NODE
    vip = wait_for(
        lambda: (get(kube_api, "virtualip", "web", "-n", VIP_NAMESPACE) or {}).get("status"),
        "the VirtualIP's status",
        operator,
    )
    assert vip["vrid"] == 1
    account = chart["spec"]["template"]["spec"]["serviceAccountName"]
    user = f"system:serviceaccount:{NAMESPACE}:{account}"
    assert kube_api.audit(user), "the operator's requests carry the chart's ServiceAccount"
    assert kube_api.forbidden(user) == []
