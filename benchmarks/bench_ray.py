"""`gentriage scan --ray` against a local scan, Ray actors against Ray Data, and the ceiling of
the one writer.

Files: N 1024×1024 PNGs with smooth shapes plus grain (~2 MB each, like SDXL output), read
once beforehand so every measurement sees the page cache. Analyser: nsfw-default (bundled).

Measured, each command as a fresh process, interleaved round by round, best round each:
- local scan: `python -m gentriage scan FOLDER --analysers nsfw-default` into a fresh library
  (the baseline): images/s end to end, and of the analysis phase (the summary's figure);
- `--ray local --ray-workers 1` and `--ray-workers 2`: the same, as ratios against the local
  scan. End to end includes starting Ray (seconds) and loading each worker's models; the
  analysis phase includes the workers' start.
Ray actors or Ray Data (needs the `ray-data` extra; skipped without it), one child process
with a local Ray of 2 CPUs and 2 workers of 1 CPU, the same N images in pieces of the
runner's lease size (`take`), as the queue hands them out:
- actors: library.distributed's RayExecutor (workers started once, kept);
  the images are analysed several times over so that the backlog spans MIN_PIECES leases;
- Ray Data per piece: `map_batches` with an actor pool of the same size over each piece, as a
  Ray Data version of the queue would have to run (a dataset is finite);
- Ray Data once: one `map_batches` over all N — its best case, which gives up the queue's
  short leases and visible-first order;
- images/s each, ratios against actors.
The writer's ceiling: the driver alone — lease a batch, write its results, recompute flags,
dequeue — with an executor that answers at once, on a synthetic library of 20,000 pictures:
results/s. A cluster cannot analyse faster than this, whatever its size.
Run: `python -m benchmarks.bench_ray [N]`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

N_IMAGES = 120
QUICK_IMAGES = 24
ROUNDS = 2
MIN_PIECES = 4  # leased batches in the actors-vs-Ray-Data comparison
CEILING_LIBRARY = 20_000
QUICK_CEILING_LIBRARY = 4_000
REPO = Path(__file__).resolve().parents[1]

# Actors against Ray Data, in one child (ray imported there only).
ACTORS_VS_DATA = r'''
import json, sys, time
from pathlib import Path
from inference.types import Job
from inference.weights import discover
from library import distributed

folder, models, MIN_PIECES = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
paths = sorted(str(p) for p in folder.iterdir())
cluster = distributed.RayCluster.connect(distributed.resolve_target("local"), "cpu", 2)
cluster.say = lambda text: None
ray, shape, take = cluster.ray, cluster.shape, cluster.take
statuses = discover(Path(models), ["nsfw-default"])
# A backlog of at least MIN_PIECES leases: the images again and again (the page cache
# keeps the reads alike).
passes = -(-MIN_PIECES * take // len(paths))
jobs = [Job(i, p) for i, p in enumerate(paths * passes)]
pieces = [jobs[i:i + take] for i in range(0, len(jobs), take)]
figures = {"take": take, "pieces": len(pieces), "jobs": len(jobs)}

began = time.perf_counter()
executor = cluster.executor(models_dir=models, analysers=["nsfw-default"], device="cpu",
                            statuses=statuses)
done = sum(1 for piece in pieces for _ in executor.run(piece))
figures["actors"] = (time.perf_counter() - began, done)
del executor  # its actors go when their handles do

try:
    import ray.data
except ImportError:
    print("FIGURES " + json.dumps(figures), flush=True)
    sys.exit(0)

ray.data.DataContext.get_current().enable_progress_bars = False
decode, model = shape.threads
spec = distributed.WorkerSpec(models, ("nsfw-default",), "cpu", 0.2, None, decode, model)


class DataWorker:
    """The same worker, as a Ray Data map_batches class (one per actor of the pool)."""

    def __init__(self, spec):
        self.worker = distributed.AnalysisWorker(spec)
        self.worker.start()

    def __call__(self, batch):
        jobs = [Job(int(i), str(p)) for i, p in zip(batch["job_id"], batch["path"])]
        outputs = self.worker.analyse(jobs).outputs
        return {"job_id": [job.job_id for job, _ in outputs],
                "score": [float(getattr(out, "score", None) or 0.0) for _, out in outputs]}


def through_data(part):
    rows = [{"job_id": job.job_id, "path": job.path} for job in part]
    out = ray.data.from_items(rows).map_batches(
        DataWorker, fn_constructor_args=(spec,), concurrency=shape.count,
        batch_size=shape.chunk, num_cpus=shape.cpus)
    return len(out.take_all())


began = time.perf_counter()
done = sum(through_data(piece) for piece in pieces)
figures["data_per_piece"] = (time.perf_counter() - began, done)
began = time.perf_counter()
done = through_data(jobs)
figures["data_once"] = (time.perf_counter() - began, done)
print("FIGURES " + json.dumps(figures), flush=True)
cluster.close()
'''

ELAPSED = re.compile(r"^elapsed: ([\d.]+) s, ([\d.]+) images/s analysed$", re.MULTILINE)


def _make_pngs(folder: Path, count: int) -> list[Path]:
    sys.path.insert(0, str(REPO / "tests"))
    from sample_images import noise_picture

    paths = []
    for i in range(count):
        path = folder / f"{i:05d}.png"
        noise_picture((1024, 1024), seed=i).save(path, "PNG")
        paths.append(path)
    return paths


def _env(home: Path, ray_root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["GENTRIAGE_HOME"] = str(home)
    env.pop("GENTRIAGE_DB", None)
    env.pop("GENTRIAGE_MODELS_DIR", None)
    env.pop("RAY_ADDRESS", None)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    # Ray's session files and token (~/.ray) in the benchmark's own folder; a short path,
    # since Ray's unix sockets live under it.
    env["RAY_TMPDIR"] = str(ray_root / "tmp")
    env["HOME"] = str(ray_root)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _scan(folder: Path, env: dict[str, str], *ray: str) -> tuple[float, float]:
    """(end-to-end seconds, the summary's analysis images/s) of one fresh scan."""
    command = [sys.executable, "-m", "gentriage", "scan", str(folder), "--analysers",
               "nsfw-default", *ray]
    began = time.perf_counter()
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=900, check=False)
    elapsed = time.perf_counter() - began
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command[3:])} failed ({proc.returncode}): "
                           f"{proc.stderr[-2000:]}")
    match = ELAPSED.search(proc.stdout)
    if match is None:
        raise RuntimeError(f"no elapsed line in: {proc.stdout}")
    return elapsed, float(match.group(2))


