"""Scanning watched folders into the library.

`scan_folders` walks each folder, compares every image file's size + mtime with what the
database recorded and re-reads only what changed:

- unchanged files cost one stat each (from the directory walk) and no read at all;
- new and changed files are ingested in parallel (library.ingest: read once, hash, decode once,
  metadata, thumbnail) on all cores — threads by default, see `DEFAULT_EXECUTOR`;
- files that vanished become `missing` (rows and reviews kept) *before* the new files are
  recorded, so a file moved or renamed inside the watched folders is matched by content hash
  and keeps its row (db.store.record_image);
- every database write happens on the calling thread, in short transactions of
  `BATCH_SIZE` files, or fewer when `BATCH_SECONDS` have passed since a batch's first file
  (new pictures reach the grid and the analysis while a long scan goes on).

Walking rules: hidden files and folders (dot names) are skipped, so are names without an image
suffix (`*.tmp`, `*.part`, captions, workflows); the format is then decided by the content.
Symlinked files are indexed; symlinked folders are not followed (no loops, no duplicate paths),
and a watched folder is stored under its real path (db.store.normalise_folder_path), so a
folder given through a link is the same watched folder. A folder given twice is scanned once.
A folder that cannot be listed is reported and its files are left as they were (not missing).
A known file whose name now holds a folder or a pipe is re-read and recorded broken.

Writes that fail are reported in one line per batch (`ScanSummary.unrecorded` counts the
files); a full disk stops the scan with db.engine.DatabaseError, since every later write
would fail the same way.

`LibraryIndexer` is the reusable engine: the watcher (library.watch) keeps one for its
lifetime so its worker pool stays warm. Given a `PictureHandoff` (library.handoff), it hands
each new file's decoded picture on to the analysis running in the same process (threads only:
a process pool's pictures would have to be pickled back, which costs more than a decode).
"""

from __future__ import annotations

import logging
import os
import stat
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import (
    FIRST_COMPLETED,
    Executor,
    Future,
    ThreadPoolExecutor,
    wait,
)
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, NamedTuple

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from db import store
from db.engine import (
    DatabaseError,
    database_path_of,
    describe_database_error,
    is_disk_full,
    session_factory,
)
from db.schema import ImageStatus
from db.transaction import write_transaction
from inference.decoding import import_numpy
from library.decode import IMAGE_SUFFIXES
from library.handoff import PictureHandoff
from library.ingest import IngestResult, ingest_many, stat_or_zero
from library.paths import storable_text
from library.thumbnails import ThumbnailCache

if TYPE_CHECKING:
    import multiprocessing.context

log = logging.getLogger(__name__)

BATCH_SIZE = 64  # files per DB transaction: short enough for a concurrent writer to get in
BATCH_SECONDS = 1.0  # … or fewer: a batch is recorded at the latest this long after it began
ExecutorKind = Literal["process", "thread"]
# Threads by default: Pillow's decoders, resize, JPEG encoding, SHA-256 and SQLite release the
# GIL, and threads start instantly — which matters for the watcher's small batches. Measured on
# the 2-core machine (benchmarks/bench_ingest.py prints both): threads 0.71–0.89× the bare
# single-core decode rate under load, worker processes 0.29–0.57× (pool start-up, results
# pickled back, and each worker re-importing the parent's __main__); in a quiet run processes
# reached 1.17× and threads 1.03×. "process" stays available for very large first scans.
DEFAULT_EXECUTOR: ExecutorKind = "thread"
UNSTORABLE_NAME = "file name is not valid UTF-8; rename the file to index it"

Progress = Callable[[int, int], None]  # (files done, files to ingest)
IdsCallback = Callable[[list[int]], None]  # image ids recorded by one committed batch
SessionSource = Engine | sessionmaker[Session]


