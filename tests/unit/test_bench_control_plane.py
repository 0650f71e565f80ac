"""bench/control_plane.py without a lab: the summary of its runs, the table, and a saved run
printed again (`--report`)."""

from __future__ import annotations

import io
import math
from pathlib import Path

from bench import control_plane
from bench.control_plane import CpRun, format_table, lost_after, summarize_runs
from bench.harness import save_json

MACHINE = {
    "date": "2026-01-01 00:00:00 UTC",
    "cpus": 2,
    "cpu_model": "Test CPU",
    "kernel": "6.1",
    "python": "3.11.7",
    "loadavg": [0.5, 0.4, 0.3],
    "loadavg_end": [0.7, 0.5, 0.3],
    "shutdown_delay_s": 3.0,
}


def runs() -> list[CpRun]:
    return [
        CpRun("apiserver-stop", 1, 1, 2, lost_ms=1800.0, failed=90, moved_ms=1850.0),
        CpRun("apiserver-stop", 2, 2, 3, lost_ms=1200.0, failed=60, moved_ms=1250.0),
        CpRun("apiserver-stop", 3, error="no clean window before the fault"),
        CpRun("link-down", 1, 3, 1, lost_ms=600.0, failed=30, moved_ms=590.0),
    ]


def test_failed_runs_are_left_out_of_the_figures_and_cases_keep_their_order() -> None:
    rows = summarize_runs(runs())
    assert [r.case for r in rows] == ["apiserver-stop", "link-down"]
    stop, link = rows
    assert stop.runs == 2 and stop.lost_median_ms == 1500.0 and stop.lost_max_ms == 1800.0
    assert stop.failed_median == 75.0 and stop.moved_median_ms == 1550.0
    assert link.runs == 1 and link.lost_p95_ms == 600.0


def test_a_case_with_only_failed_runs_shows_dashes() -> None:
    (row,) = summarize_runs([CpRun("daemon-stop", 1, error="boom")])
    assert row.runs == 0 and math.isnan(row.lost_median_ms)
    assert format_table([row]).splitlines()[-1].split() == ["daemon-stop", "0", *["-"] * 5]


def test_a_saved_run_is_printed_again(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    save_json(str(path), MACHINE, runs=runs(), summary=summarize_runs(runs()))
    out = io.StringIO()
    assert control_plane.main(["--report", str(path)], out=out) == 0
    text = out.getvalue()
    assert text.startswith("control-plane VIP benchmark, 2026-01-01 00:00:00 UTC; 2 x Test CPU")
    assert "kube-apiserver --shutdown-delay-duration=3s; adverts 200 ms" in text
    assert "FAILED apiserver-stop #3: no clean window before the fault" in text
    (stop,) = [line for line in text.splitlines() if line.startswith("apiserver-stop ")]
    assert stop.split() == ["apiserver-stop", "2", "1500", "1770", "1800", "75", "1550"]


def test_lost_time_counts_runs_of_failures_that_reach_past_the_fault() -> None:
    def sends(pattern: str, start: float = 100.0) -> list[tuple[float, bool]]:
        return [(start + k * 0.02, c == "+") for k, c in enumerate(pattern)]

    # A failure long before the fault is noise; the run in flight at the fault (its first
    # request sent at 100.22, the fault at 100.23) counts from that request; the longest
    # run wins, and the failures of both runs after the fault are counted.
    pattern = "++-++++++++" + "-----+++" + "--+++"
    lost, failed = lost_after(sends(pattern), 100.23, 0.02)
    assert math.isclose(lost, 0.10) and failed == 7
    assert lost_after(sends("+++-++++"), 100.2, 0.02) == (0.0, 0)
    assert lost_after([], 100.0, 0.02) == (0.0, 0)
    # Still failing when probing stopped: the open run counts to one interval past its end.
    lost, failed = lost_after(sends("++++---"), 100.05, 0.02)
    assert math.isclose(lost, 0.06) and failed == 3
