"""like:/similar: in the query layer: the ranking joins as a table, every other term still
combines, paging stays keyset (by score, then image id), count and position agree; and the
filter syntax round-trips the semantic terms."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from test_queries import _all_ids, _brute_force, _property_filters, random_library  # noqa: F401

from db.filters import (
    SIMILARITY_SORT,
    FilterSyntaxError,
    ImageFilter,
    SortKey,
    format_filter,
    parse_filter,
    with_semantic,
)
from db.queries import (
    SemanticNotResolved,
    count_images,
    fetch_page,
    matching_content_ids,
    position_of,
    rows_by_image_ids,
)
from db.ranking import Ranking


def _contents(session) -> dict[int, int | None]:
    return dict(session.execute(text("SELECT id, content_id FROM images")).all())


_rankings = st.lists(st.tuples(st.integers(1, 60), st.sampled_from((0.1, 0.2, 0.3, -0.5))),
                     max_size=40, unique_by=lambda pair: pair[0])


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(f=_property_filters, pairs=_rankings, by_similarity=st.booleans(),
       limit=st.integers(1, 7))
def test_ranked_pages_equal_a_brute_force_sort(random_library, f, pairs,
                                               by_similarity, limit):
    session, model = random_library
    ranking = Ranking.of(pairs, limit=40)
    semantic = replace(with_semantic(f, like="anything"), ranking=ranking)
    if by_similarity:
        semantic = replace(semantic, sort=SIMILARITY_SORT)
    elif semantic.sort.field == "similarity":
        semantic = replace(semantic, sort=SortKey())
    content_of = _contents(session)
    scores = dict(pairs)
    plain = replace(semantic, like=None, ranking=None,
                    sort=SortKey() if by_similarity else semantic.sort)
    chosen = [i for i in _brute_force(model, plain) if content_of[i] in scores]
    if by_similarity:
        sign = -1 if semantic.sort.descending else 1

        def key(iid: int) -> tuple:
            head = (model["images"][iid]["decision"] != "none",) if f.unreviewed_first else ()
            return head + (sign * scores[content_of[iid]], sign * iid)
        expected = sorted(chosen, key=key)
    else:
        expected = [i for i in _brute_force(model, plain) if content_of[i] in scores]
    assert _all_ids(session, semantic, limit) == expected
    assert count_images(session, semantic) == len(expected)
    if expected:
        probe = expected[len(expected) // 2]
        assert position_of(session, semantic, probe) == len(expected) // 2
        if by_similarity:
            (row,) = rows_by_image_ids(session, [probe], semantic)
            assert row.sort_value == scores[content_of[probe]]


def test_an_unresolved_semantic_filter_is_refused(random_library):
    session, _ = random_library
    with pytest.raises(SemanticNotResolved):
        fetch_page(session, parse_filter("like:cat"))
    empty = replace(parse_filter("like:cat"), ranking=Ranking.of([], 10))
    assert fetch_page(session, empty) == ([], None)
    assert count_images(session, empty) == 0


def test_matching_content_ids_ignores_the_semantic_term(random_library):
    session, _ = random_library
    f = parse_filter("is:accepted like:cat")
    expected = set(session.scalars(text(
        "SELECT DISTINCT i.content_id FROM images i JOIN contents c ON c.id = i.content_id "
        "WHERE c.decision = 'accepted' AND i.status = 'ok'")))
    assert set(matching_content_ids(session, f)) == expected


# --- syntax ---------------------------------------------------------------------------------

@pytest.mark.parametrize("text_in, like, similar, sort, canonical", [
    ('like:"red umbrella"', "red umbrella", None, SIMILARITY_SORT, 'like:"red umbrella"'),
    ("like:cat sort:newest", "cat", None, SortKey(), "like:cat sort:newest"),
    ("similar:42 sort:-aesthetic", None, 42, SortKey("aesthetic", True),
     "similar:42 sort:-aesthetic"),
    ("is:unreviewed similar:7", None, 7, SIMILARITY_SORT, "is:unreviewed similar:7"),
    ("like:x sort:similarity", "x", None, SortKey("similarity", False),
     "like:x sort:similarity"),
])
def test_semantic_terms_parse_and_format(text_in, like, similar, sort, canonical):
    f = parse_filter(text_in)
    assert (f.like, f.similar_to, f.sort) == (like, similar, sort)
    assert format_filter(f) == canonical
    assert parse_filter(canonical) == f


@pytest.mark.parametrize("bad, message", [
    ("like:a like:b", "only one"),
    ("like:a similar:3", "only one"),
    ("similar:abc", "not an image id"),
    ("sort:similarity", "needs a like: or similar:"),
    ("-like:cat", "not supported"),
    ('like:""', "needs some text"),
    ("like:a|b", "one value"),
])
def test_bad_semantic_terms_say_why(bad, message):
    with pytest.raises(FilterSyntaxError, match=message):
        parse_filter(bad)


@settings(max_examples=100, deadline=None)
@given(tags=st.frozensets(st.sampled_from("ab"), max_size=1),
       sort=st.sampled_from((SortKey(), SortKey("name", False), SIMILARITY_SORT,
                             SortKey("similarity", False))),
       like=st.none() | st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")),
                                min_size=1, max_size=10).filter(str.strip),
       similar=st.none() | st.integers(1, 10**6))
def test_semantic_filters_round_trip(tags, sort, like, similar):
    if like is not None:
        similar = None
    if like is None and similar is None and sort.field == "similarity":
        sort = SortKey()
    f = ImageFilter(tags_all=tags, sort=sort, like=like, similar_to=similar)
    assert parse_filter(format_filter(f)) == f


def test_with_semantic_keeps_the_other_terms_and_picks_the_sort():
    base = parse_filter("is:unreviewed tag:cat")
    similar = with_semantic(base, similar_to=5)
    assert similar.similar_to == 5 and similar.sort == SIMILARITY_SORT
    assert similar.tags_all == {"cat"} and similar.decisions == {"none"}
    assert with_semantic(parse_filter("sort:-aesthetic"), like="x").sort == \
        SortKey("aesthetic", True)
    assert with_semantic(similar).sort == SortKey() and not with_semantic(similar).semantic
    ranked = replace(similar, ranking=Ranking.of([(1, 0.5)], 1))
    assert ranked == similar  # the ranking is not part of the filter's identity
