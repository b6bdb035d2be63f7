"""Walks from a sampler's inputs back to what made them: prompt texts, the model, LoRAs.

A conditioning walk carries a role (positive/negative) so that nodes holding both (Efficiency
and Easy-Use loaders, rgthree contexts, Impact pipes, ControlNet Apply Advanced) hand on the
right one; an output name from the editor workflow ("CONDITIONING-", "NEGATIVE") overrides it.
"""

from __future__ import annotations

import re
from typing import Any

from ..model import Lora
from ..values import lora_basename, to_float, to_str
from . import nodes
from .evaluate import Evaluator
from .graph import MAX_DEPTH, Graph, Node, is_link

_LORA_TAG = re.compile(r"<lora:([^:>]{1,300})(?::([^:>]{0,40}))?(?::[^>]{0,40})?>", re.IGNORECASE)


class Walker:
    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.ev = Evaluator(graph)

    # -- prompts ---------------------------------------------------------------------------
    def texts(self, item: Any, role: str) -> tuple[list[str], bool]:
        """Distinct prompt texts reaching a sampler input, and whether all parts were known."""
        found: list[str] = []
        complete = self._conditioning(item, role, 0, set(), found)
        unique: list[str] = []
        for text in found:
            text = _strip_system_prompt(text)
            if text.strip() and text not in unique:
                unique.append(text)
        return unique, complete

    def _conditioning(self, item: Any, role: str, depth: int, seen: set[tuple[str, int]],
                      out: list[str]) -> bool:
        if isinstance(item, str):
            out.append(item)
            return True
        if not is_link(item):
            return item is None
        if item in seen:
            return True  # already collected (area prompts combined twice) or a cycle
        if depth > MAX_DEPTH:
            self.graph.budget.note(f"conditioning chain deeper than {MAX_DEPTH} links")
            return False
        seen.add(item)
        node = self.graph.visit(item)
        if node is None:
            return False
        if node.class_type in nodes.ZERO_CONDITIONING:
            return True
        role = nodes.role_of_output(nodes.output_name(node, item[1])) or role
        inputs = node.inputs

        switch = nodes.switch_choice(node, self.ev.literal)
        if switch is not None:
            for key in switch:
                if key in inputs:
                    return self._conditioning(inputs[key], role, depth + 1, seen, out)
            return False
        role_key = nodes.first_key(node, nodes.ROLE_KEYS[role])
        if role_key is not None and (is_link(inputs[role_key]) or isinstance(inputs[role_key], str)):
            return self._conditioning(inputs[role_key], role, depth + 1, seen, out)
        text_keys = [k for k in nodes.TEXT_KEYS if k in inputs]
        if "populated_text" in inputs or text_keys:
            text, complete = self._encoder_text(node, text_keys, depth)
            if text is not None:
                out.extend(text)
                return complete
        bundles = nodes.bundle_links(node)
        if bundles:
            complete = True
            for bundle in bundles:
                complete = self._conditioning(bundle, role, depth + 1, seen, out) and complete
            return complete
        if not _makes_conditioning(node, item[1]):
            # A string node wired straight into a text input; when its value is unknown, its
            # inputs are other strings (switch branches, parts), not prompts to collect.
            value, exact = self.ev.value(item, depth)
            if isinstance(value, str):
                out.append(value)
            return isinstance(value, str) and exact
        links = [v for k, v in inputs.items() if is_link(v) and k not in nodes.NOT_CONDITIONING
                 and not k.endswith(("_opt", "_model"))]
        if not links:
            return False  # an encoder we do not know: its text is somewhere we cannot see
        complete = True
        for link in links:
            complete = self._conditioning(link, role, depth + 1, seen, out) and complete
        return complete

    def _encoder_text(self, node: Node, keys: list[str], depth: int) -> tuple[list[str] | None, bool]:
        inputs = node.inputs
        if "populated_text" in inputs:
            populated, exact = self.ev.value(inputs["populated_text"], depth)
            if isinstance(populated, str) and populated.strip():
                return [populated], exact
        texts: list[str] = []
        complete = True
        for key in keys:
            value, exact = self.ev.value(inputs[key], depth)
            if key == "wildcard_text" and texts:
                continue
            if isinstance(value, str):
                texts.append(value)
                complete = complete and exact
            elif is_link(inputs[key]):
                complete = False
        if not texts and not complete:
            return [], False
        return texts, complete

    def find_upstream(self, item: Any, class_names: frozenset[str]) -> Node | None:
        """The first node of one of `class_names` upstream of a conditioning link."""
        stack, seen = [item], set()
        while stack:
            link = stack.pop()
            node = self.graph.visit(link)
            if node is None or node.id in seen:
                continue
            seen.add(node.id)
            if node.class_type in class_names:
                return node
            stack.extend(v for k, v in node.inputs.items()
                         if is_link(v) and k not in nodes.NOT_CONDITIONING)
        return None

    # -- model and LoRAs -------------------------------------------------------------------
    def model(self, item: Any) -> tuple[str | None, list[Lora]]:
        """The model a sampler's model input comes from, and the LoRAs applied on the way."""
        loras: list[Lora] = []
        seen: set[str] = set()
        name: str | None = None
        for _ in range(MAX_DEPTH):
            node = self.graph.visit(item)
            if node is None or node.id in seen:
                break
            seen.add(node.id)
            loras.extend(reversed(self.node_loras(node)))
            for key, value in node.inputs.items():
                if "lora_stack" in key and is_link(value):
                    loras.extend(reversed(self.stack_loras(value)))
            name = self._loaded_name(node)
            if name is not None:
                break
            item = self._next_model_link(node, item[1])
            if item is None:
                break
        return name, _dedupe(list(reversed(loras)))

    def _loaded_name(self, node: Node) -> str | None:
        for key in nodes.MODEL_NAME_KEYS:
            if key not in node.inputs:
                continue
            raw = node.inputs[key]
            if key == "model" and not isinstance(raw, str):
                continue  # a MODEL link, not a file name
            name = to_str(self.ev.literal(raw))
            if name and name.strip().lower() not in nodes.NONE_NAMES:
                return name
        return None

    def _next_model_link(self, node: Node, slot: int) -> Any:
        inputs = node.inputs
        switch = nodes.switch_choice(node, self.ev.literal)
        if switch is not None:
            return next((inputs[k] for k in switch if is_link(inputs.get(k))), None)
        name = nodes.output_name(node, slot)
        if name:
            key = nodes.input_named(node, name)
            if key is not None and is_link(inputs[key]):
                return inputs[key]
        key = nodes.first_key(node, nodes.ROLE_KEYS["model"])
        if key is not None and is_link(inputs[key]):
            return inputs[key]
        for key, value in inputs.items():
            if is_link(value) and "model" in key.lower() and "upscale" not in key.lower():
                return value
        bundles = nodes.bundle_links(node)
        if bundles:
            return bundles[0]
        links = [v for v in inputs.values() if is_link(v)]
        return links[0] if len(links) == 1 else None  # reroutes and other pass-throughs

    def node_loras(self, node: Node) -> list[Lora]:
        found: list[Lora] = []
        for raw_name, raw_weight, raw_on in nodes.lora_entries(node):
            name = nodes.lora_file_name(self.ev.literal(raw_name))
            if name is None or not nodes.enabled(self.ev.literal(raw_on)):
                continue
            found.append(Lora(lora_basename(name), to_float(self.ev.literal(raw_weight))))
        for key in ("text", "prompt", "lora_text", "loras"):
            value = self.ev.literal(node.inputs.get(key))
            if isinstance(value, str) and "<lora:" in value.lower() and (
                    "lora" in node.class_type.lower() or "prompt" in node.class_type.lower()):
                found.extend(tag_loras(value))
        return found

    def stack_loras(self, item: Any) -> list[Lora]:
        """LoRA stack nodes chained through `lora_stack`, applied upstream-first."""
        chain: list[list[Lora]] = []
        seen: set[str] = set()
        for _ in range(MAX_DEPTH):
            node = self.graph.visit(item)
            if node is None or node.id in seen:
                break
            seen.add(node.id)
            chain.append(self.node_loras(node))
            item = next((v for k, v in node.inputs.items() if "lora_stack" in k and is_link(v)),
                        None)
            if item is None:
                break
        return [lora for loras in reversed(chain) for lora in loras]


def _makes_conditioning(node: Node, slot: int) -> bool:
    """True for nodes that transform conditioning (their value is no string to read)."""
    name = nodes.output_name(node, slot)
    if name is not None and ("cond" in name or nodes.role_of_output(name)):
        return True
    return any(key == "clip" or "cond" in key.lower() for key in node.inputs)


def tag_loras(text: str) -> list[Lora]:
    """`<lora:name:weight>` tags (A1111 syntax, also read by LoraTagLoader and Power Prompt)."""
    found = []
    for match in _LORA_TAG.finditer(text[:100_000]):
        found.append(Lora(lora_basename(match.group(1)), to_float(match.group(2))))
    return found


def _dedupe(loras: list[Lora]) -> list[Lora]:
    unique: list[Lora] = []
    for lora in loras:
        if all(lora.name != other.name for other in unique):
            unique.append(lora)
    return unique


def _strip_system_prompt(text: str) -> str:
    _, sep, tail = text.partition(nodes.PROMPT_START)
    return tail.lstrip() if sep else text
