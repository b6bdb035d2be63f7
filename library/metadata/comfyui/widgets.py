"""Names of the widget values the editor workflow stores positionally.

The editor keeps `widgets_values` as a list; the API graph names them. Newer editors list
every widget among a node's `inputs` (`{"name", "widget": {"name"}}`), which names them; older
files and nodes whose widgets are not all listed need the order their node declares, kept
here for core nodes and the common packs (taken from the packs' INPUT_TYPES order).
"?control" marks the "control after generate" value that follows seed widgets when present;
"~name" a string widget that older versions of the node lack.
"""

from __future__ import annotations

import re
from typing import Any

CONTROL_VALUES = frozenset({"fixed", "increment", "decrement", "randomize", "fixed_seed",
                            "new random", "increment_seed"})
_SEED = ("seed", "?control")

_ORDER: dict[str, tuple[str, ...]] = {
    # core samplers and their parts
    "KSampler": (*_SEED, "steps", "cfg", "sampler_name", "scheduler", "denoise"),
    "KSamplerAdvanced": ("add_noise", "noise_seed", "?control", "steps", "cfg", "sampler_name",
                         "scheduler", "start_at_step", "end_at_step",
                         "return_with_leftover_noise"),
    "SamplerCustom": ("add_noise", "noise_seed", "?control", "cfg"),
    "RandomNoise": ("noise_seed", "?control"),
    "CFGGuider": ("cfg",),
    "DualCFGGuider": ("cfg_conds", "cfg_cond2_negative"),
    "KSamplerSelect": ("sampler_name",),
    "BasicScheduler": ("scheduler", "steps", "denoise"),
    "KarrasScheduler": ("steps", "sigma_max", "sigma_min", "rho"),
    "ExponentialScheduler": ("steps", "sigma_max", "sigma_min"),
    "PolyexponentialScheduler": ("steps", "sigma_max", "sigma_min", "rho"),
    "BetaSamplingScheduler": ("steps", "alpha", "beta"),
    "SDTurboScheduler": ("steps", "denoise"),
    "AlignYourStepsScheduler": ("model_type", "steps", "denoise"),
    "FluxGuidance": ("guidance",),
    # encoders
    "CLIPTextEncode": ("text",),
    "CLIPTextEncodeSDXL": ("width", "height", "crop_w", "crop_h", "target_width",
                           "target_height", "text_g", "text_l"),
    "CLIPTextEncodeSDXLRefiner": ("ascore", "width", "height", "text"),
    "CLIPTextEncodeFlux": ("clip_l", "t5xxl", "guidance"),
    "CLIPTextEncodeSD3": ("clip_l", "clip_g", "t5xxl", "empty_padding"),
    "CLIPTextEncodeLumina2": ("system_prompt", "user_prompt"),
    "CLIPTextEncodeHunyuanDiT": ("bert", "mt5xl"),
    "TextEncodeQwenImageEdit": ("prompt",),
    "TextEncodeQwenImageEditPlus": ("prompt",),
    # loaders
    "CheckpointLoaderSimple": ("ckpt_name",),
    "CheckpointLoader": ("config_name", "ckpt_name"),
    "ImageOnlyCheckpointLoader": ("ckpt_name",),
    "UNETLoader": ("unet_name", "weight_dtype"),
    "UnetLoaderGGUF": ("unet_name",),
    "UnetLoaderGGUFAdvanced": ("unet_name", "dequant_dtype", "patch_dtype", "patch_on_device"),
    "CheckpointLoaderNF4": ("ckpt_name",),
    "UNETLoaderNF4": ("unet_name",),
    "DiffusionModelLoaderKJ": ("model_name", "weight_dtype", "compute_dtype"),
    "LoraLoader": ("lora_name", "strength_model", "strength_clip"),
    "LoraLoaderModelOnly": ("lora_name", "strength_model"),
    "UpscaleModelLoader": ("model_name",),
    # latents and sizes
    "EmptyLatentImage": ("width", "height", "batch_size"),
    "EmptySD3LatentImage": ("width", "height", "batch_size"),
    "EmptyHunyuanLatentVideo": ("width", "height", "length", "batch_size"),
    "EmptyMochiLatentVideo": ("width", "height", "length", "batch_size"),
    "EmptyLTXVLatentVideo": ("width", "height", "length", "batch_size"),
    "LatentUpscale": ("upscale_method", "width", "height", "crop"),
    "LatentUpscaleBy": ("upscale_method", "scale_by"),
    "ImageScale": ("upscale_method", "width", "height", "crop"),
    "ImageScaleBy": ("upscale_method", "scale_by"),
    "ImageScaleToTotalPixels": ("upscale_method", "megapixels"),
    # values
    "PrimitiveNode": ("value", "?control"),
    "PrimitiveInt": ("value", "?control"),
    "PrimitiveFloat": ("value",),
    "PrimitiveString": ("value",),
    "PrimitiveStringMultiline": ("value",),
    "PrimitiveBoolean": ("value",),
    "StringConcatenate": ("string_a", "string_b", "delimiter"),
    "ComfySwitchNode": ("switch",),
    # Efficiency
    "Efficient Loader": ("ckpt_name", "vae_name", "clip_skip", "lora_name",
                         "lora_model_strength", "lora_clip_strength", "positive", "negative",
                         "token_normalization", "weight_interpretation", "empty_latent_width",
                         "empty_latent_height", "batch_size"),
    "Eff. Loader SDXL": ("base_ckpt_name", "base_clip_skip", "refiner_ckpt_name",
                         "refiner_clip_skip", "positive_ascore", "negative_ascore", "vae_name",
                         "positive", "negative", "token_normalization",
                         "weight_interpretation", "empty_latent_width", "empty_latent_height",
                         "batch_size"),
    "KSampler (Efficient)": (*_SEED, "steps", "cfg", "sampler_name", "scheduler", "denoise",
                             "preview_method", "vae_decode"),
    "KSampler Adv. (Efficient)": ("add_noise", "noise_seed", "?control", "steps", "cfg",
                                  "sampler_name", "scheduler", "start_at_step", "end_at_step",
                                  "return_with_leftover_noise", "preview_method", "vae_decode"),
    "KSampler SDXL (Eff.)": ("~sampler_state", "noise_seed", "?control", "steps", "cfg",
                             "sampler_name", "scheduler", "start_at_step", "refine_at_step",
                             "preview_method", "vae_decode"),
    "KSampler //Inspire": (*_SEED, "steps", "cfg", "sampler_name", "scheduler", "denoise",
                           "noise_mode", "batch_seed_mode", "variation_seed",
                           "variation_strength"),
    "KSamplerAdvanced //Inspire": ("add_noise", "noise_seed", "?control", "steps", "cfg",
                                   "sampler_name", "scheduler", "start_at_step", "end_at_step",
                                   "noise_mode", "return_with_leftover_noise",
                                   "batch_seed_mode", "variation_seed", "variation_strength"),
    "BNK_CLIPTextEncodeAdvanced": ("text", "token_normalization", "weight_interpretation"),
    "HighRes-Fix Script": ("upscale_type", "hires_ckpt_name", "latent_upscaler",
                           "pixel_upscaler", "upscale_by", "use_same_seed", "seed", "?control",
                           "hires_steps", "denoise"),
    "String Literal": ("string",),
    "Seed Generator": (*_SEED,),
    # Easy-Use
    "easy a1111Loader": ("ckpt_name", "vae_name", "clip_skip", "lora_name",
                         "lora_model_strength", "lora_clip_strength", "resolution",
                         "empty_latent_width", "empty_latent_height", "positive", "negative",
                         "batch_size"),
    "easy comfyLoader": ("ckpt_name", "vae_name", "clip_skip", "lora_name",
                         "lora_model_strength", "lora_clip_strength", "resolution",
                         "empty_latent_width", "empty_latent_height", "positive", "negative",
                         "batch_size"),
    "easy preSampling": ("steps", "cfg", "sampler_name", "scheduler", "denoise", *_SEED),
    "easy preSamplingAdvanced": ("steps", "cfg", "sampler_name", "scheduler", "start_at_step",
                                 "end_at_step", "add_noise", *_SEED),
    "easy positive": ("positive",),
    "easy negative": ("negative",),
    "easy string": ("value",),
    "easy seed": (*_SEED,),
    # Impact / Inspire / dynamic prompts / pysssss
    "ImpactWildcardProcessor": ("wildcard_text", "populated_text", "mode", *_SEED),
    "ImpactWildcardEncode": ("wildcard_text", "populated_text", "mode", "Select to add LoRA",
                             "Select to add Wildcard", *_SEED),
    "DPRandomGenerator": ("text", *_SEED, "autorefresh"),
    "ShowText|pysssss": ("text",),
    # rgthree / Comfyroll / WAS / WanVideo
    "Power Prompt (rgthree)": ("prompt",),
    "Power Prompt - Simple (rgthree)": ("prompt",),
    "SDXL Empty Latent Image (rgthree)": ("dimensions", "clip_scale", "batch_size"),
    "Seed (rgthree)": ("seed",),
    "Lora Loader Stack (rgthree)": ("lora_01", "strength_01", "lora_02", "strength_02",
                                    "lora_03", "strength_03", "lora_04", "strength_04"),
    "CR SDXL Aspect Ratio": ("width", "height", "aspect_ratio", "swap_dimensions",
                             "upscale_factor", "batch_size"),
    "CR LoRA Stack": ("switch_1", "lora_name_1", "model_weight_1", "clip_weight_1",
                      "switch_2", "lora_name_2", "model_weight_2", "clip_weight_2",
                      "switch_3", "lora_name_3", "model_weight_3", "clip_weight_3"),
    "CR Prompt Text": ("prompt",),
    "Text Multiline": ("text",),
    "Text Concatenate": ("delimiter", "clean_whitespace", "text_a", "text_b", "text_c", "text_d"),
    "easy textIndexSwitch": ("index",),
    "easy anythingIndexSwitch": ("index",),
    "WanVideoTextEncode": ("positive_prompt", "negative_prompt"),
    "WanVideoSampler": ("steps", "cfg", "shift", *_SEED, "force_offload", "scheduler"),
    "WanVideoModelLoader": ("model", "base_precision", "quantization", "load_device"),
    "UltimateSDUpscale": ("upscale_by", *_SEED, "steps", "cfg", "sampler_name", "scheduler",
                          "denoise"),
    "FaceDetailer": ("guide_size", "guide_size_for", "max_size", *_SEED, "steps", "cfg",
                     "sampler_name", "scheduler", "denoise"),
}
_SEED_NAME = re.compile(r"seed", re.IGNORECASE)


