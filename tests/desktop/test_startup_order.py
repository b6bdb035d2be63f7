"""The window paints its first page before the analysis worker starts (the worker imports
torch and loads models; that must never compete with the first frame)."""

import threading

from fixtures_app import N_IMAGES, build_app, image_folder  # noqa: F401 - fixture
from PySide6.QtCore import QEvent, QObject


class _PaintLog(QObject):
    def __init__(self, events: list[str]) -> None:
        super().__init__()
        self.events = events

    def eventFilter(self, _watched, event):
        if event.type() == QEvent.Type.Paint and "paint" not in self.events:
            self.events.append("paint")
        return False


def test_analysis_starts_only_after_the_grid_has_painted(qtbot, tmp_path, image_folder,
                                                        monkeypatch):
    from desktop.app import GenTriageApp

    events: list[str] = []
    started = threading.Event()

    def runner_factory(*_args, **_kwargs):
        events.append("runner")
        started.set()
        raise RuntimeError("no models in this test")

    original_start = GenTriageApp.start

    def start_with_paint_log(self):
        log = _PaintLog(events)
        self.view.viewport().installEventFilter(log)
        self._paint_log = log
        original_start(self)

    monkeypatch.setattr(GenTriageApp, "start", start_with_paint_log)
    app, engine = build_app(qtbot, tmp_path, [image_folder], expect_rows=N_IMAGES,
                            analysis=True, runner_factory=runner_factory)
    try:
        qtbot.waitUntil(started.is_set, timeout=10_000)
        assert events[:2] == ["paint", "runner"]
    finally:
        app.shutdown()
        app.window.close()
        engine.dispose()
