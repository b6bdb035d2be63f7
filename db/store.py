"""The library side's reads and writes: watched folders, files, contents, generation metadata.

Qt-free; every function takes the caller's session and never commits — the caller decides the
transaction (the scanner commits per batch of files, so transactions stay short while the app
and a headless scan share the database).

Identity rules (db/schema.py): a file (`Image`, by path) shows a content (`Content`, by
SHA-256); reviews and results belong to the content. Consequences implemented here:
- a file whose bytes change points to a new content; the old content keeps its review;
- a new path whose content matches an image already marked `missing` IS that image, moved or
  renamed: the existing row takes the new path (its id, first_seen and review follow);
- forgetting files (removing a folder) keeps the contents, so re-adding the folder finds every
  review again; the caller removes the thumbnails of contents no file shows any more (returned
  as "orphaned" SHA-256s).
"""

from __future__ import annotations

import enum
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from sqlalchemy import ColumnElement, and_, delete, exists, func, select, update
from sqlalchemy.orm import Session

from db.dialect import insert_for
from db.review import record_path_changes
from db.schema import (
    AnalysisResult,
    Content,
    Folder,
    Generation,
    Image,
    ImageStatus,
    LoraUse,
    QueuedAnalysis,
    utcnow,
)

# SQLite's bound-parameter limit is 32766 in current builds; stay far below it.
_IN_CHUNK = 500


class LoraLike(Protocol):
    # Read-only properties: a protocol's plain attributes are invariant, and
    # GenerationMetadata's concrete list/dict types must satisfy Sequence/Mapping here.
    @property
    def name(self) -> str: ...
    @property
    def weight(self) -> float | None: ...


class GenerationLike(Protocol):
    """What library.metadata.GenerationMetadata provides (db/ may not import library/)."""

    @property
    def generator(self) -> str | None: ...
    @property
    def generator_detail(self) -> str | None: ...
    @property
    def prompt(self) -> str | None: ...
    @property
    def negative_prompt(self) -> str | None: ...
    @property
    def seed(self) -> int | None: ...
    @property
    def steps(self) -> int | None: ...
    @property
    def sampler(self) -> str | None: ...
    @property
    def scheduler(self) -> str | None: ...
    @property
    def cfg_scale(self) -> float | None: ...
    @property
    def width(self) -> int | None: ...
    @property
    def height(self) -> int | None: ...
    @property
    def model(self) -> str | None: ...
    @property
    def model_hash(self) -> str | None: ...
    @property
    def loras(self) -> Sequence[LoraLike]: ...
    @property
    def raw(self) -> Mapping[str, str]: ...


@dataclass
class FileFacts:
    """Everything ingest learned about one readable image file."""

    path: str
    size: int
    mtime_ns: int
    sha256: str
    width: int | None
    height: int | None
    format: str | None
    has_thumbnail: bool
    generation: GenerationLike | None = None
    # Families (library.families): the stack key (None: no prompt) and the perceptual hash
    # as SQLite stores it (signed 64-bit; None when it could not be computed).
    stack_key: str | None = None
    phash: int | None = None


class KnownFile(NamedTuple):
    image_id: int
    size: int
    mtime_ns: int
    status: str


class RecordKind(str, enum.Enum):
    NEW = "new"  # a path the library did not know
    UPDATED = "updated"  # a known path, re-read (changed, reappeared, or was broken)
    MOVED = "moved"  # a known (missing) image found again at another path


@dataclass
class Recorded:
    image_id: int
    kind: RecordKind
    content_id: int | None
    new_content: bool = False
    moved_from: str | None = None
    orphaned_sha256: str | None = None  # the path's previous content, now shown by no file


# ----------------------------------------------------------------------------- folders

def normalise_folder_path(path: str | os.PathLike[str]) -> str:
    """A watched folder's stored form: absolute with every symlink resolved, so a folder
    reached through a link is the same folder (its files are not indexed twice)."""
    return os.path.realpath(os.fspath(path))