def name_widgets(class_type: str, values: Any, listed: list[str],
                 outputs: tuple[str, ...] = ()) -> dict[str, Any]:
    """Named widget values of one editor node.

    `listed` are the widget names the node's `inputs` declare, in order. A name table beats
    them (older editors list only the widgets converted to inputs); without a table they are
    used when they account for every value. A node whose widgets match its outputs one to one
    (JPS sampler settings, KJNodes constants, text boxes) gets the output names.
    """
    if isinstance(values, dict):
        return {k: v for k, v in values.items() if isinstance(k, str)}
    if not isinstance(values, list):
        return {}
    named: dict[str, Any] = {}
    rows = [v for v in values if isinstance(v, dict) and isinstance(v.get("lora"), str)]
    for index, row in enumerate(rows, 1):  # rgthree Power Lora Loader rows
        named[f"lora_{index}"] = row
    if class_type == "LoRA Stacker":
        return {**named, **_lora_stacker(values)}
    order = _ORDER.get(class_type)
    if order is not None:
        named.update(_by_order(order, values))
        return named
    if listed:
        names = []
        for name in listed:
            names.append(name)
            if _SEED_NAME.search(name):
                names.append("?control")
        mapped, used = _walk(tuple(names), values)
        if used == len(values):
            named.update(mapped)
            return named
    plain = [v for v in values if not (isinstance(v, str) and v in CONTROL_VALUES) and v is not None]
    real_outputs = [o for o in outputs if o and o != "show_help"]
    if not named and real_outputs and len(real_outputs) == len(values):
        return dict(zip(real_outputs, values))
    if not named and len(plain) == 1 and not isinstance(plain[0], (dict, list)):
        named["value"] = plain[0]  # a one-widget node of any pack: a primitive of some kind
    return named


