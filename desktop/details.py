"""The details pane: a large preview, file facts, every piece of generation metadata (with
copy buttons for prompt and seed), each analyser's result, tags with scores, and "open
containing folder".

The facts come from db.image_details.load_details (read by the main window in a short
session); the preview widget is the grid's ImagePreview, which gets its pixels through
BlurPolicy, so a flagged unreviewed image is never shown clear here either.
"""

from __future__ import annotations

import json
from datetime import datetime
from html import escape
from pathlib import Path

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
from superqt import QFlowLayout

from db.image_details import ImageDetails

__all__ = ["DetailsPane", "ImageDetails", "render_html"]


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


def flag_text(d: ImageDetails) -> str:
    """Why the image is flagged and what that means for it now: only an unreviewed image is
    blurred; an accepted one is shown, a rejected one covered (desktop.blur's rule)."""
    reasons = [name for name, on in (("NSFW", d.flag_nsfw), ("incoherent", d.flag_incoherent))
               if on]
    what = f"yes ({', '.join(reasons)})" if reasons else "yes"
    effect = {"accepted": "accepted, so shown", "rejected": "rejected, so covered"}.get(
        d.decision, "blurred until reviewed")
    return f"{what}: {effect}"


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
        facts.append(_row("Flagged", flag_text(d)))
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
    """Shows one image. `preview` is the grid's ImagePreview (the main window feeds it the
    current row)."""

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
