"""The one graph shape both ComfyUI formats are read into, and the budget every walk spends.

The API graph (`prompt` chunk) is `{node_id: {"class_type", "inputs"}}`; an input is a literal
or a link `[source_id, output_index]`. Here a link becomes a `(source_id, slot)` tuple (JSON
has no tuples, so a tuple is always a link and a list is always a literal). The editor
workflow adds what the API graph lacks: output names, titles and the text display nodes show.

Graphs are untrusted input: links may dangle or form cycles and a file may hold 100,000 nodes.
Every walk goes through `Graph.visit`, which charges a per-file `Budget`; when it runs out the
walks stop where they are and the result says so (`Budget.note`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

Link = tuple[str, int]

# Node visits per file, all walks together. Real graphs (a few hundred nodes) need a few
# thousand; the cap keeps a hostile 100k-node graph to milliseconds.
DEFAULT_BUDGET = 50_000
# Nested walks (value -> concat -> switch -> ...) recurse; deeper chains are cut off here,
# well inside Python's recursion limit.
MAX_DEPTH = 120
# Nodes kept from one file; a larger graph is cut and the result says so.
MAX_NODES = 200_000


def is_link(value: Any) -> bool:
    return isinstance(value, tuple)


def as_link(value: Any) -> Link | None:
    """A JSON `[source_id, slot]` as a Link, else None (booleans are not ids or slots)."""
    if (isinstance(value, list) and len(value) == 2 and isinstance(value[0], (str, int))
            and not isinstance(value[0], bool) and isinstance(value[1], int)
            and not isinstance(value[1], bool) and 0 <= value[1] < 10_000):
        return (str(value[0]), value[1])
    return None


@dataclass(slots=True)
class Node:
    id: str
    class_type: str
    inputs: dict[str, Any]
    # Output names, lower-cased ("positive", "model", "conditioning+"), when the editor
    # workflow says; empty when only the API graph is known.
    outputs: tuple[str, ...] = ()
    # Text a display node (ShowText, showAnything...) showed in the editor: the value of its
    # input at some run, not necessarily this one; a last resort.
    shown: str | None = None


class Budget:
    def __init__(self, limit: int = DEFAULT_BUDGET) -> None:
        self.limit = limit
        self.used = 0
        self.reason: str | None = None

    def spend(self) -> bool:
        self.used += 1
        if self.used > self.limit:
            if self.reason is None:
                self.reason = f"budget exhausted after {self.limit} node visits"
            return False
        return True

    def note(self, reason: str) -> None:
        """Record why a walk stopped early (the first reason is kept)."""
        if self.reason is None:
            self.reason = reason

    @property
    def exhausted(self) -> bool:
        return self.used > self.limit


@dataclass
class Graph:
    nodes: dict[str, Node]
    budget: Budget = field(default_factory=Budget)
    truncated_from: int | None = None  # original node count when the file held more
    _consumers: dict[Link, list[str]] | None = field(default=None, repr=False)

    def visit(self, link: Any) -> Node | None:
        """The node a link points to, charging the budget; None if dangling or out of budget."""
        if not is_link(link) or not self.budget.spend():
            return None
        return self.nodes.get(link[0])

    def consumers(self, link: Link) -> list[str]:
        """Ids of nodes with an input linked to `link` (built once, on first use)."""
        if self._consumers is None:
            index: dict[Link, list[str]] = {}
            for node in self.nodes.values():
                for value in node.inputs.values():
                    if is_link(value):
                        index.setdefault(value, []).append(node.id)
            self._consumers = index
        return self._consumers.get(link, [])

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes.values())

    def __len__(self) -> int:
        return len(self.nodes)


def api_graph(data: Any) -> Graph | None:
    """The API graph of a decoded `prompt` chunk (or a wrapper with a `prompt` key), else None."""
    if isinstance(data, dict) and isinstance(data.get("prompt"), dict):
        data = data["prompt"]
    if not isinstance(data, dict):
        return None
    nodes: dict[str, Node] = {}
    total = 0
    for node_id, node in data.items():
        if not isinstance(node, dict) or not isinstance(node.get("class_type"), str):
            continue
        total += 1
        if len(nodes) >= MAX_NODES:
            continue
        raw_inputs = node.get("inputs")
        inputs: dict[str, Any] = {}
        if isinstance(raw_inputs, dict):
            for key, value in raw_inputs.items():
                link = as_link(value)
                inputs[str(key)] = link if link is not None else value
        nodes[str(node_id)] = Node(str(node_id), node["class_type"], inputs)
    if not nodes:
        return None
    graph = Graph(nodes)
    if total > len(nodes):
        graph.truncated_from = total
        graph.budget.note(f"graph cut to its first {MAX_NODES} of {total} nodes")
    return graph
