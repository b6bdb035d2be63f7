"""The editor workflow (`workflow` chunk) as a Graph.

The editor graph has what the API graph flattens away: reroutes, bypassed and muted nodes,
primitive nodes feeding widgets, KJNodes/Easy-Use Set/Get pairs, group nodes
(`extra.groupNodes`) and subgraphs (`definitions.subgraphs`, nested). They are resolved here
so that the walks see the same shape as an API graph: group-node and subgraph inner nodes get
the ids ComfyUI gives them in the API graph ("5:1", "30:6"), a link to a reroute or a bypassed
node leads to what feeds it, and a primitive becomes the literal it holds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .graph import MAX_DEPTH, MAX_NODES, Budget, Graph, Node
from .nodes import TEXT_KEYS
from .widgets import name_widgets

MUTED, BYPASSED = 2, 4
# Link resolutions per file (each link is resolved once); a hostile workflow stops here.
BUILD_STEPS = 1_000_000
SUBGRAPH_INPUT, SUBGRAPH_OUTPUT = -10, -20
_IGNORED = frozenset({"Note", "MarkdownNote", "PrimitiveNode", "Reroute", "SetNode", "GetNode",
                      "easy setNode", "easy getNode", "Label (rgthree)", "Fast Groups Muter (rgthree)",
                      "Fast Groups Bypasser (rgthree)", "Bookmark (rgthree)"})
_SET_NODES = frozenset({"SetNode", "easy setNode"})
_GET_NODES = frozenset({"GetNode", "easy getNode"})
_DISPLAY_WORDS = ("show", "display", "preview any", "previewany", "note")
_MISSING = object()
_MODEL_FILE = re.compile(r"\.(safetensors|sft|ckpt|gguf|pt|pth|bin)$", re.IGNORECASE)
_NAME_KEYS = ("ckpt_name", "unet_name", "model_name", "lora_name", "base_ckpt_name", "model")


@dataclass
class _Scope:
    """One graph level: the top workflow, or one instance of a subgraph / group node."""
    prefix: str
    nodes: dict[str, dict[str, Any]]
    links: dict[Any, tuple[Any, int]]  # link id -> (origin node id, origin slot)
    parent: _Scope | None = None
    instance: dict[str, Any] | None = None  # the instance node in the parent scope
    definition: _Definition | None = None
    setters: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class _Definition:
    """What an instance's outer slots mean inside (a subgraph or a group node)."""
    nodes: list[dict[str, Any]]
    links: dict[Any, tuple[Any, int]]
    input_names: list[str]
    outputs: list[tuple[Any, int] | None]  # outer output slot -> inner (node id, slot)
    inner_inputs: dict[tuple[str, str], int] = field(default_factory=dict)  # group nodes


