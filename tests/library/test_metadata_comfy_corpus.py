"""Regression over the ComfyUI corpus: real files from node packs, model families and online
services, each with hand-checked `<file>.expected.json` (see the corpus README for origins).

The corpus is not part of the repository: point `$GENTRIAGE_COMFY_CORPUS` at it. Without it the
tests skip with the reason. Comparison rules (shared with `benchmarks/bench_metadata.py`): a key
absent from `expected` is not asserted, `null` means the file has no such value, prompts compare
without `<lora:...>` tags and with whitespace collapsed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from metadata_builders import open_bytes

from benchmarks.bench_metadata import embedded_json_png, field_results, load_expected
from library.metadata import read_metadata, read_metadata_file

pytestmark = pytest.mark.corpus

CORPUS = Path(os.environ["GENTRIAGE_COMFY_CORPUS"]) if os.environ.get("GENTRIAGE_COMFY_CORPUS") else None


def _files() -> list[Path]:
    if CORPUS is None or not CORPUS.is_dir():
        return []
    return sorted(p for p in CORPUS.iterdir() if p.is_file()
                  and p.with_name(p.name + ".expected.json").exists())


FILES = _files()


def _require_corpus() -> None:
    if CORPUS is None:
        pytest.skip("ComfyUI corpus not configured (set GENTRIAGE_COMFY_CORPUS to its folder)")
    if not CORPUS.is_dir():
        pytest.skip(f"ComfyUI corpus not found at {CORPUS}")


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_file_matches_its_expected_values(path: Path) -> None:
    expected = load_expected(path)
    assert expected is not None, "expected.json without assertions"
    if path.suffix == ".json":  # an editor workflow, read as ComfyUI embeds it in a PNG
        with open_bytes(embedded_json_png(path)) as image:
            meta = read_metadata(image)
    else:
        meta = read_metadata_file(path)
    assert meta.generator == expected.software
    results = field_results(meta, expected)
    failures = {name: outcome for name, outcome in results.items()
                if outcome not in ("ok", "ok-absent")}
    assert not failures, f"{failures}: read {meta.to_json_dict()}"


def test_corpus_present_or_skipped() -> None:
    _require_corpus()
    assert FILES, f"no <file>.expected.json in {CORPUS}"
