"""AnalysisRunner: queue → pipeline → results, flags and queue bookkeeping.

Most tests drive the runner with a scripted pipeline (same interface as
inference.pipeline.Pipeline) so they can provoke analyser errors, unreadable files and version
changes cheaply; one test runs the real pipeline with the bundled nsfw-default analyser.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from PIL import Image as PILImage
from sqlalchemy import func, select

from db.engine import open_library, session_factory
from db.schema import (
    AnalysisResult,
    Content,
    Generation,
    Image,
    QueuedAnalysis,
    Tag,
)
from inference.types import AnalyserOutput, DecodeFailure
from inference.weights import READY
from library.analysis import MAX_ATTEMPTS, AnalysisRunner
from library.settings import Settings


@dataclass
class FakePipeline:
    """Scripted stand-in for inference.pipeline.Pipeline."""

    versions: dict[str, str]
    fail: set[tuple[str, str]] = field(default_factory=set)  # (file name, analyser) that raise
    seen: list = field(default_factory=list)  # every job received, in order
    device: str = "cpu"
    cancelled: bool = False

    @property
    def ready_analysers(self) -> list[str]:
        return list(self.versions)

    def load(self) -> None:
        pass

    def pause(self) -> None:
        pass

    def resume(self) -> None:
        pass

    def cancel(self) -> None:
        self.cancelled = True

    def run(self, jobs: Iterable) -> Iterator:
        for job in jobs:
            self.seen.append(job)
            if not Path(job.path).exists() or Path(job.path).read_bytes()[:4] == b"junk":
                yield job, DecodeFailure(job, f"cannot identify image file {job.path!r}")
                continue
            wanted = getattr(job, "analysers", None) or self.versions
            for analyser in self.versions:
                if analyser not in wanted:
                    continue
                version = self.versions[analyser]
                if (Path(job.path).name, analyser) in self.fail:
                    yield job, AnalyserOutput.failed(analyser, version, "boom")
                elif analyser == "nsfw-default":
                    # Files named "nsfw*" score high, so flags can be checked.
                    score = 0.9 if Path(job.path).name.startswith("nsfw") else 0.1
                    yield job, AnalyserOutput(analyser, version, "nsfw" if score > .5 else "sfw",
                                              score, {"nsfw": score})
                elif analyser == "aesthetic":
                    yield job, AnalyserOutput(analyser, version, None, 5.5,
                                              {"aesthetic": 5.5,
                                               "prompt_adherence": 30.0 if job.prompt else 0.0})
                else:
                    yield job, AnalyserOutput(analyser, version, None, 0.8, {},
                                              [("cat", 0.8), ("dog", 0.3)])


class StopAfterFirst(FakePipeline):
    """Sets `stop` after its first output: a run interrupted mid-batch."""

    def __init__(self, versions, stop: threading.Event):
        super().__init__(versions)
        self._stop = stop

    def run(self, jobs):
        for pair in super().run(jobs):
            yield pair
            self._stop.set()


class Library:
    """A database with a handful of indexed images (rows written directly)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.db = root / "library.sqlite3"
        self.engine = open_library(self.db)
        self.Session = session_factory(self.engine)

    def add_image(self, name: str, prompt: str | None = None, data: bytes | None = None) -> int:
        path = self.root / name
        if data is None:
            seed = hashlib.sha256(name.encode()).digest()  # a distinct picture per name
            PILImage.frombytes("RGB", (8, 8), (seed * 6)[:192]).save(path, "PNG")
        else:
            path.write_bytes(data)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        with self.Session.begin() as s:
            content = Content(sha256=digest)
            s.add(content)
            s.flush()
            s.add(Image(path=str(path), name=name, content_id=content.id))
            if prompt is not None:
                s.add(Generation(content_id=content.id, prompt=prompt, raw={}))
            return content.id

    def count(self, model) -> int:
        with self.Session() as s:
            return s.scalar(select(func.count()).select_from(model))

    def results(self) -> dict[tuple[int, str], AnalysisResult]:
        with self.Session() as s:
            return {(r.content_id, r.analyser): r for r in s.scalars(select(AnalysisResult))}


