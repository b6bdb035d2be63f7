"""Property tests: hostile files and metadata never make the reader raise, hang or balloon."""

from __future__ import annotations

import io
import json
import tracemalloc
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from metadata_builders import png_chunk, to_png
from PIL import Image, PngImagePlugin

from library.metadata import MetadataReadError, read_metadata, read_metadata_file
from library.metadata.comfyui import parse_graph

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:PIL.*")

FUZZ = settings(max_examples=150, deadline=2000,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
PEAK_LIMIT = 64 * 1024 * 1024

KEYS = ["parameters", "prompt", "workflow", "Comment", "Description", "Software", "Source",
        "invokeai_metadata", "sd-metadata", "Dream", "fooocus_scheme", "XML:com.adobe.xmp",
        "invokeai_graph", "Title"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.sampled_from(["class_type", "inputs", "seed", "steps", "text", "model",
                                       "positive", "negative", "prompt", "uc", "scale",
                                       "sui_image_params", "caption", "v4_prompt", "loras",
                                       "noise", "guider", "latent_image", "1", "2"])
                      | st.text(max_size=8), children, max_size=6),
    max_leaves=30)
link_like = st.tuples(st.sampled_from(["1", "2", "3", 1, 2, "x"]), st.integers(0, 2)).map(list)
infotext = st.lists(
    st.tuples(st.sampled_from(["Steps", "Sampler", "Seed", "CFG scale", "Size", "Model",
                               "Hashes", "Lora hashes", "Version", "App"]),
              st.text(max_size=20) | st.just('"a, b: c') | st.just("{[{") | st.just("512x512")),
    max_size=8).map(lambda pairs: "p <lora:x:0.5>\nNegative prompt: n\n" +
                    ", ".join(f"{k}: {v}" for k, v in pairs))
chunk_values = (st.text(max_size=300) | json_values.map(lambda v: json.dumps(v)) | infotext
                | st.builds(lambda g: json.dumps(g), st.dictionaries(
                    st.sampled_from(["1", "2", "3"]),
                    st.fixed_dictionaries({"class_type": st.sampled_from(
                        ["KSampler", "SamplerCustomAdvanced", "CLIPTextEncode", "LoraLoader",
                         "CheckpointLoaderSimple", "SaveImage", "RandomNoise", "CFGGuider"]),
                        "inputs": st.dictionaries(st.sampled_from(
                            ["seed", "steps", "positive", "negative", "model", "text", "images",
                             "latent_image", "noise", "guider", "sigmas", "ckpt_name", "cfg"]),
                            link_like | json_values, max_size=6)}), max_size=3)))


def _bounded(call):
    tracemalloc.start()
    try:
        result = call()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < PEAK_LIMIT, f"peak {peak} bytes"
    return result


def _png_with_chunks(chunks: list[tuple[str, str, str]], after_idat: bool) -> bytes:
    base = to_png(Image.new("RGBA", (4, 4)))
    extra = b""
    for kind, key, value in chunks:
        raw_key = key.encode("latin-1")
        data = value.encode("utf-8")
        if kind == "tEXt":
            extra += png_chunk(b"tEXt", raw_key + b"\0" + data)
        elif kind == "zTXt":
            extra += png_chunk(b"zTXt", raw_key + b"\0\0" + zlib.compress(data))
        else:
            extra += png_chunk(b"iTXt", raw_key + b"\0\0\0\0\0" + data)
    split = base.index(b"IEND") - 4 if after_idat else base.index(b"IDAT") - 4
    return base[:split] + extra + base[split:]


@FUZZ
@given(prefix=st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe1", b"RIFF\x00\x00\x00\x00WEBPVP8X",
                               b"GIF89a", b"II*\x00"]),
       body=st.binary(max_size=2048))
def test_arbitrary_bytes_never_crash(tmp_path_factory, prefix: bytes, body: bytes) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "file.png"
    path.write_bytes(prefix + body)
    try:
        _bounded(lambda: read_metadata_file(path))
    except MetadataReadError:
        pass


@FUZZ
@given(chunks=st.lists(st.tuples(st.sampled_from(["tEXt", "zTXt", "iTXt"]), st.sampled_from(KEYS),
                                 chunk_values), max_size=5),
       after_idat=st.booleans())
def test_text_chunks_never_crash(chunks, after_idat: bool) -> None:
    data = _png_with_chunks(chunks, after_idat)
    with Image.open(io.BytesIO(data)) as image:
        meta = _bounded(lambda: read_metadata(image))
    json.dumps(meta.to_json_dict(), allow_nan=False)
    assert meta.generator is None or isinstance(meta.generator, str)


