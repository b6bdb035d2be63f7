"""The report as one self-contained HTML file: no script, no network (a Content-Security-
Policy forbids any fetch), charts as SVG data URLs, showcase thumbnails as JPEG data URLs.

Privacy: thumbnails come from the thumbnail cache and pass through library/privacy.py's rule
first, like every picture the app paints: a flagged picture nobody reviewed is blurred
(or covered, in "cover" mode), a picture in a sensitive folder that is not analysed yet too,
and a rejected picture never appears (the showcase skips rejected pictures; the rule would
cover one). Every text from the library (model names, prompts, paths) is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable
from datetime import datetime
from typing import Any

from PIL import Image

from library.privacy import DEFAULT_RADIUS, CoverKind, cover_kind, safe_thumbnail
from library.report import Report
from library.report_charts import draw_charts, to_svg

TABLE_ROWS = 200  # the ranked table's rows in HTML (JSON has them all)
PROMPT_ROWS = 60
THUMB_SIDE = 160
THUMB_QUALITY = 80
UNKNOWN = "(unknown)"

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;
max-width:1100px;padding:0 1em;color:#222;background:#fff}
h1{font-size:1.6em;margin-bottom:.2em}h2{margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{padding:.3em .5em;border-bottom:1px solid #eee;text-align:right;vertical-align:top}
th:first-child,td:first-child,td.text{text-align:left}th{background:#f6f6f6}
td.group{max-width:420px;overflow-wrap:anywhere;text-align:left}
.meta{color:#666}.note{color:#666;font-size:12px}
figure{margin:1em 0}figure img{max-width:100%;height:auto}
.shots{display:flex;flex-wrap:wrap;gap:6px;margin:.3em 0 1em}
.shots img{width:auto;height:auto;max-height:160px;border-radius:3px}
dl.defs dt{font-weight:600;margin-top:.4em}dl.defs dd{margin-left:1.2em}
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _group(group: str | None) -> str:
    return UNKNOWN if group is None else group


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f}%"


def _num(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _data_url(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=THUMB_QUALITY)
    return buffer.getvalue()


def safe_showcase_thumbnail(image: Image.Image, *, decision: str, flagged: bool,
                            analysed: bool, in_sensitive_folder: bool, blur_mode: str = "blur",
                            blur_radius: int = DEFAULT_RADIUS) -> Image.Image:
    """A thumbnail as the report may show it: the rule decides clear, blurred or covered;
    clear ones are shrunk to THUMB_SIDE."""
    kind = cover_kind(decision=decision, flagged=flagged, analysed=analysed,
                      in_sensitive_folder=in_sensitive_folder, mode=blur_mode)
    label = "Rejected" if decision == "rejected" else "Flagged"
    safe = safe_thumbnail(image, kind, blur_radius, label)
    if kind is CoverKind.CLEAR:
        safe = safe.copy()
        safe.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.BICUBIC)
    return safe


def render_html(report: Report, thumbnail: Callable[[str], Image.Image | None] | None = None,
                *, blur_mode: str = "blur", blur_radius: int = DEFAULT_RADIUS,
                generated: datetime | None = None) -> str:
    """The whole document. `thumbnail(sha256)` returns a cached thumbnail (or None)."""
    generated = generated or datetime.now()
    with_style = report.style is not None
    parts = [
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>",
        # No fetch of any kind: images only from data: URLs, no scripts at all.
        ("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
         "img-src data:; style-src 'unsafe-inline'\">"),
        f"<title>GenTriage report by {_e(report.by)}</title><style>{_CSS}</style></head><body>",
        f"<h1>GenTriage report by {_e(report.by)}</h1>",
        (f"<p class=meta>{sum(g.images for g in report.groups)} picture(s) in "
         f"{len(report.groups)} group(s) · filter: <code>{_e(report.filter_text or '(none)')}"
         f"</code> · good threshold {report.good_threshold:g} · generated "
         f"{_e(generated.strftime('%Y-%m-%d %H:%M'))}</p>"),
    ]
    if len(report.groups) > len(report.charted()):
        parts.append(f"<p class=note>Charts show the best {len(report.charted())} groups.</p>")
    parts += _ranked_table(report, with_style)
    for chart in draw_charts(report):
        svg = to_svg(chart.figure)
        parts.append(f"<h2>{_e(chart.title)}</h2><figure><img alt=\"{_e(chart.title)}\" "
                     f"data-chart=\"{_e(chart.key)}\" src=\"{_data_url('image/svg+xml', svg)}\">"
                     "</figure>")
        if chart.key == "prompts":
            parts += _prompt_table(report)
    if with_style:
        parts.append(_style_note(report))
    if thumbnail is not None and report.showcase:
        parts += _showcase(report, thumbnail, blur_mode, blur_radius)
    parts.append(_definitions(report))
    parts.append("</body></html>")
    return "\n".join(parts)


def _ranked_table(report: Report, with_style: bool) -> list[str]:
    header = ["#", _e(report.by), "images", "aesthetic mean", "± std", "good", "prompt adherence",
              "coherent", "accepted", "rejected"] + (["style loss"] if with_style else [])
    rows = ["<h2>Ranking</h2><table><thead><tr>" + "".join(f"<th>{h}</th>" for h in header)
            + "</tr></thead><tbody>"]
    for rank, g in enumerate(report.groups[:TABLE_ROWS], 1):
        cells = [str(rank), f"<td class=group>{_e(_group(g.group))}</td>", str(g.images),
                 _num(g.aesthetic_mean), _num(g.aesthetic_std), _pct(g.good_rate),
                 _num(g.prompt_adherence_mean, 1), _pct(g.coherent_rate), _pct(g.accepted_rate),
                 _pct(g.rejected_rate)]
        if with_style:
            cells.append("–" if g.style_loss is None else f"{g.style_loss:.4g}")
        rows.append("<tr>" + "".join(c if c.startswith("<td") else f"<td>{c}</td>"
                                     for c in cells) + "</tr>")
    rows.append("</tbody></table>")
    if len(report.groups) > TABLE_ROWS:
        rows.append(f"<p class=note>… and {len(report.groups) - TABLE_ROWS} more group(s); "
                    "<code>gentriage report --json</code> lists them all.</p>")
    return rows


def _prompt_table(report: Report) -> list[str]:
    rows = [("<table><thead><tr><th>group</th><th>prompt</th><th>images</th>"
             "<th>aesthetic mean</th><th>± std</th><th>good</th><th>prompt adherence</th>"
             "</tr></thead><tbody>")]
    for p in report.prompts[:PROMPT_ROWS]:
        rows.append(f"<tr><td class=group>{_e(_group(p.group))}</td><td class=text>"
                    f"{_e(p.prompt)}</td><td>{p.images}</td><td>{_num(p.aesthetic_mean)}</td>"
                    f"<td>{_num(p.aesthetic_std)}</td><td>{_pct(p.good_rate)}</td>"
                    f"<td>{_num(p.prompt_adherence_mean, 1)}</td></tr>")
    rows.append("</tbody></table>")
    if len(report.prompts) > PROMPT_ROWS:
        rows.append(f"<p class=note>… and {len(report.prompts) - PROMPT_ROWS} more.</p>")
    return rows


def _style_note(report: Report) -> str:
    style = report.style
    assert style is not None
    missing = (f" {report.style_without_grams} picture(s) have no Gram matrices from these "
               "weights yet (run <code>gentriage scan --analysers style</code>)."
               if report.style_without_grams else "")
    return (f"<p class=note>Style reference: the mean Gram matrices of {style.images} "
            f"picture(s) in <code>{_e(style.folder)}</code> (VGG19 weights {_e(style.version)})."
            f"{missing}</p>")


def _showcase(report: Report, thumbnail: Callable[[str], Image.Image | None],
              blur_mode: str, blur_radius: int) -> list[str]:
    parts = [("<h2>Best pictures per group</h2><p class=note>Flagged pictures nobody has "
              "reviewed are blurred, as in the app.</p>")]
    by_group: dict[str | None, list[str]] = {}
    for shot in report.showcase:
        image = thumbnail(shot.sha256)
        if image is None:
            continue
        safe = safe_showcase_thumbnail(
            image, decision=shot.decision, flagged=shot.flagged, analysed=shot.analysed,
            in_sensitive_folder=shot.in_sensitive_folder, blur_mode=blur_mode,
            blur_radius=blur_radius)
        by_group.setdefault(shot.group, []).append(
            f"<img alt=\"aesthetic {shot.aesthetic:.2f}\" title=\"aesthetic "
            f"{shot.aesthetic:.2f}\" src=\"{_data_url('image/jpeg', _jpeg(safe))}\">")
    for g in report.charted():
        if by_group.get(g.group):
            parts.append(f"<h3>{_e(_group(g.group))}</h3><div class=shots>"
                         + "".join(by_group[g.group]) + "</div>")
    return parts


def _definitions(report: Report) -> str:
    t = f"{report.good_threshold:g}"
    return (
        "<h2>How to read this</h2><dl class=defs>"
        "<dt>images</dt><dd>distinct pictures (copies of one picture count once).</dd>"
        "<dt>aesthetic mean ± std</dt><dd>LAION improved aesthetic predictor; population "
        "standard deviation (the spread of these pictures: a checkpoint whose outputs vary "
        "widely wastes more seeds).</dd>"
        f"<dt>good</dt><dd>of the pictures with an aesthetic score, the share scoring ≥ {t} "
        "that are neither rejected nor judged incoherent (coherence label incoherent or "
        "semi-incoherent).</dd>"
        "<dt>prompt adherence</dt><dd>mean CLIPScore (100 × cosine of picture and prompt "
        "embeddings, CLIP ViT-L/14).</dd>"
        "<dt>coherent</dt><dd>of the pictures the coherence analyser judged, the share judged "
        "coherent.</dd>"
        "<dt>style loss</dt><dd>Gatys et al. (2016): VGG19 Gram matrices of conv1_1…conv5_1, "
        "Σ<sub>l</sub> w<sub>l</sub>/(4N<sub>l</sub>²) Σ(G − A)² with w<sub>l</sub> = 1/5, "
        "against the mean Gram matrices of the reference pictures; the group's mean.</dd>"
        "</dl><p class=note>Ranked by aesthetic mean. Method after GhostReview.</p>")
