"""The checkpoint report (GhostReview's method on your own generations), Qt-free: figures per
group of pictures — by model, LoRA, sampler, prompt, generator or folder — for the pictures
a filter shows. Read by `gentriage report` (table, JSON, HTML) and the app's Models view.

Figures per group (db/report_queries.py gives the sums; definitions in README
"gentriage report"):
- images: distinct pictures;
- aesthetic_mean, aesthetic_std: mean and *population* standard deviation (numpy's ddof=0:
  the spread of these pictures, defined for one picture) of the aesthetic score, over the
  pictures that have one;
- good_rate: of the pictures with an aesthetic score, the share with score >= T (default
  6.0, LAION's "aesthetic 6+") that are neither rejected nor judged incoherent;
- prompt_adherence_mean: mean CLIPScore (0-100) of the pictures that have one;
- coherent_rate: of the pictures the coherence analyser judged, the share judged coherent;
- accepted_rate, rejected_rate: shares of all the group's pictures;
- style_loss (with a style reference): the mean over the group's pictures that have Gram
  matrices of the Gatys et al. style loss against the reference's mean Gram matrices
  (inference/style_gram.py; w_l = 1/5 for conv1_1..conv5_1).

Groups are ranked by aesthetic mean (highest first; groups without scores last), then by
size, then by name.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from db.filters import ImageFilter, format_filter
from db.report_queries import (
    GROUPINGS,
    PictureScore,
    Showcase,
    Totals,
    group_totals,
    picture_scores,
    prompt_totals,
    showcase,
)
from db.style_grams import grams_of

DEFAULT_GOOD_THRESHOLD = 6.0  # LAION's "aesthetic 6+" subset
# Charts and the HTML show this many groups at most (a prompt grouping can have thousands).
CHART_GROUPS = 15
SHOWCASE_PER_GROUP = 4

__all__ = ["DEFAULT_GOOD_THRESHOLD", "GROUPINGS", "GroupFigures", "PromptFigures", "Report",
           "StyleReference", "build_report", "figures_from", "group_filter"]


@dataclass(frozen=True)
class StyleReference:
    """The mean Gram matrices of a folder of reference pictures (library/style_reference.py)."""

    folder: str
    mean: Sequence[Any]  # float64 upper triangles, inference.style_gram.LAYERS order
    version: str  # the style analyser's weights version that made them
    images: int


@dataclass(slots=True)
class GroupFigures:
    group: str | None  # None: the pictures whose model (LoRA, …) is not known
    images: int
    aesthetic_mean: float | None
    aesthetic_std: float | None
    good_rate: float | None
    prompt_adherence_mean: float | None
    coherent_rate: float | None
    accepted_rate: float
    rejected_rate: float
    style_loss: float | None = None
    style_images: int = 0  # pictures whose Grams the style loss averaged

    def to_json(self, with_style: bool) -> dict[str, Any]:
        data = {"group": self.group, "images": self.images,
                "aesthetic_mean": self.aesthetic_mean, "aesthetic_std": self.aesthetic_std,
                "good_rate": self.good_rate,
                "prompt_adherence_mean": self.prompt_adherence_mean,
                "coherent_rate": self.coherent_rate, "accepted_rate": self.accepted_rate,
                "rejected_rate": self.rejected_rate}
        if with_style:
            data["style_loss"] = self.style_loss
        return data


@dataclass
class PromptFigures:
    group: str | None
    prompt: str
    images: int
    aesthetic_mean: float | None
    aesthetic_std: float | None
    good_rate: float | None
    prompt_adherence_mean: float | None


@dataclass
class Report:
    by: str
    good_threshold: float
    filter_text: str
    groups: list[GroupFigures]  # ranked
    style: StyleReference | None = None
    # With details (charts, HTML, the app's view):
    scores: dict[str | None, list[PictureScore]] = field(default_factory=dict)
    prompts: list[PromptFigures] = field(default_factory=list)
    showcase: list[Showcase] = field(default_factory=list)
    style_without_grams: int = 0  # pictures of the charted groups lacking current Grams

    def to_json(self) -> dict[str, Any]:
        """`{"by": …, "good_threshold": T, "groups": [{"group": …, …}]}`, ranked."""
        with_style = self.style is not None
        return {"by": self.by, "good_threshold": self.good_threshold,
                "groups": [g.to_json(with_style) for g in self.groups]}

    def charted(self) -> list[GroupFigures]:
        """The groups charts show: the best CHART_GROUPS by rank."""
        return self.groups[:CHART_GROUPS]


def _mean(total: float, n: int) -> float | None:
    return total / n if n else None


def _population_std(total: float, total_sq: float, n: int) -> float | None:
    """sqrt(E[x²] - E[x]²) from the SQL sums (float64; scores are ~1-10, so the difference
    loses no meaningful precision); clamped at 0 against rounding."""
    if not n:
        return None
    mean = total / n
    return math.sqrt(max(0.0, total_sq / n - mean * mean))


def figures_from(t: Totals) -> GroupFigures:
    return GroupFigures(
        group=t.group, images=t.images,
        aesthetic_mean=_mean(t.aesthetic_sum, t.aesthetic_n),
        aesthetic_std=_population_std(t.aesthetic_sum, t.aesthetic_sum_sq, t.aesthetic_n),
        good_rate=_mean(t.good, t.aesthetic_n),
        prompt_adherence_mean=_mean(t.adherence_sum, t.adherence_n),
        coherent_rate=_mean(t.coherent, t.coherence_n),
        accepted_rate=t.accepted / t.images if t.images else 0.0,
        rejected_rate=t.rejected / t.images if t.images else 0.0)


def _rank_key(g: GroupFigures) -> tuple:
    return (g.aesthetic_mean is None, -(g.aesthetic_mean or 0.0), -g.images,
            g.group is None, g.group or "")


def build_report(sessions: sessionmaker[Session], by: str, f: ImageFilter,
                 good_threshold: float = DEFAULT_GOOD_THRESHOLD, *, details: bool = False,
                 style: StyleReference | None = None,
                 should_stop: Callable[[], bool] = lambda: False) -> Report:
    """The report for the pictures `f` shows. `details` adds what charts need (per-picture
    scores, the per-prompt breakdown, showcase pictures of the charted groups); `style`
    adds each group's style loss. One read session (a consistent snapshot)."""
    if by not in GROUPINGS:
        raise ValueError(f"unknown grouping {by!r} (use {', '.join(GROUPINGS)})")
    with sessions() as session:
        groups = sorted((figures_from(t) for t in group_totals(session, by, f, good_threshold)),
                        key=_rank_key)
        report = Report(by, good_threshold, format_filter(f), groups, style)
        if details or style is not None:
            for score in picture_scores(session, by, f):
                report.scores.setdefault(score.group, []).append(score)
        if style is not None:
            _add_style_losses(session, report, style, should_stop)
        if details:
            charted = {g.group for g in report.charted()}
            report.prompts = [_prompt_figures(p.totals, p.prompt) for p in prompt_totals(
                session, by, f, good_threshold) if p.totals.group in charted]
            report.prompts.sort(key=lambda p: (-p.images, p.prompt))
            report.showcase = showcase(session, by, f, SHOWCASE_PER_GROUP, groups=charted)
    return report


