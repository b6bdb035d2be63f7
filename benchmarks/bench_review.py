"""Undo and redo over a long review history (issue 11, item 15): target < 50 ms each.

The review log holds 100,000 decision groups (one per keypress, as a long review session
leaves them), written in bulk into a real library. Measured on it, median of RUNS calls,
each in its own session or write transaction as the app does per keypress:

- `can_undo` / `can_redo` (read after every review key), `undo` + `redo` (write);
- in three states: right after the 100,000 decisions; after 6,000 undos in a row (the
  issue's case: only 2,500 could be undone); after those undos and 5,999 redos (the redo
  stack is derived by jumping over the undo/redo pairs).

Baseline (same run): the previous derivation, a replay of the last 5,000 log groups, which
limited undo to that window (`_window_stacks` below reproduces it).

`python -m benchmarks.bench_review [N_DECISIONS]` runs it standalone.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import func, insert, select

from benchmarks import median_ms
from db import review
from db.engine import open_library, session_factory
from db.schema import Content, ReviewLog
from db.transaction import write_transaction

N_DECISIONS = 100_000
QUICK_DECISIONS = 20_000
UNDONE = 6_000
RUNS = 9
WINDOW_GROUPS = 5_000  # the old undo horizon
TARGET = "< 50 ms"




def _window_stacks(session) -> tuple[list[int], list[int]]:
    """The previous derivation: replay the last 5,000 groups of the log."""
    floor = (session.scalar(select(func.max(ReviewLog.group_id))) or 0) - WINDOW_GROUPS
    rows = session.execute(
        select(ReviewLog.group_id, ReviewLog.source, ReviewLog.reverts_group)
        .where(ReviewLog.group_id > floor).group_by(ReviewLog.group_id)
        .order_by(ReviewLog.group_id)).all()
    done: list[int] = []
    undone: list[int] = []
    for group, source, reverts in rows:
        if source == "undo" and reverts in done:
            done.remove(reverts)
            undone.append(reverts)
        elif source == "redo" and reverts in undone:
            undone.remove(reverts)
            done.append(reverts)
        elif source in review.USER_SOURCES:
            done.append(group)
            undone.clear()
    return done, undone


def _history(sessions, n_decisions: int) -> None:
    """`n_decisions` single-picture decisions over 1,000 pictures, as log rows."""
    pictures = 1_000
    with write_transaction(sessions) as session:
        author = review.reviewer_of(session)  # whose undo stack the keypresses walk
        session.execute(insert(Content), [{"sha256": f"{i:064x}"} for i in range(pictures)])
        rows = []
        state = ["none"] * pictures
        for group in range(1, n_decisions + 1):
            picture = group % pictures
            new = ("accepted", "rejected")[group % 2]
            rows.append(dict(group_id=group, content_id=picture + 1, field="decision",
                             old_value=state[picture], new_value=new, source="app",
                             author=author))
            state[picture] = new
        session.execute(insert(ReviewLog), rows)


def _undo_redo_history(sessions, n_decisions: int, undone: int, redone: int) -> None:
    """Append `undone` undos of the latest decisions, then `redone` redos, as the log rows
    db.review writes for them (bulk: 12,000 keypresses one by one take a minute)."""
    with write_transaction(sessions) as session:
        decisions = {row.group_id: row for row in session.scalars(
            select(ReviewLog).where(ReviewLog.group_id > n_decisions - undone))}
        group = n_decisions
        rows = []
        for target in range(n_decisions, n_decisions - undone, -1):
            group += 1
            d = decisions[target]
            rows.append(dict(group_id=group, content_id=d.content_id, field="decision",
                             old_value=d.new_value, new_value=d.old_value, source="undo",
                             reverts_group=target, author=d.author))
        for target in range(n_decisions - undone + 1, n_decisions - undone + 1 + redone):
            group += 1
            d = decisions[target]
            rows.append(dict(group_id=group, content_id=d.content_id, field="decision",
                             old_value=d.old_value, new_value=d.new_value, source="redo",
                             reverts_group=target, author=d.author))
        session.execute(insert(ReviewLog), rows)


def _measure_state(sessions, report, state: str, baseline: float) -> None:
    def read(check: Callable) -> Callable[[], object]:
        def action() -> object:
            with sessions() as session:
                return check(session)
        return action

    def undo_then_redo() -> None:
        with write_transaction(sessions) as session:
            assert review.undo(session)
        with write_transaction(sessions) as session:
            assert review.redo(session)

    report(f"{state}: can_undo", median_ms(read(review.can_undo), RUNS), "ms", baseline, TARGET)
    report(f"{state}: can_redo", median_ms(read(review.can_redo), RUNS), "ms", baseline, TARGET)
    # One undo and one redo, each in its own write transaction like a keypress; halved.
    report(f"{state}: undo or redo (one keypress)", median_ms(undo_then_redo, RUNS) / 2, "ms",
           baseline, TARGET)


def run(report, quick: bool = False) -> None:
    n_decisions = QUICK_DECISIONS if quick else N_DECISIONS
    label = f"{n_decisions // 1000}k decisions"
    with tempfile.TemporaryDirectory() as tmp:
        engine = open_library(Path(tmp) / "review.db")
        try:
            sessions = session_factory(engine)
            _history(sessions, n_decisions)

            def window() -> object:
                with sessions() as session:
                    return _window_stacks(session)
            baseline = median_ms(window, RUNS)
            report(f"{label}: baseline, the old 5,000-group replay", baseline, "ms")

            _measure_state(sessions, report, f"{label}", baseline)
            _undo_redo_history(sessions, n_decisions, UNDONE, 0)
            _measure_state(sessions, report, f"{label}, {UNDONE:,} undone", baseline)
            with sessions() as session:
                window_depth = len(_window_stacks(session)[0])
            report(f"{label}, {UNDONE:,} undone: steps the old window could still undo",
                   window_depth, "steps")

            fresh = Path(tmp) / "review2.db"
            engine.dispose()
            engine = open_library(fresh)
            sessions = session_factory(engine)
            _history(sessions, n_decisions)
            _undo_redo_history(sessions, n_decisions, UNDONE, UNDONE - 1)
            _measure_state(sessions, report, f"{label}, {UNDONE:,} undone, "
                           f"{UNDONE - 1:,} redone", baseline)
        finally:
            engine.dispose()


if __name__ == "__main__":
    from benchmarks import print_report

    if len(sys.argv) > 1:
        N_DECISIONS = int(sys.argv[1])
    run(print_report)
