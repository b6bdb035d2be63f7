"""Analysis on a Ray cluster: `gentriage scan FOLDER… --ray [ADDRESS]`.

The one module that imports ray (the optional `ray` extra). An import-linter contract in
pyproject.toml keeps every other module from importing it, and tests/test_architecture.py
checks that neither the app nor a local scan ever loads it; even here it is imported only when
a cluster is joined, so `gentriage scan --help` and a local scan never pay for it.

Who does what:
- the driver — the `gentriage scan` process — indexes the folders, plans, leases work from the
  library's analysis queue and writes every result: library.analysis.AnalysisRunner, exactly
  as in a local scan. The queue stays the source of truth: a killed driver's leases are
  reclaimed by the next run (or expire), and work whose results never reached the database is
  simply done again; nothing is ever recorded twice.
- `RayExecutor` is the runner's executor (the seam a local Pipeline fills otherwise): it
  spreads each leased batch over a pool of `AnalysisWorker` actors, each keeping one
  inference.pipeline.Pipeline loaded (one actor per GPU; on a cluster without GPUs, actors of
  a few CPUs each), and hands their outputs back to the runner's one writer chunk by chunk.
- workers read the files themselves, at the paths the library stores, and the models from the
  driver's models folder path: every node must see both at the same paths (a shared mount).
  A worker that cannot see a file this machine sees, or reads other bytes there, stops the run
  with a message saying so: no file is marked broken and no verdict is recorded on the wrong
  picture because of a node's mounts.
- integrity: the worker's Pipeline hashes the bytes it decodes; a picture that is not the
  queued content comes back as ContentChanged and the runner re-indexes it, as locally.
- a worker that dies (ray.kill, its node lost, out of memory) has its chunk handed to the
  others and is replaced; a chunk whose workers died CHUNK_TRIES times goes back to the queue
  with an attempt counted, so a file that kills every worker is given up after the runner's
  MAX_ATTEMPTS like any batch that never finishes.

Ray actors rather than Ray Data (`map_batches` over an actor pool): the queue hands out small
leased batches one after another, and a Ray Data pipeline is a finite dataset — one dataset
per leased batch starts a fresh actor pool, loading every model again, each time; one dataset
for the whole run would have to lease the whole backlog up front, giving up the queue's
visible-first order and its short leases. benchmarks/bench_ray.py measures both on the same
images; the figures are in the README's "Ray cluster" section.
"""

from __future__ import annotations

import hashlib
import importlib.util
import ipaddress
import logging
import os
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from inference.types import Job
    from inference.weights import ModelStatus

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'gentriage[ray]'"
LOCAL, AUTO = "local", "auto"
ADDRESS_VARIABLE = "RAY_ADDRESS"
NAMESPACE = "gentriage"
WORKER_NAME = "gentriage-analysis"  # actors are named WORKER_NAME-<run>-<n>
# CPUs per worker on a cluster without GPUs: one actor per this many CPUs of each node (a node
# with fewer gets one actor of all its CPUs). Each actor holds its own copy of the models, so
# fewer, wider actors save memory; the Pipeline inside splits them between decoding and models.
CPU_WORKER_CPUS = 4
# CPUs reserved for a GPU worker's decoding at most (it gets its node's CPUs / GPUs, capped).
GPU_WORKER_MAX_CPUS = 8
# Images per actor call. One call is the unit that is retried when a worker dies and that
# streams back to the writer; a few model batches long, so per-call overhead stays small.
CPU_CHUNK = 16
GPU_CHUNK = 64
# Calls queued on each actor: the next chunk is already there when one ends (no idle round trip).
IN_FLIGHT_PER_WORKER = 2
# The runner leases this many chunks per worker at a time: enough that the end of one leased
# batch (its last chunks running on some workers while others wait) costs little.
TAKE_CHUNKS_PER_WORKER = 4
CHUNK_TRIES = 2  # a chunk whose worker died this many times goes back to the queue
REPLACEMENTS_PER_WORKER = 2  # dead workers replaced, per worker asked for, before giving up
START_TIMEOUT_S = 600.0  # scheduling plus loading every model, on a busy cluster
WAIT_SLICE_S = 0.25  # how long the driver blocks in ray.wait (Ctrl+C and pause are seen after)


class DistributedError(RuntimeError):
    """The cluster or a worker cannot do the work; the message says why in the user's terms.
    Work not written stays queued for the next run."""


