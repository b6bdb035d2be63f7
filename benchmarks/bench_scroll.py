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

Attribution: the grid's entry points (fetchMore and its page read, the view's layout and
paint, the delegate's pieces, the loader's result flush, the model's data()) run through
traced subclasses, and `gc.callbacks` times every collection; the TOP_STALLS latest probe
ticks are printed (stderr) with what ran inside them and how much CPU the GUI thread used
meanwhile — far less CPU than wall time means the thread was waiting for a core (another
process, or the decoding threads), not working. "longest GUI-thread CPU burst" is that CPU
figure's maximum: the longest stall the code itself causes, whatever the machine's load.

Auto-advance (issue 10, item 7): on the same library and window, a review controller
decides the last unreviewed image (auto-advance finds none: the old page walk read every
page on the GUI thread, ~8 s), advances to an unreviewed image 100,000 rows below the loaded
ones (the grid reads the ids through it at once), and N looks for the next one. Each is
timed as the keypress's call (GUI-thread CPU, the target, and wall time) and as the longest
GUI-thread CPU burst and stall around it (the same probe); the baseline is the first page
of the grid read in the same run. Target < 50 ms of GUI-thread CPU each.

`python -m benchmarks.bench_scroll [N_IMAGES]` runs it standalone.
"""

from __future__ import annotations

import gc
import os
import resource
import subprocess
import sys
import tempfile
import threading
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
TOP_STALLS = 5


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
            picture = Image.fromarray(pixels, "RGB").resize((width, height), Image.Resampling.BICUBIC)
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
    """A fast timer on the GUI thread; records how late each tick ran (and when, on the
    same clock as `StallTrace`, so the worst ticks can be attributed)."""

    def __init__(self) -> None:
        from PySide6.QtCore import Qt, QTimer

        self._timer = QTimer()
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(PROBE_MS)
        self._timer.timeout.connect(self._on_timer_timeout)
        self._last = 0
        self.lateness_ms: list[float] = []
        self.intervals: list[tuple[int, int]] = []  # (previous tick, this tick), ns
        # GUI-thread CPU time spent in each interval: far below the interval's length means
        # the thread was waiting (other processes on the cores, or the GIL), not working.
        self.cpu_ms: list[float] = []
        self._last_cpu = 0

    def start(self) -> None:
        self.lateness_ms = []
        self.intervals = []
        self.cpu_ms = []
        self._last = time.perf_counter_ns()
        self._last_cpu = time.thread_time_ns()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def _on_timer_timeout(self) -> None:
        now, cpu = time.perf_counter_ns(), time.thread_time_ns()
        self.lateness_ms.append(max(0.0, (now - self._last) / 1e6 - PROBE_MS))
        self.intervals.append((self._last, now))
        self.cpu_ms.append((cpu - self._last_cpu) / 1e6)
        self._last, self._last_cpu = now, cpu

    def worst(self) -> float:
        return max(self.lateness_ms, default=0.0)

    def percentile(self, p: float) -> float:
        ordered = sorted(self.lateness_ms)
        if not ordered:
            return 0.0
        return ordered[min(len(ordered) - 1, int(len(ordered) * p))]

    def busiest_ms(self) -> float:
        """The most CPU the GUI thread used between two ticks: the longest stall the code
        itself causes, whatever else the machine is running."""
        return max(self.cpu_ms, default=0.0)

    def worst_intervals(self, count: int) -> list[tuple[float, float, int, int]]:
        """The `count` latest ticks: (lateness ms, GUI-thread CPU ms meanwhile, interval
        start ns, interval end ns)."""
        ranked = sorted(zip(self.lateness_ms, self.cpu_ms, self.intervals, strict=True),
                        key=lambda t: -t[0])[:count]
        return [(late, cpu, start, end) for late, cpu, (start, end) in ranked]


class StallTrace:
    """Records what ran on the GUI thread, as (start ns, end ns, label) spans: the grid's
    entry points (wrapped by the Traced* subclasses below) and every garbage collection
    (gc.callbacks). A stall is then explained by the spans that overlap it."""

    def __init__(self) -> None:
        self.spans: list[tuple[int, int, str]] = []
        self._gc_start = 0
        self._depth = 0

    def span(self, label: str, call, *args):
        start = time.perf_counter_ns()
        self._depth += 1
        try:
            return call(*args)
        finally:
            self._depth -= 1
            self.spans.append((start, time.perf_counter_ns(), label))

    def _on_gc(self, phase: str, info: dict) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # a pool thread's collection does not stall the GUI (it holds the GIL, though)
        if phase == "start":
            self._gc_start = time.perf_counter_ns()
        else:
            self.spans.append((self._gc_start, time.perf_counter_ns(),
                               f"gc gen{info['generation']}"))

    def install(self) -> None:
        gc.callbacks.append(self._on_gc)

    def uninstall(self) -> None:
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)

    def explain(self, start: int, end: int) -> str:
        """The labels that ran inside [start, end], with the milliseconds each took there
        (nested labels count inside their parents too), longest first."""
        spent: dict[str, float] = {}
        calls: dict[str, int] = {}
        for s, e, label in self.spans:
            overlap = min(e, end) - max(s, start)
            if overlap > 0:
                spent[label] = spent.get(label, 0.0) + overlap / 1e6
                calls[label] = calls.get(label, 0) + 1
        ranked = sorted(spent.items(), key=lambda kv: -kv[1])[:9]
        return ", ".join(f"{label} {ms:.1f} ms" + (f" ({calls[label]}x)" if calls[label] > 1
                                                   else "") for label, ms in ranked) or "?"


def _traced_classes(trace: StallTrace):
    """Subclasses of the real grid classes whose entry points report to `trace` (Qt calls
    Python overrides of virtuals, so the view's layout and paint are seen too)."""
    from PySide6.QtCore import Qt

    from desktop.blur import BlurPolicy
    from desktop.grid.delegate import ThumbnailDelegate
    from desktop.grid.model import GridModel
    from desktop.grid.thumbnail_loader import ThumbnailLoader
    from desktop.grid.view import GridView

    class TracedModel(GridModel):
        def fetchMore(self, parent):  # noqa: N802
            return trace.span("model.fetchMore", super().fetchMore, parent)

        def _read_next_page(self):
            return trace.span("model.read_page (db)", super()._read_next_page)

        def _load_block(self, row_number):
            return trace.span("model.load_block (db)", super()._load_block, row_number)

        def set_visible_rows(self, first, last):
            return trace.span("model.set_visible_rows", super().set_visible_rows, first, last)

        def _on_thumbnails_ready(self, sha256s):
            return trace.span("model.thumbnails_ready", super()._on_thumbnails_ready, sha256s)

    class TracedLoader(ThumbnailLoader):
        def _on_flush_timer_timeout(self):
            return trace.span("loader.flush", super()._on_flush_timer_timeout)

        def data(self, index, role=Qt.ItemDataRole.DisplayRole):
            label = ("model.data(decoration)" if role == Qt.ItemDataRole.DecorationRole
                     else "model.data(other roles)")
            return trace.span(label, super().data, index, role)

    class TracedDelegate(ThumbnailDelegate):
        def paint(self, painter, option, index):
            return trace.span("delegate.paint", super().paint, painter, option, index)

        def _paint_image(self, painter, image, target):
            return trace.span("delegate.paint_image", super()._paint_image, painter, image,
                              target)

        def _paint_badges(self, painter, rect, row, covered, pending=None):
            return trace.span("delegate.paint_badges", super()._paint_badges, painter, rect,
                              row, covered, pending)

        def _paint_name(self, painter, option, image_rect, name):
            return trace.span("delegate.paint_name", super()._paint_name, painter, option,
                              image_rect, name)

        def _paint_placeholder(self, painter, rect, row, error):
            return trace.span("delegate.paint_placeholder", super()._paint_placeholder,
                              painter, rect, row, error)

    class TracedBlur(BlurPolicy):
        def safe_image(self, row, image, *args, **kwargs):
            return trace.span("blur.safe_image", super().safe_image, row, image, *args,
                              **kwargs)

    class TracedView(GridView):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._delegate = TracedDelegate(self, self._delegate.thumbnail_size)
            self.setItemDelegate(self._delegate)

        def doItemsLayout(self):  # noqa: N802
            return trace.span("view.doItemsLayout", super().doItemsLayout)

        def rowsInserted(self, parent, start, end):  # noqa: N802
            return trace.span("view.rowsInserted", super().rowsInserted, parent, start, end)

        def updateGeometries(self):  # noqa: N802
            return trace.span("view.updateGeometries", super().updateGeometries)

        def paintEvent(self, event):  # noqa: N802
            return trace.span("view.paintEvent", super().paintEvent, event)

        def timerEvent(self, event):  # noqa: N802
            return trace.span("view.timerEvent", super().timerEvent, event)

        def _report_visible_range(self):
            return trace.span("view.report_visible_range", super()._report_visible_range)

    return TracedModel, TracedLoader, TracedView, TracedBlur


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


def _first_page_ms(sessions) -> float:
    from db.filters import ImageFilter
    from db.queries import fetch_page

    times = []
    for _ in range(5):
        began = time.perf_counter()
        with sessions() as session:
            fetch_page(session, ImageFilter(), limit=200)
        times.append((time.perf_counter() - began) * 1000)
    return sorted(times)[len(times) // 2]


def _timed_keypress(app, action) -> dict[str, float]:
    """The keypress's call (wall and GUI-thread CPU ms) and the longest GUI stall and CPU
    burst while it ran and just after it (the view's deferred relayout and repaint)."""
    from PySide6.QtCore import QTimer

    probe = StallProbe()
    took: dict[str, float] = {}

    def press() -> None:
        began, cpu = time.perf_counter(), time.thread_time()
        action()
        took["wall"] = (time.perf_counter() - began) * 1000
        took["cpu"] = (time.thread_time() - cpu) * 1000

    probe.start()
    QTimer.singleShot(20, press)
    _run_loop_for(app, 0.4)
    probe.stop()
    return {**took, "stall": probe.worst(), "burst": probe.busiest_ms()}


def _report_keypress(report, name: str, figures: dict[str, float], baseline: float) -> None:
    report(f"{name}: GUI-thread CPU", figures["cpu"], "ms", baseline=baseline,
           target="< 50 ms")
    report(f"{name}: wall time", figures["wall"], "ms", baseline=baseline)
    report(f"{name}: longest GUI-thread CPU burst around it", figures["burst"], "ms",
           target="< 50 ms")
    report(f"{name}: longest GUI stall around it", figures["stall"], "ms")


def _measure_auto_advance(app, report, engine, model, view, label: str) -> None:
    """Decide / advance with the real ReviewController over the 100k-row grid."""
    from sqlalchemy import text

    from db.engine import session_factory
    from db.filters import ImageFilter
    from desktop.review_controller import ReviewController
    from library.settings import Settings

    sessions = session_factory(engine)
    baseline = _first_page_ms(sessions)
    controller = ReviewController(sessions, model, view.selectionModel(), Settings())
    controller.refresh_history()  # as the window does at start

    def only_unreviewed(*image_ids: int) -> None:
        with engine.begin() as connection:  # benchmark set-up, not product code
            connection.execute(text("UPDATE contents SET decision = 'accepted'"))
            for image_id in image_ids:
                connection.execute(text(
                    "UPDATE contents SET decision = 'none' WHERE id = "
                    "(SELECT content_id FROM images WHERE id = :i)"), {"i": image_id})

    with sessions() as session:  # the newest and the oldest readable image
        first, last = (session.execute(text(
            f"SELECT id FROM images WHERE status = 'ok' AND content_id IS NOT NULL "
            f"ORDER BY mtime_ns {order}, id {order} LIMIT 1")).scalar_one()
            for order in ("DESC", "ASC"))
    newest = ImageFilter()

    # The default view (unreviewed first): the only unreviewed image is on top; deciding it
    # leaves none, and auto-advance has to find that out (the ~8 s page walk before).
    only_unreviewed(first)
    model.set_filter(ImageFilter(unreviewed_first=True))
    controller.select_row(0)
    figures = _timed_keypress(app, lambda: controller.decide("accepted"))
    _report_keypress(report, f"auto-advance {label}: decide the last unreviewed image",
                     figures, baseline)

    # Newest first: the top row and the oldest image are unreviewed; the grid has one page
    # loaded, and auto-advance goes to the last of 100,000 rows.
    only_unreviewed(first, last)
    model.set_filter(newest)
    controller.select_row(0)
    figures = _timed_keypress(app, lambda: controller.decide("accepted"))
    reached = model.image_id_at(controller.current_row() or 0) == last
    _report_keypress(report, f"auto-advance {label}: decide, the next unreviewed is the "
                     "last row", figures, baseline)
    report(f"auto-advance {label}: reached the last row", int(reached), "yes=1",
           target=">= 1")

    # N from the top with the only unreviewed image at the bottom (nothing written).
    only_unreviewed(last)
    model.set_filter(newest)
    controller.select_row(0)
    figures = _timed_keypress(app, controller.next_unreviewed)
    _report_keypress(report, f"auto-advance {label}: N to the last row", figures, baseline)


def run(report, quick: bool = False) -> None:
    from PySide6.QtWidgets import QApplication

    from db.engine import open_library, session_factory
    from db.filters import ImageFilter
    try:
        from desktop.grid.gc_policy import settle_after_startup
    except ImportError:  # an older tree, measured for comparison
        def settle_after_startup() -> int:
            return 0

    n_images = QUICK_IMAGES if quick else N_IMAGES
    app = QApplication.instance() or QApplication(sys.argv[:1])
    trace = StallTrace()
    traced_model, traced_loader, traced_view, traced_blur = _traced_classes(trace)
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
            loader = traced_loader(SharedThumbnails(Path(tmp) / "thumbs"))
            blur = traced_blur(sensitive_folder_ids={4})  # the synthetic "private" folder
            model = traced_model(session_factory(engine), loader, blur)
            view = traced_view(thumbnail_size=THUMBNAIL_SIZE)
            view.setModel(model)
            view.resize(*VIEW_SIZE)
            view.show()
            model.set_filter(ImageFilter())
            _run_loop_for(app, 0.5)  # first paint, first thumbnails
            settle_after_startup()  # as the app does once its window is up
            rss_before = rss_mb()

            probe = StallProbe()
            probe.start()
            _run_loop_for(app, IDLE_PROBE_S)
            probe.stop()
            idle_worst = probe.worst()

            objects_before = len(gc.get_objects())
            trace.install()
            probe.start()
            steps, seconds = _scroll_to_bottom(app, view, model)
            _run_loop_for(app, 0.3)  # the last screen's thumbnails
            probe.stop()
            trace.uninstall()
            rss_after = rss_mb()

            label = f"{n_images // 1000}k images"
            report(f"scroll {label}: longest GUI stall", probe.worst(), "ms",
                   baseline=max(idle_worst, 0.01), target="< 50 ms")
            report(f"scroll {label}: 99th percentile stall", probe.percentile(0.99), "ms")
            report(f"scroll {label}: longest GUI-thread CPU burst", probe.busiest_ms(), "ms",
                   target="< 50 ms")
            report(f"scroll {label}: rows loaded", model.loaded_count(), "rows",
                   target=f">= {model.total_count()}")
            report(f"scroll {label}: pages scrolled", steps, "pages")
            report(f"scroll {label}: time to the bottom", seconds, "s")
            report(f"scroll {label}: RSS after scrolling", rss_after, "MB",
                   baseline=rss_before, target="< 600 MB")
            report(f"scroll {label}: thumbnail memory", loader.memory_bytes() / 2**20, "MB")
            print(f"top {TOP_STALLS} stalls (what ran on the GUI thread meanwhile; load "
                  f"average {os.getloadavg()[0]:.2f}):", file=sys.stderr)
            for late, cpu, start, end in probe.worst_intervals(TOP_STALLS):
                print(f"  {late:7.1f} ms (GUI thread on CPU {cpu:5.1f} ms): "
                      f"{trace.explain(start, end)}", file=sys.stderr)
            print(f"  Python objects tracked by gc: {objects_before:,} before scrolling, "
                  f"{len(gc.get_objects()):,} after; gc.freeze()d: {gc.get_freeze_count():,}",
                  file=sys.stderr)
            _measure_auto_advance(app, report, engine, model, view, label)
            loader.shutdown()
            view.close()
        finally:
            engine.dispose()


if __name__ == "__main__":
    from benchmarks import print_report

    if len(sys.argv) > 1:
        N_IMAGES = int(sys.argv[1])
    run(print_report)
