"""Everything the details pane shows about one image, read in one short session.

A handful of indexed lookups (the image, its content, generation metadata, LoRAs, analysis
results, tags), like the grid's page reads. Tags count from the person's tag threshold, as
in filters and the export (see db.queries).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.schema import AnalysisResult, Content, Generation, Image, LoraUse, Tag

MAX_TAGS_SHOWN = 60

GENERATION_FIELDS = ("generator", "generator_detail", "prompt", "negative_prompt", "seed",
                     "steps", "sampler", "scheduler", "cfg_scale", "width", "height", "model",
                     "model_hash")


@dataclass
class ImageDetails:
    image_id: int
    path: str
    name: str
    size: int
    mtime_ns: int
    status: str
    error: str | None
    width: int | None = None
    height: int | None = None
    format: str | None = None
    sha256: str | None = None
    decision: str = "none"
    rating: int = 0
    flagged: bool = False
    flag_nsfw: bool = False
    flag_incoherent: bool = False
    generation: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)
    loras: list[tuple[str, float | None]] = field(default_factory=list)
    results: list[tuple[str, str | None, float | None, dict, str | None]] = field(
        default_factory=list)  # analyser, label, score, scores, error
    tags: list[tuple[str, float, str]] = field(default_factory=list)  # tag, score, analyser


def load_details(session: Session, image_id: int, *, tag_threshold: float | None = None,
                 max_tags: int = MAX_TAGS_SHOWN) -> ImageDetails | None:
    """The image's facts (None: no such image). `tag_threshold`: the tags shown score at
    least this (None: every stored tag); at most `max_tags`, highest first."""
    image = session.get(Image, image_id)
    if image is None:
        return None
    details = ImageDetails(image.id, image.path, image.name, image.size, image.mtime_ns,
                           image.status, image.error)
    if image.content_id is None:
        return details
    content = session.get(Content, image.content_id)
    if content is not None:
        details.width, details.height, details.format = content.width, content.height, \
            content.format
        details.sha256, details.decision, details.rating = content.sha256, content.decision, \
            content.rating
        details.flagged = content.flagged
        details.flag_nsfw, details.flag_incoherent = content.flag_nsfw, content.flag_incoherent
    generation = session.get(Generation, image.content_id)
    if generation is not None:
        details.generation = {name: getattr(generation, name) for name in GENERATION_FIELDS
                              if getattr(generation, name) not in (None, "")}
        details.raw = dict(generation.raw or {})
        details.loras = [(lora.name, lora.weight) for lora in session.scalars(
            select(LoraUse).where(LoraUse.content_id == image.content_id))]
    details.results = [(r.analyser, r.label, r.score, dict(r.scores or {}), r.error)
                       for r in session.scalars(select(AnalysisResult).where(
                           AnalysisResult.content_id == image.content_id)
                           .order_by(AnalysisResult.analyser))]
    tags = select(Tag).where(Tag.content_id == image.content_id)
    if tag_threshold is not None:
        tags = tags.where(Tag.score >= tag_threshold)
    details.tags = [(t.tag, t.score, t.analyser) for t in session.scalars(
        tags.order_by(Tag.score.desc(), Tag.tag).limit(max_tags))]
    return details
