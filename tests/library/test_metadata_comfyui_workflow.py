"""ComfyUI editor workflows (`workflow` chunk): reroutes, primitives, bypass, Set/Get, widget
names, group nodes and subgraphs, and how the editor graph fills what the API graph lacks.
All workflows are written here, in the editor's JSON shape.
"""

from __future__ import annotations

import json
from typing import Any

from metadata_builders import comfy_png, open_bytes

from library.metadata import GenerationMetadata, Lora, read_metadata
from library.metadata.comfyui import parse_texts, workflow_graph
from library.metadata.comfyui.graph import DEFAULT_BUDGET
from library.metadata.values import MAX_JSON_CHARS


class Workflow:
    """Builds editor JSON: nodes with typed input/output slots and a link table."""

    def __init__(self) -> None:
        self.nodes: list[dict[str, Any]] = []
        self.links: list[list[Any]] = []
        self.by_id: dict[int | str, dict[str, Any]] = {}

    def add(self, node_id: int | str, kind: str, widgets: list[Any] | None = None,
            inputs: tuple[tuple[str, str], ...] = (), outputs: tuple[tuple[str, str], ...] = (),
            mode: int = 0, widget_inputs: tuple[str, ...] = (), **extra: Any) -> dict[str, Any]:
        node = {"id": node_id, "type": kind, "mode": mode,
                "inputs": [{"name": n, "type": t, "link": None} for n, t in inputs]
                + [{"name": n, "type": "*", "widget": {"name": n}, "link": None}
                   for n in widget_inputs],
                "outputs": [{"name": n, "type": t, "links": []} for n, t in outputs],
                "widgets_values": widgets if widgets is not None else [], **extra}
        self.nodes.append(node)
        self.by_id[node_id] = node
        return node

    def link(self, source: int | str, slot: int, target: int | str, name: str) -> None:
        link_id = len(self.links) + 1
        node = self.by_id[target]
        entry = next((e for e in node["inputs"] if e["name"] == name), None)
        if entry is None:
            entry = {"name": name, "type": "*", "link": None}
            node["inputs"].append(entry)
        entry["link"] = link_id
        kind = self.by_id[source]["outputs"][slot]["type"]
        self.links.append([link_id, source, slot, target, node["inputs"].index(entry), kind])

    def data(self, **extra: Any) -> dict[str, Any]:
        return {"nodes": self.nodes, "links": self.links, "version": 0.4, **extra}


def read_png(prompt: dict | None = None, workflow: dict | None = None) -> GenerationMetadata:
    with open_bytes(comfy_png(prompt, workflow)) as image:
        return read_metadata(image)


MODEL, CLIP, VAE = ("MODEL", "MODEL"), ("CLIP", "CLIP"), ("VAE", "VAE")
COND, LATENT, IMAGE = ("CONDITIONING", "CONDITIONING"), ("LATENT", "LATENT"), ("IMAGE", "IMAGE")


def basic(flow: Workflow) -> None:
    """Loader, two prompts, latent, KSampler (widgets with a control value), decode, save."""
    flow.add(1, "CheckpointLoaderSimple", ["wf.safetensors"], outputs=(MODEL, CLIP, VAE))
    flow.add(2, "CLIPTextEncode", ["a lighthouse"], inputs=(("clip", "CLIP"),), outputs=(COND,))
    flow.add(3, "CLIPTextEncode", ["fog"], inputs=(("clip", "CLIP"),), outputs=(COND,))
    flow.add(4, "EmptyLatentImage", [640, 960, 1], outputs=(LATENT,))
    flow.add(5, "KSampler", [42, "randomize", 30, 7, "euler", "normal", 1],
             inputs=(("model", "MODEL"), ("positive", "CONDITIONING"),
                     ("negative", "CONDITIONING"), ("latent_image", "LATENT")),
             outputs=(LATENT,))
    flow.add(6, "VAEDecode", inputs=(("samples", "LATENT"), ("vae", "VAE")), outputs=(IMAGE,))
    flow.add(7, "SaveImage", ["ComfyUI"], inputs=(("images", "IMAGE"),))
    for source, slot, target, name in ((1, 1, 2, "clip"), (1, 1, 3, "clip"), (1, 0, 5, "model"),
                                       (2, 0, 5, "positive"), (3, 0, 5, "negative"),
                                       (4, 0, 5, "latent_image"), (5, 0, 6, "samples"),
                                       (1, 2, 6, "vae"), (6, 0, 7, "images")):
        flow.link(source, slot, target, name)


