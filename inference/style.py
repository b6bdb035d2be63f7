"""style: VGG19 Gram matrices (Gatys et al. 2016) for the report's style loss.

Weights: torchvision's ImageNet VGG19 file exactly as torchvision saves it,
`vgg19-dcbb9e9d.pth` (a plain state_dict of `torchvision.models.vgg19()`: `features.N.*`,
`classifier.*`), found in `<models>/style/` or in torch hub's cache
(`$TORCH_HOME/hub/checkpoints/`, default `~/.cache/torch/hub/checkpoints/`), where any
torchvision user already has it. Never downloaded at run time; read with
`torch.load(weights_only=True)`. Only `features` up to the ReLU after conv5_1 is used.

Per picture: resized so its long side is 512 px (bicubic), ImageNet normalisation, then the
Gram matrices of the ReLU outputs of conv1_1..conv5_1, stored packed (inference/style_gram.py:
fp16 upper triangles, 597.5 KiB per picture) as the result's payload.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from inference.base import TorchAnalyser
from inference.style_gram import LAYERS, pack, triangle_size
from inference.types import AnalyserOutput, Job
from inference.weights import (
    MISSING,
    Found,
    ModelStatus,
    WeightsError,
    check_torch_archive,
)

WEIGHTS = "vgg19-dcbb9e9d.pth"
LONG_SIDE = 512
# features[:LAST_FEATURE + 1] ends with the ReLU after conv5_1.
LAST_FEATURE = max(layer.relu_index for layer in LAYERS)


def torch_hub_checkpoints() -> Path:
    """torch.hub's checkpoint folder, worked out as torch.hub.get_dir() does (without
    importing torch): $TORCH_HOME, else $XDG_CACHE_HOME/torch, else ~/.cache/torch."""
    home = os.environ.get("TORCH_HOME")
    if not home:
        home = os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "torch")
    return Path(home).expanduser() / "hub" / "checkpoints"


@functools.cache
def feature_shapes() -> dict[str, tuple[int, ...]]:
    """Parameter name -> shape of torchvision's vgg19().features up to conv5_1's ReLU."""
    import torch
    import torchvision

    with torch.device("meta"):
        features = torchvision.models.vgg19(weights=None).features[:LAST_FEATURE + 1]
    return {f"features.{name}": tuple(p.shape) for name, p in features.state_dict().items()}


def build_features(state: dict[str, Any]) -> Any:
    """torchvision's vgg19().features[:30] holding `state`'s tensors (built on the meta
    device and filled by assignment: no 143M-parameter random initialisation)."""
    import torch
    import torchvision

    with torch.device("meta"):
        features = torchvision.models.vgg19(weights=None).features[:LAST_FEATURE + 1]
    features.load_state_dict({k[len("features."):]: v for k, v in state.items()},
                             strict=True, assign=True)
    for module in features:  # in-place ReLUs would overwrite the outputs we keep
        if isinstance(module, torch.nn.ReLU):
            module.inplace = False
    return features


class Style(TorchAnalyser):
    key = "style"
    # CPU time 1.2 s per 512 px picture on 2 cores (benchmarks/bench_report.py), ~0.6 s wall
    # when the machine is idle: after aesthetic, before the tagger.
    cpu_ms_per_image = 1200.0
    channels_last_ok = True
    expected_files = (WEIGHTS,)
    how_to_get = (f"put torchvision's ImageNet VGG19 file {WEIGHTS} (unchanged; "
                  "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth, or what "
                  "torchvision.models.vgg19(weights='IMAGENET1K_V1') downloads) in "
                  f"<models>/style/ or {torch_hub_checkpoints()}")

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.long_side = LONG_SIDE  # tests lower it: VGG19 at 512 px costs ~2 s on a CPU
        self._indices: dict[int, tuple[Any, Any]] = {}

    @classmethod
    def candidate_folders(cls, models_dir: Path, hf_cache: Path | None
                          ) -> Iterator[tuple[Path, str]]:
        yield Path(models_dir) / cls.key, "models directory"
        yield torch_hub_checkpoints(), "torch hub cache"

    @classmethod
    def discover(cls, models_dir: Path, hf_cache: Path | None = None) -> ModelStatus:
        status = super().discover(models_dir, hf_cache)
        if status.status == MISSING:  # the base message names the Hugging Face cache
            status.message = (f"no {WEIGHTS} in {Path(models_dir) / cls.key} or "
                              f"{torch_hub_checkpoints()}")
        return status

    @classmethod
    def inspect(cls, folder: Path) -> Found | None:
        weights = folder / WEIGHTS
        if not weights.is_file():
            return None
        check_torch_archive(weights)  # shapes are checked at load (needs unpickling)
        return Found(folder, {"weights": weights})

    def load(self) -> None:
        import torch

        path = Path(self.status.files["weights"])
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise WeightsError(f"{path}: not a torch state_dict ({exc})") from exc
        if not isinstance(state, dict):
            raise WeightsError(f"{path}: holds a {type(state).__name__}, expected "
                               "torchvision's VGG19 state_dict")
        wanted = feature_shapes()
        for name, shape in wanted.items():
            tensor = state.get(name)
            if tensor is None:
                raise WeightsError(f"{path}: missing tensor {name!r} — not torchvision's "
                                   "VGG19 state_dict")
            if tuple(tensor.shape) != shape:
                raise WeightsError(f"{path}: tensor {name!r} has shape {list(tensor.shape)}, "
                                   f"expected {list(shape)} (VGG19)")
        features = build_features({k: state[k].float() for k in wanted})
        del state  # the classifier (~410 MB) is not needed
        self.model = self._place(features)

    def preprocess(self, image: Any) -> Any:
        from PIL import Image

        from inference.preprocess import (
            IMAGENET_MEAN,
            IMAGENET_STD,
            as_tensor,
            normalise,
            to_chw_float,
        )

        rgb = image.rgb()
        scale = self.long_side / max(rgb.width, rgb.height)
        size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
        if size != rgb.size:
            rgb = rgb.resize(size, Image.Resampling.BICUBIC)
        return as_tensor(normalise(to_chw_float(rgb), IMAGENET_MEAN, IMAGENET_STD))

    def _upper(self, channels: int) -> tuple[Any, Any]:
        if channels not in self._indices:
            import torch

            rows, cols = torch.triu_indices(channels, channels)
            self._indices[channels] = (rows.to(self.device), cols.to(self.device))
        return self._indices[channels]

    def grams(self, batch: Any) -> list[list[Any]]:
        """Per image of a same-sized batch: the upper triangles of the five Gram matrices
        (float32 numpy arrays, LAYERS order)."""
        import torch

        wanted = {layer.relu_index: layer for layer in LAYERS}
        triangles: list[list[Any]] = [[] for _ in range(batch.shape[0])]
        x = batch
        with torch.inference_mode():
            for index, module in enumerate(self.model):
                x = module(x)
                layer = wanted.get(index)
                if layer is None:
                    continue
                # In float32 whatever the model's precision: sums over 262k positions.
                f = x.float().flatten(2)  # (B, N, M)
                gram = torch.bmm(f, f.transpose(1, 2)) / f.shape[2]
                rows, cols = self._upper(layer.channels)
                upper = gram[:, rows, cols].cpu().numpy()
                assert upper.shape[1] == triangle_size(layer.channels)
                for i in range(batch.shape[0]):
                    triangles[i].append(upper[i])
        return triangles

    def predict(self, inputs: Sequence[Any], jobs: Sequence[Job]) -> list[AnalyserOutput]:
        # Pictures of different sizes cannot share a tensor: one forward per size.
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, tensor in enumerate(inputs):
            by_shape.setdefault(tuple(tensor.shape), []).append(i)
        packed: dict[int, bytes] = {}
        for rows in by_shape.values():
            for i, triangles in zip(rows, self.grams(self.batch_tensor([inputs[i] for i in rows]))):
                packed[i] = pack(triangles)
        results = []
        for i in range(len(inputs)):
            output = self.output(None, None, {"gram_kib": round(len(packed[i]) / 1024, 1)})
            output.payload = packed[i]
            results.append(output)
        return results
