"""`vrrpd lab`: a VRRP failover on one machine, in network namespaces, measured by a client.

Builds N nodes and a client on one bridge, runs vrrpd on every node from an embedded
VirtualIP, shows who holds the VIP, fails the master (link down, daemon stop or crash),
prints the outage the client saw, restores the node and removes everything it created,
also on Ctrl-C. The switchover scenario fails nothing: it moves the VIP on purpose to
the lowest-priority node (`vrrpd switchover` there) and releases it again.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TextIO

from vrrpd.lab.daemons import VrrpdProcess
from vrrpd.lab.netns import Lab, LabError, wait_until
from vrrpd.lab.prober import Prober

VIP = "192.168.77.100"
INSTANCE = "default/demo/ipv4"
SCENARIOS = ("link-down", "daemon-stop", "kill", "switchover")


def demo_manifest(nodes: int, interval: str) -> str:
    # n1 gets the highest priority, then 20 less per node: the election is predictable.
    priorities = "\n".join(
        f"    - {{nodeName: n{i}, priority: {170 - 20 * i}}}" for i in range(1, nodes + 1)
    )
    return f"""\
# The VirtualIP the lab runs: one VIP, VRRPv3, every node a candidate.
apiVersion: kubevrrp.io/v1alpha1
kind: VirtualIP
metadata: {{name: demo}}
spec:
  addresses: ["{VIP}/24"]
  vrid: 51
  advertInterval: {interval}
  preempt: {{mode: Always}}
  nodePriorities:
{priorities}
"""


class Demo:
    def __init__(self, nodes: int, interval: str, out: TextIO) -> None:
        self.nodes = nodes
        self.interval = interval
        self.out = out
        self.lab: Lab | None = None
        self.daemons: dict[int, VrrpdProcess] = {}
        self.config: Path | None = None
        self.priorities = {i: 170 - 20 * i for i in range(1, nodes + 1)}

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def table(self, title: str) -> None:
        assert self.lab is not None
        holders = self.lab.holders(VIP)
        self.say(f"\n{title}")
        self.say(f"  {'NODE':<6}{'ADDRESS':<16}{'STATE':<10}{'PRIORITY':<10}VIP")
        for i, d in sorted(self.daemons.items()):
            state = d.state(INSTANCE) if d.running else "stopped"
            node = self.lab.node(i)
            mark = f"holds {VIP}" if i in holders else ""
            self.say(
                f"  n{i:<5}{node.address4:<16}{state or '-':<10}{self.priorities[i]:<10}{mark}"
            )

    def master(self) -> int | None:
        masters = [
            i for i, d in self.daemons.items() if d.running and d.state(INSTANCE) == "MASTER"
        ]
        return masters[0] if len(masters) == 1 else None

    def holds(self, node: int) -> bool:
        """`node` is the only master and the only holder of the VIP."""
        assert self.lab is not None
        return self.master() == node and self.lab.holders(VIP) == [node]

    def wait(self, predicate: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
        if not wait_until(predicate, timeout, 0.02):
            raise LabError(f"timed out after {timeout:.0f} s waiting for {what}")

    def run(self, scenario: str) -> int:
        with Lab(self.nodes, prefix="kvlab", unique=True) as lab:
            self.lab = lab
            self.config = Path(lab.workdir) / "virtualip.yaml"
            self.config.write_text(demo_manifest(self.nodes, self.interval))
            self.say(f"lab: {self.nodes} nodes on one bridge ({lab.prefix}-*), client "
                     f"{lab.client.address4}; VirtualIP {VIP}/24, VRID 51, adverts every "
                     f"{self.interval}")  # fmt: skip
            for i in range(1, self.nodes + 1):
                self.daemons[i] = VrrpdProcess(lab, i, self.config).start()
            self.wait(lambda: self.master() is not None and lab.holders(VIP) != [],
                      "a master")  # fmt: skip
            time.sleep(0.3)
            self.table("elected:")
            master = self.master()
            assert master is not None
            if scenario == "switchover":
                self.switchover(master)
            else:
                self.failover(master, scenario)
            for d in self.daemons.values():
                if d.running:
                    d.terminate()
        self.say("\nlab removed: namespaces, links and processes are gone")
        return 0

    def failover(self, master: int, scenario: str) -> None:
        """Fail the master under the client's probes, then restore it."""
        lab = self.lab
        assert lab is not None
        with Prober(lab, VIP) as prober:
            time.sleep(0.5)
            self.say(f"\nfailing the master n{master}: {self.describe(scenario)}")
            self.fail(master, scenario)
            # After a crash the dead node's kernel still has the VIP: only the new
            # master's gratuitous ARP moves the client's traffic.
            crashed = scenario == "kill"
            self.wait(lambda: (m := self.master()) is not None and m != master
                      and (crashed or lab.holders(VIP) == [m]), "a new master")  # fmt: skip
            time.sleep(1.0)
        result = prober.stop()
        self.table("after the failure:")
        self.say(
            f"\nclient {lab.client.address4} probed {VIP} every 10 ms: "
            f"{result.lost} of {result.sent} probes lost, longest outage "
            f"{result.max_outage * 1000:.0f} ms"
        )
        if scenario == "kill":
            self.say(f"n{master}'s kernel still has {VIP} (nobody removed it); the restarted "
                     "vrrpd removes it before it joins")  # fmt: skip
        self.restore(master, scenario)
        self.wait(lambda: self.master() == master and lab.holders(VIP) == [master],
                  f"n{master} to take the VIP back")  # fmt: skip
        time.sleep(0.3)
        self.table(f"n{master} restored (preempt Always: the higher priority takes over):")

    def switchover(self, master: int) -> None:
        """Move the VIP to the last node and back, each time under the client's probes."""
        assert self.lab is not None
        lab, target = self.lab, self.nodes
        steps = [
            (f"n{target}: vrrpd switchover (take the VIP and hold it)", False, target),
            (f"n{target}: vrrpd switchover --release (the ordinary rules again)", True, master),
        ]
        for what, release, holder in steps:
            with Prober(lab, VIP) as prober:
                time.sleep(0.5)
                self.say(f"\n{what}")
                done = self.daemons[target].switchover(release=release)
                if done.returncode != 0:
                    raise LabError(f"vrrpd switchover failed: {done.stderr.strip()}")
                self.say("  " + done.stdout.strip())
                self.wait(partial(self.holds, holder), f"n{holder} to hold the VIP")
                time.sleep(0.5)
            result = prober.stop()
            self.table(f"n{holder} holds {VIP}:")
            self.say(f"\nclient {lab.client.address4} probed {VIP} every 10 ms: {result.lost} "
                     f"of {result.sent} probes lost (make before break)")  # fmt: skip
            if not release:
                time.sleep(1.0)
                if not self.holds(holder):
                    raise LabError(f"n{holder} lost the VIP it was asked to hold")
                self.say(f"1 s later n{holder} still holds it: n{master}, higher and preempt "
                         "Always, does not take it back from a hold")  # fmt: skip

    @staticmethod
    def describe(scenario: str) -> str:
        return {
            "link-down": "its link loses carrier (cable pulled)",
            "daemon-stop": "vrrpd gets SIGTERM (planned stop: priority 0, make-before-break)",
            "kill": "vrrpd gets SIGKILL (crash: the VIP stays behind until a restart)",
        }[scenario]

    def fail(self, node: int, scenario: str) -> None:
        assert self.lab is not None
        if scenario == "link-down":
            self.lab.link_down(node)
        elif scenario == "daemon-stop":
            self.daemons[node].terminate()
        else:
            self.daemons[node].kill()

    def restore(self, node: int, scenario: str) -> None:
        assert self.lab is not None and self.config is not None
        self.say(f"\nrestoring n{node}")
        if scenario == "link-down":
            self.lab.link_up(node)
        else:
            self.daemons[node] = VrrpdProcess(self.lab, node, self.config).start()


def main(nodes: int, scenario: str, interval: str, out: TextIO = sys.stdout) -> int:
    if os.geteuid() != 0:
        print("vrrpd lab: needs root (network namespaces): run it with sudo", file=sys.stderr)
        return 1
    if shutil.which("ip") is None:
        print("vrrpd lab: needs iproute2's `ip` (apt-get install iproute2)", file=sys.stderr)
        return 1
    if not 2 <= nodes <= 9:
        print(f"vrrpd lab: --nodes {nodes}: use 2..9", file=sys.stderr)
        return 1
    try:
        return Demo(nodes, interval, out).run(scenario)
    except KeyboardInterrupt:
        print("\ninterrupted: lab removed", file=sys.stderr)
        return 130
    except LabError as exc:
        print(f"vrrpd lab: {exc}", file=sys.stderr)
        return 1
