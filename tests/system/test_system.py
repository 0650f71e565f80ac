"""System test on the real API server: the chart, the operator, real vrrpd daemons on lab nodes.

The test kubelet (kubelet.py) runs every daemon pod the operator renders as a real
`vrrpd run --kube` in its node's network namespace, as the daemon ServiceAccount; the
daemons read their ConfigMaps and report on their pods through the API server, elect a
master over a real bridge and put real addresses on eth0. Every check polls with a generous
timeout: nothing here asserts how fast something happens, only that it does (bench/
measures speed).

Apply a VirtualIP -> the VIP appears on the highest-priority node and status.master says
so; delete that pod, or take its link down -> the VIP moves, status and an Event follow;
change one VirtualIP -> another's master does not change and no daemon restarts; delete
the VirtualIP -> no VIP left on any node. The API server's outage: test_api_outage.py.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.image.podman import proc_status
from tests.realapi.cluster import Release, daemon_objects
from tests.system.conftest import System
from tests.system.kubelet import PodmanRuntime

pytestmark = pytest.mark.root

WEB_VIP, API_VIP = "192.168.77.100", "192.168.77.101"
WEB_PRIORITIES = {"n1": 150, "n2": 120, "n3": 100}
API_PRIORITIES = {"n1": 100, "n2": 110, "n3": 150}


def test_virtualip_comes_up_on_the_highest_priority_node_and_goes_on_delete(
    system: System,
) -> None:
    system.up(system.virtualip("web", WEB_VIP, 51, WEB_PRIORITIES), "n1")

    status = system.until(
        "every node reported",
        lambda: (
            (s := system.status("web"))
            and [n.get("state") for n in s["nodes"]] == ["MASTER", "BACKUP", "BACKUP"]
            and s
        ),
    )
    assert status["vrid"] == 51
    assert [(n["name"], n.get("basePriority")) for n in status["nodes"]] == [
        ("n1", 150), ("n2", 120), ("n3", 100),
    ]  # fmt: skip
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "MasterElected")
    assert system.until("MasterChanged Event", lambda: system.events("MasterChanged", "web"))

    # Each daemon runs the ConfigMap the operator wrote, and says so in its report.
    for node in ("n1", "n2", "n3"):
        name = system.pod_name(node)

        def reported(name: str = name) -> bool:
            want = daemon_objects(system.api, "configmaps")[name]["metadata"]["annotations"]
            pod = daemon_objects(system.api, "pods")[name]
            report = system.report(pod)
            return (
                report.get("configHash") == want["kubevrrp.io/config-hash"]
                and report.get("configError") is None
            )

        system.until(f"{node} reports the config it was given", reported)
        # ... and keeps a copy of what it runs on the node, in the pod's hostPath (its root
        # filesystem is read-only), for a start while the API server is away: the same
        # documents (the daemon writes them again, under a comment naming their source).
        system.until(f"{node} kept the config on the node", lambda node=node, name=name: any(
            _documents(f.read_text()) == _documents(text) for f in system.state_files(node)
            for text in daemon_objects(system.api, "configmaps")[name]["data"].values()
        ))  # fmt: skip
    system.until("every daemon pod Ready", lambda: all(system.pod_ready(n) for n in system.names))
    # (n2 or n3 may have been MASTER for a moment: a daemon that starts before n1's waits
    # one Master_Down_Interval, hears nobody and takes over until n1 preempts it.)
    for node in ("n2", "n3"):
        assert system.daemon(node).state(system.instance("web")) == "BACKUP"

    system.delete("web")
    system.until(f"no node holds {WEB_VIP}", lambda: system.held_by(WEB_VIP, []))
    system.until("the finalizer let web go", lambda: not system.exists("web"))
    system.until("daemon pods, ConfigMaps and Secrets gone", lambda: not any(
        system.daemon_objects(kind) for kind in ("pods", "configmaps", "secrets")
    ))  # fmt: skip
    system.until("every daemon stopped", lambda: all(not p.running for p in system.kubelet.history))
    assert system.holders(WEB_VIP) == []
    assert all(p.exits == [0] for p in system.kubelet.history), system.kubelet.describe()


def test_deleting_the_master_pod_hands_the_vip_over(system: System) -> None:
    system.up(system.virtualip("web", WEB_VIP, 51, WEB_PRIORITIES), "n1")
    first = system.daemon("n1")

    # The kubelet on n1 is slow to start the replacement: n2 must take over meanwhile.
    system.kubelet.hold(system.names["n1"])
    system.delete_pod("n1")
    system.until(f"{WEB_VIP} on n2 only", lambda: system.held_by(WEB_VIP, ["n2"]))
    system.until("status.master == n2", lambda: system.master("web") == "n2")
    system.until("MasterChanged Event for n2", lambda: system.events_like(
        "MasterChanged", "web", "n2 is now MASTER"
    ))  # fmt: skip
    # n1's daemon stopped on SIGTERM (exit 0) after handing over, not killed.
    system.until("n1's first daemon gone", lambda: not first.running)
    assert first.exits == [0], system.kubelet.describe()
    assert first.transitions(system.instance("web"))[-1]["state"] == "STOPPED"
    # The operator recreated the pod (a new uid); the kubelet leaves it Pending, and the
    # status says so.
    system.until("vrrpd-n1 recreated", lambda: (
        (pod := system.pod("n1")) is not None and pod["metadata"]["uid"] != first.uid
    ))  # fmt: skip
    system.until(
        "n1's reason: its pod is Pending",
        lambda: (
            system.node_status("web", "n1").get("reason")
            == "daemon pod is starting (phase Pending)"
        ),
    )
    assert system.node_status("web", "n1")["state"] == "Unknown"

    # The new daemon starts; with preempt Always n1 takes the VIP back.
    before = len(system.events_like("MasterChanged", "web", "n1 is now MASTER"))
    system.kubelet.release(system.names["n1"])
    system.until(f"{WEB_VIP} back on n1 only", lambda: system.held_by(WEB_VIP, ["n1"]))
    system.until("status.master == n1", lambda: system.master("web") == "n1")
    system.until("MasterChanged Event for n1 again", lambda: len(
        system.events_like("MasterChanged", "web", "n1 is now MASTER")
    ) > before)  # fmt: skip
    assert system.daemon("n1").uid != first.uid


def _handover_and_back(system: System, linger_s: float) -> tuple[set[str | None], list[str]]:
    """Delete n1's pod with a kubelet that deletes the pod object `linger_s` after the
    container ended (a real one reports the container's end first, then the pod goes); n2
    takes over; then n1's new pod takes the VIP back. Returns every status.master seen on
    the way and the MasterChanged Events about web."""
    system.kubelet.linger_s = linger_s
    system.up(system.virtualip("web", WEB_VIP, 51, WEB_PRIORITIES), "n1")
    system.until("n1 healthy", lambda: system.node_status("web", "n1").get("healthy"))
    first = system.daemon("n1")
    seen: set[str | None] = set()

    def handed_over() -> bool:
        seen.add(system.master("web"))
        pod = system.pod("n1")
        recreated = pod is not None and pod["metadata"]["uid"] != first.uid
        return recreated and system.holders(WEB_VIP) == ["n2"] and "n2" in seen

    def back() -> bool:
        seen.add(master := system.master("web"))
        return master == "n1" and system.holders(WEB_VIP) == ["n1"]

    system.kubelet.hold(system.names["n1"])
    system.delete_pod("n1")
    system.until("n2 holds the VIP, reported, and vrrpd-n1 is recreated", handed_over)
    system.kubelet.release(system.names["n1"])
    system.until("n1 holds the VIP again, reported", back)
    deadline = time.monotonic() + 3.0  # a status round or two more
    while time.monotonic() < deadline:
        seen.add(system.master("web"))
        time.sleep(0.2)
    return seen, system.events("MasterChanged", "web")


def test_a_graceful_handover_is_no_split_brain(system: System) -> None:
    seen, changes = _handover_and_back(system, linger_s=2.0)
    assert [m for m in seen if m and "," in m] == [], f"two masters reported: {changes}"
    assert [m for m in changes if "," in m.split(" is now")[0]] == [], changes
    assert system.events("SplitBrain", "web") == [] and system.events("ProbeFailed", "web") == []


def test_the_status_keeps_a_master_through_a_handover(system: System) -> None:
    seen, changes = _handover_and_back(system, linger_s=0.0)
    assert None not in seen, f"status.master was empty on the way: {changes}"
    assert [m for m in changes if m.startswith("no node")] == [], changes


def test_link_down_moves_the_vip_and_status_shows_the_fault(system: System) -> None:
    system.up(system.virtualip("web", WEB_VIP, 51, WEB_PRIORITIES), "n1")
    ids = {n: system.daemon(n).container_id for n in system.names}

    system.lab.link_down(1)  # n1 loses carrier; its API relay (loopback) still works
    system.until(f"{WEB_VIP} on n2 only", lambda: system.held_by(WEB_VIP, ["n2"]))
    system.until("status.master == n2", lambda: system.master("web") == "n2")
    system.until(
        "n1 reported FAULT", lambda: system.node_status("web", "n1").get("state") == "FAULT"
    )
    assert system.node_status("web", "n1")["healthy"] is False
    system.until("MasterChanged Event for n2", lambda: system.events_like(
        "MasterChanged", "web", "n2 is now MASTER"
    ))  # fmt: skip
    system.until("ProbeFailed Event for n1", lambda: system.events_like(
        "ProbeFailed", "web", "n1:"
    ))  # fmt: skip

    system.lab.link_up(1)
    system.until(f"{WEB_VIP} back on n1 only", lambda: system.held_by(WEB_VIP, ["n1"]))
    system.until("status.master == n1", lambda: system.master("web") == "n1")
    system.until("n1 healthy again", lambda: system.node_status("web", "n1").get("healthy") is True)
    assert {n: system.daemon(n).container_id for n in system.names} == ids  # no daemon restarted


def test_changing_one_virtualip_leaves_the_other_alone(system: System) -> None:
    web, api = system.instance("web"), system.instance("api")
    system.up(system.virtualip("web", WEB_VIP, 51, WEB_PRIORITIES), "n1")
    daemons = {n: system.daemon(n) for n in system.names}
    ids = {n: d.container_id for n, d in daemons.items()}
    # (A daemon that started last may not have logged its state yet.)
    system.until("every daemon logged its web state", lambda: {
        n: d.state(web) for n, d in daemons.items()
    } == {"n1": "MASTER", "n2": "BACKUP", "n3": "BACKUP"})  # fmt: skip
    web_transitions = {n: len(d.transitions(web)) for n, d in daemons.items()}
    system.until("web status settled", lambda: system.status("web").get("transitions"))
    web_status_transitions = system.status("web")["transitions"]

    def web_untouched() -> None:
        assert system.holders(WEB_VIP) == ["n1"], system.picture()
        for n, d in daemons.items():
            assert len(d.transitions(web)) == web_transitions[n], f"web moved on {n}"

    # A second VirtualIP arrives: every node's ConfigMap changes, no daemon restarts.
    system.up(system.virtualip("api", API_VIP, 52, API_PRIORITIES), "n3")
    web_untouched()

    # Changing it (n2 becomes its preferred node) only touches n2's configuration.
    changed = system.virtualip("api", API_VIP, 52, {"n1": 100, "n2": 200, "n3": 150})
    system.patch("api", {"spec": {"nodePriorities": changed["spec"]["nodePriorities"]}})
    system.until(f"{API_VIP} on n2 only", lambda: system.held_by(API_VIP, ["n2"]))
    system.until("api status.master == n2", lambda: system.master("api") == "n2")
    system.until("n2 applied the change", lambda: system.daemon("n2").messages(
        "configuration applied: 0 added, 0 removed, 1 changed, 1 unchanged"
    ))  # fmt: skip
    time.sleep(1.0)  # a few more adverts
    web_untouched()
    assert system.master("web") == "n1"
    assert system.status("web")["transitions"] == web_status_transitions
    # The same daemons throughout: no pod replaced, no container restarted.
    assert {n: system.daemon(n).container_id for n in system.names} == ids, (
        system.kubelet.describe()
    )
    for n in ("n1", "n3"):
        assert not daemons[n].messages("1 changed"), f"{n}'s configuration was changed"

    # Deleting web leaves api where it is; deleting api leaves nothing.
    api_transitions = {n: len(d.transitions(api)) for n, d in daemons.items()}
    system.delete("web")
    system.until(f"no node holds {WEB_VIP}", lambda: system.held_by(WEB_VIP, []))
    system.until("web gone", lambda: not system.exists("web"))
    assert system.holders(API_VIP) == ["n2"]
    assert {n: len(d.transitions(api)) for n, d in daemons.items()} == api_transitions

    system.delete("api")
    system.until(f"no node holds {API_VIP}", lambda: system.held_by(API_VIP, []))
    system.until("api gone", lambda: not system.exists("api"))
    system.until("every daemon stopped", lambda: all(not p.running for p in system.kubelet.history))
    assert system.holders(WEB_VIP) == [] and system.holders(API_VIP) == []


CAP_NET_ADMIN, CAP_NET_RAW = 12, 13


@pytest.mark.parametrize("runtime", ["podman"], indirect=True)
def test_the_daemon_container_runs_as_its_pod_says(system: System, release: Release) -> None:
    """The [podman] kubelet's daemons, as the kernel and the API server see them."""
    system.up(system.virtualip("web", WEB_VIP, 51, WEB_PRIORITIES), "n1")
    runtime = system.kubelet.runtime
    assert isinstance(runtime, PodmanRuntime)
    daemon = system.daemon("n1")
    assert daemon.container_id is not None
    inspect = runtime.podman("inspect", "--format", "{{.State.Pid}}", daemon.container_id)
    pid = int(inspect.stdout)

    # Root with NET_ADMIN and NET_RAW only, no privilege escalation, a seccomp filter.
    status = proc_status(pid)
    assert status["Uid"].split()[:2] == ["0", "0"]
    wanted = f"{(1 << CAP_NET_ADMIN) | (1 << CAP_NET_RAW):016x}"
    assert (status["CapEff"], status["CapPrm"], status["CapBnd"]) == (wanted,) * 3
    assert (status["NoNewPrivs"], status["Seccomp"]) == ("1", "2")
    # The pod's command, nothing added: the API server comes from the in-cluster
    # configuration (KUBERNETES_SERVICE_HOST and the service-account volume).
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]
    node = system.names["n1"]
    assert cmdline[1:] == ["/opt/kube-vrrp/bin/vrrpd", "run", "--kube", "--node", node], cmdline
    # Its root filesystem is read-only; /tmp is the pod's emptyDir.
    touched = runtime.podman("exec", daemon.container_id, "touch", "/probe", "/tmp/probe",
                             check=False)  # fmt: skip
    assert touched.returncode != 0 and touched.stderr.count("Read-only file system") == 1

    # Its requests carry the token the kubelet projected for its pod.
    def pods_seen() -> set[str]:
        return {
            str(((e.get("user") or {}).get("extra") or {}).get(
                "authentication.kubernetes.io/pod-name", ["?"])[0])
            for e in system.api.audit(release.daemon_user)
        }  # fmt: skip

    system.until("requests of every daemon pod", lambda: (
        {system.pod_name(n) for n in system.names} <= pods_seen()
    ))  # fmt: skip


def _documents(text: str) -> list[Any]:
    return [d for d in yaml.safe_load_all(text) if d is not None]
