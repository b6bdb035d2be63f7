"""`--strip-metadata`: every kind of metadata the reader knows is gone from every format it
reads, pixels of lossless formats are identical, and lossy data is copied, not re-encoded.

Each generated case first checks that the reader *does* find the metadata in the original
(so a test cannot pass because the fixture carried nothing), then that nothing is left."""

from __future__ import annotations

import io
import json
import os
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from metadata_builders import (
    insert_before_iend,
    png_bytes,
    png_chunk,
    stealth_image,
    to_png,
    user_comment,
    ztxt,
)
from PIL import Image, features

from gentriage.cli import main as cli_main
from library.metadata import read_metadata, read_metadata_file
from library.metadata.containers import collect_texts
from library.metadata.stealth import read_stealth
from library.strip_metadata import (
    StripError,
    flatten_alpha,
    remaining_metadata,
    strip_bytes,
    strip_file,
)

REPO = Path(__file__).resolve().parents[2]
CORPUS = Path(os.environ.get("GENTRIAGE_SAMPLES")
              or REPO.parent / "shared" / "samples" / "metadata")
INFOTEXT = ("a red fox, <lora:fur:0.7>\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, "
            "CFG scale: 7, Seed: 42, Size: 64x48, Model: dream")
COMFY_PROMPT = json.dumps({"3": {"class_type": "KSampler", "inputs": {
    "seed": 7, "steps": 12, "cfg": 5.0, "sampler_name": "euler", "scheduler": "normal",
    "positive": ["6", 0], "negative": ["7", 0], "model": ["4", 0]}},
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "m.safetensors"}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a blue bird"}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "ugly"}}})
XMP = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
       'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
       'xmlns:dc="http://purl.org/dc/elements/1.1/" dc:description="secret prompt"/>'
       '</rdf:RDF></x:xmpmeta>')


def detailed(size: tuple[int, int] = (64, 48), mode: str = "RGB") -> Image.Image:
    """A picture with detail in every channel, so a re-encode would show."""
    rng = np.random.default_rng(7)
    channels = len(mode)
    pixels = rng.integers(0, 256, size=(size[1], size[0], channels), dtype=np.uint8)
    return Image.fromarray(pixels.squeeze(), mode)


def pixels(data: bytes, mode: str = "RGBA") -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert(mode))


def exif_with_text(orientation: int = 1) -> bytes:
    """EXIF with every text tag the reader reads (ComfyUI's WebP prefixes, an A1111
    UserComment) and, when asked, a rotation."""
    exif = Image.Exif()
    exif[0x010E] = 'Workflow: {"1": 2}'
    exif[0x0110] = "prompt: x"
    exif[0x0131] = "ComfyUI"
    if orientation != 1:
        exif[0x0112] = orientation
    exif.get_ifd(0x8769)[0x9286] = user_comment(INFOTEXT)
    return exif.tobytes()


