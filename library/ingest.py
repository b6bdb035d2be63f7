"""Ingest one file: read its bytes once → SHA-256 → decode once → metadata → thumbnail and
perceptual hash (both from the one decoded picture) → stack key (from the metadata).

Given a `PictureHandoff` (library.handoff), the file is decoded by the analysers' rules and
their picture is offered there, so the analysis that follows does not decode it again.

`ingest_file` touches no database: it runs in worker processes or threads and returns a plain,
picklable `IngestResult` that the single DB writer (library.scan) records with db.store.
It never raises for a bad file: every failure is a result with a user-facing `error`.

This module deliberately imports neither SQLAlchemy nor db/: worker processes import it, and
keeping them light makes a pool start in a fraction of a second.
"""

from __future__ import annotations

import errno
import hashlib
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from inference.decoding import MAX_FILE_BYTES, read_regular_file
from library.decode import DecodeError, decode_bytes
from library.families import perceptual_hash, stack_key_of, to_signed64
from library.thumbnails import ThumbnailCache

if TYPE_CHECKING:
    from library.handoff import PictureHandoff
    from library.metadata import GenerationMetadata

__all__ = ["MAX_FILE_BYTES", "IngestResult", "ingest_file", "ingest_many", "stat_or_zero"]


@dataclass
class IngestResult:
    path: str
    size: int = 0
    mtime_ns: int = 0
    sha256: str | None = None  # set (with the fields below) when the file is a readable image
    width: int | None = None
    height: int | None = None
    format: str | None = None
    metadata: GenerationMetadata | None = None
    has_thumbnail: bool = False
    error: str | None = None  # set when the file exists but cannot be indexed (→ broken)
    vanished: bool = False  # deleted before it could be read (→ missing)
    thumbnail_error: str | None = None  # the image is fine; only its thumbnail was not written
    stack_key: str | None = None  # library.families: None without a prompt
    phash: int | None = None  # perceptual hash, signed 64-bit as stored; None if not computed

    @property
    def ok(self) -> bool:
        return self.sha256 is not None and self.error is None and not self.vanished


NOT_A_FILE = "not a regular file (a folder, pipe or device now has this name)"


def _read(path: str) -> tuple[bytes, os.stat_result]:
    # One reader for ingest and analysis (inference.decoding): never blocks on a FIFO, refuses
    # non-regular files and anything past MAX_FILE_BYTES.
    return read_regular_file(path)


def _read_error_message(exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    if exc.errno == errno.ENAMETOOLONG:
        return f"cannot read file: its name or path is too long ({reason})"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"cannot read file: permission denied ({reason})"
    return f"cannot read file: {reason}"


def ingest_file(path: str, thumbnails: ThumbnailCache | None = None,
                pictures: PictureHandoff | None = None) -> IngestResult:
    """Everything the library records about `path` (see the module doc)."""
    try:
        data, info = _read(path)
    except FileNotFoundError:
        return IngestResult(path, vanished=True)
    except IsADirectoryError:
        # Something that is not a file now stands at the path (a folder, a FIFO): the file
        # is not gone, it is unusable — broken, with the reason, not missing.
        size, mtime_ns = stat_or_zero(path)
        return IngestResult(path, size, mtime_ns, error=NOT_A_FILE)
    except OSError as exc:
        size, mtime_ns = stat_or_zero(path)
        return IngestResult(path, size, mtime_ns, error=_read_error_message(exc))

    result = IngestResult(path, len(data), info.st_mtime_ns)
    sha256 = hashlib.sha256(data).hexdigest()  # the content's identity
    hand_on = pictures is not None and pictures.wanted  # an analysis will take the picture
    try:
        decoded = decode_bytes(data, for_analysis=hand_on)
    except DecodeError as exc:
        result.error = str(exc)
        return result
    except Exception as exc:  # noqa: BLE001 - a Pillow bug on one file must not stop a scan
        result.error = f"unexpected error while decoding: {type(exc).__name__}: {exc}"
        return result
    del data

    has_thumbnail = False
    if thumbnails is not None:
        if thumbnails.has(sha256):
            has_thumbnail = True  # a copy of a known picture, or re-read after a touch
        else:
            try:
                outcome = thumbnails.save(sha256, thumbnails.make_from(decoded.image))
                has_thumbnail, result.thumbnail_error = outcome.ok, outcome.error
            except Exception as exc:  # noqa: BLE001
                result.thumbnail_error = f"cannot make thumbnail: {type(exc).__name__}: {exc}"

    try:
        # From the picture decoded above for the thumbnail: hashing never decodes again.
        result.phash = to_signed64(perceptual_hash(decoded.image))
    except Exception:  # noqa: BLE001 - a missing hash only leaves the picture ungrouped
        result.phash = None
    result.stack_key = stack_key_of(decoded.metadata)
    result.sha256, result.has_thumbnail, result.metadata = sha256, has_thumbnail, decoded.metadata
    result.width, result.height, result.format = decoded.width, decoded.height, decoded.format
    if hand_on and pictures is not None and decoded.analysis is not None:
        pictures.offer(sha256, decoded.analysis)
    return result


def ingest_many(paths: list[str], thumbnails: ThumbnailCache | None = None,
                pictures: PictureHandoff | None = None) -> list[IngestResult]:
    """One task for a worker: several small files per round trip keeps pool overhead low."""
    return [ingest_file(path, thumbnails, pictures) for path in paths]


def stat_or_zero(path: str) -> tuple[int, int]:
    """(size, mtime_ns) of `path`, or (0, 0) when it cannot be stat'ed (for error rows)."""
    try:
        info = os.stat(path)
        return info.st_size, info.st_mtime_ns
    except OSError:
        return 0, 0
