"""`python -m benchmarks`: target parsing, the quick convention and row collection."""

from __future__ import annotations

import json
import sys
import types

import pytest
from cli_support import REPO

# benchmarks/ is not an installed package: import it from the checkout.
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
from benchmarks import __main__ as aggregator


@pytest.mark.parametrize("value, unit, target, expected", [
    (12.0, "ms", "< 50 ms", True),
    (60.0, "ms", "< 50 ms", False),
    (50.0, "ms", "<= 50 ms", True),
    (2.5, "x", ">= 2 x", True),
    (1.5, "x", ">= 2", False),  # no unit in the target: the figure's own
    (12.0, "s", "< 50 ms", None),  # another unit: not judged
    (12.0, "ms", "fast enough", None),
    (None, "ms", "< 50 ms", None),
])
def test_target_met(value, unit, target, expected):
    assert aggregator.target_met(value, unit, target) is expected


def test_child_passes_quick_only_to_modules_that_accept_it(tmp_path, monkeypatch):
    calls = []

    def with_quick(report, quick=False):
        calls.append(("with", quick))
        report("fast thing", 2.0, "ms", 4.0, "< 5 ms")

    def without_quick(report):
        calls.append(("without", None))
        report("plain", float("nan"), "s")

    for name, run in (("bench_with", with_quick), ("bench_without", without_quick)):
        module = types.ModuleType(f"benchmarks.{name}")
        module.run = run
        monkeypatch.setitem(sys.modules, f"benchmarks.{name}", module)
    rows_file = tmp_path / "rows.jsonl"
    assert aggregator._child("bench_with", str(rows_file), quick=True) == 0
    assert aggregator._child("bench_without", str(rows_file), quick=True) == 0

    assert calls == [("with", True), ("without", None)]
    rows = [aggregator.Row(**json.loads(line)) for line in rows_file.read_text().splitlines()]
    assert rows[0].ratio == 0.5 and rows[0].met is True
    assert rows[1].value is None  # NaN is not a figure


def test_discovers_bench_modules_only():
    names = aggregator.discover()
    assert names == sorted(names)
    assert all(name.startswith("bench_") for name in names)
    assert "synthetic" not in names


def test_plain_table_has_one_line_per_figure(capsys):
    rows = [aggregator.Row("bench_x", "first page", 2.0, "ms", 4.0, "< 50 ms"),
            aggregator.Row("bench_x", "count", 80.0, "ms")]
    outcomes = [aggregator.ModuleOutcome("bench_x", "ok", 1.0)]
    aggregator.print_table(rows, outcomes, 1.0)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["module", "figure", "value", "unit", "baseline", "ratio",
                                "target"]
    assert "x0.50" in lines[1] and lines[1].endswith("met")
    assert lines[2].split()[-4:] == ["ms", "-", "-", "-"]  # no baseline, ratio or target
    assert "bench_x: ok (1.0 s)" in lines
