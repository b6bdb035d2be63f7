"""The app's one error sink: an exception escaping a slot, a Python thread that dies, and a
worker's failure all reach the status bar (counted, the latest listed) and the log — none is
lost on stderr."""

from __future__ import annotations

import logging
import sys
import threading

import pytest
from fixtures_app import gentriage, image_folder  # noqa: F401 - fixtures
from PySide6.QtCore import QObject, Signal

import db.flags
from desktop.error_sink import ErrorSink


class _Emitter(QObject):
    fired = Signal()


@pytest.mark.qt_no_exception_capture
def test_an_exception_escaping_a_slot_reaches_the_status_bar(qtbot, gentriage, caplog):
    app = gentriage  # started: its sink's hooks are in place
    assert app.errors.installed
    status = app.window.status
    assert status.errors_label.isHidden()
    emitter = _Emitter()

    def broken_slot() -> None:
        raise ValueError("the slot broke")

    emitter.fired.connect(broken_slot)
    with caplog.at_level(logging.ERROR, logger="desktop.error_sink"):
        emitter.fired.emit()  # PySide hands the exception to sys.excepthook and goes on
    qtbot.waitUntil(lambda: status.error_count == 1, timeout=5_000)
    assert "ValueError: the slot broke" in status.currentMessage()
    assert status.errors_label.isVisible() and status.errors_label.text() == "1 error"
    assert "the slot broke" in status.errors_label.toolTip()
    assert "broken_slot" in caplog.text  # the traceback went to the log


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_an_exception_ending_a_python_thread_reaches_the_status_bar(qtbot, gentriage):
    app = gentriage
    # pytest puts its own threading hook in place for each phase of a test: install the
    # app's again on top of it, as the app's start did on top of Python's.
    app.errors.uninstall()
    app.errors.install()
    status = app.window.status

    def work() -> None:
        raise OSError("disk gone")

    thread = threading.Thread(target=work, name="gentriage-test-worker")
    thread.start()
    thread.join(10)
    qtbot.waitUntil(lambda: status.error_count == 1, timeout=5_000)  # queued to the GUI
    assert "gentriage-test-worker" in status.currentMessage()
    assert "OSError: disk gone" in status.currentMessage()


def test_a_failed_flag_recompute_reaches_the_status_bar(qtbot, gentriage, monkeypatch):
    app = gentriage
    status = app.window.status

    def failing_chunk(*_args, **_kwargs):
        raise RuntimeError("disk I/O error")

    monkeypatch.setattr(db.flags, "_update_chunk", failing_chunk)
    app.flags.recompute(app.settings.thresholds, app.settings.enabled_analysers)
    qtbot.waitUntil(lambda: status.error_count == 1, timeout=10_000)
    assert "disk I/O error" in status.currentMessage()
    assert "disk I/O error" in app.errors.recent[-1].message


def test_shutdown_puts_the_hooks_back(qtbot, gentriage):
    assert sys.excepthook == gentriage.errors._on_uncaught
    gentriage.shutdown()
    assert sys.excepthook != gentriage.errors._on_uncaught
    assert threading.excepthook != gentriage.errors._on_thread_uncaught


def test_install_chains_to_a_hook_found_and_uninstall_restores_it(monkeypatch):
    seen = []
    monkeypatch.setattr(sys, "excepthook", lambda *args: seen.append(args[1]))
    previous = sys.excepthook
    sink = ErrorSink()
    reports = []
    sink.add_listener(reports.append)
    sink.install()
    try:
        error = KeyError("k")
        sys.excepthook(KeyError, error, None)
    finally:
        sink.uninstall()
    assert [r.message for r in reports] == ["Unexpected error: KeyError: 'k'"]
    assert seen == [error]  # a test runner's (or debugger's) hook still sees it
    assert sys.excepthook is previous


def test_a_broken_listener_does_not_hide_the_report(caplog):
    sink = ErrorSink()
    received = []

    def broken(_report) -> None:
        raise RuntimeError("listener broke")

    sink.add_listener(broken)
    sink.add_listener(received.append)
    with caplog.at_level(logging.ERROR, logger="desktop.error_sink"):
        try:
            raise ZeroDivisionError("x")
        except ZeroDivisionError as exc:
            report = sink.report("Indexing failed", exc)
    assert received == [report]
    assert report.message == "Indexing failed: ZeroDivisionError: x"
    assert "Traceback" in report.details and "ZeroDivisionError" in report.details
    assert "listener broke" in caplog.text
