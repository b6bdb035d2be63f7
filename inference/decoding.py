"""What every decoder in the process shares: bounded reads, the pixel budget, orientation.

Both decoders use it: indexing (library.decode, for thumbnails and metadata) and analysis
(inference.preprocess, for the models). It lives here, below both layers, and imports only
Pillow and the standard library (ingest worker processes stay light).

- `read_regular_file`: a file's bytes, read once, refusing FIFOs (which would block open()
  forever), directories and files too large to be a picture.
- `PIXEL_BUDGET`: a full-size decode of a 13000×13000 PNG holds ~500 MB, and PNG cannot be
  decoded at reduced size, so the pixels being decoded *at the same time* are bounded instead:
  every decode reserves its pixel count (after JPEG's reduced-size `draft`) before loading and
  gives it back once only its reduced copy is left. Decoders wait in arrival order; a picture
  larger than the whole budget decodes alone rather than never. The budget is per process:
  the app's ingest threads and analysis prefetch threads share it (a `gentriage scan
  --workers` process pool has one per worker process).
- `orientation` / `upright`: EXIF orientation (1–8) and the transpose that shows the picture
  upright — applied after any size reduction, so a rotated giant is never copied at full size.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
import warnings
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

from PIL import Image

# Nothing a generator writes comes near this; a larger "image" is read as broken rather than
# pulled whole into memory.
MAX_FILE_BYTES = 512 * 1024 * 1024

# Pixels decoded at once in this process: two 8k×8k upscales side by side, or one picture at
# Pillow's own ceiling (2 × 89.5 MP) alone. ~480 MB as 8-bit RGB.
DEFAULT_PIXEL_BUDGET = 160_000_000

_ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_EXIF_ORIENTATION_TAG = 0x0112

# Pillow allocates pictures in blocks (16 MB by default). glibc hands out allocations that
# size from per-thread arenas once its dynamic mmap threshold has grown (it grows up to 32 MB),
# and memory freed there mostly stays with the process: each decoding thread kept hundreds of
# MB after a full-size decode of a giant, and a scan of 13000×13000 PNGs peaked at 1.5 GB
# though only one decoded at a time. Blocks above 32 MB are always mmapped and unmapped when
# freed. Pictures smaller than a block still get one block of their own size. (Pillow's own
# PILLOW_BLOCK_SIZE environment variable, when set, is left to rule.)
LARGE_PICTURE_BLOCK = 64 * 1024 * 1024
if "PILLOW_BLOCK_SIZE" not in os.environ and hasattr(Image.core, "set_block_size"):
    Image.core.set_block_size(LARGE_PICTURE_BLOCK)

# Between MAX_IMAGE_PIXELS and twice it Pillow only warns (beyond, it refuses: that error is
# reported as "too large to decode safely"), and it warns about corrupt EXIF it tolerates;
# neither is news to a user. Filtered once for the process: warnings.catch_warnings() is not
# thread-safe, and decodes run on several threads.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
warnings.filterwarnings("ignore", message="Corrupt EXIF data", category=UserWarning)
# Modes Image.reduce accepts; others are converted first.
_REDUCIBLE = frozenset({"L", "LA", "PA", "RGB", "RGBA", "RGBa", "La", "I", "F", "CMYK",
                        "YCbCr"})


_NUMPY_IMPORT = threading.Lock()
_numpy_imported = False


def import_numpy() -> None:
    """Import numpy, one thread at a time, before a thread that may need it starts work.

    numpy's first import is not thread-safe: two threads importing it at once (an ingest
    thread hashing a picture while the analysis thread loads onnxruntime, which imports numpy
    from C) can fail with "cannot load module more than once per process" or a module-lock
    deadlock — seen on a first `gentriage scan`, where both run together. numpy is not imported
    up front (an unchanged rescan does not need it), so every place that starts numpy work on
    a thread calls this first; once numpy is in, it costs a flag test."""
    global _numpy_imported
    if _numpy_imported:
        return
    with _NUMPY_IMPORT:
        import numpy  # noqa: F401 - imported for its side effect: fully loaded in sys.modules

        _numpy_imported = True


class PixelBudget:
    """A counting semaphore over pixels, first come first served.

    Hand-written: threading.Semaphore counts units one at a time and has no notion of a
    request larger than what is free; this needs "wait until N fit, in arrival order"."""

    def __init__(self, limit: int = DEFAULT_PIXEL_BUDGET) -> None:
        self._limit = max(1, int(limit))
        self._in_use = 0
        self._waiting: deque[object] = deque()
        self._changed = threading.Condition()
        self.peak = 0  # most pixels reserved at once (benchmarks and tests read it)
        self.reservations = 0  # decodes that went through the budget

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def in_use(self) -> int:
        return self._in_use

    def set_limit(self, limit: int) -> None:
        with self._changed:
            self._limit = max(1, int(limit))
            self._changed.notify_all()

    def reset_counters(self) -> None:
        with self._changed:
            self.peak, self.reservations = self._in_use, 0

    @contextmanager
    def reserve(self, pixels: int) -> Iterator[None]:
        """Hold `pixels` of the budget for the duration of the block. Never call it while
        already holding a reservation in the same thread (it could wait for itself)."""
        pixels = max(0, int(pixels))
        ticket = object()
        with self._changed:
            self._waiting.append(ticket)
            try:
                while not (self._waiting[0] is ticket
                           and (self._in_use == 0 or self._in_use + pixels <= self._limit)):
                    self._changed.wait()
            finally:
                self._waiting.remove(ticket)
                self._changed.notify_all()  # the next in line may fit now
            self._in_use += pixels
            self.peak = max(self.peak, self._in_use)
            self.reservations += 1
        try:
            yield
        finally:
            with self._changed:
                self._in_use -= pixels
                self._changed.notify_all()


PIXEL_BUDGET = PixelBudget()


def read_regular_file(path: str | os.PathLike[str]) -> tuple[bytes, os.stat_result]:
    """(bytes, the fstat matching them) of a regular file, read once.

    O_NONBLOCK: a file swapped for a FIFO after it was listed would otherwise block open()
    forever; on a regular file the flag changes nothing. Raises IsADirectoryError for anything
    that is not a regular file and OSError(EFBIG) past MAX_FILE_BYTES."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with open(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise IsADirectoryError(errno.EISDIR, "not a regular file", os.fspath(path))
        if info.st_size > MAX_FILE_BYTES:
            raise OSError(errno.EFBIG, f"file too large ({info.st_size} bytes)",
                          os.fspath(path))
        data = f.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:  # grew while being read
            raise OSError(errno.EFBIG, "file too large", os.fspath(path))
        after = os.fstat(f.fileno())  # the values that match the bytes actually read
    return data, after


def orientation(im: Image.Image) -> int:
    """The EXIF orientation (1–8) of an opened image; 1 when absent or malformed."""
    try:
        value = int(im.getexif().get(_EXIF_ORIENTATION_TAG, 1))
    except Exception:  # noqa: BLE001 - malformed EXIF must not make a good image broken
        return 1
    return value if 1 <= value <= 8 else 1


def upright(picture: Image.Image, orientation_value: int) -> Image.Image:
    """`picture` as people see it (the transpose ImageOps.exif_transpose would apply)."""
    method = _ORIENTATION_TRANSPOSE.get(orientation_value)
    return picture if method is None else picture.transpose(method)


def swaps_sides(orientation_value: int) -> bool:
    return orientation_value >= 5


def reduce_factor(size: tuple[int, int], keep_at_least: int) -> int:
    """The integer factor Image.reduce may shrink by while both sides stay >= keep_at_least."""
    return max(1, min(size) // max(1, keep_at_least))


def reducible(mode: str) -> bool:
    return mode in _REDUCIBLE