class _Builder:
    def __init__(self, data: dict[str, Any], budget: Budget) -> None:
        self.budget = budget
        self.out: dict[str, Node] = {}
        self.subgraphs: dict[str, dict[str, Any]] = {}
        definitions = data.get("definitions")
        if isinstance(definitions, dict) and isinstance(definitions.get("subgraphs"), list):
            for sub in definitions["subgraphs"]:
                if isinstance(sub, dict) and isinstance(sub.get("id"), str):
                    self.subgraphs[sub["id"]] = sub
        extra = data.get("extra")
        groups = extra.get("groupNodes") if isinstance(extra, dict) else None
        self.groups: dict[str, dict[str, Any]] = groups if isinstance(groups, dict) else {}
        self._definitions: dict[int, _Definition | None] = {}
        # Each (scope, link) is resolved once: long reroute chains shared by many inputs
        # cost their length once, not once per input.
        self._resolved: dict[tuple[str, Any], Any] = {}
        self.steps = 0

    # -- scopes ----------------------------------------------------------------------------
    def make_scope(self, raw_nodes: Any, links: dict[Any, tuple[Any, int]], prefix: str,
                   parent: _Scope | None = None, instance: dict[str, Any] | None = None,
                   definition: _Definition | None = None) -> _Scope:
        table: dict[str, dict[str, Any]] = {}
        for node in raw_nodes if isinstance(raw_nodes, list) else []:
            if isinstance(node, dict) and "id" in node and isinstance(node.get("type"), str):
                table[str(node["id"])] = node
        scope = _Scope(prefix, table, links, parent, instance, definition)
        for node in table.values():
            if node["type"] in _SET_NODES:
                name = _first_string(node.get("widgets_values"))
                if name is not None:
                    scope.setters[name] = node
        return scope

    def inner_scope(self, scope: _Scope, node: dict[str, Any]) -> _Scope | None:
        definition = self.definition(node)
        if definition is None:
            return None
        return self.make_scope(definition.nodes, definition.links,
                               f"{scope.prefix}{node['id']}:", scope, node, definition)

    def build(self, scope: _Scope, depth: int) -> None:
        for node_id, node in scope.nodes.items():
            if len(self.out) >= MAX_NODES or self.steps > BUILD_STEPS:
                self.budget.note(f"editor workflow too large: read its first {len(self.out)} nodes")
                return
            if node.get("mode") in (MUTED, BYPASSED) or node["type"] in _IGNORED:
                continue
            if self.is_instance(node["type"]):
                if depth >= 8:
                    self.budget.note("subgraphs nested deeper than 8 levels")
                    continue
                inner = self.inner_scope(scope, node)
                if inner is not None:
                    self.build(inner, depth + 1)
                continue
            self.add_node(scope, node_id, node)

    def is_instance(self, type_name: str) -> bool:
        return type_name in self.subgraphs or self._group(type_name) is not None

    def definition(self, node: dict[str, Any]) -> _Definition | None:
        key = id(node)
        if key not in self._definitions:
            sub = self.subgraphs.get(node["type"])
            group = self._group(node["type"])
            if sub is not None:
                self._definitions[key] = _subgraph_definition(sub)
            elif group is not None:
                self._definitions[key] = _group_definition(group, node)
            else:
                self._definitions[key] = None
        return self._definitions[key]

    def _group(self, type_name: str) -> dict[str, Any] | None:
        for separator in (">", "/"):
            head, sep, name = type_name.partition(separator)
            if sep and head == "workflow" and isinstance(self.groups.get(name), dict):
                return self.groups[name]
        return None

    # -- nodes -----------------------------------------------------------------------------
    def add_node(self, scope: _Scope, node_id: str, node: dict[str, Any]) -> None:
        listed: list[str] = []
        slots: list[tuple[str, Any]] = []
        for entry in node.get("inputs") or []:
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                continue
            slots.append((entry["name"], entry.get("link")))
            widget = entry.get("widget")
            if isinstance(widget, dict) and isinstance(widget.get("name"), str):
                listed.append(widget["name"])
        outputs = tuple(str(o.get("name", "")).lower() for o in node.get("outputs") or []
                        if isinstance(o, dict))
        # Output-named widgets only for nodes whose inputs are those same values (text boxes,
        # constants, settings nodes), not for nodes that compute their outputs.
        mirror = all(name.lower() in outputs for name, _ in slots)
        inputs: dict[str, Any] = dict(name_widgets(node["type"], node.get("widgets_values"),
                                                   listed, outputs if mirror else ()))
        outer = scope.definition.inner_inputs if scope.definition else {}
        for name, link_id in slots:
            resolved: Any = _MISSING
            if link_id is not None:
                resolved = self.resolve_link(scope, link_id, 0)
            elif (node_id, name) in outer:
                resolved = self.instance_input(scope, outer[(node_id, name)], 0)
            if resolved is not _MISSING:
                inputs[name] = resolved
        lowered = node["type"].lower()
        if "load" in lowered and not any(k in inputs for k in _NAME_KEYS) and (
                "model" in outputs or "lora" in lowered) and "control" not in lowered:
            file_name = _model_file(node.get("widgets_values"))
            if file_name is not None:  # a loader of an unknown pack: the file it loads
                inputs["lora_name" if "lora" in lowered else "ckpt_name"] = file_name
        if not any(k in inputs for k in TEXT_KEYS) and "conditioning" in outputs \
                and "clip" in inputs:
            text = _prose(node.get("widgets_values"))
            if text is not None:  # an encoder of an unknown pack: its prompt widget
                inputs["text"] = text
        full_id = f"{scope.prefix}{node_id}"
        self.out[full_id] = Node(full_id, node["type"], inputs, outputs, _shown_text(node))

    def resolve_link(self, scope: _Scope, link_id: Any, depth: int) -> Any:
        """What a link carries: a Link to a real node, a literal, or _MISSING."""
        origin = scope.links.get(link_id) if isinstance(link_id, (int, str)) else None
        if origin is None:
            return _MISSING
        key = (scope.prefix, link_id)
        if key in self._resolved:
            return self._resolved[key]
        self._resolved[key] = _MISSING  # a reroute cycle resolves to nothing
        resolved = self.resolve_origin(scope, origin[0], origin[1], depth)
        self._resolved[key] = resolved
        return resolved

    def resolve_origin(self, scope: _Scope, origin_id: Any, slot: int, depth: int) -> Any:
        self.steps += 1
        if depth > MAX_DEPTH:
            self.budget.note(f"editor links nested deeper than {MAX_DEPTH}")
            return _MISSING
        if str(origin_id) == str(SUBGRAPH_INPUT):
            return self.instance_input(scope, slot, depth + 1)
        node = scope.nodes.get(str(origin_id))
        if node is None or node.get("mode") == MUTED:
            return _MISSING
        kind = node["type"]
        if kind == "PrimitiveNode":
            values = node.get("widgets_values")
            return values[0] if isinstance(values, list) and values else _MISSING
        if kind == "Reroute" or node.get("mode") == BYPASSED:
            return self._pass_through(scope, node, slot, depth)
        if kind in _GET_NODES:
            setter = scope.setters.get(_first_string(node.get("widgets_values")) or "")
            return _MISSING if setter is None else self._pass_through(scope, setter, 0, depth)
        if self.is_instance(kind):
            inner = self.inner_scope(scope, node)
            definition = inner.definition if inner is not None else None
            if inner is None or definition is None or not 0 <= slot < len(definition.outputs):
                return _MISSING
            target = definition.outputs[slot]
            if target is None:
                return _MISSING
            return self.resolve_origin(inner, target[0], target[1], depth + 1)
        return (f"{scope.prefix}{node['id']}", slot)

    def _pass_through(self, scope: _Scope, node: dict[str, Any], slot: int, depth: int) -> Any:
        """A reroute, a Set node, or a bypassed node: the input matching the output's type."""
        entries = [e for e in node.get("inputs") or [] if isinstance(e, dict)]
        outputs = [o for o in node.get("outputs") or [] if isinstance(o, dict)]
        wanted = outputs[slot].get("type") if 0 <= slot < len(outputs) else None

        def matches(entry: dict[str, Any]) -> bool:
            return entry.get("link") is not None and (
                wanted in (None, "*") or entry.get("type") in (wanted, "*"))

        # As the editor bypasses: the input at the output's own index when its type fits
        # (ControlNet Apply: positive->positive, negative->negative), else the first that fits.
        if 0 <= slot < len(entries) and matches(entries[slot]):
            return self.resolve_link(scope, entries[slot]["link"], depth + 1)
        candidates = [e for e in entries if matches(e)]
        if not candidates:
            return _MISSING
        return self.resolve_link(scope, candidates[0]["link"], depth + 1)

    def instance_input(self, scope: _Scope, slot: int, depth: int) -> Any:
        """Inside a subgraph/group instance: what the instance's input `slot` receives - the
        outer link, or the value of the widget the instance promotes for it."""
        instance, parent, definition = scope.instance, scope.parent, scope.definition
        if instance is None or parent is None or definition is None:
            return _MISSING
        name = definition.input_names[slot] if 0 <= slot < len(definition.input_names) else None
        entries = [e for e in instance.get("inputs") or [] if isinstance(e, dict)]
        entry = next((e for e in entries if e.get("name") == name), None)
        if entry is not None and entry.get("link") is not None:
            return self.resolve_link(parent, entry["link"], depth + 1)
        values = instance.get("widgets_values")
        if not isinstance(values, list) or name is None:
            return _MISSING
        properties = instance.get("properties")
        proxies = properties.get("proxyWidgets") if isinstance(properties, dict) else None
        if isinstance(proxies, list) and proxies:
            # ["-1", name]: the widget of the subgraph input `name`, in widgets_values order
            for index, proxy in enumerate(proxies):
                if (isinstance(proxy, list) and len(proxy) == 2 and str(proxy[0]) == "-1"
                        and proxy[1] == name and index < len(values)):
                    return values[index]
            return _MISSING
        widget_names = [e.get("name") for e in entries if isinstance(e.get("widget"), dict)]
        if name in widget_names and widget_names.index(name) < len(values):
            return values[widget_names.index(name)]
        return _MISSING


