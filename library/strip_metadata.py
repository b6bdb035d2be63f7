"""Write a picture with no generation metadata left in it (no Qt).

Every kind of embedded text the metadata reader (library.metadata) knows is removed: PNG
tEXt/zTXt/iTXt chunks (XMP included, before or after the image data) and eXIf; EXIF text
(UserComment, ImageDescription, Make, Model, Software, Artist, XPComment: the whole EXIF block
goes); XMP; JPEG COM segments; WebP EXIF/XMP chunks; stealth payloads in the alpha channel.

How, per format — containers are rewritten, pixel data is copied byte for byte wherever
possible (hand-written walkers, because no well-kept library rewrites containers without
decoding: Pillow and exiv2-based tools either re-encode or keep unknown chunks):

* PNG: chunks are filtered against a list of the chunks that affect rendering (IHDR, PLTE,
  IDAT, IEND, tRNS, colour chunks, pHYs, bKGD, hIST, APNG frames); everything else goes,
  including private chunks a tool may use for its own metadata. IDAT is untouched.
* JPEG (and MPO): segments are filtered; JFIF (thumbnail removed), ICC_PROFILE and Adobe
  (colour transform) APP segments are kept, every other APPn (EXIF, XMP, extended XMP,
  Photoshop/IPTC, JUMBF/C2PA…) and COM are dropped, and so is anything after the first EOI
  (MPO's further frames, appended trailers). The entropy-coded data is untouched.
* WebP: RIFF chunks are filtered (VP8X, ICCP, ANIM, ANMF, ALPH, VP8, VP8L kept; EXIF, XMP
  and unknown chunks dropped) and the VP8X flags and RIFF size rewritten.
* GIF: comment extensions and application extensions other than looping (NETSCAPE2.0,
  ANIMEXTS1.0) and ICC (ICCRGBG1) are dropped; XMP lives in one of them.
* TIFF: the frames are written again with the same lossless compression and only the tags
  needed to show them (plus ICC and resolution). JPEG-compressed TIFF is refused (it would
  need a lossy re-encode).
* BMP carries no text: copied as is.
* Other formats (AVIF, …): refused with a message, never exported with metadata in them.

EXIF orientation is a display fact, not metadata: when the original says the picture is
rotated, a minimal EXIF block holding only the Orientation tag is written back.

Stealth payloads (A1111 stealth-pnginfo, NovelAI) hide bits in the alpha channel's lowest
bit. When the reader finds one, the alpha channel is *flattened*: every alpha value's lowest
bit is set equal to its highest bit, which erases the hidden bits while moving no alpha value
by more than 1/255 (fully opaque and fully transparent pixels are unchanged). If the alpha
channel is then fully opaque — the usual case: the generator added it only to carry the
payload — it is dropped altogether and the colour channels are kept exactly. That is the one
case where pixels are re-encoded: PNG losslessly (new IDAT, the other chunks kept as above),
WebP losslessly (`exact`, so a lossy WebP's decoded colours are kept exactly; the file gets
larger). Lossy formats are otherwise never re-encoded.

Every result is checked by reading it back with the reader (`remaining_metadata`): a file
in which anything is left is an error, never a silent pass.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageSequence

from library.metadata import open_image, read_metadata
from library.metadata.containers import collect_texts
from library.metadata.stealth import has_alpha, read_stealth

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Chunks that change how a PNG/APNG looks; everything else is dropped.
PNG_RENDERING_CHUNKS = frozenset({
    b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"cHRM", b"gAMA", b"iCCP", b"sBIT", b"sRGB",
    b"cICP", b"mDCV", b"cLLI", b"bKGD", b"hIST", b"pHYs", b"acTL", b"fcTL", b"fdAT",
})
WEBP_KEPT_CHUNKS = frozenset({b"VP8X", b"ICCP", b"ANIM", b"ANMF", b"ALPH", b"VP8 ", b"VP8L"})
_VP8X_EXIF, _VP8X_XMP = 0x08, 0x04
GIF_KEPT_APPLICATIONS = (b"NETSCAPE2.0", b"ANIMEXTS1.0", b"ICCRGBG1012")
TIFF_LOSSLESS = frozenset({"raw", "tiff_lzw", "tiff_adobe_deflate", "tiff_deflate", "packbits",
                           "group3", "group4", "tiff_ccitt", "tiff_raw_16"})
EXIF_ORIENTATION = 0x0112
# Keys Pillow's decoders put into `info` as text although nothing was embedded (TIFF's
# compression name); the reader's fallback picks them up, so the check ignores them.
DECODER_INFO_KEYS = frozenset({"compression"})


class StripError(Exception):
    """The file could not be written without its metadata; the message says why."""


@dataclass
class StripResult:
    data: bytes
    format: str  # Pillow's name of what was written: PNG, JPEG, WEBP, GIF, TIFF, BMP
    removed: list[str] = field(default_factory=list)  # what was taken out, for the report
    reencoded: str | None = None  # None: pixel data copied as is; else how and why

    @property
    def pixels_copied(self) -> bool:
        return self.reencoded is None


# --- entry points ---------------------------------------------------------------------------

def strip_file(path: str | os.PathLike[str]) -> StripResult:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise StripError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    try:
        return strip_bytes(data)
    except StripError as exc:
        raise StripError(f"{path}: {exc}") from exc


def strip_bytes(data: bytes) -> StripResult:
    """`data` without metadata, verified by reading it back (StripError when that fails)."""
    kind = sniff(data)
    if kind == "PNG":
        result = _strip_png(data)
    elif kind == "JPEG":
        result = _strip_jpeg(data)
    elif kind == "WEBP":
        result = _strip_webp(data)
    elif kind == "GIF":
        result = _strip_gif(data)
    elif kind == "TIFF":
        result = _strip_tiff(data)
    elif kind == "BMP":
        result = StripResult(data, "BMP")
    elif kind is not None:
        raise StripError(f"cannot remove metadata from {kind} files without re-encoding them; "
                         "not written")
    else:
        raise StripError("not an image format GenTriage can clean")
    left = remaining_metadata(result.data)
    if left:
        raise StripError(f"metadata still present after cleaning ({', '.join(left)}); "
                         "not written")
    return result


def sniff(data: bytes) -> str | None:
    head = data[:16]
    if head.startswith(PNG_SIGNATURE):
        return "PNG"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if head[:2] == b"BM":
        return "BMP"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        return "AVIF" if brand in (b"avif", b"avis") else "HEIF" if brand.startswith(
            (b"hei", b"mif")) else brand.decode("latin-1", "replace").strip() or "ISO media"
    return None


def remaining_metadata(data: bytes) -> list[str]:
    """What the metadata reader still finds in `data`: text keys, and "stealth" for an
    alpha payload. Empty when the picture is clean."""
    try:
        with _open(data) as im:
            found = [key for key in collect_texts(im) if key not in DECODER_INFO_KEYS]
            if has_alpha(im) and read_stealth(im):
                found.append("stealth")
            if not found and read_metadata(im).has_parameters:
                found.append("generation parameters")
    except Exception as exc:  # noqa: BLE001 - an unreadable result is a failure, say so
        return [f"unreadable result ({type(exc).__name__}: {exc})"]
    return found


# --- helpers shared by the formats ----------------------------------------------------------

def _open(data: bytes) -> Image.Image:
    """The reader's opener (large PNG text allowed) over bytes in memory; it hands its
    argument to Image.open, which takes any binary file object."""
    return open_image(io.BytesIO(data))


def minimal_exif(orientation: int) -> bytes:
    """A TIFF-structured EXIF body holding only the Orientation tag (big-endian)."""
    return (b"MM\x00*" + struct.pack(">I", 8) + struct.pack(">H", 1)
            + struct.pack(">HHIHH", EXIF_ORIENTATION, 3, 1, orientation, 0)
            + struct.pack(">I", 0))


def _orientation(data: bytes) -> int:
    try:
        with _open(data) as im:
            value = int(im.getexif().get(EXIF_ORIENTATION, 1))
    except Exception:  # noqa: BLE001 - malformed EXIF: nothing worth keeping
        return 1
    return value if value in range(2, 9) else 1


def _stealth_alpha(data: bytes) -> Image.Image | None:
    """The decoded picture when its alpha channel carries a stealth payload, else None."""
    try:
        with _open(data) as im:
            if not has_alpha(im) or not read_stealth(im):
                return None
            im.load()
            return im.copy()
    except Exception:  # noqa: BLE001 - undecodable pixels carry no readable payload
        return None


# Alpha values after flattening: the lowest bit copies the highest one.
_FLATTEN_ALPHA = [(a | 1) if a >= 128 else (a & 0xFE) for a in range(256)]


def flatten_alpha(im: Image.Image) -> tuple[Image.Image, str]:
    """Erase a stealth payload from the alpha channel (see module docstring). Returns the
    new picture and a sentence saying what happened to the alpha channel."""
    if im.mode not in ("RGBA", "LA"):
        im = im.convert("RGBA")
    alpha = im.getchannel("A").point(_FLATTEN_ALPHA)
    if alpha.getextrema() == (255, 255):
        # Pillow's RGBA→RGB / LA→L conversion drops alpha without compositing: colour
        # values stay exactly as they were.
        return im.convert("RGB" if im.mode == "RGBA" else "L"), \
            "alpha channel (opaque, carried a stealth payload) dropped; colours unchanged"
    flattened = im.copy()
    flattened.putalpha(alpha)
    return flattened, ("stealth payload erased from the alpha channel (lowest bit set to the "
                       "highest; alpha moves by at most 1/255)")


# --- PNG ------------------------------------------------------------------------------------

def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, whole chunk bytes incl. length and CRC) up to IEND."""
    if not data.startswith(PNG_SIGNATURE):
        raise StripError("not a PNG file")
    chunks = []
    pos = len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length, ctype = struct.unpack(">I4s", data[pos:pos + 8])
        end = pos + 12 + length
        if length > 0x7FFFFFFF or end > len(data):
            raise StripError("truncated PNG file")
        chunks.append((ctype, data[pos:end]))
        pos = end
        if ctype == b"IEND":
            return chunks
    raise StripError("truncated PNG file (no IEND)")


