"""The failover benchmark: the outage a client sees when the VRRP master fails, vrrpd vs keepalived.

Each run builds a fresh two-node lab (`vrrpd.lab.netns.Lab`), starts one implementation on
both nodes (n1 priority 150, the master; n2 priority 100, the backup; VRRPv3, VRID 51,
VIP 192.168.77.100/24, multicast), waits until n1 holds the VIP and a client in a third
namespace has seen 0.5 s without a lost echo, then probes the VIP every 10 ms
(`vrrpd.lab.prober`) while it injects one fault into the master:

    link-down  the bridge-side veth of n1 goes down: n1's eth0 loses carrier (a pulled cable)
    sigterm    SIGTERM to the daemon (vrrpd: its own process; keepalived: the parent, as
               `systemctl stop` does): a planned stop, priority 0 handover
    kill-9     SIGKILL to the process holding the VIP (vrrpd: the daemon; keepalived: its
               VRRP child, started with --dont-respawn): a crash that cleans up nothing.
               The killed node is then restarted, to time how long its leftover VIP lives.

Per run it records the longest outage the client saw after the fault, the probes lost,
when the backup got the VIP and the master dropped it (from `ip monitor address` in each
node, so no polling), how long both nodes held it, and when the client's echo replies
started coming from the backup's MAC. `python -m bench.failover --help` for the options;
it prints a table (median / p95 per case, the ratio vrrpd / keepalived, the targets) and
`--json FILE` keeps every run. A benchmark: it prints figures, it never fails on them.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import math
import os
import random
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, TextIO

from bench.common import align_columns, figures, fmt_ms, median, percentile
from bench.harness import (
    add_choices,
    add_output,
    failover_cells,
    load_json,
    machine_info,
    prepare_lab_bench,
    print_report,
    run_matrix,
    save_json,
)
from vrrpd.lab.daemons import VrrpdProcess
from vrrpd.lab.keepalived import (
    KeepalivedProcess,
    render_keepalived_conf,
    start_keepalived,
)
from vrrpd.lab.netns import Lab, pid_alive, wait_until
from vrrpd.lab.prober import Prober, ProbeResult

LAB_PREFIX = "kvbench"  # Lab adds "-{pid}-{seq}"; cleanup_stale only takes dead runs' labs
VIP = "192.168.77.100"
VRID = 51
MASTER, BACKUP = 1, 2  # lab node indexes
PRIORITY = {MASTER: 150, BACKUP: 100}
IMPLS = ("vrrpd", "keepalived")
CASES = ("link-down", "sigterm", "kill-9")
ADVERTS = {"1s": 1.0, "100ms": 0.1}
DEFAULT_RUNS = {"1s": 3, "100ms": 5}

PROBE_INTERVAL = 0.01
CLEAN_WINDOW = 0.5  # the client must see this long without loss before the fault
PRE_FAULT = 0.3  # probing before the fault, inside the measured window
SETTLE = 1.0  # probing after the backup took the VIP: the client's recovery is inside it
PREFAULT_SLACK = 0.05  # a gap starting this long before the fault counts as pre-fault
RESTART_CLEANUP_TIMEOUT = 15.0

CLONE_NEWNET = 0x40000000
ETH_P_IP = 0x0800
PACKET_OUTGOING = 4
IPPROTO_VRRP = 112

# keepalived logs "(VI_1) Entering MASTER STATE"; the lab's own regex is private.
_KEEPALIVED_STATE_RE = re.compile(r"\((?P<instance>[^)]+)\) Entering (?P<state>[A-Z]+) STATE")


def skew_time(advert_s: float, priority: int = PRIORITY[BACKUP]) -> float:
    """RFC 5798 §6.1 Skew_Time = ((256 - Priority) * Master_Adver_Interval) / 256."""
    return (256 - priority) * advert_s / 256


def master_down_interval(advert_s: float, priority: int = PRIORITY[BACKUP]) -> float:
    """RFC 5798 §6.1 Master_Down_Interval = 3 * Master_Adver_Interval + Skew_Time."""
    return 3 * advert_s + skew_time(advert_s, priority)


def link_down_target(advert_s: float) -> float:
    """The link-down outage target: the backup's master_down_interval plus 50 ms."""
    return master_down_interval(advert_s) + 0.05


# -- configuration of a pair ------------------------------------------------------------------


