"""Per-format unit tests on images generated here (no corpus needed)."""

from __future__ import annotations

import io
import json
import time

import pytest
from metadata_builders import (
    TYPE_ASCII,
    TYPE_UNDEFINED,
    insert_before_iend,
    open_bytes,
    png_bytes,
    save_with_exif,
    stealth_image,
    tiff,
    to_png,
    user_comment,
    ztxt,
)
from PIL import Image

from library.metadata import (
    GenerationMetadata,
    Lora,
    MetadataReadError,
    read_metadata,
    read_metadata_file,
)
from library.metadata.a1111 import parse_infotext, split_params
from library.metadata.containers import decode_user_comment, repair_mojibake

INFOTEXT = (
    "masterpiece, 1girl, <lora:detailTweaker:0.6>,\n"
    "second line, テスト\n"
    "Negative prompt: lowres, bad hands\n"
    "more negative\n"
    'Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 1234567890, '
    'Size: 832x1216, Model hash: abcdef1234, Model: myModel_v2, '
    'Hashes: {"model": "abcdef1234", "lora:x": "1, 2"}, '
    'Lora hashes: "detailTweaker: 1f2e3d4c5b6a, otherLora: 99aa", '
    'TI hashes: "neg: 12, neg2: 34", Version: v1.10.1'
)


def meta_of(data: bytes) -> GenerationMetadata:
    with open_bytes(data) as image:
        return read_metadata(image)


# --- A1111 infotext -------------------------------------------------------------------------

def test_infotext_fields_and_loras() -> None:
    meta = meta_of(png_bytes([("tEXt", "parameters", INFOTEXT)]))
    assert meta.generator == "a1111"
    assert meta.generator_detail == "AUTOMATIC1111 v1.10.1"
    assert meta.prompt == "masterpiece, 1girl, <lora:detailTweaker:0.6>,\nsecond line, テスト"
    assert meta.negative_prompt == "lowres, bad hands\nmore negative"
    assert (meta.steps, meta.sampler, meta.scheduler) == (28, "DPM++ 2M", "Karras")
    assert (meta.cfg_scale, meta.seed, meta.width, meta.height) == (6.5, 1234567890, 832, 1216)
    assert (meta.model, meta.model_hash) == ("myModel_v2", "abcdef1234")
    assert meta.loras == [Lora("detailTweaker", 0.6), Lora("otherLora", None)]
    assert meta.raw["parameters"] == INFOTEXT


def test_split_params_quotes_and_brackets() -> None:
    params = split_params('A: 1, B: "x, y: z", C: {"k": [1, {"n": "}"}]}, D: [1, 2], '
                          'E: Latent (nearest-exact), F: "esc \\" q"')
    assert params == {"A": "1", "B": "x, y: z", "C": '{"k": [1, {"n": "}"}]}', "D": "[1, 2]",
                      "E": "Latent (nearest-exact)", "F": 'esc " q'}


def test_split_params_glues_unquoted_commas() -> None:
    params = split_params("Steps: 20, Styles: a, b, Seed: 3")
    assert params["Styles"] == "a, b" and params["Seed"] == "3"


@pytest.mark.parametrize(("tail", "family"), [
    ("Version: f2.0.1v1.10.1-previous-669", "forge"),
    ("Version: neo", "forge"),
    ("Version: classic", "forge"),
    ("App: SD.Next, Version: 56a8aea", "sdnext"),
    ('Civitai resources: [{"type":"checkpoint","modelName":"Toon"}]', "civitai"),
    ("Version: Fooocus v2.5.0", "fooocus"),
    ("Version: ComfyUI", "comfyui"),
    ("Version: v1.9.4", "a1111"),
])
def test_infotext_family(tail: str, family: str) -> None:
    parsed = parse_infotext(f"cat\nSteps: 20, Seed: 1, CFG scale: 7, {tail}")
    assert parsed is not None
    meta, params = parsed
    from library.metadata.a1111 import family_of
    assert family_of(params)[0] == family


def test_sdnext_without_sampler_and_civitai_model() -> None:
    meta = meta_of(png_bytes([("tEXt", "parameters",
                               "a dog\nNegative prompt: \nSteps: 20, Size: 768x1024, Seed: 9, "
                               "CFG scale: 3, Model: Chroma, App: SD.Next, Version: 0d7c025")]))
    assert meta.generator == "sdnext" and meta.sampler is None and meta.negative_prompt is None
    meta = meta_of(png_bytes([("tEXt", "parameters",
                               'x\nSteps: 4, Seed: 1, Civitai resources: [{"type":"lora"},'
                               '{"type":"checkpoint","modelName":"Toonify"}]')]))
    assert meta.generator == "civitai" and meta.model == "Toonify"