def relink(flow: Workflow, target: int, name: str, source: int, slot: int = 0) -> None:
    """Point an existing input at another output."""
    node = flow.by_id[target]
    entry = next(e for e in node["inputs"] if e["name"] == name)
    link = next(item for item in flow.links if item[0] == entry["link"])
    link[1], link[2] = source, slot


def test_workflow_only_core_graph() -> None:
    flow = Workflow()
    basic(flow)
    meta = read_png(workflow=flow.data())
    assert (meta.generator, meta.generator_detail) == ("comfyui", "ComfyUI (editor workflow only)")
    assert (meta.prompt, meta.negative_prompt, meta.model) == ("a lighthouse", "fog", "wf.safetensors")
    assert (meta.seed, meta.steps, meta.cfg_scale, meta.sampler, meta.scheduler) == (
        42, 30, 7.0, "euler", "normal")
    assert (meta.width, meta.height) == (640, 960)


def test_reroutes_primitives_muted_nodes_and_set_get_pairs() -> None:
    flow = Workflow()
    basic(flow)
    flow.add(10, "PrimitiveNode", ["from a primitive", "fixed"], outputs=(("STRING", "STRING"),))
    flow.add(11, "Reroute", inputs=(("", "*"),), outputs=(("", "STRING"),))
    flow.add(12, "Reroute", inputs=(("", "*"),), outputs=(("", "STRING"),))
    flow.link(10, 0, 11, "")
    flow.link(11, 0, 12, "")
    flow.link(12, 0, 2, "text")
    flow.add(13, "SetNode", ["MODEL_A"], inputs=(("MODEL", "MODEL"),), outputs=(MODEL,))
    flow.add(14, "GetNode", ["MODEL_A"], outputs=(MODEL,))
    flow.link(1, 0, 13, "MODEL")
    relink(flow, 5, "model", 14)
    flow.add(15, "PrimitiveNode", [987, "increment"], outputs=(("INT", "INT"),))
    flow.link(15, 0, 5, "seed")
    flow.add(16, "KSampler", [1, "fixed", 1, 1, "lcm", "simple", 1], mode=2,  # muted
             inputs=(("latent_image", "LATENT"),), outputs=(LATENT,))
    meta = read_png(workflow=flow.data())
    assert (meta.prompt, meta.seed, meta.model, meta.sampler) == (
        "from a primitive", 987, "wf.safetensors", "euler")


def test_bypassed_node_passes_each_output_its_own_input() -> None:
    flow = Workflow()
    basic(flow)
    flow.add(20, "ControlNetApplyAdvanced", [0.8, 0, 1], mode=4,
             inputs=(("positive", "CONDITIONING"), ("negative", "CONDITIONING"),
                     ("control_net", "CONTROL_NET"), ("image", "IMAGE")),
             outputs=(("positive", "CONDITIONING"), ("negative", "CONDITIONING")))
    flow.link(2, 0, 20, "positive")
    flow.link(3, 0, 20, "negative")
    relink(flow, 5, "positive", 20, 0)
    relink(flow, 5, "negative", 20, 1)
    meta = read_png(workflow=flow.data())
    assert (meta.prompt, meta.negative_prompt) == ("a lighthouse", "fog")


