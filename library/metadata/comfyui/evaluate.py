"""What a STRING/INT/FLOAT output of a node holds, computed from the graph.

`Evaluator.value(item)` takes a literal or a link and returns `(value, complete)`: the value
(None when the graph cannot say) and whether it is exact. A concatenation with an opaque part
(a CSV style lookup, a wildcard drawn at run time, an LLM prompt writer) returns the parts it
knows with complete=False, so the caller can prefer a saver's resolved text when the file has one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ..values import parse_size, to_float
from . import nodes
from .graph import MAX_DEPTH, Graph, Link, Node, is_link

Result = tuple[Any, bool]
UNKNOWN: Result = (None, False)

# Keys under which value/primitive/string nodes keep their value, most specific first.
VALUE_KEYS = ("value", "seed", "noise_seed", "text", "Text", "string", "String", "STRING",
              "int", "INT", "Int", "float", "FLOAT", "number", "Number", "prompt", "ckpt_name",
              "unet_name", "boolean", "BOOLEAN", "bool", "seed_value", "Value", "val")
_DELIMITER_KEYS = ("delimiter", "Delimiter", "separator", "Separator", "sep", "delim")
_FLAG_KEYS = frozenset({"clean_whitespace", "tidy_tags", "action", "mode", "newline",
                        "linebreak_addition", "trim", "strip"})
_CONCAT_NAME = re.compile(r"concat|join|merge|combine|append|stringadd|text_add", re.IGNORECASE)
_TEXTY_NAME = re.compile(r"str|text|prompt", re.IGNORECASE)
_WILDCARD_SYNTAX = re.compile(r"__[\w\-/*. ]+__|\{[^{}]*\|[^{}]*\}")
# Nodes whose text output is written at run time and never stored (LLM prompt writers,
# prompt enhancers, CSV/style lookups, captioners).
_OPAQUE_NAME = re.compile(r"textgenerate|llm|gpt|ollama|gemini|florence|joycaption|caption|"
                          r"enhanc|magicprompt|styles? ?csv|style.*selector|styles? ?selector|"
                          r"chatglm|qwenvl|llava|interrogat", re.IGNORECASE)


def has_wildcards(text: str) -> bool:
    return bool(_WILDCARD_SYNTAX.search(text))


class Evaluator:
    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self._memo: dict[Link, Result] = {}
        self._active: set[Link] = set()

    def literal(self, item: Any) -> Any:
        return self.value(item)[0]

    def value(self, item: Any, depth: int = 0) -> Result:
        if not is_link(item):
            return (item, item is not None)
        if item in self._memo:
            return self._memo[item]
        if item in self._active:
            return UNKNOWN  # a cycle: no value
        if depth > MAX_DEPTH:
            self.graph.budget.note(f"value chain deeper than {MAX_DEPTH} links")
            return UNKNOWN
        node = self.graph.visit(item)
        if node is None:
            return UNKNOWN
        self._active.add(item)
        try:
            result = self._node_value(node, item[1], depth + 1)
        finally:
            self._active.discard(item)
        if result[0] is None:
            shown = node.shown if node.shown is not None else node.inputs.get("text_0")
            if isinstance(shown, str) and shown.strip():
                result = (shown, False)
        self._memo[item] = result
        return result

    # -- one node --------------------------------------------------------------------------
    def _node_value(self, node: Node, slot: int, depth: int) -> Result:
        inputs = node.inputs
        choice = self._switch(node, depth)
        if choice is not None:
            return choice
        name = nodes.output_name(node, slot)
        if name:
            key = nodes.input_named(node, name)
            if key is not None and key not in _DELIMITER_KEYS:
                return self.value(inputs[key], depth)
            for bundle in nodes.bundle_links(node):
                found = self.setting_in_bundle(bundle, name, depth)
                if found[0] is not None:
                    return found
        if node.class_type == "SDXL Empty Latent Image (rgthree)" and slot in (1, 2):
            return self._rgthree_clip_size(node, slot, depth)
        if "op" in inputs or "operation" in inputs:
            arithmetic = self._arithmetic(node, depth)
            if arithmetic is not None:
                return arithmetic
        special = _SPECIAL.get(node.class_type)
        if special is not None:
            return special(self, node, depth)
        if _OPAQUE_NAME.search(node.class_type):
            return UNKNOWN
        if "populated_text" in inputs or "wildcard" in node.class_type.lower() or \
                node.class_type.startswith("DP"):
            return self._wildcard(node, depth)
        lowered = node.class_type.lower()
        if "replace" in lowered and any(k in inputs for k in ("find", "search", "old")):
            return self._replace(node, depth)
        if "format" in lowered and any(k in inputs for k in ("format", "template", "fstring")):
            return self._format(node, depth)
        if _CONCAT_NAME.search(node.class_type) and _TEXTY_NAME.search(node.class_type):
            return self._concat(node, None, ", ", keep_empty=False, depth=depth)
        for key in VALUE_KEYS:
            if key in inputs:
                return self.value(inputs[key], depth)
        candidates = [k for k, v in inputs.items()
                      if is_link(v) or (isinstance(v, (str, int, float)) and not isinstance(v, bool))]
        if len(candidates) == 1:
            return self.value(inputs[candidates[0]], depth)
        return UNKNOWN

    def _switch(self, node: Node, depth: int) -> Result | None:
        keys = nodes.switch_choice(node, lambda v: self.value(v, depth)[0])
        if keys is None:
            return None
        present = [k for k in keys if k in node.inputs]
        for key in present:
            result = self.value(node.inputs[key], depth)
            if result[0] is not None:
                return result
        # The active branch is opaque (e.g. an LLM prompt writer): the other branch is the
        # un-processed input, the closest thing the file holds.
        others = [k for k in node.inputs if k not in present and (
            k in ("on_true", "on_false", "true", "false") or nodes.NUMBERED.match(k))]
        for key in others:
            result = self.value(node.inputs[key], depth)
            if isinstance(result[0], str) and result[0].strip():
                return (result[0], False)
        return UNKNOWN

    def setting_in_bundle(self, link: Any, name: str, depth: int) -> Result:
        """A named value carried in a pipe/context: the first node upstream that holds it."""
        seen: set[str] = set()
        frontier = [link]
        while frontier and depth < MAX_DEPTH:
            depth += 1
            current = frontier.pop(0)
            node = self.graph.visit(current)
            if node is None or node.id in seen:
                continue
            seen.add(node.id)
            key = nodes.input_named(node, name)
            if key is not None and not is_link(node.inputs[key]):
                return self.value(node.inputs[key], depth)
            if key is not None:
                target = self.graph.nodes.get(node.inputs[key][0])
                if target is None or not nodes.bundle_links(target) or key == name:
                    return self.value(node.inputs[key], depth)
            frontier.extend(nodes.bundle_links(node))
        return UNKNOWN

    def _rgthree_clip_size(self, node: Node, slot: int, depth: int) -> Result:
        """rgthree's SDXL empty latent outputs CLIP_WIDTH/CLIP_HEIGHT = size x clip_scale."""
        width, height = parse_size(self.value(node.inputs.get("dimensions"), depth)[0])
        scale = to_float(self.value(node.inputs.get("clip_scale"), depth)[0])
        side = width if slot == 1 else height
        if side is None or scale is None or not 0 < side * scale <= 1 << 20:
            return UNKNOWN
        return (round(side * scale), True)

    def _arithmetic(self, node: Node, depth: int) -> Result | None:
        """Integer/float math nodes (ComfyMath, Comfyroll, Easy-Use): op on a and b."""
        inputs = node.inputs
        op = self.value(inputs.get("op", inputs.get("operation")), depth)[0]
        if not isinstance(op, str) or "a" not in inputs or "b" not in inputs:
            return None
        (a, exact_a), (b, exact_b) = self.value(inputs["a"], depth), self.value(inputs["b"], depth)
        a, b = to_float(a), to_float(b)
        if a is None or b is None:
            return UNKNOWN
        operations = {"add": a + b, "sub": a - b, "mul": a * b, "max": max(a, b), "min": min(a, b),
                      "div": a / b if b else None, "floordiv": a // b if b else None}
        result = operations.get(op.strip().lower().replace("+", "add").replace("*", "mul"))
        if result is None:
            return UNKNOWN
        return (int(result) if float(result).is_integer() else result, exact_a and exact_b)

    # -- string operations -----------------------------------------------------------------
    def _concat(self, node: Node, keys: tuple[str, ...] | None, default: str,
                keep_empty: bool, depth: int) -> Result:
        inputs = node.inputs
        delimiter_key = next((k for k in _DELIMITER_KEYS if k in inputs), None)
        delimiter = default
        if delimiter_key is not None:
            literal = self.value(inputs[delimiter_key], depth)[0]
            if isinstance(literal, str):
                delimiter = literal.replace("\\n", "\n")
        if keys is None:
            keys = tuple(k for k, v in inputs.items()
                         if k != delimiter_key and k not in _FLAG_KEYS
                         and (is_link(v) or isinstance(v, str)))
        clean = nodes.truthy(inputs.get("clean_whitespace")) is True
        parts: list[str] = []
        complete = True
        for key in keys:
            if key not in inputs:
                continue
            part, exact = self.value(inputs[key], depth)
            complete = complete and exact
            if part is None:
                continue
            text = str(part) if isinstance(part, (int, float)) and not isinstance(part, bool) else part
            if not isinstance(text, str):
                complete = False
                continue
            if clean:
                text = text.strip()
            if text or keep_empty:
                parts.append(text)
        if not parts:
            return (None, False) if not complete else ("", True)
        return (delimiter.join(parts), complete)

    def _replace(self, node: Node, depth: int) -> Result:
        inputs = node.inputs
        source_key = next((k for k in ("string", "text", "input", "source", "prompt")
                           if k in inputs), None)
        if source_key is None:
            return UNKNOWN
        text, complete = self.value(inputs[source_key], depth)
        find = self.literal(inputs.get("find", inputs.get("search", inputs.get("old"))))
        replace = self.literal(inputs.get("replace", inputs.get("replacement", inputs.get("new"))))
        if not isinstance(text, str):
            return UNKNOWN
        if isinstance(find, str) and find and isinstance(replace, str):
            text = text.replace(find, replace)
        return (text, complete)

    def _format(self, node: Node, depth: int) -> Result:
        inputs = node.inputs
        template_key = next(k for k in ("format", "template", "fstring") if k in inputs)
        template, complete = self.value(inputs[template_key], depth)
        if not isinstance(template, str):
            return UNKNOWN
        values = [k for k in inputs if k != template_key]
        sequence = iter(values)
        state = {"complete": complete}

        # Hand-written rather than str.format: a template from a file must not reach
        # attribute lookups ("{0.__class__}").
        def fill(match: re.Match[str]) -> str:
            name = match.group(1)
            key = name if name in inputs else next(sequence, None) if not name else None
            if key is None:
                return match.group(0)
            found, exact = self.value(inputs[key], depth)
            state["complete"] = state["complete"] and exact
            return match.group(0) if found is None else str(found)

        return (re.sub(r"\{(\w*)\}", fill, template), state["complete"])

    def _wildcard(self, node: Node, depth: int) -> Result:
        inputs = node.inputs
        populated = self.value(inputs.get("populated_text"), depth)[0] if \
            "populated_text" in inputs else None
        if isinstance(populated, str) and populated.strip():
            return (populated, True)
        key = next((k for k in ("wildcard_text", "text", "prompt", "wildcard", "string",
                                "template") if k in inputs), None)
        if key is None:
            return UNKNOWN
        text, complete = self.value(inputs[key], depth)
        if not isinstance(text, str):
            return UNKNOWN
        drawn = has_wildcards(text) or "textfile" in inputs or "keyword" in inputs
        return (text, complete and not drawn)


def _concat_spec(keys: tuple[str, ...], default: str, keep_empty: bool
                 ) -> Callable[[Evaluator, Node, int], Result]:
    return lambda ev, node, depth: ev._concat(node, keys, default, keep_empty, depth)


def _string_function(ev: Evaluator, node: Node, depth: int) -> Result:
    """pysssss StringFunction: append text_a..c (", "-joined when tidy_tags) or replace."""
    inputs = node.inputs
    action = str(ev.literal(inputs.get("action")) or "append")
    if action == "replace":
        text, complete = ev.value(inputs.get("text_a"), depth)
        find, replace = ev.literal(inputs.get("text_b")), ev.literal(inputs.get("text_c"))
        if not isinstance(text, str):
            return UNKNOWN
        if isinstance(find, str) and find and isinstance(replace, str):
            text = text.replace(find, replace)
        return (text, complete)
    tidy = str(ev.literal(inputs.get("tidy_tags")) or "no").lower() == "yes"
    return ev._concat(node, ("text_a", "text_b", "text_c"), ", " if tidy else "",
                      keep_empty=False, depth=depth)


_SPECIAL: dict[str, Callable[[Evaluator, Node, int], Result]] = {
    # core: delimiter.join((a, b)) - empty parts keep their delimiter
    "StringConcatenate": _concat_spec(("string_a", "string_b"), "", True),
    "Text Concatenate": _concat_spec(("text_a", "text_b", "text_c", "text_d"), ", ", False),
    "Text Concatenate (JPS)": _concat_spec(("text1", "text2", "text3", "text4", "text5"), " ",
                                           False),
    "CR Text Concatenate": _concat_spec(("text1", "text2"), "", True),
    "TextConcatenateNikosis": _concat_spec(("text_a", "text_b", "text_c", "text_d"), ", ",
                                           False),
    "JWStringConcat": _concat_spec(("a", "b"), "", True),
    "easy promptConcat": _concat_spec(("prompt1", "prompt2"), "", False),
    "StringFunction|pysssss": _string_function,
}