def test_plain_text_is_not_infotext() -> None:
    assert parse_infotext("just a comment, nothing: else") is None
    meta = meta_of(png_bytes([("iTXt", "Comment", "GIMPで再保存しただけ")]))
    assert meta.generator is None and not meta.has_parameters
    assert meta.raw == {"Comment": "GIMPで再保存しただけ"}


# --- PNG containers -------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["tEXt", "zTXt", "iTXt", "iTXt-z"])
def test_png_text_chunk_kinds(kind: str) -> None:
    text = INFOTEXT if kind.startswith("iTXt") else INFOTEXT.replace("テスト", "test")
    meta = meta_of(png_bytes([(kind, "parameters", text)]))
    assert meta.generator == "a1111" and meta.seed == 1234567890


def test_text_chunk_after_idat_without_decoding_pixels() -> None:
    data = insert_before_iend(png_bytes(), ztxt("parameters", "a duck\nSteps: 15, Seed: 42"))
    with open_bytes(data) as image:
        assert "parameters" not in image.info  # Pillow only sees it after load()
        meta = read_metadata(image)
        assert image.tile, "read_metadata must not decode the pixels"
        image.load()  # the file position was restored: loading still works
    assert (meta.prompt, meta.seed) == ("a duck", 42)


def test_text_chunk_after_idat_on_loaded_image() -> None:
    data = insert_before_iend(png_bytes(), ztxt("parameters", "a duck\nSteps: 15, Seed: 42"))
    image = open_bytes(data)
    image.load()  # fp is gone now; the reader falls back to im.text
    assert read_metadata(image).seed == 42


def test_large_compressed_workflow_chunk(tmp_path) -> None:
    # > Pillow's 1 MiB MAX_TEXT_CHUNK: Image.open itself refuses it without the raised limit.
    graph = _simple_graph()
    graph["99"] = {"class_type": "Note", "inputs": {"text": "x" * (3 * 1024 * 1024)}}
    path = tmp_path / "big.png"
    path.write_bytes(png_bytes([("zTXt", "prompt", json.dumps(graph))]))
    meta = read_metadata_file(path)
    assert meta.generator == "comfyui" and meta.seed == 5
    from PIL import PngImagePlugin
    assert PngImagePlugin.MAX_TEXT_CHUNK == 1024 * 1024  # restored afterwards


def test_latin1_mojibake_repair() -> None:
    # Stability Matrix / TensorArt write UTF-8 bytes into Latin-1 tEXt.
    meta = meta_of(png_bytes([("tEXt", "parameters", "猫, テスト\nSteps: 2, Seed: 3")]))
    assert meta.prompt == "猫, テスト"
    assert repair_mojibake("ãƒ†ã‚¹ãƒˆ".encode("cp1252").decode("latin-1")) == "テスト"
    assert repair_mojibake("café") == "café"  # genuine Latin-1 stays


def test_png_mojibake_from_info_fallback() -> None:
    image = open_bytes(png_bytes([("tEXt", "parameters", "テスト\nSteps: 2, Seed: 3")]))
    image.load()  # forces the Image.info path, where Pillow decoded the bytes as Latin-1
    assert read_metadata(image).prompt == "テスト"


def test_wrong_extension_is_sniffed(tmp_path) -> None:
    path = tmp_path / "really_a_png.jpeg"
    path.write_bytes(png_bytes([("tEXt", "parameters", "x\nSteps: 2, Seed: 3")]))
    assert read_metadata_file(path).seed == 3


# --- EXIF -----------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["JPEG", "WEBP"])
@pytest.mark.parametrize(("order", "encoding"), [
    ("MM", "utf-16-be"), ("II", "utf-16-le"),
    ("II", "utf-16-be"),  # Civitai: little-endian TIFF header, big-endian text
])
def test_exif_user_comment_unicode(fmt: str, order: str, encoding: str) -> None:
    text = "テスト prompt\nNegative prompt: bad\nSteps: 20, Sampler: Euler a, Seed: 77, Size: 8x8"
    exif = tiff(order, exif_ifd={0x9286: (TYPE_UNDEFINED, user_comment(text, encoding=encoding))})
    meta = meta_of(save_with_exif(fmt, exif))
    assert meta.prompt == "テスト prompt" and meta.negative_prompt == "bad"
    assert (meta.seed, meta.sampler, meta.generator) == (77, "Euler a", "a1111")


@pytest.mark.parametrize("charset", ["ASCII", "UNDEFINED"])
def test_exif_user_comment_ascii_and_undefined(charset: str) -> None:
    exif = tiff("II", exif_ifd={0x9286: (TYPE_UNDEFINED,
                                         user_comment("cat\nSteps: 5, Seed: 6", charset=charset))})
    assert meta_of(save_with_exif("JPEG", exif)).seed == 6