@FUZZ
@given(graph=st.dictionaries(
    st.sampled_from(["1", "2", "3", "4", "5"]),
    st.fixed_dictionaries({"class_type": st.sampled_from(
        ["KSampler", "KSamplerAdvanced", "SamplerCustomAdvanced", "CLIPTextEncode", "LoraLoader",
         "CheckpointLoaderSimple", "SaveImage", "ConditioningCombine", "PrimitiveInt",
         "EmptyLatentImage", "CR LoRA Stack", "BasicScheduler"]),
        "inputs": st.dictionaries(st.sampled_from(
            ["seed", "noise_seed", "steps", "cfg", "positive", "negative", "model", "text", "images",
             "latent_image", "noise", "guider", "sampler", "sigmas", "ckpt_name", "lora_name",
             "lora_stack", "conditioning_1", "value", "width", "height", "lora_name_1"]),
            link_like | json_values, max_size=8)}), max_size=5))
def test_comfy_graphs_never_crash(graph) -> None:
    meta = parse_graph(graph)
    assert meta.generator == "comfyui"


@FUZZ
@given(length=st.integers(0, 2**32 - 1), payload=st.binary(max_size=64),
       magic=st.sampled_from([b"stealth_pnginfo", b"stealth_pngcomp", b"stealth_pngXXXX"]))
def test_stealth_headers_never_crash(length: int, payload: bytes, magic: bytes) -> None:
    bits = "".join(f"{b:08b}" for b in magic + length.to_bytes(4, "big") + payload)
    width, height = 16, 24
    alpha = bytearray([255]) * (width * height)
    for index, bit in enumerate(bits[: width * height]):
        alpha[index] = 254 | int(bit)
    image = Image.new("RGBA", (width, height))
    image.putalpha(Image.frombytes("L", (height, width), bytes(alpha)).transpose(Image.Transpose.TRANSPOSE))
    with Image.open(io.BytesIO(to_png(image))) as reopened:
        meta = _bounded(lambda: read_metadata(reopened))
    assert meta.generator in (None, "a1111", "novelai") or meta.generator


def test_zip_bomb_text_is_capped() -> None:
    bomb = zlib.compress(b"A" * (64 * 1024 * 1024), 9)  # ~64 KiB compressed
    base = to_png(Image.new("RGB", (2, 2)))
    split = base.index(b"IEND") - 4
    data = base[:split] + png_chunk(b"zTXt", b"parameters\0\0" + bomb) + base[split:]
    with Image.open(io.BytesIO(data)) as image:
        meta = read_metadata(image)
    assert len(meta.raw["parameters"]) <= 16 * 1024 * 1024
    assert PngImagePlugin.MAX_TEXT_CHUNK == 1024 * 1024


# --- ComfyUI graph walks ----------------------------------------------------------------------

COMFY_CLASSES = [
    "KSampler", "KSamplerAdvanced", "SamplerCustomAdvanced", "KSampler (Efficient)", "easy kSampler",
    "MyPack Mystery Sampler", "FaceDetailer", "CLIPTextEncode", "CLIPTextEncodeSDXL",
    "ImpactWildcardEncode", "ConditioningCombine", "ConditioningZeroOut", "ControlNetApplyAdvanced",
    "StringConcatenate", "Text Concatenate", "StringReplace", "Text Format (custom)",
    "ComfySwitchNode", "ImpactSwitch", "Any Switch (rgthree)", "easy anythingIndexSwitch",
    "PrimitiveNode", "PrimitiveString", "Reroute", "ReroutePrimitive|pysssss", "Context (rgthree)",
    "Efficient Loader", "easy a1111Loader", "ToBasicPipe", "FromBasicPipe", "LoRA Stacker",
    "CR LoRA Stack", "Power Lora Loader (rgthree)", "LoraLoader", "LoraTagLoader",
    "CheckpointLoaderSimple", "UNETLoader", "UnetLoaderGGUF", "ModelMergeSimple",
    "EmptyLatentImage", "SDXL Empty Latent Image (rgthree)", "LatentUpscaleBy",
    "ImageUpscaleWithModel", "ImageScaleBy", "CM_IntBinaryOperation", "SaveImage", "PreviewImage",
    "RandomNoise", "CFGGuider", "BasicScheduler", "KSamplerSelect", "TextGenerate", "Unknown Node"]
COMFY_KEYS = [
    "seed", "noise_seed", "steps", "cfg", "sampler_name", "scheduler", "positive", "negative",
    "model", "model1", "clip", "latent_image", "samples", "image", "images", "pipe", "base_ctx",
    "text", "text_g", "populated_text", "string_a", "string_b", "delimiter", "find", "replace",
    "format", "switch", "on_true", "on_false", "select", "input1", "input2", "any_01", "index",
    "value0", "value", "conditioning", "conditioning_1", "conditioning_2", "lora_name",
    "strength_model", "lora_stack", "lora_count", "lora_name_1", "lora_wt_1", "switch_1",
    "lora_1", "ckpt_name", "unet_name", "width", "height", "dimensions", "scale_by",
    "upscale_model", "op", "a", "b", "guider", "noise", "sampler", "sigmas", "script"]
