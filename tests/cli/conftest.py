"""Fixtures for the command tests (helpers live in cli_support.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_support import Seeded, seed_library


@pytest.fixture
def home(isolated_home) -> Path:
    return isolated_home


@pytest.fixture
def seeded(tmp_path, library_db) -> Seeded:
    """A seeded library on the test's backend (SQLite and PostgreSQL)."""
    return seed_library(tmp_path, library_db.target)