def get_folder(session: Session, path: str | os.PathLike[str]) -> Folder | None:
    # The spelling as given too: folders stored before paths were resolved keep working.
    spellings = {normalise_folder_path(path), os.path.normpath(os.path.abspath(os.fspath(path)))}
    return session.scalar(select(Folder).where(Folder.path.in_(spellings))
                          .order_by(Folder.id).limit(1))


def add_folder(session: Session, path: str | os.PathLike[str], sensitive: bool = False) -> Folder:
    """The watched folder at `path`, created if new (an existing one keeps its settings)."""
    folder = get_folder(session, path)
    if folder is None:
        folder = Folder(path=normalise_folder_path(path), sensitive=sensitive)
        session.add(folder)
        session.flush()
    return folder


def list_folders(session: Session) -> list[Folder]:
    return list(session.scalars(select(Folder).order_by(Folder.path)))


def folder_path(session: Session, folder_id: int) -> str | None:
    """The watched folder's path (None: no such folder)."""
    return session.scalar(select(Folder.path).where(Folder.id == folder_id))


def set_folder_sensitive(session: Session, folder_id: int, sensitive: bool) -> bool:
    """Mark a watched folder sensitive (its unanalysed images stay blurred) or not; False
    when there is no such folder."""
    folder = session.get(Folder, folder_id)
    if folder is None:
        return False
    folder.sensitive = sensitive
    return True


def mark_folder_scanned(session: Session, folder_id: int) -> None:
    session.execute(update(Folder).where(Folder.id == folder_id).values(last_scan_at=utcnow()))


def remove_folder(session: Session, folder_id: int) -> list[str]:
    """Stop watching a folder and forget its files. Contents (and their reviews, results and
    metadata) are kept so re-adding the folder restores everything; analysis queued for
    contents no file shows any more is dropped. Returns those contents' SHA-256s (their
    thumbnails can go)."""
    content_ids = set(session.scalars(
        select(Image.content_id).where(Image.folder_id == folder_id,
                                       Image.content_id.is_not(None)).distinct()))
    session.execute(delete(Image).where(Image.folder_id == folder_id))
    session.execute(delete(Folder).where(Folder.id == folder_id))
    orphans = orphaned_contents(session, content_ids)
    if orphans:
        orphan_ids = list(orphans)
        for chunk in _chunks(orphan_ids):
            session.execute(delete(QueuedAnalysis).where(QueuedAnalysis.content_id.in_(chunk)))
    return sorted(orphans.values())


# ----------------------------------------------------------------------------- reads

def known_files(session: Session, folder_id: int) -> dict[str, KnownFile]:
    """Every file recorded under a folder: path → (image id, size, mtime_ns, status).

    This is the whole cost of an unchanged rescan on the database side, so it selects bare
    columns (no ORM objects).
    """
    # Executed on the Connection: a Core result, without the ORM's per-row bookkeeping.
    rows = session.connection().execute(
        select(Image.path, Image.id, Image.size, Image.mtime_ns, Image.status)
        .where(Image.folder_id == folder_id))
    return {path: KnownFile(image_id, size, mtime_ns, status)
            for path, image_id, size, mtime_ns, status in rows}


def files_by_path(session: Session, paths: Iterable[str]) -> dict[str, KnownFile]:
    found: dict[str, KnownFile] = {}
    for chunk in _chunks(list(paths)):
        rows = session.execute(
            select(Image.path, Image.id, Image.size, Image.mtime_ns, Image.status)
            .where(Image.path.in_(chunk)))
        found.update({p: KnownFile(i, s, m, st) for p, i, s, m, st in rows})
    return found


def image_ids_for_paths(session: Session, paths: Iterable[str]) -> list[int]:
    """Ids of the images recorded at these paths (unknown paths are left out), ascending."""
    ids: set[int] = set()
    for chunk in _chunks(list(paths)):
        ids.update(session.scalars(select(Image.id).where(Image.path.in_(chunk))))
    return sorted(ids)


