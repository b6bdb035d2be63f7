"""Folders and files that GenTriage creates are private to the user (0700 / 0600).

The library database holds prompts, file paths, scores and review decisions; settings name
folders; thumbnails are pictures. None of it is for other accounts on the machine, so every
folder GenTriage creates for its own data is 0700 and every file 0600, whatever the umask.
Existing folders and files are left as they are (a user who shared a library on purpose keeps
it shared).

Lives in db/ because the database file is created here; library/ (settings, thumbnails) and
the command line use the same helpers, so the rule is written once.
"""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


class NotAFolderError(OSError):
    """A path GenTriage must use as a folder (or a folder's ancestor) is something else."""


def non_folder_on_path(folder: str | os.PathLike[str]) -> Path | None:
    """The first existing path on the way up from `folder` that is not a folder (the thing
    that stops `folder` from being created), or None."""
    current = Path(folder)
    while True:
        if current.is_dir():
            return None
        if os.path.lexists(current):
            return current
        if current.parent == current:
            return None
        current = current.parent


def private_directory(path: str | os.PathLike[str]) -> Path:
    """Create `path` and any missing ancestors as 0700 folders; return it.

    Raises NotAFolderError naming the offending path when `path` or an ancestor exists but is
    not a folder (a file where GENTRIAGE_HOME should be, `--db file.txt/lib.sqlite3`), and
    OSError for anything else (permissions, read-only file system).
    """
    target = Path(path)
    missing: list[Path] = []
    current = target
    while True:
        if current.is_dir():
            break
        if os.path.lexists(current):
            if current.is_dir():  # another thread created it since the check above
                break
            raise NotAFolderError(f"{current} exists and is not a folder")
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, PRIVATE_DIR_MODE)  # the umask can only remove bits: still 0700
        except FileExistsError:
            if not folder.is_dir():  # created meanwhile by someone else, as something else
                raise NotAFolderError(f"{folder} exists and is not a folder") from None
    return target


def create_private_file(path: str | os.PathLike[str]) -> bool:
    """Create `path` as an empty 0600 file unless it exists; True if it was created.

    SQLite creates a database's -wal and -shm files with the database file's own mode, so
    creating the (empty) database file 0600 first makes all three private.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                     PRIVATE_FILE_MODE)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def write_private_text(path: Path, text: str) -> None:
    """Replace `path` atomically with `text` (UTF-8) in a 0600 file: a crash mid-write never
    leaves half a file, and the result is private even when `path` did not exist."""
    private_directory(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, PRIVATE_FILE_MODE)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
