"""`gentriage scan FOLDER… [--analysers a,b] [--device D] [--watch]`: index and analyse headless.

1. The folders become watched folders and are indexed (library.scan: new and changed files
   only; vanished files become missing, moved files keep their review).
2. Everything the library still needs analysed is analysed (library.analysis.AnalysisRunner,
   the same runner as the app's): the persisted queue plus any content lacking a current
   result for an enabled, ready analyser. The analysis runs on a thread of its own while the
   folders are indexed, starting with each batch the indexer records, and takes the pictures
   the indexer decoded (library.handoff) instead of decoding every new file a second time.
3. Without --watch the command ends when the queue is empty; with it, it keeps watching the
   folders (library.watch) and analyses new files until interrupted.

With --ray the decoding and the models run on Ray workers (library.distributed, the only
module that imports ray); indexing, the queue and every write stay in this process.

Ctrl+C (or SIGTERM) during analysis stops after the batch in progress: every result written
so far is kept and the rest stays queued, so the next run continues where this one stopped.
A second Ctrl+C stops at once (committed work is still kept: every write is a short
transaction). Exit status: 0 success, 1 when some files were broken (every other file was
still processed), 2 for usage errors, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from gentriage.cli import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_SOME_BROKEN,
    EXIT_USAGE,
    add_storage_options,
    open_library_for,
    resolve_locations,
    warn,
)

PLAIN_PROGRESS_INTERVAL_S = 2.0
STOPPING_NOTE = "stopping after the batch in progress; Ctrl+C again stops at once\n"
MAX_LISTED_PROBLEMS = 20


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folders", nargs="+", metavar="FOLDER", help="folders to index (recursive)")
    add_storage_options(parser)
    parser.add_argument("--analysers", metavar="KEYS",
                        help="comma-separated analysers to run (default: those enabled in the "
                             "settings); see 'gentriage models'")
    parser.add_argument("--device", help="auto (default), cpu, cuda, cuda:N or mps")
    parser.add_argument("--batch-size", type=int, metavar="N",
                        help="images per model batch (default: per analyser and device)")
    parser.add_argument("--workers", type=int, metavar="N",
                        help="indexing worker processes (default: one per CPU core)")
    parser.add_argument("--watch", action="store_true",
                        help="keep watching the folders and analysing new files until Ctrl+C")
    parser.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                        help="analyse on Ray workers (needs the 'ray' extra): a cluster's "
                             "ADDRESS (host:port, ray://host:10001), 'auto' ($RAY_ADDRESS) or "
                             "'local' (start Ray on this machine); bare --ray: $RAY_ADDRESS "
                             "when set, else local. Write it after the folders, or as "
                             "--ray=ADDRESS")
    parser.add_argument("--ray-workers", type=int, metavar="N",
                        help="Ray analysis workers (default: one per GPU of the cluster; "
                             "without GPUs one per 4 CPUs of each node)")


# ---------------------------------------------------------------------------- progress output


class Reporter:
    """Progress on stderr: a rich progress bar on a terminal, plain periodic lines otherwise.
    The summary goes to stdout."""

    def __init__(self, interactive: bool) -> None:
        self.interactive = interactive
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}
        self._last_line: dict[str, float] = {}
        self._last_count: dict[str, tuple[int, int]] = {}
        if interactive:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                      MofNCompleteColumn(), TextColumn("{task.fields[note]}"),
                                      TimeElapsedColumn(), console=Console(stderr=True),
                                      transient=False)

    def __enter__(self) -> Reporter:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def message(self, text: str) -> None:
        from library.safe_output import terminal_text

        text = terminal_text(text)  # warnings quote file names
        if self._progress is not None:
            self._progress.console.print(text, markup=False, highlight=False)
        else:
            print(text, file=sys.stderr, flush=True)

    def update(self, name: str, done: int, total: int, note: str = "",
               final: bool = False) -> None:
        if self._progress is not None:
            if name not in self._tasks:
                self._tasks[name] = self._progress.add_task(name, total=total, note=note)
            self._progress.update(self._tasks[name], completed=done, total=max(total, done),
                                  note=note)
            return
        now = time.monotonic()
        if (done, total) == self._last_count.get(name):
            return
        if final or now - self._last_line.get(name, 0.0) >= PLAIN_PROGRESS_INTERVAL_S:
            self._last_line[name] = now
            self._last_count[name] = (done, total)
            print(f"{name}: {done}/{total}{'  ' + note if note else ''}", file=sys.stderr,
                  flush=True)


# ---------------------------------------------------------------------------- interruption


@dataclass
class Interrupts:
    """SIGINT/SIGTERM handling: the first asks the runner to stop after its batch, a second
    (or one during indexing, which has no stopping point) raises KeyboardInterrupt."""

    stop: threading.Event = field(default_factory=threading.Event)
    runner: Any = None
    count: int = 0

    def handler(self, _signum: int, _frame: Any) -> None:
        self.count += 1
        if self.runner is None or self.count > 1:
            raise KeyboardInterrupt
        self.stop.set()
        self.runner.cancel()
        # A raw write: safe even if the signal interrupted a print on this thread.
        os.write(sys.stderr.fileno(), STOPPING_NOTE.encode())

    def install(self) -> dict[int, Any]:
        previous: dict[int, Any] = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, self.handler)
        return previous

    @property
    def interrupted(self) -> bool:
        return self.count > 0


# ---------------------------------------------------------------------------- the command


def _parse_analysers(text: str | None) -> list[str] | None:
    """The --analysers list, or None for the settings' choice. Raises ValueError."""
    if text is None:
        return None
    from inference.registry import ANALYSER_KEYS

    keys = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in keys if k not in ANALYSER_KEYS]
    if unknown or not keys:
        raise ValueError(f"unknown analyser(s) {', '.join(unknown) or '(none given)'}; "
                         f"known: {', '.join(ANALYSER_KEYS)}")
    return list(dict.fromkeys(keys))


