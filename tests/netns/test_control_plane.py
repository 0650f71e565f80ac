"""The control-plane VIP for real: `vrrpd control-plane` run on three lab nodes, the daemon
started from the static pod's command line before any API server exists, then three real
kube-apiservers (envtest assets) sharing one etcd on a fourth node. kubectl in the client
namespace reaches them through the VIP, and keeps doing so when the holder's kube-apiserver
stops (the probe moves the VIP) and when the holder's link goes down.

The lost time is bench/control_plane.py's business; these tests assert what happens."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest

from tests.chart.kubetools import tool
from tests.envtest import SKIP_REASON, assets
from tests.netns.conftest import LAB_PREFIX
from vrrpd.lab.control_plane import ControlPlaneLab, HttpsProber, get, in_netns
from vrrpd.lab.netns import Lab, wait_until

pytestmark = pytest.mark.root

VIP = "192.168.77.100"
CONTROL_PLANE = (1, 2, 3)
ETCD = 4
HEALTHY, FAILING = 100, 1  # the generated file's priority, and where a failing probe puts it


def kubectl(cp: ControlPlaneLab, *args: str) -> subprocess.CompletedProcess[str]:
    """kubectl in the lab's client namespace, its server https://VIP:6443."""
    argv = [str(tool("kubectl")), f"--kubeconfig={cp.api.kubeconfig}", "--request-timeout=5s"]
    return subprocess.run(
        cp.lab.command(cp.lab.client, [*argv, *args]),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlaneLab]:
    """Three control-plane nodes and an etcd node; the daemons run, the API servers do not
    yet (the first test starts them, as kubeadm init would after the static pod is there)."""
    folder = assets()
    if folder is None:
        pytest.skip(SKIP_REASON)
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    lab = Lab(4, prefix=LAB_PREFIX, unique=True, workdir=tmp_path_factory.mktemp("cp-lab"))
    try:
        cp = ControlPlaneLab(lab, folder, vip=VIP, nodes=CONTROL_PLANE, etcd_node=ETCD)
        cp.start_daemons()
        yield cp
    finally:
        lab.close()


def started(cp: ControlPlaneLab) -> ControlPlaneLab:
    """The API servers up (when a test runs alone) and every daemon's probe passing."""
    if not cp.api.processes:
        cp.api.start()
    assert cp.wait_healthy(), cp.logs()
    return cp


def test_before_any_api_server_one_node_holds_the_vip(cluster: ControlPlaneLab) -> None:
    """kubeadm init needs the VIP while the first kube-apiserver starts: with every probe
    failing, every node is at priority 1 and one of them holds it (the first to time out
    as backup; the others accept its adverts, equal in priority to their own). Once the
    API servers are up it is on one of theirs, and stays there."""
    assert wait_until(
        lambda: all(cluster.priority(i) == FAILING for i in CONTROL_PLANE), 30, 0.2
    ), cluster.logs()
    cluster.holder()
    # The first API server to be ready takes the VIP (100 > 1); once all are, it stays put.
    cluster.api.start()
    assert cluster.wait_healthy(), cluster.logs()
    holder = cluster.holder()
    time.sleep(1.0)
    assert cluster.holders() == [holder]


def test_kubectl_works_through_the_vip_and_readyz_is_anonymous(cluster: ControlPlaneLab) -> None:
    done = kubectl(started(cluster), "get", "namespaces", "-o", "name")
    assert done.returncode == 0, done.stderr
    assert "namespace/kube-system" in done.stdout.split()
    # What the probe relies on, checked on the real binary: /readyz answers a client
    # without credentials (system:public-info-viewer), the rest of the API does not.
    anonymous = cluster.api.ssl_context(client_certificate=False)
    address = cluster.lab.node(1).address4
    status, body = in_netns(
        cluster.lab.client.netns, lambda: get(address, "/readyz", anonymous, timeout=5)
    )
    assert (status, body) == (200, b"ok")
    status, body = in_netns(
        cluster.lab.client.netns,
        lambda: get(address, "/api/v1/namespaces", anonymous, timeout=5),
    )
    assert status == 403 and b"system:anonymous" in body


def _through_the_fault(cluster: ControlPlaneLab, fault: Callable[[int], None]) -> tuple[int, int]:
    """Probe through the VIP, apply `fault` to the holder, wait for the VIP to land on a
    node with a running kube-apiserver and for requests to succeed again; (old, new)."""
    old = started(cluster).holder()
    prober = HttpsProber(
        cluster.lab.client.netns, VIP, cluster.api.ssl_context(), interval=0.05
    ).start()
    try:
        assert wait_until(lambda: prober.answered_since(0) > 5, 10)
        fault(old)
        at = time.monotonic()
        moved = wait_until(lambda: cluster.holders() not in ([], [old]), 30, 0.05)
        assert moved, f"the VIP stayed on n{old}\n{cluster.logs()}"
        new = cluster.holder()
        assert cluster.api.running(new)
        assert wait_until(lambda: prober.answered_since(at + 0.5) >= 10, 30), cluster.logs()
    finally:
        result = prober.stop()
    assert not result.unrecovered and result.received > 0, result
    done = kubectl(cluster, "get", "namespaces", "-o", "name")
    assert done.returncode == 0, done.stderr
    return old, new


def test_the_vip_leaves_a_node_whose_api_server_stops_and_does_not_come_back(
    cluster: ControlPlaneLab,
) -> None:
    old, new = _through_the_fault(cluster, cluster.api.stop_apiserver)
    # The daemon on the old holder runs on: its probe moved the VIP, not its death.
    state = cluster.status(old)
    assert cluster.daemons[old].poll() is None
    assert (state["state"], state["effectivePriority"]) == ("BACKUP", FAILING), state
    assert state["probes"][0]["state"] == "down", state
    # Its API server comes back: its priority returns to 100, equal to the holder's, so the
    # VIP stays where it is (a move back would reset every client's connection again).
    cluster.api.start_apiserver(old)
    assert wait_until(lambda: cluster.priority(old) == HEALTHY, 30, 0.2), cluster.status(old)
    time.sleep(1.0)  # several adverts: a preempting node would have taken over by now
    assert cluster.holders() == [new]


def test_the_vip_leaves_a_node_whose_link_goes_down(cluster: ControlPlaneLab) -> None:
    def cut(node: int) -> None:
        cluster.lab.link_down(node)

    old, new = _through_the_fault(cluster, cut)
    assert new != old and cluster.daemons[old].poll() is None
    assert cluster.status(old)["state"] == "FAULT"
    cluster.lab.link_up(old)
    assert wait_until(lambda: cluster.status(old)["state"] == "BACKUP", 20, 0.2)
    assert wait_until(lambda: cluster.priority(old) == HEALTHY, 60, 0.2), cluster.status(old)
    assert cluster.holders() == [new]


def test_a_sigterm_of_the_holders_daemon_hands_the_vip_over(cluster: ControlPlaneLab) -> None:
    """What the kubelet does when the static pod is removed or replaced: SIGTERM, and the
    daemon's make-before-break handover (no lost request expected, none asserted)."""

    def stop_daemon(node: int) -> None:
        assert cluster.stop_daemon(node) == 0

    old, _ = _through_the_fault(cluster, stop_daemon)
    assert old not in cluster.holders()
