"""The on-disk thumbnail cache, keyed by content hash.

One JPEG per content at `<root>/<sha[:2]>/<sha>.jpg`, at most `MAX_SIDE` px on the long side.
JPEG rather than WebP: thumbnails are always opaque (transparency is composited when they are
made) and JPEG encodes several times faster and without holding the GIL, which is what decides
first-time ingest throughput (measured: benchmarks/bench_ingest.py).

Keyed by content, a thumbnail is naturally "regenerated when the source changes" (new bytes →
new hash → new entry) and shared by copies of the same picture; entries whose content no
longer has any file are removed with `remove` (per content, as the library forgets them) or
`prune` (whole-cache sweep).

Writes are atomic (temp file + rename) so a reader never sees half a thumbnail. A write that
fails (full disk, read-only cache) returns a false `SaveOutcome` with the reason instead of
raising: the scan goes on without thumbnails and counts the failure.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from PIL import Image, ImageOps

from db.private_files import private_directory
from library.decode import DEFAULT_BACKGROUND, to_rgb

MAX_SIDE = 512
SUFFIX = ".jpg"
JPEG_QUALITY = 85


STALE_TEMP_SECONDS = 3600


def _older_than(entry: os.DirEntry[str], seconds: float) -> bool:
    try:
        return time.time() - entry.stat(follow_symlinks=False).st_mtime > seconds
    except OSError:
        return False


class SaveOutcome(NamedTuple):
    ok: bool
    error: str | None = None

    def __bool__(self) -> bool:
        return self.ok


def _is_sha256(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value)


class ThumbnailCache:
    """Thumbnails on disk; safe to use from several threads and processes (it is picklable)."""

    def __init__(self, root: str | os.PathLike[str], *, max_side: int = MAX_SIDE,
                 background: tuple[int, int, int] = DEFAULT_BACKGROUND) -> None:
        self.root = Path(root)
        self.max_side = max_side
        self.background = background

    def __repr__(self) -> str:
        return f"ThumbnailCache({str(self.root)!r})"

    def path_for(self, sha256: str) -> Path:
        if not _is_sha256(sha256):
            raise ValueError(f"not a lowercase hex SHA-256: {sha256!r}")
        return self.root / sha256[:2] / f"{sha256}{SUFFIX}"

    def has(self, sha256: str) -> bool:
        return self.path_for(sha256).is_file()

    def make_from(self, image: Image.Image) -> Image.Image:
        """A new thumbnail of `image`: upright (EXIF), opaque, at most max_side on each side.

        Accepts an image straight from Image.open as well as decode_bytes's output (already
        upright, with an empty `info`, so the orientation is never applied twice).
        """
        upright = ImageOps.exif_transpose(image)
        thumb = to_rgb(upright, self.background)
        if thumb is image:
            thumb = image.copy()  # thumbnail() works in place; never touch the caller's image
        # thumbnail() shrinks by integer reduce() first (reducing_gap), then resamples.
        thumb.thumbnail((self.max_side, self.max_side), Image.Resampling.BICUBIC)
        return thumb

    def save(self, sha256: str, thumb: Image.Image) -> SaveOutcome:
        target = self.path_for(sha256)
        tmp_name: str | None = None
        try:
            private_directory(target.parent)  # 0700, like every folder GenTriage makes
            fd, tmp_name = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=target.parent)
            with os.fdopen(fd, "wb") as out:
                thumb.save(out, "JPEG", quality=JPEG_QUALITY)
            os.replace(tmp_name, target)
            tmp_name = None
            return SaveOutcome(True)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            return SaveOutcome(False, f"cannot write thumbnail under {self.root}: {reason}")
        finally:
            if tmp_name is not None:
                try:
                    os.unlink(tmp_name)
                except OSError:
                    pass

    def load(self, sha256: str) -> Image.Image | None:
        """The cached thumbnail, loaded; None when absent or unreadable (then: regenerate)."""
        try:
            with Image.open(self.path_for(sha256)) as im:
                im.load()
                return im
        except (OSError, ValueError):
            return None

    def remove(self, sha256: str) -> bool:
        try:
            self.path_for(sha256).unlink()
            return True
        except FileNotFoundError:
            return False
        except OSError:
            return False  # best effort: a leftover file is harmless and pruned later

    def remove_many(self, sha256s: Iterable[str]) -> int:
        return sum(self.remove(sha) for sha in sha256s)

    def prune(self, keep: set[str]) -> int:
        """Delete every cached thumbnail whose hash is not in `keep`; returns how many."""
        removed = 0
        if not self.root.is_dir():
            return 0
        for shard in os.scandir(self.root):
            if not shard.is_dir(follow_symlinks=False) or len(shard.name) != 2:
                continue
            for entry in os.scandir(shard.path):
                name = entry.name
                # A temp file is a save in progress unless it is old (left by a crash).
                stale_temp = (name.startswith(".") and name.endswith(".tmp")
                              and _older_than(entry, STALE_TEMP_SECONDS))
                sha = name[: -len(SUFFIX)] if name.endswith(SUFFIX) else None
                if stale_temp or (sha is not None and _is_sha256(sha) and sha not in keep):
                    try:
                        os.unlink(entry.path)
                        removed += 1
                    except OSError:
                        pass
        return removed