@dataclass
class FolderState:
    """What the library holds for the scanned folders after the run."""

    flagged: int  # pictures with a readable file, flagged
    analysed: int  # … with an NSFW analyser's verdict present (Content.analysed)
    broken: list[tuple[str, str | None]]  # (path, why) of unreadable files


def _folder_state(sessions: Any, folders: list[str]) -> FolderState:
    from sqlalchemy import distinct, func, or_, select

    from db.schema import Content, Image, ImageStatus
    from db.store import path_under

    under = or_(*[path_under(f) for f in folders])  # case-sensitive, unlike LIKE
    base = (select(func.count(distinct(Content.id))).select_from(Image)
            .join(Content, Content.id == Image.content_id)
            .where(under, Image.status == ImageStatus.OK.value))
    with sessions() as session:
        flagged = session.scalar(base.where(Content.flagged)) or 0
        analysed = session.scalar(base.where(Content.analysed)) or 0
        broken = session.execute(select(Image.path, Image.error).where(
            under, Image.status == ImageStatus.BROKEN.value).order_by(Image.path)).all()
    return FolderState(flagged, analysed, [(p, e) for p, e in broken])


def _problem_lines(broken: list[tuple[str, str | None]]) -> list[str]:
    from library.safe_output import terminal_text

    lines = [f"  broken: {terminal_text(path)}: {terminal_text(error or 'unreadable')}"
             for path, error in broken[:MAX_LISTED_PROBLEMS]]
    if len(broken) > MAX_LISTED_PROBLEMS:
        lines.append(f"  … and {len(broken) - MAX_LISTED_PROBLEMS} more")
    return lines


def _folders(given: list[str]) -> list[str] | None:
    """The folders to scan, each once, by real path; None after a usage message."""
    from db.store import normalise_folder_path
    from library.paths import is_storable

    folders: list[str] = []
    for folder in given:
        if not os.path.isdir(folder):
            warn("scan", f"{folder}: no such folder")
            return None
        if not is_storable(folder):
            warn("scan", f"{folder}: the folder name is not valid UTF-8 and cannot be stored "
                 "in the library; rename the folder")
            return None
        folders.append(normalise_folder_path(folder))
    return list(dict.fromkeys(folders))


