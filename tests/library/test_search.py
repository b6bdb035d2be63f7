"""Semantic search end to end below the UI: the clip analyser's embeddings as stored by the
real runner, the in-memory index, text search by the CLIP text tower, find-similar, filters
combined, and the messages when something is missing."""

from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np
import pytest
from search_support import SearchLibrary, analyse, build_search_library
from sqlalchemy import func, select

from db.engine import open_library, session_factory
from db.filters import parse_filter
from db.queries import count_images, fetch_page
from db.schema import AnalysisResult, ClipEmbedding, QueuedAnalysis
from db.transaction import write_transaction
from library.analysis import AnalysisRunner
from library.search import EmbeddingIndex, SearchUnavailable, SemanticSearch
from library.settings import Settings


@pytest.fixture(autouse=True)
def _no_hf_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path_factory.getbasetemp() / "empty-hf-cache"))


@pytest.fixture(scope="module")
def searchable(tmp_path_factory) -> SearchLibrary:
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_CACHE", str(tmp_path_factory.getbasetemp() / "empty-hf-cache"))
    try:
        return build_search_library(tmp_path_factory.mktemp("search"))
    finally:
        mp.undo()


@pytest.fixture
def search(searchable):
    engine = open_library(searchable.db)
    yield SemanticSearch(session_factory(engine), searchable.models)
    engine.dispose()


# ---------------------------------------------------------------- the index


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True)


def test_index_top_k_is_the_exact_ranking_and_honours_allowed_and_excluded():
    rng = np.random.default_rng(3)
    vectors = _unit(rng.standard_normal((500, 768)).astype(np.float32))
    ids = list(range(10, 510))
    index = EmbeddingIndex()
    index.add(ids[:300], vectors[:300])
    index.add(ids[300:], vectors[300:])  # grows past its first capacity
    query = _unit(rng.standard_normal(768).astype(np.float32))
    expected = [ids[i] for i in np.argsort(-(vectors @ query))]
    assert [cid for cid, _ in index.top(query, 25)] == expected[:25]
    allowed = np.array(expected[100:140:3])
    got = index.top(query, 5, allowed=allowed, exclude=[int(allowed[0])])
    assert [cid for cid, _ in got] == [int(c) for c in allowed[1:6]]
    scores = [s for _, s in got]
    assert scores == sorted(scores, reverse=True)
    assert index.top(query, 5, allowed=np.array([], dtype=np.int64)) == []


def test_index_overwrites_a_content_embedded_again():
    index = EmbeddingIndex(dim=4)
    index.add([1, 2], np.eye(4, dtype=np.float32)[:2])
    index.add([2], np.eye(4, dtype=np.float32)[2:3])
    assert len(index) == 2
    assert index.top(np.eye(4, dtype=np.float32)[2], 1) == [(2, 1.0)]


# ---------------------------------------------------------------- the analyser in the runner


def test_embeddings_are_stored_normalised_and_versioned(searchable):
    stored = searchable.embeddings()
    names = {p.name for p in [*searchable.pictures, searchable.copy, searchable.duplicate]}
    assert set(stored) == names
    versions = {version for version, _ in stored.values()}
    assert len(versions) == 1 and next(iter(versions)).startswith("1-")
    for _, vector in stored.values():
        assert vector.shape == (768,)
        assert np.linalg.norm(vector) == pytest.approx(1.0, abs=2e-3)
    # Two files, one content: one embedding row.
    engine, sessions = searchable.sessions()
    try:
        with sessions() as session:
            rows = session.scalar(select(func.count()).select_from(ClipEmbedding))
            results = session.scalar(select(func.count()).select_from(AnalysisResult)
                                     .where(AnalysisResult.analyser == "clip"))
    finally:
        engine.dispose()
    assert rows == results == len(names) - 1


def test_stored_embedding_matches_transformers_image_features(searchable):
    import torch
    from transformers import CLIPModel

    from inference.preprocess import ClipRecipe, as_tensor, decode
    from inference.testing import CLIP_PREPROCESSOR

    clip = CLIPModel.from_pretrained(searchable.models / "aesthetic" / "clip-vit-large-patch14",
                                     local_files_only=True).eval()
    x = torch.stack([as_tensor(ClipRecipe.from_config(CLIP_PREPROCESSOR)(
        decode(searchable.pictures[2]).rgb()))])
    with torch.no_grad():
        image = clip.visual_projection(clip.vision_model(pixel_values=x).pooler_output)
    expected = torch.nn.functional.normalize(image, dim=-1)[0].numpy()
    np.testing.assert_allclose(searchable.embeddings()["p2.png"][1], expected, atol=2e-3)


