"""Fooocus (`fooocus_scheme` = fooocus, JSON `parameters`) and RuinedFooocus (JSON with
"Prompt"/"Negative" keys). Fooocus' a1111 scheme is plain infotext (see a1111.family_of)."""

from __future__ import annotations

from typing import Any

from .model import GenerationMetadata, Lora
from .values import (
    first,
    lora_basename,
    parse_size,
    to_float,
    to_int,
    to_positive_int,
    to_steps,
    to_str,
)


def is_fooocus(data: dict[str, Any], scheme: str | None) -> bool:
    if (scheme or "").strip().lower() == "fooocus":
        return True
    software = str(data.get("software") or data.get("version") or "")
    return (software.lower().startswith(("fooocus", "ruinedfooocus"))
            or data.get("metadata_scheme") == "fooocus"
            or ("Prompt" in data and "Negative" in data and "base_model_name" in data))


def parse_fooocus(data: dict[str, Any]) -> GenerationMetadata:
    detail = to_str(data.get("version")) or to_str(data.get("software")) or "Fooocus"
    meta = GenerationMetadata(generator="fooocus", generator_detail=detail)
    meta.prompt = to_str(first(data, "prompt", "Prompt"))
    meta.negative_prompt = to_str(first(data, "negative_prompt", "Negative"))
    meta.seed = to_int(data.get("seed"))  # Fooocus writes the seed as a string
    meta.steps = to_steps(data.get("steps"))
    meta.cfg_scale = to_float(first(data, "guidance_scale", "cfg"))
    meta.sampler = to_str(first(data, "sampler", "sampler_name"))
    meta.scheduler = to_str(data.get("scheduler"))
    if "width" in data or "height" in data:
        meta.width = to_positive_int(data.get("width"))
        meta.height = to_positive_int(data.get("height"))
    else:
        meta.width, meta.height = parse_size(data.get("resolution"))
    meta.model = to_str(first(data, "base_model", "base_model_name"))
    meta.model_hash = to_str(data.get("base_model_hash"))
    meta.loras = _loras(data.get("loras"))
    return meta


def _loras(value: Any) -> list[Lora]:
    """[[name, weight(, hash)], ...] or [{"name"/"model": .., "weight": ..}, ...]."""
    loras: list[Lora] = []
    if not isinstance(value, list):
        return loras
    for item in value[:200]:
        name: Any = None
        weight: Any = None
        if isinstance(item, (list, tuple)) and item:
            name, weight = item[0], item[1] if len(item) > 1 else None
        elif isinstance(item, dict):
            name, weight = first(item, "name", "model", "lora"), first(item, "weight", "strength")
        name = to_str(name)
        if name and name != "None":
            loras.append(Lora(lora_basename(name), to_float(weight)))
    return loras
