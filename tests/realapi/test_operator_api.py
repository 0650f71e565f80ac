"""What depends on the API server's real behaviour, through the operator's own code (kopf,
vrrp_operator.kube and handlers) running as the chart's ServiceAccount: label selectors, the
status subresource, finalizers, ownerReferences, resourceVersion conflicts, field managers,
Events, and pods that stay Pending or terminating without a kubelet. After every test the
audit log shows no request of the operator (or of the daemon, whose reports the tests write
with its ServiceAccount's token) refused."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.envtest import ApiServer
from tests.realapi.cluster import (
    NAMESPACE,
    Operator,
    Release,
    TestNodes,
    admin,
    daemon_objects,
    delete_virtualips,
    finish_pod_deletions,
    get_virtualip,
    report,
    row,
    set_pod_phase,
    virtualip,
    wait_for,
)

FINALIZER = "kubevrrp.io/finalizer"


@pytest.fixture(autouse=True)
def nothing_forbidden(kube_api: ApiServer, release: Release, operator: Operator) -> Iterator[None]:
    yield
    assert kube_api.forbidden(release.operator_user) == []
    assert kube_api.forbidden(release.daemon_user) == []  # the reports tests write as it


@pytest.fixture(scope="module")
def daemon_kubeconfig(release: Release) -> Any:
    return release.kubeconfig(release.daemon_service_account)


def selecting(nodes: TestNodes, **selector: Any) -> dict[str, Any]:
    """A nodeSelector: this test's nodes, and `selector` (matchLabels, matchExpressions)."""
    labels = {**nodes.selector["matchLabels"], **selector.get("matchLabels", {})}
    return {**selector, "matchLabels": labels}


def carried_by(api: ApiServer, key: str) -> set[str]:
    """The nodes whose daemon ConfigMap holds VirtualIP `key` (namespace/name)."""
    out = set()
    for cm in daemon_objects(api, "configmaps").values():
        docs = yaml.safe_load_all(cm["data"]["virtualips.yaml"])
        if any(f"{d['metadata']['namespace']}/{d['metadata']['name']}" == key for d in docs):
            out.add(cm["metadata"]["name"].removeprefix("vrrpd-"))
    return out


def status(api: ApiServer, name: str) -> dict[str, Any]:
    return ((get_virtualip(api, "default", name) or {}).get("status")) or {}


def node_entry(api: ApiServer, name: str, node: str) -> dict[str, Any]:
    return next((n for n in status(api, name).get("nodes") or () if n["name"] == node), {})


# --- label selectors ----------------------------------------------------------------------------

SELECTORS = {
    "match-labels": {"matchLabels": {"role": "edge"}},
    "in": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]},
    "not-in": {"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]},
    "exists": {"matchExpressions": [{"key": "zone", "operator": "Exists"}]},
    "does-not-exist": {"matchExpressions": [{"key": "zone", "operator": "DoesNotExist"}]},
    "mixed": {
        "matchLabels": {"role": "worker"},
        "matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}],
    },
}


def label_selector(selector: dict[str, Any]) -> str:
    """The selector in kubectl's -l syntax, which the API server evaluates itself."""
    terms = [f"{k}={v}" for k, v in selector.get("matchLabels", {}).items()]
    for e in selector.get("matchExpressions", ()):
        op, key, values = e["operator"], e["key"], ",".join(e.get("values", ()))
        terms.append({"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})",
                      "Exists": key, "DoesNotExist": f"!{key}"}[op])  # fmt: skip
    return ",".join(terms)


def test_node_selection_agrees_with_the_api_servers_label_selectors(
    kube_api: ApiServer, nodes: TestNodes
) -> None:
    made = list(nodes(1, role="edge", zone="a"))
    made += nodes(1, 2, role="edge", zone="b")
    made += nodes(1, 3, role="worker", zone="a")
    made += nodes(1, 4, role="worker")
    made += nodes(1, 5)
    vips = {name: selecting(nodes, **selector) for name, selector in SELECTORS.items()}
    kube_api.apply([
        virtualip(f"sel-{name}", selector, addresses=[f"192.168.77.{101 + i}/24"])
        for i, (name, selector) in enumerate(vips.items())
    ])  # fmt: skip

    def agree() -> bool:
        for name, selector in vips.items():
            result = kube_api.kubectl("get", "nodes", "-l", label_selector(selector), "-o", "name")
            expected = {line.removeprefix("node/") for line in result.stdout.split()}
            if carried_by(kube_api, f"default/sel-{name}") != expected:
                return False
        return True

    try:
        wait_for(agree, "every VirtualIP on exactly the nodes the API server selects")
        assert carried_by(kube_api, "default/sel-not-in") == {made[1], made[3], made[4]}
        # A node relabelled: the selections follow.
        kube_api.kubectl("label", "node", made[3], "zone=a")
        wait_for(lambda: made[3] in carried_by(kube_api, "default/sel-in"), "relabelled node in")
        wait_for(agree, "every selection again as the API server's after a relabel")
        assert made[3] not in carried_by(kube_api, "default/sel-does-not-exist")
    finally:
        delete_virtualips(kube_api, "default", *(f"sel-{n}" for n in vips))