def test_user_comment_in_ifd0_and_bom() -> None:
    exif = tiff("MM", ifd0={0x9286: (TYPE_UNDEFINED, b"UNICODE\0\xff\xfe" +
                                     "cat\nSteps: 5, Seed: 8".encode("utf-16-le"))})
    assert meta_of(save_with_exif("JPEG", exif)).seed == 8
    assert decode_user_comment(b"UNICODE\0" + "ＣＪＫ".encode("utf-16-be"), "big") == "ＣＪＫ"


def test_camera_photo_has_no_metadata() -> None:
    exif = tiff("II", ifd0={0x010F: (TYPE_ASCII, b"Canon\0"), 0x0110: (TYPE_ASCII, b"EOS R5\0")},
                exif_ifd={0x9286: (TYPE_UNDEFINED, b"ASCII\0\0\0" + b" " * 20)})
    meta = meta_of(save_with_exif("JPEG", exif))
    assert meta.generator is None and meta.prompt is None and not meta.has_parameters
    assert meta.raw["EXIF:Make"] == "Canon"


# --- stealth --------------------------------------------------------------------------------

@pytest.mark.parametrize("compressed", [False, True])
def test_stealth_alpha(compressed: bool) -> None:
    text = "a circle\nNegative prompt: a square\nSteps: 20, Sampler: Euler, Seed: 2015833630"
    meta = meta_of(to_png(stealth_image(text, compressed=compressed, size=(40, 30))))
    assert (meta.prompt, meta.negative_prompt, meta.seed) == ("a circle", "a square", 2015833630)
    assert meta.raw["stealth"] == text


def test_stealth_not_used_when_text_metadata_exists() -> None:
    hidden = stealth_image("hidden\nSteps: 1, Seed: 1", compressed=False)
    data = png_bytes([("tEXt", "parameters", "visible\nSteps: 2, Seed: 2")], image=hidden)
    with open_bytes(data) as image:
        meta = read_metadata(image)
        assert image.tile, "pixels must stay undecoded when text metadata exists"
    assert meta.prompt == "visible" and "stealth" not in meta.raw


def test_stealth_novelai_json() -> None:
    comment = {"prompt": "1girl", "uc": "lowres", "steps": 28, "scale": 5.0, "seed": 7,
               "sampler": "k_euler", "width": 64, "height": 64}
    payload = json.dumps({"Software": "NovelAI", "Source": "NovelAI Diffusion V4 ABCDEF12",
                          "Comment": json.dumps(comment)})
    meta = meta_of(to_png(stealth_image(payload, compressed=True, size=(64, 64))))
    assert (meta.generator, meta.prompt, meta.negative_prompt) == ("novelai", "1girl", "lowres")
    assert (meta.model, meta.model_hash) == ("NovelAI Diffusion V4", "ABCDEF12")


def test_rgba_without_stealth_and_rgb() -> None:
    assert meta_of(png_bytes(mode="RGBA")).generator is None
    assert meta_of(png_bytes(mode="LA")).generator is None


def test_stealth_cost_is_bounded() -> None:
    text = "big image\nSteps: 30, Seed: 99" + ", X: y" * 200
    image = stealth_image(text, compressed=True, size=(1920, 1200))  # 2.3 MP
    data = to_png(image)
    started = time.perf_counter()
    meta = meta_of(data)
    elapsed = time.perf_counter() - started
    assert meta.seed == 99
    assert elapsed < 1.0, f"stealth read took {elapsed:.2f}s"


# --- ComfyUI --------------------------------------------------------------------------------

def _simple_graph() -> dict:
    return {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "base.safetensors"}},
        "latent": {"class_type": "EmptyLatentImage", "inputs": {"width": 832, "height": 1216, "batch_size": 1}},
        "pos": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["ckpt", 1]}},
        "neg": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["ckpt", 1]}},
        "1": {"class_type": "KSampler", "inputs": {
            "seed": 5, "steps": 25, "cfg": 6.5, "sampler_name": "euler", "scheduler": "karras",
            "denoise": 1.0, "model": ["ckpt", 0], "positive": ["pos", 0], "negative": ["neg", 0],
            "latent_image": ["latent", 0]}},
        "dec": {"class_type": "VAEDecode", "inputs": {"samples": ["1", 0], "vae": ["ckpt", 2]}},
        "save": {"class_type": "SaveImage", "inputs": {"images": ["dec", 0]}},
    }


def comfy(graph: dict, workflow: dict | None = None) -> GenerationMetadata:
    chunks = [("tEXt", "prompt", json.dumps(graph))]
    if workflow is not None:
        chunks.append(("tEXt", "workflow", json.dumps(workflow)))
    return meta_of(png_bytes(chunks))