def test_unchanged_weights_never_re_embed_and_new_weights_do(tmp_path, monkeypatch):
    from inference.testing import write_aesthetic

    library = build_search_library(tmp_path, analysers=("clip",))
    before = library.embeddings()
    engine, sessions = library.sessions()
    try:
        runner = AnalysisRunner(sessions, library.models, Settings(enabled_analysers=["clip"]),
                                device="cpu")
        runner.run(threading.Event())
        assert sum(runner.stats.analysed.values()) == 0  # nothing to redo
        with sessions() as session:
            assert session.scalar(select(func.count()).select_from(QueuedAnalysis)) == 0
    finally:
        engine.dispose()
    assert library.embeddings().keys() == before.keys()
    write_aesthetic(library.models, seed=5, vision_seed=5)  # other CLIP weights
    analyse(library.db, library.models, ["clip"])
    after = library.embeddings()
    old_version = next(iter(before.values()))[0]
    assert {v for v, _ in after.values()} != {old_version}
    assert not np.allclose(after["p0.png"][1], before["p0.png"][1])


# ---------------------------------------------------------------- search and similar


def test_search_ranks_by_the_text_tower(searchable, search):
    """The expected order is computed from the same model: transformers' text features
    against the stored image embeddings."""
    import torch
    from transformers import CLIPModel, CLIPTokenizer

    folder = searchable.models / "aesthetic" / "clip-vit-large-patch14"
    clip = CLIPModel.from_pretrained(folder, local_files_only=True).eval()
    tokens = CLIPTokenizer.from_pretrained(folder, local_files_only=True)(
        ["a red umbrella in the rain"], return_tensors="pt", padding=True)
    with torch.no_grad():
        text = clip.text_projection(clip.text_model(**tokens).pooler_output)
    text = torch.nn.functional.normalize(text, dim=-1)[0].numpy()
    engine, sessions = searchable.sessions()
    try:
        with sessions() as session:
            vectors = {cid: np.frombuffer(v, "<f2").astype(np.float32) for cid, v in
                       session.execute(select(ClipEmbedding.content_id, ClipEmbedding.vector))}
    finally:
        engine.dispose()
    expected = sorted(vectors, key=lambda cid: -float(vectors[cid] @ text))
    ranking = search.rank_text("a red umbrella in the rain", 10)
    assert list(ranking.content_ids) == expected
    for cid, score in zip(ranking.content_ids, ranking.scores):
        assert score == pytest.approx(float(vectors[cid] @ text), abs=1e-5)
    # A different text ranks differently (the text tower, not a fixed order).
    other = search.rank_text("zzzz qqqq 1234 !!", 10)
    assert list(other.content_ids) != list(ranking.content_ids)


def test_recent_query_texts_are_cached(search):
    search.rank_text("a cat", 3)
    search.rank_text("a dog", 3)
    search.rank_text("a cat", 3)
    assert search.texts_encoded == 2


def test_similar_puts_the_re_encoded_copy_first_and_never_the_picture_itself(searchable,
                                                                          search):
    ids = searchable.image_ids()
    resolved = search.resolve(parse_filter(f"similar:{ids['p0.png']}"))
    engine, sessions = searchable.sessions()
    try:
        with sessions() as session:
            rows, _ = fetch_page(session, resolved, limit=50)
    finally:
        engine.dispose()
    names = [row.name for row in rows]
    assert names[0] == "p0_copy.jpg"
    assert "p0.png" not in names
    # Both files of p1's content are listed (they are other pictures than p0).
    assert {"p1.png", "p1_duplicate.png"} <= set(names)
    scores = [row.sort_value for row in rows]
    assert scores == sorted(scores, reverse=True)
    # similar: on the duplicate excludes both files of that content.
    dup = search.resolve(parse_filter(f"similar:{ids['p1_duplicate.png']}"))
    engine, sessions = searchable.sessions()
    try:
        with sessions() as session:
            names = [r.name for r in fetch_page(session, dup, limit=50)[0]]
    finally:
        engine.dispose()
    assert "p1.png" not in names and "p1_duplicate.png" not in names
    assert len(names) == 6