# --- the status subresource ---------------------------------------------------------------------


def test_status_goes_through_its_subresource_and_never_bumps_the_generation(
    kube_api: ApiServer, release: Release, nodes: TestNodes
) -> None:
    nodes(1)
    kube_api.apply(virtualip("sub", nodes.selector))
    try:
        wait_for(lambda: status(kube_api, "sub").get("observedGeneration") == 1, "status")
        time.sleep(5)  # room for any further status write
        obj = get_virtualip(kube_api, "default", "sub")
        assert obj is not None and obj["metadata"]["generation"] == 1
        writes = [
            e for e in kube_api.audit(release.operator_user)
            if (e.get("objectRef") or {}).get("name") == "sub" and e["verb"] == "patch"
        ]  # fmt: skip
        assert any(e["objectRef"].get("subresource") == "status" for e in writes)
        # A status written into the main resource would be dropped silently by the server;
        # the operator's main-resource writes are its finalizer and annotations only.
        managed = {
            (m["manager"], m.get("subresource", "")): set(m["fieldsV1"])
            for m in obj["metadata"]["managedFields"]
        }
        for (manager, subresource), fields in managed.items():
            if manager in ("kube-vrrp-operator", "kopf") and not subresource:
                assert fields <= {"f:metadata"}, (manager, fields)
    finally:
        delete_virtualips(kube_api, "default", "sub")


# --- finalizers -----------------------------------------------------------------------------------


def test_the_finalizer_holds_a_delete_until_the_daemons_dropped_the_vip(
    kube_api: ApiServer, nodes: TestNodes, daemon_kubeconfig: Any
) -> None:
    (node,) = nodes(1)
    # Two VirtualIPs on the node, so deleting one leaves its daemon pod running.
    kube_api.apply([
        virtualip("stays", nodes.selector, addresses=["192.168.77.110/24"]),
        virtualip("goes", nodes.selector, addresses=["192.168.77.111/24"]),
    ])  # fmt: skip
    try:
        wait_for(lambda: daemon_objects(kube_api, "pods").get(f"vrrpd-{node}"), "the pod")
        set_pod_phase(kube_api, NAMESPACE, f"vrrpd-{node}", "Running")
        vrids = {n: wait_for(lambda n=n: status(kube_api, n).get("vrid"), "vrid")
                 for n in ("stays", "goes")}  # fmt: skip
        rows = [row(f"default/{n}", "MASTER", vrid=v) for n, v in vrids.items()]
        report(kube_api, daemon_kubeconfig, node, rows)
        obj = get_virtualip(kube_api, "default", "goes")
        assert obj is not None and FINALIZER in obj["metadata"]["finalizers"]

        kube_api.kubectl("delete", "vip", "goes", "-n", "default", "--wait=false")
        wait_for(lambda: node not in carried_by(kube_api, "default/goes"), "ConfigMap without it")
        time.sleep(3)  # the daemon still reports it: the object stays, marked for deletion
        held = get_virtualip(kube_api, "default", "goes")
        assert held is not None and held["metadata"].get("deletionTimestamp")
        assert held["metadata"]["finalizers"] == [FINALIZER]
        # The daemon applied the new ConfigMap: the VIP is gone from the node.
        report(kube_api, daemon_kubeconfig, node, rows[:1])
        wait_for(lambda: get_virtualip(kube_api, "default", "goes") is None, "delete finished")
        assert node in carried_by(kube_api, "default/stays")
    finally:
        delete_virtualips(kube_api, "default", "stays", "goes")


# --- ownerReferences ----------------------------------------------------------------------------


