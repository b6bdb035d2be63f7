"""Where GenTriage keeps what it writes.

Resolution order, for every location:
1. an explicit argument (`--db`, `--models-dir`; `--db` and GENTRIAGE_DB also take a
   PostgreSQL URL, db.engine.parse_database);
2. a specific environment variable (`GENTRIAGE_DB`, `GENTRIAGE_MODELS_DIR`);
3. `GENTRIAGE_HOME=DIR`: everything (database, thumbnails, settings, models) under DIR —
   portable installs, and tests that must not touch the user's real data;
4. the platform's user directories (platformdirs).

Folders GenTriage creates for its data are private to the user (db.private_files). Paths from
the file system may hold bytes that are not UTF-8 (Python keeps them as surrogate escapes);
`storable_text` is the one way such text becomes something the database and the terminal
can hold.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import platformdirs

if TYPE_CHECKING:
    from db.engine import DatabaseTarget

APP_NAME = "GenTriage"


def storable_text(text: str) -> str:
    """`text` as valid Unicode: a byte that is not UTF-8 (a surrogate escape, as Python reads
    file names and arguments) becomes the four characters `\\xNN`, any other lone surrogate
    (from JSON's `\\ud800` escapes) becomes U+FFFD. Valid text is returned unchanged.

    The database stores file names this way (such a file is recorded as broken, since the
    stored name no longer opens it), and command arguments are converted the same way before
    they are compared with stored paths, so `gentriage review` and `folder:` filters find them.
    """
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    out = []
    for char in text:
        code = ord(char)
        if 0xDC80 <= code <= 0xDCFF:  # surrogateescape: the original byte
            out.append(f"\\x{code - 0xDC00:02x}")
        elif 0xD800 <= code <= 0xDFFF:
            out.append("\ufffd")
        else:
            out.append(char)
    return "".join(out)


def is_storable(text: str) -> bool:
    """True when `text` is valid Unicode (no surrogates): it is stored exactly."""
    return storable_text(text) is text


def _home() -> Path | None:
    home = os.environ.get("GENTRIAGE_HOME")
    return Path(home).expanduser() if home else None


def data_dir() -> Path:
    home = _home()
    return home if home else Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def cache_dir() -> Path:
    home = _home()
    return home / "cache" if home else Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False))


def config_dir() -> Path:
    home = _home()
    return home if home else Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


def database_path(explicit: str | os.PathLike[str] | None = None) -> DatabaseTarget:
    """The library database: a SQLite file, or a PostgreSQL URL. Raises
    db.engine.DatabaseError for a URL GenTriage cannot use."""
    from db.engine import parse_database

    if explicit:
        return parse_database(explicit if isinstance(explicit, str) else Path(explicit))
    if env := os.environ.get("GENTRIAGE_DB"):
        return parse_database(env)
    return data_dir() / "library.sqlite3"


def models_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    if explicit:
        return Path(explicit).expanduser()
    if env := os.environ.get("GENTRIAGE_MODELS_DIR"):
        return Path(env).expanduser()
    return data_dir() / "models"


def thumbnails_dir() -> Path:
    return cache_dir() / "thumbnails"


def settings_path() -> Path:
    return config_dir() / "settings.json"


@dataclass(frozen=True)
class Locations:
    """The resolved locations for one run (what the CLI and the app pass around)."""

    database: DatabaseTarget  # a SQLite file, or a PostgreSQL URL
    models: Path
    thumbnails: Path
    settings: Path
    # Why the named database cannot be used (a URL of another kind), for problem().
    database_error: str | None = None

    @classmethod
    def resolve(cls, db: str | None = None, models: str | None = None) -> Locations:
        from db.engine import DatabaseError

        try:
            database: DatabaseTarget = database_path(db)
            error = None
        except DatabaseError as exc:
            database, error = Path(db or os.environ.get("GENTRIAGE_DB") or "."), str(exc)
        return cls(database, models_dir(models), thumbnails_dir(), settings_path(), error)

    def problem(self) -> str | None:
        """Why these locations cannot be used, or None: a file where a folder must be (a
        GENTRIAGE_HOME that is a file, `--db notes.txt/lib.sqlite3`), a database path that
        is a folder or a pipe. Checked before anything is opened, so the user gets one line
        naming the path instead of a traceback."""
        from db.engine import database_path_problem
        from db.private_files import non_folder_on_path

        if self.database_error is not None:
            return self.database_error
        if (problem := database_path_problem(self.database)) is not None:
            return problem
        for what, folder in (("models folder", self.models),
                             ("thumbnail folder", self.thumbnails),
                             ("settings folder", self.settings.parent)):
            blocker = non_folder_on_path(folder)
            if blocker is not None:
                return f"{blocker} is a file, not a folder, so the {what} {folder} cannot " \
                       "be used"
        return None  # a bad settings *file* is not fatal: Settings.load warns, uses defaults

