"""`gentriage scan --ray`: every file indexed and analysed exactly once, the same verdicts as a
local scan; a SIGKILLed driver, a killed worker actor and Ctrl+C lose nothing and repeat
nothing; a review decision made meanwhile is kept.

All but the `--ray local` test join one local Ray started once per session (ray_support.py:
2 CPUs, loopback only). Files are tiny PNGs, so a run is dominated by Ray's start-up and the
workers' model loading, not by the analysis."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import threading
from pathlib import Path

import pytest
from ray_support import driver_env, needs_ray, ray_env
from reliability_support import (
    NSFW_ONLY,
    Lines,
    connect_ro,
    counts,
    gentriage,
    integrity_problems,
    kill,
    start_gentriage,
    start_python,
    summary_lines,
    wait_until,
    write_images,
)


class _StderrLines:
    """A child's stderr, read on a thread as it comes (the test waits on a line)."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self._lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            self._lines.append(line)

    def has(self, text: str) -> bool:
        return any(text in line for line in list(self._lines))

    def text(self) -> str:
        self._thread.join(30)
        return "".join(self._lines)


def _ray_scan(folder: Path, db: object, head, *extra: str) -> list[str]:
    return ["scan", str(folder), "--db", str(db), *NSFW_ONLY, "--workers", "1",
            "--ray", head.address, *extra]


def _verdicts(db: object) -> dict[str, tuple[str | None, float | None]]:
    """sha256 -> (label, score) of every nsfw-default result."""
    with connect_ro(db) as conn:
        rows = conn.execute("SELECT c.sha256, r.label, r.score FROM analysis_results r "
                            "JOIN contents c ON c.id = r.content_id "
                            "WHERE r.analyser = 'nsfw-default'").fetchall()
    return {sha: (label, score) for sha, label, score in rows}


def _queue(db: object) -> list[tuple[int, str | None]]:
    """(attempts, leased_by) of every queued row."""
    with connect_ro(db) as conn:
        return conn.execute("SELECT attempts, leased_by FROM analysis_queue").fetchall()


def _exactly_once(db: object, total: int) -> None:
    assert integrity_problems(db) == []
    assert counts(db) | {"folders": 1, "review_log": 0} == {
        "folders": 1, "images": total, "contents": total, "analysis_results": total,
        "analysis_queue": 0, "review_log": 0}
    assert all(label in ("sfw", "nsfw") for label, _ in _verdicts(db).values())


@needs_ray
@pytest.mark.slow
def test_scan_ray_local_analyses_every_file_once_with_the_local_verdicts(tmp_path, ray_files):
    """The acceptance command as a user types it: Ray is started for the scan and ends
    with it. The verdicts are those a local scan records for the same files."""
    total = 24
    folder = tmp_path / "pics"
    write_images(folder, total, size=64)
    db, local_db = tmp_path / "ray.sqlite3", tmp_path / "local.sqlite3"
    env = ray_env(ray_files)
    env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")  # --ray local keeps itself on loopback
    env.pop("RAY_AUTH_MODE")  # and a local Ray needs nothing from the environment

    result = gentriage(["scan", str(folder), "--db", str(db), *NSFW_ONLY, "--ray", "local"],
                       tmp_path / "home", timeout=240, **env)
    local = gentriage(["scan", str(folder), "--db", str(local_db), *NSFW_ONLY],
                      tmp_path / "home")

    assert result.returncode == 0, result.stderr[-3000:]
    summary = summary_lines(result.stdout)
    assert summary["indexed"].startswith(f"{total} new or changed")
    assert summary["analysed"] == f"nsfw-default {total}"
    assert "on a local Ray on this machine (1 node," in summary["ray"]
    assert "Ray worker" in result.stderr  # progress names where the models ran
    _exactly_once(db, total)
    assert local.returncode == 0, local.stderr[-3000:]
    ray_verdicts, local_verdicts = _verdicts(db), _verdicts(local_db)
    assert ray_verdicts.keys() == local_verdicts.keys()
    for sha, (label, score) in local_verdicts.items():
        assert ray_verdicts[sha][0] == label
        assert ray_verdicts[sha][1] == pytest.approx(score, abs=1e-4)