def test_comfy_ksampler_with_string_ids() -> None:
    meta = comfy(_simple_graph())
    assert (meta.generator, meta.prompt, meta.negative_prompt) == ("comfyui", "a cat", "blurry")
    assert (meta.seed, meta.steps, meta.cfg_scale) == (5, 25, 6.5)
    assert (meta.sampler, meta.scheduler, meta.model) == ("euler", "karras", "base.safetensors")
    assert (meta.width, meta.height) == (832, 1216)


def test_comfy_sampler_custom_advanced_flux() -> None:
    graph = {
        "unet": {"class_type": "UNETLoader", "inputs": {"unet_name": "flux1-dev.safetensors", "weight_dtype": "fp8"}},
        "clip": {"class_type": "DualCLIPLoader", "inputs": {"clip_name1": "t5", "clip_name2": "l"}},
        "ms": {"class_type": "ModelSamplingFlux", "inputs": {"model": ["unet", 0], "width": 1024, "height": 1024}},
        "txt": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse", "clip": ["clip", 0]}},
        "fg": {"class_type": "FluxGuidance", "inputs": {"guidance": 3.5, "conditioning": ["txt", 0]}},
        "guider": {"class_type": "BasicGuider", "inputs": {"model": ["ms", 0], "conditioning": ["fg", 0]}},
        "noise": {"class_type": "RandomNoise", "inputs": {"noise_seed": 2**64 - 1}},
        "ks": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
        "sched": {"class_type": "BasicScheduler", "inputs": {"scheduler": "simple", "steps": 20, "denoise": 1.0, "model": ["ms", 0]}},
        "lat": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 896, "height": 1152, "batch_size": 1}},
        "sca": {"class_type": "SamplerCustomAdvanced", "inputs": {
            "noise": ["noise", 0], "guider": ["guider", 0], "sampler": ["ks", 0],
            "sigmas": ["sched", 0], "latent_image": ["lat", 0]}},
        "dec": {"class_type": "VAEDecode", "inputs": {"samples": ["sca", 0], "vae": ["x", 0]}},
        "save": {"class_type": "SaveImage", "inputs": {"images": ["dec", 0]}},
    }
    meta = comfy(graph)
    assert meta.seed == 2**64 - 1  # beyond int64: kept as a Python int
    assert (meta.steps, meta.sampler, meta.scheduler) == (20, "euler", "simple")
    assert (meta.prompt, meta.cfg_scale) == ("a lighthouse", 3.5)
    assert (meta.model, meta.width, meta.height) == ("flux1-dev.safetensors", 896, 1152)


def test_comfy_cfg_guider() -> None:
    graph = {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "m.ckpt"}},
        "p": {"class_type": "CLIPTextEncode", "inputs": {"text": "pos", "clip": ["ckpt", 1]}},
        "n": {"class_type": "CLIPTextEncode", "inputs": {"text": "neg", "clip": ["ckpt", 1]}},
        "g": {"class_type": "CFGGuider", "inputs": {"cfg": 4.5, "model": ["ckpt", 0], "positive": ["p", 0], "negative": ["n", 0]}},
        "noise": {"class_type": "RandomNoise", "inputs": {"noise_seed": 11}},
        "s": {"class_type": "KarrasScheduler", "inputs": {"steps": 12, "sigma_max": 14.6}},
        "sel": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "dpmpp_2m"}},
        "sca": {"class_type": "SamplerCustomAdvanced", "inputs": {
            "noise": ["noise", 0], "guider": ["g", 0], "sampler": ["sel", 0], "sigmas": ["s", 0],
            "latent_image": ["missing", 0]}},
    }
    meta = comfy(graph)
    assert (meta.prompt, meta.negative_prompt, meta.cfg_scale) == ("pos", "neg", 4.5)
    assert (meta.seed, meta.steps, meta.scheduler, meta.model) == (11, 12, "karras", "m.ckpt")


def test_comfy_lora_chain_and_stack() -> None:
    graph = _simple_graph()
    graph["l1"] = {"class_type": "LoraLoader", "inputs": {
        "lora_name": "styles\\inkStyle.safetensors", "strength_model": 0.8, "strength_clip": 1.0,
        "model": ["ckpt", 0], "clip": ["ckpt", 1]}}
    graph["l2"] = {"class_type": "LoraLoaderModelOnly", "inputs": {
        "lora_name": "detail.safetensors", "strength_model": 0.4, "model": ["l1", 0]}}
    graph["stack"] = {"class_type": "CR LoRA Stack", "inputs": {
        "switch_1": "On", "lora_name_1": "stacked.safetensors", "model_weight_1": 0.3,
        "switch_2": "Off", "lora_name_2": "off.safetensors", "model_weight_2": 1.0}}
    graph["apply"] = {"class_type": "CR Apply LoRA Stack", "inputs": {
        "model": ["l2", 0], "clip": ["l1", 1], "lora_stack": ["stack", 0]}}
    graph["1"]["inputs"]["model"] = ["apply", 0]
    meta = comfy(graph)
    assert meta.model == "base.safetensors"
    assert meta.loras == [Lora("inkStyle", 0.8), Lora("detail", 0.4), Lora("stacked", 0.3)]