def run(args: argparse.Namespace) -> int:
    folders = _folders(args.folders)
    if folders is None:
        return EXIT_USAGE
    try:
        analysers = _parse_analysers(args.analysers)
    except ValueError as exc:
        warn("scan", exc)
        return EXIT_USAGE
    if args.batch_size is not None and args.batch_size < 1:
        warn("scan", "--batch-size must be at least 1")
        return EXIT_USAGE
    if args.ray_workers is not None and (args.ray is None or args.ray_workers < 1):
        warn("scan", "--ray-workers needs --ray and must be at least 1")
        return EXIT_USAGE
    target = _ray_target(args.ray) if args.ray is not None else None
    if isinstance(target, int):
        return target

    from db.engine import session_factory
    from library.settings import Settings

    locations = resolve_locations("scan", args)
    if locations is None:
        return EXIT_USAGE
    settings = Settings.load(locations.settings)
    if analysers is not None:
        settings.enabled_analysers = analysers
    device = args.device or settings.device or "auto"
    engine = open_library_for("scan", locations.database, must_exist=False)
    if engine is None:
        return EXIT_SOME_BROKEN
    cluster = None
    previous: dict[int, Any] = {}
    try:
        if target is not None:  # before our signal handlers: Ray installs its own
            connected = _connect_ray(target, args, device)
            if isinstance(connected, int):
                return connected
            cluster = connected
        interrupts = Interrupts()
        previous = interrupts.install()
        with Reporter(sys.stderr.isatty()) as reporter:
            status = _scan_and_analyse(args, folders, settings, device, locations,
                                       session_factory(engine), interrupts, reporter, cluster)
        if cluster is not None:
            # Still under our handlers: a Ctrl+C while Ray shuts down (which may take a
            # while) is one more interruption, answered like any other.
            closing, cluster = cluster, None
            closing.close()
    except KeyboardInterrupt:
        status = EXIT_INTERRUPTED
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if cluster is not None:  # after an error or an interruption
            cluster.close()
        engine.dispose()
    if status == EXIT_INTERRUPTED:  # however it stopped: after its batch, or at once
        print("interrupted; work done so far is saved and the next run continues from there",
              file=sys.stderr)
    return status


def _ray_target(option: str) -> Any:
    """Where --ray runs (library.distributed.Target), or EXIT_USAGE after saying why not."""
    from library import distributed  # imports ray only when it connects

    if not distributed.ray_installed():
        warn("scan", f"--ray needs Ray, which is not installed: {distributed.INSTALL_HINT}")
        return EXIT_USAGE
    try:
        return distributed.resolve_target(option)
    except ValueError as exc:  # `auto` without RAY_ADDRESS
        warn("scan", exc)
        return EXIT_USAGE


def _connect_ray(target: Any, args: argparse.Namespace, device: str) -> Any:
    """The Ray cluster for --ray (library.distributed.RayCluster), or an exit status after
    saying why not."""
    from library import distributed

    try:
        return distributed.RayCluster.connect(target, device, args.ray_workers,
                                              args.batch_size)
    except ValueError as exc:  # workers that do not fit the cluster, a device it lacks
        warn("scan", exc)
        return EXIT_USAGE
    except distributed.DistributedError as exc:
        warn("scan", exc)
        return EXIT_SOME_BROKEN


