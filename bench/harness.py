"""The benchmarks' shared harness: their command-line options and checks, the run loop with
its progress line, the machine the figures come from, and the JSON they keep."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, is_dataclass
from typing import Any, Protocol, TextIO, TypeVar

from bench.common import no_nan
from vrrpd.lab.keepalived import keepalived_path
from vrrpd.lab.netns import Lab, LabError

C = TypeVar("C")
R = TypeVar("R")


# -- command line -----------------------------------------------------------------------------


def comma_choices(allowed: Sequence[str]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        picked = [t.strip() for t in text.split(",") if t.strip()]
        bad = [t for t in picked if t not in allowed]
        if bad or not picked:
            raise argparse.ArgumentTypeError(
                f"{text!r}: use a comma-separated subset of {','.join(allowed)}"
            )
        return picked

    return parse


def add_choices(
    parser: argparse.ArgumentParser, flag: str, allowed: Iterable[str], note: str = ""
) -> None:
    """`flag` takes a comma-separated subset of `allowed` (default: all of them)."""
    names = list(allowed)
    parser.add_argument(flag, type=comma_choices(names), default=names, help=",".join(names) + note)


def add_output(parser: argparse.ArgumentParser, what: str, *, report: bool = True) -> None:
    """--json FILE (`what` it keeps) and, with `report`, --report FILE."""
    parser.add_argument("--json", metavar="FILE", help=f"write {what} here")
    if report:
        parser.add_argument(
            "--report", metavar="FILE", help="only print the table of a run saved with --json"
        )


def exit_on_signal(signum: int, frame: object) -> None:
    # SIGTERM as SystemExit: the labs' `with` blocks then delete their namespaces.
    raise SystemExit(128 + signum)


def prepare_lab_bench(module: str, impls: Sequence[str], lab_prefix: str) -> int | None:
    """Check for root and keepalived, turn SIGTERM into SystemExit, delete labs a killed run
    left behind. None when the benchmark can run, else its exit code (2)."""
    if os.geteuid() != 0:
        print(f"{module} needs root (network namespaces)", file=sys.stderr)
        return 2
    if "keepalived" in impls and keepalived_path() is None:
        print("keepalived is not installed: apt-get install keepalived", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, exit_on_signal)
    Lab.cleanup_stale(lab_prefix)
    return None


# -- the run loop -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """One run of a failover benchmark: the same fields as its result's first four."""

    impl: str
    case: str
    advert: str
    run: int


def failover_cells(
    cases: Sequence[str], adverts: Sequence[str], impls: Sequence[str], runs: Callable[[str], int]
) -> list[Cell]:
    """Each case at each advert interval `runs(advert)` times, the implementations
    interleaved, so drift in the machine hits both."""
    return [
        Cell(impl, case, advert, index)
        for case in cases
        for advert in adverts
        for index in range(1, runs(advert) + 1)
        for impl in impls
    ]


def run_matrix(
    cells: Iterable[C],
    run: Callable[[C], R],
    failed: Callable[[C, str], R],
    progress: Callable[[R], str],
    err: TextIO | None = None,
) -> list[R]:
    """`run` each cell in order; a lab that cannot be built is `failed(cell, why)`. One
    progress line per result goes to stderr, with the seconds since the start."""
    results = []
    started = time.monotonic()
    for cell in cells:
        try:
            result = run(cell)
        except LabError as exc:
            result = failed(cell, str(exc))
        results.append(result)
        line = f"[{time.monotonic() - started:6.1f}s] {progress(result)}"
        print(line, file=err or sys.stderr, flush=True)
    return results


class Result(Protocol):
    """What a failover benchmark's run records besides its figures."""

    impl: str
    case: str
    advert: str
    run: int
    error: str


def print_report(
    title: str, info: dict[str, Any], table: str, runs: Sequence[Result], out: TextIO
) -> None:
    """The machine line, the table, and the runs that failed."""
    print(f"{title}, {format_machine(info)}", file=out)
    print(table, file=out)
    for r in runs:
        if r.error:
            print(f"FAILED {r.case} {r.advert} {r.impl} #{r.run}: {r.error}", file=out)


# -- the machine ------------------------------------------------------------------------------


def _first_line(argv: Sequence[str]) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return ""
    text = (proc.stdout or proc.stderr).strip()
    return text.splitlines()[0] if text else ""


def machine_info(*, keepalived: bool = True) -> dict[str, Any]:
    """What the figures depend on: CPUs, kernel, Python, keepalived, the load right now."""
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    info: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
    }
    if keepalived:
        binary = keepalived_path()
        info["keepalived"] = _first_line([binary, "--version"]) if binary else None
    info["loadavg"] = os.getloadavg()
    return info


def format_machine(info: dict[str, Any]) -> str:
    load = " ".join(f"{x:.2f}" for x in info["loadavg"])
    if info.get("loadavg_end"):
        load += f" at the start, {info['loadavg_end'][0]:.2f} at the end"
    keepalived = f"{info['keepalived']}; " if "keepalived" in info else ""
    return (
        f"{info['date']}; {info['cpus']} x {info['cpu_model']}; Linux {info['kernel']}; "
        f"Python {info['python']}; {keepalived}load average {load}"
    )


# -- JSON -------------------------------------------------------------------------------------


def save_json(path: str, machine: dict[str, Any], **sections: Any) -> None:
    """{"machine": ..., **sections} as JSON; dataclasses (alone or in lists) become objects
    whose NaN statistics are null."""

    def plain(value: Any) -> Any:
        if isinstance(value, list):
            return [plain(v) for v in value]
        if is_dataclass(value) and not isinstance(value, type):
            return no_nan(asdict(value))
        return value

    with open(path, "w") as f:
        data = {"machine": machine, **{k: plain(v) for k, v in sections.items()}}
        json.dump(data, f, indent=1, default=str)


def load_json(path: str) -> dict[str, Any]:
    with open(path) as f:
        data: dict[str, Any] = json.load(f)
    return data
