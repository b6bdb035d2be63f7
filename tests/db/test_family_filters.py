"""Family filter terms (`stack:ID`, `is:stacked`, `sort:stack`, `dup:GROUP`, `is:duplicate`):
parsing, formatting, and what they select, on a small library with known answers."""

from __future__ import annotations

import pytest
from sqlalchemy import insert

from db.engine import session_factory
from db.families import (
    duplicate_group_ids,
    family_columns,
    stack_content_ids,
    stack_summaries,
    store_duplicate_groups,
)
from db.filters import FilterSyntaxError, ImageFilter, SortKey, format_filter, parse_filter
from db.queries import count_images, fetch_page, position_of, rows_by_image_ids
from db.schema import AnalysisResult, Content, Folder, Image

A, B, C = "aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb", "cccccccccccccccc"


def test_family_terms_parse_and_format_back():
    f = parse_filter(f"stack:{A.upper()}|{B} is:stacked dup:7|12 -is:duplicate sort:stack")
    assert f.stacks == {A, B} and f.stacked is True
    assert f.dup_groups == {7, 12} and f.duplicate is False
    assert f.sort == SortKey("stack", False)
    assert parse_filter(format_filter(f)) == f
    assert parse_filter("-is:stacked is:duplicate").stacked is False
    assert format_filter(ImageFilter(stacked=False, duplicate=True)) == \
        "-is:stacked is:duplicate"


@pytest.mark.parametrize("text, message", [
    ("stack:xyz", "not a stack id"),
    ("stack:abc", "not a stack id"),
    ("dup:twelve", "not a duplicate group number"),
    ("-stack:" + A, "not supported"),
    ("is:stacked|duplicate", "cannot be combined"),
    ("sort:-stack", "unknown sort"),
])
def test_bad_family_terms_say_what_is_wrong(text, message):
    with pytest.raises(FilterSyntaxError, match=message):
        parse_filter(text)


# --- a library: stack A (3 pictures), B (1), C (2, one of them without a file), no stack ------

@pytest.fixture
def session(library_db):
    engine = library_db.open()  # both backends
    with session_factory(engine)() as s:
        s.execute(insert(Folder), [{"id": 1, "path": "/lib"}])
        contents = [  # id, stack, rating, decision, aesthetic, dup group
            (1, A, 0, "none", 5.0, 1), (2, A, 3, "none", 4.0, None), (3, A, 3, "accepted", 2.0, 1),
            (4, B, 0, "none", None, None), (5, C, 0, "none", 9.0, None), (6, C, 5, "none", None,
                                                                          None),
            (7, None, 0, "none", None, None)]
        s.execute(insert(Content), [
            {"id": i, "sha256": f"{i:064x}", "decision": d, "rating": r, "flagged": False,
             "flag_nsfw": False, "flag_incoherent": False, "analysed": True, "stack_key": k,
             "dup_group": g, "width": 64, "height": 64, "format": "PNG"}
            for i, k, r, d, _, g in contents])
        s.execute(insert(AnalysisResult), [
            {"content_id": i, "analyser": "aesthetic", "version": "1", "score": a,
             "scores": {}} for i, *_, a, _g in contents if a is not None])
        # Image i shows content i, newer as i grows; content 6's only file is missing.
        s.execute(insert(Image), [
            {"id": i, "path": f"/lib/{i}.png", "name": f"{i}.png", "folder_id": 1,
             "content_id": i, "size": 1, "mtime_ns": 1000 + i,
             "status": "missing" if i == 6 else "ok", "has_thumbnail": False}
            for i in range(1, 8)])
        s.commit()
        yield s
    engine.dispose()


def ids(session, text: str) -> list[int]:
    rows, cursor = fetch_page(session, parse_filter(text), limit=100)
    assert cursor is None
    return [r.image_id for r in rows]


def test_stack_and_dup_terms_select_their_members(session):
    assert sorted(ids(session, f"stack:{A}")) == [1, 2, 3]
    assert sorted(ids(session, f"stack:{A}|{B}")) == [1, 2, 3, 4]
    assert sorted(ids(session, "dup:1")) == [1, 3]
    assert sorted(ids(session, "is:duplicate")) == [1, 3]
    assert sorted(ids(session, "-is:duplicate")) == [2, 4, 5, 7]
    assert count_images(session, parse_filter("dup:1 is:accepted")) == 1


def test_is_stacked_needs_another_picture_with_a_file(session):
    # A has three pictures; B one; C two, but one has no readable file; 7 no stack.
    assert sorted(ids(session, "is:stacked")) == [1, 2, 3]
    assert sorted(ids(session, "-is:stacked")) == [4, 5, 7]
    # 6's own file is missing: C's one readable picture (5) does not make it stacked.
    assert ids(session, "is:stacked status:missing") == []
    assert ids(session, "-is:stacked status:missing") == [6]


def test_sort_stack_puts_stacks_together_best_first_then_the_rest(session):
    order = ids(session, "sort:stack")
    # A: rating 3 accepted (3), rating 3 (2), rating 0 (1); B; C (5; 6 is missing); then 7.
    assert order == [3, 2, 1, 4, 5, 7]
    f = parse_filter("sort:stack status:ok|missing")
    paged, cursor = [], None
    while True:  # pages of two: no row lost or repeated at page boundaries
        rows, cursor = fetch_page(session, f, cursor, limit=2)
        paged += [r.image_id for r in rows]
        if cursor is None:
            break
    assert paged == [3, 2, 1, 4, 6, 5, 7]
    assert [position_of(session, f, i) for i in paged] == list(range(7))
    assert rows_by_image_ids(session, [3], f)[0].sort_value.startswith(A)


def test_stack_summaries_pick_the_best_image_and_count(session):
    summaries = stack_summaries(session, parse_filter(""))
    assert [(s.stack_key, s.count, s.best_image_id) for s in summaries] == [
        (C, 1, 5), (B, 1, 4), (A, 3, 3)]  # newest stack first
    unreviewed = stack_summaries(session, parse_filter("is:unreviewed"))
    assert [(s.stack_key, s.count, s.best_image_id) for s in unreviewed][-1] == (A, 2, 2)
    assert stack_content_ids(session, A) == [1, 2, 3]
    assert stack_content_ids(session, A, parse_filter("is:unreviewed")) == [1, 2]


def test_stored_groups_are_replaced_and_exported(session):
    changed = store_duplicate_groups(session, [[2, 4], [5, 7]])
    assert changed == [1, 2, 3, 4, 5, 7]
    assert duplicate_group_ids(session) == {2: [2, 4], 5: [5, 7]}
    assert store_duplicate_groups(session, [[2, 4], [5, 7]]) == []  # nothing to write
    assert family_columns(session, [1, 2, 7]) == {1: (A, None), 2: (A, 2), 7: (None, 5)}
