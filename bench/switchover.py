"""Planned switchover: moving the VIP on purpose, vrrpd's `vrrpd switchover` against
keepalived's way (edit the priorities on both nodes and reload both).

Each run builds a fresh two-node lab as `bench.failover` does (n1 priority 150, the master;
n2 100; VRRPv3, VRID 51, VIP 192.168.77.100/24, multicast), waits until n1 holds the VIP
and a client sees 0.5 s without a lost echo, then probes the VIP every 10 ms
(`vrrpd.lab.prober`) while it moves the VIP to n2:

    vrrpd       `vrrpd switchover` run in n2's namespace (a Python process that asks the
                daemon on its control socket; its start-up is inside the figures)
    keepalived  n1's keepalived.conf rewritten to priority 100 and n2's to 150, then
                SIGHUP to n1's keepalived and at once to n2's, as a script over ssh would

It records the probes lost and the longest outage after the request, when the VIP reached
n2's eth0 and left n1's (`ip monitor address`), how long both held it, and when the
client's first echo reply came from n2's MAC. `python -m bench.switchover --help`; it
prints a table (medians, the maximum of the lost probes) and never fails on the figures.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, TextIO

from bench.common import align_columns, figures, fmt_ms, median
from bench.failover import (
    ADVERTS,
    BACKUP,
    CLEAN_WINDOW,
    IMPLS,
    LAB_PREFIX,
    MASTER,
    PRE_FAULT,
    PROBE_INTERVAL,
    SETTLE,
    VIP,
    HolderWatch,
    Pair,
    Run,
    clean_window,
    master_down_interval,
    render_keepalived_config,
    score_probes,
)
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
from vrrpd.lab.keepalived import KeepalivedProcess
from vrrpd.lab.netns import Lab, wait_until
from vrrpd.lab.prober import Prober

CASE = "move"
DEFAULT_RUNS = {"1s": 3, "100ms": 5}
SWAPPED = {MASTER: 100, BACKUP: 150}  # keepalived's edit: n2 above n1


def _switch(pair: Pair) -> str:
    """Move the VIP to n2 the implementation's way; an error text, or ""."""
    if pair.impl == "vrrpd":
        daemon = pair.daemons[BACKUP]
        assert isinstance(daemon, VrrpdProcess)
        done = daemon.switchover()
        return "" if done.returncode == 0 else f"vrrpd switchover: {done.stderr.strip()}"
    for i in (MASTER, BACKUP):
        keepalived = pair.daemons[i]
        assert isinstance(keepalived, KeepalivedProcess)
        keepalived.conf_path.write_text(render_keepalived_config(pair.advert_s, SWAPPED[i]))
    for i in (MASTER, BACKUP):
        pair.daemons[i].send_signal(signal.SIGHUP)  # type: ignore[union-attr]
    return ""


def run_once(impl: str, advert: str, index: int) -> Run:
    """Build a lab, start a pair, move the VIP from n1 to n2, measure; tear it all down."""
    advert_s = ADVERTS[advert]
    run = Run(impl=impl, case=CASE, advert=advert, run=index)
    mdi = master_down_interval(advert_s)
    with Lab(2, prefix=LAB_PREFIX, unique=True, kill_grace=0.5) as lab:
        watch = HolderWatch(lab).start()
        pair = Pair(lab, impl, advert_s)
        try:
            pair.start()
            if not wait_until(
                lambda: pair.established() and watch.holders() == {MASTER}, 2 * mdi + 10
            ):
                run.error = f"no settled pair: VIP on {sorted(watch.holders())}"
                return run
            if not clean_window(lab):
                run.error = f"the client never saw {CLEAN_WINDOW} s without loss"
                return run
            prober = Prober(lab, VIP, PROBE_INTERVAL).start()
            origin = time.monotonic()
            time.sleep(PRE_FAULT)
            t_ask = time.monotonic()
            run.error = _switch(pair)
            t_takeover = watch.wait(BACKUP, True, t_ask, 2 * mdi + 5)
            if t_takeover is None and not run.error:
                run.error = f"n2 did not take the VIP within {2 * mdi + 5:.1f} s"
            time.sleep(SETTLE)
            result = prober.stop()
            t_end = time.monotonic()
            score_probes(run, result, t_ask - origin, lab.node(BACKUP).mac)
            watch.record_handover(run, t_ask, t_takeover, t_end)
        finally:
            watch.stop()
            pair.kill_all()
    return run


@dataclass
class Row:
    advert: str
    impl: str
    runs: int
    failed: int
    lost_max: float
    outage_median_ms: float
    takeover_median_ms: float
    released_median_ms: float
    both_held_median_ms: float
    client_switch_median_ms: float


