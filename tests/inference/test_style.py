"""The style analyser: discovery of torchvision's VGG19 file, Gram matrices against a hand
computation on an independently built VGG19, the packed form, and the style loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inference.preprocess import IMAGENET_MEAN, IMAGENET_STD, DecodedImage
from inference.style import WEIGHTS, Style
from inference.style_gram import (
    GATYS_WEIGHTS,
    LAYERS,
    PACKED_BYTES,
    GramFormatError,
    GramMean,
    full_matrix,
    layer_losses,
    pack,
    style_loss,
    unpack,
)
from inference.testing import photo_like, vgg19_features_reference, write_style
from inference.weights import BROKEN, MISSING, READY, WeightsError, discover

SMALL = 48  # long side for the model tests: VGG19 at 512 px costs seconds on a CPU


@pytest.fixture(scope="session")
def style_models(tmp_path_factory):
    models = tmp_path_factory.mktemp("style-models")
    write_style(models, seed=3)
    return models


@pytest.fixture(scope="session")
def style(style_models):
    (status,) = discover(style_models, ["style"])
    analyser = Style(status, "cpu")
    analyser.load()
    analyser.long_side = SMALL
    return analyser


def _grams(analyser: Style, picture) -> list[np.ndarray]:
    x = analyser.preprocess(DecodedImage(picture))
    (out,) = analyser.predict([x], [None])
    return unpack(out.payload)


def test_found_in_the_models_folder_or_the_torch_hub_cache(tmp_path, monkeypatch):
    (status,) = discover(tmp_path / "models", ["style"])
    assert status.status == MISSING and WEIGHTS in status.how_to_get
    hub = tmp_path / "torch-home" / "hub" / "checkpoints"
    write_style(folder=hub)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    (status,) = discover(tmp_path / "models", ["style"])
    assert status.status == READY and "torch hub cache" in status.message
    assert status.files["weights"] == str(hub / WEIGHTS)
    write_style(tmp_path / "models", seed=1)  # the models folder comes first
    (status,) = discover(tmp_path / "models", ["style"])
    assert status.files["weights"] == str(tmp_path / "models" / "style" / WEIGHTS)


def test_a_truncated_file_is_broken_and_a_wrong_one_fails_to_load(tmp_path):
    path = write_style(tmp_path / "models")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    (status,) = discover(tmp_path / "models", ["style"])
    assert status.status == BROKEN and WEIGHTS in status.message

    torch.save({"features.0.weight": torch.zeros(64, 3, 5, 5)}, path)  # not VGG19
    (status,) = discover(tmp_path / "models", ["style"])
    with pytest.raises(WeightsError, match="features.0.weight"):
        Style(status, "cpu").load()


def test_preprocessing_resizes_the_long_side_and_normalises_like_imagenet():
    analyser = Style.__new__(Style)
    analyser.long_side = 512
    picture = photo_like(300, 200, seed=5)
    x = analyser.preprocess(DecodedImage(picture))
    assert tuple(x.shape) == (3, 341, 512)
    analyser.long_side = 300  # no resize: exact pixel check
    x = analyser.preprocess(DecodedImage(picture))
    r, g, b = (v / 255 for v in picture.getpixel((7, 11)))
    expected = [(r - IMAGENET_MEAN[0]) / IMAGENET_STD[0], (g - IMAGENET_MEAN[1]) / IMAGENET_STD[1],
                (b - IMAGENET_MEAN[2]) / IMAGENET_STD[2]]
    assert x[:, 11, 7].tolist() == pytest.approx(expected, abs=1e-5)


def test_grams_match_a_hand_computation_on_an_independent_vgg19(style):
    picture = photo_like(64, 40, seed=8)
    stored = _grams(style, picture)
    reference = vgg19_features_reference(seed=3)  # the same weights, built separately
    x = style.preprocess(DecodedImage(picture))[None]
    wanted = {layer.relu_index: layer for layer in LAYERS}
    with torch.no_grad():
        for index, module in enumerate(reference):
            x = module(x)
            if index in wanted:
                layer = wanted[index]
                f = x[0].reshape(layer.channels, -1).double()
                gram = (f @ f.T / f.shape[1]).numpy()
                got = full_matrix(stored[LAYERS.index(layer)], layer.channels)
                # fp16 storage: 3 significant digits of the layer's largest value.
                assert np.abs(got - gram).max() <= 1e-3 * np.abs(gram).max(), layer.name
        assert index >= max(wanted)


def test_packed_form_size_and_round_trip():
    rng = np.random.default_rng(0)
    triangles = [rng.normal(0, 50, size).astype(np.float32)
                 for size in (c * (c + 1) // 2 for c in (64, 128, 256, 512, 512))]
    data = pack(triangles)
    assert len(data) == PACKED_BYTES == 611_800  # 597.5 KiB per picture
    for original, restored in zip(triangles, unpack(data)):
        assert np.abs(restored - original).max() <= 1e-3 * np.abs(original).max()
    with pytest.raises(GramFormatError):
        unpack(data[:-2])


def test_layer_loss_from_triangles_equals_the_full_matrix_formula():
    rng = np.random.default_rng(1)
    g = [rng.normal(0, 1, c * (c + 1) // 2) for c in (layer.channels for layer in LAYERS)]
    a = [rng.normal(0, 1, c * (c + 1) // 2) for c in (layer.channels for layer in LAYERS)]
    for layer, loss, gl, al in zip(LAYERS, layer_losses(g, a), g, a):
        n = layer.channels
        diff = full_matrix(gl, n) - full_matrix(al, n)
        assert loss == pytest.approx((diff ** 2).sum() / (4 * n * n))  # Gatys: 1/(4 N²) Σ
    assert GATYS_WEIGHTS == (0.2,) * 5
    assert style_loss(g, a) == pytest.approx(sum(layer_losses(g, a)) / 5)


def test_style_loss_is_zero_against_itself_and_grows_for_a_different_picture(style):
    picture = photo_like(64, 48, seed=11)
    grams = _grams(style, picture)
    again = _grams(style, picture.copy())
    noisy = np.clip(np.asarray(picture, dtype=np.float32)
                    + np.random.default_rng(0).normal(0, 4, (48, 64, 3)), 0, 255)
    from PIL import Image

    slightly = _grams(style, Image.fromarray(noisy.astype(np.uint8)))
    other = _grams(style, photo_like(64, 48, seed=99))
    self_loss = style_loss(again, grams)
    assert self_loss == pytest.approx(0.0, abs=1e-12)
    different = style_loss(other, grams)
    assert different > 0
    assert style_loss(slightly, grams) < different


def test_mean_of_reference_grams():
    mean = GramMean()
    ones = [np.ones(c * (c + 1) // 2) for c in (layer.channels for layer in LAYERS)]
    mean.add(ones)
    mean.add([3 * t for t in ones])
    assert mean.count == 2
    assert all(np.allclose(t, 2.0) for t in mean.mean())
    with pytest.raises(ValueError):
        GramMean().mean()
