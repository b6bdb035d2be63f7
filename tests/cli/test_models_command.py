"""`gentriage models [--json]` and `gentriage models download KEY`."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest
from cli_support import REPO, cli_env, run_cli

from gentriage.cli import main
from inference.testing import write_all, write_coherence, write_nsfw_vit, write_style

KEYS = ["nsfw-default", "coherence", "nsfw-vit", "safety-checker", "aesthetic", "clip", "style",
        "tagger-jtp"]


@pytest.fixture(autouse=True)
def _empty_hf_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "no-hf-cache"))


@pytest.fixture(scope="module")
def model_set(tmp_path_factory) -> Path:
    models = write_all(tmp_path_factory.mktemp("models"))
    write_style(models)
    return models


def call(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["models", *args])
    return code, out.getvalue(), err.getvalue()


def test_json_on_empty_dir_without_torch(tmp_path, home):
    """In a fresh interpreter: lists every analyser and imports no heavy library."""
    probe = ("import contextlib, io, json, sys\n"
             "from gentriage.cli import main\n"
             "buf = io.StringIO()\n"
             "with contextlib.redirect_stdout(buf):\n"
             f"    code = main(['models', '--json', '--models-dir', {str(tmp_path / 'm')!r}])\n"
             "heavy = sorted({m.split('.')[0] for m in sys.modules} & "
             "{'torch', 'transformers', 'timm', 'onnxruntime', 'PySide6'})\n"
             "print(json.dumps({'code': code, 'heavy': heavy, 'out': json.loads(buf.getvalue())}))")
    env = cli_env(home)
    env["HF_HUB_CACHE"] = str(tmp_path / "no-hf-cache")
    proc = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=env,
                          capture_output=True, text=True, check=True)
    result = json.loads(proc.stdout.splitlines()[-1])
    assert result["code"] == 0 and result["heavy"] == []
    rows = result["out"]
    assert [r["key"] for r in rows] == KEYS
    for row in rows:
        assert {"key", "status", "path", "message", "expected_files", "how_to_get",
                "version"} <= set(row)
    assert rows[0]["status"] == "ready"  # bundled open_nsfw works on a fresh install
    assert {r["status"] for r in rows[1:]} == {"missing"}


def test_subprocess_table_lists_how_to_get(tmp_path, home):
    result = run_cli(["models", "--models-dir", str(tmp_path / "m")], home)
    assert result.returncode == 0, result.stderr
    assert "coherence" in result.stdout and "missing" in result.stdout
    assert "huggingface.co/reddesert/coherence_detection" in result.stdout
    assert "coherence_model.safetensors" in result.stdout


def test_default_models_dir_comes_from_gentriage_home(home):
    code, out, _ = call("--json")
    assert code == 0
    rows = json.loads(out)
    assert all(str(home) in r["message"] for r in rows if r["status"] == "missing")


def test_all_ready_with_fixture_models(model_set):
    code, out, _ = call("--json", "--models-dir", str(model_set))
    assert code == 0
    rows = {r["key"]: r for r in json.loads(out)}
    assert {k: r["status"] for k, r in rows.items()} == dict.fromkeys(KEYS, "ready")
    assert rows["coherence"]["path"] == str(model_set / "coherence")
    assert all(r["version"] for r in rows.values())
    code, text, _ = call("--models-dir", str(model_set))
    assert code == 0 and text.count("ready") >= len(KEYS)


def test_broken_file_exit_status_and_message(tmp_path):
    write_nsfw_vit(tmp_path)
    weights = tmp_path / "nsfw-vit" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    code, out, _ = call("--json", "--models-dir", str(tmp_path))
    assert code == 1
    row = next(r for r in json.loads(out) if r["key"] == "nsfw-vit")
    assert row["status"] == "broken" and "model.safetensors" in row["message"]
    assert row["path"] == str(tmp_path / "nsfw-vit")
    code, text, _ = call("--models-dir", str(tmp_path))
    assert code == 1 and "broken" in text and "get it:" in text


def test_download_without_huggingface_hub_explains(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import fails
    code, _, err = call("download", "coherence", "--models-dir", str(tmp_path))
    assert code == 2 and "pip install" in err and "huggingface_hub" in err


def test_download_fetches_into_models_dir(tmp_path, monkeypatch):
    """huggingface_hub replaced by a stand-in that 'downloads' a fixture checkpoint."""
    staging = tmp_path / "remote"
    write_coherence(staging)
    calls = []

    def snapshot_download(repo_id, local_dir, allow_patterns=None, **kw):
        calls.append((repo_id, local_dir, allow_patterns))
        for name in allow_patterns:
            shutil.copy(staging / "coherence" / name, Path(local_dir) / name)
        return local_dir

    fake = types.ModuleType("huggingface_hub")
    fake.snapshot_download = snapshot_download
    monkeypatch.setitem(sys.modules, "huggingface_hub", fake)
    models = tmp_path / "models"
    # --models-dir before or after the word "download" both work
    code, out, _ = call("--models-dir", str(models), "download", "coherence")
    assert code == 0, out
    assert calls == [("reddesert/coherence_detection", str(models / "coherence"),
                      ["coherence_model.safetensors"])]
    assert "coherence: ready" in out
    code, out, _ = call("download", "coherence", "--models-dir", str(models))
    assert code == 0 and calls[-1][1] == str(models / "coherence")


def test_download_failure_is_reported(tmp_path, monkeypatch):
    fake = types.ModuleType("huggingface_hub")

    def snapshot_download(**kw):
        raise OSError("network unreachable")

    fake.snapshot_download = snapshot_download
    monkeypatch.setitem(sys.modules, "huggingface_hub", fake)
    code, _, err = call("download", "nsfw-vit", "--models-dir", str(tmp_path))
    assert code == 1 and "network unreachable" in err and "Falconsai" in err


def test_download_rejects_unknown_and_bundled_keys(tmp_path):
    with pytest.raises(SystemExit) as exc, contextlib.redirect_stderr(io.StringIO()):
        main(["models", "download", "nsfw-default"])
    assert exc.value.code == 2
