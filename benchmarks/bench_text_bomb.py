"""A PNG text-chunk bomb: what reading one hostile file costs.

File: a tiny picture followed by 600 zTXt chunks after IDAT, each ~16 KB that inflates to
16 MiB (half of them repeat one key) — a 10 MB file that once took 28 s in `gentriage
metadata` and 70 s in `gentriage scan` (issue 11, item 11). The metadata reader now spends
one text budget per file (library/metadata/containers.py, MAX_TOTAL_TEXT_BYTES).

Baseline: the same operation on a plain PNG of about the same size (noise pixels, no text).
Measured: `read_metadata_file` (the `metadata` command) and `ingest_file` (what a scan does
per file: read, hash, decode, metadata). Best of 3. Targets: under 2 s and under 5 s on a
loaded 2-core machine — the point is that the cost no longer grows with the chunk count.
Run: `python -m benchmarks.bench_text_bomb`.
"""

from __future__ import annotations

import io
import struct
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

CHUNKS = 600
ROUNDS = 3


def _chunk(ctype: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + ctype + data
            + struct.pack(">I", zlib.crc32(ctype + data) & 0xFFFFFFFF))


def _bomb(path: Path) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (9, 9, 9)).save(buffer, "PNG")
    png = buffer.getvalue()
    iend = png.rindex(b"IEND") - 4
    payload = zlib.compress(b"a" * (16 * 1024 * 1024 - 1024), 9)
    body = b"".join(_chunk(b"zTXt", (b"parameters" if i % 2 else b"k%d" % i) + b"\0\0"
                           + payload) for i in range(CHUNKS))
    path.write_bytes(png[:iend] + body + png[iend:])


def _plain(path: Path, size_bytes: int) -> None:
    side = int((size_bytes / 3) ** 0.5)  # noise barely compresses: ~3 bytes per pixel
    pixels = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    Image.fromarray(pixels, "RGB").save(path, "PNG", compress_level=1)


def _best(action: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        began = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - began)
    return best


def run(report) -> None:
    from library.ingest import ingest_file
    from library.metadata import read_metadata_file

    with tempfile.TemporaryDirectory(prefix="gentriage-bench-bomb-") as tmp:
        bomb, plain = Path(tmp) / "bomb.png", Path(tmp) / "plain.png"
        _bomb(bomb)
        _plain(plain, bomb.stat().st_size)
        mb = bomb.stat().st_size / 1e6
        report(f"metadata of a plain {mb:.0f} MB PNG (baseline)",
               _best(lambda: read_metadata_file(plain)), "s")
        report(f"metadata of a {mb:.0f} MB PNG with {CHUNKS} zTXt bombs",
               _best(lambda: read_metadata_file(bomb)), "s",
               baseline=_best(lambda: read_metadata_file(plain)), target="< 2 s")
        plain_ingest = _best(lambda: ingest_file(str(plain)))
        report(f"ingest (scan) of a plain {mb:.0f} MB PNG (baseline)", plain_ingest, "s")
        report(f"ingest (scan) of the {CHUNKS}-bomb PNG", _best(lambda: ingest_file(str(bomb))),
               "s", baseline=plain_ingest, target="< 5 s")


if __name__ == "__main__":
    from benchmarks import print_report

    run(print_report)
