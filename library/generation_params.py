"""Back to the generator: what the app's "Copy generation parameters", "Copy ComfyUI
workflow" and "Queue in ComfyUI" produce (no Qt).

- `infotext`: AUTOMATIC1111's parameter text, which A1111, Forge and SD.Next paste into
  txt2img ("Read generation parameters"). An image written by that family carries it
  already: it is copied verbatim. Otherwise it is built from the stored fields in A1111's own
  order and quoting (modules/processing.py `create_infotext`: prompt, `Negative prompt:`,
  then `Steps, Sampler, Schedule type, CFG scale, Seed, Size, Model hash, Model`; a value
  holding `,`, `:` or a newline is JSON-quoted), with ComfyUI sampler and scheduler names
  mapped to A1111's and LoRAs added to the prompt as `<lora:name:weight>`.
- `comfyui_workflow`: the editor graph ComfyUI embedded (what ComfyUI loads on paste), or
  its API prompt graph when only that was saved.
- `queue_prompt`: POST the API prompt graph to a ComfyUI server's `/prompt` (stdlib urllib;
  only ever to the address in Settings, and only when a person asks).
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from pathlib import PurePath
from typing import Any

from library.metadata.a1111 import parse_infotext
from library.metadata.comfyui import graph_texts
from library.metadata.comfyui.graph import api_graph
from library.metadata.values import loads_json_dict

A1111_FAMILIES = frozenset({"a1111", "forge", "sdnext", "civitai"})
# Where the reader finds an infotext (library.metadata.reader._PARAMETER_SOURCES).
INFOTEXT_SOURCES = ("parameters", "EXIF:UserComment", "JPEG:comment", "Comment",
                    "EXIF:ImageDescription")
MODEL_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".sft", ".gguf")
# ComfyUI (k-diffusion) sampler names → A1111's labels (sd_samplers_kdiffusion.py).
SAMPLER_NAMES = {
    "euler": "Euler", "euler_ancestral": "Euler a", "heun": "Heun", "dpm_2": "DPM2",
    "dpm_2_ancestral": "DPM2 a", "lms": "LMS", "dpm_fast": "DPM fast",
    "dpm_adaptive": "DPM adaptive", "dpmpp_2s_ancestral": "DPM++ 2S a",
    "dpmpp_sde": "DPM++ SDE", "dpmpp_2m": "DPM++ 2M", "dpmpp_2m_sde": "DPM++ 2M SDE",
    "dpmpp_3m_sde": "DPM++ 3M SDE", "ddim": "DDIM", "uni_pc": "UniPC", "lcm": "LCM",
    "restart": "Restart", "heunpp2": "Heun++ 2",
}
SCHEDULER_NAMES = {
    "karras": "Karras", "exponential": "Exponential", "sgm_uniform": "SGM Uniform",
    "simple": "Simple", "normal": "Normal", "ddim_uniform": "DDIM", "beta": "Beta",
    "kl_optimal": "KL Optimal", "polyexponential": "Polyexponential",
    "align_your_steps": "Align Your Steps",
}
QUEUE_TIMEOUT_S = 10.0
MAX_RESPONSE_BYTES = 1024 * 1024


class ComfyUIError(Exception):
    """The prompt could not be queued; the message says why, for the status bar."""


# --- A1111 infotext -------------------------------------------------------------------------

def quote(value: object) -> str:
    """A1111's quoting of one parameter value (infotext_utils.quote)."""
    text = str(value)
    if "," not in text and "\n" not in text and ":" not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