@pytest.fixture
def lib(tmp_path):
    library = Library(tmp_path)
    yield library
    library.engine.dispose()


def make_runner(lib: Library, pipeline: FakePipeline, enabled: list[str] | None = None,
                **kwargs) -> AnalysisRunner:
    settings = Settings(enabled_analysers=enabled or list(pipeline.versions))
    return AnalysisRunner(lib.Session, lib.root / "models", settings,
                          pipeline_factory=lambda **_: pipeline, **kwargs)


VERSIONS = {"nsfw-default": "v1", "aesthetic": "a1", "tagger-jtp": "t1"}


def test_analyses_every_content_and_empties_the_queue(lib):
    ids = [lib.add_image(f"img{i}.png", prompt="a cat") for i in range(3)]
    nsfw_id = lib.add_image("nsfw1.png")
    changed: list[int] = []
    runner = make_runner(lib, FakePipeline(dict(VERSIONS)), on_results=changed.extend)

    stats = runner.run(threading.Event())

    results = lib.results()
    assert len(results) == 4 * 3
    assert results[(ids[0], "aesthetic")].scores["prompt_adherence"] == 30.0
    assert results[(nsfw_id, "aesthetic")].scores["prompt_adherence"] == 0.0  # no prompt passed
    assert lib.count(QueuedAnalysis) == 0
    assert lib.count(Tag) == 4 * 2
    assert stats.analysed == {"nsfw-default": 4, "aesthetic": 4, "tagger-jtp": 4}
    assert stats.completed == 4
    with lib.Session() as s:
        flagged = set(s.scalars(select(Content.id).where(Content.flagged)))
        analysed = set(s.scalars(select(Content.id).where(Content.analysed)))
    assert flagged == {nsfw_id}
    assert analysed == set(ids) | {nsfw_id}
    assert set(changed) == set(ids) | {nsfw_id}


def test_unchanged_versions_never_repeat_work(lib):
    for i in range(3):
        lib.add_image(f"img{i}.png")
    make_runner(lib, FakePipeline(dict(VERSIONS))).run(threading.Event())

    again = FakePipeline(dict(VERSIONS))
    runner = make_runner(lib, again)
    assert runner.enqueue_missing() == 0
    runner.run(threading.Event())
    assert again.seen == []


def test_a_changed_model_reanalyses_only_with_that_model(lib):
    ids = [lib.add_image(f"img{i}.png") for i in range(2)]
    make_runner(lib, FakePipeline(dict(VERSIONS))).run(threading.Event())
    before = lib.results()

    second = FakePipeline({**VERSIONS, "aesthetic": "a2"})
    make_runner(lib, second).run(threading.Event())

    after = lib.results()
    assert len(second.seen) == 2
    for cid in ids:
        assert after[(cid, "aesthetic")].version == "a2"
        # Untouched analysers keep their original rows.
        assert after[(cid, "nsfw-default")].analysed_at == before[(cid, "nsfw-default")].analysed_at
    assert all(set(job.analysers) == {"aesthetic"} for job in second.seen)
    assert lib.count(QueuedAnalysis) == 0


def test_an_analyser_error_is_recorded_and_the_batch_goes_on(lib):
    bad = lib.add_image("bad.png")
    good = lib.add_image("good.png")
    pipeline = FakePipeline(dict(VERSIONS), fail={("bad.png", "tagger-jtp")})
    stats = make_runner(lib, pipeline).run(threading.Event())

    results = lib.results()
    assert results[(bad, "tagger-jtp")].error == "boom"
    assert results[(bad, "nsfw-default")].error is None
    assert results[(good, "tagger-jtp")].error is None
    assert stats.errors == {"tagger-jtp": 1}
    assert lib.count(QueuedAnalysis) == 0
    # The error counts as this version's result: the next start does not retry it forever.
    assert make_runner(lib, FakePipeline(dict(VERSIONS))).enqueue_missing() == 0


