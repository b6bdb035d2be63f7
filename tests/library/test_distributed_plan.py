"""library.distributed without a cluster: where `--ray` points, and how many workers of what
size a cluster gets. (Importing the module does not import ray.)"""

from __future__ import annotations

import pytest

from inference.pipeline import default_prefetch_workers
from library.distributed import (
    CPU_CHUNK,
    CPU_WORKER_CPUS,
    GPU_CHUNK,
    GPU_WORKER_MAX_CPUS,
    TAKE_CHUNKS_PER_WORKER,
    plan_workers,
    resolve_target,
)


@pytest.mark.parametrize("option, environ, address, on_this_machine", [
    ("", {}, "local", True),  # bare --ray without RAY_ADDRESS: a local Ray
    ("", {"RAY_ADDRESS": "head:6379"}, "head:6379", False),  # bare --ray: RAY_ADDRESS
    ("auto", {"RAY_ADDRESS": "ray://head:10001"}, "ray://head:10001", False),
    ("local", {"RAY_ADDRESS": "head:6379"}, "local", True),  # local even when it is set
    ("10.0.0.5:6379", {}, "10.0.0.5:6379", False),
    ("127.0.0.1:6379", {}, "127.0.0.1:6379", True),
    ("localhost:6379", {}, "localhost:6379", True),
    ("ray://[::1]:10001", {}, "ray://[::1]:10001", True),
])
def test_resolve_target(option, environ, address, on_this_machine):
    target = resolve_target(option, environ)
    assert (target.address, target.on_this_machine) == (address, on_this_machine)


def test_auto_without_ray_address_is_a_usage_error():
    with pytest.raises(ValueError, match="RAY_ADDRESS is not set"):
        resolve_target("auto", {})


def test_one_worker_per_gpu_each_with_its_share_of_the_cpus():
    shape = plan_workers([(32, 4), (16, 2), (8, 0)], "auto")
    assert (shape.count, shape.gpus) == (6, 1)
    assert shape.cpus == min(GPU_WORKER_MAX_CPUS, 16 // 2)
    assert shape.chunk == GPU_CHUNK
    assert shape.take == 6 * GPU_CHUNK * TAKE_CHUNKS_PER_WORKER


def test_the_cpu_device_ignores_the_gpus():
    shape = plan_workers([(8, 2)], "cpu")
    assert (shape.count, shape.cpus, shape.gpus) == (8 // CPU_WORKER_CPUS, CPU_WORKER_CPUS, 0)


@pytest.mark.parametrize("nodes, wanted, count, cpus", [
    ([(2, 0)], None, 1, 2),  # a small node: one worker of all its CPUs
    ([(2, 0)], 1, 1, 2),
    ([(2, 0)], 2, 2, 1),  # this machine's benchmark: two workers of one CPU
    ([(16, 0), (16, 0)], None, 8, CPU_WORKER_CPUS),
    ([(16, 0), (4, 0)], 3, 3, 4),  # as wide as every worker still fits
    ([(16, 0), (4, 0)], 6, 6, 3),
])
def test_cpu_workers(nodes, wanted, count, cpus):
    shape = plan_workers(nodes, "auto", wanted)
    assert (shape.count, shape.cpus, shape.gpus, shape.chunk) == (count, cpus, 0, CPU_CHUNK)
    # Each worker splits its CPUs as a local scan splits a machine of that many cores.
    assert shape.threads == (default_prefetch_workers(cpus),
                             max(1, cpus - default_prefetch_workers(cpus)))


def test_a_large_batch_size_makes_the_chunks_larger():
    assert plan_workers([(4, 0)], "cpu", batch_size=40).chunk == 40
    assert plan_workers([(4, 0)], "cpu", batch_size=2).chunk == CPU_CHUNK


@pytest.mark.parametrize("nodes, device, wanted, message", [
    ([(8, 2)], "auto", 3, "the Ray cluster has 2 GPU"),
    ([(2, 0)], "cpu", 3, "the Ray cluster has 2 CPU"),
    ([(8, 0)], "cuda", None, "the Ray cluster has no GPU"),
    ([(8, 2)], "cuda:1", None, "each worker has one GPU of its own"),
    ([(0, 0)], "auto", None, "no CPU"),
])
def test_what_does_not_fit_is_a_usage_error(nodes, device, wanted, message):
    with pytest.raises(ValueError, match=message):
        plan_workers(nodes, device, wanted)


# ---------------------------------------------------------------- what a worker sends back


def _job(path, sha256=None, job_id=1):
    from inference.types import Job

    return Job(job_id, str(path), sha256=sha256)


def test_a_file_the_worker_cannot_see_but_this_machine_can_stops_the_run(tmp_path):
    from library.distributed import ChunkResult, DistributedError, checked_outputs

    here = tmp_path / "a.png"
    here.write_bytes(b"png")
    with pytest.raises(DistributedError, match=r"worker on node-7 cannot see .*a\.png.*"
                                               r"same paths"):
        list(checked_outputs(ChunkResult([], [_job(here)]), "node-7"))


def test_a_file_gone_everywhere_is_an_unreadable_file_as_locally(tmp_path):
    from inference.types import DecodeFailure
    from library.distributed import ChunkResult, checked_outputs

    gone = _job(tmp_path / "gone.png")
    [(job, output)] = checked_outputs(ChunkResult([], [gone]), "node-7")
    assert job is gone and isinstance(output, DecodeFailure)
    assert output.message.endswith("No such file or directory")


def test_other_bytes_on_the_worker_stop_the_run_a_replaced_file_goes_through(tmp_path):
    import hashlib

    from inference.types import ContentChanged
    from library.distributed import ChunkResult, DistributedError, checked_outputs

    path = tmp_path / "a.png"
    path.write_bytes(b"the picture that was indexed")
    indexed = hashlib.sha256(path.read_bytes()).hexdigest()
    job = _job(path, indexed)
    # The worker says the file holds something else, but this machine still reads the
    # indexed picture there: the worker's mount shows another file.
    with pytest.raises(DistributedError, match="reads other bytes"):
        list(checked_outputs(ChunkResult([(job, ContentChanged(job, "f" * 64))], []), "n"))
    # Replaced for everyone: the runner re-indexes it, as in a local scan.
    path.write_bytes(b"a new picture")
    changed = ContentChanged(job, hashlib.sha256(b"a new picture").hexdigest())
    assert list(checked_outputs(ChunkResult([(job, changed)], []), "n")) == [(job, changed)]
