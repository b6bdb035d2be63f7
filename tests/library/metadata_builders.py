"""Build test images with hand-made metadata containers (Pillow + struct, no fixtures)."""

from __future__ import annotations

import gzip
import io
import struct
import zlib
from collections.abc import Iterable

from PIL import Image, PngImagePlugin

TYPE_ASCII, TYPE_UNDEFINED = 2, 7


def png_bytes(chunks: Iterable[tuple[str, str, str]] = (), *, mode: str = "RGB",
              size: tuple[int, int] = (8, 8), image: Image.Image | None = None) -> bytes:
    """PNG with text chunks before IDAT: (kind, key, value), kind in tEXt/zTXt/iTXt."""
    info = PngImagePlugin.PngInfo()
    for kind, key, value in chunks:
        if kind == "tEXt":
            info.add_text(key, value.encode("latin-1") if value.isascii() else value.encode("utf-8"))
        elif kind == "zTXt":
            info.add_text(key, value.encode("latin-1"), zip=True)
        else:
            info.add_itxt(key, value, zip=(kind == "iTXt-z"))
    out = io.BytesIO()
    (image or Image.new(mode, size, "gray")).save(out, "PNG", pnginfo=info)
    return out.getvalue()


def png_chunk(ctype: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + ctype + data + struct.pack(">I", zlib.crc32(ctype + data))


def insert_before_iend(png: bytes, *chunks: bytes) -> bytes:
    iend = png.rindex(b"IEND") - 4
    return png[:iend] + b"".join(chunks) + png[iend:]


def ztxt(key: str, value: str) -> bytes:
    return png_chunk(b"zTXt", key.encode("latin-1") + b"\0\0" + zlib.compress(value.encode("latin-1")))


def tiff(order: str = "MM", ifd0: dict[int, tuple[int, bytes]] | None = None,
         exif_ifd: dict[int, tuple[int, bytes]] | None = None) -> bytes:
    """A minimal TIFF/EXIF block: {tag: (type, payload)} for IFD0 and the Exif sub-IFD."""
    end = ">" if order == "MM" else "<"
    ifd0 = dict(ifd0 or {})
    exif_ifd = dict(exif_ifd or {})
    if exif_ifd:
        ifd0[0x8769] = (4, b"")  # LONG pointer, patched below
    ifd0_size = 2 + 12 * len(ifd0) + 4
    exif_offset = 8 + ifd0_size
    exif_size = (2 + 12 * len(exif_ifd) + 4) if exif_ifd else 0
    data_offset = exif_offset + exif_size
    data = bytearray()

    def ifd(entries: dict[int, tuple[int, bytes]]) -> bytes:
        nonlocal data
        out = struct.pack(end + "H", len(entries))
        for tag in sorted(entries):
            kind, payload = entries[tag]
            if tag == 0x8769:
                out += struct.pack(end + "HHII", tag, 4, 1, exif_offset)
                continue
            if len(payload) <= 4:
                out += struct.pack(end + "HHI", tag, kind, len(payload)) + payload.ljust(4, b"\0")
            else:
                out += struct.pack(end + "HHII", tag, kind, len(payload), data_offset + len(data))
                data += payload + (b"\0" if len(payload) % 2 else b"")
        return out + struct.pack(end + "I", 0)

    head = (b"MM\x00\x2a" if order == "MM" else b"II\x2a\x00") + struct.pack(end + "I", 8)
    body0 = ifd(ifd0)
    body1 = ifd(exif_ifd) if exif_ifd else b""
    return head + body0 + body1 + bytes(data)


def user_comment(text: str, charset: str = "UNICODE", encoding: str = "utf-16-be") -> bytes:
    if charset == "UNICODE":
        return b"UNICODE\0" + text.encode(encoding)
    if charset == "ASCII":
        return b"ASCII\0\0\0" + text.encode("utf-8")
    return b"\0" * 8 + text.encode("utf-8")


def save_with_exif(fmt: str, exif: bytes, *, mode: str = "RGB", size: tuple[int, int] = (8, 8),
                   **params: object) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, "white").save(out, fmt, exif=b"Exif\x00\x00" + exif, **params)
    return out.getvalue()


def stealth_image(payload: str, *, compressed: bool, size: tuple[int, int] = (64, 64),
                  mode: str = "RGBA") -> Image.Image:
    """Hide payload in alpha LSBs column-major, MSB first, as the A1111 extension does."""
    data = payload.encode("utf-8")
    if compressed:
        data = gzip.compress(data)
    magic = b"stealth_pngcomp" if compressed else b"stealth_pnginfo"
    bits = "".join(f"{byte:08b}" for byte in magic)
    bits += f"{len(data) * 8:032b}"
    bits += "".join(f"{byte:08b}" for byte in data)
    width, height = size
    assert len(bits) <= width * height, "image too small for payload"
    column_major = bytearray([255]) * (width * height)
    for index, bit in enumerate(bits):
        column_major[index] = 254 | int(bit)
    alpha = Image.frombytes("L", (height, width), bytes(column_major)).transpose(
        Image.Transpose.TRANSPOSE)
    image = Image.new("RGB", size, (10, 120, 200)).convert(mode)
    image.putalpha(alpha)
    return image


def to_png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def open_bytes(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


def comfy_png(prompt: dict | None = None, workflow: dict | None = None,
              extra: Iterable[tuple[str, str, str]] = ()) -> bytes:
    """A PNG as ComfyUI saves it: the API graph in `prompt`, the editor graph in `workflow`."""
    import json

    chunks = list(extra)
    if prompt is not None:
        chunks.append(("iTXt", "prompt", json.dumps(prompt)))
    if workflow is not None:
        chunks.append(("iTXt", "workflow", json.dumps(workflow)))
    return png_bytes(chunks)
