"""The REAL app, killed with SIGKILL: no committed review decision is lost, nothing is
corrupted, nothing is duplicated, and the next start finishes the pending analysis exactly
once.

The child is `gentriage FOLDER --db DB` started through the real command line
(`gentriage.cli.main`, what `python -m gentriage` runs) offscreen, with the bundled
nsfw-default analyser on. Offscreen, keys cannot be sent from outside, so the child also runs
a small driver on a Qt timer: it finds the real MainWindow, presses review keys into it with
QTest (P, X, U and Ctrl+Z, then Right), and prints the protocol of
reliability_support.REVIEWER — `TRY <content id> <decision>` before a key, and `ACK <content
id> <decision>` from the window's `decisions_written` signal, which the review controller
emits only after its commit. The test kills the app at three points: while the first scan
is recording files, while analysis is writing results (right after an ACK), and during
review once analysis has caught up; then checks the database after each kill, and finally
lets a headless `gentriage scan` finish what was left and checks it analysed only that.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from reliability_support import (
    NSFW_ONLY,
    REPO,
    Lines,
    child_env,
    connect_ro,
    counts,
    gentriage,
    integrity_problems,
    log_disagreements,
    lost_decisions,
    parse_reviewer,
    summary_lines,
    wait_until,
)

N_IMAGES = 40
PHASE_TIMEOUT_S = 60

DRIVER = r'''
import sys, traceback
from PySide6.QtCore import Qt, QTimer
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

folder, db, interval_ms = sys.argv[1], sys.argv[2], int(sys.argv[3])
qapp = QApplication(sys.argv[:1])  # run_app uses this instance
STEPS = [(Qt.Key.Key_P, "accepted"), (Qt.Key.Key_X, "rejected"), (Qt.Key.Key_U, "none"),
         (Qt.Key.Key_P, "accepted"), (Qt.Key.Key_Z, "undo")]
state = {"window": None, "step": 0, "expected": {}}


def find_window():
    from desktop.main_window import MainWindow
    for widget in QApplication.topLevelWidgets():
        if isinstance(widget, MainWindow) and widget.isVisible():
            return widget
    return None


def on_decisions_written(content_ids):
    # Emitted by the review controller after its commit: these are acknowledged.
    for cid in content_ids:
        print(f"ACK {cid} {state['expected'].get(cid, '?')}", flush=True)


def undo_expectation(window):
    """What Ctrl+Z is about to write: the decisions before the last undoable group."""
    from db import review
    with window.sessions() as session:
        return {c.content_id: c.old_value or "none"
                for c in review.undo_target_changes(session) if c.field == "decision"}


def tick():
    try:
        window = state["window"]
        if window is None:
            window = find_window()
            if window is None:
                return
            state["window"] = window
            window.controller.decisions_written.connect(on_decisions_written)
            window.activateWindow()
            print("WINDOW", flush=True)
        row = window.current_grid_row()
        if row is None or row.content_id is None:
            return
        view = window.view
        view.setFocus()
        key, decision = STEPS[state["step"] % len(STEPS)]
        state["step"] += 1
        if decision == "undo":
            expected = undo_expectation(window)
            for cid, value in expected.items():
                print(f"TRY {cid} {value}", flush=True)
            state["expected"] = expected
            QTest.keyClick(view, key, Qt.KeyboardModifier.ControlModifier)
        else:
            state["expected"] = {cid: decision for cid in
                                 window.controller._content_ids(window.controller.target_rows())}
            print(f"TRY {row.content_id} {decision}", flush=True)
            QTest.keyClick(view, key)
        before = view.currentIndex().row()
        QTest.keyClick(view, Qt.Key.Key_Right)
        if view.currentIndex().row() == before:
            QTest.keyClick(view, Qt.Key.Key_Home)
    except Exception:
        print("ERR " + traceback.format_exc().replace("\n", " | "), flush=True)


timer = QTimer()
timer.timeout.connect(tick)
timer.start(interval_ms)
from gentriage.cli import main
sys.exit(main([folder, "--db", db]))
'''


def _write_images(folder: Path, count: int) -> None:
    """Distinct noise PNGs, large enough that a scan takes a moment to record them all."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(7)
    for i in range(count):
        pixels = rng.integers(0, 256, (192, 192, 3), dtype=np.uint8)
        PILImage.fromarray(pixels, "RGB").save(folder / f"gen_{i:03d}.png", compress_level=1)


