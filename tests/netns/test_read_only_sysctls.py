"""VIPs without writable sysctls, as in every Kubernetes pod: /proc/sys is read-only there,
so the daemon cannot write promote_secondaries. Without it, removing the primary address
of a subnet deletes every secondary of that subnet with it: several VIPs in a subnet the
node has no address in would vanish together when the first one moves away.

Real daemons in a lab's namespaces, each in a mount namespace of its own whose /proc/sys
is a read-only bind (the wrapper proves the write fails before it starts the daemon);
three VirtualIPs share 10.99.0.0/24, where no node has an address; their masters move
from n1 to n2 one at a time, the kernel's primary first. `ip monitor address` on n1 sees
every address the kernel deletes, so a VIP that vanished even for a moment shows.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from vrrpd.lab.daemons import VrrpdProcess
from vrrpd.lab.netns import Lab, wait_until

pytestmark = pytest.mark.root

VIPS = {"a": "10.99.0.1", "b": "10.99.0.2", "c": "10.99.0.3"}
SYSCTL = "/proc/sys/net/ipv4/conf/eth0/promote_secondaries"


def manifest(tmp: Path | None) -> str:
    """The three VirtualIPs; with `tmp`, each with a probe on file tmp/NAME (n1's copy)."""
    docs = []
    for k, (name, vip) in enumerate(VIPS.items()):
        docs.append(f"""\
apiVersion: kubevrrp.io/v1alpha1
kind: VirtualIP
metadata: {{name: {name}}}
spec:
  addresses: ["{vip}/24"]
  interface: eth0
  vrid: {61 + k}
  advertInterval: 100ms
  nodePriorities:
    - {{nodeName: n1, priority: 150}}
    - {{nodeName: n2, priority: 100}}
""")
        if tmp is not None:
            docs[-1] += f"""\
  probes:
    - {{name: moved, file: {{path: {tmp / name}}}, interval: 1s, weight: -100}}
"""
    return "---\n".join(docs)


class ReadOnlySysctlVrrpd(VrrpdProcess):
    """`vrrpd run` in a mount namespace whose /proc/sys is read-only, as in a container."""

    def start(self) -> ReadOnlySysctlVrrpd:
        argv = [
            sys.executable, "-m", "vrrpd", "run", "--config", self.config,
            "--node", self.node_name, "--log-format", "json", "--http-address", "none",
        ]  # fmt: skip
        script = (
            "mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys && "
            f"if echo 1 2>/dev/null > {SYSCTL}; then echo /proc/sys is writable >&2; exit 9; fi"
            f" && exec {shlex.join(argv)}"
        )
        env = {"PYTHONPATH": str(Path(__file__).resolve().parents[2]), "PATH": "/usr/bin:/bin"}
        with open(self.log_path, "ab") as log:
            self.proc = self.lab.run(
                self.node.netns,
                ["unshare", "--mount", "sh", "-c", script],
                stdout=subprocess.DEVNULL,
                stderr=log,
                env=env,
            )
        return self


class AddressMonitor:
    """`ip monitor address` in a namespace: every address added or deleted, in order."""

    def __init__(self, lab: Lab, netns: str) -> None:
        self.lines: list[str] = []
        self.proc = lab.run(
            netns, ["ip", "monitor", "address"], stdout=subprocess.PIPE, text=True, bufsize=1
        )
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        time.sleep(0.2)  # `ip monitor` has no ready signal; it subscribes within milliseconds

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())

    def events(self) -> list[tuple[str, str]]:
        """("added" | "deleted", VIP) for the VIPs' subnet."""
        found = []
        for line in self.lines:
            for vip in VIPS.values():
                if f" inet {vip}/" in line:
                    found.append(("deleted" if line.startswith("Deleted") else "added", vip))
        return found

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(5)


def test_vips_sharing_a_subnet_move_one_at_a_time_without_promote_secondaries(
    lab_factory: Callable[..., Lab], tmp_path: Path
) -> None:
    lab = lab_factory(2)
    for i in (1, 2):  # the kernel's default, made sure of
        off = "net.ipv4.conf.eth0.promote_secondaries=0"
        subprocess.run(["ip", "netns", "exec", lab.node(i).netns, "sysctl", "-qw", off], check=True)
        assert _sysctl(lab, i) == "0"
    for name in VIPS:
        (tmp_path / name).write_text("0")
    configs = [tmp_path / "n1.yaml", tmp_path / "n2.yaml"]
    configs[0].write_text(manifest(tmp_path))
    configs[1].write_text(manifest(None))
    monitor = AddressMonitor(lab, lab.node(1).netns)
    daemons = [ReadOnlySysctlVrrpd(lab, i, configs[i - 1]).start() for i in (1, 2)]
    try:
        all_on_n1 = wait_until(lambda: all(lab.holders(v) == [1] for v in VIPS.values()), 20)
        assert all_on_n1, daemons[0].log_text()
        time.sleep(0.5)
        # The kernel made the first VIP it got primary, the others its secondaries: the
        # primary moves first, the case that used to take the others along.
        primary = next(
            a["local"]
            for a in _addr_info(lab, 1)
            if a["local"] in VIPS.values() and not a.get("secondary")
        )
        order = [primary, *(v for v in VIPS.values() if v != primary)]
        assert _sysctl(lab, 1) == "1"  # set over netlink: /proc/sys was read-only

        for k, vip in enumerate(order):
            name = next(n for n, v in VIPS.items() if v == vip)
            (tmp_path / name).write_text("1")  # probe fails: 150 - 100 < 100, n2 takes over
            assert wait_until(lambda vip=vip: lab.holders(vip) == [2], 10), vip
            time.sleep(0.5)  # adverts at 100 ms: several rounds for anything to go wrong
            for rest in order[k + 1 :]:
                assert lab.holders(rest) == [1], f"{rest} left n1 with {vip}"
        assert all(d.running for d in daemons)
    finally:
        monitor.stop()
        for d in daemons:
            d.close()
    # The kernel's own account: each VIP added once, then deleted once on n1, in the order
    # the masters moved; none deleted along with another, none re-added. (A secondary the
    # kernel promotes to primary is reported as a new address: it was there all along.)
    events = monitor.events()
    present: set[str] = set()
    seen: set[str] = set()
    deleted = []
    for kind, vip in events:
        if kind == "added":
            assert vip in present or vip not in seen, f"{vip} came back: {events}"
            present.add(vip)
            seen.add(vip)
        else:
            assert vip in present, events
            present.remove(vip)
            deleted.append(vip)
    assert seen == set(VIPS.values()) and deleted == order, events


def _sysctl(lab: Lab, i: int) -> str:
    out = subprocess.run(
        ["ip", "netns", "exec", lab.node(i).netns, "cat", SYSCTL],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return out.stdout.strip()


def _addr_info(lab: Lab, i: int) -> list[dict[str, Any]]:
    out = subprocess.run(
        ["ip", "-n", lab.node(i).netns, "-j", "addr", "show", "dev", "eth0"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return list(json.loads(out.stdout)[0]["addr_info"])