def summarize_runs(runs: Sequence[Run]) -> list[Row]:
    rows = []
    for advert in ADVERTS:
        for impl in IMPLS:
            mine = [r for r in runs if (r.advert, r.impl) == (advert, impl)]
            if not mine:
                continue
            rows.append(
                Row(
                    advert=advert,
                    impl=impl,
                    runs=len(mine),
                    failed=sum(1 for r in mine if r.error),
                    lost_max=max(figures(mine, "lost"), default=math.nan),
                    outage_median_ms=median(figures(mine, "outage_ms")),
                    takeover_median_ms=median(figures(mine, "takeover_ms")),
                    released_median_ms=median(figures(mine, "released_ms")),
                    both_held_median_ms=median(figures(mine, "both_held_ms")),
                    client_switch_median_ms=median(figures(mine, "client_switch_ms")),
                )
            )
    return rows


def format_table(rows: Sequence[Row]) -> str:
    header = ("advert", "impl", "runs", "lost max", "outage med ms", "VIP on n2 ms",
              "off n1 ms", "2 holders ms", "client→n2 ms")  # fmt: skip
    lines: list[Sequence[str]] = [header]
    for row in rows:
        lines.append(
            (
                row.advert,
                row.impl,
                f"{row.runs}" + (f" ({row.failed} failed)" if row.failed else ""),
                "-" if math.isnan(row.lost_max) else f"{row.lost_max:g}",
                fmt_ms(row.outage_median_ms),
                fmt_ms(row.takeover_median_ms),
                fmt_ms(row.released_median_ms),
                fmt_ms(row.both_held_median_ms),
                fmt_ms(row.client_switch_median_ms),
            )
        )
    out = align_columns(lines, numeric=range(2, 9))
    out += [
        "",
        "vrrpd: `vrrpd switchover` in n2 (its Python start-up included). keepalived: both "
        "nodes' priorities edited (n1 100, n2 150) and both reloaded (SIGHUP).",
        "lost max: the most 10 ms echoes lost after the request in any run; outage: the "
        "longest run of them (median over runs).",
        "VIP on n2 / off n1: request -> the VIP on n2's eth0 / off n1's. 2 holders: both had "
        "it. client→n2: request -> first echo reply from n2's MAC. Medians.",
    ]
    return "\n".join(out)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.switchover",
        description="Planned switchover, vrrpd switchover vs keepalived's edit-and-reload, "
        "in network namespaces (root). Prints a table; never fails on the figures.",
    )
    add_choices(parser, "--impls", IMPLS)
    add_choices(parser, "--adverts", ADVERTS)
    parser.add_argument(
        "--runs", type=int, default=None, help="repetitions (default: 3 at 1s, 5 at 100ms)"
    )
    add_output(parser, "every run and the summary")
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    args = build_parser().parse_args(argv)
    if args.report:
        saved = load_json(args.report)
        report([Run(**r) for r in saved["runs"]], saved["machine"], out)
        return 0
    if (code := prepare_lab_bench("bench.switchover", args.impls, LAB_PREFIX)) is not None:
        return code
    info = machine_info()
    runs = run_matrix(
        failover_cells(
            [CASE], args.adverts, args.impls, lambda advert: args.runs or DEFAULT_RUNS[advert]
        ),
        lambda c: run_once(c.impl, c.advert, c.run),
        lambda c, error: Run(**asdict(c), error=error),
        _progress,
    )
    info["loadavg_end"] = os.getloadavg()
    rows = report(runs, info, out)
    if args.json:
        save_json(args.json, info, runs=runs, summary=rows)
    return 0


def report(runs: Sequence[Run], info: dict[str, Any], out: TextIO) -> list[Row]:
    rows = summarize_runs(runs)
    print_report("switchover benchmark", info, format_table(rows), runs, out)
    return rows


def _progress(run: Run) -> str:
    text = (
        f"{run.advert:5} {run.impl:10} #{run.run}: lost {run.lost}, outage "
        f"{fmt_ms(run.outage_ms)} ms, VIP on n2 {fmt_ms(run.takeover_ms)} ms, off n1 "
        f"{fmt_ms(run.released_ms)} ms, client→n2 {fmt_ms(run.client_switch_ms)} ms"
    )
    if run.prefault_lost:
        text += f", {run.prefault_lost} lost BEFORE the request"
    if run.error:
        text += f" ERROR {run.error}"
    return text


if __name__ == "__main__":
    sys.exit(main())
