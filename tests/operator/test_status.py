"""Status aggregation from daemon reports, and the Events that status changes produce."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from vrrp_operator.objects import PodInfo
from vrrp_operator.render import Finding, Placement, render
from vrrp_operator.status import (
    NodeReport,
    affected,
    aggregate_status,
    events,
    master_lost,
    masters,
    parse_report,
    recheck_in,
    reports_from_pods,
    status_patch,
    status_write,
)

from tests.operator.builders import edge_nodes, vip

NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
KEY = "default/web"


def ago(seconds: float) -> str:
    return (NOW - timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def report(node: str, *rows: dict[str, Any], **extra: Any) -> NodeReport:
    text = json.dumps({"node": node, "configHash": "sha256:x", "instances": list(rows), **extra})
    return parse_report(node, text)


def row(state: str, *, family: int = 4, key: str = KEY, **kw: Any) -> dict[str, Any]:
    return {
        "name": f"{key}/ipv{family}",
        "state": state,
        "priority": 100,
        "effectivePriority": 100,
        "since": ago(60),
        **kw,
    }


def placed(obj: dict[str, Any] | None = None, nodes: int = 3) -> tuple[dict[str, Any], Placement]:
    obj = obj or vip("web")
    r = render([obj], edge_nodes(nodes), {})
    return obj, r.placements[object_key(obj)]


def object_key(obj: dict[str, Any]) -> str:
    return f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"


def cond(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == kind)


# --- reports -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "instances", "error"),
    [
        (None, 0, None),
        ("", 0, None),
        ("not json", 0, "unreadable status report"),
        ("[1, 2]", 0, "not a JSON object"),
        (
            json.dumps({"instances": [{"name": "a/b/ipv4", "state": "MASTER"}, {"state": "x"}, 3]}),
            1,
            None,
        ),
        (json.dumps({"configError": "spec.vrid: ...", "instances": []}), 0, "spec.vrid"),
    ],
)
def test_parse_report_is_lenient(text: str | None, instances: int, error: str | None) -> None:
    r = parse_report("node-1", text)
    assert len(r.instances) == instances
    assert (r.config_error is None) if error is None else (error in (r.config_error or ""))


def test_report_fields() -> None:
    r = report(
        "node-1", row("FAULT", reason="probe haproxy failed", effectivePriority=80), updated=ago(1)
    )
    inst = r.instances[f"{KEY}/ipv4"]
    assert inst.state == "FAULT" and inst.healthy is False  # no "healthy": FAULT is unhealthy
    assert inst.effective_priority == 80 and inst.reason == "probe haproxy failed"
    assert inst.since == NOW - timedelta(seconds=60)
    assert r.config_hash == "sha256:x" and r.updated == NOW - timedelta(seconds=1)
    unknown = report("node-1", row("DANCING")).instances[f"{KEY}/ipv4"]
    assert unknown.state == "Unknown"


def test_reports_from_pods_and_masters() -> None:
    master = json.dumps({"instances": [row("MASTER")]})
    pods = [
        PodInfo("vrrpd-node-1", "node-1", "Running", True, report=master),
        PodInfo("vrrpd-node-2", "node-2", "Running", True, terminating=True, report=master),
        PodInfo(
            "vrrpd-node-3",
            "node-3",
            "Running",
            True,
            report=json.dumps({"instances": [row("BACKUP")]}),
        ),
    ]
    reports = reports_from_pods(pods)
    assert reports["node-2"].pod_running is False
    assert masters(reports) == {"node-1"}  # a terminating master is handing over


# --- aggregation ---------------------------------------------------------------------------


def test_one_master_is_ready() -> None:
    obj, p = placed()
    reports = {
        "node-1": report("node-1", row("MASTER", priority=150, effectivePriority=150)),
        "node-2": report("node-2", row("BACKUP")),
        "node-3": report("node-3", row("BACKUP")),
    }
    s = aggregate_status(obj, reports, NOW, placement=p)
    assert s["vrid"] == 1 and s["master"] == "node-1" and s["transitions"] == 1
    assert s["nodes"][0] == {
        "name": "node-1",
        "state": "MASTER",
        "basePriority": 150,
        "effectivePriority": 150,
        "healthy": True,
        "since": "2025-06-01T11:59:00Z",
    }
    assert [c["type"] for c in s["conditions"]] == [
        "Ready",
        "Degraded",
        "SplitBrain",
        "VRIDConflict",
        "Advisory",
    ]
    assert (cond(s, "Ready")["status"], cond(s, "Ready")["reason"]) == ("True", "MasterElected")
    assert "192.168.77.100/24" in cond(s, "Ready")["message"]
    assert cond(s, "Degraded")["status"] == "False"
    assert cond(s, "SplitBrain")["status"] == "False"
    assert (cond(s, "VRIDConflict")["status"], cond(s, "VRIDConflict")["reason"]) == (
        "False",
        "Unique",
    )
    assert all(c["lastTransitionTime"] == "2025-06-01T12:00:00Z" for c in s["conditions"])


def test_transition_times_and_count_carry_over() -> None:
    obj, p = placed()
    reports = {"node-1": report("node-1", row("MASTER")), "node-2": report("node-2", row("BACKUP"))}
    first = aggregate_status(obj, reports, NOW, placement=p)
    obj["status"] = first
    later = NOW + timedelta(minutes=5)
    same = aggregate_status(obj, reports, later, placement=p)
    assert same["transitions"] == 1
    assert cond(same, "Ready")["lastTransitionTime"] == "2025-06-01T12:00:00Z"
    moved = {"node-1": report("node-1", row("BACKUP")), "node-2": report("node-2", row("MASTER"))}
    obj["status"] = same
    after = aggregate_status(obj, moved, later, placement=p)
    assert after["master"] == "node-2" and after["transitions"] == 2
    assert cond(after, "Ready")["lastTransitionTime"] == "2025-06-01T12:00:00Z"  # still True


def test_no_reports_is_unknown_and_degraded() -> None:
    obj, p = placed()
    s = aggregate_status(obj, {}, NOW, placement=p)
    assert s["master"] is None and s["transitions"] == 0
    assert [n["state"] for n in s["nodes"]] == ["Unknown"] * 3
    assert s["nodes"][0]["basePriority"] == 100
    assert "no running vrrpd pod" in s["nodes"][0]["reason"]
    assert (cond(s, "Ready")["status"], cond(s, "Ready")["reason"]) == ("False", "NoMaster")
    assert (cond(s, "Degraded")["status"], cond(s, "Degraded")["reason"]) == ("True", "NoReport")


@pytest.mark.parametrize(
    ("phase", "terminating", "says"),
    [
        ("Pending", False, "daemon pod is starting (phase Pending)"),
        ("Running", True, "daemon pod is stopping"),
        ("Pending", True, "daemon pod is stopping"),
        ("Failed", False, "daemon pod has exited (phase Failed)"),
        ("Succeeded", False, "daemon pod has exited (phase Succeeded)"),
        ("Unknown", False, "daemon pod is in phase Unknown"),
    ],
)
def test_reasons_name_the_pod_phase_as_it_is(phase: str, terminating: bool, says: str) -> None:
    # A daemon can report before its kubelet marks the pod Running: "stopping" would be false.
    obj, p = placed(nodes=2)
    pods = [
        PodInfo("vrrpd-node-1", "node-1", "Running", True, report=json.dumps(
            {"instances": [row("MASTER")]})),
        PodInfo("vrrpd-node-2", "node-2", phase, False, terminating=terminating,
                report=json.dumps({"instances": [row("BACKUP")]})),
    ]  # fmt: skip
    s = aggregate_status(obj, reports_from_pods(pods), NOW, placement=p)
    assert s["nodes"][1]["reason"].startswith(says)
    assert s["nodes"][1]["state"] == "BACKUP"
    silent = [PodInfo("vrrpd-node-2", "node-2", phase, False, terminating=terminating)]
    s = aggregate_status(obj, reports_from_pods(silent), NOW, placement=p)
    assert s["nodes"][1]["reason"].startswith(says)
    assert s["nodes"][1]["state"] == "Unknown"


def test_config_not_applied_or_refused_is_explained() -> None:
    obj, p = placed(nodes=2)
    reports = {
        "node-1": report("node-1"),
        "node-2": report("node-2", configError="spec.vrid: 300 is out of range"),
    }
    s = aggregate_status(obj, reports, NOW, placement=p)
    assert "not reported this VirtualIP yet" in s["nodes"][0]["reason"]
    assert "refused its configuration: spec.vrid" in s["nodes"][1]["reason"]


def test_a_virtualip_the_daemon_refused_alone_says_why() -> None:
    obj, p = placed(nodes=2)
    taken = "spec.addresses: 192.168.77.100 is also a virtual address of other/web (document 1)"
    refused = [
        {"virtualip": KEY, "document": 2, "error": taken, "previous": False},
        {"virtualip": None, "document": 3, "error": "not a VirtualIP", "previous": False},
    ]
    reports = {
        "node-1": report("node-1", row("MASTER")),
        "node-2": report("node-2", refused=refused),
    }
    assert reports["node-2"].refused == {KEY: taken}
    s = aggregate_status(obj, reports, NOW, placement=p)
    assert s["nodes"][1]["reason"] == f"vrrpd refused this VirtualIP: {taken}"


def test_probe_failure_degrades() -> None:
    obj, p = placed(nodes=2)
    reports = {
        "node-1": report("node-1", row("MASTER")),
        "node-2": report(
            "node-2",
            row(
                "BACKUP",
                healthy=False,
                effectivePriority=80,
                reason="probe haproxy: connection refused",
            ),
        ),
    }
    s = aggregate_status(obj, reports, NOW, placement=p)
    assert cond(s, "Ready")["status"] == "True"
    d = cond(s, "Degraded")
    assert (d["status"], d["reason"]) == ("True", "NodeUnhealthy")
    assert "node-2: probe haproxy: connection refused" in d["message"]
    assert s["nodes"][1]["effectivePriority"] == 80


@pytest.mark.parametrize(
    ("overlap_s", "interval", "split"),
    [
        (0.1, "100ms", False),  # a preemption: the old master's report is on its way
        (0.3, "100ms", False),
        (1.9, "100ms", False),
        (2.5, "100ms", True),  # longer than any report takes: they do not hear each other
        (1.5, "1s", False),
        (2.5, "1s", True),
        (30, "20s", False),  # two adverts
        (41, "20s", True),
    ],
)
def test_two_masters_are_a_split_brain_after_two_adverts_and_the_report_lag(
    overlap_s: float, interval: str, split: bool
) -> None:
    obj, p = placed(vip("web", advertInterval=interval), nodes=2)
    reports = {
        "node-1": report("node-1", row("MASTER", since=ago(600))),
        "node-2": report("node-2", row("MASTER", since=ago(overlap_s))),
    }
    s = aggregate_status(obj, reports, NOW, placement=p)
    assert (cond(s, "SplitBrain")["status"] == "True") is split
    if split:
        assert s["master"] == "node-1,node-2"
        assert cond(s, "Ready")["reason"] == "SplitBrain"
        assert "node-1, node-2 all MASTER for IPv4" in cond(s, "SplitBrain")["message"]
    else:  # the newer master took over; the older one yields as it hears it
        assert s["master"] == "node-2"
        assert cond(s, "Ready")["message"].startswith("node-2 holds")


HEARD = {
    "evidence": "announcement",
    "peer": "02:00:00:00:00:02",
    "detail": "another master for this VRID: 02:00:00:00:00:02 announces 192.168.77.100",
}


@pytest.mark.parametrize("other", ["BACKUP", "MASTER", None])
def test_a_master_that_hears_another_is_a_split_brain_at_once(other: str | None) -> None:
    """The daemon's own verdict needs no second MASTER report (the other node's may be
    stale, its pod unreachable) and no waiting for the reports' lag."""
    obj, p = placed(nodes=2)
    reports = {"node-1": report("node-1", row("MASTER", since=ago(600), splitBrain=HEARD))}
    if other is not None:
        reports["node-2"] = report("node-2", row(other, since=ago(0.5)))
    s = aggregate_status(obj, reports, NOW, placement=p)
    split = cond(s, "SplitBrain")
    assert split["status"] == "True" and cond(s, "Ready")["reason"] == "SplitBrain"
    assert (
        "node-1 (MASTER) hears another master for this VRID: 02:00:00:00:00:02 announces"
        in (split["message"])
    )
    assert events({}, s)[-1] == ("SplitBrain", "Warning", split["message"])
    before = {**obj, "status": s}
    calm = {"node-1": report("node-1", row("MASTER", since=ago(600), splitBrain=None))}
    after = aggregate_status(before, calm, NOW, placement=p)
    assert cond(after, "SplitBrain")["status"] == "False"


