"""Reliability suite fixtures: a hang guard for every test, no Hugging Face cache, and a
migrated library on disk."""

from __future__ import annotations

import faulthandler
import sys

import pytest

# Every reliability test must end well within this; a hang dumps every thread's stack and
# ends the run instead of blocking CI forever (pytest-timeout is not a dependency).
HANG_LIMIT_S = 150


@pytest.fixture(autouse=True)
def hang_guard():
    faulthandler.dump_traceback_later(HANG_LIMIT_S, exit=True, file=sys.stderr)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture(autouse=True)
def no_hf_cache(tmp_path_factory, monkeypatch):
    # Discovery must never see the user's real Hugging Face cache.
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path_factory.getbasetemp() / "empty-hf-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def library(library_db):
    """(engine, sessions, database) of a fresh library on the test's backend; the database
    is what --db takes (str() of it: a path or a URL; `.path` is the SQLite file)."""
    from db.engine import session_factory

    engine = library_db.open()
    yield engine, session_factory(engine), library_db
    engine.dispose()


@pytest.fixture(scope="session")
def ray_head():
    """One local Ray (2 CPUs, loopback only) for every `scan --ray` test of the session, in a
    helper process; see ray_support.py."""
    from ray_support import NO_RAY, RAY_MISSING, start_head, stop_head

    if RAY_MISSING:
        pytest.skip(NO_RAY)
    head = start_head()
    yield head
    stop_head(head)


@pytest.fixture
def ray_files():
    """A short-pathed folder for a local Ray's session files and token (removed after)."""
    import shutil

    from ray_support import short_root

    root = short_root()
    yield root
    shutil.rmtree(root, ignore_errors=True)
