"""aesthetic: LAION improved-aesthetic-predictor (an MLP on OpenAI CLIP ViT-L/14 image
embeddings), plus CLIPScore prompt adherence when CLIP's text tower and tokenizer are there.

Two upstream pieces, found independently:
- the MLP `sac+logos+ava1-l14-linearMSE.pth` in `<models>/aesthetic/`;
- the `openai/clip-vit-large-patch14` folder: `<models>/aesthetic/clip-vit-large-patch14/`,
  `<models>/aesthetic/` itself, or the Hugging Face cache.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from inference.base import HFSource, TorchAnalyser, require, unexpected
from inference.clip_embedding import ProjectedClipTower
from inference.hf_common import check_loading_info, header_or_none, weights_file
from inference.types import AnalyserOutput, Job
from inference.weights import (
    BROKEN,
    MISSING,
    READY,
    Found,
    ModelStatus,
    WeightsError,
    check_torch_archive,
    expect_shape,
    hf_snapshots,
    read_safetensors_header,
)

MLP_FILE = "sac+logos+ava1-l14-linearMSE.pth"
MLP_SAFETENSORS = "sac+logos+ava1-l14-linearMSE.safetensors"
CLIP_REPO = "openai/clip-vit-large-patch14"
CLIP_SUBDIR = "clip-vit-large-patch14"
MLP_SOURCE = HFSource("camenduru/improved-aesthetic-predictor", allow_patterns=(MLP_FILE,))
CLIP_SOURCE = HFSource(CLIP_REPO, allow_patterns=(
    "config.json", "preprocessor_config.json", "model.safetensors", "tokenizer.json",
    "tokenizer_config.json", "vocab.json", "merges.txt", "special_tokens_map.json"))
# (name, shape) of the MLP's Linear layers; Dropouts sit at 1, 3, 5.
MLP_LAYERS = ((0, (1024, 768)), (2, (128, 1024)), (4, (64, 128)), (6, (16, 64)), (7, (1, 16)))
TOKENIZER_SETS = (("vocab.json", "merges.txt"), ("tokenizer.json",))


@functools.cache
def mlp_class() -> type:
    from torch import nn

    class AestheticMLP(nn.Module):
        """improved-aesthetic-predictor's MLP (its training-time class, minus Lightning)."""

        def __init__(self, input_size: int = 768):
            super().__init__()
            self.layers = nn.Sequential(
                nn.Linear(input_size, 1024), nn.Dropout(0.2), nn.Linear(1024, 128),
                nn.Dropout(0.2), nn.Linear(128, 64), nn.Dropout(0.1), nn.Linear(64, 16),
                nn.Linear(16, 1))

        def forward(self, x: Any) -> Any:
            return self.layers(x)

    return AestheticMLP


def inspect_mlp(folder: Path) -> Path | None:
    for name in (MLP_SAFETENSORS, MLP_FILE):
        path = folder / name
        if not path.is_file():
            continue
        if path.suffix == ".safetensors":
            tensors = read_safetensors_header(path)
            for index, shape in MLP_LAYERS:
                expect_shape(tensors, f"layers.{index}.weight", shape, path)
        else:
            check_torch_archive(path)
        return path
    return None


def inspect_clip(folder: Path) -> Found | None:
    weights = weights_file(folder)
    config_path = folder / "config.json"
    if weights is None or not config_path.is_file():
        if weights is not None or config_path.is_file():
            raise WeightsError(f"{folder}: incomplete CLIP folder (need config.json and "
                               "model.safetensors)")
        return None
    from inference.hf_common import read_preprocessor
    from inference.schemas import ClipConfig, read_json_as

    config = read_json_as(config_path, "config.json", ClipConfig)
    require(config.model_type == "clip", f"{config_path}: model_type "
            f"{config.model_type!r}, expected 'clip' (openai/clip-vit-large-patch14)")
    dim = config.projection_dim
    require(dim == 768, f"{config_path}: projection_dim {dim}; the aesthetic MLP needs CLIP "
            "ViT-L/14 embeddings (768)")
    tensors = header_or_none(weights)
    text_weights = True
    if tensors is not None:
        hidden = expect_shape(tensors, "visual_projection.weight", (768, None), weights)[1]
        expect_shape(tensors, "vision_model.embeddings.patch_embedding.weight",
                     (hidden, 3, None, None), weights)
        text_weights = "text_projection.weight" in tensors
    tokenizer = any(all((folder / f).is_file() for f in group) for group in TOKENIZER_SETS)
    files = {"clip_weights": weights, "clip_config": config_path}
    if (folder / "preprocessor_config.json").is_file():
        files["clip_preprocessor"] = folder / "preprocessor_config.json"
        read_preprocessor(files["clip_preprocessor"])
    return Found(folder, files, {"clip_folder": str(folder),
                                 "has_text": bool(text_weights and tokenizer)})


