"""Decode an image ONCE from bytes already read, for every consumer at the same time.

Ingest reads a file's bytes once (they are hashed for the content's identity), then calls
`decode_bytes`, which:

1. detects the format from the content (never from the extension), among the formats the
   library indexes (`INDEXED_FORMATS`);
2. reads the header: full width/height (as displayed, i.e. after EXIF orientation), format;
3. decodes at reduced size where the format allows it (JPEG's DCT-domain `draft`), or decodes
   and then shrinks by an integer factor with `Image.reduce` (a fast box filter) — the result
   keeps its shorter side at least `reduce_to` pixels, enough for a 512 px thumbnail. The
   full-size decode runs inside the process-wide pixel budget
   (inference.decoding.PIXEL_BUDGET), so concurrent decodes of giant pictures take turns;
4. reads the generation metadata (`library.metadata.read_metadata`) from the opened image;
5. returns one plain RGB picture: EXIF orientation applied, transparency composited over a
   background, wide/float modes scaled to 8 bits. Its `info` is emptied so nothing downstream
   applies the orientation a second time.

The analysis pipeline decodes with its own rules (inference.preprocess: alpha kept for the
tagger, not composited, reduced only past twice its ANALYSIS_MIN_SIDE) but shares the pixel
budget and the orientation handling. With `for_analysis=True` this module decodes by those
rules instead (`inference.preprocess.analysis_picture`, the one definition of the analysers'
picture), returns that picture too (`DecodedImage.analysis`) and derives the picture above from
it: indexing then hands its decode on to the analysis (library.handoff), and each new file is
decoded once, not twice. For pictures the models see at full size and that decode at full
size here too, the derived picture is the usual one, pixel for pixel. A JPEG (decoded for the
models at DCT scale 1/1 or 1/2 rather than down to 512 px) or a picture of 1792 px or more
(reduced for the models first) is shrunk from another intermediate size: its thumbnail may
differ by a pixel in size and its perceptual hash by a few bits (tests/library/test_handoff.py).

Failures raise `DecodeError` with a message meant for the user ("truncated", "not an image",
"too large to decode safely"); Pillow's decompression-bomb guard stays on, and truncated files
stay errors (ImageFile.LOAD_TRUNCATED_IMAGES is never set: a half-written file must not be
indexed as if it were whole).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PIL import Image, UnidentifiedImageError

from inference.decoding import (
    PIXEL_BUDGET,
    import_numpy,
    orientation,
    reduce_factor,
    swaps_sides,
    upright,
)

if TYPE_CHECKING:
    from library.metadata import GenerationMetadata

# Pillow's own default (~89.5 MP; an error at twice that). Upscaled SD images reach 8k×8k
# (67 MP). Some libraries set the limit to None process-wide; `ensure_pixel_limit` puts a
# bound back before every decode.
DEFAULT_MAX_IMAGE_PIXELS = 89_478_485

# Pillow format names the library indexes (what Image.open may try). The JPEG opener also
# yields "MPO" — a JPEG carrying extra frames (cameras, some phone exports).
INDEXED_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF", "AVIF")
_DRAFTABLE = frozenset({"JPEG", "MPO"})

# File names the library considers at all (the content decides the format). Files with other
# suffixes — workflow JSON, .txt captions, temp names like *.tmp / *.part — are not images.
IMAGE_SUFFIXES = frozenset({
    ".png", ".apng", ".jpg", ".jpeg", ".jpe", ".jfif", ".webp", ".gif", ".bmp", ".dib",
    ".tif", ".tiff", ".avif",
})

DEFAULT_BACKGROUND = (255, 255, 255)


class DecodeError(Exception):
    """The bytes are not a readable image of an indexed format; str() is the user message."""


@dataclass
class DecodedImage:
    format: str  # Pillow's name: "PNG", "JPEG", "WEBP", …
    width: int  # full size as displayed (EXIF orientation applied)
    height: int
    image: Image.Image  # RGB, upright, composited; shorter side >= reduce_to unless smaller
    metadata: GenerationMetadata | None
    # for_analysis only: the analysers' picture (inference.preprocess.analysis_picture)
    analysis: Image.Image | None = None


def ensure_pixel_limit() -> None:
    """Keep Pillow's decompression-bomb guard bounded even if something disabled it."""
    if Image.MAX_IMAGE_PIXELS is None:
        Image.MAX_IMAGE_PIXELS = DEFAULT_MAX_IMAGE_PIXELS


