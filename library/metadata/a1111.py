"""AUTOMATIC1111-style "infotext" (also Forge, reForge, SD.Next, Civitai, Fooocus' a1111
scheme, and ComfyUI metadata-saver nodes that imitate it).

    prompt line(s)
    Negative prompt: negative line(s)          (optional)
    Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512, Model: x, ...

Values containing `,` `:` or newlines are JSON-quoted; extensions add unquoted JSON objects
or arrays (`Hashes: {...}`, `Civitai resources: [...]`), so splitting balances brackets.
"""

from __future__ import annotations

import json
import re

from .model import GenerationMetadata, Lora
from .values import lora_basename, parse_size, to_float, to_int, to_steps, to_str

NEGATIVE_PREFIX = "Negative prompt:"
_KEY_RE = re.compile(r"\s*([A-Za-z][\w \-/().+]{0,60}?):\s?")
# Keys whose presence marks a line as the parameter line rather than more prompt text.
_PARAM_MARKERS = {"steps", "sampler", "seed", "cfg scale", "size", "model", "model hash"}
_LORA_TAG_RE = re.compile(r"<(?:lora|lyco):([^:<>]+)(?::([^:<>]*))?(?::[^<>]*)?>", re.IGNORECASE)
_MAX_PARAMS_LINE = 1024 * 1024


def split_params(line: str) -> dict[str, str]:
    """'k: v, k2: "quoted, value", k3: {"json": 1}' -> {k: v, ...}. Never raises."""
    params: dict[str, str] = {}
    pos, end = 0, min(len(line), _MAX_PARAMS_LINE)
    last_key: str | None = None
    while pos < end:
        match = _KEY_RE.match(line, pos)
        if not match:
            # No `key:` here: an unquoted value that itself contained ", " (old A1111 and
            # some extensions). Glue the fragment back onto the previous value.
            stop = _find_comma(line, pos, end)
            fragment = line[pos:stop].strip()
            if last_key is not None and fragment:
                params[last_key] = f"{params[last_key]}, {fragment}"
            pos = stop + 1
            continue
        key = match.group(1).strip()
        pos = match.end()
        value, pos = _read_value(line, pos, end)
        if key not in params:
            params[key] = value
        last_key = key
        # skip the separator
        while pos < end and line[pos] in ", ":
            pos += 1
    return params


def _read_value(line: str, pos: int, end: int) -> tuple[str, int]:
    if pos < end and line[pos] == '"':
        close = _skip_string(line, pos, end)
        quoted = line[pos:close]
        try:
            return str(json.loads(quoted)), close
        except ValueError:
            return quoted.strip('"'), close
    if pos < end and line[pos] in "{[":
        balanced_end = _balanced(line, pos, end)
        if balanced_end is not None:
            return line[pos:balanced_end], balanced_end
    stop = _find_comma(line, pos, end)
    return line[pos:stop].strip(), stop


def _skip_string(line: str, pos: int, end: int) -> int:
    """Index just past the JSON string starting at pos (or end if unterminated)."""
    i = pos + 1
    while i < end:
        ch = line[i]
        if ch == "\\":
            i += 2
            continue
        if ch == '"':
            return i + 1
        i += 1
    return end


def _balanced(line: str, pos: int, end: int) -> int | None:
    depth, i = 0, pos
    while i < end:
        ch = line[i]
        if ch == '"':
            i = _skip_string(line, i, end)
            continue
        if ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return None


def _find_comma(line: str, pos: int, end: int) -> int:
    stop = line.find(",", pos, end)
    return end if stop < 0 else stop


def _is_params_line(params: dict[str, str]) -> bool:
    keys = {key.lower() for key in params}
    return len(params) >= 2 and bool(keys & _PARAM_MARKERS)


def parse_infotext(text: str) -> tuple[GenerationMetadata, dict[str, str]] | None:
    """Infotext -> (metadata without family, the key/value parameters); None if not infotext."""
    if not isinstance(text, str) or not text.strip():
        return None
    lines = text.strip("\n\r\ufeff").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        return None
    params = split_params(lines[-1].strip())
    if not _is_params_line(params):
        return None
    body = lines[:-1]
    prompt_lines: list[str] = []
    negative_lines: list[str] | None = None
    for line in body:
        if negative_lines is None and line.startswith(NEGATIVE_PREFIX):
            negative_lines = [line[len(NEGATIVE_PREFIX):].lstrip(" ")]
        elif negative_lines is not None:
            negative_lines.append(line)
        else:
            prompt_lines.append(line)
    meta = GenerationMetadata()
    meta.prompt = _join(prompt_lines)
    meta.negative_prompt = _join(negative_lines or [])
    fill_from_params(meta, params)
    meta.loras = extract_loras(meta.prompt or "", params)
    return meta, params


