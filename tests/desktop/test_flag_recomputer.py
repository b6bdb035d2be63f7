"""FlagRecomputer: chunked commits (a review can be written while it runs), progressive
announcements, and the final list of every changed content."""

import sqlite3
import threading

import pytest
from sqlalchemy import insert, select

import db.flags
from db.schema import AnalysisResult, Content
from desktop.workers import FlagRecomputer
from library.settings import Thresholds

ALL_ANALYSERS = ["nsfw-default", "nsfw-vit", "safety-checker", "coherence"]
CONTENTS = 2_000  # four chunks of db.flags.CHUNK


@pytest.fixture
def nsfw_library(library):
    """CONTENTS contents whose stored flags are stale: each has an NSFW score above the
    default threshold but is stored as not flagged, so every chunk has rows to rewrite."""
    with library.Session.begin() as session:
        session.execute(insert(Content), [
            {"sha256": f"{k:064x}", "decision": "none", "rating": 0, "flagged": False,
             "flag_nsfw": False, "flag_incoherent": False, "analysed": False}
            for k in range(1, CONTENTS + 1)])
        ids = list(session.scalars(select(Content.id).order_by(Content.id)))
        session.execute(insert(AnalysisResult), [
            {"content_id": cid, "analyser": "nsfw-default", "version": "v1", "label": "nsfw",
             "score": 0.9, "scores": {"nsfw": 0.9}} for cid in ids])
    return library, ids


def test_a_review_commits_while_a_recompute_runs(qtbot, nsfw_library, monkeypatch):
    library, ids = nsfw_library
    assert len(ids) > 2 * db.flags.CHUNK
    reviewed = ids[-1]  # in the last chunk: not yet recomputed when the review is written
    outcome: dict[str, object] = {}
    real_update_chunk = db.flags._update_chunk
    chunks_started = 0

    def review(seen_chunks: int) -> None:
        # A keypress's write, waiting for the lock like the app's does.
        connection = sqlite3.connect(library.path, timeout=10)
        try:
            connection.execute(f"UPDATE {Content.__table__.name} SET decision = 'accepted' "
                               "WHERE id = ?", (reviewed,))
            connection.commit()
            outcome["review"] = "committed"
            outcome["chunks_started_at_commit"] = chunks_started
        except sqlite3.OperationalError as exc:
            outcome["review"] = str(exc)
        finally:
            connection.close()

    reviewer: list[threading.Thread] = []

    def review_during_the_second_chunk(session, chunk, thresholds, enabled):
        # Runs on the recompute thread inside the second chunk's write transaction: the
        # review has to wait for that chunk, and must get in before the whole run ends
        # (one transaction for the run, or chunks that re-lock with no gap, would keep it
        # out until the end).
        nonlocal chunks_started
        chunks_started += 1
        if chunks_started == 2:
            reviewer.append(threading.Thread(target=review, args=(chunks_started,)))
            reviewer[0].start()
        return real_update_chunk(session, chunk, thresholds, enabled)

    monkeypatch.setattr(db.flags, "_update_chunk", review_during_the_second_chunk)
    recomputer = FlagRecomputer(library.Session)
    progressive: list[list[int]] = []
    recomputer.flags_changed.connect(progressive.append)
    with qtbot.waitSignal(recomputer.flags_recomputed, timeout=30_000) as done:
        recomputer.recompute(Thresholds(), ALL_ANALYSERS)
    recomputer.wait()
    reviewer[0].join(30)

    assert outcome.get("review") == "committed"
    assert outcome["chunks_started_at_commit"] < len(ids) // db.flags.CHUNK
    assert chunks_started == len(ids) // db.flags.CHUNK
    # Every content's flags changed, announced chunk by chunk as each was committed.
    assert sorted(done.args[0]) == ids
    assert len(progressive) == chunks_started
    assert sorted(cid for chunk in progressive for cid in chunk) == ids
    assert all(len(chunk) <= db.flags.CHUNK for chunk in progressive)
    with library.Session() as session:
        assert session.scalar(select(Content.decision).where(Content.id == reviewed)) == \
            "accepted"  # the recompute did not overwrite the review
        assert set(session.scalars(select(Content.id).where(Content.flagged))) == set(ids)


