"""The benchmarks' shared harness (bench/harness.py), without a lab: the run order, failed
runs, the progress line, the JSON a run keeps and the tables printed again from it."""

from __future__ import annotations

import io
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench import failover, probe_failover, resources, split_brain, switchover
from bench.harness import (
    Cell,
    failover_cells,
    format_machine,
    load_json,
    machine_info,
    run_matrix,
    save_json,
)
from vrrpd.lab.netns import LabError

MACHINE = {
    "date": "2026-01-01 00:00:00 UTC",
    "cpus": 2,
    "cpu_model": "Test CPU",
    "kernel": "6.1",
    "python": "3.11.7",
    "keepalived": "Keepalived v2.2.7",
    "loadavg": [0.5, 0.4, 0.3],
    "loadavg_end": [0.7, 0.5, 0.3],
}


def test_failover_cells_interleave_the_implementations_run_by_run() -> None:
    cells = failover_cells(["link-down"], ["1s", "100ms"], ["vrrpd", "keepalived"], len)
    assert [(c.advert, c.run, c.impl) for c in cells] == [
        ("1s", 1, "vrrpd"),
        ("1s", 1, "keepalived"),
        ("1s", 2, "vrrpd"),
        ("1s", 2, "keepalived"),
        *[("100ms", k, impl) for k in range(1, 6) for impl in ("vrrpd", "keepalived")],
    ]


def test_run_matrix_records_a_lab_error_as_a_failed_run_and_goes_on() -> None:
    def run(cell: int) -> str:
        if cell == 2:
            raise LabError("no namespace")
        return f"ran {cell}"

    err = io.StringIO()
    results = run_matrix([1, 2, 3], run, lambda c, why: f"{c} failed: {why}", str.upper, err)
    assert results == ["ran 1", "2 failed: no namespace", "ran 3"]
    lines = err.getvalue().splitlines()
    assert [line.split("] ", 1)[1] for line in lines] == [r.upper() for r in results]
    assert all(line.startswith("[") and line.split("]")[0].endswith("s") for line in lines)


def test_run_matrix_lets_other_errors_through() -> None:
    def run(cell: int) -> int:
        raise ValueError("a bug, not a lab")

    with pytest.raises(ValueError, match="a bug, not a lab"):
        run_matrix([1], run, lambda c, why: 0, str, io.StringIO())


@dataclass
class _Row:
    name: str
    median_ms: float


