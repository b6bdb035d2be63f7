"""Measured figures for GenTriage, printed as ratios against a baseline run in the same process.

Each `benchmarks/bench_<topic>.py` module exposes `run(report)` — or `run(report, quick=False)`
when it has a smaller, faster variant — and calls

    report(name, value, unit, baseline=None, target=None)

once per figure (baseline: the comparison figure measured in the same process; target: the
goal as text, e.g. "< 50 ms"). `python -m benchmarks` runs them all and prints one table;
`python -m benchmarks.bench_<topic>` runs one on its own.
"""


def print_report(name: str, value: float, unit: str, baseline: float | None = None,
                 target: str | None = None) -> None:
    """The `report` of a module run on its own: one line per figure, as it is measured."""
    ratio = f"  x{value / baseline:.2f} vs {baseline:.3g}" if baseline else ""
    goal = f"  (target {target})" if target else ""
    print(f"{name:<58} {value:10.3f} {unit}{ratio}{goal}", flush=True)
