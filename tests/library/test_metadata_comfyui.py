"""ComfyUI API graphs (`prompt` chunk): every pattern the reader follows, on graphs written here.

Each graph is a minimal original reproduction of a shape found in real files (custom node
packs' nodes are recognised by their input names, so the class names below are the packs'
real ones but the graphs are ours).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from metadata_builders import comfy_png, open_bytes

from library.metadata import GenerationMetadata, Lora, read_metadata
from library.metadata.comfyui import parse_graph
from library.metadata.comfyui.graph import DEFAULT_BUDGET, MAX_DEPTH


def link_to(node_id: str, slot: int = 0) -> list[Any]:
    return [node_id, slot]


def node(class_type: str, **inputs: Any) -> dict[str, Any]:
    return {"class_type": class_type, "inputs": inputs}


def sdxl(**changes: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Checkpoint -> two prompts -> KSampler -> decode -> save; `changes` replace/add nodes."""
    graph = {
        "ckpt": node("CheckpointLoaderSimple", ckpt_name="base.safetensors"),
        "pos": node("CLIPTextEncode", text="a red fox", clip=link_to("ckpt", 1)),
        "neg": node("CLIPTextEncode", text="blurry", clip=link_to("ckpt", 1)),
        "lat": node("EmptyLatentImage", width=832, height=1216, batch_size=1),
        "ks": node("KSampler", seed=7, steps=25, cfg=6.5, sampler_name="euler",
                   scheduler="karras", denoise=1.0, model=link_to("ckpt"), positive=link_to("pos"),
                   negative=link_to("neg"), latent_image=link_to("lat")),
        "dec": node("VAEDecode", samples=link_to("ks"), vae=link_to("ckpt", 2)),
        "save": node("SaveImage", filename_prefix="x", images=link_to("dec")),
    }
    graph.update(changes)
    return graph


def read_png(prompt: dict | None = None, workflow: dict | None = None,
             extra: tuple[tuple[str, str, str], ...] = ()) -> GenerationMetadata:
    with open_bytes(comfy_png(prompt, workflow, extra)) as image:
        return read_metadata(image)


# --- prompts through value nodes ------------------------------------------------------------

def test_reroutes_and_primitives_carry_prompt_seed_and_model_name() -> None:
    graph = sdxl(
        r1=node("ReroutePrimitive|pysssss", value=link_to("txt")),
        r2=node("Reroute", value=link_to("r1")),
        txt=node("PrimitiveStringMultiline", value="a fox in snow"),
        seed=node("PrimitiveInt", value=123456789012),
        name=node("PrimitiveString", value="linked.safetensors"),
    )
    graph["pos"]["inputs"]["text"] = link_to("r2")
    graph["ks"]["inputs"]["seed"] = link_to("seed")
    graph["ckpt"]["inputs"]["ckpt_name"] = link_to("name")
    meta = parse_graph(graph)
    assert (meta.prompt, meta.seed, meta.model) == ("a fox in snow", 123456789012, "linked.safetensors")


def test_string_concatenate_format_replace_and_join() -> None:
    graph = sdxl(
        a=node("PrimitiveString", value="a fox"),
        b=node("PrimitiveString", value=""),
        cat=node("StringConcatenate", string_a=link_to("a"), string_b=link_to("b"), delimiter=", "),
        was=node("Text Concatenate", text_a=link_to("cat"), text_b="  in snow ", text_c="",
                 delimiter=" | ", clean_whitespace="true"),
        rep=node("StringReplace", string=link_to("was"), find="fox", replace="wolf"),
        fmt=node("Text Format (custom)", format="{subject}, by {artist}", subject=link_to("rep"),
                 artist="nobody"),
        join=node("Join Strings (custom)", first=link_to("fmt"), second="4k", separator="; "),
    )
    graph["pos"]["inputs"]["text"] = link_to("join")
    # core StringConcatenate keeps the empty part's delimiter ("a fox, "); WAS strips each
    # part and skips empty ones
    assert parse_graph(graph).prompt == "a wolf, | in snow, by nobody; 4k"


