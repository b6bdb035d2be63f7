"""The default path (`gentriage scan` with the bundled nsfw-default analyser) stays light:
no torch/transformers/timm anywhere in it, and an unchanged rescan builds no pipeline (no
model loaded, onnxruntime not even imported)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from db.engine import open_library, session_factory
from inference.testing import write_images
from library.analysis import AnalysisRunner
from library.scan import scan_folders
from library.settings import Settings

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "transformers", "timm")

# Runs `gentriage scan` in-process (so sys.modules can be inspected afterwards) and prints the
# exit status and which of the watched modules were imported.
SCAN_AND_REPORT = r'''
import json, sys
from gentriage.cli import main
code = main(["scan", sys.argv[1], "--analysers", "nsfw-default", "--db", sys.argv[2]])
watched = ("torch", "transformers", "timm", "onnxruntime")
print(json.dumps({"code": code, "imported": [m for m in watched if m in sys.modules]}))
'''


def _scan(folder: Path, db: Path, home: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO), GENTRIAGE_HOME=str(home), HF_HUB_OFFLINE="1")
    env.pop("GENTRIAGE_DB", None)
    proc = subprocess.run([sys.executable, "-c", SCAN_AND_REPORT, str(folder), str(db)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_a_scan_with_only_nsfw_default_never_imports_torch(tmp_path):
    folder = tmp_path / "pics"
    write_images(folder, 3, size=(64, 64))
    first = _scan(folder, tmp_path / "lib.sqlite3", tmp_path / "home")
    assert first["code"] == 0
    assert "onnxruntime" in first["imported"]  # it did analyse …
    assert not set(HEAVY) & set(first["imported"]), first  # … without any torch library

    again = _scan(folder, tmp_path / "lib.sqlite3", tmp_path / "home")
    # Nothing to do: not even onnxruntime is loaded.
    assert again == {"code": 0, "imported": []}


@pytest.fixture
def library(tmp_path):
    engine = open_library(tmp_path / "lib.sqlite3")
    yield session_factory(engine)
    engine.dispose()


def test_an_unchanged_rescan_does_not_build_the_pipeline(tmp_path, library, monkeypatch):
    folder = tmp_path / "pics"
    write_images(folder, 2, size=(64, 64))
    settings = Settings(enabled_analysers=["nsfw-default"])
    scan_folders(library, [folder], None, workers=1, executor="thread")
    first = AnalysisRunner(library, tmp_path / "models", settings, device="cpu")
    assert first.run(threading.Event()).analysed["nsfw-default"] == 2

    import inference.pipeline

    built: list[object] = []
    real_init = inference.pipeline.Pipeline.__init__
    monkeypatch.setattr(inference.pipeline.Pipeline, "__init__",
                        lambda self, *a, **k: built.append(self) or real_init(self, *a, **k))
    scan_folders(library, [folder], None, workers=1, executor="thread")
    again = AnalysisRunner(library, tmp_path / "models", settings, device="cpu")
    stats = again.run(threading.Event())
    assert built == [] and again.ready == ["nsfw-default"]
    assert sum(stats.analysed.values()) == 0

    # … while new work does build it (the spy is live).
    write_images(tmp_path / "more", 1, size=(64, 64), seed=9)
    scan_folders(library, [tmp_path / "more"], None, workers=1, executor="thread")
    third = AnalysisRunner(library, tmp_path / "models", settings, device="cpu")
    assert third.run(threading.Event()).analysed["nsfw-default"] == 1
    assert len(built) == 1


def test_planning_checks_an_impossible_device_without_loading_anything(tmp_path, library):
    runner = AnalysisRunner(library, tmp_path / "models",
                            Settings(enabled_analysers=["nsfw-default"]), device="tpu")
    with pytest.raises(ValueError, match="unknown device"):
        runner.load()


# `gentriage scan` in-process with both decoders counted: the indexer's (library.decode) and
# the pipeline's own decode of a file (inference.preprocess.decode).
SCAN_COUNTING_DECODES = r'''
import json, sys
import inference.preprocess as preprocess
import library.decode as library_decode

counts = {"indexed": 0, "decoded_again": 0}
real_decode_bytes, real_decode = library_decode.decode_bytes, preprocess.decode

def counting_decode_bytes(*args, **kwargs):
    counts["indexed"] += 1
    return real_decode_bytes(*args, **kwargs)

def counting_decode(*args, **kwargs):
    counts["decoded_again"] += 1
    return real_decode(*args, **kwargs)

library_decode.decode_bytes = counting_decode_bytes
preprocess.decode = counting_decode
import library.ingest
library.ingest.decode_bytes = counting_decode_bytes
from gentriage.cli import main
code = main(["scan", sys.argv[1], "--analysers", "nsfw-default", "--db", sys.argv[2]])
print(json.dumps({"code": code, **counts}))
'''


def test_a_first_scan_decodes_every_file_once(tmp_path):
    """Analysis runs while the folder is indexed and takes each picture the indexer decoded
    (library.handoff): no file is decoded a second time, and every one is analysed."""
    folder = tmp_path / "pics"
    write_images(folder, 12, size=(96, 64))
    env = dict(os.environ, PYTHONPATH=str(REPO), GENTRIAGE_HOME=str(tmp_path / "home"))
    env.pop("GENTRIAGE_DB", None)
    db = tmp_path / "lib.sqlite3"
    proc = subprocess.run([sys.executable, "-c", SCAN_COUNTING_DECODES, str(folder), str(db)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    outcome = json.loads(proc.stdout.strip().splitlines()[-1])
    assert outcome == {"code": 0, "indexed": 12, "decoded_again": 0}, proc.stdout
    engine = open_library(db)
    try:
        with session_factory(engine)() as session:
            from sqlalchemy import func, select

            from db.schema import AnalysisResult
            analysed = session.scalar(select(func.count()).select_from(AnalysisResult).where(
                AnalysisResult.analyser == "nsfw-default", AnalysisResult.error.is_(None)))
    finally:
        engine.dispose()
    assert analysed == 12


# `gentriage scan` in-process, noting which thread first imports numpy and whether it held
# inference.decoding's import lock then (numpy's first import is not thread-safe).
SCAN_WATCHING_NUMPY = r'''
import json, sys, threading
import inference.decoding as decoding

first = {}

class FirstNumpyImport:
    def find_spec(self, name, path=None, target=None):
        if name == "numpy" and not first:
            first.update(thread=threading.current_thread().name,
                         locked=decoding._NUMPY_IMPORT.locked())
        return None

sys.meta_path.insert(0, FirstNumpyImport())
from gentriage.cli import main
code = main(["scan", sys.argv[1], "--analysers", "nsfw-default", "--db", sys.argv[2]])
print(json.dumps({"code": code, **first}))
'''


def test_numpy_is_first_imported_under_the_import_lock_and_not_at_all_by_a_rescan(tmp_path):
    """A first scan indexes and analyses on several threads at once; numpy's first import
    must happen under inference.decoding's lock (two threads importing it at once can fail).
    An unchanged rescan does not import numpy at all."""
    folder = tmp_path / "pics"
    write_images(folder, 6, size=(96, 64))
    env = dict(os.environ, PYTHONPATH=str(REPO), GENTRIAGE_HOME=str(tmp_path / "home"))
    env.pop("GENTRIAGE_DB", None)
    db = tmp_path / "lib.sqlite3"

    def scan() -> dict:
        proc = subprocess.run([sys.executable, "-c", SCAN_WATCHING_NUMPY, str(folder), str(db)],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
                              check=False)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads(proc.stdout.strip().splitlines()[-1])

    first = scan()
    assert first["code"] == 0 and first["locked"] is True, first
    assert scan() == {"code": 0}  # the rescan: numpy never imported
