"""Grid queries: every filter, every sort, exact keyset pages, counts, helpers."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, text, update

from db.engine import open_library, session_factory
from db.filters import FilterSyntaxError, ImageFilter, ScoreRange, SortKey, parse_filter
from db.queries import (
    FilterQueryError,
    count_images,
    delete_saved_filter,
    distinct_values,
    fetch_page,
    folder_counts,
    image_ids_through,
    label_choices,
    locate,
    next_unreviewed,
    position_of,
    rows_by_image_ids,
    save_filter,
    saved_filters,
    tag_suggestions,
)
from db.schema import AnalysisResult, Content, Folder, Generation, Image, LoraUse, Tag

ROOT = "/lib/watched"


def _all_ids(session, f: ImageFilter, limit: int = 3) -> list[int]:
    ids, cursor = [], None
    for _ in range(10_000):
        rows, cursor = fetch_page(session, f, cursor, limit)
        ids += [row.image_id for row in rows]
        if cursor is None:
            return ids
    raise AssertionError("pagination never ended")


# --- a small hand-made library with known answers ---------------------------------------------

@pytest.fixture
def session(tmp_path):
    engine = open_library(tmp_path / "lib.db")
    sessions = session_factory(engine)
    with sessions() as s:
        _populate(s)
        s.commit()
        yield s
    engine.dispose()


def _populate(s) -> None:
    s.execute(insert(Folder), [{"id": 1, "path": ROOT}, {"id": 2, "path": "/lib/other"}])
    contents = [  # id, decision, flagged, analysed, rating
        (1, "none", False, True, 0), (2, "accepted", False, True, 4),
        (3, "rejected", True, True, 0), (4, "none", True, True, 0),
        (5, "accepted", False, False, 2), (6, "none", False, False, 0)]
    s.execute(insert(Content), [
        {"id": cid, "sha256": f"{cid:064x}", "decision": d, "flagged": fl, "flag_nsfw": fl,
         "flag_incoherent": False, "analysed": an, "rating": r, "width": 512, "height": 512,
         "format": "PNG"} for cid, d, fl, an, r in contents])
    images = [  # id, content, folder, relative path, mtime, status
        (1, 1, 1, "a/b.png", 100, "ok"), (2, 2, 1, "a/c.png", 300, "ok"),
        (3, 3, 1, "z.png", 200, "ok"), (4, 4, 2, "d.png", 300, "ok"),
        (5, 5, 2, "e.png", 50, "ok"), (6, 6, 1, "sub/f.png", 400, "broken"),
        (7, 1, 2, "dup/b.png", 100, "missing"), (8, None, 1, "x.png", 500, "broken")]
    s.execute(insert(Image), [
        {"id": iid, "content_id": cid, "folder_id": fid,
         "path": f"{ROOT if fid == 1 else '/lib/other'}/{rel}", "name": rel.rsplit("/", 1)[-1],
         "mtime_ns": mt, "status": st_} for iid, cid, fid, rel, mt, st_ in images])
    s.execute(insert(Generation), [
        {"content_id": 1, "generator": "comfyui", "model": "sdxl_base.safetensors",
         "sampler": "euler", "prompt": "a cat with Red Hair, 8k", "negative_prompt": "dog"},
        {"content_id": 2, "generator": "a1111", "model": "pony.safetensors",
         "sampler": "dpmpp_2m", "prompt": "a dog in the rain", "negative_prompt": "cat"},
        {"content_id": 3, "generator": "comfyui", "model": "sdxl_refiner.safetensors",
         "sampler": "euler", "prompt": "100% cotton_shirt", "negative_prompt": None},
        {"content_id": 4, "generator": "invokeai", "model": None, "sampler": None,
         "prompt": "a cat on a roof", "negative_prompt": None}])
    s.execute(insert(LoraUse), [{"content_id": 1, "name": "detail", "weight": 0.5}])
    results = [  # content, analyser, label, score
        (1, "nsfw-vit", "normal", 0.1), (2, "nsfw-vit", "normal", 0.3),
        (3, "nsfw-vit", "nsfw", 0.9), (4, "nsfw-vit", "nsfw", 0.8),
        (1, "aesthetic", None, 6.5), (2, "aesthetic", None, 5.0), (3, "aesthetic", None, 6.5),
        (4, "aesthetic", None, None),  # the analyser failed: no score
        (1, "coherence", "coherent", 0.1), (3, "coherence", "incoherent", 0.9)]
    s.execute(insert(AnalysisResult), [
        {"content_id": c, "analyser": a, "version": "v", "label": label, "score": sc}
        for c, a, label, sc in results])
    tags = [(1, "cat"), (1, "red_hair"), (2, "dog"), (3, "shirt"), (4, "cat"), (4, "roof"),
            (3, "red_hair")]
    s.execute(insert(Tag), [{"content_id": c, "analyser": "tagger-jtp", "tag": t, "score": 0.5}
                            for c, t in tags])


@pytest.mark.parametrize("query, expected", [
    ("", [4, 2, 3, 1, 5]),  # ok images, newest first; equal mtimes by id descending
    ("status:any", [8, 6, 4, 2, 3, 7, 1, 5]),
    ("status:broken", [8, 6]),
    ("status:missing", [7]),
    ("is:unreviewed", [4, 1]),
    ("is:unreviewed status:broken", [8, 6]),  # a file without content counts as unreviewed
    ("is:accepted", [2, 5]),
    ("is:reviewed", [2, 3, 5]),
    ("-is:accepted", [4, 3, 1]),
    ("is:flagged", [4, 3]),
    ("-is:flagged", [2, 1, 5]),
    ("is:analysed", [4, 2, 3, 1]),
    ("is:unanalysed", [5]),
    ("rating>=3", [2]),
    ("rating:1..2", [5]),
    ("nsfw-vit:nsfw", [4, 3]),
    ("coherence:incoherent|coherent", [3, 1]),
    ("aesthetic>=6", [3, 1]),
    ("aesthetic>5", [3, 1]),
    ("aesthetic<=5", [2]),
    ("aesthetic:..", [2, 3, 1]),  # has a score
    ("nsfw-vit>0.2 nsfw-vit<0.9", [4, 2]),
    ("tag:cat", [4, 1]),
    ("tag:cat tag:red_hair", [1]),
    ("tag:dog|shirt", [2, 3]),
    ("-tag:cat", [2, 3, 5]),
    ("-tag:cat|dog", [3, 5]),
    ("prompt:cat", [4, 1]),  # the negative prompt "cat" of image 2 is not the prompt
    ("prompt:\"red hair\"", [1]),  # case-insensitive substring through the trigram index
    ("cat roof", [4]),  # bare words: every one must be in the prompt
    ("prompt:8k", [1]),  # shorter than a trigram: LIKE
    ("100%", [3]),  # LIKE wildcards in the text are literal
    ("prompt:a_", []),  # ... and so is _
    ("-cat", [2, 3, 5]),
    ("generator:comfyui", [3, 1]),
    ("generator:comfyui|invokeai", [4, 3, 1]),
    ("model:sdxl*", [3, 1]),
    ("model:pony.safetensors", [2]),
    ("sampler:euler", [3, 1]),
    (f"folder:{ROOT}", [2, 3, 1]),
    (f"folder:{ROOT}/", [2, 3, 1]),
    (f"folder:{ROOT}/a", [2, 1]),
    (f"folder:{ROOT}/a status:any", [2, 1]),
    ("folder:/lib status:any", [8, 6, 4, 2, 3, 7, 1, 5]),
    ("folder-id:2", [4, 5]),
    ("folder:/lib/wat", []),  # a prefix of a name is not a parent folder
])
def test_every_filter(session, query, expected):
    f = parse_filter(query)
    assert _all_ids(session, f) == expected
    assert count_images(session, f) == len(expected)


@pytest.mark.parametrize("query, expected, values", [
    ("sort:oldest", [5, 1, 3, 2, 4], [50, 100, 200, 300, 300]),
    ("sort:name", [1, 2, 4, 5, 3], ["b.png", "c.png", "d.png", "e.png", "z.png"]),
    ("sort:-name", [3, 5, 4, 2, 1], ["z.png", "e.png", "d.png", "c.png", "b.png"]),
    # equal scores by id; no score (failed: 4, never analysed: 5) last, newest first
    ("sort:-aesthetic", [3, 1, 2, 4, 5], [6.5, 6.5, 5.0, None, None]),
    ("sort:aesthetic", [2, 1, 3, 4, 5], [5.0, 6.5, 6.5, None, None]),
    ("sort:-nsfw-vit", [3, 4, 2, 1, 5], [0.9, 0.8, 0.3, 0.1, None]),
    ("sort:unreviewed", [4, 1, 2, 3, 5], [300, 100, 300, 200, 50]),
    ("sort:unreviewed sort:-aesthetic", [1, 4, 3, 2, 5], [6.5, None, 6.5, 5.0, None]),
    ("sort:unreviewed is:accepted", [2, 5], [300, 50]),
    ("sort:-tagger-jtp", [4, 2, 3, 1, 5], [None] * 5),
])
def test_every_sort(session, query, expected, values):
    f = parse_filter(query)
    for limit in (1, 2, 200):
        assert _all_ids(session, f, limit) == expected
    rows, _ = fetch_page(session, f, limit=200)
    assert [row.sort_value for row in rows] == values
    for position, image_id in enumerate(expected):
        assert position_of(session, f, image_id) == position
    assert position_of(session, f, 8) is None  # broken: not shown


def test_grid_row_carries_file_and_review_state(session):
    rows, cursor = fetch_page(session, parse_filter("status:broken"))
    assert cursor is None
    no_content = rows[0]
    assert (no_content.image_id, no_content.content_id, no_content.decision,
            no_content.flagged, no_content.sha256) == (8, None, "none", False, None)
    row = rows_by_image_ids(session, [4])[0]
    assert (row.name, row.folder_id, row.decision, row.flagged, row.flag_nsfw, row.analysed,
            row.width, row.format, row.mtime_ns) == ("d.png", 2, "none", True, True, True, 512,
                                                     "PNG", 300)


def test_prompt_search_follows_an_updated_prompt(session):
    f = parse_filter('prompt:"golden armor"')
    assert _all_ids(session, f) == []
    session.execute(update(Generation).where(Generation.content_id == 2)
                    .values(prompt="a knight in Golden Armor"))
    session.flush()
    assert _all_ids(session, f) == [2]
    assert _all_ids(session, parse_filter("prompt:rain")) == []  # the old prompt is gone


def test_a_decision_change_shows_on_refresh_and_moves_between_segments(session):
    f = parse_filter("sort:unreviewed")
    first, cursor = fetch_page(session, f, limit=1)
    assert [r.image_id for r in first] == [4]
    session.execute(update(Content).where(Content.id == 1).values(decision="accepted"))
    session.flush()
    assert rows_by_image_ids(session, [1, 4, 99])[0].decision == "accepted"
    assert [r.image_id for r in rows_by_image_ids(session, [3, 1])] == [3, 1]
    rest, _ = fetch_page(session, f, cursor, limit=10)
    assert [r.image_id for r in rest] == [2, 3, 1, 5]  # no duplicate, nothing lost


def test_rows_by_image_ids_report_the_filter_sort_value(session):
    rows = rows_by_image_ids(session, [1, 5], parse_filter("sort:-aesthetic"))
    assert [r.sort_value for r in rows] == [6.5, None]


def test_a_cursor_cannot_continue_another_filter(session):
    _, cursor = fetch_page(session, ImageFilter(), limit=1)
    with pytest.raises(ValueError, match="different filter"):
        fetch_page(session, parse_filter("sort:name"), cursor)


def test_sidebar_and_autocomplete_helpers(session):
    assert folder_counts(session) == {1: 3, 2: 2}
    assert folder_counts(session, ("ok", "broken", "missing")) == {1: 5, 2: 3}
    assert tag_suggestions(session, "") [:2] == [("cat", 2), ("red_hair", 2)]
    assert tag_suggestions(session, "r") == [("red_hair", 2), ("roof", 1)]
    assert tag_suggestions(session, "re", limit=1) == [("red_hair", 2)]
    assert tag_suggestions(session, "zz") == []
    assert distinct_values(session, "generator") == ["a1111", "comfyui", "invokeai"]
    assert distinct_values(session, "sampler") == ["dpmpp_2m", "euler"]
    with pytest.raises(ValueError):
        distinct_values(session, "prompt")


def test_saved_filters(session):
    save_filter(session, "keepers", "is:accepted sort:-aesthetic")
    save_filter(session, "check", "is:flagged")
    save_filter(session, "keepers", "is:accepted")  # replaces
    assert saved_filters(session) == [("check", "is:flagged"), ("keepers", "is:accepted")]
    with pytest.raises(FilterSyntaxError):
        save_filter(session, "bad", "bogus:1")
    assert delete_saved_filter(session, "check") is True
    assert delete_saved_filter(session, "check") is False
    assert [name for name, _ in saved_filters(session)] == ["keepers"]


def test_indexes_serve_the_sorted_walks(session):
    """The grid's plans: newest-first walks ix_images_mtime, a score sort walks the covering
    result index of migration 0002, a rare tag starts from ix_tags_tag."""
    def plan(sql: str) -> str:
        return " | ".join(row[3] for row in session.execute(text("EXPLAIN QUERY PLAN " + sql)))
    assert "ix_images_mtime" in plan(
        "SELECT id FROM images i WHERE +status = 'ok' ORDER BY mtime_ns DESC, id DESC LIMIT 5")
    assert "COVERING INDEX ix_results_analyser_score" in plan(
        "SELECT content_id FROM analysis_results WHERE analyser='aesthetic' "
        "ORDER BY score DESC LIMIT 5")
    assert "COVERING INDEX ix_results_analyser_label" in plan(
        "SELECT content_id FROM analysis_results WHERE analyser='nsfw-vit' AND label='nsfw'")


# --- keyset exactness against a brute-force sort ----------------------------------------------

def _random_library(s, seed: int, n: int = 60) -> dict:
    """Few distinct mtimes, names and scores, so ties and NULLs are everywhere."""
    rng = random.Random(seed)
    model: dict = {"images": {}}
    s.execute(insert(Folder), [{"id": 1, "path": "/r"}])
    for cid in range(1, n + 1):
        s.execute(insert(Content).values(
            id=cid, sha256=f"{cid:064x}", decision=rng.choice(("none", "accepted", "rejected")),
            flagged=rng.random() < 0.3, analysed=True))
        for analyser in ("aesthetic", "nsfw-vit"):
            roll = rng.random()
            if roll < 0.7:
                score = rng.choice((1.0, 2.0, 3.0))
            elif roll < 0.85:
                score = None  # failed
            else:
                continue  # never analysed
            s.execute(insert(AnalysisResult).values(
                content_id=cid, analyser=analyser, version="v", score=score,
                label=rng.choice(("normal", "nsfw"))))
        for tag in rng.sample(("a", "b", "c", "d"), rng.randint(0, 2)):
            s.execute(insert(Tag).values(content_id=cid, analyser="t", tag=tag, score=1.0))
    for iid in range(1, n + 11):
        s.execute(insert(Image).values(
            id=iid, content_id=rng.choice([None] + list(range(1, n + 1))) if iid > n else iid,
            folder_id=1, path=f"/r/{iid}", name=rng.choice(("x", "y", "Y", "z")),
            mtime_ns=rng.choice((1, 2, 3)), status=rng.choice(("ok", "ok", "ok", "missing"))))
    rows = s.execute(text(
        "SELECT i.id, i.name, i.mtime_ns, i.status, c.decision, c.flagged, "
        "(SELECT score FROM analysis_results WHERE content_id = i.content_id "
        " AND analyser = 'aesthetic'), "
        "(SELECT score FROM analysis_results WHERE content_id = i.content_id "
        " AND analyser = 'nsfw-vit'), "
        "(SELECT group_concat(tag) FROM tags WHERE content_id = i.content_id) "
        "FROM images i LEFT JOIN contents c ON c.id = i.content_id")).all()
    for iid, name, mtime, status, decision, flagged, aesthetic, nsfw, tags in rows:
        model["images"][iid] = dict(name=name, mtime=mtime, status=status,
                                    decision=decision or "none", flagged=bool(flagged),
                                    scores={"aesthetic": aesthetic, "nsfw-vit": nsfw},
                                    tags=set((tags or "").split(",")) - {""})
    return model


def _brute_force(model: dict, f: ImageFilter) -> list[int]:
    chosen = []
    for iid, m in model["images"].items():
        if m["status"] not in f.statuses:
            continue
        if f.decisions and m["decision"] not in f.decisions:
            continue
        if f.flagged is not None and m["flagged"] != f.flagged:
            continue
        if not f.tags_all <= m["tags"] or f.tags_none & m["tags"]:
            continue
        if any(not (group & m["tags"]) for group in f.tags_any):
            continue
        if any(not bounds.contains(m["scores"][a]) for a, bounds in f.scores.items()):
            continue
        chosen.append(iid)

    def key(iid: int):
        m = model["images"][iid]
        sign = -1 if f.sort.descending else 1
        head = (m["decision"] != "none",) if f.unreviewed_first else ()
        if f.sort.field == "time":
            return head + (sign * m["mtime"], sign * iid)
        if f.sort.field == "name":
            # names are single letters here: code point order = SQLite's BINARY order
            return head + (sign * ord(m["name"]), sign * iid)
        score = m["scores"][f.sort.field]
        if score is None:  # without a score: last, newest first
            return head + (1, 0, -m["mtime"], -iid)
        return head + (0, sign * score, sign * iid, 0)
    return sorted(chosen, key=key)


@pytest.fixture(scope="module")
def random_library(tmp_path_factory):
    engine = open_library(tmp_path_factory.mktemp("keyset") / "lib.db")
    with session_factory(engine)() as s:
        model = _random_library(s, seed=7)
        s.commit()
        yield s, model
    engine.dispose()


_property_filters = st.builds(
    ImageFilter,
    decisions=st.frozensets(st.sampled_from(("none", "accepted", "rejected"))),
    flagged=st.none() | st.booleans(),
    tags_all=st.frozensets(st.sampled_from("abcd"), max_size=1),
    tags_any=st.lists(st.frozensets(st.sampled_from("abcd"), min_size=2, max_size=3),
                      max_size=1).map(tuple),
    tags_none=st.frozensets(st.sampled_from("abcd"), max_size=1),
    scores=st.dictionaries(st.just("aesthetic"), st.builds(
        ScoreRange, st.sampled_from((None, 1.0, 2.0)), st.sampled_from((None, 2.0, 3.0)),
        st.booleans(), st.booleans()), max_size=1),
    statuses=st.sampled_from((frozenset({"ok"}), frozenset({"ok", "missing"}))),
    sort=st.builds(SortKey, st.sampled_from(("time", "name", "aesthetic", "nsfw-vit")),
                   st.booleans()),
    unreviewed_first=st.booleans(),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(f=_property_filters, limit=st.integers(1, 7))
def test_keyset_pages_equal_a_brute_force_sort(random_library, f, limit):
    session, model = random_library
    expected = _brute_force(model, f)
    assert _all_ids(session, f, limit) == expected
    assert count_images(session, f) == len(expected)
    if expected:
        probe = expected[len(expected) // 2]
        assert position_of(session, f, probe) == len(expected) // 2


def _content_of(session) -> dict[int, int | None]:
    return dict(session.execute(text("SELECT id, content_id FROM images")).all())


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(f=_property_filters, data=st.data())
def test_next_unreviewed_is_the_first_unreviewed_row_after_the_anchor(random_library, f, data):
    """Auto-advance's one keyset query agrees with walking the sorted rows."""
    session, model = random_library
    expected = _brute_force(model, f)
    contents = _content_of(session)
    skip = data.draw(st.frozensets(st.integers(1, 60), max_size=5))

    def undecided(iid: int) -> bool:
        return model["images"][iid]["decision"] == "none" and contents[iid] not in skip

    from_top = next_unreviewed(session, f, None, skip_contents=skip)
    first = next((iid for iid in expected if undecided(iid)), None)
    assert (from_top.image_id if from_top else None) == first
    if not expected:
        return
    at = data.draw(st.integers(0, len(expected) - 1))
    anchor = locate(session, f, expected[at])
    assert anchor is not None and anchor.image_id == expected[at]
    found = next_unreviewed(session, f, anchor, skip_contents=skip)
    wanted = next((iid for iid in expected[at + 1:] if undecided(iid)), None)
    assert (found.image_id if found else None) == wanted
    if found is not None:  # the cursor it returns continues the pages right after it
        rows, _ = fetch_page(session, f, found, limit=len(expected))
        assert [r.image_id for r in rows] == expected[expected.index(wanted) + 1:]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(f=_property_filters, data=st.data())