def test_switches_pass_the_active_input_only() -> None:
    graph = sdxl(
        on=node("PrimitiveBoolean", value=False),
        comfy=node("ComfySwitchNode", switch=link_to("on"), on_true="wrong", on_false="core off"),
        impact=node("ImpactSwitch", select=2, sel_mode=False, input1="wrong", input2=link_to("comfy")),
        crys=node("Switch any [Crystools]", boolean=True, on_true=link_to("impact"), on_false="wrong"),
        easy=node("easy anythingIndexSwitch", index=0, value0=link_to("crys"), value1="wrong"),
        rg=node("Any Switch (rgthree)", any_02=link_to("easy")),  # muted any_01 is not in the graph
    )
    graph["pos"]["inputs"]["text"] = link_to("rg")
    assert parse_graph(graph).prompt == "core off"


def test_switch_on_an_opaque_branch_falls_back_to_the_plain_text() -> None:
    # An LLM prompt writer's output is never stored: the un-enhanced text is the best record.
    graph = sdxl(
        user=node("PrimitiveStringMultiline", value="portrait of a cat"),
        llm=node("TextGenerate", prompt=link_to("user"), max_length=512),
        sw=node("ComfySwitchNode", switch=True, on_true=link_to("llm"), on_false=link_to("user")),
    )
    graph["pos"]["inputs"]["text"] = link_to("sw")
    assert parse_graph(graph).prompt == "portrait of a cat"


def test_wildcard_nodes_use_the_resolved_text_when_stored() -> None:
    graph = sdxl(
        wc=node("ImpactWildcardEncode", wildcard_text="a {red|blue} __animal__",
                populated_text="a blue fox", mode="populate", seed=3, model=link_to("ckpt"),
                clip=link_to("ckpt", 1)),
    )
    graph["ks"]["inputs"]["positive"] = link_to("wc", 2)
    assert parse_graph(graph).prompt == "a blue fox"


def test_unresolved_wildcards_defer_to_a_saver_text() -> None:
    graph = sdxl(dp=node("DPRandomGenerator", text="a {red|blue} fox", seed=1, autorefresh="No"))
    graph["pos"]["inputs"]["text"] = link_to("dp")
    assert read_png(graph).prompt == "a {red|blue} fox"  # the template: all the file says
    saver = ("tEXt", "parameters", ("a blue fox\nNegative prompt: blurry\n"
                                    "Steps: 25, Sampler: euler, CFG scale: 6.5, Seed: 7, "
                                    "Size: 832x1216"))
    meta = read_png(graph, extra=(saver,))
    assert (meta.generator, meta.prompt, meta.seed) == ("comfyui", "a blue fox", 7)


def test_conditioning_combine_concat_and_average_collect_every_text() -> None:
    graph = sdxl(
        t2=node("CLIPTextEncode", text="snowy forest", clip=link_to("ckpt", 1)),
        t3=node("CLIPTextEncode", text="golden hour", clip=link_to("ckpt", 1)),
        area=node("ConditioningSetArea", conditioning=link_to("t2"), width=512, height=512, x=0, y=0,
                  strength=1.0),
        comb=node("ConditioningCombine", conditioning_1=link_to("pos"), conditioning_2=link_to("area")),
        cat=node("ConditioningConcat", conditioning_to=link_to("comb"), conditioning_from=link_to("t3")),
        avg=node("ConditioningAverage", conditioning_to=link_to("cat"), conditioning_from=link_to("cat"),
                 conditioning_to_strength=0.5),
    )
    graph["ks"]["inputs"]["positive"] = link_to("avg")
    assert parse_graph(graph).prompt == "a red fox\nsnowy forest\ngolden hour"


def test_zeroed_negative_and_lumina_system_prompt() -> None:
    graph = sdxl(zero=node("ConditioningZeroOut", conditioning=link_to("pos")))
    system = "You are an assistant designed to generate images. "
    graph["pos"]["inputs"]["text"] = system + "<Prompt Start> a red fox"
    graph["ks"]["inputs"]["negative"] = link_to("zero")
    meta = parse_graph(graph)
    assert (meta.prompt, meta.negative_prompt) == ("a red fox", None)


def test_controlnet_apply_advanced_routes_positive_and_negative_by_slot() -> None:
    graph = sdxl(cn=node("ControlNetApplyAdvanced", strength=1.0, start_percent=0.0,
                         end_percent=1.0, positive=link_to("pos"), negative=link_to("neg"),
                         control_net=link_to("cnl"), image=link_to("img")))
    graph["ks"]["inputs"]["positive"] = link_to("cn", 0)
    graph["ks"]["inputs"]["negative"] = link_to("cn", 1)
    meta = parse_graph(graph)
    assert (meta.prompt, meta.negative_prompt) == ("a red fox", "blurry")