def test_a_failure_keeps_the_chunks_already_committed(qtbot, nsfw_library, monkeypatch):
    library, ids = nsfw_library
    real_update_chunk = db.flags._update_chunk
    calls = 0

    def fail_on_the_third_chunk(session, chunk, thresholds, enabled):
        nonlocal calls
        calls += 1
        if calls == 3:
            raise sqlite3.OperationalError("disk I/O error")
        return real_update_chunk(session, chunk, thresholds, enabled)

    monkeypatch.setattr(db.flags, "_update_chunk", fail_on_the_third_chunk)
    recomputer = FlagRecomputer(library.Session)
    progressive: list[list[int]] = []
    recomputer.flags_changed.connect(progressive.append)
    with qtbot.assertNotEmitted(recomputer.flags_recomputed), \
            qtbot.waitSignal(recomputer.recompute_failed, timeout=30_000) as failed:
        recomputer.recompute(Thresholds(), ALL_ANALYSERS)
    recomputer.wait()

    assert "disk I/O error" in failed.args[0]
    committed = ids[:2 * db.flags.CHUNK]
    assert sorted(cid for chunk in progressive for cid in chunk) == committed
    with library.Session() as session:
        assert sorted(session.scalars(select(Content.id).where(Content.flagged))) == committed


def test_a_burst_of_requests_costs_one_pass_with_the_newest_thresholds(qtbot, nsfw_library,
                                                                       monkeypatch):
    """Settings changed five times while a recompute runs: the running pass stops at its
    next chunk boundary and one pass with the newest thresholds follows; the requests in
    between are never run (they are replaced, not queued)."""
    library, ids = nsfw_library
    real_update_chunk = db.flags._update_chunk
    passes: list[float] = []  # the nsfw threshold of every chunk recomputed
    first_chunk_entered, release = threading.Event(), threading.Event()

    def held_first_chunk(session, chunk, thresholds, enabled):
        passes.append(thresholds.nsfw_default)
        if len(passes) == 1:
            first_chunk_entered.set()
            release.wait(30)
        return real_update_chunk(session, chunk, thresholds, enabled)

    monkeypatch.setattr(db.flags, "_update_chunk", held_first_chunk)
    recomputer = FlagRecomputer(library.Session)
    finished: list[list[int]] = []
    recomputer.flags_recomputed.connect(finished.append)
    try:
        recomputer.recompute(Thresholds(nsfw_default=0.5), ALL_ANALYSERS)  # flags them all
        qtbot.waitUntil(first_chunk_entered.is_set, timeout=10_000)
        for threshold in (0.6, 0.7, 0.8, 0.95):  # the last one flags nothing (scores 0.9)
            recomputer.recompute(Thresholds(nsfw_default=threshold), ALL_ANALYSERS)
    finally:
        release.set()
    qtbot.waitUntil(lambda: len(finished) == 1, timeout=30_000)
    recomputer.wait(30)

    chunks = CONTENTS // db.flags.CHUNK
    assert passes == [0.5] + [0.95] * chunks
    assert len(finished) == 1
    # Announced once, with every content rewritten by either pass (all of them: each is
    # now marked analysed).
    assert finished[0] == ids
    with library.Session() as session:
        assert session.scalars(select(Content.id).where(Content.flagged)).all() == []


def test_stop_ends_a_running_pass_and_refuses_new_requests(qtbot, nsfw_library, monkeypatch):
    library, _ids = nsfw_library
    real_update_chunk = db.flags._update_chunk
    entered, release = threading.Event(), threading.Event()
    calls = 0

    def held(session, chunk, thresholds, enabled):
        nonlocal calls
        calls += 1
        entered.set()
        release.wait(30)
        return real_update_chunk(session, chunk, thresholds, enabled)

    monkeypatch.setattr(db.flags, "_update_chunk", held)
    recomputer = FlagRecomputer(library.Session)
    recomputer.recompute(Thresholds(), ALL_ANALYSERS)
    assert entered.wait(10)
    stopper = threading.Thread(target=recomputer.stop)
    stopper.start()
    release.set()
    stopper.join(30)
    assert recomputer.wait(0)
    assert calls == 1  # the chunk in progress was committed, no other one started
    recomputer.recompute(Thresholds(), ALL_ANALYSERS)
    assert recomputer.wait(0) and calls == 1
