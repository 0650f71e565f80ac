"""The VirtualIP CRD on a real kube-apiserver: the authority the CEL emulator of
tests/unit/test_crd.py only imitates. Both copies (crds/ and the chart's) must be
accepted, which includes every `default` passing its own schema's rules, every example
must be created, and every object of the invalid table refused at the same field."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.envtest import ApiServer
from tests.unit.test_crd import (
    CLUSTER_EXAMPLES,
    INVALID,
    LEFT_TO_THE_MODEL,
    STANDALONE_EXAMPLES,
    documents,
    virtualip,
)
from vrrpd.spec.load import parse_virtualip

ROOT = Path(__file__).resolve().parents[2]
CRD_COPIES = [
    ROOT / "crds" / "virtualips.kubevrrp.io.yaml",
    ROOT / "charts" / "kube-vrrp" / "files" / "virtualips.kubevrrp.io.yaml",
]
GROUP, VERSION, PLURAL = "kubevrrp.io", "v1alpha1", "virtualips"
NS = "crd-tests"


@pytest.fixture(scope="module")
def api(kube_api: ApiServer) -> Iterator[client.CustomObjectsApi]:
    kube_api.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD_COPIES[0]))
    kube_api.kubectl(
        "wait", "--for=condition=Established", "crd/virtualips.kubevrrp.io", "--timeout=30s"
    )
    kube_api.namespace(NS)
    yield client.CustomObjectsApi(kube_api.client())


def create(api: client.CustomObjectsApi, obj: dict[str, Any], *, dry_run: bool = True) -> Any:
    body = json.loads(json.dumps(obj))
    body["metadata"].pop("namespace", None)
    return api.create_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, body,
        dry_run="All" if dry_run else None, field_validation="Strict",
    )  # fmt: skip


def refusal(api: client.CustomObjectsApi, obj: dict[str, Any]) -> str:
    with pytest.raises(ApiException) as caught:
        create(api, obj)
    assert caught.value.status == 422 or caught.value.status == 400, caught.value.body
    return str(json.loads(caught.value.body)["message"])


@pytest.mark.parametrize("path", CRD_COPIES, ids=["crds", "chart"])
def test_both_copies_are_accepted(kube_api: ApiServer, path: Path) -> None:
    # Server-side dry run of an update: the whole CRD is validated again, defaults included.
    kube_api.kubectl("apply", "--server-side", "--force-conflicts", "--dry-run=server",
                     "-f", str(path))  # fmt: skip


def test_crd_is_established_with_its_names(kube_api: ApiServer, api: Any) -> None:
    crd = json.loads(kube_api.kubectl("get", "crd", "virtualips.kubevrrp.io", "-o=json").stdout)
    conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conditions["Established"] == "True"
    assert conditions["NamesAccepted"] == "True"
    assert crd["status"]["acceptedNames"]["shortNames"] == ["vip"]


@pytest.mark.parametrize("doc", documents(STANDALONE_EXAMPLES + CLUSTER_EXAMPLES))
def test_example_is_created(api: client.CustomObjectsApi, doc: dict[str, Any]) -> None:
    created = create(api, doc)
    # What the API server stores (its defaults filled in) still means the same to the model.
    stored = parse_virtualip(created, standalone=False)
    original = parse_virtualip({**doc, "metadata": created["metadata"]}, standalone=False)
    assert stored == original


@pytest.mark.parametrize(
    ("obj", "path", "fragment"),
    [pytest.param(c[1], c[2], c[3], id=c[0]) for c in INVALID],
)
def test_invalid_object_is_refused(
    api: client.CustomObjectsApi, obj: dict[str, Any], path: str, fragment: str
) -> None:
    # The table's messages are the real server's: the emulator is held to them too.
    message = refusal(api, obj)
    assert path in message and fragment in message, message


@pytest.mark.parametrize("obj", [pytest.param(o, id=i) for i, o in LEFT_TO_THE_MODEL])
def test_left_to_the_model_is_accepted_by_the_server(
    api: client.CustomObjectsApi, obj: dict[str, Any]
) -> None:
    create(api, obj)


def test_defaults_fill_in_and_the_status_subresource_is_separate(
    kube_api: ApiServer, api: client.CustomObjectsApi
) -> None:
    obj = virtualip({"probes": [{"name": "haproxy", "tcp": {"port": 443}}]}, name="defaults")
    created = create(api, obj, dry_run=False)
    try:
        spec = created["spec"]
        assert spec["preempt"] == {"mode": "Always"}
        assert spec["version"] == 3
        assert spec["advertInterval"] == "1s"
        assert spec["probes"][0]["tcp"] == {"host": "127.0.0.1", "port": 443}
        assert created["metadata"]["generation"] == 1
        # Status goes through /status only: a status in a spec update is dropped, and a
        # status write does not bump the generation.
        status = {"status": {"vrid": 51, "master": "node-a", "transitions": 1}}
        patched = api.patch_namespaced_custom_object_status(
            GROUP, VERSION, NS, PLURAL, "defaults", status
        )
        assert patched["status"]["master"] == "node-a"
        assert patched["metadata"]["generation"] == 1
        changed = api.patch_namespaced_custom_object(
            GROUP, VERSION, NS, PLURAL, "defaults",
            {"spec": {"priority": 120}, "status": {"master": "node-b"}},
        )  # fmt: skip
        assert changed["metadata"]["generation"] == 2
        assert changed["status"]["master"] == "node-a"
        # The printer columns kubectl shows.
        table = kube_api.kubectl("get", "vip", "-n", NS, "defaults").stdout.splitlines()
        assert table[0].split() == ["NAME", "VIP", "VRID", "MASTER", "READY", "AGE"]
        assert table[1].split()[:4] == ["defaults", "192.168.77.100/24", "51", "node-a"]
    finally:
        api.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "defaults")


def test_kubectl_explain_teaches_the_fields(kube_api: ApiServer, api: Any) -> None:
    text = kube_api.kubectl("explain", "virtualip.spec.preempt").stdout
    assert "Preempt_Mode" in text
    assert "mode" in text and "delay" in text


def test_status_as_the_operator_writes_it_is_accepted(
    api: client.CustomObjectsApi,
) -> None:
    obj = virtualip(name="status-shape")
    create(api, obj, dry_run=False)
    try:
        status = yaml.safe_load(
            """
            vrid: 51
            master: node-a
            nodes:
              - {name: node-a, state: MASTER, basePriority: 150, effectivePriority: 150,
                 healthy: true, since: "2026-01-02T03:04:05Z", reason: ""}
              - {name: node-b, state: BACKUP, basePriority: 100, effectivePriority: 40}
            conditions:
              - {type: Ready, status: "True", observedGeneration: 1, reason: MasterElected,
                 lastTransitionTime: "2026-01-02T03:04:05Z", message: node-a holds it}
            transitions: 7
            observedGeneration: 1
            """
        )
        api.patch_namespaced_custom_object_status(
            GROUP, VERSION, NS, PLURAL, "status-shape", {"status": status}
        )
        status["nodes"][1]["name"] = "node-a"
        with pytest.raises(ApiException) as caught:
            api.patch_namespaced_custom_object_status(
                GROUP, VERSION, NS, PLURAL, "status-shape", {"status": status}
            )
        assert "Duplicate value" in json.loads(caught.value.body)["message"]
    finally:
        api.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "status-shape")


def test_the_audit_log_names_each_client_and_its_refusals(kube_api: ApiServer, api: Any) -> None:
    # The tier counts requests and 403s per identity from the server's audit log.
    kube_api.kubectl("create", "serviceaccount", "nobody", "-n", NS)
    token = kube_api.token(NS, "nobody")
    kubeconfig = kube_api.kubeconfig_for_token(token, "nobody")
    result = kube_api.kubectl("get", "vip", "-n", NS, kubeconfig=kubeconfig, check=False)
    assert result.returncode != 0
    user = f"system:serviceaccount:{NS}:nobody"
    uri = f"/apis/kubevrrp.io/v1alpha1/namespaces/{NS}/virtualips?limit=500"
    assert kube_api.forbidden(user) == [f"list {uri}"]
