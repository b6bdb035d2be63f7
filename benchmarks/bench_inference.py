"""Inference pipeline efficiency: the pipeline's images/s against the pure forward pass.

Models: built in a temporary folder in the exact upstream layouts by `inference.testing`
and loaded through the real loaders. By default the upstream architectures at FULL SIZE with
random weights (ViT-B/16 for nsfw-vit; CLIP ViT-L/14 for the safety checker and aesthetic,
one tower shared between them as the pipeline does with the real weights; SigLIP so400m @384
with 9083 tags for the tagger; ResNet-34 for coherence), because only a realistic forward
cost makes the ratio mean anything: with tiny stand-ins the forward pass costs about what
decoding the PNG costs, and the figure measures decoding. nsfw-default is the real bundled
open_nsfw model. `quick=True` (`--quick`) uses the tiny stand-ins: a smoke run in seconds
whose efficiency figures are not meaningful. Images: photo-like 512x512 PNGs.

Baseline (same process, same device, same batch sizes, same thread settings): each
analyser's `predict` on inputs decoded and preprocessed beforehand — the pure forward pass.
Measured: `Pipeline.run` end to end (decode, preprocess in the prefetch pool, batching,
forward, results). Efficiency = pipeline images/s / forward images/s; target >= 0.9. The two
are measured alternately, best of `rounds`, so a busy neighbour on the machine hits both
alike. "all" runs every analyser together; its baseline is the sum of the forward passes (the
shared CLIP embedding counted once in both).

Image counts are chosen so each analyser's measurement takes ~10-20 s on 2 CPU cores (the
tagger, ~6 s/image at batch 2, takes one batch per path: ~25 s); the whole module runs in
~3.5 minutes there, most of it forward passes (model build ~20 s, load ~30 s). On a GPU it
is much faster. Run: `python -m benchmarks.bench_inference [--quick] [--device DEV]`.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inference.catalog import DEFAULT_ENABLED

# The default path; the opt-in style analyser is timed by bench_report.py.
KEYS = DEFAULT_ENABLED
TARGET = ">= 0.9 x"

Report = Callable[..., None]


@dataclass(frozen=True)
class Plan:
    """How many images, how many alternating rounds, and whether one batch of forward
    passes warms the model up first (skipped where one batch costs many seconds: the
    first-call overheads it would remove are milliseconds there, and the pipeline is then
    timed first, so whatever is left counts against it, not for it)."""

    images: int
    rounds: int
    warm_up: bool = True


# Sized from the 2-core CPU costs in shared/models/MODELS.md (ms/image): nsfw-default ~30,
# coherence 60, nsfw-vit 280, CLIP ViT-L/14 1100, JTP 6000 — ~10-20 s per analyser.
FULL_PLANS = {"nsfw-default": Plan(80, 2), "coherence": Plan(48, 2), "nsfw-vit": Plan(16, 2),
              "safety-checker": Plan(4, 2), "aesthetic": Plan(4, 2), "clip": Plan(4, 2),
              "tagger-jtp": Plan(2, 1, warm_up=False)}
FULL_ALL = Plan(2, 1, warm_up=False)  # ~7.5 s/image for all six
QUICK_PLANS = {key: Plan(16, 1) for key in KEYS}
QUICK_ALL = Plan(8, 1)


def build_models(root: Path, full_size: bool) -> Path:
    """Every analyser's folder under `root/models` (the CLIP towers of the safety checker and
    aesthetic get equal weights, so the pipeline shares one)."""
    from inference.testing import write_all

    return write_all(root / "models", full_size=full_size)


@dataclass(frozen=True)
class Timing:
    """Wall seconds, and CPU seconds of the whole process (every thread: prefetch pool,
    torch and onnxruntime workers). On a machine shared with other jobs the wall figures
    swing with the neighbours' load; the CPU figures hardly do, and their ratio shows
    what the pipeline costs on top of the forward passes."""

    wall: float
    cpu: float

    @classmethod
    def of(cls, work: Callable[[], Any]) -> Timing:
        wall, cpu = time.perf_counter(), time.process_time()
        work()
        return cls(time.perf_counter() - wall, time.process_time() - cpu)


def _forward(analysers: list[Any], inputs: dict[str, list], jobs: list[Any],
             batch: dict[str, int]) -> None:
    """Every analyser's predict over pre-made inputs, batch by batch, in cost order."""
    for a in analysers:
        a.begin_run()
    for a in analysers:
        size = batch[a.key]
        for i in range(0, len(jobs), size):
            a.predict(inputs[a.key][i:i + size], jobs[i:i + size])