def test_an_undecodable_file_is_marked_broken_and_dropped_from_the_queue(lib):
    broken = lib.add_image("broken.png", data=b"junk, not a picture")
    fine = lib.add_image("fine.png")
    stats = make_runner(lib, FakePipeline(dict(VERSIONS))).run(threading.Event())

    with lib.Session() as s:
        image = s.scalar(select(Image).where(Image.content_id == broken))
    assert image.status == "broken"
    assert "cannot identify image file" in image.error
    assert stats.broken == 1
    assert lib.count(QueuedAnalysis) == 0
    assert {cid for cid, _ in lib.results()} == {fine}
    # Broken images are not re-queued at the next start.
    assert make_runner(lib, FakePipeline(dict(VERSIONS))).enqueue_missing() == 0


def test_work_pending_at_stop_resumes_at_the_next_start_without_duplicates(lib):
    ids = [lib.add_image(f"img{i}.png") for i in range(6)]
    stop = threading.Event()
    first = FakePipeline(dict(VERSIONS))
    # take=2: stop after the first batch's results are written.
    runner = make_runner(lib, first, take=2, on_results=lambda _ids: stop.set())
    runner.run(stop)
    assert lib.count(QueuedAnalysis) == 4
    done_first = {cid for cid, _ in lib.results()}
    assert len(done_first) == 2

    # A new process: fresh engine on the same file.
    lib.engine.dispose()
    lib.engine = open_library(lib.db)
    lib.Session = session_factory(lib.engine)
    second = FakePipeline(dict(VERSIONS))
    runner = make_runner(lib, second)
    assert runner.enqueue_missing() == 0  # the queue already holds the rest: no duplicates
    runner.run(threading.Event())

    assert {Path(j.path).name for j in second.seen} == {f"img{i}.png" for i in range(6)} - {
        Path(j.path).name for j in first.seen}
    assert len(lib.results()) == 6 * 3
    assert {cid for cid, _ in lib.results()} == set(ids)
    assert lib.count(QueuedAnalysis) == 0


def test_a_clean_stop_does_not_count_as_a_failed_attempt(lib):
    for i in range(4):
        lib.add_image(f"img{i}.png")
    stop = threading.Event()

    make_runner(lib, StopAfterFirst(dict(VERSIONS), stop), take=4).run(stop)
    with lib.Session() as s:
        attempts = list(s.scalars(select(QueuedAnalysis.attempts)))
    assert len(attempts) == 4
    assert attempts == [0, 0, 0, 0]


def test_a_content_that_never_finishes_is_given_up(lib):
    stuck = lib.add_image("stuck.png")
    other = lib.add_image("other.png")
    runner = make_runner(lib, FakePipeline(dict(VERSIONS)))
    runner.enqueue_missing()
    with lib.Session.begin() as s:  # as if the process died during its batch every time
        s.get(QueuedAnalysis, stuck).attempts = MAX_ATTEMPTS
    pipeline = FakePipeline(dict(VERSIONS))
    stats = make_runner(lib, pipeline).run(threading.Event())

    assert [Path(j.path).name for j in pipeline.seen] == ["other.png"]
    results = lib.results()
    assert all("did not finish" in results[(stuck, a)].error for a in VERSIONS)
    assert results[(other, "aesthetic")].error is None
    assert stats.gave_up == 1
    assert lib.count(QueuedAnalysis) == 0


def test_prioritised_contents_are_analysed_first(lib):
    ids = [lib.add_image(f"img{i}.png") for i in range(5)]
    pipeline = FakePipeline(dict(VERSIONS))
    runner = make_runner(lib, pipeline, take=1)
    runner.load()
    runner.enqueue_missing()
    runner.prioritise([ids[1]])
    runner.prioritise([ids[3]])  # the latest request wins
    runner.run(threading.Event())
    order = [Path(j.path).name for j in pipeline.seen]
    # Prioritised first (most recent request first), then newest first.
    assert order == ["img3.png", "img1.png", "img4.png", "img2.png", "img0.png"]


def test_only_enabled_and_ready_analysers_are_required(lib):
    cid = lib.add_image("img.png")
    pipeline = FakePipeline({"nsfw-default": "v1"})  # aesthetic enabled but not ready
    runner = make_runner(lib, pipeline, enabled=["nsfw-default", "aesthetic"])
    runner.run(threading.Event())
    assert set(lib.results()) == {(cid, "nsfw-default")}
    assert lib.count(QueuedAnalysis) == 0