def test_a_backup_that_reports_a_stale_verdict_is_no_split_brain() -> None:
    obj, p = placed(nodes=2)
    reports = {
        "node-1": report("node-1", row("BACKUP", splitBrain=HEARD)),
        "node-2": report("node-2", row("MASTER")),
    }
    assert cond(aggregate_status(obj, reports, NOW, placement=p), "SplitBrain")["status"] == "False"


def test_a_master_lost_is_one_the_status_named_and_the_reports_no_longer_show() -> None:
    assert master_lost({"master": "node-1"}, {"master": None})
    assert not master_lost({"master": "node-1"}, {"master": "node-2"})
    assert not master_lost({}, {"master": None})  # never had one: nothing to wait for


@pytest.mark.parametrize(
    ("overlap_s", "interval", "due"),
    [
        (1.5, "1s", 0.5),  # a split brain in half a second, unless a report ends it first
        (2.0, "1s", 0.0),
        (2.5, "1s", None),  # already one: nothing left to wait for
        (0.05, "100ms", 1.95),  # two adverts, but a report may lag 2 s behind another
        (1.0, "2s", 3.0),
    ],
)
def test_recheck_in_says_when_an_overlap_becomes_a_split_brain(
    overlap_s: float, interval: str, due: float | None
) -> None:
    obj, p = placed(vip("web", advertInterval=interval), nodes=2)
    reports = {
        "node-1": report("node-1", row("MASTER", since=ago(600))),
        "node-2": report("node-2", row("MASTER", since=ago(overlap_s))),
    }
    got = recheck_in(KEY, reports, NOW, p)
    assert got == pytest.approx(due) if due is not None else got is None
    if due:  # and then it is one
        later = NOW + timedelta(seconds=due + 0.01)
        assert cond(aggregate_status(obj, reports, later, placement=p), "SplitBrain")["status"] == (
            "True"
        )


