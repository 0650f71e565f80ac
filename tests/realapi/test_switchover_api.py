"""kubevrrp.io/switchover-to on the real API server, through the operator's own code as
the chart's ServiceAccount: `kubectl annotate` moves a VirtualIP to a named node (the
daemons' ConfigMaps carry it; status and an Event follow the daemons' reports), an
unknown node is refused with the reason, and removing the annotation releases it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.envtest import ApiServer
from tests.realapi.cluster import (
    NAMESPACE,
    Operator,
    Release,
    TestNodes,
    daemon_objects,
    delete_virtualips,
    set_pod_phase,
    virtualip,
    wait_for,
)
from tests.realapi.test_operator_api import events_of, report, row, status

TO = "kubevrrp.io/switchover-to"


@pytest.fixture(autouse=True)
def nothing_forbidden(kube_api: ApiServer, release: Release, operator: Operator) -> Iterator[None]:
    yield
    assert kube_api.forbidden(release.operator_user) == []
    assert kube_api.forbidden(release.daemon_user) == []  # the reports this test writes as it


@pytest.fixture(scope="module")
def daemon_kubeconfig(release: Release) -> Any:
    return release.kubeconfig(release.daemon_service_account)


def carried(api: ApiServer, key: str) -> dict[str, str | None]:
    """Each daemon ConfigMap's kubevrrp.io/switchover-to for VirtualIP `key`."""
    out = {}
    for cm in daemon_objects(api, "configmaps").values():
        for doc in yaml.safe_load_all(cm["data"]["virtualips.yaml"]):
            meta = doc["metadata"]
            if f"{meta['namespace']}/{meta['name']}" == key:
                node = cm["metadata"]["name"].removeprefix("vrrpd-")
                out[node] = (meta.get("annotations") or {}).get(TO)
    return out


def switchover(api: ApiServer, name: str) -> dict[str, Any]:
    conditions = status(api, name).get("conditions") or ()
    return next((c for c in conditions if c["type"] == "Switchover"), {})


def test_kubectl_annotate_moves_the_vip_is_refused_for_an_unknown_node_and_releases(
    kube_api: ApiServer, nodes: TestNodes, daemon_kubeconfig: Any
) -> None:
    a, b = nodes(2)
    name, key = "moving", "default/moving"
    kube_api.apply(virtualip(name, nodes.selector))
    try:
        for node in (a, b):
            wait_for(lambda n=node: daemon_objects(kube_api, "pods").get(f"vrrpd-{n}"), "pod")
            set_pod_phase(kube_api, NAMESPACE, f"vrrpd-{node}", "Running")
        vrid = wait_for(lambda: status(kube_api, name).get("vrid"), "vrid")
        report(kube_api, daemon_kubeconfig, a, [row(key, "MASTER", vrid=vrid)])
        report(kube_api, daemon_kubeconfig, b, [row(key, "BACKUP", vrid=vrid)])
        wait_for(lambda: status(kube_api, name).get("master") == a, "master a")

        kube_api.kubectl("annotate", "virtualip", name, "-n", "default", f"{TO}={b}")
        wait_for(lambda: carried(kube_api, key) == {a: b, b: b}, "the request in both ConfigMaps")
        wait_for(lambda: switchover(kube_api, name).get("reason") == "Pending", "Pending")
        # What the daemons report once b holds (tests/netns/test_switchover.py runs them).
        report(kube_api, daemon_kubeconfig, b, [row(key, "MASTER", vrid=vrid, since_s=0)])
        report(kube_api, daemon_kubeconfig, a, [row(key, "BACKUP", vrid=vrid, since_s=0)])
        held = wait_for(
            lambda: (c := switchover(kube_api, name)).get("reason") == "Held" and c, "Held"
        )
        assert held["status"] == "True" and held["message"] == f"{b} holds the VIP ({TO})"
        moved = f"the VIP moved from {a} to {b} ({TO})"
        wait_for(lambda: any(e["reason"] == "SwitchedOver" for e in events_of(kube_api, name)),
                 "the SwitchedOver Event")  # fmt: skip
        seen = {(e["reason"], e["type"], e["message"]) for e in events_of(kube_api, name)}
        assert ("SwitchedOver", "Normal", moved) in seen

        kube_api.kubectl(
            "annotate", "virtualip", name, "-n", "default", f"{TO}=no-such-node", "--overwrite"
        )
        refused = wait_for(
            lambda: (c := switchover(kube_api, name)).get("reason") == "Refused" and c, "Refused"
        )
        assert refused["message"].startswith(f"{TO}: no-such-node: no such node")
        wait_for(lambda: carried(kube_api, key) == {a: None, b: None}, "no request carried")
        wait_for(lambda: any(e["reason"] == "SwitchoverRefused" for e in events_of(kube_api, name)),
                 "the SwitchoverRefused Event")  # fmt: skip

        kube_api.kubectl("annotate", "virtualip", name, "-n", "default", f"{TO}-")
        wait_for(lambda: switchover(kube_api, name) == {}, "the condition gone")
        assert carried(kube_api, key) == {a: None, b: None}
    finally:
        delete_virtualips(kube_api, "default", name)
