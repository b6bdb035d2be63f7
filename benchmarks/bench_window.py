"""Window-ready time on a synthetic 100,000-image library (target: < 2 s).

Measured from just before the window is constructed (desktop.app.GenTriageApp: model, view,
window, services wired) to the first paint of the grid's viewport with rows in it. The
baseline is a bare QMainWindow shown and painted in the same process. Also reported: opening
the library (migrations on open), and whether torch was imported by then (it must not be:
models load in the inference thread afterwards).

Standalone: `python -m benchmarks.bench_window [N_IMAGES]` (offscreen unless DISPLAY is set;
GENTRIAGE_BENCH_DB=/path/lib.db reuses or keeps a library).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

N_IMAGES = 100_000
PAINT_TIMEOUT_S = 30.0

if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def _wait_for_paint(widget, condition=lambda: True) -> float:
    """Process events until `widget` has been painted while `condition()` holds; returns
    the perf_counter time of that paint."""
    from PySide6.QtCore import QEvent, QObject
    from PySide6.QtWidgets import QApplication

    painted: list[float] = []

    class PaintWatcher(QObject):
        def eventFilter(self, _obj, event):  # noqa: N802 - Qt API
            if event.type() == QEvent.Type.Paint and not painted and condition():
                painted.append(time.perf_counter())
            return False

    watcher = PaintWatcher()
    widget.installEventFilter(watcher)
    deadline = time.perf_counter() + PAINT_TIMEOUT_S
    app = QApplication.instance()
    while not painted and time.perf_counter() < deadline:
        app.processEvents()
        widget.update()
    widget.removeEventFilter(watcher)
    if not painted:
        raise TimeoutError("the widget was not painted in time")
    return painted[0]


def _bare_window_s() -> float:
    from PySide6.QtWidgets import QMainWindow

    began = time.perf_counter()
    window = QMainWindow()
    window.resize(1400, 880)
    window.show()
    done = _wait_for_paint(window)
    window.close()
    return done - began


def _gentriage_window_s(db_path: Path, home: Path, report) -> tuple[float, bool]:
    from db.engine import open_library
    from desktop.app import GenTriageApp
    from library.paths import Locations
    from library.settings import Settings

    locations = Locations.resolve(str(db_path), str(home / "models"))
    began = time.perf_counter()
    engine = open_library(db_path)
    report("open library (100k images, migrations checked)",
           (time.perf_counter() - began) * 1000, "ms")
    began = time.perf_counter()
    app = GenTriageApp(engine, locations, Settings(), [])
    app.window.show()
    app.start()
    viewport = app.view.viewport()
    done = _wait_for_paint(viewport, lambda: app.model.rowCount() > 0)
    torch_loaded = "torch" in sys.modules
    app.shutdown()
    app.window.close()
    engine.dispose()
    return done - began, torch_loaded


def run(report) -> None:
    from PySide6.QtWidgets import QApplication

    from benchmarks.synthetic import build_library

    app = QApplication.instance() or QApplication([sys.argv[0]])
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["GENTRIAGE_HOME"] = str(Path(tmp) / "home")
        db_env = os.environ.get("GENTRIAGE_BENCH_DB")
        db_path = Path(db_env) if db_env else Path(tmp) / "bench.db"
        if not db_path.exists():
            build_library(db_path, N_IMAGES)
        baseline = _bare_window_s()
        seconds, torch_loaded = _gentriage_window_s(db_path, Path(tmp) / "home", report)
        report("bare QMainWindow shown and painted", baseline * 1000, "ms")
        report(f"main window: first page painted ({N_IMAGES:,} images)", seconds * 1000, "ms",
               baseline * 1000, "< 2000 ms")
        report("torch imported before the first page (must be 0)", float(torch_loaded), "")
    del app


if __name__ == "__main__":
    from benchmarks import print_report

    if len(sys.argv) > 1:
        N_IMAGES = int(sys.argv[1])
    run(print_report)
