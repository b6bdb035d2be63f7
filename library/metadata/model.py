"""The reader's result types (public; re-exported by library.metadata)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# Every family name the reader emits. Other modules (stats, export) group by these, so a new
# generator must map onto one of them or onto None (metadata found, family unknown).
FAMILIES = (
    "a1111", "forge", "sdnext", "comfyui", "invokeai", "novelai", "fooocus", "swarmui",
    "drawthings", "civitai",
)


class MetadataReadError(Exception):
    """The file could not be opened as an image (missing, unreadable, not an image)."""


@dataclass
class Lora:
    name: str
    weight: float | None = None


@dataclass
class GenerationMetadata:
    generator: str | None = None
    generator_detail: str | None = None
    prompt: str | None = None
    negative_prompt: str | None = None
    seed: int | None = None
    steps: int | None = None
    sampler: str | None = None
    scheduler: str | None = None
    cfg_scale: float | None = None
    width: int | None = None
    height: int | None = None
    model: str | None = None
    model_hash: str | None = None
    loras: list[Lora] = field(default_factory=list)
    raw: dict[str, str] = field(default_factory=dict)
    # ComfyUI graphs: the size after hires/upscale passes when the graph says (width/height
    # stay the first pass's, as A1111's "Size"), and why a graph walk stopped early (a budget
    # or depth limit on a huge or hostile graph). Not part of `to_json_dict`'s fixed keys;
    # `generator_detail` mentions both.
    final_width: int | None = None
    final_height: int | None = None
    walk_incomplete: str | None = None

    @property
    def has_parameters(self) -> bool:
        """True when any generation parameter was recognised (the family may still be None)."""
        return self.generator is not None or any(
            getattr(self, name) is not None
            for name in ("prompt", "negative_prompt", "seed", "steps", "sampler", "model")
        )

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "generator": self.generator,
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "seed": self.seed,
            "steps": self.steps,
            "sampler": self.sampler,
            "scheduler": self.scheduler,
            "cfg_scale": self.cfg_scale,
            "width": self.width,
            "height": self.height,
            "model": self.model,
            "model_hash": self.model_hash,
            "loras": [asdict(lora) for lora in self.loras],
        }