def test_other_terms_narrow_before_ranking(searchable, search):
    """A semantic term combines with every other term: the ranking is done among the
    pictures the other terms allow, so a limit of 1 finds the best allowed picture both when
    it is among the closest overall (checked directly) and when it is the farthest (every
    allowed picture is listed and ranked)."""
    from db.review import set_decision

    engine, sessions = searchable.sessions()
    order = list(search.rank_text("sunset", 10).content_ids)  # all 7 contents, best first
    try:
        for accepted, expected in (([order[-1]], order[-1]), ([order[-1], order[1]], order[1])):
            with write_transaction(sessions) as session:
                set_decision(session, order, "none")
                set_decision(session, accepted, "accepted")
            narrowed = search.resolve(parse_filter("like:sunset is:accepted"), limit=1)
            assert list(narrowed.ranking.content_ids) == [expected]
            with sessions() as session:
                rows, _ = fetch_page(session, narrowed, limit=10)
                assert {r.content_id for r in rows} == {expected}
                assert count_images(session, narrowed) == len(rows)
        with sessions() as session:
            # Sorted by time instead of similarity when a sort: is given.
            by_time = search.resolve(parse_filter("like:sunset sort:oldest"))
            names = [r.name for r in fetch_page(session, by_time, limit=50)[0]]
            assert names[:3] == ["p0.png", "p1.png", "p2.png"]
            nothing = search.resolve(parse_filter(
                f'like:sunset folder:"{searchable.folder}" -tag:x prompt:zzz'))
            assert fetch_page(session, nothing, limit=10)[0] == []
    finally:
        with write_transaction(sessions) as session:
            set_decision(session, order, "none")
        engine.dispose()


def test_new_embeddings_are_picked_up_incrementally(tmp_path):
    library = build_search_library(tmp_path, analysers=("clip",), embed=False)
    engine, sessions = library.sessions()
    try:
        search = SemanticSearch(sessions, library.models)
        with pytest.raises(SearchUnavailable, match="no picture has a CLIP embedding yet"):
            search.refresh()
        analyse(library.db, library.models, ["clip"])
        assert search.refresh() == 7
        assert search.refresh() == 0  # nothing new: nothing read
        with sessions() as session:
            session.execute(ClipEmbedding.__table__.delete().where(ClipEmbedding.content_id == 1))
            session.commit()  # test set-up: make one content lose its embedding
        fresh = SemanticSearch(sessions, library.models)
        assert fresh.refresh() == 6
    finally:
        engine.dispose()


def test_missing_weights_and_missing_embeddings_say_what_to_do(tmp_path, searchable):
    engine, sessions = searchable.sessions()
    try:
        no_models = SemanticSearch(sessions, tmp_path / "empty-models")
        with pytest.raises(SearchUnavailable) as missing:
            no_models.rank_text("a cat", 5)
        message = str(missing.value)
        assert "openai/clip-vit-large-patch14" in message and "gentriage models" in message
        with pytest.raises(SearchUnavailable, match="gentriage models"):
            no_models.resolve(parse_filter("similar:1"))
    finally:
        engine.dispose()
    other = build_search_library(tmp_path / "other", embed=False)
    engine, sessions = other.sessions()
    try:
        with pytest.raises(SearchUnavailable, match="gentriage scan"):
            SemanticSearch(sessions, other.models).rank_text("a cat", 5)
    finally:
        engine.dispose()


def test_no_text_tower_still_allows_similar(tmp_path):
    from inference.testing import write_aesthetic

    library = build_search_library(tmp_path, analysers=("clip",))
    write_aesthetic(library.models, with_text=False)  # same vision weights, text removed
    analyse(library.db, library.models, ["clip"])
    engine, sessions = library.sessions()
    try:
        search = SemanticSearch(sessions, library.models)
        with pytest.raises(SearchUnavailable, match="text tower"):
            search.rank_text("a cat", 3)
        ids = library.image_ids()
        resolved = search.resolve(parse_filter(f"similar:{ids['p0.png']}"))
        assert resolved.ranking is not None and len(resolved.ranking) == 6
        with pytest.raises(SearchUnavailable, match="no such image"):
            search.resolve(replace(parse_filter("similar:1"), similar_to=99999))
    finally:
        engine.dispose()
