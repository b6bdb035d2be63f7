"""Helpers for the command tests: generated image folders, seeded libraries, subprocess runs."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image as PILImage
from PIL.PngImagePlugin import PngInfo

REPO = Path(__file__).resolve().parents[2]


def write_png(path: Path, seed: str, parameters: str | None = None, size: int = 16) -> Path:
    """A small distinct PNG; `parameters` embeds A1111-style generation text."""
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(seed.encode()).digest()
    pixels = (digest * (size * size * 3 // len(digest) + 1))[: size * size * 3]
    info = None
    if parameters is not None:
        info = PngInfo()
        info.add_text("parameters", parameters)
    PILImage.frombytes("RGB", (size, size), pixels).save(path, "PNG", pnginfo=info)
    return path


def a1111_parameters(prompt: str, model: str, sampler: str = "Euler a", seed: int = 1) -> str:
    return (f"{prompt}\nNegative prompt: blurry\nSteps: 20, Sampler: {sampler}, CFG scale: 7, "
            f"Seed: {seed}, Size: 16x16, Model hash: abc123, Model: {model}")


def make_folder(root: Path, count: int, broken: int = 0, prefix: str = "img") -> Path:
    """`count` valid PNGs with generation metadata plus `broken` truncated files."""
    for i in range(count):
        write_png(root / f"{prefix}{i:03d}.png", f"{root}/{prefix}{i}",
                  a1111_parameters(f"a photo of a cat number {i}",
                                   model="modelA" if i % 2 == 0 else "modelB", seed=i))
    for i in range(broken):
        good = write_png(root / f"broken{i}.png", f"broken{i}").read_bytes()
        (root / f"broken{i}.png").write_bytes(good[: len(good) // 3])
    return root


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def cli_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["GENTRIAGE_HOME"] = str(home)
    env.pop("GENTRIAGE_DB", None)
    env.pop("GENTRIAGE_MODELS_DIR", None)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def run_cli(args: Sequence[str], home: Path, timeout: float = 240) -> CliResult:
    """`python -m gentriage ARGS` in a subprocess (stdout is a pipe: plain output)."""
    proc = subprocess.run([sys.executable, "-m", "gentriage", *args], cwd=REPO,
                          env=cli_env(home), capture_output=True, text=True, timeout=timeout)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


@dataclass
class Seeded:
    """A library seeded with known rows (no analysis run): exact values to assert on.
    `db` is what --db takes (a SQLite path or a PostgreSQL URL)."""

    db: str
    folder: Path
    paths: list[Path]
    content_ids: list[int]


# (model, sampler, lora, coherence label, aesthetic, prompt adherence, nsfw score, decision)
SEED_ROWS = [
    ("modelA", "Euler a", "styleX", "coherent", 6.0, 30.0, 0.10, "accepted"),
    ("modelA", "Euler a", None, "coherent", 5.0, 20.0, 0.90, "rejected"),
    ("modelA", "DPM++ 2M", "styleX", "incoherent", 4.0, 10.0, 0.20, "none"),
    ("modelB", "DPM++ 2M", None, "coherent", 7.0, 25.0, 0.05, "accepted"),
]


def seed_library(root: Path, db: str | None = None) -> Seeded:
    """Write SEED_ROWS as indexed, analysed images (real files, rows written directly) into
    the library `db` (default: a SQLite file under `root`)."""
    from db.engine import open_library, session_factory
    from db.flags import update_flags
    from db.schema import AnalysisResult, Content, Folder, Generation, Image, LoraUse, Tag
    from library.settings import Thresholds

    folder = root / "pictures"
    db = db or str(root / "library.sqlite3")
    engine = open_library(db)
    paths, ids = [], []
    with session_factory(engine).begin() as s:
        folder_row = Folder(path=str(folder))
        s.add(folder_row)
        s.flush()
        for i, (model, sampler, lora, coherence, aesthetic, adherence, nsfw, decision) in \
                enumerate(SEED_ROWS):
            path = write_png(folder / f"seed{i}.png", f"seed{i}")
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            content = Content(sha256=digest, width=16, height=16, format="PNG",
                              decision=decision)
            s.add(content)
            s.flush()
            s.add(Image(path=str(path), name=path.name, folder_id=folder_row.id,
                        content_id=content.id, size=path.stat().st_size,
                        mtime_ns=1_000_000 + i))
            s.add(Generation(content_id=content.id, generator="a1111", model=model,
                             sampler=sampler, prompt=f"prompt {i}", seed=str(i), steps=20,
                             cfg_scale=7.0, raw={}))
            s.flush()
            if lora:
                s.add(LoraUse(content_id=content.id, name=lora, weight=0.8))
            s.add(AnalysisResult(content_id=content.id, analyser="coherence", version="c1",
                                 label=coherence, score=0.9,
                                 scores={coherence: 0.9}))
            s.add(AnalysisResult(content_id=content.id, analyser="aesthetic", version="a1",
                                 label=None, score=aesthetic,
                                 scores={"aesthetic": aesthetic,
                                         "prompt_adherence": adherence}))
            s.add(AnalysisResult(content_id=content.id, analyser="nsfw-default", version="n1",
                                 label="nsfw" if nsfw >= 0.5 else "sfw", score=nsfw,
                                 scores={"nsfw": nsfw}))
            s.add(Tag(content_id=content.id, analyser="tagger-jtp", tag="cat", score=0.9))
            paths.append(path)
            ids.append(content.id)
        update_flags(s, None, Thresholds(), ["nsfw-default", "coherence", "aesthetic"])
    engine.dispose()
    return Seeded(db, folder, paths, ids)
