"""The control-plane VIP, rendered: a standalone VirtualIP file and the kubelet static Pod
that runs vrrpd from it on one control-plane node (pure: values in, documents out).

The choices, and why (docs/control-plane.md tells the user the same):

- Every node gets the same base priority (100 unless --priority says otherwise) and preempt
  Always. With equal priorities a backup never takes the VIP from a healthy master (RFC 5798
  §6.4.2: an advert with a priority >= ours is accepted), so the VIP moves only when its
  holder fails and never back when a node returns: each move resets every client's
  connection (kubelets' and controllers' watches), so a move that gains nothing is a cost.
  Preempt Always is what lets the probe move it: when the master's priority drops below the
  backups' they take over at once. Preempt Never would keep the VIP on a master whose API
  server is down for as long as its daemon advertises; Delay would hold the move back too.
- One probe: GET https://127.0.0.1:<port>/readyz, the local kube-apiserver's readiness,
  which is readable without credentials (the system:public-info-viewer ClusterRole). Its
  weight is 1 - priority: a failing node falls to priority 1, below every healthy node
  whatever the priorities are, and a cluster whose API servers all fail still has one node
  holding the VIP (a weight of 0 would put every node in FAULT: no VIP at all while the
  first API server starts, which kubeadm init needs it for).
- TLS verification is off for that probe: it goes to 127.0.0.1, which kubeadm's serving
  certificate does not name (its SANs are the node's name and address, the service IP and
  the control-plane endpoint), before kubeadm has written the CA it would be checked
  against; nothing is sent but the request and only the status code is used. The kubelet
  probes kube-apiserver the same way (its HTTPS probes do not verify).
- The Pod uses no API object (static pods cannot): hostNetwork, the same image as the
  cluster's daemons, only NET_ADMIN and NET_RAW, root without privileges (the capabilities
  take effect for uid 0 only), the VirtualIP file from a hostPath directory mounted at the
  same path (so an edit, or a new run of the command, reaches the daemon without a restart,
  and the command line reads the same on the host and in the container).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import yaml

from vrrpd.limits import IPAddress, IPInterface
from vrrpd.spec import API_VERSION, KIND
from vrrpd.spec.fields import format_duration_cs

# The image the chart runs the cluster daemons from (charts/kube-vrrp: image.repository and
# the chart's appVersion); tests/unit/test_controlplane_files.py keeps the two in step.
DEFAULT_IMAGE = "kube-vrrp/vrrpd:0.1.0"
DEFAULT_PRIORITY = 100
DEFAULT_ADVERT_CS = 20  # 200 ms: the VIP moves 0.6-0.7 s after its holder goes silent
DEFAULT_APISERVER_PORT = 6443
DEFAULT_HTTP_PORT = 9655  # vrrpd's own default: `vrrpd status` on the node needs no flag
DEFAULT_CONFIG_DIR = "/etc/kube-vrrp"
DEFAULT_MANIFESTS_DIR = "/etc/kubernetes/manifests"

NAME = "kube-vrrp-control-plane"  # the Pod; its mirror pod is NAME-<node> in kube-system
NAMESPACE = "kube-system"
VIRTUALIP_NAME = "control-plane"
CONFIG_FILE = "control-plane.yaml"
MANIFEST_FILE = f"{NAME}.yaml"
CONTAINER = "vrrpd"
PROBE_NAME = "kube-apiserver"
PROBE_INTERVAL_CS = 100  # one /readyz a second
PROBE_FALL = 2  # two failures in a row: one slow answer on a busy node moves nothing
PROBE_RISE = 2
FAILING_PRIORITY = 1  # where a node whose API server fails ends up
GRACE_MIN_S = 10  # as the operator's pods: the priority-0 handover, then a margin
GRACE_MARGIN_S = 5


@dataclass(frozen=True)
class ControlPlaneVip:
    """What `vrrpd control-plane` was told (and found) for this node."""

    vip: IPInterface
    interface: str
    node: str  # the name this node's daemon runs as (`vrrpd run --node`)
    vrid: int
    address: IPAddress | None = None  # this node's own address on `interface`; unicast only
    peers: tuple[IPAddress, ...] = ()  # the other control-plane nodes; empty: multicast
    priority: int = DEFAULT_PRIORITY
    advert_interval_cs: int = DEFAULT_ADVERT_CS
    apiserver_port: int = DEFAULT_APISERVER_PORT
    image: str = DEFAULT_IMAGE
    config_dir: str = DEFAULT_CONFIG_DIR
    http_port: int = DEFAULT_HTTP_PORT

    @property
    def unicast(self) -> bool:
        return bool(self.peers)

    @property
    def config_path(self) -> str:
        return f"{self.config_dir.rstrip('/')}/{CONFIG_FILE}"

    @property
    def probe_weight(self) -> int:
        return FAILING_PRIORITY - self.priority

    @property
    def command(self) -> list[str]:
        """The daemon's command line, in the container and on the host alike."""
        return [
            "vrrpd", "run",
            "--config", self.config_path,
            "--node", self.node,
            "--http-address", f"127.0.0.1:{self.http_port}",
        ]  # fmt: skip


def peer_name(address: IPAddress) -> str:
    """A node name for another control-plane node, made from its address (the file names
    nodes only to tell this node's own entry from the others')."""
    return "peer-" + str(address).replace(".", "-").replace(":", "-").strip("-")


