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
