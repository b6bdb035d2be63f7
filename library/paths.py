"""Where GenTriage keeps what it writes.

Resolution order, for every location:
1. an explicit argument (`--db`, `--models-dir`);
2. a specific environment variable (`GENTRIAGE_DB`, `GENTRIAGE_MODELS_DIR`);
3. `GENTRIAGE_HOME=DIR`: everything (database, thumbnails, settings, models) under DIR —
   portable installs, and tests that must not touch the user's real data;
4. the platform's user directories (platformdirs).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP_NAME = "GenTriage"


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


def database_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    if explicit:
        return Path(explicit).expanduser()
    if env := os.environ.get("GENTRIAGE_DB"):
        return Path(env).expanduser()
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

    database: Path
    models: Path
    thumbnails: Path
    settings: Path

    @classmethod
    def resolve(cls, db: str | None = None, models: str | None = None) -> "Locations":
        return cls(database_path(db), models_dir(models), thumbnails_dir(), settings_path())