# --- custom samplers, loaders and pipes -----------------------------------------------------

def test_custom_sampler_recognised_by_its_inputs() -> None:
    graph = sdxl()
    graph["ks"] = node("MyPack Fancy Denoiser", noise_seed=99, steps=12, cfg=3.0,
                       sampler_name="dpmpp_2m", scheduler="simple", model=link_to("ckpt"),
                       positive=link_to("pos"), negative=link_to("neg"), latent_image=link_to("lat"))
    meta = parse_graph(graph)
    assert (meta.seed, meta.steps, meta.cfg_scale, meta.prompt) == (99, 12, 3.0, "a red fox")


def test_sampler_custom_advanced_through_wrappers_and_guider() -> None:
    graph = sdxl(
        unet=node("UnetLoaderGGUF", unet_name="flux1-dev-Q8_0.gguf"),
        fg=node("FluxGuidance", guidance=3.5, conditioning=link_to("pos")),
        guider=node("BasicGuider", model=link_to("unet"), conditioning=link_to("fg")),
        noise=node("RandomNoise", noise_seed=2**64 - 1),
        sel=node("KSamplerSelect", sampler_name="dpm_2"),
        dd=node("DetailDaemonSamplerNode", detail_amount=0.5, sampler=link_to("sel")),
        sched=node("BasicScheduler", scheduler="beta", steps=18, denoise=1.0, model=link_to("unet")),
        split=node("SplitSigmasDenoise", denoise=0.9, sigmas=link_to("sched")),
    )
    graph["ks"] = node("SamplerCustomAdvanced", noise=link_to("noise"), guider=link_to("guider"),
                       sampler=link_to("dd"), sigmas=link_to("split"), latent_image=link_to("lat"))
    meta = parse_graph(graph)
    assert (meta.seed, meta.steps, meta.sampler, meta.scheduler) == (2**64 - 1, 18, "dpm_2", "beta")
    assert (meta.cfg_scale, meta.model, meta.negative_prompt) == (3.5, "flux1-dev-Q8_0.gguf", None)


def test_sampler_object_named_by_its_class_and_dual_cfg_guider() -> None:
    graph = sdxl(
        guider=node("DualCFGGuider", cfg_conds=5.0, cfg_cond2_negative=2.0, model=link_to("ckpt"),
                    cond1=link_to("pos"), cond2=link_to("neg"), negative=link_to("neg")),
        noise=node("RandomNoise", noise_seed=5),
        obj=node("SamplerEulerAncestralCFGPP", eta=0.0, s_noise=1.0),
        sched=node("KarrasScheduler", steps=30, sigma_max=14.6, sigma_min=0.03, rho=7.0),
    )
    graph["ks"] = node("SamplerCustomAdvanced", noise=link_to("noise"), guider=link_to("guider"),
                       sampler=link_to("obj"), sigmas=link_to("sched"), latent_image=link_to("lat"))
    meta = parse_graph(graph)
    assert (meta.cfg_scale, meta.sampler, meta.scheduler) == (5.0, "euler_ancestral_cfg_pp", "karras")
    assert (meta.prompt, meta.negative_prompt) == ("a red fox", "blurry")


def test_efficiency_loader_text_widgets_stack_and_sampler_outputs() -> None:
    graph = {
        "lit": node("String Literal", string="castle on a hill"),
        "stack": node("LoRA Stacker", input_mode="simple", lora_count=1,
                      lora_name_1="styles/ink.safetensors", lora_wt_1=0.7, model_str_1=1.0,
                      lora_name_2="unused.safetensors", lora_wt_2=1.0),
        "eff": node("Efficient Loader", ckpt_name="sd15.ckpt", vae_name="Baked VAE",
                    lora_name="detail.safetensors", lora_model_strength=0.4, positive=link_to("lit"),
                    negative="lowres", empty_latent_width=512, empty_latent_height=768,
                    lora_stack=link_to("stack")),
        "seedgen": node("Seed Generator", seed=42),
        "ks": node("KSampler (Efficient)", seed=link_to("seedgen"), steps=20, cfg=7.0,
                   sampler_name="euler", scheduler="normal", model=link_to("eff", 0),
                   positive=link_to("eff", 1), negative=link_to("eff", 2), latent_image=link_to("eff", 3)),
        "save": node("SaveImage", images=link_to("ks", 5)),
    }
    meta = parse_graph(graph)
    assert (meta.prompt, meta.negative_prompt, meta.seed) == ("castle on a hill", "lowres", 42)
    assert (meta.model, meta.width, meta.height) == ("sd15.ckpt", 512, 768)
    # lora_count=1: the stack's second row is not applied
    assert meta.loras == [Lora("ink", 0.7), Lora("detail", 0.4)]


