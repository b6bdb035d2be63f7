"""library.scan: indexing folders, unchanged rescans without reads, moves, missing files and
every kind of bad file."""

from __future__ import annotations

import os
import shutil

import pytest
from PIL import Image as PILImage
from sample_images import A1111_PARAMETERS, SUFFIX_FOR, format_supported, sha256_of, write_image
from sqlalchemy import select

from db import store
from db.schema import Content, Generation, Image
from library import ingest as ingest_module
from library import scan as scan_module
from library.scan import forget_folder, scan_folders
from library.thumbnails import SaveOutcome, ThumbnailCache

needs_non_root = pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                               reason="root reads files and folders regardless of permissions")


@pytest.fixture
def pics(tmp_path):
    folder = tmp_path / "pics"
    folder.mkdir()
    return folder


def scan(sessions, thumbs, *folders, **kwargs):
    kwargs.setdefault("workers", 1)  # inline: deterministic and monkeypatch-friendly
    return scan_folders(sessions, [str(f) for f in folders], thumbs, **kwargs)


def image_at(sessions, path) -> Image | None:
    with sessions() as session:
        return session.scalar(select(Image).where(Image.path == str(path)))


def set_decision(sessions, path, decision: str) -> None:
    with sessions() as session, session.begin():
        session.scalar(select(Image).where(Image.path == str(path))).content.decision = decision


def decision_of(sessions, image_id: int) -> str:
    with sessions() as session:
        return session.get(Image, image_id).content.decision


def test_every_format_is_indexed_with_thumbnail_metadata_and_format_from_content(
        library_sessions, thumbnail_cache, pics):
    expected = {}
    for fmt, suffix in SUFFIX_FOR.items():
        if format_supported(fmt):
            expected[write_image(pics / "sub" / f"img{suffix}", fmt, seed=fmt)] = fmt
    disguised = write_image(pics / "really_a_png.jpg", "PNG", seed="disguised",
                            parameters=A1111_PARAMETERS)
    summary = scan(library_sessions, thumbnail_cache, pics)

    assert summary.errors == []
    assert (summary.seen, summary.indexed, summary.broken) == (len(expected) + 1,
                                                               len(expected) + 1, 0)
    for path, fmt in expected.items():
        image = image_at(library_sessions, path)
        assert image.status == "ok" and image.has_thumbnail
        with library_sessions() as session:
            content = session.get(Content, image.content_id)
            assert (content.format, content.width, content.height) == (fmt, 64, 48)
            assert content.sha256 == sha256_of(path)
        assert thumbnail_cache.has(content.sha256)
    image = image_at(library_sessions, disguised)
    with library_sessions() as session:
        assert session.get(Content, image.content_id).format == "PNG"
        generation = session.get(Generation, image.content_id)
        assert generation.generator == "a1111" and generation.seed == str(2**64 - 1)


def test_bad_files_are_broken_with_a_clear_message_and_the_scan_goes_on(
        library_sessions, thumbnail_cache, pics):
    (pics / "notes.png").write_text("a text file named .png")
    (pics / "empty.png").write_bytes(b"")
    good = write_image(pics / "good.png", seed="good", size=(300, 300))
    (pics / "truncated.png").write_bytes(good.read_bytes()[:500])
    long_name = pics / ("x" * 251 + ".png")
    write_image(long_name, seed="long")
    summary = scan(library_sessions, thumbnail_cache, pics)

    assert (summary.indexed, summary.broken) == (2, 3)
    errors = {p.name: image_at(library_sessions, p).error
              for p in (pics / "notes.png", pics / "empty.png", pics / "truncated.png")}
    assert "not a supported image" in errors["notes.png"]
    assert "empty file" in errors["empty.png"]
    assert "truncated" in errors["truncated.png"]
    assert image_at(library_sessions, long_name).status == "ok"


def test_names_that_are_not_images_are_ignored(library_sessions, thumbnail_cache, pics):
    write_image(pics / "a.png", seed=1)
    (pics / "a.png.tmp").write_bytes((pics / "a.png").read_bytes())
    (pics / "b.png.part").write_bytes(b"half")
    (pics / ".hidden.png").write_bytes((pics / "a.png").read_bytes())
    write_image(pics / ".cache" / "c.png", seed=2)
    (pics / "workflow.json").write_text("{}")
    summary = scan(library_sessions, thumbnail_cache, pics)
    assert (summary.seen, summary.indexed) == (1, 1)