def test_comfy_primitives_links_and_sdxl() -> None:
    graph = _simple_graph()
    graph["seed"] = {"class_type": "PrimitiveInt", "inputs": {"value": 123}}
    graph["ptxt"] = {"class_type": "PrimitiveStringMultiline", "inputs": {"value": "from a string node"}}
    graph["name"] = {"class_type": "PrimitiveString", "inputs": {"value": "linked.safetensors"}}
    graph["1"]["inputs"]["seed"] = ["seed", 0]
    graph["pos"]["inputs"]["text"] = ["ptxt", 0]
    graph["ckpt"]["inputs"]["ckpt_name"] = ["name", 0]
    graph["neg"] = {"class_type": "CLIPTextEncodeSDXL", "inputs": {
        "text_g": "ugly", "text_l": "ugly", "clip": ["ckpt", 1], "width": 1024, "height": 1024}}
    meta = comfy(graph)
    assert (meta.seed, meta.prompt, meta.model) == (123, "from a string node", "linked.safetensors")
    assert meta.negative_prompt == "ugly"


def test_comfy_several_samplers_use_first_pass() -> None:
    graph = _simple_graph()
    graph["up"] = {"class_type": "LatentUpscaleBy", "inputs": {"samples": ["1", 0], "scale_by": 1.5}}
    graph["hp"] = {"class_type": "CLIPTextEncode", "inputs": {"text": "hires prompt", "clip": ["ckpt", 1]}}
    graph["2"] = {"class_type": "KSampler", "inputs": {
        "seed": 999, "steps": 10, "cfg": 3.0, "sampler_name": "dpmpp_2m", "scheduler": "normal",
        "denoise": 0.4, "model": ["ckpt", 0], "positive": ["hp", 0], "negative": ["neg", 0],
        "latent_image": ["up", 0]}}
    graph["dec"]["inputs"]["samples"] = ["2", 0]
    meta = comfy(graph)
    assert (meta.seed, meta.steps, meta.prompt) == (5, 25, "a cat")
    assert (meta.width, meta.height) == (832, 1216)


def test_comfy_area_conditioning_collects_all_texts() -> None:
    graph = _simple_graph()
    graph["t2"] = {"class_type": "CLIPTextEncode", "inputs": {"text": "sky", "clip": ["ckpt", 1]}}
    graph["area"] = {"class_type": "ConditioningSetArea", "inputs": {"conditioning": ["t2", 0], "width": 64, "height": 64}}
    graph["comb"] = {"class_type": "ConditioningCombine", "inputs": {"conditioning_1": ["pos", 0], "conditioning_2": ["area", 0]}}
    graph["1"]["inputs"]["positive"] = ["comb", 0]
    assert comfy(graph).prompt == "a cat\nsky"


def test_comfy_cycles_and_deep_chains_terminate() -> None:
    graph = _simple_graph()
    graph["c1"] = {"class_type": "ConditioningCombine", "inputs": {"conditioning_1": ["c2", 0], "conditioning_2": ["c2", 0]}}
    graph["c2"] = {"class_type": "ConditioningCombine", "inputs": {"conditioning_1": ["c1", 0], "conditioning_2": ["1", 0]}}
    graph["1"]["inputs"]["positive"] = ["c1", 0]
    graph["1"]["inputs"]["model"] = ["m1", 0]
    graph["m1"] = {"class_type": "LoraLoader", "inputs": {"lora_name": "a", "strength_model": 1, "model": ["m2", 0]}}
    graph["m2"] = {"class_type": "LoraLoader", "inputs": {"lora_name": "b", "strength_model": 1, "model": ["m1", 0]}}
    graph["1"]["inputs"]["seed"] = ["s1", 0]
    graph["s1"] = {"class_type": "Reroute", "inputs": {"value": ["s1", 0]}}
    graph["1"]["inputs"]["latent_image"] = ["1", 0]  # a sampler feeding itself
    started = time.perf_counter()
    meta = comfy(graph)
    assert meta.generator == "comfyui" and meta.seed is None and meta.model is None
    # 5000-deep conditioning chain
    deep = _simple_graph()
    for index in range(5000):
        deep[f"d{index}"] = {"class_type": "ConditioningZeroOut",
                             "inputs": {"conditioning": [f"d{index + 1}", 0]}}
    deep["1"]["inputs"]["positive"] = ["d0", 0]
    meta = comfy(deep)
    assert meta.prompt is None and meta.seed == 5
    assert time.perf_counter() - started < 5


