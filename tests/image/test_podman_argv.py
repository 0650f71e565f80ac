"""run_argv, the pure translation of a Pod into `podman run` (no podman needed)."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest
from vrrp_operator.manifests import DaemonSettings, pod
from vrrp_operator.render import NodeConfig

from tests.image.podman import PodSpecError, expand, quantity, run_argv

FIELDS = {"spec.nodeName": "n1", "metadata.name": "vrrpd-n1", "metadata.namespace": "kube-vrrp"}
DIRS = {"state": "/srv/n1/state", "secrets": "/srv/n1/secrets"}


def daemon_pod() -> dict[str, Any]:
    return pod(NodeConfig(node="n1", documents=(), advert_intervals_cs=(100,)), DaemonSettings())


def flags(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == flag]


def test_the_daemon_pod_becomes_its_podman_command_line() -> None:
    argv = run_argv(daemon_pod(), name="c1", network="ns:/run/netns/kv-n1",
                    fields=FIELDS, volume_dirs=DIRS)  # fmt: skip
    assert argv[:6] == ["podman", "run", "--name", "c1", "--network", "ns:/run/netns/kv-n1"]
    assert flags(argv, "--hostname") == ["n1"]  # hostNetwork: the node's name
    assert flags(argv, "--user") == ["0"]
    assert flags(argv, "--cap-drop") == ["ALL"]
    assert flags(argv, "--cap-add") == ["NET_ADMIN", "NET_RAW"]
    assert flags(argv, "--security-opt") == ["no-new-privileges"]
    assert "--read-only" in argv and "--read-only-tmpfs=false" in argv
    assert "--privileged" not in argv
    assert flags(argv, "--memory") == [str(192 * 2**20)]
    assert flags(argv, "--tmpfs") == [f"/tmp:rw,mode=1777,size={16 * 2**20}"]
    assert flags(argv, "--volume") == [
        "/srv/n1/state:/var/lib/kube-vrrp",
        "/srv/n1/secrets:/etc/kube-vrrp/secrets:ro",
    ]
    assert flags(argv, "--stop-timeout") == ["10"]
    assert flags(argv, "--pull") == ["missing"]
    env = dict(e.split("=", 1) for e in flags(argv, "--env"))
    assert env["NODE_NAME"] == "n1" and env["POD_NAMESPACE"] == "kube-vrrp"
    assert env["VRRPD_LOG_FORMAT"] == "json"
    assert json.loads(flags(argv, "--entrypoint")[0]) == ["vrrpd", "run", "--kube", "--node", "n1"]
    assert argv[-1] == "kube-vrrp/vrrpd:0.1.0"  # no args: nothing after the image


def test_image_service_account_and_cluster_env() -> None:
    argv = run_argv(
        daemon_pod(), name="c", network="host", image="localhost/x:1", fields=FIELDS,
        volume_dirs=DIRS, service_account_dir="/srv/sa",
        cluster_env={"KUBERNETES_SERVICE_HOST": "127.0.0.1", "NODE_NAME": "overridden"},
    )  # fmt: skip
    assert argv[-1] == "localhost/x:1"
    assert "/srv/sa:/var/run/secrets/kubernetes.io/serviceaccount:ro" in flags(argv, "--volume")
    env = dict(e.split("=", 1) for e in flags(argv, "--env"))
    assert env["KUBERNETES_SERVICE_HOST"] == "127.0.0.1"
    assert env["NODE_NAME"] == "n1"  # the container's own env wins


def test_pod_and_container_security_contexts_merge() -> None:
    spec = {
        "securityContext": {"runAsUser": 65532, "runAsGroup": 65532, "runAsNonRoot": True},
        "containers": [
            {"name": "c", "image": "i", "args": ["a", "$(X)"], "env": [{"name": "X", "value": "x"}],
             "securityContext": {"runAsGroup": 7, "capabilities": {"drop": ["ALL"]}}},
        ],
    }  # fmt: skip
    argv = run_argv({"spec": spec}, name="c", network="host")
    assert flags(argv, "--user") == ["65532:7"]
    assert flags(argv, "--cap-add") == []
    assert "--entrypoint" not in argv  # args alone replace the image's CMD
    assert argv[-3:] == ["i", "a", "x"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p["spec"].update(initContainers=[]), "spec: initContainers not supported"),
        (lambda p: p["spec"]["containers"].append({}), "2 containers"),
        (
            lambda p: p["spec"]["containers"][0]["env"].append(
                {"name": "S", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}
            ),
            "env[8] (S): only value and valueFrom.fieldRef",
        ),
        (
            lambda p: p["spec"]["containers"][0]["volumeMounts"][0].update(subPath="x"),
            "volumeMounts[0] (state): subPath not supported",
        ),
        (
            lambda p: p["spec"]["containers"][0]["securityContext"].update(
                seccompProfile={"type": "Localhost"}
            ),
            "seccompProfile.type: Localhost",
        ),
        (
            lambda p: p["spec"]["containers"][0]["securityContext"].update(runAsNonRoot=True),
            "runAsNonRoot: the container would run as 0",
        ),
        (
            lambda p: p["spec"]["containers"][0].update(imagePullPolicy="Sometimes"),
            "imagePullPolicy: 'Sometimes'",
        ),
    ],
)
def test_what_cannot_be_honoured_is_refused_by_name(change: Any, message: str) -> None:
    changed = copy.deepcopy(daemon_pod())
    change(changed)
    with pytest.raises(PodSpecError, match=re.escape(message)):
        run_argv(changed, name="c", network="host", fields=FIELDS, volume_dirs=DIRS)


def test_missing_inputs_are_named() -> None:
    with pytest.raises(PodSpecError, match=r"fieldRef spec.nodeName has no value"):
        run_argv(daemon_pod(), name="c", network="host", volume_dirs=DIRS)
    with pytest.raises(PodSpecError, match=r"\(secrets\): a secret volume needs a host directory"):
        run_argv(daemon_pod(), name="c", network="host", fields=FIELDS,
                 volume_dirs={"state": "/s"})  # fmt: skip
    operator = {"spec": {"securityContext": {"runAsNonRoot": True},
                         "containers": [{"name": "o", "image": "i"}]}}  # fmt: skip
    with pytest.raises(PodSpecError, match="would run as 'root'"):
        run_argv(operator, name="c", network="host", image_user="")
    assert "--user" not in run_argv(operator, name="c", network="host", image_user="65532:65532")


def test_variable_references_and_quantities() -> None:
    env = {"A": "1", "B": "two"}
    assert expand("$(A)-$(B)", env) == "1-two"
    assert expand("$$(A) $(C)", env) == "$(A) $(C)"  # escaped; undefined kept as written
    assert quantity("16Mi", "f") == 16 * 2**20
    assert quantity("500m", "f") == 0.5
    assert quantity(1e9, "f") == 1e9
    with pytest.raises(PodSpecError, match="f: '16 MB' is not a quantity"):
        quantity("16 MB", "f")