node_ids = st.sampled_from([str(i) for i in range(12)] + ["4:1", "missing"])
comfy_links = st.tuples(node_ids, st.integers(0, 8)).map(list)
comfy_values = (comfy_links | st.none() | st.booleans() | st.integers(-3, 2**64)
                | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=30)
                | st.sampled_from(["{a|b} __x__", "<lora:x:0.5>", "On", "Off", "Mul", "1024 x 1024"])
                | st.fixed_dictionaries({"on": st.booleans(), "lora": st.text(max_size=8),
                                         "strength": st.floats(allow_nan=True)}))
comfy_graphs = st.dictionaries(
    node_ids,
    st.fixed_dictionaries({"class_type": st.sampled_from(COMFY_CLASSES),
                           "inputs": st.dictionaries(st.sampled_from(COMFY_KEYS), comfy_values,
                                                     max_size=10)}),
    max_size=12)


@FUZZ
@given(graph=comfy_graphs)
def test_comfy_graph_walks_terminate_within_budget(graph) -> None:
    from library.metadata.comfyui.graph import DEFAULT_BUDGET, api_graph

    parsed = api_graph(graph)
    meta = parse_graph(parsed if parsed is not None else graph)
    assert meta.generator == "comfyui"
    if parsed is not None:
        assert parsed.budget.used <= DEFAULT_BUDGET + 1
    json.dumps(meta.to_json_dict(), allow_nan=False)
    assert all(isinstance(lora.name, str) for lora in meta.loras)


editor_ids = st.integers(-20, 12)
editor_links = st.lists(st.tuples(st.integers(0, 30), editor_ids, st.integers(0, 3), editor_ids,
                                  st.integers(0, 3)).map(lambda t: [*t, "*"]), max_size=20)
editor_nodes = st.lists(st.fixed_dictionaries({
    "id": editor_ids,
    "type": st.sampled_from(COMFY_CLASSES + ["sub-a", "sub-b", "workflow>grp", "GetNode", "SetNode"]),
    "mode": st.sampled_from([0, 0, 2, 4]),
    "inputs": st.lists(st.fixed_dictionaries({"name": st.sampled_from(COMFY_KEYS + [""]),
                                              "type": st.sampled_from(["*", "MODEL", "STRING"]),
                                              "link": st.none() | st.integers(0, 30)}), max_size=4),
    "outputs": st.lists(st.fixed_dictionaries({"name": st.sampled_from(["MODEL", "positive", "STRING"]),
                                               "type": st.sampled_from(["*", "MODEL", "STRING"])}),
                        max_size=3),
    "widgets_values": st.lists(comfy_values, max_size=5) | json_values}), max_size=12)


@FUZZ
@given(nodes=editor_nodes, links=editor_links, sub_nodes=editor_nodes, sub_links=editor_links)
def test_comfy_editor_workflows_with_subgraphs_never_crash(nodes, links, sub_nodes, sub_links) -> None:
    from library.metadata.comfyui import parse_texts

    def subgraph(sub_id: str) -> dict:  # subgraphs that may contain each other (and themselves)
        return {"id": sub_id, "nodes": sub_nodes,
                "links": [dict(zip(("id", "origin_id", "origin_slot", "target_id", "target_slot"),
                                   link)) for link in sub_links],
                "inputs": [{"name": "value"}, {"name": "text"}], "outputs": [{"name": "OUT"}]}

    workflow = {"nodes": nodes, "links": links,
                "definitions": {"subgraphs": [subgraph("sub-a"), subgraph("sub-b")]},
                "extra": {"groupNodes": {"grp": {"nodes": sub_nodes, "links": links,
                                                 "external": [[0, 0, "MODEL"]]}}}}
    meta = _bounded(lambda: parse_texts({"workflow": json.dumps(workflow)}))
    if meta is None:  # nothing usable in it: not read as ComfyUI
        kept = {n["id"]: n for n in nodes}.values()  # a repeated id: the last node wins
        assert not any(n.get("mode") not in (2, 4)
                       and n["type"] not in ("Reroute", "GetNode", "SetNode", "PrimitiveNode")
                       and not n["type"].startswith(("sub-", "workflow>")) for n in kept)
        return
    assert meta.generator == "comfyui"
    json.dumps(meta.to_json_dict(), allow_nan=False)