def test_comfy_dangling_and_malformed_links() -> None:
    graph = _simple_graph()
    graph["1"]["inputs"]["positive"] = ["nope", 0]
    graph["1"]["inputs"]["negative"] = [True, 0]
    graph["1"]["inputs"]["model"] = ["ckpt"]
    graph["junk"] = "not a node"
    meta = comfy(graph)
    assert meta.seed == 5 and meta.prompt is None and meta.model is None


def test_comfy_graph_preferred_over_a1111_parameters() -> None:
    data = png_bytes([("tEXt", "parameters", "unknown\nSteps: 20, Sampler: euler, Seed: 0, Version: ComfyUI"),
                      ("tEXt", "prompt", json.dumps(_simple_graph()))])
    meta = meta_of(data)
    assert (meta.generator, meta.seed, meta.prompt) == ("comfyui", 5, "a cat")


def test_comfy_workflow_only() -> None:
    workflow = {
        "nodes": [
            {"id": 4, "type": "CheckpointLoaderSimple", "widgets_values": ["wf.safetensors"], "inputs": []},
            {"id": 6, "type": "CLIPTextEncode", "widgets_values": ["workflow prompt"],
             "inputs": [{"name": "clip", "link": 1}]},
            {"id": 7, "type": "CLIPTextEncode", "widgets_values": ["workflow negative"],
             "inputs": [{"name": "clip", "link": 2}]},
            {"id": 5, "type": "EmptyLatentImage", "widgets_values": [512, 768, 1], "inputs": []},
            {"id": 3, "type": "KSampler", "widgets_values": [42, "randomize", 30, 7, "euler", "normal", 1],
             "inputs": [{"name": "model", "link": 3}, {"name": "positive", "link": 4},
                        {"name": "negative", "link": 5}, {"name": "latent_image", "link": 6}]},
        ],
        "links": [[1, 4, 1, 6, 0, "CLIP"], [2, 4, 1, 7, 0, "CLIP"], [3, 4, 0, 3, 0, "MODEL"],
                  [4, 6, 0, 3, 1, "CONDITIONING"], [5, 7, 0, 3, 2, "CONDITIONING"],
                  [6, 5, 0, 3, 3, "LATENT"]],
    }
    meta = meta_of(png_bytes([("tEXt", "workflow", json.dumps(workflow))]))
    assert meta.generator == "comfyui"
    assert (meta.prompt, meta.negative_prompt) == ("workflow prompt", "workflow negative")
    assert (meta.seed, meta.steps, meta.cfg_scale, meta.sampler) == (42, 30, 7.0, "euler")
    assert (meta.model, meta.width, meta.height) == ("wf.safetensors", 512, 768)


def test_comfy_webp_exif_prompt() -> None:
    exif = tiff("MM", ifd0={0x0110: (TYPE_ASCII, b"prompt:" + json.dumps(_simple_graph()).encode() + b"\0"),
                            0x010F: (TYPE_ASCII, b'workflow:{"nodes": []}\0')})
    meta = meta_of(save_with_exif("WEBP", exif))
    assert (meta.generator, meta.seed, meta.model) == ("comfyui", 5, "base.safetensors")


# --- InvokeAI -------------------------------------------------------------------------------

def test_invokeai_dream() -> None:
    dream = '"a castle [fog, blur]" -s 50 -S 2980747362 -W 512 -H 768 -C 7.5 -A k_lms -G 0.9'
    meta = meta_of(png_bytes([("tEXt", "Dream", dream)]))
    assert (meta.generator, meta.prompt, meta.negative_prompt) == ("invokeai", "a castle", "fog, blur")
    assert (meta.steps, meta.seed, meta.width, meta.height, meta.cfg_scale, meta.sampler) == (
        50, 2980747362, 512, 768, 7.5, "k_lms")


def test_invokeai_sd_metadata() -> None:
    data = {"model_weights": "deliberate_v08", "model_hash": "56d1", "app_version": "2.3.0",
            "image": {"prompt": [{"prompt": "a ship [storm]", "weight": 1.0}], "steps": 40,
                      "cfg_scale": 5, "seed": 3, "width": 512, "height": 512, "sampler": "k_euler"}}
    meta = meta_of(png_bytes([("tEXt", "sd-metadata", json.dumps(data))]))
    assert (meta.generator_detail, meta.prompt, meta.negative_prompt) == ("InvokeAI 2.3.0", "a ship", "storm")
    assert (meta.model, meta.model_hash, meta.steps, meta.sampler) == ("deliberate_v08", "56d1", 40, "k_euler")


