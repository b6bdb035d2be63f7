"""Crash safety with real processes and SIGKILL: a scan killed at several points (while the
database is being created, after the first files are recorded, during analysis) and a
process writing review decisions killed mid-stream. Afterwards the database passes
`PRAGMA integrity_check`, every acknowledged decision is there (and agrees with the undo
log), there are no duplicate rows, and the next run resumes pending analysis exactly once."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from reliability_support import (
    NSFW_ONLY,
    REVIEWER,
    Lines,
    connect_ro,
    counts,
    gentriage,
    integrity_problems,
    kill,
    log_disagreements,
    lost_decisions,
    parse_reviewer,
    start_gentriage,
    start_python,
    summary_lines,
    wait_until,
    write_images,
)

from library.scan import scan_folders

N_IMAGES = 60


def _scan_args(folder: Path, db) -> list[str]:
    return ["scan", str(folder), "--db", str(db), *NSFW_ONLY, "--batch-size", "1",
            "--workers", "1"]


def _schema_being_made(db) -> bool:
    """SQLite: the file exists; PostgreSQL: GenTriage is connected to the (empty) database.
    Either way the schema may be under construction right now."""
    if db.path is not None:
        return db.path.exists()
    with connect_ro(db) as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                            "current_database() AND application_name = 'gentriage'"
                            ).scalar_one() > 0


KILL_POINTS = {
    # The very first moment the library is there: schema creation may be under way.
    "creating-database": _schema_being_made,
    # The first batch of files is committed; the rest are still being read or recorded.
    "indexing": lambda db: counts(db)["images"] > 0,
    # Analysis has written some results and has more queued.
    "analysing": lambda db: counts(db)["analysis_results"] > 0,
}


@pytest.mark.slow
@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_a_scan_killed_at_any_point_resumes_exactly_once(tmp_path, point, blank_library_db):
    folder = tmp_path / "pics"
    write_images(folder, N_IMAGES)
    db = blank_library_db  # no schema yet: the scan creates it
    home = tmp_path / "home"

    proc = start_gentriage(_scan_args(folder, db), home)
    try:
        wait_until(lambda: KILL_POINTS[point](db), 120, f"the {point} point", alive=proc)
        proc.send_signal(signal.SIGKILL)
    finally:
        kill(proc)
    assert proc.returncode == -signal.SIGKILL
    assert integrity_problems(db) == []

    rerun = gentriage(_scan_args(folder, db), home)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert integrity_problems(db) == []
    table = counts(db)
    assert (table["images"], table["contents"], table["analysis_results"],
            table["analysis_queue"]) == (N_IMAGES, N_IMAGES, N_IMAGES, 0)
    # A third run finds nothing to do: the resumed run left no gaps.
    third = gentriage(_scan_args(folder, db), home)
    assert summary_lines(third.stdout)["analysed"] == "nsfw-default 0"
    assert summary_lines(third.stdout)["indexed"].startswith(f"0 new or changed, {N_IMAGES}")


def _indexed_library(tmp_path: Path, n: int, db: str) -> str:
    """The library `db` with `n` indexed images (no analysis), written in-process."""
    from db.engine import open_library, session_factory

    folder = tmp_path / "pics"
    write_images(folder, n)
    engine = open_library(db)
    try:
        scan_folders(session_factory(engine), [folder], None, workers=1, executor="thread")
    finally:
        engine.dispose()
    return db


@pytest.mark.slow
def test_killing_a_process_mid_review_loses_no_acknowledged_decision(tmp_path, library_db):
    db = _indexed_library(tmp_path, 30, library_db.target)
    home = tmp_path / "home"
    stop = tmp_path / "never-stop"
    all_output = []
    # Three kills at different depths of the same history: each restart continues the log.
    for kill_after in (3, 25, 80):
        proc = start_python(REVIEWER, home, str(db), str(stop), "100000")
        lines = Lines(proc)
        try:
            start = lines.count("ACK")
            wait_until(lambda lines=lines, start=start, after=kill_after:
                       lines.count("ACK") >= start + after, 90,
                       f"{kill_after} acknowledged decisions", alive=proc)
            proc.send_signal(signal.SIGKILL)  # lands anywhere: mid-write, mid-read, idle
        finally:
            kill(proc)
        out, _ = lines.finish()
        all_output.append(out)
        log = parse_reviewer("\n".join(all_output))
        assert log.errors == []
        assert integrity_problems(db) == []
        assert lost_decisions(db, log) == []
        assert log_disagreements(db) == []
    assert parse_reviewer("\n".join(all_output)).n_acks >= 3 + 25 + 80


@pytest.mark.slow
def test_killing_a_scan_and_a_reviewer_together_loses_nothing(tmp_path, library_db):
    """The app (reviewing) and a headless scan (analysing) share the database and both die
    at once; decisions survive, and the next scan resumes analysis without duplicates and
    without touching the decisions."""
    folder = tmp_path / "pics"
    write_images(folder, N_IMAGES)
    db = library_db.target
    home = tmp_path / "home"
    scan = start_gentriage(_scan_args(folder, db), home)
    reviewer = None
    try:
        wait_until(lambda: counts(db)["analysis_results"] > 0, 120, "first results",
                   alive=scan)
        reviewer = start_python(REVIEWER, home, str(db), str(tmp_path / "never"), "100000")
        lines = Lines(reviewer)
        wait_until(lambda: lines.count("ACK") >= 20, 90, "20 decisions", alive=reviewer)
        if scan.poll() is None:
            scan.send_signal(signal.SIGKILL)
        reviewer.send_signal(signal.SIGKILL)
    finally:
        kill(scan)
        if reviewer is not None:
            kill(reviewer)
    out, _ = lines.finish()
    log = parse_reviewer(out)
    assert log.errors == []
    assert integrity_problems(db) == []
    assert lost_decisions(db, log) == []

    rerun = gentriage(_scan_args(folder, db), home)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert integrity_problems(db) == []
    assert lost_decisions(db, log) == []  # analysis never overwrites a decision
    assert log_disagreements(db) == []
    table = counts(db)
    assert (table["images"], table["analysis_results"], table["analysis_queue"]) == \
        (N_IMAGES, N_IMAGES, 0)
