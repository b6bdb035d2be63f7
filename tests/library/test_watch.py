"""library.watch: live indexing — complete files only, once, batched, moves keep reviews.

Every wait is on an Event set by a watcher callback (or the watcher's own wait_idle), with a
generous timeout; the stability interval is short so the tests stay fast.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections import Counter

import pytest
from sample_images import image_bytes, write_image
from sqlalchemy import select

from db import store
from db.schema import Image
from library.watch import FolderWatcher

INTERVAL = 0.2
TIMEOUT = 30.0


class Recorder:
    """Collects callback arguments (called on the watcher thread) and lets tests await them."""

    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.indexed: list[list[int]] = []
        self.missing: list[list[int]] = []
        self.moved: list[list[int]] = []
        self.lost: list[str] = []
        self.errors: list[str] = []
        self.regrouped: list[list[int]] = []

    def _add(self, bucket: list, value) -> None:
        with self.lock:
            bucket.append(value)
            self.lock.notify_all()

    def callbacks(self) -> dict:
        return dict(on_indexed=lambda ids: self._add(self.indexed, ids),
                    on_missing=lambda ids: self._add(self.missing, ids),
                    on_moved=lambda ids: self._add(self.moved, ids),
                    on_folder_lost=lambda path: self._add(self.lost, path),
                    on_error=lambda message: self._add(self.errors, message),
                    on_regrouped=lambda ids: self._add(self.regrouped, ids))

    def wait_for(self, condition, timeout: float = TIMEOUT) -> None:
        with self.lock:
            assert self.lock.wait_for(condition, timeout), "the watcher did not report in time"

    @staticmethod
    def flat(batches: list[list[int]]) -> Counter:
        return Counter(i for batch in batches for i in batch)


@pytest.fixture
def pics(tmp_path):
    folder = tmp_path / "pics"
    folder.mkdir()
    return folder


@pytest.fixture
def recorder():
    return Recorder()


@pytest.fixture
def make_watcher(library_sessions, thumbnail_cache, recorder):
    started: list[FolderWatcher] = []

    def make(*folders, **kwargs) -> FolderWatcher:
        kwargs.setdefault("stability_interval", INTERVAL)
        kwargs.setdefault("health_interval", INTERVAL)
        kwargs.setdefault("workers", 1)
        watcher = FolderWatcher(library_sessions, thumbnail_cache, [str(f) for f in folders],
                                **recorder.callbacks(), **kwargs)
        watcher.start()
        assert watcher.wait_idle(TIMEOUT)  # watching, and the catch-up scan is done
        started.append(watcher)
        return watcher

    yield make
    for watcher in started:
        watcher.stop()


def row(sessions, path) -> Image | None:
    with sessions() as session:
        return session.scalar(select(Image).where(Image.path == str(path)))


def all_rows(sessions) -> list[Image]:
    with sessions() as session:
        return list(session.scalars(select(Image)))


def test_a_file_copied_in_appears_once(make_watcher, library_sessions, recorder, pics,
                                       tmp_path):
    watcher = make_watcher(pics)
    source = write_image(tmp_path / "outside.png", size=(256, 256), seed="copied")
    shutil.copy(source, pics / "copied.png")
    recorder.wait_for(lambda: recorder.indexed)
    assert watcher.wait_idle(TIMEOUT)  # every event of the copy handled

    image = row(library_sessions, pics / "copied.png")
    assert image.status == "ok" and image.has_thumbnail
    assert recorder.flat(recorder.indexed) == {image.id: 1}
    assert len(all_rows(library_sessions)) == 1


@pytest.mark.parametrize("temp_name", ["copied.png.tmp", "copied.png.part", ".copied.png"])
def test_write_then_rename_appears_once_with_its_final_name(make_watcher, library_sessions,
                                                            recorder, pics, temp_name):
    watcher = make_watcher(pics)
    temp = pics / temp_name
    temp.write_bytes(image_bytes("PNG", size=(128, 128), seed=temp_name))
    os.rename(temp, pics / "final.png")
    recorder.wait_for(lambda: recorder.indexed)
    assert watcher.wait_idle(TIMEOUT)

    rows = all_rows(library_sessions)
    assert [(r.name, r.status) for r in rows] == [("final.png", "ok")]
    assert recorder.flat(recorder.indexed) == {rows[0].id: 1}


def test_a_slowly_written_file_is_not_indexed_half_written(make_watcher, library_sessions,
                                                           recorder, pics, monkeypatch):
    broken_records = []
    real_record_broken = store.record_broken
    monkeypatch.setattr(store, "record_broken", lambda *a, **k: (
        broken_records.append(a[1]), real_record_broken(*a, **k))[1])
    watcher = make_watcher(pics)
    data = image_bytes("PNG", size=(400, 300), seed="slow")
    chunks = [data[i:i + len(data) // 8 + 1] for i in range(0, len(data), len(data) // 8 + 1)]
    target = pics / "slow.png"

    def generator_writes_slowly():
        with open(target, "wb") as out:
            for n, chunk in enumerate(chunks):
                out.write(chunk)
                out.flush()
                # Mostly short gaps, and once a pause longer than the stability interval:
                # the watcher sees a stable, unreadable file and must wait, not record it.
                time.sleep(INTERVAL * 1.5 if n == 3 else INTERVAL / 4)

    writer = threading.Thread(target=generator_writes_slowly)
    writer.start()
    recorder.wait_for(lambda: recorder.indexed)
    writer.join()
    assert watcher.wait_idle(TIMEOUT)

    image = row(library_sessions, target)
    assert image.status == "ok" and image.size == len(data)
    assert broken_records == []
    assert recorder.flat(recorder.indexed) == {image.id: 1}


def test_a_file_that_stays_unreadable_is_broken_after_the_retries(make_watcher,
                                                                  library_sessions, recorder,
                                                                  pics):
    # A file written just now stays pending while a writer might still be busy with it
    # (write_pause_tolerance); a short tolerance lets the test see it recorded broken.
    make_watcher(pics, read_retries=1, stability_interval=0.05, write_pause_tolerance=0.2)
    (pics / "notes.png").write_text("not an image at all")
    recorder.wait_for(lambda: recorder.indexed)
    image = row(library_sessions, pics / "notes.png")
    assert image.status == "broken" and "not a supported image" in image.error


def test_200_files_dropped_at_once_all_appear_in_a_few_batches(make_watcher, library_sessions,
                                                               recorder, pics, tmp_path):
    make_watcher(pics)
    staging = tmp_path / "staging"
    for i in range(200):
        write_image(staging / f"{i:03d}.png", size=(16, 16), seed=i)
    for i in range(200):
        shutil.copy(staging / f"{i:03d}.png", pics / f"{i:03d}.png")
    recorder.wait_for(lambda: len(recorder.flat(recorder.indexed)) >= 200)

    rows = all_rows(library_sessions)
    assert len(rows) == 200 and all(r.status == "ok" for r in rows)
    assert set(recorder.flat(recorder.indexed).values()) == {1}
    assert len(recorder.indexed) <= 20  # debounced and batched, not one call per file


def test_a_deleted_file_becomes_missing(make_watcher, library_sessions, recorder, pics):
    path = write_image(pics / "a.png", seed="a")
    make_watcher(pics)  # the catch-up scan indexes it
    image_id = row(library_sessions, path).id
    path.unlink()
    recorder.wait_for(lambda: recorder.missing)
    assert recorder.missing == [[image_id]]
    assert row(library_sessions, path).status == "missing"


def test_a_moved_file_keeps_its_review(make_watcher, library_sessions, recorder, pics):
    path = write_image(pics / "a.png", seed="a")
    make_watcher(pics)
    with library_sessions() as session, session.begin():
        session.scalar(select(Image).where(Image.path == str(path))).content.decision = "accepted"
    image_id = row(library_sessions, path).id
    (pics / "kept").mkdir()
    os.rename(path, pics / "kept" / "renamed.png")
    recorder.wait_for(lambda: recorder.moved)

    assert recorder.moved == [[image_id]]
    moved = row(library_sessions, pics / "kept" / "renamed.png")
    assert moved.id == image_id and moved.status == "ok"
    with library_sessions() as session:
        assert session.get(Image, image_id).content.decision == "accepted"
    assert len(all_rows(library_sessions)) == 1


def test_a_moved_folder_keeps_its_files_reviews(make_watcher, library_sessions, recorder,
                                                pics):
    write_image(pics / "day1" / "a.png", seed="a")
    write_image(pics / "day1" / "b.png", seed="b")
    make_watcher(pics)
    ids = {r.id for r in all_rows(library_sessions)}
    os.rename(pics / "day1", pics / "archive")
    recorder.wait_for(lambda: set(recorder.flat(recorder.moved)) == ids)
    assert sorted(r.path for r in all_rows(library_sessions)) == [
        str(pics / "archive" / "a.png"), str(pics / "archive" / "b.png")]


def test_folders_can_be_added_and_removed_while_running(make_watcher, library_sessions,
                                                        recorder, pics, tmp_path):
    second = tmp_path / "second"
    write_image(second / "existing.png", seed="existing")
    watcher = make_watcher(pics)
    watcher.add_folder(second)
    recorder.wait_for(lambda: recorder.indexed)  # the new folder's catch-up scan
    assert row(library_sessions, second / "existing.png").status == "ok"

    watcher.remove_folder(second)
    assert watcher.wait_idle(TIMEOUT)
    write_image(second / "ignored.png", seed="ignored")
    write_image(pics / "sentinel.png", seed="sentinel")
    recorder.wait_for(lambda: row(library_sessions, pics / "sentinel.png") is not None)
    assert row(library_sessions, second / "ignored.png") is None
    assert watcher.folders == [str(pics)]


def test_a_vanished_watched_folder_is_reported_then_resumed(make_watcher, library_sessions,
                                                            recorder, pics, tmp_path):
    drive = tmp_path / "drive"
    write_image(drive / "a.png", seed="a")
    make_watcher(pics, drive)
    shutil.rmtree(drive)
    recorder.wait_for(lambda: recorder.lost)
    assert recorder.lost == [str(drive)]

    write_image(pics / "still.png", seed="still")  # the other folder is still watched
    recorder.wait_for(lambda: row(library_sessions, pics / "still.png") is not None)

    write_image(drive / "b.png", seed="b")  # plugged in again
    recorder.wait_for(lambda: row(library_sessions, drive / "b.png") is not None)
    write_image(drive / "c.png", seed="c")  # and watched again
    recorder.wait_for(lambda: row(library_sessions, drive / "c.png") is not None)


def test_a_folder_missing_at_start_is_reported_not_fatal(make_watcher, recorder, pics,
                                                         tmp_path, library_sessions):
    make_watcher(pics, tmp_path / "not-plugged-in")
    assert recorder.lost == [str(tmp_path / "not-plugged-in")]
    write_image(pics / "a.png", seed="a")
    recorder.wait_for(lambda: recorder.indexed)


def test_a_large_folder_move_is_recorded_in_short_transactions(make_watcher, library_sessions,
                                                               library_engine, recorder, pics,
                                                               monkeypatch):
    """Thousands of files renamed at once must not hold the write lock past the app's busy
    timeout: the moves are committed BATCH_SIZE at a time."""
    from sqlalchemy import event

    import library.watch

    for name in "abcde":
        write_image(pics / "day1" / f"{name}.png", seed=name)
    make_watcher(pics)
    ids = {r.id for r in all_rows(library_sessions)}
    monkeypatch.setattr(library.watch, "BATCH_SIZE", 2)
    commits: list[int] = []
    event.listen(library_engine, "commit", lambda _conn: commits.append(1))
    os.rename(pics / "day1", pics / "archive")
    recorder.wait_for(lambda: set(recorder.flat(recorder.moved)) == ids)

    assert len(commits) >= 3  # 5 moves, 2 per transaction
    assert sorted(r.path for r in all_rows(library_sessions)) == [
        str(pics / "archive" / f"{name}.png") for name in "abcde"]


def _dup_groups(sessions) -> dict[str, int | None]:
    """file name -> its picture's near-duplicate group."""
    from db.schema import Content

    with sessions() as session:
        return dict(session.execute(select(Image.name, Content.dup_group)
                                    .join(Content, Content.id == Image.content_id)).all())