def test_pipe_samplers_find_settings_and_prompts_in_the_pipe() -> None:
    graph = {
        "pos": node("easy positive", positive="a lighthouse at dusk"),
        "loader": node("easy a1111Loader", ckpt_name="anime.safetensors", positive=link_to("pos"),
                       negative="text, watermark", resolution="768 x 1024",
                       empty_latent_width=512, empty_latent_height=512),
        "pre": node("easy preSampling", steps=35, cfg=5.0, sampler_name="dpmpp_3m_sde",
                    scheduler="karras", denoise=1.0, seed=2776, pipe=link_to("loader")),
        "ks": node("easy kSampler", image_output="Preview", pipe=link_to("pre")),
    }
    meta = parse_graph(graph)
    assert (meta.prompt, meta.negative_prompt) == ("a lighthouse at dusk", "text, watermark")
    assert (meta.seed, meta.steps, meta.cfg_scale, meta.sampler) == (2776, 35, 5.0, "dpmpp_3m_sde")
    assert (meta.model, meta.width, meta.height) == ("anime.safetensors", 768, 1024)


def test_impact_basic_pipe_and_rgthree_context_carry_named_values() -> None:
    graph = sdxl(
        seed=node("Seed (rgthree)", seed=31337),
        ctx=node("Context (rgthree)", model=link_to("ckpt"), positive=link_to("pos"), negative=link_to("neg"),
                 latent=link_to("lat"), seed=link_to("seed")),
        ctx2=node("Context (rgthree)", base_ctx=link_to("ctx")),
        to=node("ToBasicPipe", model=link_to("ctx2", 1), clip=link_to("ckpt", 1), vae=link_to("ckpt", 2),
                positive=link_to("ctx2", 4), negative=link_to("ctx2", 5)),
        frm=node("FromBasicPipe", basic_pipe=link_to("to")),
    )
    graph["ks"]["inputs"].update(seed=link_to("ctx2", 8), model=link_to("frm", 0), positive=link_to("frm", 3),
                                 negative=link_to("frm", 4), latent_image=link_to("ctx2", 6))
    meta = parse_graph(graph)
    assert (meta.seed, meta.prompt, meta.negative_prompt) == (31337, "a red fox", "blurry")
    assert (meta.model, meta.width) == ("base.safetensors", 832)


@pytest.mark.parametrize(("loader", "key", "name"), [
    ("UNETLoader", "unet_name", "chroma-unlocked-v47.safetensors"),
    ("UnetLoaderGGUF", "unet_name", "qwen-image-Q4_K_M.gguf"),
    ("CheckpointLoaderNF4", "ckpt_name", "flux1-dev-bnb-nf4-v2.safetensors"),
    ("UNETLoaderNF4", "unet_name", "wan2.1_i2v_720p_nf4.safetensors"),
    ("DiffusionModelLoaderKJ", "model_name", "krea-dev.safetensors"),
    ("WanVideoModelLoader", "model", "wan2.2_t2v_low_noise_14B.safetensors"),
    ("ECHOCheckpointLoaderSimple", "ckpt_name", "some-checkpoint.safetensors"),
])
def test_model_loaders_of_every_family(loader: str, key: str, name: str) -> None:
    graph = sdxl(unet=node(loader, **{key: name}),
                 ms=node("ModelSamplingAuraFlow", shift=3.1, model=link_to("unet")),
                 patch=node("ApplyFBCacheOnModel", residual_diff_threshold=0.12, model=link_to("ms")))
    graph["ks"]["inputs"]["model"] = link_to("patch")
    assert parse_graph(graph).model == name


def test_merged_models_report_the_first_input_and_switched_models_the_active_one() -> None:
    graph = sdxl(
        other=node("UNETLoader", unet_name="other.safetensors"),
        merge=node("ModelMergeSimple", ratio=0.2, model1=link_to("ckpt"), model2=link_to("other")),
        sw=node("CR Model Input Switch", Input=2, model1=link_to("other"), model2=link_to("merge")),
    )
    graph["ks"]["inputs"]["model"] = link_to("sw")
    assert parse_graph(graph).model == "base.safetensors"


