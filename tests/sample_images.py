"""Generated test images in every indexed format, with or without generation metadata.

Shared by every suite (tests/conftest.py's folder is on sys.path): `from sample_images import
write_image, image_bytes, A1111_PARAMETERS`.

Every image is distinct for a distinct `seed` (distinct bytes → distinct content hash), small
by default so tests stay fast, and made with Pillow only.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

from PIL import Image, PngImagePlugin, features

A1111_PARAMETERS = (
    "a lighthouse on a cliff, sunset, highly detailed <lora:film_grain_v2:0.6>\n"
    "Negative prompt: blurry, watermark\n"
    "Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, "
    "Seed: 18446744073709551615, Size: 64x48, Model hash: 31e35c80fc, Model: sd_xl_base_1.0, "
    "Version: v1.10.1"
)

# Format name (Pillow) → file suffix used by `write_image` when no path suffix is given.
SUFFIX_FOR = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "GIF": ".gif", "BMP": ".bmp",
              "TIFF": ".tiff", "AVIF": ".avif"}
FORMAT_FOR_SUFFIX = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP",
                     ".gif": "GIF", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF",
                     ".avif": "AVIF"}
_USER_COMMENT, _EXIF_IFD, _ORIENTATION = 0x9286, 0x8769, 0x0112


def format_supported(fmt: str) -> bool:
    """Whether this Pillow build writes and reads `fmt` (AVIF and WebP are optional)."""
    feature = {"WEBP": "webp", "AVIF": "avif"}.get(fmt)
    return feature is None or bool(features.check(feature))


def picture(size: tuple[int, int] = (64, 48), seed: int | str = 0, mode: str = "RGB") -> Image.Image:
    """A deterministic picture that differs for every seed (hash-derived pixels)."""
    width, height = size
    digest = hashlib.sha256(str(seed).encode()).digest()
    bands = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}
    raw_mode = mode if mode in bands else "RGB"
    need = width * height * bands[raw_mode]
    pixels = (digest * (need // len(digest) + 1))[:need]
    im = Image.frombytes(raw_mode, size, pixels)
    return im if raw_mode == mode else im.convert(mode)


def noise_picture(size: tuple[int, int] = (1024, 1024), seed: int = 0) -> Image.Image:
    """Smooth shapes plus grain: compresses like a real generated image (a 1024² PNG is
    ~2 MB), unlike flat colour (too small) or pure noise (incompressible)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (size[1] // 16, size[0] // 16, 3), dtype=np.uint8)
    smooth = np.asarray(Image.fromarray(base).resize(size, Image.Resampling.BICUBIC), np.int16)
    grain = rng.integers(-12, 13, smooth.shape, dtype=np.int16)
    return Image.fromarray((smooth + grain).clip(0, 255).astype(np.uint8))


def _user_comment(text: str) -> bytes:
    return b"UNICODE\x00" + text.encode("utf-16-be")  # how A1111 writes JPEG/WebP metadata


def image_bytes(fmt: str = "PNG", *, size: tuple[int, int] = (64, 48), seed: int | str = 0,
                mode: str = "RGB", parameters: str | None = None,
                orientation: int | None = None, animated: bool = False,
                image: Image.Image | None = None) -> bytes:
    """Encoded image bytes.

    parameters: A1111-style generation text (PNG tEXt "parameters"; EXIF UserComment in
    JPEG/WebP/AVIF/TIFF). orientation: EXIF orientation tag (1–8). animated: two frames
    (GIF/WebP/PNG), the first being the picture.
    """
    im = image if image is not None else picture(size, seed, mode)
    out = io.BytesIO()
    kwargs: dict = {}
    exif = Image.Exif()
    if orientation is not None:
        exif[_ORIENTATION] = orientation
    if parameters is not None and fmt != "PNG":
        exif.get_ifd(_EXIF_IFD)[_USER_COMMENT] = _user_comment(parameters)
    if len(exif) or (parameters is not None and fmt != "PNG"):
        kwargs["exif"] = exif.tobytes()
    if fmt == "PNG" and parameters is not None:
        info = PngImagePlugin.PngInfo()
        info.add_text("parameters", parameters)
        kwargs["pnginfo"] = info
    if fmt == "JPEG" and im.mode not in ("RGB", "L", "CMYK"):
        im = im.convert("RGB")
    if fmt == "BMP":
        kwargs.pop("exif", None)  # BMP has no EXIF
    if animated:
        second = picture(im.size, f"{seed}-frame2", im.mode)
        kwargs.update(save_all=True, append_images=[second], duration=100, loop=0)
    im.save(out, fmt, **kwargs)
    return out.getvalue()


def write_image(path: str | os.PathLike[str], fmt: str | None = None, **kwargs) -> Path:
    """Write an image (format from `fmt`, else from the suffix); parents are created.
    Keyword arguments as for `image_bytes`."""
    path = Path(path)
    fmt = fmt or FORMAT_FOR_SUFFIX[path.suffix.lower()]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(image_bytes(fmt, **kwargs))
    return path


def sha256_of(path: str | os.PathLike[str]) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
