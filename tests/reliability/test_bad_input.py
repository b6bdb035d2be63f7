"""Bad input never stops a scan: every file of the generated bad-input corpus (bad_corpus.py)
ends with a clear status — indexed when valid, `broken` with a user-facing reason when not —
all good files are processed, and nothing hangs (conftest's hang guard bounds every test).

Also: files that change between the folder listing and the read (deleted, replaced by
garbage, by another picture, by a FIFO), unreadable files, and the headless command over the
whole corpus (worker processes, analysis, exit status, the report on stderr)."""

from __future__ import annotations

import builtins
import errno
import os
import threading
from pathlib import Path

import pytest
from bad_corpus import CASES, Expected, _picture, build, encode
from reliability_support import NSFW_ONLY, counts, gentriage, integrity_problems, summary_lines
from sqlalchemy import select

from db.schema import AnalysisResult, Generation, Image, ImageStatus, QueuedAnalysis
from library.scan import scan_folders, storable_path
from library.thumbnails import ThumbnailCache

MAX_MESSAGE_CHARS = 400  # a reason a person reads in a status bar or a report


def _db_path(root: Path, rel: str) -> str:
    return storable_path(os.path.join(str(root), rel))[0]


def _mismatches(sessions, root: Path, expected: list[Expected]) -> list[str]:
    """Every way the library's records differ from the corpus' expectations."""
    with sessions() as session:
        rows = {image.path: image for image in session.scalars(select(Image))}
        problems = []
        for want in expected:
            row = rows.get(_db_path(root, want.path))
            name = want.path
            if want.status == "absent":
                if row is not None:
                    problems.append(f"{name}: recorded ({row.status}) but is no image file")
                continue
            if row is None:
                problems.append(f"{name}: not recorded at all")
                continue
            if row.status != want.status:
                problems.append(f"{name}: {row.status} ({row.error}), expected {want.status}")
                continue
            if want.status == "broken":
                error = row.error or ""
                if not error.strip():
                    problems.append(f"{name}: broken without a reason")
                if len(error) > MAX_MESSAGE_CHARS or "Traceback" in error:
                    problems.append(f"{name}: reason is not a short message: {error!r}")
                if want.fragment and want.fragment.lower() not in error.lower():
                    problems.append(f"{name}: reason {error!r} lacks {want.fragment!r}")
                if row.content_id is not None:
                    problems.append(f"{name}: broken yet points at a content")
            else:
                content = row.content
                if content is None:
                    problems.append(f"{name}: ok without a content")
                    continue
                if want.size and (content.width, content.height) != want.size:
                    problems.append(f"{name}: size {(content.width, content.height)}, "
                                    f"expected {want.size}")
                if want.fmt and content.format != want.fmt:
                    problems.append(f"{name}: format {content.format}, expected {want.fmt}")
                if not row.has_thumbnail:
                    problems.append(f"{name}: indexed without a thumbnail")
    return problems


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, list[Expected]]:
    root = tmp_path_factory.mktemp("bad-corpus")
    return root, build(root)


def test_the_corpus_has_every_case_of_the_issue(corpus):
    _, expected = corpus
    assert set(CASES) >= {
        "zero_byte", "truncated_png", "truncated_jpeg", "truncated_webp", "png_bad_crc",
        "text_named_png", "png_named_jpg", "decompression_bomb", "extreme_sizes",
        "unusual_modes", "animated", "exif_rotated", "oversized_text_chunk",
        "malformed_text_chunk", "invalid_encodings", "hostile_comfyui_graphs", "awkward_names",
        "symlinks"}
    statuses = {e.status for e in expected}
    assert statuses == {"ok", "broken", "absent"}


def test_a_scan_of_the_corpus_gives_every_file_a_clear_status(corpus, library, tmp_path):
    root, expected = corpus
    _, sessions, db = library
    thumbnails = ThumbnailCache(tmp_path / "thumbnails")

    summary = scan_folders(sessions, [root], thumbnails, workers=2, executor="thread")

    assert _mismatches(sessions, root, expected) == []
    n_ok = sum(e.status == "ok" for e in expected)
    n_broken = sum(e.status == "broken" for e in expected)
    assert (summary.indexed, summary.broken) == (n_ok, n_broken)
    assert summary.errors == []  # bad files are per-file statuses, not scan errors
    assert integrity_problems(db) == []
    with sessions() as session:
        # Every readable picture is queued for analysis exactly once.
        queued = session.scalar(select(QueuedAnalysis.content_id).limit(1))
        assert queued is not None

    # A second scan re-reads nothing: bad files are remembered, not retried forever.
    again = scan_folders(sessions, [root], thumbnails, workers=2, executor="thread")
    assert (again.indexed, again.broken, again.missing) == (0, 0, 0)
    assert again.unchanged == summary.seen
    assert _mismatches(sessions, root, expected) == []


