"""Scrolling the grid over a 100,000-image library, top to bottom: the longest GUI-thread
stall and the memory it leaves behind.

Setup: `benchmarks.synthetic.build_library` (100k images), the real GridModel + GridView +
ThumbnailDelegate + ThumbnailLoader + BlurPolicy, offscreen, 1280x900, 192 px thumbnails.
The synthetic library has no image files, so every content's thumbnail is served from one
of 48 real 512 px JPEGs on disk (`SharedThumbnails`): the loader still decodes a JPEG per
content on its pool, the blur and the delegate's scaling still run per content, and the
memory caches fill exactly as they would with distinct pictures.

The scroll advances one page (the scrollbar's pageStep) every STEP_MS, as a fast fling
would; when it reaches the bottom of what is loaded, QAbstractItemView asks the model for
the next page (fetchMore) exactly as with a user. A probe timer firing every PROBE_MS on the
same event loop measures how late it runs: its worst lateness is the longest stall the user
would feel. The baseline is the same probe's worst lateness with the window idle.

`python -m benchmarks.bench_scroll [N_IMAGES]` runs it standalone.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

N_IMAGES = 100_000
QUICK_IMAGES = 20_000
STEP_MS = 4
PROBE_MS = 2
IDLE_PROBE_S = 1.0
VIEW_SIZE = (1280, 900)
THUMBNAIL_SIZE = 192
SHARED_THUMBNAILS = 48


def rss_mb() -> float:
    """Current resident set size (VmRSS), in MiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # peak, KiB on Linux
    return usage / 1024


