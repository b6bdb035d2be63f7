"""nsfw-vit: Falconsai/nsfw_image_detection, a ViT-B/16 classifier (normal / nsfw)."""

from __future__ import annotations

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

PATCH_KEY = "vit.embeddings.patch_embeddings.projection.weight"
# transformers 4.x names (upstream file) and 5.x names (re-saved copies) of layer 0.
LAYER0_KEYS = ("vit.encoder.layer.0.attention.attention.query.weight",
               "vit.layers.0.attention.q_proj.weight")


class NsfwVit(TorchAnalyser):
    key = "nsfw-vit"
    # 2: upright picture (EXIF, as the Falconsai pipeline()); large pictures decoded at
    #    reduced size
    revision = 2
    cpu_ms_per_image = 280.0
    hf_sources = (HFSource("Falconsai/nsfw_image_detection", allow_patterns=(
        "config.json", "preprocessor_config.json", "model.safetensors")),)
    expected_files = ("config.json", "preprocessor_config.json", "model.safetensors")
    how_to_get = ("download config.json, preprocessor_config.json and model.safetensors from "
                  "https://huggingface.co/Falconsai/nsfw_image_detection into <models>/nsfw-vit/, "
                  "or run: gentriage models download nsfw-vit")

    @classmethod
    def inspect(cls, folder: Path) -> Found | None:
        from inference.schemas import VitConfig

        present = config_and_weights(folder, "model.safetensors", VitConfig)
        if present is None:
            return None
        config_path, config, weights = present
        require(config.model_type == "vit", f"{config_path}: model_type "
                f"{config.model_type!r}, expected 'vit'")
        labels = config.labels()
        nsfw = [i for i, name in labels.items() if name.lower() == "nsfw"]
        require(len(nsfw) == 1, f"{config_path}: id2label {labels} has no 'nsfw' class")
        require(sorted(labels) == list(range(len(labels))), f"{config_path}: id2label indices "
                f"{sorted(labels)} are not 0..{len(labels) - 1}")
        hidden, patch = config.hidden_size, config.patch_size
        tensors = header_or_none(weights)
        if tensors is not None:
            expect_shape(tensors, PATCH_KEY, (hidden, 3, patch, patch), weights)
            expect_shape(tensors, "classifier.weight", (len(labels), hidden), weights)
            require(any(k in tensors for k in LAYER0_KEYS),
                    f"{weights}: no ViT encoder layers (expected {LAYER0_KEYS[0]!r})")
        return Found(folder, found_files(folder, config_path, weights), {"labels": [labels[i] for i in sorted(labels)],
                                     "nsfw_index": nsfw[0]})

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        from inference.hf_common import read_preprocessor
        from inference.preprocess import VitRecipe

        self.recipe = VitRecipe.from_config(read_preprocessor(self.status.files.get("preprocessor")))
        self.labels: list[str] = list(self.status.details["labels"])
        self.nsfw_index: int = int(self.status.details["nsfw_index"])

    def load(self) -> None:
        from transformers import ViTForImageClassification

        from inference.hf_common import quiet_transformers

        quiet_transformers()

        folder = Path(self.status.files["config"]).parent
        try:
            model, info = ViTForImageClassification.from_pretrained(
                folder, local_files_only=True, output_loading_info=True)
        except (OSError, ValueError, RuntimeError) as exc:
            raise WeightsError(f"{self.status.files['weights']}: cannot load ({exc})") from exc
        check_loading_info(info, Path(self.status.files["weights"]))
        self.model = self._place(model)

    def preprocess(self, image: Any) -> Any:
        from inference.preprocess import as_tensor

        return as_tensor(self.recipe(image.rgb()))

    def predict(self, inputs: Sequence[Any], jobs: Sequence[Job]) -> list[AnalyserOutput]:
        import torch

        with torch.inference_mode():
            logits = self.model(pixel_values=self.batch_tensor(inputs)).logits
            probs = torch.softmax(logits.float(), dim=1).cpu()
        results = []
        for row in probs.tolist():
            best = max(range(len(row)), key=row.__getitem__)
            results.append(self.output(self.labels[best], row[self.nsfw_index],
                                       dict(zip(self.labels, row))))
        return results