def _join(lines: list[str]) -> str | None:
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    text = "\n".join(lines)
    return text if text.strip() else None


def _get(params: dict[str, str], *names: str) -> str | None:
    lowered = {key.lower(): value for key, value in params.items()}
    for name in names:
        value = lowered.get(name.lower())
        if value is not None and value.strip():
            return value
    return None


def fill_from_params(meta: GenerationMetadata, params: dict[str, str]) -> None:
    meta.steps = to_steps(_get(params, "Steps"))
    meta.sampler = to_str(_get(params, "Sampler"))
    meta.scheduler = to_str(_get(params, "Schedule type", "Scheduler"))
    meta.cfg_scale = to_float(_get(params, "CFG scale", "Guidance Scale"))
    meta.seed = to_int(_get(params, "Seed"))
    meta.width, meta.height = parse_size(_get(params, "Size") or "")
    meta.model = to_str(_get(params, "Model"))
    meta.model_hash = to_str(_get(params, "Model hash"))
    if meta.model is None:
        meta.model = _civitai_checkpoint(_get(params, "Civitai resources"))


def _civitai_checkpoint(resources: str | None) -> str | None:
    """Civitai's generator names the checkpoint only in `Civitai resources: [{...}]`."""
    try:
        items = json.loads(resources) if resources else None
    except (ValueError, RecursionError):
        return None
    if not isinstance(items, list):
        return None
    for item in items:
        if isinstance(item, dict) and item.get("type") == "checkpoint":
            return to_str(item.get("modelName"))
    return None


def extract_loras(prompt: str, params: dict[str, str]) -> list[Lora]:
    """LoRAs from `<lora:name:weight>` tags, `Lora hashes`, and saver-node `Lora_N` keys."""
    loras: list[Lora] = []
    seen: set[str] = set()

    def add(name: str, weight: float | None) -> None:
        name = lora_basename(name)
        if name and name.lower() != "none" and name not in seen:
            seen.add(name)
            loras.append(Lora(name=name, weight=weight))

    for match in _LORA_TAG_RE.finditer(prompt[:_MAX_PARAMS_LINE]):
        add(match.group(1).strip(), to_float(match.group(2)))
    # ComfyUI SaveImageWithMetaData: "Lora_0 Model name: x.safetensors, Lora_0 Strength model: 1"
    indexed = sorted({int(m.group(1)) for key in params
                      if (m := re.fullmatch(r"Lora_(\d{1,3}) Model name", key))})
    for index in indexed:
        add(params[f"Lora_{index} Model name"], to_float(params.get(f"Lora_{index} Strength model")))
    # Draw Things infotext: "LoRA Model: x.ckpt, LoRA Weight: 0.8"
    if (name := _get(params, "LoRA Model")) is not None:
        add(name, to_float(_get(params, "LoRA Weight")))
    hashes = _get(params, "Lora hashes")
    if hashes:
        for item in hashes.split(","):
            name, sep, _hash = item.rpartition(":")
            if sep and name.strip():
                add(name.strip(), None)
    return loras


def family_of(params: dict[str, str]) -> tuple[str, str]:
    """(family, human detail) from the fork-specific keys."""
    version = _get(params, "Version") or ""
    app = _get(params, "App") or ""
    if app.lower().startswith("sd.next"):
        return "sdnext", f"SD.Next {version}".strip()
    if version.lower().startswith("comfyui") or any(
            re.fullmatch(r"Lora_\d+ Model name", key) for key in params):
        return "comfyui", "ComfyUI (A1111-style parameters)"
    if version.lower().startswith("fooocus"):
        return "fooocus", version
    if _get(params, "Civitai resources", "Civitai metadata") is not None:
        return "civitai", "Civitai"
    if re.match(r"f\d", version) or version.lower() in ("neo", "classic") or "forge" in version.lower():
        return "forge", f"Forge {version}"
    return "a1111", f"AUTOMATIC1111 {version}".strip()
