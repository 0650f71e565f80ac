"""The control-plane VIP: how long requests through it fail when its holder fails.

One lab for the whole run (`vrrpd.lab.control_plane.ControlPlaneLab`): three control-plane
nodes n1..n3, each with a kube-apiserver (the envtest assets in KUBEBUILDER_ASSETS) bound to
0.0.0.0:6443 and the daemon `vrrpd control-plane` configured with its defaults (VRRPv3
unicast, adverts every 200 ms, /readyz probed every second, fall 2, weight 1 - 100), one etcd
on n4, a client. Each run waits until every probe passes and the client sees no failure,
then waits a random part of a second (the probe's phase) and fails the VIP's holder:

    apiserver-stop  SIGTERM to its kube-apiserver (as the kubelet stops a static pod); the
                    daemon's probe sees /readyz fail and the VIP moves
    apiserver-kill  SIGKILL to its kube-apiserver (a crash)
    link-down       its bridge port goes down: its eth0 loses carrier (a pulled cable)
    daemon-stop     SIGTERM to its vrrpd (the static pod removed or replaced): the
                    make-before-break handover

Meanwhile the client sends GET /api/v1/namespaces/default through https://VIP:6443 every
20 ms, each on a new TCP + TLS connection with the admin's client certificate (what a
`kubectl get` run does), each allowed 1 s. Lost time = from the first request that failed to
the first one that succeeded again (vrrpd.lab.prober.summarize; exact to one interval); when
the VIP moved = the new holder's address event (`ip monitor address`). The failed node is
then repaired (its kube-apiserver restarted, its link up, its daemon restarted) and the next
run fails whichever node holds the VIP then: with equal priorities it does not move back.

`python -m bench.control_plane --help` for the options. A benchmark: it prints figures and
never fails on them (tests/netns/test_control_plane.py checks the behaviour).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from bench.common import align_columns, figures, fmt_ms, median, percentile
from bench.failover import HolderWatch
from bench.harness import (
    add_choices,
    add_output,
    format_machine,
    load_json,
    machine_info,
    prepare_lab_bench,
    run_matrix,
    save_json,
)
from vrrpd.controlplane.render import (
    DEFAULT_ADVERT_CS,
    PROBE_FALL,
    PROBE_INTERVAL_CS,
)
from vrrpd.lab.control_plane import ControlPlaneLab, HttpsProber
from vrrpd.lab.netns import Lab, LabError, wait_until
from vrrpd.lab.prober import summarize

CASES = ("apiserver-stop", "apiserver-kill", "link-down", "daemon-stop")
DEFAULT_RUNS = 5
LAB_PREFIX = "kvcp"
VIP = "192.168.77.100"
NODES = (1, 2, 3)
ETCD = 4
REQUEST_INTERVAL_S = 0.02
REQUEST_TIMEOUT_S = 1.0
CLEAN_S = 1.0  # requests all answered for this long before a fault
AFTER_S = 2.0  # requests kept going after the VIP moved (the timeout plus a margin)


@dataclass
class CpRun:
    case: str
    run: int
    old: int = 0  # the node failed
    new: int = 0  # the node that took the VIP
    lost_ms: float | None = None  # the longest run of failed requests after the fault
    failed: int = 0  # requests sent after the fault that failed
    moved_ms: float | None = None  # fault -> the VIP added on the new holder
    unrecovered: bool = False
    error: str = ""


def _fault(cp: ControlPlaneLab, case: str, node: int) -> None:
    if case == "apiserver-stop":
        cp.api.stop_apiserver(node, signal.SIGTERM)
    elif case == "apiserver-kill":
        cp.api.stop_apiserver(node, signal.SIGKILL)
    elif case == "link-down":
        cp.lab.link_down(node)
    elif case == "daemon-stop":
        cp.stop_daemon(node)
    else:
        raise ValueError(f"case={case!r}: use one of {', '.join(CASES)}")


def _repair(cp: ControlPlaneLab, case: str, node: int) -> None:
    if case.startswith("apiserver-"):
        cp.api.start_apiserver(node)
    elif case == "link-down":
        cp.lab.link_up(node)
    else:
        cp.start_daemon(node)


def _settled(cp: ControlPlaneLab, prober: HttpsProber) -> bool:
    """Every probe passes, and the client's requests of a whole CLEAN_S all succeeded."""
    return cp.wait_healthy(60) and wait_until(lambda: prober.clean(CLEAN_S), 20, 0.1)


