"""Decoded pictures handed from indexing to analysis, so a new file is decoded once.

Indexing a new file decodes it (hash, thumbnail, perceptual hash) and the analysis then needs
the same picture again; decoding a 1024² PNG costs about as much as open_nsfw's forward pass,
so a first scan decoding everything twice spent a quarter of its CPU on the second decode.
Where indexing and analysis run in one process (`gentriage scan`, the app), the indexer decodes
by the analysers' rules (library.decode `for_analysis`) and offers the analysers' picture here,
keyed by the content's SHA-256; the pipeline takes it instead of reading and decoding the file
(inference.pipeline). A picture taken is the one the pipeline would have decoded from those
bytes (tests/library/test_handoff.py checks it pixel for pixel), so results do not depend on
whether a picture was handed on.

Bounded by bytes: when full, the oldest pictures go first (the analysis queue takes the newest
contents first, so the pictures it is about to ask for are the ones kept). Bounded in time as
well: a picture nobody took within `max_age_s` (its content needed no analysis) is dropped by
`expire`, which the runner calls whenever it waits, so an idle app holds no pictures. While
the analysis is paused or cannot run, its owner says so (`set_wanted(False)`): indexing then
decodes only what it needs itself and nothing is held. A picture not here — evicted, expired,
never offered, indexed by another process — simply costs the usual decode: this is an
optimisation the analysis never depends on. Each picture is taken at most once.

Thread-safe: ingest threads offer, the analysis prefetch threads take. Not shared between
processes (an ingest process pool does not hand pictures on).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from PIL import Image

# 64 decoded 1024×1024 RGB pictures (Pillow keeps 4 bytes a pixel): one indexing batch
# (library.scan.BATCH_SIZE) of SDXL output waiting for the analysis to take it.
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
# Long enough for a recorded batch to reach the front of the analysis queue; short enough
# that pictures no one will ask for do not linger.
DEFAULT_MAX_AGE_S = 30.0


@dataclass
class HandoffStats:
    offered: int = 0
    taken: int = 0  # decodes the analysis did not have to do
    missed: int = 0  # asked for and not here: decoded again
    evicted: int = 0  # dropped to stay within the budget before anyone took them
    expired: int = 0  # dropped after waiting max_age_s


def picture_bytes(picture: Image.Image) -> int:
    """Memory a decoded picture holds (Pillow keeps 1-byte modes as 1 byte a pixel and RGB
    and RGBA as 4)."""
    return picture.width * picture.height * (1 if picture.mode in ("L", "P", "1") else 4)


class PictureHandoff:
    """Pictures by SHA-256, oldest evicted first beyond `max_bytes`; each taken once."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES,
                 max_age_s: float = DEFAULT_MAX_AGE_S) -> None:
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.stats = HandoffStats()
        self._lock = threading.Lock()
        # sha256 -> (picture, bytes, when offered); oldest first
        self._pictures: OrderedDict[str, tuple[Image.Image, int, float]] = OrderedDict()
        self._bytes = 0
        self._wanted = True

    @property
    def wanted(self) -> bool:
        """Whether the analysis takes pictures now. While it is paused or has nothing to
        analyse with, indexing decodes for its own needs only (a JPEG then decodes at a much
        smaller draft scale) and nothing is offered or held."""
        return self._wanted

    def set_wanted(self, wanted: bool) -> None:
        """Said by the analysis' owner as it pauses, resumes, starts or fails to start."""
        with self._lock:
            self._wanted = wanted
        if not wanted:
            self.clear()  # an offer from now on is refused, so nothing comes back

    def offer(self, sha256: str, picture: Image.Image) -> None:
        size = picture_bytes(picture)
        with self._lock:
            self.stats.offered += 1
            if not self._wanted:
                return  # decoded just before the analysis paused
            if sha256 in self._pictures or size > self.max_bytes:
                return  # the same content indexed twice (copies): one picture is enough
            self._pictures[sha256] = (picture, size, time.monotonic())
            self._bytes += size
            while self._bytes > self.max_bytes:
                self._drop_oldest()
                self.stats.evicted += 1

    def expire(self) -> None:
        """Drop the pictures offered more than max_age_s ago."""
        deadline = time.monotonic() - self.max_age_s
        with self._lock:
            while self._pictures and next(iter(self._pictures.values()))[2] < deadline:
                self._drop_oldest()
                self.stats.expired += 1

    def _drop_oldest(self) -> None:
        _, (_, size, _) = self._pictures.popitem(last=False)
        self._bytes -= size

    def take(self, sha256: str) -> Image.Image | None:
        """The picture of this content, removed from the hand-off; None if it is not here."""
        with self._lock:
            entry = self._pictures.pop(sha256, None)
            if entry is None:
                self.stats.missed += 1
                return None
            self._bytes -= entry[1]
            self.stats.taken += 1
            return entry[0]

    def clear(self) -> None:
        with self._lock:
            self._pictures.clear()
            self._bytes = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._pictures)

    @property
    def held_bytes(self) -> int:
        with self._lock:
            return self._bytes
