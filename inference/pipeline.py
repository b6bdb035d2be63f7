"""The batch pipeline: decode once -> every enabled analyser -> results as they come.

Shared by the app's inference QThread and the headless CLI, so it is Qt-free: the caller
iterates `run()` in its own thread and may call pause/resume/cancel from any thread.

Scheduling (one model thread — the caller's — plus a small prefetch pool):
- Prefetch threads decode each image once and build every analyser's input from that one
  decode (analysers with equal preprocessing share one tensor). A picture indexing already
  decoded in this process is taken from `pictures` (library.handoff) instead of decoding the
  file again: the same picture, by the same rules (inference.preprocess.analysis_picture).
  At most `lookahead` images
  are open (taken, not finished) at once, which bounds memory.
- Each analyser has its own queue. The model thread always runs the *cheapest* analyser
  that has a full batch; partial batches run when nothing more can arrive (input exhausted
  or the look-ahead window full). So nsfw-default and coherence race through the window in
  seconds while the tagger grinds, and each batch's results are yielded the moment it ends.
- Out of memory: halve that analyser's batch and retry; at batch 1 move it to the CPU.
  Any other failure is retried image by image so only the culprit gets an error.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from inference.base import Analyser
from inference.decoding import import_numpy
from inference.onnx_runtime import parse_device
from inference.registry import ANALYSER_KEYS, analyser_class
from inference.types import AnalyserOutput, ContentChanged, DecodeFailure, Job, Progress
from inference.weights import BROKEN, READY, ModelStatus, discover

if TYPE_CHECKING:
    from PIL import Image

    from inference.preprocess import DecodedImage

__all__ = ["AnalyserOutput", "ContentChanged", "DecodeFailure", "Job", "Pipeline", "Progress"]

Result = tuple[Job, "AnalyserOutput | DecodeFailure | ContentChanged"]


class PictureSource(Protocol):
    """Where pictures already decoded by the analysers' rules wait (library.handoff)."""

    def take(self, sha256: str) -> Image.Image | None: ...


@dataclass
class _Open:
    """An image between being taken and every analyser having answered."""

    job: Job
    remaining: int  # analysers (of those this job asked for) yet to answer


@dataclass
class _Prepared:
    job: Job
    analysers: list[Analyser]  # the loaded analysers this job asked for, cost order
    inputs: dict[str, Any] = field(default_factory=dict)  # input_key -> tensor | Exception