def workflow_graph(data: Any, budget: Budget | None = None) -> Graph | None:
    """The editor workflow as a Graph, or None if it is not one (or has no usable node)."""
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), list):
        return None
    graph_budget = budget or Budget()
    builder = _Builder(data, graph_budget)
    builder.build(builder.make_scope(data["nodes"], _link_table(data.get("links")), ""), 0)
    if not builder.out:
        return None
    return Graph(builder.out, graph_budget)


# --- definitions ----------------------------------------------------------------------------

def _link_table(raw: Any) -> dict[Any, tuple[Any, int]]:
    table: dict[Any, tuple[Any, int]] = {}
    for link in raw if isinstance(raw, list) else []:
        if isinstance(link, list) and len(link) >= 3 and isinstance(link[2], int):
            table[link[0]] = (link[1], link[2])
        elif isinstance(link, dict) and "id" in link and isinstance(link.get("origin_slot"), int):
            table[link["id"]] = (link.get("origin_id"), link["origin_slot"])
    return table


def _subgraph_definition(sub: dict[str, Any]) -> _Definition | None:
    raw_nodes = sub.get("nodes")
    if not isinstance(raw_nodes, list):
        return None
    links = _link_table(sub.get("links"))
    outputs: list[tuple[Any, int] | None] = []
    for index, _output in enumerate(sub.get("outputs") or []):
        target = None
        for link in sub.get("links") or []:
            if (isinstance(link, dict) and str(link.get("target_id")) == str(SUBGRAPH_OUTPUT)
                    and link.get("target_slot") == index and isinstance(link.get("origin_slot"), int)):
                target = (link.get("origin_id"), link["origin_slot"])
        outputs.append(target)
    names = [str(i.get("name")) if isinstance(i, dict) else "" for i in sub.get("inputs") or []]
    return _Definition(raw_nodes, links, names, outputs)


