"""Defensive coercion of values found in metadata.

Everything here accepts arbitrary input (metadata is attacker-controlled text) and returns
None instead of raising, so a parser can write `meta.seed = to_int(x)` without guards.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

# Largest JSON document we hand to json.loads. ComfyUI workflows reach a few MiB; beyond
# this the text is kept in `raw` but not interpreted.
MAX_JSON_CHARS = 16 * 1024 * 1024

_INT_RE = re.compile(r"[+-]?\d{1,40}")  # seeds reach 2**64 (20 digits); 40 is generous
_FLOAT_RE = re.compile(r"[+-]?(\d{1,30}(\.\d{0,30})?|\.\d{1,30})([eE][+-]?\d{1,3})?")
_SIZE_RE = re.compile(r"(\d{1,6})\s*[x×*,]\s*(\d{1,6})")


def to_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() else None
    if isinstance(value, str):
        text = value.strip()
        if _INT_RE.fullmatch(text):
            return int(text)
        number = to_float(text)
        if number is not None and number.is_integer():
            return int(number)
    return None


def to_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:  # int too large for a float
            return None
        return number if math.isfinite(number) else None
    if isinstance(value, str):
        text = value.strip()
        if _FLOAT_RE.fullmatch(text):
            number = float(text)
            return number if math.isfinite(number) else None
    return None


def to_str(value: Any) -> str | None:
    """A non-blank string, or a number rendered as text; anything else is None."""
    if isinstance(value, str):
        return value if value.strip() else None
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return str(value)
    return None


def to_positive_int(value: Any, limit: int = 1 << 20) -> int | None:
    number = to_int(value)
    return number if number is not None and 0 < number <= limit else None


def to_steps(value: Any) -> int | None:
    number = to_int(value)
    return number if number is not None and 0 <= number <= 100_000 else None


def parse_size(value: Any) -> tuple[int | None, int | None]:
    """'1024x768', '1024 x 768', '(1024, 768)', '1024 x 1024 (square)' -> (w, h)."""
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return to_positive_int(value[0]), to_positive_int(value[1])
    if not isinstance(value, str):
        return None, None
    match = _SIZE_RE.search(value[:200])
    if not match:
        return None, None
    return to_positive_int(match.group(1)), to_positive_int(match.group(2))


def loads_json(text: Any) -> Any:
    """json.loads for untrusted text: None on any failure, including absurd nesting."""
    if not isinstance(text, str):
        return None
    stripped = text.strip()
    if not stripped or stripped[0] not in "{[" or len(stripped) > MAX_JSON_CHARS:
        return None
    try:
        return json.loads(stripped)
    except (ValueError, RecursionError):
        return None


def loads_json_dict(text: Any) -> dict[str, Any] | None:
    value = loads_json(text)
    return value if isinstance(value, dict) else None


def first(mapping: dict[str, Any], *keys: str) -> Any:
    """The first present, non-None value among keys."""
    for key in keys:
        value = mapping.get(key)
        if value is not None:
            return value
    return None


def lora_basename(name: str) -> str:
    """'SDXL\\detail_v6.safetensors' -> 'detail_v6' so LoRAs group across generators."""
    base = re.split(r"[\\/]", name.strip())[-1]
    return re.sub(r"\.(safetensors|ckpt|pt|pth|bin)$", "", base, flags=re.IGNORECASE) or name


def split_model_hash(source: str) -> tuple[str, str | None]:
    """NovelAI's 'Stable Diffusion XL C1E1DE52' -> ('Stable Diffusion XL', 'C1E1DE52')."""
    match = re.fullmatch(r"(.*\S)\s+([0-9A-Fa-f]{8})", source.strip())
    if match:
        return match.group(1), match.group(2)
    return source.strip(), None