def test_widget_names_from_inputs_outputs_and_shapes_of_unknown_nodes() -> None:
    flow = Workflow()
    basic(flow)
    # a newer editor lists every widget among the inputs: names for a node we have no table for
    flow.nodes[4] = flow.by_id[5] = {"id": 5, "type": "MyPack Sampler", "mode": 0,
                     "inputs": flow.nodes[4]["inputs"] + [
                         {"name": n, "type": "*", "widget": {"name": n}, "link": None}
                         for n in ("seed", "steps", "cfg", "sampler_name", "scheduler")],
                     "outputs": [{"name": "LATENT", "type": "LATENT", "links": []}],
                     "widgets_values": [555, "fixed", 12, 4.5, "dpmpp_2m", "karras"]}
    # a settings node whose widgets mirror its outputs
    flow.add(30, "Sampler Scheduler Settings (JPS)", ["uni_pc", "beta"],
             outputs=(("sampler_name", "COMBO"), ("scheduler", "COMBO")))
    flow.link(30, 0, 5, "sampler_name")
    # an encoder and a loader of packs we do not know
    flow.add(31, "Fancy Text Encode", ["clip_l", "a lighthouse on a cliff", "mean"],
             inputs=(("clip", "CLIP"),), outputs=(COND,))
    flow.link(1, 1, 31, "clip")
    relink(flow, 5, "positive", 31)
    flow.add(32, "Fancy Model Loader", ["fp8", "fancy-v2.gguf"], outputs=(MODEL,))
    relink(flow, 5, "model", 32)
    meta = read_png(workflow=flow.data())
    assert (meta.seed, meta.steps, meta.cfg_scale, meta.sampler) == (555, 12, 4.5, "uni_pc")
    assert (meta.prompt, meta.model) == ("a lighthouse on a cliff", "fancy-v2.gguf")


def test_group_node_expands_with_instance_widget_values() -> None:
    flow = Workflow()
    basic(flow)
    inner = [
        {"index": 0, "type": "CheckpointLoaderSimple", "widgets_values": ["inner.safetensors"],
         "inputs": [{"name": "ckpt_name", "type": "COMBO", "widget": {"name": "ckpt_name"},
                     "link": None}],
         "outputs": [{"name": "MODEL", "type": "MODEL"}, {"name": "CLIP", "type": "CLIP"},
                     {"name": "VAE", "type": "VAE"}]},
        {"index": 1, "type": "CLIPTextEncode", "widgets_values": ["default prompt"],
         "inputs": [{"name": "clip", "type": "CLIP", "link": None}],
         "outputs": [{"name": "CONDITIONING", "type": "CONDITIONING"}]},
        {"index": 2, "type": "CLIPTextEncode", "widgets_values": ["default negative"],
         "inputs": [{"name": "clip", "type": "CLIP", "link": None}],
         "outputs": [{"name": "CONDITIONING", "type": "CONDITIONING"}]},
    ]
    group = {"nodes": inner, "links": [[0, 1, 1, 0, 1, "CLIP"], [0, 1, 2, 0, 1, "CLIP"]],
             "external": [[1, 0, "CONDITIONING"], [2, 0, "CONDITIONING"]]}
    # outputs: MODEL, VAE (CLIP is used inside), then both CONDITIONINGs
    flow.add(40, "workflow>Loader+Prompts", ["group.safetensors", "grouped prompt", "grouped neg"],
             outputs=(MODEL, VAE, COND, COND))
    relink(flow, 5, "model", 40, 0)
    relink(flow, 5, "positive", 40, 2)
    relink(flow, 5, "negative", 40, 3)
    data = flow.data(extra={"groupNodes": {"Loader+Prompts": group}})
    graph = workflow_graph(data)
    assert graph is not None and graph.nodes["40:1"].inputs["text"] == "grouped prompt"
    meta = read_png(workflow=data)
    assert (meta.model, meta.prompt, meta.negative_prompt) == (
        "group.safetensors", "grouped prompt", "grouped neg")


def subgraph(sub_id: str, name: str, nodes: list[dict], links: list[dict], inputs: list[str],
             outputs: int = 1) -> dict[str, Any]:
    return {"id": sub_id, "name": name, "nodes": nodes, "links": links,
            "inputs": [{"id": f"in-{n}", "name": n, "type": "*"} for n in inputs],
            "outputs": [{"id": f"out-{i}", "name": "OUT", "type": "*"} for i in range(outputs)],
            "inputNode": {"id": -10}, "outputNode": {"id": -20}}


def sub_link(link_id: int, origin: int, origin_slot: int, target: int, target_slot: int) -> dict:
    return {"id": link_id, "origin_id": origin, "origin_slot": origin_slot,
            "target_id": target, "target_slot": target_slot, "type": "*"}


