"""Entry points: collect texts, pick the parser, fall back to alpha stealth."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from PIL import Image, PngImagePlugin

from . import a1111, comfyui, containers, drawthings, fooocus, generic, invokeai, novelai, swarmui
from .model import GenerationMetadata, MetadataReadError
from .stealth import has_alpha, read_stealth
from .values import loads_json_dict

log = logging.getLogger(__name__)

# Where an infotext / JSON parameter block may live, in order of preference.
_PARAMETER_SOURCES = ("parameters", "EXIF:UserComment", "JPEG:comment", "Comment",
                      "EXIF:ImageDescription")
STEALTH_KEY = "stealth"


def read_metadata(image: Image.Image) -> GenerationMetadata:
    """Generation metadata of an opened image. Never raises on odd metadata.

    Does not decode pixels, except for the alpha-stealth check: only on images with an
    alpha channel and no other generation metadata.
    """
    try:
        texts = containers.collect_texts(image)
    except Exception as exc:
        log.debug("collecting texts failed: %r", exc)
        texts = {}
    meta = _parse(texts)
    if meta is None and has_alpha(image):
        hidden = read_stealth(image)
        if hidden:
            texts[STEALTH_KEY] = hidden
            meta = _parse(_stealth_texts(hidden))
    if meta is None:
        meta = GenerationMetadata()
    meta.raw = texts
    return meta


def read_metadata_file(path: str | os.PathLike[str]) -> GenerationMetadata:
    """Open, read, close. Raises MetadataReadError when the file is not a readable image."""
    with open_image(path) as image:
        return read_metadata(image)


# --- opening --------------------------------------------------------------------------------

_limit_lock = threading.Lock()
_limit_holders = 0
_saved_text_chunk = PngImagePlugin.MAX_TEXT_CHUNK
RAISED_TEXT_CHUNK = containers.MAX_TEXT_BYTES


@contextmanager
def raised_png_text_limit() -> Iterator[None]:
    """Let Pillow accept compressed PNG text up to 16 MiB for the duration of an open.

    Pillow's limit is a module global (1 MiB by default) and *opening* a PNG whose ComfyUI
    workflow zTXt exceeds it fails outright. We only raise it for the retry of such a file,
    never lower it below what it was, and restore it when the last holder leaves; another
    thread opening a PNG meanwhile merely gets the same bounded, larger limit.
    """
    global _limit_holders, _saved_text_chunk
    with _limit_lock:
        if _limit_holders == 0:
            _saved_text_chunk = PngImagePlugin.MAX_TEXT_CHUNK
            PngImagePlugin.MAX_TEXT_CHUNK = max(PngImagePlugin.MAX_TEXT_CHUNK, RAISED_TEXT_CHUNK)
        _limit_holders += 1
    try:
        yield
    finally:
        with _limit_lock:
            _limit_holders -= 1
            if _limit_holders == 0:
                PngImagePlugin.MAX_TEXT_CHUNK = _saved_text_chunk




def open_image(path: str | os.PathLike[str]) -> Image.Image:
    """Image.open that tolerates large PNG text chunks; MetadataReadError on failure.

    Use it as a context manager (`with open_image(p) as im:`) or close the result. The
    ingest pipeline should open files with this too: with Pillow's default limit, a PNG whose
    ComfyUI workflow compresses past 1 MiB cannot be opened at all.
    """
    name = os.fspath(path) if isinstance(path, (str, bytes, os.PathLike)) else repr(path)
    try:
        return Image.open(path)
    except ValueError as exc:
        if "MAX_TEXT" not in str(exc):
            raise MetadataReadError(f"{name}: not a readable image ({exc})") from exc
    except Image.DecompressionBombError as exc:
        raise MetadataReadError(f"{name}: image too large ({exc})") from exc
    except FileNotFoundError as exc:
        raise MetadataReadError(f"{name}: no such file") from exc
    except Image.UnidentifiedImageError as exc:
        raise MetadataReadError(f"{name}: not an image file") from exc
    except Exception as exc:  # IsADirectoryError, PermissionError, SyntaxError, struct.error...
        raise MetadataReadError(f"{name}: cannot open ({type(exc).__name__}: {exc})") from exc
    try:
        with raised_png_text_limit():
            return Image.open(path)
    except Exception as exc:
        raise MetadataReadError(f"{name}: not a readable image ({exc})") from exc


# --- dispatch -------------------------------------------------------------------------------

def _stealth_texts(hidden: str) -> dict[str, str]:
    """NovelAI hides its whole chunk dict as JSON; A1111 hides the infotext."""
    data = loads_json_dict(hidden)
    if data is not None and any(key in data for key in ("Comment", "Software", "Description")):
        return {str(k): v if isinstance(v, str) else str(v) for k, v in data.items()}
    return {"parameters": hidden}


def _parse(texts: dict[str, str]) -> GenerationMetadata | None:
    for parser in _PARSERS:
        try:
            meta = parser(texts)
        except Exception as exc:  # a parser bug must not hide the other parsers' results
            log.debug("%s failed: %r", parser.__name__, exc, exc_info=True)
            continue
        if meta is not None:
            return meta
    return None


def _json_sources(texts: dict[str, str]) -> Iterator[tuple[str, dict[str, Any]]]:
    for key in _PARAMETER_SOURCES:
        data = loads_json_dict(texts.get(key))
        if data is not None:
            yield key, data


def _parse_swarmui(texts: dict[str, str]) -> GenerationMetadata | None:
    for _key, data in _json_sources(texts):
        if "sui_image_params" in data:
            return swarmui.parse_swarmui(data)
    return None


def _parse_invokeai(texts: dict[str, str]) -> GenerationMetadata | None:
    if "invokeai_metadata" in texts:
        meta = invokeai.parse_invokeai_metadata(texts["invokeai_metadata"])
        if meta is not None:
            return meta
    if "sd-metadata" in texts:
        meta = invokeai.parse_sd_metadata(texts["sd-metadata"])
        if meta is not None:
            return meta
    if "Dream" in texts:
        return invokeai.parse_dream(texts["Dream"])
    return None


def _parse_novelai(texts: dict[str, str]) -> GenerationMetadata | None:
    if texts.get("Software", "").strip().lower() == "novelai":
        return novelai.parse_novelai(texts)
    for key, data in _json_sources(texts):
        if key == "Comment" and novelai.looks_like_comment(data):
            return novelai.parse_novelai(texts)
        if key.startswith("EXIF:"):
            # WebP from NovelAI: UserComment holds either the chunk dict or the Comment JSON.
            if str(data.get("Software", "")).lower() == "novelai":
                return novelai.parse_novelai(_stealth_texts(_dumps(data)))
            if novelai.looks_like_comment(data):
                return novelai.parse_novelai({"Comment": texts[key]})
    return None


def _parse_fooocus(texts: dict[str, str]) -> GenerationMetadata | None:
    data = loads_json_dict(texts.get("parameters"))
    if data is not None and fooocus.is_fooocus(data, texts.get("fooocus_scheme")):
        return fooocus.parse_fooocus(data)
    return None


def _parse_comfyui(texts: dict[str, str]) -> GenerationMetadata | None:
    return comfyui.parse_texts(texts)


def _parse_drawthings(texts: dict[str, str]) -> GenerationMetadata | None:
    return drawthings.parse_drawthings(texts["XMP"]) if "XMP" in texts else None


def _parse_generic_json(texts: dict[str, str]) -> GenerationMetadata | None:
    data = loads_json_dict(texts.get("parameters"))
    if data is not None and generic.looks_generic(data):
        return generic.parse_generic(data)
    return None


def _parse_infotext(texts: dict[str, str]) -> GenerationMetadata | None:
    for key in _PARAMETER_SOURCES:
        if key in texts:
            parsed = a1111.parse_infotext(texts[key])
            if parsed is not None:
                meta, params = parsed
                meta.generator, meta.generator_detail = a1111.family_of(params)
                return meta
    return None


def _dumps(data: dict[str, Any]) -> str:
    return json.dumps(data)


# Order matters: SwarmUI PNGs also carry a ComfyUI graph; ComfyUI saver nodes also write
# (sometimes wrong) A1111-style parameters, and the graph is preferred over them.
_PARSERS: tuple[Callable[[dict[str, str]], GenerationMetadata | None], ...] = (
    _parse_swarmui,
    _parse_invokeai,
    _parse_novelai,
    _parse_fooocus,
    _parse_comfyui,
    _parse_drawthings,
    _parse_generic_json,
    _parse_infotext,
)
