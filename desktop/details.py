"""The details pane: a large preview, file facts, every piece of generation metadata (with
copy buttons for prompt and seed), each analyser's result, tags with scores, and "open
containing folder".

`load_details` reads one image's facts in a short session (a handful of indexed lookups, like
the grid's page reads); the preview widget gets its pixels from the grid engineer's
ImagePreview, which goes through BlurPolicy, so a flagged unreviewed image is never shown
clear here either.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QGuiApplication
from PySide6.QtWidgets import (
    QLabel,
    QPushButton,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)
from sqlalchemy import select
from sqlalchemy.orm import Session
from superqt import QFlowLayout

from db.schema import AnalysisResult, Content, Generation, Image, LoraUse, Tag

MAX_TAGS_SHOWN = 60


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
    generation: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)
    loras: list[tuple[str, float | None]] = field(default_factory=list)
    results: list[tuple[str, str | None, float | None, dict, str | None]] = field(
        default_factory=list)  # analyser, label, score, scores, error
    tags: list[tuple[str, float, str]] = field(default_factory=list)  # tag, score, analyser


GENERATION_FIELDS = ("generator", "generator_detail", "prompt", "negative_prompt", "seed",
                     "steps", "sampler", "scheduler", "cfg_scale", "width", "height", "model",
                     "model_hash")


def load_details(session: Session, image_id: int) -> ImageDetails | None:
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
    generation = session.get(Generation, image.content_id)
    if generation is not None:
        details.generation = {name: getattr(generation, name) for name in GENERATION_FIELDS
                              if getattr(generation, name) not in (None, "")}
        details.raw = dict(generation.raw or {})
        details.loras = [(l.name, l.weight) for l in session.scalars(
            select(LoraUse).where(LoraUse.content_id == image.content_id))]
    details.results = [(r.analyser, r.label, r.score, dict(r.scores or {}), r.error)
                       for r in session.scalars(select(AnalysisResult).where(
                           AnalysisResult.content_id == image.content_id)
                           .order_by(AnalysisResult.analyser))]
    details.tags = [(t.tag, t.score, t.analyser) for t in session.scalars(
        select(Tag).where(Tag.content_id == image.content_id).order_by(Tag.score.desc())
        .limit(MAX_TAGS_SHOWN))]
    return details


def _human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


# Field names as people who use generators write them.
FIELD_LABELS = {"cfg_scale": "CFG scale", "generator_detail": "Generator version",
                "negative_prompt": "Negative prompt", "model_hash": "Model hash"}
DECISION_TEXT = {"none": "Unreviewed", "accepted": "Accepted", "rejected": "Rejected"}
# Rich-text labels wrap only between words; a long path, hash or JSON token would widen the
# pane (or clip). Tokens longer than this get zero-width break opportunities.
BREAK_EVERY = 24
_BREAK_AFTER = "/\\_-.,:;=&|"
ZERO_WIDTH_SPACE = "\u200b"
# Field names in the same grey as secondary text: readable on light and dark palettes.
LABEL_COLOUR = "#8a8d93"


def breakable(text: str, every: int = BREAK_EVERY) -> str:
    """`text` with zero-width spaces inside long unbroken runs, preferably after a
    separator, so a word-wrapping label can wrap them."""
    out: list[str] = []
    run = 0
    for char in text:
        out.append(char)
        if char.isspace():
            run = 0
            continue
        run += 1
        if run >= every or (run >= every // 3 and char in _BREAK_AFTER):
            out.append(ZERO_WIDTH_SPACE)
            run = 0
    return "".join(out)


def _row(name: str, value: object) -> str:
    return (f"<tr><td style='color:{LABEL_COLOUR};padding-right:10px;white-space:nowrap'"
            f" valign='top'>{escape(name)}</td>"
            f"<td>{escape(breakable(str(value)))}</td></tr>")


def _section(title: str, rows: list[str]) -> str:
    return (f"<h4 style='margin:10px 0 3px 0'>{escape(title)}</h4>"
            f"<table cellspacing='0' cellpadding='1'>{''.join(rows)}</table>") if rows else ""


def render_html(d: ImageDetails) -> str:
    modified = datetime.fromtimestamp(d.mtime_ns / 1e9).strftime("%Y-%m-%d %H:%M:%S") \
        if d.mtime_ns else "?"
    facts = [_row("File", d.name), _row("Folder", str(Path(d.path).parent)),
             _row("Size", _human_size(d.size)), _row("Modified", modified)]
    if d.width and d.height:
        facts.append(_row("Pixels", f"{d.width} × {d.height} {d.format or ''}".strip()))
    facts.append(_row("Review", DECISION_TEXT.get(d.decision, d.decision)
                      + (f", rated {d.rating} ★" if d.rating else "")))
    if d.flagged:
        facts.append(_row("Flagged", "yes: blurred until reviewed"))
    if d.status != "ok":
        facts.append(_row("Status", f"{d.status}: {d.error or ''}"))
    generation = [_row(FIELD_LABELS.get(k, k.replace("_", " ").capitalize()), v)
                  for k, v in d.generation.items()]
    generation += [_row("LoRA", f"{name} ({weight:g})" if weight is not None else name)
                   for name, weight in d.loras]
    results = []
    for analyser, label, score, scores, error in d.results:
        if error:
            results.append(_row(analyser, f"error: {error}"))
            continue
        parts = [label] if label else []
        if score is not None:
            parts.append(f"score {score:.3f}")
        detail = ", ".join(f"{k} {v:.2f}" for k, v in sorted(scores.items())
                           if isinstance(v, (int, float)))[:200]
        if detail:
            parts.append(detail)
        results.append(_row(analyser, " · ".join(parts) or "done"))  # e.g. clip: a vector
    tags = ", ".join(f"{escape(tag)} <span style='color:{LABEL_COLOUR}'>{score:.2f}</span>"
                     for tag, score, _ in d.tags)
    raw = [_row(k, (v if isinstance(v, str) else json.dumps(v))[:400])
           for k, v in sorted(d.raw.items())]
    html = _section("File", facts) + _section("Generation", generation) + \
        _section("Analysis", results)
    if tags:
        html += f"<h4 style='margin:10px 0 3px 0'>Tags</h4><p>{tags}</p>"
    html += _section("Embedded metadata", raw)
    return html


class DetailsPane(QWidget):
    """Shows one image. `preview` is the grid engineer's ImagePreview (any QWidget with
    `set_image(row)`-style API is wired by the main window)."""

    open_folder_requested = Signal(str)

    def __init__(self, preview: QWidget | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("detailsPane")
        self._details: ImageDetails | None = None
        self.preview = preview
        self.text = QLabel()
        self.text.setObjectName("detailsText")
        self.text.setWordWrap(True)
        self.text.setTextFormat(Qt.TextFormat.RichText)
        self.text.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.text.setText("<i>No image selected</i>")
        self.copy_prompt_button = QPushButton("Copy prompt")
        self.copy_seed_button = QPushButton("Copy seed")
        self.open_folder_button = QPushButton("Open folder")
        self.open_folder_button.setToolTip("Show the file in the system's file manager")
        for button in (self.copy_prompt_button, self.copy_seed_button, self.open_folder_button):
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            button.setEnabled(False)
        self.copy_prompt_button.clicked.connect(self.copy_prompt)
        self.copy_seed_button.clicked.connect(self.copy_seed)
        self.open_folder_button.clicked.connect(self.open_containing_folder)

        self.text.setContentsMargins(6, 4, 6, 6)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        scroll = QScrollArea()
        scroll.setObjectName("detailsScroll")
        scroll.setWidgetResizable(True)
        # Everything wraps (see `breakable`), so sideways scrolling is never needed.
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        scroll.setWidget(self.text)
        # Wraps onto a second line in a narrow pane rather than widening the window.
        buttons = QFlowLayout()
        buttons.setHorizontalSpacing(4)
        buttons.setVerticalSpacing(4)
        for button in (self.copy_prompt_button, self.copy_seed_button, self.open_folder_button):
            buttons.addWidget(button)
        lower = QWidget()
        lower_layout = QVBoxLayout(lower)
        lower_layout.setContentsMargins(0, 0, 0, 0)
        lower_layout.addLayout(buttons)
        lower_layout.addWidget(scroll, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        if preview is not None:
            splitter = QSplitter(Qt.Orientation.Vertical)
            splitter.addWidget(preview)
            splitter.addWidget(lower)
            splitter.setStretchFactor(0, 1)
            splitter.setStretchFactor(1, 1)
            splitter.setSizes([320, 420])
            layout.addWidget(splitter)
        else:
            layout.addWidget(lower)

    @property
    def details(self) -> ImageDetails | None:
        return self._details

    def show_details(self, details: ImageDetails | None) -> None:
        self._details = details
        if details is None:
            self.text.setText("<i>No image selected</i>")
        else:
            self.text.setText(render_html(details))
        self.copy_prompt_button.setEnabled(bool(details and details.generation.get("prompt")))
        self.copy_seed_button.setEnabled(bool(details and details.generation.get("seed")))
        self.open_folder_button.setEnabled(details is not None)

    def copy_prompt(self) -> None:
        if self._details and self._details.generation.get("prompt"):
            QGuiApplication.clipboard().setText(str(self._details.generation["prompt"]))

    def copy_seed(self) -> None:
        if self._details and self._details.generation.get("seed"):
            QGuiApplication.clipboard().setText(str(self._details.generation["seed"]))

    def open_containing_folder(self) -> None:
        if self._details is not None:
            folder = str(Path(self._details.path).parent)
            self.open_folder_requested.emit(folder)
            QDesktopServices.openUrl(QUrl.fromLocalFile(folder))
