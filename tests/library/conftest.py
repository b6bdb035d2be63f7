"""Fixtures for the library tests: a migrated library on disk and a thumbnail cache."""

from __future__ import annotations

import pytest

from db.engine import session_factory
from library.thumbnails import ThumbnailCache


@pytest.fixture
def library_engine(library_db):
    """A migrated library on the test's backend (SQLite and PostgreSQL, tests/conftest.py)."""
    engine = library_db.open()
    yield engine
    engine.dispose()


@pytest.fixture
def library_sessions(library_engine):
    return session_factory(library_engine)


@pytest.fixture
def thumbnail_cache(tmp_path):
    return ThumbnailCache(tmp_path / "thumbnails")
