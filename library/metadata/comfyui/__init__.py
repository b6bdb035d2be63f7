"""ComfyUI: read prompt, sampler settings, model and LoRAs from whatever graph a file carries.

Sources, best first: the executed API graph (`prompt` chunk; WebP EXIF Model `prompt:`;
JPEG UserComment JSON or `Prompt:` text), the editor workflow (`workflow` chunk ...) for what
the API graph lacks (output names, shown texts, widget values, files that carry only the
workflow), then the A1111-style text some saver nodes add, for what the graph leaves open
(a wildcard drawn at run time, a CSV style, an LLM-written prompt). Civitai and TensorArt
ids are kept (`services`).

    meta = parse_texts(texts)        # the container texts of one file -> GenerationMetadata
    meta = parse_graph(api_dict)     # one API graph (tests, tools)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import a1111
from ..model import GenerationMetadata
from ..values import (
    MAX_JSON_CHARS,
    loads_json,
    loads_json_dict,
    to_float,
    to_int,
    to_steps,
    to_str,
)
from . import services
from .graph import Budget, Graph, api_graph
from .sampling import Sampling
from .walk import Walker, tag_loras
from .workflow import merge_editor_details, workflow_graph

__all__ = ["api_graph", "parse_graph", "parse_texts", "workflow_graph"]

# Where the graphs hide outside PNG chunks: core WebP saver (Model = "prompt:{...}",
# Make = "workflow:{...}"), save-image-extended JPEG (ImageDescription = "Workflow: {...}",
# Make = "Prompt: {...}").
_PREFIX_SOURCES = ("EXIF:Model", "EXIF:Make", "EXIF:ImageDescription", "EXIF:UserComment",
                   "JPEG:comment")
# Where saver nodes put A1111-style text next to the graph.
_INFOTEXT_SOURCES = ("parameters", "EXIF:UserComment", "JPEG:comment", "Comment",
                     "EXIF:ImageDescription")
_FIELDS = ("seed", "steps", "cfg_scale", "sampler", "scheduler", "width", "height", "model")


@dataclass
class _Reading:
    meta: GenerationMetadata
    prompt_complete: bool = True
    negative_complete: bool = True
    has_sampler: bool = False


def parse_graph(data: Any) -> GenerationMetadata:
    """Metadata from one API graph (a dict as in the `prompt` chunk, or a Graph)."""
    graph = data if isinstance(data, Graph) else api_graph(data)
    meta = GenerationMetadata(generator="comfyui", generator_detail="ComfyUI")
    if graph is None:
        return meta
    reading = _read(graph)
    _finish(reading.meta, graph.budget)
    return reading.meta


def graph_texts(texts: dict[str, str]) -> tuple[str | None, str | None]:
    """(API prompt graph, editor workflow) as the JSON texts ComfyUI embedded, wherever its
    savers put them; None where absent."""
    prompt_text, workflow_text = texts.get("prompt"), texts.get("workflow")
    for key in _PREFIX_SOURCES:
        head, sep, body = texts.get(key, "").partition(":")
        if sep and head.strip().lower() == "prompt" and prompt_text is None:
            prompt_text = body
        elif sep and head.strip().lower() == "workflow" and workflow_text is None:
            workflow_text = body
    return prompt_text, workflow_text


def parse_texts(texts: dict[str, str]) -> GenerationMetadata | None:
    """Metadata from a file's container texts, or None when they hold no ComfyUI graph."""
    prompt_text, workflow_text = graph_texts(texts)
    budget = Budget()
    prompt_json = loads_json(prompt_text) if prompt_text else None
    api = api_graph(prompt_json) if prompt_json is not None else None
    editor_json: Any = None
    if api is None:  # JPEG savers: UserComment = {"prompt": {...}, "workflow": {...}} or the graph
        comment = loads_json_dict(texts.get("EXIF:UserComment"))
        if comment is not None:
            prompt_json = comment
            api = api_graph(comment)
            workflow = comment.get("workflow")
            if workflow_text is None and isinstance(workflow, dict):
                editor_json = workflow
            elif workflow_text is None and isinstance(workflow, str):
                workflow_text = workflow
    if api is not None:
        # The API graph alone usually says everything; the editor workflow (often the larger
        # text) is only decoded when something is missing.
        api.budget = budget
        reading = _read(api)
        if _lacks_something(reading) and not budget.exhausted:
            editor = _editor(editor_json, workflow_text, budget)
            if editor is not None:
                merge_editor_details(api, editor)  # output names can change what is found
                reading = _read(api)
                if _lacks_something(reading):
                    _fill(reading, _read(editor))
    else:
        editor = _editor(editor_json, workflow_text, budget)
        if editor is None:
            if max(len(prompt_text or ""), len(workflow_text or "")) < MAX_JSON_CHARS:
                return None
            meta = GenerationMetadata(generator="comfyui", generator_detail="ComfyUI")
            budget.note(f"graph text too large to read (over {MAX_JSON_CHARS // 2**20} MiB)")
            _finish(meta, budget)
            return meta
        reading = _read(editor)
        reading.meta.generator_detail = "ComfyUI (editor workflow only)"
    meta = reading.meta
    _fill_from_infotext(reading, texts)
    services.apply(meta, texts, prompt_json)
    _finish(meta, budget)
    return meta


