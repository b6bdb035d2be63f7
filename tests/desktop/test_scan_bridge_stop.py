"""ScanBridge.stop(): shutting down during a long scan ends the scan thread, so it never
emits on the bridge after the app (its parent) is gone."""

from __future__ import annotations

import threading
from typing import Self

from PySide6.QtCore import QCoreApplication

from desktop.workers import ScanBridge
from library import scan as library_scan


class EndlessIndexer:
    """Stands in for library.scan.LibraryIndexer: a scan of a huge folder, reporting
    progress file by file, that would run for a minute unless cancelled."""

    started = threading.Event()

    def __init__(self, *_args, **_kwargs) -> None:
        pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        pass

    def scan(self, _folders, progress):
        total = 60_000
        pause = threading.Event()
        for done in range(total):
            EndlessIndexer.started.set()
            progress(done, total)
            pause.wait(0.001)  # one "file"
        raise AssertionError("the scan was not cancelled")


def test_stop_ends_a_running_scan_and_nothing_is_emitted_after(qtbot, library, monkeypatch):
    monkeypatch.setattr(library_scan, "LibraryIndexer", EndlessIndexer)
    bridge = ScanBridge(library.Session, None)
    emitted: list[str] = []
    bridge.scan_failed.connect(lambda message: emitted.append(f"failed {message}"))
    bridge.scan_finished.connect(lambda _summary: emitted.append("finished"))
    EndlessIndexer.started.clear()
    bridge.scan([str(library.files)])
    assert EndlessIndexer.started.wait(10)
    assert bridge.is_running()

    assert bridge.stop(timeout=10), "the scan thread was still running after stop()"
    assert not bridge.is_running()
    QCoreApplication.processEvents()  # deliver anything the thread queued before it ended
    assert emitted == []
    bridge.scan([str(library.files)])  # after shutdown a late request starts nothing
    assert not bridge.is_running()


def test_shutdown_reports_a_worker_that_did_not_stop(qtbot, tmp_path, monkeypatch):
    """run_app leaves at once (instead of letting Qt abort on a running QThread) when
    shutdown says a worker is still busy; shutdown must therefore say so."""
    from fixtures_app import build_app, make_images

    folder = tmp_path / "outputs"
    make_images(folder, 2)
    app, engine = build_app(qtbot, tmp_path, [folder], expect_rows=2)
    try:
        monkeypatch.setattr(app.scanner, "stop", lambda timeout=10.0: False)
        assert app.shutdown() is False
        monkeypatch.undo()
        assert app.shutdown() is True
    finally:
        app.window.close()
        engine.dispose()