def test_hostile_metadata_is_stored_as_text_and_parsing_ends(corpus, library, tmp_path):
    root, _ = corpus
    _, sessions, _ = library
    scan_folders(sessions, [root / "comfy", root / "text", root / "encoding"], None,
                 workers=1, executor="thread")
    with sessions() as session:
        generation = {image.name: session.get(Generation, image.content_id)
                      for image in session.scalars(select(Image))
                      if image.status == ImageStatus.OK.value}
    chain = generation["long_chain.png"]
    assert chain.generator == "comfyui" and chain.prompt == "a cat"
    assert generation["cyclic.png"].generator == "comfyui"  # the cycle ended the walk
    big = generation["big_ztxt.png"]  # 3 MB zTXt: above Pillow's limit, kept whole
    assert len(big.raw["workflow"]) > 3_000_000
    assert generation["big_text.png"].raw["parameters"].startswith("a very long prompt")
    # Undecodable bytes become replacement characters, never an exception or a lost image.
    assert "\ufffd" in generation["usercomment_lone_surrogate.jpg"].raw.get(
        "EXIF:UserComment", "\ufffd")


# Known bug (reported to the lead): library/decode.py reads the metadata after im.load(), when
# Pillow has already dropped `im.fp`, so the reader's own chunk walk never runs.
def test_invalid_utf8_in_an_itxt_chunk_keeps_the_rest_of_the_text(corpus, library):
    """The reader decodes iTXt with replacement characters (read_metadata_file does); the
    scan's decode path must keep that text too rather than lose it silently."""
    root, _ = corpus
    _, sessions, _ = library
    scan_folders(sessions, [root / "encoding"], None, workers=1, executor="thread")
    with sessions() as session:
        image = session.scalar(select(Image).where(Image.name == "bad_utf8_itxt.png"))
        assert image.status == ImageStatus.OK.value
        generation = session.get(Generation, image.content_id)
    assert generation is not None, "the parameters text was dropped during the scan"
    assert generation.raw["parameters"].startswith("a prompt ")


def test_the_headless_command_processes_every_good_file_of_the_corpus(corpus, tmp_path):
    """Worker processes, the bundled analyser, the exit status and the report."""
    root, expected = corpus
    home = tmp_path / "home"
    db = tmp_path / "cli.sqlite3"
    done = gentriage(["scan", str(root), "--db", str(db), "--workers", "2", *NSFW_ONLY], home)

    assert done.returncode == 1, done.stderr  # some files are broken; all others processed
    assert "Traceback" not in done.stderr
    n_ok = sum(e.status == "ok" for e in expected)
    n_broken = sum(e.status == "broken" for e in expected)
    summary = summary_lines(done.stdout)
    assert summary["broken"] == str(n_broken)
    assert summary["analysed"] == f"nsfw-default {n_ok - 1}"  # real.png and alias.png: one picture
    assert "broken: " in done.stderr and "empty file" in done.stderr
    assert integrity_problems(db) == []
    table = counts(db)
    assert table["analysis_queue"] == 0
    assert table["analysis_results"] == n_ok - 1


# ----------------------------------------------------------------------------- races


def _race_walk(monkeypatch, after_listing):
    """Run `after_listing()` once the folder has been listed, before any file is read."""
    import library.scan as scan_module

    real_walk = scan_module.walk_images

    def walk(*args, **kwargs):
        found = list(real_walk(*args, **kwargs))
        after_listing()
        yield from found

    monkeypatch.setattr(scan_module, "walk_images", walk)


def test_files_deleted_or_replaced_between_listing_and_reading(tmp_path, library, monkeypatch):
    folder = tmp_path / "race"
    folder.mkdir()
    names = ["deleted", "garbage", "other_picture", "directory", "kept"]
    for i, name in enumerate(names):
        (folder / f"{name}.png").write_bytes(encode(_picture(seed=200 + i), "PNG"))
    replacement = encode(_picture(seed=299), "PNG")

    def swap() -> None:
        (folder / "deleted.png").unlink()
        (folder / "garbage.png").write_bytes(b"\0" * 100)
        (folder / "other_picture.png").write_bytes(replacement)
        (folder / "directory.png").unlink()
        (folder / "directory.png").mkdir()

    _race_walk(monkeypatch, swap)
    _, sessions, _ = library
    summary = scan_folders(sessions, [folder], None, workers=2, executor="thread")

    with sessions() as session:
        rows = {i.name: i for i in session.scalars(select(Image))}
        assert "deleted.png" not in rows
        # A folder now holds the name: the file is unusable, not gone (issue 11, item 16).
        assert rows["directory.png"].status == ImageStatus.BROKEN.value
        assert "not a regular file" in rows["directory.png"].error
        assert rows["garbage.png"].status == ImageStatus.BROKEN.value
        assert rows["garbage.png"].error
        other = rows["other_picture.png"]
        # The record describes the bytes actually read, not what was listed.
        import hashlib
        assert other.status == ImageStatus.OK.value
        assert other.content.sha256 == hashlib.sha256(replacement).hexdigest()
        assert other.size == len(replacement)
        assert rows["kept.png"].status == ImageStatus.OK.value
    assert summary.errors == []