def _writer_ceiling(root: Path, n_images: int) -> tuple[float, int]:
    """(results/s, results) of the runner's lease-write-dequeue loop with an instant
    executor, over every picture of a synthetic library."""
    from benchmarks.synthetic import build_library
    from db.engine import open_library, session_factory
    from inference.types import AnalyserOutput
    from library.analysis import AnalysisRunner
    from library.distributed import GPU_CHUNK, TAKE_CHUNKS_PER_WORKER
    from library.settings import Settings

    class InstantExecutor:
        """Answers every job at once: what is left is the driver's own work."""

        versions = {"nsfw-default": "bench-writer-ceiling"}
        ready_analysers = ["nsfw-default"]
        device = "nowhere"

        def load(self) -> None:
            pass

        def run(self, jobs):
            for job in jobs:
                yield job, AnalyserOutput("nsfw-default", self.versions["nsfw-default"],
                                          "sfw", 0.01)

        def pause(self) -> None:
            pass

        def resume(self) -> None:
            pass

        def cancel(self) -> None:
            pass

    import threading

    db = root / "ceiling.sqlite3"
    build_library(db, n_images)
    engine = open_library(db)
    settings = Settings()
    settings.enabled_analysers = ["nsfw-default"]
    # The lease size of 8 GPU workers: a large cluster's batches.
    runner = AnalysisRunner(session_factory(engine), root / "models", settings,
                            pipeline_factory=lambda **_: InstantExecutor(),
                            take=8 * GPU_CHUNK * TAKE_CHUNKS_PER_WORKER)
    runner.load()
    runner.enqueue_missing()
    began = time.perf_counter()
    stats = runner.run(threading.Event())
    elapsed = time.perf_counter() - began
    engine.dispose()
    return stats.completed / elapsed, stats.completed


