"""The analysis runner: persisted queue → inference pipeline → results, tags, flags.

Shared by the app's inference QThread and `gentriage scan` (no Qt here, no SQL either: every
statement lives in db.queue). The work list lives in the database (`analysis_queue`), so work
pending when the program exits — cleanly or not — resumes at the next start, and nothing is
done twice:

* planning is cheap: which enabled analysers have usable weights, and at which version (their
  weights checksum), comes from file headers and cached checksums — no model is loaded and
  torch is not imported. Models load when the first batch of work is taken, so an unchanged
  rescan never builds the pipeline at all;
* on start, every content with an ok image that lacks a result for a ready analyser *at that
  analyser's current version* is enqueued with one set-based `INSERT OR IGNORE … SELECT`: new
  weights re-analyse, unchanged weights never repeat work;
* batches are taken from the queue (highest priority first, then newest), each content is
  analysed by the analysers whose current result it lacks, results are written in short
  transactions as they arrive, flags are recomputed, and a queue row is removed once every
  needed analyser has a current result (or an error recorded for it);
* the pipeline hashes the bytes it decodes: a file replaced since it was indexed (its bytes
  are no longer the content being analysed) gets no result — it is re-indexed, and its new
  picture is queued for analysis in its own right;
* an image that cannot be decoded is marked broken; a queue row whose batch never finished
  (the process was killed) is retried, at most MAX_ATTEMPTS times, then given up with an error
  result so one poisonous file cannot stall the queue forever;
* the app and a headless scan may drain the same queue at once: a runner *leases* the rows it
  takes, renews the lease while the batch runs and releases it when the batch ends; other
  runners skip leased rows, and the lease of a killed process expires after LEASE_S;
* pictures indexing decoded in this process are taken from `pictures` (library.handoff)
  rather than decoded again (local pipeline only);
* where decoding and the models run is pluggable (`executor`): a local Pipeline by default,
  library.distributed's pool of Ray actors for `gentriage scan --ray`. Planning, leases, what
  a changed content hash means, and every write stay here, in this one process.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy.orm import Session, sessionmaker

from db import queue
from db.flags import update_flags
from db.schema import ImageStatus, utcnow
from db.transaction import write_transaction
from library.settings import Settings

if TYPE_CHECKING:
    from inference.weights import ModelStatus
    from library.handoff import PictureHandoff
    from library.thumbnails import ThumbnailCache

log = logging.getLogger(__name__)

# A queue row taken this many times without finishing (the process died during its batch each
# time) is given up: error results are recorded so it is not retried at every start.
MAX_ATTEMPTS = 3
# Contents taken from the queue per round. Small enough that `prioritise` (visible images
# first) takes effect quickly, large enough that the pipeline's prefetch keeps the device busy.
DEFAULT_TAKE = 32
# Results are written at least this often (seconds) while a batch is running, so the grid
# updates progressively and little is lost if the process is killed.
FLUSH_INTERVAL_S = 0.5
# Shortest span the images/s figure is measured over.
RATE_WINDOW_MIN_S = 3.0
# How long a runner's claim on the rows it took lasts without renewal: a killed process's
# rows wait this long before another runner takes them. Renewed every LEASE_RENEW_S while
# results arrive, so only a single model step slower than this could let a lease lapse (the
# cost is the work done twice, never a wrong result).
LEASE_S = 300.0
LEASE_RENEW_S = 60.0
GAVE_UP_MESSAGE = "analysis did not finish after {n} attempts (the program stopped during it)"


class PipelineLike(Protocol):
    """What the runner needs from inference.pipeline.Pipeline (a fake in unit tests)."""

    versions: dict[str, str]

    @property
    def ready_analysers(self) -> Sequence[str]: ...
    @property
    def device(self) -> str: ...

    def load(self) -> Any: ...
    def run(self, jobs: Iterable[Any]) -> Iterator[tuple[Any, Any]]: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def cancel(self) -> None: ...


@dataclass
class RunProgress:
    """Progress of the whole queue (not of one batch). Same field names as
    inference.types.Progress so UI code can show either."""

    done: int  # contents finished this run
    queued: int  # contents still waiting in the database queue
    images_per_s: float
    device: str
    paused: bool


@dataclass
class RunStats:
    """What one runner did, for the CLI's summary."""

    analysed: Counter[str] = field(default_factory=Counter)  # results without error
    errors: Counter[str] = field(default_factory=Counter)  # results recording an error
    broken: int = 0  # images that could not be decoded
    completed: int = 0  # contents whose queue row was removed with all results present
    gave_up: int = 0  # contents given up after MAX_ATTEMPTS
    reindexed: int = 0  # files found replaced since indexing, indexed again