def _scan_and_analyse(args: argparse.Namespace, folders: list[str], settings: Any, device: str,
                      locations: Any, sessions: Any, interrupts: Interrupts,
                      reporter: Reporter, cluster: Any = None) -> int:
    from library.analysis import AnalysisRunner, RunProgress
    from library.handoff import PictureHandoff
    from library.thumbnails import ThumbnailCache

    started = time.monotonic()
    thumbnails = ThumbnailCache(locations.thumbnails)
    # Set while the folders are indexed (the analysis may run meanwhile): the analysis's
    # "done" is only final once nothing more can be queued.
    indexing = threading.Event()
    indexing.set()

    def on_progress(progress: RunProgress) -> None:
        note = f"{progress.images_per_s:.1f} images/s on {progress.device}"
        if progress.paused:
            note += " (paused)"
        reporter.update("analysing", progress.done, progress.done + progress.queued, note,
                        final=progress.queued == 0 and not indexing.is_set())

    on_ray: dict[str, Any] = {}
    if cluster is not None:  # the runner leases and writes; Ray workers decode and predict
        cluster.say = reporter.message
        on_ray = {"executor": cluster.executor, "take": cluster.take}
    # Locally the analysis runs while the folders are indexed, and takes each new file's
    # picture from the indexer (library.handoff): every file is decoded once.
    pictures = PictureHandoff() if cluster is None else None
    runner = AnalysisRunner(sessions, locations.models, settings, device=device,
                            batch_size=args.batch_size, on_progress=on_progress,
                            thumbnails=thumbnails, pictures=pictures, **on_ray)
    try:
        runner.load()
    except (ValueError, KeyError) as exc:  # a device that is not there, an unknown key
        warn("scan", exc)
        return EXIT_USAGE
    for key, status in runner.statuses.items():
        if key not in runner.ready and key in settings.enabled_analysers:
            reporter.message(f"note: {key} is not used: {status.message}"
                             + (f" ({status.how_to_get})" if status.how_to_get else ""))
    if not runner.ready:
        reporter.message("note: no analyser is ready; images are indexed but not analysed")

    wake = threading.Event()  # set whenever files were recorded (so queued for analysis)
    analysis = _AnalysisThread(runner, interrupts.stop, wake, indexing,
                               until_empty=not args.watch) \
        if runner.ready and cluster is None else None
    if analysis is None:
        pictures = None  # nothing would take them
    try:
        summary = _index(sessions, folders, thumbnails, args.workers, reporter, wake,
                         pictures)
    except BaseException:  # Ctrl+C (indexing has no stopping point), a full disk
        if analysis is not None:
            analysis.abandon()
        raise
    indexing.clear()  # the analysis ends once the queue is empty
    wake.set()
    for error in summary.errors:
        reporter.message(f"warning: {error}")

    interrupts.runner = runner
    watcher = _start_watcher(sessions, folders, thumbnails, args.workers, reporter, wake,
                             pictures) if args.watch else None
    cluster_failed = False
    # What a Ray run can fail with (a cluster problem in the user's terms); nothing locally.
    cluster_errors = cluster.Error if cluster is not None else ()
    try:
        if analysis is not None:
            analysis.join()
        elif runner.ready:
            runner.run(interrupts.stop, wake=wake, until_empty=watcher is None)
        elif watcher is not None:  # nothing to analyse with: the watch still indexes
            while not interrupts.stop.wait(0.5):
                pass
    except cluster_errors as exc:
        reporter.message(f"error: {exc}; what was not written stays queued")
        cluster_failed = True
    finally:
        interrupts.runner = None
        if watcher is not None:
            watcher.stop()
    analysis_s = time.monotonic() - (analysis.started if analysis is not None else started)

    stats = runner.stats
    state = _folder_state(sessions, folders)
    print(f"indexed: {summary.indexed} new or changed, {summary.unchanged} unchanged, "
          f"{summary.moved} moved, {summary.missing} missing, {summary.broken} broken")
    if summary.unrecorded:
        print(f"not recorded: {summary.unrecorded} file(s) (see the warnings above)")
    per_analyser = ", ".join(f"{key} {stats.analysed.get(key, 0)}" for key in runner.ready)
    print(f"analysed: {per_analyser or 'nothing (no analyser ready)'}")
    if stats.errors:
        print("analysis errors: " + ", ".join(f"{k} {n}" for k, n in sorted(stats.errors.items())))
    # Every unreadable file in these folders, not only those found this run: a script
    # re-running the scan keeps seeing exit status 1 until the files are fixed or removed.
    print(f"broken: {len(state.broken)}")
    print(f"flagged: {state.flagged} of {state.analysed} analysed image(s) in these folders")
    rate = stats.completed / analysis_s if analysis_s > 0 else 0.0
    print(f"elapsed: {time.monotonic() - started:.1f} s, {rate:.2f} images/s analysed")
    if cluster is not None:
        print(f"ray: {cluster.summary()}")
    stopped = (interrupts.interrupted or cluster_failed) and runner.ready
    remaining = runner.queued_count() if stopped else 0
    if remaining:
        print(f"stopped: {remaining} image(s) still queued; run again to continue")
    for line in _problem_lines(state.broken):
        print(line, file=sys.stderr)
    if interrupts.interrupted and not args.watch:  # Ctrl+C is how a watch normally ends
        return EXIT_INTERRUPTED
    failed = state.broken or summary.unrecorded or cluster_failed
    return EXIT_SOME_BROKEN if failed else EXIT_OK