def instance_specs(count: int) -> list[tuple[str, int, str]]:
    """(name, VRID, VIP/prefix) of each instance: one is VRID 51 / .100; more are 1..N / .101.."""
    if count == 1:
        return [("web", VRID, f"{VIP}/24")]
    if not 1 <= count <= 99:
        raise ValueError(f"count={count}: use 1..99 instances (VIPs .101 .. .199)")
    return [(f"vip-{k}", k, f"192.168.77.{100 + k}/24") for k in range(1, count + 1)]


def _duration(advert_s: float) -> str:
    cs = round(advert_s * 100)
    return f"{cs // 100}s" if cs % 100 == 0 else f"{cs * 10}ms"


def render_vrrpd_config(advert_s: float, count: int = 1) -> str:
    """One VirtualIP document per instance; both nodes load the same file."""
    docs = []
    for name, vrid, cidr in instance_specs(count):
        docs.append(
            "apiVersion: kubevrrp.io/v1alpha1\n"
            "kind: VirtualIP\n"
            f"metadata: {{name: {name}}}\n"
            "spec:\n"
            f"  addresses: [{cidr}]\n"
            f"  vrid: {vrid}\n"
            "  version: 3\n"
            "  interface: eth0\n"
            f"  advertInterval: {_duration(advert_s)}\n"
            f"  priority: {PRIORITY[BACKUP]}\n"
            "  nodePriorities:\n"
            f"    - {{nodeName: n{MASTER}, priority: {PRIORITY[MASTER]}}}\n"
            f"    - {{nodeName: n{BACKUP}, priority: {PRIORITY[BACKUP]}}}\n"
        )
    return "---\n".join(docs)


def render_keepalived_config(
    advert_s: float,
    priority: int,
    count: int = 1,
    *,
    global_extra: Sequence[str] = (),
    instance_extra: Sequence[str] = (),
) -> str:
    """keepalived.conf with one vrrp_instance (VI_1, VI_2, ...) per instance, VRRPv3.

    `global_extra` / `instance_extra`: raw lines for global_defs / every instance.
    """
    parts = []
    for k, (_, vrid, cidr) in enumerate(instance_specs(count), 1):
        text = render_keepalived_conf(
            instance=f"VI_{k}",
            vrid=vrid,
            priority=priority,
            version=3,
            advert_interval=advert_s,
            vips=[cidr],
            global_extra=global_extra,
            instance_extra=instance_extra,
        )
        # Only the first keeps its global_defs block.
        parts.append(text if k == 1 else text[text.index("vrrp_instance") :])
    return "\n".join(parts)