@dataclass
class _Plan:
    """What this runner can produce: analyser -> version of every ready analyser, and the
    status of each enabled one (for messages)."""

    versions: dict[str, str]
    statuses: dict[str, ModelStatus]


@dataclass(frozen=True)
class _Work:
    """One queued content taken for a batch."""

    content_id: int
    image_id: int
    path: str
    prompt: str | None
    needed: frozenset[str]
    sha256: str | None = None


def _default_pipeline_factory(**kwargs: Any) -> PipelineLike:
    from inference.pipeline import Pipeline

    return Pipeline(**kwargs)


def _make_job(work: _Work, job_id: int) -> Any:
    from inference.types import Job

    return Job(job_id, work.path, work.prompt, analysers=work.needed, sha256=work.sha256)


class AnalysisRunner:
    """Drains the persisted analysis queue through one inference Pipeline.

    Thread use: `run` blocks (call it from a worker thread or the CLI's main thread);
    `pause`, `resume`, `cancel` and `prioritise` may be called from any thread. Callbacks run
    on the thread calling `run`.

    `pipeline_factory` replaces the real Pipeline (tests); such a pipeline is built at once
    and is its own plan. `executor` also replaces it, but only where the jobs run (called with
    the Pipeline's arguments, when the first batch is taken): this runner still plans from the
    models folder, and the device is checked where the models load, by the executor. An
    executor whose `drains_on_cancel` is true finishes what it already started after a cancel
    and then ends `run` itself; its outputs are still written. `thumbnails`: where a
    re-indexed file's thumbnail goes (None: the app makes it when it is first shown).
    `pictures`: where this process's indexer hands on what it decoded (library.handoff).
    """

    def __init__(self, session_factory: sessionmaker[Session], models_dir: Path | str,
                 settings: Settings, device: str = "auto", batch_size: int | None = None,
                 on_results: Callable[[list[int]], None] | None = None,
                 on_progress: Callable[[RunProgress], None] | None = None,
                 on_status: Callable[[Any], None] | None = None, *,
                 take: int = DEFAULT_TAKE,
                 pipeline_factory: Callable[..., PipelineLike] | None = None,
                 executor: Callable[..., PipelineLike] | None = None,
                 thumbnails: ThumbnailCache | None = None,
                 pictures: PictureHandoff | None = None) -> None:
        self._sessions = session_factory
        self._models_dir = Path(models_dir)
        self._settings = settings
        self._device = device
        self._batch_size = batch_size
        self._on_results = on_results
        self._on_progress = on_progress
        self._on_status = on_status
        self._take = max(1, take)
        self._pipeline_factory = pipeline_factory or executor or _default_pipeline_factory
        self._plans_itself = pipeline_factory is None
        self._local_device = executor is None
        self._thumbnails = thumbnails
        # Only a pipeline decoding in this process can take them.
        self._pictures = pictures if pipeline_factory is None and executor is None else None
        self._plan: _Plan | None = None
        self._pipeline: PipelineLike | None = None
        self._resumed = threading.Event()
        self._resumed.set()
        self._cancelled = threading.Event()
        self._in_batch = False
        self._job_ids = iter(range(1, 2**62))
        self._rate_window: deque[tuple[float, int]] = deque(maxlen=64)
        self._done_this_run = 0
        self._remaining = 0
        self._run_started = time.monotonic()
        # Names this runner's queue leases: unique per process and runner, readable in the
        # database when investigating ("host:pid:…").
        self._lease_id = f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.stats = RunStats()

    # ------------------------------------------------------------------ planning

    @property
    def enabled(self) -> list[str]:
        return list(self._settings.enabled_analysers)

    @property
    def _real_pipeline(self) -> bool:
        """Whether this runner plans from the models folder (not from an injected pipeline)."""
        return self._plans_itself

    def _known(self, keys: list[str]) -> list[str]:
        """Drop keys this version does not know (a settings file from a newer version)."""
        if not self._real_pipeline:
            return keys
        from inference.registry import ANALYSER_KEYS

        unknown = [k for k in keys if k not in ANALYSER_KEYS]
        if unknown:
            log.warning("ignoring unknown analyser(s) in the settings: %s", ", ".join(unknown))
        return [k for k in keys if k in ANALYSER_KEYS]

    def load(self) -> None:
        """Plan the run (idempotent): which enabled analysers are ready, at which version.

        Cheap — weights are found from file headers and cached checksums, no model loads and
        torch is not imported — so a run with nothing to do costs next to nothing. Raises
        ValueError for a device that does not exist or an explicit GPU that is not there."""
        if self._plan is not None:
            return
        keys = self._known(self.enabled)
        if not self._real_pipeline:
            pipeline = self._build_pipeline(keys)
            self._plan = _Plan(dict(pipeline.versions),
                               dict(getattr(pipeline, "statuses", {}) or {}))
            return
        from inference.onnx_runtime import parse_device
        from inference.registry import analyser_class
        from inference.weights import READY, discover

        parse_device(self._device)
        statuses = {s.key: s for s in discover(self._models_dir, keys)}
        for key, status in statuses.items():
            if status.status == READY and self._local_device:
                analyser_class(key).check_device(self._device)
        self._plan = _Plan({k: str(s.version) for k, s in statuses.items() if s.status == READY},
                           statuses)

    @property
    def statuses(self) -> dict[str, ModelStatus]:
        """Status of each enabled analyser (ready, missing, broken — with the reason)."""
        self.load()
        assert self._plan is not None
        return dict(self._plan.statuses)

    @property
    def ready(self) -> list[str]:
        """Enabled analysers with usable weights (what this runner can produce)."""
        self.load()
        assert self._plan is not None
        return [k for k in self._plan.versions if k in self._settings.enabled_analysers]

    @property
    def versions(self) -> dict[str, str]:
        self.load()
        assert self._plan is not None
        return {k: self._plan.versions[k] for k in self.ready}

    @property
    def device(self) -> str:
        """Where the models run once loaded; the requested device before that."""
        return str(self._pipeline.device) if self._pipeline is not None else self._device

    @property
    def pipeline(self) -> PipelineLike:
        """The loaded pipeline, built on first use (the first batch of work)."""
        if self._pipeline is None:
            self.load()
            self._pipeline = self._build_pipeline(self.ready)
            self._drop_unloadable(self._pipeline)
        return self._pipeline

    def _build_pipeline(self, keys: list[str]) -> PipelineLike:
        kwargs: dict[str, Any] = {
            "models_dir": self._models_dir, "analysers": keys, "device": self._device,
            "tag_threshold": self._settings.thresholds.tagger, "batch_size": self._batch_size,
            "on_status": self._on_status}
        if self._real_pipeline and self._plan is not None:
            kwargs["statuses"] = [self._plan.statuses[k] for k in keys]  # no second discovery
        if self._pictures is not None:
            kwargs["pictures"] = self._pictures
        pipeline = self._pipeline_factory(**kwargs)
        pipeline.load()
        self._pipeline = pipeline
        if self._paused_requested:
            pipeline.pause()
        return pipeline

    @property
    def _paused_requested(self) -> bool:
        return not self._resumed.is_set()

    def _drop_unloadable(self, pipeline: PipelineLike) -> None:
        """Weights that looked fine but failed to load are broken: plan without them."""
        assert self._plan is not None
        for key in [k for k in self._plan.versions if k not in pipeline.ready_analysers]:
            del self._plan.versions[key]
            status = getattr(pipeline, "statuses", {}).get(key)
            reason = status.message if status is not None else "failed to load"
            if status is not None:
                self._plan.statuses[key] = status
            log.warning("%s is not used: %s", key, reason)

    # ------------------------------------------------------------------ queue

    def enqueue_missing(self) -> int:
        """Queue every content with an ok image lacking a current result for a ready analyser.
        Returns how many rows were added (already-queued contents are left as they are)."""
        wanted = self.versions
        if not wanted:
            return 0
        with write_transaction(self._sessions) as session:
            added = queue.enqueue_outdated(session, wanted)
        log.info("queued %d content(s) for analysis by %s", added, ", ".join(wanted))
        return added

    def queued_count(self) -> int:
        with self._sessions() as session:
            return queue.queued_count(session)

    def prioritise(self, content_ids: Iterable[int]) -> None:
        """Move these queued contents ahead of everything queued so far (visible or new images
        first). Contents not in the queue are ignored: they need no work."""
        ids = list(set(content_ids))
        if ids:
            with write_transaction(self._sessions) as session:
                queue.prioritise(session, ids)

    # ------------------------------------------------------------------ control

    def pause(self) -> None:
        self._resumed.clear()
        if self._pipeline is not None:
            self._pipeline.pause()
        self._emit_progress()

    def resume(self) -> None:
        self._resumed.set()
        if self._pipeline is not None:
            self._pipeline.resume()
        self._emit_progress()

    def cancel(self) -> None:
        """Stop as soon as possible; unfinished work stays queued for the next start."""
        self._cancelled.set()
        self._resumed.set()  # a paused run must wake up to notice
        # Only while a batch runs: the pipeline keeps a cancel requested between runs for its
        # next run, which would then end a later start of this runner before it began.
        if self._pipeline is not None and self._in_batch:
            self._pipeline.cancel()

    @property
    def paused(self) -> bool:
        return not self._resumed.is_set()

    # ------------------------------------------------------------------ main loop

    def run(self, stop: threading.Event, wake: threading.Event | None = None,
            until_empty: bool = True,
            between_batches: Callable[[], None] | None = None,
            more_coming: threading.Event | None = None) -> RunStats:
        """Analyse queued contents until the queue is empty (`until_empty`) or, otherwise,
        until `stop` is set, sleeping on `wake` (set it when new work was enqueued).
        `more_coming`: while it is set (an indexer in this process is still recording files),
        an empty queue is waited on even with `until_empty`.
        `between_batches` is called on this thread before each batch is taken: the app's
        worker applies what the GUI asked meanwhile there (visible images first)."""
        self._cancelled.clear()
        self.load()
        if not self.ready:
            log.warning("no enabled analyser is ready; nothing to analyse")
            return self.stats
        self.reclaim_dead_leases()
        self.enqueue_missing()
        self._done_this_run = 0
        self._run_started = time.monotonic()
        self._rate_window.clear()
        while not self._should_stop(stop):
            if not self._resumed.is_set():
                self._expire_pictures()
                self._resumed.wait(0.2)
                continue
            if between_batches is not None:
                between_batches()
            # Read before the take: files recorded before indexing ended are then seen by it.
            coming = more_coming is not None and more_coming.is_set()
            batch = self._take_batch()
            if batch:
                if not self._process(batch, stop):
                    log.warning("no enabled analyser could be loaded; nothing to analyse")
                    break
                continue
            if until_empty and not coming:
                break
            self._expire_pictures()
            if wake is None:
                stop.wait(0.5)
            elif wake.wait(0.5):
                wake.clear()
        if self._pipeline is not None:  # nothing was ever due: nothing to report either
            self._emit_progress()
        return self.stats

    def _expire_pictures(self) -> None:
        """While waiting: pictures no batch took for a while are not going to be asked for."""
        if self._pictures is not None:
            self._pictures.expire()

    def _should_stop(self, stop: threading.Event) -> bool:
        return stop.is_set() or self._cancelled.is_set()

    def _take_batch(self) -> list[_Work]:
        """Take the next contents from the queue, count the attempt, and resolve for each an
        ok image path, its SHA-256, the prompt and the analysers it still needs."""
        wanted = self.versions
        with write_transaction(self._sessions) as session:
            # The lease is the transaction's first statement: the write lock is held from the
            # choice of rows to the end, so two runners can never take the same row.
            leased = queue.lease_next(session, self._lease_id, self._take, self._lease_expiry())
            self._remaining = queue.queued_count(session)
            if not leased:
                return []
            present = queue.current_results(session, [r.content_id for r in leased], wanted)
            # `attempts` already counts this take.
            exhausted = [r.content_id for r in leased if r.attempts > MAX_ATTEMPTS]
            if exhausted:
                self._give_up(session, exhausted, present, wanted)
            live = [r.content_id for r in leased if r.attempts <= MAX_ATTEMPTS]
            found = queue.work_for(session, live)
            batch: list[_Work] = []
            finished: list[int] = []
            for cid in live:
                needed = frozenset(wanted) - present.get(cid, frozenset())
                work = found.get(cid)
                if not needed or work is None:
                    finished.append(cid)  # done meanwhile, or no readable file left
                    continue
                batch.append(_Work(cid, work.image_id, work.path, work.prompt, needed,
                                   work.sha256))
            queue.remove(session, finished)
        if exhausted and self._on_results:
            self._on_results(exhausted)
        return batch

    def reclaim_dead_leases(self) -> int:
        """End the leases of runners whose process is gone (killed) on this machine, so a
        restart continues their work at once instead of after LEASE_S. Leases of other
        machines' runners (a library on a network drive) still wait for expiry. Returns how
        many rows were released."""
        host = socket.gethostname()[:40]
        with write_transaction(self._sessions) as session:
            dead = [h for h in queue.leaseholders(session) if _is_dead_local_runner(h, host)]
            released = queue.release_leases_of(session, dead)
        if released:
            log.info("released %d queued content(s) leased by stopped runner(s)", released)
        return released

    def _lease_expiry(self) -> datetime:
        return utcnow() + timedelta(seconds=LEASE_S)

    def _give_up(self, session: Session, ids: Sequence[int],
                 present: dict[int, frozenset[str]], wanted: dict[str, str]) -> None:
        message = GAVE_UP_MESSAGE.format(n=MAX_ATTEMPTS)
        failed = queue.give_up(session, ids, wanted, present, message)
        update_flags(session, ids, self._settings.thresholds, self.enabled)
        self.stats.gave_up += len(ids)
        self.stats.errors.update(failed)
        log.warning("gave up analysing %d content(s): %s", len(ids), message)

    def _process(self, batch: list[_Work], stop: threading.Event) -> bool:
        """Run one batch through the pipeline, writing results as they arrive. False when
        no analyser could be loaded (the batch is released untouched)."""
        # Imported here: the metadata parsers are not needed by a run with nothing to do.
        from library.metadata import raised_png_text_limit

        pipeline = self.pipeline  # loads the models on the first batch
        if not self.ready:
            self._release(batch, set(), clean_stop=True)
            return False
        by_job: dict[int, _Work] = {}
        jobs = []
        for work in batch:
            job_id = next(self._job_ids)
            by_job[job_id] = work
            jobs.append(_make_job(work, job_id))
        writer = _BatchWriter(self, by_job)
        interrupted = False
        results = pipeline.run(jobs)
        self._in_batch = True
        # The pipeline decodes with Pillow, which refuses to open a PNG whose (ComfyUI
        # workflow) text chunk decompresses past 1 MiB; raise that limit, bounded, while this
        # batch runs, so such a valid picture is analysed instead of being called broken.
        try:
            with raised_png_text_limit():
                try:
                    for job, output in results:
                        writer.add(job, output)
                        if writer.due():
                            writer.flush()
                        if self._should_stop(stop) and not interrupted:
                            interrupted = True
                            pipeline.cancel()
                            if not getattr(pipeline, "drains_on_cancel", False):
                                break
                finally:
                    close = getattr(results, "close", None)
                    if close is not None:
                        close()
        finally:
            self._in_batch = False
            writer.flush()
            self._release(batch, writer.finished, clean_stop=interrupted or self._cancelled.is_set(),
                          not_failed=writer.replaced)
        return True

    def _release(self, batch: Sequence[_Work], finished: set[int], clean_stop: bool,
                 not_failed: Iterable[int] = ()) -> None:
        """End this runner's lease on the batch's unfinished rows (they are retried by the
        next take, here or in another process). A clean stop is not a failed attempt, nor is
        a content whose file was replaced: only a killed process, or a batch that failed,
        should count."""
        unfinished = [w.content_id for w in batch if w.content_id not in finished]
        if not unfinished:
            return
        excused = set(unfinished) if clean_stop else set(not_failed) & set(unfinished)
        with write_transaction(self._sessions) as session:
            queue.release(session, self._lease_id, [c for c in unfinished if c in excused],
                          uncount_attempt=True)
            queue.release(session, self._lease_id, [c for c in unfinished if c not in excused],
                          uncount_attempt=False)

    def _reindex(self, works: Sequence[_Work]) -> list[int]:
        """Index these files again (their bytes changed since they were indexed); returns the
        content ids they show now."""
        from library.scan import LibraryIndexer, ScanSummary

        with self._sessions() as session:
            items = [(w.path, queue.folder_of(session, w.image_id)) for w in works]
        with LibraryIndexer(self._sessions, self._thumbnails, workers=1) as indexer:
            indexer.index_paths(items, ScanSummary())
        with self._sessions() as session:
            return queue.contents_of_images(session, [w.image_id for w in works])

    # ------------------------------------------------------------------ progress

    def _count_finished(self, n: int) -> None:
        self._done_this_run += n
        self._rate_window.append((time.monotonic(), self._done_this_run))
        self._emit_progress()

    def _rate(self) -> float:
        """Recent contents per second; over the whole run while the window is too short
        to mean anything (results arrive in bursts, one flush at a time)."""
        now = time.monotonic()
        if len(self._rate_window) >= 2:
            (t0, d0), (t1, d1) = self._rate_window[0], self._rate_window[-1]
            if t1 - t0 >= RATE_WINDOW_MIN_S:
                return (d1 - d0) / (t1 - t0)
        elapsed = now - self._run_started
        return self._done_this_run / elapsed if elapsed > 0 else 0.0

    def _emit_progress(self) -> None:
        if self._on_progress is None:
            return
        self._on_progress(RunProgress(
            done=self._done_this_run,
            queued=max(self._remaining - self._done_this_run, 0),
            images_per_s=self._rate(), device=self.device, paused=self.paused))


