"""Live watching of the watched folders (watchdog, recursive), Qt-free.

Threads: watchdog's observer thread only forwards raw events into a queue; everything else —
stability checks, debouncing, batching, ingest, every database write and every callback —
happens on the watcher's own thread, so its state needs no locks. Callbacks are therefore
invoked from that background thread: the desktop app marshals them to Qt with signals, the
command line uses them directly.

When a file is indexed:
- names that are not images (`*.tmp`, `*.part`, …) and hidden names are ignored until renamed
  (generators write-then-rename);
- a file is read only once its size and mtime stayed the same for `stability_interval`
  seconds (generators that write slowly);
- a stable file that still cannot be decoded is retried a few times with growing delays
  before it is recorded as broken, and while it was modified less than
  `write_pause_tolerance` seconds ago it stays pending however often it fails: a writer that
  paused mid-file (a truncated file that is still growing) must never produce a broken
  record;
- stable files are collected and indexed together once events have been quiet for a moment,
  64 are ready, or the oldest has waited 2 intervals (bursts become a few batches, a steady
  stream still flows).

Near-duplicate groups (`dup:`, `is:duplicate`, library.family_ops.regroup) follow what the
watcher records: once files were indexed or went missing, they are regrouped at most every
`regroup_interval` seconds (grouping a 100k library takes about a second, so a steady stream
of files must not pay it per batch); `on_regrouped` gets the pictures whose group changed.
Stacks need nothing: their key is written with the file.

Renames of indexed files move their rows (review kept) without reading the file; deletions
mark rows missing. Names that are not valid UTF-8 are looked up and recorded in their stored
form (library.paths.storable_text; such files are recorded broken, see library.scan). A
watched folder that disappears (deleted, unplugged drive) is reported through
`on_folder_lost` and re-checked every `health_interval`; when it is back it is watched again
and caught up with a scan.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import ObservedWatch

from db import store
from db.transaction import commit_and_continue, write_transaction
from library.handoff import PictureHandoff
from library.ingest import IngestResult
from library.paths import storable_text
from library.scan import (
    BATCH_SIZE,
    DEFAULT_EXECUTOR,
    ExecutorKind,
    LibraryIndexer,
    ScanSummary,
    SessionSource,
    is_image_name,
    walk_images,
)
from library.thumbnails import ThumbnailCache

log = logging.getLogger(__name__)

IdsCallback = Callable[[list[int]], None]
# Longest pause of a writer in the middle of a file that must not make it "broken"; longer
# retry gaps than this are pointless (an unchanged file is re-read at least this often).
WRITE_PAUSE_TOLERANCE_S = 60.0
# Longest a file indexed by the watcher waits to join its near-duplicate group.
REGROUP_INTERVAL_S = 10.0
MAX_RETRY_GAP_S = 10.0
_WATCHED_EVENTS: list[type[FileSystemEvent]] = [
    FileCreatedEvent, FileModifiedEvent, FileClosedEvent, FileDeletedEvent, FileMovedEvent,
    DirCreatedEvent, DirDeletedEvent, DirMovedEvent,
]


@dataclass
class _Pending:
    """A file waiting to be stable (and, after a failed read, to be retried)."""

    size: int
    mtime_ns: int
    due: float  # monotonic time of the next stability check
    attempts: int = 0  # failed reads of the file while it looked stable


@dataclass
class _Root:
    folder_id: int
    watch: ObservedWatch | None


class _Forwarder(FileSystemEventHandler):
    """Runs on watchdog's thread: hand every event over, do nothing else."""

    def __init__(self, inbox: queue.Queue[tuple[str, Any]]) -> None:
        self._inbox = inbox

    def on_any_event(self, event: FileSystemEvent) -> None:
        self._inbox.put(("event", event))


def _decode_path(path: str | bytes) -> str:
    return os.fsdecode(path)


