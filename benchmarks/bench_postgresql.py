"""Grid query latency of the synthetic library on PostgreSQL, against SQLite in the same run.

The same library (benchmarks.synthetic, same seed: identical rows) is built in a SQLite file
and in a PostgreSQL database, and every figure of bench_queries (first pages for each filter
and sort, counts, deep keyset pages, folder counts, tag suggestions) is measured on both; each
PostgreSQL figure is reported with its SQLite figure as the baseline, so the ratio says what
the server costs. The first-page target (< 50 ms) applies to PostgreSQL too.

The server: `$GENTRIAGE_BENCH_PG_URL` (a database whose library rows may be replaced; over
TCP this includes the network), else a throwaway server started from the machine's own
binaries (tests/postgres_server.py: a unix socket, durability off as in the tests — reads are
what is measured), else the module says so and measures nothing. Also reported: the time to
write a review decision (one write transaction: the advisory lock, the update, the log row,
the change-log trigger) on both.

Standalone: `python -m benchmarks.bench_postgresql [--quick]` (quick: 20,000 images).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from benchmarks import median_ms
from benchmarks.bench_queries import RUNS, TARGET_MS, measure_queries
from benchmarks.synthetic import build_library
from db.engine import open_library, session_factory

N_IMAGES = 100_000
QUICK_IMAGES = 20_000
URL_ENV = "GENTRIAGE_BENCH_PG_URL"


@contextmanager
def _postgresql() -> Iterator[str | None]:
    """A PostgreSQL URL for the benchmark's library, or None when there is no server."""
    if url := os.environ.get(URL_ENV):
        yield url
        return
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from postgres_server import find_binaries, start_server

    binaries = find_binaries()
    if binaries is None:
        yield None
        return
    server = start_server(binaries)
    try:
        yield server.url(server.create_database())
    finally:
        server.stop()


def _decision_ms(sessions, runs: int) -> float:
    """One review decision per write transaction, as the app's keypress writes it."""
    from sqlalchemy import select

    from db.review import set_decision
    from db.schema import Content
    from db.transaction import write_transaction

    with sessions() as session:
        ids = list(session.scalars(select(Content.id).order_by(Content.id).limit(runs + 1)))
    decisions = iter(("accepted", "rejected") * (runs + 1))
    targets = iter(ids * 2)

    def decide() -> object:
        with write_transaction(sessions) as session:
            return set_decision(session, [next(targets)], next(decisions))
    return median_ms(decide, runs)


def _figures(target: Path | str, runs: int) -> dict[str, tuple[float, bool]]:
    engine = open_library(target)
    try:
        sessions = session_factory(engine)
        figures = measure_queries(sessions, runs)
        figures["write one review decision"] = (_decision_ms(sessions, runs), False)
        return figures
    finally:
        engine.dispose()


def run(report, quick: bool = False) -> None:
    n_images = QUICK_IMAGES if quick else N_IMAGES
    with _postgresql() as url:
        if url is None:
            print("bench_postgresql: skipped, no PostgreSQL (no server binaries in "
                  f"/usr/lib/postgresql/*/bin and no ${URL_ENV})", file=sys.stderr)
            return
        with tempfile.TemporaryDirectory() as tmp:
            sqlite_path = Path(tmp) / "bench.db"
            began = time.perf_counter()
            build_library(sqlite_path, n_images)
            sqlite_build = time.perf_counter() - began
            began = time.perf_counter()
            build_library(url, n_images)
            report(f"library build ({n_images:,} images), PostgreSQL (COPY)",
                   time.perf_counter() - began, "s", sqlite_build)
            on_sqlite = _figures(sqlite_path, RUNS)
            on_postgresql = _figures(url, RUNS)
    target = f"< {TARGET_MS:.0f} ms"
    for name, (ms, targeted) in on_postgresql.items():
        report(f"PostgreSQL {name}", ms, "ms", on_sqlite[name][0], target if targeted else None)
    ratios = sorted(ms / on_sqlite[name][0] for name, (ms, _) in on_postgresql.items()
                    if on_sqlite[name][0] > 0)
    report("median ratio PostgreSQL / SQLite over all figures", ratios[len(ratios) // 2], "x")


def _main(argv: list[str]) -> None:
    from benchmarks import print_report

    run(print_report, quick="--quick" in argv)


if __name__ == "__main__":
    _main(sys.argv[1:])