def ray_installed() -> bool:
    """Whether the `ray` extra is installed (looked up without importing it)."""
    return importlib.util.find_spec("ray") is not None


# ---------------------------------------------------------------------------- where to run


@dataclass(frozen=True)
class Target:
    """The cluster a scan runs on: `address` as ray.init takes it ("local" starts one)."""

    address: str
    label: str  # for messages
    on_this_machine: bool  # local, or an address on this machine's loopback


def resolve_target(option: str, environ: Mapping[str, str] = os.environ) -> Target:
    """The `--ray` option's target. "" (bare `--ray`): $RAY_ADDRESS when set, else a local
    Ray; "auto": $RAY_ADDRESS, which must be set; "local": a new Ray on this machine; anything
    else: a cluster address (host:port of its head, or ray://host:10001). ValueError for an
    `auto` without RAY_ADDRESS (a usage error)."""
    value = option.strip()
    from_environment = environ.get(ADDRESS_VARIABLE, "").strip()
    if value == AUTO or (value == "" and from_environment):
        if not from_environment:
            raise ValueError(f"--ray auto: {ADDRESS_VARIABLE} is not set (give the cluster's "
                             "address, or --ray local to start Ray on this machine)")
        value = from_environment
    if value in ("", LOCAL):
        return Target(LOCAL, "a local Ray on this machine", True)
    return Target(value, value, _is_loopback(value))


def _is_loopback(address: str) -> bool:
    host = address.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _import_ray(on_this_machine: bool) -> Any:
    """ray, with what would reach beyond the cluster switched off before it loads."""
    # No usage statistics (a person who opted in explicitly keeps their choice).
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if on_this_machine:
        # Ray reads this once, at import: off, a Ray on this machine uses the loopback address
        # for its node (as it does on macOS and Windows) instead of finding the machine's
        # network address through a route lookup towards a public DNS server, so its ports
        # are not reachable from the network either.
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    import ray

    return ray


# ---------------------------------------------------------------------------- worker sizing


@dataclass(frozen=True)
class WorkerShape:
    """How many actors, and what each reserves."""

    count: int
    cpus: int
    gpus: int  # 0 or 1
    chunk: int  # images per actor call

    @property
    def take(self) -> int:
        """Contents the runner leases at a time."""
        return self.count * self.chunk * TAKE_CHUNKS_PER_WORKER

    @property
    def threads(self) -> tuple[int, int]:
        """(decode threads, model threads) of each worker's Pipeline: the split a local
        Pipeline makes of a machine's cores (inference.pipeline.default_prefetch_workers),
        made of the worker's CPUs — its process sees every core of its node, not its share.
        (Measured here: a 2-CPU worker analyses 39 images/s with 2 + 1 threads, 29 with
        1 + 1.)"""
        from inference.pipeline import default_prefetch_workers

        decode = default_prefetch_workers(self.cpus)
        return decode, max(1, self.cpus - decode)

    def describe(self) -> str:
        each = "one GPU" if self.gpus else f"{self.cpus} CPU{'s' if self.cpus > 1 else ''}"
        return f"{self.count} worker{'s' if self.count > 1 else ''}, {each} each"