def test_waits_for_new_work_until_stopped(lib):
    lib.add_image("first.png")
    stop, wake = threading.Event(), threading.Event()
    pipeline = FakePipeline({"nsfw-default": "v1"})
    runner = make_runner(lib, pipeline)
    done = threading.Event()
    seen_results: list[int] = []

    def on_results(ids):
        seen_results.extend(ids)
        done.set()

    runner._on_results = on_results
    thread = threading.Thread(target=runner.run, args=(stop, wake, False))
    thread.start()
    try:
        assert done.wait(10)
        done.clear()
        late = lib.add_image("late.png")
        with lib.Session.begin() as s:
            s.add(QueuedAnalysis(content_id=late))
        wake.set()
        assert done.wait(10)
        assert late in seen_results
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()


def test_until_empty_waits_while_more_is_coming(lib):
    """An indexer in the same process is still recording files (`more_coming` set): an empty
    queue is waited on, not the end; once it is cleared, the run ends with the queue empty."""
    lib.add_image("first.png")
    stop, wake, more_coming = threading.Event(), threading.Event(), threading.Event()
    more_coming.set()
    seen: list[int] = []
    first_done = threading.Event()

    def on_results(ids):
        seen.extend(ids)
        first_done.set()

    runner = make_runner(lib, FakePipeline({"nsfw-default": "v1"}), on_results=on_results)
    thread = threading.Thread(target=runner.run, args=(stop, wake, True),
                              kwargs={"more_coming": more_coming})
    thread.start()
    try:
        assert first_done.wait(10)
        thread.join(0.3)
        assert thread.is_alive()  # the queue is empty, but more is coming
        late = lib.add_image("late.png")
        with lib.Session.begin() as s:
            s.add(QueuedAnalysis(content_id=late))
        more_coming.clear()  # the indexer's last batch is recorded: no wake needed
        thread.join(10)
        assert not thread.is_alive()
        assert late in seen
        assert lib.count(QueuedAnalysis) == 0
    finally:
        stop.set()
        thread.join(10)


def test_the_runner_takes_pictures_the_indexer_handed_on(lib):
    """With a hand-off, the real pipeline analyses a content from its handed-on picture and
    never reads the file (here: gone since indexing, so a decode would mark it broken)."""
    from inference.preprocess import decode
    from library.handoff import PictureHandoff

    cid = lib.add_image("img.png")
    path = lib.root / "img.png"
    pictures = PictureHandoff()
    decoded = decode(path)
    pictures.offer(str(decoded.sha256), decoded.image)
    path.unlink()
    runner = AnalysisRunner(lib.Session, lib.root / "models",
                            Settings(enabled_analysers=["nsfw-default"]), device="cpu",
                            pictures=pictures)
    stats = runner.run(threading.Event())
    assert stats.analysed["nsfw-default"] == 1 and stats.broken == 0
    assert set(lib.results()) == {(cid, "nsfw-default")}
    assert pictures.stats.taken == 1 and len(pictures) == 0


def test_real_pipeline_with_the_bundled_nsfw_analyser(lib):
    ids = [lib.add_image(f"img{i}.png") for i in range(2)]
    settings = Settings(enabled_analysers=["nsfw-default"])
    runner = AnalysisRunner(lib.Session, lib.root / "models", settings, device="cpu")
    stats = runner.run(threading.Event())
    results = lib.results()
    assert set(results) == {(cid, "nsfw-default") for cid in ids}
    assert all(0.0 <= r.score <= 1.0 and r.version for r in results.values())
    assert stats.analysed["nsfw-default"] == 2
    assert lib.count(QueuedAnalysis) == 0


def _queue_rows(lib: Library) -> dict[int, QueuedAnalysis]:
    with lib.Session() as s:
        return {row.content_id: row for row in s.scalars(select(QueuedAnalysis))}