def test_daemon_objects_are_owned_by_their_node_and_go_with_it(
    kube_api: ApiServer, nodes: TestNodes
) -> None:
    (node,) = nodes(1)
    uid = json.loads(kube_api.kubectl("get", "node", node, "-o", "json").stdout)["metadata"]["uid"]
    kube_api.apply(virtualip("owned", nodes.selector))
    name = f"vrrpd-{node}"
    try:
        wait_for(lambda: name in daemon_objects(kube_api, "pods"), "the pod")
        for kind in ("configmaps", "secrets", "pods"):
            (owner,) = daemon_objects(kube_api, kind)[name]["metadata"]["ownerReferences"]
            assert owner == {"apiVersion": "v1", "kind": "Node", "name": node, "uid": uid,
                             "controller": True, "blockOwnerDeletion": False}  # fmt: skip
        # No garbage collector runs here: the operator itself removes a gone node's objects.
        nodes.delete()
        assert not {name} & set(daemon_objects(kube_api, "configmaps"))
    finally:
        delete_virtualips(kube_api, "default", "owned")


# --- resourceVersion conflicts ------------------------------------------------------------------


def test_concurrent_writes_conflict_and_the_operator_recovers(
    kube_api: ApiServer, release: Release, nodes: TestNodes
) -> None:
    """Another client writes the VirtualIP twenty times a second through its whole life
    (create, update, delete). kopf's finalizer patches are JSON patches guarded by a test of
    resourceVersion: some meet the server's 422 and kopf retries them; the operator's own
    merge patches carry no resourceVersion. Every cycle must still end in the right state;
    cycles repeat (at most six) until the audit log has shown a conflict."""
    (node,) = nodes(1)
    objects = client.CustomObjectsApi(admin(kube_api))
    stop = threading.Event()
    writes = [0]

    def other_writer() -> None:
        while not stop.is_set():
            with contextlib.suppress(ApiException):  # not created yet, or gone
                objects.patch_namespaced_custom_object(
                    "kubevrrp.io", "v1alpha1", "default", "virtualips", "busy",
                    {"metadata": {"labels": {"other-writer": str(writes[0])}}},
                )  # fmt: skip
                writes[0] += 1
            time.sleep(0.05)

    def answers() -> list[int]:
        return [
            e["responseStatus"]["code"] for e in kube_api.audit(release.operator_user)
            if (e.get("objectRef") or {}).get("name") == "busy"
        ]  # fmt: skip

    writer = threading.Thread(target=other_writer, daemon=True)
    writer.start()
    try:
        for priority in range(101, 107):
            kube_api.apply(virtualip("busy", nodes.selector, priority=priority))
            wait_for(
                lambda: FINALIZER in ((get_virtualip(kube_api, "default", "busy") or {})
                                      .get("metadata", {}).get("finalizers") or ()),
                "the finalizer added",
            )  # fmt: skip
            wait_for(lambda: node in carried_by(kube_api, "default/busy"), "rendered")
            kube_api.kubectl("patch", "vip", "busy", "-n", "default", "--type=merge",
                             "-p", '{"spec": {"priority": 140}}')  # fmt: skip
            wait_for(lambda: status(kube_api, "busy").get("observedGeneration") == 2, "update")
            delete_virtualips(kube_api, "default", "busy")
            if 422 in answers():
                break
    finally:
        stop.set()
        writer.join(timeout=5)
        delete_virtualips(kube_api, "default", "busy")
    assert writes[0] > 20
    assert 422 in answers(), f"no conflict in six cycles of {writes[0]} other writes"
    assert all(code < 500 for code in answers()), answers()


# --- field managers -------------------------------------------------------------------------------