def sniff_format(data: bytes) -> str | None:
    """The indexed format of `data` judged from its content, or None."""
    try:
        with Image.open(io.BytesIO(data), formats=INDEXED_FORMATS) as im:
            return im.format
    except Exception:  # noqa: BLE001 - anything unreadable is simply "not an image"
        return None


# The one reading of EXIF orientation, shared with the analysis decoder.
exif_orientation = orientation


def to_rgb(im: Image.Image, background: tuple[int, int, int] = DEFAULT_BACKGROUND) -> Image.Image:
    """Any Pillow mode → 8-bit RGB; transparency is composited over `background`."""
    if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        # 16-bit greyscale (and 32-bit int/float): scale to 8 bits rather than clip to white.
        high = im.getextrema()[1]  # one band: (min, max) numbers
        assert isinstance(high, (int, float))
        peak = 65535 if im.mode.startswith("I;16") else max(1.0, float(high or 1))
        im = im.convert("F").point(lambda v: v * (255.0 / peak)).convert("L")
    has_alpha = im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        im.mode == "P" and "transparency" in im.info)
    if has_alpha:
        rgba = im.convert("RGBA")
        base = Image.new("RGB", rgba.size, background)
        base.paste(rgba, mask=rgba.getchannel("A"))
        return base
    return im if im.mode == "RGB" else im.convert("RGB")


def _shrunk_rgb(im: Image.Image, reduce_to: int | None,
                background: tuple[int, int, int]) -> Image.Image:
    """`im` as RGB, shrunk by an integer factor while its shorter side stays >= reduce_to.
    Opaque 8-bit pictures are shrunk first, so their full-size RGB copy is never made; others
    are converted first (transparency is composited before averaging, as it always was)."""
    opaque = im.mode in ("RGB", "L")
    picture = im if opaque else to_rgb(im, background)
    if reduce_to:
        factor = reduce_factor(picture.size, reduce_to)
        if factor > 1:
            picture = picture.reduce(factor)
    return to_rgb(picture, background) if opaque else picture


def _read_metadata(im: Image.Image) -> GenerationMetadata | None:
    from library.metadata import (
        read_metadata,  # the parser package; imported on first use
    )

    try:
        return read_metadata(im)
    except Exception:  # noqa: BLE001 - documented never to raise; a bug there loses no image
        return None


def _signature_format(data: bytes) -> str | None:
    """The format whose magic bytes `data` starts with (for error messages only)."""
    head = data[:16]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "GIF"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "WEBP"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "TIFF"
    if head[4:8] == b"ftyp" and head[8:12] in (b"avif", b"avis"):
        return "AVIF"
    if head.startswith(b"BM"):
        return "BMP"
    return None


class _TextChunksTooLarge(Exception):
    """Pillow refused a PNG text chunk over its MAX_TEXT_CHUNK (big ComfyUI workflows)."""


def decode_bytes(
    data: bytes,
    *,
    reduce_to: int | None = 512,
    with_metadata: bool = True,
    background: tuple[int, int, int] = DEFAULT_BACKGROUND,
    for_analysis: bool = False,
) -> DecodedImage:
    """Decode `data` once: header, metadata and an upright RGB picture (see module doc).

    `reduce_to=None` decodes at full size. Animated images give their first frame.
    `for_analysis`: decode by the analysers' rules and return their picture as well.
    """
    if not data:
        raise DecodeError("empty file (0 bytes)")
    ensure_pixel_limit()
    try:
        return _decode(data, reduce_to, with_metadata, background, for_analysis)
    except _TextChunksTooLarge:
        # Retried with the metadata reader's bounded, thread-safe raise of Pillow's limit.
        from library.metadata import raised_png_text_limit

        with raised_png_text_limit():
            try:
                return _decode(data, reduce_to, with_metadata, background, for_analysis)
            except _TextChunksTooLarge as exc:
                raise DecodeError(f"PNG text chunks too large: {exc}") from exc


