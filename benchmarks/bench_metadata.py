"""Reading generation metadata: time per file, and the share of fields recovered.

Corpora: the shared metadata corpus (`../shared/samples/metadata` or `$GENTRIAGE_SAMPLES`,
every image in it) and, when `$GENTRIAGE_COMFY_CORPUS` names it, the ComfyUI corpus (real
ComfyUI files from public node packs, model families and services, each with a hand-checked
`<file>.expected.json`; its README says where each file comes from). Editor-workflow `.json`
files are embedded in a PNG `workflow` chunk first, as ComfyUI writes them.

Time: `read_metadata_file` on every file, mean ms per file, best of 3 rounds. Baseline: opening
each file and collecting its container texts only (`containers.collect_texts`), i.e. what any
reader pays before parsing; the ratio is the parsing overhead. Target (issue #17): < 5 ms per
file on average.

Recovery: over the files with expected values, the share of asserted fields the reader gets
right - prompt, negative, seed, steps, CFG, sampler, model (name and/or hash), LoRAs - for the
shared corpus's ComfyUI files and for the ComfyUI corpus, plus the count of wrong values
(a different value, or one where the file has none).

Run: `python -m benchmarks.bench_metadata`. To measure another checkout's reader with these
corpora: `PYTHONPATH=/path/to/checkout python benchmarks/bench_metadata.py`.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROUNDS = 3
REPO = Path(__file__).resolve().parents[1]
# The same default as the test suite's: the shared folder next to the checkout.
SHARED = Path(os.environ.get("GENTRIAGE_SAMPLES") or REPO.parent / "shared" / "samples" / "metadata")
FIELDS = ("prompt", "negative", "seed", "steps", "cfg", "sampler", "model", "loras")
_LORA_TAG = re.compile(r"<lora:[^>]{0,400}>", re.IGNORECASE)


# --- the corpora ----------------------------------------------------------------------------

def comfy_corpus() -> Path | None:
    folder = os.environ.get("GENTRIAGE_COMFY_CORPUS")
    return Path(folder) if folder and Path(folder).is_dir() else None


def corpus_files(folder: Path) -> list[Path]:
    """Corpus files (images and workflow .json), without the .expected/.raw companions."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.endswith(
        (".expected.json", ".raw.json", ".md")))


def png_with_text(key: str, text: str) -> bytes:
    """A small PNG carrying `text` in an iTXt chunk, as ComfyUI stores `prompt`/`workflow`."""
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_itxt(key, text)
    out = io.BytesIO()
    Image.new("RGB", (8, 8), "gray").save(out, "PNG", pnginfo=info)
    return out.getvalue()


def embedded_json_png(path: Path) -> bytes:
    """A workflow (editor) or prompt (API) JSON file as the PNG ComfyUI would have written."""
    text = path.read_text(encoding="utf-8")
    data = json.loads(text)
    key = "workflow" if isinstance(data, dict) and isinstance(data.get("nodes"), list) else "prompt"
    return png_with_text(key, text)


@contextmanager
def readable_files(paths: list[Path]) -> Iterator[list[Path]]:
    """The corpus as files on disk: JSON workflows written out as PNGs in a temporary folder."""
    with tempfile.TemporaryDirectory(prefix="gentriage-bench-metadata-") as tmp:
        readable = []
        for index, path in enumerate(paths):
            if path.suffix.lower() == ".json":
                target = Path(tmp) / f"{index:04d}.png"
                target.write_bytes(embedded_json_png(path))
                readable.append(target)
            else:
                readable.append(path)
        yield readable


# --- expectations ---------------------------------------------------------------------------

@dataclass
class Expected:
    """Asserted values in our naming. A field absent from `values` is not asserted; a None
    value means "the file has none" (nothing may be reported)."""
    values: dict[str, Any] = field(default_factory=dict)
    prompt_parts: list[str] | None = None  # sd-parsers area prompts: each must be contained
    software: str | None = None  # as the corpus names it (the ComfyUI corpus: our family)