@dataclass
class ScanSummary:
    seen: int = 0  # image files found on disk
    unchanged: int = 0
    indexed: int = 0  # new or changed files read and recorded as images
    broken: int = 0
    missing: int = 0  # files newly found gone
    moved: int = 0  # known pictures found at a new path (review kept)
    unrecorded: int = 0  # files read but not written to the library (errors say why)
    thumbnail_failures: int = 0
    errors: list[str] = field(default_factory=list)
    folders_lost: list[str] = field(default_factory=list)
    indexed_ids: list[int] = field(default_factory=list)
    broken_ids: list[int] = field(default_factory=list)
    missing_ids: list[int] = field(default_factory=list)
    moved_ids: list[int] = field(default_factory=list)
    thumbnail_errors: Counter[str] = field(default_factory=Counter)

    def finish(self) -> None:
        """Turn the counted thumbnail failures into one message per distinct reason."""
        for reason, count in self.thumbnail_errors.items():
            self.errors.append(f"thumbnails not written for {count} image(s): {reason}")
        self.thumbnail_errors.clear()


class FoundFile(NamedTuple):
    path: str  # as the file system spells it (may hold surrogate escapes)
    size: int
    mtime_ns: int


def storable_path(path: str) -> tuple[str, bool]:
    """(text to store, whether it is the real path). Names that are not valid UTF-8 cannot
    round-trip through SQLite text; they are stored escaped (library.paths.storable_text)
    and recorded as broken."""
    text = storable_text(path)
    return text, text is path


def is_image_name(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


def walk_images(root: str, *, skip_dirs: frozenset[str] = frozenset(),
                unreadable: list[tuple[str, str]] | None = None) -> Iterator[FoundFile]:
    """Every candidate image file under `root` with its size and mtime (one stat each).
    Folders that cannot be listed are appended to `unreadable` as (folder, reason)."""
    stack = [root]
    while stack:
        directory = stack.pop()
        try:
            with os.scandir(directory) as it:
                entries = list(it)
        except OSError as exc:
            if unreadable is not None:
                unreadable.append((directory, exc.strerror or str(exc)))
            continue
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    if entry.path not in skip_dirs:
                        stack.append(entry.path)
                    continue
            except OSError:
                continue
            dot = name.rfind(".")
            if dot < 0 or name[dot:].lower() not in IMAGE_SUFFIXES:
                continue
            try:
                info = entry.stat()  # follows a symlinked file; a dangling link is skipped
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode):
                yield FoundFile(entry.path, info.st_size, info.st_mtime_ns)


def _worker_context() -> multiprocessing.context.BaseContext:
    """Worker processes forked from a fork server that has already imported the ingest code
    (Pillow, decoders, metadata parsers): a new pool then starts in milliseconds, and no
    worker is forked from a process running Qt or watchdog threads."""
    import multiprocessing  # here: only worker processes need it (a rescan starts faster)

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["library.ingest"])
    return context


def _as_sessions(source: SessionSource) -> sessionmaker[Session]:
    return session_factory(source) if isinstance(source, Engine) else source


