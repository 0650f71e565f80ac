"""The operator at rest on the real API server, counted, never timed.

With nothing changing, the operator (as the chart runs it, as its ServiceAccount) writes no
log line, runs no handler and looks at no status (both logged at debug, the level it runs
at here), and sends no request but its watches and kopf's peering keep-alive, however many
VirtualIPs it serves: its statuses follow the daemons' reports instead of timers that wake
per object (a timer per VirtualIP logged a line every 2 s each). A report that changes one
VirtualIP's state writes that VirtualIP's status (and posts its Event), once, and no
other's.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.envtest import ApiServer
from tests.realapi.cluster import (
    NAMESPACE,
    Operator,
    Release,
    TestNodes,
    daemon_objects,
    delete_virtualips,
    get_virtualip,
    report,
    row,
    running_operator,
    set_pod_phase,
    virtualip,
    wait_for,
)

VIRTUALIPS = 24
WINDOW_S = 20.0  # how long nothing may happen: long enough for ten rounds of 2 s timers
NS = "at-rest"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
OURS = "vrrp_operator"  # the operator's loggers


@pytest.fixture(scope="module")
def operator(release: Release) -> Iterator[Operator]:
    # The periodic reconcile (resync, 60 s by default) lists the daemon objects; moved out
    # of the window, so that what is counted is what rest costs. Each status follower's
    # first resync falls at random within one interval (spread, not all at once): with an
    # hour, one of 24 fell in the window in about one run of four; a year makes it never.
    # At debug, kopf logs every handler it runs ("... is invoked") and the operator every
    # status it looks at: what rest must not do shows in the log.
    env = {"KUBEVRRP_RESYNC_INTERVAL": str(365 * 24 * 3600), "KUBEVRRP_LOG_LEVEL": "debug"}
    with running_operator(release, env=env) as running:
        yield running


def operator_requests(api: ApiServer, release: Release, after: int) -> list[str]:
    """`verb resource/subresource name` of the operator's requests after its first `after`
    audit events, one per request, leaving out its watches and kopf's peering keep-alive."""
    seen: set[str] = set()
    out = []
    for event in api.audit(release.operator_user)[after:]:
        ref = event.get("objectRef") or {}
        if event["auditID"] in seen or event["verb"] == "watch":
            continue
        seen.add(event["auditID"])
        if ref.get("resource") == "clusterkopfpeerings":
            continue
        sub = f"/{ref['subresource']}" if ref.get("subresource") else ""
        out.append(f"{event['verb']} {ref.get('resource')}{sub} {ref.get('name', '')}".strip())
    return out


def work(lines: list[str]) -> list[str]:
    """The lines that say the operator did something: any at info or above, and at debug
    the handlers kopf ran (kopf.objects) and the operator's own (vrrp_operator...). Left
    out: kopf's and the libraries' debug chatter about connections and peering."""
    out = []
    for line in lines:
        fields = line.split(" ", 4)  # date, time, level, logger, message
        if len(fields) < 5 or fields[2] not in LEVELS:
            out.append(line)  # a traceback's lines, a print
        elif fields[2] != "DEBUG" or fields[3] == "kopf.objects" or fields[3].startswith(OURS):
            out.append(line)
    return out


def status(api: ApiServer, name: str) -> dict[str, Any]:
    return ((get_virtualip(api, NS, name) or {}).get("status")) or {}


def test_at_rest_the_operator_logs_and_sends_nothing(
    kube_api: ApiServer, release: Release, operator: Operator, nodes: TestNodes
) -> None:
    made = list(nodes(3))
    kube_api.namespace(NS)
    names = [f"rest-{i:02d}" for i in range(VIRTUALIPS)]
    objs = [
        virtualip(name, nodes.selector, NS, addresses=[f"192.168.78.{10 + i}/24"])
        for i, name in enumerate(names)
    ]
    kube_api.apply(objs)
    try:
        vrids = wait_for(
            lambda: (
                all(status(kube_api, n).get("vrid") for n in names)
                and {n: status(kube_api, n)["vrid"] for n in names}
            ),
            "a VRID in every status",
            timeout=120,
        )
        pods = [f"vrrpd-{n}" for n in made]
        wait_for(lambda: set(pods) <= set(daemon_objects(kube_api, "pods")), "the daemon pods")
        for pod in pods:
            set_pod_phase(kube_api, NAMESPACE, pod, "Running")
        daemon = release.kubeconfig(release.daemon_service_account)
        # What each daemon reports, as it reports it: `since` moves only with the state.
        rows = [row(f"{NS}/{n}", "BACKUP", vrid=vrids[n]) for n in names]
        for node in made:
            report(kube_api, daemon, node, rows)
        # Settled: every status shows the three BACKUPs (the pods' phases came before).
        wait_for(
            lambda: all(
                [e.get("state") for e in status(kube_api, n).get("nodes", [])] == ["BACKUP"] * 3
                for n in names
            ),
            "every node BACKUP in every status",
            timeout=120,
        )

        # At rest.
        lines = len(operator.log().splitlines())
        requests = len(kube_api.audit(release.operator_user))
        time.sleep(WINDOW_S)
        logged = operator.log().splitlines()[lines:]
        assert work(logged) == [], "\n".join(logged)
        assert operator_requests(kube_api, release, requests) == []

        # One VirtualIP changes state on one node: its status, and only its, is written.
        first = made[0]
        requests = len(kube_api.audit(release.operator_user))
        rows[0] = row(f"{NS}/{names[0]}", "MASTER", vrid=vrids[names[0]], since_s=0)
        report(kube_api, daemon, first, rows)
        wait_for(lambda: status(kube_api, names[0]).get("master") == first, "the new master")
        # A second change, later, closes the count of what the first one caused.
        rows[1] = row(f"{NS}/{names[1]}", "MASTER", vrid=vrids[names[1]], since_s=0)
        report(kube_api, daemon, first, rows)
        wait_for(lambda: status(kube_api, names[1]).get("master") == first, "the second one")
        # Each change: its status, and its MasterChanged Event.
        assert sorted(operator_requests(kube_api, release, requests)) == [
            "create events", "create events",
            f"patch virtualips/status {names[0]}", f"patch virtualips/status {names[1]}",
        ]  # fmt: skip
        assert all(status(kube_api, n).get("master") is None for n in names[2:])
        for node in made:  # the daemons drop everything: the deletes need not wait
            report(kube_api, daemon, node, [])
    finally:
        delete_virtualips(kube_api, NS, *names)
