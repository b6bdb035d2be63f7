"""`python -m benchmarks [--quick] [--only TEXT] [--budget SECONDS] [--json FILE]`

Discovers every `benchmarks/bench_*.py`, runs each in its own interpreter (so one module's
threads, caches and memory never skew the next, and a module that hangs can be stopped), and
prints ONE table: module, figure, value, unit, baseline, ratio, target and whether it was met.

Modules whose `run` accepts a `quick` parameter get `quick=True` under --quick (smaller sizes);
the others run unchanged. The whole run keeps to a time budget (default 570 s, so that it ends
within 10 minutes on a 2-core machine): each module may use what is left of the budget minus
a reserve for the modules after it, and one that runs past it is stopped — the figures it
reported so far are kept and the table says it timed out.

Exit status: 0 when every module ran to the end, 1 when one failed or timed out.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import math
import os
import pkgutil
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO = PACKAGE_DIR.parent
DEFAULT_BUDGET_S = 570.0
RESERVE_PER_MODULE_S = 15.0  # kept back for each module still to run
MIN_SLOT_S = 10.0


@dataclass
class Row:
    module: str
    name: str
    value: float | None
    unit: str
    baseline: float | None = None
    target: str | None = None

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.baseline:
            return None
        return self.value / self.baseline

    @property
    def met(self) -> bool | None:
        return target_met(self.value, self.unit, self.target)


_TARGET = re.compile(r"^\s*(<=|>=|<|>|≤|≥)\s*([-+]?[\d.,_]+(?:e[-+]?\d+)?)\s*(.*?)\s*$",
                     re.IGNORECASE)


def target_met(value: float | None, unit: str, target: str | None) -> bool | None:
    """True/False for a target like "< 50 ms" or ">= 2x" in the figure's own unit; None when
    the target cannot be read that way (then only a person can judge it)."""
    if value is None or not target:
        return None
    match = _TARGET.match(target)
    if not match:
        return None
    op, number, target_unit = match.groups()
    if target_unit and target_unit.strip() != unit.strip():
        return None
    bound = float(number.replace(",", "").replace("_", ""))
    return {"<": value < bound, "<=": value <= bound, "≤": value <= bound,
            ">": value > bound, ">=": value >= bound, "≥": value >= bound}[op]


def discover() -> list[str]:
    """Module names (without the package) of every bench_*.py, sorted."""
    return sorted(info.name for info in pkgutil.iter_modules([str(PACKAGE_DIR)])
                  if info.name.startswith("bench_"))


def accepts_quick(run: object) -> bool:
    try:
        return callable(run) and "quick" in inspect.signature(run).parameters
    except (TypeError, ValueError):
        return False


# ------------------------------------------------------------------------ child side


def _child(module_name: str, rows_file: str, quick: bool) -> int:
    """Run one module, appending each reported figure to `rows_file` as a JSON line at once
    (so figures reported before a timeout survive the kill)."""
    module = importlib.import_module(f"benchmarks.{module_name}")
    run = getattr(module, "run", None)
    if run is None:
        print(f"benchmarks.{module_name} has no run(report)", file=sys.stderr)
        return 2

    with open(rows_file, "a", encoding="utf-8") as out:
        def report(name: str, value: float, unit: str, baseline: float | None = None,
                   target: str | None = None) -> None:
            row = Row(module_name, str(name), _number(value), str(unit), _number(baseline),
                      None if target is None else str(target))
            out.write(json.dumps(asdict(row)) + "\n")
            out.flush()
            print(f"  {name}: {_fmt(row.value)} {unit}", file=sys.stderr, flush=True)

        if accepts_quick(run):
            run(report, quick=quick)
        else:
            run(report)
    return 0


def _number(value: object) -> float | None:
    if value is None:
        return None
    if not isinstance(value, (int, float, str)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


# ------------------------------------------------------------------------ parent side


@dataclass
class ModuleOutcome:
    module: str
    status: str  # "ok", "failed (exit N)", "timed out after N s", "skipped: …"
    seconds: float


def run_module(module: str, quick: bool, limit_s: float) -> tuple[list[Row], ModuleOutcome]:
    with tempfile.TemporaryDirectory() as tmp:
        rows_file = Path(tmp) / "rows.jsonl"
        rows_file.touch()
        command = [sys.executable, "-m", "benchmarks", "--child", module, str(rows_file)]
        if quick:
            command.append("--quick")
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        began = time.monotonic()
        proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=sys.stderr)
        try:
            code = proc.wait(timeout=limit_s)
            status = "ok" if code == 0 else f"failed (exit {code})"
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            status = f"timed out after {limit_s:.0f} s"
        seconds = time.monotonic() - began
        rows = [Row(**json.loads(line)) for line in
                rows_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    return rows, ModuleOutcome(module, status, seconds)


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
        return f"{value:.3g}"
    return f"{value:,.3f}".rstrip("0").rstrip(".") if abs(value) < 100 else f"{value:,.1f}"


def _cells(row: Row) -> list[str]:
    met = {True: "met", False: "MISSED", None: ""}[row.met]
    ratio = "-" if row.ratio is None else f"x{row.ratio:.2f}"
    return [row.module.removeprefix("bench_"), row.name, _fmt(row.value), row.unit,
            _fmt(row.baseline) if row.baseline is not None else "-", ratio,
            row.target or "-", met]


HEADER = ["module", "figure", "value", "unit", "baseline", "ratio", "target", ""]


def print_table(rows: list[Row], outcomes: list[ModuleOutcome], total_s: float) -> None:
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(title="GenTriage benchmarks")
        for name in HEADER:
            table.add_column(name, justify="right" if name in ("value", "baseline", "ratio")
                             else "left", overflow="fold")
        for row in rows:
            cells = _cells(row)
            if cells[-1] == "MISSED":
                cells[-1] = "[red]MISSED[/red]"
            table.add_row(*cells)
        Console().print(table)
    else:
        body = [_cells(row) for row in rows]
        widths = [max([len(h)] + [len(r[i]) for r in body]) for i, h in enumerate(HEADER)]
        for line in [HEADER, *body]:
            print("  ".join(cell.rjust(w) if i in (2, 4, 5) else cell.ljust(w)
                            for i, (cell, w) in enumerate(zip(line, widths))).rstrip())
    print()
    for outcome in outcomes:
        print(f"{outcome.module}: {outcome.status} ({outcome.seconds:.1f} s)")
    missed = sum(1 for r in rows if r.met is False)
    print(f"{len(rows)} figure(s) from {len(outcomes)} module(s) in {total_s:.0f} s"
          + (f"; {missed} target(s) missed" if missed else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="smaller sizes, for modules that support it")
    parser.add_argument("--only", action="append", default=[], metavar="TEXT",
                        help="run only modules whose name contains TEXT (repeatable)")
    parser.add_argument("--budget", type=float, default=DEFAULT_BUDGET_S, metavar="SECONDS",
                        help=f"time for the whole run (default {DEFAULT_BUDGET_S:.0f})")
    parser.add_argument("--json", metavar="FILE", help="also write every figure to FILE")
    parser.add_argument("--list", action="store_true", help="list the modules and exit")
    parser.add_argument("--child", nargs=2, metavar=("MODULE", "ROWS_FILE"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        return _child(args.child[0], args.child[1], args.quick)

    modules = [m for m in discover() if not args.only or any(t in m for t in args.only)]
    if args.list:
        for module in modules:
            run = getattr(importlib.import_module(f"benchmarks.{module}"), "run", None)
            print(f"{module}{'  (--quick)' if accepts_quick(run) else ''}")
        return 0
    if not modules:
        print("no benchmark modules matched", file=sys.stderr)
        return 1

    began = time.monotonic()
    rows: list[Row] = []
    outcomes: list[ModuleOutcome] = []
    for index, module in enumerate(modules):
        left_after = len(modules) - index - 1
        remaining = args.budget - (time.monotonic() - began)
        limit = remaining - RESERVE_PER_MODULE_S * left_after
        if limit < MIN_SLOT_S:
            outcomes.append(ModuleOutcome(module, "skipped: time budget spent", 0.0))
            continue
        print(f"== {module}{' (quick)' if args.quick else ''}", file=sys.stderr, flush=True)
        module_rows, outcome = run_module(module, args.quick, limit)
        rows += module_rows
        outcomes.append(outcome)
    total = time.monotonic() - began

    print_table(rows, outcomes, total)
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"quick": args.quick, "seconds": total,
             "modules": [asdict(o) for o in outcomes],
             "figures": [{**asdict(r), "ratio": r.ratio, "met": r.met} for r in rows]},
            indent=2), encoding="utf-8")
    return 0 if all(o.status == "ok" for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