def test_two_runners_sharing_the_database_never_take_the_same_work(lib):
    """The app and a headless scan drain one queue: what one has taken, the other skips."""
    for i in range(4):
        lib.add_image(f"img{i}.png")
    other_engine = open_library(lib.db)  # a second process on the same file
    other_pipeline = FakePipeline(dict(VERSIONS))
    other = AnalysisRunner(session_factory(other_engine), lib.root / "models",
                           Settings(enabled_analysers=list(VERSIONS)),
                           pipeline_factory=lambda **_: other_pipeline)

    class RunsTheOtherMidBatch(FakePipeline):
        def run(self, jobs):
            other.run(threading.Event())  # starts while this batch is taken, not finished
            yield from super().run(jobs)

    first = RunsTheOtherMidBatch(dict(VERSIONS))
    try:
        make_runner(lib, first, take=4).run(threading.Event())
    finally:
        other_engine.dispose()

    assert len(first.seen) == 4
    assert other_pipeline.seen == []
    assert lib.count(QueuedAnalysis) == 0


def test_the_lease_of_a_killed_runner_expires(lib):
    from datetime import timedelta

    from db.schema import utcnow

    stale = lib.add_image("stale.png")
    held = lib.add_image("held.png")
    with lib.Session.begin() as s:
        s.add(QueuedAnalysis(content_id=stale, attempts=1, leased_by="killed-process",
                             leased_until=utcnow() - timedelta(seconds=1)))
        s.add(QueuedAnalysis(content_id=held, attempts=1, leased_by="live-process",
                             leased_until=utcnow() + timedelta(hours=1)))
    pipeline = FakePipeline({"nsfw-default": "v1"})
    make_runner(lib, pipeline).run(threading.Event())

    assert [Path(j.path).name for j in pipeline.seen] == ["stale.png"]
    # The live lease is left alone: its owner finishes that work.
    assert list(_queue_rows(lib)) == [held]


def test_a_clean_stop_releases_the_lease_for_the_next_runner(lib):
    for i in range(3):
        lib.add_image(f"img{i}.png")
    stop = threading.Event()

    make_runner(lib, StopAfterFirst(dict(VERSIONS), stop), take=3).run(stop)
    rows = _queue_rows(lib)
    assert rows and all(r.leased_by is None and r.leased_until is None for r in rows.values())
    again = FakePipeline(dict(VERSIONS))
    make_runner(lib, again).run(threading.Event())  # at once, not after a lease expiry
    assert len(again.seen) == len(rows)
    assert lib.count(QueuedAnalysis) == 0


def test_a_running_batch_keeps_renewing_its_lease(lib, monkeypatch):
    import library.analysis as analysis

    monkeypatch.setattr(analysis, "FLUSH_INTERVAL_S", 0.0)
    monkeypatch.setattr(analysis, "LEASE_RENEW_S", 0.0)
    ids = [lib.add_image(f"img{i}.png") for i in range(3)]
    expiries: list = []

    class WatchesTheLease(FakePipeline):
        def run(self, jobs):
            for pair in super().run(jobs):
                expiries.append(_queue_rows(lib)[ids[0]].leased_until)
                yield pair

    # ids[0] is taken last (newest first), so its row is queued through the whole batch.
    make_runner(lib, WatchesTheLease({"nsfw-default": "v1"}), take=3).run(threading.Event())
    assert len(expiries) == 3 and None not in expiries
    assert expiries[0] < expiries[1] < expiries[2]


def test_a_restart_takes_over_the_work_of_a_killed_runner_at_once(lib):
    """A killed process cannot release its lease; the next start on the same machine sees
    that process is gone and continues its work without waiting for the lease to expire."""
    import socket
    import subprocess
    import sys
    from datetime import timedelta

    from db.schema import utcnow

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead_pid = int(gone.stdout)
    cid = lib.add_image("img.png")
    with lib.Session.begin() as s:
        s.add(QueuedAnalysis(content_id=cid, attempts=1,
                             leased_by=f"{socket.gethostname()[:40]}:{dead_pid}:abcd1234",
                             leased_until=utcnow() + timedelta(hours=1)))
    pipeline = FakePipeline({"nsfw-default": "v1"})
    make_runner(lib, pipeline).run(threading.Event())
    assert [Path(j.path).name for j in pipeline.seen] == ["img.png"]
    assert lib.count(QueuedAnalysis) == 0


