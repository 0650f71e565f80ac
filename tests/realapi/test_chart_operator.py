"""The chart for real: helm install into a real API server, the operator as the chart's
ServiceAccount renders, updates and deletes a VirtualIP's objects and status with no request
refused; the daemon (`vrrpd run --kube`) as its ServiceAccount reads its ConfigMap and
reports on its pod, also with none refused."""

from __future__ import annotations

import base64
import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.envtest import ApiServer
from tests.realapi.cluster import (
    NAMESPACE,
    ROOT,
    Operator,
    Release,
    TestNodes,
    api_in_namespaces,
    daemon_objects,
    delete_virtualips,
    finish_pod_deletions,
    get_virtualip,
    script_command,
    set_pod_phase,
    virtualip,
    wait_for,
)


def rendered(config_map: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The VirtualIP documents of a daemon ConfigMap, by namespace/name."""
    docs = yaml.safe_load_all(config_map["data"]["virtualips.yaml"])
    return {f"{d['metadata']['namespace']}/{d['metadata']['name']}": d for d in docs}


def conditions(obj: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in ((obj or {}).get("status") or {}).get("conditions") or ()}


def test_helm_installs_the_chart_crds_included(kube_api: ApiServer, release: Release) -> None:
    for crd in ("virtualips.kubevrrp.io", "clusterkopfpeerings.kopf.dev"):
        kube_api.kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=30s")
    # kopf patches the peering object but never creates it: the chart must.
    kube_api.kubectl("get", "clusterkopfpeering", release.name)
    for kind, name in (
        ("serviceaccount", release.operator_service_account),
        ("serviceaccount", release.daemon_service_account),
        ("role", f"{release.name}-operator"),
        ("role", f"{release.name}-daemon"),
        ("deployment", f"{release.name}-operator"),
    ):
        kube_api.kubectl("get", kind, name, "-n", release.namespace)
    (container,) = release.deployment()["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["KUBEVRRP_PEERING"] == "mandatory"


def test_a_virtualip_renders_updates_and_deletes_with_nothing_forbidden(
    kube_api: ApiServer, release: Release, operator: Operator, nodes: TestNodes
) -> None:
    made = nodes(2, role="edge")
    vip = virtualip("web", nodes.selector, priority=100)
    kube_api.apply(vip)
    names = {f"vrrpd-{n}" for n in made}

    pods = wait_for(
        lambda: (p := daemon_objects(kube_api, "pods")) and names <= set(p) and p,
        "a daemon pod per selected node",
    )
    config_maps = daemon_objects(kube_api, "configmaps")
    assert names <= set(config_maps) and names <= set(daemon_objects(kube_api, "secrets"))
    for node in made:
        pod = pods[f"vrrpd-{node}"]
        assert pod["spec"]["nodeName"] == node
        assert pod["spec"]["serviceAccountName"] == release.daemon_service_account
        spec = rendered(config_maps[f"vrrpd-{node}"])["default/web"]["spec"]
        assert spec["addresses"] == ["192.168.77.100/24"]
        assert spec["nodePriorities"] == [{"nodeName": node, "priority": 100}]
    obj = wait_for(
        lambda: (
            (v := get_virtualip(kube_api, "default", "web"))
            and len((v.get("status") or {}).get("nodes") or ()) == 2
            and v
        ),
        "status with both nodes",
    )
    status = obj["status"]
    assert isinstance(status["vrid"], int) and status["observedGeneration"] == 1
    assert conditions(obj)["Ready"]["reason"] == "NoMaster"
    # No kubelet runs: the pods stay Pending, and status says so (not "stopping").
    assert {n["reason"] for n in status["nodes"]} == {"daemon pod is starting (phase Pending)"}
    assert "kubevrrp.io/finalizer" in obj["metadata"]["finalizers"]

    # An update reaches the ConfigMaps; the pods stay (the daemon reloads live).
    uids = {name: p["metadata"]["uid"] for name, p in pods.items() if name in names}
    kube_api.kubectl("patch", "vip", "web", "-n", "default", "--type=merge",
                     "-p", '{"spec": {"priority": 120}}')  # fmt: skip
    wait_for(
        lambda: all(
            rendered(c)["default/web"]["spec"]["nodePriorities"][0]["priority"] == 120
            for n, c in daemon_objects(kube_api, "configmaps").items()
            if n in names
        ),
        "priority 120 in every ConfigMap",
    )
    wait_for(
        lambda: (get_virtualip(kube_api, "default", "web") or {})
        .get("status", {}).get("observedGeneration") == 2,
        "observedGeneration 2",
    )  # fmt: skip
    now = daemon_objects(kube_api, "pods")
    assert {n: now[n]["metadata"]["uid"] for n in names} == uids

    # A delete takes the VIP off the nodes: pods first (their kubelet, here the test,
    # finishes the graceful deletion), then ConfigMaps and Secrets; the VirtualIP goes once
    # its finalizer ran.
    delete_virtualips(kube_api, "default", "web")

    def removed() -> bool:
        finish_pod_deletions(kube_api, NAMESPACE)
        kinds = ("pods", "configmaps", "secrets")
        return not any(names & set(daemon_objects(kube_api, k)) for k in kinds)

    wait_for(removed, "the daemon pods, ConfigMaps and Secrets deleted")
    assert kube_api.forbidden(release.operator_user) == []
    assert kube_api.audit(release.operator_user), "the audit log shows no operator request"


# --- the daemon as its ServiceAccount ---------------------------------------------------------


@pytest.fixture
def lab() -> Iterator[Any]:
    from vrrpd.lab.netns import Lab

    with Lab(1, prefix="kvra", unique=True) as made:
        yield made


def daemon_argv(
    pod: dict[str, Any], secrets_dir: Path, state_dir: Path
) -> tuple[list[str], dict[str, str]]:
    """The pod's command and environment as its kubelet would run them, with the volumes
    as directories: the Secret's files in `secrets_dir`, the hostPath in `state_dir`."""
    (container,) = pod["spec"]["containers"]
    fields = {
        "spec.nodeName": pod["spec"]["nodeName"],
        "metadata.name": pod["metadata"]["name"],
        "metadata.namespace": pod["metadata"]["namespace"],
    }
    env = {}
    for entry in container["env"]:
        ref = entry.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
        env[entry["name"]] = fields[ref] if ref else entry["value"]
    env["VRRPD_SECRETS_DIR"] = str(secrets_dir)
    env["VRRPD_STATE_DIR"] = str(state_dir)
    argv = [a.replace("$(NODE_NAME)", env["NODE_NAME"]) for a in container["command"]]
    return script_command(argv), env


@pytest.mark.root
def test_the_daemon_reads_its_configmap_and_reports_on_its_pod_with_nothing_forbidden(
    kube_api: ApiServer, release: Release, operator: Operator, nodes: TestNodes, lab: Any,
    tmp_path: Path,
) -> None:  # fmt: skip
    # The API node of lab node n1 (192.168.77.11 on its eth0).
    (node,) = nodes(1)
    kube_api.apply(virtualip("daemon", nodes.selector, advertInterval="100ms"))
    name = f"vrrpd-{node}"
    pod = wait_for(lambda: daemon_objects(kube_api, "pods").get(name), "the daemon pod")
    set_pod_phase(kube_api, NAMESPACE, name, "Running")  # the kubelet started its container
    secrets_dir = tmp_path / "secrets"  # the Secret volume, as the kubelet mounts it
    secrets_dir.mkdir()
    secret = daemon_objects(kube_api, "secrets")[name]
    for key, value in (secret.get("data") or {}).items():
        (secrets_dir / key).write_bytes(base64.b64decode(value))

    log_path = tmp_path / "vrrpd.log"
    with contextlib.ExitStack() as stack:
        api_url = stack.enter_context(api_in_namespaces(kube_api, lab))
        stack.callback(delete_virtualips, kube_api, "default", "daemon")
        argv, env = daemon_argv(pod, secrets_dir, tmp_path / "state")
        token = release.token_file(release.daemon_service_account)
        argv += [
            "--kube-api", api_url, "--kube-token-file", str(token),
            "--kube-ca-file", str(kube_api.ca_file),
        ]  # fmt: skip
        env |= {"PATH": os.environ["PATH"], "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT}/operator"}
        with log_path.open("wb") as log:
            daemon = lab.run(lab.nodes[0].netns, argv, env=env, stdout=log, stderr=log)

        def master_reported() -> bool:
            annotations = daemon_objects(kube_api, "pods")[name]["metadata"].get("annotations")
            report = json.loads((annotations or {}).get("kubevrrp.io/status") or "{}")
            return any(r["state"] == "MASTER" for r in report.get("instances") or ())

        try:
            wait_for(master_reported, f"MASTER in {name}'s report")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nvrrpd's log:\n{log_path.read_text()}") from None
        assert "192.168.77.100" in lab.addresses(1)
        vip = wait_for(
            lambda: (
                (v := get_virtualip(kube_api, "default", "daemon"))
                and (v.get("status") or {}).get("master") == node
                and v
            ),
            "status.master from the daemon's report",
        )
        assert conditions(vip)["Ready"]["status"] == "True"
        wait_for(
            lambda: "MasterChanged" in kube_api.kubectl(
                "get", "events", "-n", "default",
                "--field-selector", "involvedObject.name=daemon,reason=MasterChanged",
            ).stdout,
            "a MasterChanged Event",
        )  # fmt: skip
        daemon.terminate()
        assert daemon.wait(timeout=30) == 0
    requests = kube_api.audit(release.daemon_user)
    verbs = {(e["verb"], e["objectRef"]["resource"]) for e in requests if e.get("objectRef")}
    assert {("list", "configmaps"), ("watch", "configmaps"), ("patch", "pods")} <= verbs
    assert kube_api.forbidden(release.daemon_user) == []
