"""The library change log (migration 0004, db.changes): every write that changes what a
window shows — whoever makes it, even plain SQL on another connection — is found by
`changes_since`; unchanged writes log nothing; a token older than the log or too many
changes say "everything"."""

from __future__ import annotations

import importlib

from sqlalchemy import create_engine, text, update

import db.changes
from db import store
from db.changes import LibraryChanges, changes_since, current_token
from db.flags import update_flags
from db.review import set_decision, set_rating
from db.schema import AnalysisResult, Content, Image
from db.transaction import write_transaction
from library.settings import Thresholds

TRIGGERS = {"library_changes_contents", "library_changes_images_insert",
            "library_changes_images_update", "library_changes_trim"}


def _facts(path: str, sha: str) -> store.FileFacts:
    return store.FileFacts(path=path, size=10, mtime_ns=1, sha256=sha, width=8, height=8,
                           format="PNG", has_thumbnail=False)


def _record(Session, path: str, sha: str) -> tuple[int, int]:
    with write_transaction(Session) as session:
        folder = store.add_folder(session, "/lib")
        recorded = store.record_image(session, _facts(path, sha), folder.id)
        content_id = session.get(Image, recorded.image_id).content_id
        return recorded.image_id, content_id


def _since(Session, token: int) -> LibraryChanges:
    with Session() as session:
        return changes_since(session, token)


def test_the_triggers_exist_at_head(engine):
    if engine.dialect.name == "postgresql":  # the trim is part of the one trigger function
        query, expected = "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal", \
            TRIGGERS - {"library_changes_trim"}
    else:
        query, expected = "SELECT name FROM sqlite_master WHERE type = 'trigger'", TRIGGERS
    with engine.connect() as connection:
        names = set(connection.exec_driver_sql(query).scalars())
    assert names >= expected


def test_reviews_flags_and_files_are_logged_and_unchanged_writes_are_not(Session):
    image_a, content_a = _record(Session, "/lib/a.png", "a" * 64)
    image_b, content_b = _record(Session, "/lib/b.png", "b" * 64)
    with Session() as session:
        token = current_token(session)
    assert _since(Session, token) == LibraryChanges(token)  # nothing since

    with write_transaction(Session) as session:
        set_decision(session, [content_a], "accepted", source="cli")
    changes = _since(Session, token)
    assert changes.content_ids == {content_a} and changes.image_ids == set()
    assert changes.token > token and not changes.everything
    token = changes.token

    with write_transaction(Session) as session:  # the same decision again: no change
        set_decision(session, [content_a], "accepted", source="cli")
        session.execute(update(Content).where(Content.id == content_b).values(rating=0))
    assert not _since(Session, token).any

    with write_transaction(Session) as session:  # a scan's analysis flags b
        session.add(AnalysisResult(content_id=content_b, analyser="nsfw-default",
                                   version="v1", label="nsfw", score=0.99,
                                   scores={"nsfw": 0.99}))
        session.flush()
        assert update_flags(session, [content_b], Thresholds(), ["nsfw-default"]) == [content_b]
        set_rating(session, [content_a], 4)
    changes = _since(Session, token)
    assert changes.content_ids == {content_a, content_b}
    token = changes.token

    with write_transaction(Session) as session:
        assert store.mark_missing(session, ["/lib/a.png"]) == [image_a]
    image_c, content_c = _record(Session, "/lib/c.png", "c" * 64)
    changes = _since(Session, token)
    assert changes.image_ids == {image_a, image_c}
    assert {content_a, content_c} <= changes.content_ids


def test_a_write_on_another_connection_is_seen(Session, engine):
    _image, content = _record(Session, "/lib/a.png", "a" * 64)
    with Session() as session:
        token = current_token(session)
    # Another program: a plain engine on the same database, no GenTriage code (no pragmas,
    # no write lock, no session), one UPDATE in SQL.
    other = create_engine(engine.url)
    try:
        with other.begin() as connection:
            connection.execute(text("UPDATE contents SET flagged = true, flag_nsfw = true "
                                    "WHERE id = :id"), {"id": content})
    finally:
        other.dispose()
    assert _since(Session, token).content_ids == {content}


def test_too_many_changes_say_everything(Session, monkeypatch):
    ids = [_record(Session, f"/lib/{k}.png", f"{k:064x}")[1] for k in range(5)]
    with Session() as session:
        token = current_token(session)
    monkeypatch.setattr(db.changes, "LISTED_MAX", 3)
    with write_transaction(Session) as session:
        set_decision(session, ids, "rejected")
    changes = _since(Session, token)
    assert changes.everything and changes.any and changes.content_ids == set()
    assert _since(Session, changes.token) == LibraryChanges(changes.token)


def test_the_log_is_trimmed_and_a_token_older_than_it_says_everything(Session, engine):
    _image, content = _record(Session, "/lib/a.png", "a" * 64)
    with Session() as session:
        old_token = current_token(session)
    keep = importlib.import_module("db.migrations.versions.0004_library_changes").KEEP
    trim_every = importlib.import_module(
        "db.migrations.versions.0004_library_changes").TRIM_EVERY
    with engine.begin() as connection:  # keep + 5 rating changes, each logged
        connection.execute(text("UPDATE contents SET rating = :rating WHERE id = :id"),
                           [{"rating": i % 5 + 1, "id": content} for i in range(keep + 5)])
        rows = connection.exec_driver_sql("SELECT count(*) FROM library_changes").scalar()
    if engine.dialect.name == "postgresql":  # trimmed every TRIM_EVERY-th id
        assert keep <= rows < keep + trim_every
    else:
        assert rows == keep
    changes = _since(Session, old_token)
    assert changes.everything
    # A recent token still gets the list.
    recent = changes.token - 2
    assert _since(Session, recent).content_ids == {content}


def test_a_token_from_another_database_says_everything(Session):
    _record(Session, "/lib/a.png", "a" * 64)
    changes = _since(Session, 10**9)  # kept from a library since replaced
    assert changes.everything and changes.token < 10**9
