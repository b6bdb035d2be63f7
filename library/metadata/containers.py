"""Pull every embedded text out of an opened image without decoding its pixels.

Result: a flat dict key -> text. PNG text chunks keep their keyword ("parameters", "prompt",
"Comment", ...); EXIF fields are "EXIF:UserComment", "EXIF:ImageDescription", "EXIF:Make",
"EXIF:Model", "EXIF:Software", "EXIF:XPComment"; XMP is "XMP"; a JPEG COM segment is
"JPEG:comment". Parsers (reader.py) only look at this dict.
"""

from __future__ import annotations

import logging
import re
import struct
import zlib
from html import unescape
from typing import IO, Any

from PIL import Image

log = logging.getLogger(__name__)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Bounds: one text value, the text work for one image, and how many PNG chunks we walk.
# Pillow's own default (1 MiB compressed text) is too small for ComfyUI workflows; 16 MiB is
# ample. MAX_TOTAL_TEXT_BYTES is one budget per file for every byte of text read *or
# inflated* — whether the text is kept or not (a repeated key, an unknown chunk): a 10 MB
# PNG can hold 600 zTXt chunks that each inflate to 16 MiB, and it is the inflating that
# costs (tests/reliability/test_hostile_inputs.py).
MAX_TEXT_BYTES = 16 * 1024 * 1024
MAX_TOTAL_TEXT_BYTES = 48 * 1024 * 1024
MAX_PNG_CHUNKS = 200_000

_TEXT_CHUNKS = (b"tEXt", b"zTXt", b"iTXt")
XMP_KEYWORD = "XML:com.adobe.xmp"

# EXIF tags (TIFF numbering) that generators use for text.
_IFD0_TEXT_TAGS = {0x010E: "ImageDescription", 0x010F: "Make", 0x0110: "Model",
                   0x0131: "Software", 0x013B: "Artist"}
TAG_USER_COMMENT = 0x9286
TAG_XP_COMMENT = 0x9C9C
TAG_EXIF_IFD = 0x8769


class _Budget:
    """The text work one image may cost: every byte read or inflated is charged, kept or not
    (a crafted file can hold thousands of chunks, most of them repeats)."""

    def __init__(self, limit: int = MAX_TOTAL_TEXT_BYTES) -> None:
        self.left = limit

    def charge(self, size: int) -> None:
        self.left -= size

    @property
    def spent(self) -> bool:
        return self.left <= 0

    def take(self, size: int) -> bool:
        """Charge `size` if it fits in what is left; False (nothing charged) otherwise."""
        if size > self.left:
            return False
        self.left -= size
        return True


def collect_texts(im: Image.Image) -> dict[str, str]:
    texts: dict[str, str] = {}
    budget = _Budget()
    exif_blobs: list[bytes] = []

    walked = False
    if (im.format or "").upper() == "PNG":
        fp = getattr(im, "fp", None)
        if fp is not None:
            try:
                walked = _walk_png(fp, texts, exif_blobs, budget)
            except Exception as exc:  # noqa: BLE001 - a broken file must not stop the reader
                log.debug("PNG chunk walk failed: %r", exc)
    if not walked:
        _texts_from_info(im, texts, exif_blobs, budget)

    exif = im.info.get("exif")
    if isinstance(exif, (bytes, bytearray)) and bytes(exif) not in exif_blobs:
        exif_blobs.append(bytes(exif))
    for blob in exif_blobs:
        try:
            _texts_from_exif(blob, texts, budget)
        except Exception as exc:  # noqa: BLE001 - Pillow's EXIF parser raises all sorts
            log.debug("EXIF parse failed: %r", exc)

    xmp = im.info.get("xmp")
    if "XMP" not in texts and isinstance(xmp, (bytes, bytearray, str)):
        value = xmp.decode("utf-8", "replace") if isinstance(xmp, (bytes, bytearray)) else xmp
        _put(texts, "XMP", value, budget)

    comment = im.info.get("comment")
    if isinstance(comment, (bytes, bytearray)) and (im.format or "").upper() == "JPEG":
        _put(texts, "JPEG:comment", _decode_8bit(bytes(comment)), budget)
    return texts


def _put(texts: dict[str, str], key: str, value: str, budget: _Budget | None) -> None:
    """Keep `value` under `key` unless the key is taken. `budget`: charge the value's length
    (None when the caller charged the work that produced it already)."""
    # First occurrence wins: generators write each key once; duplicates come from re-savers.
    value = value.rstrip("\x00")
    if key in texts or not key or not value:
        return
    if len(value) > MAX_TEXT_BYTES:
        value = value[:MAX_TEXT_BYTES]
    if budget is None or budget.take(len(value)):
        texts[key] = value


# --- PNG ------------------------------------------------------------------------------------

