"""coherence: reddesert/coherence_detection, a FastAI-trained ResNet-34 with 3 classes.

The checkpoint is a plain state_dict of `nn.Sequential(body, head)`: body = torchvision
ResNet-34 without avgpool/fc, head = FastAI `create_head` defaults. Upstream also ships
Python files; they are never executed — the architecture is rebuilt here.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from inference.base import HFSource, TorchAnalyser, require
from inference.types import AnalyserOutput, Job
from inference.weights import Found, WeightsError, expect_shape, read_safetensors_header

WEIGHTS = "coherence_model.safetensors"
LEGACY_PICKLE = "coherence_model.pth"
# FastAI sorts its category vocabulary, so index order is alphabetical.
LABELS = ("coherent", "incoherent", "semi-incoherent")
HEAD_KEY = "1.8.weight"


def common_prefix(keys: Sequence[str]) -> str:
    """The prefix before FastAI's `1.8.weight` (e.g. "model."), checked to be on every key."""
    heads = [k for k in keys if k == HEAD_KEY or k.endswith("." + HEAD_KEY)]
    if len(heads) != 1:
        raise WeightsError(f"expected exactly one '{HEAD_KEY}' (the classifier) in the "
                           f"checkpoint, found {len(heads)}")
    prefix = heads[0][: -len(HEAD_KEY)]
    stray = [k for k in keys if not k.startswith(prefix)]
    if stray:
        raise WeightsError(f"key {stray[0]!r} lacks the common prefix {prefix!r}")
    return prefix


@functools.cache
def _adaptive_concat_pool() -> type:
    import torch
    from torch import nn

    class AdaptiveConcatPool2d(nn.Module):
        """FastAI: cat([max pool, avg pool]) — max first (the trained head expects it)."""

        def __init__(self) -> None:
            super().__init__()
            self.ap = nn.AdaptiveAvgPool2d(1)
            self.mp = nn.AdaptiveMaxPool2d(1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cat([self.mp(x), self.ap(x)], 1)

    return AdaptiveConcatPool2d


def build_model(num_classes: int) -> Any:
    import torchvision
    from torch import nn

    body = nn.Sequential(*list(torchvision.models.resnet34(weights=None).children())[:-2])
    head = nn.Sequential(
        _adaptive_concat_pool()(), nn.Flatten(),
        nn.BatchNorm1d(1024), nn.Dropout(0.25), nn.Linear(1024, 512, bias=False),
        nn.ReLU(inplace=True),
        nn.BatchNorm1d(512), nn.Dropout(0.5), nn.Linear(512, num_classes, bias=False))
    return nn.Sequential(body, head)


class Coherence(TorchAnalyser):
    key = "coherence"
    # 2: FastAI's exact crop arithmetic (int((s/224)*224)); upright picture (EXIF);
    #    large pictures decoded at reduced size
    revision = 2
    cpu_ms_per_image = 60.0
    channels_last_ok = True
    hf_sources = (HFSource("reddesert/coherence_detection", allow_patterns=(WEIGHTS,)),)
    expected_files = (WEIGHTS,)
    how_to_get = ("download coherence_model.safetensors from "
                  "https://huggingface.co/reddesert/coherence_detection into <models>/coherence/, "
                  "or run: gentriage models download coherence")

    @classmethod
    def inspect(cls, folder: Path) -> Found | None:
        weights = folder / WEIGHTS
        if not weights.is_file():
            if (folder / LEGACY_PICKLE).is_file():
                raise WeightsError(f"{folder / LEGACY_PICKLE}: the old pickled checkpoint, which "
                                   f"GenTriage does not unpickle; put {WEIGHTS} beside it")
            return None
        tensors = read_safetensors_header(weights)
        try:
            prefix = common_prefix(list(tensors))
        except WeightsError as exc:
            raise WeightsError(f"{weights}: {exc}") from None
        expect_shape(tensors, prefix + "0.0.weight", (64, 3, 7, 7), weights)
        expect_shape(tensors, prefix + "1.2.weight", (1024,), weights)
        expect_shape(tensors, prefix + "1.4.weight", (512, 1024), weights)
        classes = expect_shape(tensors, prefix + HEAD_KEY, (None, 512), weights)[0]
        require(classes == len(LABELS), f"{weights}: classifier has {classes} classes, expected "
                f"{len(LABELS)} ({', '.join(LABELS)})")
        return Found(folder, {"weights": weights}, {"prefix": prefix, "num_classes": classes})

    def load(self) -> None:
        from safetensors.torch import load_file

        path = self.status.files["weights"]
        state = load_file(path)
        prefix = self.status.details.get("prefix", "")
        state = {k[len(prefix):]: v for k, v in state.items()}
        model = build_model(int(state[HEAD_KEY].shape[0]))
        result = model.load_state_dict(state, strict=False)
        # Conversions sometimes drop BatchNorm's step counter; it does not affect inference.
        missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
        if missing or result.unexpected_keys:
            raise WeightsError(f"{path}: not a FastAI ResNet-34 checkpoint (missing "
                               f"{missing[:3]}, unexpected {result.unexpected_keys[:3]})")
        self.model = self._place(model)

    def preprocess(self, image: Any) -> Any:
        from inference.preprocess import as_tensor, fastai_center_resize

        return as_tensor(fastai_center_resize(image.rgb()))

    def predict(self, inputs: Sequence[Any], jobs: Sequence[Job]) -> list[AnalyserOutput]:
        import torch

        with torch.inference_mode():
            probs = torch.softmax(self.model(self.batch_tensor(inputs)).float(), dim=1).cpu()
        results = []
        for row in probs.tolist():
            best = max(range(len(row)), key=row.__getitem__)
            results.append(self.output(LABELS[best], row[best], dict(zip(LABELS, row))))
        return results
