"""Regression over the real-generator corpus (../shared/samples/metadata, or
$GENTRIAGE_SAMPLES). Skips cleanly when the corpus is absent (a fresh clone)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from library.metadata import GenerationMetadata, MetadataReadError, read_metadata_file

pytestmark = pytest.mark.corpus

REPO = Path(__file__).resolve().parents[2]
CORPUS = Path(os.environ.get("GENTRIAGE_SAMPLES") or REPO.parent / "shared" / "samples" / "metadata")

# The corpus names generators the way its source projects do; map them to our families.
SOFTWARE_FAMILY: dict[str, str | None] = {
    # enslo/sd-metadata "software"
    "sd-webui": "a1111", "forge": "forge", "forge-neo": "forge", "easy-reforge": "forge",
    "reforge": "forge", "sd-next": "sdnext", "comfyui": "comfyui", "invokeai": "invokeai",
    "novelai": "novelai", "fooocus": "fooocus", "ruined-fooocus": "fooocus",
    "swarmui": "swarmui", "hf-space": None, "civitai": "civitai", "draw-things": "drawthings",
    # d3x-at/sd-parsers "expected_generator"
    "AUTOMATIC1111": "a1111", "ComfyUI": "comfyui", "InvokeAI": "invokeai",
    "NovelAI": "novelai", "Fooocus": "fooocus",
}
# Raw-only files (no asserted values): the family the README's generator column implies.
RAW_ONLY_FAMILY: dict[str, str | None] = {
    "datasettools__68295CAE9DE493031ACD8C135AD863E5E7C53D368852AD5FC14F661E6D489A58.jpeg": "civitai",
    "datasettools__shuttle-3.1-aesthetic_c-hr_Seed1824549599_Steps20_CFG3.jpg": "sdnext",
    "datasettools__dcdc3cc5-f7f7-4eba-9901-9116eeed6203.jpeg": "forge",
    "enslo__sd-next-en.png": "sdnext",
    "datasettools__Civitai_Kohyass_API.png": "a1111",  # kohya sample image, plain infotext
    "datasettools__ComfyUI_01803_.jpeg": "comfyui",  # metadata-saver node, A1111-style text
}
FOLDER_FAMILY: dict[str, str | None] = {
    "a1111": "a1111", "comfyui": "comfyui", "invokeai": "invokeai", "novelai": "novelai",
    "fooocus": "fooocus", "swarmui": "swarmui", "drawthings": "drawthings", "negative": None,
    "other": None,
}


def _images() -> list[Path]:
    if not CORPUS.is_dir():
        return []
    return sorted(p for p in CORPUS.glob("*/*")
                  if p.is_file() and not p.name.endswith((".json", ".md")))


def _ids(paths: list[Path]) -> list[str]:
    return [f"{p.parent.name}/{p.name}" for p in paths]


IMAGES = _images()
WITH_EXPECTED = [p for p in IMAGES if p.with_name(p.name + ".expected.json").exists()]
RAW_ONLY = [p for p in IMAGES if p not in WITH_EXPECTED]


def _require_corpus() -> None:
    if not CORPUS.is_dir():
        pytest.skip(f"metadata corpus not found at {CORPUS} (set GENTRIAGE_SAMPLES)")


def _trim(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _expectations(doc: dict[str, Any]) -> dict[str, Any] | None:
    """Both source formats -> {field: value} in our naming; None where nothing is asserted.

    Only values the source project actually asserts are checked; a null in enslo's
    expectations (e.g. NovelAI's model) means "not asserted", not "must be None".
    """
    if isinstance(doc.get("expected"), dict):  # enslo/sd-metadata
        exp = doc["expected"]
        if "software" not in exp:
            return None
        sampling = exp.get("sampling") or {}
        model = exp.get("model") or {}
        return {k: v for k, v in {
            "generator": SOFTWARE_FAMILY[exp["software"]],
            "prompt": exp.get("prompt"), "negative_prompt": exp.get("negativePrompt"),
            "width": exp.get("width"), "height": exp.get("height"),
            "model": model.get("name"), "model_hash": model.get("hash"),
            "seed": sampling.get("seed"), "steps": sampling.get("steps"),
            "cfg_scale": sampling.get("cfg"), "sampler": sampling.get("sampler"),
            "scheduler": sampling.get("scheduler"),
        }.items() if v is not None or k == "generator"}
    if isinstance(doc.get("expected_samplers"), list):  # d3x-at/sd-parsers (first sampler)
        first = doc["expected_samplers"][0]
        params = first.get("parameters") or {}
        model = first.get("model") or {}
        found = {
            "generator": SOFTWARE_FAMILY[doc["expected_generator"]],
            "sampler": first.get("name"), "seed": params.get("seed"),
            "steps": params.get("steps"), "cfg_scale": params.get("cfg_scale"),
            "model": model.get("name"), "model_hash": model.get("hash"),
            "prompt_parts": [p["value"] for p in first.get("prompts") or []],
            "negative_parts": [p["value"] for p in first.get("negative_prompts") or []],
        }
        size = (doc.get("expected_metadata") or {}).get("Size")
        if isinstance(size, str) and "x" in size:
            found["width"], found["height"] = (int(v) for v in size.split("x"))
        for key in ("width", "height"):
            value = (doc.get("expected_metadata") or {}).get(key)
            if isinstance(value, int):
                found[key] = value
        return {k: v for k, v in found.items() if v is not None}
    return None


def _number(value: Any) -> Any:
    """sd-parsers keeps A1111 numbers as strings ("15"); compare numerically."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return float(value) if isinstance(value, (int, float)) else value


def _check(meta: GenerationMetadata, exp: dict[str, Any]) -> None:
    for key, want in exp.items():
        if key == "prompt_parts":
            if len(want) == 1:
                assert _trim(meta.prompt) == _trim(want[0])
            else:  # area-conditioned graphs: every text must be in the combined prompt
                for part in want:
                    assert _trim(part) in (meta.prompt or "")
        elif key == "negative_parts":
            if want:
                assert _trim(meta.negative_prompt) == _trim("\n".join(want))
            else:
                assert not _trim(meta.negative_prompt)
        elif key in ("seed", "steps", "cfg_scale", "width", "height"):
            assert _number(getattr(meta, key)) == _number(want), key
        else:
            assert _trim(getattr(meta, key)) == _trim(want), key


@pytest.mark.parametrize("path", WITH_EXPECTED, ids=_ids(WITH_EXPECTED))
def test_expected_values(path: Path) -> None:
    _require_corpus()
    doc = json.loads(path.with_name(path.name + ".expected.json").read_text("utf-8"))
    if path.stat().st_size == 0:
        with pytest.raises(MetadataReadError):
            read_metadata_file(path)
        return
    meta = read_metadata_file(path)
    exp = _expectations(doc)
    if exp is None:
        note = json.dumps(doc)
        if "non-empty" in note:  # "prompts non-empty" / "non-empty prompts"
            assert meta.generator is not None and meta.prompt, "expected non-empty prompts"
            if path.parent.name == "comfyui":
                assert meta.generator == "comfyui"
        elif path.parent.name in ("negative", "other"):  # no generation metadata (C2PA, GIMP, plain)
            assert meta.generator is None and not meta.has_parameters
        else:
            pytest.fail(f"unrecognised expectation format in {path.name}")
        return
    _check(meta, exp)


@pytest.mark.parametrize("path", RAW_ONLY, ids=_ids(RAW_ONLY))
def test_raw_only_images_parse(path: Path) -> None:
    _require_corpus()
    meta = read_metadata_file(path)
    family = RAW_ONLY_FAMILY.get(path.name, FOLDER_FAMILY.get(path.parent.name))
    assert meta.generator == family
    if family is not None and "Watermark_Removal" not in path.name:  # workflow-only, no sampler
        assert meta.prompt, "expected a prompt"
    raw = json.loads(path.with_name(path.name + ".raw.json").read_text("utf-8"))
    for chunk in raw.get("png_text_chunks", []):  # every text chunk is kept raw
        assert chunk["keyword"] in meta.raw or chunk["keyword"] == "XML:com.adobe.xmp"


def test_corpus_present_or_skipped() -> None:
    _require_corpus()
    assert WITH_EXPECTED and RAW_ONLY
