"""The bad-input corpus, generated (no checked-in binaries): one function per case.

Each case writes its file(s) under `root` and returns what a scan must make of them: a list of
`Expected(relative path, status, message fragment)` where status is

- "ok"      — a valid image, indexed (optionally with the size it must be recorded at);
- "broken"  — recorded as broken, its `error` containing the fragment (case-insensitive);
- "absent"  — not a file the library indexes (a symlink loop, a dangling link): the scan must
              simply not record it, and must not hang on it.

Cases are built with Pillow, zlib and struct only, in milliseconds; all of them together are a
few MB (the decompression bomb declares 30000×30000 but holds a few KB).
"""

from __future__ import annotations

import io
import json
import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, PngImagePlugin


@dataclass(frozen=True)
class Expected:
    path: str  # relative to the corpus root, as str (may hold surrogate escapes)
    status: str  # "ok" | "broken" | "absent"
    fragment: str | None = None  # a piece of the user-facing error (broken), or None
    size: tuple[int, int] | None = None  # (width, height) as displayed, for "ok" cases
    fmt: str | None = None  # the detected format for "ok" cases

    def __post_init__(self) -> None:
        assert self.status in ("ok", "broken", "absent"), self.status


Case = Callable[[Path], list[Expected]]
CASES: dict[str, Case] = {}


def case(fn: Case) -> Case:
    CASES[fn.__name__] = fn
    return fn


# ----------------------------------------------------------------------------- helpers

def _picture(size: tuple[int, int] = (64, 48), mode: str = "RGB", seed: int = 0) -> Image.Image:
    """A small picture with real detail (gradients), so every case has distinct bytes."""
    w, h = size
    im = Image.linear_gradient("L").resize(size)
    other = Image.linear_gradient("L").rotate(90).resize(size)
    base = Image.merge("RGB", (im, other, Image.new("L", size, (seed * 37) % 256)))
    return base if mode == "RGB" else base.convert(mode)


def encode(im: Image.Image, fmt: str, **params) -> bytes:
    out = io.BytesIO()
    im.save(out, fmt, **params)
    return out.getvalue()


def png_chunk(ctype: bytes, data: bytes, crc: int | None = None) -> bytes:
    crc = zlib.crc32(ctype + data) if crc is None else crc
    return struct.pack(">I", len(data)) + ctype + data + struct.pack(">I", crc & 0xFFFFFFFF)


def insert_before_idat(png: bytes, *chunks: bytes) -> bytes:
    at = png.index(b"IDAT") - 4
    return png[:at] + b"".join(chunks) + png[at:]


def _write(root: Path, rel: str, data: bytes) -> str:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return rel


def png_with_text(texts: dict[str, str], *, seed: int, itxt: bool = False) -> bytes:
    info = PngImagePlugin.PngInfo()
    for key, value in texts.items():
        if itxt:
            info.add_itxt(key, value)
        else:
            info.add_text(key, value)
    return encode(_picture(seed=seed), "PNG", pnginfo=info)


# ----------------------------------------------------------------------------- cases

@case
def zero_byte(root: Path) -> list[Expected]:
    return [Expected(_write(root, "empty/zero.png", b""), "broken", "empty file"),
            Expected(_write(root, "empty/zero.jpg", b""), "broken", "empty file")]


