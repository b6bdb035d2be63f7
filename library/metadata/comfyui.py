"""ComfyUI: walk the executed API graph from the sampler that made the image.

The `prompt` chunk is `{node_id: {"class_type": str, "inputs": {...}}}`; an input is a
literal or a link `[source_id, output_index]` (ids may be strings like "4:1"). Graphs are
untrusted: links may dangle or form cycles, so every walk carries a visited set and a depth
bound, and the total number of node visits per walk is capped.

Which sampler: the saved image's chain is followed upstream from the output node; with
several samplers (hires fix, refiner, upscale passes) the *first pass* (a sampler whose
latent does not come from another sampler) provides seed/steps/cfg/prompt/model, which
matches what A1111 reports for a hires image.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from .model import GenerationMetadata, Lora
from .values import (
    first,
    loads_json,
    lora_basename,
    parse_size,
    to_float,
    to_int,
    to_positive_int,
    to_steps,
    to_str,
)

MAX_DEPTH = 64
MAX_VISITS = 200_000
MAX_NODES = 50_000

_SAMPLER_CLASSES = {"KSampler", "KSamplerAdvanced", "SamplerCustom", "SamplerCustomAdvanced"}
_TEXT_KEYS = ("text", "text_g", "text_l", "t5xxl", "clip_l", "populated_text", "wildcard_text")
# Keys under which value/primitive/string nodes keep their value, most specific first.
_VALUE_KEYS = ("value", "seed", "noise_seed", "text", "Text", "string", "String", "STRING",
               "int", "INT", "float", "number", "prompt", "ckpt_name", "unet_name")
_CKPT_KEYS = ("ckpt_name", "unet_name", "model_path", "base_ckpt_name")
# Inputs that never carry conditioning; not followed when looking for prompt text.
_NOT_CONDITIONING = {
    "clip", "model", "vae", "image", "images", "pixels", "mask", "control_net", "clip_vision",
    "clip_vision_output", "style_model", "upscale_model", "samples", "latent", "latent_image",
    "noise", "sampler", "sigmas", "lora_stack", "ipadapter", "controlnet",
}
_CONTROL_VALUES = {"fixed", "increment", "decrement", "randomize"}


def is_link(value: Any) -> bool:
    return (isinstance(value, list) and len(value) == 2 and isinstance(value[0], (str, int))
            and not isinstance(value[0], bool) and isinstance(value[1], int)
            and not isinstance(value[1], bool))


def load_api_graph(text: str) -> dict[str, dict[str, Any]] | None:
    """The API graph from a `prompt` chunk (or a wrapper around one), else None."""
    data = loads_json(text)
    if isinstance(data, dict) and isinstance(data.get("prompt"), dict):
        data = data["prompt"]
    return normalise_graph(data)


def normalise_graph(data: Any) -> dict[str, dict[str, Any]] | None:
    if not isinstance(data, dict) or len(data) > MAX_NODES:
        return None
    graph: dict[str, dict[str, Any]] = {}
    for node_id, node in data.items():
        if isinstance(node, dict) and isinstance(node.get("class_type"), str):
            inputs = node.get("inputs")
            graph[str(node_id)] = {"class_type": node["class_type"],
                                   "inputs": inputs if isinstance(inputs, dict) else {}}
    return graph or None


class _Walker:
    def __init__(self, graph: dict[str, dict[str, Any]]) -> None:
        self.graph = graph
        self.visits = 0

    # -- basics ------------------------------------------------------------------------------
    def target(self, link: Any) -> tuple[str, dict[str, Any]] | None:
        if not is_link(link):
            return None
        self.visits += 1
        if self.visits > MAX_VISITS:
            return None
        node_id = str(link[0])
        node = self.graph.get(node_id)
        return (node_id, node) if node is not None else None

    @staticmethod
    def inputs(node: dict[str, Any]) -> dict[str, Any]:
        return node["inputs"]

    def resolve(self, value: Any, depth: int = 0, seen: frozenset[str] = frozenset()) -> Any:
        """A literal, following links into primitive / value / string nodes."""
        if not is_link(value):
            return value
        found = self.target(value)
        if found is None or depth > MAX_DEPTH or found[0] in seen:
            return None
        node_id, node = found
        seen = seen | {node_id}
        inputs = self.inputs(node)
        for key in _VALUE_KEYS:
            if key in inputs:
                return self.resolve(inputs[key], depth + 1, seen)
        literals = [v for v in inputs.values()
                    if is_link(v) or (isinstance(v, (str, int, float)) and not isinstance(v, bool))]
        if len(literals) == 1:
            return self.resolve(literals[0], depth + 1, seen)
        return None

    def upstream(self, start: Any, skip: set[str] | frozenset[str] = frozenset()) -> Iterator[str]:
        """Node ids reachable upstream of a link, depth-first pre-order, each once."""
        stack = [(start, 0)]
        seen: set[str] = set()
        while stack:
            link, depth = stack.pop()
            found = self.target(link)
            if found is None or found[0] in seen or depth > MAX_DEPTH:
                continue
            node_id, node = found
            seen.add(node_id)
            yield node_id
            links = [v for k, v in self.inputs(node).items() if is_link(v) and k not in skip]
            stack.extend((v, depth + 1) for v in reversed(links))

    # -- samplers ----------------------------------------------------------------------------
    def is_sampler(self, node: dict[str, Any]) -> bool:
        inputs = self.inputs(node)
        if node["class_type"] in _SAMPLER_CLASSES:
            return True
        if "guider" in inputs and "noise" in inputs and "sigmas" in inputs:
            return True
        has_seed = "seed" in inputs or "noise_seed" in inputs
        return has_seed and "steps" in inputs and is_link(inputs.get("positive"))

    def samplers(self) -> list[str]:
        return [node_id for node_id, node in self.graph.items() if self.is_sampler(node)]

    def first_pass(self) -> str | None:
        samplers = self.samplers()
        if not samplers:
            return None
        sampler_set = set(samplers)
        chain = self._output_chain(sampler_set) or samplers
        for node_id in chain:
            if not self._has_sampler_upstream_of_latent(node_id, sampler_set):
                return node_id
        return chain[0]

    def _output_chain(self, sampler_set: set[str]) -> list[str]:
        """Samplers feeding the saved image, nearest the output first."""
        best: list[str] = []
        best_rank = (-1, -1)
        for node_id, node in self.graph.items():
            inputs = self.inputs(node)
            if not is_link(inputs.get("images")):
                continue
            class_name = node["class_type"].lower()
            rank_kind = 1 if "save" in class_name else 0 if "preview" in class_name else -1
            if rank_kind < 0:
                continue
            chain = [n for n in self.upstream([node_id, 0]) if n in sampler_set]
            rank = (rank_kind, len(chain))
            if chain and rank > best_rank:
                best, best_rank = chain, rank
        return best

    def _latent_link(self, node: dict[str, Any]) -> Any:
        inputs = self.inputs(node)
        return first(inputs, "latent_image", "latent", "samples")

    def _has_sampler_upstream_of_latent(self, node_id: str, sampler_set: set[str]) -> bool:
        latent = self._latent_link(self.graph[node_id])
        return any(n in sampler_set and n != node_id for n in self.upstream(latent))

    # -- prompt text -------------------------------------------------------------------------
    def texts(self, link: Any, side: str) -> list[str]:
        found: list[str] = []
        self._collect_texts(link, side, 0, set(), found)
        unique: list[str] = []
        for text in found:
            if text not in unique:
                unique.append(text)
        return unique

    def _collect_texts(self, link: Any, side: str, depth: int, seen: set[str],
                       out: list[str]) -> None:
        target = self.target(link)
        if target is None or depth > MAX_DEPTH or target[0] in seen:
            return
        node_id, node = target
        seen.add(node_id)
        inputs = self.inputs(node)
        own = inputs.get(side)
        if isinstance(own, str) and own.strip():  # loader nodes holding both prompts as text
            out.append(own)
            return
        encoder_texts = [self.resolve(inputs[key]) for key in _TEXT_KEYS if key in inputs]
        encoder_texts = [t for t in encoder_texts if isinstance(t, str) and t.strip()]
        if encoder_texts:
            out.extend(encoder_texts)
            return
        if is_link(inputs.get("positive")) and is_link(inputs.get("negative")):
            # e.g. ControlNetApplyAdvanced: output 0 is positive, output 1 negative
            key = "positive" if link[1] == 0 else "negative"
            self._collect_texts(inputs[key], side, depth + 1, seen, out)
            return
        for key, value in inputs.items():
            if is_link(value) and key not in _NOT_CONDITIONING:
                self._collect_texts(value, side, depth + 1, seen, out)

    def find_upstream(self, link: Any, class_name: str) -> dict[str, Any] | None:
        for node_id in self.upstream(link, skip=_NOT_CONDITIONING):
            if self.graph[node_id]["class_type"] == class_name:
                return self.graph[node_id]
        return None

    # -- model and LoRAs ---------------------------------------------------------------------
    def model(self, link: Any) -> tuple[str | None, list[Lora]]:
        loras: list[Lora] = []
        seen: set[str] = set()
        for _ in range(MAX_DEPTH):
            target = self.target(link)
            if target is None or target[0] in seen:
                break
            node_id, node = target
            seen.add(node_id)
            inputs = self.inputs(node)
            loras.extend(self._node_loras(inputs))
            if is_link(inputs.get("lora_stack")):
                loras.extend(self._stack_loras(inputs["lora_stack"]))
            for key in _CKPT_KEYS:
                if key in inputs:
                    name = to_str(self.resolve(inputs[key]))
                    if name:
                        return name, list(reversed(loras))
            link = first({k: v for k, v in inputs.items() if is_link(v)},
                         "model", "model1", "base_model", "unet", *[k for k in inputs if "model" in k])
        return None, list(reversed(loras))

    def _node_loras(self, inputs: dict[str, Any]) -> list[Lora]:
        found: list[Lora] = []
        name = to_str(self.resolve(inputs.get("lora_name")))
        if name and name != "None":
            weight = to_float(self.resolve(first(inputs, "strength_model", "lora_strength",
                                                 "strength", "weight", "model_weight")))
            found.append(Lora(lora_basename(name), weight))
        for value in inputs.values():  # rgthree Power Lora Loader: lora_1: {on, lora, strength}
            if (isinstance(value, dict) and isinstance(value.get("lora"), str)
                    and value.get("on", True) and value["lora"] != "None"):
                    found.append(Lora(lora_basename(value["lora"]), to_float(value.get("strength"))))
        return found

    def _stack_loras(self, link: Any) -> list[Lora]:
        """CR LoRA Stack / Efficiency LoRA Stacker: lora_name_N + weight_N (+ switch_N)."""
        found: list[Lora] = []
        seen: set[str] = set()
        for _ in range(MAX_DEPTH):
            target = self.target(link)
            if target is None or target[0] in seen:
                break
            seen.add(target[0])
            inputs = self.inputs(target[1])
            for key in sorted(inputs):
                match = re.fullmatch(r"lora_name_(\d{1,3})", key)
                if not match:
                    continue
                index = match.group(1)
                name = to_str(self.resolve(inputs[key]))
                switch = inputs.get(f"switch_{index}", "On")
                if not name or name == "None" or (isinstance(switch, str) and switch != "On"):
                    continue
                weight = first(inputs, f"model_weight_{index}", f"lora_wt_{index}",
                               f"model_str_{index}", f"strength_{index}")
                found.append(Lora(lora_basename(name), to_float(self.resolve(weight))))
            link = inputs.get("lora_stack")
        return found

    # -- size --------------------------------------------------------------------------------
    def size(self, link: Any) -> tuple[int | None, int | None]:
        for node_id in self.upstream(link, skip={"model", "positive", "negative", "vae", "clip"}):
            inputs = self.inputs(self.graph[node_id])
            if "width" in inputs and "height" in inputs:
                width = to_positive_int(self.resolve(inputs["width"]))
                height = to_positive_int(self.resolve(inputs["height"]))
                if width and height:
                    return width, height
            for key in ("dimensions", "resolution", "preset", "aspect_ratio", "size"):
                if isinstance(inputs.get(key), str):
                    width, height = parse_size(inputs[key])
                    if width and height:
                        return width, height
        return None, None


def parse_graph(graph: dict[str, dict[str, Any]]) -> GenerationMetadata:
    """Metadata from an API graph; fields stay None when the graph does not say."""
    meta = GenerationMetadata(generator="comfyui", generator_detail="ComfyUI")
    walker = _Walker(graph)
    sampler_id = walker.first_pass()
    if sampler_id is None:
        return meta
    inputs = walker.inputs(graph[sampler_id])

    guider = walker.target(inputs.get("guider"))
    guider_inputs = walker.inputs(guider[1]) if guider else {}
    noise = walker.target(inputs.get("noise"))
    sampler_node = walker.target(inputs.get("sampler"))
    sigmas = walker.target(inputs.get("sigmas"))
    sigmas_inputs = walker.inputs(sigmas[1]) if sigmas else {}

    seed = first(inputs, "seed", "noise_seed")
    if seed is None and noise is not None:
        seed = first(walker.inputs(noise[1]), "noise_seed", "seed")
    meta.seed = to_int(walker.resolve(seed))
    meta.steps = to_steps(walker.resolve(first(inputs, "steps") or first(sigmas_inputs, "steps")))
    meta.cfg_scale = to_float(walker.resolve(first(inputs, "cfg") if "cfg" in inputs
                                             else first(guider_inputs, "cfg")))
    sampler_name = inputs.get("sampler_name")
    if sampler_name is None and sampler_node is not None:
        sampler_name = walker.inputs(sampler_node[1]).get("sampler_name")
    meta.sampler = to_str(walker.resolve(sampler_name))
    scheduler = inputs.get("scheduler", sigmas_inputs.get("scheduler"))
    if scheduler is None and sigmas is not None and sigmas[1]["class_type"].endswith("Scheduler"):
        scheduler = sigmas[1]["class_type"][: -len("Scheduler")].lower() or None
    meta.scheduler = to_str(walker.resolve(scheduler))

    positive = first(inputs, "positive") or first(guider_inputs, "positive", "conditioning", "cond1")
    negative = first(inputs, "negative") or first(guider_inputs, "negative")
    meta.prompt = _joined(walker.texts(positive, "positive"))
    meta.negative_prompt = _joined(walker.texts(negative, "negative"))
    if meta.cfg_scale is None and positive is not None:
        flux = walker.find_upstream(positive, "FluxGuidance")
        if flux is not None:
            meta.cfg_scale = to_float(walker.resolve(flux["inputs"].get("guidance")))

    model_link = first(inputs, "model") or first(guider_inputs, "model")
    meta.model, meta.loras = walker.model(model_link)
    meta.width, meta.height = walker.size(walker._latent_link(graph[sampler_id]))
    return meta


def _joined(texts: list[str]) -> str | None:
    return "\n".join(texts) if texts else None


# --- editor workflow (the `workflow` chunk) -------------------------------------------------

# Widget order of common core nodes. The editor stores widget values positionally, and a
# "control after generate" value follows seed widgets (only when present: _CONTROL_VALUES).
_WIDGETS: dict[str, tuple[str, ...]] = {
    "KSampler": ("seed", "?control", "steps", "cfg", "sampler_name", "scheduler", "denoise"),
    "KSamplerAdvanced": ("add_noise", "noise_seed", "?control", "steps", "cfg", "sampler_name",
                         "scheduler", "start_at_step", "end_at_step", "return_with_leftover_noise"),
    "CLIPTextEncode": ("text",),
    "CheckpointLoaderSimple": ("ckpt_name",),
    "CheckpointLoader": ("config_name", "ckpt_name"),
    "UNETLoader": ("unet_name", "weight_dtype"),
    "EmptyLatentImage": ("width", "height", "batch_size"),
    "EmptySD3LatentImage": ("width", "height", "batch_size"),
    "LoraLoader": ("lora_name", "strength_model", "strength_clip"),
    "LoraLoaderModelOnly": ("lora_name", "strength_model"),
    "RandomNoise": ("noise_seed", "?control"),
    "CFGGuider": ("cfg",),
    "KSamplerSelect": ("sampler_name",),
    "BasicScheduler": ("scheduler", "steps", "denoise"),
    "FluxGuidance": ("guidance",),
    "PrimitiveNode": ("value", "?control"),
    "PrimitiveInt": ("value",),
    "PrimitiveFloat": ("value",),
    "PrimitiveString": ("value",),
    "PrimitiveStringMultiline": ("value",),
}


def workflow_to_graph(text: str) -> dict[str, dict[str, Any]] | None:
    """Best-effort API graph from the editor workflow, for files that only carry that.

    Links come from the workflow's link table; widget values are named for the core nodes
    above (custom nodes keep only their links). Muted/bypassed nodes are dropped.
    """
    data = loads_json(text)
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), list):
        return None
    links: dict[Any, list[Any]] = {}
    for link in data.get("links") or []:
        if isinstance(link, list) and len(link) >= 3:
            links[link[0]] = [str(link[1]), link[2]]
        elif isinstance(link, dict) and "id" in link:
            links[link["id"]] = [str(link.get("origin_id")), link.get("origin_slot", 0)]
    graph: dict[str, dict[str, Any]] = {}
    for node in data["nodes"][:MAX_NODES]:
        if not isinstance(node, dict) or not isinstance(node.get("type"), str):
            continue
        if node.get("mode") in (2, 4):
            continue
        inputs: dict[str, Any] = {}
        widgets = node.get("widgets_values")
        if isinstance(widgets, dict):
            inputs.update({k: v for k, v in widgets.items() if isinstance(k, str)})
        elif isinstance(widgets, list):
            inputs.update(_name_widgets(node["type"], widgets))
        for slot in node.get("inputs") or []:
            if isinstance(slot, dict) and isinstance(slot.get("name"), str):
                target = links.get(slot.get("link"))
                if target is not None and is_link(target):
                    inputs[slot["name"]] = target
        graph[str(node.get("id"))] = {"class_type": node["type"], "inputs": inputs}
    # PrimitiveNode feeds widgets through ordinary links; its value resolves via "value".
    return graph or None


def _name_widgets(class_type: str, values: list[Any]) -> dict[str, Any]:
    names = _WIDGETS.get(class_type)
    if names is None:
        return {}
    named: dict[str, Any] = {}
    index = 0
    for name in names:
        if index >= len(values):
            break
        if name.startswith("?"):
            if isinstance(values[index], str) and values[index] in _CONTROL_VALUES:
                index += 1
            continue
        named[name] = values[index]
        index += 1
    return named
