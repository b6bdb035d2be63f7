import pytest

from db.engine import open_library, session_factory


@pytest.fixture
def engine(tmp_path):
    engine = open_library(tmp_path / "library.sqlite3")
    yield engine
    engine.dispose()


@pytest.fixture
def Session(engine):  # noqa: N802 - it is a session class
    return session_factory(engine)