@case
def truncated_png(root: Path) -> list[Expected]:
    data = encode(_picture((96, 64), seed=1), "PNG")
    idat = data.index(b"IDAT")
    offsets = {"signature": 8, "in_ihdr": 20, "after_ihdr": 33, "in_idat": idat + 40,
               "half": len(data) // 2, "no_iend": len(data) - 12}
    out = []
    for name, cut in offsets.items():
        if name == "no_iend":
            # Every pixel is there, only the end marker is missing: the picture is whole.
            out.append(Expected(_write(root, f"truncated/png_{name}.png", data[:cut]), "ok",
                                size=(96, 64), fmt="PNG"))
            continue
        fragment = "truncated" if name in ("in_idat", "half") else None
        out.append(Expected(_write(root, f"truncated/png_{name}.png", data[:cut]), "broken",
                            fragment))
    return out


@case
def truncated_jpeg(root: Path) -> list[Expected]:
    data = encode(_picture((96, 64), seed=2), "JPEG", quality=90)
    sos = data.index(b"\xff\xda")
    offsets = {"soi_only": 2, "in_tables": 40, "before_scan": sos, "half": len(data) // 2,
               "no_eoi": len(data) - 2}
    # Even a JPEG missing only its end marker is broken: the library never indexes a file a
    # generator may still be writing as if it were whole (library/decode.py).
    return [Expected(_write(root, f"truncated/jpeg_{name}.jpg", data[:cut]), "broken",
                     "truncated" if name in ("half", "no_eoi") else None)
            for name, cut in offsets.items()]


@case
def truncated_webp(root: Path) -> list[Expected]:
    data = encode(_picture((96, 64), seed=3), "WEBP", quality=80)
    offsets = {"riff_only": 12, "in_header": 24, "half": len(data) // 2, "minus_one": len(data) - 1}
    return [Expected(_write(root, f"truncated/webp_{name}.webp", data[:cut]), "broken", None)
            for name, cut in offsets.items()]


@case
def png_bad_crc(root: Path) -> list[Expected]:
    data = bytearray(encode(_picture(seed=4), "PNG"))
    ihdr_crc = 8 + 8 + 13  # signature, length+type, IHDR data
    data[ihdr_crc] ^= 0xFF
    return [Expected(_write(root, "crc/bad_ihdr_crc.png", bytes(data)), "broken", None)]


@case
def text_named_png(root: Path) -> list[Expected]:
    return [Expected(_write(root, "names/readme.png", b"this is plain text, not a picture\n" * 4),
                     "broken", "not a supported image")]


@case
def png_named_jpg(root: Path) -> list[Expected]:
    return [Expected(_write(root, "names/really_a_png.jpg", encode(_picture(seed=5), "PNG")),
                     "ok", size=(64, 48), fmt="PNG")]


@case
def decompression_bomb(root: Path) -> list[Expected]:
    """30000×30000 declared (900 MP), a few KB on disk: refused before decoding."""
    ihdr = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    row = b"\0" + b"\0" * (30000 * 3)
    idat = zlib.compress(row * 4, 9)  # a little real data; the rest would be missing
    data = (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat)
            + png_chunk(b"IEND", b""))
    return [Expected(_write(root, "bomb/bomb_30000.png", data), "broken", "too large")]


@case
def extreme_sizes(root: Path) -> list[Expected]:
    tiny = encode(Image.new("RGB", (1, 1), (200, 10, 10)), "PNG")
    strip = encode(_picture((20000, 200), seed=6), "PNG", compress_level=1)
    return [Expected(_write(root, "sizes/one_by_one.png", tiny), "ok", size=(1, 1), fmt="PNG"),
            Expected(_write(root, "sizes/strip_20000x200.png", strip), "ok", size=(20000, 200),
                     fmt="PNG")]


@case
def unusual_modes(root: Path) -> list[Expected]:
    cmyk = encode(_picture(seed=7, mode="CMYK"), "JPEG", quality=90)
    grey16 = Image.new("I;16", (64, 48))
    grey16.frombytes(bytes(range(256)) * (64 * 48 * 2 // 256))
    palette = _picture(seed=8).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette_png = encode(palette, "PNG", transparency=0)
    la = encode(_picture(seed=9, mode="LA"), "PNG")
    return [Expected(_write(root, "modes/cmyk.jpg", cmyk), "ok", size=(64, 48), fmt="JPEG"),
            Expected(_write(root, "modes/grey16.png", encode(grey16, "PNG")), "ok",
                     size=(64, 48), fmt="PNG"),
            Expected(_write(root, "modes/palette_transparent.png", palette_png), "ok",
                     size=(64, 48), fmt="PNG"),
            Expected(_write(root, "modes/grey_alpha.png", la), "ok", size=(64, 48), fmt="PNG")]


@case
def animated(root: Path) -> list[Expected]:
    frames = [_picture((40, 30), seed=s) for s in range(10, 14)]
    gif = io.BytesIO()
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    webp = io.BytesIO()
    frames[0].save(webp, "WEBP", save_all=True, append_images=frames[1:], duration=50, loop=0)
    return [Expected(_write(root, "animated/anim.gif", gif.getvalue()), "ok", size=(40, 30),
                     fmt="GIF"),
            Expected(_write(root, "animated/anim.webp", webp.getvalue()), "ok", size=(40, 30),
                     fmt="WEBP")]


@case
def exif_rotated(root: Path) -> list[Expected]:
    out = []
    for orientation in (3, 6, 8):
        exif = Image.Exif()
        exif[0x0112] = orientation
        data = encode(_picture((80, 40), seed=20 + orientation), "JPEG", exif=exif.tobytes())
        size = (40, 80) if orientation in (6, 8) else (80, 40)
        out.append(Expected(_write(root, f"exif/orientation_{orientation}.jpg", data), "ok",
                            size=size, fmt="JPEG"))
    # An orientation value outside 1..8 and a garbage EXIF block: the picture is still fine.
    exif = Image.Exif()
    exif[0x0112] = 77
    out.append(Expected(_write(root, "exif/orientation_77.jpg",
                               encode(_picture((80, 40), seed=30), "JPEG", exif=exif.tobytes())),
                        "ok", size=(80, 40), fmt="JPEG"))
    out.append(Expected(_write(root, "exif/garbage_exif.jpg",
                               encode(_picture((80, 40), seed=31), "JPEG",
                                      exif=b"Exif\0\0MM\0*\0\0\0\x08\xff\xff" + b"\x01" * 40)),
                        "ok", size=(80, 40), fmt="JPEG"))
    return out


@case
def oversized_text_chunk(root: Path) -> list[Expected]:
    """A ComfyUI-style workflow of 3 MB (over Pillow's 1 MiB default limit, within ours) as
    zTXt, and a 2 MB uncompressed tEXt: both valid images with big metadata."""
    workflow = json.dumps({"nodes": [{"id": i, "type": "Note", "widgets_values": ["x" * 300]}
                                     for i in range(10_000)]})
    ztxt = png_chunk(b"zTXt", b"workflow\0\0" + zlib.compress(workflow.encode()))
    big_text = png_chunk(b"tEXt", b"parameters\0" + b"a very long prompt, " * 100_000)
    base = encode(_picture(seed=40), "PNG")
    return [Expected(_write(root, "text/big_ztxt.png", insert_before_idat(base, ztxt)), "ok",
                     size=(64, 48), fmt="PNG"),
            Expected(_write(root, "text/big_text.png",
                            insert_before_idat(encode(_picture(seed=41), "PNG"), big_text)),
                     "ok", size=(64, 48), fmt="PNG")]


@case
def malformed_text_chunk(root: Path) -> list[Expected]:
    """Text chunks that break their own rules; the pixels are fine, so the image is ok."""
    chunks = {
        "no_separator": png_chunk(b"tEXt", b"parameters without a null separator"),
        "bad_zlib": png_chunk(b"zTXt", b"parameters\0\0" + b"\x78\x9cnot zlib at all"),
        "bad_itxt_flag": png_chunk(b"iTXt", b"parameters\0\x07\x00\0\0oops"),
        "empty_key": png_chunk(b"tEXt", b"\0value with an empty key"),
        "huge_declared": struct.pack(">I", 0x7FFFFFF0) + b"tEXt" + b"parameters\0abc",
    }
    out = []
    for i, (name, chunk) in enumerate(chunks.items()):
        data = insert_before_idat(encode(_picture(seed=50 + i), "PNG"), chunk)
        # A chunk whose declared length runs past the end of the file swallows the pixel data:
        # that one is a damaged file, not odd metadata.
        status = "broken" if name == "huge_declared" else "ok"
        out.append(Expected(_write(root, f"text/malformed_{name}.png", data), status, None,
                            size=(64, 48) if status == "ok" else None))
    return out


@case
def invalid_encodings(root: Path) -> list[Expected]:
    """Invalid UTF-8 in iTXt; invalid UTF-16 (lone surrogate, odd length) in EXIF UserComment."""
    bad_utf8 = png_chunk(b"iTXt", b"parameters\0\0\0\0\0a prompt \xff\xfe\xc3\x28 invalid utf-8")
    latin1 = png_chunk(b"tEXt", b"parameters\0caf\xe9 cr\xe8me, Steps: 20, Seed: 1")
    out = [
        Expected(_write(root, "encoding/bad_utf8_itxt.png",
                        insert_before_idat(encode(_picture(seed=60), "PNG"), bad_utf8)), "ok",
                 size=(64, 48), fmt="PNG"),
        Expected(_write(root, "encoding/latin1_text.png",
                        insert_before_idat(encode(_picture(seed=61), "PNG"), latin1)), "ok",
                 size=(64, 48), fmt="PNG"),
    ]
    for name, body in {"lone_surrogate": "a prompt ".encode("utf-16-be") + b"\xd8\x00\x00a",
                       "odd_length": "a prompt".encode("utf-16-le") + b"\x41"}.items():
        exif = Image.Exif()
        exif.get_ifd(0x8769)[0x9286] = b"UNICODE\0" + body  # UserComment
        data = encode(_picture((64, 48), seed=62 + len(name)), "JPEG", exif=exif.tobytes())
        out.append(Expected(_write(root, f"encoding/usercomment_{name}.jpg", data), "ok",
                            size=(64, 48), fmt="JPEG"))
    return out


def _comfy_png(graph_text: str, seed: int) -> bytes:
    return png_with_text({"prompt": graph_text}, seed=seed)


@case
def hostile_comfyui_graphs(root: Path) -> list[Expected]:
    """A 3000-node chain, a cycle through a sampler's inputs, a self-loop, and JSON nested
    50 000 levels deep: parsing must end (no recursion error, no endless loop)."""
    chain: dict[str, dict] = {"0": {"class_type": "CheckpointLoaderSimple",
                                    "inputs": {"ckpt_name": "base.safetensors"}}}
    for i in range(1, 3000):
        chain[str(i)] = {"class_type": "LoraLoader",
                         "inputs": {"model": [str(i - 1), 0], "clip": [str(i - 1), 1],
                                    "lora_name": f"l{i}.safetensors", "strength_model": 1.0}}
    chain["s"] = {"class_type": "KSampler",
                  "inputs": {"model": ["2999", 0], "positive": ["p", 0], "negative": ["p", 0],
                             "seed": 1, "steps": 20, "cfg": 7, "sampler_name": "euler",
                             "scheduler": "normal", "latent_image": ["s", 0]}}
    chain["p"] = {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["0", 1]}}
    cyclic = {
        "1": {"class_type": "KSampler",
              "inputs": {"model": ["2", 0], "positive": ["3", 0], "negative": ["3", 0],
                         "seed": 5, "steps": 10, "cfg": 6, "sampler_name": "euler",
                         "scheduler": "normal", "latent_image": ["1", 0]}},
        "2": {"class_type": "LoraLoader", "inputs": {"model": ["2", 0], "clip": ["3", 0],
                                                     "lora_name": "x"}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": ["3", 0], "clip": ["2", 1]}},
    }
    deep = "[" * 50_000 + "]" * 50_000
    deep_dict = '{"a":' * 20_000 + "1" + "}" * 20_000
    return [
        Expected(_write(root, "comfy/long_chain.png", _comfy_png(json.dumps(chain), 70)), "ok",
                 size=(64, 48), fmt="PNG"),
        Expected(_write(root, "comfy/cyclic.png", _comfy_png(json.dumps(cyclic), 71)), "ok",
                 size=(64, 48), fmt="PNG"),
        Expected(_write(root, "comfy/deep_list.png", _comfy_png(deep, 72)), "ok",
                 size=(64, 48), fmt="PNG"),
        Expected(_write(root, "comfy/deep_dict.png",
                        png_with_text({"workflow": deep_dict, "prompt": deep_dict}, seed=73)),
                 "ok", size=(64, 48), fmt="PNG"),
    ]


@case
def awkward_names(root: Path) -> list[Expected]:
    """A name that is not valid UTF-8 (stored escaped, recorded broken with a reason) and a
    255-byte name of multi-byte characters (indexed)."""
    folder = root / "names"
    folder.mkdir(parents=True, exist_ok=True)
    raw = os.fsencode(folder) + b"/caf\xe9_\xff.png"
    with open(raw, "wb") as f:
        f.write(encode(_picture(seed=80), "PNG"))
    long_name = "é" * 125 + ".png"  # 250 + 4 bytes
    assert len(long_name.encode()) <= 255
    rel_raw = os.fsdecode(raw)[len(str(root)) + 1:]
    return [Expected(rel_raw, "broken", "not valid UTF-8"),
            Expected(_write(root, f"names/{long_name}", encode(_picture(seed=81), "PNG")), "ok",
                     size=(64, 48), fmt="PNG")]


@case
def symlinks(root: Path) -> list[Expected]:
    """A folder link back to its parent (a loop), a file link loop, a dangling link, and a
    good link to a real file (indexed under the link's own path)."""
    folder = root / "links"
    folder.mkdir(parents=True, exist_ok=True)
    real = _write(root, "links/real.png", encode(_picture(seed=90), "PNG"))
    os.symlink("..", folder / "loop_dir")
    os.symlink("b.png", folder / "a.png")
    os.symlink("a.png", folder / "b.png")
    os.symlink("does_not_exist.png", folder / "dangling.png")
    os.symlink("real.png", folder / "alias.png")
    return [Expected(real, "ok", size=(64, 48), fmt="PNG"),
            Expected("links/alias.png", "ok", size=(64, 48), fmt="PNG"),
            Expected("links/a.png", "absent"), Expected("links/b.png", "absent"),
            Expected("links/dangling.png", "absent")]


@case
def not_a_regular_file(root: Path) -> list[Expected]:
    """A FIFO and a folder with image names: never opened (a FIFO would block a read)."""
    folder = root / "special"
    folder.mkdir(parents=True, exist_ok=True)
    os.mkfifo(folder / "pipe.png")
    (folder / "folder.png").mkdir()
    good = _write(root, "special/folder.png/inside.png", encode(_picture(seed=91), "PNG"))
    return [Expected("special/pipe.png", "absent"), Expected("special/folder.png", "absent"),
            Expected(good, "ok", size=(64, 48), fmt="PNG")]


@case
def good_files(root: Path) -> list[Expected]:
    """Plain valid images in each format among the bad ones: all must be indexed."""
    out = []
    for i, (fmt, ext) in enumerate([("PNG", "png"), ("JPEG", "jpg"), ("WEBP", "webp"),
                                    ("GIF", "gif"), ("BMP", "bmp"), ("TIFF", "tif")]):
        data = encode(_picture((50, 40), seed=100 + i), fmt)
        out.append(Expected(_write(root, f"good/good_{i}.{ext}", data), "ok", size=(50, 40),
                            fmt=fmt))
    return out


def build(root: Path, names: list[str] | None = None) -> list[Expected]:
    """Write every case (or `names`) under `root`; returns all expectations."""
    root.mkdir(parents=True, exist_ok=True)
    expected: list[Expected] = []
    for name, fn in CASES.items():
        if names is None or name in names:
            expected += fn(root)
    return expected
