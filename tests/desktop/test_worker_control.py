"""AnalysisWorker control, through the real window and the real AnalysisRunner: what the GUI
asks while the inference thread is busy (visible images first, a restart after a failed
start) reaches that thread — nothing is queued to an event loop that never runs.

The runner drives a scripted pipeline (inference.pipeline.Pipeline's interface) whose first
batch waits until the test lets it go, so "while a batch is running" is a state the test
holds, not a race it hopes to win."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

from fixtures_app import build_app, make_images
from PySide6.QtCore import QModelIndex
from sqlalchemy import select

from db.engine import session_factory
from db.schema import Image
from inference.types import AnalyserOutput
from library.analysis import AnalysisRunner
from library.settings import Settings

TAKE = 3  # contents per batch: far fewer than the rows on screen
N_IMAGES = 60  # several screens of thumbnails


class GatedPipeline:
    """One analyser ("nsfw-default", everything safe). Records the file names of each batch;
    the first batch holds until `release` is set. `fail_load` makes load() raise, as broken
    weights do."""

    device = "cpu"

    def __init__(self, fail_load: str | None = None) -> None:
        self.versions = {"nsfw-default": "v1"}
        self.batches: list[list[str]] = []
        self.first_batch_started = threading.Event()
        self.release = threading.Event()
        self._fail_load = fail_load

    @property
    def ready_analysers(self) -> list[str]:
        return list(self.versions)

    def load(self) -> None:
        if self._fail_load:
            raise RuntimeError(self._fail_load)

    def pause(self) -> None: ...
    def resume(self) -> None: ...

    def cancel(self) -> None:
        self.release.set()  # a held batch ends with the run

    def run(self, jobs):
        jobs = list(jobs)
        self.batches.append([Path(job.path).name for job in jobs])
        if len(self.batches) == 1:
            self.first_batch_started.set()
            self.release.wait(60)
        for job in jobs:
            yield job, AnalyserOutput("nsfw-default", "v1", "sfw", 0.1, {"nsfw": 0.1})


def _runner_factory(pipelines: list[GatedPipeline]):
    """A factory for the worker: the real AnalysisRunner over the next scripted pipeline."""
    made = []

    def factory(*args, **kwargs):
        pipeline = pipelines[len(made)]
        made.append(pipeline)
        return AnalysisRunner(*args, **kwargs, take=TAKE,
                              pipeline_factory=lambda **_options: pipeline)

    factory.made = made
    return factory


def _names(app, content_ids) -> set[str]:
    with session_factory(app.engine)() as session:
        return set(session.scalars(select(Image.name).where(Image.content_id.in_(content_ids))))


def test_images_scrolled_to_are_analysed_next_while_a_batch_is_running(qtbot, tmp_path):
    folder = tmp_path / "outputs"
    make_images(folder, N_IMAGES)
    pipeline = GatedPipeline()
    app, engine = build_app(qtbot, tmp_path, [folder], expect_rows=N_IMAGES, analysis=True,
                            runner_factory=_runner_factory([pipeline]))
    try:
        qtbot.waitUntil(pipeline.first_batch_started.is_set, timeout=20_000)
        first = set(pipeline.batches[0])
        # The oldest images sit at the bottom of the grid and at the end of the queue.
        app.model.fetch_all_to(N_IMAGES - 1)
        with qtbot.waitSignal(app.window.visible_contents_changed, timeout=5_000,
                              check_params_cb=lambda ids: "gen_000.png" in _names(app, ids)
                              ) as shown:
            app.view.scrollTo(app.model.index(N_IMAGES - 1, 0, QModelIndex()))
        on_screen = _names(app, shown.args[0]) - first
        assert len(on_screen) >= TAKE and "gen_059.png" not in on_screen

        pipeline.release.set()  # the running batch ends; the next one is taken
        qtbot.waitUntil(lambda: len(pipeline.batches) >= 2, timeout=20_000)
        assert set(pipeline.batches[1]) <= on_screen, (pipeline.batches[1], on_screen)
    finally:
        pipeline.release.set()
        assert app.shutdown()
        app.window.close()
        engine.dispose()


def test_a_restart_after_a_failed_model_load_builds_a_new_runner(qtbot, tmp_path):
    folder = tmp_path / "outputs"
    make_images(folder, 4)
    broken, working = GatedPipeline(fail_load="weights are broken"), GatedPipeline()
    working.release.set()  # no batch is held here
    factory = _runner_factory([broken, working])
    app, engine = build_app(qtbot, tmp_path, [folder], expect_rows=4, analysis=True,
                            runner_factory=factory)
    try:
        label = app.window.status.analysis_label
        qtbot.waitUntil(lambda: label.text() == "Analysis unavailable", timeout=10_000)
        assert "weights are broken" in label.toolTip()
        assert not app.window.registry.action("analysis.pause").isEnabled()

        # The person points the settings at other models: the worker must try again.
        new = dataclasses.replace(app.settings, models_dir=str(tmp_path / "other-models"))
        app.window.apply_settings(new)
        qtbot.waitUntil(lambda: len(working.batches) >= 1, timeout=10_000)
        assert factory.made == [broken, working]
        qtbot.waitUntil(lambda: label.text() == "Analysis up to date", timeout=10_000)
        assert app.window.status.pause_button.isEnabled()
        assert app.window.registry.action("analysis.pause").isEnabled()
    finally:
        assert app.shutdown()
        app.window.close()
        engine.dispose()


def test_shutdown_ends_a_worker_that_waits_after_a_failed_start(qtbot, tmp_path):
    folder = tmp_path / "outputs"
    make_images(folder, 2)
    broken = GatedPipeline(fail_load="no weights at all")
    app, engine = build_app(qtbot, tmp_path, [folder], expect_rows=2, analysis=True,
                            runner_factory=_runner_factory([broken]))
    try:
        label = app.window.status.analysis_label
        qtbot.waitUntil(lambda: label.text() == "Analysis unavailable", timeout=10_000)
        assert app.analysis is not None and app.analysis.thread.isRunning()
    finally:
        assert app.shutdown()  # the waiting loop wakes up and returns
        assert not app.analysis.thread.isRunning()
        app.window.close()
        engine.dispose()


def test_pause_asked_before_the_models_are_loaded_holds_the_new_runner(qtbot, tmp_path):
    """A pause recorded while no runner exists applies to the runner built afterwards."""
    folder = tmp_path / "outputs"
    make_images(folder, 2)
    pipeline = GatedPipeline()
    pipeline.release.set()
    settings = dataclasses.replace(Settings(), enabled_analysers=["nsfw-default"])
    app, engine = build_app(qtbot, tmp_path, [folder], expect_rows=2, analysis=False,
                            settings=settings)
    try:
        from desktop.workers import AnalysisThread, AnalysisWorker

        worker = AnalysisWorker(app.sessions, tmp_path / "models", settings, "cpu",
                                runner_factory=_runner_factory([pipeline]))
        progress = []
        worker.progress_changed.connect(progress.append)
        worker.pause()
        thread = AnalysisThread(worker)
        thread.start()
        try:
            qtbot.waitUntil(lambda: bool(progress) and progress[-1].paused, timeout=10_000)
            assert pipeline.batches == []  # paused: nothing taken
            worker.resume()
            qtbot.waitUntil(lambda: len(pipeline.batches) == 1, timeout=10_000)
        finally:
            assert thread.stop()
    finally:
        assert app.shutdown()
        app.window.close()
        engine.dispose()


def test_pictures_are_handed_on_only_while_the_analysis_will_take_them(qtbot, tmp_path):
    """Paused, or with nothing to analyse with, the analysis takes no pictures: indexing
    must not decode for it (library.handoff `wanted`), and held pictures are let go."""
    from PIL import Image as PILImage

    from desktop.workers import AnalysisWorker
    from library.handoff import PictureHandoff

    class NothingReady:
        ready: list[str] = []

        def __init__(self, *args, **kwargs) -> None: ...

        def load(self) -> None: ...

    pictures = PictureHandoff()
    worker = AnalysisWorker(session_factory(None), tmp_path / "models", Settings(), "cpu",
                            runner_factory=NothingReady, pictures=pictures)
    assert pictures.wanted  # at start: the models are still loading
    pictures.offer("a" * 64, PILImage.new("RGB", (8, 8)))
    worker.pause()
    assert not pictures.wanted and len(pictures) == 0  # let go at once
    pictures.offer("b" * 64, PILImage.new("RGB", (8, 8)))
    assert len(pictures) == 0
    worker.resume()
    assert pictures.wanted

    with qtbot.waitSignal(worker.analysis_unavailable, timeout=5_000):
        worker._run_runner(worker._config)  # the inference thread's start, run here
    assert not pictures.wanted  # no analyser ready: nothing would take them
    worker.restart(Settings(), tmp_path / "other-models", "cpu")
    assert pictures.wanted  # the new start may succeed