def _index(sessions: Any, folders: list[str], thumbnails: Any, workers: int | None,
           reporter: Reporter, wake: threading.Event, pictures: Any) -> Any:
    """Index the folders (library.scan), waking the analysis after each recorded batch."""
    from library.scan import LibraryIndexer

    with LibraryIndexer(sessions, thumbnails, workers, on_recorded=lambda _ids: wake.set(),
                        pictures=pictures) as indexer:
        return indexer.scan(folders, lambda done, total: reporter.update(
            "indexing", done, total, final=done == total))


class _AnalysisThread:
    """The runner draining the queue on a thread of its own while this thread indexes: it
    waits for recorded files while indexing goes on and, unless watching, ends once indexing
    is done and the queue is empty. Its exceptions are raised again by `join`."""

    def __init__(self, runner: Any, stop: threading.Event, wake: threading.Event,
                 indexing: threading.Event, until_empty: bool) -> None:
        self.runner = runner
        self.started = time.monotonic()
        self._indexing = indexing
        self._wake = wake
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(stop, until_empty), name="gentriage-analysis", daemon=True)
        self._thread.start()

    def _run(self, stop: threading.Event, until_empty: bool) -> None:
        try:
            self.runner.run(stop, wake=self._wake, until_empty=until_empty,
                            more_coming=self._indexing)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread by join()
            self._error = exc

    def join(self) -> None:
        # In short waits, so the main thread keeps taking signals (Ctrl+C) meanwhile.
        while self._thread.is_alive():
            self._thread.join(0.2)
        if self._error is not None:
            raise self._error

    def abandon(self) -> None:
        """Indexing failed or was interrupted: stop the analysis where it is (what it wrote is
        kept, the rest stays queued) and wait for it."""
        self.runner.cancel()
        self._indexing.clear()
        self._wake.set()
        self._thread.join()


def _start_watcher(sessions: Any, folders: list[str], thumbnails: Any, workers: int | None,
                   reporter: Reporter, wake: threading.Event, pictures: Any) -> Any:
    """Watch the folders; newly indexed files are queued by the indexer, so the watcher only
    has to set `wake` for the runner (and put new images first)."""
    from library.watch import FolderWatcher

    def on_indexed(_image_ids: list[int]) -> None:
        wake.set()

    def on_error(message: str) -> None:
        reporter.message(f"warning: {message}")

    def on_folder_lost(path: str) -> None:
        reporter.message(f"warning: watched folder {path} is no longer available")

    # initial_scan: a cheap catch-up (stat only) for files that arrived since the scan.
    watcher = FolderWatcher(sessions, thumbnails, folders, on_indexed=on_indexed,
                            on_folder_lost=on_folder_lost, on_error=on_error,
                            initial_scan=True, workers=workers, pictures=pictures)
    watcher.start()
    reporter.message("watching for new files; press Ctrl+C to stop")
    return watcher
