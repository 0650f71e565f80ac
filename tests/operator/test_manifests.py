"""manifests: the daemon pod's exact security context, probes, grace period, names and hashes."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from vrrp_operator.manifests import (
    GRACE_MIN_S,
    DaemonSettings,
    grace_period_s,
    manifests,
)
from vrrp_operator.objects import (
    ANNOTATION_CONFIG_HASH,
    ANNOTATION_TEMPLATE_HASH,
    LABEL_NODE,
    Toleration,
    node_label_value,
)
from vrrp_operator.render import CONFIG_KEY, NodeConfig, render

from tests.operator.builders import node, vip


def config_for(
    *vips: dict[str, Any], uid: str | None = "uid-1", name: str = "node-1"
) -> NodeConfig:
    r = render(list(vips), [node(name, "192.168.77.11", uid=uid)], {})
    return r.nodes[name]


def objs(
    config: NodeConfig, **settings: Any
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    cm, secret, pod = manifests(config, DaemonSettings(**settings))
    return cm, secret, pod


def container(pod: dict[str, Any]) -> dict[str, Any]:
    (c,) = pod["spec"]["containers"]
    return dict(c)


def test_kinds_names_and_namespace() -> None:
    cm, secret, pod = objs(config_for(vip("web")), namespace="vrrp-system")
    assert [o["kind"] for o in (cm, secret, pod)] == ["ConfigMap", "Secret", "Pod"]
    assert {o["metadata"]["name"] for o in (cm, secret, pod)} == {"vrrpd-node-1"}
    assert {o["metadata"]["namespace"] for o in (cm, secret, pod)} == {"vrrp-system"}


def test_security_context_is_exactly_net_admin_and_net_raw() -> None:
    _, _, pod = objs(config_for(vip("web")))
    assert container(pod)["securityContext"] == {
        "capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN", "NET_RAW"]},
        "privileged": False,
        "runAsUser": 0,  # the image defaults to the operator's non-root user
        "runAsNonRoot": False,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
    }
    assert pod["spec"]["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}


def test_pod_runs_on_its_node_on_the_host_network() -> None:
    _, _, pod = objs(config_for(vip("web")))
    spec = pod["spec"]
    assert spec["nodeName"] == "node-1"
    assert spec["hostNetwork"] is True
    assert spec["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert container(pod)["command"] == ["vrrpd", "run", "--kube", "--node", "$(NODE_NAME)"]
    env = {e["name"]: e for e in container(pod)["env"]}
    assert env["NODE_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    assert env["VRRPD_CONFIGMAP"]["value"] == "vrrpd-node-1"


def test_probes_use_the_daemon_http_port() -> None:
    _, _, pod = objs(config_for(vip("web")), http_port=9999)
    c = container(pod)
    assert c["ports"] == [{"name": "http", "containerPort": 9999, "protocol": "TCP"}]
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["VRRPD_HTTP_PORT"] == "9999"


def test_volumes_state_on_the_host_secret_read_only() -> None:
    _, _, pod = objs(config_for(vip("web")))
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["state"]["hostPath"] == {
        "path": "/var/lib/kube-vrrp",
        "type": "DirectoryOrCreate",
    }
    assert volumes["secrets"]["secret"]["secretName"] == "vrrpd-node-1"
    mounts = {m["name"]: m for m in container(pod)["volumeMounts"]}
    assert mounts["secrets"]["readOnly"] is True
    assert mounts["state"]["mountPath"] == "/var/lib/kube-vrrp"


@pytest.mark.parametrize(
    ("intervals_cs", "expected"),
    [
        ((), GRACE_MIN_S),
        ((100,), 10),  # 3 x 1 s + 1 s + 5 s margin = 9 s -> the 10 s floor
        ((10, 100), 10),
        ((300,), 15),  # 3 x 3 s + 1 + 5
        ((1000,), 36),
        ((4095,), 129),  # v3 maximum 40.95 s: 122.85 + 1 = 123.85 -> 124, + 5
        ((25500,), 771),  # v2 maximum 255 s
    ],
)
def test_grace_period_covers_the_handover(intervals_cs: tuple[int, ...], expected: int) -> None:
    assert grace_period_s(intervals_cs) == expected
    assert all(grace_period_s(intervals_cs) >= (3 * cs + 100) / 100 for cs in intervals_cs)


def test_grace_period_follows_the_slowest_instance() -> None:
    config = config_for(
        vip("fast", "192.168.77.101/24", advertInterval="100ms"),
        vip("slow", "192.168.77.102/24", advertInterval="10s"),
    )
    _, _, pod = objs(config)
    assert pod["spec"]["terminationGracePeriodSeconds"] == 36


def test_labels_and_owner() -> None:
    cm, secret, pod = objs(config_for(vip("web"), uid="1234"))
    for o in (cm, secret, pod):
        assert o["metadata"]["labels"] == {
            "app.kubernetes.io/name": "kube-vrrp",
            "app.kubernetes.io/component": "daemon",
            "app.kubernetes.io/managed-by": "kube-vrrp-operator",
            "kubevrrp.io/node": "node-1",
        }
        assert o["metadata"]["ownerReferences"] == [
            {
                "apiVersion": "v1",
                "kind": "Node",
                "name": "node-1",
                "uid": "1234",
                "controller": True,
                "blockOwnerDeletion": False,
            }
        ]


def test_no_owner_without_a_node_uid() -> None:
    for o in objs(config_for(vip("web"), uid=None)):
        assert "ownerReferences" not in o["metadata"]


def test_long_node_names_give_valid_names_and_labels() -> None:
    long = "n" * 60 + "." + "x" * 190
    _, _, pod = objs(config_for(vip("web"), name=long))
    assert len(pod["metadata"]["name"]) <= 253
    value = pod["metadata"]["labels"][LABEL_NODE]
    assert len(value) <= 63 and value == node_label_value(long)
    assert pod["spec"]["nodeName"] == long


def test_config_change_keeps_the_pod_template() -> None:
    one = config_for(vip("web"))
    two = config_for(vip("web"), vip("api", "192.168.77.101/24", priority=150))
    cm1, _, pod1 = objs(one)
    cm2, _, pod2 = objs(two)
    assert (
        cm1["metadata"]["annotations"][ANNOTATION_CONFIG_HASH]
        != cm2["metadata"]["annotations"][ANNOTATION_CONFIG_HASH]
    )
    assert pod1 == pod2  # the daemon reloads the ConfigMap live: no pod replacement


@pytest.mark.parametrize(
    "change",
    [
        {"image": "kube-vrrp/vrrpd:0.2.0"},
        {"image_pull_policy": "Always"},
        {"http_port": 9000},
        {"priority_class_name": "system-node-critical"},
        {"tolerations": (Toleration("dedicated", "Exists"),)},
        {"resources": {"requests": {"cpu": "50m"}}},
    ],
)
def test_settings_change_the_pod_template(change: dict[str, Any]) -> None:
    config = config_for(vip("web"))
    _, _, before = objs(config)
    _, _, after = objs(config, **change)
    assert (
        before["metadata"]["annotations"][ANNOTATION_TEMPLATE_HASH]
        != after["metadata"]["annotations"][ANNOTATION_TEMPLATE_HASH]
    )


def test_grace_period_is_outside_the_template_hash() -> None:
    _, _, fast = objs(config_for(vip("web", advertInterval="1s")))
    _, _, slow = objs(config_for(vip("web", advertInterval="20s")))
    assert (
        fast["spec"]["terminationGracePeriodSeconds"]
        != slow["spec"]["terminationGracePeriodSeconds"]
    )
    assert fast["metadata"]["annotations"] == slow["metadata"]["annotations"]


def test_settings_reach_the_pod() -> None:
    _, _, pod = objs(
        config_for(vip("web")),
        priority_class_name="system-node-critical",
        tolerations=(
            Toleration("node-role.kubernetes.io/control-plane", "Exists", effect="NoSchedule"),
        ),
        image_pull_secrets=("regcred",),
        resources={"limits": {"memory": "64Mi"}},
    )
    spec = pod["spec"]
    assert spec["priorityClassName"] == "system-node-critical"
    assert {
        "key": "node-role.kubernetes.io/control-plane",
        "operator": "Exists",
        "effect": "NoSchedule",
    } in spec["tolerations"]
    assert {
        "key": "node.kubernetes.io/unreachable",
        "operator": "Exists",
        "effect": "NoExecute",
    } in spec["tolerations"]
    assert spec["imagePullSecrets"] == [{"name": "regcred"}]
    assert container(pod)["resources"] == {"limits": {"memory": "64Mi"}}


def test_configmap_and_secret_content() -> None:
    config = config_for(vip("legacy", version=2, authentication={"password": "pw"}))
    cm, secret, _ = objs(config)
    assert list(cm["data"]) == [CONFIG_KEY]
    assert cm["data"][CONFIG_KEY] == config.text
    assert cm["metadata"]["annotations"] == {ANNOTATION_CONFIG_HASH: config.config_hash}
    assert secret["type"] == "Opaque"
    assert {k: base64.b64decode(v).decode() for k, v in secret["data"].items()} == {
        "default__legacy": "pw"
    }
    assert "annotations" not in secret["metadata"]  # no hash of a password anywhere