def _kill_review_rerun(folder: Path, paths: list[Path], db: object, home: Path,
                       scan: list[str], **env: str) -> None:
    """SIGKILL the scan once results are coming in, reject the last picture with `gentriage
    review` on the same library, run the scan again: every file exactly once, analysed,
    and the decision kept."""
    total = len(paths)
    proc = start_gentriage(scan, home, **env)
    try:
        wait_until(lambda: counts(db)["analysis_results"] >= 16, 120, "the first results",
                   alive=proc)
        proc.send_signal(signal.SIGKILL)
    finally:
        kill(proc)
    before = counts(db)["analysis_results"]
    assert 0 < before < total  # killed mid-run
    # Meanwhile a reviewer decides on one picture.
    review = gentriage(["review", str(paths[-1]), "--reject", "--db", str(db)], home)
    assert review.returncode == 0, review.stderr

    rerun = gentriage(scan, home, timeout=240, **env)

    assert rerun.returncode == 0, rerun.stderr[-3000:]
    summary = summary_lines(rerun.stdout)
    assert summary["indexed"].startswith(f"0 new or changed, {total} unchanged")
    # Exactly what the killed run had not written is analysed: nothing twice, nothing lost.
    assert summary["analysed"] == f"nsfw-default {total - before}"
    _exactly_once(db, total)
    with connect_ro(db) as conn:
        decisions = conn.execute("SELECT c.decision FROM contents c JOIN images i "
                                 "ON i.content_id = c.id WHERE i.path = :path",
                                 {"path": str(paths[-1])}).fetchall()
        logged = conn.execute("SELECT count(*) FROM review_log").scalar_one()
    assert [tuple(row) for row in decisions] == [("rejected",)]
    assert logged == 1


@needs_ray
@pytest.mark.slow
def test_a_killed_driver_and_a_rerun_leave_every_file_once_and_keep_a_decision(tmp_path,
                                                                                ray_head,
                                                                                library_db):
    """On both backends, with the session's Ray."""
    folder = tmp_path / "pics"
    paths = write_images(folder, 160, size=64)
    _kill_review_rerun(folder, paths, library_db, tmp_path / "home",
                       _ray_scan(folder, library_db, ray_head), **driver_env(ray_head))


@needs_ray
@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_acceptance_postgresql_ray_local_killed_driver_rerun_keeps_a_decision(
        tmp_path, ray_files, library_db):
    """Issue #15's acceptance as typed: `scan DIR --db postgresql+psycopg://… --ray local`,
    the driver (and with it the local Ray it started) SIGKILLed mid-run, a decision made
    with `gentriage review` meanwhile, a rerun."""
    folder = tmp_path / "pics"
    paths = write_images(folder, 160, size=64)
    env = ray_env(ray_files)
    env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")  # --ray local keeps itself on loopback
    env.pop("RAY_AUTH_MODE")  # and a local Ray needs nothing from the environment
    scan = ["scan", str(folder), "--db", str(library_db), *NSFW_ONLY, "--workers", "1",
            "--ray", "local"]
    _kill_review_rerun(folder, paths, library_db, tmp_path / "home", scan, **env)


@needs_ray
@pytest.mark.slow
def test_a_worker_killed_mid_batch_loses_nothing(tmp_path, ray_head):
    total = 200
    folder = tmp_path / "pics"
    write_images(folder, total, size=64)
    db = tmp_path / "lib.sqlite3"

    proc = start_gentriage(_ray_scan(folder, db, ray_head, "--ray-workers", "2"),
                           tmp_path / "home", **driver_env(ray_head))
    try:
        wait_until(lambda: counts(db)["analysis_results"] >= 16, 120, "the first results",
                   alive=proc)
        killed = ray_head.kill_worker()  # ray.kill: the actor dies mid-chunk
        at_kill = counts(db)["analysis_results"]
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        kill(proc)

    assert at_kill < total, "the scan ended before the worker was killed"
    assert proc.returncode == 0, stderr[-3000:]
    assert f"worker {killed} on " in stderr and "stopped" in stderr
    # Its chunk (and the one queued behind it) went to another worker at once.
    assert "image(s) of the stopped worker go to another" in stderr
    summary = summary_lines(stdout)
    assert summary["analysed"] == f"nsfw-default {total}"
    assert summary["ray"].endswith("1 worker stopped and replaced")
    _exactly_once(db, total)


@needs_ray
@pytest.mark.slow
def test_ctrl_c_stops_after_the_chunks_in_flight_and_a_rerun_finishes(tmp_path, ray_head):
    total = 160
    folder = tmp_path / "pics"
    write_images(folder, total, size=64)
    db = tmp_path / "lib.sqlite3"
    home = tmp_path / "home"

    proc = start_gentriage(_ray_scan(folder, db, ray_head), home, **driver_env(ray_head))
    try:
        wait_until(lambda: counts(db)["analysis_results"] >= 16, 120, "the first results",
                   alive=proc)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        kill(proc)

    assert proc.returncode == 130, stderr[-3000:]
    assert re.search(r"stopped: \d+ image\(s\) still queued", stdout)
    done = counts(db)["analysis_results"]
    assert 0 < done < total
    # A clean stop: every unfinished row is released, and not counted as a failed attempt.
    assert _queue(db) == [(0, None)] * (total - done)

    rerun = gentriage(_ray_scan(folder, db, ray_head), home, timeout=240,
                      **driver_env(ray_head))
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert summary_lines(rerun.stdout)["analysed"] == f"nsfw-default {total - done}"
    _exactly_once(db, total)