class SharedThumbnails:
    """A ThumbnailStore where every sha256 maps to one of a few real JPEGs."""

    def __init__(self, root: Path, count: int = SHARED_THUMBNAILS) -> None:
        import numpy as np
        from PIL import Image

        rng = np.random.default_rng(0)
        root.mkdir(parents=True, exist_ok=True)
        self._files = []
        for k in range(count):
            height = (512, 384, 512)[k % 3]
            width = (512, 512, 352)[k % 3]
            pixels = rng.integers(0, 256, (height // 8, width // 8, 3), dtype=np.uint8)
            picture = Image.fromarray(pixels, "RGB").resize((width, height), Image.BICUBIC)
            path = root / f"shared_{k:02d}.jpg"
            picture.save(path, "JPEG", quality=85)
            self._files.append(path)

    def path_for(self, sha256: str) -> Path:
        return self._files[int(sha256[:8], 16) % len(self._files)]

    def has(self, sha256: str) -> bool:
        return True

    def make_from(self, image):  # never called: every thumbnail "exists"
        raise AssertionError("SharedThumbnails has every thumbnail")

    def save(self, sha256: str, thumb) -> bool:
        raise AssertionError("SharedThumbnails has every thumbnail")


class StallProbe:
    """A fast timer on the GUI thread; records how late each tick ran."""

    def __init__(self) -> None:
        from PySide6.QtCore import QElapsedTimer, Qt, QTimer

        self._clock = QElapsedTimer()
        self._timer = QTimer()
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(PROBE_MS)
        self._timer.timeout.connect(self._on_timer_timeout)
        self._last = 0
        self.lateness_ms: list[float] = []

    def start(self) -> None:
        self.lateness_ms = []
        self._clock.start()
        self._last = self._clock.nsecsElapsed()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def _on_timer_timeout(self) -> None:
        now = self._clock.nsecsElapsed()
        self.lateness_ms.append(max(0.0, (now - self._last) / 1e6 - PROBE_MS))
        self._last = now

    def worst(self) -> float:
        return max(self.lateness_ms, default=0.0)

    def percentile(self, p: float) -> float:
        ordered = sorted(self.lateness_ms)
        if not ordered:
            return 0.0
        return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def _run_loop_for(app, seconds: float) -> None:
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    loop.exec()


def _scroll_to_bottom(app, view, model) -> tuple[int, float]:
    """Page down until the end of the result is loaded and shown. Returns (steps, seconds)."""
    from PySide6.QtCore import QEventLoop, QModelIndex, QTimer

    loop = QEventLoop()
    bar = view.verticalScrollBar()
    steps = 0

    def step() -> None:
        nonlocal steps
        at_end = bar.value() >= bar.maximum()
        if at_end and not model.canFetchMore(QModelIndex()):
            timer.stop()
            loop.quit()
            return
        bar.setValue(min(bar.maximum(), bar.value() + bar.pageStep()))
        steps += 1

    timer = QTimer()
    timer.setInterval(STEP_MS)
    timer.timeout.connect(step)
    began = time.perf_counter()
    timer.start()
    loop.exec()
    return steps, time.perf_counter() - began


def run(report, quick: bool = False) -> None:
    from PySide6.QtWidgets import QApplication

    from db.engine import open_library, session_factory
    from db.filters import ImageFilter
    from desktop.blur import BlurPolicy
    from desktop.grid.model import GridModel
    from desktop.grid.thumbnail_loader import ThumbnailLoader
    from desktop.grid.view import GridView

    n_images = QUICK_IMAGES if quick else N_IMAGES
    app = QApplication.instance() or QApplication(sys.argv[:1])
    with tempfile.TemporaryDirectory() as tmp:
        db_path = Path(tmp) / "scroll.db"
        # Built in a child process: the build's own memory must not count as the app's RSS.
        subprocess.run([sys.executable, "-c",
                        "import sys; from benchmarks.synthetic import build_library; "
                        "build_library(sys.argv[1], n_images=int(sys.argv[2]), seed=0)",
                        str(db_path), str(n_images)],
                       check=True, cwd=str(Path(__file__).resolve().parent.parent))
        engine = open_library(db_path)
        try:
            loader = ThumbnailLoader(SharedThumbnails(Path(tmp) / "thumbs"))
            blur = BlurPolicy(sensitive_folder_ids={4})  # the synthetic "private" folder
            model = GridModel(session_factory(engine), loader, blur)
            view = GridView(thumbnail_size=THUMBNAIL_SIZE)
            view.setModel(model)
            view.resize(*VIEW_SIZE)
            view.show()
            model.set_filter(ImageFilter())
            _run_loop_for(app, 0.5)  # first paint, first thumbnails
            rss_before = rss_mb()

            probe = StallProbe()
            probe.start()
            _run_loop_for(app, IDLE_PROBE_S)
            probe.stop()
            idle_worst = probe.worst()

            probe.start()
            steps, seconds = _scroll_to_bottom(app, view, model)
            _run_loop_for(app, 0.3)  # the last screen's thumbnails
            probe.stop()
            rss_after = rss_mb()

            label = f"{n_images // 1000}k images"
            report(f"scroll {label}: longest GUI stall", probe.worst(), "ms",
                   baseline=max(idle_worst, 0.01), target="< 50 ms")
            report(f"scroll {label}: 99th percentile stall", probe.percentile(0.99), "ms")
            report(f"scroll {label}: rows loaded", model.loaded_count(), "rows",
                   target=f">= {model.total_count()}")
            report(f"scroll {label}: pages scrolled", steps, "pages")
            report(f"scroll {label}: time to the bottom", seconds, "s")
            report(f"scroll {label}: RSS after scrolling", rss_after, "MB",
                   baseline=rss_before, target="< 600 MB")
            report(f"scroll {label}: thumbnail memory", loader.memory_bytes() / 2**20, "MB")
            loader.shutdown()
            view.close()
        finally:
            engine.dispose()


def _print_report(name: str, value: float, unit: str, baseline: float | None = None,
                  target: str | None = None) -> None:
    ratio = f"  x{value / baseline:7.2f} vs {baseline:.2f}" if baseline else ""
    goal = f"  (target {target})" if target else ""
    print(f"{name:<50} {value:10.2f} {unit}{ratio}{goal}", flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1:
        N_IMAGES = int(sys.argv[1])
    run(_print_report)