def first_image_of(session: Session, content_ids: Iterable[int]) -> int | None:
    """The lowest image id showing any of these contents (None: no file shows them)."""
    best: int | None = None
    for chunk in _chunks(sorted(set(content_ids))):
        found = session.scalar(select(func.min(Image.id)).where(Image.content_id.in_(chunk)))
        if found is not None and (best is None or found < best):
            best = found
    return best


def path_under(directory: str) -> ColumnElement[bool]:
    """Condition: the image's path is inside `directory` (recursively).

    A range on the unique path index rather than LIKE: SQLite's LIKE ignores ASCII case
    (`/pics/Keep` would match `/pics/keep/…` on a case-sensitive file system) and needs the
    folder name's own % and _ escaped; the range is exact and uses the index."""
    prefix = directory.rstrip(os.sep) + os.sep
    upper = prefix[:-1] + chr(ord(os.sep) + 1)
    return and_(Image.path >= prefix, Image.path < upper)


def images_under(session: Session, directory: str) -> list[tuple[int, str]]:
    """(id, path) of every image inside `directory` (recursively)."""
    rows = session.execute(select(Image.id, Image.path).where(path_under(directory)))
    return [(image_id, path) for image_id, path in rows]


def paths_of_sha256(session: Session, sha256: str) -> dict[str, str]:
    """path → status of every file row showing the content with this SHA-256."""
    rows = session.execute(
        select(Image.path, Image.status)
        .join(Content, Image.content_id == Content.id).where(Content.sha256 == sha256))
    return {path: status for path, status in rows}


def orphaned_contents(session: Session, content_ids: Iterable[int | None]) -> dict[int, str]:
    """Of `content_ids`, those no image row refers to any more: content id → SHA-256."""
    ids = [c for c in set(content_ids) if c is not None]
    orphans: dict[int, str] = {}
    for chunk in _chunks(ids):
        rows = session.execute(
            select(Content.id, Content.sha256).where(
                Content.id.in_(chunk),
                ~exists().where(Image.content_id == Content.id)))
        orphans.update({cid: sha for cid, sha in rows})
    return orphans


def orphaned_sha256s(session: Session, sha256s: Iterable[str]) -> set[str]:
    """Of `sha256s`, those whose content no image row refers to (or that have no content)."""
    wanted = list(set(sha256s))
    referenced: set[str] = set()
    for chunk in _chunks(wanted):
        referenced.update(session.scalars(
            select(Content.sha256).where(Content.sha256.in_(chunk),
                                         exists().where(Image.content_id == Content.id))))
    return set(wanted) - referenced


def referenced_sha256s(session: Session) -> set[str]:
    """SHA-256 of every content some file (ok, broken or missing) shows: what the thumbnail
    cache keeps in a full prune."""
    return set(session.scalars(
        select(Content.sha256).where(exists().where(Image.content_id == Content.id))))


# ----------------------------------------------------------------------------- writes

def record_image(session: Session, facts: FileFacts, folder_id: int | None,
                 *, source: str = "scan") -> Recorded:
    """Upsert the file at `facts.path` (see the module doc for the identity rules)."""
    content_id, new_content = _get_or_create_content(session, facts)
    image = session.scalar(select(Image).where(Image.path == facts.path))
    kind = RecordKind.UPDATED
    moved_from: str | None = None
    previous_content: int | None = None
    if image is None and not new_content:
        image = session.scalar(
            select(Image).where(Image.content_id == content_id,
                                Image.status == ImageStatus.MISSING.value)
            .order_by(Image.id).limit(1))
        if image is not None:
            kind, moved_from = RecordKind.MOVED, image.path
            _log_path_change(session, content_id, image.path, facts.path, source)
            image.path = facts.path
    if image is None:
        kind = RecordKind.NEW
        image = Image(path=facts.path, first_seen=utcnow())
        session.add(image)
    elif image.content_id != content_id:
        previous_content = image.content_id

    image.name = os.path.basename(facts.path)
    image.folder_id = folder_id
    image.content_id = content_id
    image.size = facts.size
    image.mtime_ns = facts.mtime_ns
    image.status = ImageStatus.OK.value
    image.error = None
    image.indexed_at = utcnow()
    image.has_thumbnail = facts.has_thumbnail
    session.flush()

    if facts.generation is not None and (new_content or not _has_generation(session, content_id)):
        _write_generation(session, content_id, facts.generation)
    _enqueue_if_unanalysed(session, content_id)
    orphan = orphaned_contents(session, [previous_content]) if previous_content else {}
    return Recorded(image.id, kind, content_id, new_content, moved_from,
                    next(iter(orphan.values()), None))


