"""The suite's leak check (tests/conftest.py, after napari's conftest) fails a Qt test that
leaves a QThread, a busy thread pool, a pending QTimer (singleShot too) or a Python thread
behind, and names where it was started; a test that cleans up passes. Run in a separate
pytest process with the suite's own conftest."""

from __future__ import annotations

from pathlib import Path

import pytest

CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"

LEAKY_TESTS = '''
import threading

from PySide6.QtCore import QObject, QRunnable, QThread, QThreadPool, QTimer


class Busy(QRunnable):
    def __init__(self, until):
        super().__init__()
        self.until = until

    def run(self):
        self.until.wait(30)


def test_timer_left_running(qtbot):
    owner = QObject()
    test_timer_left_running.timer = QTimer(owner)
    test_timer_left_running.timer.start(60_000)
    test_timer_left_running.owner = owner


def test_single_shot_left_pending(qtbot):
    QTimer.singleShot(60_000, lambda: None)


def test_qthread_left_running(qtbot):
    until = threading.Event()

    class Waiting(QThread):
        def run(self):
            until.wait(30)

    thread = Waiting()
    thread.start()
    test_qthread_left_running.keep = (thread, until)


def test_pool_left_busy(qtbot):
    until = threading.Event()
    pool = QThreadPool()
    pool.start(Busy(until))
    test_pool_left_busy.keep = (pool, until)


def test_python_thread_left_running(qtbot):
    until = threading.Event()
    threading.Thread(target=until.wait, args=(30,), name="left-behind", daemon=True).start()
    test_python_thread_left_running.until = until


def test_everything_stopped_in_time(qtbot):
    timer = QTimer()
    timer.start(60_000)
    timer.stop()
    fired = []
    QTimer.singleShot(0, lambda: fired.append(1))
    qtbot.waitUntil(lambda: fired == [1])
    worker = threading.Thread(target=lambda: None)
    worker.start()
    worker.join()


def test_without_qt_is_not_checked():
    until = threading.Event()
    threading.Thread(target=until.wait, args=(0.5,), daemon=True).start()
'''


@pytest.mark.slow  # a second pytest process starting Qt
def test_leftover_threads_and_timers_fail_the_test_that_left_them(pytester):
    conftest = CONFTEST.read_text(encoding="utf-8")
    assert "LEAK_GRACE_S = 2.0" in conftest
    pytester.makeconftest(conftest.replace('pytest_plugins = ["pytester"]', "")
                          .replace("LEAK_GRACE_S = 2.0", "LEAK_GRACE_S = 0.2"))
    pytester.makeini("[pytest]\nqt_api = pyside6\n")
    pytester.makepyfile(test_leaky=LEAKY_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=7, errors=5)
    errors = {line.split("::")[1].split(" ")[0] for line in result.outlines
              if line.startswith("ERROR test_leaky.py::")}
    assert errors == {"test_timer_left_running", "test_single_shot_left_pending",
                      "test_qthread_left_running", "test_pool_left_busy",
                      "test_python_thread_left_running"}
    result.stdout.fnmatch_lines_random([
        "*QTimer pending, started at *test_leaky.py:* (test_timer_left_running)",
        "*QTimer pending, started at *test_leaky.py:* (test_single_shot_left_pending)",
        "*QThread started at *test_leaky.py:* (test_qthread_left_running)",
        "*QThreadPool busy, first used at *test_leaky.py:* (test_pool_left_busy)",
        "*Python thread 'left-behind'*",
    ])
