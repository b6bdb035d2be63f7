"""library.decode: one decode gives format, full size, upright RGB pixels and metadata."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image, PngImagePlugin
from sample_images import A1111_PARAMETERS, SUFFIX_FOR, format_supported, image_bytes, picture

from library.decode import (
    DEFAULT_MAX_IMAGE_PIXELS,
    DecodeError,
    decode_bytes,
    ensure_pixel_limit,
    sniff_format,
)

ALL_FORMATS = [pytest.param(f, marks=pytest.mark.skipif(not format_supported(f),
                                                        reason=f"Pillow lacks {f}"))
               for f in SUFFIX_FOR]


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_every_indexed_format_decodes_to_rgb_at_full_size(fmt):
    decoded = decode_bytes(image_bytes(fmt, size=(64, 48), seed=fmt))
    assert (decoded.format, decoded.width, decoded.height) == (fmt, 64, 48)
    assert decoded.image.mode == "RGB" and decoded.image.size == (64, 48)
    assert sniff_format(image_bytes(fmt)) == fmt


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_generation_metadata_is_read_in_the_same_decode(fmt):
    decoded = decode_bytes(image_bytes(fmt, parameters=A1111_PARAMETERS))
    assert decoded.metadata is not None
    assert decoded.metadata.generator == "a1111"
    assert decoded.metadata.seed == 2**64 - 1


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])
def test_animated_images_give_their_first_frame(fmt):
    first = picture((32, 32), seed="anim").convert("RGB")
    data = image_bytes(fmt, image=first, seed="anim", animated=True)
    decoded = decode_bytes(data)
    with Image.open(io.BytesIO(data)) as im:
        assert getattr(im, "n_frames", 1) == 2
        expected = im.convert("RGB")  # frame 0
    assert decoded.image.tobytes() == expected.tobytes()


def test_jpeg_decodes_at_reduced_size_in_the_dct_domain():
    decoded = decode_bytes(image_bytes("JPEG", size=(2400, 1600)), reduce_to=512)
    assert (decoded.width, decoded.height) == (2400, 1600)  # the header's full size
    # DCT scale 1/2: the largest reduction that keeps the shorter side >= 512 px.
    assert decoded.image.size == (1200, 800)


def test_png_is_reduced_by_an_integer_factor_after_decoding():
    decoded = decode_bytes(image_bytes("PNG", size=(1024, 1536)), reduce_to=512)
    assert (decoded.width, decoded.height) == (1024, 1536)
    assert decoded.image.size == (512, 768)
    full = decode_bytes(image_bytes("PNG", size=(1024, 1536)), reduce_to=None)
    assert full.image.size == (1024, 1536)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF"])
def test_exif_orientation_is_applied_once(fmt):
    # A red block in the top-left corner; orientation 6 means "rotate 90° clockwise to view".
    im = Image.new("RGB", (80, 40), "blue")
    im.paste((255, 0, 0), (0, 0, 20, 20))
    if fmt == "TIFF":
        out = io.BytesIO()
        im.save(out, "TIFF", tiffinfo={0x0112: 6})
        data = out.getvalue()
    else:
        data = image_bytes(fmt, image=im, orientation=6)
    decoded = decode_bytes(data)
    assert (decoded.width, decoded.height) == (40, 80)
    assert decoded.image.size == (40, 80)
    r, g, b = decoded.image.getpixel((35, 5))  # the block is now top-right
    assert r > 200 and b < 60
    assert decoded.image.getexif().get(0x0112) is None  # nothing left to apply again


def test_transparency_is_composited_over_the_background():
    im = Image.new("RGBA", (8, 8), (255, 0, 0, 0))  # fully transparent red
    im.putpixel((0, 0), (0, 0, 255, 255))
    decoded = decode_bytes(image_bytes("PNG", image=im), background=(10, 20, 30))
    assert decoded.image.mode == "RGB"
    assert decoded.image.getpixel((4, 4)) == (10, 20, 30)
    assert decoded.image.getpixel((0, 0)) == (0, 0, 255)
    palette = im.convert("P", palette=Image.Palette.ADAPTIVE)
    palette.info["transparency"] = palette.getpixel((4, 4))
    assert decode_bytes(image_bytes("GIF", image=palette)).image.getpixel((4, 4)) == (255, 255,
                                                                                     255)


def test_sixteen_bit_greyscale_is_scaled_not_clipped():
    im = Image.new("I;16", (4, 4), 32768)
    decoded = decode_bytes(image_bytes("PNG", image=im))
    assert 120 <= decoded.image.getpixel((0, 0))[0] <= 135


@pytest.mark.parametrize(("data", "message"), [
    (b"", "empty file"),
    (b"prompt: a cat, steps 20\n" * 10, "not a supported image"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 7, "damaged PNG file"),
    (b"\xff\xd8\xff", "damaged JPEG file"),
])
def test_unreadable_bytes_raise_a_clear_message(data, message):
    with pytest.raises(DecodeError, match=message):
        decode_bytes(data)


def test_truncated_files_are_errors_not_half_images():
    data = image_bytes("PNG", size=(256, 256), seed="t")
    with pytest.raises(DecodeError, match="truncated"):
        decode_bytes(data[: len(data) // 2])
    jpeg = image_bytes("JPEG", size=(256, 256), seed="t")
    with pytest.raises(DecodeError, match="truncated|cannot decode"):
        decode_bytes(jpeg[: len(jpeg) // 2])


def test_decompression_bombs_are_refused(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(DecodeError, match="too large to decode safely"):
        decode_bytes(image_bytes("PNG", size=(100, 100)))


def test_the_pixel_limit_is_put_back_when_someone_disabled_it(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    ensure_pixel_limit()
    assert Image.MAX_IMAGE_PIXELS == DEFAULT_MAX_IMAGE_PIXELS


def _png_with_chunk_after_idat(ctype: bytes, payload: bytes) -> bytes:
    data = image_bytes("PNG", size=(16, 16))
    chunk = struct.pack(">I", len(payload)) + ctype + payload
    chunk += struct.pack(">I", zlib.crc32(ctype + payload) & 0xFFFFFFFF)
    iend = data.rindex(b"IEND") - 4
    return data[:iend] + chunk + data[iend:]


def test_a_huge_compressed_workflow_chunk_does_not_make_the_image_broken():
    # ComfyUI workflows can exceed Pillow's 1 MiB limit for decompressed text chunks.
    workflow = '{"nodes": [' + ",".join([f'{{"id": {i}}}' for i in range(200_000)]) + "]}"
    assert len(workflow) > PngImagePlugin.MAX_TEXT_CHUNK
    payload = b"workflow\x00\x00" + zlib.compress(workflow.encode())
    decoded = decode_bytes(_png_with_chunk_after_idat(b"zTXt", payload))
    assert decoded.image.size == (16, 16)
    assert len(workflow) > PngImagePlugin.MAX_TEXT_CHUNK  # the limit was restored