def record_broken(session: Session, path: str, folder_id: int | None, size: int, mtime_ns: int,
                  error: str) -> Recorded:
    """Record a file that exists but cannot be indexed; `error` is the user-facing reason."""
    image = session.scalar(select(Image).where(Image.path == path))
    kind = RecordKind.UPDATED
    previous_content: int | None = None
    if image is None:
        kind = RecordKind.NEW
        image = Image(path=path, first_seen=utcnow())
        session.add(image)
    else:
        previous_content = image.content_id
    image.name = os.path.basename(path)
    image.folder_id = folder_id
    image.content_id = None  # the path no longer shows that picture; its content keeps the review
    image.size = size
    image.mtime_ns = mtime_ns
    image.status = ImageStatus.BROKEN.value
    image.error = error
    image.indexed_at = utcnow()
    image.has_thumbnail = False
    session.flush()
    orphan = orphaned_contents(session, [previous_content]) if previous_content else {}
    return Recorded(image.id, kind, None, orphaned_sha256=next(iter(orphan.values()), None))


def mark_missing(session: Session, paths: Iterable[str]) -> list[int]:
    """Mark files gone from disk as missing (rows, reviews and thumbnails kept). Returns the
    ids of images whose status changed."""
    changed: list[int] = []
    for chunk in _chunks(list(paths)):
        ids = list(session.scalars(
            select(Image.id).where(Image.path.in_(chunk),
                                   Image.status != ImageStatus.MISSING.value)))
        if ids:
            session.execute(update(Image).where(Image.id.in_(ids))
                            .values(status=ImageStatus.MISSING.value))
            changed.extend(ids)
    return changed


def move_image(session: Session, old_path: str, new_path: str, *, folder_id: int | None = None,
               size: int | None = None, mtime_ns: int | None = None,
               source: str = "watch") -> int | None:
    """A file renamed or moved on disk: the row (and so its content's review) follows it.

    A row already at `new_path` is the file the rename replaced: it is dropped (its content
    is kept). Returns the moved image's id, or None when `old_path` was not recorded.
    """
    image = session.scalar(select(Image).where(Image.path == old_path))
    if image is None or old_path == new_path:
        return image.id if image is not None else None
    replaced = session.scalar(select(Image).where(Image.path == new_path))
    if replaced is not None:
        session.delete(replaced)
        session.flush()
    image.path = new_path
    image.name = os.path.basename(new_path)
    if folder_id is not None:
        image.folder_id = folder_id
    if size is not None:
        image.size = size
    if mtime_ns is not None:
        image.mtime_ns = mtime_ns
    if image.status == ImageStatus.MISSING.value:
        image.status = ImageStatus.OK.value if image.content_id else ImageStatus.BROKEN.value
        if image.content_id is not None:
            # The runner drops queued work of contents with no readable file: a file back in
            # view needs it again (record_image does the same for a reappearing file).
            _enqueue_if_unanalysed(session, image.content_id)
    if image.content_id is not None:
        _log_path_change(session, image.content_id, old_path, new_path, source)
    session.flush()
    return image.id


