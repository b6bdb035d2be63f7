"""Blur until reviewed: the one place that decides how an image may be painted.

Privacy standard: a flagged image that no one has reviewed is never painted unblurred — not
in the grid, the preview, the full view, a tooltip or a drag image. Every view gets its pixels
through `BlurPolicy.safe_image(row, image)`; no view paints a source image directly.

The rule (`cover_kind`, which asks library/privacy.py's `cover_kind`), first match wins:

1. Space held on this image (`peek(image_id)`): clear. Peeking is explicit, momentary and
   limited to one image, so it also reveals a rejected image (otherwise a rejection could
   never be checked without undoing it first).
2. Rejected: solid cover, always. The session toggle (B) does not lift it: a person decided
   this picture should not be seen.
3. Accepted: clear — a person looked at it and kept it.
4. Flagged by any analyser and not yet reviewed: blurred (or a solid cover when the setting
   says "cover"), unless the session toggle is on.
5. Not analysed yet and in a folder marked sensitive: as 4.
6. Otherwise clear.

A row that is not known (None) is covered: when in doubt, fail closed.

The blur is deliberately destructive rather than a Gaussian: the picture is reduced to a
handful of pixels (10 across at the default strength) and smoothly enlarged again, then
tinted, so shapes and skin are not recognisable whatever the size it is shown at.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection, Hashable
from dataclasses import dataclass
from typing import Protocol

from PySide6.QtCore import QObject, QRect, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QImage, QPainter

from library.privacy import (
    BLUR_MODES,
    BLUR_TINT_RGBA,
    BLURRED_MAX_SIDE,
    COVER_RGB,
    COVER_TEXT_RGB,
    DEFAULT_RADIUS,
    CoverKind,
    blur_cells,
)
from library.privacy import cover_kind as rule_cover_kind

# The rule, the blur strength and the sizes are shared with the Qt-free report renderer
# (library/privacy.py), so the app and `gentriage report` can never disagree.
COVER_COLOUR = QColor(*COVER_RGB)
COVER_TEXT_COLOUR = QColor(*COVER_TEXT_RGB)
BLUR_TINT = QColor(*BLUR_TINT_RGBA)
CACHE_BYTES = 48 * 1024 * 1024
# Covers bigger than this (full view at screen size) are cheap to redraw and not worth caching.
MAX_CACHED_IMAGE_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class CoverDecision:
    """What the rule decided for one row, with everything needed to produce its pixels: a
    plain value, so the pixels can be made on a worker thread (`render`) from a decision
    taken on the GUI thread, and checked against the rule again when they arrive."""

    kind: CoverKind
    radius: int = DEFAULT_RADIUS
    label: str = ""

    def render(self, image: QImage, size: QSize | None = None) -> QImage:
        """`image` as this decision allows it to be seen, at `size` when given (so a painter
        only blits it). Pure: safe on any thread."""
        if size is not None and size.isValid() and image.size() != size \
                and self.kind is not CoverKind.SOLID:
            image = image.scaled(size, Qt.AspectRatioMode.IgnoreAspectRatio,
                                 Qt.TransformationMode.SmoothTransformation)
        if self.kind is CoverKind.CLEAR:
            return image
        if self.kind is CoverKind.SOLID:
            return solid_cover(size if size is not None and size.isValid() else image.size(),
                               self.label)
        blurred = strong_blur(image, self.radius)
        if blurred.size() != image.size():  # enlarged here, not by the painter
            blurred = blurred.scaled(image.size(), Qt.AspectRatioMode.IgnoreAspectRatio,
                                     Qt.TransformationMode.SmoothTransformation)
        return blurred

    def still_safe_under(self, current: CoverDecision) -> bool:
        """May pixels made for this decision be painted while `current` is the rule's
        decision? When it is the same, yes; when the row may now be seen clear, a cover is
        still safe (shown until the clear picture arrives); otherwise no."""
        return self == current or current.kind is CoverKind.CLEAR


class BlurRow(Protocol):
    """What the rule reads from a grid row (db.queries.GridRow satisfies it)."""

    image_id: int
    folder_id: int | None
    decision: str
    flagged: bool
    analysed: bool


class BlurPolicy(QObject):
    """Decides, per row, whether an image is shown clear, blurred or covered, and produces
    the safe pixels. Emits `changed` whenever a decision may differ, so views repaint."""

    changed = Signal()

    def __init__(self, mode: str = "blur", radius: int = DEFAULT_RADIUS,
                 sensitive_folder_ids: Collection[int] = (),
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._mode = mode if mode in BLUR_MODES else "blur"
        self._radius = max(1, int(radius))
        self._sensitive: frozenset[int] = frozenset(sensitive_folder_ids)
        self._session_unblurred = False
        self._peeking: int | None = None
        self._cache: OrderedDict[Hashable, QImage] = OrderedDict()
        self._cache_bytes = 0

    @classmethod
    def from_settings(cls, settings: object, parent: QObject | None = None) -> BlurPolicy:
        """From library.settings.Settings (blur_mode, blur_radius)."""
        return cls(getattr(settings, "blur_mode", "blur"),
                   getattr(settings, "blur_radius", DEFAULT_RADIUS), parent=parent)

    # --- configuration -------------------------------------------------------------------

    @property
    def mode(self) -> str:
        return self._mode

    def set_mode(self, mode: str) -> None:
        if mode not in BLUR_MODES:
            raise ValueError(f"blur mode must be one of {BLUR_MODES}, got {mode!r}")
        if mode != self._mode:
            self._mode = mode
            self._emit_changed(clear_cache=True)

    @property
    def radius(self) -> int:
        return self._radius

    def set_radius(self, radius: int) -> None:
        radius = max(1, int(radius))
        if radius != self._radius:
            self._radius = radius
            self._emit_changed(clear_cache=True)

    def apply_settings(self, settings: object) -> None:
        mode = getattr(settings, "blur_mode", self._mode)
        self.blockSignals(True)
        try:
            self.set_mode(mode if mode in BLUR_MODES else "blur")
            self.set_radius(getattr(settings, "blur_radius", self._radius))
        finally:
            self.blockSignals(False)
        self._emit_changed(clear_cache=True)

    @property
    def sensitive_folder_ids(self) -> frozenset[int]:
        return self._sensitive

    def set_sensitive_folders(self, folder_ids: Collection[int]) -> None:
        ids = frozenset(folder_ids)
        if ids != self._sensitive:
            self._sensitive = ids
            self._emit_changed()

    @property
    def session_unblurred(self) -> bool:
        return self._session_unblurred

    def set_session_unblurred(self, unblurred: bool) -> None:
        """B (after the window's confirmation): show flagged-but-unreviewed and unanalysed
        sensitive images clear for this session. Never lifts the cover of rejected images."""
        if bool(unblurred) != self._session_unblurred:
            self._session_unblurred = bool(unblurred)
            self._emit_changed()

    # --- peeking (Space held) -------------------------------------------------------------

    @property
    def peeking_image_id(self) -> int | None:
        return self._peeking

    def peek(self, image_id: int | None) -> None:
        """Show this one image clear until `end_peek()` (None ends the peek too)."""
        if image_id != self._peeking:
            self._peeking = image_id
            self._emit_changed()

    def end_peek(self) -> None:
        self.peek(None)

    # --- the rule ---------------------------------------------------------------------------

    def cover_kind(self, row: BlurRow | None,
                   sensitive_folder_ids: Collection[int] | None = None) -> CoverKind:
        if row is None:
            return CoverKind.SOLID
        sensitive = self._sensitive if sensitive_folder_ids is None else sensitive_folder_ids
        flagged = bool(row.flagged or getattr(row, "flag_nsfw", False)
                       or getattr(row, "flag_incoherent", False))
        return rule_cover_kind(
            decision=row.decision, flagged=flagged, analysed=bool(row.analysed),
            in_sensitive_folder=row.folder_id in sensitive, mode=self._mode,
            session_unblurred=self._session_unblurred,
            peeking=self._peeking is not None and row.image_id == self._peeking)

    def decision(self, row: BlurRow | None) -> CoverDecision:
        """The rule's decision for `row` now, as a value a worker thread can render."""
        kind = self.cover_kind(row)
        # Only what changes the pixels is kept, so e.g. a new strength does not make a clear
        # or solid-covered picture stale.
        if kind is CoverKind.BLUR:
            return CoverDecision(kind, radius=self._radius)
        if kind is CoverKind.SOLID:
            return CoverDecision(kind, radius=0, label=self._label(row))
        return CoverDecision(kind, radius=0)

    def file_may_leave(self, row: BlurRow | None) -> bool:
        """May the original file of `row` be handed to another program (dragged out,
        queued in ComfyUI)? The file is the picture itself, never blurred, so only when the
        rule shows it clear without any exception: a peek or the session toggle (B) does
        not let a flagged unreviewed file out, and a rejected one stays in."""
        if row is None or row.decision == "rejected":
            return False
        if row.decision == "accepted":
            return True
        flagged = bool(row.flagged or getattr(row, "flag_nsfw", False)
                       or getattr(row, "flag_incoherent", False))
        return not (flagged or (not row.analysed and row.folder_id in self._sensitive))

    def needs_cover(self, row: BlurRow | None,
                    sensitive_folder_ids: Collection[int] | None = None) -> bool:
        return self.cover_kind(row, sensitive_folder_ids) is not CoverKind.CLEAR

    # --- pixels ----------------------------------------------------------------------------

    def safe_image(self, row: BlurRow | None, image: QImage | None,
                   made_for: CoverDecision | None = None) -> QImage | None:
        """The only way a view may obtain pixels for `row`: the image itself when it may be
        shown, otherwise its blurred or covered form. None stays None (still loading).

        With `made_for`, `image` is not a source but pixels a worker already rendered with
        `made_for.render` (the preview does this, so the GUI thread never holds the clear
        picture of a covered row): they are returned unchanged while they are still safe
        under the rule's current decision, and None when they are not — the row's review
        state, a peek or a setting changed since — so the caller renders them again. They
        are never blurred here."""
        if image is None or image.isNull():
            return None
        if made_for is not None:
            return image if made_for.still_safe_under(self.decision(row)) else None
        kind = self.cover_kind(row)
        if kind is CoverKind.CLEAR:
            return image
        sha = getattr(row, "sha256", None)
        label = self._label(row)
        return self._cached(kind, image, sha, label)

    def _cached(self, kind: CoverKind, image: QImage, key: Hashable | None,
                label: str) -> QImage:
        if key is None:
            return self._render(kind, image, label)
        cache_key = (key, image.width(), image.height(), kind, self._radius, label)
        hit = self._cache.get(cache_key)
        if hit is not None:
            self._cache.move_to_end(cache_key)
            return hit
        result = self._render(kind, image, label)
        size = result.sizeInBytes()
        if size <= MAX_CACHED_IMAGE_BYTES:
            self._cache[cache_key] = result
            self._cache_bytes += size
            while self._cache_bytes > CACHE_BYTES and self._cache:
                _, old = self._cache.popitem(last=False)
                self._cache_bytes -= old.sizeInBytes()
        return result

    def _render(self, kind: CoverKind, image: QImage, label: str) -> QImage:
        if kind is CoverKind.SOLID:
            return solid_cover(image.size(), label)
        return strong_blur(image, self._radius)

    @staticmethod
    def _label(row: BlurRow | None) -> str:
        if row is None:
            return ""
        if row.decision == "rejected":
            return "Rejected"
        return "Flagged \u2014 hold Space to peek"

    def _emit_changed(self, clear_cache: bool = False) -> None:
        if clear_cache:
            self._cache.clear()
            self._cache_bytes = 0
        self.changed.emit()


def _fit(size: QSize, long_side: int) -> QSize:
    w, h = max(1, size.width()), max(1, size.height())
    scale = long_side / max(w, h)
    return QSize(max(1, round(w * scale)), max(1, round(h * scale)))


def strong_blur(image: QImage, radius: int = DEFAULT_RADIUS) -> QImage:
    """Reduce to a few pixels (area-averaged), enlarge smoothly in two steps (one bilinear
    step from ~10 px shows a diamond pattern), and tint. Output long side <= 128 px, same
    aspect as the input."""
    source = image.convertToFormat(QImage.Format.Format_ARGB32_Premultiplied)
    tiny = source.scaled(_fit(source.size(), blur_cells(radius)),
                         Qt.AspectRatioMode.IgnoreAspectRatio,
                         Qt.TransformationMode.SmoothTransformation)
    out_size = _fit(source.size(), min(BLURRED_MAX_SIDE, max(source.width(), source.height())))
    middle = tiny.scaled(_fit(source.size(), max(1, min(32, out_size.width(), out_size.height()))),
                         Qt.AspectRatioMode.IgnoreAspectRatio,
                         Qt.TransformationMode.SmoothTransformation)
    result = middle.scaled(out_size, Qt.AspectRatioMode.IgnoreAspectRatio,
                           Qt.TransformationMode.SmoothTransformation)
    result = result.convertToFormat(QImage.Format.Format_ARGB32_Premultiplied)
    painter = QPainter(result)
    try:
        painter.fillRect(result.rect(), BLUR_TINT)
    finally:
        painter.end()
    return result


def solid_cover(size: QSize, label: str = "") -> QImage:
    """A flat cover the size of the image, with a short label when there is room."""
    cover = QImage(size.expandedTo(QSize(1, 1)), QImage.Format.Format_ARGB32_Premultiplied)
    cover.fill(COVER_COLOUR)
    if label and cover.width() >= 96 and cover.height() >= 48:
        painter = QPainter(cover)
        try:
            font = QFont()
            font.setPixelSize(max(9, min(28, cover.width() // 14)))
            painter.setFont(font)
            painter.setPen(COVER_TEXT_COLOUR)
            margin = cover.width() // 12
            area = QRect(margin, 0, cover.width() - 2 * margin, cover.height())
            painter.drawText(area, int(Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap),
                             label)
        finally:
            painter.end()
    return cover