def _by_order(order: tuple[str, ...], values: list[Any]) -> dict[str, Any]:
    return _walk(order, values)[0]


def _walk(order: tuple[str, ...], values: list[Any]) -> tuple[dict[str, Any], int]:
    named: dict[str, Any] = {}
    index = 0
    for name in order:
        if index >= len(values):
            break
        if name.startswith("?"):
            value = values[index]
            if value is None or (isinstance(value, str) and value in CONTROL_VALUES):
                index += 1
            continue
        if name.startswith("~"):  # a widget older versions of the node lack: a string if there
            if not isinstance(values[index], str):
                continue
            name = name[1:]
        named[name] = values[index]
        index += 1
    return named, index


def _lora_stacker(values: list[Any]) -> dict[str, Any]:
    """Efficiency LoRA Stacker: input_mode, lora_count, then (name, wt, model_str, clip_str)
    for each of up to 49 LoRAs."""
    named: dict[str, Any] = {}
    if len(values) >= 2:
        named["input_mode"], named["lora_count"] = values[0], values[1]
    for index, start in enumerate(range(2, len(values) - 3, 4), 1):
        name, weight, model, clip = values[start:start + 4]
        named.update({f"lora_name_{index}": name, f"lora_wt_{index}": weight,
                      f"model_str_{index}": model, f"clip_str_{index}": clip})
    return named
