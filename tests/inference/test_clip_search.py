"""The clip analyser on tiny CLIP models in the upstream layout: one vision forward pass per
image when aesthetic runs too (counted at the tower itself), the same embedding alone or
shared, discovery in the aesthetic analyser's folders, and the text encoder."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from inference.pipeline import Job, Pipeline
from inference.testing import write_aesthetic
from inference.weights import MISSING, READY, discover


@pytest.fixture(scope="module")
def clip_models(tmp_path_factory):
    models = tmp_path_factory.mktemp("clip-models")
    write_aesthetic(models)
    return models


def _pipeline(models, keys):
    pipeline = Pipeline(models, analysers=keys, device="cpu", hf_cache=models / "no-hf")
    pipeline.load()
    return pipeline


def _count_tower_images(pipeline, key):
    """Images that really go through the vision tower's forward (a hook on the module)."""
    seen = []
    tower = pipeline.analyser(key).clip_encoder.vision_model
    tower.register_forward_pre_hook(
        lambda _m, args, kwargs: seen.append(kwargs["pixel_values"].shape[0]),
        with_kwargs=True)
    return seen


def test_aesthetic_and_clip_share_one_vision_pass_per_image(clip_models, good_images):
    pipeline = _pipeline(clip_models, ["aesthetic", "clip"])
    assert ("aesthetic", "clip") in pipeline.shared_clip
    assert pipeline.analyser("clip").clip_encoder is pipeline.analyser("aesthetic").clip_encoder
    seen = _count_tower_images(pipeline, "aesthetic")
    jobs = [Job(i, str(p)) for i, p in enumerate(good_images)]
    results = list(pipeline.run(jobs))
    assert sum(seen) == len(good_images)  # one forward per image, not two
    embeddings = {job.job_id: out.payload for job, out in results if out.analyser == "clip"}
    assert set(embeddings) == set(range(len(good_images)))
    for vector in embeddings.values():
        v = np.frombuffer(vector, "<f2").astype(np.float32)
        assert v.shape == (768,) and np.linalg.norm(v) == pytest.approx(1.0, abs=2e-3)
    # clip alone loads its own tower and gives the same embeddings.
    alone = _pipeline(clip_models, ["clip"])
    assert alone.shared_clip == []
    alone_seen = _count_tower_images(alone, "clip")
    again = {job.job_id: out.payload for job, out in alone.run(jobs)}
    assert sum(alone_seen) == len(good_images)
    for job_id, vector in again.items():
        np.testing.assert_allclose(np.frombuffer(vector, "<f2").astype(np.float32),
                                   np.frombuffer(embeddings[job_id], "<f2").astype(np.float32),
                                   atol=2e-3)


def test_discovery_uses_the_aesthetic_clip_folder_and_versions_by_weights(tmp_path):
    (status,) = discover(tmp_path, ["clip"], hf_cache=tmp_path / "no-hf")
    assert status.status == MISSING and "openai/clip-vit-large-patch14" in status.message
    assert "gentriage models download" in status.how_to_get
    write_aesthetic(tmp_path)
    (status,) = discover(tmp_path, ["clip"], hf_cache=tmp_path / "no-hf")
    assert status.status == READY and status.path.endswith("clip-vit-large-patch14")
    assert "text search ready" in status.message
    # CLIP on its own in <models>/clip/ (what `models download clip` makes) is found too.
    other = tmp_path / "alone"
    shutil.copytree(tmp_path / "aesthetic" / "clip-vit-large-patch14", other / "clip")
    (alone,) = discover(other, ["clip"], hf_cache=tmp_path / "no-hf")
    assert alone.status == READY and alone.version == status.version
    write_aesthetic(tmp_path, vision_seed=9)
    (changed,) = discover(tmp_path, ["clip"], hf_cache=tmp_path / "no-hf")
    assert changed.version != status.version


def test_text_encoder_matches_transformers_text_features(clip_models):
    import torch
    from transformers import CLIPModel, CLIPTokenizer

    from inference.clip_search import ClipTextEncoder

    (status,) = discover(clip_models, ["clip"], hf_cache=clip_models / "no-hf")
    encoder = ClipTextEncoder(status)
    got = encoder.encode(["a red umbrella", "a lighthouse at night " * 20])  # 2nd: > 77 tokens
    folder = clip_models / "aesthetic" / "clip-vit-large-patch14"
    clip = CLIPModel.from_pretrained(folder, local_files_only=True).eval()
    tokens = CLIPTokenizer.from_pretrained(folder, local_files_only=True)(
        ["a red umbrella"], return_tensors="pt")
    with torch.no_grad():
        text = clip.text_projection(clip.text_model(**tokens).pooler_output)
    np.testing.assert_allclose(got[0], torch.nn.functional.normalize(text, dim=-1)[0].numpy(),
                               atol=1e-5)
    assert got.shape == (2, 768)
    assert np.linalg.norm(got, axis=1) == pytest.approx([1.0, 1.0], abs=1e-5)
