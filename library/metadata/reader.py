"""Entry points: collect texts, pick the parser, fall back to alpha stealth."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO

from PIL import Image, PngImagePlugin

from library.paths import storable_text
from library.user_files import NotARegularFileError, open_regular_file

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
    except Exception as exc:  # noqa: BLE001 - documented never to raise on odd metadata
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
    return _valid_unicode(meta)


def _valid_unicode(meta: GenerationMetadata) -> GenerationMetadata:
    """Replace lone surrogates (JSON may spell one, `"\\ud800"`) in every text field: the
    database, the terminal and JSON output need valid Unicode (library.paths.storable_text)."""
    for field in dataclasses.fields(meta):
        value = getattr(meta, field.name)
        if isinstance(value, str):
            setattr(meta, field.name, storable_text(value))
    for lora in meta.loras:
        lora.name = storable_text(lora.name)
    meta.raw = {storable_text(k): storable_text(v) for k, v in meta.raw.items()}
    return meta


def read_metadata_file(path: str | os.PathLike[str]) -> GenerationMetadata:
    """Open, read, close. Raises MetadataReadError when the file is not a readable image
    (including when it is a pipe or a folder: never blocks, library.user_files)."""
    name = storable_text(os.fsdecode(path))
    try:
        handle = open_regular_file(path)
    except FileNotFoundError as exc:
        raise MetadataReadError(f"{name}: no such file") from exc
    except NotARegularFileError as exc:
        raise MetadataReadError(f"{name}: {exc.strerror}") from exc
    except OSError as exc:
        raise MetadataReadError(f"{name}: cannot open ({exc.strerror or exc})") from exc
    with handle, open_image(handle, name) as image:
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


def open_image(source: str | os.PathLike[str] | BinaryIO,
               name: str | None = None) -> Image.Image:
    """Image.open that tolerates large PNG text chunks; MetadataReadError on failure.

    `source` is a path or a binary file (read_metadata_file passes one opened by
    library.user_files, so a pipe never blocks); `name` is how messages call it. Use the
    result as a context manager (`with open_image(p) as im:`) or close it. The ingest
    pipeline should open files with this too: with Pillow's default limit, a PNG whose
    ComfyUI workflow compresses past 1 MiB cannot be opened at all.
    """
    if name is None:
        name = storable_text(os.fsdecode(source)) if isinstance(
            source, (str, bytes, os.PathLike)) else repr(source)
    start = source.tell() if hasattr(source, "tell") else 0
    try:
        return Image.open(source)
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
        if hasattr(source, "seek"):
            source.seek(start)
        with raised_png_text_limit():
            return Image.open(source)
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