def test_an_unchanged_rescan_reads_no_file(library_sessions, thumbnail_cache, pics,
                                           monkeypatch):
    for i in range(5):
        write_image(pics / f"{i}.png", seed=i)
    (pics / "bad.png").write_text("not an image")
    scan(library_sessions, thumbnail_cache, pics)

    def no_reads(*_args, **_kwargs):
        raise AssertionError("an unchanged file was read")

    monkeypatch.setattr(ingest_module, "_read", no_reads)
    monkeypatch.setattr(scan_module, "ingest_many", no_reads)
    summary = scan(library_sessions, thumbnail_cache, pics)
    assert (summary.seen, summary.unchanged, summary.indexed, summary.broken) == (6, 6, 0, 0)


def test_a_changed_file_is_re_read_and_its_old_thumbnail_removed(library_sessions,
                                                                  thumbnail_cache, pics):
    path = write_image(pics / "a.png", seed="before")
    old_sha = sha256_of(path)
    scan(library_sessions, thumbnail_cache, pics)
    set_decision(library_sessions, path, "accepted")
    write_image(path, seed="after", size=(80, 60))
    summary = scan(library_sessions, thumbnail_cache, pics)

    assert (summary.indexed, summary.unchanged) == (1, 0)
    image = image_at(library_sessions, path)
    with library_sessions() as session:
        assert session.get(Content, image.content_id).sha256 == sha256_of(path)
        old = session.scalar(select(Content).where(Content.sha256 == old_sha))
        assert old.decision == "accepted"  # the old picture keeps its review
    assert thumbnail_cache.has(sha256_of(path)) and not thumbnail_cache.has(old_sha)


def test_a_vanished_file_becomes_missing_and_comes_back_with_its_review(
        library_sessions, thumbnail_cache, pics, tmp_path):
    path = write_image(pics / "a.png", seed="a")
    scan(library_sessions, thumbnail_cache, pics)
    set_decision(library_sessions, path, "rejected")
    image_id = image_at(library_sessions, path).id
    parked = tmp_path / "parked.png"
    shutil.move(path, parked)

    summary = scan(library_sessions, thumbnail_cache, pics)
    assert (summary.missing, summary.missing_ids) == (1, [image_id])
    assert image_at(library_sessions, path).status == "missing"
    assert thumbnail_cache.has(sha256_of(parked))  # kept while the file may return

    shutil.move(parked, path)
    summary = scan(library_sessions, thumbnail_cache, pics)
    assert summary.indexed == 1
    back = image_at(library_sessions, path)
    assert (back.id, back.status) == (image_id, "ok")
    assert decision_of(library_sessions, image_id) == "rejected"