def test_image_ids_through_a_far_row_are_the_rows_in_between(random_library, f, data):
    session, model = random_library
    expected = _brute_force(model, f)
    if not expected:
        return
    start = data.draw(st.integers(-1, len(expected) - 1))
    end = data.draw(st.integers(0, len(expected) - 1))
    after = locate(session, f, expected[start]) if start >= 0 else None
    through = locate(session, f, expected[end])
    assert image_ids_through(session, f, after, through) == expected[start + 1:end + 1]


def test_locate_says_none_for_an_image_the_filter_does_not_show(session):
    assert locate(session, parse_filter("is:accepted"), 1) is None
    assert locate(session, parse_filter("is:unreviewed"), 1) is not None


def test_the_tag_threshold_applies_when_reading(session):
    """Tags are stored down to a low floor; the threshold decides which count, for filters,
    exclusions and suggestions alike, without re-analysis."""
    session.execute(update(Tag).where(Tag.content_id == 4, Tag.tag == "cat").values(score=0.1))
    session.execute(insert(Tag).values(content_id=2, analyser="tagger-jtp", tag="cat",
                                       score=0.06))

    def ids(query: str, threshold: float | None) -> list[int]:
        rows, _ = fetch_page(session, parse_filter(query), tag_threshold=threshold)
        return [r.image_id for r in rows]

    assert ids("tag:cat", 0.2) == [1]
    assert ids("tag:cat", 0.08) == [4, 1]
    assert ids("tag:cat", None) == [4, 2, 1]  # every stored tag
    assert ids("tag:cat|roof", 0.2) == [4, 1]
    assert ids("-tag:cat", 0.2) == [4, 2, 3, 5]
    assert count_images(session, parse_filter("tag:cat"), tag_threshold=0.2) == 1
    session.execute(insert(Tag).values(content_id=3, analyser="tagger-jtp", tag="cow",
                                       score=0.1))
    # Suggested when some picture carries it at the threshold (counts: pictures tagged).
    assert dict(tag_suggestions(session, "c", tag_threshold=0.2)) == {"cat": 3}
    assert dict(tag_suggestions(session, "c", tag_threshold=0.05)) == {"cat": 3, "cow": 1}


@pytest.mark.parametrize("query", [
    "rating>=" + "9" * 30,  # beyond SQLite's 64-bit integers
    " ".join(f'prompt:"word{i}"' for i in range(1500)),  # deeper than SQLite's expression limit
])
def test_a_filter_the_database_cannot_run_raises_a_clear_error(session, query):
    try:
        f = parse_filter(query)
    except FilterSyntaxError:
        return  # refused by the parser already (it may limit these itself)
    with pytest.raises(FilterQueryError) as raised:
        fetch_page(session, f)
    assert "filter" in str(raised.value)
    with pytest.raises(FilterQueryError):
        count_images(session, f)


def test_label_choices_lists_each_analysers_labels(session):
    assert label_choices(session) == {"nsfw-vit": {"normal", "nsfw"},
                                      "coherence": {"coherent", "incoherent"}}
