"""How fast `vrrpd run` starts, and how soon it removes what a killed predecessor left.

`python -m bench.startup` builds a one-node lab per run, puts a VIP on n1's eth0 marked as
a vrrpd's (IFA_PROTO 0x56, through pyroute2: what a daemon killed with SIGKILL leaves),
then execs `vrrpd run` in n1 and times, from the exec (the Popen of `ip netns exec`):

    clean     the leftover VIP gone (`ip monitor address` in n1)
    joined    the instance joined as BACKUP (its log line's timestamp)
    advert    its first advert on the wire (seen from the client); alone, it becomes
              master after Master_Down_Interval (3 x 100 ms + skew) of that
    RSS       VmRSS one second after the first advert

and, as the floor of this machine, the interpreter alone run the same way (exec -> exit of
`python -c "import os; os._exit(0)"`: start-up and site, no teardown);
"clean - python" is, run by run, what the daemon adds to that floor before the VIP goes.
`--checkouts main=/path,branch=.` runs the daemon of each checkout (its directory first on
PYTHONPATH), interleaved run by run, so that before and after come from the same run.
A benchmark: it prints figures and never fails on them.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench.common import align_columns, fmt_ms, median, percentile
from bench.failover import VIP, HolderWatch, next_advert, packet_socket_in, render_vrrpd_config
from bench.harness import exit_on_signal, format_machine, machine_info
from vrrpd.lab.netns import Lab, LabError

LAB_PREFIX = "kvstart"
ROOT = Path(__file__).resolve().parents[1]
MARKED_VIP = f"""
from pyroute2 import IPRoute
with IPRoute() as ipr:
    ipr.addr("add", index=ipr.link_lookup(ifname="eth0")[0], address="{VIP}", prefixlen=24,
             proto=0x56)