class Aesthetic(ProjectedClipTower, TorchAnalyser):
    key = "aesthetic"
    # 2: upright picture (EXIF); large pictures decoded at reduced size
    revision = 2
    cpu_ms_per_image = 1100.0
    hf_sources = (MLP_SOURCE, CLIP_SOURCE)
    expected_files = (MLP_FILE, f"{CLIP_SUBDIR}/config.json", f"{CLIP_SUBDIR}/model.safetensors",
                      f"{CLIP_SUBDIR}/preprocessor_config.json",
                      f"{CLIP_SUBDIR}/vocab.json + merges.txt (for prompt adherence)")
    how_to_get = (f"put {MLP_FILE} (github.com/christophschuhmann/improved-aesthetic-predictor) "
                  f"in <models>/aesthetic/ and the https://huggingface.co/{CLIP_REPO} files in "
                  f"<models>/aesthetic/{CLIP_SUBDIR}/ (or have {CLIP_REPO} in your Hugging Face "
                  "cache), or run: gentriage models download aesthetic")

    @classmethod
    def download_plan(cls) -> list[tuple[HFSource, str]]:
        return [(MLP_SOURCE, ""), (CLIP_SOURCE, CLIP_SUBDIR)]

    @classmethod
    def _mlp_folders(cls, models_dir: Path, hf_cache: Path | None) -> Iterator[Path]:
        yield Path(models_dir) / cls.key
        yield from hf_snapshots(MLP_SOURCE.repo_id, hf_cache)

    @classmethod
    def _clip_folders(cls, models_dir: Path, hf_cache: Path | None) -> Iterator[Path]:
        yield Path(models_dir) / cls.key / CLIP_SUBDIR
        yield Path(models_dir) / cls.key
        yield from hf_snapshots(CLIP_REPO, hf_cache)

    @classmethod
    def discover(cls, models_dir: Path, hf_cache: Path | None = None) -> ModelStatus:
        mlp: Path | None = None
        problems: list[tuple[Path, str]] = []
        for folder in cls._mlp_folders(models_dir, hf_cache):
            try:
                mlp = inspect_mlp(folder)
            except WeightsError as exc:
                problems.append((folder, str(exc)))
            except Exception as exc:  # noqa: BLE001 - a file no check foresaw: still "broken"
                problems.append((folder, unexpected(folder, exc)))
            if mlp:
                break
        clip: Found | None = None
        for folder in cls._clip_folders(models_dir, hf_cache):
            if not folder.is_dir():
                continue
            try:
                clip = inspect_clip(folder)
            except WeightsError as exc:
                problems.append((folder, str(exc)))
            except Exception as exc:  # noqa: BLE001 - a file no check foresaw: still "broken"
                problems.append((folder, unexpected(folder, exc)))
            if clip:
                break
        if mlp and clip:
            files = {"mlp": mlp, **clip.files}
            note = ("with prompt adherence" if clip.details["has_text"] else
                    "no CLIP text tower/tokenizer: prompt adherence off")
            found = Found(mlp.parent, files, clip.details)
            return cls._status(READY, str(mlp.parent), f"MLP {mlp.name}, CLIP in "
                               f"{clip.folder}; {note}", found)
        if problems:
            return cls._status(BROKEN, str(problems[0][0]), problems[0][1])
        lacking = " and ".join(x for x, ok in ((MLP_FILE, mlp), (f"the {CLIP_REPO} model", clip))
                               if not ok)
        return cls._status(MISSING, str(mlp.parent) if mlp else None,
                           f"missing {lacking} (looked in {Path(models_dir) / cls.key} and the "
                           "Hugging Face cache)")

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        from inference.hf_common import read_preprocessor
        from inference.preprocess import ClipRecipe

        self.clip_recipe = ClipRecipe.from_config(
            read_preprocessor(self.status.files.get("clip_preprocessor")))
        self.clip_encoder: Any = None
        self.tokenizer: Any = None
        self.text_model: Any = None

    @property
    def has_text(self) -> bool:
        return self.text_model is not None and self.tokenizer is not None

    def load(self) -> None:
        import torch
        from transformers import CLIPModel

        from inference.clip_embedding import ClipVisionEncoder
        from inference.hf_common import quiet_transformers

        quiet_transformers()
        mlp_path = Path(self.status.files["mlp"])
        mlp = mlp_class()()
        try:
            if mlp_path.suffix == ".safetensors":
                from safetensors.torch import load_file

                state = load_file(mlp_path)
            else:  # plain state_dict; never unpickle arbitrary objects
                state = torch.load(mlp_path, map_location="cpu", weights_only=True)
            mlp.load_state_dict(state, strict=True)
        except Exception as exc:  # any failure here is "wrong file"
            raise WeightsError(f"{mlp_path}: not the improved-aesthetic-predictor MLP state_dict "
                               f"(keys layers.0/2/4/6/7 .weight/.bias): {exc}") from exc
        self.mlp = mlp.to(self.device).eval()  # tiny: always fp32

        folder = Path(self.status.details["clip_folder"])
        weights = Path(self.status.files["clip_weights"])
        has_text = bool(self.status.details.get("has_text"))
        try:
            clip, info = CLIPModel.from_pretrained(
                folder, local_files_only=True, output_loading_info=True, weights_only=True,
                use_safetensors=weights.suffix == ".safetensors")
        except (OSError, ValueError, RuntimeError) as exc:
            raise WeightsError(f"{weights}: cannot load CLIP ({exc})") from exc
        # A vision-only checkpoint is fine: the text tower is then simply not used.
        info["missing_keys"] = [k for k in info.get("missing_keys", ())
                                if not (k.startswith("text_") or k == "logit_scale")
                                or has_text]
        check_loading_info(info, weights)
        clip = self._place(clip)
        self.clip_encoder = ClipVisionEncoder(clip.vision_model)
        self.visual_projection = clip.visual_projection
        if has_text:
            self.text_model, self.text_projection = clip.text_model, clip.text_projection
            self.max_tokens = int(clip.config.text_config.max_position_embeddings)
            self.tokenizer = self._load_tokenizer(folder)
        del clip  # an unused text tower is freed here

    def _load_tokenizer(self, folder: Path) -> Any:
        from transformers import CLIPTokenizer

        try:
            return CLIPTokenizer.from_pretrained(folder, local_files_only=True)
        except (OSError, ValueError) as exc:
            self.status.message += f"; tokenizer unreadable ({exc}): prompt adherence off"
            self.text_model = None
            return None

    def predict(self, inputs: Sequence[Any], jobs: Sequence[Job]) -> list[AnalyserOutput]:
        import torch
        import torch.nn.functional as F

        with torch.inference_mode():
            pooled = self.clip_encoder.pooled(self.batch_tensor(inputs),
                                              [(j.job_id, j.path) for j in jobs])
            image = F.normalize(self.visual_projection(pooled).float(), dim=-1)
            aesthetic = self.mlp(image).squeeze(1).cpu().tolist()
            adherence = self._prompt_adherence(image, jobs)
        results = []
        for i, score in enumerate(aesthetic):
            scores = {"aesthetic": score}
            if i in adherence:
                scores["prompt_adherence"] = adherence[i]
            results.append(self.output(None, score, scores))
        return results

    def _prompt_adherence(self, image: Any, jobs: Sequence[Job]) -> dict[int, float]:
        """CLIPScore = 100 * max(cos(image, text), 0), the prompt cut to CLIP's 77 tokens."""
        import torch.nn.functional as F

        rows = [i for i, job in enumerate(jobs) if job.prompt and job.prompt.strip()]
        if not rows or not self.has_text:
            return {}
        tokens = self.tokenizer([jobs[i].prompt for i in rows], padding=True, truncation=True,
                                max_length=self.max_tokens, return_tensors="pt").to(self.device)
        pooled = self.text_model(input_ids=tokens["input_ids"],
                                 attention_mask=tokens["attention_mask"]).pooler_output
        text = F.normalize(self.text_projection(pooled).float(), dim=-1)
        cos = (image[rows] * text).sum(dim=-1).clamp(min=0) * 100.0
        return dict(zip(rows, cos.cpu().tolist()))