def _editor(editor_json: Any, workflow_text: str | None, budget: Budget) -> Graph | None:
    if editor_json is None and workflow_text:
        editor_json = loads_json(workflow_text)
    return workflow_graph(editor_json, budget) if editor_json is not None else None


# --- one graph ------------------------------------------------------------------------------

def _read(graph: Graph) -> _Reading:
    meta = GenerationMetadata(generator="comfyui", generator_detail="ComfyUI")
    walker = Walker(graph)
    sampling = Sampling(walker)
    found = sampling.first_pass()
    if found is None:
        return _Reading(meta)
    sampler, output = found
    sources = sampling.settings_sources(sampler)
    meta.seed = to_int(sampling.setting(sources, "seed"))
    if meta.seed is not None and meta.seed < 0:
        meta.seed = None  # -1 and friends: "random" in an editor workflow, not a seed
    meta.steps = to_steps(sampling.setting(sources, "steps"))
    meta.cfg_scale = to_float(sampling.setting(sources, "cfg"))
    meta.sampler = to_str(sampling.sampler_name(sources))
    meta.scheduler = to_str(sampling.scheduler(sources))

    positive_link = sampling.conditioning_link(sources, "positive")
    negative_link = sampling.conditioning_link(sources, "negative")
    positives, prompt_complete = walker.texts(positive_link, "positive")
    negatives, negative_complete = walker.texts(negative_link, "negative")
    meta.prompt = "\n".join(positives) if positives else None
    meta.negative_prompt = "\n".join(negatives) if negatives else None
    if meta.cfg_scale is None and positive_link is not None:
        meta.cfg_scale = sampling.flux_guidance(positive_link)

    meta.model, meta.loras = walker.model(sampling.model_link(sources))
    for lora in tag_loras(meta.prompt or ""):
        if all(lora.name != known.name for known in meta.loras):
            meta.loras.append(lora)
    meta.width, meta.height = sampling.size(sampler)
    final = sampling.final_size(sampler, output, (meta.width, meta.height))
    if final is not None:
        meta.final_width, meta.final_height = final
    return _Reading(meta, prompt_complete, negative_complete, has_sampler=True)


def _lacks_something(reading: _Reading) -> bool:
    meta = reading.meta
    return (not reading.has_sampler or meta.prompt is None or not reading.prompt_complete
            or any(getattr(meta, name) is None for name in _FIELDS))


def _fill(reading: _Reading, other: _Reading) -> None:
    """Fill what the API graph left open from the editor workflow's reading."""
    meta, extra = reading.meta, other.meta
    if extra.prompt and (meta.prompt is None or not reading.prompt_complete and other.prompt_complete):
        meta.prompt, reading.prompt_complete = extra.prompt, other.prompt_complete
    if extra.negative_prompt and (meta.negative_prompt is None or
                                  not reading.negative_complete and other.negative_complete):
        meta.negative_prompt, reading.negative_complete = extra.negative_prompt, other.negative_complete
    for name in _FIELDS + ("final_width", "final_height"):
        if getattr(meta, name) is None:
            setattr(meta, name, getattr(extra, name))
    if not meta.loras:
        meta.loras = extra.loras
    reading.has_sampler = reading.has_sampler or other.has_sampler


def _fill_from_infotext(reading: _Reading, texts: dict[str, str]) -> None:
    """A saver node's A1111-style text resolves what the graph could not (drawn wildcards,
    style lookups); the graph wins wherever it is complete."""
    meta = reading.meta
    for key in _INFOTEXT_SOURCES:
        text = texts.get(key)
        if not text or text.lstrip().startswith(("{", "[")) or text.lower().startswith(
                ("prompt:", "workflow:")):
            continue
        parsed = a1111.parse_infotext(text)
        if parsed is None:
            continue
        info = parsed[0]
        if info.prompt and (meta.prompt is None or not reading.prompt_complete):
            meta.prompt = info.prompt
        if info.negative_prompt and (meta.negative_prompt is None or not reading.negative_complete):
            meta.negative_prompt = info.negative_prompt
        for name in _FIELDS + ("model_hash",):
            if getattr(meta, name) is None:
                setattr(meta, name, getattr(info, name))
        if not meta.loras:
            meta.loras = info.loras
        return


def _finish(meta: GenerationMetadata, budget: Budget) -> None:
    notes = []
    if meta.final_width and meta.final_height:
        notes.append(f"final size {meta.final_width}x{meta.final_height}")
    if budget.reason is not None:
        meta.walk_incomplete = budget.reason
        notes.append(f"graph walk incomplete: {budget.reason}")
    if notes:
        base = meta.generator_detail or "ComfyUI"
        meta.generator_detail = f"{base}; {'; '.join(notes)}"
