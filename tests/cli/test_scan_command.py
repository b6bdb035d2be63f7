"""`gentriage scan`: index + analyse generated folders in a real subprocess, with the bundled
nsfw-default analyser (no models folder needed); exit codes; interruption and resume."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_support import REPO, cli_env, make_folder, run_cli, write_png

from gentriage.cli import main

NSFW = ["--analysers", "nsfw-default"]


def _db_counts(db) -> dict[str, int]:
    counts = db.counts(("images", "contents", "analysis_results", "analysis_queue"))
    assert counts is not None, "the library has no tables"
    return counts


def _results_so_far(db) -> int:
    """Analysis results written so far; 0 while the database is still being created."""
    counts = db.counts(("analysis_results",))
    return 0 if counts is None else counts["analysis_results"]


def _images_so_far(db) -> int:
    """Images recorded so far; 0 while the database is still being created."""
    counts = db.counts(("images",))
    return 0 if counts is None else counts["images"]


def _summary(stdout: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in stdout.splitlines() if ": " in line)


def test_scan_indexes_analyses_and_reports_broken_files(tmp_path, home, library_db):
    folder = make_folder(tmp_path / "pics", 6, broken=1)
    db = library_db

    first = run_cli(["scan", str(folder), "--db", str(db), *NSFW], home)

    assert first.returncode == 1, first.stderr  # one broken file; all others processed
    summary = _summary(first.stdout)
    assert summary["indexed"].startswith("6 new or changed, 0 unchanged")
    assert summary["indexed"].endswith("1 broken")
    assert summary["analysed"] == "nsfw-default 6"
    assert summary["broken"] == "1"
    assert re.fullmatch(r"\d+ of 6 analysed image\(s\) in these folders", summary["flagged"])
    assert re.fullmatch(r"[\d.]+ s, [\d.]+ images/s analysed", summary["elapsed"])
    assert "broken0.png" in first.stderr
    counts = _db_counts(db)
    assert counts["analysis_results"] == 6
    assert counts["analysis_queue"] == 0

    # A second run re-reads nothing and re-analyses nothing; the broken file still counts.
    again = run_cli(["scan", str(folder), "--db", str(db), *NSFW], home)
    assert again.returncode == 1
    summary = _summary(again.stdout)
    assert summary["indexed"].startswith("0 new or changed, 7 unchanged")
    assert summary["analysed"] == "nsfw-default 0"
    assert _db_counts(db) == counts


def test_scan_of_a_clean_folder_with_the_default_settings_exits_0(tmp_path, home):
    folder = make_folder(tmp_path / "pics", 3)
    result = run_cli(["scan", str(folder)], home)  # default database under GENTRIAGE_HOME
    assert result.returncode == 0, result.stderr
    assert _summary(result.stdout)["analysed"] == "nsfw-default 3"
    # The other default analysers have no weights here: said once each, not an error.
    assert "coherence is not used" in result.stderr
    assert (home / "library.sqlite3").exists()


@pytest.mark.parametrize("args, message", [
    (["{missing}"], "no such folder"),
    (["{folder}", "--analysers", "nsfw-default,colour"], "unknown analyser(s) colour"),
    (["{folder}", "--batch-size", "0"], "--batch-size must be at least 1"),
    (["{folder}", "--ray-workers", "2"], "--ray-workers needs --ray"),
])
def test_usage_errors_exit_2(tmp_path, capsys, args, message):
    folder = make_folder(tmp_path / "pics", 1)
    argv = [a.format(missing=tmp_path / "nope", folder=folder) for a in args]
    assert main(["scan", *argv, "--db", str(tmp_path / "lib.sqlite3")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "lib.sqlite3").exists()  # nothing was written


def test_an_unknown_option_exits_2(tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["scan", str(tmp_path), "--frobnicate"])
    assert exc.value.code == 2


def _start_scan(folder: Path, db, home: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "gentriage", "scan", str(folder), "--db", str(db), *NSFW,
         "--batch-size", "1", "--workers", "1"],
        cwd=REPO, env=cli_env(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_results(proc: subprocess.Popen, db, timeout: float = 120) -> None:
    """Poll the database (never a blind sleep) until the scan has written some results."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the scan ended before it could be interrupted"
        if _results_so_far(db) > 0:
            return
        time.sleep(0.01)
    raise AssertionError("no results were written in time")


