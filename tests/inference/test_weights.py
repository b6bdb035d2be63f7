"""Discovery, validation from headers, HF cache lookup and checksum-based versions."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from inference.catalog import DEFAULT_ENABLED
from inference.testing import (
    write_aesthetic,
    write_coherence,
    write_jtp,
    write_nsfw_vit,
    write_safety_checker,
)
from inference.weights import ChecksumCache, discover, read_safetensors_header


@pytest.fixture(scope="module")
def coherence_file(tmp_path_factory) -> Path:
    """One full-size coherence checkpoint (87 MB), copied by the tests that need one."""
    folder = tmp_path_factory.mktemp("coh")
    write_coherence(folder)
    return folder / "coherence" / "coherence_model.safetensors"


def with_coherence(models_dir: Path, source: Path) -> Path:
    target = models_dir / "coherence" / source.name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, target)
    return target


def status_of(models_dir: Path, key: str, **kw):
    (status,) = discover(models_dir, [key], **kw)
    return status


def test_empty_dir_everything_missing_but_bundled_default(tmp_path):
    statuses = {s.key: s for s in discover(tmp_path)}
    assert list(statuses) == ["nsfw-default", "coherence", "nsfw-vit", "safety-checker",
                              "aesthetic", "clip", "style", "tagger-jtp"]
    assert statuses["nsfw-default"].status == "ready"
    assert statuses["nsfw-default"].version
    for key in list(statuses)[1:]:
        s = statuses[key]
        assert s.status == "missing" and s.path is None and s.version is None
        assert s.expected_files and s.how_to_get


def test_discovery_does_not_import_torch(tmp_path):
    code = ("import sys; from inference.weights import discover; "
            f"discover({str(tmp_path)!r}); "
            "heavy = [m for m in ('torch', 'transformers', 'timm', 'onnxruntime') "
            "if m in sys.modules]; print(heavy); assert not heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_all_fixture_models_ready(all_models):
    statuses = {s.key: s for s in discover(all_models)}
    # write_all writes the default analysers; style's VGG19 (opt-in) is tests/inference/test_style.py's.
    assert {k: statuses[k].status for k in DEFAULT_ENABLED} == dict.fromkeys(DEFAULT_ENABLED,
                                                                             "ready")
    assert statuses["tagger-jtp"].details["variant"] == "PILOT2"
    assert statuses["aesthetic"].details["has_text"] is True


def test_coherence_prefix_is_stripped(tmp_path):
    write_coherence(tmp_path, prefix="model.")
    s = status_of(tmp_path, "coherence")
    assert s.status == "ready" and s.details["prefix"] == "model."


def test_truncated_safetensors_is_broken_and_named(tmp_path, coherence_file):
    weights = with_coherence(tmp_path, coherence_file)
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    s = status_of(tmp_path, "coherence")
    assert s.status == "broken"
    assert "coherence_model.safetensors" in s.message and "truncated" in s.message


def test_garbage_safetensors_is_broken(tmp_path):
    folder = tmp_path / "coherence"
    folder.mkdir()
    (folder / "coherence_model.safetensors").write_bytes(b"<html>404 not found</html>")
    s = status_of(tmp_path, "coherence")
    assert s.status == "broken" and "coherence_model.safetensors" in s.message


def test_wrong_class_count_is_broken(tmp_path):
    write_coherence(tmp_path, num_classes=4)
    s = status_of(tmp_path, "coherence")
    assert s.status == "broken" and "4 classes" in s.message and "expected 3" in s.message


def test_legacy_pickle_only_is_explained(tmp_path):
    folder = tmp_path / "coherence"
    folder.mkdir()
    (folder / "coherence_model.pth").write_bytes(b"\x80\x02pickle")
    s = status_of(tmp_path, "coherence")
    assert s.status == "broken" and "does not unpickle" in s.message


def test_vit_missing_weights_and_wrong_labels(tmp_path):
    write_nsfw_vit(tmp_path)
    (tmp_path / "nsfw-vit" / "model.safetensors").unlink()
    s = status_of(tmp_path, "nsfw-vit")
    assert s.status == "broken" and "model.safetensors" in s.message
    write_nsfw_vit(tmp_path, id2label={0: "safe", 1: "unsafe"})
    s = status_of(tmp_path, "nsfw-vit")
    assert s.status == "broken" and "nsfw" in s.message


def test_truncated_torch_bin_is_broken(tmp_path):
    write_safety_checker(tmp_path, fmt="bin")
    assert status_of(tmp_path, "safety-checker").status == "ready"
    weights = tmp_path / "safety-checker" / "pytorch_model.bin"
    weights.write_bytes(weights.read_bytes()[:-2000])
    s = status_of(tmp_path, "safety-checker")
    assert s.status == "broken" and "pytorch_model.bin" in s.message


def test_safety_checker_safetensors_shapes_checked(tmp_path):
    write_safety_checker(tmp_path, fmt="safetensors")
    assert status_of(tmp_path, "safety-checker").status == "ready"


def test_jtp_variants_from_head_keys_and_tag_count(tmp_path):
    write_jtp(tmp_path, variant="PILOT", n_tags=7)
    s = status_of(tmp_path, "tagger-jtp")
    assert s.status == "ready" and s.details["variant"] == "PILOT" and s.details["n_tags"] == 7
    # Same head keys decide, whatever the file is called.
    folder = tmp_path / "tagger-jtp" / "JTP_PILOT"
    renamed = tmp_path / "tagger-jtp" / "JTP_PILOT2"
    renamed.mkdir()
    for f in folder.iterdir():
        shutil.copy(f, renamed / f.name.replace("PILOT-e4", "PILOT2-e3"))
    shutil.rmtree(folder)
    assert status_of(tmp_path, "tagger-jtp").details["variant"] == "PILOT"
    tags = renamed / "tags.json"
    tags.write_text(json.dumps({"only_one": 0}))
    s = status_of(tmp_path, "tagger-jtp")
    assert s.status == "broken" and "tags.json" in s.message and "7 outputs" in s.message


def test_aesthetic_needs_both_parts(tmp_path):
    write_aesthetic(tmp_path)
    shutil.rmtree(tmp_path / "aesthetic" / "clip-vit-large-patch14")
    s = status_of(tmp_path, "aesthetic")
    assert s.status == "missing" and "clip-vit-large-patch14" in s.message


def test_aesthetic_without_text_tower(tmp_path):
    write_aesthetic(tmp_path, with_text=False)
    s = status_of(tmp_path, "aesthetic")
    assert s.status == "ready" and s.details["has_text"] is False
    assert "prompt adherence off" in s.message


def test_found_in_hf_cache(tmp_path, monkeypatch):
    write_nsfw_vit(tmp_path / "staging")
    repo = tmp_path / "hub" / "models--Falconsai--nsfw_image_detection"
    snapshot = repo / "snapshots" / "0123abcd"
    shutil.copytree(tmp_path / "staging" / "nsfw-vit", snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    s = status_of(tmp_path / "models", "nsfw-vit")
    assert s.status == "ready" and s.path == str(snapshot)
    assert "Hugging Face cache" in s.message
    # HF_HOME/hub works too
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    assert status_of(tmp_path / "models", "nsfw-vit").path == str(snapshot)


def test_models_dir_wins_over_hf_cache(tmp_path):
    write_nsfw_vit(tmp_path / "hub-src")
    snapshot = tmp_path / "hub" / "models--Falconsai--nsfw_image_detection" / "snapshots" / "r1"
    shutil.copytree(tmp_path / "hub-src" / "nsfw-vit", snapshot)
    write_nsfw_vit(tmp_path / "models")
    s = status_of(tmp_path / "models", "nsfw-vit", hf_cache=tmp_path / "hub")
    assert s.path == str(tmp_path / "models" / "nsfw-vit")


def test_version_changes_with_weights_and_is_cached(tmp_path):
    write_nsfw_vit(tmp_path, seed=0)
    v0 = status_of(tmp_path, "nsfw-vit").version
    assert v0 == status_of(tmp_path, "nsfw-vit").version
    write_nsfw_vit(tmp_path, seed=1)
    v1 = status_of(tmp_path, "nsfw-vit").version
    assert v1 and v1 != v0


def test_checksum_cache_keyed_by_size_and_mtime(tmp_path):
    f = tmp_path / "w.bin"
    f.write_bytes(b"abc")
    cache_file = tmp_path / "sums.json"
    real = ChecksumCache(cache_file).sha256(f)
    data = json.loads(cache_file.read_text())
    data[str(f.resolve())][2] = "cafe"  # same size and mtime: the cached value is trusted
    cache_file.write_text(json.dumps(data))
    ChecksumCache._memory.clear()
    assert ChecksumCache(cache_file).sha256(f) == "cafe"
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert ChecksumCache(cache_file).sha256(f) == real


def test_header_reader_rejects_inconsistent_tensor_sizes(tmp_path):
    header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}}).encode()
    f = tmp_path / "bad.safetensors"
    f.write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 8)
    from inference.weights import WeightsError

    with pytest.raises(WeightsError, match="needs 16"):
        read_safetensors_header(f)


def test_jtp_tags_are_ordered_by_index_not_by_file_order(tmp_path):
    from inference.tagger_jtp import read_tags
    from inference.weights import WeightsError

    f = tmp_path / "tags.json"
    f.write_text(json.dumps({"smile": 2, "long_hair": 0, "blue_eyes": 1}))
    assert read_tags(f) == ["long_hair", "blue_eyes", "smile"]
    f.write_text(json.dumps({"a": 0, "b": 0}))
    with pytest.raises(WeightsError, match="tags.json"):
        read_tags(f)