def virtualip(cp: ControlPlaneVip) -> dict[str, Any]:
    """The VirtualIP this node's daemon runs (standalone: vrid and peers are explicit)."""
    spec: dict[str, Any] = {
        "addresses": [str(cp.vip)],
        "vrid": cp.vrid,
        "interface": cp.interface,
        "advertInterval": format_duration_cs(cp.advert_interval_cs),
        "priority": cp.priority,
        "preempt": {"mode": "Always"},
        "accept": True,  # the holder answers on the VIP itself: kube-apiserver listens there
    }
    if cp.unicast:
        spec["unicast"] = True
        own = [] if cp.address is None else [{"nodeName": cp.node, "address": str(cp.address)}]
        spec["peers"] = own + [{"nodeName": peer_name(p), "address": str(p)} for p in cp.peers]
    spec["probes"] = [
        {
            "name": PROBE_NAME,
            "http": {
                "scheme": "https",
                "host": "127.0.0.1",
                "port": cp.apiserver_port,
                "path": "/readyz",
                "insecureSkipVerify": True,
            },
            "interval": format_duration_cs(PROBE_INTERVAL_CS),
            "timeout": format_duration_cs(PROBE_INTERVAL_CS),
            "fall": PROBE_FALL,
            "rise": PROBE_RISE,
            "weight": cp.probe_weight,
        }
    ]
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": VIRTUALIP_NAME, "namespace": NAMESPACE},
        "spec": spec,
    }


def grace_period_s(advert_interval_cs: int) -> int:
    """Long enough for the SIGTERM handover: a backup that missed the priority-0 adverts
    takes over after Master_Down_Interval (3 x advert + skew < 1 s), plus a margin."""
    return max(GRACE_MIN_S, math.ceil((3 * advert_interval_cs + 100) / 100) + GRACE_MARGIN_S)


def static_pod(cp: ControlPlaneVip) -> dict[str, Any]:
    """The kubelet static Pod that runs the daemon from `virtualip(cp)` on this node."""
    http = {"host": "127.0.0.1", "port": cp.http_port}
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": cp.image,
        "imagePullPolicy": "IfNotPresent",
        "command": cp.command,
        # Ready = this node is a healthy candidate: its probe passes, no instance in FAULT.
        "readinessProbe": {
            "httpGet": {**http, "path": "/readyz"},
            "periodSeconds": 2,
            "timeoutSeconds": 1,
            "failureThreshold": 2,
        },
        # Liveness asks only "is the event loop alive"; a failing API server restarts nothing.
        "livenessProbe": {
            "httpGet": {**http, "path": "/healthz"},
            "initialDelaySeconds": 10,
            "periodSeconds": 10,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        },
        "resources": {
            "requests": {"cpu": "10m", "memory": "48Mi"},
            "limits": {"memory": "192Mi"},
        },
        # Raw sockets (VRRP, gratuitous ARP / NA) need NET_RAW, the VIP on the interface
        # NET_ADMIN; nothing else. uid 0: Kubernetes sets no ambient capabilities, so added
        # capabilities take effect for root only (the image's default user is 65532).
        "securityContext": {
            "capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN", "NET_RAW"]},
            "privileged": False,
            "runAsUser": 0,
            "runAsNonRoot": False,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
        },
        "volumeMounts": [
            {"name": "config", "mountPath": cp.config_dir, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    spec: dict[str, Any] = {
        "hostNetwork": True,  # VRRP and the VIP live on the node's own interface
        # As kubeadm's own static pods: the kubelet never evicts them for pressure.
        "priorityClassName": "system-node-critical",
        "priority": 2000001000,
        "enableServiceLinks": False,
        "automountServiceAccountToken": False,  # no API access: the file is the config
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": grace_period_s(cp.advert_interval_cs),
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "volumes": [
            {"name": "config", "hostPath": {"path": cp.config_dir, "type": "Directory"}},
            {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
        ],
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": NAME,
            "namespace": NAMESPACE,
            "labels": {
                "app.kubernetes.io/name": "kube-vrrp",
                "app.kubernetes.io/component": "control-plane-vip",
                "tier": "control-plane",  # as kubeadm labels its static pods
            },
        },
        "spec": spec,
    }


def _yaml(obj: dict[str, Any]) -> str:
    return yaml.safe_dump(obj, sort_keys=False, default_flow_style=False, width=100)


def virtualip_yaml(cp: ControlPlaneVip) -> str:
    """The VirtualIP file, with a header saying what it is and what its numbers mean."""
    mode = (
        f"unicast to {', '.join(str(p) for p in cp.peers)}"
        + (f" from {cp.address}" if cp.address is not None else "")
        if cp.unicast
        else f"multicast to {'224.0.0.18' if cp.vip.version == 4 else 'ff02::12'}"
    )
    header = f"""\
# The control-plane VIP on node {cp.node}, written by `vrrpd control-plane`
# (docs/control-plane.md). The static pod {NAME} runs
#   {" ".join(cp.command)}
# and the daemon reloads this file when it changes.
#
# VRRPv3 {mode}, VRID {cp.vrid}, on {cp.interface}.
# Priority {cp.priority} while the local kube-apiserver answers /readyz. After {PROBE_FALL} \
failures in a row
# it is {cp.priority} - {-cp.probe_weight} = {FAILING_PRIORITY}, below every healthy node, \
so the VIP leaves at once.
# With the same priority on every node it never moves back when a node recovers (each
# move resets every client's connection). The probe skips TLS verification: 127.0.0.1 is
# not a name in kubeadm's serving certificate, and only the status code is used.
"""
    return header + _yaml(virtualip(cp))


def static_pod_yaml(cp: ControlPlaneVip) -> str:
    header = f"""\
# kube-vrrp: the control-plane VIP {cp.vip.ip} on node {cp.node}, as a kubelet static pod
# (docs/control-plane.md). Written by `vrrpd control-plane`; its configuration is
# {cp.config_path}.
"""
    return header + _yaml(static_pod(cp))