def pipeline_over(models: Path, analysers: list[Any], batch: dict[str, int],
                  device: str) -> Any:
    """A Pipeline running already-loaded analysers (loading the full-size models once for
    every measurement saves ~30 s per measurement)."""
    from inference.pipeline import Pipeline

    pipeline = Pipeline(models, analysers=[], device=device, hf_cache=models / "no-hf")
    for a in analysers:
        pipeline.use_analyser(a, batch[a.key])
    return pipeline


def measure(pipeline: Any, paths: list[Path], plan: Plan) -> tuple[Timing, Timing, int]:
    """Best (pipeline, forward) timings over `plan.rounds` and the image count, for the
    pipeline's analysers together."""
    from inference.pipeline import Job
    from inference.preprocess import decode

    analysers = [pipeline.analyser(k) for k in pipeline.ready_analysers]
    batch = pipeline.batch_sizes
    paths = paths[:plan.images]
    jobs = [Job(i, str(p)) for i, p in enumerate(paths)]
    images = [decode(p) for p in paths]
    inputs = {a.key: [a.preprocess(img) for img in images] for a in analysers}
    if plan.warm_up:  # allocator, oneDNN kernels, onnxruntime; the same for both paths
        _forward(analysers, inputs, jobs[:max(batch.values())], batch)
    piped: list[Timing] = []
    forward: list[Timing] = []
    results: list[Any] = []
    for _ in range(plan.rounds):
        results.clear()
        piped.append(Timing.of(lambda: results.extend(pipeline.run(jobs))))
        assert len(results) == len(jobs) * len(analysers), len(results)
        assert not any(getattr(out, "error", None) for _, out in results), results
        forward.append(Timing.of(lambda: _forward(analysers, inputs, jobs, batch)))
    def best(timings: list[Timing]) -> Timing:
        return Timing(min(t.wall for t in timings), min(t.cpu for t in timings))

    return best(piped), best(forward), len(jobs)


def report_measurement(report: Report, name: str, device: str,
                       timings: tuple[Timing, Timing, int]) -> None:
    piped, forward, images = timings
    report(f"{name} images/s ({device})", images / piped.wall, "images/s",
           images / forward.wall, None)
    report(f"{name} efficiency", forward.wall / piped.wall, "x", None, TARGET)
    report(f"{name} CPU ms/image", 1000 * piped.cpu / images, "ms",
           1000 * forward.cpu / images, None)


def load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def run(report: Report, quick: bool = False, device: str = "auto") -> None:
    from inference.device import resolve_device
    from inference.pipeline import Pipeline
    from inference.testing import write_images

    device = resolve_device(device)
    plans, plan_all = (QUICK_PLANS, QUICK_ALL) if quick else (FULL_PLANS, FULL_ALL)
    with tempfile.TemporaryDirectory(prefix="gentriage-bench-") as tmp:
        root = Path(tmp)
        models = build_models(root, full_size=not quick)
        count = max(p.images for p in [*plans.values(), plan_all])
        paths = write_images(root / "images", count, size=(512, 512))
        loaded = Pipeline(models, analysers=list(KEYS), device=device,
                          hf_cache=models / "no-hf")
        loaded.load()
        assert loaded.ready_analysers == list(KEYS), \
            {k: s.message for k, s in loaded.statuses.items()}
        # The real models share one ViT-L/14; a benchmark without the sharing would time
        # a pipeline users do not run.
        assert ("safety-checker", "aesthetic") in loaded.shared_clip, loaded.shared_clip
        batch = loaded.batch_sizes
        report("load average (1 min) at start", load_average() or 0.0, "", None, None)
        for key in KEYS:
            single = pipeline_over(models, [loaded.analyser(key)], batch, device)
            report_measurement(report, key, device, measure(single, paths, plans[key]))
        report_measurement(report, "all analysers", device, measure(loaded, paths, plan_all))
        report("load average (1 min) at end", load_average() or 0.0, "", None, None)


if __name__ == "__main__":
    from benchmarks import print_report

    args = sys.argv[1:]
    chosen = args[args.index("--device") + 1] if "--device" in args else "auto"
    print(f"{'figure':<36} {'value':>10} {'unit':<9} {'baseline':>10} {'target':>10}")
    started = time.perf_counter()
    run(print_report, quick="--quick" in args, device=chosen)
    print(f"({time.perf_counter() - started:.0f} s)")
