"""One CLIP vision tower, run once per image however many analysers read its embedding.

The safety checker and the aesthetic predictor both start from a CLIP ViT-L/14 image
embedding. The user's safety-checker tower is normally OpenAI's ViT-L/14 unchanged; when
its weights are *identical* (compared tensor by tensor after loading — exact, and cheaper
than hashing 1.2 GB) and the two preprocessing recipes agree, both analysers use one module
and one forward pass per image. Within the aesthetic analyser the same embedding also feeds
the prompt-adherence score.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

_CACHE_LIMIT = 2048  # pooled vectors (4 KB each at ViT-L width)


class ClipVisionEncoder:
    """Wraps a transformers CLIPVisionModel; remembers pooled outputs per image for a run."""

    def __init__(self, vision_model: Any):
        self.vision_model = vision_model
        self._cache: OrderedDict[Any, Any] = OrderedDict()
        self.images_encoded = 0  # forward passes actually run (tests and benchmarks read it)
        self.shared = False  # set when a second analyser adopted this encoder

    def reset(self) -> None:
        self._cache.clear()

    def pooled(self, pixel_values: Any, image_ids: Sequence[Any]) -> Any:
        """(N, hidden) pooled output (post-layernorm CLS), computing only unseen images."""
        import torch

        todo = [i for i, image_id in enumerate(image_ids) if image_id not in self._cache]
        if todo:
            subset = pixel_values if len(todo) == len(image_ids) else pixel_values[todo]
            with torch.inference_mode():
                out = self.vision_model(pixel_values=subset).pooler_output
            self.images_encoded += len(todo)
            for row, i in enumerate(todo):
                self._cache[image_ids[i]] = out[row]
            while len(self._cache) > _CACHE_LIMIT:
                self._cache.popitem(last=False)
        return torch.stack([self._cache[image_id] for image_id in image_ids])


class ProjectedClipTower:
    """What the aesthetic predictor and the clip embedding share: a CLIP vision tower behind a
    ClipVisionEncoder plus CLIP's visual projection. Mixed in before TorchAnalyser (which
    provides `device` and `_place`)."""

    clip_encoder: Any = None
    visual_projection: Any = None
    clip_recipe: Any = None  # inference.preprocess.ClipRecipe, read from the model's folder
    device: str

    if TYPE_CHECKING:
        def _place(self, module: Any) -> Any: ...  # TorchAnalyser's

    @property
    def input_key(self) -> str:
        """Equal recipes make one input: the pipeline preprocesses an image once for both."""
        return clip_input_key(self.clip_recipe)

    def preprocess(self, image: Any) -> Any:
        from inference.preprocess import as_tensor

        return as_tensor(self.clip_recipe(image.rgb()))

    def adopt_clip_encoder(self, encoder: Any) -> None:
        """Use another analyser's identical tower (and its per-image cache); ours is freed."""
        self.clip_encoder = encoder
        encoder.shared = True

    def begin_run(self) -> None:
        if self.clip_encoder is not None:
            self.clip_encoder.reset()

    def move_to(self, device: str) -> None:
        self.device = device
        vision = self._place(private_copy(self.clip_encoder).vision_model)
        self.clip_encoder = ClipVisionEncoder(vision)
        self.visual_projection = self._place(self.visual_projection)


def same_weights(a: Any, b: Any) -> bool:
    if a is b:
        return True
    import torch

    sa, sb = a.state_dict(), b.state_dict()
    if sa.keys() != sb.keys():
        return False
    return all(sa[k].shape == sb[k].shape and sa[k].dtype == sb[k].dtype
               and torch.equal(sa[k], sb[k]) for k in sa)


def share_clip_encoders(analysers: Sequence[Any]) -> list[tuple[str, str]]:
    """Make analysers with identical CLIP towers and recipes use one encoder.
    Returns the (kept, merged) analyser key pairs."""
    users = [a for a in analysers if getattr(a, "clip_encoder", None) is not None]
    merged: list[tuple[str, str]] = []
    for i, first in enumerate(users):
        for other in users[i + 1:]:
            if other.clip_encoder is first.clip_encoder:
                continue
            if (other.clip_recipe == first.clip_recipe and other.device == first.device
                    and same_weights(first.clip_encoder.vision_model,
                                     other.clip_encoder.vision_model)):
                other.adopt_clip_encoder(first.clip_encoder)
                first.clip_encoder.shared = True
                merged.append((first.key, other.key))
    return merged


def clip_input_key(recipe: Any) -> str:
    return f"clip:{recipe!r}"


def private_copy(encoder: ClipVisionEncoder) -> ClipVisionEncoder:
    """Before moving a shared tower to another device, the mover takes its own copy so the
    other analyser keeps a tower on the device its inputs go to."""
    import copy

    return ClipVisionEncoder(copy.deepcopy(encoder.vision_model)) if encoder.shared else encoder
