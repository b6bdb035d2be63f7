"""SwarmUI: JSON `{"sui_image_params": {...}, "sui_models": [...]}` in `parameters`
(PNG) or UserComment (JPEG/WebP, UTF-16LE)."""

from __future__ import annotations

from typing import Any

from .model import GenerationMetadata, Lora
from .values import lora_basename, to_float, to_int, to_positive_int, to_steps, to_str


def parse_swarmui(data: dict[str, Any]) -> GenerationMetadata | None:
    params = data.get("sui_image_params")
    if not isinstance(params, dict):
        return None
    version = to_str(params.get("swarm_version"))
    meta = GenerationMetadata(generator="swarmui",
                              generator_detail=f"SwarmUI {version}" if version else "SwarmUI")
    meta.prompt = to_str(params.get("prompt"))
    meta.negative_prompt = to_str(params.get("negativeprompt"))
    meta.seed = to_int(params.get("seed"))
    meta.steps = to_steps(params.get("steps"))
    meta.cfg_scale = to_float(params.get("cfgscale"))
    meta.sampler = to_str(params.get("sampler"))
    meta.scheduler = to_str(params.get("scheduler"))
    meta.width = to_positive_int(params.get("width"))
    meta.height = to_positive_int(params.get("height"))
    meta.model = to_str(params.get("model"))
    models = data.get("sui_models")
    if isinstance(models, list):
        for entry in models:
            if isinstance(entry, dict) and entry.get("param") == "model":
                meta.model_hash = to_str(entry.get("hash"))
                break
    names = params.get("loras")
    weights = params.get("loraweights")
    if isinstance(names, list):
        weights = weights if isinstance(weights, list) else []
        for index, name in enumerate(names[:200]):
            if isinstance(name, str) and name.strip():
                weight = to_float(weights[index]) if index < len(weights) else None
                meta.loras.append(Lora(lora_basename(name), weight))
    return meta
