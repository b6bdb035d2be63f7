"""The stored sort:stack rank (`images.stack_rank`, migration 0009) is kept by the database's
own triggers: whatever is written, and however, `sort:stack` shows stacks together, each best
first (highest rating, accepted, highest aesthetic score, newest), then the images in no
stack, newest first. Checked on both backends against the rule computed here in Python."""

from __future__ import annotations

import math
import random

import pytest
from sqlalchemy import delete, insert, select, update

from db.engine import session_factory
from db.filters import parse_filter
from db.queries import fetch_page, position_of
from db.schema import AnalysisResult, Content, Folder, Image

STACKS = ("aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb", "cccccccccccccccc", None)
DECISIONS = ("none", "accepted", "rejected")
SORT_STACK = parse_filter("sort:stack")


@pytest.fixture
def engine(library_db):
    engine = library_db.open()  # both backends
    yield engine
    engine.dispose()


def expected_order(session) -> list[int]:
    """sort:stack by its definition, from the plain columns."""
    aesthetic = dict(session.execute(
        select(AnalysisResult.content_id, AnalysisResult.score).where(
            AnalysisResult.analyser == "aesthetic", AnalysisResult.error.is_(None))).all())
    rows = session.execute(select(Image.id, Image.mtime_ns, Content.id, Content.stack_key,
                                  Content.rating, Content.decision)
                           .select_from(Image).outerjoin(Content)).all()
    stacked = [r for r in rows if r.stack_key is not None]
    rest = [r for r in rows if r.stack_key is None]

    def best_first(r) -> tuple:
        score = aesthetic.get(r[2])
        return (r.stack_key, -r.rating, 0 if r.decision == "accepted" else 1,
                math.inf if score is None else -score, -r.mtime_ns, r.id)

    return ([r.id for r in sorted(stacked, key=best_first)]
            + [r.id for r in sorted(rest, key=lambda r: (-r.mtime_ns, -r.id))])


def shown_order(session, page: int = 5) -> list[int]:
    """The grid's order, read in small pages (page boundaries must neither lose nor repeat
    a row)."""
    order, cursor = [], None
    while True:
        rows, cursor = fetch_page(session, SORT_STACK, cursor, limit=page)
        order += [r.image_id for r in rows]
        if cursor is None:
            return order


def _library(session, contents: int, images: int, rng: random.Random) -> None:
    session.execute(insert(Folder), [{"id": 1, "path": "/lib"}])
    session.execute(insert(Content), [
        {"id": i, "sha256": f"{i:064x}", "decision": rng.choice(DECISIONS),
         "rating": rng.randint(0, 5), "flagged": False, "flag_nsfw": False,
         "flag_incoherent": False, "analysed": True, "stack_key": rng.choice(STACKS)}
        for i in range(1, contents + 1)])
    session.execute(insert(AnalysisResult), [
        {"content_id": i, "analyser": "aesthetic", "version": "1",
         "score": rng.randint(0, 40) / 4, "scores": {}}
        for i in range(1, contents + 1) if rng.random() < 0.6])
    session.execute(insert(Image), [
        {"id": i, "path": f"/lib/{i}.png", "name": f"{i}.png", "folder_id": 1,
         "content_id": rng.randint(1, contents), "size": 1, "mtime_ns": 10_000 + 7 * i,
         "status": "ok", "has_thumbnail": False} for i in range(1, images + 1)])
    session.commit()


