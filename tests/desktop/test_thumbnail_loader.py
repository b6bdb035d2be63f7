"""ThumbnailLoader: off-thread loading through the disk cache, batching, waterfall order."""

import hashlib
import threading

import pytest
from grid_test_helpers import checkerboard
from PIL import Image as PILImage
from PySide6.QtWidgets import QApplication

from desktop.grid.thumbnail_loader import ThumbnailLoader
from library.thumbnails import ThumbnailCache


def _source(tmp_path, seed: int, size: int = 800) -> tuple[str, str]:
    path = tmp_path / f"src_{seed}.png"
    checkerboard(size, seed=seed).save(path)
    return hashlib.sha256(path.read_bytes()).hexdigest(), str(path)


class GatedStore(ThumbnailCache):
    """A real cache whose thumbnail making waits for a gate and records the order."""

    def __init__(self, root):
        super().__init__(root)
        self.gate = threading.Event()
        self.made: list[str] = []

    def make_from(self, image):
        assert self.gate.wait(10), "test gate never opened"
        thumb = super().make_from(image)
        self.made.append(image.filename)
        return thumb


@pytest.fixture
def gated(qtbot, tmp_path):
    store = GatedStore(tmp_path / "thumbs")
    loader = ThumbnailLoader(store, threads=1)
    yield store, loader
    store.gate.set()
    loader.shutdown()


def test_makes_saves_and_remembers_a_thumbnail(qtbot, tmp_path, loader, thumbnail_store):
    sha, path = _source(tmp_path, 1)
    assert loader.get(sha) is None
    with qtbot.waitSignal(loader.thumbnail_ready, timeout=10_000) as ready:
        loader.request(sha, path)
    assert ready.args == [sha]
    image = loader.get(sha)
    assert image is not None and max(image.width(), image.height()) == 512
    assert thumbnail_store.has(sha)
    with PILImage.open(thumbnail_store.path_for(sha)) as saved:
        assert saved.size == (512, 512)


def test_reads_the_disk_cache_without_the_source(qtbot, tmp_path, loader, thumbnail_store):
    sha, path = _source(tmp_path, 2)
    with PILImage.open(path) as source:
        thumbnail_store.save(sha, thumbnail_store.make_from(source))
    (tmp_path / "src_2.png").unlink()
    with qtbot.waitSignal(loader.thumbnail_ready, timeout=10_000):
        loader.request(sha, path)
    assert loader.get(sha).width() == 512


def test_failure_is_reported_once_and_not_retried(qtbot, tmp_path, loader):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    sha = "ab" * 32
    with qtbot.waitSignal(loader.thumbnail_failed, timeout=10_000) as failed:
        loader.request(sha, str(broken))
    assert failed.args[0] == sha and "broken.png" in failed.args[1]
    assert loader.failure(sha)
    loader.request(sha, str(broken))
    assert loader.pending_count() == 0
    missing_sha = "cd" * 32
    with qtbot.waitSignal(loader.thumbnail_failed, timeout=10_000) as failed:
        loader.request(missing_sha, str(tmp_path / "gone.png"))
    assert "not found" in failed.args[1]


def test_results_arriving_together_are_announced_together(qtbot, tmp_path, thumbnail_store):
    loader = ThumbnailLoader(thumbnail_store, threads=3)
    try:
        wanted = [_source(tmp_path, seed, size=300) for seed in range(3)]
        batches, singles = [], []
        loader.thumbnails_ready.connect(batches.append)
        loader.thumbnail_ready.connect(singles.append)
        for sha, path in wanted:
            loader.request(sha, path)
        # One pass of the event loop runs the (0 ms) dispatch: all three loads start. Then
        # the GUI thread blocks until they finish, so its first flush (a 30 ms timer it can
        # only run afterwards) finds all three, however slow the machine is.
        QApplication.processEvents()
        assert loader.wait_for_done(10_000)
        qtbot.waitUntil(lambda: bool(batches), timeout=10_000)
        assert sorted(batches[0]) == sorted(sha for sha, _ in wanted) == sorted(singles)
    finally:
        loader.shutdown()


def test_memory_cache_is_bounded(qtbot, tmp_path, thumbnail_store):
    loader = ThumbnailLoader(thumbnail_store, max_count=2, threads=1)
    try:
        shas = []
        for seed in range(3):
            sha, path = _source(tmp_path, seed, size=300)
            with qtbot.waitSignal(loader.thumbnail_ready, timeout=10_000):
                loader.request(sha, path)
            shas.append(sha)
        assert loader.get(shas[0]) is None
        assert loader.get(shas[1]) is not None and loader.get(shas[2]) is not None
        assert loader.memory_bytes() == sum(loader.get(s).sizeInBytes() for s in shas[1:])
    finally:
        loader.shutdown()


def test_scrolled_past_requests_are_dropped_and_visible_go_first(qtbot, tmp_path, gated):
    store, loader = gated
    sources = [_source(tmp_path, seed, size=300) for seed in range(5)]
    first, passed, ahead, scrolled, visible = sources
    loader.request(*first)  # starts on the next event-loop turn and waits at the gate
    qtbot.waitUntil(lambda: first[0] in loader._in_flight, timeout=5_000)
    for sha, path in sources[1:]:
        loader.request(sha, path)
    loader.set_visible([visible[0]], keep=[ahead[0]])  # the user scrolled on
    assert loader.pending_count() == 3  # running + visible + ahead
    store.gate.set()
    qtbot.waitUntil(lambda: loader.get(ahead[0]) is not None, timeout=10_000)
    assert store.made == [first[1], visible[1], ahead[1]]
    assert loader.get(passed[0]) is None and loader.get(scrolled[0]) is None
    assert loader.pending_count() == 0


def test_is_pending_follows_a_request_until_it_is_delivered_or_dropped(qtbot, tmp_path, gated):
    store, loader = gated
    running, queued, dropped = (_source(tmp_path, seed, size=300) for seed in range(3))
    loader.request(*running)
    qtbot.waitUntil(lambda: running[0] in loader._in_flight, timeout=5_000)
    for sha, path in (queued, dropped):
        loader.request(sha, path)
    assert all(loader.is_pending(sha) for sha, _ in (running, queued, dropped))
    loader.set_visible([queued[0]])  # `dropped` was scrolled past
    assert not loader.is_pending(dropped[0])
    assert loader.is_pending(running[0]) and loader.is_pending(queued[0])
    store.gate.set()
    qtbot.waitUntil(lambda: loader.get(queued[0]) is not None, timeout=10_000)
    assert not loader.is_pending(running[0]) and not loader.is_pending(queued[0])


@pytest.mark.parametrize("cores, threads", [(1, 1), (2, 1), (3, 2), (16, 4), (None, 1)])
def test_decoding_leaves_a_core_to_the_gui_thread(monkeypatch, cores, threads):
    from desktop.grid import thumbnail_loader

    monkeypatch.setattr(thumbnail_loader.os, "cpu_count", lambda: cores)
    assert thumbnail_loader.default_thread_count() == threads