def test_files_the_watcher_records_join_and_leave_duplicate_groups(
        make_watcher, library_sessions, recorder, pics, tmp_path):
    """A re-encoded copy dropped in joins its original's group without a scan; deleting it
    leaves the original alone again. Regrouping waits for `regroup_interval`, not per batch."""
    from family_images import encode, structured

    picture = structured(7)
    (pics / "original.png").write_bytes(encode(picture, "PNG"))
    (pics / "other.png").write_bytes(encode(structured(8), "PNG"))
    make_watcher(pics, regroup_interval=INTERVAL)  # the catch-up scan indexes both
    assert _dup_groups(library_sessions) == {"original.png": None, "other.png": None}

    (tmp_path / "copy.jpg").write_bytes(encode(picture, "JPEG", quality=70))
    shutil.move(tmp_path / "copy.jpg", pics / "copy.jpg")
    recorder.wait_for(lambda: recorder.regrouped)
    groups = _dup_groups(library_sessions)
    assert groups["original.png"] is not None
    assert groups["copy.jpg"] == groups["original.png"] and groups["other.png"] is None
    with library_sessions() as session:
        copy_content = row(library_sessions, pics / "copy.jpg").content_id
        original_content = session.scalar(select(Image.content_id)
                                          .where(Image.name == "original.png"))
    assert sorted(recorder.flat(recorder.regrouped)) == sorted([copy_content,
                                                               original_content])

    (pics / "copy.jpg").unlink()
    recorder.wait_for(lambda: len(recorder.regrouped) == 2)
    assert _dup_groups(library_sessions)["original.png"] is None
    assert recorder.errors == []
