"""Families in a real scanned library (library.family_ops, db.families): stack keys and
hashes recorded at ingest, kept across moves, filled in for older libraries; duplicate groups
stored, listed with their keeper, resolved through the review log (undoable, never over a
person's decision), and a keeper that vanishes between listing and resolving."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from family_images import encode, generated_png, photo, structured
from sqlalchemy import func, select, update

from db import review
from db.filters import parse_filter
from db.queries import fetch_page
from db.schema import Content, Image, ReviewLog
from db.transaction import write_transaction
from library import family_ops
from library.families import hamming, stack_key
from library.scan import scan_folders

pytest.importorskip("skimage")


@pytest.fixture
def folder(tmp_path) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    for seed in (1, 2, 3):  # one prompt, one model, three seeds
        (out / f"lighthouse_{seed}.png").write_bytes(
            generated_png(structured(seed, (256, 256)), "a lighthouse, sunset", seed=seed))
    (out / "lighthouse_sd15.png").write_bytes(
        generated_png(structured(4, (256, 256)), "a lighthouse, sunset", model="sd15"))
    (out / "no_prompt.png").write_bytes(generated_png(structured(5, (256, 256)), None))
    coffee = photo("coffee", 640)
    (out / "coffee.png").write_bytes(encode(coffee, "PNG"))
    (out / "coffee.jpg").write_bytes(encode(coffee, "JPEG", quality=70))
    (out / "coffee.webp").write_bytes(encode(coffee.resize((320, 213)), "WEBP"))
    return out


@pytest.fixture
def scanned(library_sessions, thumbnail_cache, folder):
    summary = scan_folders(library_sessions, [folder], thumbnail_cache, workers=1)
    assert summary.indexed == 8 and not summary.errors
    return library_sessions


def by_name(sessions) -> dict[str, Content]:
    with sessions() as session:
        rows = session.execute(select(Image.name, Content).join(
            Content, Content.id == Image.content_id)).all()
    return {name: content for name, content in rows}


def test_ingest_records_stack_keys_and_the_stored_duplicate_group(scanned):
    rows = by_name(scanned)
    expected = stack_key("a lighthouse, sunset", "blurry", "sd_xl_base_1.0")
    assert {rows[f"lighthouse_{s}.png"].stack_key for s in (1, 2, 3)} == {expected}
    assert rows["lighthouse_sd15.png"].stack_key not in (None, expected)
    assert rows["no_prompt.png"].stack_key is None
    assert all(c.phash is not None for c in rows.values())
    coffee = {rows[n].id for n in ("coffee.png", "coffee.jpg", "coffee.webp")}
    assert {rows[n].dup_group for n in ("coffee.png", "coffee.jpg", "coffee.webp")} == {min(coffee)}
    assert all(c.dup_group is None for n, c in rows.items() if not n.startswith("coffee"))


def test_a_moved_file_keeps_its_stack(scanned, folder, thumbnail_cache):
    key = by_name(scanned)["lighthouse_2.png"].stack_key
    (folder / "kept").mkdir()
    os.rename(folder / "lighthouse_2.png", folder / "kept" / "renamed.png")
    summary = scan_folders(scanned, [folder], thumbnail_cache, workers=1)
    assert summary.moved == 1
    assert by_name(scanned)["renamed.png"].stack_key == key
    with scanned() as session:
        rows, _ = fetch_page(session, parse_filter(f"stack:{key}"), limit=10)
    assert sorted(Path(r.path).name for r in rows) == ["lighthouse_1.png", "lighthouse_3.png",
                                                       "renamed.png"]


@pytest.mark.parametrize("with_thumbnails", [True, False])
def test_an_older_library_gets_keys_and_hashes_filled_in(scanned, thumbnail_cache,
                                                         with_thumbnails):
    before = by_name(scanned)
    with write_transaction(scanned) as session:  # as a library indexed before families
        session.execute(update(Content).values(stack_key=None, phash=None, dup_group=None))
    summary = family_ops.refresh(scanned, thumbnail_cache if with_thumbnails else None)
    assert (summary.stack_keys, summary.hashes, summary.hash_failures) == (4, 8, 0)
    after = by_name(scanned)
    for name, content in after.items():
        assert content.stack_key == before[name].stack_key
        # From the 512 px thumbnail or the file: the same picture, the same few bits.
        assert hamming(content.phash, before[name].phash) <= 2
        assert content.dup_group == before[name].dup_group
    # Done once: a second pass finds nothing left to fill in.
    again = family_ops.backfill(scanned, thumbnail_cache)
    assert (again.stack_keys, again.hashes) == (0, 0)


def test_groups_list_the_keeper_first(scanned):
    groups = family_ops.find_groups(scanned)
    assert len(groups) == 1
    group = groups[0]
    names = [Path(p).name for p in group.paths()]
    # Most pixels and lossless: the PNG; then the JPEG (same size) before the smaller WebP.
    assert names == ["coffee.png", "coffee.jpg", "coffee.webp"]
    assert group.keeper_path.endswith("coffee.png")
    assert group.as_json() == {"group": group.group_id, "keeper": group.keeper_path,
                               "paths": group.paths(), "distance": group.distance}
    assert 0 <= group.distance <= 8
    # A person's acceptance outranks everything else.
    with write_transaction(scanned) as session:
        review.set_decision(session, [group.members[2].content_id], "accepted")
    assert Path(family_ops.find_groups(scanned)[0].keeper_path).name == "coffee.webp"


def test_a_filter_limits_the_files_listed(scanned, folder):
    assert family_ops.find_groups(scanned, parse_filter("-tag:x"))  # any filter: same group
    assert family_ops.find_groups(scanned, parse_filter(f"folder:{folder}/elsewhere")) == []


def log_groups(sessions) -> int:
    with sessions() as session:
        return session.scalar(select(func.count(func.distinct(ReviewLog.group_id)))) or 0


def decisions(sessions) -> dict[str, str]:
    return {name: c.decision for name, c in by_name(sessions).items()}


def test_resolve_rejects_the_others_as_one_undo_step_and_spares_decided_ones(scanned):
    with write_transaction(scanned) as session:  # a person kept the JPEG too
        jpeg = by_name(scanned)["coffee.jpg"].id
        review.set_decision(session, [jpeg], "accepted")
    before = log_groups(scanned)
    groups = family_ops.find_groups(scanned)
    assert Path(groups[0].keeper_path).name == "coffee.jpg"  # accepted: the keeper now
    report = family_ops.resolve_groups(scanned, groups, source="cli")
    assert (report.groups_resolved, report.rejected, report.skipped) == (1, 2, [])
    assert log_groups(scanned) == before + 1
    state = decisions(scanned)
    assert (state["coffee.png"], state["coffee.jpg"], state["coffee.webp"]) == (
        "rejected", "accepted", "rejected")
    with scanned() as session:
        sources = set(session.scalars(select(ReviewLog.source)
                                      .where(ReviewLog.group_id == report.log_groups[0])))
    assert sources == {"cli"}

    again = family_ops.resolve_groups(scanned, family_ops.find_groups(scanned))
    assert (again.rejected, again.already_decided) == (0, 2)  # nothing a second time

    with write_transaction(scanned) as session:  # the app's Ctrl+Z
        review.undo(session)
    state = decisions(scanned)
    assert (state["coffee.png"], state["coffee.jpg"], state["coffee.webp"]) == (
        "none", "accepted", "none")


def test_a_keeper_deleted_between_listing_and_resolving_changes_nothing(scanned):
    groups = family_ops.find_groups(scanned)
    before, log_before = decisions(scanned), log_groups(scanned)
    os.remove(groups[0].keeper_path)  # another program deletes it meanwhile
    report = family_ops.resolve_groups(scanned, groups)
    assert report.rejected == 0 and report.log_groups == []
    assert len(report.skipped) == 1
    assert groups[0].keeper_path in report.skipped[0] and "gone" in report.skipped[0]
    assert decisions(scanned) == before and log_groups(scanned) == log_before


def test_deciding_a_whole_stack_is_one_undo_step(scanned):
    key = by_name(scanned)["lighthouse_1.png"].stack_key
    with scanned() as session:
        from db.families import stack_content_ids

        members = stack_content_ids(session, key)
    assert len(members) == 3
    result = family_ops.decide(scanned, members, "rejected")
    assert result.log_group is not None
    state = decisions(scanned)
    assert {state[f"lighthouse_{s}.png"] for s in (1, 2, 3)} == {"rejected"}
    assert state["lighthouse_sd15.png"] == "none"
    with write_transaction(scanned) as session:
        review.undo(session)
    assert {decisions(scanned)[f"lighthouse_{s}.png"] for s in (1, 2, 3)} == {"none"}
