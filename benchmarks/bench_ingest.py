"""First-time ingest throughput against bare decoding of the same files, in the same run.

Files: N 1024×1024 PNGs with smooth shapes plus grain, saved like A1111 does (Pillow, default
compression), ~2 MB each like real SDXL output. They are read once beforehand so both
measurements see the page cache.

Baseline: `PIL.Image.open(path).load()` of every file, one after another (one core).
Measured: `library.scan.scan_folders` into a fresh library and thumbnail cache — read, SHA-256,
decode, metadata, 512 px JPEG thumbnail written, rows committed — using all cores; once with
threads (the default) and once with worker processes. Pool start-up is included. The rounds
are interleaved (bare, process, thread, bare, …) so load from other programs hits all alike;
the best round of each is reported.

Target (issue #3): ingest rate ≥ 0.8 × the bare decode rate.
Run: `python -m benchmarks.bench_ingest [N]`.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

if TYPE_CHECKING:
    from library.scan import ExecutorKind

N_IMAGES = 48
QUICK_IMAGES = 16
ROUNDS = 2


def _make_pngs(folder: Path, count: int) -> list[Path]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from sample_images import noise_picture

    paths = []
    for i in range(count):
        path = folder / f"{i:05d}.png"
        noise_picture((1024, 1024), seed=i).save(path, "PNG")
        paths.append(path)
    return paths


def _bare_decode_rate(paths: list[Path]) -> float:
    began = time.perf_counter()
    for path in paths:
        with Image.open(path) as im:
            im.load()
    return len(paths) / (time.perf_counter() - began)


def _ingest_rate(folder: Path, work: Path, executor: ExecutorKind) -> float:
    from db.engine import open_library
    from library.scan import scan_folders
    from library.thumbnails import ThumbnailCache

    shutil.rmtree(work, ignore_errors=True)
    engine = open_library(work / "library.sqlite3")
    try:
        thumbnails = ThumbnailCache(work / "thumbnails")
        began = time.perf_counter()
        summary = scan_folders(engine, [folder], thumbnails, executor=executor)
        elapsed = time.perf_counter() - began
    finally:
        engine.dispose()
    if summary.indexed != summary.seen or summary.errors or summary.thumbnail_failures:
        raise RuntimeError(f"ingest did not index everything: {summary}")
    return summary.indexed / elapsed


def run(report, quick: bool = False, n_images: int | None = None) -> None:
    count = n_images or (QUICK_IMAGES if quick else N_IMAGES)
    with tempfile.TemporaryDirectory(prefix="gentriage-bench-ingest-") as tmp:
        folder, work = Path(tmp) / "images", Path(tmp) / "work"
        folder.mkdir()
        began = time.perf_counter()
        paths = _make_pngs(folder, count)
        megabytes = sum(p.stat().st_size for p in paths) / count / 1e6
        report(f"generate {count} PNGs 1024x1024 (avg {megabytes:.1f} MB)",
               time.perf_counter() - began, "s")
        for path in paths:
            path.read_bytes()  # page cache, for every measurement alike

        best = {"bare": 0.0, "process": 0.0, "thread": 0.0}
        for _ in range(ROUNDS):
            best["bare"] = max(best["bare"], _bare_decode_rate(paths))
            for executor in ("process", "thread"):
                best[executor] = max(best[executor], _ingest_rate(folder, work, executor))

        cores = os.cpu_count() or 1
        report("bare decode, Image.open().load(), 1 core", best["bare"], "images/s")
        report(f"first-time ingest + thumbnails, {cores} threads (default)", best["thread"],
               "images/s", baseline=best["bare"], target=">= 0.8x bare decode")
        report(f"first-time ingest + thumbnails, {cores} worker processes", best["process"],
               "images/s", baseline=best["bare"], target="(comparison)")


if __name__ == "__main__":
    from benchmarks import print_report

    run(print_report, n_images=int(sys.argv[1]) if len(sys.argv) > 1 else None)