# --- LoRAs ----------------------------------------------------------------------------------

def test_lora_loaders_and_stacks_in_application_order() -> None:
    graph = sdxl(
        l1=node("LoraLoader", lora_name="a\\first.safetensors", strength_model=0.8,
                strength_clip=1.0, model=link_to("ckpt"), clip=link_to("ckpt", 1)),
        cr=node("CR LoRA Stack", switch_1="On", lora_name_1="cr_on.safetensors",
                model_weight_1=0.3, switch_2="Off", lora_name_2="cr_off.safetensors",
                model_weight_2=1.0),
        ez=node("easy loraStack", toggle=True, num_loras=1, lora_1_name="easy1.safetensors",
                lora_1_strength=0.6, lora_2_name="easy2.safetensors", lora_2_strength=1.0,
                optional_lora_stack=link_to("cr")),
        apply=node("CR Apply LoRA Stack", model=link_to("l1"), clip=link_to("l1", 1), lora_stack=link_to("ez")),
        rg=node("Lora Loader Stack (rgthree)", lora_01="rg.safetensors", strength_01=0.9,
                lora_02="None", strength_02=1.0, model=link_to("apply"), clip=link_to("apply", 1)),
        power=node("Power Lora Loader (rgthree)", model=link_to("rg"), clip=link_to("rg", 1),
                   lora_1={"on": True, "lora": "p_on.safetensors", "strength": 0.5},
                   lora_2={"on": False, "lora": "p_off.safetensors", "strength": 1.0}),
    )
    graph["ks"]["inputs"]["model"] = link_to("power")
    assert parse_graph(graph).loras == [
        Lora("first", 0.8), Lora("cr_on", 0.3), Lora("easy1", 0.6), Lora("rg", 0.9),
        Lora("p_on", 0.5)]


def test_lora_tags_in_text_and_tag_loaders() -> None:
    graph = sdxl(tags=node("LoraTagLoader", text="<lora:styles/paper:0.6>", model=link_to("ckpt"),
                           clip=link_to("ckpt", 1)))
    graph["ks"]["inputs"]["model"] = link_to("tags")
    graph["pos"]["inputs"]["text"] = "a fox <lora:detailer:0.4>"
    assert parse_graph(graph).loras == [Lora("paper", 0.6), Lora("detailer", 0.4)]


# --- services -------------------------------------------------------------------------------

def test_civitai_urns_go_to_model_hash() -> None:
    urn = "urn:air:sdxl:checkpoint:civitai:827184@2514310"
    graph = sdxl()
    graph["ckpt"]["inputs"]["ckpt_name"] = urn
    meta = read_png(graph)
    assert (meta.generator, meta.model, meta.model_hash) == ("civitai", None, urn)
    graph["extraMetadata"] = json.dumps({"prompt": "a red fox", "steps": 25,
                                         "resources": [{"modelVersionId": 2514310,
                                                        "modelName": "WAI Illustrious"}]})
    meta = read_png(graph)
    assert (meta.generator, meta.model, meta.model_hash) == ("civitai", "WAI Illustrious", urn)


def test_civitai_upscale_graph_takes_generation_values_from_the_request() -> None:
    graph = {"up": node("UpscaleModelLoader", model_name="urn:air:other:upscaler:civitai:1@2"),
             "img": node("LoadImage", image="https://example.invalid/x.jpeg"),
             "scale": node("ImageUpscaleWithModel", upscale_model=link_to("up"), image=link_to("img")),
             "save": node("SaveImage", images=link_to("scale")),
             "extra": {"airs": ["urn:air:other:upscaler:civitai:1@2"]},
             "extraMetadata": json.dumps({"prompt": "a red fox", "negativePrompt": "blurry",
                                          "seed": 11, "steps": 20, "cfgScale": 4,
                                          "sampler": "Euler a", "width": 832, "height": 1216})}
    meta = read_png(graph)
    assert (meta.generator, meta.prompt, meta.seed, meta.sampler) == ("civitai", "a red fox", 11, "Euler a")
    assert (meta.width, meta.height) == (832, 1216)


