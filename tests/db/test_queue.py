"""db.queue's counts and leases, on both backends (the runner logs and acts on them)."""

from __future__ import annotations

from datetime import timedelta

from db import queue, store
from db.schema import AnalysisResult, QueuedAnalysis, utcnow
from db.transaction import write_transaction


def _record(Session, n: int) -> list[int]:
    ids = []
    with write_transaction(Session) as session:
        folder = store.add_folder(session, "/lib")
        for k in range(n):
            recorded = store.record_image(session, store.FileFacts(
                path=f"/lib/{k}.png", size=1, mtime_ns=1, sha256=f"{k + 1:064x}", width=8,
                height=8, format="PNG", has_thumbnail=False), folder.id)
            ids.append(recorded.content_id)
        session.query(QueuedAnalysis).delete()
    return ids


def test_enqueue_outdated_counts_what_it_added(Session):
    ids = _record(Session, 4)
    with write_transaction(Session) as session:
        session.add(AnalysisResult(content_id=ids[0], analyser="nsfw-default", version="v1",
                                   scores={}))
    with write_transaction(Session) as session:
        assert queue.enqueue_outdated(session, {"nsfw-default": "v1"}) == 3
    with write_transaction(Session) as session:  # queued already: nothing added
        assert queue.enqueue_outdated(session, {"nsfw-default": "v1"}) == 0
        assert queue.queued_count(session) == 3


def test_leases_are_counted_released_and_retaken(Session):
    ids = _record(Session, 3)
    with write_transaction(Session) as session:
        assert queue.enqueue_outdated(session, {"nsfw-default": "v1"}) == 3
    until = utcnow() + timedelta(minutes=5)
    with write_transaction(Session) as session:
        taken = queue.lease_next(session, "gone", 2, until)
    assert len(taken) == 2 and all(t.attempts == 1 for t in taken)
    with write_transaction(Session) as session:
        assert queue.leaseholders(session) == ["gone"]
        rest = queue.lease_next(session, "other", 5, until)
    assert [t.content_id for t in rest] == sorted(set(ids) - {t.content_id for t in taken})
    with write_transaction(Session) as session:
        assert queue.release_leases_of(session, ["gone"]) == 2
        queue.release(session, "other", [rest[0].content_id], uncount_attempt=True)
    with write_transaction(Session) as session:
        again = queue.lease_next(session, "new", 5, until)
    attempts = {t.content_id: t.attempts for t in again}
    assert attempts == {**{t.content_id: 2 for t in taken}, rest[0].content_id: 1}
