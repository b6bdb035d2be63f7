import pytest

from db.engine import session_factory


@pytest.fixture
def engine(library_db):
    """An open library on the test's backend (tests/conftest.py: SQLite and PostgreSQL)."""
    engine = library_db.open()
    yield engine
    engine.dispose()


@pytest.fixture
def Session(engine):  # noqa: N802 - it is a session class
    return session_factory(engine)
