"""db.store: the library side's writes — identity by content, moves, missing, forgetting."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from db import store
from db.schema import (
    AnalysisResult,
    Content,
    Decision,
    Generation,
    Image,
    QueuedAnalysis,
    ReviewLog,
)
from db.store import FileFacts, RecordKind
from library.metadata import GenerationMetadata, Lora


def facts(path: str, sha: str = "a" * 64, size: int = 10, mtime_ns: int = 1,
          generation: GenerationMetadata | None = None) -> FileFacts:
    return FileFacts(path=path, size=size, mtime_ns=mtime_ns, sha256=sha, width=64,
                     height=48, format="PNG", has_thumbnail=True, generation=generation)


@pytest.fixture
def session(library_sessions):
    with library_sessions() as s:
        yield s


@pytest.fixture
def folder(session, tmp_path):
    return store.add_folder(session, tmp_path / "pics")


def count(session, entity) -> int:
    return session.scalar(select(func.count()).select_from(entity))


def test_add_folder_is_get_or_create_with_a_normalised_path(session, tmp_path):
    first = store.add_folder(session, tmp_path / "pics" / ".." / "pics", sensitive=True)
    again = store.add_folder(session, str(tmp_path / "pics") + "/")
    assert first.id == again.id
    assert first.path == str(tmp_path / "pics")
    assert again.sensitive is True  # an existing folder keeps its settings
    assert [f.path for f in store.list_folders(session)] == [str(tmp_path / "pics")]


def test_record_image_writes_content_generation_loras_and_queues_analysis(session, folder):
    meta = GenerationMetadata(generator="comfyui", prompt="a cat", seed=2**64 - 1, steps=20,
                              cfg_scale=7.0, loras=[Lora("detail", 0.5), Lora("grain", None)],
                              raw={"prompt": "{}"})
    recorded = store.record_image(session, facts("/p/a.png", generation=meta), folder.id)
    session.commit()

    assert recorded.kind is RecordKind.NEW and recorded.new_content
    image = session.get(Image, recorded.image_id)
    assert (image.name, image.status, image.folder_id) == ("a.png", "ok", folder.id)
    assert image.content.sha256 == "a" * 64 and image.content.width == 64
    generation = session.get(Generation, recorded.content_id)
    assert generation.seed == "18446744073709551615"  # beyond SQLite's INTEGER, kept exactly
    assert generation.raw == {"prompt": "{}"}
    assert sorted((x.name, x.weight) for x in generation.loras) == [("detail", 0.5),
                                                                    ("grain", None)]
    assert session.get(QueuedAnalysis, recorded.content_id) is not None


def test_metadata_free_images_get_no_generation_row(session, folder):
    recorded = store.record_image(session, facts("/p/a.png", generation=GenerationMetadata()),
                                  folder.id)
    assert session.get(Generation, recorded.content_id) is None


def test_a_copy_shares_the_content_and_is_not_queued_twice(session, folder):
    first = store.record_image(session, facts("/p/a.png"), folder.id)
    copy = store.record_image(session, facts("/p/copy.png"), folder.id)
    assert copy.kind is RecordKind.NEW and not copy.new_content
    assert copy.content_id == first.content_id
    assert count(session, QueuedAnalysis) == 1
    assert count(session, Image) == 2


def test_changed_bytes_point_the_path_at_a_new_content_and_orphan_the_old(session, folder):
    old = store.record_image(session, facts("/p/a.png", sha="a" * 64), folder.id)
    session.get(Content, old.content_id).decision = Decision.ACCEPTED.value
    changed = store.record_image(session, facts("/p/a.png", sha="b" * 64, size=11), folder.id)
    assert changed.kind is RecordKind.UPDATED and changed.image_id == old.image_id
    assert changed.content_id != old.content_id
    assert changed.orphaned_sha256 == "a" * 64
    # The old picture keeps its review (it may come back).
    assert session.get(Content, old.content_id).decision == "accepted"


def test_a_missing_image_found_at_a_new_path_is_moved_with_its_review(session, folder):
    old = store.record_image(session, facts("/p/a.png"), folder.id)
    session.get(Content, old.content_id).decision = Decision.REJECTED.value
    assert store.mark_missing(session, ["/p/a.png"]) == [old.image_id]

    moved = store.record_image(session, facts("/p/sub/renamed.png"), folder.id)
    assert moved.kind is RecordKind.MOVED and moved.image_id == old.image_id
    assert moved.moved_from == "/p/a.png"
    image = session.get(Image, old.image_id)
    assert (image.path, image.name, image.status) == ("/p/sub/renamed.png", "renamed.png", "ok")
    assert image.content.decision == "rejected"
    assert count(session, Image) == 1
    log = session.scalars(select(ReviewLog)).one()
    assert (log.field, log.old_value, log.new_value) == ("path", "/p/a.png",
                                                         "/p/sub/renamed.png")


def test_mark_missing_reports_only_changes(session, folder):
    recorded = store.record_image(session, facts("/p/a.png"), folder.id)
    assert store.mark_missing(session, ["/p/a.png", "/p/unknown.png"]) == [recorded.image_id]
    assert store.mark_missing(session, ["/p/a.png"]) == []
    # It reappears unchanged: same row, ok again.
    back = store.record_image(session, facts("/p/a.png"), folder.id)
    assert back.kind is RecordKind.UPDATED and back.image_id == recorded.image_id
    assert session.get(Image, recorded.image_id).status == "ok"


def test_broken_then_repaired(session, folder):
    broken = store.record_broken(session, "/p/a.png", folder.id, 5, 2, "truncated PNG file")
    image = session.get(Image, broken.image_id)
    assert (image.status, image.error, image.content_id) == ("broken", "truncated PNG file",
                                                             None)
    fixed = store.record_image(session, facts("/p/a.png"), folder.id)
    assert fixed.image_id == broken.image_id
    assert (image.status, image.error) == ("ok", None)


def test_move_image_follows_a_rename_and_replaces_the_target_row(session, folder):
    a = store.record_image(session, facts("/p/a.png", sha="a" * 64), folder.id)
    b = store.record_image(session, facts("/p/b.png", sha="b" * 64), folder.id)
    assert store.move_image(session, "/p/a.png", "/p/b.png", size=99) == a.image_id
    assert session.get(Image, b.image_id) is None  # the rename replaced that file
    moved = session.get(Image, a.image_id)
    assert (moved.path, moved.name, moved.size) == ("/p/b.png", "b.png", 99)
    assert store.move_image(session, "/p/nothing.png", "/p/x.png") is None
    # b's content is kept (reviews survive), only its file row went.
    assert count(session, Content) == 2


def test_known_files_and_files_by_path(session, folder):
    a = store.record_image(session, facts("/p/a.png", size=7, mtime_ns=9), folder.id)
    store.record_broken(session, "/p/b.png", folder.id, 3, 4, "not an image")
    known = store.known_files(session, folder.id)
    assert known["/p/a.png"] == (a.image_id, 7, 9, "ok")
    assert known["/p/b.png"].status == "broken"
    assert set(store.files_by_path(session, ["/p/b.png", "/p/zzz.png"])) == {"/p/b.png"}


def test_images_under_matches_the_folder_only_even_with_like_wildcards(session, folder):
    store.record_image(session, facts("/p/50%_off/a.png", sha="a" * 64), folder.id)
    store.record_image(session, facts("/p/50%_offer/b.png", sha="b" * 64), folder.id)
    store.record_image(session, facts("/p/5000_off/c.png", sha="c" * 64), folder.id)
    assert [p for _, p in store.images_under(session, "/p/50%_off")] == ["/p/50%_off/a.png"]


def test_remove_folder_forgets_files_but_keeps_reviews_for_re_adding(session, tmp_path):
    folder = store.add_folder(session, tmp_path / "pics")
    other = store.add_folder(session, tmp_path / "other")
    only_here = store.record_image(session, facts("/p/a.png", sha="a" * 64), folder.id)
    shared = store.record_image(session, facts("/p/b.png", sha="b" * 64), folder.id)
    store.record_image(session, facts("/o/b.png", sha="b" * 64), other.id)
    session.get(Content, only_here.content_id).decision = Decision.ACCEPTED.value
    # "b" was analysed: it has a result and left the queue.
    session.add(AnalysisResult(content_id=shared.content_id, analyser="nsfw-default",
                               version="1", label="sfw", score=0.1))
    session.delete(session.get(QueuedAnalysis, shared.content_id))

    orphans = store.remove_folder(session, folder.id)
    assert orphans == ["a" * 64]  # "b" is still shown by the other folder's file
    assert store.get_folder(session, tmp_path / "pics") is None
    assert count(session, Image) == 1
    assert session.get(QueuedAnalysis, only_here.content_id) is None

    folder = store.add_folder(session, tmp_path / "pics")
    again = store.record_image(session, facts("/p/a.png", sha="a" * 64), folder.id)
    assert again.content_id == only_here.content_id
    assert session.get(Content, again.content_id).decision == "accepted"
    assert session.get(QueuedAnalysis, again.content_id) is not None  # still unanalysed
    # A content with results is not queued again.
    store.record_image(session, facts("/p/b.png", sha="b" * 64), folder.id)
    assert session.get(QueuedAnalysis, shared.content_id) is None


def test_referenced_and_orphaned_sha256s(session, folder):
    store.record_image(session, facts("/p/a.png", sha="a" * 64), folder.id)
    store.record_image(session, facts("/p/b.png", sha="b" * 64), folder.id)
    store.record_broken(session, "/p/b.png", folder.id, 1, 1, "truncated")
    assert store.referenced_sha256s(session) == {"a" * 64}
    assert store.orphaned_sha256s(session, ["a" * 64, "b" * 64, "c" * 64]) == {"b" * 64,
                                                                               "c" * 64}


def test_text_with_lone_surrogates_is_stored(session, folder):
    meta = GenerationMetadata(generator="a1111", prompt="bad \udcff byte")
    recorded = store.record_image(session, facts("/p/a.png", generation=meta), folder.id)
    session.commit()
    assert session.get(Generation, recorded.content_id).prompt == "bad \ufffd byte"


def test_a_missing_file_renamed_back_into_view_is_queued_again(session, folder):
    """Its queue row was dropped while it had no readable file; now it has one again."""
    old = f"{folder.path}/a.png"
    recorded = store.record_image(session, facts(old), folder.id)
    store.mark_missing(session, [old])
    session.execute(QueuedAnalysis.__table__.delete())  # the runner dropped it meanwhile
    store.move_image(session, old, f"{folder.path}/b.png")
    assert session.scalar(select(QueuedAnalysis.content_id)) == recorded.content_id


def test_images_under_is_case_sensitive_like_the_file_system(session, folder):
    store.record_image(session, facts(f"{folder.path}/Keep/a.png", "1" * 64), folder.id)
    store.record_image(session, facts(f"{folder.path}/keep/b.png", "2" * 64), folder.id)
    assert [p for _, p in store.images_under(session, f"{folder.path}/Keep")] == [
        f"{folder.path}/Keep/a.png"]
