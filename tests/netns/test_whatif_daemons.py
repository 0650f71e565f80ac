"""The what-if analysis against real daemons: for each case the failure is injected into a
lab of real `vrrpd run` processes, and the node the analysis predicted holds the VIP after
it, and again once the failure clears (vrrpd/whatif.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.netns.test_vrrpd import VIP, WEB, until
from vrrpd import whatif
from vrrpd.lab.daemons import VrrpdProcess
from vrrpd.lab.netns import Lab
from vrrpd.spec.load import load_file

pytestmark = pytest.mark.root

TRACKED = "trk0"  # a veth inside each node, its peer trk1 next to it
SETTLE_S = 1.5  # a prediction of "nothing changes" is checked this long (> 3 master-down)


@dataclass(frozen=True)
class Case:
    id: str
    priorities: tuple[int, ...]
    failure: whatif.Failure
    weight: int | None = None  # a file probe `hc` with this weight; None: no probe
    preempt: str = "Always"
    track: bool = False


CASES = [
    Case("80-70-minus-20-moves", (80, 70), whatif.Failure("n1", "probe", "hc"), weight=-20),
    Case("100-70-minus-20-stays", (100, 70), whatif.Failure("n1", "probe", "hc"), weight=-20),
    Case("three-nodes-probe", (100, 90, 50), whatif.Failure("n1", "probe", "hc"), weight=-20),
    Case("positive-weight", (100, 90), whatif.Failure("n1", "probe", "hc"), weight=20),
    Case("weight-0-on-backup", (100, 70), whatif.Failure("n2", "probe", "hc"), weight=0),
    Case("tracked-interface", (150, 100), whatif.Failure("n1", "interface", TRACKED), track=True),
    Case("three-nodes-stop", (100, 90, 50), whatif.Failure("n1", "node")),
    Case(
        "never-probe", (100, 70), whatif.Failure("n1", "probe", "hc"), weight=-50, preempt="Never"
    ),
    Case("never-stop", (100, 70), whatif.Failure("n1", "node"), preempt="Never"),
]


def manifest(case: Case, health: Path) -> str:
    nodes = "\n".join(
        f"    - {{nodeName: n{i}, priority: {p}}}" for i, p in enumerate(case.priorities, 1)
    )
    peers = "\n".join(
        f"    - {{nodeName: n{i}, address: 192.168.77.{10 + i}}}"
        for i in range(1, len(case.priorities) + 1)
    )
    text = f"""\
apiVersion: kubevrrp.io/v1alpha1
kind: VirtualIP
metadata: {{name: web}}
spec:
  addresses: ["{VIP}/24"]
  vrid: 51
  advertInterval: 100ms
  preempt: {{mode: {case.preempt}}}
  nodePriorities:
{nodes}
  peers:
{peers}
"""
    if case.weight is not None:
        text += (
            "  probes:\n"
            f"    - {{name: hc, file: {{path: {health}}}, interval: 100ms, "
            f"weight: {case.weight}}}\n"
        )
    if case.track:
        text += f"  trackInterfaces: [{TRACKED}]\n"
    return text


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_the_predicted_node_holds_the_vip(lab_factory: Callable[..., Lab], case: Case) -> None:
    count = len(case.priorities)
    lab = lab_factory(count)
    work = Path(lab.workdir)
    # One file per node: the nodes share the file system, each probes its own health file.
    health = {i: work / f"n{i}.health" for i in range(1, count + 1)}
    files = {}
    for i in range(1, count + 1):
        health[i].write_text("0")
        files[i] = work / f"n{i}.yaml"
        files[i].write_text(manifest(case, health[i]))
        if case.track:
            lab.ip(i, "link", "add", TRACKED, "type", "veth", "peer", "name", "trk1")
            lab.ip(i, "link", "set", "trk1", "up")
            lab.ip(i, "link", "set", TRACKED, "up")

    # What each daemon runs, analysed: the prediction comes before anything starts.
    configs = {
        f"n{i}": whatif.resolve(load_file(files[i]), [f"n{i}"])[0][f"n{i}"]
        for i in range(1, count + 1)
    }
    analysis = whatif.analyse(configs, WEB)
    assert analysis is not None
    (predicted,) = [o for o in analysis.singles if o.failures == (case.failure,)]
    (before,), after, recovered = predicted.before, predicted.after, predicted.recovered
    assert len(after) == 1 and len(recovered) == 1, predicted  # no tie in these cases

    def index(node: str) -> int:
        return int(node.removeprefix("n"))

    victim = index(case.failure.node)
    # The predicted holder first: under preempt Never whoever starts first keeps the VIP,
    # and the analysis assumes the election of nodes that start together.
    first = index(before)
    daemons = {first: VrrpdProcess(lab, first, files[first]).start()}
    assert daemons[first].wait_state(WEB, "MASTER", 15), daemons[first].log_text()
    for i in range(1, count + 1):
        if i != first:
            daemons[i] = VrrpdProcess(lab, i, files[i]).start()
    assert all(daemons[i].wait_state(WEB, "BACKUP", 15) for i in daemons if i != first)
    assert until(lambda: lab.holders(VIP) == [index(before)])

    inject, clear = _injection(lab, case, health[victim], daemons, files)

    def noticed(word: str) -> Callable[[], bool]:
        """the victim's daemon logs the probe's change (a probe's "nothing changes" means
        nothing before the daemon has seen the failure)"""
        # A file probe's number changes what it adds; it goes down only at FAULT.
        said = f"probe hc is {word}" if case.weight == 0 else "probe hc is "
        seen = daemons[victim].log_text().count(said)
        return lambda: daemons[victim].log_text().count(said) > seen

    probe = case.failure.kind == "probe"
    down, up = (noticed("down"), noticed("up")) if probe else (lambda: True, lambda: True)
    inject()
    _expect(lab, [index(after[0])], changed=after != (before,), noticed=down)
    clear()
    _expect(lab, [index(recovered[0])], changed=recovered != after, noticed=up)


def _injection(
    lab: Lab,
    case: Case,
    health: Path,
    daemons: dict[int, VrrpdProcess],
    files: dict[int, Path],
) -> tuple[Callable[[], None], Callable[[], None]]:
    victim = int(case.failure.node.removeprefix("n"))
    if case.failure.kind == "probe":
        return lambda: health.write_text("1"), lambda: health.write_text("0")
    if case.failure.kind == "interface":
        return (
            lambda: lab.ip(victim, "link", "set", TRACKED, "down"),
            lambda: lab.ip(victim, "link", "set", TRACKED, "up"),
        )

    def stop() -> None:
        assert daemons[victim].terminate() == 0  # a clean stop: the same holder, sooner

    def restart() -> None:
        daemons[victim] = VrrpdProcess(lab, victim, files[victim]).start()

    return stop, restart


def _expect(lab: Lab, holders: list[int], *, changed: bool, noticed: Callable[[], bool]) -> None:
    assert until(noticed, 10), "the daemon never saw the change"
    if changed:
        assert until(lambda: lab.holders(VIP) == holders, 15), (lab.holders(VIP), holders)
        time.sleep(0.5)  # and it stays there
    else:
        time.sleep(SETTLE_S)
    assert lab.holders(VIP) == holders
