"""`vrrpd run --kube` for real: daemons in lab namespaces against the real API server, with
the chart's daemon ServiceAccount and Role. Quiet at steady state (counted in the audit log),
a ConfigMap change applied in place through the watch, one bad document refused alone, and
a start from the last good copy while the API server is down."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.envtest import ApiServer
from tests.realapi.daemons import (
    DAEMON_USER,
    NS,
    ClusterNodes,
    cluster_nodes,
    virtualip,
    wait_report,
)
from vrrpd.lab.netns import wait_until

pytestmark = pytest.mark.root

WEB = "default/web/ipv4"
VIP = "192.168.77.100"
# Requests one daemon may make in STEADY_WINDOW_S with nothing changing. The watch it holds
# is not among them (the audit log lists a request once it has ended, and the server ends a
# watch after 5..10 min). The daemon that polled made ~90 (bench/README.md).
STEADY_WINDOW_S = 20.0
STEADY_MAX_REQUESTS = 1


@pytest.fixture
def cluster(kube_api: ApiServer) -> Iterator[ClusterNodes]:
    with cluster_nodes(kube_api, 2, "kvk") as nodes:
        yield nodes


def web(priority: int, node: str, **kwargs: Any) -> dict[str, Any]:
    return virtualip("web", f"{VIP}/24", 51, priority, node, **kwargs)


def elect(cluster: ClusterNodes, priorities: tuple[int, int] = (150, 100)) -> None:
    for i, priority in enumerate(priorities, 1):
        node = f"n{i}"
        cluster.set_config(node, [web(priority, node)])
        cluster.create_pod(node)
        cluster.start(i)
    for node, state in (("n1", "MASTER"), ("n2", "BACKUP")):
        wait_report(cluster, node, lambda r, s=state: _state(r, WEB) == s, 20)


def _state(report: dict[str, Any], name: str) -> str | None:
    return next((i["state"] for i in report.get("instances", []) if i["name"] == name), None)


def test_steady_state_costs_no_request_and_nothing_is_forbidden(
    cluster: ClusterNodes, kube_api: ApiServer
) -> None:
    elect(cluster)
    time.sleep(2 * 1.0)  # a report rate-limited to one a second has gone out
    t0 = time.time()
    time.sleep(STEADY_WINDOW_S)
    t1 = time.time()
    for node in ("n1", "n2"):
        made = cluster.requests(node, t0, t1)
        assert len(made) <= STEADY_MAX_REQUESTS, (node, made)
        # Since it started: one LIST of its own ConfigMap, one WATCH from there (with
        # bookmarks), and reports on its own pod.
        own = f"/api/v1/namespaces/{NS}/configmaps?fieldSelector=metadata.name%3Dvrrpd-{node}"
        started = cluster.requests(node, 0)
        assert started[0] == f"list {own}", started
        assert started[1].startswith(f"watch {own}&watch=true&allowWatchBookmarks=true&"), started
        assert "&resourceVersion=" in started[1]
        assert {r.split("?")[0] for r in started[2:]} == {
            f"patch /api/v1/namespaces/{NS}/pods/vrrpd-{node}"
        }, started
    assert kube_api.forbidden(DAEMON_USER) == []


def test_a_configmap_change_reaches_the_daemon_through_its_watch_in_place(
    cluster: ClusterNodes,
) -> None:
    elect(cluster)
    master = cluster.daemons["n1"]
    before = len(master.transitions(WEB))
    t0 = cluster.set_config("n1", [web(200, "n1")])
    report = wait_report(cluster, "n1", lambda r: r["instances"][0]["priority"] == 200, 10)
    assert report["instances"][0]["state"] == "MASTER"
    assert "reconfigured in place" in master.log_text()
    assert len(master.transitions(WEB)) == before
    # No new LIST: the open watch brought the change; then one report.
    made = cluster.requests("n1", t0)
    assert [r.split(" ")[0] for r in made] == ["patch"], made


def test_one_bad_document_is_refused_alone_and_a_fresh_daemon_runs_the_others(
    cluster: ClusterNodes,
) -> None:
    docs = [
        virtualip("web", f"{VIP}/24", 51, 150, "n1", namespace="tenant-a"),
        virtualip("web", f"{VIP}/24", 52, 150, "n1", namespace="tenant-b"),
        virtualip("other", "192.168.77.101/24", 53, 150, "n1"),
    ]
    cluster.set_config("n1", docs)
    cluster.create_pod("n1")
    cluster.start(1)
    report = wait_report(
        cluster, "n1",
        lambda r: {i["name"]: i["state"] for i in r["instances"]}
        == {"tenant-a/web/ipv4": "MASTER", "default/other/ipv4": "MASTER"},
        20,
    )  # fmt: skip
    assert report["configError"] is None
    (refused,) = report["refused"]
    assert (refused["virtualip"], refused["document"], refused["previous"]) == (
        "tenant-b/web", 2, False,
    )  # fmt: skip
    assert f"{VIP} is also a virtual address of tenant-a/web (document 1)" in refused["error"]
    assert wait_until(lambda: cluster.lab.holders(VIP) == [1], 5)
    assert cluster.lab.holders("192.168.77.101") == [1]
    # The tenant moves to another address: all three run.
    docs[1]["spec"]["addresses"] = ["192.168.77.102/24"]
    cluster.set_config("n1", docs)
    report = wait_report(cluster, "n1", lambda r: len(r["instances"]) == 3, 10)
    assert report["refused"] == []


def test_a_daemon_starts_from_its_last_good_copy_while_the_api_server_is_down(
    cluster: ClusterNodes, kube_api: ApiServer
) -> None:
    cluster.set_config("n1", [web(150, "n1")])
    cluster.create_pod("n1")
    first = cluster.start(1)
    wait_report(cluster, "n1", lambda r: _state(r, WEB) == "MASTER", 20)
    assert first.terminate() == 0
    kube_api.stop_apiserver()
    try:
        second = cluster.start(1)
        assert second.wait_state(WEB, "MASTER", 15), second.log_text()
        assert "starting from the last good configuration" in second.log_text()
        assert cluster.lab.holders(VIP) == [1]
    finally:
        kube_api.start_apiserver()
    # Back: the watcher lists the ConfigMap, the report follows within seconds (the pod
    # still holds the first daemon's last one, with no instance: it had stopped).
    wait_report(cluster, "n1", lambda r: r["configHash"] and _state(r, WEB) == "MASTER", 15)