def load_expected(path: Path) -> Expected | None:
    """`<file>.expected.json` in any of the corpora's formats, or None (nothing asserted)."""
    companion = path.with_name(path.name + ".expected.json")
    if not companion.exists():
        return None
    doc = json.loads(companion.read_text(encoding="utf-8"))
    if isinstance(doc.get("expected"), dict):  # enslo/sd-metadata naming (+ loras)
        exp = doc["expected"]
        if "software" not in exp:
            return None
        found = Expected(software=exp["software"])
        shared_style = "loras" not in exp  # enslo: a null means "not asserted"
        sampling = exp.get("sampling") or {}
        model = exp.get("model") or {}
        pairs = {"prompt": ("prompt", exp), "negative": ("negativePrompt", exp),
                 "seed": ("seed", sampling), "steps": ("steps", sampling),
                 "cfg": ("cfg", sampling), "sampler": ("sampler", sampling)}
        for name, (key, source) in pairs.items():
            if key in source and not (shared_style and source[key] is None):
                found.values[name] = source[key]
        if model.get("name") is not None or model.get("hash") is not None:
            found.values["model"] = (model.get("name"), model.get("hash"))
        if "loras" in exp:
            found.values["loras"] = exp["loras"]
        return found
    if isinstance(doc.get("expected_samplers"), list) and doc["expected_samplers"]:
        first = doc["expected_samplers"][0]  # d3x-at/sd-parsers: first sampler
        params = first.get("parameters") or {}
        model = first.get("model") or {}
        found = Expected()
        for name, value in (("seed", params.get("seed")), ("steps", params.get("steps")),
                            ("cfg", params.get("cfg_scale")), ("sampler", first.get("name"))):
            if value is not None:
                found.values[name] = value
        if model.get("name") is not None or model.get("hash") is not None:
            found.values["model"] = (model.get("name"), model.get("hash"))
        parts = [p["value"] for p in first.get("prompts") or [] if isinstance(p, dict)]
        negatives = [p["value"] for p in first.get("negative_prompts") or [] if isinstance(p, dict)]
        if parts:
            found.prompt_parts = parts
            found.values["prompt"] = parts[0] if len(parts) == 1 else None
        found.values["negative"] = "\n".join(negatives) if negatives else None
        return found
    return None


def _text(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    text = " ".join(_LORA_TAG.sub(" ", value).split())
    return text or None


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _lora_key(name: Any, weight: Any) -> tuple[str, float | None]:
    number = _number(weight)
    return (str(name), None if number is None else round(number, 3))


def field_results(meta: Any, expected: Expected) -> dict[str, str]:
    """Per asserted field: "ok", "missing" (nothing read), "wrong" (another value); for a
    field the file has none of: "ok-absent", or "spurious" when the reader reports one."""
    got: dict[str, Any] = {
        "prompt": meta.prompt, "negative": meta.negative_prompt, "seed": meta.seed,
        "steps": meta.steps, "cfg": meta.cfg_scale, "sampler": meta.sampler,
        "model": (meta.model, meta.model_hash), "loras": list(meta.loras),
    }
    results: dict[str, str] = {}
    for name, want in expected.values.items():
        have = got[name]
        if name == "prompt" and expected.prompt_parts and len(expected.prompt_parts) > 1:
            text = _text(have) or ""
            results[name] = ("ok" if all((_text(p) or "") in text for p in expected.prompt_parts)
                             else "missing" if not text else "wrong")
            continue
        if name in ("prompt", "negative"):
            want_text, have_text = _text(want), _text(have)
            if want_text is None:
                results[name] = "ok-absent" if have_text is None else "spurious"
            else:
                results[name] = ("missing" if have_text is None else
                                 "ok" if have_text == want_text else "wrong")
        elif name == "model":
            want_name, want_hash = want
            have_name, have_hash = have
            if have_name is None and have_hash is None:
                results[name] = "missing"
                continue
            name_ok = want_name is None or have_name == want_name
            hash_ok = want_hash is None or str(have_hash or "").lower() == str(want_hash).lower()
            results[name] = "ok" if name_ok and hash_ok else "wrong"
        elif name == "loras":
            want_set = sorted(_lora_key(lora["name"], lora.get("weight")) for lora in want)
            have_set = sorted(_lora_key(lora.name, lora.weight) for lora in have)
            if not want_set:
                results[name] = "ok-absent" if not have_set else "spurious"
            elif not have_set:
                results[name] = "missing"
            else:
                loose = [(n, None) for n, _ in have_set]
                exact = all(k in have_set or (k[1] is None and (k[0], None) in loose)
                            for k in want_set) and len(have_set) == len(want_set)
                results[name] = "ok" if exact else "wrong"
        else:
            if want is None:
                results[name] = "ok-absent" if have is None else "spurious"
            elif have is None:
                results[name] = "missing"
            elif name in ("seed", "steps", "cfg"):
                a, b = _number(have), _number(want)
                results[name] = "ok" if a is not None and b is not None and abs(a - b) < 1e-6 else "wrong"
            else:
                results[name] = "ok" if str(have) == str(want) else "wrong"
    return results


@dataclass
class Recovery:
    recovered: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FIELDS, 0))
    asserted: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FIELDS, 0))
    wrong: int = 0
    files: int = 0

    def add(self, results: dict[str, str]) -> None:
        self.files += 1
        for name, outcome in results.items():
            if outcome in ("ok", "missing", "wrong"):
                self.asserted[name] += 1
            if outcome == "ok":
                self.recovered[name] += 1
            if outcome in ("wrong", "spurious"):
                self.wrong += 1

    def share(self, name: str | None = None) -> float | None:
        names = FIELDS if name is None else (name,)
        total = sum(self.asserted[n] for n in names)
        return None if not total else 100.0 * sum(self.recovered[n] for n in names) / total