# Known bug (reported to the lead): library/ingest.py opens without O_NONBLOCK.
def test_a_file_replaced_by_a_fifo_after_listing_does_not_block_the_scan(
        tmp_path, library, monkeypatch):
    """Opening a FIFO for reading blocks until a writer appears: ingest must not wait."""
    folder = tmp_path / "fifo"
    folder.mkdir()
    for i in range(3):
        (folder / f"f{i}.png").write_bytes(encode(_picture(seed=300 + i), "PNG"))
    fifo = folder / "f1.png"

    def swap() -> None:
        fifo.unlink()
        os.mkfifo(fifo)

    _race_walk(monkeypatch, swap)
    _, sessions, _ = library
    outcome: dict[str, object] = {}

    def scan() -> None:
        outcome["summary"] = scan_folders(sessions, [folder], None, workers=1,
                                          executor="thread")

    worker = threading.Thread(target=scan, daemon=True)
    worker.start()
    worker.join(10)
    blocked = worker.is_alive()
    if blocked:
        # Release the stuck reader (a writer appearing unblocks its open) so nothing leaks.
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        worker.join(15)
    assert not blocked, "the scan blocked opening a FIFO that replaced an image file"
    summary = outcome["summary"]
    assert summary.indexed == 2


def test_an_unreadable_file_is_broken_with_a_permission_message(tmp_path, library,
                                                               monkeypatch):
    folder = tmp_path / "perm"
    folder.mkdir()
    for i in range(3):
        (folder / f"p{i}.png").write_bytes(encode(_picture(seed=400 + i), "PNG"))
    secret = folder / "p1.png"
    if os.geteuid() == 0:
        # chmod does not stop root: deny the open itself, at both levels ingest may use.
        real_open, real_os_open = builtins.open, os.open

        def denied(path) -> bool:
            return isinstance(path, (str, bytes, os.PathLike)) and os.fsdecode(path) == str(secret)

        def fake_open(file, *args, **kwargs):
            if denied(file):
                raise PermissionError(errno.EACCES, "Permission denied", str(file))
            return real_open(file, *args, **kwargs)

        def fake_os_open(path, *args, **kwargs):
            if denied(path):
                raise PermissionError(errno.EACCES, "Permission denied", str(path))
            return real_os_open(path, *args, **kwargs)

        monkeypatch.setattr(builtins, "open", fake_open)
        monkeypatch.setattr(os, "open", fake_os_open)
    else:
        secret.chmod(0)
    _, sessions, _ = library
    try:
        summary = scan_folders(sessions, [folder], None, workers=2, executor="thread")
    finally:
        secret.chmod(0o644)
    with sessions() as session:
        rows = {i.name: i for i in session.scalars(select(Image))}
    assert rows["p1.png"].status == ImageStatus.BROKEN.value
    assert "permission denied" in rows["p1.png"].error.lower()
    assert {rows["p0.png"].status, rows["p2.png"].status} == {ImageStatus.OK.value}
    assert (summary.indexed, summary.broken) == (2, 1)


def test_analysis_of_every_indexed_corpus_image_finishes(corpus, library):
    """The analysis pipeline decodes the files itself: every odd-but-valid picture gets a
    result, and the queue empties (no file can stall it)."""
    from library.analysis import AnalysisRunner
    from library.settings import Settings

    root, expected = corpus
    _, sessions, _ = library
    scan_folders(sessions, [root], None, workers=2, executor="thread")
    settings = Settings(enabled_analysers=["nsfw-default"])
    runner = AnalysisRunner(sessions, root / "no-models", settings, device="cpu")
    runner.run(threading.Event())
    with sessions() as session:
        assert session.scalar(select(QueuedAnalysis.content_id).limit(1)) is None
        results = list(session.scalars(select(AnalysisResult)))
    assert results and all(r.error is None for r in results), [r.error for r in results]
    n_ok = sum(e.status == "ok" for e in expected)
    assert len(results) == n_ok - 1  # alias.png shows the same picture as real.png


# Known bug (reported to the lead): inference/preprocess.decode opens with Pillow's default
# 1 MiB text-chunk limit, so a PNG carrying a big ComfyUI workflow fails to decode there and
# the runner turns an indexed, valid image into a broken one.
def test_a_picture_with_a_big_workflow_chunk_survives_analysis(tmp_path, library):
    from bad_corpus import oversized_text_chunk

    from library.analysis import AnalysisRunner
    from library.settings import Settings

    root = tmp_path / "big"
    oversized_text_chunk(root)
    _, sessions, _ = library
    summary = scan_folders(sessions, [root], None, workers=1, executor="thread")
    assert summary.indexed == 2
    runner = AnalysisRunner(sessions, tmp_path / "no-models",
                            Settings(enabled_analysers=["nsfw-default"]), device="cpu")
    runner.run(threading.Event())
    with sessions() as session:
        image = session.scalar(select(Image).where(Image.name == "big_ztxt.png"))
        assert (image.status, image.error) == (ImageStatus.OK.value, None)
        assert session.get(AnalysisResult, (image.content_id, "nsfw-default")) is not None
