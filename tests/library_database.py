"""Where a test's library lives, on either backend (tests/conftest.py's `library_db`
fixtures make them): what `--db` takes, and a look at its tables that uses no GenTriage code
(what a test checks must not depend on the code under test)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from postgres_server import PostgresServer


@dataclass(frozen=True)
class LibraryDatabase:
    """`target` is what `--db`, GENTRIAGE_DB and open_library take (a file path, or a
    postgresql+psycopg:// URL); `path` is the SQLite file (None on PostgreSQL)."""

    backend: str
    target: str
    path: Path | None = None

    @property
    def is_postgresql(self) -> bool:
        return self.backend == "postgresql"

    def open(self):
        from db.engine import open_library

        return open_library(self.target)

    def exists(self) -> bool:
        """Whether there is a library yet (SQLite: the file; a PostgreSQL database always
        exists, the administrator made it)."""
        return self.path.exists() if self.path is not None else True

    def counts(self, tables: tuple[str, ...]) -> dict[str, int] | None:
        """Rows per table, read with a plain connection (read-only on SQLite); None when
        the schema is not there yet (a scan still creating it)."""
        from sqlalchemy import create_engine, text
        from sqlalchemy.exc import OperationalError, ProgrammingError
        from sqlalchemy.pool import NullPool

        if self.path is not None:
            if not self.path.exists():
                return None
            url = f"sqlite:///file:{self.path}?mode=ro&uri=true"
            engine = create_engine(url, poolclass=NullPool, connect_args={"timeout": 30})
        else:
            engine = create_engine(self.target, poolclass=NullPool)
        try:
            with engine.connect() as connection:
                return {table: connection.execute(text(f"SELECT count(*) FROM {table}"))
                        .scalar_one() for table in tables}
        except (OperationalError, ProgrammingError):
            return None  # no such table yet
        finally:
            engine.dispose()

    def __str__(self) -> str:
        return self.target


def make_library_database(backend: str, folder: Path, server: PostgresServer | None,
                          name: str = "library.sqlite3", *, blank: bool = False
                          ) -> tuple[LibraryDatabase, str | None]:
    """A new library location; the PostgreSQL database name to drop afterwards. SQLite: a
    path with no file yet; PostgreSQL: a migrated database (`blank`: one without tables)."""
    if backend == "sqlite":
        return LibraryDatabase("sqlite", str(folder / name), folder / name), None
    assert server is not None
    database = server.create_database(blank=blank)
    return LibraryDatabase("postgresql", server.url(database)), database