def test_a_moved_or_renamed_file_keeps_its_row_and_review(library_sessions, thumbnail_cache,
                                                          pics, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    path = write_image(pics / "a.png", seed="a")
    scan(library_sessions, thumbnail_cache, pics, other)
    set_decision(library_sessions, path, "accepted")
    image_id = image_at(library_sessions, path).id

    renamed = pics / "deeper" / "renamed.png"
    renamed.parent.mkdir()
    os.rename(path, renamed)
    summary = scan(library_sessions, thumbnail_cache, pics, other)
    assert (summary.moved, summary.missing, summary.indexed) == (1, 1, 0)
    assert image_at(library_sessions, renamed).id == image_id
    assert image_at(library_sessions, path) is None

    across = other / "across.png"
    os.rename(renamed, across)  # into another watched folder
    summary = scan(library_sessions, thumbnail_cache, pics, other)
    assert summary.moved == 1
    moved = image_at(library_sessions, across)
    assert moved.id == image_id and moved.status == "ok"
    assert decision_of(library_sessions, image_id) == "accepted"
    with library_sessions() as session:
        assert moved.folder_id == store.get_folder(session, other).id


def test_a_copy_is_a_second_file_of_the_same_content(library_sessions, thumbnail_cache, pics):
    path = write_image(pics / "a.png", seed="a")
    shutil.copy(path, pics / "copy.png")
    summary = scan(library_sessions, thumbnail_cache, pics)
    assert summary.indexed == 2
    a, b = image_at(library_sessions, path), image_at(library_sessions, pics / "copy.png")
    assert a.content_id == b.content_id and a.id != b.id


def test_symlinked_folders_are_not_followed_so_loops_end(library_sessions, thumbnail_cache,
                                                         pics):
    write_image(pics / "sub" / "a.png", seed="a")
    os.symlink(pics, pics / "sub" / "loop")
    os.symlink(pics / "sub" / "a.png", pics / "link.png")  # a symlinked file is indexed
    os.symlink(pics / "nowhere.png", pics / "dangling.png")
    summary = scan(library_sessions, thumbnail_cache, pics)
    assert (summary.seen, summary.indexed, summary.broken) == (2, 2, 0)


def test_a_non_utf8_name_is_broken_with_a_message_and_stays_unchanged(library_sessions,
                                                                      thumbnail_cache, pics):
    raw = os.path.join(os.fsencode(pics), b"caf\xe9.png")
    try:
        with open(raw, "wb") as f:
            f.write((write_image(pics / "ok.png", seed=1)).read_bytes())
    except OSError:
        pytest.skip("this file system refuses non-UTF-8 names")
    summary = scan(library_sessions, thumbnail_cache, pics)
    assert (summary.indexed, summary.broken) == (1, 1)
    broken = image_at(library_sessions, str(pics / "caf\\xe9.png"))
    assert broken.status == "broken" and "UTF-8" in broken.error
    again = scan(library_sessions, thumbnail_cache, pics)
    assert (again.unchanged, again.broken) == (2, 0)


def test_decompression_bombs_are_broken_and_the_scan_goes_on(library_sessions,
                                                             thumbnail_cache, pics,
                                                             monkeypatch):
    write_image(pics / "big.png", size=(200, 200), seed="big")
    write_image(pics / "small.png", size=(10, 10), seed="small")
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 5000)
    summary = scan(library_sessions, thumbnail_cache, pics)
    assert (summary.indexed, summary.broken) == (1, 1)
    assert "too large to decode safely" in image_at(library_sessions, pics / "big.png").error


def test_unreadable_files_are_broken_with_a_reason(library_sessions, thumbnail_cache, pics,
                                                   monkeypatch):
    write_image(pics / "locked.png", seed=1)
    real_read = ingest_module._read

    def refuse(path):
        if path.endswith("locked.png"):
            raise PermissionError(13, "Permission denied", path)
        return real_read(path)

    monkeypatch.setattr(ingest_module, "_read", refuse)
    summary = scan(library_sessions, thumbnail_cache, pics)
    assert summary.broken == 1
    assert "permission denied" in image_at(library_sessions, pics / "locked.png").error


@needs_non_root
def test_unreadable_files_and_folders_for_real(library_sessions, thumbnail_cache, pics):
    locked = write_image(pics / "locked.png", seed=1)
    write_image(pics / "closed" / "a.png", seed=2)
    scan(library_sessions, thumbnail_cache, pics)
    os.chmod(locked, 0)
    os.utime(locked, ns=(1, 1))
    os.chmod(pics / "closed", 0)
    try:
        summary = scan(library_sessions, thumbnail_cache, pics)
    finally:
        os.chmod(pics / "closed", 0o755)
    assert summary.broken == 1 and summary.missing == 0  # the closed folder is not "gone"
    assert any("cannot list folder" in e for e in summary.errors)


def test_a_file_deleted_between_listing_and_reading_is_not_broken(library_sessions,
                                                                  thumbnail_cache, pics,
                                                                  monkeypatch):
    keep = write_image(pics / "keep.png", seed=1)
    gone = write_image(pics / "gone.png", seed=2)
    real_read = ingest_module._read

    def delete_first(path):
        if path == str(gone):
            os.unlink(path)
        return real_read(path)

    monkeypatch.setattr(ingest_module, "_read", delete_first)
    summary = scan(library_sessions, thumbnail_cache, pics)
    assert (summary.indexed, summary.broken, summary.missing) == (1, 0, 0)
    assert image_at(library_sessions, gone) is None
    assert image_at(library_sessions, keep).status == "ok"


