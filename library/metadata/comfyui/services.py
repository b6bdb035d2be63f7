"""Online generators that run ComfyUI graphs and embed their own model ids.

- Civitai: model and LoRA names are AIR URNs (`urn:air:sdxl:checkpoint:civitai:827184@2514310`);
  the JPEG's UserComment JSON adds `extra.airs` and `extraMetadata` (the request: prompt,
  negative, steps, CFG, sampler, seed, size, resources). An upscale-only graph has no sampler:
  the request is the only record of how the source image was made.
- TensorArt: `ECHOCheckpointLoaderSimple` loads `EMS-<id>-EMS.safetensors`; the PNG's
  `generation_data` chunk names the model (`baseModel.modelFileName`) and gives its SHA-256.

The id goes to `model_hash`; `model` holds a human name only, where any field carries one.
"""

from __future__ import annotations

import re
from typing import Any

from ..model import GenerationMetadata, Lora
from ..values import loads_json, loads_json_dict, lora_basename, to_float, to_int, to_steps, to_str

_CIVITAI_URN = re.compile(r"^urn:air:[\w.\-]+:[\w\-]+:civitai:(\d+)@(\d+)", re.IGNORECASE)
_TENSORART_ID = re.compile(r"^(EMS-\d+)(?:-EMS)?(?:\.\w+)?$", re.IGNORECASE)


def apply(meta: GenerationMetadata, texts: dict[str, str], graph_json: Any) -> None:
    _civitai(meta, graph_json)
    _tensorart(meta, texts)


def _civitai(meta: GenerationMetadata, graph_json: Any) -> None:
    extra_meta: dict[str, Any] | None = None
    airs: list[str] = []
    if isinstance(graph_json, dict):
        raw_extra = graph_json.get("extraMetadata")
        extra_meta = loads_json_dict(raw_extra) if isinstance(raw_extra, str) else (
            raw_extra if isinstance(raw_extra, dict) else None)
        extra = graph_json.get("extra")
        if isinstance(extra, dict) and isinstance(extra.get("airs"), list):
            airs = [a for a in extra["airs"] if isinstance(a, str)]
    urn_model = meta.model is not None and _CIVITAI_URN.match(meta.model) is not None
    if extra_meta is None and not airs and not urn_model:
        return
    meta.generator, meta.generator_detail = "civitai", "Civitai (ComfyUI graph)"
    if extra_meta is not None:
        _fill_from_request(meta, extra_meta)
    urn = meta.model if urn_model else next((a for a in airs if ":checkpoint:" in a), None)
    if urn is not None and _CIVITAI_URN.match(urn):
        # The id is no name: model stays empty unless the request names the model.
        meta.model_hash = meta.model_hash or urn
        meta.model = _resource_name(extra_meta, _CIVITAI_URN.match(urn))


def _fill_from_request(meta: GenerationMetadata, request: dict[str, Any]) -> None:
    meta.prompt = meta.prompt or to_str(request.get("prompt"))
    meta.negative_prompt = meta.negative_prompt or to_str(request.get("negativePrompt"))
    if meta.seed is None:
        meta.seed = to_int(request.get("seed"))
    if meta.steps is None:
        meta.steps = to_steps(request.get("steps"))
    if meta.cfg_scale is None:
        meta.cfg_scale = to_float(request.get("cfgScale"))
    meta.sampler = meta.sampler or to_str(request.get("sampler"))
    if meta.width is None and meta.height is None:
        width, height = to_int(request.get("width")), to_int(request.get("height"))
        if width and height and width > 0 and height > 0:
            meta.width, meta.height = width, height


def _resource_name(request: dict[str, Any] | None, urn: re.Match[str] | None) -> str | None:
    """The model name a Civitai request lists for the URN's version id, if it lists one."""
    if request is None or urn is None:
        return None
    for resource in request.get("resources") or []:
        if not isinstance(resource, dict):
            continue
        if str(resource.get("modelVersionId")) == urn.group(2):
            return to_str(resource.get("modelName") or resource.get("name"))
    return None


def _tensorart(meta: GenerationMetadata, texts: dict[str, str]) -> None:
    data = loads_json_dict(texts.get("generation_data"))
    ems = _TENSORART_ID.match(meta.model or "")
    if data is None and ems is None:
        return
    meta.generator_detail = "TensorArt (ComfyUI graph)"
    if ems is not None:  # an internal id, not a name
        meta.model_hash = meta.model_hash or ems.group(1)
        meta.model = None
    if data is None:
        return
    base = data.get("baseModel")
    if isinstance(base, dict):
        name = to_str(base.get("modelFileName")) or to_str(base.get("label"))
        if name:
            meta.model = name
        meta.model_hash = to_str(base.get("hash")) or meta.model_hash
    meta.prompt = meta.prompt or to_str(data.get("prompt"))
    meta.negative_prompt = meta.negative_prompt or to_str(data.get("negativePrompt"))
    if meta.steps is None:
        meta.steps = to_steps(data.get("steps"))
    if meta.cfg_scale is None:
        meta.cfg_scale = to_float(data.get("cfgScale"))
    if meta.seed is None:
        seed = to_int(data.get("seed"))
        meta.seed = seed if seed is not None and seed >= 0 else None
    meta.sampler = meta.sampler or to_str(data.get("ksamplerName"))
    if not meta.loras:
        for key in ("models", "loras"):
            for entry in loads_json(data.get(key)) if isinstance(data.get(key), str) else (
                    data.get(key) or []):
                if isinstance(entry, dict) and str(entry.get("type", "LORA")).upper() == "LORA":
                    name = to_str(entry.get("modelFileName") or entry.get("label"))
                    if name:
                        meta.loras.append(Lora(lora_basename(name), to_float(entry.get("weight"))))
