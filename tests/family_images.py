"""Pictures for the families tests: real photos (scikit-image's bundled samples) and
random-but-structured synthetic pictures, each turned into the copies a near-duplicate
detector must recognise (JPEG q70, half size, +8 % brightness, WebP), and PNGs carrying
A1111 generation metadata for stacks.

Shared by every suite (tests/conftest.py's folder is on sys.path): `from family_images
import photo, structured, variants, generated_png`.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, PngImagePlugin

# scikit-image samples that are photographs or photo-like (bundled, no download). Flat
# symmetric graphics (its checkerboard, the Shepp-Logan phantom) are left out on purpose:
# their low DCT frequencies are all near zero, so a DCT hash is unstable on them (README).
PHOTOS = ("astronaut", "camera", "chelsea", "coffee", "rocket", "coins", "moon", "horse",
          "immunohistochemistry", "hubble_deep_field", "brick", "grass", "gravel", "clock",
          "page", "text", "colorwheel", "retina", "logo", "binary_blobs")
VARIANTS = ("png", "jpeg70", "half", "bright8", "webp")


def photo(name: str, long_side: int = 768) -> Image.Image:
    """A scikit-image sample as an RGB picture of generator-like size."""
    import skimage.data

    array = getattr(skimage.data, name)()
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    image = Image.fromarray(array).convert("RGB")
    scale = long_side / max(image.size)
    return image.resize((round(image.width * scale), round(image.height * scale)),
                        Image.Resampling.LANCZOS)


def structured(seed: int, size: tuple[int, int] = (768, 768)) -> Image.Image:
    """A random but structured picture: a smooth colour field with a few soft shapes."""
    rng = np.random.default_rng(seed)
    width, height = size
    field = (rng.random((6, 6, 3)) * 255).astype(np.uint8)
    image = Image.fromarray(field).resize(size, Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(3, 9))):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        x1, y1 = x0 + int(rng.integers(40, 400)), y0 + int(rng.integers(40, 400))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape([x0, y0, x1, y1], fill=colour)
    return image.filter(ImageFilter.GaussianBlur(2))


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def variants(image: Image.Image) -> dict[str, tuple[str, bytes]]:
    """name -> (file suffix, bytes): the original PNG and its four kinds of copy."""
    half = image.resize((image.width // 2, image.height // 2), Image.Resampling.LANCZOS)
    brighter = ImageEnhance.Brightness(image).enhance(1.08)
    return {
        "png": (".png", encode(image, "PNG")),
        "jpeg70": (".jpg", encode(image, "JPEG", quality=70)),
        "half": (".png", encode(half, "PNG")),
        "bright8": (".png", encode(brighter, "PNG")),
        "webp": (".webp", encode(image, "WEBP")),
    }


def a1111_text(prompt: str, negative: str, model: str, seed: int, steps: int = 20) -> str:
    return (f"{prompt}\nNegative prompt: {negative}\nSteps: {steps}, Sampler: Euler a, "
            f"CFG scale: 7, Seed: {seed}, Size: 64x64, Model: {model}")


def generated_png(image: Image.Image, prompt: str | None, negative: str = "blurry",
                  model: str = "sd_xl_base_1.0", seed: int = 1, steps: int = 20) -> bytes:
    """PNG bytes with A1111 "parameters" (none when `prompt` is None)."""
    info = None
    if prompt is not None:
        info = PngImagePlugin.PngInfo()
        info.add_text("parameters", a1111_text(prompt, negative, model, seed, steps))
    out = io.BytesIO()
    image.save(out, "PNG", pnginfo=info)
    return out.getvalue()