def _walk_png(fp: IO[bytes], texts: dict[str, str], exif_blobs: list[bytes],
              budget: _Budget) -> bool:
    """Read text chunks straight from the file, including those after IDAT.

    Pillow only sees chunks after IDAT once the pixels are decoded (`im.text` loads the
    image); walking the chunk list costs a few seeks. The file position is restored so the
    caller can still load the image.
    """
    position = fp.tell()
    try:
        fp.seek(0)
        if fp.read(8) != PNG_SIGNATURE:
            return False
        for _ in range(MAX_PNG_CHUNKS):
            head = fp.read(8)
            if len(head) < 8:
                break
            length, ctype = struct.unpack(">I4s", head)
            if length > 0x7FFFFFFF:
                break
            wanted = ctype in _TEXT_CHUNKS or ctype == b"eXIf"
            if wanted and budget.spent:
                break  # nothing after this may cost anything more
            if wanted and length <= MAX_TEXT_BYTES:
                budget.charge(length)
                data = fp.read(length)
                if len(data) < length:
                    break
                fp.seek(4, 1)  # CRC: not checked, a bad CRC still carries readable text
                if ctype == b"eXIf":
                    exif_blobs.append(data)
                else:
                    parsed = _decode_text_chunk(ctype, data, texts, budget)
                    if parsed is not None:
                        key, value = parsed
                        _put(texts, key, value, None)
            else:
                fp.seek(length + 4, 1)
            if ctype == b"IEND":
                break
        return True
    finally:
        fp.seek(position)


def _decode_text_chunk(ctype: bytes, data: bytes, texts: dict[str, str] | None = None,
                       budget: _Budget | None = None) -> tuple[str, str] | None:
    """(key, text) of a tEXt/zTXt/iTXt chunk, or None. A key already in `texts` is skipped
    before anything is inflated (the first occurrence wins anyway); inflating is charged to
    `budget` and stops where the budget ends."""
    keyword, sep, rest = data.partition(b"\x00")
    if not sep or not keyword or len(keyword) > 79:
        return None
    key = keyword.decode("latin-1")
    if key == XMP_KEYWORD:
        key = "XMP"
    if texts is not None and key in texts:
        return None
    limit = MAX_TEXT_BYTES if budget is None else max(0, min(MAX_TEXT_BYTES, budget.left))
    if ctype == b"tEXt":
        return key, _decode_8bit(rest)
    if ctype == b"zTXt":
        if not rest or rest[0] != 0:
            return None
        raw = _inflate(rest[1:], limit)
        if budget is not None and raw is not None:
            budget.charge(len(raw))
        return (key, _decode_8bit(raw)) if raw is not None else None
    # iTXt: flag, method, language\0, translated keyword\0, UTF-8 text
    if len(rest) < 2:
        return None
    flag, method, rest = rest[0], rest[1], rest[2:]
    parts = rest.split(b"\x00", 2)
    if len(parts) != 3:
        return None
    value = parts[2]
    if flag:
        if method != 0:
            return None
        inflated = _inflate(value, limit)
        if inflated is None:
            return None
        if budget is not None:
            budget.charge(len(inflated))
        value = inflated
    return key, value.decode("utf-8", "replace")


def _inflate(data: bytes, limit: int = MAX_TEXT_BYTES) -> bytes | None:
    """zlib inflate with an output cap (a 1 KiB zip bomb must not become gigabytes)."""
    if limit <= 0:
        return None  # zlib reads a max_length of 0 as "no limit"
    try:
        inflater = zlib.decompressobj()
        out = inflater.decompress(data, limit)
    except zlib.error:
        return None
    return out


def _decode_8bit(raw: bytes) -> str:
    """tEXt is Latin-1 by spec, yet Stability Matrix, TensorArt & co write UTF-8 bytes.

    Strict UTF-8 succeeding on non-ASCII bytes is overwhelmingly a sign of UTF-8 (random
    Latin-1 text almost never forms valid UTF-8 sequences), so prefer it.
    """
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def repair_mojibake(text: str) -> str:
    """Undo UTF-8-read-as-Latin-1 ('ãƒ†' style) when it round-trips cleanly."""
    if not any("\x80" <= ch <= "\xff" for ch in text):
        return text
    try:
        return text.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


def _texts_from_info(im: Image.Image, texts: dict[str, str], exif_blobs: list[bytes],
                     budget: _Budget) -> None:
    """Fallback when the file cannot be walked (already loaded, or not a PNG)."""
    info: dict[Any, Any] = dict(im.info)
    if (im.format or "").upper() == "PNG" and getattr(im, "fp", None) is None:
        # Loaded already (fp closed): `im.text` is then cheap and includes after-IDAT chunks.
        try:
            info.update(getattr(im, "text", {}) or {})
        except Exception as exc:  # noqa: BLE001 - a damaged file: keep the other texts
            log.debug("im.text failed: %r", exc)
    for key, value in info.items():
        if not isinstance(key, str) or key in ("exif", "xmp", "icc_profile", "comment"):
            continue
        if isinstance(value, str):
            _put(texts, "XMP" if key == XMP_KEYWORD else key, repair_mojibake(str(value)), budget)


