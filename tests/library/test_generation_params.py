"""Back to the generator: A1111 infotext (verbatim or built in A1111's order and quoting),
the ComfyUI workflow wherever ComfyUI savers put it, and queueing against a local stub of
ComfyUI's /prompt (127.0.0.1 only)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from comfy_stub import ComfyStub, comfy_stub
from metadata_builders import png_bytes
from PIL import Image

from library.generation_params import (
    ComfyUIError,
    comfyui_prompt,
    comfyui_workflow,
    infotext,
    prompt_endpoint,
    queue_prompt,
    quote,
)
from library.metadata import read_metadata
from library.metadata.a1111 import parse_infotext

A1111_TEXT = ("a cat, <lora:fur:0.7>\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, "
              'CFG scale: 7, Seed: 42, Size: 512x768, Model hash: abc, Model: dream, '
              'Lora hashes: "fur: 123", Version: v1.10.1')
API_GRAPH = {
    "3": {"class_type": "KSampler", "inputs": {
        "seed": 123456789012, "steps": 25, "cfg": 6.5, "sampler_name": "dpmpp_2m_sde",
        "scheduler": "karras", "denoise": 1.0, "model": ["10", 0], "positive": ["6", 0],
        "negative": ["7", 0], "latent_image": ["5", 0]}, "_meta": {"title": "KSampler"}},
    "4": {"class_type": "CheckpointLoaderSimple",
          "inputs": {"ckpt_name": "SDXL\\juggernaut, v9.safetensors"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 832, "height": 1216,
                                                       "batch_size": 1}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse at dusk",
                                                     "clip": ["10", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "text, watermark",
                                                     "clip": ["10", 1]}},
    "10": {"class_type": "LoraLoader", "inputs": {
        "lora_name": "styles/film_grain.safetensors", "strength_model": 0.6,
        "strength_clip": 0.6, "model": ["4", 0], "clip": ["4", 1]}},
}
WORKFLOW = {"last_node_id": 10, "nodes": [{"id": 3, "type": "KSampler"}], "links": [],
            "version": 0.4}


def meta_of(data: bytes):
    with Image.open(io.BytesIO(data)) as im:
        return read_metadata(im)


def fields_of(meta) -> dict[str, Any]:
    return {k: v for k, v in meta.to_json_dict().items() if k != "loras" and v is not None} | {
        "model_hash": meta.model_hash}


def test_a1111_images_are_copied_verbatim():
    meta = meta_of(png_bytes([("tEXt", "parameters", A1111_TEXT)]))
    assert infotext(fields_of(meta), [(lora.name, lora.weight) for lora in meta.loras],
                    meta.raw) == A1111_TEXT


def test_comfyui_images_get_a1111_order_names_and_quoting():
    meta = meta_of(png_bytes([("tEXt", "prompt", json.dumps(API_GRAPH)),
                              ("tEXt", "workflow", json.dumps(WORKFLOW))]))
    text = infotext(fields_of(meta), [(lora.name, lora.weight) for lora in meta.loras], meta.raw)
    assert text == (
        "a lighthouse at dusk, <lora:film_grain:0.6>\n"
        "Negative prompt: text, watermark\n"
        "Steps: 25, Sampler: DPM++ 2M SDE, Schedule type: Karras, CFG scale: 6.5, "
        'Seed: 123456789012, Size: 832x1216, Model: "juggernaut, v9"')
    # A1111's own parser reads it back.
    parsed, params = parse_infotext(text)
    assert parsed.prompt == "a lighthouse at dusk, <lora:film_grain:0.6>"
    assert parsed.negative_prompt == "text, watermark"
    assert (parsed.steps, parsed.seed, parsed.cfg_scale) == (25, 123456789012, 6.5)
    assert params["Model"] == "juggernaut, v9"


def test_quoting_and_empty_cases():
    assert quote("Euler a") == "Euler a"
    assert quote("a: b") == '"a: b"'
    assert quote('x, "y"') == '"x, \\"y\\""'
    assert infotext({}) is None
    assert infotext({"prompt": "only a prompt"}) == "only a prompt"
    assert infotext({"prompt": "p <lora:x:0.5>"}, [("x.safetensors", 0.5)]) == "p <lora:x:0.5>"


def test_workflow_and_prompt_from_png_and_webp():
    png = meta_of(png_bytes([("tEXt", "prompt", json.dumps(API_GRAPH)),
                             ("tEXt", "workflow", json.dumps(WORKFLOW))]))
    text, kind = comfyui_workflow(png.raw)
    assert kind == "workflow" and json.loads(text) == WORKFLOW
    assert comfyui_prompt(png.raw) == API_GRAPH  # as saved, _meta included

    exif = Image.Exif()  # ComfyUI's core WebP saver
    exif[0x0110] = "prompt:" + json.dumps(API_GRAPH)
    exif[0x010F] = "workflow:" + json.dumps(WORKFLOW)
    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, "WEBP", exif=exif.tobytes())
    webp = meta_of(out.getvalue())
    assert json.loads(comfyui_workflow(webp.raw)[0]) == WORKFLOW
    assert comfyui_prompt(webp.raw) == API_GRAPH

    only_prompt = meta_of(png_bytes([("tEXt", "prompt", json.dumps(API_GRAPH))]))
    assert comfyui_workflow(only_prompt.raw)[1] == "API prompt"
    a1111 = meta_of(png_bytes([("tEXt", "parameters", A1111_TEXT)]))
    assert comfyui_workflow(a1111.raw) is None and comfyui_prompt(a1111.raw) is None


# --- queueing -------------------------------------------------------------------------------

@pytest.fixture
def comfy() -> Iterator[ComfyStub]:
    with comfy_stub() as stub:
        yield stub


def test_queue_posts_the_graph_to_slash_prompt(comfy):
    assert queue_prompt(comfy.url + "/", API_GRAPH) == "abc-123"
    (path, body), = comfy.received
    assert path == "/prompt"
    assert body["prompt"] == API_GRAPH and body["client_id"]


def test_queue_reports_comfyui_errors(comfy):
    comfy.status = 400
    comfy.answer = {"error": {"type": "prompt_outputs_failed_validation",
                              "message": "Prompt outputs failed validation",
                              "details": "ckpt_name not in list"}, "node_errors": {}}
    with pytest.raises(ComfyUIError, match="failed validation.*ckpt_name not in list"):
        queue_prompt(comfy.url, API_GRAPH)


def test_queue_reports_an_unreachable_server_and_bad_addresses():
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ComfyUIError, match="cannot reach ComfyUI"):
        queue_prompt(f"http://127.0.0.1:{port}", API_GRAPH, timeout=5)
    with pytest.raises(ComfyUIError, match="not an http"):
        prompt_endpoint("file:///etc/passwd")
    assert prompt_endpoint("http://host:8188/sub/") == "http://host:8188/sub/prompt"
