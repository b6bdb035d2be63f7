"""Grid query latency on a synthetic 100,000-image library (target: first page < 50 ms).

For every kind of single filter and every sort: the median wall time of `fetch_page` (first
page, 200 rows, warm cache, fresh session per call like the grid's reader) and of
`count_images` (reported, no target), at the default tag threshold as the app reads them.
The baseline is the unfiltered first page (newest first) measured in the same process. Also
a deep page (keyset, page 100), the sidebar's folder counts and the tag autocomplete.

Standalone: `python -m benchmarks.bench_queries [N_IMAGES]` (builds the library in a temp dir;
set GENTRIAGE_BENCH_DB=/path/lib.db to reuse or keep one).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks import median_ms
from benchmarks.synthetic import build_library, tag_vocabulary
from db.engine import open_library, session_factory
from db.filters import parse_filter
from db.queries import count_images, fetch_page, folder_counts, tag_suggestions
from library.settings import Thresholds

N_IMAGES = 100_000
PAGE = 200
RUNS = 7
TARGET_MS = 50.0
TAG_THRESHOLD = Thresholds().tagger  # what the app and the export pass

_tags = tag_vocabulary()
FILTERS: dict[str, str] = {
    "unfiltered (newest)": "",
    "default view (unreviewed first)": "sort:unreviewed",
    "is:unreviewed": "is:unreviewed",
    "is:accepted": "is:accepted",
    "is:rejected": "is:rejected",
    "is:reviewed": "is:reviewed",
    "is:flagged": "is:flagged",
    "-is:flagged": "-is:flagged",
    "is:unanalysed": "is:unanalysed",
    "rating>=4": "rating>=4",
    "label nsfw-vit:nsfw": "nsfw-vit:nsfw",
    "label coherence:incoherent": "coherence:incoherent",
    "label coherence:coherent": "coherence:coherent",
    "label safety-checker:unsafe": "safety-checker:unsafe",
    "score aesthetic>=7": "aesthetic>=7",
    "score aesthetic>=9 (rare)": "aesthetic>=9",
    "score nsfw-default<0.001 (rare)": "nsfw-default<0.001",
    "score aesthetic:4..6 (common)": "aesthetic:4..6",
    "tag (most common)": f"tag:{_tags[0]}",
    "tag (rank 100)": f"tag:{_tags[99]}",
    "tag (rank 1900, rare)": f"tag:{_tags[1899]}",
    "tag any-of (2 tags)": f"tag:{_tags[10]}|{_tags[500]}",
    "tag all-of (2 tags)": f"tag:{_tags[0]} tag:{_tags[1]}",
    "-tag (most common)": f"-tag:{_tags[0]}",
    "prompt common phrase": 'prompt:"masterpiece"',
    "prompt rare phrase": 'prompt:"an old sailor with frozen"',
    "prompt no match": 'prompt:"zebra unicorn"',
    "prompt 2 chars (LIKE)": "prompt:8k",
    "prompt excluded": '-"masterpiece"',
    "generator:comfyui": "generator:comfyui",
    "generator:novelai (rare)": "generator:novelai",
    "model (one of 45)": "model:juggernautXL.safetensors",
    "model glob": "model:flux*",
    "sampler:lcm": "sampler:lcm",
    "folder (watched root)": "folder:/synthetic/library/private",
    "folder (sub-directory)": "folder:/synthetic/library/comfyui_out/2025-01-02",
    "status:broken": "status:broken",
    "status:missing": "status:missing",
    "status:any": "status:any",
    "is:stacked": "is:stacked",
    "is:duplicate": "is:duplicate",
}
SORTS: dict[str, str] = {
    "sort:oldest": "sort:oldest",
    "sort:name": "sort:name",
    "sort:-name": "sort:-name",
    "sort:-aesthetic": "sort:-aesthetic",
    "sort:aesthetic": "sort:aesthetic",
    "sort:-nsfw-vit": "sort:-nsfw-vit",
    "sort:-tagger-jtp (no scores)": "sort:-tagger-jtp",
    "sort:unreviewed sort:-aesthetic": "sort:unreviewed sort:-aesthetic",
    "sort:unreviewed sort:name": "sort:unreviewed sort:name",
    "is:flagged sort:-aesthetic": "is:flagged sort:-aesthetic",
    "tag (rank 100) sort:-aesthetic": f"tag:{_tags[99]} sort:-aesthetic",
    "sort:stack": "sort:stack",
}




def run(report) -> None:
    db_path = os.environ.get("GENTRIAGE_BENCH_DB")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(db_path) if db_path else Path(tmp) / "bench.db"
        if not path.exists():
            began = time.perf_counter()
            build_library(path, N_IMAGES)
            report("synthetic library build (100k images)", time.perf_counter() - began, "s",
                   target="< 60 s")
        engine = open_library(path)
        try:
            _measure(session_factory(engine), report)
        finally:
            engine.dispose()


def _measure(sessions, report) -> None:
    figures = measure_queries(sessions)
    baseline = figures["first page: unfiltered (newest)"][0]
    for name, (ms, targeted) in figures.items():
        if name.startswith(("folder_counts", "tag_suggestions")):
            report(name, ms, "ms")
        else:
            report(name, ms, "ms", baseline, f"< {TARGET_MS:.0f} ms" if targeted else None)


def measure_queries(sessions, runs: int = RUNS) -> dict[str, tuple[float, bool]]:
    """name -> (median ms, whether the first-page target applies), for every figure this
    module reports (bench_postgresql measures the same on both backends)."""
    def first_page(text: str) -> Callable[[], object]:
        f = parse_filter(text)

        def action() -> object:
            with sessions() as session:
                return fetch_page(session, f, limit=PAGE, tag_threshold=TAG_THRESHOLD)
        return action

    def count(text: str) -> Callable[[], object]:
        f = parse_filter(text)

        def action() -> object:
            with sessions() as session:
                return count_images(session, f, tag_threshold=TAG_THRESHOLD)
        return action

    figures: dict[str, tuple[float, bool]] = {}
    for label, text in {**FILTERS, **SORTS}.items():
        figures[f"first page: {label}"] = (median_ms(first_page(text), runs), True)
    for label, text in FILTERS.items():
        figures[f"count: {label}"] = (median_ms(count(text), runs), False)

    for label, text in (("newest", ""), ("unreviewed first", "sort:unreviewed"),
                        ("-aesthetic", "sort:-aesthetic"), ("stack", "sort:stack")):
        f = parse_filter(text)
        with sessions() as session:
            cursor = None
            for _ in range(99):
                _, cursor = fetch_page(session, f, cursor, PAGE, tag_threshold=TAG_THRESHOLD)

        def deep_page(f=f, cursor=cursor) -> object:
            with sessions() as session:
                return fetch_page(session, f, cursor, PAGE, tag_threshold=TAG_THRESHOLD)
        figures[f"page 100 (keyset): {label}"] = (median_ms(deep_page, runs), True)

    def counts() -> object:
        with sessions() as session:
            return folder_counts(session)
    figures["folder_counts"] = (median_ms(counts, runs), False)
    for prefix in ("", "r", "red_h"):
        def suggest(prefix=prefix) -> object:
            with sessions() as session:
                return tag_suggestions(session, prefix, tag_threshold=TAG_THRESHOLD)
        figures[f"tag_suggestions({prefix!r})"] = (median_ms(suggest, runs), False)
    return figures


if __name__ == "__main__":
    from benchmarks import print_report

    if len(sys.argv) > 1:
        N_IMAGES = int(sys.argv[1])
    run(print_report)
