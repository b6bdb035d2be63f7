"""What happens to a rejected file on disk, and how that is undone (no Qt).

By default a rejected image is only marked in the database. The settings can ask for more:
"move" puts the file into a folder of its own (never overwriting: a clashing name gets a
numbered suffix), "trash" hands it to the system trash (send2trash). Neither deletes
anything, and both are recorded in the review log (`db.review.record_path_changes`) in the
same group as the decision, so one undo brings back the decision *and* the file:

* a move is logged as (old path → new path) and the Image row follows the file;
* a trash is logged as (old path → ``trash:<old path>``); the Image row keeps its path and is
  marked missing. Undo finds the newest freedesktop ``.trashinfo`` whose ``Path`` is that
  original path and moves the file back (Linux and other freedesktop desktops; elsewhere the
  undo reports that the file must be restored from the trash by hand).

db/ does no file I/O, which is why this module exists between it and the window.
"""

from __future__ import annotations

import configparser
import logging
import os
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import unquote

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.review import Change, record_path_changes
from db.schema import Folder, Image, ImageStatus

log = logging.getLogger(__name__)

TRASH_PREFIX = "trash:"
REJECTED_ACTIONS = ("mark", "move", "trash")


class FileActionError(OSError):
    """A file could not be moved, trashed or restored; the message says which and why."""