def _group_definition(group: dict[str, Any], instance: dict[str, Any]) -> _Definition | None:
    """A group node's inner graph: inner nodes by index, widget values from the instance."""
    raw_nodes = group.get("nodes")
    if not isinstance(raw_nodes, list):
        return None
    inner_nodes: list[dict[str, Any]] = []
    for position, raw in enumerate(raw_nodes):
        if isinstance(raw, dict) and isinstance(raw.get("type"), str):
            copy = dict(raw)
            copy["id"] = raw.get("index", position)
            copy["inputs"] = [dict(e) for e in raw.get("inputs") or [] if isinstance(e, dict)]
            inner_nodes.append(copy)
    by_index = {str(n["id"]): n for n in inner_nodes}
    links: dict[Any, tuple[Any, int]] = {}
    linked_outputs: set[tuple[str, int]] = set()
    for number, link in enumerate(group.get("links") or []):
        if not (isinstance(link, list) and len(link) >= 4):
            continue
        origin, origin_slot, target, target_slot = link[:4]
        node = by_index.get(str(target))
        if node is None or not isinstance(origin_slot, int) or not isinstance(target_slot, int):
            continue
        link_id = f"g{number}"
        links[link_id] = (origin, origin_slot)
        linked_outputs.add((str(origin), origin_slot))
        if 0 <= target_slot < len(node["inputs"]):
            node["inputs"][target_slot]["link"] = link_id
    external = {(str(e[0]), e[1]) for e in group.get("external") or []
                if isinstance(e, list) and len(e) >= 2}
    outputs: list[tuple[Any, int] | None] = []
    for node in inner_nodes:
        for slot, _output in enumerate(node.get("outputs") or []):
            key = (str(node["id"]), slot)
            if key not in linked_outputs or key in external:
                outputs.append((node["id"], slot))
    # Outer inputs: the inner inputs not linked inside, in node order.
    inner_inputs: dict[tuple[str, str], int] = {}
    names: list[str] = []
    for node in inner_nodes:
        for entry in node["inputs"]:
            if entry.get("link") is None and not isinstance(entry.get("widget"), dict):
                inner_inputs[(str(node["id"]), str(entry.get("name")))] = len(names)
                names.append(str(entry.get("name")))
    outer_names = [str(e.get("name")) for e in instance.get("inputs") or []
                   if isinstance(e, dict) and not isinstance(e.get("widget"), dict)]
    if len(outer_names) == len(names):
        names = outer_names
    # Widget values: the instance's list is the inner nodes' lists one after the other.
    values = instance.get("widgets_values")
    if isinstance(values, list):
        offset = 0
        for node in inner_nodes:
            own = node.get("widgets_values")
            count = len(own) if isinstance(own, list) else 0
            if count and offset + count <= len(values):
                node["widgets_values"] = values[offset:offset + count]
            offset += count
    return _Definition(inner_nodes, links, names, outputs, inner_inputs)