@needs_ray
@pytest.mark.slow
def test_a_second_ctrl_c_stops_at_once(tmp_path, ray_head):
    total = 160
    folder = tmp_path / "pics"
    write_images(folder, total, size=64)
    db = tmp_path / "lib.sqlite3"
    home = tmp_path / "home"

    proc = start_gentriage(_ray_scan(folder, db, ray_head), home, **driver_env(ray_head))
    errors = _StderrLines(proc)
    try:
        wait_until(lambda: counts(db)["analysis_results"] >= 16, 120, "the first results",
                   alive=proc)
        proc.send_signal(signal.SIGINT)
        # Signals sent back to back may reach Python's handler as one: the second is sent
        # once the first has been taken.
        wait_until(lambda: errors.has("Ctrl+C again stops at once"), 60, "the first stop")
        proc.send_signal(signal.SIGINT)
        proc.wait(120)
        stderr = errors.text()
    finally:
        kill(proc)

    assert proc.returncode == 130, stderr[-3000:]
    assert "interrupted; work done so far is saved" in stderr
    done = counts(db)["analysis_results"]
    assert integrity_problems(db) == []
    rerun = gentriage(_ray_scan(folder, db, ray_head), home, timeout=240,
                      **driver_env(ray_head))
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert summary_lines(rerun.stdout)["analysed"] == f"nsfw-default {total - done}"
    _exactly_once(db, total)


# The executor on its own, joined to the session's Ray: after cancel() nothing more is sent,
# the chunks already on the workers finish and are yielded, then run() ends.
DRAIN = r'''
import json, sys
from pathlib import Path
from inference.types import Job
from inference.weights import discover
from library import distributed

folder, address, models = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
cluster = distributed.RayCluster.connect(distributed.resolve_target(address), "cpu", 2)
cluster.say = lambda text: None
statuses = discover(Path(models), ["nsfw-default"])
executor = cluster.executor(models_dir=models, analysers=["nsfw-default"], device="cpu",
                            statuses=statuses)
jobs = [Job(i, str(p)) for i, p in enumerate(sorted(folder.iterdir()))]
seen = []
for job, output in executor.run(jobs):
    if not seen:
        executor.cancel()
    seen.append(job.job_id)
print("RESULT " + json.dumps({"seen": seen, "chunk": cluster.shape.chunk,
                             "workers": cluster.shape.count}), flush=True)
cluster.close()
'''


@needs_ray
@pytest.mark.slow
def test_cancel_lets_the_chunks_in_flight_finish_and_sends_no_more(tmp_path, ray_head):
    folder = tmp_path / "pics"
    write_images(folder, 200, size=32)
    proc = start_python(DRAIN, tmp_path / "home", str(folder), ray_head.address,
                        str(tmp_path / "models"), **driver_env(ray_head))
    lines = Lines(proc)
    try:
        stdout, stderr = lines.finish(180)
    finally:
        kill(proc)
    assert proc.returncode == 0, stderr[-3000:]
    result = json.loads(next(line for line in stdout.splitlines()
                             if line.startswith("RESULT "))[len("RESULT "):])
    in_flight = result["workers"] * 2  # IN_FLIGHT_PER_WORKER chunks were on the workers
    assert len(result["seen"]) == in_flight * result["chunk"]
    assert len(set(result["seen"])) == len(result["seen"])  # each once
    assert max(result["seen"]) < in_flight * result["chunk"]  # only the chunks first sent


def test_without_ray_installed_ray_exits_2_with_the_install_command(tmp_path):
    """A Python where `import ray` fails (as where the extra is not installed)."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import sys\nsys.modules['ray'] = None\n")
    folder = tmp_path / "pics"
    write_images(folder, 1)
    result = gentriage(["scan", str(folder), "--db", str(tmp_path / "lib.sqlite3"),
                        "--ray"], tmp_path / "home", extra_path=[site])
    assert result.returncode == 2
    assert "--ray needs Ray, which is not installed: pip install 'gentriage[ray]'" in \
        result.stderr
    assert not (tmp_path / "lib.sqlite3").exists()  # refused before anything was written


@needs_ray
def test_ray_auto_without_ray_address_is_a_usage_error(tmp_path, monkeypatch, capsys):
    from gentriage.cli import main

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    folder = tmp_path / "pics"
    write_images(folder, 1)
    assert main(["scan", str(folder), "--db", str(tmp_path / "lib.sqlite3"), "--ray",
                 "auto"]) == 2
    assert "--ray auto: RAY_ADDRESS is not set" in capsys.readouterr().err
    assert not (tmp_path / "lib.sqlite3").exists()
