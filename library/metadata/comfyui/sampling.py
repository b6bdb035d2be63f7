"""Which sampler made the image, its settings, and the image size.

With several samplers (hires fix, refiner, detailer and upscale passes) the saved image's chain
is followed upstream from the output node, and the *first pass* - a sampler whose latent or
image does not come from another sampler - provides seed, steps, CFG, sampler, prompts and
model, as A1111 reports a hires image. `width`/`height` are that pass's size (A1111's `Size`);
the size after the later passes is `final_size`, where the graph's scale factors say it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ..values import parse_size, to_float, to_positive_int
from . import nodes
from .graph import DEFAULT_BUDGET, MAX_DEPTH, Node, is_link
from .walk import Walker

_OUTPUT_NAME = re.compile(r"save|preview|output|image saver|imagesave", re.IGNORECASE)
_SIZE_STRING_KEYS = ("dimensions", "resolution", "aspect_ratio", "preset", "size", "Resolution",
                     "ratio", "aspect", "sdxl_resolution")
_WIDTH_KEYS = ("width", "empty_latent_width", "Width", "image_width", "latent_width")
_HEIGHT_KEYS = ("height", "empty_latent_height", "Height", "image_height", "latent_height")
_SCALE_KEYS = ("scale_by", "upscale_by", "scale_factor", "upscale_factor", "scale")
_MODEL_FACTOR = re.compile(r"(?:^|[^a-z0-9])(?:x([1-8])|([1-8])x)(?:[^a-z0-9]|plus|$)",
                           re.IGNORECASE)
FLUX_GUIDANCE = frozenset({"FluxGuidance"})
# Node visits for finding which sampler made the saved image, apart from the walk budget, so
# that a graph with 100,000 output nodes still leaves the prompt and model walks their share.
SEARCH_BUDGET = DEFAULT_BUDGET
# Inputs that carry the picture (latent or pixels) a sampler works on.
_PICTURE_INPUT = re.compile(r"image|pixels|latent|samples", re.IGNORECASE)


@dataclass
class Pass:
    """The first-pass sampler and the nodes its settings may come from."""
    node: Node
    sources: list[Node]  # the sampler, then guider / noise / sampler object / sigmas / pipes


class Sampling:
    def __init__(self, walker: Walker) -> None:
        self.walker = walker
        self.graph = walker.graph
        self.ev = walker.ev
        self._samplers: set[str] | None = None
        self._upstream_samplers: dict[str, tuple[str, ...]] = {}
        self._search_visits = 0

    # -- finding the samplers --------------------------------------------------------------
    def samplers(self) -> set[str]:
        if self._samplers is None:
            self._samplers = {node.id for node in self.graph if nodes.is_sampler(node)}
        return self._samplers

    def upstream(self, start: Any, keys: re.Pattern[str] | None = None) -> Iterator[Node]:
        """Nodes upstream of a link, depth-first pre-order, each once (optionally only
        through the inputs whose names match `keys`, plus bundles)."""
        stack = [(start, 0)]
        seen: set[str] = set()
        while stack:
            link, depth = stack.pop()
            node = self.graph.visit(link)
            if node is None or node.id in seen or depth > 4 * MAX_DEPTH:
                continue
            seen.add(node.id)
            yield node
            links = [v for k, v in node.inputs.items() if is_link(v) and (
                keys is None or keys.search(k) or nodes.BUNDLE_KEY.search(k))]
            stack.extend((v, depth + 1) for v in reversed(links))

    def output_nodes(self) -> list[Node]:
        found = []
        for node in self.graph:
            if _is_output_name(node.class_type) and any(
                    is_link(node.inputs.get(k)) for k in nodes.IMAGE_KEYS + nodes.LATENT_KEYS):
                found.append(node)
        return found

    def first_pass(self) -> tuple[Node, Node | None] | None:
        """(first-pass sampler, output node it feeds) or None when the graph has no sampler."""
        samplers = self.samplers()
        if not samplers:
            return None
        best: tuple[str, ...] = ()
        best_output: Node | None = None
        best_rank = (-1, -1)
        for output in self.output_nodes():
            if self._search_visits > SEARCH_BUDGET:
                break
            kind = 1 if "preview" not in output.class_type.lower() else 0
            chain = tuple(n for n in self.samplers_upstream(output.id) if n != output.id)
            rank = (kind, len(chain))
            if chain and rank > best_rank:
                best, best_output, best_rank = chain, output, rank
        chain = best or tuple(sorted(samplers, key=_id_order))
        for node_id in chain:
            if not self._fed_by_sampler(self.graph.nodes[node_id]):
                return self.graph.nodes[node_id], best_output
        return self.graph.nodes[chain[0]], best_output

    def samplers_upstream(self, node_id: str) -> tuple[str, ...]:
        """Samplers at or upstream of a node, nearest first (memoised over the whole graph,
        so asking for every output node costs one pass; iterative, so deep chains are fine)."""
        memo = self._upstream_samplers
        if node_id in memo:
            return memo[node_id]
        samplers = self.samplers()
        stack: list[tuple[str, bool]] = [(node_id, False)]
        open_nodes: set[str] = set()
        while stack:
            current, expanded = stack.pop()
            if current in memo:
                continue
            node = self.graph.nodes.get(current)
            if node is None:
                memo[current] = ()
                continue
            links = [v for v in node.inputs.values() if is_link(v)]
            if not expanded:
                self._search_visits += 1
                if self._search_visits > SEARCH_BUDGET:
                    self.graph.budget.note(f"budget exhausted after {SEARCH_BUDGET} node visits "
                                           "looking for the saved image's sampler")
                    memo[current] = ()
                    continue
                open_nodes.add(current)
                stack.append((current, True))
                stack.extend((link[0], False) for link in reversed(links)
                             if link[0] not in memo and link[0] not in open_nodes)
                continue
            open_nodes.discard(current)
            found = [current] if current in samplers else []
            for link in links:  # a link back into an open node (a cycle) adds nothing
                found.extend(s for s in memo.get(link[0], ()) if s not in found)
            memo[current] = tuple(found)
        return memo.get(node_id, ())

    def _fed_by_sampler(self, node: Node) -> bool:
        """True when another sampler runs before this one: its latent or image comes from
        one (hires, refiner, detailer passes), or its conditioning does (Stable Cascade's
        stage B decodes stage C's output; a second ControlNet pass uses the first's image)."""
        for key, link in node.inputs.items():
            if key in ("model", "noise", "sampler", "sigmas") or not is_link(link):
                continue
            if any(s != node.id for s in self.samplers_upstream(link[0])):
                return True
        return False

    # -- settings --------------------------------------------------------------------------
    def settings_sources(self, sampler: Node) -> list[Node]:
        """The sampler and the nodes SamplerCustom(Advanced) and pipe samplers take settings
        from: guider (cfg), noise (seed), sampler object (sampler_name), sigmas (steps)."""
        sources = [sampler]
        for key in ("guider", "noise", "sampler", "sigmas"):
            link = sampler.inputs.get(key)
            for _ in range(8):  # through wrappers (DetailDaemon, SplitSigmas, switches ...)
                node = self.graph.visit(link)
                if node is None:
                    break
                sources.append(node)
                link = node.inputs.get(key)
                if not is_link(link):
                    choice = nodes.switch_choice(node, self.ev.literal)
                    links = [v for v in node.inputs.values() if is_link(v)]
                    link = next((node.inputs[k] for k in choice or () if is_link(node.inputs.get(k))),
                                links[0] if len(links) == 1 else None)
                if not is_link(link):
                    break
        return sources

    def setting(self, sources: list[Node], role: str) -> Any:
        keys = nodes.SETTING_KEYS[role] + (("cfg_conds",) if role == "cfg" else ())
        for node in sources:
            key = nodes.first_key(node, keys)
            if key is not None:
                value = self.ev.literal(node.inputs[key])
                if value is not None and not (role == "seed" and value == -1 and
                                              key not in ("seed", "noise_seed")):
                    return value
        for node in sources[:1]:
            for bundle in nodes.bundle_links(node):
                for key in keys:
                    value = self.ev.setting_in_bundle(bundle, key, 0)[0]
                    if value is not None:
                        return value
        return None

    def sampler_name(self, sources: list[Node]) -> Any:
        value = self.setting(sources, "sampler_name")
        if value is not None:
            return value
        for node in sources[1:]:  # SamplerEulerAncestralCFGPP, SamplerDPMPP_2M_SDE ...
            if node.class_type.startswith("Sampler") and not nodes.is_sampler(node):
                return _sampler_object_name(node.class_type[len("Sampler"):])
        return None

    def scheduler(self, sources: list[Node]) -> Any:
        value = self.setting(sources, "scheduler")
        if value is not None:
            return value
        for node in sources:  # KarrasScheduler, ExponentialScheduler ... name the schedule
            if node.class_type.endswith("Scheduler") and node.class_type != "BasicScheduler":
                return node.class_type[: -len("Scheduler")].lower() or None
        return None

    def conditioning_link(self, sources: list[Node], role: str) -> Any:
        # BasicGuider: conditioning; DualCFGGuider: cond1 (+ cond2, an extra positive)
        keys = {"positive": ("positive", "conditioning", "cond1", "conditioning_1"),
                "negative": ("negative",)}[role]
        for node in sources:
            for key in keys:
                if is_link(node.inputs.get(key)):
                    return node.inputs[key]
        bundles = nodes.bundle_links(sources[0])
        return bundles[0] if bundles else None

    def model_link(self, sources: list[Node]) -> Any:
        for node in sources:
            key = nodes.first_key(node, nodes.ROLE_KEYS["model"])
            if key is not None and is_link(node.inputs[key]):
                return node.inputs[key]
        bundles = nodes.bundle_links(sources[0])
        return bundles[0] if bundles else None

    def flux_guidance(self, positive: Any) -> float | None:
        node = self.walker.find_upstream(positive, FLUX_GUIDANCE)
        return None if node is None else to_float(self.ev.literal(node.inputs.get("guidance")))

    # -- sizes -----------------------------------------------------------------------------
    def size(self, sampler: Node) -> tuple[int | None, int | None]:
        """The first pass's size: from its empty latent, or what img2img scaled its image to."""
        starts = [sampler.inputs[k] for k in nodes.LATENT_KEYS + nodes.IMAGE_KEYS
                  if is_link(sampler.inputs.get(k))] + nodes.bundle_links(sampler)
        for start in starts:
            for node in self.upstream(start, _PICTURE_INPUT):
                found = self.node_size(node)
                if found is not None:
                    return found
                if node.class_type == "LoadImage":
                    break
        return None, None

    def node_size(self, node: Node) -> tuple[int, int] | None:
        inputs = node.inputs
        swap = nodes.truthy(self.ev.literal(inputs.get("swap_dimensions"))) is True
        for key in _SIZE_STRING_KEYS:
            text = self.ev.literal(inputs.get(key))
            if isinstance(text, str) and text.lower() != "custom":
                width, height = parse_size(text)
                if width and height:
                    return (height, width) if swap else (width, height)
        width_key = nodes.first_key(node, _WIDTH_KEYS)
        height_key = nodes.first_key(node, _HEIGHT_KEYS)
        if width_key and height_key:
            width = to_positive_int(self.ev.literal(inputs[width_key]))
            height = to_positive_int(self.ev.literal(inputs[height_key]))
            if width and height:
                return (height, width) if swap else (width, height)
        return None

    def final_size(self, first: Node, output: Node | None,
                   size: tuple[int | None, int | None]) -> tuple[int, int] | None:
        """The size after the passes between the first pass and the saved image, or None
        when nothing on the way changes it (or a step's factor is unknown)."""
        width, height = size
        if output is None or not width or not height:
            return None
        path = self._path(output, first)
        if not path:
            return None
        changed = False
        for node in path:
            step = self._resize(node, width, height)
            if step is None:
                continue
            if step == (-1, -1):
                return None  # a resize we cannot compute
            if step != (width, height):
                width, height = step
                changed = True
        return (width, height) if changed else None

    def _path(self, output: Node, first: Node) -> list[Node]:
        """Nodes from the first pass (included) to the output (excluded), in processing order."""
        parents: dict[str, str | None] = {output.id: None}
        frontier = [output.id]
        keys = nodes.LATENT_KEYS + nodes.IMAGE_KEYS
        while frontier and first.id not in parents:
            below = frontier.pop(0)
            node = self.graph.nodes[below]
            for key, value in node.inputs.items():
                if not is_link(value) or not (key in keys or nodes.BUNDLE_KEY.search(key)):
                    continue
                upstream = self.graph.visit(value)
                if upstream is None or upstream.id in parents:
                    continue
                parents[upstream.id] = below
                frontier.append(upstream.id)
        if first.id not in parents:
            return []
        path = []
        step: str | None = first.id
        while step is not None and step != output.id:
            path.append(self.graph.nodes[step])
            step = parents[step]
        return path

    def _resize(self, node: Node, width: int, height: int) -> tuple[int, int] | None:
        inputs = node.inputs
        name = node.class_type.lower()
        if node.class_type.startswith("Empty") or "detailer" in name:
            return None
        script = self.graph.nodes.get(inputs["script"][0]) if is_link(inputs.get("script")) else None
        if script is not None and "upscale_by" in script.inputs:  # Efficiency HighRes-Fix Script
            factor = to_float(self.ev.literal(script.inputs["upscale_by"]))
            return _scaled(width, height, factor) if factor else (-1, -1)
        if nodes.is_sampler(node) and "upscale_by" not in inputs:
            return None
        if "megapixels" in inputs and "upscale" in name or "totalpixels" in name:
            megapixels = to_float(self.ev.literal(inputs.get("megapixels")))
            if not megapixels:
                return (-1, -1)
            return _scaled(width, height, math.sqrt(megapixels * 1024 * 1024 / (width * height)))
        if "upscale_model" in inputs and "upscalewithmodel" in name.replace(" ", ""):
            factor = self._model_factor(inputs["upscale_model"])
            return (width * factor, height * factor) if factor else (-1, -1)
        latent = "latent" in name
        for key in _SCALE_KEYS:
            if key in inputs and ("scale" in name or "upscale" in name or "resize" in name
                                  or key == "upscale_by"):
                factor = to_float(self.ev.literal(inputs[key]))
                if not factor or factor <= 0:
                    return (-1, -1)
                if latent:  # latent sizes are multiples of 8
                    size = _scaled(width // 8, height // 8, factor)
                    return size if size == (-1, -1) else (size[0] * 8, size[1] * 8)
                return _scaled(width, height, factor)
        if ("scale" in name or "resize" in name or "upscale" in name) and "width" in inputs \
                and "height" in inputs:
            raw_width, raw_height = (self.ev.literal(inputs[k]) for k in ("width", "height"))
            if raw_width is None or raw_height is None:
                return (-1, -1)  # linked to something we cannot compute
            new_width = to_positive_int(raw_width) or 0
            new_height = to_positive_int(raw_height) or 0
            if new_width and new_height:
                return new_width, new_height
            if new_width:
                return new_width, _scaled(width, height, new_width / width)[1]
            if new_height:
                return _scaled(width, height, new_height / height)[0], new_height
        return None

    def _model_factor(self, link: Any) -> int | None:
        node = self.graph.visit(link)
        if node is None:
            return None
        name = self.ev.literal(node.inputs.get("model_name"))
        if not isinstance(name, str):
            return None
        match = _MODEL_FACTOR.search(name.rsplit("/", 1)[-1].rsplit("\\", 1)[-1])
        return int(match.group(1) or match.group(2)) if match else None


def _scaled(width: int, height: int, factor: float) -> tuple[int, int]:
    """Both sides times `factor`, or (-1, -1) when that is no image size (a hostile factor)."""
    new_width, new_height = width * factor, height * factor
    if not (math.isfinite(new_width) and math.isfinite(new_height)
            and 0 < new_width <= 1 << 20 and 0 < new_height <= 1 << 20):
        return (-1, -1)
    return round(new_width), round(new_height)


@lru_cache(maxsize=4096)
def _is_output_name(class_type: str) -> bool:
    return bool(_OUTPUT_NAME.search(class_type))


def _sampler_object_name(name: str) -> str | None:
    """'EulerAncestralCFGPP' -> 'euler_ancestral_cfg_pp', 'DPMPP_2M_SDE' -> 'dpmpp_2m_sde'."""
    name = name.replace("CFGPP", "_cfg_pp")
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()
    snake = re.sub(r"_+", "_", snake).strip("_")
    return snake or None


def _id_order(node_id: str) -> tuple[int, str]:
    head = node_id.split(":", 1)[0]
    return (int(head), node_id) if head.isdigit() else (1 << 62, node_id)