def _failure(exc: Exception, fmt: str, width: int, height: int) -> Exception:
    """The exception to raise for a failed load(): a clear DecodeError, or the retry signal."""
    message = str(exc) or type(exc).__name__
    if isinstance(exc, ValueError) and ("MAX_TEXT" in message or "text chunks" in message):
        return _TextChunksTooLarge(message)
    if isinstance(exc, Image.DecompressionBombError):
        return DecodeError(f"image too large to decode safely (decompression bomb guard): "
                           f"{message}")
    if isinstance(exc, MemoryError):
        return DecodeError(f"not enough memory to decode a {width}×{height} {fmt}")
    if "truncated" in message or isinstance(exc, EOFError):
        return DecodeError(f"truncated or incomplete {fmt} file ({message})")
    return DecodeError(f"cannot decode {fmt} data: {message}")


def _decode(data: bytes, reduce_to: int | None, with_metadata: bool,
            background: tuple[int, int, int], for_analysis: bool) -> DecodedImage:
    try:
        # Between MAX_IMAGE_PIXELS and twice it Pillow only warns; that warning is filtered
        # for the whole process by inference.decoding (catch_warnings is not thread-safe).
        im = Image.open(io.BytesIO(data), formats=INDEXED_FORMATS)
    except UnidentifiedImageError as exc:
        claimed = _signature_format(data)
        if claimed:
            raise DecodeError(f"damaged {claimed} file: its header cannot be read") from exc
        raise DecodeError(
            "not a supported image: the content is none of "
            + ", ".join(INDEXED_FORMATS)) from exc
    except Exception as exc:  # malformed headers raise all sorts
        failure = _failure(exc, "image", 0, 0)
        if isinstance(failure, DecodeError) and failure.args[0].startswith("cannot decode"):
            failure = DecodeError(f"unreadable image header: {exc}")
        raise failure from exc

    with im:
        fmt = im.format or "unknown"
        width, height = im.size
        # Before load(): Pillow drops a PNG's file pointer once the pixels are loaded, and the
        # reader walks the chunks itself from it (those after the pixel data too, and text
        # Pillow cannot parse, such as invalid UTF-8 in iTXt). The reader never raises.
        metadata = _read_metadata(im) if with_metadata else None
        if for_analysis:
            return _decode_for_analysis(im, fmt, (width, height), reduce_to, background,
                                        metadata)
        try:
            if reduce_to and fmt in _DRAFTABLE:
                im.draft(None, (reduce_to, reduce_to))
        except Exception as exc:
            raise _failure(exc, fmt, width, height) from exc
        # The full-size pixels exist from load() until only the reduced copy is left: that
        # span runs inside the process-wide pixel budget (shared with the analysis decoder).
        with PIXEL_BUDGET.reserve(im.width * im.height):
            try:
                im.load()
            except Exception as exc:
                raise _failure(exc, fmt, width, height) from exc
            # Read after load(): Pillow's TIFF plugin applies the orientation itself while
            # loading (its size is already upright) and then drops the tag.
            turn = orientation(im)
            picture = _shrunk_rgb(im, reduce_to, background)
            if picture is im:
                picture = im.copy()  # `im` is closed below
            im.close()  # the full-size pixels go before the budget is given back

    picture = upright(picture, turn)
    if swaps_sides(turn):
        width, height = height, width
    picture.info = {}  # orientation is applied: nothing downstream may apply it again
    return DecodedImage(fmt, width, height, picture, metadata)


def _decode_for_analysis(im: Image.Image, fmt: str, size: tuple[int, int],
                         reduce_to: int | None, background: tuple[int, int, int],
                         metadata: GenerationMetadata | None) -> DecodedImage:
    """`_decode`'s picture derived from the analysers' one (see the module doc)."""
    import_numpy()  # before inference.preprocess imports it, possibly on several threads
    from inference.preprocess import analysis_picture  # numpy: only where analysis follows

    width, height = size
    try:
        analysis, turn = analysis_picture(im)  # loads in the pixel budget, closes `im`
    except Exception as exc:
        raise _failure(exc, fmt, width, height) from exc
    # Already upright. It may be the analysis picture itself (small RGB pictures): both
    # consumers only read it (the thumbnail maker copies before shrinking in place).
    picture = _shrunk_rgb(analysis, reduce_to, background)
    if swaps_sides(turn):
        width, height = height, width
    return DecodedImage(fmt, width, height, picture, metadata, analysis)
