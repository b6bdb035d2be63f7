"""Ingest one file: read its bytes once → SHA-256 → decode once → metadata → thumbnail and
perceptual hash (both from the one decoded picture) → stack key (from the metadata).

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
import stat
from dataclasses import dataclass
from typing import TYPE_CHECKING

from library.decode import DecodeError, decode_bytes
from library.families import perceptual_hash, stack_key_of, to_signed64
from library.thumbnails import ThumbnailCache

if TYPE_CHECKING:
    from library.metadata import GenerationMetadata

# Nothing a generator writes comes near this; a larger "image" is read as broken rather than
# pulled whole into memory.
MAX_FILE_BYTES = 512 * 1024 * 1024


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
    vanished: bool = False  # deleted (or replaced by a non-file) before it could be read
    thumbnail_error: str | None = None  # the image is fine; only its thumbnail was not written
    stack_key: str | None = None  # library.families: None without a prompt
    phash: int | None = None  # perceptual hash, signed 64-bit as stored; None if not computed

    @property
    def ok(self) -> bool:
        return self.sha256 is not None and self.error is None and not self.vanished


def _read(path: str) -> tuple[bytes, os.stat_result]:
    # O_NONBLOCK: a file swapped for a FIFO after listing would otherwise block open() forever;
    # on a regular file the flag changes nothing, and the S_ISREG check below rejects the rest.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with open(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise IsADirectoryError(errno.EISDIR, "not a regular file", path)
        if info.st_size > MAX_FILE_BYTES:
            raise OSError(errno.EFBIG, f"file too large ({info.st_size} bytes)", path)
        data = f.read()
        after = os.fstat(f.fileno())  # the values that match the bytes actually read
    return data, after


def _read_error_message(exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    if exc.errno == errno.ENAMETOOLONG:
        return f"cannot read file: its name or path is too long ({reason})"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"cannot read file: permission denied ({reason})"
    return f"cannot read file: {reason}"


def ingest_file(path: str, thumbnails: ThumbnailCache | None = None) -> IngestResult:
    """Everything the library records about `path` (see the module doc)."""
    try:
        data, info = _read(path)
    except FileNotFoundError:
        return IngestResult(path, vanished=True)
    except IsADirectoryError:
        return IngestResult(path, vanished=True)
    except OSError as exc:
        size, mtime_ns = stat_or_zero(path)
        return IngestResult(path, size, mtime_ns, error=_read_error_message(exc))

    result = IngestResult(path, len(data), info.st_mtime_ns)
    sha256 = hashlib.sha256(data).hexdigest()  # the content's identity
    try:
        decoded = decode_bytes(data)
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
    return result


def ingest_many(paths: list[str], thumbnails: ThumbnailCache | None = None) -> list[IngestResult]:
    """One task for a worker: several small files per round trip keeps pool overhead low."""
    return [ingest_file(path, thumbnails) for path in paths]


def stat_or_zero(path: str) -> tuple[int, int]:
    """(size, mtime_ns) of `path`, or (0, 0) when it cannot be stat'ed (for error rows)."""
    try:
        info = os.stat(path)
        return info.st_size, info.st_mtime_ns
    except OSError:
        return 0, 0
