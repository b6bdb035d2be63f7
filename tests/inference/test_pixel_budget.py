"""The process-wide pixel budget bounds what is being decoded at once — counted, not guessed
from RSS (the memory itself is measured in benchmarks/bench_decode_memory.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from inference.decoding import PIXEL_BUDGET, PixelBudget


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll a condition another thread will make true (fails the test on timeout)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


class Holder(threading.Thread):
    """Reserves `pixels` and holds them until released."""

    def __init__(self, budget: PixelBudget, pixels: int, entered: list[str], name: str):
        super().__init__(daemon=True)
        self.budget, self.pixels, self.entered, self.label = budget, pixels, entered, name
        self.release = threading.Event()

    def run(self) -> None:
        with self.budget.reserve(self.pixels):
            self.entered.append(self.label)
            self.release.wait(10)


def test_a_reservation_waits_until_its_pixels_fit():
    budget, entered = PixelBudget(100), []
    a, b = Holder(budget, 60, entered, "a"), Holder(budget, 60, entered, "b")
    a.start()
    wait_until(lambda: entered == ["a"])
    b.start()
    wait_until(lambda: len(budget._waiting) == 1)  # b is queued, not inside
    assert entered == ["a"] and budget.in_use == 60
    a.release.set()
    wait_until(lambda: entered == ["a", "b"])
    b.release.set()
    a.join(5), b.join(5)
    assert budget.peak == 60 and budget.in_use == 0 and budget.reservations == 2


def test_first_come_first_served_so_a_large_picture_is_not_starved():
    budget, entered = PixelBudget(100), []
    a = Holder(budget, 60, entered, "a")
    big, small = Holder(budget, 90, entered, "big"), Holder(budget, 10, entered, "small")
    a.start()
    wait_until(lambda: entered == ["a"])
    big.start()
    wait_until(lambda: len(budget._waiting) == 1)
    small.start()  # would fit beside a (70 <= 100), but big is first in line
    wait_until(lambda: len(budget._waiting) == 2)
    assert entered == ["a"]
    a.release.set()
    wait_until(lambda: entered == ["a", "big", "small"])  # in arrival order; 90 + 10 fit
    for holder in (big, small):
        holder.release.set()
        holder.join(5)
    assert budget.peak == 100


def test_a_picture_larger_than_the_whole_budget_decodes_alone():
    budget, entered = PixelBudget(10), []
    giant, tiny = Holder(budget, 50, entered, "giant"), Holder(budget, 1, entered, "tiny")
    giant.start()
    wait_until(lambda: entered == ["giant"])  # not refused, not blocked for ever
    tiny.start()
    wait_until(lambda: len(budget._waiting) == 1)
    giant.release.set()
    wait_until(lambda: entered == ["giant", "tiny"])
    tiny.release.set()
    giant.join(5), tiny.join(5)
    assert budget.peak == 50


@pytest.fixture
def small_budget():
    """The process-wide budget cut to one 256x256 picture at a time, counters reset."""
    limit = PIXEL_BUDGET.limit
    PIXEL_BUDGET.set_limit(100_000)
    PIXEL_BUDGET.reset_counters()
    yield PIXEL_BUDGET
    PIXEL_BUDGET.set_limit(limit)


def test_indexing_and_analysis_share_one_budget(tmp_path, small_budget):
    """Two indexing threads and the analysis prefetch threads decode at the same time; every
    decode of either goes through the one budget, which never holds more than its limit."""
    from db.engine import open_library, session_factory
    from inference.pipeline import Job, Pipeline
    from inference.testing import write_images
    from library.scan import scan_folders

    to_index = write_images(tmp_path / "index", 6, size=(256, 256))
    to_analyse = write_images(tmp_path / "analyse", 6, size=(256, 256), seed=50)
    engine = open_library(tmp_path / "lib.sqlite3")
    pipeline = Pipeline(tmp_path / "models", analysers=["nsfw-default"], device="cpu",
                        prefetch_workers=2)
    pipeline.load()
    errors: list[BaseException] = []

    def index() -> None:
        try:
            summary = scan_folders(session_factory(engine), [tmp_path / "index"], None,
                                   workers=2, executor="thread")
            assert summary.indexed == len(to_index)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    indexer = threading.Thread(target=index)
    indexer.start()
    outputs = list(pipeline.run([Job(i, str(p)) for i, p in enumerate(to_analyse)]))
    indexer.join(60)
    engine.dispose()
    assert not errors and len(outputs) == len(to_analyse)
    assert small_budget.reservations == len(to_index) + len(to_analyse)
    assert small_budget.peak <= small_budget.limit
    assert small_budget.in_use == 0


def test_full_size_pixels_are_allocated_where_freeing_returns_them():
    """Pillow's picture blocks are larger than glibc's highest dynamic mmap threshold (32 MB),
    so a freed full-size decode goes back to the system instead of staying in the decoding
    thread's malloc arena (which took a scan of giants from one decode's memory to 2.3x it)."""
    import os

    from PIL import Image

    import inference.decoding  # noqa: F401 - sets the block size on import

    if "PILLOW_BLOCK_SIZE" in os.environ:
        pytest.skip("PILLOW_BLOCK_SIZE is set in this environment and takes precedence")
    assert Image.core.get_block_size() > 32 * 1024 * 1024
