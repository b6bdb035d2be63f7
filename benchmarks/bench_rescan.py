"""Rescan of an unchanged 100,000-file library.

Files: 100,000 distinct 1×1 PNGs in 100 folders of 1,000 (real files on disk; their size does
not matter, an unchanged rescan never reads them). The library: the same rows an ingest would
write — one content per file (its SHA-256), one image per path with its size and mtime —
bulk-inserted; a handful are also ingested for real first, and the benchmark fails unless the
rescan finds every file unchanged.

Baseline: the bare directory walk with one stat per file (library.scan.walk_images), i.e. the
file-system floor of any rescan. Measured: `scan_folders` end to end (walk, read the known
rows, compare, commit the folder's scan time). Best of 3.

Target (issue #3): under 3 s. Run: `python -m benchmarks.bench_rescan [N]`.
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

N_FILES = 100_000
QUICK_FILES = 20_000
PER_FOLDER = 1_000
ROUNDS = 3


def _png_1x1(i: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (1, 1), (i & 255, (i >> 8) & 255, (i >> 16) & 255)).save(out, "PNG")
    return out.getvalue()


def _write_files(root: Path, count: int) -> list[tuple[str, bytes]]:
    files = []
    for i in range(count):
        folder = root / f"batch-{i // PER_FOLDER:04d}"
        if i % PER_FOLDER == 0:
            folder.mkdir(parents=True)
        path = folder / f"{i:06d}.png"
        data = _png_1x1(i)
        path.write_bytes(data)
        files.append((str(path), data))
    return files


def _bulk_insert(engine, root: Path, files: list[tuple[str, bytes]], skip: set[str]) -> None:
    """The rows ingest would write, in one transaction (raw executemany for speed)."""
    from db import store

    with engine.begin() as connection:
        from sqlalchemy.orm import Session

        with Session(bind=connection) as session:
            folder_id = store.add_folder(session, root).id
            session.flush()
        raw = connection.connection.driver_connection
        cursor = raw.cursor()
        rows = [(path, data) for path, data in files if path not in skip]
        # Ingest also stores a perceptual hash per content (library.families); a stand-in
        # derived from the SHA-256 keeps these rows from looking like an older library's.
        cursor.executemany(
            "INSERT INTO contents (sha256, width, height, format, decision, rating, flagged, "
            "flag_nsfw, flag_incoherent, analysed, phash) "
            "VALUES (?, 1, 1, 'PNG', 'none', 0, 0, 0, 0, 0, ?)",
            [(sha, int(sha[:15], 16)) for sha in
             (hashlib.sha256(data).hexdigest() for _, data in rows)])
        content_ids = dict(cursor.execute("SELECT sha256, id FROM contents").fetchall())
        now = time.strftime("%Y-%m-%d %H:%M:%S")
        image_rows = []
        for path, data in rows:
            info = os.stat(path)
            image_rows.append((path, os.path.basename(path), folder_id,
                               content_ids[hashlib.sha256(data).hexdigest()], info.st_size,
                               info.st_mtime_ns, now, now))
        cursor.executemany(
            "INSERT INTO images (path, name, folder_id, content_id, size, mtime_ns, status, "
            "first_seen, indexed_at, has_thumbnail) VALUES (?, ?, ?, ?, ?, ?, 'ok', ?, ?, 0)",
            image_rows)


def run(report, quick: bool = False, n_files: int | None = None) -> None:
    from db.engine import open_library
    from library.scan import scan_folders, walk_images
    from library.thumbnails import ThumbnailCache

    count = n_files or (QUICK_FILES if quick else N_FILES)
    with tempfile.TemporaryDirectory(prefix="gentriage-bench-rescan-") as tmp:
        root, work = Path(tmp) / "library", Path(tmp) / "work"
        began = time.perf_counter()
        files = _write_files(root, count)
        report(f"write {count} tiny PNGs", time.perf_counter() - began, "s")

        engine = open_library(work / "library.sqlite3")
        thumbnails = ThumbnailCache(work / "thumbnails")
        try:
            real = [path for path, _ in files[:: max(1, count // 50)]]
            began = time.perf_counter()
            _bulk_insert(engine, root, files, skip=set(real))
            # The rest through the real ingest, so both kinds of rows are rescanned.
            summary = scan_folders(engine, [root], thumbnails, workers=1)
            report(f"populate the library ({count} rows)", time.perf_counter() - began, "s")
            if summary.indexed != len(real) or summary.unchanged != count - len(real):
                raise RuntimeError(f"unexpected population scan: {summary}")

            walk, rescan = float("inf"), float("inf")
            for _ in range(ROUNDS):
                began = time.perf_counter()
                listed = sum(1 for _ in walk_images(str(root)))
                walk = min(walk, time.perf_counter() - began)
                began = time.perf_counter()
                summary = scan_folders(engine, [root], thumbnails)
                rescan = min(rescan, time.perf_counter() - began)
                if (listed, summary.unchanged, summary.indexed, summary.missing) != (
                        count, count, 0, 0):
                    raise RuntimeError(f"the rescan was not a no-op: {summary}")
        finally:
            engine.dispose()
        report(f"walk + stat {count} files (floor)", walk, "s")
        report(f"rescan of an unchanged {count}-file library", rescan, "s", baseline=walk,
               target="< 3 s" if count >= N_FILES else "< 3 s at 100k")


if __name__ == "__main__":
    from benchmarks import print_report

    run(print_report, n_files=int(sys.argv[1]) if len(sys.argv) > 1 else None)
