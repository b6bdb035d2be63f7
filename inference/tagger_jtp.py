"""tagger-jtp: RedRocket JTP-1 PILOT / PILOT2 — timm SigLIP so400m/14 @384 + tags.json.

PILOT has a linear head (logits -> sigmoid); PILOT2 a gated head whose output is already a
probability. The variant is read from the head's tensor names, never from the file name.
Architecture sizes come from the checkpoint shapes, so smaller stand-ins load too.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from inference.base import HFSource, TorchAnalyser, require
from inference.catalog import TAG_STORE_FLOOR
from inference.types import AnalyserOutput, Job
from inference.weights import (
    Found,
    TensorInfo,
    WeightsError,
    expect_shape,
    read_json,
    read_safetensors_header,
)

TIMM_NAME = "vit_so400m_patch14_siglip_384"
SO400M = {"embed_dim": 1152, "depth": 27, "num_heads": 16, "mlp_hidden": 4304}
IMAGE_SIZE = 384
# Preferred first: PILOT2 is the newer, better model.
LAYOUTS = (("JTP_PILOT2", "JTP_PILOT2-e3-vit_so400m_patch14_siglip_384.safetensors"),
           ("JTP_PILOT", "JTP_PILOT-e4-vit_so400m_patch14_siglip_384.safetensors"))


def architecture(tensors: dict[str, TensorInfo], path: Path) -> dict[str, Any]:
    """Variant, tag count and timm overrides from tensor shapes."""
    embed_dim = expect_shape(tensors, "patch_embed.proj.weight", (None, 3, 14, 14), path)[0]
    blocks = {int(m.group(1)) for k in tensors if (m := re.match(r"blocks\.(\d+)\.", k))}
    require(bool(blocks), f"{path}: no transformer blocks ('blocks.N.…')")
    depth = max(blocks) + 1
    mlp_hidden = expect_shape(tensors, "blocks.0.mlp.fc1.weight", (None, embed_dim), path)[0]
    if "head.linear.weight" in tensors:
        variant = "PILOT2"
        rows = expect_shape(tensors, "head.linear.weight", (None, embed_dim), path)[0]
        require(rows % 2 == 0, f"{path}: gated head has an odd row count {rows}")
        n_tags = rows // 2
    elif "head.weight" in tensors:
        variant = "PILOT"
        n_tags = expect_shape(tensors, "head.weight", (None, embed_dim), path)[0]
    else:
        raise WeightsError(f"{path}: no classifier head ('head.weight' for PILOT or "
                           "'head.linear.weight' for PILOT2)")
    overrides: dict[str, Any] = {}
    if (embed_dim, depth, mlp_hidden) != (SO400M["embed_dim"], SO400M["depth"],
                                          SO400M["mlp_hidden"]):
        # Head count is not visible in any shape: so400m's 16 at full width, else 16-wide
        # heads (the convention of the small stand-ins used in tests and benchmarks).
        heads = SO400M["num_heads"] if embed_dim == SO400M["embed_dim"] else max(1, embed_dim // 16)
        # timm computes int(embed_dim * mlp_ratio); +0.5 keeps float error from losing a unit.
        overrides = {"embed_dim": embed_dim, "depth": depth, "num_heads": heads,
                     "mlp_ratio": (mlp_hidden + 0.5) / embed_dim}
    return {"variant": variant, "n_tags": n_tags, "overrides": overrides}


def read_tags(path: Path) -> list[str]:
    data = read_json(path, "tags.json")
    require(isinstance(data, dict) and bool(data),
            f"{path}: expected a JSON object {{tag: index}}")
    names: list[str | None] = [None] * len(data)
    for tag, index in data.items():
        require(type(index) is int and 0 <= index < len(data) and names[index] is None,
                f"{path}: tag {tag!r} has index {index!r}; expected each of 0..{len(data) - 1} once")
        names[index] = tag
    return [str(n) for n in names]


@functools.cache
def gated_head_class() -> type:
    import torch
    from torch import nn

    class GatedHead(nn.Module):
        """PILOT2's head: sigmoid(x[:, :n]) * sigmoid(x[:, n:]) — probabilities already."""

        def __init__(self, num_features: int, num_classes: int):
            super().__init__()
            self.num_classes = num_classes
            self.linear = nn.Linear(num_features, num_classes * 2)
            self.act = nn.Sigmoid()
            self.gate = nn.Sigmoid()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.linear(x)
            return self.act(x[:, :self.num_classes]) * self.gate(x[:, self.num_classes:])

    return GatedHead


