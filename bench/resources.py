"""Resource use of a running VRRP daemon: RSS from /proc/PID/status, CPU from /proc/PID/stat.

`python -m bench.resources` starts each implementation (vrrpd, keepalived) on both nodes of
a fresh two-node lab in two setups, one instance at 1 s adverts and 50 instances at 100 ms
(VRIDs 1..50, VIPs 192.168.77.101..150, one file / one keepalived.conf), waits until n1 is
master of every instance and its second gratuitous-ARP burst (5 s) is over, then measures
the master and the backup over one window (20 s by default):

    RSS   VmRSS at the end of the window (VmHWM, the peak, goes to --json)
    CPU   (utime + stime) used during the window / the window, in % of one core

Both are summed over the process and its descendants (our daemon has none; for keepalived
the process is its VRRP child, the one that runs the instances). A benchmark: it prints
the figures next to the targets and never fails on them.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TextIO

from bench.common import align_columns
from bench.failover import BACKUP, IMPLS, MASTER, Pair, master_down_interval
from bench.harness import (
    add_choices,
    add_output,
    format_machine,
    machine_info,
    prepare_lab_bench,
    run_matrix,
    save_json,
)
from vrrpd.lab.daemons import VrrpdProcess
from vrrpd.lab.netns import Lab, wait_until

LAB_PREFIX = "kvres"
CLK_TCK = os.sysconf("SC_CLK_TCK")
# name -> (instances, advert interval in seconds)
SETUPS: dict[str, tuple[int, float]] = {"1x1s": (1, 1.0), "50x100ms": (50, 0.1)}
RSS_TARGET_MB = 60.0
CPU_TARGET_PERCENT = {"1x1s": 1.0, "50x100ms": 15.0}
_ENTERING_RE = re.compile(r"\) Entering [A-Z]+ STATE")


# -- /proc ------------------------------------------------------------------------------------


def _status_value(pid: int, key: str) -> int:
    """A numeric field of /proc/PID/status (the Vm* ones are in KiB)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(f"{key}:"):
                return int(line.split()[1])  # "VmRSS:	   41236 kB"
    return 0  # a kernel thread or a zombie has no Vm* lines


def rss_kib(pid: int) -> int:
    """Resident set size now (VmRSS), KiB."""
    return _status_value(pid, "VmRSS")


def peak_rss_kib(pid: int) -> int:
    """The highest resident set size so far (VmHWM), KiB."""
    return _status_value(pid, "VmHWM")