def test_a_full_disk_for_thumbnails_keeps_indexing_and_says_so(library_sessions,
                                                               thumbnail_cache, pics,
                                                               monkeypatch):
    for i in range(3):
        write_image(pics / f"{i}.png", seed=i)
    monkeypatch.setattr(ThumbnailCache, "save", lambda self, sha, thumb: SaveOutcome(
        False, "cannot write thumbnail: No space left on device"))
    summary = scan(library_sessions, thumbnail_cache, pics)
    assert (summary.indexed, summary.thumbnail_failures) == (3, 3)
    assert summary.errors == [
        "thumbnails not written for 3 image(s): cannot write thumbnail: No space left on device"]
    assert not image_at(library_sessions, pics / "0.png").has_thumbnail


def test_an_unavailable_folder_is_reported_and_its_images_left_alone(library_sessions,
                                                                     thumbnail_cache, pics,
                                                                     tmp_path):
    drive = tmp_path / "drive"
    write_image(drive / "a.png", seed="a")
    scan(library_sessions, thumbnail_cache, pics, drive)
    shutil.rmtree(drive)  # unplugged
    summary = scan(library_sessions, thumbnail_cache, pics, drive)
    assert summary.folders_lost == [str(drive)]
    assert "not available" in summary.errors[0]
    assert image_at(library_sessions, drive / "a.png").status == "ok"


def test_nested_watched_folders_count_each_file_once(library_sessions, thumbnail_cache, pics):
    write_image(pics / "a.png", seed="a")
    write_image(pics / "inner" / "b.png", seed="b")
    scan(library_sessions, thumbnail_cache, pics / "inner")
    summary = scan(library_sessions, thumbnail_cache, pics, pics / "inner")
    assert (summary.seen, summary.indexed, summary.unchanged, summary.missing) == (2, 1, 1, 0)


def test_forget_folder_drops_files_and_thumbnails_but_not_reviews(library_sessions,
                                                                  thumbnail_cache, pics):
    path = write_image(pics / "a.png", seed="a")
    scan(library_sessions, thumbnail_cache, pics)
    set_decision(library_sessions, path, "accepted")
    assert forget_folder(library_sessions, pics, thumbnail_cache)
    assert image_at(library_sessions, path) is None
    assert not thumbnail_cache.has(sha256_of(path))
    assert not forget_folder(library_sessions, pics, thumbnail_cache)

    scan(library_sessions, thumbnail_cache, pics)
    assert decision_of(library_sessions, image_at(library_sessions, path).id) == "accepted"
    assert thumbnail_cache.has(sha256_of(path))


@pytest.mark.parametrize("executor", ["process", "thread"])
def test_parallel_ingest_gives_the_same_library(library_sessions, thumbnail_cache, pics,
                                                executor):
    paths = [write_image(pics / f"{i}.png", seed=i, parameters=A1111_PARAMETERS)
             for i in range(12)]
    (pics / "bad.png").write_text("nope")
    calls = []
    summary = scan(library_sessions, thumbnail_cache, pics, workers=2, executor=executor,
                   progress=lambda done, total: calls.append((done, total)))
    assert (summary.indexed, summary.broken) == (12, 1)
    assert calls[-1] == (13, 13) and len(calls) == 13
    for path in paths:
        image = image_at(library_sessions, path)
        with library_sessions() as session:
            assert session.get(Generation, image.content_id).generator == "a1111"
        assert thumbnail_cache.has(sha256_of(path))


def test_a_slow_scan_records_what_it_has_read_without_waiting_for_a_full_batch(
        tmp_path, library_engine, monkeypatch):
    """Batches are recorded after BATCH_SECONDS even when short of BATCH_SIZE files, so the
    grid and the analysis get the first pictures of a long scan early."""
    monkeypatch.setattr(scan_module, "BATCH_SECONDS", 0.0)  # every file is "late"
    folder = tmp_path / "pics"
    folder.mkdir()
    for i in range(5):
        write_image(folder / f"{i}.png", seed=i)
    batches: list[list[int]] = []
    with scan_module.LibraryIndexer(library_engine, None, workers=1,
                                    on_recorded=batches.append) as indexer:
        summary = indexer.scan([folder])
    assert summary.indexed == 5
    assert [len(batch) for batch in batches] == [1] * 5
