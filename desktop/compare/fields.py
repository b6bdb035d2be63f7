"""The compare view's table: one column per compared image, one row per generation field or
analyser, with the rows whose values differ highlighted (what changed between two seeds, or
between a picture and its re-encoded copy)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor, QFont

from db.families import CompareFacts
from desktop.roles import Role
from desktop.safe_text import escaped_rich_text
from inference.catalog import CATALOG, TAG_ANALYSERS

Index = QModelIndex | QPersistentModelIndex
DIFFERS_BACKGROUND = QColor(255, 196, 0, 70)  # amber wash, readable on light and dark themes
NO_VALUE = "\u2014"

# (label, how to read it from a GridRow and the CompareFacts of one image)
_FIELDS: tuple[tuple[str, Any], ...] = (
    ("Decision", lambda row, facts: {"accepted": "Accepted", "rejected": "Rejected"}.get(
        row.decision, "Unreviewed")),
    ("Rating", lambda row, facts: "\u2605" * row.rating if row.rating else ""),
    ("Seed", lambda row, facts: facts.generation.get("seed")),
    ("Steps", lambda row, facts: facts.generation.get("steps")),
    ("CFG scale", lambda row, facts: facts.generation.get("cfg_scale")),
    ("Sampler", lambda row, facts: facts.generation.get("sampler")),
    ("Scheduler", lambda row, facts: facts.generation.get("scheduler")),
    ("Model", lambda row, facts: facts.generation.get("model")),
    ("LoRAs", lambda row, facts: ", ".join(
        name if weight is None else f"{name}:{weight:g}" for name, weight in facts.loras)),
    ("Size", lambda row, facts: f"{row.width} \u00d7 {row.height}" if row.width else None),
    ("Format", lambda row, facts: row.format),
    ("File size", lambda row, facts: _human_size(facts.file_size) if facts.file_size else None),
    ("Generator", lambda row, facts: facts.generation.get("generator")),
    ("Prompt", lambda row, facts: facts.generation.get("prompt")),
    ("Negative prompt", lambda row, facts: facts.generation.get("negative_prompt")),
)


def _human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def _result_text(result: tuple[str | None, float | None] | None) -> str | None:
    if result is None:
        return None
    label, score = result
    score_text = None if score is None else f"{score:.3g}"
    return " ".join(part for part in (label, score_text) if part) or None


def _text(value: object) -> str:
    if value is None or value == "":
        return NO_VALUE
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


class CompareFieldsModel(QAbstractTableModel):
    """Rows: fields; columns: the compared images (left to right, as the panes)."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._labels: list[str] = []
        self._values: list[list[str]] = []  # per row, per column
        self._headers: list[str] = []

    def set_images(self, rows: Sequence[Any], facts: dict[int, CompareFacts]) -> None:
        """`rows`: the GridRows shown (in pane order); `facts`: db.families.compare_facts."""
        self.beginResetModel()
        self._headers = [row.name for row in rows]
        per_image = [facts.get(row.image_id) or CompareFacts(row.image_id, row.content_id)
                     for row in rows]
        self._labels, self._values = [], []
        for label, read in _FIELDS:
            self._labels.append(label)
            self._values.append([_text(read(row, f)) for row, f in zip(rows, per_image)])
        for info in CATALOG:
            if info.key in TAG_ANALYSERS:
                continue  # tags are a list, not one value to compare
            self._labels.append(info.title)
            self._values.append([_text(_result_text(f.results.get(info.key)))
                                 for f in per_image])
        self.endResetModel()

    def differs(self, row: int) -> bool:
        return len(set(self._values[row])) > 1

    def row_of(self, label: str) -> int:
        return self._labels.index(label)

    # --- Qt model interface ---------------------------------------------------------------

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._labels)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._headers)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.model() is not self:
            return None
        row, column = index.row(), index.column()
        if not (0 <= row < len(self._labels) and 0 <= column < len(self._headers)):
            return None
        value = self._values[row][column]
        if role == Qt.ItemDataRole.DisplayRole:
            return value if len(value) <= 80 else value[:79] + "\u2026"
        if role == Qt.ItemDataRole.ToolTipRole:
            # Escaped: Qt renders tooltip text that looks like HTML, and a prompt or a file
            # name could hold an <img> tag pointing at a picture (desktop.safe_text).
            return escaped_rich_text(value)
        if role == Role.Differs:
            return self.differs(row)
        if role == Qt.ItemDataRole.BackgroundRole and self.differs(row):
            return DIFFERS_BACKGROUND
        if role == Qt.ItemDataRole.FontRole and self.differs(row):
            font = QFont()
            font.setBold(True)
            return font
        return None

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if orientation == Qt.Orientation.Vertical:
            return self._labels[section] if 0 <= section < len(self._labels) else None
        return self._headers[section] if 0 <= section < len(self._headers) else None

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable \
            | Qt.ItemFlag.ItemNeverHasChildren
