"""One tenant's mistake stays its own, on the real API server (issue 8, item 5).

Two namespaces claim one address: the newer claimant (creationTimestamp, then
namespace/name, as the server stamped them) is refused with a condition and an Event naming
the VirtualIP that holds the address, and is left out of every node's configuration; so is
a VirtualIP the API server accepts but the model refuses. A third VirtualIP keeps its
entry on every node, and each node's ConfigMap loads whole in the daemon's own loader, so
no daemon refuses the file that carries it. The holder stays the holder through updates of
either and a restart of the operator, and the claimant takes the address over only once
the holder is gone.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

from tests.envtest import ApiServer
from tests.realapi.cluster import (
    Operator,
    Release,
    TestNodes,
    daemon_objects,
    delete_virtualips,
    get_virtualip,
    running_operator,
    virtualip,
    wait_for,
)
from vrrpd.spec.load import load_manifests

TENANTS = ("isolation-a", "isolation-b", "isolation-c")
ADDRESS = "192.168.79.100/24"


@pytest.fixture(autouse=True)
def nothing_forbidden(kube_api: ApiServer, release: Release, operator: Operator) -> Iterator[None]:
    yield
    assert kube_api.forbidden(release.operator_user) == []


@pytest.fixture(scope="module")
def restarted(release: Release) -> Iterator[Callable[[Operator], Operator]]:
    """Stop an operator and start another in its place, kept to the end of the module (the
    clean-up of VirtualIPs and nodes needs a running operator)."""
    with contextlib.ExitStack() as stack:

        def restart(running: Operator) -> Operator:
            running.stop()
            return stack.enter_context(running_operator(release))

        yield restart


def ready(api: ApiServer, namespace: str, name: str) -> dict[str, Any]:
    obj = get_virtualip(api, namespace, name) or {}
    conditions = (obj.get("status") or {}).get("conditions") or ()
    return next((c for c in conditions if c["type"] == "Ready"), {})


def rendered(api: ApiServer, nodes: list[str]) -> dict[str, set[str]]:
    """node -> the VirtualIPs (namespace/name) of its ConfigMap, which the daemon's loader
    must accept whole."""
    config_maps = daemon_objects(api, "configmaps")
    out = {}
    for node in nodes:
        text = (config_maps.get(f"vrrpd-{node}") or {}).get("data", {}).get("virtualips.yaml")
        if text is None:
            continue
        load_manifests(text, source=f"vrrpd-{node}")  # raises on any conflict or bad document
        out[node] = {f"{d['metadata']['namespace']}/{d['metadata']['name']}"
                     for d in yaml.safe_load_all(text) if d}  # fmt: skip
    return out


def observed(api: ApiServer, namespace: str) -> Any:
    """status.observedGeneration of VirtualIP `namespace`/web."""
    return ((get_virtualip(api, namespace, "web") or {}).get("status") or {}).get(
        "observedGeneration"
    )


def config_map_versions(api: ApiServer, nodes: list[str]) -> dict[str, str]:
    config_maps = daemon_objects(api, "configmaps")
    return {n: config_maps[f"vrrpd-{n}"]["metadata"]["resourceVersion"] for n in nodes}


def events(api: ApiServer, namespace: str, name: str, reason: str) -> list[dict[str, Any]]:
    result = api.kubectl("get", "events", "-n", namespace, "-o", "json", "--field-selector",
                         f"involvedObject.name={name},reason={reason}")  # fmt: skip
    return list(json.loads(result.stdout)["items"])


def test_a_claimed_address_is_refused_alone_and_the_rest_runs_everywhere(
    kube_api: ApiServer,
    operator: Operator,
    restarted: Callable[[Operator], Operator],
    nodes: TestNodes,
) -> None:
    made = sorted(nodes(2))
    for namespace in TENANTS:
        kube_api.namespace(namespace)
    a, b, c = TENANTS
    claims = [virtualip("web", nodes.selector, ns, addresses=[ADDRESS]) for ns in (a, b)]
    third = virtualip("api", nodes.selector, c, addresses=["192.168.79.101/24"])
    broken = virtualip("broken", nodes.selector, c, addresses=["192.168.79.255/24"])
    kube_api.apply([*claims, third, broken])  # perhaps within one second: names decide then
    try:
        stamped = [get_virtualip(kube_api, ns, "web") or {} for ns in (a, b)]
        first, later = sorted(
            stamped, key=lambda o: (o["metadata"]["creationTimestamp"], o["metadata"]["namespace"])
        )
        holder, claimant = (f"{o['metadata']['namespace']}" for o in (first, later))

        refused = wait_for(
            lambda: (
                (r := ready(kube_api, claimant, "web")).get("reason") == "AddressConflict" and r
            ),
            "the later claimant refused",
        )
        assert refused["status"] == "False"
        assert f"192.168.79.100 belongs to {holder}/web" in refused["message"]
        (event,) = wait_for(lambda: events(kube_api, claimant, "web", "AddressConflict"),
                            "an AddressConflict Event")  # fmt: skip
        assert event["type"] == "Warning"
        assert f"belongs to {holder}/web" in event["message"]
        wait_for(lambda: ready(kube_api, c, "broken").get("reason") == "InvalidSpec",
                 "the broken one refused")  # fmt: skip

        running = {f"{holder}/web", f"{c}/api"}
        wait_for(lambda: rendered(kube_api, made) == {n: running for n in made},
                 "the holder and the third on every node, nothing else")  # fmt: skip
        assert ready(kube_api, holder, "web").get("reason") != "AddressConflict"
        assert (get_virtualip(kube_api, c, "api") or {}).get("status", {}).get("vrid")

        # Updates of either keep the holder (creation order, not the last write, decides).
        for namespace in (claimant, holder):
            kube_api.apply(virtualip("web", nodes.selector, namespace, addresses=[ADDRESS],
                                     priority=120))  # fmt: skip
        wait_for(lambda: all(observed(kube_api, ns) == 2 for ns in (a, b)), "both updates seen")
        assert ready(kube_api, claimant, "web")["reason"] == "AddressConflict"
        assert rendered(kube_api, made) == {n: running for n in made}

        # A new operator process decides the same: no ConfigMap rewritten, the claimant's
        # condition untouched (its transition time too), no second Event.
        versions = config_map_versions(kube_api, made)
        condition = ready(kube_api, claimant, "web")
        again = restarted(operator)
        # A change it must handle: once it shows, the new process has looked at all.
        kube_api.apply(virtualip("web", nodes.selector, claimant, addresses=[ADDRESS],
                                 priority=130))  # fmt: skip
        wait_for(lambda: observed(kube_api, claimant) == 3, "the update seen after it")
        assert again.process.poll() is None
        assert ready(kube_api, claimant, "web") == condition
        assert config_map_versions(kube_api, made) == versions
        assert rendered(kube_api, made) == {n: running for n in made}
        assert len(events(kube_api, claimant, "web", "AddressConflict")) == 1

        # The holder goes: the address is free, the claimant runs.
        delete_virtualips(kube_api, holder, "web")
        wait_for(
            lambda: rendered(kube_api, made) == {n: {f"{claimant}/web", f"{c}/api"} for n in made},
            "the claimant placed",
        )
        wait_for(lambda: ready(kube_api, claimant, "web").get("reason") != "AddressConflict",
                 "the claimant no longer refused")  # fmt: skip
    finally:
        for namespace in (a, b):
            delete_virtualips(kube_api, namespace, "web")
        delete_virtualips(kube_api, c, "api", "broken")