def recovery(paths: list[Path], readable: list[Path],
             read: Callable[[Path], Any]) -> Recovery:
    from library.metadata import MetadataReadError

    found = Recovery()
    for path, file in zip(paths, readable):
        expected = load_expected(path)
        if expected is None:
            continue
        try:
            meta = read(file)
        except MetadataReadError:  # an unreadable file recovers nothing
            continue
        found.add(field_results(meta, expected))
    return found


# --- the run --------------------------------------------------------------------------------

def _time_per_file(files: list[Path], call: Callable[[Path], Any]) -> float:
    from library.metadata import MetadataReadError

    best = float("inf")
    for _ in range(ROUNDS):
        began = time.perf_counter()
        for path in files:
            try:
                call(path)
            except MetadataReadError:  # the corpus's 0-byte file: timed like the others
                pass
        best = min(best, time.perf_counter() - began)
    return best / len(files) * 1000.0


def _containers_only(path: Path) -> None:
    from library.metadata import containers, open_image

    with open_image(path) as image:
        containers.collect_texts(image)


def run(report: Callable[..., None]) -> None:
    from library.metadata import read_metadata_file

    corpora: list[tuple[str, list[Path]]] = []
    if SHARED.is_dir():
        corpora.append(("shared", corpus_files(SHARED)))
    comfy = comfy_corpus()
    if comfy is not None:
        corpora.append(("comfyui", corpus_files(comfy)))
    if not corpora:  # a fresh clone has neither: nothing to measure, not a failure
        print(f"bench_metadata: skipped, no corpus ({SHARED} is missing, set GENTRIAGE_SAMPLES; "
              "GENTRIAGE_COMFY_CORPUS is unset)", file=sys.stderr)
        return

    paths = [p for _, files in corpora for p in files]
    with readable_files(paths) as readable:
        by_path = dict(zip(paths, readable))
        baseline = _time_per_file(readable, _containers_only)
        mean = _time_per_file(readable, read_metadata_file)
        report(f"read metadata, mean over {len(readable)} files", mean, "ms", baseline=baseline,
               target="< 5 ms")
        slowest = max(readable, key=lambda p: _time_per_file([p], read_metadata_file))
        report(f"slowest file ({slowest.name[:30]})", _time_per_file([slowest], read_metadata_file),
               "ms")
        for name, files in corpora:
            if name == "shared":
                files = [p for p in files if p.parent.name == "comfyui"]
            found = recovery(files, [by_path[p] for p in files], read_metadata_file)
            if not found.files:
                continue
            report(f"{name} corpus ({found.files} files with expected values): fields recovered",
                   found.share() or 0.0, "%")
            for field_name in FIELDS:
                share = found.share(field_name)
                if share is not None:
                    report(f"  {name}: {field_name} ({found.asserted[field_name]} asserted)",
                           share, "%")
            report(f"  {name}: wrong values", float(found.wrong), "fields")


if __name__ == "__main__":
    sys.path.append(str(REPO))  # after PYTHONPATH: the reader measured is the one it names
    try:
        from benchmarks import print_report
    except ImportError:  # measuring another checkout whose benchmarks package differs
        def print_report(name: str, value: float, unit: str, baseline: float | None = None,
                         target: str | None = None) -> None:
            ratio = f"  x{value / baseline:.2f} vs {baseline:.3g}" if baseline else ""
            print(f"{name:<70} {value:10.3f} {unit}{ratio}", flush=True)
    run(print_report)
