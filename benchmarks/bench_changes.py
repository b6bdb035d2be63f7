"""Noticing what other processes changed (db.changes, migration 0004), on a synthetic library.

* The poll the open window runs every second (ChangeWatcher): `changes_since` with a fresh
  session, when nothing changed and after a review of 500 images; baseline: the cheapest
  read with a fresh session (`SELECT 1`), measured in the same run. Target: nothing-changed
  under 5 ms.
* What the change log costs the heaviest writer: a flag recompute of RECOMPUTED contents that
  changes every one's flags twice (all flagged, then none), with the log's triggers vs. on a
  copy of the library without them (baseline). Target: under 1.5x.

Standalone: `python -m benchmarks.bench_changes [N_IMAGES]`.
"""

from __future__ import annotations

import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import select, text

from benchmarks import median_ms
from benchmarks.synthetic import build_library
from db.changes import LibraryChanges, changes_since, current_token
from db.engine import open_library, session_factory
from db.flags import update_flags
from db.review import set_decision
from db.schema import Content
from db.transaction import write_transaction
from library.settings import Thresholds

N_IMAGES = 100_000
QUICK_IMAGES = 20_000
RUNS = 21
RECOMPUTED = 20_000
ENABLED = ["nsfw-default", "nsfw-vit", "safety-checker", "coherence"]




def _recompute_s(path: Path) -> float:
    """Seconds to recompute RECOMPUTED contents' flags twice, under thresholds that flip
    their verdicts each time (one write transaction each)."""
    engine = open_library(path)
    try:
        sessions = session_factory(engine)
        with sessions() as session:
            ids = list(session.scalars(select(Content.id).order_by(Content.id)
                                       .limit(RECOMPUTED)))
        began = time.perf_counter()
        for threshold in (0.0, 1.01):  # everything flagged, then nothing
            with write_transaction(sessions) as session:
                update_flags(session, ids, Thresholds(nsfw_default=threshold,
                                                       nsfw_vit=threshold, coherence=threshold,
                                                       safety_checker=threshold - 1), ENABLED)
        return time.perf_counter() - began
    finally:
        engine.dispose()


def run(report, quick: bool = False) -> None:
    n_images = QUICK_IMAGES if quick else N_IMAGES
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        build_library(path, n_images)
        engine = open_library(path)
        try:
            sessions = session_factory(engine)
            with sessions() as session:
                token = current_token(session)

            def cheapest_read() -> object:
                with sessions() as session:
                    return session.execute(text("SELECT 1")).scalar()

            def poll() -> LibraryChanges:
                with sessions() as session:
                    return changes_since(session, token)

            baseline = median_ms(cheapest_read, RUNS)
            report(f"poll, nothing changed ({n_images:,} images)", median_ms(poll, RUNS), "ms",
                   baseline, "< 5 ms")
            with write_transaction(sessions) as session:
                ids = list(session.scalars(select(Content.id)
                                           .where(Content.decision == "none").limit(500)))
                set_decision(session, ids, "accepted", source="bench")
            changes = poll()
            assert len(changes.content_ids) == 500, changes
            report("poll, 500 decisions changed", median_ms(poll, RUNS), "ms", baseline)
        finally:
            engine.dispose()

        plain = Path(tmp) / "without-log.db"
        shutil.copy(path, plain)
        connection = sqlite3.connect(plain)
        try:
            for (name,) in connection.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'trigger' "
                    "AND name LIKE 'library_changes%'").fetchall():
                connection.execute(f"DROP TRIGGER {name}")
            connection.commit()
        finally:
            connection.close()
        # Best of two each, alternating, so neither side gets the cold caches alone.
        without, with_log = _recompute_s(plain), _recompute_s(path)
        without, with_log = min(without, _recompute_s(plain)), min(with_log, _recompute_s(path))
        report(f"flag recompute x2, {RECOMPUTED:,} contents, without the change log",
               without, "s")
        report(f"flag recompute x2, {RECOMPUTED:,} contents, with the change log", with_log,
               "s", without, "< 1.5x")


if __name__ == "__main__":
    from benchmarks import print_report

    if len(sys.argv) > 1:
        N_IMAGES = int(sys.argv[1])
    run(print_report)