class Pipeline:
    """Constructing one only finds the weights (headers and cached checksums; no torch, no
    onnxruntime); `load` (or the first `run`) loads the models, each on the device its own
    runtime chooses for `device` (torch for torch models, onnxruntime's providers for ONNX)."""

    def __init__(self, models_dir: Path, analysers: Sequence[str] | None = None,
                 device: str = "auto", tag_threshold: float = 0.2,
                 batch_size: int | None = None, prefetch_workers: int | None = None,
                 on_progress: Callable[[Progress], None] | None = None,
                 on_status: Callable[[str], None] | None = None, *,
                 hf_cache: Path | None = None, lookahead: int | None = None,
                 statuses: Sequence[ModelStatus] | None = None,
                 pictures: PictureSource | None = None):
        keys = list(ANALYSER_KEYS) if analysers is None else list(dict.fromkeys(analysers))
        for key in keys:
            analyser_class(key)  # KeyError with the known names
        keys.sort(key=ANALYSER_KEYS.index)  # cost order, whatever order was asked for
        parse_device(device)  # ValueError for a device that does not exist anywhere
        self.models_dir = Path(models_dir)
        self.requested_device = device
        self.tag_threshold = tag_threshold
        self.batch_size = batch_size
        self.prefetch_workers = max(1, prefetch_workers or default_prefetch_workers())
        # The cores the prefetch threads leave to the models (ONNX sessions size their thread
        # pools with it; oversubscribing 2 cores made decode and forward take turns).
        self.model_threads = max(1, (os.cpu_count() or 2) - self.prefetch_workers)
        self.on_progress = on_progress
        self.on_status = on_status
        self.pictures = pictures
        self._lookahead = lookahead
        found = {s.key: s for s in statuses} if statuses is not None else {}
        missing = [k for k in keys if k not in found]
        if missing:  # statuses the caller already discovered are not looked up twice
            found.update((s.key, s) for s in discover(self.models_dir, missing,
                                                      hf_cache=hf_cache))
        self.statuses: dict[str, ModelStatus] = {k: found[k] for k in keys}
        self.ready_analysers: list[str] = [k for k in keys if self.statuses[k].status == READY]
        self.versions: dict[str, str] = {k: str(self.statuses[k].version)
                                         for k in self.ready_analysers}
        self.shared_clip: list[tuple[str, str]] = []
        self._analysers: dict[str, Analyser] = {}
        self._batch: dict[str, int] = {}
        self._loaded = False
        self._running = threading.Event()
        self._running.set()
        self._cancel = threading.Event()

    @property
    def device(self) -> str:
        """Where the loaded analysers run ("cpu", "cuda", or e.g. "cuda, cpu" when they
        differ); the requested device until something is loaded."""
        devices = list(dict.fromkeys(a.device for a in self._analysers.values()))
        return ", ".join(devices) if devices else self.requested_device

    # ------------------------------------------------------------ control (any thread)

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def cancel(self) -> None:
        """Stops the current run (or the next one, if none is running) after the batch in
        progress; run() then returns."""
        self._cancel.set()
        self._running.set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    # ------------------------------------------------------------ loading

    def _say(self, message: str) -> None:
        if self.on_status:
            self.on_status(message)

    def load(self) -> None:
        """Load every ready analyser; one that fails becomes "broken" with the reason and
        the others carry on."""
        from inference.clip_embedding import share_clip_encoders

        if self._loaded:
            return
        import_numpy()  # this thread may load models while an indexer's threads hash pictures
        for key in list(self.ready_analysers):
            status = self.statuses[key]
            try:
                analyser = self._load_one(key, status)
            except Exception as exc:  # noqa: BLE001 — report, keep the others working
                status.status, status.message = BROKEN, f"failed to load: {exc}"
                self.ready_analysers.remove(key)
                self.versions.pop(key, None)
                self._say(f"{key}: {status.message}")
                continue
            self._analysers[key] = analyser
            self._batch[key] = self.batch_size or analyser.default_batch_size()
            self._say(f"{key}: loaded on {analyser.device}")
        self.shared_clip = share_clip_encoders(list(self._analysers.values()))
        for kept, merged in self.shared_clip:
            self._say(f"{merged}: same CLIP vision weights as {kept}; one embedding per image")
        self._loaded = True

    def _load_one(self, key: str, status: ModelStatus) -> Analyser:
        from inference.device import is_out_of_memory, release_memory

        cls = analyser_class(key)
        device, note = cls.choose_device(self.requested_device)
        if note:
            self._say(f"{key}: {note}")

        def build(device: str) -> Analyser:
            analyser = cls(status, device, version=self.versions[key],
                           tag_threshold=self.tag_threshold)
            analyser.cpu_threads = self.model_threads
            analyser.load()
            return analyser

        try:
            return build(device)
        except Exception as exc:
            if device == "cpu" or not is_out_of_memory(exc):
                raise
            release_memory(device)
            self._say(f"{key}: does not fit on {device}; loading it on the CPU")
            return build("cpu")

    def analyser(self, key: str) -> Analyser:
        return self._analysers[key]

    @property
    def batch_sizes(self) -> dict[str, int]:
        """Current batch size per loaded analyser (shrinks after out-of-memory)."""
        return dict(self._batch)

    def use_analyser(self, analyser: Analyser, batch_size: int | None = None) -> None:
        """Install an already-built analyser under its key (custom analysers; tests use it to
        inject fakes)."""
        self.load()
        self._analysers[analyser.key] = analyser
        self._batch[analyser.key] = batch_size or self.batch_size or analyser.default_batch_size()
        self.versions[analyser.key] = analyser.version
        if analyser.key not in self.ready_analysers:
            self.ready_analysers.append(analyser.key)
        # Cheapest first (the registry's order is this same order for the built-ins).
        self.ready_analysers.sort(key=lambda k: self._analysers[k].cpu_ms_per_image)

    # ------------------------------------------------------------ running

    def run(self, jobs: Iterable[Job]) -> Iterator[Result]:
        """Yield (job, AnalyserOutput) per analyser as soon as its batch is done, and
        (job, DecodeFailure) once for an image that cannot be read. Jobs are pulled lazily;
        if `jobs` has len(), progress counts what is left of it."""
        self.load()
        analysers = [self._analysers[k] for k in self.ready_analysers]
        if not analysers:
            self._cancel.clear()
            return
        for analyser in analysers:
            analyser.begin_run()
        run = _Run(self, analysers, jobs)
        try:
            yield from run.loop()
        finally:
            run.close()
            self._cancel.clear()

    def lookahead(self, analysers: Sequence[Analyser]) -> int:
        if self._lookahead:
            return self._lookahead
        return max(32, 4 * max(self._batch[a.key] for a in analysers))

    # batch execution with the out-of-memory ladder
    def _predict(self, analyser: Analyser, items: list[tuple[Job, Any]]) -> list[AnalyserOutput]:
        from inference.device import is_out_of_memory, release_memory

        jobs = [job for job, _ in items]
        try:
            outputs = analyser.predict([x for _, x in items], jobs)
            if len(outputs) != len(items):
                raise RuntimeError(f"{analyser.key} returned {len(outputs)} results for "
                                   f"{len(items)} images")
            return outputs
        except Exception as exc:  # noqa: BLE001
            if is_out_of_memory(exc):
                release_memory(analyser.device)
                if len(items) > 1:
                    half = len(items) // 2
                    self._batch[analyser.key] = max(1, min(self._batch[analyser.key], half))
                    self._say(f"{analyser.key}: out of memory; batch size now "
                              f"{self._batch[analyser.key]}")
                    return self._predict(analyser, items[:half]) + \
                        self._predict(analyser, items[half:])
                if analyser.device != "cpu":
                    self._say(f"{analyser.key}: out of memory at batch size 1 on "
                              f"{analyser.device}; continuing on the CPU")
                    analyser.move_to("cpu")
                    return self._predict(analyser, items)
            elif len(items) > 1:
                # Find the image that fails; the rest of the batch still gets results.
                return [out for item in items for out in self._predict(analyser, [item])]
            message = f"{type(exc).__name__}: {exc}"
            return [AnalyserOutput.failed(analyser.key, analyser.version, message)
                    for _ in items]