def plan_workers(nodes: Sequence[tuple[float, float]], device: str, wanted: int | None = None,
                 batch_size: int | None = None) -> WorkerShape:
    """Actors for a cluster whose live nodes have these (CPUs, GPUs). One per GPU unless the
    device is the CPU; without GPUs, one per CPU_WORKER_CPUS CPUs of each node, as wide as the
    nodes allow when `wanted` is given. ValueError (a usage error) for what cannot be placed."""
    from inference.onnx_runtime import parse_device

    kind, index = parse_device(device)
    gpus = sum(int(g) for _, g in nodes)
    if kind == "cuda" and index is not None:
        raise ValueError(f"--device {device}: with --ray each worker has one GPU of its own; "
                         "use --device cuda (or auto)")
    if kind == "cuda" and not gpus:
        raise ValueError(f"--device {device}: the Ray cluster has no GPU")
    if kind in ("auto", "cuda") and gpus:
        count = wanted or gpus
        if count > gpus:
            raise ValueError(f"--ray-workers {count}: the Ray cluster has {gpus} GPU(s), "
                             "one per worker")
        per_gpu = min(int(c // int(g)) for c, g in nodes if int(g) >= 1)
        return WorkerShape(count, max(1, min(GPU_WORKER_MAX_CPUS, per_gpu)), 1,
                           max(GPU_CHUNK, batch_size or 0))
    cpus = [int(c) for c, _ in nodes if c >= 1]
    if not cpus:
        raise ValueError("the Ray cluster has no CPU to run workers on")
    count = wanted or (sum(c // CPU_WORKER_CPUS for c in cpus) or len(cpus))
    for width in range(max(CPU_WORKER_CPUS, 1), 0, -1):
        if sum(c // width for c in cpus) >= count:
            return WorkerShape(count, width, 0, max(CPU_CHUNK, batch_size or 0))
    raise ValueError(f"--ray-workers {count}: the Ray cluster has {sum(cpus)} CPU(s), "
                     "at least one per worker")


# ---------------------------------------------------------------------------- the actor


@dataclass(frozen=True)
class WorkerSpec:
    """What each worker builds its Pipeline from (sent to the actor)."""

    models_dir: str
    analysers: tuple[str, ...]
    device: str
    tag_threshold: float
    batch_size: int | None
    decode_threads: int
    model_threads: int


@dataclass
class WorkerReport:
    """What a worker says once its models are loaded."""

    node: str
    device: str
    versions: dict[str, str]
    statuses: dict[str, ModelStatus]
    messages: list[str]


@dataclass
class ChunkResult:
    outputs: list[tuple[Job, Any]]  # as Pipeline.run yields them
    unseen: list[Job]  # files this worker's node does not have at that path


class AnalysisWorker:
    """A Ray actor (wrapped with ray.remote when the pool starts): one loaded Pipeline, kept for
    the whole run, analysing the chunks it is sent."""

    def __init__(self, spec: WorkerSpec) -> None:
        self._spec = spec
        self._pipeline: Any = None

    def start(self) -> WorkerReport:
        from inference.pipeline import Pipeline

        spec = self._spec
        messages: list[str] = []
        pipeline = Pipeline(Path(spec.models_dir), list(spec.analysers), spec.device,
                            tag_threshold=spec.tag_threshold, batch_size=spec.batch_size,
                            prefetch_workers=spec.decode_threads, on_status=messages.append)
        pipeline.model_threads = spec.model_threads  # its share, not the node's cores
        pipeline.load()
        self._pipeline = pipeline
        return WorkerReport(socket.gethostname(), pipeline.device, dict(pipeline.versions),
                            dict(pipeline.statuses), messages)

    def analyse(self, jobs: list[Job]) -> ChunkResult:
        visible = [job for job in jobs if os.path.lexists(job.path)]
        unseen = [job for job in jobs if not os.path.lexists(job.path)]
        return ChunkResult(list(self._pipeline.run(visible)), unseen)


# ---------------------------------------------------------------------------- the cluster


class RayCluster:
    """One scan's connection to Ray: `connect`, hand `executor` (with `take`) to the
    AnalysisRunner, `close` at the end. A local Ray ends with it; on a cluster, the workers
    (owned by this driver) end with it, and if the driver is killed Ray ends them too."""

    Error = DistributedError

    def __init__(self, ray: Any, target: Target, shape: WorkerShape, resources: str) -> None:
        self._ray = ray
        self.target = target
        self.shape = shape
        self.resources = resources
        self.say: Callable[[str], None] = lambda text: log.warning("%s", text)
        self.run_id = uuid.uuid4().hex[:8]
        self.workers_started = 0
        self.workers_lost = 0
        self._actor_class: Any = None

    @classmethod
    def connect(cls, target: Target, device: str, workers: int | None = None,
                batch_size: int | None = None) -> RayCluster:
        """Start or join Ray and size the workers. DistributedError when Ray cannot be
        reached; ValueError (usage) when the workers asked for do not fit the cluster."""
        ray = _import_ray(target.on_this_machine)
        options: dict[str, Any] = {"namespace": NAMESPACE, "log_to_driver": False,
                                   "logging_level": logging.WARNING}
        if target.address == LOCAL:
            options["include_dashboard"] = False
        try:
            ray.init(address=target.address, **options)
        except Exception as exc:
            raise DistributedError(f"cannot reach Ray at {target.label}: "
                                   f"{_first_line(exc)}") from exc
        try:
            nodes = [(float(n["Resources"].get("CPU", 0)), float(n["Resources"].get("GPU", 0)))
                     for n in ray.nodes() if n.get("Alive")]
            shape = plan_workers(nodes, device, workers, batch_size)
        except BaseException:
            ray.shutdown()
            raise
        cpus, gpus = sum(c for c, _ in nodes), sum(g for _, g in nodes)
        resources = (f"{len(nodes)} node{'s' if len(nodes) > 1 else ''}, {cpus:g} CPUs"
                     + (f", {gpus:g} GPUs" if gpus else ""))
        return cls(ray, target, shape, resources)

    @property
    def take(self) -> int:
        return self.shape.take

    def executor(self, **pipeline_arguments: Any) -> RayExecutor:
        """The AnalysisRunner's executor factory (called with the Pipeline's arguments)."""
        return RayExecutor(self, **pipeline_arguments)

    def spawn(self, spec: WorkerSpec) -> tuple[Any, str]:
        """Start one worker actor; (its handle, its name). Its models load in `start`."""
        if self._actor_class is None:
            self._actor_class = self._ray.remote(AnalysisWorker)
        name = f"{WORKER_NAME}-{self.run_id}-{self.workers_started}"
        self.workers_started += 1
        options: dict[str, Any] = {"name": name, "num_cpus": self.shape.cpus,
                                   "num_gpus": self.shape.gpus, "max_restarts": 0,
                                   "scheduling_strategy": "SPREAD"}
        return self._actor_class.options(**options).remote(spec), name

    def summary(self) -> str:
        """One line for the scan's summary."""
        line = f"{self.shape.describe()} on {self.target.label} ({self.resources})"
        if self.workers_lost:
            line += (f"; {self.workers_lost} worker{'s' if self.workers_lost > 1 else ''} "
                     "stopped and replaced")
        return line

    def close(self) -> None:
        self._ray.shutdown()

    @property
    def ray(self) -> Any:
        return self._ray


def _first_line(exc: BaseException, limit: int = 300) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 1] + "…"


# ---------------------------------------------------------------------------- the executor


@dataclass
class _Worker:
    """The driver's record of one actor."""

    handle: Any
    name: str
    start_ref: Any  # None once started
    node: str = "?"
    device: str = "?"
    in_flight: int = 0
    alive: bool = True


@dataclass
class _Chunk:
    jobs: list[Job]
    tries: int = 0


class RayExecutor:
    """Runs the runner's leased batches on the cluster's workers (the runner's PipelineLike).

    `load` starts the workers and checks that each has the planned analysers ready with the
    same weights (versions) as this machine; one that differs on a worker is not used. `run`
    spreads the jobs in chunks over the workers and yields every output as its chunk comes
    back. After `cancel` nothing new is sent, the chunks already running finish and are
    yielded (`drains_on_cancel`), then `run` ends."""

    drains_on_cancel = True

    def __init__(self, cluster: RayCluster, *, models_dir: Path | str,
                 analysers: Sequence[str], device: str = "auto", tag_threshold: float = 0.2,
                 batch_size: int | None = None, on_status: Callable[[str], None] | None = None,
                 statuses: Sequence[ModelStatus] | None = None, **_unused: Any) -> None:
        self._cluster = cluster
        self._ray = cluster.ray
        planned = {s.key: s for s in statuses or ()}
        self.statuses: dict[str, ModelStatus] = dict(planned)
        self.ready_analysers: list[str] = [k for k in analysers if k in planned]
        self.versions: dict[str, str] = {k: str(planned[k].version) for k in self.ready_analysers}
        self._on_status = on_status
        decode, model = cluster.shape.threads
        # Absolute (the workers' working folder is not ours), symlinks kept: the path as
        # this machine names it is the one every node must mount.
        self._spec = WorkerSpec(os.path.abspath(models_dir), tuple(self.ready_analysers), device,
                                tag_threshold, batch_size, decode, model)
        self._workers: list[_Worker] = []
        self._replacements_left = cluster.shape.count * REPLACEMENTS_PER_WORKER
        self._running = threading.Event()
        self._running.set()
        self._cancel = threading.Event()
        self._loaded = False

    # ------------------------------------------------------------ PipelineLike

    @property
    def device(self) -> str:
        live = [w for w in self._workers if w.alive and w.start_ref is None]
        devices = ", ".join(sorted({w.device for w in live})) or "starting"
        return f"{len(live)} Ray worker{'s' if len(live) != 1 else ''} ({devices})"

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def cancel(self) -> None:
        self._cancel.set()
        self._running.set()

    def load(self) -> None:
        """Start every worker and wait until each has loaded its models."""
        if self._loaded:
            return
        self._loaded = True
        if not self.ready_analysers:
            return
        self._say(f"ray: starting {self._cluster.shape.describe()} on "
                  f"{self._cluster.target.label} ({self._cluster.resources})")
        for _ in range(self._cluster.shape.count):
            self._spawn()
        starting = {w.start_ref: w for w in self._workers}
        ready: list[Any] = []
        deadline = time.monotonic() + START_TIMEOUT_S
        # In short waits: a second Ctrl+C (KeyboardInterrupt) is seen between them.
        while len(ready) < len(starting) and time.monotonic() < deadline:
            waiting = [ref for ref in starting if ref not in ready]
            done, _ = self._ray.wait(waiting, num_returns=len(waiting), timeout=WAIT_SLICE_S)
            ready += done
        if len(ready) < len(starting):
            raise DistributedError(
                f"only {len(ready)} of {len(starting)} Ray workers started within "
                f"{START_TIMEOUT_S:.0f} s ({self._cluster.shape.describe()}; the cluster has "
                f"{self._cluster.resources}, and other jobs may hold some of it)")
        for ref in ready:
            self._started(starting[ref], ref, first=True)
        nodes = sorted({w.node for w in self._workers})
        self._say(f"ray: {self.device} on {len(nodes)} node{'s' if len(nodes) > 1 else ''}")

    def run(self, jobs: Iterable[Job]) -> Iterator[tuple[Job, Any]]:
        self.load()
        chunk = self._cluster.shape.chunk
        listed = list(jobs)
        pending = deque(_Chunk(listed[i:i + chunk]) for i in range(0, len(listed), chunk))
        in_flight: dict[Any, tuple[_Worker, _Chunk]] = {}
        try:
            while True:
                if self._running.is_set() and not self._cancel.is_set():
                    self._submit(pending, in_flight)
                starting = {w.start_ref: w for w in self._workers
                            if w.alive and w.start_ref is not None}
                if not in_flight:
                    if self._cancel.is_set() or not pending:
                        return
                    if not starting and not any(w.alive for w in self._workers):
                        raise DistributedError(
                            "every Ray worker stopped and no more are started; "
                            f"{sum(len(c.jobs) for c in pending)} image(s) stay queued")
                    if not starting:  # paused: nothing is sent until resume
                        self._running.wait(WAIT_SLICE_S)
                        continue
                ready, _ = self._ray.wait([*in_flight, *starting], num_returns=1,
                                          timeout=WAIT_SLICE_S)
                for ref in ready:
                    if ref in starting:
                        self._started(starting[ref], ref, first=False)
                        continue
                    worker, part = in_flight.pop(ref)
                    worker.in_flight -= 1
                    result = self._collect(ref, worker, part, pending)
                    if result is not None:
                        yield from checked_outputs(result, worker.node)
        finally:
            self._cancel.clear()

    # ------------------------------------------------------------ workers

    def _say(self, text: str) -> None:
        self._cluster.say(text)
        if self._on_status is not None:
            self._on_status(text)

    def _spawn(self) -> None:
        handle, name = self._cluster.spawn(self._spec)
        self._workers.append(_Worker(handle, name, handle.start.remote()))

    def _started(self, worker: _Worker, ref: Any, first: bool) -> None:
        """Take a worker's start report: the analysers it can run, at which version."""
        worker.start_ref = None
        try:
            report: WorkerReport = self._ray.get(ref)
        except self._ray.exceptions.RayError as exc:
            raise DistributedError(f"a Ray worker could not start: {_worker_error(exc)}") \
                from exc
        worker.node, worker.device = report.node, report.device
        for text in report.messages:
            log.info("%s on %s: %s", worker.name, worker.node, text)
        for key in list(self.ready_analysers):
            problem = _mismatch(key, self.versions[key], report)
            if problem is None:
                continue
            if not first:  # a replacement on another node: the run cannot stay consistent
                raise DistributedError(f"{key} on {worker.node}: {problem}")
            self.ready_analysers.remove(key)
            self.versions.pop(key)
            self.statuses[key] = replace(self.statuses[key], status="broken",
                                         message=f"on Ray node {worker.node}: {problem}")

    def _submit(self, pending: deque[_Chunk], in_flight: dict[Any, tuple[_Worker, _Chunk]]
                ) -> None:
        while pending:
            free = [w for w in self._workers if w.alive and w.start_ref is None
                    and w.in_flight < IN_FLIGHT_PER_WORKER]
            if not free:
                return
            worker = min(free, key=lambda w: w.in_flight)
            part = pending.popleft()
            in_flight[worker.handle.analyse.remote(part.jobs)] = (worker, part)
            worker.in_flight += 1

    def _collect(self, ref: Any, worker: _Worker, part: _Chunk, pending: deque[_Chunk]
                 ) -> ChunkResult | None:
        """The chunk's result; None when its worker died (the chunk is sent again, or after
        CHUNK_TRIES left to the queue)."""
        exceptions = self._ray.exceptions
        try:
            result: ChunkResult = self._ray.get(ref)
            return result
        except exceptions.RayActorError as exc:
            self._lost(worker, exc)
        except exceptions.RayTaskError as exc:  # a failure inside analyse: not per-image
            raise DistributedError(f"a Ray worker on {worker.node} failed: "
                                   f"{_worker_error(exc)}") from exc
        except exceptions.RayError as exc:  # the cluster itself (its head or object store)
            raise DistributedError(f"Ray failed: {_first_line(exc)}") from exc
        part.tries += 1
        if part.tries < CHUNK_TRIES:
            pending.appendleft(part)
            self._say(f"ray: {len(part.jobs)} image(s) of the stopped worker go to another")
        else:
            self._say(f"ray: {len(part.jobs)} image(s) stay queued: their workers stopped "
                      f"{part.tries} times")
        return None

    def _lost(self, worker: _Worker, exc: BaseException) -> None:
        if not worker.alive:
            return
        worker.alive = False
        self._cluster.workers_lost += 1
        self._say(f"ray: worker {worker.name} on {worker.node} stopped ({_first_line(exc, 120)})")
        if self._replacements_left > 0:
            self._replacements_left -= 1
            self._spawn()


def checked_outputs(result: ChunkResult, node: str) -> Iterator[tuple[Job, Any]]:
    """A worker's outputs, once it is clear that the worker on `node` saw the files as this
    machine does. DistributedError when it did not (a file this machine has that the worker
    cannot see; other bytes at the same path): a setup problem, never a broken file or a
    verdict on another picture."""
    from inference.types import ContentChanged, DecodeFailure

    for job in result.unseen:
        if os.path.lexists(job.path):
            raise DistributedError(
                f"the Ray worker on {node} cannot see {job.path}, which this machine can: "
                "every Ray node must see the library's folders at the same paths (a shared "
                "mount)")
        yield job, DecodeFailure(job, f"cannot decode {job.path}: No such file or directory")
    for job, output in result.outputs:
        if isinstance(output, ContentChanged) and _still_holds(job):
            raise DistributedError(
                f"the Ray worker on {node} reads other bytes at {job.path} than this "
                "machine: every Ray node must see the same files at the same paths")
        yield job, output


def _mismatch(key: str, version: str, report: WorkerReport) -> str | None:
    """Why a worker cannot stand in for this machine on analyser `key`, or None."""
    status = report.statuses.get(key)
    if key in report.versions and report.versions[key] == version:
        return None
    if key in report.versions:
        return ("the worker's weights differ from this machine's (every node must use the "
                "same models folder)")
    return status.message if status is not None else "not loaded on the worker"


def _still_holds(job: Job) -> bool:
    """Whether this machine still reads the job's content at its path."""
    from inference.decoding import read_regular_file

    try:
        data, _ = read_regular_file(job.path)
    except OSError:
        return False
    return hashlib.sha256(data).hexdigest() == job.sha256


def _worker_error(exc: BaseException) -> str:
    """The worker's own exception, not Ray's wrapping of it."""
    cause = getattr(exc, "cause", None)
    return _first_line(cause if isinstance(cause, BaseException) else exc)


__all__ = ["AUTO", "INSTALL_HINT", "LOCAL", "ChunkResult", "DistributedError", "RayCluster",
           "RayExecutor", "Target", "WorkerShape", "checked_outputs", "plan_workers",
           "ray_installed", "resolve_target"]
