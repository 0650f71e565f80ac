"""Statistics and table helpers shared by the benchmarks (pure: no lab, no root)."""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Sequence
from typing import Any


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear between closest ranks (numpy's default)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


def figures(runs: Iterable[Any], name: str) -> list[float]:
    """Figure `name` of every run without an error that recorded it."""
    return [float(v) for r in runs if not r.error and (v := getattr(r, name)) is not None]


def fmt_ms(value: float | None) -> str:
    """A figure in whole ms; "-" for None (not measured) or NaN (a statistic over no values)."""
    return "-" if value is None or math.isnan(value) else f"{value:.0f}"


def no_nan(row: dict[str, Any]) -> dict[str, Any]:
    """JSON has no NaN: a statistic over no values is written as null."""
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}


def align_columns(lines: Sequence[Sequence[str]], numeric: Collection[int]) -> list[str]:
    """A text table: `lines[0]` is the header, underlined; columns in `numeric` right-aligned."""
    widths = [max(len(line[k]) for line in lines) for k in range(len(lines[0]))]
    out = []
    for n, line in enumerate(lines):
        cells = [
            cell.rjust(widths[k]) if k in numeric and n else cell.ljust(widths[k])
            for k, cell in enumerate(line)
        ]
        out.append("  ".join(cells).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return out