def _random_change(session, rng: random.Random, contents: int, next_image: int) -> str:
    """One write of the kinds the app, the scanner and the analysis make; what it was."""
    content = rng.randint(1, contents)
    kind = rng.choice(("rating", "decision", "stack", "score", "score error", "score gone",
                       "score moved", "mtime", "picture", "new image", "other analyser"))
    has_score = session.get(AnalysisResult, (content, "aesthetic")) is not None
    if kind == "rating":
        session.execute(update(Content).where(Content.id == content)
                        .values(rating=rng.randint(0, 5)))
    elif kind == "decision":
        session.execute(update(Content).where(Content.id == content)
                        .values(decision=rng.choice(DECISIONS)))
    elif kind == "stack":
        session.execute(update(Content).where(Content.id == content)
                        .values(stack_key=rng.choice(STACKS)))
    elif kind == "score" and has_score:
        session.execute(update(AnalysisResult).where(
            AnalysisResult.content_id == content, AnalysisResult.analyser == "aesthetic")
            .values(score=rng.randint(0, 40) / 4, error=None))
    elif kind == "score":
        session.execute(insert(AnalysisResult).values(
            content_id=content, analyser="aesthetic", version="1",
            score=rng.randint(0, 40) / 4, scores={}))
    elif kind == "score error" and has_score:
        session.execute(update(AnalysisResult).where(
            AnalysisResult.content_id == content, AnalysisResult.analyser == "aesthetic")
            .values(error="decode failed"))
    elif kind == "score gone":
        session.execute(delete(AnalysisResult).where(
            AnalysisResult.content_id == content, AnalysisResult.analyser == "aesthetic"))
    elif kind == "score moved" and has_score:  # plain SQL could: the rank follows
        other = rng.randint(1, contents)
        if session.get(AnalysisResult, (other, "aesthetic")) is None:
            session.execute(update(AnalysisResult).where(
                AnalysisResult.content_id == content, AnalysisResult.analyser == "aesthetic")
                .values(content_id=other))
    elif kind == "mtime":
        session.execute(update(Image).where(Image.id == rng.randint(1, next_image - 1))
                        .values(mtime_ns=10_000 + rng.randint(0, 10**6) * 11 + 3))
    elif kind == "picture":
        session.execute(update(Image).where(Image.id == rng.randint(1, next_image - 1))
                        .values(content_id=rng.choice((content, None))))
    elif kind == "new image":
        session.execute(insert(Image).values(
            id=next_image, path=f"/lib/{next_image}.png", name=f"{next_image}.png",
            folder_id=1, content_id=content, size=1, mtime_ns=5 + next_image, status="ok",
            has_thumbnail=False))
    elif kind == "other analyser":  # another analyser's score changes nothing
        session.execute(delete(AnalysisResult).where(
            AnalysisResult.content_id == content, AnalysisResult.analyser == "coherence"))
        session.execute(insert(AnalysisResult).values(
            content_id=content, analyser="coherence", version="1",
            score=rng.random(), scores={}))
    session.commit()
    return kind


def test_sort_stack_follows_every_kind_of_write(engine):
    rng = random.Random(9)
    with session_factory(engine)() as session:
        _library(session, contents=12, images=30, rng=rng)
        assert shown_order(session) == expected_order(session)
        next_image = 31
        for step in range(120):
            kind = _random_change(session, rng, 12, next_image)
            next_image += kind == "new image"
            assert shown_order(session) == expected_order(session), (step, kind)
        order = shown_order(session)
        assert [position_of(session, SORT_STACK, i) for i in order] == list(range(len(order)))


def test_a_library_made_before_the_stored_rank_gets_it_on_upgrade(library_db):
    from alembic import command

    from db.migrate import alembic_config

    engine = library_db.open()
    with engine.begin() as connection:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, "0008_review_authors")
    with session_factory(engine)() as session:  # written with no rank column, no triggers
        _library(session, contents=10, images=25, rng=random.Random(4))
    engine.dispose()

    engine = library_db.open()  # migrated to head again
    try:
        with session_factory(engine)() as session:
            assert shown_order(session) == expected_order(session)
            stacked = session.scalar(select(Image.id).join(Content).where(
                Content.stack_key.is_not(None)).limit(1))
            assert stacked is not None
            assert session.get(Image, stacked).stack_rank is not None
    finally:
        engine.dispose()


def test_an_aesthetic_result_moved_to_another_picture_reranks_both(engine):
    """Plain SQL may move a result between pictures: the one that lost it drops back."""
    with session_factory(engine)() as session:
        session.execute(insert(Folder), [{"id": 1, "path": "/lib"}])
        session.execute(insert(Content), [
            {"id": i, "sha256": f"{i:064x}", "decision": "none", "rating": 0,
             "flagged": False, "flag_nsfw": False, "flag_incoherent": False, "analysed": True,
             "stack_key": STACKS[0] if i < 3 else None} for i in (1, 2, 3)])
        session.execute(insert(AnalysisResult), [
            {"content_id": 1, "analyser": "aesthetic", "version": "1", "score": 9.0,
             "scores": {}},
            {"content_id": 2, "analyser": "aesthetic", "version": "1", "score": 5.0,
             "scores": {}}])
        session.execute(insert(Image), [
            {"id": i, "path": f"/lib/{i}.png", "name": f"{i}.png", "folder_id": 1,
             "content_id": i, "size": 1, "mtime_ns": 100 + i, "status": "ok",
             "has_thumbnail": False} for i in (1, 2, 3)])
        session.commit()
        assert shown_order(session) == [1, 2, 3]  # 9.0 before 5.0
        session.execute(update(AnalysisResult).where(AnalysisResult.content_id == 1)
                        .values(content_id=3))
        session.commit()
        assert shown_order(session) == expected_order(session) == [2, 1, 3]