def test_results_of_an_older_analyser_revision_are_recomputed(lib):
    """A revision bump (pre/post-processing changed: upright pictures, FastAI's crop, the
    safety checker's rounding) makes the version differ although the weights are the same,
    so every stored result of the old revision is recomputed once."""
    from sqlalchemy import update

    cid = lib.add_image("img.png")
    runner = AnalysisRunner(lib.Session, lib.root / "models",
                            Settings(enabled_analysers=["nsfw-default"]), device="cpu")
    runner.run(threading.Event())
    current = lib.results()[(cid, "nsfw-default")].version
    revision, digest = current.split("-", 1)
    assert int(revision) >= 2
    with lib.Session.begin() as s:  # as written by the previous revision of the code
        s.execute(update(AnalysisResult).values(version=f"1-{digest}", score=-1.0))

    again = AnalysisRunner(lib.Session, lib.root / "models",
                           Settings(enabled_analysers=["nsfw-default"]), device="cpu")
    assert again.enqueue_missing() == 1
    again.run(threading.Event())
    result = lib.results()[(cid, "nsfw-default")]
    assert result.version == current and 0.0 <= result.score <= 1.0


def test_the_runner_leaves_every_sql_statement_to_db_queue():
    """Layering: library/ calls db/ functions; the queue's SQL lives in db/queue.py. The
    runner may name the session types, nothing that builds a statement."""
    import ast

    import library.analysis

    tree = ast.parse(Path(library.analysis.__file__).read_text(encoding="utf-8"))
    imported = {(node.module, alias.name) for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) and node.module
                and node.module.startswith("sqlalchemy") for alias in node.names}
    assert imported == {("sqlalchemy.orm", "Session"), ("sqlalchemy.orm", "sessionmaker")}
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.Import)
                and any(a.name.startswith("sqlalchemy") for a in n.names)]


class DrainingExecutor(FakePipeline):
    """An executor as library.distributed's: after cancel it still yields what it had already
    started (here: the rest of the jobs it was given) and then ends by itself."""

    drains_on_cancel = True

    def __init__(self, versions, stop: threading.Event):
        super().__init__(versions)
        self._stop = stop
        self.built_with: dict = {}

    def run(self, jobs):
        for pair in super().run(jobs):
            yield pair
            self._stop.set()  # Ctrl+C after the first output: the runner cancels


def test_an_executor_that_drains_on_cancel_has_its_outputs_written(lib):
    """The runner keeps writing what a draining executor still yields after cancel, then
    stops: the batch in flight is finished, the rest stays queued and uncounted."""
    ids = [lib.add_image(f"img{i}.png") for i in range(6)]
    stop = threading.Event()
    executor = DrainingExecutor({}, stop)
    settings = Settings(enabled_analysers=["nsfw-default"])

    def build(**arguments):
        executor.built_with = arguments
        # Its outputs carry the versions the runner planned (as the Ray workers' do).
        executor.versions = {s.key: str(s.version) for s in arguments["statuses"]}
        return executor

    runner = AnalysisRunner(lib.Session, lib.root / "models", settings, device="cuda",
                            executor=build, take=4)
    runner.run(stop)
    # Planned here from the models folder (the bundled nsfw-default), not by the executor;
    # "cuda" was not checked on this machine (the executor's workers check it).
    assert runner.statuses["nsfw-default"].status == READY
    assert executor.built_with["device"] == "cuda"
    assert [s.key for s in executor.built_with["statuses"]] == ["nsfw-default"]
    # The whole first batch (4) was written although the stop came after its first output.
    assert len(lib.results()) == 4
    with lib.Session() as s:
        queued = list(s.execute(select(QueuedAnalysis.content_id, QueuedAnalysis.attempts,
                                       QueuedAnalysis.leased_by)))
    assert len(queued) == 2 and {cid for cid, _, _ in queued} < set(ids)
    assert all(attempts == 0 and leased is None for _, attempts, leased in queued)