def _png_chunk(ctype: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + ctype + payload + struct.pack(
        ">I", zlib.crc32(ctype + payload))


def _describe_png_chunk(ctype: bytes, chunk: bytes) -> str:
    name = ctype.decode("latin-1")
    if ctype in (b"tEXt", b"zTXt", b"iTXt"):
        keyword = chunk[8:8 + 80].split(b"\x00", 1)[0].decode("latin-1", "replace")
        return f"PNG {name} '{keyword}'"
    if ctype == b"eXIf":
        return "PNG eXIf (EXIF)"
    return f"PNG {name} chunk"


def _strip_png(data: bytes) -> StripResult:
    chunks = _png_chunks(data)
    removed = [_describe_png_chunk(t, c) for t, c in chunks if t not in PNG_RENDERING_CHUNKS]
    kept = [(t, c) for t, c in chunks if t in PNG_RENDERING_CHUNKS]
    orientation = _orientation(data) if any(t == b"eXIf" for t, _ in chunks) else 1
    extra_before_idat = [_png_chunk(b"eXIf", minimal_exif(orientation))] if orientation != 1 else []
    result = StripResult(_assemble_png(kept, extra_before_idat), "PNG", removed)
    flattened = _stealth_alpha(result.data)
    if flattened is not None:
        if any(t in (b"acTL", b"fcTL") for t, _ in kept):
            raise StripError("an animated PNG whose alpha channel carries stealth data cannot "
                             "be cleaned without re-encoding every frame; not written")
        if kept[0][1][16] == 16:  # IHDR bit depth: Pillow decodes 16-bit RGBA as 8-bit
            raise StripError("a 16-bit PNG whose alpha channel carries stealth data cannot "
                             "be cleaned losslessly; not written")
        picture, how = flatten_alpha(flattened)
        result = StripResult(_replace_png_pixels(kept, extra_before_idat, picture), "PNG",
                             [*removed, "stealth payload in the alpha channel"],
                             f"PNG image data re-encoded losslessly: {how}")
    return result


def _assemble_png(kept: list[tuple[bytes, bytes]], before_idat: list[bytes]) -> bytes:
    out = [PNG_SIGNATURE]
    inserted = False
    for ctype, chunk in kept:
        if ctype in (b"IDAT", b"fcTL", b"acTL") and not inserted:
            out.extend(before_idat)
            inserted = True
        out.append(chunk)
    return b"".join(out)


def _replace_png_pixels(kept: list[tuple[bytes, bytes]], before_idat: list[bytes],
                        picture: Image.Image) -> bytes:
    """The filtered chunk list with IHDR and IDAT taken from a lossless encoding of
    `picture`; the other kept chunks (colour, resolution) stay."""
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    fresh = _png_chunks(buffer.getvalue())
    new_ihdr = next(c for t, c in fresh if t == b"IHDR")
    new_pixels = [c for t, c in fresh if t in (b"PLTE", b"tRNS", b"IDAT")]
    colour_type_changed = new_ihdr[16:18] != kept[0][1][16:18]
    out = [PNG_SIGNATURE, new_ihdr]
    placed = False
    for ctype, chunk in kept[1:]:
        if ctype in (b"IDAT", b"PLTE", b"tRNS"):
            if not placed:
                out.extend(before_idat)
                out.extend(new_pixels)
                placed = True
            continue
        if ctype == b"sBIT" and colour_type_changed:
            continue  # its size depends on the colour type
        out.append(chunk)
    return b"".join(out)


# --- JPEG -----------------------------------------------------------------------------------

_JPEG_STANDALONE = {0x01, *range(0xD0, 0xD8), 0xD8, 0xD9}


def _strip_jpeg(data: bytes) -> StripResult:
    orientation = _orientation(data)
    segments: list[bytes] = []  # after SOI, in order
    removed: list[str] = []
    pos = 2
    size = len(data)
    while True:
        # Markers may be preceded by any number of 0xFF fill bytes.
        while pos + 1 < size and data[pos] == 0xFF and data[pos + 1] == 0xFF:
            pos += 1
        if pos + 2 > size or data[pos] != 0xFF:
            raise StripError("truncated or malformed JPEG file")
        marker = data[pos + 1]
        if marker == 0xD9:  # EOI: anything after it (MPO frames, trailers) is dropped
            segments.append(b"\xff\xd9")
            if pos + 2 < size:
                removed.append(f"{size - pos - 2} byte(s) after the end of the image")
            break
        if marker in _JPEG_STANDALONE:
            segments.append(data[pos:pos + 2])
            pos += 2
            continue
        if pos + 4 > size:
            raise StripError("truncated JPEG file")
        length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        end = pos + 2 + length
        if length < 2 or end > size:
            raise StripError("truncated JPEG file")
        keep, note = _jpeg_segment_policy(marker, data[pos + 4:end])
        if keep is not None:
            segments.append(keep)
        if note:
            removed.append(note)
        pos = end
        if marker == 0xDA:  # SOS: the entropy-coded data runs up to the next marker
            scan_end = _entropy_end(data, pos)
            segments.append(data[pos:scan_end])
            pos = scan_end
    if orientation != 1:
        # The EXIF block goes first, after JFIF when there is one (what cameras write).
        at = 1 if segments and segments[0][:2] == b"\xff\xe0" else 0
        segments.insert(at, _jpeg_exif_segment(orientation))
    return StripResult(b"\xff\xd8" + b"".join(segments), "JPEG", removed)


def _jpeg_exif_segment(orientation: int) -> bytes:
    payload = b"Exif\x00\x00" + minimal_exif(orientation)
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def _jpeg_segment_policy(marker: int, body: bytes) -> tuple[bytes | None, str | None]:
    """(bytes to write or None, what was removed or None) for one marker segment."""
    if marker == 0xFE:
        return None, "JPEG COM (comment)"
    if not 0xE0 <= marker <= 0xEF:
        return b"\xff" + bytes([marker]) + struct.pack(">H", len(body) + 2) + body, None
    app = marker - 0xE0
    if app == 0 and body.startswith(b"JFIF\x00") and len(body) >= 14:
        if body[12] or body[13]:  # an embedded thumbnail: keep the header, drop the pixels
            body = body[:12] + b"\x00\x00"
            return _segment(marker, body), "JFIF thumbnail"
        return _segment(marker, body), None
    if app == 2 and body.startswith(b"ICC_PROFILE\x00"):
        return _segment(marker, body), None
    if app == 14 and body.startswith(b"Adobe"):
        return _segment(marker, body), None
    if app == 1 and body.startswith(b"Exif\x00"):
        return None, "EXIF (APP1)"
    if app == 1 and body.startswith((b"http://ns.adobe.com/xap/1.0/\x00",
                                     b"http://ns.adobe.com/xmp/extension/\x00")):
        return None, "XMP (APP1)"
    if app == 2 and body.startswith(b"MPF\x00"):
        return None, "MPF index of further frames (APP2)"
    label = body[:16].split(b"\x00", 1)[0].decode("latin-1", "replace")
    return None, f"APP{app} {label!r}".rstrip()


def _segment(marker: int, body: bytes) -> bytes:
    return b"\xff" + bytes([marker]) + struct.pack(">H", len(body) + 2) + body


def _entropy_end(data: bytes, pos: int) -> int:
    """Index of the marker that ends the entropy-coded data starting at `pos` (0xFF00
    stuffing and restart markers belong to the data)."""
    size = len(data)
    while True:
        pos = data.find(b"\xff", pos)
        if pos < 0 or pos + 1 >= size:
            raise StripError("truncated JPEG file (no end of image)")
        following = data[pos + 1]
        if following == 0x00 or 0xD0 <= following <= 0xD7:
            pos += 2
        elif following == 0xFF:
            pos += 1
        else:
            return pos


# --- WebP -----------------------------------------------------------------------------------

def _strip_webp(data: bytes) -> StripResult:
    if len(data) < 12:
        raise StripError("truncated WebP file")
    riff_size = struct.unpack("<I", data[4:8])[0]
    end_of_riff = min(len(data), 8 + riff_size)
    pos = 12
    chunks: list[tuple[bytes, bytes]] = []
    while pos + 8 <= end_of_riff:
        fourcc = data[pos:pos + 4]
        length = struct.unpack("<I", data[pos + 4:pos + 8])[0]
        end = pos + 8 + length + (length & 1)
        if pos + 8 + length > len(data):
            raise StripError("truncated WebP file")
        chunks.append((fourcc, data[pos:min(end, len(data))]))
        pos = end
    if not any(f in (b"VP8 ", b"VP8L", b"ANMF") for f, _ in chunks):
        raise StripError("WebP file without image data")
    removed = [_describe_webp_chunk(f) for f, _ in chunks if f not in WEBP_KEPT_CHUNKS]
    orientation = _orientation(data) if any(f == b"EXIF" for f, _ in chunks) else 1
    kept = [(f, c) for f, c in chunks if f in WEBP_KEPT_CHUNKS]
    body = bytearray()
    for fourcc, chunk in kept:
        if fourcc == b"VP8X":
            flags = chunk[8] & ~(_VP8X_EXIF | _VP8X_XMP)
            if orientation != 1:
                flags |= _VP8X_EXIF
            chunk = chunk[:8] + bytes([flags]) + chunk[9:]
        body += chunk
    if orientation != 1:
        if not kept or kept[0][0] != b"VP8X":
            orientation = 1  # a simple-format WebP cannot hold EXIF; viewers ignored it anyway
        else:
            exif = minimal_exif(orientation)
            body += b"EXIF" + struct.pack("<I", len(exif)) + exif + (b"\x00" if len(exif) & 1
                                                                      else b"")
    result = StripResult(b"RIFF" + struct.pack("<I", len(body) + 4) + b"WEBP" + bytes(body),
                         "WEBP", removed)
    flattened = _stealth_alpha(result.data)
    if flattened is not None:
        if any(f == b"ANIM" for f, _ in kept):
            raise StripError("an animated WebP whose alpha channel carries stealth data "
                             "cannot be cleaned without re-encoding every frame; not written")
        picture, how = flatten_alpha(flattened)
        icc = next((c[8:8 + struct.unpack("<I", c[4:8])[0]] for f, c in kept if f == b"ICCP"),
                   None)
        buffer = io.BytesIO()
        params: dict[str, object] = {"lossless": True, "exact": True, "quality": 100,
                                     "method": 4}
        if icc:
            params["icc_profile"] = icc
        if orientation != 1:
            params["exif"] = b"Exif\x00\x00" + minimal_exif(orientation)
        picture.save(buffer, "WEBP", **params)
        lossy = any(f == b"VP8 " for f, _ in kept)
        result = StripResult(buffer.getvalue(), "WEBP",
                             [*removed, "stealth payload in the alpha channel"],
                             ("WebP re-encoded losslessly (the decoded lossy colours are kept "
                              "exactly; the file grows): " if lossy else
                              "WebP re-encoded losslessly: ") + how)
    return result


def _describe_webp_chunk(fourcc: bytes) -> str:
    name = fourcc.decode("latin-1").strip()
    return {"EXIF": "WebP EXIF chunk", "XMP": "WebP XMP chunk"}.get(name, f"WebP {name} chunk")


# --- GIF ------------------------------------------------------------------------------------

def _strip_gif(data: bytes) -> StripResult:
    if len(data) < 13:
        raise StripError("truncated GIF file")
    flags = data[10]
    pos = 13 + (3 * (2 << (flags & 7)) if flags & 0x80 else 0)
    out = bytearray(data[:pos])
    removed: list[str] = []
    size = len(data)
    while pos < size:
        introducer = data[pos]
        if introducer == 0x3B:  # trailer
            out.append(0x3B)
            break
        if introducer == 0x2C:  # image descriptor, local colour table, LZW data
            if pos + 10 > size:
                raise StripError("truncated GIF file")
            local = data[pos + 9]
            start = pos
            pos += 10 + (3 * (2 << (local & 7)) if local & 0x80 else 0) + 1
            pos = _gif_sub_blocks_end(data, pos)
            out += data[start:pos]
            continue
        if introducer != 0x21 or pos + 2 > size:
            raise StripError("malformed GIF file")
        label = data[pos + 1]
        start = pos
        end = _gif_sub_blocks_end(data, pos + 2)
        keep = True
        if label == 0xFE:
            keep = False
            removed.append("GIF comment")
        elif label == 0xFF:
            identifier = data[pos + 3:pos + 14] if pos + 14 <= size else b""
            if identifier not in GIF_KEPT_APPLICATIONS:
                keep = False
                removed.append("GIF application data "
                               + repr(identifier.decode("latin-1", "replace")))
        if keep:
            out += data[start:end]
        pos = end
    else:
        raise StripError("truncated GIF file (no trailer)")
    return StripResult(bytes(out), "GIF", removed)


def _gif_sub_blocks_end(data: bytes, pos: int) -> int:
    size = len(data)
    while True:
        if pos >= size:
            raise StripError("truncated GIF file")
        length = data[pos]
        pos += 1 + length
        if length == 0:
            return pos


# --- TIFF -----------------------------------------------------------------------------------

def _strip_tiff(data: bytes) -> StripResult:
    orientation = _orientation(data)
    try:
        with _open(data) as im:
            compression = im.info.get("compression", "raw")
            if compression not in TIFF_LOSSLESS:
                raise StripError(f"a TIFF compressed with {compression} would need a lossy "
                                 "re-encode to be cleaned; not written")
            icc = im.info.get("icc_profile")
            dpi = im.info.get("dpi")
            frames = []
            for frame in ImageSequence.Iterator(im):
                frame.load()
                clean = frame.copy()
                clean.info = {}
                frames.append(clean)
    except StripError:
        raise
    except Exception as exc:
        raise StripError(f"cannot read the TIFF pixels ({exc})") from exc
    removed = ["TIFF descriptive tags (description, software, EXIF, XMP, IPTC…)"]
    how = None
    if has_alpha(frames[0]) and read_stealth(frames[0]):
        frames[0], how = flatten_alpha(frames[0])
        removed.append("stealth payload in the alpha channel")
    params: dict[str, object] = {"compression": compression}
    if icc:
        params["icc_profile"] = icc
    if dpi:
        params["dpi"] = dpi
    if orientation != 1:
        params["tiffinfo"] = {274: orientation}
    buffer = io.BytesIO()
    frames[0].save(buffer, "TIFF", save_all=len(frames) > 1, append_images=frames[1:],
                   **params)
    note = f"TIFF written again with the same lossless compression ({compression})"
    return StripResult(buffer.getvalue(), "TIFF", removed, note + (f"; {how}" if how else ""))