def save(image: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def gif_with_xmp_and_comment() -> bytes:
    plain = save(detailed(mode="RGB").convert("P"), "GIF", comment=b"parameters in a comment")
    xmp = XMP.encode()
    blocks = b"".join(bytes([len(xmp[i:i + 255])]) + xmp[i:i + 255]
                      for i in range(0, len(xmp), 255))
    extension = b"\x21\xff\x0bXMP DataXMP" + blocks + b"\x00"
    return plain[:-1] + extension + plain[-1:]  # before the trailer


def webp_chunks(data: bytes) -> dict[bytes, bytes]:
    found, pos = {}, 12
    while pos + 8 <= len(data):
        fourcc, length = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        found[fourcc] = data[pos + 8:pos + 8 + length]
        pos += 8 + length + (length & 1)
    return found


def png_idat(data: bytes) -> bytes:
    pos, out = 8, b""
    while pos < len(data):
        length, ctype = struct.unpack(">I4s", data[pos:pos + 8])
        if ctype == b"IDAT":
            out += data[pos + 8:pos + 8 + length]
        pos += 12 + length
    return out


def jpeg_scan(data: bytes) -> bytes:
    """Everything from the first SOS marker to EOI: the entropy-coded picture."""
    return data[data.index(b"\xff\xda"):data.rindex(b"\xff\xd9")]


# (builder, keys the reader must find in the original, how pixels must compare)
CASES: dict[str, tuple[Callable[[], bytes], set[str], str]] = {
    "png-text-chunks": (lambda: insert_before_iend(
        png_bytes([("tEXt", "parameters", INFOTEXT), ("iTXt", "prompt", COMFY_PROMPT),
                   ("iTXt-z", "workflow", "{\"nodes\": []}"),
                   ("iTXt", "XML:com.adobe.xmp", XMP)], image=detailed()),
        ztxt("Comment", "{\"prompt\": \"after idat\"}"),
        png_chunk(b"eXIf", exif_with_text()[6:])),
        {"parameters", "prompt", "workflow", "XMP", "Comment", "EXIF:UserComment",
         "EXIF:ImageDescription", "EXIF:Model", "EXIF:Software"}, "idat"),
    "png-stealth-opaque": (lambda: to_png(stealth_image(INFOTEXT, compressed=True)),
                           {"stealth"}, "rgb"),
    "png-stealth-plain-la": (lambda: to_png(stealth_image(INFOTEXT, compressed=False,
                                                          mode="LA")), {"stealth"}, "rgb"),
    "jpeg-exif-xmp-com": (lambda: save(detailed(), "JPEG", quality=90,
                                       exif=exif_with_text(orientation=6), xmp=XMP.encode(),
                                       comment=b"Steps: 20, Seed: 1"),
                          {"EXIF:UserComment", "EXIF:ImageDescription", "XMP",
                           "JPEG:comment"}, "scan"),
    "jpeg-progressive": (lambda: save(detailed(), "JPEG", quality=80, progressive=True,
                                      exif=exif_with_text()),
                         {"EXIF:UserComment"}, "scan"),
    "webp-lossy-exif-xmp": (lambda: save(detailed(), "WEBP", quality=80,
                                         exif=exif_with_text(orientation=3), xmp=XMP.encode()),
                            {"EXIF:UserComment", "EXIF:Model", "XMP"}, "vp8"),
    "webp-lossless-exif": (lambda: save(detailed(mode="RGBA"), "WEBP", lossless=True,
                                        exif=exif_with_text()),
                           {"EXIF:UserComment"}, "exact"),
    "webp-lossless-stealth": (lambda: save(stealth_image(INFOTEXT, compressed=True), "WEBP",
                                           lossless=True, exact=True), {"stealth"}, "rgb"),
    # Pillow (so the reader) sees no text in a GIF; its comment and XMP go all the same.
    "gif-comment-xmp": (gif_with_xmp_and_comment, set(), "exact"),
    "tiff-xmp": (lambda: save(detailed(), "TIFF", compression="tiff_lzw",
                              tiffinfo={700: XMP.encode(), 270: "a prompt"}), {"XMP"}, "exact"),
}


def found_by_reader(data: bytes) -> set[str]:
    with Image.open(io.BytesIO(data)) as im:
        keys = set(collect_texts(im))
        if im.mode in ("RGBA", "LA") and read_stealth(im):
            keys.add("stealth")
    return keys - {"compression"}


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_kind_the_reader_knows_is_removed(case: str) -> None:
    build, expected, compare = CASES[case]
    original = build()
    assert expected <= found_by_reader(original), "the fixture must carry the metadata"

    result = strip_bytes(original)

    assert found_by_reader(result.data) == set()
    assert remaining_metadata(result.data) == []
    with Image.open(io.BytesIO(result.data)) as im:
        assert read_metadata(im).has_parameters is False
    assert result.removed, "the result says what it removed"
    for needle in (b"secret prompt", b"parameters in a comment", b"XMP DataXMP", b"Steps: 20"):
        assert needle not in result.data
    if compare == "idat":
        assert png_idat(result.data) == png_idat(original)
        assert result.pixels_copied
    elif compare == "scan":  # lossy: entropy-coded data copied byte for byte
        assert jpeg_scan(result.data) == jpeg_scan(original)
        assert result.pixels_copied
        assert np.array_equal(pixels(result.data), pixels(original))
    elif compare == "vp8":
        assert webp_chunks(result.data)[b"VP8 "] == webp_chunks(original)[b"VP8 "]
        assert result.pixels_copied
    elif compare == "exact":
        assert np.array_equal(pixels(result.data), pixels(original))
    elif compare == "rgb":  # the stealth carrier: colours exact, alpha within 1
        before, after = pixels(original), pixels(result.data)
        assert np.array_equal(before[..., :3], after[..., :3])
        assert np.abs(before[..., 3].astype(int) - after[..., 3].astype(int)).max() <= 1
        assert result.reencoded and "losslessly" in result.reencoded


def test_exif_orientation_survives_as_the_only_tag() -> None:
    original = CASES["jpeg-exif-xmp-com"][0]()
    result = strip_bytes(original)
    with Image.open(io.BytesIO(result.data)) as im:
        exif = im.getexif()
        assert dict(exif) == {0x0112: 6}
    webp = strip_bytes(CASES["webp-lossy-exif-xmp"][0]())
    with Image.open(io.BytesIO(webp.data)) as im:
        assert dict(im.getexif()) == {0x0112: 3}


def test_real_transparency_with_stealth_keeps_its_alpha_within_one() -> None:
    image = stealth_image(INFOTEXT, compressed=False, size=(64, 64))
    alpha = np.asarray(image.getchannel("A")).copy()
    alpha[:, 30:40] = 100  # half transparent and fully transparent columns, right of
    alpha[:, 40:] = 0  # the columns that hold the payload
    image.putalpha(Image.fromarray(alpha))
    original = to_png(image)
    assert "stealth" in found_by_reader(original)

    result = strip_bytes(original)

    before, after = pixels(original), pixels(result.data)
    assert after.shape[-1] == 4 and Image.open(io.BytesIO(result.data)).mode == "RGBA"
    assert np.array_equal(before[..., :3], after[..., :3])
    assert np.abs(before[..., 3].astype(int) - after[..., 3].astype(int)).max() <= 1
    assert (after[..., 3][before[..., 3] == 0] == 0).all()
    assert remaining_metadata(result.data) == []
    assert "lowest bit" in (result.reencoded or "")


def test_flatten_alpha_keeps_opaque_and_transparent_values() -> None:
    alpha = Image.frombytes("L", (256, 1), bytes(range(256)))
    image = Image.new("RGB", (256, 1), (1, 2, 3))
    image.putalpha(alpha)
    flattened, _how = flatten_alpha(image)
    values = list(flattened.getchannel("A").tobytes())
    assert values[0] == 0 and values[255] == 255
    assert all(abs(v - a) <= 1 and (v & 1) == (v >> 7) for a, v in enumerate(values))


def test_formats_that_cannot_be_cleaned_losslessly_are_refused() -> None:
    if features.check("avif"):
        avif = save(detailed(), "AVIF", exif=exif_with_text())
        with pytest.raises(StripError, match="AVIF"):
            strip_bytes(avif)
    jpeg_tiff = save(detailed(), "TIFF", compression="jpeg")
    with pytest.raises(StripError, match="lossy"):
        strip_bytes(jpeg_tiff)
    with pytest.raises(StripError, match="truncated"):
        strip_bytes(CASES["png-text-chunks"][0]()[:300])
    with pytest.raises(StripError):
        strip_bytes(b"not an image at all")


def test_gentriage_metadata_finds_nothing_in_the_result(tmp_path, capsys) -> None:
    files = []
    for case in sorted(CASES):
        path = tmp_path / f"{case}.bin"
        path.write_bytes(strip_bytes(CASES[case][0]()).data)
        files.append(str(path))
    assert cli_main(["metadata", "--json", *files]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(records) == len(files)
    for record in records:
        assert record["error"] is None
        assert {k: record[k] for k in ("generator", "prompt", "seed", "model")} == {
            "generator": None, "prompt": None, "seed": None, "model": None}


# --- the real-generator corpus ----------------------------------------------------------------

def _corpus() -> list[Path]:
    if not CORPUS.is_dir():
        return []
    return sorted(p for p in CORPUS.glob("*/*")
                  if p.is_file() and not p.name.endswith((".json", ".md")))


@pytest.mark.corpus
@pytest.mark.parametrize("path", _corpus(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_corpus_files_come_out_clean(path: Path) -> None:
    if path.stat().st_size == 0:
        with pytest.raises(StripError):
            strip_file(path)
        return
    result = strip_file(path)
    assert remaining_metadata(result.data) == []
    original = path.read_bytes()
    if result.format in ("PNG", "WEBP") and not result.reencoded:
        assert np.array_equal(pixels(result.data), pixels(original))
    elif result.format in ("PNG", "WEBP"):  # stealth carrier: colours exact
        assert np.array_equal(pixels(result.data, "RGB"), pixels(original, "RGB"))
    elif result.format == "JPEG":
        assert result.pixels_copied
        assert jpeg_scan(result.data) in original


@pytest.mark.corpus
def test_corpus_is_present_or_skipped() -> None:
    if not _corpus():
        pytest.skip(f"metadata corpus not found at {CORPUS} (set GENTRIAGE_SAMPLES)")
    # Every generator family of the corpus had metadata to remove.
    had_metadata = [p for p in _corpus() if p.stat().st_size and read_metadata_file(p).raw]
    assert len(had_metadata) >= 40