def test_tensorart_ids_and_generation_data() -> None:
    graph = sdxl()
    graph["ckpt"] = node("ECHOCheckpointLoaderSimple", ckpt_name="EMS-123456-EMS.safetensors")
    assert parse_graph(graph).model == "EMS-123456-EMS.safetensors"
    meta = read_png(graph)  # an internal id is no name: kept as the hash only
    assert (meta.model, meta.model_hash) == (None, "EMS-123456")
    data = json.dumps({"baseModel": {"modelFileName": "Pretty Model v2", "hash": "ABCDEF0123"},
                       "models": [{"type": "LORA", "modelFileName": "ink", "weight": 0.7}]})
    meta = read_png(graph, extra=(("tEXt", "generation_data", data),))
    assert (meta.model, meta.model_hash) == ("Pretty Model v2", "ABCDEF0123")
    assert meta.loras == [Lora("ink", 0.7)]  # the graph applies none; the service lists one
    assert "TensorArt" in (meta.generator_detail or "")


# --- passes and sizes -----------------------------------------------------------------------

def test_hires_pass_keeps_first_pass_settings_and_reports_the_final_size() -> None:
    graph = sdxl(
        up=node("LatentUpscaleBy", upscale_method="nearest-exact", scale_by=1.5, samples=link_to("ks")),
        hp=node("CLIPTextEncode", text="hires prompt", clip=link_to("ckpt", 1)),
        ks2=node("KSampler", seed=999, steps=10, cfg=3.0, sampler_name="dpmpp_2m",
                 scheduler="normal", denoise=0.4, model=link_to("ckpt"), positive=link_to("hp"),
                 negative=link_to("neg"), latent_image=link_to("up")),
        dec=node("VAEDecode", samples=link_to("ks2"), vae=link_to("ckpt", 2)),
        model_up=node("UpscaleModelLoader", model_name="4x-UltraSharp.pth"),
        img_up=node("ImageUpscaleWithModel", upscale_model=link_to("model_up"), image=link_to("dec")),
        shrink=node("ImageScaleBy", upscale_method="lanczos", scale_by=0.5, image=link_to("img_up")),
        save=node("SaveImage", images=link_to("shrink")),
    )
    meta = parse_graph(graph)
    assert (meta.seed, meta.steps, meta.prompt) == (7, 25, "a red fox")
    assert (meta.width, meta.height) == (832, 1216)  # the first pass's size, as A1111's "Size"
    assert (meta.final_width, meta.final_height) == (2496, 3648)  # 1.5 x 4 x 0.5
    assert "final size 2496x3648" in (meta.generator_detail or "")


def test_detailer_and_stage_b_passes_are_not_the_first_pass() -> None:
    graph = sdxl(
        det=node("FaceDetailer", seed=1, steps=5, cfg=1.0, sampler_name="lcm", scheduler="simple",
                 denoise=0.3, image=link_to("dec"), model=link_to("ckpt"), positive=link_to("pos"),
                 negative=link_to("neg"), bbox_detector=link_to("bbox")),
        stage_b=node("StableCascade_StageB_Conditioning", conditioning=link_to("pos"), stage_c=link_to("ks")),
        ks_b=node("KSampler", seed=2, steps=10, cfg=1.1, sampler_name="euler", scheduler="simple",
                  denoise=1.0, model=link_to("ckpt"), positive=link_to("stage_b"), negative=link_to("neg"),
                  latent_image=link_to("lat")),
        dec_b=node("VAEDecode", samples=link_to("ks_b"), vae=link_to("ckpt", 2)),
        save=node("SaveImage", images=link_to("det")),
        save_b=node("SaveImage", images=link_to("dec_b")),
    )
    assert parse_graph(graph).seed == 7
    graph["save"]["inputs"]["images"] = link_to("dec")
    assert parse_graph(graph).seed == 7  # stage B's conditioning comes from the first sampler


@pytest.mark.parametrize(("latent", "size"), [
    (node("SDXL Empty Latent Image (rgthree)", dimensions="1216 x 832   (landscape)",
          clip_scale=2.0, batch_size=1), (1216, 832)),
    (node("CR SDXL Aspect Ratio", width=1024, height=1024, aspect_ratio="3:4 portrait 896x1152",
          swap_dimensions="On", upscale_factor=1.0, batch_size=1), (1152, 896)),
    (node("StableCascade_EmptyLatentImage", width=link_to("mul"), height=1440, compression=42,
          batch_size=1), (1440, 1440)),
])
def test_first_pass_size_from_size_nodes(latent: dict, size: tuple[int, int]) -> None:
    graph = sdxl(lat=latent, mul=node("CM_IntBinaryOperation", op="Mul", a=40, b=36))
    meta = parse_graph(graph)
    assert (meta.width, meta.height) == size