def test_nothing_to_recheck_with_one_master_or_a_stopping_one() -> None:
    _, p = placed(nodes=2)
    one = {"node-1": report("node-1", row("MASTER")), "node-2": report("node-2", row("BACKUP"))}
    assert recheck_in(KEY, one, NOW, p) is None
    stopping = {
        "node-1": parse_report(
            "node-1", json.dumps({"instances": [row("MASTER")]}), pod_phase="Terminating"
        ),
        "node-2": report("node-2", row("MASTER", since=ago(0.5))),
    }
    assert recheck_in(KEY, stopping, NOW, p) is None
    assert recheck_in(KEY, one, NOW, None) is None


def test_affected_are_the_virtualips_a_node_reports_or_runs() -> None:
    r = render(
        [vip("web"), vip("api", "192.168.77.101/24", nodeSelector={"matchLabels": {"rack": "r2"}}),
         vip("gone", "192.168.77.102/24")],
        edge_nodes(), {},
    )  # fmt: skip
    before = report("node-1", row("MASTER", key="default/left"))
    after = report("node-1", row("BACKUP", key="default/web"))
    assert affected("node-1", before, after, r.placements) == {
        "default/left", "default/web", "default/gone",
    }  # fmt: skip
    assert affected("node-2", None, None, r.placements) == {
        "default/web", "default/api", "default/gone",
    }  # fmt: skip