def _is_dead_local_runner(lease_id: str, host: str) -> bool:
    """Whether `lease_id` ("host:pid:token") names a process of this host that has ended."""
    parts = lease_id.rsplit(":", 2)
    if len(parts) != 3 or parts[0] != host or not parts[1].isdigit():
        return False
    try:
        os.kill(int(parts[1]), 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except OSError:
        return False  # exists but belongs to another user, or the check is not possible
    return False


class _BatchWriter:
    """Buffers one batch's pipeline outputs and writes them in short transactions."""

    def __init__(self, runner: AnalysisRunner, by_job: dict[int, _Work]) -> None:
        self._runner = runner
        self._by_job = by_job
        self._results: dict[tuple[int, str], Any] = {}
        self._failures: dict[int, tuple[_Work, str]] = {}
        self._changed: dict[int, _Work] = {}
        self._last_flush = self._last_renewal = time.monotonic()
        self.finished: set[int] = set()  # content ids whose queue row was removed
        self.replaced: set[int] = set()  # content ids whose file now shows another picture

    def add(self, job: Any, output: Any) -> None:
        work = self._by_job.get(job.job_id)
        if work is None:
            return
        if hasattr(output, "analyser"):
            # Only what this content needed: a current result is never rewritten, even when
            # the pipeline ran every analyser on it.
            if output.analyser in work.needed:
                self._results[(work.content_id, output.analyser)] = output
        elif hasattr(output, "found_sha256"):  # ContentChanged: the file was replaced
            self._changed[work.image_id] = work
        else:  # DecodeFailure: the file itself is unreadable
            self._failures[work.image_id] = (work, str(getattr(output, "message", output)))

    def due(self) -> bool:
        return time.monotonic() - self._last_flush >= FLUSH_INTERVAL_S

    def flush(self) -> None:
        self._last_flush = now = time.monotonic()
        renew = now - self._last_renewal >= LEASE_RENEW_S
        runner = self._runner
        changed, self._changed = list(self._changed.values()), {}
        shown_now = runner._reindex(changed) if changed else []  # reads files: no lock held
        if not self._results and not self._failures and not changed:
            if renew:
                self._last_renewal = now
                with write_transaction(runner._sessions) as session:
                    queue.renew_lease(session, runner._lease_id, self._unfinished(),
                                      runner._lease_expiry())
            return
        results, self._results = self._results, {}
        failures, self._failures = self._failures, {}
        versions = runner.versions
        touched = {cid for cid, _ in results}
        with write_transaction(runner._sessions) as session:
            queue.write_results(session, results, versions)
            dropped = self._mark_unreadable(session, failures.values())
            # A replaced file no longer shows its old content: that content is done here
            # unless another file still shows it (then it stays queued for that file).
            dropped += [w.content_id for w in changed
                        if not queue.has_ok_image(session, w.content_id)]
            changed_flags = update_flags(session, touched, runner._settings.thresholds,
                                         runner.enabled)
            present = queue.current_results(session, list(touched), versions)
            complete = [cid for cid in touched if present.get(cid, frozenset()) >= set(versions)]
            done = sorted((set(complete) | set(dropped)) - self.finished)
            queue.remove(session, done)
            if renew:
                self._last_renewal = now
                queue.renew_lease(session, runner._lease_id,
                                  [c for c in self._unfinished() if c not in done],
                                  runner._lease_expiry())
        for output in results.values():
            (runner.stats.errors if output.error else runner.stats.analysed)[output.analyser] += 1
        runner.stats.broken += len(failures)
        runner.stats.reindexed += len(changed)
        runner.stats.completed += len(set(complete) - self.finished)
        self.replaced.update(w.content_id for w in changed)
        self.finished.update(done)
        if done:
            runner._count_finished(len(done))
        notify = sorted(touched | set(changed_flags) | set(shown_now)
                        | {w.content_id for w, _ in failures.values()}
                        | {w.content_id for w in changed})
        if notify and runner._on_results:
            runner._on_results(notify)

    def _unfinished(self) -> list[int]:
        return [w.content_id for w in self._by_job.values() if w.content_id not in self.finished]

    @staticmethod
    def _mark_unreadable(session: Session, failures: Iterable[tuple[_Work, str]]) -> list[int]:
        """Mark undecodable images broken (missing if the file vanished meanwhile). Returns
        content ids whose queue row should go: those with no other ok image left to try."""
        drop = []
        for work, message in failures:
            status = ImageStatus.BROKEN if os.path.exists(work.path) else ImageStatus.MISSING
            queue.mark_unreadable(session, work.image_id, status, message)
            if not queue.has_ok_image(session, work.content_id):
                drop.append(work.content_id)
        return drop


__all__ = ["MAX_ATTEMPTS", "AnalysisRunner", "PipelineLike", "RunProgress", "RunStats"]
