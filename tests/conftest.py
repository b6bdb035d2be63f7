"""Suite-wide setup: Qt offscreen, and no test ever touches the user's real data."""

import os

# Before any test module can import Qt.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Model code must never try the network from the tests.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# The suite runs as on a user's machine, also under CI: onnxruntime switches its telemetry
# off by itself when it sees one of these (a CI run of 2026-12 showed it), which would make
# the privacy tests' "GenTriage switches it off" pass vacuously and their witnesses (that
# onnxruntime left alone does phone home) fail. The names are those its library checks.
CI_MARKERS = ("CI", "TF_BUILD", "GITHUB_ACTIONS", "GITLAB_CI", "CIRCLECI", "TRAVIS",
              "JENKINS_URL", "CODEBUILD_BUILD_ID", "BUILDKITE", "TEAMCITY_VERSION", "APPVEYOR",
              "BITBUCKET_BUILD_NUMBER")
for _marker in CI_MARKERS:
    os.environ.pop(_marker, None)

import sys
from typing import TYPE_CHECKING

import pytest

pytest_plugins = ["pytester"]  # tests/desktop/test_leak_fixtures.py runs pytest on pytest

# Helpers at tests/ (postgres_server, library_database), importable from any test folder;
# imported inside the fixtures, so this file also works copied alone (test_leak_fixtures).
sys.path.insert(0, os.path.dirname(__file__))
if TYPE_CHECKING:
    from library_database import LibraryDatabase


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch):
    """Every test gets its own GENTRIAGE_HOME, so databases, thumbnails, settings and the
    default models folder land in a temporary directory."""
    home = tmp_path_factory.mktemp("gentriage-home")
    monkeypatch.setenv("GENTRIAGE_HOME", str(home))
    monkeypatch.delenv("GENTRIAGE_DB", raising=False)
    monkeypatch.delenv("GENTRIAGE_MODELS_DIR", raising=False)
    # The style analyser also looks in torch hub's cache, which may hold the user's VGG19.
    monkeypatch.setenv("TORCH_HOME", str(home / "torch-home"))
    return home


# ---------------------------------------------------------------- the library database
#
# The db/, library/, CLI and reliability tests run on both backends: the fixtures below are
# parametrised over SQLite (a file under tmp_path) and PostgreSQL (a fresh database on a
# throwaway server started once per session, tests/postgres_server.py). The PostgreSQL half
# skips, saying why, where the machine has no server binaries.

BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(scope="session")
def postgres_server():
    """The session's PostgreSQL server, started on first use; None without binaries."""
    from postgres_server import find_binaries, start_server

    bindir = find_binaries()
    if bindir is None:
        yield None
        return
    server = start_server(bindir)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    """"sqlite" or "postgresql"; every test using it runs once per backend."""
    if request.param == "postgresql" and request.getfixturevalue("postgres_server") is None:
        from postgres_server import missing_reason

        pytest.skip(missing_reason())
    return request.param


@pytest.fixture
def library_db(backend, tmp_path, request) -> "LibraryDatabase":
    """A fresh, not yet opened library database on the test's backend (PostgreSQL: already
    migrated, copied from the session's template; SQLite: a path that does not exist yet)."""
    from library_database import make_library_database

    server = request.getfixturevalue("postgres_server") if backend == "postgresql" else None
    database, name = make_library_database(backend, tmp_path, server)
    yield database
    if name is not None:
        server.drop_database(name)


@pytest.fixture
def blank_library_db(backend, tmp_path, request) -> "LibraryDatabase":
    """A library database with no schema yet (SQLite: no file; PostgreSQL: an empty
    database, as a studio's administrator creates it): for tests of schema creation."""
    from library_database import make_library_database

    server = request.getfixturevalue("postgres_server") if backend == "postgresql" else None
    database, name = make_library_database(backend, tmp_path, server, blank=True)
    yield database
    if name is not None:
        server.drop_database(name)


@pytest.fixture
def other_library_db(backend, tmp_path, request) -> "LibraryDatabase":
    """A second, separate library on the same backend."""
    from library_database import make_library_database

    server = request.getfixturevalue("postgres_server") if backend == "postgresql" else None
    database, name = make_library_database(backend, tmp_path, server, "other.sqlite3")
    yield database
    if name is not None:
        server.drop_database(name)


# ---------------------------------------------------------------- leaked threads and timers
#
# After napari's conftest (`_dangling_qthreads`, `_dangling_qthread_pool`, `_dangling_qtimers`):
# a Qt test that leaves a QThread running, a thread pool busy, a QTimer pending or one of the
# app's Python worker threads alive fails. Such leftovers run on into later tests (a timer
# firing into a deleted widget, a scan writing into the next test's database) and make
# failures appear far from their cause. Each start is recorded with the place that made it.
# Only tests using Qt (qtbot / qapp) are checked; Qt is imported for those alone.

