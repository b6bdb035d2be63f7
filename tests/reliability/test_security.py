"""Security: no network without a download command, weights never unpickled unsafely, and
paths found in image metadata are only ever text."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
from reliability_support import REPO, child_env, gentriage, write_images

# ----------------------------------------------------------------------------- network

# Installed as sitecustomize in the child: every attempt to reach another machine is written
# to $NO_NET_LOG (so an attempt swallowed by a try/except still counts) and then refused.
# Unix-domain sockets stay allowed: multiprocessing's forkserver talks over one.
SITECUSTOMIZE = r'''
import os, socket

_log = os.environ["NO_NET_LOG"]

def _refuse(what, target):
    with open(_log, "a", encoding="utf-8") as f:
        f.write(f"{what} {target!r}\n")
    raise OSError(f"network access attempted in a test: {what} {target!r}")

_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex

def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _refuse("connect", address)
    return _connect(self, address)

def connect_ex(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _refuse("connect_ex", address)
    return _connect_ex(self, address)

def getaddrinfo(host, *args, **kwargs):
    _refuse("getaddrinfo", host)

socket.socket.connect = connect
socket.socket.connect_ex = connect_ex
socket.getaddrinfo = getaddrinfo
'''


@pytest.mark.slow
def test_scan_and_models_listing_never_touch_the_network(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    attempts = tmp_path / "network-attempts.log"
    folder = tmp_path / "pics"
    write_images(folder, 6)
    home = tmp_path / "home"
    # No HF_HUB_OFFLINE here: the program itself must not try, whatever the environment.
    env = {"NO_NET_LOG": str(attempts), "HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0"}

    scan = gentriage(["scan", str(folder), "--db", str(tmp_path / "lib.sqlite3"),
                      "--workers", "2"], home, extra_path=[site], **env)
    models = gentriage(["models", "--json"], home, extra_path=[site], **env)

    assert scan.returncode == 0, scan.stderr[-3000:]
    assert models.returncode in (0, 1), models.stderr[-3000:]  # 1: some weights broken
    json.loads(models.stdout)
    assert not attempts.exists(), attempts.read_text()


def test_the_network_guard_really_catches_a_connection(tmp_path):
    """The check above is only worth something if the guard fires."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    attempts = tmp_path / "attempts.log"
    env = child_env(tmp_path, [site], NO_NET_LOG=str(attempts))
    subprocess.run([sys.executable, "-c", "import socket\ntry:\n socket.create_connection("
                    "('192.0.2.1', 80), timeout=1)\nexcept OSError:\n pass"], env=env,
                   cwd=REPO, check=True, timeout=60)
    assert "192.0.2.1" in attempts.read_text()


# ----------------------------------------------------------------------------- unpickling

PACKAGES = ("inference", "library", "db", "desktop", "gentriage")


def _python_files() -> list[Path]:
    return [p for package in PACKAGES for p in (REPO / package).rglob("*.py")]


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    if isinstance(node, ast.Name):
        return node.id
    return "?"