@dataclass
class FileOutcome:
    """What a rejected-file action or an undo did on disk: the moves done and the errors."""

    moves: list[tuple[int | None, str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def trash_marker(path: str | os.PathLike[str]) -> str:
    return TRASH_PREFIX + os.fspath(path)


def is_trash_marker(value: str | None) -> bool:
    return value is not None and value.startswith(TRASH_PREFIX)


def unique_destination(folder: Path, name: str,
                       taken: Callable[[Path], bool] = Path.exists) -> Path:
    """`folder/name`, or `folder/stem (2).ext`, `(3)`… — the first that is not taken."""
    candidate = folder / name
    stem, suffix = Path(name).stem, Path(name).suffix
    counter = 2
    while taken(candidate):
        candidate = folder / f"{stem} ({counter}){suffix}"
        counter += 1
    return candidate


def move_to_folder(path: Path, folder: Path,
                   taken: Callable[[Path], bool] = Path.exists) -> Path:
    """Move `path` into `folder` (created if needed) under a name nothing else uses."""
    folder.mkdir(parents=True, exist_ok=True)
    destination = unique_destination(folder, path.name, taken)
    try:
        shutil.move(os.fspath(path), os.fspath(destination))
    except OSError as exc:
        raise FileActionError(f"cannot move {path} to {folder}: {exc.strerror or exc}") from exc
    return destination


def move_back(current: Path, target: Path) -> None:
    """Move a file to an exact path, refusing to overwrite whatever is there now."""
    if target.exists():
        raise FileActionError(f"cannot move {current} back: {target} exists (not overwritten)")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        shutil.move(os.fspath(current), os.fspath(target))
    except OSError as exc:
        raise FileActionError(f"cannot move {current} to {target}: {exc.strerror or exc}") from exc


def send_to_trash(path: Path) -> str:
    """Hand the file to the system trash; returns the marker the review log records."""
    from send2trash import send2trash  # imported when first used: only "trash" needs it

    try:
        send2trash(os.fspath(path))
    except Exception as exc:  # send2trash raises OSError and its own errors
        raise FileActionError(f"cannot send {path} to the trash: {exc}") from exc
    return trash_marker(path)


# --- freedesktop trash (https://specifications.freedesktop.org/trash-spec/) ---------------

def _home_trash() -> tuple[Path, Path]:
    """(trash dir, the dir relative Path= entries are resolved against)."""
    data_home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return data_home / "Trash", data_home


def _mount_point(path: Path) -> Path:
    path = path.resolve()
    while not os.path.ismount(path) and path.parent != path:
        path = path.parent
    return path


def trash_dirs(original: Path) -> list[tuple[Path, Path]]:
    """Every trash that may hold `original`: the home trash and its volume's trashes."""
    dirs = [_home_trash()]
    top = _mount_point(original.parent if original.parent.exists() else Path("/"))
    uid = str(os.getuid()) if hasattr(os, "getuid") else ""
    for candidate in (top / ".Trash" / uid, top / f".Trash-{uid}"):
        if candidate.is_dir():
            dirs.append((candidate, top))
    return dirs


@dataclass(frozen=True)
class TrashedFile:
    original: Path
    file: Path  # where the trashed bytes are now
    info: Path  # its .trashinfo
    deleted_at: datetime


def _read_trashinfo(info: Path, topdir: Path) -> TrashedFile | None:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(info, encoding="utf-8")
        section = parser["Trash Info"]
        original = Path(unquote(section["Path"]))
        deleted_at = datetime.fromisoformat(section.get("DeletionDate", "1970-01-01T00:00:00"))
    except (configparser.Error, KeyError, ValueError, OSError):
        return None  # a broken .trashinfo is somebody else's problem, not a reason to fail
    if not original.is_absolute():
        original = topdir / original
    return TrashedFile(original, info.parent.parent / "files" / info.stem, info, deleted_at)


def find_in_trash(original: Path) -> TrashedFile | None:
    """The most recently trashed copy of `original` whose bytes are still in a trash."""
    wanted = os.path.abspath(original)
    best: TrashedFile | None = None
    for trash, topdir in trash_dirs(Path(wanted)):
        info_dir = trash / "info"
        if not info_dir.is_dir():
            continue
        for info in info_dir.glob("*.trashinfo"):
            entry = _read_trashinfo(info, topdir)
            if entry is None or os.path.abspath(entry.original) != wanted:
                continue
            if not os.path.lexists(entry.file):
                continue
            if best is None or (entry.deleted_at, info.stat().st_mtime_ns) > (
                    best.deleted_at, best.info.stat().st_mtime_ns):
                best = entry
    return best


def restore_from_trash(original: Path) -> Path:
    """Move the newest trashed copy of `original` back to where it was."""
    entry = find_in_trash(original)
    if entry is None:
        raise FileActionError(f"{original} is not in the trash any more; nothing to restore")
    move_back(entry.file, Path(os.path.abspath(original)))
    entry.info.unlink(missing_ok=True)
    return original


# --- the database side -------------------------------------------------------------------

def _folder_for(session: Session, path: Path) -> int | None:
    """The watched folder containing `path` (the deepest one), if any."""
    best: tuple[int, int] | None = None
    for folder_id, folder_path in session.execute(select(Folder.id, Folder.path)):
        try:
            path.relative_to(folder_path)
        except ValueError:
            continue
        if best is None or len(folder_path) > best[1]:
            best = (folder_id, len(folder_path))
    return best[0] if best else None


def path_taken(session: Session) -> Callable[[Path], bool]:
    """A name is taken when a file is there or the library has a row for that path (a
    missing file may come back)."""
    def taken(candidate: Path) -> bool:
        return candidate.exists() or session.scalar(
            select(Image.id).where(Image.path == os.fspath(candidate))) is not None
    return taken


def _images_of(session: Session, content_ids: Iterable[int]) -> list[Image]:
    ids = sorted(set(content_ids))
    if not ids:
        return []
    return list(session.scalars(select(Image).where(
        Image.content_id.in_(ids), Image.status == ImageStatus.OK.value).order_by(Image.id)))


def relocate_row(session: Session, old: str, new: str) -> None:
    """The Image row follows a file GenTriage moved (path, name, watched folder)."""
    image = session.scalar(select(Image).where(Image.path == old))
    if image is not None:
        image.path = new
        image.name = Path(new).name
        image.folder_id = _folder_for(session, Path(new))


def _set_status(session: Session, path: str, status: ImageStatus) -> None:
    image = session.scalar(select(Image).where(Image.path == path))
    if image is not None:
        image.status = status.value


def apply_rejected_action(session: Session, group: int | None, content_ids: Iterable[int],
                          action: str, folder: str | os.PathLike[str] = "") -> FileOutcome:
    """Move or trash the files of newly rejected contents and log it in `group` (the
    decision's group). The caller commits. Files that fail stay where they are, marked."""
    outcome = FileOutcome()
    if action == "mark" or group is None:
        return outcome
    if action not in REJECTED_ACTIONS:
        raise ValueError(f"unknown rejected-file action {action!r}")
    if action == "move" and not os.fspath(folder):
        outcome.errors.append("no folder set for rejected files; they were only marked")
        return outcome
    taken = path_taken(session)
    for image in _images_of(session, content_ids):
        source = Path(image.path)
        try:
            if action == "move":
                destination = move_to_folder(source, Path(folder), taken)
                new = os.fspath(destination)
                relocate_row(session, image.path, new)
            else:
                new = send_to_trash(source)
                image.status = ImageStatus.MISSING.value
        except FileActionError as exc:
            outcome.errors.append(str(exc))
            continue
        outcome.moves.append((image.content_id, os.fspath(source), new))
    if outcome.moves:
        record_path_changes(session, outcome.moves, group=group)
    return outcome


def replay_path_changes(session: Session, changes: Sequence[Change]) -> FileOutcome:
    """Perform the file side of an undo or redo: `changes` as db.review.undo/redo returned
    them (old_value = where the file is now, new_value = where it has to go)."""
    outcome = FileOutcome()
    for change in changes:
        if change.field != "path" or change.old_value is None or change.new_value is None:
            continue
        current, target = change.old_value, change.new_value
        try:
            if is_trash_marker(current):  # undo of a trash: restore it
                restore_from_trash(Path(target))
                _set_status(session, target, ImageStatus.OK)
            elif is_trash_marker(target):  # redo of a trash
                send_to_trash(Path(current))
                _set_status(session, current, ImageStatus.MISSING)
            else:
                if not Path(current).exists():
                    raise FileActionError(f"cannot move {current} back: it is gone")
                move_back(Path(current), Path(target))
                relocate_row(session, current, target)
        except FileActionError as exc:
            outcome.errors.append(str(exc))
            continue
        outcome.moves.append((change.content_id, current, target))
    return outcome
