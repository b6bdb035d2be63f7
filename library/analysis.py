"""The analysis runner: persisted queue → inference pipeline → results, tags, flags.

Shared by the app's inference QThread and `gentriage scan` (no Qt here). The work list lives
in the database (`analysis_queue`), so work pending when the program exits — cleanly or not —
resumes at the next start, and nothing is done twice:

* on start, every content with an ok image that lacks a result for a ready analyser *at that
  analyser's current version* (its weights checksum) is enqueued with one set-based
  `INSERT OR IGNORE … SELECT`: new weights re-analyse, unchanged weights never repeat work;
* batches are taken from the queue (highest priority first, then newest), each content is
  analysed by the analysers whose current result it lacks, results are written in short
  transactions as they arrive, flags are recomputed, and a queue row is removed once every
  needed analyser has a current result (or an error recorded for it);
* an image that cannot be decoded is marked broken; a queue row whose batch never finished
  (the process was killed) is retried, at most MAX_ATTEMPTS times, then given up with an error
  result so one poisonous file cannot stall the queue forever;
* the app and a headless scan may drain the same queue at once: a runner *leases* the rows it
  takes (one atomic UPDATE … RETURNING), renews the lease while the batch runs and releases
  it when the batch ends; other runners skip leased rows, and the lease of a killed process
  expires after LEASE_S.
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
from typing import Any, Protocol

from sqlalchemy import and_, delete, exists, func, literal, or_, select, tuple_, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from db.embeddings import StoredEmbedding, store_embeddings
from db.flags import update_flags
from db.schema import (
    AnalysisResult,
    Content,
    Generation,
    Image,
    ImageStatus,
    QueuedAnalysis,
    Tag,
    utcnow,
)
from db.transaction import write_transaction
from library.metadata import raised_png_text_limit
from library.settings import Settings

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

    ready_analysers: Sequence[str]
    versions: dict[str, str]
    device: str

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


@dataclass(frozen=True)
class _Work:
    """One queued content taken for a batch."""

    content_id: int
    image_id: int
    path: str
    prompt: str | None
    needed: frozenset[str]


def _default_pipeline_factory(**kwargs: Any) -> PipelineLike:
    from inference.pipeline import Pipeline

    return Pipeline(**kwargs)


def _make_job(job_id: int, path: str, prompt: str | None, analysers: frozenset[str]) -> Any:
    from inference.types import Job

    return Job(job_id, path, prompt, analysers=analysers)


class AnalysisRunner:
    """Drains the persisted analysis queue through one inference Pipeline.

    Thread use: `run` blocks (call it from a worker thread or the CLI's main thread);
    `pause`, `resume`, `cancel` and `prioritise` may be called from any thread. Callbacks run
    on the thread calling `run`.
    """

    def __init__(self, session_factory: sessionmaker[Session], models_dir: Path | str,
                 settings: Settings, device: str = "auto", batch_size: int | None = None,
                 on_results: Callable[[list[int]], None] | None = None,
                 on_progress: Callable[[RunProgress], None] | None = None,
                 on_status: Callable[[Any], None] | None = None, *,
                 take: int = DEFAULT_TAKE,
                 pipeline_factory: Callable[..., PipelineLike] | None = None) -> None:
        self._sessions = session_factory
        self._models_dir = Path(models_dir)
        self._settings = settings
        self._device = device
        self._batch_size = batch_size
        self._on_results = on_results
        self._on_progress = on_progress
        self._on_status = on_status
        self._take = max(1, take)
        self._pipeline_factory = pipeline_factory or _default_pipeline_factory
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

    # ------------------------------------------------------------------ setup

    @property
    def enabled(self) -> list[str]:
        return list(self._settings.enabled_analysers)

    @property
    def pipeline(self) -> PipelineLike:
        if self._pipeline is None:
            self.load()
        assert self._pipeline is not None
        return self._pipeline

    @property
    def ready(self) -> list[str]:
        """Enabled analysers whose weights loaded (what this runner can produce)."""
        return [k for k in self.pipeline.ready_analysers if k in self._settings.enabled_analysers]

    @property
    def versions(self) -> dict[str, str]:
        return {k: self.pipeline.versions[k] for k in self.ready}

    def _known(self, keys: list[str]) -> list[str]:
        """Drop keys this version does not know (a settings file from a newer version)."""
        if self._pipeline_factory is not _default_pipeline_factory:
            return keys
        from inference.registry import ANALYSER_KEYS

        unknown = [k for k in keys if k not in ANALYSER_KEYS]
        if unknown:
            log.warning("ignoring unknown analyser(s) in the settings: %s", ", ".join(unknown))
        return [k for k in keys if k in ANALYSER_KEYS]

    def load(self) -> PipelineLike:
        """Build and load the pipeline for the enabled analysers (idempotent)."""
        if self._pipeline is None:
            pipeline = self._pipeline_factory(
                models_dir=self._models_dir, analysers=self._known(self.enabled),
                device=self._device, tag_threshold=self._settings.thresholds.tagger,
                batch_size=self._batch_size, on_status=self._on_status)
            pipeline.load()
            self._pipeline = pipeline
        return self._pipeline

    # ------------------------------------------------------------------ queue

    def enqueue_missing(self) -> int:
        """Queue every content with an ok image lacking a current result for a ready analyser.
        Returns how many rows were added (already-queued contents are left as they are)."""
        wanted = self.versions
        if not wanted:
            return 0
        outdated = [
            ~exists().where(AnalysisResult.content_id == Content.id,
                            AnalysisResult.analyser == analyser,
                            AnalysisResult.version == version)
            for analyser, version in wanted.items()
        ]
        has_ok_image = exists().where(Image.content_id == Content.id,
                                      Image.status == ImageStatus.OK.value)
        candidates = select(Content.id, literal(0), literal(utcnow()), literal(0)).where(
            has_ok_image, or_(*outdated))
        statement = sqlite_insert(QueuedAnalysis).from_select(
            ["content_id", "priority", "enqueued_at", "attempts"], candidates
        ).on_conflict_do_nothing()
        with write_transaction(self._sessions) as session:
            added = session.execute(statement).rowcount or 0
        log.info("queued %d content(s) for analysis by %s", added, ", ".join(wanted))
        return added

    def queued_count(self) -> int:
        with self._sessions() as session:
            return session.scalar(select(func.count()).select_from(QueuedAnalysis)) or 0

    def prioritise(self, content_ids: Iterable[int]) -> None:
        """Move these queued contents ahead of everything queued so far (visible or new images
        first). Contents not in the queue are ignored: they need no work."""
        ids = list(set(content_ids))
        if not ids:
            return
        with write_transaction(self._sessions) as session:
            top = session.scalar(select(func.max(QueuedAnalysis.priority))) or 0
            session.execute(update(QueuedAnalysis).where(QueuedAnalysis.content_id.in_(ids))
                            .values(priority=top + 1))

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
            until_empty: bool = True) -> RunStats:
        """Analyse queued contents until the queue is empty (`until_empty`) or, otherwise,
        until `stop` is set, sleeping on `wake` (set it when new work was enqueued)."""
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
                self._resumed.wait(0.2)
                continue
            batch = self._take_batch()
            if batch:
                self._process(batch, stop)
                continue
            if until_empty:
                break
            if wake is None:
                stop.wait(0.5)
            elif wake.wait(0.5):
                wake.clear()
        self._emit_progress()
        return self.stats

    def _should_stop(self, stop: threading.Event) -> bool:
        return stop.is_set() or self._cancelled.is_set()

    def _take_batch(self) -> list[_Work]:
        """Take the next contents from the queue, count the attempt, and resolve for each an
        ok image path, the prompt and the analysers it still needs."""
        wanted = self.versions
        with write_transaction(self._sessions) as session:
            # The lease is the transaction's first statement: the write lock is held from the
            # choice of rows to the end, so two runners can never take the same row.
            rows = self._lease_next(session)
            self._remaining = session.scalar(
                select(func.count()).select_from(QueuedAnalysis)) or 0
            if not rows:
                return []
            ids = [cid for cid, _ in rows]
            present = self._current_results(session, ids, wanted)
            # `attempts` already counts this take.
            exhausted = [cid for cid, attempts in rows if attempts > MAX_ATTEMPTS]
            if exhausted:
                self._give_up(session, exhausted, present, wanted)
            live = [cid for cid, attempts in rows if attempts <= MAX_ATTEMPTS]
            paths = self._ok_paths(session, live)
            prompts = dict(session.execute(
                select(Generation.content_id, Generation.prompt)
                .where(Generation.content_id.in_(live))).all())
            batch: list[_Work] = []
            finished: list[int] = []
            for cid in live:
                needed = frozenset(wanted) - present.get(cid, frozenset())
                if not needed or cid not in paths:
                    finished.append(cid)  # done meanwhile, or no readable file left
                    continue
                image_id, path = paths[cid]
                batch.append(_Work(cid, image_id, path, prompts.get(cid), needed))
            if finished:
                session.execute(delete(QueuedAnalysis)
                                .where(QueuedAnalysis.content_id.in_(finished)))
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
            holders = session.scalars(
                select(QueuedAnalysis.leased_by).where(QueuedAnalysis.leased_by.is_not(None))
                .distinct()).all()
            dead = [holder for holder in holders if _is_dead_local_runner(holder, host)]
            if not dead:
                return 0
            released = session.execute(
                update(QueuedAnalysis).where(QueuedAnalysis.leased_by.in_(dead))
                .values(leased_by=None, leased_until=None)).rowcount or 0
        log.info("released %d queued content(s) leased by stopped runner(s)", released)
        return released

    def _lease_expiry(self) -> datetime:
        return utcnow() + timedelta(seconds=LEASE_S)

    def _lease_next(self, session: Session) -> list[tuple[int, int]]:
        """Lease the next `take` unleased (or expired) rows, counting the attempt, in one
        UPDATE … RETURNING. Returns (content id, attempts) in queue order."""
        now = utcnow()
        order = (QueuedAnalysis.priority.desc(), QueuedAnalysis.enqueued_at.desc(),
                 QueuedAnalysis.content_id.desc())
        takeable = (select(QueuedAnalysis.content_id)
                    .where(or_(QueuedAnalysis.leased_until.is_(None),
                               QueuedAnalysis.leased_until < now))
                    .order_by(*order).limit(self._take))
        taken = session.execute(
            update(QueuedAnalysis).where(QueuedAnalysis.content_id.in_(takeable))
            .values(leased_by=self._lease_id, leased_until=self._lease_expiry(),
                    attempts=QueuedAnalysis.attempts + 1)
            .returning(QueuedAnalysis.content_id, QueuedAnalysis.attempts,
                       QueuedAnalysis.priority, QueuedAnalysis.enqueued_at)).all()
        # RETURNING comes in no defined order: restore the queue's.
        taken.sort(key=lambda r: (r.priority, r.enqueued_at, r.content_id), reverse=True)
        return [(r.content_id, r.attempts) for r in taken]

    def _mine(self, content_ids: Sequence[int]) -> Any:
        """Queue rows among `content_ids` still leased by this runner (another runner may
        have taken a row whose lease lapsed)."""
        return and_(QueuedAnalysis.content_id.in_(content_ids),
                    QueuedAnalysis.leased_by == self._lease_id)

    def _renew_lease(self, session: Session, content_ids: Sequence[int]) -> None:
        if content_ids:
            session.execute(update(QueuedAnalysis).where(self._mine(content_ids))
                            .values(leased_until=self._lease_expiry()))

    @staticmethod
    def _current_results(session: Session, ids: Sequence[int],
                         wanted: dict[str, str]) -> dict[int, frozenset[str]]:
        """content id -> analysers with a result at their current version."""
        found: dict[int, set[str]] = {}
        for cid, analyser, version in session.execute(
                select(AnalysisResult.content_id, AnalysisResult.analyser,
                       AnalysisResult.version).where(AnalysisResult.content_id.in_(ids))):
            if wanted.get(analyser) == version:
                found.setdefault(cid, set()).add(analyser)
        return {cid: frozenset(a) for cid, a in found.items()}

    @staticmethod
    def _ok_paths(session: Session, ids: Sequence[int]) -> dict[int, tuple[int, str]]:
        """content id -> (image id, path) of one ok image, the oldest row first."""
        chosen: dict[int, tuple[int, str]] = {}
        for image_id, cid, path in session.execute(
                select(Image.id, Image.content_id, Image.path)
                .where(Image.content_id.in_(ids), Image.status == ImageStatus.OK.value)
                .order_by(Image.id)):
            chosen.setdefault(cid, (image_id, path))
        return chosen

    def _give_up(self, session: Session, ids: Sequence[int],
                 present: dict[int, frozenset[str]], wanted: dict[str, str]) -> None:
        message = GAVE_UP_MESSAGE.format(n=MAX_ATTEMPTS)
        rows = [dict(content_id=cid, analyser=a, version=v, label=None, score=None, scores={},
                     error=message, analysed_at=utcnow())
                for cid in ids for a, v in wanted.items() if a not in present.get(cid, ())]
        if rows:
            _upsert_results(session, rows)
        session.execute(delete(QueuedAnalysis).where(QueuedAnalysis.content_id.in_(ids)))
        update_flags(session, ids, self._settings.thresholds, self.enabled)
        self.stats.gave_up += len(ids)
        for row in rows:
            self.stats.errors[row["analyser"]] += 1
        log.warning("gave up analysing %d content(s): %s", len(ids), message)

    def _process(self, batch: list[_Work], stop: threading.Event) -> None:
        """Run one batch through the pipeline, writing results as they arrive."""
        by_job: dict[int, _Work] = {}
        jobs = []
        for work in batch:
            job_id = next(self._job_ids)
            by_job[job_id] = work
            jobs.append(_make_job(job_id, work.path, work.prompt, work.needed))
        writer = _BatchWriter(self, by_job)
        interrupted = False
        results = self.pipeline.run(jobs)
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
                        if self._should_stop(stop):
                            interrupted = True
                            self.pipeline.cancel()
                            break
                finally:
                    close = getattr(results, "close", None)
                    if close is not None:
                        close()
        finally:
            self._in_batch = False
            writer.flush()
            self._release(batch, writer.finished,
                          clean_stop=interrupted or self._cancelled.is_set())

    def _release(self, batch: Sequence[_Work], finished: set[int], clean_stop: bool) -> None:
        """End this runner's lease on the batch's unfinished rows (they are retried by the
        next take, here or in another process). A clean stop is not a failed attempt: only
        a killed process, or a batch that failed, should count."""
        unfinished = [w.content_id for w in batch if w.content_id not in finished]
        if not unfinished:
            return
        values: dict[str, Any] = {"leased_by": None, "leased_until": None}
        if clean_stop:
            values["attempts"] = func.max(QueuedAnalysis.attempts - 1, 0)
        with write_transaction(self._sessions) as session:
            session.execute(update(QueuedAnalysis).where(self._mine(unfinished)).values(values))

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
        device = getattr(self._pipeline, "device", self._device) if self._pipeline else self._device
        self._on_progress(RunProgress(
            done=self._done_this_run,
            queued=max(self._remaining - self._done_this_run, 0),
            images_per_s=self._rate(), device=str(device), paused=self.paused))


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


def _upsert_results(session: Session, rows: list[dict[str, Any]]) -> None:
    statement = sqlite_insert(AnalysisResult).values(rows)
    statement = statement.on_conflict_do_update(
        index_elements=[AnalysisResult.content_id, AnalysisResult.analyser],
        set_={name: statement.excluded[name]
              for name in ("version", "label", "score", "scores", "error", "analysed_at")})
    session.execute(statement)


class _BatchWriter:
    """Buffers one batch's pipeline outputs and writes them in short transactions."""

    def __init__(self, runner: AnalysisRunner, by_job: dict[int, _Work]) -> None:
        self._runner = runner
        self._by_job = by_job
        self._results: dict[tuple[int, str], Any] = {}
        self._failures: dict[int, tuple[_Work, str]] = {}
        self._last_flush = self._last_renewal = time.monotonic()
        self.finished: set[int] = set()  # content ids whose queue row was removed

    def add(self, job: Any, output: Any) -> None:
        work = self._by_job.get(job.job_id)
        if work is None:
            return
        if hasattr(output, "analyser"):
            # Only what this content needed: a current result is never rewritten, even when
            # the pipeline ran every analyser on it.
            if output.analyser in work.needed:
                self._results[(work.content_id, output.analyser)] = output
        else:  # DecodeFailure: the file itself is unreadable
            self._failures[work.image_id] = (work, str(getattr(output, "message", output)))

    def due(self) -> bool:
        return time.monotonic() - self._last_flush >= FLUSH_INTERVAL_S

    def flush(self) -> None:
        self._last_flush = now = time.monotonic()
        renew = now - self._last_renewal >= LEASE_RENEW_S
        if not self._results and not self._failures:
            if renew:
                self._last_renewal = now
                with write_transaction(self._runner._sessions) as session:
                    self._runner._renew_lease(session, self._unfinished())
            return
        runner = self._runner
        results, self._results = self._results, {}
        failures, self._failures = self._failures, {}
        versions = runner.versions
        touched = {cid for cid, _ in results}
        with write_transaction(runner._sessions) as session:
            if results:
                self._write_results(session, results, versions)
            dropped = self._mark_unreadable(session, failures.values())
            changed_flags = update_flags(session, touched, runner._settings.thresholds,
                                         runner.enabled)
            present = AnalysisRunner._current_results(session, list(touched), versions)
            complete = [cid for cid in touched if present.get(cid, frozenset()) >= set(versions)]
            done = sorted((set(complete) | set(dropped)) - self.finished)
            if done:
                session.execute(delete(QueuedAnalysis)
                                .where(QueuedAnalysis.content_id.in_(done)))
            if renew:
                self._last_renewal = now
                runner._renew_lease(session, [c for c in self._unfinished() if c not in done])
        for output in results.values():
            (runner.stats.errors if output.error else runner.stats.analysed)[output.analyser] += 1
        runner.stats.broken += len(failures)
        runner.stats.completed += len(set(complete) - self.finished)
        self.finished.update(done)
        if done:
            runner._count_finished(len(done))
        notify = sorted(touched | set(changed_flags) | {w.content_id for w, _ in failures.values()})
        if notify and runner._on_results:
            runner._on_results(notify)

    def _unfinished(self) -> list[int]:
        return [w.content_id for w in self._by_job.values() if w.content_id not in self.finished]

    @staticmethod
    def _write_results(session: Session, results: dict[tuple[int, str], Any],
                       versions: dict[str, str]) -> None:
        now = utcnow()
        rows = [dict(content_id=cid, analyser=analyser,
                     version=output.version or versions[analyser], label=output.label,
                     score=None if output.score is None else float(output.score),
                     scores={k: float(v) for k, v in (output.scores or {}).items()},
                     error=output.error, analysed_at=now)
                for (cid, analyser), output in results.items()]
        _upsert_results(session, rows)
        # Embedding analysers (clip): the vector goes beside its result row, same transaction.
        store_embeddings(session, [
            StoredEmbedding(cid, output.version or versions[analyser], output.embedding)
            for (cid, analyser), output in results.items()
            if getattr(output, "embedding", None) is not None and output.error is None])
        # Tags are replaced per (content, analyser): a re-analysis never leaves stale tags.
        session.execute(delete(Tag).where(
            tuple_(Tag.content_id, Tag.analyser).in_(list(results))))
        tag_rows = []
        for (cid, analyser), output in results.items():
            best: dict[str, float] = {}
            for tag, score in output.tags or ():
                best[tag] = max(float(score), best.get(tag, 0.0))
            tag_rows.extend(dict(content_id=cid, analyser=analyser, tag=t, score=s)
                            for t, s in best.items())
        if tag_rows:
            session.execute(sqlite_insert(Tag).values(tag_rows).on_conflict_do_nothing())

    @staticmethod
    def _mark_unreadable(session: Session, failures: Iterable[tuple[_Work, str]]) -> list[int]:
        """Mark undecodable images broken (missing if the file vanished meanwhile). Returns
        content ids whose queue row should go: those with no other ok image left to try."""
        drop = []
        for work, message in failures:
            status = ImageStatus.BROKEN if os.path.exists(work.path) else ImageStatus.MISSING
            session.execute(update(Image).where(Image.id == work.image_id)
                            .values(status=status.value, error=message))
            other_ok = session.scalar(select(exists().where(
                and_(Image.content_id == work.content_id, Image.status == ImageStatus.OK.value))))
            if not other_ok:
                drop.append(work.content_id)
        return drop


__all__ = ["AnalysisRunner", "RunProgress", "RunStats", "MAX_ATTEMPTS", "PipelineLike"]
