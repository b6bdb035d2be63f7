"""clip: the CLIP ViT-L/14 image embedding of every picture, for text search and find-similar.

Uses the OpenAI CLIP ViT-L/14 files the aesthetic analyser already finds (the same folders,
in the same order: `<models>/aesthetic/clip-vit-large-patch14/`, `<models>/aesthetic/`, the
Hugging Face cache's `openai/clip-vit-large-patch14`), so nothing more has to be downloaded;
`<models>/clip/` last, where `gentriage models download clip` puts CLIP alone.

The stored embedding is the projected image embedding (`visual_projection(pooled)`, 768-d),
L2-normalised, as little-endian float16 bytes: cosine similarity is then a dot product, and
a million pictures take 1.5 GB. When `aesthetic` (or the safety checker) runs with the same
tower, the pipeline hands this analyser their ClipVisionEncoder (inference.clip_embedding),
whose per-run cache makes the second reader of an image free: one forward pass per image.

`ClipTextEncoder` is the text side for `gentriage search` and the app's `like:` term: the
tokenizer and text tower (CLIPTextModelWithProjection) from the same folder, so text and
image vectors live in the same space. torch/transformers are imported inside the methods.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from inference.aesthetic import (
    CLIP_REPO,
    CLIP_SOURCE,
    CLIP_SUBDIR,
    Aesthetic,
    inspect_clip,
)
from inference.base import HFSource, TorchAnalyser
from inference.clip_embedding import ProjectedClipTower
from inference.hf_common import check_loading_info
from inference.types import AnalyserOutput, Job
from inference.weights import (
    BROKEN,
    MISSING,
    READY,
    Found,
    ModelStatus,
    WeightsError,
    read_json,
)

EMBEDDING_DIM = 768
EMBEDDING_DTYPE = "<f2"  # numpy spelling of the stored bytes: little-endian float16


class ClipEmbedding(ProjectedClipTower, TorchAnalyser):
    key = "clip"
    # Alone it costs a full ViT-L/14 pass; beside `aesthetic` it reuses that pass (~0 ms).
    cpu_ms_per_image = 1100.0
    hf_sources = (CLIP_SOURCE,)
    expected_files = (f"aesthetic/{CLIP_SUBDIR}/config.json",
                      f"aesthetic/{CLIP_SUBDIR}/model.safetensors",
                      f"aesthetic/{CLIP_SUBDIR}/preprocessor_config.json",
                      f"aesthetic/{CLIP_SUBDIR}/vocab.json + merges.txt (for text search)")
    how_to_get = (f"put the https://huggingface.co/{CLIP_REPO} files in "
                  f"<models>/aesthetic/{CLIP_SUBDIR}/ (the folder the aesthetic analyser "
                  f"uses; or have {CLIP_REPO} in your Hugging Face cache), or run: "
                  "gentriage models download aesthetic (or: … download clip, CLIP alone)")

    @classmethod
    def download_plan(cls) -> list[tuple[HFSource, str]]:
        return [(CLIP_SOURCE, "")]

    @classmethod
    def discover(cls, models_dir: Path, hf_cache: Path | None = None) -> ModelStatus:
        problems: list[tuple[Path, str]] = []
        for folder in (*Aesthetic._clip_folders(models_dir, hf_cache), Path(models_dir) / cls.key):
            if not folder.is_dir():
                continue
            try:
                found = inspect_clip(folder)
            except WeightsError as exc:
                problems.append((folder, str(exc)))
                continue
            if found is not None:
                note = ("text search ready" if found.details["has_text"] else
                        "no CLIP text tower/tokenizer: `similar` works, text search does not")
                # The version covers the image tower's files only (the tokenizer does not
                # change an image embedding).
                return cls._status(READY, str(found.folder), f"CLIP in {found.folder}; {note}",
                                   Found(found.folder, found.files, found.details))
        if problems:
            return cls._status(BROKEN, str(problems[0][0]), problems[0][1])
        return cls._status(MISSING, None, f"missing the {CLIP_REPO} model (looked in "
                           f"{Path(models_dir) / 'aesthetic'}, {Path(models_dir) / cls.key} and the "
                           "Hugging Face cache)")

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        from inference.preprocess import ClipRecipe

        pre = self.status.files.get("clip_preprocessor")
        self.clip_recipe = ClipRecipe.from_config(read_json(Path(pre), "preprocessor_config.json")
                                                  if pre else {})
        self.clip_encoder: Any = None
        self.visual_projection: Any = None

    def load(self) -> None:
        from transformers import CLIPVisionModelWithProjection

        from inference.clip_embedding import ClipVisionEncoder
        from inference.hf_common import quiet_transformers

        quiet_transformers()
        folder = Path(self.status.details["clip_folder"])
        weights = Path(self.status.files["clip_weights"])
        try:
            # Reads the vision tower and projection out of the full CLIPModel checkpoint; the
            # text tower's tensors are left on disk.
            with _one_tower_load():
                loaded: Any = CLIPVisionModelWithProjection.from_pretrained(
                    folder, config=_tower_config(folder, "vision"), local_files_only=True,
                    output_loading_info=True, weights_only=True,
                    use_safetensors=weights.suffix == ".safetensors")
        except (OSError, ValueError, RuntimeError) as exc:
            raise WeightsError(f"{weights}: cannot load the CLIP vision tower ({exc})") from exc
        model, info = loaded  # (model, loading info): output_loading_info=True
        check_loading_info(info, weights)
        model = self._place(model)
        self.clip_encoder = ClipVisionEncoder(model.vision_model)
        self.visual_projection = model.visual_projection

    def predict(self, inputs: Sequence[Any], jobs: Sequence[Job]) -> list[AnalyserOutput]:
        import torch
        import torch.nn.functional as F

        with torch.inference_mode():
            pooled = self.clip_encoder.pooled(self.batch_tensor(inputs),
                                              [(j.job_id, j.path) for j in jobs])
            # Project and normalise in fp32 whatever the tower ran in; store fp16.
            projected = pooled.float() @ self.visual_projection.weight.float().T
            vectors = F.normalize(projected, dim=-1).to(torch.float16).cpu().numpy()
        vectors = vectors.astype(EMBEDDING_DTYPE, copy=False)
        return [AnalyserOutput(self.key, self.version, None, None, {}, [],
                               payload=row.tobytes()) for row in vectors]


@contextmanager
def _one_tower_load() -> Iterator[None]:
    """Loading one tower out of the full CLIPModel checkpoint leaves the other tower's tensors
    "unexpected", which transformers reports as a warning table on stderr; that is the point
    here, not a problem (missing or mismatched keys are still refused by check_loading_info)."""
    from transformers.utils import logging as hf_logging

    before = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(before)


def _tower_config(folder: Path, tower: str) -> Any:
    """One tower's config out of the folder's CLIPConfig, with the model's projection size
    (a tower config read on its own keeps transformers' default of 512)."""
    from transformers import CLIPConfig

    config: Any = CLIPConfig.from_pretrained(folder, local_files_only=True)
    part = config.vision_config if tower == "vision" else config.text_config
    part.projection_dim = config.projection_dim
    return part


class ClipTextEncoder:
    """CLIP's tokenizer and text tower (with projection) from the `clip` analyser's folder:
    text -> L2-normalised 768-d float32 vectors in the image embeddings' space."""

    def __init__(self, status: ModelStatus, device: str = "cpu"):
        if status.status != READY:
            raise WeightsError(status.message)
        if not status.details.get("has_text"):
            raise WeightsError(f"{status.path}: no CLIP text tower or tokenizer (vocab.json + "
                               "merges.txt, or tokenizer.json) beside the vision weights")
        self.status = status
        self.device = device
        self.tokenizer: Any = None
        self.model: Any = None

    def load(self) -> None:
        from transformers import CLIPTextModelWithProjection, CLIPTokenizer

        from inference.hf_common import quiet_transformers

        quiet_transformers()
        folder = Path(self.status.details["clip_folder"])
        weights = Path(self.status.files["clip_weights"])
        try:
            self.tokenizer = CLIPTokenizer.from_pretrained(folder, local_files_only=True)
            with _one_tower_load():
                loaded: Any = CLIPTextModelWithProjection.from_pretrained(
                    folder, config=_tower_config(folder, "text"), local_files_only=True,
                    output_loading_info=True, weights_only=True,
                    use_safetensors=weights.suffix == ".safetensors")
        except (OSError, ValueError, RuntimeError) as exc:
            raise WeightsError(f"{folder}: cannot load the CLIP text tower ({exc})") from exc
        model, info = loaded
        check_loading_info(info, weights)
        self.model = model.to(self.device).eval()  # fp32: a query is one short sequence
        self.max_tokens = int(model.config.max_position_embeddings)

    def encode(self, texts: Sequence[str]) -> Any:
        """(len(texts), 768) float32 numpy array, each row L2-normalised. Text longer than
        CLIP's 77 tokens is cut, as CLIP was trained."""
        import torch
        import torch.nn.functional as F

        if self.model is None:
            self.load()
        tokens = self.tokenizer(list(texts), padding=True, truncation=True,
                                max_length=self.max_tokens, return_tensors="pt").to(self.device)
        with torch.inference_mode():
            out = self.model(input_ids=tokens["input_ids"],
                             attention_mask=tokens["attention_mask"]).text_embeds
            return F.normalize(out.float(), dim=-1).cpu().numpy()


__all__ = ["EMBEDDING_DIM", "EMBEDDING_DTYPE", "ClipEmbedding", "ClipTextEncoder"]
