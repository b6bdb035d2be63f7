"""Families: grouping near-duplicates at library scale, and what hashing adds to ingest.

1. Grouping 100k perceptual hashes (95 % distinct pictures, 5 % near copies a few bits from
   an earlier one) at the default distance with library.families.group_hashes (multi-index
   hashing). Baseline: comparing all pairs, measured on a 4,000-hash sample in the same run
   (vectorised XOR + popcount, one row at a time) and scaled by (n / 4,000)².
2. The same from the database: library.family_ops.regroup (read every hash, group, store
   the groups behind `dup:GROUP`) and find_groups (what `gentriage duplicates` lists: groups,
   members, files, keepers) on a synthetic library (benchmarks.synthetic) of 100k images.
   Baseline: reading the hashes alone. Target for both: < 10 s.
3. Ingest cost of hashing: library.ingest.ingest_file on 1024×1024 PNGs (~2 MB, like SDXL
   output; decode, SHA-256, metadata, thumbnail, pHash), one core, against the same with the
   perceptual hash switched off; rounds interleaved, best of each. Target: < 5 % more time.

Run: `python -m benchmarks.bench_families [--quick]`.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

N_HASHES = 100_000
QUICK_HASHES = 20_000
SAMPLE = 4_000
N_PICTURES, QUICK_PICTURES = 24, 8
ROUNDS = 5


def synthetic_hashes(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    distinct = int(n * 0.95)
    hashes = rng.integers(0, 2**63, size=n, dtype=np.int64).view(np.uint64) * np.uint64(2) \
        + rng.integers(0, 2, size=n).astype(np.uint64)
    for i in range(distinct, n):  # near copies of earlier pictures
        value = int(hashes[rng.integers(0, distinct)])
        for bit in rng.choice(64, size=int(rng.integers(0, 7)), replace=False):
            value ^= 1 << int(bit)
        hashes[i] = value
    return hashes


def _all_pairs_seconds(hashes: np.ndarray, distance: int) -> float:
    sample = hashes[:SAMPLE]
    began = time.perf_counter()
    for i in range(len(sample) - 1):
        np.flatnonzero(np.bitwise_count(sample[i + 1:] ^ sample[i]) <= distance)
    return time.perf_counter() - began


def _grouping(report, n: int) -> None:
    from library.families import DEFAULT_DISTANCE, group_hashes

    hashes = synthetic_hashes(n)
    ids = np.arange(1, n + 1)
    best, groups = float("inf"), []
    for _ in range(2):
        began = time.perf_counter()
        groups = group_hashes(ids, hashes, DEFAULT_DISTANCE)
        best = min(best, time.perf_counter() - began)
    all_pairs = _all_pairs_seconds(hashes, DEFAULT_DISTANCE) * (n / SAMPLE) ** 2
    report(f"group {n:,} hashes, distance {DEFAULT_DISTANCE} ({len(groups):,} groups)", best,
           "s", baseline=all_pairs, target="< 10 s")
    report(f"all pairs of {n:,} hashes (from a {SAMPLE:,} sample)", all_pairs, "s")


def _from_database(report, n: int, work: Path) -> None:
    from benchmarks.synthetic import build_library
    from db.engine import open_library, session_factory
    from db.families import hashes_to_group
    from library import family_ops

    db = work / "library.sqlite3"
    began = time.perf_counter()
    build_library(db, n)
    report(f"build a synthetic library of {n:,} images", time.perf_counter() - began, "s")
    engine = open_library(db)
    try:
        sessions = session_factory(engine)
        began = time.perf_counter()
        with sessions() as session:
            hashes_to_group(session)
        read = time.perf_counter() - began
        began = time.perf_counter()
        changed = family_ops.regroup(sessions)
        report(f"regroup {n:,} images from the database ({len(changed):,} rows written)",
               time.perf_counter() - began, "s", baseline=read, target="< 10 s")
        began = time.perf_counter()
        groups = family_ops.find_groups(sessions)
        report(f"list duplicate groups with keepers ({len(groups):,} groups)",
               time.perf_counter() - began, "s", baseline=read, target="< 10 s")
    finally:
        engine.dispose()


def _ingest_cost(report, count: int, work: Path) -> None:
    from library import ingest
    from library.families import perceptual_hash

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from sample_images import noise_picture

    folder = work / "pictures"
    folder.mkdir()
    paths: list[str] = []
    for i in range(count):
        path = folder / f"{i:04d}.png"
        noise_picture((1024, 1024), seed=i).save(path, "PNG")
        path.read_bytes()  # page cache, for every measurement alike
        paths.append(str(path))

    from library.thumbnails import ThumbnailCache

    def ingest_one(path: str, with_hash: bool, cache: ThumbnailCache) -> float:
        original = ingest.perceptual_hash
        if not with_hash:
            ingest.perceptual_hash = lambda _image: 0  # type: ignore[assignment]
        try:
            began = time.perf_counter()
            result = ingest.ingest_file(path, cache)
            elapsed = time.perf_counter() - began
        finally:
            ingest.perceptual_hash = original
        assert result.ok and result.sha256 is not None and result.phash is not None
        cache.remove(result.sha256)  # the next ingest of this file makes its thumbnail again
        return elapsed

    # Per file, with and without the hash alternately (the order flipped every round), the
    # best of the rounds: load from other programs drifts over seconds, and this way both
    # variants of a file see the same moment.
    best = {True: [float("inf")] * count, False: [float("inf")] * count}
    for round_number in range(ROUNDS):
        cache = ThumbnailCache(work / f"thumbs-{round_number}")
        for index, file in enumerate(paths):
            for with_hash in ((False, True) if (index + round_number) % 2 else (True, False)):
                elapsed = ingest_one(file, with_hash, cache)
                best[with_hash][index] = min(best[with_hash][index], elapsed)
    totals = {mode: sum(times) for mode, times in best.items()}
    from library.decode import decode_bytes

    picture = decode_bytes(Path(paths[0]).read_bytes()).image
    began = time.perf_counter()
    for _ in range(20):
        perceptual_hash(picture)
    hash_ms = (time.perf_counter() - began) / 20 * 1000
    per_image = totals[False] / count * 1000
    report("ingest 1024x1024 PNG without the hash, 1 core", per_image, "ms/image")
    report("ingest 1024x1024 PNG with the hash, 1 core", totals[True] / count * 1000,
           "ms/image", baseline=per_image)
    report("extra ingest time for the perceptual hash",
           (totals[True] / totals[False] - 1) * 100, "%", target="< 5 %")
    report("perceptual hash of the decoded picture alone", hash_ms, "ms/image",
           baseline=per_image)


def run(report, quick: bool = False) -> None:
    _grouping(report, QUICK_HASHES if quick else N_HASHES)
    with tempfile.TemporaryDirectory(prefix="gentriage-bench-families-") as tmp:
        work = Path(tmp)
        _ingest_cost(report, QUICK_PICTURES if quick else N_PICTURES, work)
        _from_database(report, QUICK_HASHES if quick else N_HASHES, work)


if __name__ == "__main__":
    from benchmarks import print_report

    run(print_report, quick="--quick" in sys.argv)