@pytest.mark.parametrize("version", [3, 4])
def test_invokeai_metadata(version: int) -> None:
    model = {"model_name": "juggernautXL", "base_model": "sdxl"} if version == 3 else {
        "key": "k", "hash": "blake3:ab", "name": "juggernautXL", "base": "sdxl"}
    lora = ({"lora": {"model_name": "pixel", "base_model": "sdxl"}, "weight": 0.7} if version == 3
            else {"model": {"key": "x", "name": "pixel"}, "weight": 0.7})
    data = {"positive_prompt": "oil painting", "negative_prompt": "photo", "width": 1024,
            "height": 1024, "seed": 3293022630, "cfg_scale": 8.0, "steps": 35,
            "scheduler": "euler_a", "model": model, "loras": [lora]}
    meta = meta_of(png_bytes([("iTXt", "invokeai_metadata", json.dumps(data))]))
    assert (meta.generator, meta.model, meta.sampler, meta.seed) == ("invokeai", "juggernautXL", "euler_a", 3293022630)
    assert meta.loras == [Lora("pixel", 0.7)]
    assert meta.generator_detail == ("InvokeAI 3" if version == 3 else "InvokeAI 4+")
    assert meta.model_hash == (None if version == 3 else "blake3:ab")


# --- NovelAI / Fooocus / SwarmUI / Draw Things / generic ------------------------------------

def test_novelai_legacy_and_v4() -> None:
    comment = {"steps": 50, "sampler": "k_euler_ancestral", "seed": 2253955223, "scale": 10.0,
               "uc": "lowres", "width": 512, "height": 768}
    meta = meta_of(png_bytes([("tEXt", "Description", "cat, space"), ("tEXt", "Software", "NovelAI"),
                              ("tEXt", "Source", "Stable Diffusion 1D44365E"),
                              ("tEXt", "Comment", json.dumps(comment))]))
    assert (meta.generator, meta.prompt, meta.negative_prompt) == ("novelai", "cat, space", "lowres")
    assert (meta.model, meta.model_hash, meta.cfg_scale, meta.seed) == ("Stable Diffusion", "1D44365E", 10.0, 2253955223)
    v4 = {"prompt": "1girl", "steps": 28, "scale": 5.0, "seed": 1, "noise_schedule": "karras",
          "v4_prompt": {"caption": {"base_caption": "1girl", "char_captions": [{"char_caption": "girl, red hair"}]}},
          "v4_negative_prompt": {"caption": {"base_caption": "bad", "char_captions": []}}}
    meta = meta_of(png_bytes([("tEXt", "Software", "NovelAI"), ("tEXt", "Comment", json.dumps(v4))]))
    assert (meta.prompt, meta.negative_prompt, meta.scheduler) == ("1girl\ngirl, red hair", "bad", "karras")


def test_novelai_webp_user_comment() -> None:
    comment = json.dumps({"prompt": "fox", "uc": "bad", "steps": 28, "scale": 6, "seed": 4})
    exif = tiff("II", exif_ifd={0x9286: (TYPE_UNDEFINED, user_comment(comment, charset="ASCII"))})
    meta = meta_of(save_with_exif("WEBP", exif))
    assert (meta.generator, meta.prompt, meta.seed) == ("novelai", "fox", 4)


def test_fooocus_and_ruined_fooocus() -> None:
    data = {"prompt": "a goldfish", "negative_prompt": "", "base_model": "juggernautXL_v8",
            "base_model_hash": "aeb7e9e689", "sampler": "dpmpp_2m_sde_gpu", "scheduler": "karras",
            "seed": "6952411511246973023", "steps": 30, "guidance_scale": 4,
            "resolution": "(768, 1280)", "loras": [["sdxl_offset.safetensors", 0.1, "hash"]],
            "version": "Fooocus v2.4.3"}
    meta = meta_of(png_bytes([("tEXt", "parameters", json.dumps(data)), ("tEXt", "fooocus_scheme", "fooocus")]))
    assert (meta.generator, meta.seed, meta.width, meta.height) == ("fooocus", 6952411511246973023, 768, 1280)
    assert meta.negative_prompt is None and meta.loras == [Lora("sdxl_offset", 0.1)]
    ruined = {"Prompt": "p", "Negative": "n", "steps": 30, "cfg": 8, "width": 1024, "height": 1024,
              "seed": 1, "sampler_name": "euler", "scheduler": "karras", "base_model_name": "m.safetensors",
              "software": "RuinedFooocus"}
    meta = meta_of(png_bytes([("tEXt", "parameters", json.dumps(ruined))]))
    assert (meta.generator, meta.prompt, meta.negative_prompt, meta.model) == ("fooocus", "p", "n", "m.safetensors")