def _is_true(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def test_weights_are_never_unpickled_unsafely():
    problems = []
    for path in _python_files():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        where = path.relative_to(REPO)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module in ("pickle", "dill",
                                                                    "joblib", "cloudpickle"):
                problems.append(f"{where}:{node.lineno}: imports from {node.module}")
            if isinstance(node, ast.ImportFrom) and node.module == "torch" and any(
                    alias.name == "load" for alias in node.names):
                problems.append(f"{where}:{node.lineno}: `from torch import load` hides calls")
        for call in _calls(tree):
            name = _dotted(call.func)
            keywords = {k.arg: k.value for k in call.keywords}
            unsafe = not _is_true(keywords.get("weights_only", ast.Constant(None)))
            if (name.endswith("torch.load") or name == "torch.load") and unsafe:
                problems.append(f"{where}:{call.lineno}: torch.load without "
                                "weights_only=True")
            if name in ("pickle.load", "pickle.loads", "dill.load", "joblib.load",
                        "cloudpickle.load"):
                problems.append(f"{where}:{call.lineno}: {name}")
            if _is_true(keywords.get("trust_remote_code", ast.Constant(None))):
                problems.append(f"{where}:{call.lineno}: trust_remote_code=True")
            if name.endswith("load") and _is_true(keywords.get("allow_pickle",
                                                                 ast.Constant(None))):
                problems.append(f"{where}:{call.lineno}: allow_pickle=True")
    assert problems == []


def test_the_unpickling_check_sees_torch_load_calls():
    """Guard against the check above silently matching nothing."""
    calls = [c for p in _python_files() for c in _calls(ast.parse(p.read_text("utf-8")))
             if _dotted(c.func) == "torch.load"]
    assert calls, "no torch.load call found: the checkpoint loaders moved or were renamed"


# ----------------------------------------------------------------------------- metadata paths

# Run in a child so the audit hook (which cannot be removed) dies with it. Every file the
# child opens, stats or lists while ingesting and analysing is printed as PATH <path>.
AUDIT_INGEST = r'''
import os, sys, threading
from pathlib import Path

touched = set()
def hook(event, args):
    if event in ("open", "os.listdir", "os.scandir", "os.chdir") and args and isinstance(
            args[0], (str, bytes, os.PathLike)):
        touched.add(os.fsdecode(args[0]))
sys.addaudithook(hook)
for name in ("stat", "lstat"):
    real = getattr(os, name)
    def spy(path, *a, _real=real, **k):
        if isinstance(path, (str, bytes, os.PathLike)):
            touched.add(os.fsdecode(path))
        return _real(path, *a, **k)
    setattr(os, name, spy)

from db.engine import open_library, session_factory
from library.scan import scan_folders
from library.thumbnails import ThumbnailCache
from library.analysis import AnalysisRunner
from library.settings import Settings

folder, db, thumbs = sys.argv[1:4]
sessions = session_factory(open_library(db))
summary = scan_folders(sessions, [folder], ThumbnailCache(thumbs), workers=1, executor="thread")
runner = AnalysisRunner(sessions, Path(thumbs) / "no-models",
                        Settings(enabled_analysers=["nsfw-default"]), device="cpu")
runner.run(threading.Event())
print("INDEXED", summary.indexed)
for path in sorted(touched):
    print("PATH", path)
'''


def _png_with_text(path: Path, texts: dict[str, str]) -> None:
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    for key, value in texts.items():
        info.add_text(key, value)
    Image.new("RGB", (16, 16), (len(texts) * 20, 40, 90)).save(path, pnginfo=info)


def test_paths_in_metadata_are_stored_as_text_and_never_opened(tmp_path):
    bait = tmp_path / "bait"
    bait.mkdir()
    secret = bait / "secret.safetensors"
    secret.write_bytes(b"never read me")
    folder = tmp_path / "pics"
    folder.mkdir()
    relative = "../../../../../../etc/passwd"
    _png_with_text(folder / "a1111.png", {"parameters": (
        f"{relative}\nNegative prompt: {secret}\nSteps: 20, Sampler: Euler a, CFG scale: 7, "
        f"Seed: 1, Size: 16x16, Model hash: abc, Model: {secret}, "
        f"Lora hashes: \"{bait}/lora: 123\"")})
    graph = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": str(secret)}},
             "2": {"class_type": "LoraLoader", "inputs": {"lora_name": relative,
                                                         "model": ["1", 0], "clip": ["1", 1],
                                                         "strength_model": 1.0}},
             "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "/etc/shadow",
                                                            "clip": ["2", 1]}},
             "4": {"class_type": "KSampler", "inputs": {
                 "model": ["2", 0], "positive": ["3", 0], "negative": ["3", 0], "seed": 1,
                 "steps": 2, "cfg": 1, "sampler_name": "euler", "scheduler": "normal",
                 "latent_image": ["5", 0]}},
             "5": {"class_type": "LoadImage", "inputs": {"image": str(secret)}}}
    _png_with_text(folder / "comfy.png", {"prompt": json.dumps(graph)})

    db = tmp_path / "lib.sqlite3"
    proc = subprocess.run([sys.executable, "-c", AUDIT_INGEST, str(folder), str(db),
                           str(tmp_path / "thumbs")], cwd=REPO, env=child_env(tmp_path),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "INDEXED 2" in proc.stdout
    touched = [line[5:] for line in proc.stdout.splitlines() if line.startswith("PATH ")]
    assert touched, "the audit saw nothing: the spy is broken"
    assert not [p for p in touched if p.startswith(str(bait)) or "passwd" in p
                or "shadow" in p]

    # And the text is kept as text.
    import sqlite3

    with sqlite3.connect(db) as conn:
        stored = " ".join(str(v) for row in conn.execute(
            "SELECT prompt, negative_prompt, model FROM generation") for v in row)
        loras = [row[0] for row in conn.execute("SELECT name FROM loras")]
    assert relative in stored and str(secret) in stored
    assert "passwd" in loras  # LoRA names are kept as display names (the file stem)