# --- EXIF -----------------------------------------------------------------------------------

def _texts_from_exif(blob: bytes, texts: dict[str, str], budget: _Budget) -> None:
    body = blob[6:] if blob.startswith(b"Exif\x00\x00") else blob
    byte_order = "big" if body[:2] == b"MM" else "little"
    exif = Image.Exif()
    exif.load(body)
    ifd0 = dict(exif.items())
    for tag, name in _IFD0_TEXT_TAGS.items():
        text = _ascii_tag(ifd0.get(tag))
        if text:
            _put(texts, f"EXIF:{name}", text, budget)
    comments = []
    try:
        comments.append(exif.get_ifd(TAG_EXIF_IFD).get(TAG_USER_COMMENT))
    except Exception as exc:  # noqa: BLE001 - a damaged IFD: IFD0 may still hold it
        log.debug("Exif IFD unreadable: %r", exc)
    comments.append(ifd0.get(TAG_USER_COMMENT))  # some writers put it in IFD0
    for value in comments:
        text = decode_user_comment(value, byte_order) if value is not None else None
        if text:
            _put(texts, "EXIF:UserComment", text, budget)
    xp = ifd0.get(TAG_XP_COMMENT)
    if isinstance(xp, (bytes, tuple)):
        raw = bytes(xp) if isinstance(xp, bytes) else bytes(v & 0xFF for v in xp)
        _put(texts, "EXIF:XPComment", raw.decode("utf-16-le", "replace").rstrip("\x00"), budget)


def _ascii_tag(value: Any) -> str | None:
    if isinstance(value, bytes):
        return _decode_8bit(value.rstrip(b"\x00")) or None
    if isinstance(value, str):
        # Pillow decodes EXIF ASCII as Latin-1; ComfyUI savers write UTF-8 JSON there.
        return repair_mojibake(value.rstrip("\x00")) or None
    return None


def decode_user_comment(value: Any, byte_order: str = "big") -> str | None:
    """EXIF UserComment: 8-byte charset prefix, then text.

    `UNICODE` means UTF-16, nominally in the TIFF byte order, but writers disagree (Civitai's
    JPEGs are "II" with big-endian text), so the byte order is sniffed from where the zero
    bytes of ASCII-range characters fall, with BOM and TIFF order as tie-breakers.
    """
    if isinstance(value, str):  # a writer that used the ASCII type instead of UNDEFINED
        value = value.encode("latin-1", "replace")
    if not isinstance(value, (bytes, bytearray)):
        return None
    data = bytes(value)
    prefix, body = data[:8], data[8:]
    if prefix.startswith(b"UNICODE"):
        text = _decode_utf16(body, byte_order)
    elif prefix.startswith(b"ASCII") or prefix == b"\x00" * 8:
        text = _decode_8bit(body)
    elif prefix.startswith(b"JIS"):
        text = body.decode("shift_jis", "replace")
    else:
        text = _decode_8bit(data)  # no prefix at all
    text = text.strip("\x00")
    return text if text.strip() else None


def _decode_utf16(body: bytes, byte_order: str) -> str:
    if body[:2] == b"\xfe\xff":
        return body[2:].decode("utf-16-be", "replace")
    if body[:2] == b"\xff\xfe":
        return body[2:].decode("utf-16-le", "replace")
    sample = body[:4096]
    zeros_even = sample[0::2].count(0)
    zeros_odd = sample[1::2].count(0)
    if zeros_even != zeros_odd:
        big = zeros_even > zeros_odd
    else:
        big = byte_order == "big"
    if len(body) % 2:
        body = body[:-1]
    return body.decode("utf-16-be" if big else "utf-16-le", "replace")


# --- XMP ------------------------------------------------------------------------------------

def xmp_field(xmp: str, name: str) -> str | None:
    """Text of an XMP property, element form (rdf:Alt/li or plain) or attribute form.

    A regex rather than an XML parser: XMP here is untrusted and only a few simple
    properties matter, and this sidesteps entity-expansion attacks entirely.
    """
    xmp = xmp[:MAX_TEXT_BYTES]
    escaped = re.escape(name)
    element = re.search(rf"<{escaped}(?:\s[^>]*)?>(.*?)</{escaped}>", xmp, re.DOTALL)
    if element:
        inner = element.group(1)
        item = re.search(r"<rdf:li(?:\s[^>]*)?>(.*?)</rdf:li>", inner, re.DOTALL)
        text = item.group(1) if item else inner
        if "<" not in text:
            return unescape(text)
    attribute = re.search(rf'\s{escaped}="([^"]*)"', xmp)
    if attribute:
        return unescape(attribute.group(1))
    return None