def run_once(cp: ControlPlaneLab, case: str, index: int) -> CpRun:
    result = CpRun(case, index)
    watch = HolderWatch(cp.lab, VIP, NODES).start()
    prober = HttpsProber(
        cp.lab.client.netns,
        VIP,
        cp.api.ssl_context(),
        interval=REQUEST_INTERVAL_S,
        timeout=REQUEST_TIMEOUT_S,
    ).start()
    fault_at: float | None = None
    try:
        if not _settled(cp, prober):
            raise LabError(f"no clean window before the fault:\n{cp.logs()}")
        # Only now: until every probe passes the VIP may still move (to the first node
        # whose kube-apiserver is ready, right after the lab starts).
        old = result.old = cp.holder()
        time.sleep(random.uniform(0, PROBE_INTERVAL_CS / 100))
        fault_at = time.monotonic()
        _fault(cp, case, old)
        if not wait_until(lambda: cp.holders() not in ([], [old]), 30, 0.02):
            raise LabError(f"the VIP stayed on n{old}:\n{cp.logs()}")
        result.new = cp.holder()
        if (added := watch.wait(result.new, True, fault_at, 5)) is not None:
            result.moved_ms = (added - fault_at) * 1000
        time.sleep(AFTER_S)
    finally:
        probes = prober.stop()
        watch.stop()
        if fault_at is not None:  # whatever happened, the next run needs the node back
            _repair(cp, case, result.old)
    lost_s, result.failed = lost_after(prober.sends(), fault_at, REQUEST_INTERVAL_S)
    result.lost_ms = lost_s * 1000
    result.unrecovered = probes.unrecovered
    if not cp.wait_healthy(90):
        raise LabError(f"n{result.old} did not recover after {case}:\n{cp.logs()}")
    return result


def lost_after(
    sends: Sequence[tuple[float, bool]], fault_at: float, interval: float
) -> tuple[float, int]:
    """(seconds, requests): the longest run of failed requests that was still going on at
    `fault_at` or began after it, and how many requests failed in those runs. A request in
    flight when the fault came counts from when it was sent."""
    if not sends:
        return 0.0, 0
    probes = summarize([t for t, _ in sends], [ok for _, ok in sends], interval)
    origin = sends[0][0]
    spans = [
        (origin + start, origin + start + gap)
        for start, gap in zip(probes.gap_starts, probes.gaps, strict=True)
        if origin + start + gap > fault_at
    ]
    failed = sum(1 for t, ok in sends if not ok and any(a <= t < b for a, b in spans))
    return max((b - a for a, b in spans), default=0.0), failed


@dataclass
class Row:
    case: str
    runs: int
    lost_median_ms: float
    lost_p95_ms: float
    lost_max_ms: float
    failed_median: float
    moved_median_ms: float


def summarize_runs(runs: Sequence[CpRun]) -> list[Row]:
    rows = []
    for case in dict.fromkeys(r.case for r in runs):
        mine = [r for r in runs if r.case == case]
        lost = figures(mine, "lost_ms")
        rows.append(
            Row(
                case=case,
                runs=len(lost),
                lost_median_ms=median(lost),
                lost_p95_ms=percentile(lost, 95),
                lost_max_ms=max(lost, default=float("nan")),
                failed_median=median(figures(mine, "failed")),
                moved_median_ms=median(figures(mine, "moved_ms")),
            )
        )
    return rows


