"""Manifests: one node's configuration -> its ConfigMap, Secret and daemon Pod (pure).

All three are named vrrpd-<node> and live in the operator's namespace. The Pod carries a
hash of its own template (kubevrrp.io/template-hash): an image or settings change alters
it and the rollout replaces the pod; a VirtualIP change alters only the ConfigMap, which
the daemon reloads live, so no pod restarts for it. The grace period is outside the hash:
a pod whose grace is too short for a new, slower advert interval is replaced (rollout
decides), a longer one is kept.

Ownership: each object is owned by its Node (ownerReferences, when the Node's uid is
known), because it exists for that node, serves VirtualIPs of many namespaces (a namespaced
VirtualIP cannot own an object in another namespace) and must go when the node goes. The
operator deletes the objects of nodes that leave every selection itself (by label).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vrrp_operator.objects import (
    ANNOTATION_CONFIG_HASH,
    ANNOTATION_TEMPLATE_HASH,
    DAEMON_LABELS,
    DAEMON_TOLERATIONS,
    LABEL_MANAGED_BY,
    LABEL_NODE,
    Toleration,
    daemon_name,
    node_label_value,
)
from vrrp_operator.render import NodeConfig
from vrrpd.contract import CONFIG_KEY

CONTAINER = "vrrpd"
STATE_DIR = "/var/lib/kube-vrrp"  # hostPath: the last good configuration survives restarts
SECRETS_DIR = "/etc/kube-vrrp/secrets"  # the node's Secret, mounted read-only
GRACE_MIN_S = 10
GRACE_MARGIN_S = 5  # process exit, the last adverts leaving the socket, kubelet slack
MANAGED_BY = "kube-vrrp-operator"


@dataclass(frozen=True)
class DaemonSettings:
    """What the chart decides about daemon pods (operator settings, not VirtualIP fields)."""

    namespace: str = "kube-vrrp"
    image: str = "kube-vrrp/vrrpd:0.1.0"
    image_pull_policy: str = "IfNotPresent"
    image_pull_secrets: tuple[str, ...] = ()
    http_port: int = 9641  # /healthz /readyz /metrics /status, on the host network
    service_account: str = "kube-vrrp-daemon"
    priority_class_name: str | None = None  # e.g. system-node-critical
    tolerations: tuple[Toleration, ...] = ()  # added to the DaemonSet-style defaults
    resources: Mapping[str, Any] = field(
        default_factory=lambda: {
            "requests": {"cpu": "10m", "memory": "48Mi"},
            "limits": {"memory": "192Mi"},
        }
    )
    log_format: str = "json"


def grace_period_s(advert_intervals_cs: Sequence[int]) -> int:
    """terminationGracePeriodSeconds for a node: long enough for the priority-0 handover.

    On SIGTERM the daemon sends priority-0 adverts and waits until a backup has taken over;
    a backup that missed them takes over after Master_Down_Interval = 3 x advert + skew
    (skew < 1 s). Hence max(3 x advert + 1 s) over the node's instances, plus a margin,
    and at least GRACE_MIN_S.
    """
    need_cs = max((3 * cs + 100 for cs in advert_intervals_cs), default=0)
    return max(GRACE_MIN_S, math.ceil(need_cs / 100) + GRACE_MARGIN_S)


def labels(node: str) -> dict[str, str]:
    return {**DAEMON_LABELS, LABEL_MANAGED_BY: MANAGED_BY, LABEL_NODE: node_label_value(node)}


def _owner_references(config: NodeConfig) -> list[dict[str, Any]]:
    if not config.node_uid:
        return []
    return [
        {
            "apiVersion": "v1",
            "kind": "Node",
            "name": config.node,
            "uid": config.node_uid,
            # controller: kubectl drain evicts pods that have a controller and refuses (without
            # --force) those that have none; eviction is the graceful handover we want.
            "controller": True,
            # No blockOwnerDeletion: it would need the finalizers permission on Nodes.
            "blockOwnerDeletion": False,
        }
    ]


def _metadata(config: NodeConfig, settings: DaemonSettings) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": daemon_name(config.node),
        "namespace": settings.namespace,
        "labels": labels(config.node),
    }
    owners = _owner_references(config)
    if owners:
        meta["ownerReferences"] = owners
    return meta


def config_map(config: NodeConfig, settings: DaemonSettings) -> dict[str, Any]:
    meta = _metadata(config, settings)
    meta["annotations"] = {ANNOTATION_CONFIG_HASH: config.config_hash}
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta,
        "data": {CONFIG_KEY: config.text},
    }


def secret(config: NodeConfig, settings: DaemonSettings) -> dict[str, Any]:
    # No hash of the data anywhere readable: a hash of an 8-byte password is a password.
    data = {k: base64.b64encode(v.encode()).decode() for k, v in sorted(config.secret_data.items())}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": _metadata(config, settings),
        "data": data,
    }


def pod(config: NodeConfig, settings: DaemonSettings) -> dict[str, Any]:
    name = daemon_name(config.node)
    tolerations = [t.to_dict() for t in (*DAEMON_TOLERATIONS, *settings.tolerations)]
    env = [
        _field_env("NODE_NAME", "spec.nodeName"),
        _field_env("POD_NAME", "metadata.name"),
        _field_env("POD_NAMESPACE", "metadata.namespace"),
        {"name": "VRRPD_CONFIGMAP", "value": name},
        {"name": "VRRPD_HTTP_PORT", "value": str(settings.http_port)},
        {"name": "VRRPD_STATE_DIR", "value": STATE_DIR},
        {"name": "VRRPD_SECRETS_DIR", "value": SECRETS_DIR},
        {"name": "VRRPD_LOG_FORMAT", "value": settings.log_format},
    ]
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": settings.image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["vrrpd", "run", "--kube", "--node", "$(NODE_NAME)"],
        "env": env,
        "ports": [{"name": "http", "containerPort": settings.http_port, "protocol": "TCP"}],
        # Ready = this node is a healthy candidate (or, with spec.readiness Master, the holder).
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": "http"},
            "periodSeconds": 2,
            "timeoutSeconds": 1,
            "failureThreshold": 2,
        },
        # Liveness only asks "is the event loop alive": a failing probe restarts nothing else.
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": "http"},
            "initialDelaySeconds": 10,
            "periodSeconds": 10,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        },
        "resources": dict(settings.resources),
        # Raw sockets (VRRP, GARP/NA) need NET_RAW, addresses on interfaces need NET_ADMIN;
        # nothing else. Root inside the container (kernel capabilities are only effective for
        # uid 0 without ambient capabilities, which Kubernetes does not set).
        "securityContext": {
            "capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN", "NET_RAW"]},
            "privileged": False,
            # The image's default user is 65532 (the operator's); the daemon is root with
            # only the two capabilities above, the only way they take effect.
            "runAsUser": 0,
            "runAsNonRoot": False,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
        },
        "volumeMounts": [
            {"name": "state", "mountPath": STATE_DIR},
            {"name": "secrets", "mountPath": SECRETS_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    spec: dict[str, Any] = {
        "nodeName": config.node,  # placed by us, not the scheduler: one daemon per node
        "hostNetwork": True,  # VRRP and the VIPs live on the node's own interfaces
        "dnsPolicy": "ClusterFirstWithHostNet",
        "serviceAccountName": settings.service_account,
        "enableServiceLinks": False,
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": grace_period_s(config.advert_intervals_cs),
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "tolerations": tolerations,
        "containers": [container],
        "volumes": [
            {"name": "state", "hostPath": {"path": STATE_DIR, "type": "DirectoryOrCreate"}},
            {"name": "secrets", "secret": {"secretName": name, "defaultMode": 0o400}},
            {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
        ],
    }
    if settings.priority_class_name:
        spec["priorityClassName"] = settings.priority_class_name
    if settings.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": s} for s in settings.image_pull_secrets]
    meta = _metadata(config, settings)
    meta["annotations"] = {ANNOTATION_TEMPLATE_HASH: template_hash(spec)}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def template_hash(pod_spec: Mapping[str, Any]) -> str:
    """What replaces a pod when it changes: the spec without the grace period."""
    hashed = {k: v for k, v in pod_spec.items() if k != "terminationGracePeriodSeconds"}
    text = json.dumps(hashed, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _field_env(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def manifests(config: NodeConfig, settings: DaemonSettings) -> list[dict[str, Any]]:
    """[ConfigMap, Secret, Pod] for one node, in the order they must be created."""
    return [config_map(config, settings), secret(config, settings), pod(config, settings)]