def test_nested_subgraphs_with_promoted_widgets() -> None:
    # inner subgraph: prompt text -> encoder (its own widget value is stale and must lose)
    encoder = subgraph("sub-enc", "Encode", [
        {"id": 1, "type": "CLIPTextEncode", "mode": 0, "widgets_values": ["stale inner text"],
         "inputs": [{"name": "clip", "type": "CLIP", "link": 1},
                    {"name": "text", "type": "STRING", "widget": {"name": "text"}, "link": 2}],
         "outputs": [{"name": "CONDITIONING", "type": "CONDITIONING"}]},
    ], [sub_link(1, -10, 0, 1, 0), sub_link(2, -10, 1, 1, 1), sub_link(3, 1, 0, -20, 0)],
        ["clip", "text"])
    # outer subgraph: loader + the encoder subgraph + sampler; seed and text promoted
    outer = subgraph("sub-t2i", "Text to image", [
        {"id": 10, "type": "CheckpointLoaderSimple", "mode": 0, "widgets_values": ["sub.safetensors"],
         "inputs": [], "outputs": [{"name": "MODEL", "type": "MODEL"}, {"name": "CLIP", "type": "CLIP"},
                                   {"name": "VAE", "type": "VAE"}]},
        {"id": 11, "type": "sub-enc", "mode": 0,
         "inputs": [{"name": "clip", "type": "CLIP", "link": 11},
                    {"name": "text", "type": "STRING", "link": 12}],
         "outputs": [{"name": "OUT", "type": "CONDITIONING"}]},
        {"id": 12, "type": "EmptyLatentImage", "mode": 0, "widgets_values": [768, 512, 1],
         "inputs": [], "outputs": [{"name": "LATENT", "type": "LATENT"}]},
        {"id": 13, "type": "KSampler", "mode": 0,
         "widgets_values": [1, "randomize", 8, 1.5, "euler", "simple", 1],
         "inputs": [{"name": "model", "type": "MODEL", "link": 13},
                    {"name": "positive", "type": "CONDITIONING", "link": 14},
                    {"name": "negative", "type": "CONDITIONING", "link": 15},
                    {"name": "latent_image", "type": "LATENT", "link": 16},
                    {"name": "seed", "type": "INT", "widget": {"name": "seed"}, "link": 17}],
         "outputs": [{"name": "LATENT", "type": "LATENT"}]},
    ], [sub_link(11, 10, 1, 11, 0), sub_link(12, -10, 1, 11, 1), sub_link(13, 10, 0, 13, 0),
        sub_link(14, 11, 0, 13, 1), sub_link(15, 11, 0, 13, 2), sub_link(16, 12, 0, 13, 3),
        sub_link(17, -10, 0, 13, 4), sub_link(18, 13, 0, -20, 0)],
        ["seed", "prompt"])
    flow = Workflow()
    # newer editor: the instance lists promoted widgets as inputs, values in that order
    flow.add(50, "sub-t2i", [2024, "a harbour at night"], outputs=(LATENT,),
             widget_inputs=("seed", "prompt"))
    flow.add(51, "VAEDecode", inputs=(("samples", "LATENT"),), outputs=(IMAGE,))
    flow.add(52, "SaveImage", ["x"], inputs=(("images", "IMAGE"),))
    flow.link(50, 0, 51, "samples")
    flow.link(51, 0, 52, "images")
    data = flow.data(definitions={"subgraphs": [encoder, outer]})
    graph = workflow_graph(data)
    assert graph is not None and {"50:13", "50:11:1"} <= set(graph.nodes)  # API-style ids
    meta = read_png(workflow=data)
    assert (meta.seed, meta.prompt, meta.model, meta.steps) == (2024, "a harbour at night",
                                                                 "sub.safetensors", 8)
    assert (meta.width, meta.height) == (768, 512)
    # older editor: no widget inputs, `proxyWidgets` says which widget each value is
    instance = flow.nodes[0]
    instance["inputs"] = []
    instance["properties"] = {"proxyWidgets": [["-1", "prompt"], ["-1", "seed"]]}
    instance["widgets_values"] = ["a harbour by day", 7]
    meta = read_png(workflow=flow.data(definitions={"subgraphs": [encoder, outer]}))
    assert (meta.seed, meta.prompt) == (7, "a harbour by day")