def _model_file(values: Any) -> str | None:
    for value in values if isinstance(values, list) else []:
        if isinstance(value, str) and _MODEL_FILE.search(value):
            return value
    return None


def _prose(values: Any) -> str | None:
    """The widget value that reads like a prompt (has a space or comma), the longest one."""
    texts = [v for v in values if isinstance(v, str) and (" " in v or "," in v)] \
        if isinstance(values, list) else []
    return max(texts, key=len) if texts else None


def _first_string(values: Any) -> str | None:
    if isinstance(values, list) and values and isinstance(values[0], str):
        return values[0]
    return None


def _shown_text(node: dict[str, Any]) -> str | None:
    lowered = node["type"].lower()
    if not any(word in lowered for word in _DISPLAY_WORDS) or "image" in lowered:
        return None
    values = node.get("widgets_values")
    while isinstance(values, list) and values:
        values = values[0] if isinstance(values[0], (list, str)) else None
    return values if isinstance(values, str) and values.strip() else None


def merge_editor_details(api: Graph, editor: Graph) -> None:
    """Give API nodes what only the editor knows: output names, shown text, and widget
    values the API graph lacks (never overriding it)."""
    for node_id, node in api.nodes.items():
        twin = editor.nodes.get(node_id)
        if twin is None or twin.class_type != node.class_type:
            continue
        if twin.outputs and not node.outputs:
            node.outputs = twin.outputs
        if twin.shown is not None and node.shown is None:
            node.shown = twin.shown
        for key, value in twin.inputs.items():
            if key not in node.inputs and not isinstance(value, tuple):
                node.inputs[key] = value
