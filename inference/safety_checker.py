"""safety-checker: CompVis/stable-diffusion-safety-checker, reimplemented on transformers.

Same attribute names as diffusers' StableDiffusionSafetyChecker so the upstream state_dict
(`vision_model.vision_model.…`, `visual_projection.weight`, the four concept tensors) loads
unchanged — transformers 5 maps the 4.x nested CLIPVisionModel prefix itself. diffusers is
not needed. The decision rule is diffusers' `forward` (margins rounded to 3 decimals before
the `> 0` test; see `decide`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from inference.base import HFSource, TorchAnalyser, require
from inference.hf_common import (
    check_loading_info,
    config_and_weights,
    found_files,
    header_or_none,
)
from inference.types import AnalyserOutput, Job
from inference.weights import Found, WeightsError, expect_shape

N_CONCEPTS, N_SPECIAL = 17, 3
PATCH_KEYS = ("vision_model.vision_model.embeddings.patch_embedding.weight",  # 4.x (upstream)
              "vision_model.embeddings.patch_embedding.weight")               # 5.x re-save


@functools.cache
def safety_checker_model_class() -> Any:  # a transformers PreTrainedModel subclass
    import torch
    from torch import nn
    from transformers import CLIPConfig, CLIPVisionModel, PreTrainedModel

    class StableDiffusionSafetyChecker(PreTrainedModel):
        config_class = CLIPConfig
        main_input_name = "clip_input"
        _no_split_modules = ["CLIPEncoderLayer"]

        def __init__(self, config: CLIPConfig):
            super().__init__(config)
            self.vision_model = CLIPVisionModel(config.vision_config)
            self.visual_projection = nn.Linear(config.vision_config.hidden_size,
                                               config.projection_dim, bias=False)
            dim = config.projection_dim
            self.concept_embeds = nn.Parameter(torch.ones(N_CONCEPTS, dim), requires_grad=False)
            self.special_care_embeds = nn.Parameter(torch.ones(N_SPECIAL, dim),
                                                    requires_grad=False)
            self.concept_embeds_weights = nn.Parameter(torch.ones(N_CONCEPTS),
                                                       requires_grad=False)
            self.special_care_embeds_weights = nn.Parameter(torch.ones(N_SPECIAL),
                                                            requires_grad=False)
            self.post_init()

        def forward(self, clip_input: torch.Tensor) -> torch.Tensor:
            pooled = self.vision_model(pixel_values=clip_input).pooler_output
            return self.visual_projection(pooled)

    return StableDiffusionSafetyChecker


def decide(image_embeds: Any, concept_embeds: Any, concept_weights: Any,
           special_embeds: Any, special_weights: Any) -> tuple[Any, Any, Any]:
    """diffusers' rule, exactly as `StableDiffusionSafetyChecker.forward` computes it:

    - cosine similarities in float32;
    - special-care margins, concept by concept: round(cos - threshold + adjustment, 3), where
      the adjustment starts at 0.0 and becomes 0.01 for the concepts after one that fired
      (> 0) — so a later special margin carries it too, as upstream reports it;
    - concept margins: round(cos - threshold + adjustment, 3) with the final adjustment;
    - NSFW when any *rounded* concept margin is > 0 (a margin in (0, 0.0005) rounds to 0.0
      and does not count).

    The arithmetic stays in float32 like upstream's per-element numpy scalars (NumPy 2 keeps
    float32 when a Python float is added), vectorised over the batch.
    Returns (nsfw (N,) bool, concept margins (N,17), special margins (N,3)) as numpy arrays."""
    import numpy as np
    import torch.nn.functional as F

    e = F.normalize(image_embeds.float(), dim=-1)
    special_cos = (e @ F.normalize(special_embeds.float(), dim=-1).T).cpu().numpy()
    concept_cos = (e @ F.normalize(concept_embeds.float(), dim=-1).T).cpu().numpy()
    special_thresholds = special_weights.detach().float().cpu().numpy()
    concept_thresholds = concept_weights.detach().float().cpu().numpy()
    adjustment = np.zeros(len(special_cos), dtype=np.float32)
    special = np.empty_like(special_cos)
    for k in range(special_cos.shape[1]):
        special[:, k] = np.round(special_cos[:, k] - special_thresholds[k] + adjustment, 3)
        adjustment = np.where(special[:, k] > 0, np.float32(0.01), adjustment)
    concept = np.round(concept_cos - concept_thresholds + adjustment[:, None], 3)
    return (concept > 0).any(axis=1), concept, special


class SafetyChecker(TorchAnalyser):
    key = "safety-checker"
    # 2: margins rounded to 3 decimals before the > 0 test (diffusers); upright picture
    #    (EXIF); large pictures decoded at reduced size
    revision = 2
    cpu_ms_per_image = 1080.0
    hf_sources = (
        HFSource("CompVis/stable-diffusion-safety-checker", allow_patterns=(
            "config.json", "preprocessor_config.json", "pytorch_model.bin")),
        # The same checker ships inside the SD 1.x pipelines users often have cached.
        HFSource("CompVis/stable-diffusion-v1-4", "safety_checker"),
        HFSource("runwayml/stable-diffusion-v1-5", "safety_checker"),
        HFSource("stable-diffusion-v1-5/stable-diffusion-v1-5", "safety_checker"),
    )
    expected_files = ("config.json", "preprocessor_config.json",
                      "pytorch_model.bin (or model.safetensors)")
    how_to_get = ("download config.json, preprocessor_config.json and pytorch_model.bin from "
                  "https://huggingface.co/CompVis/stable-diffusion-safety-checker into "
                  "<models>/safety-checker/, or run: gentriage models download safety-checker")

    @classmethod
    def inspect(cls, folder: Path) -> Found | None:
        from inference.schemas import ClipConfig

        present = config_and_weights(folder, "pytorch_model.bin", ClipConfig)
        if present is None:
            return None
        config_path, config, weights = present
        require(config.model_type == "clip" and config.vision_config is not None,
                f"{config_path}: expected a CLIPConfig (model_type 'clip' with vision_config), "
                f"found model_type {config.model_type!r}")
        dim = config.projection_dim if "projection_dim" in config.model_fields_set else 768
        tensors = header_or_none(weights)
        if tensors is not None:
            expect_shape(tensors, "concept_embeds", (N_CONCEPTS, dim), weights)
            expect_shape(tensors, "special_care_embeds", (N_SPECIAL, dim), weights)
            expect_shape(tensors, "concept_embeds_weights", (N_CONCEPTS,), weights)
            expect_shape(tensors, "special_care_embeds_weights", (N_SPECIAL,), weights)
            hidden = expect_shape(tensors, "visual_projection.weight", (dim, None), weights)[1]
            patch = next((k for k in PATCH_KEYS if k in tensors), None)
            if patch is None:
                raise WeightsError(f"{weights}: no CLIP vision tower (expected "
                                   f"{PATCH_KEYS[0]!r})")
            expect_shape(tensors, patch, (hidden, 3, None, None), weights)
        return Found(folder, found_files(folder, config_path, weights))

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        from inference.hf_common import read_preprocessor
        from inference.preprocess import ClipRecipe

        self.clip_recipe = ClipRecipe.from_config(
            read_preprocessor(self.status.files.get("preprocessor")))
        self.clip_encoder: Any = None

    @property
    def input_key(self) -> str:
        from inference.clip_embedding import clip_input_key

        return clip_input_key(self.clip_recipe)

    def load(self) -> None:
        from inference.clip_embedding import ClipVisionEncoder
        from inference.hf_common import quiet_transformers

        quiet_transformers()
        folder = Path(self.status.files["config"]).parent
        weights = Path(self.status.files["weights"])
        try:
            # weights_only=True: a pytorch_model.bin is read without executing pickled code.
            model, info = safety_checker_model_class().from_pretrained(
                folder, local_files_only=True, output_loading_info=True, weights_only=True,
                use_safetensors=weights.suffix == ".safetensors")
        except (OSError, ValueError, RuntimeError) as exc:
            raise WeightsError(f"{weights}: cannot load ({exc})") from exc
        check_loading_info(info, weights)
        self.model = self._place(model)
        self.clip_encoder = ClipVisionEncoder(self.model.vision_model)

    def adopt_clip_encoder(self, encoder: Any) -> None:
        """Use another analyser's identical tower and free our copy."""
        self.clip_encoder = encoder
        self.model.vision_model = encoder.vision_model
        encoder.shared = True

    def begin_run(self) -> None:
        if self.clip_encoder is not None:
            self.clip_encoder.reset()

    def move_to(self, device: str) -> None:
        from inference.clip_embedding import ClipVisionEncoder, private_copy

        if self.clip_encoder is not None:
            self.model.vision_model = private_copy(self.clip_encoder).vision_model
        super().move_to(device)
        if self.model is not None:
            self.clip_encoder = ClipVisionEncoder(self.model.vision_model)

    def preprocess(self, image: Any) -> Any:
        from inference.preprocess import as_tensor

        return as_tensor(self.clip_recipe(image.rgb()))

    def predict(self, inputs: Sequence[Any], jobs: Sequence[Job]) -> list[AnalyserOutput]:
        import torch

        m = self.model
        with torch.inference_mode():
            pooled = self.clip_encoder.pooled(self.batch_tensor(inputs),
                                              [(j.job_id, j.path) for j in jobs])
            # Margins are ~0.01-sized: project and compare in fp32 whatever the tower ran in.
            embeds = pooled.float() @ m.visual_projection.weight.float().T
            nsfw, concept, special = decide(embeds, m.concept_embeds, m.concept_embeds_weights,
                                            m.special_care_embeds, m.special_care_embeds_weights)
        results = []
        for flag, c_row, s_row in zip(nsfw.tolist(), concept.tolist(), special.tolist()):
            # Stored as upstream reports them: multiples of 0.001 (float32 noise rounded off).
            c_row = [round(v, 3) for v in c_row]
            scores = {f"concept_{i:02d}": v for i, v in enumerate(c_row)}
            scores.update({f"special_{i}": round(v, 3) for i, v in enumerate(s_row)})
            results.append(self.output("nsfw" if flag else "sfw", max(c_row), scores))
        return results