def test_save_json_keeps_the_order_and_writes_nan_as_null(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    rows = [_Row("a", 1.5), _Row("b", math.nan)]
    save_json(str(path), MACHINE, phase="random", summary=rows)
    data = json.loads(path.read_text(), parse_constant=lambda name: pytest.fail(name))
    assert list(data) == ["machine", "phase", "summary"]
    assert data["summary"] == [{"name": "a", "median_ms": 1.5}, {"name": "b", "median_ms": None}]
    assert load_json(str(path)) == data


def test_machine_line_names_keepalived_only_when_asked() -> None:
    assert format_machine(MACHINE) == (
        "2026-01-01 00:00:00 UTC; 2 x Test CPU; Linux 6.1; Python 3.11.7; Keepalived v2.2.7; "
        "load average 0.50 0.40 0.30 at the start, 0.70 at the end"
    )
    info = machine_info(keepalived=False)
    assert "keepalived" not in info
    assert "None" not in format_machine(info) and "load average" in format_machine(info)


def _failover_runs() -> list[failover.Run]:
    return [
        failover.Run(
            **vars(Cell(impl, "link-down", "1s", 1)),
            outage_ms=3600.0 + k,
            lost=360,
            takeover_ms=3610.0,
            both_held_ms=0.0,
            client_switch_ms=3612.0,
        )
        for k, impl in enumerate(failover.IMPLS)
    ] + [failover.Run(**vars(Cell("vrrpd", "sigterm", "1s", 1)), error="no settled pair")]


def test_a_saved_failover_run_prints_the_same_report_again(tmp_path: Path) -> None:
    runs = _failover_runs()
    first = io.StringIO()
    rows = failover.report(runs, MACHINE, False, first)
    path = tmp_path / "failover.json"
    save_json(str(path), MACHINE, random_phase=False, runs=runs, summary=rows)
    again = io.StringIO()
    assert failover.main(["--report", str(path)], out=again) == 0
    assert again.getvalue() == first.getvalue()
    text = first.getvalue()
    assert text.startswith(f"failover benchmark, {format_machine(MACHINE)}\n")
    assert "p95 ≤ 3659 ms ok; ratio ≤ 1.05 ok" in text
    assert "FAILED sigterm 1s vrrpd #1: no settled pair" in text


def test_a_saved_probe_failover_run_prints_the_same_report_again(tmp_path: Path) -> None:
    runs = [
        probe_failover.ProbeRun(
            **vars(Cell(impl, "file", "100ms", 1)),
            phase="after-check",
            client_switch_ms=200.0,
            outage_ms=0.0,
            lost=0,
            detect_ms=190.0,
            reaction_ms=10.0,
            takeover_ms=195.0,
        )
        for impl in failover.IMPLS
    ]
    first = io.StringIO()
    rows = probe_failover.report(runs, MACHINE, "after-check", first)
    path = tmp_path / "probe.json"
    save_json(str(path), MACHINE, phase="after-check", runs=runs, summary=rows)
    again = io.StringIO()
    assert probe_failover.main(["--report", str(path)], out=again) == 0
    assert again.getvalue() == first.getvalue()
    assert "right after one of n1's checks" in first.getvalue()
    assert "≤ 1150 ms: p95 ok, worst ok" in first.getvalue()


def test_resources_table_columns() -> None:
    usage = resources.Usage(
        pid=1, processes=1, window_s=20, cpu_percent=0.5, rss_mb=41.3, peak_rss_mb=41.3, threads=1
    )
    measured = [
        resources.Measurement(impl, "1x1s", 1, 1.0, usage={"master": usage, "backup": usage})
        for impl in failover.IMPLS
    ]
    lines = resources.format_table(measured).splitlines()
    assert re.split(r"\s{2,}", lines[0]) == [
        "setup",
        "node",
        "vrrpd RSS MB",
        "vrrpd CPU %",
        "keepalived RSS MB",
        "keepalived CPU %",
        "target (vrrpd)",
    ]
    assert lines[2] == (
        "1x1s   master          41.3         0.50               41.3              0.50  "
        "RSS ≤ 60 MB ok; CPU ≤ 1 % ok"
    )


def test_startup_table_sets_each_checkout_beside_the_interpreters_floor() -> None:
    from bench import startup

    runs = [
        startup.Run("main", 1, interpreter_ms=60, clean_ms=480, joined_ms=480, advert_ms=820,
                    rss_mb=39.5),
        startup.Run("branch", 1, interpreter_ms=62, clean_ms=66, joined_ms=570, advert_ms=910,
                    rss_mb=48.0),
        startup.Run("branch", 2, error="the leftover VIP was not in place"),
    ]  # fmt: skip
    rows = startup.summarize(runs)
    assert [(r.checkout, r.runs) for r in rows] == [("main", 1), ("branch", 1)]
    lines = startup.format_table(rows).splitlines()
    assert lines[0].split("  ")[0] == "checkout" and "clean - python ms" in lines[0]
    main, branch = (line.split() for line in lines[2:])
    assert main[:6] == ["main", "1", "60", "480", "480", "420"]
    assert branch[:6] == ["branch", "1", "62", "66", "66", "4"]
    assert main[-4:] == ["≤", "50", "ms", "missed"] and branch[-1] == "missed"


def test_split_brain_table_shows_medians_maxima_and_flaps_of_the_runs_that_ran() -> None:
    Run, table = split_brain.Run, split_brain.table
    case = ("vrrpd", "proto-112")
    runs = [
        Run(*case, "100ms", 1, to_master_ms=340, to_detect_ms=560),
        Run(*case, "100ms", 2, to_master_ms=360, to_detect_ms=600),
        Run(*case, "100ms", 3, error="the pair did not settle"),
        Run(*case, "1s", 1, to_master_ms=3500, to_detect_ms=5600, flap=True),
    ]
    header, rule, fast, slow = table(runs).splitlines()
    assert header.split()[:2] == ["advert", "runs"] and set(rule) <= {"-", " "}
    assert fast.split() == ["100ms", "2", "350", "360", "580", "600", "0"]
    assert slow.split() == ["1s", "1", "3500", "3500", "5600", "5600", "1"]


def test_a_saved_switchover_run_prints_the_same_report_again(tmp_path: Path) -> None:
    runs = [
        failover.Run(
            impl=impl,
            case="move",
            advert="1s",
            run=1,
            lost=0,
            outage_ms=0.0,
            takeover_ms=ms,
            released_ms=ms,
            both_held_ms=3.0,
            client_switch_ms=ms,
        )
        for impl, ms in (("vrrpd", 115.0), ("keepalived", 3416.0))
    ]
    runs.append(failover.Run(impl="vrrpd", case="move", advert="100ms", run=1, error="no pair"))
    first = io.StringIO()
    rows = switchover.report(runs, MACHINE, first)
    path = tmp_path / "switchover.json"
    save_json(str(path), MACHINE, runs=runs, summary=rows)
    again = io.StringIO()
    assert switchover.main(["--report", str(path)], out=again) == 0
    assert again.getvalue() == first.getvalue()
    lines = first.getvalue().splitlines()
    assert lines[0] == f"switchover benchmark, {format_machine(MACHINE)}"
    assert lines[3].split() == ["1s", "vrrpd", "1", "0", "0", "115", "115", "3", "115"]
    assert lines[4].split() == ["1s", "keepalived", "1", "0", "0", "3416", "3416", "3", "3416"]
    assert lines[5].split()[:5] == ["100ms", "vrrpd", "1", "(1", "failed)"]
    assert "FAILED move 100ms vrrpd #1: no pair" in lines


def test_vmac_table_groups_runs_by_mode_and_client() -> None:
    from bench import vmac

    runs = [
        vmac.Run("vmac", "garp-lost", 1, 350.0, 35, False, vmac.VMAC, vmac.VMAC),
        vmac.Run("vmac", "garp-lost", 2, 370.0, 37, False, vmac.VMAC, vmac.VMAC),
        vmac.Run("interface-mac", "garp-lost", 1, 60000.0, 6000, True, "02:01", "02:01"),
        vmac.Run("interface-mac", "garp-heard", 1, error="no settled pair"),
    ]
    lines = vmac.format_table(runs).splitlines()
    assert lines[0].split()[:3] == ["mode", "client", "runs"]
    rows = [line.split() for line in lines[2:]]
    assert rows[0][:6] == ["interface-mac", "garp-lost", "1", "60000", "60000", "6000"]
    assert rows[0][-1] == "1"  # unrecovered
    assert rows[1][:6] == ["vmac", "garp-lost", "2", "360", "370", "36"]
    assert f"{vmac.VMAC} -> {vmac.VMAC}" in lines[3]
    assert len(rows) == 2  # a cell whose runs all failed has no row
