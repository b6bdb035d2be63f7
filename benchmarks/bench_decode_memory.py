"""Peak memory of a scan of giant pictures: decoding is bounded by the shared pixel budget.

Files: six 13000×13000 PNGs (169 MP each, ~0.5 MB on disk: flat colour with a few shapes —
the decompression-bomb shape that once took a two-worker scan to 3.3 GB of RSS). PNG cannot be
decoded at reduced size, so each one is a ~680 MB full-size decode (Pillow keeps RGB as 4
bytes per pixel).

Baseline: the peak RSS of the same command over ONE of the files (the same process overhead —
interpreter, database, onnxruntime — and one full-size decode). Measured: the peak RSS of
`gentriage scan FOLDER --workers 2 --analysers nsfw-default` over all of them (indexing with
two worker threads, then analysis with its prefetch threads), each in a fresh process
(`resource.getrusage` ru_maxrss), plus the most pixels the budget let decode at once. Also
shown: the peak of a bare `Image.open(path).load()` of one file, the floor of any reader.

Target (issue 11, item 17): the scan of all of them peaks under 1.5× the scan of one — memory
does not grow with the number of giants (before the budget: ~3.4 GB, ~4×).
Run: `python -m benchmarks.bench_decode_memory [--quick]` (quick: two 11000×11000 files, which
still cannot decode side by side under the budget).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FULL = (6, 13000)
QUICK = (2, 11000)

ONE_DECODE = r'''
import resource, sys, warnings
from PIL import Image
warnings.simplefilter("ignore", Image.DecompressionBombWarning)
with Image.open(sys.argv[1]) as im:
    im.load()
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
'''

SCAN = r'''
import json, resource, sys
from gentriage.cli import main
from inference.decoding import PIXEL_BUDGET
code = main(["scan", sys.argv[1], "--workers", "2", "--analysers", "nsfw-default"])
print(json.dumps({"code": code, "rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "peak_pixels": PIXEL_BUDGET.peak, "limit": PIXEL_BUDGET.limit,
                  "decodes": PIXEL_BUDGET.reservations}))
'''


def _giants(folder: Path, count: int, side: int) -> list[Path]:
    from PIL import Image, ImageDraw

    base = Image.new("RGB", (side, side), (90, 120, 150))
    draw = ImageDraw.Draw(base)
    draw.ellipse((side // 8, side // 8, side // 2, side // 2), fill=(200, 60, 40))
    draw.rectangle((side // 2, side // 3, side - side // 8, side - side // 4), fill=(30, 160, 70))
    paths = []
    for i in range(count):
        ImageDraw.Draw(base).rectangle((i * 50, 0, i * 50 + 40, 40), fill=(i * 40, 0, 0))
        path = folder / f"giant-{i}.png"
        base.save(path, compress_level=6)
        paths.append(path)
    return paths


def _child(code: str, *args: str, home: Path) -> str:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               GENTRIAGE_HOME=str(home))
    env.pop("GENTRIAGE_DB", None)
    proc = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=1200, check=False)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    return proc.stdout.strip().splitlines()[-1]


def run(report, quick: bool = False) -> None:
    count, side = QUICK if quick else FULL
    with tempfile.TemporaryDirectory(prefix="gentriage-bench-memory-") as tmp:
        root = Path(tmp)
        folder = root / "giants"
        folder.mkdir()
        began = time.perf_counter()
        paths = _giants(folder, count, side)
        size_mb = sum(p.stat().st_size for p in paths) / count / 1e6
        report(f"write {count} PNGs {side}x{side} ({size_mb:.1f} MB each)",
               time.perf_counter() - began, "s")

        floor = int(_child(ONE_DECODE, str(paths[0]), home=root / "h0")) / 1024
        report("peak RSS, Image.open().load() of one file (floor)", floor, "MB")
        single = root / "one-giant"
        single.mkdir()
        (single / paths[0].name).write_bytes(paths[0].read_bytes())
        one = json.loads(_child(SCAN, str(single), home=root / "h1"))
        began = time.perf_counter()
        scan = json.loads(_child(SCAN, str(folder), home=root / "h2"))
        elapsed = time.perf_counter() - began
        if one["code"] != 0 or scan["code"] != 0:
            raise RuntimeError(f"a scan failed: {one} {scan}")
        one_mb, all_mb = one["rss_kb"] / 1024, scan["rss_kb"] / 1024
        report("peak RSS, scan of one giant", one_mb, "MB")
        report(f"scan of {count} giants, 2 workers + analysis", elapsed, "s")
        report(f"peak RSS, scan of {count} giants", all_mb, "MB", baseline=one_mb,
               target="< 1.5x the scan of one")
        report(f"peak RSS, {count} giants / one", all_mb / one_mb, "x", target="< 1.5 x")
        report("most pixels decoding at once (budget)", scan["peak_pixels"] / 1e6, "MP",
               baseline=scan["limit"] / 1e6, target=f"<= {scan['limit'] / 1e6:g} MP or one "
               "picture")


if __name__ == "__main__":
    from benchmarks import print_report

    run(print_report, quick="--quick" in sys.argv)