# ----------------------------------------------------------------------------- internals

def _chunks(items: Sequence, size: int = _IN_CHUNK) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _get_or_create_content(session: Session, facts: FileFacts) -> tuple[int, bool]:
    # INSERT … ON CONFLICT DO NOTHING: another process (the app and a headless scan share the
    # database) may insert the same picture at the same moment; no IntegrityError either way.
    # RETURNING gives the new id, and no row when the picture was there already (a
    # rowcount is not reported for this statement by every driver: psycopg says -1).
    inserted = session.execute(
        insert_for(session, Content)
        .values(sha256=facts.sha256, width=facts.width, height=facts.height, format=facts.format,
                stack_key=facts.stack_key, phash=facts.phash)
        .on_conflict_do_nothing(index_elements=[Content.sha256])
        .returning(Content.__table__.c.id)).scalar()
    created = inserted is not None
    content_id = inserted if created else session.scalar(
        select(Content.id).where(Content.sha256 == facts.sha256))
    assert content_id is not None
    if not created:
        # Fill in what an older row may lack (e.g. written before the size was known).
        session.execute(
            update(Content).where(Content.id == content_id, Content.width.is_(None))
            .values(width=facts.width, height=facts.height, format=facts.format))
        for column, value in ((Content.stack_key, facts.stack_key), (Content.phash, facts.phash)):
            if value is not None:
                session.execute(update(Content).where(Content.id == content_id, column.is_(None))
                                .values({column: value}))
    return content_id, created


def _has_generation(session: Session, content_id: int) -> bool:
    return session.scalar(select(exists().where(Generation.content_id == content_id))) or False


def _text(value: object) -> str | None:
    """Text SQLite can store: lone surrogates (from undecodable bytes) are replaced."""
    if value is None:
        return None
    text = str(value)
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text)


def _generation_is_empty(gen: GenerationLike) -> bool:
    return not (gen.generator or gen.prompt or gen.raw or gen.model or gen.loras)


def _write_generation(session: Session, content_id: int, gen: GenerationLike) -> None:
    if _generation_is_empty(gen):
        return
    session.execute(delete(Generation).where(Generation.content_id == content_id))
    session.add(Generation(
        content_id=content_id,
        generator=_text(gen.generator),
        generator_detail=_text(gen.generator_detail),
        prompt=_text(gen.prompt),
        negative_prompt=_text(gen.negative_prompt),
        # Text: ComfyUI seeds reach 2**64-1, past SQLite's signed 64-bit INTEGER.
        seed=str(int(gen.seed)) if gen.seed is not None else None,
        steps=gen.steps,
        sampler=_text(gen.sampler),
        scheduler=_text(gen.scheduler),
        cfg_scale=gen.cfg_scale,
        width=gen.width,
        height=gen.height,
        model=_text(gen.model),
        model_hash=_text(gen.model_hash),
        raw={_text(k): _text(v) for k, v in (gen.raw or {}).items()},
    ))
    session.flush()
    for lora in gen.loras or ():
        session.add(LoraUse(content_id=content_id, name=_text(lora.name) or "",
                            weight=lora.weight))


def _enqueue_if_unanalysed(session: Session, content_id: int) -> None:
    """Queue analysis for a content with no results yet (new, or re-added after its folder
    was forgotten)."""
    if session.scalar(select(exists().where(AnalysisResult.content_id == content_id))):
        return
    session.execute(
        insert_for(session, QueuedAnalysis).values(content_id=content_id, enqueued_at=utcnow())
        .on_conflict_do_nothing(index_elements=[QueuedAnalysis.content_id]))


def _log_path_change(session: Session, content_id: int, old_path: str, new_path: str,
                     source: str) -> None:
    # review_log keeps file moves beside review changes (schema: field "path"), one group
    # each; with a non-user source they are audit entries, never undo steps.
    record_path_changes(session, [(content_id, old_path, new_path)], source=source)
