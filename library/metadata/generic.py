"""JSON `parameters` from generators without a scheme of their own (Hugging Face Spaces,
diffusers scripts): well-known key names only. The family stays None: the metadata is
real, but we cannot tell which program wrote it."""

from __future__ import annotations

from typing import Any

from .model import GenerationMetadata
from .values import first, parse_size, to_float, to_int, to_positive_int, to_steps, to_str

_PROMPT_KEYS = ("prompt", "Prompt", "positive_prompt")


def looks_generic(data: dict[str, Any]) -> bool:
    return any(isinstance(data.get(key), str) for key in _PROMPT_KEYS)


def parse_generic(data: dict[str, Any]) -> GenerationMetadata:
    meta = GenerationMetadata(generator=None, generator_detail="JSON parameters")
    meta.prompt = to_str(first(data, *_PROMPT_KEYS))
    meta.negative_prompt = to_str(first(data, "negative_prompt", "Negative prompt", "negative"))
    meta.seed = to_int(first(data, "seed", "Seed"))
    meta.steps = to_steps(first(data, "num_inference_steps", "steps", "Steps"))
    meta.cfg_scale = to_float(first(data, "guidance_scale", "cfg_scale", "cfg", "CFG scale"))
    meta.sampler = to_str(first(data, "sampler", "Sampler", "scheduler"))
    meta.model = to_str(first(data, "Model", "model", "model_name"))
    meta.model_hash = to_str(first(data, "Model hash", "model_hash"))
    width, height = to_positive_int(data.get("width")), to_positive_int(data.get("height"))
    if width is None or height is None:
        width, height = parse_size(first(data, "resolution", "Size", "size"))
    meta.width, meta.height = width, height
    return meta