def _chunked(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class LibraryIndexer:
    """Ingests files in parallel and records them from the calling thread."""

    def __init__(self, sessions: SessionSource, thumbnails: ThumbnailCache | None,
                 workers: int | None = None, executor: ExecutorKind = DEFAULT_EXECUTOR,
                 on_recorded: IdsCallback | None = None,
                 pictures: PictureHandoff | None = None) -> None:
        self.sessions = _as_sessions(sessions)
        self.thumbnails = thumbnails
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.executor_kind = executor
        self.pictures = pictures if executor == "thread" else None
        # Called on the recording thread after each committed batch with the ids of the
        # images it indexed, moved or found broken, so a window shows them while the scan
        # goes on (the app's scan bridge) without polling the database.
        self.on_recorded = on_recorded
        self._pool: Executor | None = None

    def __enter__(self) -> LibraryIndexer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    # ------------------------------------------------------------------ parallel ingest

    def _executor(self) -> Executor:
        if self._pool is None:
            if self.executor_kind == "process":
                from concurrent.futures import ProcessPoolExecutor  # imports multiprocessing

                self._pool = ProcessPoolExecutor(self.workers, mp_context=_worker_context())
            else:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="ingest")
        return self._pool

    def ingest(self, paths: Sequence[str]) -> Iterator[IngestResult]:
        """Ingest `paths` on all workers; results come back as they complete."""
        if paths:
            import_numpy()  # here, once, before worker threads hash and decode at once
        if self.workers == 1 or len(paths) < 2:
            for path in paths:
                yield from ingest_many([path], self.thumbnails, self.pictures)
            return
        # A few files per task amortises the round trip for small files, yet leaves enough
        # tasks to keep every worker busy to the end.
        per_task = max(1, min(16, len(paths) // (self.workers * 8)))
        tasks = iter(_chunked(paths, per_task))
        pool = self._executor()
        in_flight: set[Future[list[IngestResult]]] = set()
        try:
            while True:
                while len(in_flight) < self.workers * 3:
                    chunk = next(tasks, None)
                    if chunk is None:
                        break
                    in_flight.add(pool.submit(ingest_many, list(chunk), self.thumbnails,
                                              self.pictures))
                if not in_flight:
                    return
                done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    yield from future.result()
        finally:
            for future in in_flight:
                future.cancel()

    # ------------------------------------------------------------------ recording

    def record(self, batch: Sequence[tuple[IngestResult, int | None]],
               summary: ScanSummary) -> list[str]:
        """Record one batch in one transaction (retried once if the database was busy).
        Returns the SHA-256s of contents that may have lost their last file."""
        for attempt in (1, 2):
            trial = ScanSummary()
            try:
                with write_transaction(self.sessions) as session:
                    orphans = [sha for result, folder_id in batch
                               if (sha := _record_one(session, result, folder_id, trial))]
            except SQLAlchemyError as exc:
                log.debug("recording a batch failed", exc_info=True)
                database = database_path_of(self.sessions.kw.get("bind"))
                reason = describe_database_error(exc, database) or _first_line(exc)
                if is_disk_full(exc, database):
                    raise DatabaseError(f"cannot write to the library database: {reason}") \
                        from exc
                if attempt == 2:
                    summary.unrecorded += len(batch)
                    summary.errors.append(
                        f"could not record {len(batch)} file(s) in the library: {reason}")
                continue
            _merge(summary, trial)
            recorded = trial.indexed_ids + trial.moved_ids + trial.broken_ids
            if recorded and self.on_recorded is not None:
                self.on_recorded(recorded)
            return orphans
        return []

    def index_paths(self, items: Sequence[tuple[str, int | None]], summary: ScanSummary,
                    progress: Progress | None = None,
                    defer: Callable[[IngestResult], bool] | None = None) -> list[IngestResult]:
        """Ingest and record `(path, folder_id)` items. Results for which `defer` returns True
        are not recorded but returned (the watcher retries unreadable files before calling
        them broken)."""
        folder_of: dict[str, int | None] = {}
        readable: list[str] = []
        batch: list[tuple[IngestResult, int | None]] = []
        for path, folder_id in items:
            db_path, real = storable_path(path)
            if real:
                folder_of[path] = folder_id
                readable.append(path)
            else:
                size, mtime_ns = stat_or_zero(path)
                batch.append((IngestResult(db_path, size, mtime_ns, error=UNSTORABLE_NAME),
                              folder_id))
        deferred: list[IngestResult] = []
        orphans: list[str] = []
        done = 0
        batch_began = time.monotonic()
        for result in self.ingest(readable):
            done += 1
            if progress is not None:
                progress(done, len(readable))
            if defer is not None and not result.ok and defer(result):
                deferred.append(result)
                continue
            if not batch:
                batch_began = time.monotonic()
            batch.append((result, folder_of[result.path]))
            if len(batch) >= BATCH_SIZE or time.monotonic() - batch_began >= BATCH_SECONDS:
                orphans += self.record(batch, summary)
                batch = []
        if batch:
            orphans += self.record(batch, summary)
        self._drop_orphan_thumbnails(orphans)
        return deferred

    def _drop_orphan_thumbnails(self, candidates: Iterable[str]) -> None:
        shas = set(candidates)
        if not shas or self.thumbnails is None:
            return
        # Re-checked at the end: another file of this batch may show the same picture again.
        with self.sessions() as session:
            still_orphaned = store.orphaned_sha256s(session, shas)
        self.thumbnails.remove_many(still_orphaned)

    # ------------------------------------------------------------------ whole scan

    def scan(self, folder_paths: Iterable[str | os.PathLike[str]],
             progress: Progress | None = None) -> ScanSummary:
        summary = ScanSummary()
        with write_transaction(self.sessions) as session:
            folders = [store.add_folder(session, path) for path in folder_paths]
            all_roots = {f.path for f in store.list_folders(session)}
            # A folder given twice (or once through a link) is one watched folder: scan it once.
            folder_ids = list(dict.fromkeys((f.id, f.path) for f in folders))

        to_ingest: list[tuple[str, int | None]] = []
        scanned: list[int] = []
        for folder_id, root in folder_ids:
            if not os.path.isdir(root):
                summary.folders_lost.append(root)
                summary.errors.append(
                    f"watched folder {root} is not available (removed or on an unplugged "
                    "drive); its images are left as they were")
                continue
            to_ingest += self._compare_folder(folder_id, root, all_roots, summary)
            scanned.append(folder_id)

        self.index_paths(to_ingest, summary, progress)
        with write_transaction(self.sessions) as session:
            for folder_id in scanned:
                store.mark_folder_scanned(session, folder_id)
        self._refresh_families(summary, progress)
        summary.finish()
        return summary

    def _refresh_families(self, summary: ScanSummary, progress: Progress | None) -> None:
        """Stack keys and hashes older libraries lack, and the duplicate groups
        (library.family_ops.refresh). A failure here costs the scan nothing."""
        from library import family_ops

        changed = bool(summary.indexed or summary.missing or summary.moved or summary.broken)
        try:
            family_ops.refresh(self.sessions, self.thumbnails, progress, changed=changed)
        except (SQLAlchemyError, OSError, ValueError) as exc:
            log.exception("updating stacks and duplicate groups failed")
            summary.errors.append(f"could not update duplicate groups: {exc}")

    def _known_files(self, folder_id: int) -> dict[str, store.KnownFile]:
        with self.sessions() as session:
            return store.known_files(session, folder_id)

    def _compare_folder(self, folder_id: int, root: str, all_roots: set[str],
                        summary: ScanSummary) -> list[tuple[str, int | None]]:
        """List the folder, mark vanished files missing, return what must be (re)read."""
        nested = frozenset(r for r in all_roots if r != root and r.startswith(root + os.sep))
        unreadable: list[tuple[str, str]] = []
        # The known rows are read on another thread while this one walks the folder (both
        # wait mostly in C: SQLite and stat() release the GIL).
        with ThreadPoolExecutor(1, thread_name_prefix="known-files") as reader:
            known_future = reader.submit(self._known_files, folder_id)
            found = list(walk_images(root, skip_dirs=nested, unreadable=unreadable))
            known = known_future.result()
        summary.errors += [f"cannot list folder {d} ({reason}); its files are left as they were"
                           for d, reason in unreadable]
        # Files under an unlistable folder or a nested watched folder are not "vanished".
        not_ours = tuple(d.rstrip(os.sep) + os.sep for d, _ in unreadable) + tuple(
            r + os.sep for r in nested)

        summary.seen += len(found)
        missing_value = ImageStatus.MISSING.value
        work: list[tuple[str, int | None]] = []
        listed: set[str] = set()
        for item in found:
            db_path = storable_path(item.path)[0]
            listed.add(db_path)
            row = known.get(db_path)
            if (row is not None and row.size == item.size and row.mtime_ns == item.mtime_ns
                    and row.status != missing_value):
                summary.unchanged += 1
            else:
                work.append((item.path, folder_id))
        vanished = [path for path, row in known.items()
                    if path not in listed and row.status != missing_value
                    and not path.startswith(not_ours)]
        # Not listed but still there: a folder or pipe now has the file's name. Re-read it, so
        # it is recorded broken (with the reason) rather than missing.
        replaced = {path for path in vanished if os.path.lexists(path)}
        work += [(path, folder_id) for path in sorted(replaced)]
        vanished = [path for path in vanished if path not in replaced]
        if vanished:
            with write_transaction(self.sessions) as session:
                ids = store.mark_missing(session, vanished)
            summary.missing += len(ids)
            summary.missing_ids += ids
        return work


def _record_one(session: Session, result: IngestResult, folder_id: int | None,
                summary: ScanSummary) -> str | None:
    if result.vanished:
        ids = store.mark_missing(session, [result.path])
        summary.missing += len(ids)
        summary.missing_ids += ids
        return None
    if not result.ok:
        recorded = store.record_broken(session, result.path, folder_id, result.size,
                                       result.mtime_ns, result.error or "unreadable")
        summary.broken += 1
        summary.broken_ids.append(recorded.image_id)
        return recorded.orphaned_sha256
    assert result.sha256 is not None
    # A file of this picture recorded as present but gone from disk is this file, moved: its
    # deletion may not have been seen yet (a watcher's event still in flight, or a move into
    # a folder created a moment earlier). Marked missing here, record_image moves its row.
    gone = [path for path, status in store.paths_of_sha256(session, result.sha256).items()
            if path != result.path and status == ImageStatus.OK.value
            and not os.path.lexists(path)]
    if gone:
        store.mark_missing(session, gone)
    facts = store.FileFacts(
        path=result.path, size=result.size, mtime_ns=result.mtime_ns, sha256=result.sha256,
        width=result.width, height=result.height, format=result.format,
        has_thumbnail=result.has_thumbnail, generation=result.metadata,
        stack_key=result.stack_key, phash=result.phash)
    recorded = store.record_image(session, facts, folder_id)
    if recorded.kind is store.RecordKind.MOVED:
        summary.moved += 1
        summary.moved_ids.append(recorded.image_id)
    else:
        summary.indexed += 1
        summary.indexed_ids.append(recorded.image_id)
    if result.thumbnail_error:
        summary.thumbnail_failures += 1
        summary.thumbnail_errors[result.thumbnail_error] += 1
    return recorded.orphaned_sha256


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _merge(into: ScanSummary, part: ScanSummary) -> None:
    for name in ("indexed", "broken", "missing", "moved", "thumbnail_failures", "unrecorded"):
        setattr(into, name, getattr(into, name) + getattr(part, name))
    for name in ("indexed_ids", "broken_ids", "missing_ids", "moved_ids", "errors"):
        getattr(into, name).extend(getattr(part, name))
    into.thumbnail_errors.update(part.thumbnail_errors)


def scan_folders(sessions: SessionSource, folder_paths: Iterable[str | os.PathLike[str]],
                 thumbnails: ThumbnailCache | None, workers: int | None = None,
                 progress: Progress | None = None,
                 executor: ExecutorKind = DEFAULT_EXECUTOR) -> ScanSummary:
    """Scan `folder_paths` (registering them as watched folders) into the library."""
    with LibraryIndexer(sessions, thumbnails, workers, executor) as indexer:
        return indexer.scan(folder_paths, progress)


def forget_folder(sessions: SessionSource, path: str | os.PathLike[str],
                  thumbnails: ThumbnailCache | None) -> bool:
    """Remove a watched folder and its files from the library (reviews kept with the
    contents); delete thumbnails no remaining file needs. False if it was not watched."""
    with write_transaction(_as_sessions(sessions)) as session:
        folder = store.get_folder(session, path)
        if folder is None:
            return False
        orphans = store.remove_folder(session, folder.id)
    if thumbnails is not None:
        thumbnails.remove_many(orphans)
    return True
