"""InvokeAI: `Dream` (<=2.2), `sd-metadata` (2.3) and `invokeai_metadata` (>=3) chunks."""

from __future__ import annotations

import re
import shlex
from typing import Any

from .model import GenerationMetadata, Lora
from .values import (
    first,
    loads_json_dict,
    lora_basename,
    to_float,
    to_int,
    to_positive_int,
    to_steps,
    to_str,
)

# InvokeAI 2.x writes negative prompts inline in square brackets: "cat [blurry, dog]".
_NEGATIVE_RE = re.compile(r"\[([^\[\]]*)\]")


def split_bracket_negative(prompt: str) -> tuple[str | None, str | None]:
    negatives = [m.group(1).strip() for m in _NEGATIVE_RE.finditer(prompt)]
    positive = _NEGATIVE_RE.sub("", prompt).strip()
    negative = ", ".join(n for n in negatives if n)
    return positive or None, negative or None


def _base(detail: str) -> GenerationMetadata:
    return GenerationMetadata(generator="invokeai", generator_detail=detail)


def parse_invokeai_metadata(text: str) -> GenerationMetadata | None:
    """InvokeAI >= 3. Model name: `model.model_name` in v3, `model.name` in v4+."""
    data = loads_json_dict(text)
    if data is None:
        return None
    found = data.get("model")
    model: dict[str, Any] = found if isinstance(found, dict) else {}
    if data.get("app_version"):
        detail = f"InvokeAI {data['app_version']}"
    else:
        detail = "InvokeAI 3" if "model_name" in model else "InvokeAI 4+"
    meta = _base(detail)
    meta.prompt = to_str(data.get("positive_prompt"))
    meta.negative_prompt = to_str(data.get("negative_prompt"))
    meta.seed = to_int(data.get("seed"))
    meta.steps = to_steps(data.get("steps"))
    meta.cfg_scale = to_float(data.get("cfg_scale"))
    # InvokeAI's "scheduler" is the sampling algorithm (euler, dpmpp_2m_k, ...).
    meta.sampler = to_str(data.get("scheduler"))
    meta.width = to_positive_int(data.get("width"))
    meta.height = to_positive_int(data.get("height"))
    meta.model = to_str(first(model, "name", "model_name"))
    meta.model_hash = to_str(model.get("hash"))
    meta.loras = _loras(data.get("loras"))
    return meta


def _loras(value: Any) -> list[Lora]:
    loras: list[Lora] = []
    if not isinstance(value, list):
        return loras
    for item in value[:200]:
        if not isinstance(item, dict):
            continue
        ref = item.get("model") or item.get("lora")  # v4+: model{name}, v3: lora{model_name}
        name = to_str(first(ref, "name", "model_name")) if isinstance(ref, dict) else None
        if name:
            loras.append(Lora(lora_basename(name), to_float(item.get("weight"))))
    return loras


def parse_sd_metadata(text: str) -> GenerationMetadata | None:
    """InvokeAI 2.3 `sd-metadata` JSON."""
    data = loads_json_dict(text)
    if data is None:
        return None
    found = data.get("image")
    image: dict[str, Any] = found if isinstance(found, dict) else {}
    meta = _base(f"InvokeAI {data.get('app_version') or '2.3'}")
    prompt = image.get("prompt")
    if isinstance(prompt, list):  # [{"prompt": "...", "weight": 1.0}, ...]
        prompt = " ".join(p["prompt"] for p in prompt
                          if isinstance(p, dict) and isinstance(p.get("prompt"), str))
    if isinstance(prompt, str):
        meta.prompt, meta.negative_prompt = split_bracket_negative(prompt)
    meta.seed = to_int(image.get("seed"))
    meta.steps = to_steps(image.get("steps"))
    meta.cfg_scale = to_float(image.get("cfg_scale"))
    meta.sampler = to_str(image.get("sampler"))
    meta.width = to_positive_int(image.get("width"))
    meta.height = to_positive_int(image.get("height"))
    meta.model = to_str(data.get("model_weights"))
    meta.model_hash = to_str(data.get("model_hash"))
    return meta


_DREAM_FLAGS = {"-s": "steps", "-S": "seed", "-W": "width", "-H": "height", "-C": "cfg",
                "-A": "sampler", "--steps": "steps", "--seed": "seed", "--width": "width",
                "--height": "height", "--cfg_scale": "cfg", "--sampler": "sampler"}


def parse_dream(text: str) -> GenerationMetadata | None:
    """InvokeAI <= 2.2 `Dream`: '"prompt [negative]" -s 50 -S 42 -W 512 -H 768 -C 7.5 -A k_lms'."""
    if not isinstance(text, str) or not text.strip():
        return None
    try:
        tokens = shlex.split(text[:100_000])
    except ValueError:  # unbalanced quotes
        tokens = text[:100_000].split()
    if not tokens:
        return None
    values: dict[str, str] = {}
    prompt_parts: list[str] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        name = _DREAM_FLAGS.get(token)
        if name and index + 1 < len(tokens):
            values[name] = tokens[index + 1]
            index += 2
            continue
        if not token.startswith("-") and not values and index == len(prompt_parts):
            prompt_parts.append(token)  # the (quoted) prompt precedes the first flag
        index += 1
    meta = _base("InvokeAI 2 (Dream)")
    if prompt_parts:
        meta.prompt, meta.negative_prompt = split_bracket_negative(" ".join(prompt_parts))
    meta.steps = to_steps(values.get("steps"))
    meta.seed = to_int(values.get("seed"))
    meta.width = to_positive_int(values.get("width"))
    meta.height = to_positive_int(values.get("height"))
    meta.cfg_scale = to_float(values.get("cfg"))
    meta.sampler = to_str(values.get("sampler"))
    return meta