def test_api_graph_wins_and_the_editor_fills_what_it_lacks() -> None:
    flow = Workflow()
    basic(flow)
    flow.add(60, "MyPack Pipe Out", outputs=(("model", "MODEL"), ("positive", "CONDITIONING"),
                                            ("negative", "CONDITIONING")))
    prompt = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "api.safetensors"}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "api prompt", "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "api negative", "clip": ["1", 1]}},
        "60": {"class_type": "MyPack Pipe Out", "inputs": {"pos_in": ["2", 0], "negative": ["3", 0]}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512}},
        # the API graph lacks cfg; the editor's KSampler has it (7)
        "5": {"class_type": "KSampler", "inputs": {
            "seed": 1, "steps": 20, "sampler_name": "euler", "scheduler": "normal",
            "model": ["1", 0], "positive": ["2", 0], "negative": ["60", 2],
            "latent_image": ["4", 0]}},
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0]}},
    }
    meta = read_png(prompt=prompt, workflow=flow.data())
    assert meta.generator_detail == "ComfyUI"
    assert (meta.prompt, meta.model, meta.seed) == ("api prompt", "api.safetensors", 1)
    assert meta.cfg_scale == 7.0  # from the editor
    # output slot 2 is "negative" only the editor knows: the right text, not the positive
    assert meta.negative_prompt == "api negative"


def test_user_comment_json_with_prompt_and_workflow() -> None:
    flow = Workflow()
    basic(flow)
    texts = {"EXIF:UserComment": json.dumps({"workflow": flow.data()})}
    meta = parse_texts(texts)
    assert meta is not None and (meta.prompt, meta.seed) == ("a lighthouse", 42)


def test_hundred_thousand_node_workflow_is_read_in_part_and_says_so() -> None:
    flow = Workflow()
    basic(flow)
    for index in range(50_000):  # 100k nodes: previews of the decoded image, each via a node
        invert, preview, link = 1000 + index, 100_000 + index, 10 + 2 * index
        flow.nodes.append({"id": invert, "type": "ImageInvert",
                           "inputs": [{"name": "image", "type": "IMAGE", "link": link}],
                           "outputs": [{"name": "IMAGE", "type": "IMAGE"}]})
        flow.nodes.append({"id": preview, "type": "PreviewImage",
                           "inputs": [{"name": "images", "type": "IMAGE", "link": link + 1}]})
        flow.links += [[link, 6, 0, invert, 0, "IMAGE"], [link + 1, invert, 0, preview, 0, "IMAGE"]]
    text = json.dumps(flow.data(), separators=(",", ":"))
    meta = parse_texts({"workflow": text})
    assert meta is not None and (meta.prompt, meta.seed) == ("a lighthouse", 42)
    assert meta.walk_incomplete is not None
    assert meta.walk_incomplete.startswith(f"budget exhausted after {DEFAULT_BUDGET} node visits")


def test_graph_text_too_large_to_read_is_reported() -> None:
    text = '{"nodes": [' + " " * MAX_JSON_CHARS + "]}"
    meta = parse_texts({"workflow": text})
    assert meta is not None and meta.generator == "comfyui" and meta.prompt is None
    assert meta.walk_incomplete is not None and "too large" in meta.walk_incomplete


def test_lora_rows_of_power_lora_loader_in_the_editor() -> None:
    flow = Workflow()
    basic(flow)
    flow.add(70, "Power Lora Loader (rgthree)",
             [{}, {"type": "PowerLoraLoaderHeaderWidget"},
              {"on": True, "lora": "flux/ink.safetensors", "strength": 0.7},
              {"on": False, "lora": "off.safetensors", "strength": 1}, {}, ""],
             inputs=(("model", "MODEL"), ("clip", "CLIP")), outputs=(MODEL, CLIP))
    flow.link(1, 0, 70, "model")
    relink(flow, 5, "model", 70)
    meta = read_png(workflow=flow.data())
    assert (meta.model, meta.loras) == ("wf.safetensors", [Lora("ink", 0.7)])