def test_managed_fields_name_the_operator_and_a_users_apply_keeps_its_finalizer(
    kube_api: ApiServer, nodes: TestNodes
) -> None:
    (node,) = nodes(1)
    manifest = virtualip("owned-fields", nodes.selector, priority=100)
    kube_api.apply(manifest)  # server-side, field manager "kubectl"
    name = f"vrrpd-{node}"
    try:
        wait_for(lambda: name in daemon_objects(kube_api, "pods"), "the pod")
        for kind in ("configmaps", "secrets", "pods"):
            managers = {m["manager"] for m in daemon_objects(kube_api, kind)[name]["metadata"][
                "managedFields"]}  # fmt: skip
            assert managers == {"kube-vrrp-operator"}, (kind, managers)
        wait_for(lambda: status(kube_api, "owned-fields").get("vrid"), "status.vrid")
        # The user applies the manifest again, changed, without the finalizer it never
        # wrote: server-side apply leaves the operator's fields alone.
        manifest["spec"]["priority"] = 130
        kube_api.apply(manifest)
        obj = get_virtualip(kube_api, "default", "owned-fields")
        assert obj is not None and FINALIZER in obj["metadata"]["finalizers"]
        assert obj["spec"]["priority"] == 130 and obj["status"]["vrid"]
        # A user who applies a daemon ConfigMap meets the operator as its owner.
        takeover = {"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": name, "namespace": NAMESPACE},
                    "data": {"virtualips.yaml": "# mine\n"}}  # fmt: skip
        result = kube_api.kubectl("apply", "--server-side", "-f", "-", check=False,
                                  input=yaml.safe_dump(takeover))  # fmt: skip
        assert result.returncode != 0
        assert 'conflict with "kube-vrrp-operator"' in result.stderr, result.stderr
    finally:
        delete_virtualips(kube_api, "default", "owned-fields")


# --- Events ---------------------------------------------------------------------------------------


def events_of(api: ApiServer, name: str) -> list[dict[str, Any]]:
    result = api.kubectl("get", "events", "-n", "default", "-o", "json", "--field-selector",
                         f"involvedObject.kind=VirtualIP,involvedObject.name={name}")  # fmt: skip
    return list(json.loads(result.stdout)["items"])


def test_events_are_created_and_kubectl_reads_them(
    kube_api: ApiServer, nodes: TestNodes, daemon_kubeconfig: Any
) -> None:
    a, b = nodes(2)
    kube_api.apply(virtualip("events", nodes.selector))
    key = "default/events"
    try:
        for node in (a, b):
            wait_for(lambda n=node: daemon_objects(kube_api, "pods").get(f"vrrpd-{n}"), "pod")
            set_pod_phase(kube_api, NAMESPACE, f"vrrpd-{node}", "Running")
        vrid = wait_for(lambda: status(kube_api, "events").get("vrid"), "vrid")
        report(kube_api, daemon_kubeconfig, a, [row(key, "MASTER", vrid=vrid)])
        report(kube_api, daemon_kubeconfig, b, [row(key, "BACKUP", vrid=vrid)])
        wait_for(lambda: status(kube_api, "events").get("master") == a, "master a")
        # b's probe fails, then both claim MASTER for a minute: a split brain.
        report(
            kube_api,
            daemon_kubeconfig,
            b,
            [row(key, "BACKUP", vrid=vrid, healthy=False, reason="probe haproxy failed")],
        )
        wait_for(lambda: node_entry(kube_api, "events", b).get("healthy") is False, "b unhealthy")
        report(kube_api, daemon_kubeconfig, b, [row(key, "MASTER", vrid=vrid)])

        def reasons() -> set[str]:
            return {e["reason"] for e in events_of(kube_api, "events")}

        wait_for(lambda: {"MasterChanged", "ProbeFailed", "SplitBrain"} <= reasons(),
                 "MasterChanged, ProbeFailed and SplitBrain Events")  # fmt: skip
        seen = {(e["reason"], e["type"], e["message"]) for e in events_of(kube_api, "events")}
        assert ("MasterChanged", "Normal", f"{a} is now MASTER") in seen
        assert ("ProbeFailed", "Warning", f"{b}: probe haproxy failed") in seen
        assert any(r == "SplitBrain" and t == "Warning" and a in m for r, t, m in seen)
        sources = {e["source"].get("component") for e in events_of(kube_api, "events")}
        assert sources == {"kube-vrrp-operator"}
        # What a person types: the table, and describe's Events section.
        table = kube_api.kubectl(
            "get", "events", "-n", "default", "--field-selector", "involvedObject.name=events"
        ).stdout
        assert "MasterChanged" in table and "virtualip/events" in table
        described = kube_api.kubectl("describe", "vip", "events", "-n", "default").stdout
        assert "SplitBrain" in described and "kube-vrrp-operator" in described
    finally:
        delete_virtualips(kube_api, "default", "events")


# --- pods without a kubelet: Pending, terminating -----------------------------------------------


