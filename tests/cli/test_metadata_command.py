"""`gentriage metadata`: output shape, exit status, and that it stays light (no Qt/torch)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from PIL import Image, PngImagePlugin

from gentriage.cli import main

REPO = Path(__file__).resolve().parents[2]
KEYS = ["path", "generator", "prompt", "negative_prompt", "seed", "steps", "sampler", "scheduler",
        "cfg_scale", "width", "height", "model", "model_hash", "loras", "error"]
INFOTEXT = ("a red fox, <lora:foxStyle:0.7>\nNegative prompt: blurry\n"
            "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 42, Size: 512x768, "
            "Model hash: 1234abcd, Model: foxModel, Version: v1.10.1")


def _png(path: Path, text: str | None = None) -> Path:
    info = PngImagePlugin.PngInfo()
    if text is not None:
        info.add_text("parameters", text)
    Image.new("RGB", (4, 4)).save(path, "PNG", pnginfo=info)
    return path


def _files(tmp_path: Path) -> list[str]:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    return [str(_png(tmp_path / "a1111.png", INFOTEXT)), str(_png(tmp_path / "plain.png")),
            str(broken), str(tmp_path / "missing.png")]


def test_json_lines(tmp_path: Path, capsys) -> None:
    files = _files(tmp_path)
    assert main(["metadata", "--json", *files]) == 0
    lines = capsys.readouterr().out.splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 4
    for record, path in zip(records, files):
        assert list(record) == KEYS
        assert record["path"] == path
    first, plain, broken, missing = records
    assert first["generator"] == "a1111" and first["error"] is None
    assert (first["prompt"], first["negative_prompt"]) == ("a red fox, <lora:foxStyle:0.7>", "blurry")
    assert (first["seed"], first["steps"], first["cfg_scale"]) == (42, 20, 7.0)
    assert (first["width"], first["height"], first["model"], first["model_hash"]) == (512, 768, "foxModel", "1234abcd")
    assert first["loras"] == [{"name": "foxStyle", "weight": 0.7}]
    assert plain["generator"] is None and plain["error"] is None and plain["loras"] == []
    assert all(plain[key] is None for key in KEYS if key not in ("path", "loras"))
    assert broken["error"] and "broken.png" in broken["error"] and broken["generator"] is None
    assert missing["error"] and "missing.png" in missing["error"]


def test_human_output(tmp_path: Path, capsys) -> None:
    files = _files(tmp_path)
    assert main(["metadata", *files]) == 0
    out = capsys.readouterr().out
    assert "generator: a1111 (AUTOMATIC1111 v1.10.1)" in out
    assert "a red fox" in out and "seed 42" in out and "512x768" in out
    assert "foxModel [1234abcd]" in out and "foxStyle (0.7)" in out
    assert "no generation metadata" in out
    assert out.count("error:") == 2


def test_subprocess_is_light(tmp_path: Path) -> None:
    image = str(_png(tmp_path / "a.png", INFOTEXT))
    snippet = (
        "import io, sys, contextlib, json\n"
        "from gentriage.cli import main\n"
        "buffer = io.StringIO()\n"
        "with contextlib.redirect_stdout(buffer):\n"
        f"    status = main(['metadata', '--json', {image!r}])\n"
        "print(json.dumps({'status': status, 'out': buffer.getvalue(),\n"
        "                  'heavy': sorted(m for m in ('PySide6', 'torch') if m in sys.modules)}))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, "-c", snippet], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["status"] == 0 and report["heavy"] == []
    record = json.loads(report["out"])
    assert list(record) == KEYS and record["seed"] == 42


def test_python_dash_m(tmp_path: Path) -> None:
    image = str(_png(tmp_path / "a.png", INFOTEXT))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, "-m", "gentriage", "metadata", "--json", image],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert list(record) == KEYS and record["generator"] == "a1111"