# --- robustness -----------------------------------------------------------------------------

def test_cycles_everywhere_terminate_with_what_is_known() -> None:
    graph = sdxl(
        c1=node("ConditioningCombine", conditioning_1=link_to("c2"), conditioning_2=link_to("pos")),
        c2=node("ConditioningCombine", conditioning_1=link_to("c1"), conditioning_2=link_to("c1")),
        m1=node("LoraLoader", lora_name="a.safetensors", strength_model=1.0, model=link_to("m2")),
        m2=node("LoraLoader", lora_name="b.safetensors", strength_model=1.0, model=link_to("m1")),
        s1=node("StringConcatenate", string_a=link_to("s1"), string_b="x", delimiter=""),
    )
    graph["ks"]["inputs"].update(positive=link_to("c1"), model=link_to("m1"), seed=link_to("s1"),
                                 latent_image=link_to("ks"))
    meta = parse_graph(graph)
    assert (meta.prompt, meta.model, meta.seed) == ("a red fox", None, None)
    assert {lora.name for lora in meta.loras} == {"a", "b"}


def test_dangling_and_malformed_links_read_as_unknown() -> None:
    graph = sdxl(junk="not a node", half={"class_type": "X"})
    graph["ks"]["inputs"].update(positive=["nope", 0], negative=[True, 0], model=["ckpt"],
                                 seed=["ckpt", -1])
    meta = parse_graph(graph)
    assert (meta.prompt, meta.negative_prompt, meta.model, meta.steps) == (None, None, None, 25)


def test_deep_chain_stops_at_the_depth_limit_and_says_so() -> None:
    graph = sdxl()
    for index in range(MAX_DEPTH * 3):
        graph[f"d{index}"] = node("ConditioningSetTimestepRange", start=0.0, end=1.0,
                                  conditioning=link_to(f"d{index + 1}"))
    graph[f"d{MAX_DEPTH * 3}"] = node("CLIPTextEncode", text="far away", clip=link_to("ckpt", 1))
    graph["ks"]["inputs"]["positive"] = link_to("d0")
    meta = parse_graph(graph)
    assert meta.prompt is None and meta.seed == 7
    assert meta.walk_incomplete and "deeper than" in meta.walk_incomplete
    assert "graph walk incomplete" in (meta.generator_detail or "")


def test_hundred_thousand_node_graph_stops_within_budget_and_says_so() -> None:
    graph = sdxl()
    for index in range(50_000):  # 100k nodes: a fan of previews, each behind its own node
        graph[f"p{index}"] = node("PreviewImage", images=link_to(f"r{index}"))
        graph[f"r{index}"] = node("ImageInvert", image=link_to("dec"))
    meta = parse_graph(graph)
    # the sampler, its prompt and model are still found: the search has its own budget
    assert (meta.generator, meta.seed, meta.prompt, meta.model) == (
        "comfyui", 7, "a red fox", "base.safetensors")
    assert meta.walk_incomplete is not None
    assert meta.walk_incomplete.startswith(f"budget exhausted after {DEFAULT_BUDGET} node visits")
    assert "graph walk incomplete" in (meta.generator_detail or "")
    # the CLI's JSON keys do not change: the note lives on the object and in generator_detail
    assert meta.to_json_dict().keys() == GenerationMetadata().to_json_dict().keys()


def test_ordinary_graph_walk_is_complete() -> None:
    meta = parse_graph(sdxl())
    assert meta.walk_incomplete is None and meta.generator_detail == "ComfyUI"


def test_absurd_scale_factors_give_no_final_size() -> None:
    graph = sdxl(
        lat=node("SDXL Empty Latent Image (rgthree)", dimensions="1024 x 1024", clip_scale=1e308),
        up=node("LatentUpscaleBy", upscale_method="bislerp", scale_by=1e300, samples=link_to("ks")),
        dec=node("VAEDecode", samples=link_to("up"), vae=link_to("ckpt", 2)),
        big=node("ImageScale", upscale_method="area", width=link_to("lat", 1), height=64, image=link_to("dec")),
        save=node("SaveImage", images=link_to("big")),
    )
    meta = parse_graph(graph)
    assert (meta.width, meta.height, meta.final_width, meta.final_height) == (1024, 1024, None, None)
