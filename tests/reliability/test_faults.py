"""Faults around a scan: a database locked by another process, a full disk under the
thumbnail cache, damaged model files, an analyser that raises on one image, and GPU
out-of-memory. Each must end in a clear message and lose no other work."""

from __future__ import annotations

import errno
import io
import os
import sqlite3
import struct
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from reliability_support import (
    NSFW_ONLY,
    REPO,
    child_env,
    counts,
    integrity_problems,
    summary_lines,
    write_images,
)
from sqlalchemy import select

from db.schema import AnalysisResult, Image, ImageStatus, QueuedAnalysis
from inference.base import Analyser
from inference.types import AnalyserOutput, Job
from library.scan import scan_folders
from library.thumbnails import ThumbnailCache

# ----------------------------------------------------------------------------- database lock


class ExclusiveLock:
    """Another process's view of the database, holding its write lock: SQLite, a plain
    sqlite3 connection in `BEGIN EXCLUSIVE` (in WAL mode: readers go on, every other writer
    waits); PostgreSQL, a plain connection holding the advisory lock every GenTriage write
    transaction takes (db.transaction)."""

    def __init__(self, db) -> None:
        self.held = False
        self.path = db.path
        if self.path is not None:
            self.conn = sqlite3.connect(self.path, isolation_level=None,
                                        check_same_thread=False)
            return
        from sqlalchemy import create_engine
        from sqlalchemy.pool import NullPool

        self.engine = create_engine(db.target, poolclass=NullPool)
        self.server = self.engine.connect()

    def take(self) -> None:
        if self.path is not None:
            self.conn.execute("BEGIN EXCLUSIVE")
        else:
            from sqlalchemy import text

            from db.transaction import POSTGRESQL_WRITE_LOCK

            self.server.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                                {"key": POSTGRESQL_WRITE_LOCK})
        self.held = True

    def release(self) -> None:
        if self.held:
            if self.path is not None:
                self.conn.execute("ROLLBACK")
            else:
                self.server.rollback()
            self.held = False

    def close(self) -> None:
        self.release()
        if self.path is not None:
            self.conn.close()
        else:
            self.server.close()
            self.engine.dispose()


def test_a_scan_waits_for_a_lock_held_by_another_process_and_loses_nothing(tmp_path,
                                                                          library):
    _, sessions, db = library
    folder = tmp_path / "pics"
    write_images(folder, 12)
    lock = ExclusiveLock(db)
    released = threading.Event()

    def on_progress(done: int, _total: int) -> None:
        # Files are being read, none recorded yet: the other process takes the write lock
        # now and keeps it for a moment, so the first batch's transaction has to wait.
        if done == 1 and not lock.held and not released.is_set():
            lock.take()
            threading.Timer(0.5, lambda: (lock.release(), released.set())).start()

    try:
        summary = scan_folders(sessions, [folder], None, workers=1, executor="thread",
                               progress=on_progress)
    finally:
        released.wait(10)
        lock.close()
    assert released.is_set(), "the lock was never taken: the test did not exercise waiting"
    assert (summary.indexed, summary.errors) == (12, [])
    assert counts(db)["images"] == 12
    assert integrity_problems(db) == []


_SHORT_BUSY_SCAN = (
    "import sys\n"
    "import db.engine\n"
    "db.engine.BUSY_TIMEOUT_MS = 300  # the 15 s default, shortened for the test\n"
    "from gentriage.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n")


def _scan_with_short_busy_timeout(folder: Path, db, home: Path):
    import subprocess

    return subprocess.run([sys.executable, "-c", _SHORT_BUSY_SCAN, "scan", str(folder),
                           "--db", str(db), "--workers", "1", *NSFW_ONLY], cwd=REPO,
                          env=child_env(home), capture_output=True, text=True, timeout=120)


def test_a_database_locked_for_longer_than_the_timeout_gives_a_clear_message(tmp_path,
                                                                             library):
    """A clear message, nothing half-written, and the next run (lock gone) does everything."""
    engine, _, db = library
    engine.dispose()
    folder = tmp_path / "pics"
    write_images(folder, 4)
    lock = ExclusiveLock(db)
    lock.take()
    try:
        failed = _scan_with_short_busy_timeout(folder, db, tmp_path / "home")
    finally:
        lock.close()
    assert failed.returncode != 0
    assert "Traceback" not in failed.stderr, failed.stderr[-3000:]
    assert "locked" in failed.stderr or "busy" in failed.stderr
    assert integrity_problems(db) == []
    again = _scan_with_short_busy_timeout(folder, db, tmp_path / "home")
    assert again.returncode == 0, again.stderr[-3000:]
    assert summary_lines(again.stdout)["analysed"] == "nsfw-default 4"
    table = counts(db)
    assert (table["images"], table["analysis_results"], table["analysis_queue"]) == (4, 4, 0)