class Pair:
    """One implementation on nodes n1 (priority 150) and n2 (priority 100) of a lab.

    What each node loads comes from `vrrpd_config(i)` / `keepalived_config(i)`; a
    subclass overrides them to add, say, a health probe on one node.
    """

    def __init__(
        self, lab: Lab, impl: str, advert_s: float, *, count: int = 1, respawn: bool = True
    ) -> None:
        if impl not in IMPLS:
            raise ValueError(f"impl={impl!r}: use one of {', '.join(IMPLS)}")
        self.lab = lab
        self.impl = impl
        self.advert_s = advert_s
        self.count = count
        self.respawn = respawn
        self.daemons: dict[int, VrrpdProcess | KeepalivedProcess] = {}
        self._popens: list[subprocess.Popen[Any]] = []

    @property
    def instances(self) -> list[str]:
        """The instance names as each implementation logs them."""
        if self.impl == "vrrpd":
            return [f"default/{name}/ipv4" for name, _, _ in instance_specs(self.count)]
        return [f"VI_{k}" for k in range(1, self.count + 1)]

    def vrrpd_config(self, i: int) -> str:
        """The VirtualIP file node i loads: here the same for both nodes."""
        return render_vrrpd_config(self.advert_s, self.count)

    def keepalived_config(self, i: int) -> str:
        """Node i's keepalived.conf."""
        return render_keepalived_config(self.advert_s, PRIORITY[i], self.count)

    def start(self) -> Pair:
        for i in (MASTER, BACKUP):
            self.start_node(i)
        return self

    def start_node(self, i: int) -> None:
        daemon: VrrpdProcess | KeepalivedProcess
        if self.impl == "vrrpd":
            path = self.lab.workdir / f"vips-n{i}.yaml"
            path.write_text(self.vrrpd_config(i))
            daemon = VrrpdProcess(self.lab, i, path).start()
            assert daemon.proc is not None
            self._popens.append(daemon.proc)
        else:
            conf = self.keepalived_config(i)
            daemon = start_keepalived(self.lab, i, conf, respawn=self.respawn)
            self._popens.append(daemon)
        self.daemons[i] = daemon

    def states(self, i: int) -> dict[str, str]:
        """The last state each instance of node i logged."""
        daemon = self.daemons[i]
        last: dict[str, str] = {}
        if isinstance(daemon, VrrpdProcess):
            for event in daemon.transitions():
                last[event["instance"]] = event["state"]
        else:
            for match in _KEEPALIVED_STATE_RE.finditer(daemon.log()):
                last[match["instance"]] = match["state"]
        return last

    def established(self) -> bool:
        """n1 is MASTER and n2 BACKUP for every instance."""
        master, backup = self.states(MASTER), self.states(BACKUP)
        return all(
            master.get(name) == "MASTER" and backup.get(name) == "BACKUP" for name in self.instances
        )

    def pid(self, i: int) -> int | None:
        """The process that runs VRRP on node i (keepalived: its VRRP child), if alive."""
        daemon = self.daemons[i]
        if isinstance(daemon, VrrpdProcess):
            return daemon.proc.pid if daemon.running and daemon.proc is not None else None
        return daemon.vrrp_pid()

    def terminate(self, i: int) -> None:
        """SIGTERM, without waiting: vrrpd's process, keepalived's parent."""
        daemon = self.daemons[i]
        proc = daemon.proc if isinstance(daemon, VrrpdProcess) else daemon
        assert proc is not None
        proc.send_signal(signal.SIGTERM)

    def crash(self, i: int) -> None:
        """SIGKILL the process that holds the VIPs (keepalived: the VRRP child)."""
        daemon = self.daemons[i]
        if isinstance(daemon, VrrpdProcess):
            assert daemon.proc is not None
            daemon.proc.kill()
            return
        pid = daemon.wait_vrrp_pid()
        os.kill(pid, signal.SIGKILL)

    def wait_gone(self, i: int, timeout: float = 5.0) -> int | None:
        """Wait for node i's daemon (keepalived: parent and child) to exit; SIGKILL after.

        Returns its exit code, None if it had to be killed.
        """
        daemon = self.daemons[i]
        proc = daemon.proc if isinstance(daemon, VrrpdProcess) else daemon
        assert proc is not None
        code: int | None = None
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        if isinstance(daemon, KeepalivedProcess):
            child = daemon.vrrp_pid()
            if child is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGKILL)
                wait_until(lambda: not pid_alive(child), 5.0)
        return code

    def kill_all(self) -> None:
        """SIGKILL every process group this pair started (the lab deletes the VIPs after)."""
        for proc in self._popens:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        for proc in self._popens:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)


# -- who holds the VIP ------------------------------------------------------------------------


