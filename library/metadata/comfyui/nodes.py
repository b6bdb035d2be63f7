"""What the walks know about node types: input names, shapes and the custom packs' quirks.

Custom nodes are recognised by the *shape* of their inputs first (a node with positive and
negative conditioning, a model and a latent is a sampler; a node with a `ckpt_name` loads a
model)
and by class name only where the shape is ambiguous. The names below come from the node packs
people use (core, rgthree, Impact, Inspire, Efficiency, WAS, Comfyroll, Easy-Use, KJNodes,
pysssss, GGUF, NF4, Kolors, PixArt, WanVideo, RvTools, Crystools, Image Saver).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from .graph import Node, is_link

# --- samplers -------------------------------------------------------------------------------

# Class names that are samplers whatever their inputs look like.
SAMPLER_CLASSES = frozenset({
    "KSampler", "KSamplerAdvanced", "SamplerCustom", "SamplerCustomAdvanced",
    "KSampler (Efficient)", "KSampler Adv. (Efficient)", "KSampler SDXL (Eff.)",
    "KSamplerAdvanced //Inspire", "KSampler //Inspire", "easy kSampler", "easy fullkSampler",
    "easy kSamplerAdvanced", "easy kSamplerSDTurbo", "WanVideoSampler", "KSampler_A1111",
})
_SAMPLER_NAME = re.compile(r"sampler|sampling", re.IGNORECASE)
# ... but not these, which make SAMPLER objects, schedules or settings for a real sampler.
_NOT_SAMPLER_NAME = re.compile(r"select|schedul|sigma|preview|save|guider|noise|settings|"
                               r"presampling|loader|switch|provider", re.IGNORECASE)
LATENT_KEYS = ("latent_image", "latent", "samples", "latents", "latent_input")
IMAGE_KEYS = ("image", "images", "pixels", "input_image")
SEED_KEYS = ("seed", "noise_seed", "seed_value", "seed_num")
# A sampler's own settings, by role, in the spellings custom samplers use.
SETTING_KEYS: dict[str, tuple[str, ...]] = {
    "seed": SEED_KEYS,
    "steps": ("steps", "Steps", "step"),
    "cfg": ("cfg", "CFG", "cfg_scale", "guidance_scale"),
    "sampler_name": ("sampler_name", "Sampler", "sampler"),
    "scheduler": ("scheduler", "Scheduler", "schedule"),
}
# Links that bundle several values (pipes, contexts, tuples): followed to find a value the
# node does not hold itself.
BUNDLE_KEY = re.compile(r"pipe|context|ctx|tuple|bus|^base$|settings", re.IGNORECASE)

# --- conditioning ---------------------------------------------------------------------------

# Where encoders keep their text, most specific first (SDXL g/l, SD3/Flux t5xxl/clip_l,
# Lumina user_prompt, Impact/Inspire wildcards, Kolors/Hunyuan "prompt").
TEXT_KEYS = ("text", "text_g", "text_l", "t5xxl", "clip_l", "clip_g", "prompt", "user_prompt",
             "text_positive", "wildcard_text", "string", "Text")
ROLE_KEYS: dict[str, tuple[str, ...]] = {
    "positive": ("positive", "pos", "positive_prompt", "positive_text", "text_positive",
                 "prompt_positive", "Positive", "positive_g"),
    "negative": ("negative", "neg", "negative_prompt", "negative_text", "text_negative",
                 "prompt_negative", "Negative", "negative_g"),
    "model": ("model", "MODEL", "base_model", "unet", "diffusion_model", "model1", "opt_model",
              "model_a"),
}
# Inputs that never carry conditioning text; not followed when collecting prompts.
NOT_CONDITIONING = frozenset({
    "clip", "model", "vae", "image", "images", "pixels", "mask", "control_net", "clip_vision",
    "clip_vision_output", "style_model", "upscale_model", "samples", "latent", "latent_image",
    "noise", "sampler", "sigmas", "lora_stack", "ipadapter", "controlnet", "seed", "opt_model",
    "opt_clip", "guider", "script", "optional_lora_stack", "unet", "bbox_detector",
    "sam_model_opt", "segm_detector_opt", "detailer_hook", "vae_opt", "upscale_model_opt",
    "model_opt", "clip_opt",
})
# Conditioning that is switched off: contributes no text.
ZERO_CONDITIONING = frozenset({"ConditioningZeroOut"})
# Lumina 2 / NetaYume prompts are "<system prompt> <Prompt Start> <user prompt>".
PROMPT_START = "<Prompt Start>"

# --- models and LoRAs -----------------------------------------------------------------------

# Inputs naming the model a loader loads (checkpoint, UNET/diffusion model, GGUF, NF4, ...).
MODEL_NAME_KEYS = ("ckpt_name", "unet_name", "base_ckpt_name", "gguf_name", "model_path",
                   "diffusion_model", "model_name", "model", "checkpoint", "ckpt")
# Numbered LoRA rows of stacks: lora_name_1 (Comfyroll, Efficiency), lora_1_name (Easy-Use),
# lora_01 (rgthree).
_LORA_NAME = re.compile(r"^lora_?(?:name_?)?(\d{1,3})(?:_name)?$|^lora_(\d{1,3})_name$")
_LORA_WEIGHT_KEYS = ("strength_model", "lora_strength", "lora_model_strength", "model_strength",
                     "strength", "weight", "lora_weight", "model_weight", "lora_wt")
_STACK_WEIGHT_PATTERNS = ("model_weight_{i}", "lora_wt_{i}", "model_str_{i}", "strength_{i}",
                          "lora_{i}_strength", "lora_{i}_model_strength", "strength_{i:02d}",
                          "lora_weight_{i}", "weight_{i}")
NONE_NAMES = frozenset({"none", "", "null", "(none)"})

# --- output names of nodes whose outputs mean different things, when no workflow says -------

KNOWN_OUTPUTS: dict[str, tuple[str, ...]] = {
    "Efficient Loader": ("model", "conditioning+", "conditioning-", "latent", "vae", "clip",
                         "dependencies"),
    "Eff. Loader SDXL": ("sdxl_tuple", "latent", "vae", "dependencies"),
    "Context (rgthree)": ("context", "model", "clip", "vae", "positive", "negative", "latent",
                          "image", "seed"),
    "Context Switch (rgthree)": ("context", "model", "clip", "vae", "positive", "negative",
                                 "latent", "image", "seed"),
    "Power Prompt (rgthree)": ("conditioning", "model", "clip", "text"),
    "Power Prompt - Simple (rgthree)": ("conditioning", "text"),
    "FromBasicPipe": ("model", "clip", "vae", "positive", "negative"),
    "FromBasicPipe_v2": ("basic_pipe", "model", "clip", "vae", "positive", "negative"),
    "ImpactWildcardEncode": ("model", "clip", "conditioning", "populated_text"),
    "easy fullLoader": ("pipe", "model", "vae", "clip", "positive", "negative", "latent"),
    "easy a1111Loader": ("pipe", "model", "vae"),
    "easy comfyLoader": ("pipe", "model", "vae"),
    "easy pipeOut": ("pipe", "model", "positive", "negative", "latent", "vae", "clip", "image",
                     "seed"),
    "CheckpointLoaderSimple": ("model", "clip", "vae"),
    "ControlNetApplyAdvanced": ("positive", "negative"),
    "ControlNetApplySD3": ("positive", "negative"),
    "InpaintModelConditioning": ("positive", "negative", "latent"),
}


def output_name(node: Node, slot: int) -> str | None:
    names = node.outputs or KNOWN_OUTPUTS.get(node.class_type, ())
    return names[slot] if 0 <= slot < len(names) else None


def role_of_output(name: str | None) -> str | None:
    """'CONDITIONING+' / 'POSITIVE' -> positive; 'CONDITIONING-' / 'negative' -> negative."""
    if not name:
        return None
    if "neg" in name or name.endswith("-"):
        return "negative"
    if "pos" in name or name.endswith("+"):
        return "positive"
    return None


def norm_key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def input_named(node: Node, name: str) -> str | None:
    """The input key matching an output name (case and punctuation aside), if any."""
    wanted = norm_key(name)
    if not wanted:
        return None
    for key in node.inputs:
        if norm_key(key) == wanted:
            return key
    return None


def bundle_links(node: Node) -> list[Any]:
    return [v for k, v in node.inputs.items() if is_link(v) and BUNDLE_KEY.search(k)]


def first_key(node: Node, keys: tuple[str, ...]) -> str | None:
    for key in keys:
        if key in node.inputs and node.inputs[key] is not None:
            return key
    return None


@lru_cache(maxsize=4096)
def _sampler_name(class_type: str) -> bool:
    return bool(_SAMPLER_NAME.search(class_type)) and not _NOT_SAMPLER_NAME.search(class_type)


_SAMPLER_HINTS = frozenset({"positive", "guider", "seed", "noise_seed", "steps", "seed_value",
                            "seed_num"})


def is_sampler(node: Node) -> bool:
    """A node that turns noise or a latent/image into a new one with a model and prompts."""
    inputs = node.inputs
    if node.class_type in SAMPLER_CLASSES:
        return True
    if _SAMPLER_HINTS.isdisjoint(inputs) and not _sampler_name(node.class_type):
        return False  # the common case, decided without scanning every input
    if is_link(inputs.get("guider")) and is_link(inputs.get("sigmas")):
        return True
    has_conditioning = is_link(inputs.get("positive")) and is_link(inputs.get("negative"))
    has_model = is_link(inputs.get("model")) or bool(bundle_links(node))
    has_input = any(is_link(inputs.get(k)) for k in LATENT_KEYS + IMAGE_KEYS)
    has_setting = any(k in inputs for k in SEED_KEYS + ("steps",))
    if has_conditioning and has_model and has_input and has_setting:
        return True
    if _sampler_name(node.class_type):
        return has_setting or bool(bundle_links(node)) or any(
            is_link(inputs.get(k)) for k in LATENT_KEYS)
    return False


def makes_latent_from_scratch(node: Node) -> bool:
    return node.class_type.startswith("Empty") or "EmptyLatent" in node.class_type


# --- switches -------------------------------------------------------------------------------

NUMBERED = re.compile(r"^(?:input|any|any_|ctx_|value|text|model|conditioning|clip|string|"
                       r"on)?_?(\d{1,3})$", re.IGNORECASE)


def switch_choice(node: Node, resolve: Any) -> list[str] | None:
    """The input(s) a switch passes on, most likely first; None if the node is no switch.

    `resolve(value)` turns a literal-or-link into a literal (the selector may be linked).
    """
    inputs = node.inputs
    name = node.class_type.lower()
    for key in ("switch", "boolean", "Boolean", "bool", "condition", "cond"):
        if key in inputs and ("on_true" in inputs or "on_false" in inputs
                              or "true" in inputs or "false" in inputs):
            flag = truthy(resolve(inputs[key]))
            if flag is None:
                return ["on_true", "true", "on_false", "false"]
            return ["on_true", "true"] if flag else ["on_false", "false"]
    selector_key = next((k for k in ("select", "Input", "input", "index", "select_index",
                                     "selected", "Select") if k in inputs), None)
    if selector_key is not None:
        numbered = {int(m.group(1)): k for k in inputs if k != selector_key
                    and (m := NUMBERED.match(k))}
        if numbered:
            choice = _int(resolve(inputs[selector_key]))
            if choice is not None and choice in numbered:
                return [numbered[choice]]
            if choice is not None and 0 in numbered and choice + 1 in numbered:
                return [numbered[choice]]
            return None
    if "switch" in name and ("rgthree" in name or "any" in name):
        # rgthree switches pass the first input that is connected and not muted; the API
        # graph only lists those.
        keys = [k for k in inputs if is_link(inputs[k])]
        return keys or None
    return None


def truthy(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return bool(value)
    if isinstance(value, str):
        if value.strip().lower() in ("true", "on", "yes", "1", "enabled"):
            return True
        if value.strip().lower() in ("false", "off", "no", "0", "disabled"):
            return False
    return None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


# --- LoRA name/weight pairs held by one node ------------------------------------------------

def lora_entries(node: Node) -> list[tuple[Any, Any, Any]]:
    """(name, weight, enabled) triples a node holds, before resolving links.

    Single loaders (`lora_name` + a strength), numbered stacks (Comfyroll `lora_name_1` +
    `switch_1`, Efficiency `lora_name_1` + `lora_wt_1`/`model_str_1` limited by `lora_count`,
    Easy-Use `lora_1_name` limited by `num_loras`, rgthree stack `lora_01` + `strength_01`)
    and rgthree Power Lora Loader rows (`{"on", "lora", "strength"}`).
    """
    inputs = node.inputs
    found: list[tuple[Any, Any, Any]] = []
    if "lora_name" in inputs:
        weight_key = first_key(node, _LORA_WEIGHT_KEYS)
        enabled = inputs.get("enabled", inputs.get("on", True))
        found.append((inputs["lora_name"], inputs.get(weight_key) if weight_key else None,
                      enabled))
    numbered: list[tuple[int, str]] = []
    for key in inputs:
        match = _LORA_NAME.match(key)
        if match and key != "lora_name" and not isinstance(inputs[key], dict):
            numbered.append((int(match.group(1) or match.group(2)), key))
    limit = None
    for count_key in ("lora_count", "num_loras", "loras_count"):
        if isinstance(inputs.get(count_key), int) and not isinstance(inputs[count_key], bool):
            limit = inputs[count_key]
    simple = str(inputs.get("input_mode", "simple")).lower() == "simple"
    for index, key in sorted(numbered):
        if limit is not None and index > limit:
            continue
        weight = None
        for pattern in _STACK_WEIGHT_PATTERNS:
            candidate = pattern.format(i=index)
            if candidate in inputs:
                if simple and candidate.startswith("model_str") and f"lora_wt_{index}" in inputs:
                    continue  # Efficiency: simple mode uses lora_wt_N
                weight = inputs[candidate]
                break
        switch = inputs.get(f"switch_{index}", inputs.get(f"lora_{index}_on", True))
        found.append((inputs[key], weight, switch))
    for value in inputs.values():
        if isinstance(value, dict) and isinstance(value.get("lora"), str):
            found.append((value["lora"], value.get("strength"), value.get("on", True)))
    return found


def lora_file_name(value: Any) -> str | None:
    """A LoRA name out of the shapes packs store it in (string, {"content": ...}, {"lora": ...})."""
    if isinstance(value, dict):
        value = value.get("content", value.get("lora", value.get("name")))
    if isinstance(value, str) and value.strip().lower() not in NONE_NAMES:
        return value
    return None


def enabled(value: Any) -> bool:
    flag = truthy(value)
    return True if flag is None else flag