def _prompt_figures(t: Totals, prompt: str) -> PromptFigures:
    g = figures_from(t)
    return PromptFigures(t.group, prompt, t.images, g.aesthetic_mean, g.aesthetic_std,
                         g.good_rate, g.prompt_adherence_mean)


def _add_style_losses(session: Session, report: Report, style: StyleReference,
                      should_stop: Callable[[], bool]) -> None:
    """Each group's mean style loss; a picture in several groups is computed once."""
    from inference.style_gram import style_loss, unpack

    members: dict[str | None, list[int]] = defaultdict(list)
    for group, scores in report.scores.items():
        members[group] = [s.content_id for s in scores]
    every = sorted({cid for cids in members.values() for cid in cids})
    losses: dict[int, float] = {}
    for cid, data in grams_of(session, every, style.version):
        if should_stop():
            return
        losses[cid] = style_loss(unpack(data), style.mean)
    for g in report.groups:
        found = [losses[c] for c in members.get(g.group, ()) if c in losses]
        g.style_images = len(found)
        g.style_loss = sum(found) / len(found) if found else None
    report.style_without_grams = len(set(every) - set(losses))


def group_filter(by: str, group: str | None, base: ImageFilter) -> ImageFilter | None:
    """`base` narrowed to one group (what clicking a group in the Models view shows), or
    None when the filter syntax cannot name it (an unknown model, pictures without a LoRA).
    The prompt grouping narrows by substring (the filter's prompt search): longer prompts
    containing this one show too."""
    from dataclasses import replace

    if group is None:
        return None
    only = frozenset({group})
    if by in ("model", "sampler", "generator", "lora") and "*" in group:
        return None  # the filter would read it as a pattern
    if by == "model":
        return replace(base, models=only)
    if by == "sampler":
        return replace(base, samplers=only)
    if by == "generator":
        return replace(base, generators=only)
    if by == "lora":
        return replace(base, loras=only)
    if by == "folder":
        return replace(base, folders=only, folder_ids=frozenset())
    return replace(base, prompt=(group,))