def _number(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _model_name(model: str) -> str:
    name = PurePath(model.replace("\\", "/")).name
    for suffix in MODEL_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def infotext(fields: Mapping[str, Any], loras: Sequence[tuple[str, float | None]] = (),
             raw: Mapping[str, str] | None = None) -> str | None:
    """The A1111 parameter text of one image, or None when nothing is known."""
    raw = raw or {}
    if fields.get("generator") in A1111_FAMILIES:
        for key in INFOTEXT_SOURCES:
            text = raw.get(key)
            if text and parse_infotext(text) is not None:
                return text.strip()
    prompt = str(fields.get("prompt") or "")
    present = {m.group(1).lower() for m in re.finditer(r"<lora:([^:>]+)", prompt)}
    tokens = [f"<lora:{_model_name(name)}:{_number(weight if weight is not None else 1.0)}>"
              for name, weight in loras if _model_name(name).lower() not in present]
    if tokens:
        prompt = (prompt.rstrip() + (", " if prompt.strip() else "") + ", ".join(tokens))
    params: list[tuple[str, object]] = []
    if fields.get("steps") is not None:
        params.append(("Steps", fields["steps"]))
    if fields.get("sampler"):
        params.append(("Sampler", SAMPLER_NAMES.get(fields["sampler"], fields["sampler"])))
    if fields.get("scheduler"):
        params.append(("Schedule type", SCHEDULER_NAMES.get(fields["scheduler"],
                                                            fields["scheduler"])))
    if fields.get("cfg_scale") is not None:
        params.append(("CFG scale", _number(fields["cfg_scale"])))
    if fields.get("seed") not in (None, ""):
        params.append(("Seed", fields["seed"]))
    if fields.get("width") and fields.get("height"):
        params.append(("Size", f"{fields['width']}x{fields['height']}"))
    if fields.get("model_hash"):
        params.append(("Model hash", fields["model_hash"]))
    if fields.get("model"):
        params.append(("Model", _model_name(str(fields["model"]))))
    if not prompt.strip() and not params:
        return None
    negative = fields.get("negative_prompt")
    text = prompt + (f"\nNegative prompt: {negative}" if negative else "")
    if params:
        text += "\n" + ", ".join(f"{key}: {quote(value)}" for key, value in params)
    return text.strip()


# --- ComfyUI --------------------------------------------------------------------------------

def comfyui_workflow(raw: Mapping[str, str]) -> tuple[str, str] | None:
    """(JSON text, "workflow" or "API prompt") of the graph to paste into ComfyUI."""
    _prompt, workflow = graph_texts(dict(raw))
    workflow_data = loads_json_dict(workflow)
    if workflow_data is not None and isinstance(workflow_data.get("nodes"), list):
        return json.dumps(workflow_data, ensure_ascii=False), "workflow"
    graph = comfyui_prompt(raw)
    if graph is not None:
        return json.dumps(graph, ensure_ascii=False), "API prompt"
    return None


def comfyui_prompt(raw: Mapping[str, str]) -> dict[str, Any] | None:
    """The API prompt graph (node id → class_type and inputs) ComfyUI executed, as saved."""
    prompt, _workflow = graph_texts(dict(raw))
    data = loads_json_dict(prompt)
    if data is None:  # some JPEG savers put {"prompt": {...}} into UserComment
        data = loads_json_dict(raw.get("EXIF:UserComment"))
    if data is not None and isinstance(data.get("prompt"), dict):
        data = data["prompt"]
    if data is None or api_graph(data) is None:
        return None
    return data


def prompt_endpoint(base_url: str) -> str:
    """`<server>/prompt` for a ComfyUI address such as http://127.0.0.1:8188."""
    parts = urllib.parse.urlsplit(base_url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ComfyUIError(f"the ComfyUI address {base_url!r} is not an http(s) URL "
                           "(Settings → Sharing)")
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc,
                                    parts.path.rstrip("/") + "/prompt", "", ""))


def queue_prompt(base_url: str, graph: Mapping[str, Any],
                 timeout: float = QUEUE_TIMEOUT_S) -> str:
    """Queue `graph` on the ComfyUI server; returns ComfyUI's prompt id."""
    endpoint = prompt_endpoint(base_url)
    body = json.dumps({"prompt": graph, "client_id": uuid.uuid4().hex}).encode("utf-8")
    request = urllib.request.Request(endpoint, data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = json.loads(response.read(MAX_RESPONSE_BYTES) or b"{}")
    except urllib.error.HTTPError as exc:
        raise ComfyUIError(f"ComfyUI refused the prompt: {_error_text(exc)}") from exc
    except urllib.error.URLError as exc:
        raise ComfyUIError(f"cannot reach ComfyUI at {base_url}: {exc.reason}") from exc
    except (OSError, ValueError) as exc:  # timeouts, resets, a non-JSON answer
        raise ComfyUIError(f"no usable answer from ComfyUI at {base_url}: {exc}") from exc
    prompt_id = answer.get("prompt_id") if isinstance(answer, dict) else None
    if not prompt_id:
        raise ComfyUIError(f"ComfyUI at {base_url} did not return a prompt id")
    return str(prompt_id)


def _error_text(exc: urllib.error.HTTPError) -> str:
    try:
        answer = json.loads(exc.read(MAX_RESPONSE_BYTES) or b"{}")
    except (OSError, ValueError):
        answer = {}
    error = answer.get("error") if isinstance(answer, dict) else None
    if isinstance(error, dict) and error.get("message"):
        detail = error.get("details") or ""
        return f"{error['message']}" + (f" ({detail})" if detail else "")
    return f"HTTP {exc.code}"