class HolderWatch:
    """When each node's eth0 gains or loses an address: `ip monitor address` per node.

    Events are stamped with time.monotonic() as their line arrives (well under a
    millisecond after the kernel's notification), the clock the benchmark injects by.
    """

    def __init__(self, lab: Lab, vip: str = VIP, nodes: Sequence[int] = (MASTER, BACKUP)):
        self.lab = lab
        self.needle = f" inet {vip}/"
        self.nodes = tuple(nodes)
        self.events: list[tuple[float, int, bool]] = []  # (time, node, now holds)
        self._cond = threading.Condition()
        self._procs: list[subprocess.Popen[str]] = []
        self._threads: list[threading.Thread] = []

    def start(self) -> HolderWatch:
        """Start watching; call before anything can add the VIP (the initial state is empty)."""
        for i in self.nodes:
            proc = self.lab.run(
                i,
                ["ip", "monitor", "address"],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                bufsize=1,
            )
            self._procs.append(proc)
            thread = threading.Thread(target=self._read, args=(i, proc), daemon=True)
            thread.start()
            self._threads.append(thread)
        time.sleep(0.2)  # `ip monitor` has no ready signal; it subscribes within milliseconds
        return self

    def _read(self, node: int, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if self.needle in line:
                now = time.monotonic()
                with self._cond:
                    self.events.append((now, node, not line.startswith("Deleted")))
                    self._cond.notify_all()

    def holders(self, at: float | None = None) -> set[int]:
        """The nodes holding the VIP at time `at` (now by default), from the events."""
        held: set[int] = set()
        with self._cond:
            for t, node, holds in self.events:
                if at is not None and t > at:
                    break
                (held.add if holds else held.discard)(node)
        return held

    def wait(self, node: int, holds: bool, after: float, timeout: float) -> float | None:
        """The time of node's first event `holds` at or after `after`; None on timeout."""
        deadline = time.monotonic() + timeout

        def find() -> float | None:
            return next(
                (t for t, n, h in self.events if n == node and h == holds and t >= after), None
            )

        with self._cond:
            while (found := find()) is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)
            return found

    def record_handover(
        self, run: Run, start: float, takeover: float | None, end: float, old: int = MASTER
    ) -> None:
        """The hand-over's times since `start` into `run`: the new holder's takeover, `old`
        letting go, and how long both held the VIP up to `end`."""
        if takeover is not None:
            run.takeover_ms = 1000 * (takeover - start)
        released = self.wait(old, False, start, 0)
        if released is not None:
            run.released_ms = 1000 * (released - start)
        run.both_held_ms = 1000 * self.both_held(start, end)

    def both_held(self, start: float, end: float) -> float:
        """Seconds within [start, end] during which two or more nodes held the VIP."""
        held: set[int] = set()
        total = 0.0
        since: float | None = None
        with self._cond:
            events = list(self.events)
        for t, node, holds in events:
            (held.add if holds else held.discard)(node)
            if len(held) >= 2 and since is None:
                since = t
            elif len(held) < 2 and since is not None:
                total += _overlap(since, t, start, end)
                since = None
        if since is not None:
            total += _overlap(since, end, start, end)
        return total

    def stop(self) -> None:
        for proc in self._procs:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        for thread in self._threads:
            thread.join(2)


def _overlap(a: float, b: float, start: float, end: float) -> float:
    return max(0.0, min(b, end) - max(a, start))


# -- the master's advert clock ---------------------------------------------------------------