# ----------------------------------------------------------------------------- full disk


class _FullDisk(io.RawIOBase):
    """A file object on a full disk: every write fails with ENOSPC. No fileno(), so Pillow
    writes through `write` instead of straight to the descriptor."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def writable(self) -> bool:
        return True

    def write(self, _data: Any) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()


def test_a_full_disk_under_the_thumbnail_cache_only_costs_thumbnails(tmp_path, library,
                                                                    monkeypatch):
    _, sessions, db = library
    folder = tmp_path / "pics"
    write_images(folder, 10)
    cache_root = tmp_path / "thumbnails"
    real_fdopen = os.fdopen

    def fdopen(fd: int, *args: Any, **kwargs: Any):
        target = os.readlink(f"/proc/self/fd/{fd}")
        if target.startswith(str(cache_root)):
            return _FullDisk(fd)
        return real_fdopen(fd, *args, **kwargs)

    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc to tell which file a descriptor is")
    monkeypatch.setattr(os, "fdopen", fdopen)
    summary = scan_folders(sessions, [folder], ThumbnailCache(cache_root), workers=2,
                           executor="thread")

    assert (summary.indexed, summary.broken, summary.thumbnail_failures) == (10, 0, 10)
    assert len(summary.errors) == 1  # one line for the reason, not one per image
    assert "No space left on device" in summary.errors[0]
    assert "thumbnails not written for 10 image(s)" in summary.errors[0]
    with sessions() as session:
        images = list(session.scalars(select(Image)))
        queued = list(session.scalars(select(QueuedAnalysis)))
    assert all(i.status == ImageStatus.OK.value and not i.has_thumbnail for i in images)
    assert len(queued) == 10  # analysis still gets every image
    leftovers = [p for p in cache_root.rglob("*") if p.is_file()]
    assert leftovers == []  # no half-written thumbnails or temp files

    # Space is back: the next scan re-reads nothing, and the grid's loader can make them.
    monkeypatch.setattr(os, "fdopen", real_fdopen)
    again = scan_folders(sessions, [folder], ThumbnailCache(cache_root), workers=2,
                         executor="thread")
    assert (again.unchanged, again.errors) == (10, [])


# ----------------------------------------------------------------------------- models folder


def _tiny_safetensors(tensors: dict[str, tuple[int, ...]]) -> bytes:
    """A safetensors file with zero-filled F32 tensors of the given shapes."""
    import json

    header: dict[str, Any] = {}
    offset = 0
    for name, shape in tensors.items():
        size = 4
        for dim in shape:
            size *= dim
        header[name] = {"dtype": "F32", "shape": list(shape),
                        "data_offsets": [offset, offset + size]}
        offset += size
    blob = json.dumps(header).encode()
    return struct.pack("<Q", len(blob)) + blob + b"\0" * offset


COHERENCE_SHAPES = {"0.0.weight": (64, 3, 7, 7), "1.2.weight": (1024,),
                    "1.4.weight": (512, 1024), "1.8.weight": (3, 512)}


def _damaged_coherence(models: Path, how: str) -> Path:
    folder = models / "coherence"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "coherence_model.safetensors"
    if how == "truncated":
        data = _tiny_safetensors(COHERENCE_SHAPES)
        path.write_bytes(data[: len(data) // 2])  # an interrupted download
    else:
        path.write_bytes(_tiny_safetensors({**COHERENCE_SHAPES, "0.0.weight": (64, 3, 5, 5)}))
    return path


@pytest.mark.parametrize("how, fragment", [("truncated", "truncated"),
                                           ("wrong-shaped", "expected 64x3x7x7")])
def test_a_damaged_checkpoint_is_reported_by_name_and_others_stay_ready(tmp_path, how,
                                                                        fragment):
    from inference.weights import BROKEN, READY, discover

    models = tmp_path / "models"
    path = _damaged_coherence(models, how)
    statuses = {s.key: s for s in discover(models, ["nsfw-default", "coherence"],
                                           hf_cache=tmp_path / "no-hf")}
    assert statuses["coherence"].status == BROKEN
    assert str(path) in statuses["coherence"].message
    assert fragment in statuses["coherence"].message
    assert statuses["nsfw-default"].status == READY


@pytest.mark.slow
def test_scan_with_a_truncated_checkpoint_names_it_and_runs_the_other_analysers(tmp_path):
    """End to end: `models` lists the damaged file, `scan` says once why coherence is not
    used, and the ready analysers (bundled ONNX and a torch ViT) analyse every image."""
    from reliability_support import gentriage

    from inference.testing import write_nsfw_vit

    models = tmp_path / "models"
    path = _damaged_coherence(models, "truncated")
    write_nsfw_vit(models)
    folder = tmp_path / "pics"
    write_images(folder, 5)
    home = tmp_path / "home"
    env = {"HF_HUB_CACHE": str(tmp_path / "no-hf")}

    listing = gentriage(["models", "--models-dir", str(models)], home, **env)
    assert listing.returncode == 1, listing.stderr  # "some weights are broken"
    coherence_lines = [line for line in listing.stdout.splitlines() if "coherence" in line
                       or "truncated" in line]
    assert any("broken" in line for line in coherence_lines)
    assert str(path) in listing.stdout

    db = tmp_path / "lib.sqlite3"
    done = gentriage(["scan", str(folder), "--db", str(db), "--models-dir", str(models),
                      "--analysers", "nsfw-default,coherence,nsfw-vit", "--device", "cpu"],
                     home, **env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "coherence is not used" in done.stderr and str(path) in done.stderr
    assert summary_lines(done.stdout)["analysed"] == "nsfw-default 5, nsfw-vit 5"
    assert counts(db)["analysis_queue"] == 0


# ----------------------------------------------------------------------------- analysers


class ScriptedAnalyser(Analyser):
    """A stand-in analyser behind the real Pipeline: `fail(inputs, jobs, self)` may raise."""

    key = "scripted"
    title = "scripted test analyser"
    cpu_ms_per_image = 1.0

    def __init__(self, device: str, fail, version: str = "scripted-1") -> None:
        from inference.weights import READY, ModelStatus

        status = ModelStatus(self.key, READY, None, "test", [], "", version=version)
        super().__init__(status, device, version=version)
        self._fail = fail
        self.batches: list[int] = []

    def load(self) -> None:
        pass

    def preprocess(self, image: Any) -> Any:
        return image.rgb().size

    def predict(self, inputs: Sequence[Any], jobs: Sequence[Job]) -> list[AnalyserOutput]:
        self._fail(inputs, jobs, self)
        self.batches.append(len(jobs))
        return [self.output("fine", 1.0, {"w": float(w)}) for w, _ in inputs]


def _pipeline_with(analyser: Analyser, models: Path, batch_size: int, messages: list[str]):
    from inference.pipeline import Pipeline

    pipeline = Pipeline(models, analysers=["nsfw-default"], device="cpu",
                        batch_size=batch_size, on_status=messages.append,
                        hf_cache=models / "no-hf")
    pipeline.use_analyser(analyser, batch_size=batch_size)
    return pipeline


def _analyse(sessions, pipeline, enabled: list[str]):
    from library.analysis import AnalysisRunner
    from library.settings import Settings

    runner = AnalysisRunner(sessions, Path("unused"), Settings(enabled_analysers=enabled),
                            device="cpu", pipeline_factory=lambda **_: pipeline)
    return runner.run(threading.Event())


def test_an_analyser_raising_on_one_image_marks_that_image_and_the_batch_goes_on(
        tmp_path, library):
    _, sessions, _ = library
    folder = tmp_path / "pics"
    paths = write_images(folder, 9)
    poison = paths[4]

    def fail(_inputs, jobs, _analyser) -> None:
        if any(job.path == str(poison) for job in jobs):
            raise ValueError("this picture upsets the model")

    scan_folders(sessions, [folder], None, workers=1, executor="thread")
    analyser = ScriptedAnalyser("cpu", fail)
    stats = _analyse(sessions, _pipeline_with(analyser, tmp_path, 4, []),
                     ["nsfw-default", "scripted"])

    with sessions() as session:
        by_path = {i.path: i.content_id for i in session.scalars(select(Image))}
        results = {(r.content_id, r.analyser): r for r in session.scalars(select(AnalysisResult))}
        queued = session.scalar(select(QueuedAnalysis.content_id).limit(1))
    bad = results[(by_path[str(poison)], "scripted")]
    assert bad.error and "upsets the model" in bad.error
    assert results[(by_path[str(poison)], "nsfw-default")].error is None
    good = [results[(by_path[str(p)], "scripted")] for p in paths if p != poison]
    assert len(good) == 8 and all(r.error is None and r.label == "fine" for r in good)
    assert queued is None  # an error result is a finished job: nothing retried forever
    assert (stats.errors["scripted"], stats.analysed["scripted"]) == (1, 8)


@pytest.mark.parametrize("fits_on_gpu", [2, 0], ids=["smaller-batches", "cpu-fallback"])
def test_gpu_out_of_memory_shrinks_the_batch_then_falls_back_to_the_cpu(tmp_path, library,
                                                                        fits_on_gpu):
    """Simulated CUDA OOM (torch.OutOfMemoryError from predict) for any batch larger than
    `fits_on_gpu` while on the GPU: every image still gets its result."""
    import torch

    _, sessions, _ = library
    folder = tmp_path / "pics"
    write_images(folder, 10)

    def fail(_inputs, jobs, analyser) -> None:
        if analyser.device != "cpu" and len(jobs) > fits_on_gpu:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    scan_folders(sessions, [folder], None, workers=1, executor="thread")
    analyser = ScriptedAnalyser("cuda", fail)
    messages: list[str] = []
    stats = _analyse(sessions, _pipeline_with(analyser, tmp_path, 8, messages), ["scripted"])

    assert (stats.analysed["scripted"], stats.errors["scripted"]) == (10, 0)
    assert any("out of memory; batch size now" in m for m in messages)
    if fits_on_gpu:
        assert analyser.device == "cuda" and max(analyser.batches) <= fits_on_gpu
    else:
        assert analyser.device == "cpu"
        assert any("continuing on the CPU" in m for m in messages)
    with sessions() as session:
        assert session.scalar(select(QueuedAnalysis.content_id).limit(1)) is None


def _malformed_weights(models: Path) -> dict[str, Path]:
    """The report's cases, one per analyser folder: a safetensors header that is a JSON list
    (coherence), a config.json that is a list (nsfw-vit), `hidden_size: "big"`-style fields
    (the safety checker's projection_dim) and an `id2label` list (aesthetic's CLIP config)."""
    import json

    from inference.testing import write_aesthetic, write_nsfw_vit, write_safety_checker

    folder = models / "coherence"
    folder.mkdir(parents=True)
    header = b"[]"
    (folder / "coherence_model.safetensors").write_bytes(struct.pack("<Q", len(header))
                                                          + header)
    write_nsfw_vit(models)
    (models / "nsfw-vit" / "config.json").write_text("[]", encoding="utf-8")
    write_safety_checker(models)
    config = models / "safety-checker" / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "projection_dim": "big"}))
    write_aesthetic(models)
    clip = models / "aesthetic" / "clip-vit-large-patch14" / "config.json"
    clip.write_text(json.dumps({**json.loads(clip.read_text()), "vision_config": []}))
    return {"coherence": folder / "coherence_model.safetensors",
            "nsfw-vit": models / "nsfw-vit" / "config.json", "safety-checker": config,
            "aesthetic": clip}


@pytest.mark.slow
def test_malformed_weights_are_listed_as_broken_and_the_scan_still_analyses(tmp_path):
    from reliability_support import gentriage

    models = tmp_path / "models"
    damaged = _malformed_weights(models)
    folder = tmp_path / "pics"
    write_images(folder, 3)
    home = tmp_path / "home"
    env = {"HF_HUB_CACHE": str(tmp_path / "no-hf")}

    listing = gentriage(["models", "--models-dir", str(models)], home, **env)
    assert listing.returncode == 1 and "Traceback" not in listing.stderr, listing.stderr
    for key, path in damaged.items():
        assert str(path) in listing.stdout, (key, listing.stdout)
    as_json = gentriage(["models", "--json", "--models-dir", str(models)], home, **env)
    import json

    statuses = {s["key"]: s["status"] for s in json.loads(as_json.stdout)}
    # clip reads the same (damaged) CLIP folder as aesthetic; style's VGG19 is not there.
    assert statuses == {"nsfw-default": "ready", "coherence": "broken", "nsfw-vit": "broken",
                        "safety-checker": "broken", "aesthetic": "broken", "clip": "broken",
                        "style": "missing", "tagger-jtp": "missing"}

    db = tmp_path / "lib.sqlite3"
    done = gentriage(["scan", str(folder), "--db", str(db), "--models-dir", str(models),
                      "--device", "cpu"], home, **env)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    for key in damaged:
        assert f"{key} is not used" in done.stderr
    assert summary_lines(done.stdout)["analysed"] == "nsfw-default 3"