def default_prefetch_workers(cores: int | None = None) -> int:
    """Decode/preprocess threads for `cores` (default: this machine's). Decoding a PNG costs
    about as much as a cheap model's forward pass on a GPU, so a GPU machine's spare cores all
    feed it; on a small CPU-only machine one core stays with the model. (Pillow and the tensor
    conversions release the GIL.)"""
    cores = cores or os.cpu_count() or 2
    return max(2, min(8, cores - 1))


class _Run:
    """State of one Pipeline.run call (kept apart so Pipeline stays reusable)."""

    def __init__(self, pipeline: Pipeline, analysers: list[Analyser], jobs: Iterable[Job]):
        self.p = pipeline
        self.analysers = analysers
        self.total = len(jobs) if isinstance(jobs, Sized) else None
        self.jobs = iter(jobs)
        self.exhausted = False
        self.window = pipeline.lookahead(analysers)
        # One preprocessing per distinct input key: the first analyser with it builds it.
        self.builders: dict[str, Analyser] = {}
        for a in analysers:
            self.builders.setdefault(a.input_key, a)
        self.pool = ThreadPoolExecutor(pipeline.prefetch_workers,
                                       thread_name_prefix="gentriage-prefetch")
        self.in_flight: dict[Future[_Prepared | DecodeFailure | ContentChanged], int] = {}
        self.open: dict[int, _Open] = {}  # by sequence number (job ids may repeat)
        self.queues: dict[str, deque[tuple[int, Any]]] = {a.key: deque() for a in analysers}
        self.seq = 0
        self.done = 0
        self.finished_at: deque[float] = deque(maxlen=64)
        self.started = time.monotonic()

    # ---- prefetch side (runs in pool threads)

    def _wanted(self, job: Job) -> list[Analyser]:
        if job.analysers is None:
            return self.analysers
        return [a for a in self.analysers if a.key in job.analysers]

    def _handed_on(self, job: Job) -> DecodedImage | None:
        """The job's picture if indexing handed it on (a DecodedImage), else None."""
        from inference.preprocess import DecodedImage

        if self.p.pictures is None or job.sha256 is None:
            return None
        picture = self.p.pictures.take(job.sha256)
        return DecodedImage(picture, sha256=job.sha256) if picture is not None else None

    def _prepare(self, job: Job, analysers: list[Analyser]
                 ) -> _Prepared | DecodeFailure | ContentChanged:
        from inference.preprocess import DecodeError, decode

        try:
            # Decoded from the bytes whose hash the job names: no content check needed.
            image = self._handed_on(job) or decode(job.path)
        except DecodeError as exc:
            if job.sha256 is not None and exc.sha256 is not None and exc.sha256 != job.sha256:
                return ContentChanged(job, exc.sha256)  # replaced, by something unreadable
            return DecodeFailure(job, str(exc))
        except Exception as exc:  # noqa: BLE001 — anything else about the file
            return DecodeFailure(job, f"cannot decode {job.path}: {exc}")
        if job.sha256 is not None and image.sha256 != job.sha256:
            # The file was replaced since it was indexed: these pixels are another picture,
            # and a verdict on them must not be recorded for the content the job names.
            return ContentChanged(job, str(image.sha256))
        prepared = _Prepared(job, analysers)
        needed_inputs = {a.input_key for a in analysers}
        for key, builder in self.builders.items():
            if key not in needed_inputs:
                continue
            try:
                prepared.inputs[key] = builder.preprocess(image)
            except Exception as exc:  # noqa: BLE001 — fails only that analyser
                prepared.inputs[key] = exc
        return prepared

    # ---- model thread

    def close(self) -> None:
        for future in self.in_flight:
            future.cancel()
        self.pool.shutdown(wait=False, cancel_futures=True)

    def _top_up(self) -> None:
        while not self.exhausted and len(self.open) < self.window:
            try:
                job = next(self.jobs)
            except StopIteration:
                self.exhausted = True
                return
            wanted = self._wanted(job)
            if not wanted:
                continue  # nothing loaded that this job asked for: no decode, no output
            self.seq += 1
            self.open[self.seq] = _Open(job, len(wanted))
            self.in_flight[self.pool.submit(self._prepare, job, wanted)] = self.seq

    def _finish(self, seq: int, count: int = 1) -> None:
        state = self.open[seq]
        state.remaining -= count
        if state.remaining <= 0:
            del self.open[seq]
            self.done += 1
            self.finished_at.append(time.monotonic())

    def _harvest(self, futures: Iterable[Future[_Prepared | DecodeFailure | ContentChanged]]
                 ) -> Iterator[Result]:
        for future in list(futures):
            seq = self.in_flight.pop(future)
            prepared = future.result()
            if isinstance(prepared, (DecodeFailure, ContentChanged)):
                yield prepared.job, prepared
                self._finish(seq, self.open[seq].remaining)
                continue
            for a in prepared.analysers:
                value = prepared.inputs[a.input_key]
                if isinstance(value, Exception):
                    yield prepared.job, AnalyserOutput.failed(
                        a.key, a.version, f"preprocessing failed: {type(value).__name__}: {value}")
                    self._finish(seq)
                else:
                    self.queues[a.key].append((seq, value))

    def _pick(self) -> Analyser | None:
        """Strict cost priority: the cheapest analyser with work runs when its batch is full
        or nothing more can arrive; while its batch is still filling from in-flight decodes
        (milliseconds) nothing pricier jumps ahead of it."""
        more_coming = bool(self.in_flight)
        for a in self.analysers:  # cost order
            queue = self.queues[a.key]
            if queue:
                return a if len(queue) >= self.p._batch[a.key] or not more_coming else None
        return None

    def _run_batch(self, analyser: Analyser) -> Iterator[Result]:
        queue = self.queues[analyser.key]
        size = self.p._batch[analyser.key]
        taken = [queue.popleft() for _ in range(min(size, len(queue)))]
        items = [(self.open[seq].job, value) for seq, value in taken]
        outputs = self.p._predict(analyser, items)
        for (seq, _), (job, _), output in zip(taken, items, outputs):
            yield job, output
            self._finish(seq)

    def progress(self) -> Progress:
        now = time.monotonic()
        recent = [t for t in self.finished_at if now - t <= 30.0]
        if len(recent) >= 2 and now > recent[0]:
            rate = (len(recent) - 1) / max(recent[-1] - recent[0], 1e-6)
        else:
            rate = self.done / max(now - self.started, 1e-6)
        queued = (self.total - self.done) if self.total is not None else len(self.open)
        return Progress(self.done, max(queued, 0), rate, self.p.device, self.p.paused)

    def _report(self) -> None:
        if self.p.on_progress:
            self.p.on_progress(self.progress())

    def _wait_while_paused(self) -> None:
        if self.p._running.is_set():
            return
        self._report()
        while not self.p._running.wait(0.1):
            if self.p._cancel.is_set():
                return
        self._report()

    def loop(self) -> Iterator[Result]:
        # No inference_mode around the loop: it would stay switched on in the caller's code
        # while this generator is suspended; each analyser's predict enables it itself.
        while not self.p._cancel.is_set():
            self._wait_while_paused()
            if self.p._cancel.is_set():
                break
            self._top_up()
            ready = [f for f in self.in_flight if f.done()]
            if ready:
                yield from self._harvest(ready)
            analyser = self._pick()
            if analyser is not None:
                yield from self._run_batch(analyser)
                self._report()
            elif self.in_flight:
                finished, _ = wait(list(self.in_flight), timeout=0.1,
                                   return_when=FIRST_COMPLETED)
                if finished:
                    yield from self._harvest(finished)
            elif self.exhausted and not self.open:
                break
        self._report()
