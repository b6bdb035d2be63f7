"""Pipeline behaviour: decode once, cost-ordered streaming, failures isolated, OOM ladder,
pause/resume/cancel, progress, versions."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
import torch

from inference.base import Analyser
from inference.pipeline import DecodeFailure, Job, Pipeline
from inference.testing import write_images, write_nsfw_vit
from inference.weights import ModelStatus, WeightsError


class Fake(Analyser):
    """A model-free analyser: mean brightness. Knobs simulate failures."""

    key = "fake"
    cpu_ms_per_image = 10_000.0

    def __init__(self, key: str = "fake", device: str = "cpu", *, oom_above: int | None = None,
                 oom_unless_cpu: bool = False, fail_job: int | None = None,
                 delay: float = 0.0, bad_preprocess: str | None = None):
        status = ModelStatus(key, "ready", None, "", [], "", version="9-fake")
        super().__init__(status, device)
        self.key = key
        self.oom_above, self.oom_unless_cpu = oom_above, oom_unless_cpu
        self.fail_job, self.delay, self.bad_preprocess = fail_job, delay, bad_preprocess
        self.batches: list[int] = []
        self.preprocessed = 0
        self.moved_to: list[str] = []

    def load(self) -> None:
        pass

    def preprocess(self, image: Any) -> Any:
        self.preprocessed += 1
        if self.bad_preprocess and image.image.size == (64, 48):
            raise ValueError(self.bad_preprocess)
        return float(np.asarray(image.rgb()).mean())

    def predict(self, inputs: Sequence[Any], jobs: Sequence[Job]):
        if self.oom_above is not None and len(inputs) > self.oom_above:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        if self.oom_unless_cpu and self.device != "cpu":
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        if self.fail_job is not None and any(j.job_id == self.fail_job for j in jobs):
            raise RuntimeError("model exploded")
        self.batches.append(len(inputs))
        time.sleep(self.delay)
        return [self.output(None, x, {"mean": x}) for x in inputs]

    def move_to(self, device: str) -> None:
        self.moved_to.append(device)
        super().move_to(device)


def pipeline_with(tmp_path, *fakes: Fake, analysers=("nsfw-default",), batch_size=None, **kw):
    p = Pipeline(tmp_path / "models", analysers=list(analysers), device="cpu",
                 hf_cache=tmp_path / "hf", batch_size=batch_size, **kw)
    p.load()
    for fake in fakes:
        p.use_analyser(fake)
    return p


@pytest.fixture
def images(tmp_path):
    return write_images(tmp_path / "img", 6, size=(96, 80))


def jobs_for(paths):
    return [Job(i, str(p)) for i, p in enumerate(paths)]


def test_decode_failure_reported_once_others_continue(tmp_path, images):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"garbage")
    fake = Fake()
    p = pipeline_with(tmp_path, fake)
    jobs = jobs_for(images) + [Job(99, str(bad)), Job(98, str(tmp_path / "gone.png"))]
    results = list(p.run(jobs))
    failures = [(j.job_id, r) for j, r in results if isinstance(r, DecodeFailure)]
    assert sorted(i for i, _ in failures) == [98, 99]
    assert all("cannot decode" in r.message for _, r in failures)
    outputs = [(j.job_id, r.analyser) for j, r in results if not isinstance(r, DecodeFailure)]
    assert sorted(outputs) == sorted((i, k) for i in range(6) for k in ("nsfw-default", "fake"))


def test_each_image_decoded_and_preprocessed_once_per_input(tmp_path, images, monkeypatch):
    import inference.preprocess as pp

    calls = []
    real = pp.decode
    monkeypatch.setattr(pp, "decode", lambda path: calls.append(path) or real(path))
    fake = Fake()
    p = pipeline_with(tmp_path, fake)
    list(p.run(jobs_for(images)))
    assert sorted(calls) == sorted(str(i) for i in images)
    assert fake.preprocessed == len(images)


def test_cheap_analysers_stream_ahead_of_expensive_ones(tmp_path):
    paths = write_images(tmp_path / "img", 12, size=(64, 64))
    mid = Fake("mid")
    mid.cpu_ms_per_image = 100.0
    slow = Fake("slow", delay=0.05)
    p = Pipeline(tmp_path / "models", analysers=["nsfw-default"], device="cpu",
                 hf_cache=tmp_path / "hf", batch_size=4, lookahead=8)
    p.load()
    p.use_analyser(slow, batch_size=2)
    p.use_analyser(mid, batch_size=4)
    assert p.ready_analysers == ["nsfw-default", "mid", "slow"]
    order = [(job.job_id, out.analyser) for job, out in p.run(jobs_for(paths))]
    assert len(order) == 36
    first_slow = next(i for i, (_, key) in enumerate(order) if key == "slow")
    window = {j for j, _ in order[:first_slow]}
    # Before the tagger-like analyser answers anything, the cheap ones have answered every
    # image of the first look-ahead window.
    assert len(window) == 8
    for job_id in window:
        assert (job_id, "nsfw-default") in order[:first_slow]
        assert (job_id, "mid") in order[:first_slow]
    assert set(slow.batches) <= {1, 2}


def test_preprocess_failure_only_hits_that_analyser(tmp_path, images):
    from PIL import Image

    odd = tmp_path / "odd.png"
    Image.new("RGB", (64, 48), "red").save(odd)
    fake = Fake(bad_preprocess="unsupported size")
    p = pipeline_with(tmp_path, fake)
    results = {(j.job_id, r.analyser): r for j, r in p.run(jobs_for(images) + [Job(7, str(odd))])}
    assert "unsupported size" in results[(7, "fake")].error
    assert results[(7, "nsfw-default")].error is None
    assert all(results[(i, "fake")].error is None for i in range(6))


def test_predict_failure_isolated_to_the_failing_image(tmp_path, images):
    fake = Fake(fail_job=3)
    p = pipeline_with(tmp_path, fake, batch_size=4)
    results = {j.job_id: r for j, r in p.run(jobs_for(images)) if r.analyser == "fake"}
    assert "model exploded" in results[3].error
    assert all(results[i].error is None and results[i].score is not None
               for i in range(6) if i != 3)


def test_oom_halves_batch_until_it_fits(tmp_path, images):
    messages = []
    fake = Fake(device="cuda", oom_above=1)
    p = pipeline_with(tmp_path, fake, analysers=(), on_status=messages.append)
    p._batch["fake"] = 4
    results = [r for _, r in p.run(jobs_for(images))]
    assert len(results) == 6 and all(r.error is None for r in results)
    assert p._batch["fake"] == 1 and set(fake.batches) == {1}
    assert fake.moved_to == []
    assert any("out of memory" in m and "batch size now" in m for m in messages)


def test_oom_at_batch_one_falls_back_to_cpu(tmp_path, images):
    messages = []
    fake = Fake(device="cuda:0", oom_unless_cpu=True)
    p = pipeline_with(tmp_path, fake, analysers=(), on_status=messages.append)
    results = [r for _, r in p.run(jobs_for(images))]
    assert all(r.error is None for r in results) and len(results) == 6
    assert fake.moved_to == ["cpu"] and fake.device == "cpu"
    assert any("continuing on the CPU" in m for m in messages)


def test_oom_with_real_model_gives_same_results(tmp_path, images):
    """The real (tiny) nsfw-vit behind a wrapper that runs out of memory above batch 1."""
    write_nsfw_vit(tmp_path / "models")
    p = Pipeline(tmp_path / "models", analysers=["nsfw-vit"], device="cpu",
                 hf_cache=tmp_path / "hf", batch_size=4)
    p.load()
    reference = {j.job_id: r.scores for j, r in p.run(jobs_for(images))}
    analyser = p.analyser("nsfw-vit")
    real = analyser.model

    class OomAboveOne(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = real

        def forward(self, pixel_values):
            if pixel_values.shape[0] > 1:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
            return self.inner(pixel_values=pixel_values)

    analyser.model = OomAboveOne()
    again = {j.job_id: r.scores for j, r in p.run(jobs_for(images))}
    assert p._batch["nsfw-vit"] == 1
    for i in reference:
        assert again[i] == pytest.approx(reference[i], abs=1e-5)


def test_progress_reports_done_queued_rate_device(tmp_path, images):
    seen = []
    p = pipeline_with(tmp_path, Fake(), on_progress=seen.append)
    list(p.run(jobs_for(images)))
    last = seen[-1]
    assert (last.done, last.queued, last.device, last.paused) == (6, 0, "cpu", False)
    assert last.images_per_s > 0
    assert all(a.done <= b.done for a, b in zip(seen, seen[1:]))
    assert any(s.queued > 0 for s in seen)


class PausedProgress:
    """on_progress receiver that records every report and signals the first paused one: the
    run has reached its pause and waits there (awaited, never slept for)."""

    def __init__(self) -> None:
        self.seen: list[Any] = []
        self.paused = threading.Event()

    def __call__(self, progress: Any) -> None:
        self.seen.append(progress)
        if progress.paused:
            self.paused.set()


def test_pause_resume_and_cancel(tmp_path, images):
    progress = PausedProgress()
    seen = progress.seen
    fake = Fake(delay=0.02)
    p = pipeline_with(tmp_path, fake, on_progress=progress)
    p._batch["fake"] = 1
    p.pause()
    out: list = []
    worker = threading.Thread(target=lambda: out.extend(p.run(jobs_for(images))))
    worker.start()
    assert progress.paused.wait(10), "the paused run never reported that it waits"
    assert out == [] and seen[-1].paused
    p.resume()
    worker.join(10)
    assert len(out) == 12
    # cancel: stops promptly, well before the end
    fake.delay = 0.2
    many = write_images(tmp_path / "many", 20, size=(64, 64))
    got = []
    for _job, result in p.run(jobs_for(many)):
        got.append(result)
        if len(got) == 3:
            threading.Thread(target=p.cancel).start()
    assert len(got) < 40
    # the next run is not affected by the old cancel
    assert len(list(p.run(jobs_for(images[:2])))) == 4


def test_cancel_while_paused_returns(tmp_path, images):
    progress = PausedProgress()
    p = pipeline_with(tmp_path, Fake(), on_progress=progress)
    p.pause()
    done = threading.Event()
    threading.Thread(target=lambda: (list(p.run(jobs_for(images))), done.set())).start()
    assert progress.paused.wait(10), "the paused run never reported that it waits"
    assert not done.is_set()
    p.cancel()
    assert done.wait(5)


def test_version_changes_when_weights_change(tmp_path, images):
    models = tmp_path / "models"
    write_nsfw_vit(models, seed=0)
    first = Pipeline(models, analysers=["nsfw-vit"], device="cpu", hf_cache=tmp_path / "hf")
    v0 = first.versions["nsfw-vit"]
    _, out = next(iter(first.run(jobs_for(images[:1]))))
    assert out.version == v0
    again = Pipeline(models, analysers=["nsfw-vit"], device="cpu", hf_cache=tmp_path / "hf")
    assert again.versions["nsfw-vit"] == v0  # unchanged weights: same version, no re-run
    write_nsfw_vit(models, seed=1)
    changed = Pipeline(models, analysers=["nsfw-vit"], device="cpu", hf_cache=tmp_path / "hf")
    assert changed.versions["nsfw-vit"] != v0


def test_failed_load_marks_broken_and_others_work(tmp_path, images, monkeypatch):
    from inference.nsfw_vit import NsfwVit

    write_nsfw_vit(tmp_path / "models")

    def boom(self):
        raise WeightsError("model.safetensors: simulated bad tensor data")

    monkeypatch.setattr(NsfwVit, "load", boom)
    messages = []
    p = Pipeline(tmp_path / "models", analysers=["nsfw-vit", "nsfw-default"], device="cpu",
                 hf_cache=tmp_path / "hf", on_status=messages.append)
    p.load()
    assert p.statuses["nsfw-vit"].status == "broken"
    assert "simulated bad tensor data" in p.statuses["nsfw-vit"].message
    assert p.ready_analysers == ["nsfw-default"]
    assert any(m.startswith("nsfw-vit:") for m in messages)
    assert {r.analyser for _, r in p.run(jobs_for(images))} == {"nsfw-default"}


def test_missing_analysers_are_skipped_and_unknown_rejected(tmp_path):
    p = Pipeline(tmp_path, analysers=["tagger-jtp", "nsfw-default"], device="cpu",
                 hf_cache=tmp_path / "hf")
    assert p.ready_analysers == ["nsfw-default"]
    assert p.statuses["tagger-jtp"].status == "missing"
    with pytest.raises(KeyError, match="unknown analyser"):
        Pipeline(tmp_path, analysers=["nope"], device="cpu")


def test_device_resolution():
    from inference.device import resolve_device

    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") in ("cpu", "cuda", "mps")
    with pytest.raises(ValueError):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda:0")


def test_reduced_precision_path_runs_every_analyser(all_models, good_images, monkeypatch):
    """The GPU path (bf16 weights and inputs, fp32 decisions) exercised on the CPU."""
    import inference.device

    monkeypatch.setattr(inference.device, "half_dtype", lambda device: torch.bfloat16)
    p = Pipeline(all_models, device="cpu", hf_cache=all_models / "no-hf")
    p.load()
    assert p.analyser("coherence").dtype == torch.bfloat16
    assert p.shared_clip  # identical towers still detected in bf16
    results = [r for _, r in p.run([Job(i, str(x), "a cat") for i, x in enumerate(good_images[:2])])]
    assert len(results) == 2 * len(p.ready_analysers)
    assert all(r.error is None for r in results), [r.error for r in results if r.error]
    aesthetic = [r for r in results if r.analyser == "aesthetic"]
    assert all("prompt_adherence" in r.scores for r in aesthetic)


def test_a_job_runs_only_the_analysers_it_asks_for(tmp_path, images, monkeypatch):
    """Re-analysis after one model changed runs that model only; a job asking for nothing
    loaded is not even decoded."""
    import inference.preprocess as pp

    decoded = []
    real = pp.decode
    monkeypatch.setattr(pp, "decode", lambda path: decoded.append(path) or real(path))
    a, b = Fake("fake-a"), Fake("fake-b")
    p = pipeline_with(tmp_path, a, b, analysers=())
    jobs = [Job(0, str(images[0]), analysers=frozenset({"fake-b"})),
            Job(1, str(images[1])),
            Job(2, str(images[2]), analysers=frozenset({"not-loaded"}))]
    seen = sorted((job.job_id, out.analyser) for job, out in p.run(jobs))
    assert seen == [(0, "fake-b"), (1, "fake-a"), (1, "fake-b")]
    assert sorted(decoded) == sorted([str(images[0]), str(images[1])])


def test_prefetch_threads_scale_with_the_machine(monkeypatch):
    from inference import pipeline

    monkeypatch.setattr(pipeline.os, "cpu_count", lambda: 2)
    assert pipeline.default_prefetch_workers() == 2
    monkeypatch.setattr(pipeline.os, "cpu_count", lambda: 16)
    assert pipeline.default_prefetch_workers() == 8
    monkeypatch.setattr(pipeline.os, "cpu_count", lambda: None)
    assert pipeline.default_prefetch_workers() == 2


def _with_orientation(picture, path, orientation: int) -> None:
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = orientation
    picture.save(path, exif=exif.tobytes())


@pytest.mark.parametrize("orientation,stored_as", [(6, "ROTATE_90"), (8, "ROTATE_270"),
                                                   (3, "ROTATE_180"), (2, "FLIP_LEFT_RIGHT")])
def test_analysers_see_the_picture_upright(tmp_path, orientation, stored_as):
    """A file whose EXIF orientation says "turn me" is analysed as people see it (as the
    thumbnails show it and the Falconsai reference pipeline reads it): every analyser gets
    the upright pixels, so its verdict equals the verdict on an upright copy."""
    from PIL import Image

    from inference.testing import photo_like

    upright = photo_like(120, 80, seed=3)
    upright.save(tmp_path / "upright.png")
    stored = upright.transpose(getattr(Image.Transpose, stored_as))
    _with_orientation(stored, tmp_path / "turned.png", orientation)

    seen = {}

    class Records(Fake):
        def preprocess(self, image):
            seen[image.image.size] = np.asarray(image.rgb()).copy()
            return super().preprocess(image)

    p = pipeline_with(tmp_path, Records())
    jobs = [Job(0, str(tmp_path / "upright.png")), Job(1, str(tmp_path / "turned.png"))]
    outs = {(job.job_id, out.analyser): out for job, out in p.run(jobs)}
    assert list(seen) == [(120, 80)]  # both arrived landscape, and pixel-identical …
    assert outs[(0, "nsfw-default")].score == outs[(1, "nsfw-default")].score  # … so equal


def test_a_job_for_other_bytes_gets_content_changed_and_no_result(tmp_path, images):
    """The caller names the content it will record the results for (its SHA-256): when the
    file's bytes are no longer that content, no analyser runs on them."""
    import hashlib

    from inference.types import ContentChanged

    fake = Fake()
    p = pipeline_with(tmp_path, fake)
    real = hashlib.sha256(images[0].read_bytes()).hexdigest()
    jobs = [Job(0, str(images[0]), sha256=real), Job(1, str(images[1]), sha256="0" * 64)]
    results = list(p.run(jobs))
    changed = [r for _, r in results if isinstance(r, ContentChanged)]
    assert [(c.job.job_id, c.found_sha256) for c in changed] == [
        (1, hashlib.sha256(images[1].read_bytes()).hexdigest())]
    assert sorted((j.job_id, r.analyser) for j, r in results if j.job_id == 0) == [
        (0, "fake"), (0, "nsfw-default")]
    assert fake.preprocessed == 1  # the replaced picture was not even preprocessed