def test_a_ctrl_c_while_ray_shuts_down_still_ends_as_an_interruption(tmp_path, capsys,
                                                                    monkeypatch):
    """A second Ctrl+C can land after the scan stopped, while Ray shuts down (seconds): it is
    answered like any other (exit 130, one "interrupted" line), not by Python's default
    handler, and the cluster is not closed twice."""
    from gentriage.commands import scan as scan_module

    closed: list[int] = []

    class ClusterClosedByCtrlC:
        def close(self) -> None:
            closed.append(1)
            assert signal.getsignal(signal.SIGINT) != signal.default_int_handler
            raise KeyboardInterrupt  # what our handler raises on a second Ctrl+C

    monkeypatch.setattr(scan_module, "_ray_target", lambda option: object())
    monkeypatch.setattr(scan_module, "_connect_ray",
                        lambda target, args, device: ClusterClosedByCtrlC())
    monkeypatch.setattr(scan_module, "_scan_and_analyse",  # stopped after its batch
                        lambda *args: scan_module.EXIT_INTERRUPTED)
    handler_before = signal.getsignal(signal.SIGINT)
    folder = make_folder(tmp_path / "pics", 1)

    status = main(["scan", str(folder), "--db", str(tmp_path / "lib.sqlite3"),
                   "--ray", "auto", *NSFW])

    assert status == 130
    assert capsys.readouterr().err.count("interrupted; work done so far is saved") == 1
    assert closed == [1]
    assert signal.getsignal(signal.SIGINT) is handler_before


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT])
def test_an_interrupted_scan_resumes_without_losing_or_repeating_work(tmp_path, home, how,
                                                                      library_db):
    total = 80
    folder = make_folder(tmp_path / "pics", total)
    db = library_db

    proc = _start_scan(folder, db, home)
    try:
        _wait_for_results(proc, db)
        proc.send_signal(how)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if how == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
    else:  # a clean stop: the batch in progress is written, the rest stays queued
        assert proc.returncode == 130, stderr
        assert re.search(r"stopped: \d+ image\(s\) still queued", stdout)
    done = _db_counts(db)
    assert 0 < done["analysis_results"] < total
    assert done["images"] == total
    assert done["analysis_queue"] > 0

    rerun = run_cli(["scan", str(folder), "--db", str(db), *NSFW], home)
    assert rerun.returncode == 0, rerun.stderr
    summary = _summary(rerun.stdout)
    assert summary["indexed"].startswith(f"0 new or changed, {total} unchanged")
    # Exactly what was missing is analysed: nothing lost, nothing done twice.
    assert summary["analysed"] == f"nsfw-default {total - done['analysis_results']}"
    after = _db_counts(db)
    assert after == {"images": total, "contents": total, "analysis_results": total,
                     "analysis_queue": 0}


@pytest.mark.slow
def test_watch_analyses_new_files_until_interrupted(tmp_path, home, library_db):
    folder = make_folder(tmp_path / "pics", 2)
    db = library_db
    proc = subprocess.Popen(
        [sys.executable, "-m", "gentriage", "scan", str(folder), "--db", str(db), *NSFW,
         "--watch"], cwd=REPO, env=cli_env(home), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            if _results_so_far(db) == 2:
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the initial scan was not analysed")
        write_png(folder / "new.png", "arrived later")
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            if _results_so_far(db) == 3:
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the new file was not analysed")
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr  # Ctrl+C is how a watch ends: not a failure
    assert _summary(stdout)["analysed"] == "nsfw-default 3"


@pytest.mark.slow
def test_watch_without_a_ready_analyser_keeps_indexing_until_interrupted(tmp_path, home,
                                                                         library_db):
    """No analyser can run (coherence's weights are missing): the watch still follows the
    folder — new files are indexed — until Ctrl+C, instead of ending at once."""
    folder = make_folder(tmp_path / "pics", 2)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gentriage", "scan", str(folder), "--db", str(library_db),
         "--analysers", "coherence", "--models-dir", str(tmp_path / "no-models"), "--watch"],
        cwd=REPO, env=cli_env(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and _images_so_far(library_db) < 2:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        write_png(folder / "new.png", "arrived later")
        while time.monotonic() < deadline and _images_so_far(library_db) < 3:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        assert _images_so_far(library_db) == 3, "the new file was not indexed"
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    assert "no analyser is ready" in stderr
    assert _summary(stdout)["indexed"].startswith("2 new or changed")