def packet_socket_in(netns: str, ifname: str = "eth0") -> socket.socket:
    """An AF_PACKET socket for IPv4 on `ifname` inside namespace `netns`.

    Opened from a thread of its own: setns(2) moves only the calling thread, and that
    thread ends right after, so no other thread of the benchmark ever leaves its namespace.
    """
    result: list[socket.socket | BaseException] = []

    def work() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            with open(f"/run/netns/{netns}") as target:
                if libc.setns(target.fileno(), CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns({netns}): {os.strerror(err)}")
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
            sock.bind((ifname, ETH_P_IP))
            sock.setblocking(False)
            result.append(sock)
        except BaseException as exc:  # handed to the caller's thread
            result.append(exc)

    thread = threading.Thread(target=work, name=f"setns-{netns}")
    thread.start()
    thread.join()
    if isinstance(result[0], BaseException):
        raise result[0]
    return result[0]


def next_advert(sock: socket.socket, source: str, timeout: float) -> float | None:
    """time.monotonic() when the next VRRP packet from `source` arrives; None on timeout."""
    want = socket.inet_aton(source)
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select([sock], [], [], remaining)
        if not readable:
            return None
        while True:
            try:
                data, addr = sock.recvfrom(2048)
            except BlockingIOError:
                break
            if addr[2] == PACKET_OUTGOING or len(data) < 20:
                continue
            if data[9] == IPPROTO_VRRP and data[12:16] == want:
                return time.monotonic()
    return None


# -- one run ----------------------------------------------------------------------------------


@dataclass
class Run:
    """One fault on one freshly started pair. Times in ms, counted from the fault."""

    impl: str
    case: str
    advert: str
    run: int
    outage_ms: float | None = None  # the longest gap the client saw after the fault
    lost: int | None = None  # probes lost after the fault
    prefault_lost: int = 0  # probes lost before it (should be 0: the pair was settled)
    unrecovered: bool = False  # probing ended inside a gap
    takeover_ms: float | None = None  # VIP on the backup's eth0
    released_ms: float | None = None  # VIP off the old master's eth0 (None: it stayed)
    both_held_ms: float | None = None  # both nodes held the VIP (kill-9: until restart cleanup)
    client_switch_ms: float | None = None  # first echo reply from the backup's MAC
    since_advert_ms: float | None = None  # the master's last advert (at the client) -> fault
    restart_ms: float | None = None  # kill-9: when the killed node was restarted
    restart_cleanup_ms: float | None = None  # kill-9: restart -> leftover VIP removed
    exit_code: int | None = None  # sigterm: how the stopped daemon exited
    error: str = ""


def clean_window(lab: Lab, timeout: float = 15.0) -> bool:
    """Probe in windows of CLEAN_WINDOW until one sees no loss (True) or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        prober = Prober(lab, VIP, PROBE_INTERVAL).start()
        time.sleep(CLEAN_WINDOW)
        result = prober.stop()
        if result.received and not result.lost:
            return True
    return False


def _inject(pair: Pair, case: str) -> None:
    if case == "link-down":
        pair.lab.link_down(MASTER)
    elif case == "sigterm":
        pair.terminate(MASTER)
    elif case == "kill-9":
        pair.crash(MASTER)
    else:
        raise ValueError(f"case={case!r}: use one of {', '.join(CASES)}")


def _gap_probes(gap: float) -> int:
    return max(1, round(gap / PROBE_INTERVAL))


def score_probes(run: Run, result: ProbeResult, fault_offset: float, backup_mac: str) -> None:
    """Split the client's gaps into before / after the fault; find the switch to the backup."""
    after: list[float] = []
    for start, gap in zip(result.gap_starts, result.gaps, strict=True):
        if start < fault_offset - PREFAULT_SLACK:
            run.prefault_lost += _gap_probes(gap)
        else:
            after.append(gap)
    run.outage_ms = 1000 * max(after, default=0.0)
    run.lost = max(0, result.lost - run.prefault_lost)
    run.unrecovered = result.unrecovered
    switch = next((t for t, mac in result.answerers if mac == backup_mac), None)
    if switch is not None:
        run.client_switch_ms = 1000 * (switch - fault_offset)


def run_once(impl: str, case: str, advert: str, index: int, *, random_phase: bool = False) -> Run:
    """Build a lab, start a pair, inject `case` into the master, measure; tear it all down.

    The fault is issued as the master's advert reaches the client (`random_phase`: a
    uniformly random part of an advert interval later), so the backup's master down timer
    has its full length to run, the case the RFC bound is for.
    """
    advert_s = ADVERTS[advert]
    run = Run(impl=impl, case=case, advert=advert, run=index)
    mdi = master_down_interval(advert_s)
    with Lab(2, prefix=LAB_PREFIX, unique=True, kill_grace=0.5) as lab:
        watch = HolderWatch(lab).start()
        pair = Pair(lab, impl, advert_s, respawn=case != "kill-9")
        try:
            pair.start()
            if not wait_until(
                lambda: pair.established() and watch.holders() == {MASTER}, 2 * mdi + 10
            ):
                run.error = (
                    f"no settled pair: states n1={pair.states(MASTER)} n2={pair.states(BACKUP)}, "
                    f"VIP on {sorted(watch.holders())}"
                )
                return run
            if not clean_window(lab):
                run.error = f"the client never saw {CLEAN_WINDOW} s without loss"
                return run
            prober = Prober(lab, VIP, PROBE_INTERVAL).start()
            origin = time.monotonic()  # ~ the first probe: the prober sends right after "ready"
            time.sleep(PRE_FAULT)
            sock = packet_socket_in(lab.client.netns)
            try:
                t_advert = next_advert(sock, lab.node(MASTER).address4, 3 * advert_s + 1)
                if random_phase:
                    time.sleep(random.uniform(0, advert_s))
                t_fault = time.monotonic()
                _inject(pair, case)
            finally:
                # Only now: closing an AF_PACKET socket waits for an RCU grace period
                # (synchronize_net), which took 5-20 ms here.
                sock.close()
            if t_advert is not None:
                run.since_advert_ms = 1000 * (t_fault - t_advert)
            t_takeover = watch.wait(BACKUP, True, t_fault, mdi + 5)
            if t_takeover is None:
                run.error = f"n2 did not take the VIP within {mdi + 5:.1f} s"
            time.sleep(SETTLE)
            result = prober.stop()
            t_end = time.monotonic()
            score_probes(run, result, t_fault - origin, lab.node(BACKUP).mac)
            if case == "kill-9":
                pair.wait_gone(MASTER)
                t_restart = time.monotonic()
                run.restart_ms = 1000 * (t_restart - t_fault)
                pair.start_node(MASTER)
                t_clean = watch.wait(MASTER, False, t_restart, RESTART_CLEANUP_TIMEOUT)
                if t_clean is None:
                    run.error = run.error or (
                        f"the restarted n1 kept its leftover VIP for {RESTART_CLEANUP_TIMEOUT} s"
                    )
                    t_end = time.monotonic()
                else:
                    run.restart_cleanup_ms = 1000 * (t_clean - t_restart)
                    t_end = t_clean
            elif case == "sigterm":
                run.exit_code = pair.wait_gone(MASTER, timeout=mdi + 5)
                t_end = max(t_end, time.monotonic())
            watch.record_handover(run, t_fault, t_takeover, t_end)
        finally:
            watch.stop()
            pair.kill_all()
    return run


# -- statistics and the table -----------------------------------------------------------------


@dataclass
class Row:
    """The summary of the runs of one (case, advert, impl)."""

    case: str
    advert: str
    impl: str
    runs: int
    failed: int
    outage_median_ms: float
    outage_p95_ms: float
    lost_median: float
    lost_max: float
    takeover_median_ms: float
    both_held_median_ms: float
    client_switch_median_ms: float
    restart_cleanup_median_ms: float
    exit_codes: list[int | None]
    ratio: float | None = None  # vrrpd / keepalived median outage (on the vrrpd row)
    target: str = ""


def summarize_runs(runs: Sequence[Run]) -> list[Row]:
    rows: list[Row] = []
    for case in CASES:
        for advert in ADVERTS:
            group: dict[str, Row] = {}
            for impl in IMPLS:
                mine = [r for r in runs if (r.case, r.advert, r.impl) == (case, advert, impl)]
                if not mine:
                    continue
                outages = figures(mine, "outage_ms")
                lost = figures(mine, "lost")
                group[impl] = Row(
                    case=case,
                    advert=advert,
                    impl=impl,
                    runs=len(mine),
                    failed=sum(1 for r in mine if r.error),
                    outage_median_ms=median(outages),
                    outage_p95_ms=percentile(outages, 95),
                    lost_median=median(lost),
                    lost_max=max(lost, default=math.nan),
                    takeover_median_ms=median(figures(mine, "takeover_ms")),
                    both_held_median_ms=median(figures(mine, "both_held_ms")),
                    client_switch_median_ms=median(figures(mine, "client_switch_ms")),
                    restart_cleanup_median_ms=median(figures(mine, "restart_cleanup_ms")),
                    exit_codes=[r.exit_code for r in mine if r.case == "sigterm"],
                )
            ours, theirs = group.get("vrrpd"), group.get("keepalived")
            if ours is not None and theirs is not None and theirs.outage_median_ms > 0:
                ours.ratio = ours.outage_median_ms / theirs.outage_median_ms
            if ours is not None:
                ours.target = _target(ours, ADVERTS[advert])
            rows += group.values()
    return rows


def _target(row: Row, advert_s: float) -> str:
    def verdict(ok: bool) -> str:
        return "ok" if ok else "MISS"

    if row.case == "link-down":
        limit = 1000 * link_down_target(advert_s)
        text = f"p95 ≤ {limit:.0f} ms {verdict(row.outage_p95_ms <= limit)}"
        if row.ratio is not None:
            text += f"; ratio ≤ 1.05 {verdict(row.ratio <= 1.05)}"
        return text
    if row.case == "sigterm":
        clean = all(code == 0 for code in row.exit_codes)
        return f"0 lost {verdict(row.lost_max == 0)}" + (
            "" if clean else f"; exit {row.exit_codes}"
        )
    return ""


def format_table(rows: Sequence[Row], *, random_phase: bool = False) -> str:
    header = (
        "case",
        "advert",
        "impl",
        "runs",
        "outage med ms",
        "p95 ms",
        "lost med",
        "takeover ms",
        "2 holders ms",
        "client→n2 ms",
        "restart→clean ms",
        "ours/ka",
        "target",
    )
    lines = [header]
    for row in rows:
        runs = f"{row.runs}" + (f" ({row.failed} failed)" if row.failed else "")
        lines.append(
            (
                row.case,
                row.advert,
                row.impl,
                runs,
                fmt_ms(row.outage_median_ms),
                fmt_ms(row.outage_p95_ms),
                "-" if math.isnan(row.lost_median) else f"{row.lost_median:g}",
                fmt_ms(row.takeover_median_ms),
                fmt_ms(row.both_held_median_ms),
                fmt_ms(row.client_switch_median_ms),
                fmt_ms(row.restart_cleanup_median_ms),
                "" if row.ratio is None else f"{row.ratio:.2f}",
                row.target,
            )
        )
    out = align_columns(lines, numeric=range(3, 12))
    bounds = ", ".join(
        f"{name}: {1000 * master_down_interval(s):.0f} ms" for name, s in ADVERTS.items()
    )
    phase = (
        "a random part of an advert interval after the master's advert reaches the client"
        if random_phase
        else "as the master's advert reaches the client (the worst case for link-down and kill-9)"
    )
    out += [
        "",
        f"RFC 5798 bound for link down (3 x advert + skew of the priority-{PRIORITY[BACKUP]} "
        f"backup): {bounds}; target: bound + 50 ms.",
        f"Each fault comes {phase}. Medians over the runs.",
        "outage: longest run of unanswered 10 ms echoes after the fault, as a client sees it.",
        "takeover: fault -> VIP on n2's eth0. 2 holders: both nodes had the VIP (kill-9: until "
        "the restarted n1 removed its leftover).",
        "client→n2: fault -> first echo reply from n2's MAC. restart→clean (kill-9): n1's daemon "
        f"restarted {SETTLE:g} s after the takeover -> its leftover VIP gone.",
        "ours/ka: ratio of the median outages, vrrpd / keepalived.",
    ]
    return "\n".join(out)


# -- command line -----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.failover",
        description="Failover outage seen by a client, vrrpd vs keepalived, in network "
        "namespaces (root). Prints a table; never fails on the figures.",
    )
    add_choices(parser, "--cases", CASES)
    add_choices(parser, "--impls", IMPLS)
    add_choices(parser, "--adverts", ADVERTS)
    parser.add_argument(
        "--runs", type=int, default=None, help="repetitions per case (default: 3 at 1s, 5 at 100ms)"
    )
    parser.add_argument("--quick", action="store_true", help="one repetition per case")
    parser.add_argument(
        "--random-phase",
        action="store_true",
        help="inject each fault a random part of an advert interval after the master's "
        "advert (default: right after it, the worst case)",
    )
    add_output(parser, "every run and the summary")
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    args = build_parser().parse_args(argv)
    if args.report:
        saved = load_json(args.report)
        runs = [Run(**r) for r in saved["runs"]]
        report(runs, saved["machine"], bool(saved.get("random_phase")), out)
        return 0
    if (code := prepare_lab_bench("bench.failover", args.impls, LAB_PREFIX)) is not None:
        return code
    info = machine_info()
    runs = run_matrix(
        failover_cells(
            args.cases,
            args.adverts,
            args.impls,
            lambda advert: 1 if args.quick else (args.runs or DEFAULT_RUNS[advert]),
        ),
        lambda c: run_once(c.impl, c.case, c.advert, c.run, random_phase=args.random_phase),
        lambda c, error: Run(**asdict(c), error=error),
        _progress,
    )
    info["loadavg_end"] = os.getloadavg()
    rows = report(runs, info, args.random_phase, out)
    if args.json:
        save_json(args.json, info, random_phase=args.random_phase, runs=runs, summary=rows)
    return 0


def report(runs: Sequence[Run], info: dict[str, Any], random_phase: bool, out: TextIO) -> list[Row]:
    """Print the machine line, the table and the failed runs; returns the table's rows."""
    rows = summarize_runs(runs)
    table = format_table(rows, random_phase=random_phase)
    print_report("failover benchmark", info, table, runs, out)
    return rows


def _progress(run: Run) -> str:
    text = (
        f"{run.case:9} {run.advert:5} {run.impl:10} #{run.run}: "
        f"outage {fmt_ms(run.outage_ms)} ms, lost {run.lost}, "
        f"takeover {fmt_ms(run.takeover_ms)} ms, released {fmt_ms(run.released_ms)} ms, "
        f"2 holders {fmt_ms(run.both_held_ms)} ms, client→n2 {fmt_ms(run.client_switch_ms)} ms"
    )
    if run.restart_cleanup_ms is not None:
        text += f", restart→cleanup {fmt_ms(run.restart_cleanup_ms)} ms"
    if run.prefault_lost:
        text += f", {run.prefault_lost} lost BEFORE the fault"
    if run.unrecovered:
        text += ", UNRECOVERED"
    if run.error:
        text += f" ERROR {run.error}"
    return text


if __name__ == "__main__":
    sys.exit(main())