def test_dual_stack_node_entry_combines_families() -> None:
    obj, p = placed(vip("web", "192.168.77.100/24", "fd00:77::100/64"), nodes=2)
    reports = {
        "node-1": report("node-1", row("MASTER"), row("BACKUP", family=6, effectivePriority=90)),
        "node-2": report("node-2", row("BACKUP"), row("MASTER", family=6)),
    }
    s = aggregate_status(obj, reports, NOW, placement=p)
    assert s["master"] == "node-1,node-2"
    assert s["nodes"][0]["state"] == "MASTER" and s["nodes"][0]["effectivePriority"] == 90
    assert s["nodes"][0]["reason"] == "IPv4 MASTER, IPv6 BACKUP"
    assert cond(s, "Ready")["status"] == "True"  # one master per family
    assert cond(s, "SplitBrain")["status"] == "False"


def test_leaving_node_is_shown() -> None:
    obj, p = placed(nodes=2)
    reports = {"node-1": report("node-1", row("MASTER")), "node-9": report("node-9", row("BACKUP"))}
    s = aggregate_status(obj, reports, NOW, placement=p)
    assert [n["name"] for n in s["nodes"]] == ["node-1", "node-2", "node-9"]
    assert "leaving" in s["nodes"][2]["reason"]


def test_conflict_is_not_ready() -> None:
    older = vip("old", vrid=9, created="2025-01-01T00:00:00Z")
    obj = vip("web", "192.168.77.101/24", vrid=9, created="2025-02-01T00:00:00Z")
    r = render([older, obj], edge_nodes(), {})
    s = aggregate_status(obj, {}, NOW, placement=r.placements[KEY], findings=r.findings(KEY))
    assert s["vrid"] is None
    assert (cond(s, "VRIDConflict")["status"], cond(s, "VRIDConflict")["reason"]) == (
        "True",
        "VRIDConflict",
    )
    assert cond(s, "Ready")["reason"] == "VRIDConflict"
    assert s["nodes"] == []


