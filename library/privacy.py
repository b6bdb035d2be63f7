"""Blur until reviewed, without Qt: the rule and the Pillow pixels for reports.

The app's choke point for pixels is desktop/blur.py `BlurPolicy`, which asks `cover_kind`
below; anything that writes pictures outside the app (the HTML report of `gentriage report`)
asks the same function and renders with `safe_thumbnail`, so both follow one rule:

1. Space held on this image (`peeking`): clear (the app only).
2. Rejected: solid cover, always.
3. Accepted: clear — a person looked at it and kept it.
4. Flagged by any analyser and not yet reviewed: blurred (a solid cover in "cover" mode),
   unless the session toggle (B, the app only) is on.
5. Not analysed yet and in a folder marked sensitive: as 4.
6. Otherwise clear.

The blur is destructive, as the app's: the picture is reduced to a handful of pixels (10
across at the default strength), smoothly enlarged again and tinted, so shapes and skin are
not recognisable at any size.
"""

from __future__ import annotations

import enum

from PIL import Image, ImageDraw

BLUR_MODES = ("blur", "cover")
DEFAULT_RADIUS = 48
# The reduced picture has round(BLUR_DETAIL / radius) pixels along its long side (3..16):
# radius 48 (the default) keeps 10, radius 160+ keeps 3.
BLUR_DETAIL = 480
MIN_CELLS, MAX_CELLS = 3, 16
# Blurred output holds no detail: at most this long side (the app's BLURRED_MAX_SIDE).
BLURRED_MAX_SIDE = 128
COVER_RGB = (43, 43, 46)
COVER_TEXT_RGB = (200, 200, 205)
BLUR_TINT_RGBA = (60, 60, 70, 96)


class CoverKind(enum.Enum):
    CLEAR = "clear"
    BLUR = "blur"
    SOLID = "solid"


def cover_kind(*, decision: str, flagged: bool, analysed: bool, in_sensitive_folder: bool,
               mode: str = "blur", session_unblurred: bool = False,
               peeking: bool = False) -> CoverKind:
    """The rule (see the module docstring), first match wins."""
    if peeking:
        return CoverKind.CLEAR
    if decision == "rejected":
        return CoverKind.SOLID
    if decision == "accepted":
        return CoverKind.CLEAR
    if (flagged or (not analysed and in_sensitive_folder)) and not session_unblurred:
        return CoverKind.BLUR if mode == "blur" else CoverKind.SOLID
    return CoverKind.CLEAR


def blur_cells(radius: int) -> int:
    """How many pixels the reduced picture keeps along its long side for a strength."""
    return max(MIN_CELLS, min(MAX_CELLS, round(BLUR_DETAIL / max(1, radius))))


def _fit(size: tuple[int, int], long_side: int) -> tuple[int, int]:
    w, h = max(1, size[0]), max(1, size[1])
    scale = long_side / max(w, h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def strong_blur(image: Image.Image, radius: int = DEFAULT_RADIUS) -> Image.Image:
    """The app's blur with Pillow: area-average down to `blur_cells(radius)` pixels, enlarge
    in two smooth steps (one bilinear step from ~10 px shows a diamond pattern), tint. RGB
    output, long side <= BLURRED_MAX_SIDE, same aspect as the input."""
    source = image.convert("RGB")
    tiny = source.resize(_fit(source.size, blur_cells(radius)), Image.Resampling.BOX)
    out_size = _fit(source.size, min(BLURRED_MAX_SIDE, max(source.size)))
    middle = tiny.resize(_fit(source.size, max(1, min(32, *out_size))),
                         Image.Resampling.BICUBIC)
    result = middle.resize(out_size, Image.Resampling.BICUBIC)
    tint = Image.new("RGBA", out_size, BLUR_TINT_RGBA)
    return Image.alpha_composite(result.convert("RGBA"), tint).convert("RGB")


def solid_cover(size: tuple[int, int], label: str = "") -> Image.Image:
    """A flat cover the size of the image, with a short label when there is room."""
    cover = Image.new("RGB", (max(1, size[0]), max(1, size[1])), COVER_RGB)
    if label and cover.width >= 96 and cover.height >= 48:
        draw = ImageDraw.Draw(cover)
        draw.text((cover.width // 2, cover.height // 2), label, fill=COVER_TEXT_RGB,
                  anchor="mm")
    return cover


def safe_thumbnail(image: Image.Image, kind: CoverKind, radius: int = DEFAULT_RADIUS,
                   label: str = "") -> Image.Image:
    """`image` as the rule allows it to be seen outside the app (clear, blurred or covered)."""
    if kind is CoverKind.CLEAR:
        return image.convert("RGB")
    if kind is CoverKind.SOLID:
        return solid_cover(image.size, label)
    return strong_blur(image, radius)
