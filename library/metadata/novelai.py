"""NovelAI: `Software`=NovelAI, `Description`=prompt, `Source`=model, `Comment`=JSON."""

from __future__ import annotations

from typing import Any

from .model import GenerationMetadata
from .values import (
    loads_json_dict,
    split_model_hash,
    to_float,
    to_int,
    to_positive_int,
    to_steps,
    to_str,
)


def looks_like_comment(data: dict[str, Any]) -> bool:
    """NovelAI's Comment JSON (used when only that JSON survives, e.g. WebP UserComment)."""
    return ("uc" in data or "v4_prompt" in data) and ("scale" in data or "steps" in data)


def _caption(block: Any) -> tuple[str | None, list[str]]:
    """v4 prompt block -> (base caption, character captions)."""
    if not isinstance(block, dict) or not isinstance(block.get("caption"), dict):
        return None, []
    caption = block["caption"]
    chars = [c.get("char_caption") for c in caption.get("char_captions") or []
             if isinstance(c, dict)]
    return to_str(caption.get("base_caption")), [c for c in chars if isinstance(c, str) and c.strip()]


def parse_novelai(texts: dict[str, str]) -> GenerationMetadata | None:
    comment = loads_json_dict(texts.get("Comment", "")) or {}
    if not comment and texts.get("Software", "").strip().lower() != "novelai":
        return None
    source = texts.get("Source", "").strip()
    meta = GenerationMetadata(generator="novelai", generator_detail=source or "NovelAI")
    base, characters = _caption(comment.get("v4_prompt"))
    prompt = to_str(comment.get("prompt")) or base or to_str(texts.get("Description"))
    if prompt and characters:
        # v4 character prompts are separate captions; keep them searchable with the prompt.
        prompt = "\n".join([prompt, *characters])
    meta.prompt = prompt
    negative_base, negative_chars = _caption(comment.get("v4_negative_prompt"))
    meta.negative_prompt = to_str(comment.get("uc")) or negative_base
    meta.seed = to_int(comment.get("seed"))
    meta.steps = to_steps(comment.get("steps"))
    meta.cfg_scale = to_float(comment.get("scale"))
    meta.sampler = to_str(comment.get("sampler"))
    meta.scheduler = to_str(comment.get("noise_schedule"))
    meta.width = to_positive_int(comment.get("width"))
    meta.height = to_positive_int(comment.get("height"))
    if source:
        meta.model, meta.model_hash = split_model_hash(source)
    return meta
