"""The report's charts, drawn with matplotlib's object API on the Agg canvas — never pyplot,
so no GUI backend is involved and any thread may draw (one figure per thread at a time):
the HTML report embeds them as SVG, the app's Models view shows them as PNG pixels.

Each chart function returns a Figure, or None when the report has nothing to draw for it.
Charts show the best `report.charted()` groups, in rank order, each group in the same
colour everywhere.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from library.report import GroupFigures, Report

MAX_SCATTER_POINTS = 4000  # more points only blacken the plot (and bloat the SVG)
HEATMAP_PROMPTS = 20
COLOURED_GROUPS = 10  # matplotlib's tab10; further groups are grey in the scatter
LABEL_CHARS = 40
UNKNOWN_LABEL = "(unknown)"


@dataclass(frozen=True)
class Chart:
    key: str
    title: str
    figure: Any  # matplotlib.figure.Figure


def group_label(group: str | None, limit: int = LABEL_CHARS) -> str:
    """A group name fit for a chart: shortened, and with `$` escaped (matplotlib would
    read $…$ as mathematics)."""
    text = UNKNOWN_LABEL if group is None else " ".join(group.split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.replace("$", r"\$")


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)  # Agg explicitly: the canvas that renders to pixels in memory
    return figure


GREY = (0.6, 0.6, 0.6, 1.0)


def _colour(index: int) -> Any:
    """The group of rank `index`'s colour in every chart (grey beyond COLOURED_GROUPS)."""
    from matplotlib import colormaps

    return colormaps["tab10"](index) if index < COLOURED_GROUPS else GREY


def _height(rows: int) -> float:
    return 1.2 + 0.34 * max(1, rows)


def aesthetic_distribution(report: Report) -> Any | None:
    """Box plot of the aesthetic scores per group (mean as a diamond), threshold dashed."""
    groups = [g for g in report.charted() if g.aesthetic_mean is not None]
    if not groups:
        return None
    data = [[s.aesthetic for s in report.scores.get(g.group, ()) if s.aesthetic is not None]
            for g in groups]
    figure = _figure(8, _height(len(groups)))
    ax = figure.add_subplot()
    positions = list(range(len(groups), 0, -1))  # best on top
    boxes = ax.boxplot(data, positions=positions, orientation="horizontal", widths=0.6,
                       patch_artist=True, showmeans=True, flierprops={"markersize": 2},
                       meanprops={"marker": "D", "markerfacecolor": "white",
                                  "markeredgecolor": "black", "markersize": 4})
    for i, box in enumerate(boxes["boxes"]):
        box.set_facecolor(_colour(i))
        box.set_alpha(0.75)
    ax.set_yticks(positions, [group_label(g.group) for g in groups])
    ax.axvline(report.good_threshold, color="0.3", linestyle="--", linewidth=1,
               label=f"good threshold {report.good_threshold:g}")
    ax.set_xlabel("aesthetic score (LAION predictor)")
    ax.legend(loc="lower right", fontsize="small")
    ax.grid(axis="x", alpha=0.3)
    return figure


def adherence_scatter(report: Report) -> Any | None:
    """Aesthetic vs prompt adherence, one dot per picture (a sample when there are many),
    the group means as large outlined markers."""
    import numpy as np

    groups = report.charted()
    points = [(i, s.adherence, s.aesthetic) for i, g in enumerate(groups)
              for s in report.scores.get(g.group, ())
              if s.adherence is not None and s.aesthetic is not None]
    if not points:
        return None
    if len(points) > MAX_SCATTER_POINTS:  # the same sample every time
        keep = np.random.default_rng(0).choice(len(points), MAX_SCATTER_POINTS, replace=False)
        points = [points[k] for k in sorted(keep)]
    figure = _figure(8, 5.5)
    ax = figure.add_subplot()
    index = np.array([p[0] for p in points])
    x = np.array([p[1] for p in points], dtype=float)
    y = np.array([p[2] for p in points], dtype=float)
    colours = [_colour(i) for i in index]
    # Rasterised inside the SVG: thousands of dots as vector paths would bloat the file.
    dense = len(points) > 1000  # fainter, smaller dots once they start to overlap
    ax.scatter(x, y, s=7 if dense else 16, c=colours, alpha=0.35 if dense else 0.7,
               linewidths=0, rasterized=True)
    for i, g in enumerate(groups):
        if g.prompt_adherence_mean is None or g.aesthetic_mean is None:
            continue
        ax.scatter([g.prompt_adherence_mean], [g.aesthetic_mean], s=90, marker="o",
                   color=_colour(i),
                   edgecolors="black", linewidths=1.2, zorder=3,
                   label=group_label(g.group, 28) if i < COLOURED_GROUPS else None)
    ax.axhline(report.good_threshold, color="0.3", linestyle="--", linewidth=1)
    ax.set_xlabel("prompt adherence (CLIPScore, 0-100)")
    ax.set_ylabel("aesthetic score")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="x-small", loc="best", title="group means", title_fontsize="small")
    return figure


