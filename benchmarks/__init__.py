"""Measured figures for GenTriage, printed as ratios against a baseline run in the same process.

Each `benchmarks/bench_<topic>.py` module exposes `run(report)` — or `run(report, quick=False)`
when it has a smaller, faster variant — and calls

    report(name, value, unit, baseline=None, target=None)

once per figure (baseline: the comparison figure measured in the same process; target: the
goal as text, e.g. "< 50 ms"). `python -m benchmarks` runs them all and prints one table;
`python -m benchmarks.bench_<topic>` runs one on its own.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_ms(action: Callable[[], object], runs: int) -> float:
    """Median wall time in ms of `runs` calls of `action`, after one warm-up call (the page
    cache, SQLAlchemy's statement cache)."""
    action()
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        action()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def print_report(name: str, value: float, unit: str, baseline: float | None = None,
                 target: str | None = None) -> None:
    """The `report` of a module run on its own: one line per figure, as it is measured."""
    ratio = f"  x{value / baseline:.2f} vs {baseline:.3g}" if baseline else ""
    goal = f"  (target {target})" if target else ""
    print(f"{name:<58} {value:10.3f} {unit}{ratio}{goal}", flush=True)