class FolderWatcher:
    """Keeps the library in step with the watched folders while running (see module doc)."""

    def __init__(
        self,
        sessions: SessionSource,
        thumbnails: ThumbnailCache | None,
        folders: Iterable[str | os.PathLike[str]] = (),
        *,
        on_indexed: IdsCallback | None = None,
        on_missing: IdsCallback | None = None,
        on_moved: IdsCallback | None = None,
        on_folder_lost: Callable[[str], None] | None = None,
        on_error: Callable[[str], None] | None = None,
        on_regrouped: IdsCallback | None = None,
        stability_interval: float = 1.0,
        health_interval: float = 5.0,
        read_retries: int = 3,
        write_pause_tolerance: float = WRITE_PAUSE_TOLERANCE_S,
        regroup_interval: float = REGROUP_INTERVAL_S,
        initial_scan: bool = True,
        workers: int | None = None,
        executor: ExecutorKind = DEFAULT_EXECUTOR,
        pictures: PictureHandoff | None = None,
    ) -> None:
        # `pictures`: new files' decodes handed on to the analysis (library.handoff).
        self._indexer = LibraryIndexer(sessions, thumbnails, workers, executor,
                                       pictures=pictures)
        self._sessions = self._indexer.sessions
        self._initial_folders = [store.normalise_folder_path(f) for f in folders]
        self._on_indexed = on_indexed
        self._on_missing = on_missing
        self._on_moved = on_moved
        self._on_folder_lost = on_folder_lost
        self._on_error = on_error
        self._on_regrouped = on_regrouped
        self.regroup_interval = regroup_interval
        self.stability_interval = stability_interval
        self.health_interval = health_interval
        self.read_retries = read_retries
        self.write_pause_tolerance = write_pause_tolerance
        self._initial_scan = initial_scan

        self._inbox: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._observer: Any = None
        self._thread: threading.Thread | None = None
        self._idle = threading.Event()
        # Watcher-thread state.
        self._roots: dict[str, _Root] = {}
        self._lost: dict[str, int] = {}
        self._pending: dict[str, _Pending] = {}
        self._ready: dict[str, float] = {}  # stable files → when they became ready
        self._ops: list[tuple[str, str, str | None]] = []  # renames/deletions to record
        self._last_event = 0.0
        self._next_health = 0.0
        self._regroup_due: float | None = None  # files changed since the last regroup

    # ------------------------------------------------------------------ public API

    def start(self) -> None:
        if self._thread is not None:
            return
        self._observer = Observer()
        self._observer.start()
        for path in self._initial_folders:
            self._inbox.put(("add", (path, self._initial_scan)))
        self._thread = threading.Thread(target=self._run, name="folder-watcher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread is None:
            return
        self._inbox.put(("stop", None))
        self._thread.join(timeout)
        self._thread = None
        self._observer.stop()
        self._observer.join(timeout)
        self._indexer.close()

    def __enter__(self) -> FolderWatcher:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def add_folder(self, path: str | os.PathLike[str], scan: bool = True) -> None:
        """Watch another folder (registered in the library; caught up with a scan first)."""
        self._idle.clear()
        self._inbox.put(("add", (store.normalise_folder_path(path), scan)))

    def remove_folder(self, path: str | os.PathLike[str]) -> None:
        """Stop watching a folder. Its files stay in the library; to forget them too, call
        library.scan.forget_folder."""
        self._idle.clear()
        self._inbox.put(("remove", store.normalise_folder_path(path)))

    @property
    def folders(self) -> list[str]:
        return sorted(self._roots)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until every event received so far is handled and no file is waiting to be
        stable. True if idle, False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            marker = threading.Event()
            self._inbox.put(("mark", marker))
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not marker.wait(left):
                return False
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if self._idle.wait(left):
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False

    # ------------------------------------------------------------------ the thread

    def _run(self) -> None:
        while True:
            try:
                command, payload = self._inbox.get(timeout=self._wait_time())
            except queue.Empty:
                command, payload = "tick", None
            try:
                while True:
                    if command == "stop":
                        return
                    self._handle(command, payload)
                    command, payload = self._inbox.get_nowait()
            except queue.Empty:
                pass
            except Exception as exc:  # the watcher must outlive any one event
                log.exception("watcher failed handling %s", command)
                self._report_error(f"watching failed ({command}): {exc}")
            try:
                self._apply_ops()
                self._check_due()
                self._flush_ready()
                self._regroup_if_due()
                if time.monotonic() >= self._next_health:
                    self._check_roots()
            except Exception as exc:
                log.exception("watcher step failed")
                self._report_error(f"watching failed: {exc}")
                self._ops.clear()
            if not self._pending and not self._ready and self._inbox.empty():
                self._idle.set()
            else:
                self._idle.clear()

    def _wait_time(self) -> float:
        now = time.monotonic()
        deadlines = [self._next_health]
        if self._pending:
            deadlines.append(min(p.due for p in self._pending.values()))
        if self._ready:
            deadlines.append(self._flush_deadline())
        if self._regroup_due is not None:
            deadlines.append(self._regroup_due)
        return max(0.0, min(deadlines) - now)

    # ------------------------------------------------------------------ commands and events

    def _handle(self, command: str, payload: Any) -> None:
        self._idle.clear()  # before any "mark" that follows in the queue is answered
        if command == "event":
            self._last_event = time.monotonic()
            self._on_event(payload)
        elif command == "add":
            self._apply_ops()
            self._add_root(*payload)
        elif command == "remove":
            self._apply_ops()
            self._remove_root(payload)
        elif command == "mark":
            payload.set()

    def _on_event(self, event: FileSystemEvent) -> None:
        src = _decode_path(event.src_path)
        if event.event_type == "moved":
            dest = _decode_path(event.dest_path)
            if event.is_directory:
                self._drop_pending_under(src)
                if src in self._roots:
                    self._schedule_root_check()
                    return
                if self._root_of(dest) is not None:
                    self._ops.append(("move_dir", src, dest))
                    self._arm_tree(dest)
                else:
                    self._ops.append(("missing_dir", src, None))
                return
            was_pending = self._pending.pop(src, None) is not None
            self._ready.pop(src, None)
            if self._is_candidate(dest):
                if was_pending or not is_image_name(os.path.basename(src)):
                    self._arm(dest)  # a temp name renamed to its final name
                else:
                    self._ops.append(("move", src, dest))
            else:
                self._ops.append(("missing", src, None))
            return
        if event.is_directory:
            if event.event_type == "deleted" and src in self._roots:
                # The watched folder itself: reported as lost, its files left as they were
                # (an unplugged drive's files are not deleted).
                self._schedule_root_check()
            elif event.event_type == "deleted":
                self._drop_pending_under(src)
                self._ops.append(("missing_dir", src, None))
            elif event.event_type == "created":
                # Files already inside a folder moved or copied in may predate its watch.
                self._arm_tree(src)
            return
        if event.event_type == "deleted":
            self._pending.pop(src, None)
            self._ready.pop(src, None)
            self._ops.append(("missing", src, None))
        elif self._is_candidate(src):
            self._arm(src)

    def _arm(self, path: str) -> None:
        try:
            info = os.stat(path)
        except OSError:
            self._pending.pop(path, None)
            return
        self._ready.pop(path, None)
        current = self._pending.get(path)
        attempts = 0
        if current is not None and (current.size, current.mtime_ns) == (info.st_size,
                                                                        info.st_mtime_ns):
            attempts = current.attempts
        self._pending[path] = _Pending(info.st_size, info.st_mtime_ns,
                                       time.monotonic() + self.stability_interval, attempts)

    def _arm_tree(self, directory: str) -> None:
        root = self._root_of(directory)
        if root is None:
            return
        nested = frozenset(r for r in self._roots if r != root and r.startswith(directory + os.sep))
        for found in walk_images(directory, skip_dirs=nested):
            if self._is_candidate(found.path):
                self._arm(found.path)

    def _drop_pending_under(self, directory: str) -> None:
        prefix = directory.rstrip(os.sep) + os.sep
        for table in (self._pending, self._ready):
            for path in [p for p in table if p.startswith(prefix)]:
                del table[path]

    # ------------------------------------------------------------------ roots

    def _root_of(self, path: str) -> str | None:
        """The watched folder containing `path` (the innermost, for nested ones)."""
        best: str | None = None
        for root in self._roots:
            if (path == root or path.startswith(root + os.sep)) and (
                    best is None or len(root) > len(best)):
                best = root
        return best

    def _is_candidate(self, path: str) -> bool:
        root = self._root_of(path)
        if root is None or path == root:
            return False
        parts = os.path.relpath(path, root).split(os.sep)
        return all(not part.startswith(".") for part in parts) and is_image_name(parts[-1])

    def _add_root(self, path: str, scan: bool) -> None:
        if path in self._roots:
            return
        with write_transaction(self._sessions) as session:
            folder_id = store.add_folder(session, path).id
        self._lost.pop(path, None)
        if not self._watch_root(path, folder_id):
            return
        if scan:
            self._catch_up(path)

    def _watch_root(self, path: str, folder_id: int) -> bool:
        try:
            if not os.path.isdir(path):
                raise FileNotFoundError(path)
            watch = self._observer.schedule(_Forwarder(self._inbox), path, recursive=True,
                                            event_filter=_WATCHED_EVENTS)
        except OSError as exc:
            self._mark_lost(path, folder_id, f"{exc.strerror or exc}")
            return False
        self._roots[path] = _Root(folder_id, watch)
        return True

    def _remove_root(self, path: str) -> None:
        self._lost.pop(path, None)
        root = self._roots.pop(path, None)
        if root is None:
            return
        self._unschedule(root)
        self._drop_pending_under(path)

    def _unschedule(self, root: _Root) -> None:
        if root.watch is not None:
            try:
                self._observer.unschedule(root.watch)
            except Exception:  # the kernel may already have dropped the watch
                log.debug("unschedule failed", exc_info=True)

    def _mark_lost(self, path: str, folder_id: int, reason: str = "") -> None:
        if path in self._lost:
            return
        self._lost[path] = folder_id
        root = self._roots.pop(path, None)
        if root is not None:
            self._unschedule(root)
        self._drop_pending_under(path)
        log.warning("watched folder %s is gone%s", path, f" ({reason})" if reason else "")
        self._call(self._on_folder_lost, path)

    def _schedule_root_check(self) -> None:
        self._next_health = 0.0

    def _check_roots(self) -> None:
        self._next_health = time.monotonic() + self.health_interval
        for path, root in list(self._roots.items()):
            if not os.path.isdir(path):
                self._mark_lost(path, root.folder_id)
        for path, folder_id in list(self._lost.items()):
            if os.path.isdir(path):
                del self._lost[path]
                if self._watch_root(path, folder_id):
                    log.info("watched folder %s is back", path)
                    self._catch_up(path)

    def _catch_up(self, path: str) -> None:
        summary = self._indexer.scan([path])
        self._deliver(summary)

    # ------------------------------------------------------------------ database work

    def _apply_ops(self) -> None:
        """Renames and deletions seen since the last step, in order, committed BATCH_SIZE
        steps at a time: a folder of thousands of files renamed at once must not hold the
        write lock past the busy timeout of the app's review commits."""
        ops, self._ops = self._ops, []
        if not ops:
            return
        moved: list[int] = []
        missing: list[int] = []
        unknown_dests: list[str] = []
        with write_transaction(self._sessions) as session:
            steps = 0
            locked_at = time.monotonic()

            def step_done() -> None:
                nonlocal steps, locked_at
                steps += 1
                if steps % BATCH_SIZE == 0:
                    locked_at = commit_and_continue(session, locked_at)

            for kind, src, dest in ops:
                src = storable_text(src)
                if dest is not None and storable_text(dest) is not dest:
                    # Renamed to a name the library cannot store: the old rows are gone, the
                    # new names are indexed (and recorded broken) like new files (a folder's
                    # files were armed when its move arrived).
                    if kind == "move":
                        unknown_dests.append(dest)
                    kind = "missing" if kind == "move" else "missing_dir"
                if kind == "missing":
                    missing += store.mark_missing(session, [src])
                    step_done()
                elif kind == "missing_dir":
                    missing += store.mark_missing(
                        session, [p for _, p in store.images_under(session, src)])
                    step_done()
                elif kind == "move":
                    assert dest is not None
                    image_id = self._move(session, src, dest)
                    if image_id is None:
                        unknown_dests.append(dest)
                    else:
                        moved.append(image_id)
                    step_done()
                elif kind == "move_dir":
                    assert dest is not None
                    for _, old in store.images_under(session, src):
                        new = dest + old[len(src):]
                        image_id = self._move(session, old, new)
                        if image_id is not None:
                            moved.append(image_id)
                        step_done()
        for dest in unknown_dests:
            self._arm(dest)  # not indexed under its old name: index it as a new file
        if moved:
            self._call(self._on_moved, moved)
        if missing:
            self._families_changed()
            self._call(self._on_missing, missing)

    def _move(self, session: Any, src: str, dest: str) -> int | None:
        root = self._root_of(dest)
        try:
            info = os.stat(dest)
        except OSError:
            return None  # moved on again already; its own events follow
        known = store.files_by_path(session, [src]).get(src)
        if known is None or root is None:
            return None
        return store.move_image(session, src, dest, folder_id=self._roots[root].folder_id,
                                size=info.st_size, mtime_ns=info.st_mtime_ns)

    def _check_due(self) -> None:
        """Promote files whose size and mtime held still for the interval to `ready`."""
        now = time.monotonic()
        for path, pending in list(self._pending.items()):
            if pending.due > now:
                continue
            try:
                info = os.stat(path)
            except OSError:
                del self._pending[path]  # gone before it settled; its delete event follows
                continue
            if (info.st_size, info.st_mtime_ns) != (pending.size, pending.mtime_ns):
                self._pending[path] = _Pending(info.st_size, info.st_mtime_ns,
                                               now + self.stability_interval)
            elif info.st_size == 0 and pending.attempts < self.read_retries:
                # An empty file is most often one about to be written.
                self._retry_later(path, pending, now)
            else:
                pending.due = float("inf")  # parked while ready / being read
                self._ready.setdefault(path, now)

    def _retry_later(self, path: str, pending: _Pending, now: float) -> None:
        pending.attempts += 1
        gap = self.stability_interval * (2 ** min(pending.attempts, 16))
        pending.due = now + min(gap, max(MAX_RETRY_GAP_S, self.stability_interval))
        self._pending[path] = pending

    def _may_still_be_written(self, pending: _Pending) -> bool:
        """The file failed to read but was modified recently: a writer may have paused in
        the middle of it (compared with the file's own mtime, wall-clock)."""
        age_s = (time.time_ns() - pending.mtime_ns) / 1e9
        return age_s < self.write_pause_tolerance

    def _flush_deadline(self) -> float:
        oldest = min(self._ready.values())
        quiet = self._last_event + self.stability_interval / 2
        return min(max(quiet, oldest), oldest + 2 * self.stability_interval)

    def _flush_ready(self) -> None:
        if not self._ready:
            return
        if len(self._ready) < BATCH_SIZE and time.monotonic() < self._flush_deadline():
            return
        paths, self._ready = list(self._ready), {}
        self._index(paths)

    def _index(self, paths: list[str]) -> None:
        # Skip files already recorded as they are now (the catch-up scan got them, or an
        # event arrived for a file that did not change).
        with self._sessions() as session:
            known = store.files_by_path(session, [storable_text(p) for p in paths])
        items: list[tuple[str, int | None]] = []
        for path in paths:
            pending = self._pending.get(path)
            row = known.get(storable_text(path))
            if (pending is not None and row is not None and row.status != "missing"
                    and (row.size, row.mtime_ns) == (pending.size, pending.mtime_ns)):
                del self._pending[path]
                continue
            root = self._root_of(path)
            if root is None:
                self._pending.pop(path, None)
                continue
            items.append((path, self._roots[root].folder_id))
        if not items:
            return

        def defer(result: IngestResult) -> bool:
            pending = self._pending.get(result.path)
            return (pending is not None and not result.vanished
                    and (pending.attempts < self.read_retries
                         or self._may_still_be_written(pending)))

        summary = ScanSummary()
        deferred = self._indexer.index_paths(items, summary, defer=defer)
        now = time.monotonic()
        retry = {result.path for result in deferred}
        for path, _ in items:
            pending = self._pending.get(path)
            if path in retry and pending is not None:
                self._retry_later(path, pending, now)
            else:
                self._pending.pop(path, None)
        summary.finish()
        self._deliver(summary)

    # ------------------------------------------------------------------ callbacks

    def _deliver(self, summary: ScanSummary) -> None:
        indexed = summary.indexed_ids + summary.broken_ids
        if summary.indexed_ids or summary.missing_ids:
            self._families_changed()
        if summary.moved_ids:
            self._call(self._on_moved, summary.moved_ids)
        if indexed:
            self._call(self._on_indexed, indexed)
        if summary.missing_ids:
            self._call(self._on_missing, summary.missing_ids)
        for message in summary.errors:
            self._report_error(message)

    # ------------------------------------------------------------------ duplicate groups

    def _families_changed(self) -> None:
        if self._regroup_due is None:
            self._regroup_due = time.monotonic() + self.regroup_interval

    def _regroup_if_due(self) -> None:
        if self._regroup_due is None or time.monotonic() < self._regroup_due:
            return
        from library.family_ops import regroup  # numpy: only once something is regrouped

        try:
            changed = regroup(self._sessions)
        except (SQLAlchemyError, OSError, ValueError) as exc:  # busy, disk full: try later
            log.exception("regrouping near-duplicates failed")
            self._report_error(f"could not update duplicate groups: {exc}")
            self._regroup_due = time.monotonic() + self.regroup_interval
            return
        self._regroup_due = None
        if changed:
            self._call(self._on_regrouped, changed)

    def _report_error(self, message: str) -> None:
        log.warning("%s", message)
        self._call(self._on_error, message)

    def _call(self, callback: Callable[..., None] | None, *args: Any) -> None:
        if callback is None:
            return
        try:
            callback(*args)
        except Exception:  # a receiver's bug must not stop the watcher
            log.exception("watcher callback %r failed", callback)