def test_address_conflict_is_not_ready_and_names_the_holder() -> None:
    holder = vip("web", namespace="tenant-a", created="2025-01-01T00:00:00Z")
    obj = vip("web", created="2025-02-01T00:00:00Z")
    r = render([holder, obj], edge_nodes(), {})
    s = aggregate_status(obj, {}, NOW, placement=r.placements[KEY], findings=r.findings(KEY))
    ready = cond(s, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "AddressConflict")
    assert "192.168.77.100 belongs to tenant-a/web" in ready["message"]
    assert (s["vrid"], s["nodes"]) == (None, [])
    assert cond(s, "VRIDConflict") | {"lastTransitionTime": ""} == {
        "type": "VRIDConflict", "status": "False", "reason": "NotChecked",
        "message": "not checked: refused (AddressConflict)", "lastTransitionTime": "",
    }  # fmt: skip
    (event,) = events({}, s)
    assert event == ("AddressConflict", "Warning", ready["message"])
    assert events(s, s) == []  # said once, on the edge


def test_invalid_spec_is_not_ready() -> None:
    obj = vip("web", priority=0)
    r = render([obj], edge_nodes(), {})
    s = aggregate_status(obj, {}, NOW, placement=None, findings=r.findings(KEY))
    assert (cond(s, "Ready")["status"], cond(s, "Ready")["reason"]) == ("False", "InvalidSpec")
    assert cond(s, "VRIDConflict")["reason"] == "NotChecked"


def test_excluded_nodes_degrade() -> None:
    obj, p = placed(nodes=2)
    excluded = [Finding(KEY, "NodeExcluded", "node node-3 is cordoned", "node-3")]
    reports = {"node-1": report("node-1", row("MASTER")), "node-2": report("node-2", row("BACKUP"))}
    s = aggregate_status(obj, reports, NOW, placement=p, findings=excluded)
    assert (cond(s, "Degraded")["status"], cond(s, "Degraded")["reason"]) == (
        "True",
        "NodesExcluded",
    )


def test_observed_generation() -> None:
    obj, p = placed()
    obj["metadata"]["generation"] = 4
    assert aggregate_status(obj, {}, NOW, placement=p)["observedGeneration"] == 4


# --- events --------------------------------------------------------------------------------


def status(
    master: str | None = None, nodes: list[dict[str, Any]] | None = None, **conditions: str
) -> dict[str, Any]:
    return {
        "master": master,
        "nodes": nodes or [],
        "conditions": [
            {"type": k, "status": v, "message": f"{k} message"} for k, v in conditions.items()
        ],
    }


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (status(), status(), []),
        (status(), status("node-1"), [("MasterChanged", "Normal", "node-1 is now MASTER")]),
        (
            status("node-1"),
            status("node-2"),
            [("MasterChanged", "Normal", "node-2 is now MASTER (was node-1)")],
        ),
        (
            status("node-1"),
            status(None),
            [("MasterChanged", "Warning", "no node is MASTER any more (was node-1)")],
        ),
        (status("node-1"), status("node-1"), []),
        (None, status(SplitBrain="True"), [("SplitBrain", "Warning", "SplitBrain message")]),
        (status(SplitBrain="True"), status(SplitBrain="True"), []),
        (
            status(VRIDConflict="False"),
            status(VRIDConflict="True"),
            [("VRIDConflict", "Warning", "VRIDConflict message")],
        ),
        (
            status(Advisory="False"),
            status(Advisory="True"),
            [("Advisory", "Warning", "Advisory message")],
        ),
        (status(Advisory="True"), status(Advisory="True"), []),
        (status(Advisory="True"), status(Advisory="False"), []),
        (
            status(nodes=[{"name": "node-1", "healthy": True}]),
            status(
                nodes=[
                    {
                        "name": "node-1",
                        "healthy": False,
                        "state": "BACKUP",
                        "reason": "probe x failed",
                    }
                ]
            ),
            [("ProbeFailed", "Warning", "node-1: probe x failed")],
        ),
        (
            status(nodes=[{"name": "node-1", "healthy": False, "state": "FAULT"}]),
            status(nodes=[{"name": "node-1", "healthy": False, "state": "FAULT"}]),
            [],
        ),
        (  # a pod going away is not a failing probe
            status(nodes=[{"name": "node-1", "healthy": True}]),
            status(nodes=[{"name": "node-1", "healthy": False, "state": "Unknown"}]),
            [],
        ),
    ],
)
def test_events(
    old: dict[str, Any] | None, new: dict[str, Any], expected: list[tuple[str, str, str]]
) -> None:
    assert events(old, new) == expected