def build_model(variant: str, n_tags: int, overrides: dict[str, Any]) -> Any:
    import timm

    model = timm.create_model(TIMM_NAME, pretrained=False, num_classes=n_tags, **overrides)
    if variant == "PILOT2":
        model.head = gated_head_class()(model.num_features, n_tags)
    return model


def _build_loaded(variant: str, n_tags: int, overrides: dict[str, Any], weights: Path) -> Any:
    """The model with the checkpoint's weights, strictly matched.

    Built on the meta device and given the checkpoint's tensors directly (assign=True):
    initialising 430M random weights only to overwrite them cost 11-15 s per start on two
    CPU cores. Should the architecture ever create a tensor the checkpoint does not hold (a
    non-persistent buffer), it falls back to the ordinary build, which is slow but exact.
    """
    import itertools

    import torch
    from safetensors.torch import load_file, load_model

    with torch.device("meta"):
        model = build_model(variant, n_tags, overrides)
    model.load_state_dict(load_file(str(weights)), strict=True, assign=True)
    if not any(t.is_meta for t in itertools.chain(model.parameters(), model.buffers())):
        return model
    model = build_model(variant, n_tags, overrides)
    load_model(model, weights, strict=True)
    return model


class TaggerJtp(TorchAnalyser):
    key = "tagger-jtp"
    # 2: upright picture (EXIF); large pictures decoded at reduced size
    revision = 2
    cpu_ms_per_image = 6000.0
    hf_sources = (HFSource("RedRocket/JointTaggerProject", allow_patterns=(
        f"{LAYOUTS[0][0]}/{LAYOUTS[0][1]}", f"{LAYOUTS[0][0]}/tags.json")),)
    expected_files = tuple(f"{d}/{f} + {d}/tags.json" for d, f in LAYOUTS)
    how_to_get = ("download JTP_PILOT2/ (the .safetensors and tags.json) from "
                  "https://huggingface.co/RedRocket/JointTaggerProject into "
                  "<models>/tagger-jtp/JTP_PILOT2/, or run: gentriage models download tagger-jtp")

    @classmethod
    def inspect(cls, folder: Path) -> Found | None:
        candidates = [folder / sub / name for sub, name in LAYOUTS]
        candidates += sorted(folder.glob("JTP_PILOT*/*.safetensors"))
        candidates += sorted(folder.glob("*.safetensors"))  # flat layout
        problem: WeightsError | None = None
        for weights in dict.fromkeys(candidates):
            if not weights.is_file():
                continue
            tags_path = weights.parent / "tags.json"
            try:
                require(tags_path.is_file(), f"{tags_path}: missing (needed beside {weights.name})")
                arch = architecture(read_safetensors_header(weights), weights)
                tags = read_tags(tags_path)
                require(len(tags) == arch["n_tags"], f"{tags_path}: {len(tags)} tags but "
                        f"{weights.name} has {arch['n_tags']} outputs")
            except WeightsError as exc:
                problem = problem or exc
                continue
            return Found(weights.parent, {"weights": weights, "tags": tags_path}, arch,
                         note=f"JTP {arch['variant']}, {arch['n_tags']} tags")
        if problem:
            raise problem
        return None

    def default_batch_size(self) -> int:
        return 2 if self.device == "cpu" else 16

    def load(self) -> None:
        d = self.status.details
        weights = self.status.files["weights"]
        self.tags = [t.replace("_", " ") for t in read_tags(Path(self.status.files["tags"]))]
        try:
            model = _build_loaded(d["variant"], int(d["n_tags"]), dict(d["overrides"]),
                                  Path(weights))
        except RuntimeError as exc:
            raise WeightsError(f"{weights}: does not match timm {TIMM_NAME} "
                               f"({str(exc).splitlines()[0]})") from exc
        self.gated = d["variant"] == "PILOT2"
        self.model = self._place(model)

    def preprocess(self, image: Any) -> Any:
        from inference.preprocess import as_tensor, jtp_input

        # The original mode matters: alpha is composited over grey, not dropped.
        return as_tensor(jtp_input(image.rgba(), IMAGE_SIZE))

    def predict(self, inputs: Sequence[Any], jobs: Sequence[Job]) -> list[AnalyserOutput]:
        import torch

        with torch.inference_mode():
            out = self.model(self.batch_tensor(inputs)).float()
            probs = (out if self.gated else torch.sigmoid(out)).cpu()
        results = []
        for row in probs:
            # Stored down to the floor: the threshold applies when reading (db.queries).
            keep = torch.nonzero(row >= TAG_STORE_FLOOR).flatten().tolist()
            tags = sorted(((self.tags[i], float(row[i])) for i in keep), key=lambda t: -t[1])
            results.append(self.output(None, float(row.max()), {}, tags))
        return results
