"""Malformed model files end as `broken` with a reason, never as a traceback, and never stop
the other analysers — for every file the loaders read, not just the examples.

Each JSON file of every fixture model folder gets every top-level field replaced by values of
the wrong type (and the whole file by non-objects); each safetensors file gets headers that are
JSON of the wrong shape. Discovery must answer for all of them; a mutation discovery accepts
must then load or be reported broken by the pipeline, with the bundled analyser still working.
"""

from __future__ import annotations

import json
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from inference.pipeline import Job, Pipeline
from inference.weights import BROKEN, READY, discover

ANALYSERS = ("nsfw-vit", "safety-checker", "aesthetic", "tagger-jtp")
WRONG_VALUES: tuple[Any, ...] = ("big", [], None, {"x": 1}, -1, True)
WRONG_DOCUMENTS: tuple[Any, ...] = ([], None, "text", 5)
BAD_HEADERS: tuple[Any, ...] = (
    [], None, "x", 7,
    {"w": {"dtype": "F32", "shape": [1], "data_offsets": ["0", "4"]}},  # string offsets
    {"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}},
    {"w": {"dtype": "F32", "shape": "big", "data_offsets": [0, 4]}},
    {"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4, 8]}},
    {"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}},
    {"w": {"shape": [1], "data_offsets": [0, 4]}},
    {"w": [1, 2, 3]},
    {"__metadata__": ["not", "a", "map"], "w": {"dtype": "F32", "shape": [1],
                                              "data_offsets": [0, 4]}},
)


@pytest.fixture(scope="module")
def models(tmp_path_factory, all_models) -> Path:
    """A private copy of the tiny fixture folders (coherence excluded: it is full size, and
    its only file, a safetensors checkpoint, is covered by the header cases below)."""
    root = tmp_path_factory.mktemp("malformed") / "models"
    for key in ANALYSERS:
        shutil.copytree(all_models / key, root / key)
    return root


def owner(path: Path, models: Path) -> str:
    return path.relative_to(models).parts[0]


def json_mutations(document: Any) -> Iterator[tuple[str, Any]]:
    """Non-objects for the whole file; wrong types for each field (for a token map such as
    vocab.json, whose entries are all alike, its first three)."""
    for value in WRONG_DOCUMENTS:
        yield f"whole file = {value!r}", value
    if isinstance(document, dict):
        keys = list(document) if len(document) <= 64 else list(document)[:3]
        for key in keys:
            for value in WRONG_VALUES:
                yield f"{key} = {value!r}", {**document, key: value}


def statuses(models: Path, keys: tuple[str, ...] = ANALYSERS) -> dict[str, Any]:
    """Discovery of `keys` and of the bundled analyser (the witness that the others go on)."""
    return {s.key: s for s in discover(models, ["nsfw-default", *keys],
                                       hf_cache=models / "no-hf", with_versions=False)}


@pytest.fixture(scope="module")
def json_outcomes(models) -> list[tuple[Path, str, Any, dict[str, Any]]]:
    """(file, what was changed, the document written, discovery's statuses) for every JSON
    mutation; discovery must not raise for any of them."""
    outcomes = []
    files = sorted(p for p in models.rglob("*.json") if p.name != ".checksums.json")
    assert len(files) >= 6
    for path in files:
        original = path.read_text(encoding="utf-8")
        for label, mutated in json_mutations(json.loads(original)):
            path.write_text(json.dumps(mutated), encoding="utf-8")
            try:
                outcomes.append((path, label, mutated,
                                 statuses(models, (owner(path, models),))))
            finally:
                path.write_text(original, encoding="utf-8")
    return outcomes


def test_every_json_field_of_the_wrong_type_is_answered_not_raised(models, json_outcomes):
    baseline = statuses(models)
    assert {k: s.status for k, s in baseline.items()} == dict.fromkeys(baseline, READY)
    for path, label, _, found in json_outcomes:
        key = owner(path, models)
        for other, status in found.items():
            if other != key:
                assert status.status == READY, (path.name, label, other, status.message)
        assert found[key].status in (READY, BROKEN), (path.name, label)
        if found[key].status == BROKEN:
            assert path.name in found[key].message, (label, found[key].message)


def test_what_discovery_accepts_loads_or_is_broken_and_the_default_still_runs(
        models, json_outcomes, good_images):
    """Mutations that pass discovery (fields only transformers or the tokenizer read) are
    contained at load time: the analyser loads or is broken, and nsfw-default analyses.
    Three fields per file keep this to seconds: the containment does not depend on which
    field or type it is (any exception from a loader is caught), so a sample shows it."""
    fields: dict[Path, set[str]] = {}
    for path, label, mutated, found in json_outcomes:
        key, field = owner(path, models), label.split(" = ")[0]
        tried = fields.setdefault(path, set())
        if found[key].status != READY or field in tried or len(tried) >= 3:
            continue
        tried.add(field)
        original = path.read_text(encoding="utf-8")
        path.write_text(json.dumps(mutated), encoding="utf-8")
        try:
            pipeline = Pipeline(models, analysers=["nsfw-default", key], device="cpu",
                                hf_cache=models / "no-hf")
            pipeline.load()  # must not raise
            assert "nsfw-default" in pipeline.ready_analysers
            assert pipeline.statuses[key].status in (READY, BROKEN)
            outputs = list(pipeline.run([Job(0, str(good_images[0]))]))
            assert any(o.analyser == "nsfw-default" and o.error is None for _, o in outputs)
        finally:
            path.write_text(original, encoding="utf-8")


def _with_header(path: Path, header: Any) -> None:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * 16)


@pytest.mark.parametrize("header", BAD_HEADERS, ids=[str(i) for i in range(len(BAD_HEADERS))])
def test_malformed_safetensors_headers_are_broken_with_the_file_named(models, header):
    files = sorted(models.rglob("*.safetensors"))
    assert len({owner(p, models) for p in files}) >= 3
    for path in files:
        original = path.read_bytes()
        _with_header(path, header)
        try:
            found = statuses(models)
        finally:
            path.write_bytes(original)
        key = owner(path, models)
        assert found[key].status == BROKEN, (path.name, header)
        assert path.name in found[key].message
        assert all(s.status == READY for k, s in found.items() if k != key)


@pytest.mark.parametrize("header", BAD_HEADERS[:6], ids=[str(i) for i in range(6)])
def test_a_malformed_coherence_checkpoint_is_broken(tmp_path, header):
    folder = tmp_path / "coherence"
    folder.mkdir()
    _with_header(folder / "coherence_model.safetensors", header)
    (status,) = discover(tmp_path, ["coherence"], hf_cache=tmp_path / "no-hf")
    assert status.status == BROKEN and "coherence_model.safetensors" in status.message


def test_the_examples_from_the_report_read_well(models):
    config = models / "nsfw-vit" / "config.json"
    original = config.read_text(encoding="utf-8")
    cases = {"[]": "is a list, expected a JSON object",
             json.dumps({**json.loads(original), "id2label": ["normal", "nsfw"]}): "id2label",
             json.dumps({**json.loads(original), "hidden_size": "big"}): "hidden_size"}
    try:
        for text, expected in cases.items():
            config.write_text(text, encoding="utf-8")
            (status,) = discover(models, ["nsfw-vit"], hf_cache=models / "no-hf")
            assert status.status == BROKEN and "config.json" in status.message
            assert expected in status.message, status.message
    finally:
        config.write_text(original, encoding="utf-8")


def test_a_damaged_checksum_cache_is_only_a_cache(tmp_path):
    cache = tmp_path / ".checksums.json"
    for text in ("[]", "null", '{"x": 5}', '{"x": ["a", "b", "c"]}', "{"):
        cache.write_text(text, encoding="utf-8")
        (status,) = discover(tmp_path, ["nsfw-default"])
        assert status.status == READY and status.version
