"""End to end on kind: build and load the image, helm install, a VirtualIP on the kind
network answers, the master's node container stops, the VIP moves and status follows.

Needs docker (with a running engine) and kind; without them the test skips and says which
is missing (KUBEVRRP_E2E=1, as tests/e2e/run.sh sets, turns that into a failure). helm and
kubectl come from tests/chart/kubetools.py (pinned, fetched through PyPI) or the PATH. The
cluster gets a kubeconfig of its own: ~/.kube/config is never touched.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.chart.kubetools import ToolUnavailable, tool

REPO = Path(__file__).resolve().parents[2]
CLUSTER = os.environ.get("KUBEVRRP_E2E_CLUSTER", "kube-vrrp-e2e")
IMAGE_REPOSITORY, IMAGE_TAG = "kube-vrrp/vrrpd", "e2e"
NAMESPACE = "kube-vrrp"
RELEASE = "kube-vrrp"
EDGE_LABEL = "kube-vrrp-e2e/edge"
VIP_NAME = "e2e"
VRRP_TIMEOUT_S = 30  # the VIP moves within 3 x advert + skew (1 s adverts): seconds
STATUS_TIMEOUT_S = 240  # status follows the daemons' reports, and the node going NotReady


def _required() -> bool:
    return bool(os.environ.get("KUBEVRRP_E2E"))


def _binary(name: str) -> str | None:
    try:
        return str(tool(name))
    except ToolUnavailable:
        return shutil.which(name)


@dataclass(frozen=True)
class Tools:
    docker: str
    kind: str
    helm: str
    kubectl: str


@pytest.fixture(scope="module")
def tools() -> Tools:
    problems = []
    docker = shutil.which("docker")
    if docker is None:
        problems.append("docker is not installed (the docker CLI is not on PATH)")
    else:
        info = subprocess.run(
            [docker, "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if info.returncode != 0:
            reason = (info.stderr.strip().splitlines() or ["no answer"])[-1]
            problems.append(f"no Docker engine answers (`docker info`: {reason})")
    kind = shutil.which("kind")
    if kind is None:
        problems.append(
            "kind is not installed (https://kind.sigs.k8s.io, `go install sigs.k8s.io/kind@latest`)"
        )
    helm, kubectl = _binary("helm"), _binary("kubectl")
    problems += [
        f"no {n} binary (fetch failed, none on PATH)"
        for n, p in (("helm", helm), ("kubectl", kubectl))
        if p is None
    ]
    if problems:
        message = "kind e2e: " + "; ".join(problems)
        if _required():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    assert docker and kind and helm and kubectl
    return Tools(docker, kind, helm, kubectl)


def sh(*command: str, input: str | None = None, timeout: float = 600, check: bool = True) -> str:
    result = subprocess.run(
        list(command), input=input, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"$ {' '.join(command)}\nexit {result.returncode}\n{result.stdout[-3000:]}"
            f"\n{result.stderr[-3000:]}"
        )
    return result.stdout


def wait_for(what: str, check: Callable[[], object], timeout: float, every: float = 1.0) -> object:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (AssertionError, subprocess.TimeoutExpired) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last: {last!r}")


@dataclass
class Cluster:
    tools: Tools
    kubeconfig: Path

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> str:
        return sh(
            self.tools.kubectl,
            "--kubeconfig",
            str(self.kubeconfig),
            *args,
            input=input,
            check=check,
        )

    def helm(self, *args: str) -> str:
        return sh(self.tools.helm, "--kubeconfig", str(self.kubeconfig), *args)

    def docker(self, *args: str, check: bool = True) -> str:
        return sh(self.tools.docker, *args, check=check)

    def diagnostics(self) -> str:
        out = []
        for args in (
            ("get", "nodes", "-o", "wide"),
            ("get", "pods", "-A", "-o", "wide"),
            ("get", "vip", "-A", "-o", "yaml"),
            ("-n", NAMESPACE, "logs", "deployment/kube-vrrp-operator", "--tail", "100"),
            ("get", "events", "-A", "--sort-by", ".lastTimestamp"),
        ):
            out.append(f"$ kubectl {' '.join(args)}\n" + self.kubectl(*args, check=False))
        return "\n".join(out)


@pytest.fixture(scope="module")
def cluster(tools: Tools, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    kubeconfig = tmp_path_factory.mktemp("kind") / "kubeconfig"
    existing = sh(tools.kind, "get", "clusters").split()
    if CLUSTER in existing:  # a run killed before its cleanup
        sh(tools.kind, "delete", "cluster", "--name", CLUSTER, "--kubeconfig", str(kubeconfig))
    config = Path(__file__).with_name("kind-config.yaml")
    create = ["create", "cluster", "--name", CLUSTER, "--config", str(config)]
    try:
        sh(tools.kind, *create, "--kubeconfig", str(kubeconfig), "--wait", "180s", timeout=900)
        yield Cluster(tools, kubeconfig)
    finally:
        if not os.environ.get("KUBEVRRP_E2E_KEEP"):
            sh(
                tools.kind,
                "delete",
                "cluster",
                "--name",
                CLUSTER,
                "--kubeconfig",
                str(kubeconfig),
                check=False,
            )


@pytest.fixture(scope="module")
def installed(cluster: Cluster) -> Cluster:
    image = f"{IMAGE_REPOSITORY}:{IMAGE_TAG}"
    sh(cluster.tools.docker, "build", "--tag", image, str(REPO), timeout=1800)
    sh(cluster.tools.kind, "load", "docker-image", image, "--name", CLUSTER, timeout=600)
    # The operator on the control-plane node: stopping a worker never takes it down.
    control_plane = {"node-role.kubernetes.io/control-plane": ""}
    toleration = [
        {
            "key": "node-role.kubernetes.io/control-plane",
            "operator": "Exists",
            "effect": "NoSchedule",
        }
    ]
    install = [
        "install",
        RELEASE,
        str(REPO / "charts" / "kube-vrrp"),
        "--namespace",
        NAMESPACE,
        "--create-namespace",
        "--wait",
        "--timeout",
        "5m",
        "--set",
        f"image.repository={IMAGE_REPOSITORY}",
        "--set",
        f"image.tag={IMAGE_TAG}",
        "--set",
        "image.pullPolicy=Never",
        "--set-json",
        f"operator.nodeSelector={json.dumps(control_plane)}",
        "--set-json",
        f"operator.tolerations={json.dumps(toleration)}",
    ]
    try:
        cluster.helm(*install)
        cluster.helm("test", RELEASE, "--namespace", NAMESPACE, "--timeout", "3m")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n\n--- cluster state ---\n{cluster.diagnostics()}") from None
    return cluster


def workers(cluster: Cluster) -> list[str]:
    names = cluster.kubectl(
        "get", "nodes", "-l", "!node-role.kubernetes.io/control-plane", "-o", "name"
    ).split()
    return sorted(n.removeprefix("node/") for n in names)


def free_vip(cluster: Cluster) -> ipaddress.IPv4Interface:
    """An address near the top of the kind network's IPv4 subnet (Docker allocates from
    the bottom), that nothing answers yet."""
    (network,) = json.loads(cluster.docker("network", "inspect", "kind"))
    subnets = [ipaddress.ip_network(c["Subnet"]) for c in network["IPAM"]["Config"]]
    (subnet,) = [s for s in subnets if s.version == 4]
    address = subnet.broadcast_address - 10
    assert not answers(cluster, str(address)), f"{address} answers before the test: pick another"
    return ipaddress.IPv4Interface(f"{address}/{subnet.prefixlen}")


def answers(cluster: Cluster, address: str) -> bool:
    """The VIP answers: ping from this host (Linux: the kind bridge is local), else a TCP
    probe from a container on the kind network (a refused connection is an answer too)."""
    if shutil.which("ping") and os.uname().sysname == "Linux":
        result = subprocess.run(
            ["ping", "-c", "1", "-W", "1", address], capture_output=True, timeout=10, check=False
        )
        return result.returncode == 0
    probe = (
        "import socket, sys\n"
        f"s = socket.socket(); s.settimeout(2)\n"
        f"try: s.connect(({address!r}, 9641))\n"
        "except ConnectionRefusedError: pass\n"
        "except OSError: sys.exit(1)\n"
    )
    result = subprocess.run(
        [
            cluster.tools.docker,
            "run",
            "--rm",
            "--network",
            "kind",
            "--entrypoint",
            "python",
            f"{IMAGE_REPOSITORY}:{IMAGE_TAG}",
            "-c",
            probe,
        ],
        capture_output=True,
        timeout=60,
        check=False,
    )
    return result.returncode == 0


def holders(cluster: Cluster, nodes: list[str], address: str) -> list[str]:
    """The node containers that have the VIP on an interface (kind nodes have iproute2)."""
    return [
        n
        for n in nodes
        if f" {address}/"
        in cluster.docker("exec", n, "ip", "-o", "-4", "addr", "show", check=False)
    ]


def status_master(cluster: Cluster) -> str:
    return cluster.kubectl(
        "get", "vip", VIP_NAME, "-n", "default", "-o", "jsonpath={.status.master}", check=False
    ).strip()


def virtualip(vip: ipaddress.IPv4Interface, preferred: str) -> dict[str, object]:
    """The VirtualIP of the test: both workers, `preferred` with the higher priority."""
    return {
        "apiVersion": "kubevrrp.io/v1alpha1",
        "kind": "VirtualIP",
        "metadata": {"name": VIP_NAME, "namespace": "default"},
        "spec": {
            "addresses": [str(vip)],
            "advertInterval": "1s",
            "nodeSelector": {"matchLabels": {EDGE_LABEL: "true"}},
            "priority": 100,
            "nodePriorities": [{"nodeName": preferred, "priority": 150}],
        },
    }


def test_the_virtualip_is_valid_for_the_crd() -> None:
    """Runs everywhere (no cluster): the manifest the e2e test applies passes the CRD's
    schema and CEL rules, so a failure there is never a typo here."""
    import yaml

    from tests.unit.cel_support import validate, version_schema

    crd = yaml.safe_load((REPO / "crds" / "virtualips.kubevrrp.io.yaml").read_text())
    manifest = virtualip(ipaddress.IPv4Interface("172.18.255.245/16"), "kube-vrrp-e2e-worker")
    assert [str(v) for v in validate(manifest, version_schema(crd, "v1alpha1"))] == []


@pytest.mark.e2e
def test_vip_answers_and_moves_when_its_node_stops(installed: Cluster) -> None:
    cluster = installed
    nodes = workers(cluster)
    assert len(nodes) == 2, nodes
    for node in nodes:
        cluster.kubectl("label", "node", node, f"{EDGE_LABEL}=true", "--overwrite")
    vip = free_vip(cluster)
    address = str(vip.ip)
    preferred, other = nodes
    manifest = virtualip(vip, preferred)
    try:
        cluster.kubectl("apply", "-f", "-", input=json.dumps(manifest))
        wait_for(
            f"{address} on {preferred}",
            lambda: holders(cluster, nodes, address) == [preferred],
            STATUS_TIMEOUT_S,
        )
        wait_for(f"{address} to answer", lambda: answers(cluster, address), VRRP_TIMEOUT_S)
        wait_for(
            f"status.master = {preferred}",
            lambda: status_master(cluster) == preferred,
            STATUS_TIMEOUT_S,
        )
        printed = cluster.kubectl("get", "vip", "-n", "default")
        assert address in printed and preferred in printed, printed

        cluster.docker("stop", preferred)
        wait_for(
            f"{address} to move to {other}",
            lambda: holders(cluster, [other], address),
            VRRP_TIMEOUT_S,
        )
        wait_for(
            f"{address} to answer from {other}", lambda: answers(cluster, address), VRRP_TIMEOUT_S
        )
        wait_for(
            f"status.master = {other}", lambda: status_master(cluster) == other, STATUS_TIMEOUT_S
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n\n--- cluster state ---\n{cluster.diagnostics()}") from None
