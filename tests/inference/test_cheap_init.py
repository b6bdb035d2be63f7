"""The cheap initialisation behind the full-size benchmark models (inference.testing)."""

from __future__ import annotations

import torch
from transformers import CLIPConfig, CLIPModel, CLIPVisionModel

from inference.testing import fill_cheaply, materialise_cheaply

TINY_CLIP = CLIPConfig(
    text_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                 "num_attention_heads": 2, "vocab_size": 99, "max_position_embeddings": 77},
    vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                   "num_attention_heads": 2, "image_size": 224, "patch_size": 32},
    projection_dim=16)


def _on_meta(build):
    with torch.device("meta"):
        return build()


def test_materialised_model_runs_with_rebuilt_position_ids_and_unit_norms():
    model = materialise_cheaply(_on_meta(lambda: CLIPVisionModel(TINY_CLIP.vision_config)), 3)
    ids = model.embeddings.position_ids
    assert torch.equal(ids, torch.arange(ids.shape[-1])[None])
    norm = model.post_layernorm.weight
    assert 0.9 < float(norm.detach().mean()) < 1.1  # around 1, not around 0 (which would zero the tower)
    weights = model.encoder.layers[0].mlp.fc1.weight
    assert 0.01 < float(weights.detach().std()) < 0.03 and bool(torch.isfinite(weights).all())
    out = model(pixel_values=torch.randn(2, 3, 224, 224)).pooler_output
    assert out.shape == (2, 32) and bool(torch.isfinite(out).all())


def test_same_seed_gives_the_same_tower_inside_different_wrappers():
    # The benchmark relies on this: the safety checker's CLIPVisionModel and the aesthetic
    # CLIPModel's vision tower come out equal, so the pipeline shares one.
    alone = materialise_cheaply(_on_meta(lambda: CLIPVisionModel(TINY_CLIP.vision_config)), 7)
    whole = materialise_cheaply(_on_meta(lambda: CLIPModel(TINY_CLIP)), 1)
    fill_cheaply(whole.vision_model, 7)
    a, b = alone.state_dict(), whole.vision_model.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    other = materialise_cheaply(_on_meta(lambda: CLIPVisionModel(TINY_CLIP.vision_config)), 8)
    assert not torch.equal(other.encoder.layers[0].mlp.fc1.weight,
                           alone.encoder.layers[0].mlp.fc1.weight)