def run(report, quick: bool = False, n_images: int | None = None) -> None:
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        report("Ray is not installed (pip install 'gentriage[ray]'): nothing measured", 0, "-")
        return
    count = n_images or (QUICK_IMAGES if quick else N_IMAGES)
    with tempfile.TemporaryDirectory(prefix="gentriage-bench-ray-") as tmp, \
            tempfile.TemporaryDirectory(prefix="gt-bray-", dir="/tmp") as ray_tmp:
        root, ray_root = Path(tmp), Path(ray_tmp)
        (ray_root / "tmp").mkdir()
        folder = root / "images"
        folder.mkdir()
        began = time.perf_counter()
        paths = _make_pngs(folder, count)
        megabytes = sum(p.stat().st_size for p in paths) / count / 1e6
        report(f"generate {count} PNGs 1024x1024 (avg {megabytes:.1f} MB)",
               time.perf_counter() - began, "s")
        for path in paths:
            path.read_bytes()  # page cache, for every measurement alike

        runs = {"local": (), "ray 1": ("--ray", "local", "--ray-workers", "1"),
                "ray 2": ("--ray", "local", "--ray-workers", "2")}
        wall = dict.fromkeys(runs, float("inf"))
        analysis = dict.fromkeys(runs, 0.0)
        for round_ in range(1 if quick else ROUNDS):
            for name, options in runs.items():
                home = root / f"home-{round_}-{name.replace(' ', '')}"
                seconds, rate = _scan(folder, _env(home, ray_root), *options)
                wall[name], analysis[name] = min(wall[name], seconds), max(analysis[name], rate)
                shutil.rmtree(home, ignore_errors=True)

        cores = os.cpu_count() or 1
        report(f"local scan, {cores} cores, end to end", count / wall["local"], "images/s")
        report("local scan, analysis phase", analysis["local"], "images/s")
        for workers in (1, 2):
            name = f"ray {workers}"
            report(f"--ray local, {workers} worker(s), end to end (Ray start included)",
                   count / wall[name], "images/s", baseline=count / wall["local"])
            report(f"--ray local, {workers} worker(s), analysis phase", analysis[name],
                   "images/s", baseline=analysis["local"])

        child = subprocess.run([sys.executable, "-c", ACTORS_VS_DATA, str(folder),
                                str(root / "models"), str(1 if quick else MIN_PIECES)],
                               cwd=REPO, env=_env(root / "h", ray_root),
                               capture_output=True, text=True, timeout=900, check=False)
        line = next((x for x in child.stdout.splitlines() if x.startswith("FIGURES ")), None)
        if child.returncode != 0 or line is None:
            raise RuntimeError(f"actors vs Ray Data failed: {child.stderr[-3000:]}")
        figures = json.loads(line[len("FIGURES "):])
        actors_s, actors_n = figures["actors"]
        label = f"{figures['jobs']} images in {figures['pieces']} leases of {figures['take']}"
        report(f"Ray actors (RayExecutor), 2 workers, {label}", actors_n / actors_s, "images/s")
        if "data_per_piece" not in figures:
            report("Ray Data: not installed (pip install 'gentriage[ray-data]'), not measured", 0, "-")
        else:
            for key, what in (("data_per_piece", "one map_batches per piece"),
                              ("data_once", "one map_batches over all")):
                seconds, done = figures[key]
                report(f"Ray Data, actor pool of 2, {what}", done / seconds, "images/s",
                       baseline=actors_n / actors_s)

        ceiling_images = QUICK_CEILING_LIBRARY if quick else CEILING_LIBRARY
        rate, done = _writer_ceiling(root, ceiling_images)
        report(f"writer ceiling: lease + write + flags + dequeue ({done} results)", rate,
               "results/s")


if __name__ == "__main__":
    from benchmarks import print_report

    run(print_report, n_images=int(sys.argv[1]) if len(sys.argv) > 1 else None)
