"""The daemon from the image, run as the operator's pod spec says, in lab node namespaces.

Each node's ConfigMap, Secret and Pod come from the operator's pure renderer (render +
manifests), and the Pod is run by `run_argv`: its command, env, uid 0, capabilities (drop
ALL, add NET_ADMIN and NET_RAW), no privilege escalation, read-only root filesystem,
RuntimeDefault seccomp, memory limit, volumes and grace period, in the node's network
namespace as its hostNetwork. One change: the pod's `--kube` becomes `--config` on its
ConfigMap, mounted as a configMap volume (a lab namespace cannot reach an API server;
running `--kube` through podman is the system test kubelet's job).
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.image.daemonpod import DaemonNode, edge_vip, node_configs
from tests.image.podman import Container, Podman, proc_status
from vrrpd.lab.netns import Lab, wait_until

pytestmark = pytest.mark.root

LAB_PREFIX = "kvimg"
VIP = "192.168.77.100"
TIMEOUT_S = 20.0
LEFTOVER_MESSAGE = "left behind by an earlier vrrpd"


@pytest.fixture(scope="module", autouse=True)
def _remove_stale_labs() -> None:
    Lab.cleanup_stale(LAB_PREFIX)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    lab = Lab(2, prefix=LAB_PREFIX, unique=True, workdir=tmp_path / "lab")
    try:
        yield lab
    finally:
        lab.close()


@pytest.fixture
def pair(
    lab: Lab, podman: Podman, image: str, tmp_path: Path, containers: list[Container]
) -> tuple[DaemonNode, DaemonNode]:
    configs = node_configs(lab, [edge_vip("web", f"{VIP}/24")])
    nodes = (
        DaemonNode(lab, 1, podman, image, tmp_path, containers),
        DaemonNode(lab, 2, podman, image, tmp_path, containers),
    )
    for n in nodes:
        n.configure(configs[n.node.name])
    return nodes


def describe(*nodes: DaemonNode) -> str:
    return "\n".join(
        f"--- {c.name}:\n{c.text()[-2500:]}" for n in nodes for c in n.containers
        if c.name.startswith(f"kvimg-{n.node.name}-")
    )  # fmt: skip


def wait_for(predicate: Any, what: str, *nodes: DaemonNode, timeout: float = TIMEOUT_S) -> None:
    if not wait_until(predicate, timeout, interval=0.05):
        raise AssertionError(f"not within {timeout:g} s: {what}\n{describe(*nodes)}")


def elected(lab: Lab, n1: DaemonNode, n2: DaemonNode) -> bool:
    return (
        set(n1.states().values()) == {"MASTER"}
        and set(n2.states().values()) == {"BACKUP"}
        and lab.holders(VIP) == [1]
    )


CAP_NET_ADMIN, CAP_NET_RAW = 12, 13


def test_election_failover_and_handover_from_the_image(
    lab: Lab, pair: tuple[DaemonNode, DaemonNode], podman: Podman
) -> None:
    n1, n2 = pair
    first = n1.start()
    n2.start()
    wait_for(lambda: elected(lab, n1, n2), "n1 MASTER holding the VIP, n2 BACKUP", n1, n2)

    # The process is what the pod spec asks for, as the kernel sees it.
    status = proc_status(first.pid())
    assert status["Uid"].split()[:2] == ["0", "0"]
    wanted = f"{(1 << CAP_NET_ADMIN) | (1 << CAP_NET_RAW):016x}"
    assert (status["CapEff"], status["CapPrm"], status["CapBnd"]) == (wanted,) * 3
    assert status["NoNewPrivs"] == "1"
    assert status["Seccomp"] == "2"  # filtered: podman's default profile, RuntimeDefault
    root = podman("exec", first.name, "touch", "/probe", check=False)
    assert root.returncode != 0 and "Read-only file system" in root.stderr
    podman("exec", first.name, "touch", "/tmp/probe")  # the emptyDir

    # The pod's readiness probe (httpGet /readyz on the container's "http" port), sent
    # from the node's network, where the hostNetwork pod listens.
    assert n1.pod is not None
    (container,) = n1.pod["spec"]["containers"]
    port = next(p["containerPort"] for p in container["ports"] if p["name"] == "http")
    probe = container["readinessProbe"]["httpGet"]["path"]
    url = f"http://127.0.0.1:{port}{probe}"
    fetch = "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).status)"
    assert lab.exec(1, [sys.executable, "-c", fetch, url]).stdout.strip() == "200"

    # Pod deletion: SIGTERM and the pod's grace period; the master hands over and exits 0.
    assert first.stop() == 0, describe(n1)
    wait_for(lambda: lab.holders(VIP) == [2], "the VIP on n2 only", n1, n2)
    assert set(n2.states().values()) == {"MASTER"}
    assert VIP not in lab.addresses(1)
    assert "stopped" in first.text()


def test_a_restarted_pod_removes_what_a_killed_one_left(
    lab: Lab, pair: tuple[DaemonNode, DaemonNode]
) -> None:
    n1, n2 = pair
    killed = n1.start()
    n2.start()
    wait_for(lambda: elected(lab, n1, n2), "n1 MASTER holding the VIP, n2 BACKUP", n1, n2)

    killed.kill()  # SIGKILL: the daemon removes nothing
    wait_for(lambda: set(n2.states().values()) == {"MASTER"}, "n2 takes over", n1, n2)
    assert 1 in lab.holders(VIP), "a killed daemon's VIP stays behind"

    restarted = n1.start()  # a new container, as a kubelet restarts a crashed one
    wait_for(lambda: LEFTOVER_MESSAGE in restarted.text(), "the leftover VIP removed", n1, n2)
    # n1 preempts again: in the end exactly one node answers for the VIP.
    wait_for(lambda: elected(lab, n1, n2), "n1 MASTER again, n2 BACKUP", n1, n2)


class AddressEvents:
    """`ip monitor address` in a namespace: every address deletion, as it happens."""

    def __init__(self, lab: Lab, index: int) -> None:
        self.proc = lab.run(
            index, ["ip", "-o", "monitor", "address"], stdout=subprocess.PIPE, text=True
        )
        time.sleep(0.2)  # subscribed before anything changes

    def deleted(self) -> list[str]:
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=10)
        return [line for line in out.splitlines() if line.startswith("Deleted")]


SUBNET_VIPS = ["192.168.78.1", "192.168.78.2", "192.168.78.3"]  # no node address in there


def test_vips_of_one_subnet_leave_one_at_a_time_and_none_is_lost(
    lab: Lab, podman: Podman, image: str, tmp_path: Path, containers: list[Container]
) -> None:
    # Fixed VRIDs (the operator keeps allocated ones in status.vrid): removing one
    # VirtualIP leaves the others' instances unchanged and running.
    vips = {
        a: edge_vip(f"vip-{i}", f"{a}/24", interface="eth0", vrid=i)
        for i, a in enumerate(SUBNET_VIPS, start=1)
    }
    n1 = DaemonNode(lab, 1, podman, image, tmp_path, containers)
    n1.configure(node_configs(lab, list(vips.values()))["n1"])
    n1.start()
    wait_for(lambda: all(lab.holders(a) == [1] for a in SUBNET_VIPS), "n1 holding all three", n1)
    remaining = list(SUBNET_VIPS)
    while len(remaining) > 1:
        # The subnet's primary address first: the one whose removal takes the others along.
        gone = primary_in(lab, 1, "192.168.78.0/24")
        remaining.remove(gone)
        events = AddressEvents(lab, 1)
        n1.configure(node_configs(lab, [vips[a] for a in remaining])["n1"])
        wait_for(lambda g=gone: lab.holders(g) == [], f"{gone} removed", n1)
        time.sleep(0.5)  # a VIP re-added after the fact would still show in the events
        lost = [line for line in events.deleted() if any(f" {a}/" in line for a in remaining)]
        assert lost == [], f"removing {gone} took others with it:\n{describe(n1)}"
        assert all(lab.holders(a) == [1] for a in remaining)


def primary_in(lab: Lab, index: int, subnet: str) -> str:
    """The address of `subnet` on the node's eth0 that is not flagged secondary."""
    network = ipaddress.ip_network(subnet)
    links = json.loads(lab.ip(index, "-j", "addr", "show", "dev", "eth0"))
    for info in links[0]["addr_info"]:
        if ipaddress.ip_address(info["local"]) in network and not info.get("secondary"):
            return str(info["local"])
    raise AssertionError(f"no primary address of {subnet} on node {index}")