def test_events_from_aggregated_statuses() -> None:
    obj, p = placed(nodes=2)
    up = {"node-1": report("node-1", row("MASTER")), "node-2": report("node-2", row("BACKUP"))}
    first = aggregate_status(obj, up, NOW, placement=p)
    obj["status"] = first
    moved = {
        "node-1": report("node-1", row("FAULT", reason="probe haproxy failed")),
        "node-2": report("node-2", row("MASTER")),
    }
    second = aggregate_status(obj, moved, NOW, placement=p)
    assert events(first, second) == [
        ("MasterChanged", "Normal", "node-2 is now MASTER (was node-1)"),
        ("ProbeFailed", "Warning", "node-1: probe haproxy failed"),
    ]


def test_status_patch() -> None:
    old = {"vrid": 3, "master": "a", "transitions": 1, "other": "kept"}
    new = {"vrid": None, "master": "b", "transitions": 1}
    assert status_patch(old, new) == {"vrid": None, "master": "b"}
    assert status_patch(new, new) == {}


# --- the Advisory condition ----------------------------------------------------------------


def test_advisory_condition_says_what_the_what_if_analysis_found() -> None:
    obj, p = placed()
    found = aggregate_status(obj, {}, NOW, placement=p, advisory=("ipv4: probe x never moves",))
    assert (cond(found, "Advisory")["status"], cond(found, "Advisory")["reason"]) == (
        "True",
        "WhatIfFindings",
    )
    assert cond(found, "Advisory")["message"] == "ipv4: probe x never moves"
    clean = aggregate_status(obj, {}, NOW, placement=p, advisory=())
    assert (cond(clean, "Advisory")["status"], cond(clean, "Advisory")["reason"]) == (
        "False",
        "NoFindings",
    )
    unknown = aggregate_status(obj, {}, NOW, placement=p)
    assert (cond(unknown, "Advisory")["status"], cond(unknown, "Advisory")["reason"]) == (
        "Unknown",
        "NotAnalysed",
    )


def test_advisory_speaks_again_when_its_findings_change() -> None:
    obj, p = placed()
    one = aggregate_status(obj, {}, NOW, placement=p, advisory=("ipv4: a",))
    assert [e[0] for e in events(None, one)] == ["Advisory"]
    assert [e for e in events(one, one) if e[0] == "Advisory"] == []
    two = aggregate_status({**obj, "status": one}, {}, NOW, placement=p, advisory=("ipv4: b",))
    assert ("Advisory", "Warning", "ipv4: b") in events(one, two)
    long = aggregate_status(obj, {}, NOW, placement=p, advisory=("x" * 5000,))
    (event,) = [e for e in events(None, long) if e[0] == "Advisory"]
    assert len(event[2]) <= 1024 and event[2].endswith("(kubectl describe shows the rest)")
    assert len(cond(long, "Advisory")["message"]) == 5000


def test_status_write_holds_a_lost_master_and_sends_nothing_twice() -> None:
    seen = {"master": "n1", "transitions": 1}
    new = {"master": None, "transitions": 1}
    # The master went from the reports 0.5 s ago: held back for the rest of REPORT_LAG_S.
    assert status_write(seen, None, new, written_age_s=0, lost_for_s=0.5, resync_s=60) == (
        {},
        1.5,
    )
    assert status_write(seen, None, new, written_age_s=0, lost_for_s=2.0, resync_s=60) == (
        {"master": None},
        None,
    )
    # Written already, the object behind: nothing again until a resync interval passed,
    # then what still disagrees is written again.
    written = {"master": "n2", "transitions": 2}
    assert status_write(seen, written, written, written_age_s=5, lost_for_s=None,
                        resync_s=60) == ({}, None)  # fmt: skip
    assert status_write(seen, written, written, written_age_s=61, lost_for_s=None,
                        resync_s=60) == ({"master": "n2", "transitions": 2}, None)  # fmt: skip
