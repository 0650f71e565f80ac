"""System test without a cluster: operator (kopf) + kmock + real vrrpd daemons on lab nodes.

The test kubelet (kubelet.py) runs every daemon pod the operator renders as a real
`vrrpd run --kube` in its node's network namespace; the daemons read their ConfigMaps and
report on their pods through kmock (relay.py), elect a master over a real bridge and put
real addresses on eth0. Every check polls with a generous timeout: nothing here asserts
how fast something happens, only that it does (bench/ measures speed).

Issue 4, "Proof": apply a VirtualIP -> the VIP appears on the highest-priority node and
status.master says so; delete that pod, or take its link down -> the VIP moves, status and
an Event follow; change one VirtualIP -> another's master does not change; delete the
VirtualIP -> no VIP left on any node.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import kmock
import pytest

from tests.system.conftest import NS, VIPS, SystemEmulator
from tests.system.kubelet import Kubelet, RunningPod
from vrrpd.lab.netns import Lab

pytestmark = [pytest.mark.root, pytest.mark.kmock(cls=SystemEmulator)]

VIP_PATH = "/apis/kubevrrp.io/v1alpha1/namespaces/default/virtualips"
WEB_VIP, API_VIP = "192.168.77.100", "192.168.77.101"
WEB, API = "default/web/ipv4", "default/api/ipv4"  # the daemons' instance names
TIMEOUT = 30.0  # for anything that takes a few adverts and a poll or two


def virtualip(name: str, address: str, vrid: int, priorities: dict[str, int]) -> dict[str, Any]:
    return {
        "apiVersion": "kubevrrp.io/v1alpha1",
        "kind": "VirtualIP",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "addresses": [f"{address}/24"],
            "vrid": vrid,
            "advertInterval": "100ms",
            "priority": 100,
            "nodePriorities": [{"nodeName": n, "priority": p} for n, p in priorities.items()],
            "preempt": {"mode": "Always"},
        },
    }


WEB_OBJ = virtualip("web", WEB_VIP, 51, {"n1": 150, "n2": 120, "n3": 100})
API_OBJ = virtualip("api", API_VIP, 52, {"n1": 100, "n2": 110, "n3": 150})


class System:
    """What a test sees: the API (kmock), the nodes (lab) and the daemons (kubelet)."""

    def __init__(self, cluster: kmock.KubernetesEmulator, lab: Lab, kubelet: Kubelet) -> None:
        self.cluster = cluster
        self.lab = lab
        self.kubelet = kubelet

    # -- API ------------------------------------------------------------------------------------

    async def create(self, obj: dict[str, Any]) -> None:
        resp = await self.cluster.post(VIP_PATH, json=obj)
        assert resp.status == 200, await resp.text()

    async def patch(self, name: str, patch: dict[str, Any]) -> None:
        resp = await self.cluster.patch(
            f"{VIP_PATH}/{name}",
            json=patch,
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert resp.status == 200, await resp.text()

    async def delete(self, path: str) -> None:
        resp = await self.cluster.delete(path)
        assert resp.status == 200, await resp.text()

    def live(self, resource: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        try:
            obj = self.cluster.objects[resource, namespace, name]
        except KeyError:
            return None
        return None if obj.deleted else dict(obj.raw)

    def status(self, name: str) -> dict[str, Any]:
        return dict((self.live(VIPS, "default", name) or {}).get("status") or {})

    def node_status(self, name: str, node: str) -> dict[str, Any]:
        return next((n for n in self.status(name).get("nodes") or () if n["name"] == node), {})

    def events(self, reason: str, name: str) -> list[str]:
        """Messages of the Events with `reason` about VirtualIP `name` (kmock keeps them)."""
        found = []
        for (resource, _, _), obj in self.cluster.objects.items():
            if resource.plural != "events" or obj.deleted:
                continue
            raw = obj.raw
            if (
                raw.get("reason") == reason
                and (raw.get("involvedObject") or {}).get("name") == name
            ):
                found.append(str(raw.get("message")))
        return found

    def pod_ready(self, name: str) -> bool:
        conditions = ((self.live("v1/pods", NS, name) or {}).get("status") or {}).get("conditions")
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions or ())

    def events_like(self, reason: str, name: str, starts: str) -> list[str]:
        return [m for m in self.events(reason, name) if m.startswith(starts)]

    def daemon_objects(self, plural: str) -> list[str]:
        return sorted(
            name
            for (resource, namespace, name), obj in self.cluster.objects.items()
            if resource.plural == plural and namespace == NS and not obj.deleted
        )

    # -- nodes ----------------------------------------------------------------------------------

    async def holders(self, vip: str) -> list[str]:
        indexes = await asyncio.to_thread(self.lab.holders, vip)
        return [self.lab.node(i).name for i in indexes]

    def daemon(self, node: str) -> RunningPod:
        pod = self.kubelet.running(node)
        assert pod is not None, f"no daemon runs on {node}\n{self.kubelet.describe()}"
        return pod

    # -- waiting ----------------------------------------------------------------------------------

    async def until(
        self,
        what: str,
        check: Callable[[], Awaitable[Any]] | Callable[[], Any],
        timeout: float = TIMEOUT,
    ) -> Any:
        """Poll `check` (sync or async) until it is truthy; fail with the whole picture."""
        deadline = time.monotonic() + timeout
        while True:
            result = check()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"not within {timeout:g}s: {what}\n{await self.picture()}")
            await asyncio.sleep(0.2)

    async def picture(self) -> str:
        lines = [f"holders {WEB_VIP}: {await self.holders(WEB_VIP)}, "
                 f"{API_VIP}: {await self.holders(API_VIP)}"]  # fmt: skip
        for name in ("web", "api"):
            if self.live(VIPS, "default", name) is not None:
                lines.append(f"status {name}: {json.dumps(self.status(name))[:1500]}")
        lines.append(f"pods: {self.daemon_objects('pods')}")
        for (resource, _, _), obj in self.cluster.objects.items():
            if resource.plural == "events" and not obj.deleted:
                raw = obj.raw
                lines.append(f"event {(raw.get('involvedObject') or {}).get('name')} "
                             f"{raw.get('reason')}: {raw.get('message')}")  # fmt: skip
        lines.append(self.kubelet.describe())
        return "\n".join(lines)

    async def up(self, obj: dict[str, Any], vip: str, master: str) -> None:
        """Create a VirtualIP and wait until `master` holds it and its status says so."""
        await self.create(obj)
        name = obj["metadata"]["name"]
        await self.until(f"{vip} on {master} only", lambda: self._held_by(vip, [master]))
        await self.until(f"{name} status.master == {master}",
                         lambda: self.status(name).get("master") == master)  # fmt: skip

    async def _held_by(self, vip: str, nodes: list[str]) -> bool:
        return await self.holders(vip) == nodes

    def no_crashes(self) -> None:
        crashed = [p for p in self.kubelet.history if p.unexpected_exits]
        assert not crashed, f"daemons exited on their own:\n{self.kubelet.describe()}"


@pytest.fixture
async def system(
    cluster: kmock.KubernetesEmulator, lab: Lab, kubelet: Kubelet
) -> AsyncIterator[System]:
    s = System(cluster, lab, kubelet)
    yield s
    # The daemons never crashed, whatever the test did to them.
    s.no_crashes()


# --- the scenarios ---------------------------------------------------------------------------


async def test_virtualip_comes_up_on_the_highest_priority_node_and_goes_on_delete(
    system: System,
) -> None:
    await system.up(WEB_OBJ, WEB_VIP, "n1")

    status = await system.until(
        "every node reported",
        lambda: (
            (s := system.status("web"))
            and [n.get("state") for n in s["nodes"]] == ["MASTER", "BACKUP", "BACKUP"]
            and s
        ),
    )
    assert status["vrid"] == 51
    assert [(n["name"], n.get("basePriority")) for n in status["nodes"]] == [
        ("n1", 150), ("n2", 120), ("n3", 100),
    ]  # fmt: skip
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "MasterElected")
    assert await system.until("MasterChanged Event", lambda: system.events("MasterChanged", "web"))

    # Each daemon runs the ConfigMap the operator wrote, and says so in its report.
    for node in ("n1", "n2", "n3"):
        cm = system.live("v1/configmaps", NS, f"vrrpd-{node}")
        assert cm is not None
        want = cm["metadata"]["annotations"]["kubevrrp.io/config-hash"]

        def reported(node: str = node, want: str = want) -> bool:
            pod = system.live("v1/pods", NS, f"vrrpd-{node}") or {}
            text = (pod.get("metadata", {}).get("annotations") or {}).get("kubevrrp.io/status")
            report = json.loads(text) if text else {}
            return report.get("configHash") == want and report.get("configError") is None

        await system.until(f"{node} reports config {want}", reported)
    await system.until("every daemon pod Ready", lambda: all(
        system.pod_ready(f"vrrpd-{n}") for n in ("n1", "n2", "n3")
    ))  # fmt: skip
    # (n2 or n3 may have been MASTER for a moment: a daemon that starts before n1's waits
    # one Master_Down_Interval, hears nobody and takes over until n1 preempts it.)
    for node in ("n2", "n3"):
        assert system.daemon(node).state(WEB) == "BACKUP"

    await system.delete(f"{VIP_PATH}/web")
    await system.until(f"no node holds {WEB_VIP}", lambda: system._held_by(WEB_VIP, []))
    await system.until(
        "the finalizer let web go", lambda: system.live(VIPS, "default", "web") is None
    )
    await system.until("daemon pods, ConfigMaps and Secrets gone", lambda: not (
        system.daemon_objects("pods") or system.daemon_objects("configmaps")
        or system.daemon_objects("secrets")
    ))  # fmt: skip
    await system.until(
        "every daemon stopped", lambda: all(not p.running for p in system.kubelet.history)
    )
    assert await system.holders(WEB_VIP) == []
    assert all(p.exits == [0] for p in system.kubelet.history), system.kubelet.describe()


async def test_deleting_the_master_pod_hands_the_vip_over(system: System) -> None:
    await system.up(WEB_OBJ, WEB_VIP, "n1")
    first = system.daemon("n1")

    # The kubelet on n1 is slow to start the replacement: n2 must take over meanwhile.
    system.kubelet.hold("n1")
    await system.delete(f"/api/v1/namespaces/{NS}/pods/vrrpd-n1")
    await system.until(f"{WEB_VIP} on n2 only", lambda: system._held_by(WEB_VIP, ["n2"]))
    await system.until("status.master == n2", lambda: system.status("web").get("master") == "n2")
    await system.until("MasterChanged Event for n2", lambda: system.events_like(
        "MasterChanged", "web", "n2 is now MASTER"
    ))  # fmt: skip
    # n1's daemon stopped on SIGTERM (exit 0) after handing over, not killed.
    await system.until("n1's first daemon gone", lambda: not first.running)
    assert first.exits == [0], system.kubelet.describe()
    assert first.transitions(WEB)[-1]["state"] == "STOPPED"
    # The operator recreated the pod (a new uid), waiting for the kubelet.
    await system.until("vrrpd-n1 recreated", lambda: (
        (pod := system.live("v1/pods", NS, "vrrpd-n1")) is not None
        and pod["metadata"]["uid"] != first.uid
    ))  # fmt: skip

    # The new daemon starts; with preempt Always n1 takes the VIP back.
    before = len(system.events_like("MasterChanged", "web", "n1 is now MASTER"))
    system.kubelet.release("n1")
    await system.until(f"{WEB_VIP} back on n1 only", lambda: system._held_by(WEB_VIP, ["n1"]))
    await system.until("status.master == n1", lambda: system.status("web").get("master") == "n1")
    await system.until("MasterChanged Event for n1 again", lambda: len(
        system.events_like("MasterChanged", "web", "n1 is now MASTER")
    ) > before)  # fmt: skip
    assert system.daemon("n1").uid != first.uid


async def _handover_and_back(
    system: System, linger_s: float
) -> tuple[set[str | None], dict[str, list[str]]]:
    """Delete n1's pod with a kubelet that removes the pod object `linger_s` after the
    process ended (a real one reports the container's end first, then the pod goes); n2
    takes over; then n1's new pod takes the VIP back. Returns every status.master seen on
    the way and the Events about web by reason."""
    system.kubelet.linger_s = linger_s
    await system.up(WEB_OBJ, WEB_VIP, "n1")
    await system.until("n1 healthy", lambda: system.node_status("web", "n1").get("healthy"))
    first = system.daemon("n1")
    seen: set[str | None] = set()

    async def handed_over() -> bool:
        seen.add(system.status("web").get("master"))
        pod = system.live("v1/pods", NS, "vrrpd-n1")
        recreated = pod is not None and pod["metadata"]["uid"] != first.uid
        return recreated and await system.holders(WEB_VIP) == ["n2"] and "n2" in seen

    async def back() -> bool:
        seen.add(master := system.status("web").get("master"))
        return master == "n1" and await system.holders(WEB_VIP) == ["n1"]

    system.kubelet.hold("n1")
    await system.delete(f"/api/v1/namespaces/{NS}/pods/vrrpd-n1")
    await system.until("n2 holds the VIP, reported, and vrrpd-n1 is recreated", handed_over)
    await asyncio.sleep(1.0)  # a few more status rounds
    system.kubelet.release("n1")
    await system.until("n1 holds the VIP again, reported", back)
    await asyncio.sleep(1.0)
    seen.add(system.status("web").get("master"))
    reasons = ("MasterChanged", "ProbeFailed", "SplitBrain")
    return seen, {r: system.events(r, "web") for r in reasons}


async def test_a_graceful_handover_is_no_split_brain(system: System) -> None:
    seen, events = await _handover_and_back(system, linger_s=2.0)
    assert [m for m in seen if m and "," in m] == [], f"two masters reported: {events}"
    assert events["SplitBrain"] == [] and events["ProbeFailed"] == [], events


@pytest.mark.xfail(
    strict=False,  # with the daemon reporting at once, only a rare race is left (see reason)
    reason="daemons report within 0.1 s and once more after their handover, but between the "
    "old master's report and the new one's the operator can still see no MASTER for a moment "
    "though the VIP was held all along; closing that race needs a debounce in status.py",
)
async def test_the_status_keeps_a_master_through_a_handover(system: System) -> None:
    seen, events = await _handover_and_back(system, linger_s=0.0)
    assert None not in seen, f"status.master was empty on the way: {events}"
    assert [m for m in events["MasterChanged"] if m.startswith("no node")] == [], events


async def test_link_down_moves_the_vip_and_status_shows_the_fault(system: System) -> None:
    await system.up(WEB_OBJ, WEB_VIP, "n1")

    system.lab.link_down(1)  # n1 loses carrier; its API relay (loopback) still works
    await system.until(f"{WEB_VIP} on n2 only", lambda: system._held_by(WEB_VIP, ["n2"]))
    await system.until("status.master == n2", lambda: system.status("web").get("master") == "n2")
    await system.until(
        "n1 reported FAULT", lambda: system.node_status("web", "n1").get("state") == "FAULT"
    )
    assert system.node_status("web", "n1")["healthy"] is False
    await system.until("MasterChanged Event for n2", lambda: system.events_like(
        "MasterChanged", "web", "n2 is now MASTER"
    ))  # fmt: skip
    await system.until("ProbeFailed Event for n1", lambda: any(
        m.startswith("n1:") for m in system.events("ProbeFailed", "web")
    ))  # fmt: skip

    system.lab.link_up(1)
    await system.until(f"{WEB_VIP} back on n1 only", lambda: system._held_by(WEB_VIP, ["n1"]))
    await system.until("status.master == n1", lambda: system.status("web").get("master") == "n1")
    await system.until(
        "n1 healthy again", lambda: system.node_status("web", "n1").get("healthy") is True
    )
    assert len(system.kubelet.history) == 3  # no daemon was restarted for it


async def test_changing_one_virtualip_leaves_the_other_alone(system: System) -> None:
    await system.up(WEB_OBJ, WEB_VIP, "n1")
    daemons = {n: system.daemon(n) for n in ("n1", "n2", "n3")}
    web_transitions = {n: len(d.transitions(WEB)) for n, d in daemons.items()}
    await system.until("web status settled", lambda: system.status("web").get("transitions"))
    web_status_transitions = system.status("web")["transitions"]

    async def web_untouched() -> None:
        assert await system.holders(WEB_VIP) == ["n1"], await system.picture()
        for n, d in daemons.items():
            assert len(d.transitions(WEB)) == web_transitions[n], f"web moved on {n}"

    # A second VirtualIP arrives: every node's ConfigMap changes, no daemon restarts.
    await system.up(API_OBJ, API_VIP, "n3")
    await web_untouched()

    # Changing it (n2 becomes its preferred node) only touches n2's configuration.
    changed = virtualip("api", API_VIP, 52, {"n1": 100, "n2": 200, "n3": 150})
    await system.patch("api", {"spec": {"nodePriorities": changed["spec"]["nodePriorities"]}})
    await system.until(f"{API_VIP} on n2 only", lambda: system._held_by(API_VIP, ["n2"]))
    await system.until(
        "api status.master == n2", lambda: system.status("api").get("master") == "n2"
    )
    await system.until("n2 applied the change", lambda: system.daemon("n2").messages(
        "configuration applied: 0 added, 0 removed, 1 changed, 1 unchanged"
    ))  # fmt: skip
    await asyncio.sleep(1.0)  # a few more adverts and status rounds
    await web_untouched()
    assert system.status("web")["master"] == "n1"
    assert system.status("web")["transitions"] == web_status_transitions
    assert all(system.daemon(n) is d for n, d in daemons.items()), "a daemon pod was replaced"
    for n in ("n1", "n3"):
        assert not daemons[n].messages("1 changed"), f"{n}'s configuration was changed"

    # Deleting web leaves api where it is; deleting api leaves nothing.
    api_transitions = {n: len(d.transitions(API)) for n, d in daemons.items()}
    await system.delete(f"{VIP_PATH}/web")
    await system.until(f"no node holds {WEB_VIP}", lambda: system._held_by(WEB_VIP, []))
    await system.until("web gone", lambda: system.live(VIPS, "default", "web") is None)
    assert await system.holders(API_VIP) == ["n2"]
    assert {n: len(d.transitions(API)) for n, d in daemons.items()} == api_transitions

    await system.delete(f"{VIP_PATH}/api")
    await system.until(f"no node holds {API_VIP}", lambda: system._held_by(API_VIP, []))
    await system.until("api gone", lambda: system.live(VIPS, "default", "api") is None)
    await system.until(
        "every daemon stopped", lambda: all(not p.running for p in system.kubelet.history)
    )
    assert await system.holders(WEB_VIP) == [] and await system.holders(API_VIP) == []