def _bars(report: Report, value: Callable[[GroupFigures], float | None], xlabel: str,
          text: Callable[[GroupFigures], str], limit: float | None = None) -> Any | None:
    groups = [g for g in report.charted() if value(g) is not None]
    if not groups:
        return None
    figure = _figure(8, _height(len(groups)))
    ax = figure.add_subplot()
    ranks = {id(g): i for i, g in enumerate(report.charted())}
    positions = list(range(len(groups), 0, -1))
    values = [float(value(g) or 0.0) for g in groups]
    bars = ax.barh(positions, values, color=[_colour(ranks[id(g)]) for g in groups], alpha=0.85)
    ax.bar_label(bars, labels=[text(g) for g in groups], padding=3, fontsize="small")
    ax.set_yticks(positions, [group_label(g.group) for g in groups])
    ax.set_xlabel(xlabel)
    top = max(values) if values else 1.0
    ax.set_xlim(0, limit if limit is not None else (top * 1.25 if top > 0 else 1.0))
    ax.grid(axis="x", alpha=0.3)
    return figure


def good_rate_bars(report: Report) -> Any | None:
    return _bars(report, lambda g: None if g.good_rate is None else 100 * g.good_rate,
                 f"good-image rate, % (aesthetic >= {report.good_threshold:g}, not rejected, "
                 "not incoherent)",
                 lambda g: f"{100 * (g.good_rate or 0):.0f}%  (n={g.images})", limit=100)


def style_loss_bars(report: Report) -> Any | None:
    if report.style is None:
        return None
    return _bars(report, lambda g: g.style_loss,
                 "style loss against the reference (lower = closer)",
                 lambda g: f"{g.style_loss:.3g}  (n={g.style_images})")


def prompt_heatmap(report: Report) -> Any | None:
    """Mean aesthetic score per group and prompt, for the prompts rendered most often (the
    per-prompt breakdown of a checkpoint test: the same prompts, several seeds each)."""
    import numpy as np

    if not report.prompts:
        return None
    totals: dict[str, int] = {}
    for p in report.prompts:
        totals[p.prompt] = totals.get(p.prompt, 0) + p.images
    prompts = sorted(totals, key=lambda text: (-totals[text], text))[:HEATMAP_PROMPTS]
    groups = [g for g in report.charted()
              if any(p.group == g.group and p.prompt in prompts for p in report.prompts)]
    grid = np.full((len(groups), len(prompts)), np.nan)
    row = {g.group: i for i, g in enumerate(groups)}
    column = {text: j for j, text in enumerate(prompts)}
    for p in report.prompts:
        if p.group in row and p.prompt in column and p.aesthetic_mean is not None:
            grid[row[p.group], column[p.prompt]] = p.aesthetic_mean
    if np.isnan(grid).all():
        return None  # no aesthetic scores yet: an empty heat map says nothing
    figure = _figure(max(6.0, 1.8 + 0.45 * len(prompts)), 2.4 + 0.4 * len(groups))
    ax = figure.add_subplot()
    image = ax.imshow(np.ma.masked_invalid(grid), aspect="auto", cmap="viridis")
    ax.set_yticks(range(len(groups)), [group_label(g.group, 30) for g in groups])
    ax.set_xticks(range(len(prompts)), [group_label(t, 28) for t in prompts], rotation=45,
                  ha="right", fontsize="x-small")
    if len(groups) * len(prompts) <= 240:
        for (i, j), v in np.ndenumerate(grid):
            if not math.isnan(v):
                ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize="x-small",
                        color="white" if v < np.nanmean(grid) else "black")
    figure.colorbar(image, ax=ax, label="mean aesthetic score")
    return figure


CHARTS: tuple[tuple[str, str, Callable[[Report], Any | None]], ...] = (
    ("aesthetic", "Aesthetic score distribution per group", aesthetic_distribution),
    ("scatter", "Aesthetic score vs prompt adherence", adherence_scatter),
    ("good_rate", "Good-image rate", good_rate_bars),
    ("style_loss", "Style loss against the reference", style_loss_bars),
    ("prompts", "Per-prompt breakdown (mean aesthetic score)", prompt_heatmap),
)


def draw_charts(report: Report) -> list[Chart]:
    """Every chart the report has data for, in display order."""
    charts = []
    for key, title, draw in CHARTS:
        figure = draw(report)
        if figure is not None:
            charts.append(Chart(key, title, figure))
    return charts


def to_svg(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None})
    return buffer.getvalue()


def to_png(figure: Any, dpi: float = 100) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()
