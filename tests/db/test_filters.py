"""The shared filter syntax: parsing, errors, and the text round trip."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from db.filters import (
    KNOWN_ANALYSERS,
    FilterSyntaxError,
    ImageFilter,
    ScoreRange,
    SortKey,
    format_filter,
    parse_filter,
)


def test_empty_text_is_the_default_filter():
    f = parse_filter("   ")
    assert f == ImageFilter()
    assert f.statuses == {"ok"} and f.sort == SortKey("time", True) and not f.unreviewed_first
    assert format_filter(f) == ""


def test_the_documented_example_parses_into_every_field():
    f = parse_filter('is:unreviewed is:flagged tag:cat -tag:dog tag:a|b nsfw-vit:nsfw '
                     'aesthetic>=6 coherence:incoherent|semi-incoherent prompt:"red hair" '
                     'generator:comfyui model:"sdxl base" folder:/path status:broken '
                     'sort:-aesthetic sort:unreviewed castle -blurry rating>2')
    assert f.decisions == {"none"}
    assert f.flagged is True
    assert f.tags_all == {"cat"} and f.tags_none == {"dog"} and f.tags_any == ({"a", "b"},)
    assert f.labels == {"nsfw-vit": {"nsfw"}, "coherence": {"incoherent", "semi-incoherent"}}
    assert f.scores == {"aesthetic": ScoreRange(lo=6.0)}
    assert f.prompt == ("red hair", "castle") and f.prompt_none == ("blurry",)
    assert f.generators == {"comfyui"} and f.models == {"sdxl base"}
    assert f.folders == {"/path"} and f.statuses == {"broken"}
    assert f.sort == SortKey("aesthetic", True) and f.unreviewed_first
    assert f.rating_min == 3 and f.rating_max is None


@pytest.mark.parametrize("text, expected", [
    ("is:reviewed", {"accepted", "rejected"}),
    ("-is:rejected", {"none", "accepted"}),
    ("is:accepted is:rejected", {"accepted", "rejected"}),
    ("is:unreviewed|accepted|rejected", frozenset()),  # all three = any
])
def test_review_states_combine(text, expected):
    assert parse_filter(text).decisions == expected


@pytest.mark.parametrize("text, expected", [
    ("aesthetic>=6", ScoreRange(6.0, None)),
    ("aesthetic>6", ScoreRange(6.0, None, lo_strict=True)),
    ("aesthetic<=2.5", ScoreRange(None, 2.5)),
    ("aesthetic<2.5", ScoreRange(None, 2.5, hi_strict=True)),
    ("aesthetic:4..6", ScoreRange(4.0, 6.0)),
    ("aesthetic:..6", ScoreRange(None, 6.0)),
    ("aesthetic=5", ScoreRange(5.0, 5.0)),
    ("aesthetic>=4 aesthetic<7 aesthetic>=5", ScoreRange(5.0, 7.0, hi_strict=True)),
    ("aesthetic:..", ScoreRange()),
])
def test_score_ranges(text, expected):
    assert parse_filter(text).scores == {"aesthetic": expected}


def test_sort_keys_and_statuses():
    assert parse_filter("sort:oldest").sort == SortKey("time", False)
    assert parse_filter("sort:name").sort == SortKey("name", False)
    assert parse_filter("sort:-name").sort == SortKey("name", True)
    assert parse_filter("sort:nsfw-vit").sort == SortKey("nsfw-vit", False)
    assert parse_filter("sort:name sort:newest").sort == SortKey("time", True)  # last wins
    assert parse_filter("status:any").statuses == {"ok", "broken", "missing"}
    assert parse_filter("status:missing|broken").statuses == {"missing", "broken"}


def test_quoted_values_keep_spaces_quotes_and_backslashes():
    f = parse_filter(r'folder:"C:\Users\me\My Pictures" prompt:"say \"hi\"" "a|b" model:x*')
    assert f.folders == {r"C:\Users\me\My Pictures"}
    assert f.prompt == ('say "hi"', "a|b")
    assert f.models == {"x*"}


def test_quoted_number_is_a_label_not_a_range():
    f = parse_filter('coherence:"5"')
    assert f.labels == {"coherence": {"5"}} and not f.scores
    assert parse_filter(format_filter(f)) == f


@pytest.mark.parametrize("text, message", [
    ("gnerator:comfyui", "unknown filter key 'gnerator'"),
    ('prompt:"red hair', "unclosed quote"),
    ("aesthetic>=high", "'high' is not a number"),
    ("aesthetic>=nan", "not a finite number"),
    ("-generator:comfyui", "not supported"),
    ("is:maybe", "unknown is:maybe"),
    ("status:gone", "unknown status:gone"),
    ("sort:size", "unknown sort:size"),
    ("tag:", "'tag' needs a value"),
    ("generator>=3", "takes ':'"),
    ("prompt:a|b", "takes one value"),
    ('tag:a"b"', "unexpected"),
    ("-is:unreviewed -is:accepted -is:rejected", "exclude every review state"),
    ("folder-id:abc", "not a number"),
])
def test_bad_input_gets_a_clear_error(text, message):
    with pytest.raises(FilterSyntaxError, match=message):
        parse_filter(text)


def test_error_reports_the_column():
    with pytest.raises(FilterSyntaxError) as info:
        parse_filter("tag:cat   bogus:1")
    assert info.value.position == 10
    assert str(info.value).startswith("column 11:")


def test_prompt_words_that_look_like_terms_are_quoted_on_format():
    f = ImageFilter(prompt=("(masterpiece:1.2)", "tag:cat", "-x", ""))
    text = format_filter(f)
    assert '"tag:cat"' in text and '"-x"' in text
    assert parse_filter(text) == f


def test_extra_analysers_can_be_allowed():
    assert parse_filter("custom:yes", analysers=("custom",)).labels == {"custom": {"yes"}}
    with pytest.raises(FilterSyntaxError):
        parse_filter("custom:yes")


# --- round trip ------------------------------------------------------------------------------

_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=12)
_word = st.text("abcxyz_-0123456789.", min_size=1, max_size=8)
_labels = st.dictionaries(st.sampled_from(KNOWN_ANALYSERS),
                          st.frozensets(_text, min_size=1, max_size=3), max_size=2)
_number = st.floats(allow_nan=False, allow_infinity=False, width=64)
_range = st.builds(ScoreRange, st.none() | _number, st.none() | _number, st.booleans(),
                   st.booleans()).map(
    lambda r: ScoreRange(r.lo, r.hi, r.lo_strict and r.lo is not None,
                         r.hi_strict and r.hi is not None))
_sort = st.builds(SortKey, st.sampled_from(("time", "name") + KNOWN_ANALYSERS), st.booleans())
_filters = st.builds(
    ImageFilter,
    folders=st.frozensets(_text, max_size=2),
    folder_ids=st.frozensets(st.integers(0, 10**6), max_size=2),
    decisions=st.frozensets(st.sampled_from(("none", "accepted", "rejected"))),
    flagged=st.none() | st.booleans(),
    analysed=st.none() | st.booleans(),
    rating_min=st.none() | st.integers(0, 5),
    rating_max=st.none() | st.integers(0, 5),
    labels=_labels,
    scores=st.dictionaries(st.sampled_from(KNOWN_ANALYSERS), _range, max_size=2),
    tags_all=st.frozensets(_text, max_size=3),
    tags_any=st.lists(st.frozensets(_text, min_size=1, max_size=3), max_size=2).map(tuple),
    tags_none=st.frozensets(_text, max_size=2),
    prompt=st.lists(_text, max_size=3).map(tuple),
    prompt_none=st.lists(_text, max_size=2).map(tuple),
    generators=st.frozensets(_word, max_size=2),
    models=st.frozensets(_text, max_size=2),
    samplers=st.frozensets(_word, max_size=2),
    loras=st.frozensets(_text, max_size=2),
    statuses=st.frozensets(st.sampled_from(("ok", "broken", "missing")), min_size=1),
    sort=_sort,
    unreviewed_first=st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(_filters)
def test_format_then_parse_returns_the_same_filter(f):
    text = format_filter(f)
    assert parse_filter(text) == f
    assert format_filter(parse_filter(text)) == text  # the canonical text is stable


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_any_text_either_parses_or_raises_filter_syntax_error(text):
    try:
        f = parse_filter(text)
    except FilterSyntaxError:
        return
    assert parse_filter(format_filter(f)) == f
