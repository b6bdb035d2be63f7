"""Copy (or move) the pictures a filter matches into a folder, for sharing or training (no Qt).

Guarantees:
- nothing is ever overwritten: a clashing name gets ` (2)`, ` (3)`… (the first free name;
  with captions, a name is free only when `NAME.txt` is free too), and a copy is written
  under a temporary name and then linked into place, so another program writing the same
  name meanwhile is not overwritten either;
- the copy keeps the original's modification and access times (and permission bits);
- `strip_metadata` writes the picture through library.strip_metadata (no generation
  metadata left; lossless formats pixel-identical; a file that cannot be cleaned is
  reported and not written);
- `move` moves the original files instead (undoable: the moves are one group of "path"
  changes in the review log, source "cli", so the app's Ctrl+Z moves them back; the
  library's rows follow the files);
- privacy: a flagged picture that nobody has reviewed is exported only when the filter asks
  for flagged pictures explicitly (`is:flagged`), never because a broader filter happens
  to include it.

Captions (`NAME.txt` beside each picture, one line, as LoRA trainers read them): the tags at
or above the tag threshold (most probable first; underscores as the tagger writes them, or
spaces), the prompt, or both (the prompt, then the tags it does not already contain).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from db.filters import ImageFilter
from db.interop import PictureFacts, folder_paths, matching_rows, picture_facts
from db.queries import GridRow
from db.review import record_path_changes
from db.transaction import pause_for_other_writers, write_transaction
from library.file_actions import path_taken, relocate_row, unique_destination
from library.strip_metadata import StripError, strip_file

CAPTION_MODES = ("tags", "prompt", "both")
TAG_STYLES = ("underscores", "spaces")
LAYOUTS = ("flat", "folders")
CAPTION_SUFFIX = ".txt"
CHUNK = 200  # files per write transaction when moving


class ExportError(ValueError):
    """The export cannot start (bad destination, conflicting options)."""


@dataclass(frozen=True)
class ExportOptions:
    destination: Path
    strip_metadata: bool = False
    captions: str | None = None  # one of CAPTION_MODES
    tag_style: str = "underscores"
    layout: str = "flat"
    move: bool = False
    tag_threshold: float = 0.2

    def check(self) -> None:
        if self.move and self.strip_metadata:
            raise ExportError("--move takes the original files as they are; --strip-metadata "
                              "writes cleaned copies: use one or the other")
        if self.captions is not None and self.captions not in CAPTION_MODES:
            raise ExportError(f"captions must be one of {', '.join(CAPTION_MODES)}")
        if self.tag_style not in TAG_STYLES:
            raise ExportError(f"tag style must be one of {', '.join(TAG_STYLES)}")
        if self.layout not in LAYOUTS:
            raise ExportError(f"layout must be one of {', '.join(LAYOUTS)}")
        if self.destination.exists() and not self.destination.is_dir():
            raise ExportError(f"{self.destination} exists and is not a folder")


@dataclass
class ExportReport:
    exported: int = 0  # pictures copied or moved
    renamed: int = 0  # of those, written under a " (n)" name
    stripped: int = 0
    reencoded: list[str] = field(default_factory=list)  # "path: how and why"
    captions: int = 0
    without_caption: int = 0  # nothing to write (no tags above the threshold / no prompt)
    skipped_private: int = 0  # flagged, unreviewed, and the filter did not ask for them
    errors: list[str] = field(default_factory=list)
    undo_group: int | None = None  # the review-log group of a move


@dataclass(frozen=True)
class _Item:
    image_id: int
    content_id: int | None
    path: str
    folder_id: int | None


def privacy_allows(row: GridRow, image_filter: ImageFilter) -> bool:
    """May this picture leave the library under this filter? A flagged picture nobody has
    reviewed only when the filter names flagged pictures (`is:flagged`)."""
    return not (row.flagged and row.decision == "none") or image_filter.flagged is True


def caption_text(mode: str, prompt: str | None, tags: Sequence[str],
                 tag_style: str = "underscores") -> str | None:
    """One line of caption, or None when there is nothing to say."""
    words = [tag.replace("_", " ") if tag_style == "spaces" else tag for tag in tags]
    # Trainers read the first line only: a multi-line prompt becomes one line.
    line = " ".join(prompt.split()) if prompt and prompt.strip() else None
    if mode == "tags":
        return ", ".join(words) or None
    if mode == "prompt":
        return line
    if line is None:
        return ", ".join(words) or None
    present = {part.strip().lower() for part in line.split(",")}
    extra = [w for w in words if w.lower() not in present
             and w.replace("_", " ").lower() not in present
             and w.replace(" ", "_").lower() not in present]
    return ", ".join([line, *extra])


def export_files(sessions: Any, image_filter: ImageFilter, options: ExportOptions,
                 progress: Callable[[int, int], None] | None = None) -> ExportReport:
    """Export what `image_filter` matches; see the module docstring. `progress(done, total)`
    is called after each picture."""
    options.check()
    report = ExportReport()
    items = list(_plan(sessions, image_filter, report))
    if not items:
        return report
    options.destination.mkdir(parents=True, exist_ok=True)
    with sessions() as session:
        folders = folder_paths(session)
    done = 0
    for start in range(0, len(items), CHUNK):
        chunk = items[start:start + CHUNK]
        facts: dict[int, PictureFacts] = {}
        if options.captions:
            with sessions() as session:
                facts = picture_facts(session, [i.content_id for i in chunk
                                                if i.content_id is not None],
                                      options.tag_threshold)
        if options.move:
            interrupted = _move_chunk(sessions, chunk, folders, facts, options, report)
        else:
            interrupted = False
            for item in chunk:
                _copy_one(item, folders, facts, options, report)
        done += len(chunk)
        if progress is not None:
            progress(done, len(items))
        if interrupted:
            raise KeyboardInterrupt
    return report


def _plan(sessions: Any, image_filter: ImageFilter, report: ExportReport) -> Iterator[_Item]:
    # The whole list is read first: moving renames files, and a name-sorted keyset walk
    # would otherwise meet a moved file again under its new name.
    for row in matching_rows(sessions, image_filter):
        if not privacy_allows(row, image_filter):
            report.skipped_private += 1
            continue
        yield _Item(row.image_id, row.content_id, row.path, row.folder_id)


def target_folder(item_path: str, folder_id: int | None, folders: dict[int, str],
                  options: ExportOptions) -> Path:
    """Where a picture goes: DEST, or for `folders` DEST/<watched folder name>/<subfolders>."""
    if options.layout == "flat":
        return options.destination
    source = Path(item_path)
    root = folders.get(folder_id) if folder_id is not None else None
    if root is not None:
        try:
            relative = source.parent.relative_to(root)
            return options.destination / Path(root).name / relative
        except ValueError:
            pass
    return options.destination / source.parent.name


def _taken_with_caption(base: Callable[[Path], bool],
                        captions: bool) -> Callable[[Path], bool]:
    if not captions:
        return base
    return lambda candidate: base(candidate) or base(candidate.with_suffix(CAPTION_SUFFIX))


def _copy_one(item: _Item, folders: dict[int, str], facts: dict[int, PictureFacts],
              options: ExportOptions, report: ExportReport) -> None:
    source = Path(item.path)
    folder = target_folder(item.path, item.folder_id, folders, options)
    taken = _taken_with_caption(Path.exists, options.captions is not None)
    try:
        stat = source.stat()
        data: bytes | None = None
        if options.strip_metadata:
            result = strip_file(source)
            data = result.data
            if result.reencoded:
                report.reencoded.append(f"{source}: {result.reencoded}")
        folder.mkdir(parents=True, exist_ok=True)
        target = _write_exclusively(folder, source.name, taken, source, data, stat)
    except StripError as exc:
        report.errors.append(str(exc))
        return
    except OSError as exc:
        report.errors.append(f"{source}: cannot export ({exc.strerror or exc})")
        return
    report.exported += 1
    report.stripped += options.strip_metadata
    report.renamed += target.name != source.name
    _write_caption(item, target, facts, options, report)


def _write_exclusively(folder: Path, name: str, taken: Callable[[Path], bool], source: Path,
                       data: bytes | None, stat: os.stat_result) -> Path:
    """Write `data` (or a copy of `source`) as the first free name in `folder`; never
    overwrites, even if another program creates that name meanwhile."""
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".gentriage-", suffix=".partial")
    tmp = Path(temporary)
    try:
        with os.fdopen(handle, "wb") as out:
            if data is None:
                with source.open("rb") as original:
                    shutil.copyfileobj(original, out, 1024 * 1024)
            else:
                out.write(data)
        shutil.copymode(source, tmp)
        os.utime(tmp, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        while True:
            target = unique_destination(folder, name, taken)
            try:
                os.link(tmp, target)  # fails if the name appeared meanwhile
            except FileExistsError:
                continue
            except OSError:  # no hard links on this file system (FAT, some shares)
                if target.exists():
                    continue
                os.rename(tmp, target)
            return target
    finally:
        tmp.unlink(missing_ok=True)


def _write_caption(item: _Item, target: Path, facts: dict[int, PictureFacts],
                   options: ExportOptions, report: ExportReport) -> None:
    if not options.captions:
        return
    fact = facts.get(item.content_id) if item.content_id is not None else None
    text = caption_text(options.captions, fact.prompt if fact else None,
                        fact.tags if fact else (), options.tag_style)
    if text is None:
        report.without_caption += 1
        return
    caption = target.with_suffix(CAPTION_SUFFIX)
    try:
        with caption.open("x", encoding="utf-8") as out:  # free by construction; "x" anyway
            out.write(text + "\n")
    except OSError as exc:
        report.errors.append(f"{caption}: cannot write the caption ({exc.strerror or exc})")
        return
    report.captions += 1


def _move_chunk(sessions: Any, chunk: Sequence[_Item], folders: dict[int, str],
                facts: dict[int, PictureFacts], options: ExportOptions,
                report: ExportReport) -> bool:
    """Move one chunk's files in one write transaction that records every move that
    happened (even when interrupted half-way: then True is returned and the caller stops)."""
    moves: list[tuple[int | None, str, str]] = []
    moved_targets: list[tuple[_Item, Path]] = []
    interrupted = False
    started = time.monotonic()
    with write_transaction(sessions) as session:
        taken = _taken_with_caption(path_taken(session), options.captions is not None)
        for item in chunk:
            try:
                source = Path(item.path)
                if not source.is_file():
                    report.errors.append(f"{source}: cannot move (the file is gone)")
                    continue
                folder = target_folder(item.path, item.folder_id, folders, options)
                folder.mkdir(parents=True, exist_ok=True)
                target = unique_destination(folder, source.name, taken)
                shutil.move(os.fspath(source), os.fspath(target))
            except KeyboardInterrupt:
                interrupted = True
                break
            except OSError as exc:
                report.errors.append(f"{item.path}: cannot move ({exc.strerror or exc})")
                continue
            relocate_row(session, item.path, os.fspath(target))
            moves.append((item.content_id, item.path, os.fspath(target)))
            moved_targets.append((item, target))
        if moves:
            report.undo_group = record_path_changes(session, moves, group=report.undo_group,
                                                    source="cli")
    pause_for_other_writers(time.monotonic() - started)
    for item, target in moved_targets:
        report.exported += 1
        report.renamed += target.name != Path(item.path).name
        _write_caption(item, target, facts, options, report)
    return interrupted
