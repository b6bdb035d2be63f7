"""Results that must not mislead: a folder given twice (or with its own sub-folder) counted
once, a folder reached through a symlink indexed once under its real path, a file whose name
now holds a folder called broken (not missing), and a file whose writer paused mid-way kept
pending by the watcher instead of flashing "broken: truncated"."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from reliability_support import NSFW_ONLY, counts, gentriage, summary_lines, write_images
from sqlalchemy import select

from db.schema import Folder, Image, ImageStatus
from library.scan import scan_folders


def _scan(home: Path, db: Path, *folders: Path | str) -> dict[str, str]:
    done = gentriage(["scan", *map(str, folders), "--db", str(db), *NSFW_ONLY], home)
    assert done.returncode == 0, done.stderr[-3000:]
    return summary_lines(done.stdout)


def test_a_folder_given_twice_or_with_its_subfolder_is_counted_once(tmp_path):
    root = tmp_path / "out"
    write_images(root, 3)
    write_images(root / "sub", 2, prefix="deep")
    home = tmp_path / "home"
    twice = _scan(home, tmp_path / "a.sqlite3", root, root, f"{root}/", root / ".." / "out")
    assert twice["indexed"].startswith("5 new")
    assert twice["flagged"].endswith("of 5 analysed image(s) in these folders")
    assert counts(tmp_path / "a.sqlite3")["folders"] == 1
    nested = _scan(home, tmp_path / "b.sqlite3", root, root / "sub")
    assert nested["indexed"].startswith("5 new")
    assert nested["flagged"].endswith("of 5 analysed image(s) in these folders")
    assert counts(tmp_path / "b.sqlite3")["images"] == 5


def test_a_folder_reached_through_a_symlink_is_the_same_folder(tmp_path):
    real = tmp_path / "real"
    write_images(real, 4)
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    db, home = tmp_path / "lib.sqlite3", tmp_path / "home"
    first = _scan(home, db, link)
    assert first["indexed"].startswith("4 new")
    again = _scan(home, db, real)
    assert again["indexed"].startswith("0 new or changed, 4 unchanged")
    assert counts(db)["images"] == 4 and counts(db)["folders"] == 1
    import sqlite3

    with sqlite3.connect(db) as conn:
        (folder,) = conn.execute("SELECT path FROM folders").fetchone()
        paths = [row[0] for row in conn.execute("SELECT path FROM images")]
    assert folder == str(real.resolve())
    assert all(p.startswith(str(real.resolve()) + os.sep) for p in paths)


def test_a_file_replaced_by_a_folder_is_broken_not_missing(tmp_path, library):
    _, sessions, _ = library
    folder = tmp_path / "pics"
    victim, *_ = write_images(folder, 3)
    scan_folders(sessions, [folder], None, workers=1)
    victim.unlink()
    victim.mkdir()  # a folder now has the picture's name
    summary = scan_folders(sessions, [folder], None, workers=1)
    with sessions() as session:
        row = session.scalar(select(Image).where(Image.path == str(victim)))
    assert row is not None and row.status == ImageStatus.BROKEN.value
    assert "not a regular file" in (row.error or "")
    assert (summary.broken, summary.missing) == (1, 0)


def test_the_watcher_keeps_a_paused_writers_file_pending_not_broken(tmp_path, library,
                                                                   monkeypatch):
    """A generator writes half a PNG and pauses (here: until the test has seen the watcher
    retry more often than its retry count, which used to record it broken). The file is
    never recorded broken; once the writer finishes, it is indexed ok."""
    import library.scan as scan_module
    from library.watch import FolderWatcher

    _, sessions, _ = library
    folder = tmp_path / "pics"
    folder.mkdir()
    data = (write_images(tmp_path / "staging", 1, size=64)[0]).read_bytes()
    target = folder / "slow.png"
    attempts = threading.Semaphore(0)
    real_ingest = scan_module.ingest_many

    def counted(paths, thumbnails=None, pictures=None):
        results = real_ingest(paths, thumbnails, pictures)
        for _ in paths:
            attempts.release()
        return results

    monkeypatch.setattr(scan_module, "ingest_many", counted)
    indexed: list[int] = []
    watcher = FolderWatcher(sessions, None, [folder], on_indexed=indexed.extend,
                            stability_interval=0.05, read_retries=2, workers=1)
    with watcher:
        assert watcher.wait_idle(30)
        with open(target, "wb") as out:
            out.write(data[: len(data) // 2])
            out.flush()
            # More failed reads than read_retries: the old watcher gave up and recorded it.
            for _ in range(watcher.read_retries + 3):
                assert attempts.acquire(timeout=30), "the watcher stopped re-reading the file"
            with sessions() as session:
                rows = list(session.scalars(select(Image)))
            assert rows == [], [(r.name, r.status, r.error) for r in rows]
            out.write(data[len(data) // 2:])
        assert watcher.wait_idle(60)
    with sessions() as session:
        (row,) = session.scalars(select(Image))
        assert (row.name, row.status, row.size) == ("slow.png", "ok", len(data))
        assert session.scalar(select(Folder.path)) == str(folder.resolve())


@pytest.mark.parametrize("given", ["link", "real"])
def test_the_watcher_watches_a_linked_folder_under_its_real_path(tmp_path, library, given):
    from library.watch import FolderWatcher

    _, sessions, _ = library
    real = tmp_path / "real"
    write_images(real, 2)
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    with FolderWatcher(sessions, None, [link if given == "link" else real],
                       stability_interval=0.05, workers=1) as watcher:
        assert watcher.wait_idle(30)
        assert watcher.folders == [str(real.resolve())]
    with sessions() as session:
        paths = list(session.scalars(select(Image.path)))
    assert sorted(paths) == sorted(str(p.resolve()) for p in real.iterdir())
