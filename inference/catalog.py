"""The analysers GenTriage knows: the one list every layer reads.

Pure data, no imports beyond the standard library, so db/ (filters, the flag rule), library/
(settings defaults) and desktop/ (settings dialog, filter bar) read it without importing an
analyser module, and the registry (inference.registry) maps the same keys to their classes.
tests/inference/test_catalog.py checks that the registry and this list agree.

Order = cost order, cheapest first: the pipeline runs analysers in this order so every image
gets its cheap verdicts (NSFW, coherence) long before the expensive tagger finishes.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Role(str, Enum):
    """What an analyser's result is used for."""

    NSFW = "nsfw"            # an NSFW verdict: feeds the flag rule (db.flags)
    COHERENCE = "coherence"  # failed-generation verdict: feeds the flag rule
    SCORE = "score"          # a score to filter and sort by (aesthetic)
    TAGS = "tags"            # tags with probabilities (tag: filter terms)
    STYLE = "style"          # Gram matrices for the report's style loss (not filterable)
    EMBEDDING = "embedding"  # a vector per picture (like:/similar: terms; no label or score)


@dataclass(frozen=True)
class AnalyserInfo:
    key: str
    title: str                     # short name shown to people
    description: str               # one line: what it gives (settings dialog, `models`)
    role: Role
    labels: tuple[str, ...] = ()   # labels it gives (empty: score-only)
    score_range: tuple[float, float] | None = None  # natural range of its score, if sortable
    bundled: bool = False          # works on a fresh install (no download)
    # On in a fresh settings file. Off for `style`: its Gram matrices take ~600 KiB per
    # picture and only the report's style loss reads them, so people opt in.
    enabled_by_default: bool = True


CATALOG: tuple[AnalyserInfo, ...] = (
    AnalyserInfo("nsfw-default", "NSFW (open_nsfw, bundled)",
                 "NSFW score (open_nsfw; bundled, works offline)", Role.NSFW,
                 ("nsfw", "sfw"), (0.0, 1.0), bundled=True),
    AnalyserInfo("coherence", "Coherence (ResNet-34, FastAI)", "spots failed, incoherent generations",
                 Role.COHERENCE, ("coherent", "incoherent", "semi-incoherent"), (0.0, 1.0)),
    AnalyserInfo("nsfw-vit", "NSFW (Falconsai ViT)", "NSFW classifier (ViT)", Role.NSFW,
                 ("normal", "nsfw"), (0.0, 1.0)),
    AnalyserInfo("safety-checker", "SD safety checker (CompVis)", "Stable Diffusion's safety checker",
                 Role.NSFW, ("nsfw", "sfw")),
    AnalyserInfo("aesthetic", "Aesthetic (LAION MLP on CLIP ViT-L/14)", "aesthetic score and prompt adherence (CLIP)",
                 Role.SCORE, (), (0.0, 10.0)),
    AnalyserInfo("clip", "CLIP embedding (ViT-L/14)", "text search and find-similar (CLIP image embedding)",
                 Role.EMBEDDING),
    AnalyserInfo("style", "Style (VGG19 Gram matrices)",
                 "style loss against reference pictures in `gentriage report` (VGG19)",
                 Role.STYLE, enabled_by_default=False),
    AnalyserInfo("tagger-jtp", "Tagger (RedRocket JTP PILOT/PILOT2)", "descriptive tags (JTP)", Role.TAGS),
)

ANALYSER_KEYS: tuple[str, ...] = tuple(a.key for a in CATALOG)
BY_KEY: dict[str, AnalyserInfo] = {a.key: a for a in CATALOG}
NSFW_ANALYSERS: tuple[str, ...] = tuple(a.key for a in CATALOG if a.role is Role.NSFW)
COHERENCE_ANALYSERS: tuple[str, ...] = tuple(a.key for a in CATALOG
                                             if a.role is Role.COHERENCE)
TAG_ANALYSERS: tuple[str, ...] = tuple(a.key for a in CATALOG if a.role is Role.TAGS)
STYLE_ANALYSERS: tuple[str, ...] = tuple(a.key for a in CATALOG if a.role is Role.STYLE)
EMBEDDING_ANALYSERS: tuple[str, ...] = tuple(a.key for a in CATALOG if a.role is Role.EMBEDDING)
DEFAULT_ENABLED: tuple[str, ...] = tuple(a.key for a in CATALOG if a.enabled_by_default)
# Tag analysers store every tag whose probability is at least this. The person's tag
# threshold (Settings -> thresholds.tagger, 0.2 by default) is applied when reading — in
# `tag:` filters, the details pane and the export (db.queries) — so changing it needs no
# re-analysis and no model reload; thresholds below this floor act as the floor.
TAG_STORE_FLOOR = 0.05
# Analysers whose label or score a filter term may name (`nsfw-vit:nsfw`, `aesthetic>=6`).
FILTERABLE_ANALYSERS: tuple[str, ...] = tuple(
    a.key for a in CATALOG if a.role in (Role.NSFW, Role.COHERENCE, Role.SCORE, Role.TAGS))
