"""Cluster mode against a real API server: requests per daemon at steady state, and how soon a
ConfigMap change reaches the daemon (issue 9).

    sudo -E KUBEBUILDER_ASSETS=/path/to/envtest python -m bench.kube [--baseline DIR]

Each run starts etcd + kube-apiserver (tests/envtest.py, with its audit log), installs the
chart's daemon ServiceAccount and Role (helm template), and runs `vrrpd run --kube` on lab
nodes (network namespaces) with that ServiceAccount's token, reaching the API server through
the UNIX-socket relay of tests/realapi/daemons.py. One VirtualIP (100 ms adverts); node n1
has the highest priority.

- steady state: after the election has settled, the requests each daemon made in a window
  (default 60 s), from the API server's audit log (a request counts when the server
  received it; the watch a daemon holds from before the window is not a request of it);
  the daemons' RSS and CPU over the same window;
- change -> reload: n1's ConfigMap gets a new priority (n1 stays master: applied in place),
  timed from just before the write to the daemon's "configuration applied" log line, and
  to the new priority in its pod's status annotation; `--changes` times (default 20).

`--baseline DIR` runs the same first with the vrrpd (and the chart's daemon Role) of another
checkout (e.g. `git worktree add /tmp/before <commit>`), so the figures before and after come
from the same run. It never asserts: tests/realapi/test_daemon_kube.py checks behaviour.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from bench.common import align_columns, fmt_ms, percentile
from bench.harness import add_output, format_machine, machine_info, prepare_lab_bench, save_json
from bench.resources import cpu_seconds, rss_kib
from tests.envtest import ApiServer, assets
from tests.realapi.daemons import (
    ClusterNodes,
    cluster_nodes,
    first_after,
    log_time,
    virtualip,
    wait_report,
)

LAB_PREFIX = "kvkb"
WEB = "default/web/ipv4"


@dataclass
class Result:
    impl: str  # "vrrpd", or "baseline" (--baseline DIR)
    nodes: int
    window_s: float
    requests_per_min: list[float] = field(default_factory=list)  # per daemon
    request_kinds: dict[str, int] = field(default_factory=dict)  # verb + resource: count
    reload_ms: list[float] = field(default_factory=list)  # write -> "configuration applied"
    report_ms: list[float] = field(default_factory=list)  # write -> priority in the report
    missed_changes: int = 0
    rss_mb: list[float] = field(default_factory=list)
    cpu_percent: list[float] = field(default_factory=list)
    error: str | None = None


def run(api: ApiServer, impl: str, args: argparse.Namespace) -> Result:
    result = Result(impl, args.nodes, args.window)
    baseline = args.baseline if impl == "baseline" else None
    chart = (baseline or Path(__file__).resolve().parents[1]) / "charts" / "kube-vrrp"
    with cluster_nodes(api, args.nodes, LAB_PREFIX, chart) as cluster:
        names = [n.name for n in cluster.lab.nodes]
        for i, node in enumerate(names, 1):
            cluster.set_config(node, [config(node, 150 if i == 1 else 100 - i)])
            cluster.create_pod(node)
            cluster.start(i, baseline=baseline)
        for i, node in enumerate(names, 1):
            state = "MASTER" if i == 1 else "BACKUP"
            wait_report(cluster, node, lambda r, s=state: _state(r) == s, 30)
        time.sleep(args.settle)
        steady(cluster, names, result, args.window, per_node=baseline is None)
        changes(cluster, result, args.changes)
    return result


def config(node: str, priority: int) -> dict[str, Any]:
    return virtualip("web", "192.168.77.100/24", 51, priority, node)


def _state(report: dict[str, Any]) -> str | None:
    return next((i["state"] for i in report.get("instances", []) if i["name"] == WEB), None)


def steady(
    cluster: ClusterNodes, names: list[str], result: Result, window: float, *, per_node: bool
) -> None:
    pids = {node: cluster.daemons[node].proc.pid for node in names}  # type: ignore[union-attr]
    cpu0 = {node: cpu_seconds(pid) for node, pid in pids.items()}
    t0 = time.time()
    time.sleep(window)
    t1 = time.time()
    elapsed = t1 - t0
    for node, pid in pids.items():
        result.cpu_percent.append(100 * (cpu_seconds(pid) - cpu0[node]) / elapsed)
        result.rss_mb.append(rss_kib(pid) * 1024 / 1e6)
    # An earlier vrrpd sends no user agent naming its node: its requests are shared out.
    made = {n: cluster.requests(n, t0, t1) for n in names} if per_node else {}
    if not per_node:
        every = cluster.requests(None, t0, t1)
        made = {n: every[i :: len(names)] for i, n in enumerate(names)}
    for requests in made.values():
        result.requests_per_min.append(len(requests) * 60 / elapsed)
        for r in requests:
            verb, uri = r.split(" ", 1)
            kind = f"{verb} {uri.split('?')[0].rsplit('/', 2)[-2]}"
            result.request_kinds[kind] = result.request_kinds.get(kind, 0) + 1


def changes(cluster: ClusterNodes, result: Result, count: int) -> None:
    daemon = cluster.daemons["n1"]
    for k in range(count):
        priority = 160 + k % 2  # n1 stays master: an in-place change for this vrrpd
        t0 = cluster.set_config("n1", [config("n1", priority)])
        applied = None
        deadline = time.monotonic() + 10
        while applied is None and time.monotonic() < deadline:
            applied = first_after(
                daemon, t0, lambda e: str(e.get("msg", "")).startswith("configuration applied")
            )
            time.sleep(0.01)
        if applied is None:
            result.missed_changes += 1
            continue
        result.reload_ms.append(1000 * (log_time(applied) - t0))
        try:
            wait_report(cluster, "n1", lambda r, p=priority: _priority(r) == p, 10)
            result.report_ms.append(1000 * (time.time() - t0))
        except AssertionError:
            result.missed_changes += 1
        time.sleep(0.5)


def _priority(report: dict[str, Any]) -> int | None:
    return next((i["priority"] for i in report.get("instances", []) if i["name"] == WEB), None)


def format_table(results: list[Result]) -> str:
    header = ["impl", "daemons", "req/min/daemon med", "max", "requests in the window",
              "change->reload p50 ms", "p95", "max", "change->report p50 ms", "RSS MB",
              "CPU %", "target"]  # fmt: skip
    lines = [header]
    for r in results:
        if r.error:
            lines.append([r.impl, str(r.nodes), "-", "-", f"FAILED: {r.error}", *["-"] * 7])
            continue
        med = statistics.median(r.requests_per_min) if r.requests_per_min else float("nan")
        top = max(r.requests_per_min, default=float("nan"))
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(r.request_kinds.items())) or "none"
        p50, worst = percentile(r.reload_ms, 50), max(r.reload_ms, default=float("nan"))
        missed = f"; {r.missed_changes} change(s) not seen in 10 s" if r.missed_changes else ""
        target = ""
        if r.impl == "vrrpd":
            ok_rate = "ok" if top <= 1 else "MISSED"
            ok_reload = "ok" if p50 <= 500 else "MISSED"
            target = f"req/min <= 1 {ok_rate}; reload p50 <= 500 ms {ok_reload}"
        lines.append([
            r.impl, str(r.nodes), f"{med:.1f}", f"{top:.1f}", kinds,
            fmt_ms(p50), fmt_ms(percentile(r.reload_ms, 95)), fmt_ms(worst),
            fmt_ms(percentile(r.report_ms, 50)),
            f"{statistics.median(r.rss_mb):.1f}", f"{statistics.median(r.cpu_percent):.2f}",
            target + missed,
        ])  # fmt: skip
    return "\n".join(align_columns(lines, numeric={1, 2, 3, 5, 6, 7, 8, 9, 10}))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.kube", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--nodes", type=int, default=3, help="lab nodes, one daemon each (2..9)")
    parser.add_argument("--window", type=float, default=60.0, help="steady-state window, s")
    parser.add_argument("--settle", type=float, default=5.0, help="wait after the election, s")
    parser.add_argument("--changes", type=int, default=20, help="ConfigMap changes timed")
    parser.add_argument("--baseline", type=Path, help="a checkout whose vrrpd runs first")
    add_output(parser, "every figure", report=False)
    return parser


def main(argv: list[str] | None = None, out: TextIO = sys.stdout) -> int:
    args = build_parser().parse_args(argv)
    if assets() is None:
        print("bench.kube needs KUBEBUILDER_ASSETS (etcd, kube-apiserver)", file=sys.stderr)
        return 2
    if args.baseline is not None and not (args.baseline / "vrrpd" / "cli.py").exists():
        print(f"--baseline {args.baseline}: no vrrpd checkout there", file=sys.stderr)
        return 2
    refused = prepare_lab_bench("bench.kube", [], LAB_PREFIX)
    if refused is not None:
        return refused
    info = machine_info(keepalived=False)
    results = []
    with ApiServer.start() as api:
        for impl in (["baseline"] if args.baseline else []) + ["vrrpd"]:
            try:
                results.append(run(api, impl, args))
            except Exception as exc:  # one failed run must not hide the other's figures
                why = " ".join(str(exc).split())[:300]  # one line in the table
                results.append(Result(impl, args.nodes, args.window, error=why))
            print(f"{impl}: done", file=sys.stderr, flush=True)
    info["loadavg_end"] = os.getloadavg()
    print(f"cluster-mode benchmark, {format_machine(info)}; window {args.window:g} s", file=out)
    print(format_table(results), file=out)
    if args.json:
        save_json(args.json, info, results=results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