def test_status_reasons_follow_the_pod_phase(
    kube_api: ApiServer, nodes: TestNodes, daemon_kubeconfig: Any
) -> None:
    (node,) = nodes(1)
    kube_api.apply(virtualip("phases", nodes.selector))
    key = "default/phases"
    pod = f"vrrpd-{node}"
    try:
        wait_for(lambda: daemon_objects(kube_api, "pods").get(pod), "the pod")
        vrid = wait_for(lambda: status(kube_api, "phases").get("vrid"), "vrid")
        # The daemon reported before its kubelet marked the pod Running.
        report(kube_api, daemon_kubeconfig, node, [row(key, "BACKUP", vrid=vrid)])
        entry = wait_for(lambda: (e := node_entry(kube_api, "phases", node))
                         .get("state") == "BACKUP" and e, "BACKUP reported")  # fmt: skip
        assert entry["reason"] == "daemon pod is starting (phase Pending)"
        set_pod_phase(kube_api, NAMESPACE, pod, "Running")
        wait_for(lambda: "reason" not in node_entry(kube_api, "phases", node), "no reason")
        # Deleted: terminating until its kubelet lets it go; the operator recreates it after.
        uid = daemon_objects(kube_api, "pods")[pod]["metadata"]["uid"]
        kube_api.kubectl("delete", "pod", pod, "-n", NAMESPACE, "--wait=false")
        wait_for(lambda: node_entry(kube_api, "phases", node).get("reason")
                 == "daemon pod is stopping", "stopping")  # fmt: skip
        time.sleep(2)
        assert daemon_objects(kube_api, "pods")[pod]["metadata"]["uid"] == uid  # still going
        finish_pod_deletions(kube_api, NAMESPACE)
        new = wait_for(lambda: (p := daemon_objects(kube_api, "pods").get(pod))
                       and p["metadata"]["uid"] != uid and p, "a new pod")  # fmt: skip
        assert not new["metadata"].get("annotations", {}).get("kubevrrp.io/status")
        wait_for(lambda: node_entry(kube_api, "phases", node).get("reason")
                 == "daemon pod is starting (phase Pending)", "starting again")  # fmt: skip
    finally:
        delete_virtualips(kube_api, "default", "phases")


def test_a_master_that_hears_another_is_a_split_brain_without_a_second_report(
    kube_api: ApiServer, nodes: TestNodes, daemon_kubeconfig: Any
) -> None:
    """The daemon's own verdict (vrrpd.vrrp.splitbrain) in its report: the other node may
    still report BACKUP (its report lags, or its API connection is cut with its adverts)."""
    a, b = nodes(2)
    kube_api.apply(virtualip("heard", nodes.selector))
    key = "default/heard"
    try:
        for node in (a, b):
            wait_for(lambda n=node: daemon_objects(kube_api, "pods").get(f"vrrpd-{n}"), "pod")
            set_pod_phase(kube_api, NAMESPACE, f"vrrpd-{node}", "Running")
        vrid = wait_for(lambda: status(kube_api, "heard").get("vrid"), "vrid")
        report(kube_api, daemon_kubeconfig, a, [row(key, "MASTER", vrid=vrid)])
        report(kube_api, daemon_kubeconfig, b, [row(key, "BACKUP", vrid=vrid)])
        wait_for(lambda: status(kube_api, "heard").get("master") == a, "master a")
        heard = {"evidence": "announcement", "peer": "02:77:00:00:00:02",
                 "detail": "another master for this VRID: 02:77:00:00:00:02 announces "
                           "192.168.77.100"}  # fmt: skip
        started = time.monotonic()
        report(kube_api, daemon_kubeconfig, a, [{**row(key, "MASTER", vrid=vrid),
                                                 "splitBrain": heard}])  # fmt: skip

        def split() -> dict[str, Any]:
            conditions = status(kube_api, "heard").get("conditions") or ()
            return next((c for c in conditions if c["type"] == "SplitBrain"), {})

        wait_for(lambda: split().get("status") == "True", "SplitBrain True")
        print(f"report with splitBrain -> SplitBrain condition: {time.monotonic() - started:.2f} s")
        assert (
            f"{a} (MASTER) hears another master for this VRID: 02:77:00:00:00:02"
            in (split()["message"])
        )
        wait_for(lambda: any(e["reason"] == "SplitBrain" for e in events_of(kube_api, "heard")),
                 "SplitBrain Event")  # fmt: skip
        report(kube_api, daemon_kubeconfig, a, [row(key, "MASTER", vrid=vrid)])
        wait_for(lambda: split().get("status") == "False", "SplitBrain over")
    finally:
        delete_virtualips(kube_api, "default", "heard")