def format_table(rows: Sequence[Row]) -> str:
    lines = [
        ["case", "runs", "lost med ms", "p95 ms", "max ms", "failed requests med", "VIP moved ms"]
    ]
    for r in rows:
        lines.append(
            [
                r.case,
                str(r.runs),
                fmt_ms(r.lost_median_ms),
                fmt_ms(r.lost_p95_ms),
                fmt_ms(r.lost_max_ms),
                fmt_ms(r.failed_median),
                fmt_ms(r.moved_median_ms),
            ]
        )
    settings = (
        f"adverts {DEFAULT_ADVERT_CS * 10} ms, /readyz every {PROBE_INTERVAL_CS * 10} ms, "
        f"fall {PROBE_FALL}; a request every {REQUEST_INTERVAL_S * 1000:.0f} ms, "
        f"timeout {REQUEST_TIMEOUT_S:g} s"
    )
    return "\n".join([settings, *align_columns(lines, numeric=range(1, 7))])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.control_plane",
        description="How long requests through the control-plane VIP fail when the node "
        "holding it fails, in front of real kube-apiservers in network namespaces (root, "
        "KUBEBUILDER_ASSETS). Prints a table; never fails on the figures.",
    )
    add_choices(parser, "--cases", CASES)
    parser.add_argument(
        "--runs", type=int, default=DEFAULT_RUNS, help=f"repetitions per case ({DEFAULT_RUNS})"
    )
    parser.add_argument("--quick", action="store_true", help="one repetition per case")
    parser.add_argument(
        "--shutdown-delay",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="kube-apiserver --shutdown-delay-duration (default 0, kubeadm's): how long a "
        "stopping API server keeps serving while its /readyz already fails",
    )
    add_output(parser, "every run and the summary")
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    args = build_parser().parse_args(argv)
    if args.report:
        saved = load_json(args.report)
        report([CpRun(**r) for r in saved["runs"]], saved["machine"], out)
        return 0
    folder = os.environ.get("KUBEBUILDER_ASSETS", "")
    binaries = ("etcd", "kube-apiserver")
    if not folder or not all(os.access(Path(folder) / b, os.X_OK) for b in binaries):
        print(
            "bench.control_plane needs KUBEBUILDER_ASSETS: a folder with the etcd and "
            "kube-apiserver binaries (`setup-envtest use 1.36 -p path`)",
            file=sys.stderr,
        )
        return 2
    if (code := prepare_lab_bench("bench.control_plane", ["vrrpd"], LAB_PREFIX)) is not None:
        return code
    info = machine_info(keepalived=False)
    info["shutdown_delay_s"] = args.shutdown_delay
    count = 1 if args.quick else args.runs
    cells = [(case, k) for k in range(1, count + 1) for case in args.cases]
    with Lab(len(NODES) + 1, prefix=LAB_PREFIX, unique=True) as lab:
        cp = ControlPlaneLab(
            lab,
            Path(folder),
            vip=VIP,
            nodes=NODES,
            etcd_node=ETCD,
            apiserver_args=[f"--shutdown-delay-duration={args.shutdown_delay:g}s"],
        )
        cp.start_daemons()
        cp.api.start()
        runs = run_matrix(
            cells,
            lambda cell: run_once(cp, *cell),
            lambda cell, error: CpRun(*cell, error=error),
            _progress,
        )
    info["loadavg_end"] = os.getloadavg()
    rows = report(runs, info, out)
    if args.json:
        save_json(args.json, info, runs=runs, summary=rows)
    return 0


def report(runs: Sequence[CpRun], info: dict[str, Any], out: TextIO) -> list[Row]:
    """Print the machine line, the table and the failed runs; returns the table's rows."""
    rows = summarize_runs(runs)
    print(f"control-plane VIP benchmark, {format_machine(info)}", file=out)
    delay = info.get("shutdown_delay_s", 0.0)
    print(f"kube-apiserver --shutdown-delay-duration={delay:g}s; {format_table(rows)}", file=out)
    for r in runs:
        if r.error:
            print(f"FAILED {r.case} #{r.run}: {r.error}", file=out)
    return rows


def _progress(run: CpRun) -> str:
    text = (
        f"{run.case:14} #{run.run}: n{run.old} -> n{run.new}, lost {fmt_ms(run.lost_ms)} ms "
        f"({run.failed} requests), VIP moved after {fmt_ms(run.moved_ms)} ms"
    )
    if run.unrecovered:
        text += ", UNRECOVERED"
    if run.error:
        text += f" ERROR {run.error}"
    return text


if __name__ == "__main__":
    sys.exit(main())
