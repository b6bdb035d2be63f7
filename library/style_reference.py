"""The reference style of the report's style loss: the mean Gram matrices of a folder of
pictures (say, a style LoRA's showcase images, or a set of watercolours), computed with the
same `style` analyser (and weights) that made the library's Grams. Imports torch when used."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from library.report import StyleReference

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"})


class StyleReferenceError(Exception):
    """The reference cannot be computed; the message says why and what to do."""


def reference_files(folder: Path) -> list[Path]:
    """Image files in `folder` and below, by path."""
    if not folder.is_dir():
        raise StyleReferenceError(f"style reference {folder} is not a folder")
    return sorted(p for p in folder.rglob("*")
                  if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def load_style_analyser(models_dir: Path, device: str = "auto") -> Any:
    """The loaded `style` analyser, or StyleReferenceError saying how to get its weights."""
    from inference.device import resolve_device
    from inference.registry import analyser_class
    from inference.weights import READY, WeightsError, discover

    (status,) = discover(models_dir, ["style"])
    if status.status != READY:
        raise StyleReferenceError(f"the style analyser is {status.status}: {status.message}; "
                                  f"{status.how_to_get}")
    analyser = analyser_class("style")(status, resolve_device(device))
    try:
        analyser.load()
    except (WeightsError, OSError) as exc:
        raise StyleReferenceError(f"the style analyser failed to load: {exc}") from exc
    return analyser


def compute_reference(folder: Path, analyser: Any,
                      on_skipped: Callable[[Path, str], None] | None = None) -> StyleReference:
    """Mean Gram matrices of every readable picture under `folder`. Unreadable files are
    reported to `on_skipped` and left out; none readable is a StyleReferenceError."""
    from inference.preprocess import DecodeError, decode
    from inference.style_gram import GramMean, unpack
    from inference.types import Job

    mean = GramMean()
    for number, path in enumerate(reference_files(folder)):
        try:
            tensor = analyser.preprocess(decode(path))
        except DecodeError as exc:
            if on_skipped is not None:
                on_skipped(path, str(exc))
            continue
        (output,) = analyser.predict([tensor], [Job(number, str(path))])
        mean.add(unpack(output.payload))
    if not mean.count:
        raise StyleReferenceError(f"no readable pictures in the style reference {folder}")
    return StyleReference(str(folder), mean.mean(), analyser.version, mean.count)
