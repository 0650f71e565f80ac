"""Daemon pods from the image on lab nodes: what the operator renders for them, run as
the pod spec says (tests/image/test_daemon_pods.py, bench/image.py).

The one change to the rendered pod: `--kube` becomes `--config` on its ConfigMap, mounted as
a configMap volume, because a lab namespace cannot reach an API server.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vrrp_operator.manifests import DaemonSettings, manifests
from vrrp_operator.render import CONFIG_KEY, NodeConfig, render

from tests.image.podman import Container, Podman, container_name, run_argv
from tests.operator.builders import node, vip
from vrrpd.lab.netns import Lab

CONFIG_DIR = "/etc/kube-vrrp/config"  # where the ConfigMap is mounted for --config
SETTINGS = DaemonSettings()


def node_configs(lab: Lab, virtualips: Sequence[Mapping[str, Any]]) -> dict[str, NodeConfig]:
    """What the operator renders for the lab's nodes (all labelled role=edge)."""
    nodes = [
        node(n.name, n.address4, labels={"role": "edge", "kubernetes.io/hostname": n.name})
        for n in lab.nodes
    ]
    return render(virtualips, nodes, {}).nodes


def edge_vip(name: str, *addresses: str, **spec: Any) -> dict[str, Any]:
    """A VirtualIP on every lab node, n1 preferred (150 over 100), 100 ms adverts."""
    return vip(
        name, *addresses, nodeSelector={"matchLabels": {"role": "edge"}}, priority=100,
        nodePriorities=[
            {"nodeSelector": {"matchLabels": {"kubernetes.io/hostname": "n1"}}, "priority": 150}
        ],
        advertInterval="100ms", **spec,
    )  # fmt: skip


def standalone(pod: Mapping[str, Any]) -> dict[str, Any]:
    """The pod with `--kube` replaced by `--config` on its ConfigMap, mounted as a volume."""
    out = copy.deepcopy(dict(pod))
    (container,) = out["spec"]["containers"]
    command = container["command"]
    assert "--kube" in command, f"the daemon pod's command changed: {command}"
    at = command.index("--kube")
    command[at : at + 1] = ["--config", f"{CONFIG_DIR}/{CONFIG_KEY}"]
    out["spec"]["volumes"].append(
        {"name": "config", "configMap": {"name": out["metadata"]["name"]}}
    )
    container["volumeMounts"].append({"name": "config", "mountPath": CONFIG_DIR, "readOnly": True})
    return out


class DaemonNode:
    """A lab node whose daemon pod runs from the image; its volumes live in `directory`."""

    def __init__(
        self, lab: Lab, index: int, podman: Podman, image: str, directory: Path,
        containers: list[Container],
    ) -> None:  # fmt: skip
        self.lab, self.podman, self.image = lab, podman, image
        self.node = lab.node(index)
        self.directory = directory / self.node.name
        self.containers = containers
        self.dirs = {v: self.directory / v for v in ("state", "secrets", "config")}
        for d in self.dirs.values():
            d.mkdir(parents=True, exist_ok=True)
        self.pod: dict[str, Any] | None = None
        self.current: Container | None = None

    def configure(self, config: NodeConfig) -> None:
        """Write the node's ConfigMap and Secret as a kubelet projects them (atomically)."""
        configmap, _, pod = manifests(config, SETTINGS)
        secret_mode = next(v["secret"]["defaultMode"] for v in pod["spec"]["volumes"]
                           if "secret" in v)  # fmt: skip
        for directory, data, mode in (
            (self.dirs["config"], configmap["data"], 0o644),
            (self.dirs["secrets"], config.secret_data, secret_mode),
        ):
            for key, value in data.items():
                partial = directory / f".{key}.new"
                partial.write_text(value)
                partial.chmod(mode)
                partial.replace(directory / key)
        self.pod = pod

    def start(self) -> Container:
        assert self.pod is not None, "configure() first"
        name = container_name(self.node.name)
        argv = run_argv(
            standalone(self.pod),
            name=name,
            network=f"ns:/run/netns/{self.node.netns}",
            image=self.image,
            fields={
                "spec.nodeName": self.node.name,
                "metadata.name": self.pod["metadata"]["name"],
                "metadata.namespace": self.pod["metadata"]["namespace"],
            },
            volume_dirs={k: str(v) for k, v in self.dirs.items()},
            podman=(self.podman.binary,),
        )
        self.current = Container(self.podman, name, argv, self.directory / f"{name}.log")
        self.containers.append(self.current)
        return self.current

    def states(self, container: Container | None = None) -> dict[str, str]:
        """instance -> its last logged state (the pod logs JSON, VRRPD_LOG_FORMAT)."""
        container = container or self.current
        assert container is not None, "no container started on this node"
        found: dict[str, str] = {}
        for line in container.text().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and "state" in entry and "instance" in entry:
                found[entry["instance"]] = entry["state"]
        return found