LEAK_GRACE_S = 2.0  # a thread told to stop may need a moment to return


def _started_at() -> str:
    """The innermost project frame (not this file, not Qt, not pytest) that started it."""
    import traceback

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    here = os.path.abspath(__file__)
    for frame in reversed(traceback.extract_stack()[:-2]):
        path = os.path.abspath(frame.filename)
        if path.startswith(root) and path != here and ".venv" not in path:
            return f"{os.path.relpath(path, root)}:{frame.lineno} ({frame.name})"
    return "(outside the project)"


class _QtStarts:
    """Records QThread, QThreadPool and QTimer starts (QTimer.singleShot included) while a
    test runs, so its end can check none is still going."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from weakref import WeakKeyDictionary

        from PySide6.QtCore import QObject, Qt, QThread, QThreadPool, QTimer

        self.threads: WeakKeyDictionary = WeakKeyDictionary()
        self.pools: WeakKeyDictionary = WeakKeyDictionary()
        self.timers: WeakKeyDictionary = WeakKeyDictionary()
        self.single_shots: list[tuple[object, str]] = []
        thread_start, pool_start = QThread.start, QThreadPool.start
        timer_start, single_shot = QTimer.start, QTimer.singleShot
        starts = self

        def start_thread(self, *args):
            starts.threads[self] = _started_at()
            return thread_start(self, *args)

        def start_in_pool(self, *args):
            starts.pools.setdefault(self, _started_at())
            return pool_start(self, *args)

        def start_timer(self, *args):
            starts.timers[self] = _started_at()
            return timer_start(self, *args)

        def tracked_single_shot(msec, *rest):
            # QTimer.singleShot(ms, [timerType,] [context,] functor) as an owned, visible
            # timer; the receiver-and-SLOT-string form is left to Qt.
            rest = list(rest)
            timer_type = rest.pop(0) if rest and isinstance(rest[0], Qt.TimerType) else None
            context = rest.pop(0) if len(rest) == 2 else None
            target = rest[0] if rest else None
            if isinstance(target, (str, bytes)) or target is None:
                return single_shot(msec, *([timer_type] if timer_type else []),
                                   *([context] if context is not None else []), *rest)
            timer = QTimer(context) if isinstance(context, QObject) else QTimer()
            timer.setSingleShot(True)
            if timer_type is not None:
                timer.setTimerType(timer_type)
            timer.timeout.connect(target)
            starts.single_shots.append((timer, _started_at()))  # also keeps it alive
            timer_start(timer, msec)

        monkeypatch.setattr(QThread, "start", start_thread)
        monkeypatch.setattr(QThreadPool, "start", start_in_pool)
        monkeypatch.setattr(QTimer, "start", start_timer)
        monkeypatch.setattr(QTimer, "singleShot", staticmethod(tracked_single_shot))

    def still_running(self) -> list[str]:
        from PySide6.QtCore import QCoreApplication, QEvent

        # Widgets pytest-qt closed are deleteLater()'d; delete them now, with their timers:
        # only what outlives the test is a leak.
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        grace_ms = int(LEAK_GRACE_S * 1000)
        found = []
        for thread, where in list(self.threads.items()):
            if _alive(lambda t=thread: t.isRunning() and not t.wait(grace_ms)):
                found.append(f"QThread started at {where}")
        for pool, where in list(self.pools.items()):
            if _alive(lambda p=pool: not p.waitForDone(grace_ms) or p.activeThreadCount()):
                found.append(f"QThreadPool busy, first used at {where}")
        for timer, where in [*self.timers.items(), *self.single_shots]:
            if _alive(timer.isActive):
                found.append(f"QTimer pending, started at {where}")
                _alive(timer.stop)
        return found


def _alive(check) -> bool:
    """check(), where a Qt object already deleted counts as stopped."""
    try:
        return bool(check())
    except RuntimeError:  # "Internal C++ object already deleted"
        return False


def _python_threads_left(before: set[int]) -> list[str]:
    import threading
    import time

    deadline = time.monotonic() + LEAK_GRACE_S
    left = []
    for thread in threading.enumerate():
        if thread.ident in before or isinstance(thread, threading._DummyThread):
            continue  # older than the test, or a Qt thread that once ran Python code
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            left.append(f"Python thread {thread.name!r}")
    return left


@pytest.fixture(autouse=True)
def no_leaked_threads_or_timers(request, monkeypatch):
    """Fails a Qt test that leaves a QThread, a thread pool, a QTimer or a Python thread
    running when it (and its fixtures) are done."""
    if not {"qtbot", "qapp"} & set(request.fixturenames):
        yield
        return
    import threading

    before = {t.ident for t in threading.enumerate()}
    starts = _QtStarts(monkeypatch)
    yield
    left = starts.still_running() + _python_threads_left(before)
    assert not left, ("the test left these running (stop them, or wait for them, before it "
                      "ends):\n  " + "\n  ".join(left))
