"""ScanBridge announces what the indexer records as each batch is committed — reported by the
indexer itself (LibraryIndexer's `on_recorded`), not found by polling the database for new
ids: changed and moved files (which keep their ids) reach the grid during the scan too."""

from __future__ import annotations

import os

from fixtures_app import make_images
from PIL import Image as PILImage
from sqlalchemy import select

from db.schema import Image
from desktop.workers import ScanBridge
from library import scan as library_scan

FILES = 6
BATCH = 2


def _repaint(paths, shade: int) -> None:
    """New pixels (so new contents) at the same paths, with later modification times."""
    for i, path in enumerate(paths):
        PILImage.new("RGB", (48, 32), (shade, i * 40 % 256, 10)).save(path)
        os.utime(path, ns=(1_800_000_000_000_000_000 + i * 10**9,) * 2)


def test_each_committed_batch_is_announced_during_the_scan(qtbot, library, monkeypatch):
    monkeypatch.setattr(library_scan, "BATCH_SIZE", BATCH)
    folder = library.files / "out"
    paths = make_images(folder, FILES)
    bridge = ScanBridge(library.Session, None)
    announced: list[list[int]] = []
    bridge.images_indexed.connect(announced.append)
    try:
        with qtbot.waitSignal(bridge.scan_finished, timeout=20_000):
            bridge.scan([str(folder)])
        with library.Session() as session:
            ids = sorted(session.scalars(select(Image.id)))
        assert len(ids) == FILES
        assert [len(batch) for batch in announced] == [BATCH] * (FILES // BATCH)
        assert sorted(i for batch in announced for i in batch) == ids

        # Every file rewritten: re-read, recorded under the ids they had.
        announced.clear()
        _repaint(paths, shade=200)
        with qtbot.waitSignal(bridge.scan_finished, timeout=20_000) as finished:
            bridge.scan([str(folder)])
        assert finished.args[0].indexed == FILES
        assert [len(batch) for batch in announced] == [BATCH] * (FILES // BATCH)
        assert sorted(i for batch in announced for i in batch) == ids
    finally:
        assert bridge.stop()
