"""Draw Things: XMP with `exif:UserComment` = JSON {c, uc, seed, steps, scale, sampler, size,
model, lora}, `xmp:CreatorTool` = Draw Things, and an infotext-like `dc:description`."""

from __future__ import annotations

from typing import Any

from .containers import xmp_field
from .model import GenerationMetadata, Lora
from .values import loads_json_dict, lora_basename, parse_size, to_float, to_int, to_steps, to_str


def parse_drawthings(xmp: str) -> GenerationMetadata | None:
    data = loads_json_dict(xmp_field(xmp, "exif:UserComment") or "")
    creator = xmp_field(xmp, "xmp:CreatorTool") or ""
    if data is None or not ("c" in data and ("seed" in data or "steps" in data)):
        return None
    meta = GenerationMetadata(generator="drawthings", generator_detail=creator or "Draw Things")
    meta.prompt = to_str(data.get("c"))
    meta.negative_prompt = to_str(data.get("uc"))
    meta.seed = to_int(data.get("seed"))
    meta.steps = to_steps(data.get("steps"))
    meta.cfg_scale = to_float(data.get("scale"))
    meta.sampler = to_str(data.get("sampler"))
    meta.width, meta.height = parse_size(data.get("size"))
    meta.model = to_str(data.get("model"))
    meta.loras = _loras(data.get("lora"))
    return meta


def _loras(value: Any) -> list[Lora]:
    loras: list[Lora] = []
    if isinstance(value, list):
        for item in value[:200]:
            if isinstance(item, dict) and to_str(item.get("model")):
                loras.append(Lora(lora_basename(item["model"]), to_float(item.get("weight"))))
    return loras