"""


@dataclass
class Run:
    checkout: str
    run: int
    interpreter_ms: float | None = None
    clean_ms: float | None = None
    joined_ms: float | None = None
    advert_ms: float | None = None
    rss_mb: float | None = None
    error: str = ""


@dataclass
class Row:
    checkout: str
    runs: int
    values: dict[str, list[float]] = field(default_factory=dict)


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _joined(log: Path, exec_wall: float) -> float | None:
    for line in log.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("state") == "BACKUP":
            at = datetime.strptime(entry["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
            return 1000 * (at.timestamp() - exec_wall)
    return None


def run_once(checkout: str, path: Path, index: int, python: str = sys.executable) -> Run:
    run = Run(checkout=checkout, run=index)
    env = dict(os.environ, PYTHONPATH=str(path))
    with (
        tempfile.TemporaryDirectory() as workdir,
        Lab(1, prefix=LAB_PREFIX, unique=True, workdir=workdir) as lab,
    ):
        node = lab.node(1)
        t0 = time.monotonic()
        # cwd too: `python -m` puts the current directory first on sys.path.
        floor = [python, "-c", "import os; os._exit(0)"]  # start-up, no teardown
        lab.run(node.netns, floor, env=env, cwd=path).wait(10)
        run.interpreter_ms = 1000 * (time.monotonic() - t0)
        config = Path(workdir) / "vip.yaml"
        config.write_text(render_vrrpd_config(0.1))
        log = Path(workdir) / "vrrpd.log"
        watch = HolderWatch(lab, VIP, nodes=(1,)).start()
        sock = packet_socket_in(lab.client.netns)
        try:
            lab.run(node.netns, [sys.executable, "-c", MARKED_VIP]).wait(10)
            if watch.wait(1, True, 0, 5) is None:
                run.error = "the leftover VIP was not in place"
                return run
            argv = [
                python, "-m", "vrrpd", "run", "--config", str(config), "--node", "n1",
                "--log-format", "json", "--http-address", "none",
            ]  # fmt: skip
            with open(log, "ab") as stderr:
                exec_wall, t_exec = time.time(), time.monotonic()
                proc = lab.run(node.netns, argv, env=env, cwd=path, stderr=stderr,
                               stdout=subprocess.DEVNULL)  # fmt: skip
            t_clean = watch.wait(1, False, t_exec, 10)
            if t_clean is not None:
                run.clean_ms = 1000 * (t_clean - t_exec)
            t_advert = next_advert(sock, node.address4, 10)
            if t_advert is not None:
                run.advert_ms = 1000 * (t_advert - t_exec)
                time.sleep(1)
                run.rss_mb = _rss_mb(proc.pid)
            run.joined_ms = _joined(log, exec_wall)
            if None in (run.clean_ms, run.advert_ms, run.joined_ms):
                run.error = "missing: " + log.read_text(errors="replace")[-400:]
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
        finally:
            sock.close()
            watch.stop()
    return run


def summarize(runs: Sequence[Run]) -> list[Row]:
    rows: dict[str, Row] = {}
    for r in runs:
        row = rows.setdefault(r.checkout, Row(r.checkout, 0))
        if r.error:
            continue
        row.runs += 1
        for name in ("interpreter_ms", "clean_ms", "joined_ms", "advert_ms", "rss_mb"):
            value = getattr(r, name)
            if value is not None:
                row.values.setdefault(name, []).append(value)
        if r.clean_ms is not None and r.interpreter_ms is not None:
            row.values.setdefault("beyond_ms", []).append(r.clean_ms - r.interpreter_ms)
    return list(rows.values())


def format_table(rows: Sequence[Row]) -> str:
    header = ["checkout", "runs", "python ms", "clean med ms", "clean p95 ms",
              "clean - python ms", "joined med ms", "first advert med ms", "RSS MB",
              "target (clean)"]  # fmt: skip
    lines = [header]
    for row in rows:
        v = row.values
        clean = median(v.get("clean_ms", []))
        lines.append([
            row.checkout, str(row.runs), fmt_ms(median(v.get("interpreter_ms", []))),
            fmt_ms(clean), fmt_ms(percentile(v.get("clean_ms", []), 95)),
            fmt_ms(median(v.get("beyond_ms", []))), fmt_ms(median(v.get("joined_ms", []))),
            fmt_ms(median(v.get("advert_ms", []))),
            f"{median(v.get('rss_mb', [])):.1f}",
            f"≤ 50 ms {'ok' if clean <= 50 else 'missed'}",
        ])  # fmt: skip
    return "\n".join(align_columns(lines, numeric=range(1, 9)))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.startup",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument(
        "--checkouts",
        default=f"this={ROOT}",
        help="NAME=DIR,...: whose vrrpd to run (default: this checkout)",
    )
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="the interpreter that runs the daemon (a venv with only its dependencies "
        "shows the start-up without this machine's site-packages hooks)",
    )
    parser.add_argument("--json", help="write every run to this file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if os.geteuid() != 0:
        print("bench.startup needs root (network namespaces)", file=sys.stderr)
        return 2
    checkouts = []
    for item in args.checkouts.split(","):
        name, _, path = item.rpartition("=")
        checkouts.append((name or path, Path(path).resolve()))
    signal.signal(signal.SIGTERM, exit_on_signal)
    Lab.cleanup_stale(LAB_PREFIX)
    info = machine_info(keepalived=False)
    runs = []
    for index in range(1, args.runs + 1):
        for name, path in checkouts:  # interleaved, so drift in the machine hits both
            try:
                run = run_once(name, path, index, args.python)
            except LabError as exc:
                run = Run(checkout=name, run=index, error=str(exc))
            runs.append(run)
            progress = f"clean {run.clean_ms} ms, joined {run.joined_ms} ms, advert {run.advert_ms}"
            print(f"{name} #{index}: {progress} ms {run.error}", file=sys.stderr, flush=True)
    info["loadavg_end"] = os.getloadavg()
    print(f"start-up benchmark, {format_machine(info)}; daemon run by {args.python}")
    print(format_table(summarize(runs)))
    for r in runs:
        if r.error:
            print(f"FAILED {r.checkout} #{r.run}: {r.error}")
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in runs], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