def _start_app(folder: Path, db: Path, home: Path, interval_ms: int) -> subprocess.Popen:
    # Its own process group: the kill is aimed at the app's pid (a crash), and whatever
    # helpers it forked (the scan's worker processes) are then cleaned up as a group.
    return subprocess.Popen([sys.executable, "-u", "-c", DRIVER, str(folder), str(db),
                             str(interval_ms)], cwd=REPO, env=child_env(home),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _kill_app(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # helpers the app left behind, if any
    except ProcessLookupError:
        pass


def _more_problems(db: Path, thumbnails: Path) -> list[str]:
    """Checks beyond integrity_problems: duplicate tags, and thumbnails that do not decode
    (a half-written file left by the kill)."""
    problems = []
    with connect_ro(db) as conn:
        problems += [f"duplicate tag {row}" for row in conn.execute(
            "SELECT content_id, analyser, tag, count(*) FROM tags "
            "GROUP BY content_id, analyser, tag HAVING count(*) > 1")]
    for path in thumbnails.rglob("*") if thumbnails.exists() else ():
        if path.is_file() and not path.name.endswith(".tmp"):
            try:
                with PILImage.open(path) as thumb:
                    thumb.load()
            except Exception as exc:  # noqa: BLE001 - any failure is the finding
                problems.append(f"thumbnail {path.name}: {exc}")
    return problems


@pytest.mark.slow
def test_killing_the_app_loses_no_decision_and_the_next_start_resumes_analysis(tmp_path,
                                                                              library_db):
    folder = tmp_path / "outputs"
    _write_images(folder, N_IMAGES)
    db = library_db.target
    home = tmp_path / "home"
    home.mkdir()
    # Only the bundled analyser: the others have no weights here and would only be skipped.
    (home / "settings.json").write_text('{"enabled_analysers": ["nsfw-default"]}')
    thumbnails = home / "cache" / "thumbnails"

    outputs: list[str] = []
    at_kill: dict[str, dict[str, int]] = {}

    def run_and_kill(name: str, kill_when, interval_ms: int) -> None:
        proc = _start_app(folder, db, home, interval_ms)
        lines = Lines(proc)
        try:
            wait_until(lambda: kill_when(lines), PHASE_TIMEOUT_S, f"the {name} kill point",
                       alive=proc)
            os.kill(proc.pid, signal.SIGKILL)
            at_kill[name] = counts(db)
        finally:
            _kill_app(proc)
        out, err = lines.finish()
        assert proc.returncode == -signal.SIGKILL, err[-3000:]
        outputs.append(out)
        log = parse_reviewer("\n".join(outputs))
        assert log.errors == [], log.errors
        assert integrity_problems(db) == [], name
        assert _more_problems(db, thumbnails) == [], name
        assert lost_decisions(db, log) == [], name
        assert log_disagreements(db) == [], name

    # 1. While the first scan is reading files: its first thumbnails are written, its rows
    # (committed in batches) not all recorded yet.
    def scanning(_lines: Lines) -> bool:
        return any(p.suffix != ".tmp" for p in thumbnails.rglob("*.*")) \
            if thumbnails.exists() else False

    run_and_kill("scan", scanning, interval_ms=50)
    assert at_kill["scan"]["images"] < N_IMAGES and at_kill["scan"]["analysis_results"] == 0

    # 2. While analysis writes results, right after a decision was acknowledged.
    def analysing_after_an_ack(lines: Lines) -> bool:
        table = counts(db)
        return (lines.count("ACK") >= 5 and lines.lines[-1:] != []
                and lines.lines[-1].startswith("ACK") and table["analysis_results"] > 0)

    run_and_kill("analysis", analysing_after_an_ack, interval_ms=20)

    # 3. Mid-review, keys arriving every few ms: the kill lands anywhere in a keypress.
    run_and_kill("review", lambda lines: lines.count("ACK") >= 40, interval_ms=5)

    log = parse_reviewer("\n".join(outputs))
    assert log.n_acks >= 45
    # The second kill really landed mid-analysis (results written, more queued).
    assert 0 < at_kill["analysis"]["analysis_results"] < N_IMAGES
    done_before = counts(db)["analysis_results"]

    rerun = gentriage(["scan", str(folder), "--db", str(db), *NSFW_ONLY], home, timeout=120)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    table = counts(db)
    assert (table["images"], table["contents"], table["analysis_results"],
            table["analysis_queue"]) == (N_IMAGES, N_IMAGES, N_IMAGES, 0), table
    # Exactly the pending work was done: nothing analysed twice.
    assert summary_lines(rerun.stdout)["analysed"] == f"nsfw-default {N_IMAGES - done_before}"
    assert integrity_problems(db) == []
    assert _more_problems(db, thumbnails) == []
    assert lost_decisions(db, log) == []  # analysis never overwrites a decision
    assert log_disagreements(db) == []