@pytest.mark.parametrize("container", ["png", "jpeg"])
def test_swarmui(container: str) -> None:
    data = json.dumps({"sui_image_params": {
        "prompt": "miku", "negativeprompt": "bad", "model": "wai_v160", "seed": 697543491,
        "steps": 20, "cfgscale": 7.0, "width": 1024, "height": 1024, "sampler": "euler_ancestral",
        "scheduler": "karras", "loras": ["a", "b"], "loraweights": ["0.5", 1]},
        "sui_models": [{"name": "wai_v160.safetensors", "param": "model", "hash": "0x22"}]}, indent=2)
    if container == "png":
        blob = png_bytes([("tEXt", "prompt", json.dumps(_simple_graph())), ("tEXt", "parameters", data)])
    else:
        blob = save_with_exif("JPEG", tiff("II", exif_ifd={0x9286: (TYPE_UNDEFINED, user_comment(data, encoding="utf-16-le"))}))
    meta = meta_of(blob)
    assert (meta.generator, meta.prompt, meta.seed, meta.model_hash) == ("swarmui", "miku", 697543491, "0x22")
    assert meta.loras == [Lora("a", 0.5), Lora("b", 1.0)]


def test_drawthings_xmp() -> None:
    comment = json.dumps({"c": "robot & fish", "uc": "", "seed": 2050777441, "steps": 26,
                          "scale": 3.5, "sampler": "Euler A Trailing", "size": "768x1024",
                          "model": "flux_1_dev_q8p.ckpt", "lora": [{"model": "wiz_f16.ckpt", "weight": 0.8}]})
    escaped = comment.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")
    xmp = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           '<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmlns:exif="http://ns.adobe.com/exif/1.0/">'
           '<xmp:CreatorTool>Draw Things</xmp:CreatorTool>'
           f'<exif:UserComment><rdf:Alt><rdf:li xml:lang="x-default">{escaped}</rdf:li></rdf:Alt></exif:UserComment>'
           '</rdf:Description></rdf:RDF></x:xmpmeta>')
    meta = meta_of(png_bytes([("iTXt", "XML:com.adobe.xmp", xmp)]))
    assert (meta.generator, meta.prompt, meta.negative_prompt) == ("drawthings", "robot & fish", None)
    assert (meta.width, meta.height, meta.cfg_scale, meta.model) == (768, 1024, 3.5, "flux_1_dev_q8p.ckpt")
    assert meta.loras == [Lora("wiz_f16", 0.8)]


def test_generic_json_parameters() -> None:
    data = {"prompt": "p", "negative_prompt": "n", "resolution": "1024 x 768", "guidance_scale": 5.5,
            "num_inference_steps": 24, "seed": 4, "sampler": "DPM++ 2M Karras", "Model": "WAI"}
    meta = meta_of(png_bytes([("tEXt", "parameters", json.dumps(data))]))
    assert meta.generator is None and meta.has_parameters
    assert (meta.prompt, meta.width, meta.height, meta.steps, meta.model) == ("p", 1024, 768, 24, "WAI")


# --- API surface ----------------------------------------------------------------------------

def test_to_json_dict_keys() -> None:
    meta = meta_of(png_bytes([("tEXt", "parameters", INFOTEXT)]))
    assert list(meta.to_json_dict()) == ["generator", "prompt", "negative_prompt", "seed", "steps",
                                         "sampler", "scheduler", "cfg_scale", "width", "height",
                                         "model", "model_hash", "loras"]
    assert meta.to_json_dict()["loras"][0] == {"name": "detailTweaker", "weight": 0.6}
    json.dumps(meta.to_json_dict(), allow_nan=False)


def test_read_metadata_file_errors(tmp_path) -> None:
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "notes.png"
    text.write_text("hello")
    for path in (empty, text, tmp_path / "missing.png", tmp_path):
        with pytest.raises(MetadataReadError) as info:
            read_metadata_file(path)
        assert str(path) in str(info.value)


def test_non_file_image() -> None:
    image = Image.new("RGBA", (4, 4))
    image.info["parameters"] = "x\nSteps: 3, Seed: 1"
    assert read_metadata(image).seed == 1
    assert read_metadata(Image.new("RGB", (2, 2))).generator is None


def test_file_position_restored() -> None:
    data = png_bytes([("tEXt", "parameters", INFOTEXT)], size=(32, 32))
    buffer = io.BytesIO(data)
    with Image.open(buffer) as image:
        before = buffer.tell()
        read_metadata(image)
        assert buffer.tell() == before
        assert image.load() is not None