def cpu_seconds(pid: int) -> float:
    """utime + stime of the whole process (all its threads) so far, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        # Fields after the parenthesised name (which may hold spaces): state is field 3,
        # utime field 14, stime field 15.
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def descendants(pid: int) -> list[int]:
    """pid and every process below it (from /proc/PID/task/*/children)."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as f:
                    queue += [int(p) for p in f.read().split()]
    return found


@dataclass
class Usage:
    """What one daemon (with its descendants) used over one window."""

    pid: int
    processes: int
    window_s: float
    cpu_percent: float  # of one core
    rss_mb: float  # 10^6 bytes
    peak_rss_mb: float
    threads: int


def measure(pids: Mapping[str, int], window: float) -> dict[str, Usage]:
    """Sample every daemon at the start and the end of one common window."""
    trees = {name: descendants(pid) for name, pid in pids.items()}

    def cpu(name: str) -> float:
        return sum(_cpu_or_zero(p) for p in trees[name])

    start = time.monotonic()
    before = {name: cpu(name) for name in pids}
    time.sleep(window)
    after = {name: cpu(name) for name in pids}
    elapsed = time.monotonic() - start
    usage = {}
    for name, pid in pids.items():
        tree = trees[name]
        usage[name] = Usage(
            pid=pid,
            processes=len(tree),
            window_s=elapsed,
            cpu_percent=100 * (after[name] - before[name]) / elapsed,
            rss_mb=sum(rss_kib(p) for p in tree) * 1024 / 1e6,
            peak_rss_mb=sum(peak_rss_kib(p) for p in tree) * 1024 / 1e6,
            threads=_status_value(pid, "Threads"),
        )
    return usage


def _cpu_or_zero(pid: int) -> float:
    try:
        return cpu_seconds(pid)
    except (OSError, IndexError, ValueError):
        return 0.0  # exited during the window


# -- one setup --------------------------------------------------------------------------------


@dataclass
class Measurement:
    """One implementation in one setup: the master's and the backup's usage."""

    impl: str
    setup: str
    instances: int
    advert_s: float
    usage: dict[str, Usage] = field(default_factory=dict)  # "master", "backup"
    transitions_in_window: int = 0  # state changes logged during the window (0: no flaps)
    error: str = ""


def _transition_count(pair: Pair, i: int) -> int:
    daemon = pair.daemons[i]
    if isinstance(daemon, VrrpdProcess):
        return len(daemon.transitions())
    return len(_ENTERING_RE.findall(daemon.log()))


def measure_setup(impl: str, setup: str, *, window: float, settle: float) -> Measurement:
    """Start a pair in a fresh lab, let it settle, measure master and backup over `window`."""
    count, advert_s = SETUPS[setup]
    result = Measurement(impl=impl, setup=setup, instances=count, advert_s=advert_s)
    with Lab(2, prefix=LAB_PREFIX, unique=True, kill_grace=0.5) as lab:
        pair = Pair(lab, impl, advert_s, count=count)
        try:
            pair.start()
            if not wait_until(pair.established, 2 * master_down_interval(advert_s) + 20):
                result.error = (
                    f"no settled pair: n1 {_state_counts(pair, MASTER)}, "
                    f"n2 {_state_counts(pair, BACKUP)}"
                )
                return result
            time.sleep(settle)
            pids = {"master": pair.pid(MASTER), "backup": pair.pid(BACKUP)}
            if None in pids.values():
                result.error = f"a daemon is not running: {pids}"
                return result
            before = _transition_count(pair, MASTER) + _transition_count(pair, BACKUP)
            result.usage = measure({k: v for k, v in pids.items() if v is not None}, window)
            after = _transition_count(pair, MASTER) + _transition_count(pair, BACKUP)
            result.transitions_in_window = after - before
            if not pair.established():
                result.error = "the pair did not stay settled during the window"
        finally:
            pair.kill_all()
    return result


def _state_counts(pair: Pair, i: int) -> dict[str, int]:
    counts: dict[str, int] = {}
    for state in pair.states(i).values():
        counts[state] = counts.get(state, 0) + 1
    return counts


# -- the table --------------------------------------------------------------------------------


def format_table(results: Sequence[Measurement]) -> str:
    by = {(m.impl, m.setup): m for m in results}
    impls = [i for i in IMPLS if any(m.impl == i for m in results)]
    setups = [s for s in SETUPS if any(m.setup == s for m in results)]
    header = ["setup", "node"]
    for impl in impls:
        header += [f"{impl} RSS MB", f"{impl} CPU %"]
    header.append("target (vrrpd)")
    lines = [header]
    for setup in setups:
        for node in ("master", "backup"):
            line = [setup, node]
            for impl in impls:
                m = by.get((impl, setup))
                u = m.usage.get(node) if m is not None else None
                line += ["-", "-"] if u is None else [f"{u.rss_mb:.1f}", f"{u.cpu_percent:.2f}"]
            line.append(_target(by.get(("vrrpd", setup)), node, setup))
            lines.append(line)
    out = align_columns(lines, numeric=range(2, len(header) - 1))
    out += [
        "",
        "RSS: VmRSS at the end of the window (MB = 10^6 bytes); CPU: utime+stime over the "
        "window, % of one core; keepalived: its VRRP child process.",
    ]
    return "\n".join(out)


def _target(m: Measurement | None, node: str, setup: str) -> str:
    if m is None or node not in m.usage:
        return ""
    u = m.usage[node]
    cpu_limit = CPU_TARGET_PERCENT[setup]
    rss = "ok" if u.rss_mb <= RSS_TARGET_MB else "MISS"
    cpu = "ok" if u.cpu_percent <= cpu_limit else "MISS"
    return f"RSS ≤ {RSS_TARGET_MB:g} MB {rss}; CPU ≤ {cpu_limit:g} % {cpu}"


# -- command line -----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.resources",
        description="RSS and CPU of vrrpd and keepalived as master and backup, in network "
        "namespaces (root). Prints a table; never fails on the figures.",
    )
    add_choices(parser, "--setups", SETUPS, " (instances x advert interval)")
    add_choices(parser, "--impls", IMPLS)
    parser.add_argument("--window", type=float, default=20.0, help="seconds measured")
    parser.add_argument(
        "--settle",
        type=float,
        default=6.0,
        help="seconds between the pair settling and the window (past the 5 s GARP burst)",
    )
    add_output(parser, "every measurement", report=False)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    args = build_parser().parse_args(argv)
    if (code := prepare_lab_bench("bench.resources", args.impls, LAB_PREFIX)) is not None:
        return code
    info = machine_info()
    results = run_matrix(
        [(impl, setup) for setup in args.setups for impl in args.impls],
        lambda c: measure_setup(*c, window=args.window, settle=args.settle),
        lambda c, error: Measurement(*c, *SETUPS[c[1]], error=error),
        _progress,
    )
    info["loadavg_end"] = os.getloadavg()
    print(f"resource benchmark, {format_machine(info)}; window {args.window:g} s", file=out)
    print(format_table(results), file=out)
    for m in results:
        if m.error or m.transitions_in_window:
            print(
                f"NOTE {m.setup} {m.impl}: {m.error or ''} "
                f"{m.transitions_in_window} state changes during the window",
                file=out,
            )
    if args.json:
        save_json(args.json, info, results=results)
    return 0


def _progress(m: Measurement) -> str:
    parts = [
        f"{node}: RSS {u.rss_mb:.1f} MB (peak {u.peak_rss_mb:.1f}), CPU {u.cpu_percent:.2f} %, "
        f"{u.threads} threads, {u.processes} process(es)"
        for node, u in m.usage.items()
    ]
    text = f"{m.setup:9} {m.impl:10} " + "; ".join(parts)
    if m.error:
        text += f" ERROR {m.error}"
    return text


if __name__ == "__main__":
    sys.exit(main())
