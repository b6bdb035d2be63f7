import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, insert, select, text

from db import review
from db.schema import Content, ReviewLog


@pytest.fixture
def contents(Session):
    with Session.begin() as session:
        rows = [Content(sha256=f"{i:064x}") for i in range(3)]
        session.add_all(rows)
    return [c.id for c in rows]


def state(Session, ids):
    with Session() as session:
        return [(c.decision, c.rating) for c in
                session.scalars(select(Content).where(Content.id.in_(ids)).order_by(Content.id))]


def test_decision_and_rating_are_written_and_logged(Session, contents):
    with Session.begin() as session:
        review.set_decision(session, contents[:2], "accepted")
        review.set_rating(session, [contents[0]], 4)
    assert state(Session, contents) == [("accepted", 4), ("accepted", 0), ("none", 0)]
    with Session() as session:
        log = session.scalars(select(ReviewLog).order_by(ReviewLog.id)).all()
    assert [(r.field, r.old_value, r.new_value) for r in log] == [
        ("decision", "none", "accepted"), ("decision", "none", "accepted"),
        ("rating", "0", "4")]
    assert log[0].group_id == log[1].group_id != log[2].group_id


def test_unchanged_values_log_nothing(Session, contents):
    with Session.begin() as session:
        assert review.set_decision(session, contents, "none") is None
        assert review.set_rating(session, contents, 0) is None
    with Session() as session:
        assert session.scalar(select(func.count(ReviewLog.id))) == 0


def test_undo_and_redo_any_number_of_steps(Session, contents):
    a, b, _ = contents
    with Session.begin() as session:
        review.set_decision(session, [a], "accepted")
    with Session.begin() as session:
        review.set_decision(session, [a, b], "rejected")
    with Session.begin() as session:
        review.set_rating(session, [b], 5)
    history = [state(Session, [a, b])]
    for _ in range(3):
        with Session.begin() as session:
            assert review.undo(session)
        history.append(state(Session, [a, b]))
    assert history == [
        [("rejected", 0), ("rejected", 5)],
        [("rejected", 0), ("rejected", 0)],
        [("accepted", 0), ("none", 0)],
        [("none", 0), ("none", 0)],
    ]
    with Session.begin() as session:
        assert review.undo(session) == [] and not review.can_undo(session)
    for expected in reversed(history[:-1]):
        with Session.begin() as session:
            assert review.redo(session)
        assert state(Session, [a, b]) == expected
    with Session.begin() as session:
        assert not review.can_redo(session)


def test_a_new_action_after_undo_drops_the_redo_branch(Session, contents):
    a = contents[0]
    with Session.begin() as session:
        review.set_decision(session, [a], "accepted")
    with Session.begin() as session:
        review.undo(session)
        assert review.can_redo(session)
    with Session.begin() as session:
        review.set_decision(session, [a], "rejected")
    with Session.begin() as session:
        assert not review.can_redo(session)
        review.undo(session)
    assert state(Session, [a]) == [("none", 0)]


def test_undo_survives_a_restart_and_is_shared_between_processes(engine, Session, contents):
    """The stacks come from the log, so a decision made by `gentriage review` (another
    process, source "cli") is undone by the app after a restart."""
    from db.engine import session_factory

    with Session.begin() as session:
        review.set_decision(session, [contents[1]], "rejected", source="cli")
    engine.dispose()
    with session_factory(engine).begin() as session:
        changes = review.undo(session)
    assert [(c.field, c.new_value) for c in changes] == [("decision", "none")]
    assert state(Session, [contents[1]]) == [("none", 0)]


def test_path_changes_join_the_decision_group_and_come_back_on_undo(Session, contents):
    a = contents[0]
    with Session.begin() as session:
        group = review.set_decision(session, [a], "rejected")
        review.record_path_changes(session, [(a, "/out/a.png", "/rejected/a.png")], group=group)
    with Session.begin() as session:
        changes = review.undo(session)
    assert ("path", "/rejected/a.png", "/out/a.png") in [
        (c.field, c.old_value, c.new_value) for c in changes]
    assert state(Session, [a]) == [("none", 0)]


def test_bad_values_are_refused(Session, contents):
    with Session.begin() as session:
        with pytest.raises(review.ReviewError):
            review.set_decision(session, contents, "maybe")
        with pytest.raises(review.ReviewError):
            review.set_rating(session, contents, 6)


def test_moves_noticed_by_the_library_are_audit_entries_not_undo_steps(Session, contents):
    a = contents[0]
    with Session.begin() as session:
        review.set_decision(session, [a], "accepted")
    with Session.begin() as session:
        review.undo(session)
    with Session.begin() as session:
        review.record_path_changes(session, [(a, "/out/a.png", "/out/b/a.png")], source="watch")
    with Session.begin() as session:
        # the watch entry neither became the undo step nor dropped the redo branch
        assert not review.can_undo(session)
        assert [c.field for c in review.redo(session)] == ["decision"]
    assert state(Session, [a]) == [("accepted", 0)]


def test_a_decision_and_a_rating_in_one_group_undo_as_one_step(Session, contents):
    a, b, _ = contents
    with Session.begin() as session:
        group = review.set_decision(session, [a, b], "accepted", source="cli")
        assert review.set_rating(session, [a, b], 3, source="cli", group=group) == group
    with Session.begin() as session:
        undone = review.undo(session)
    assert {(c.content_id, c.field) for c in undone} == {
        (a, "decision"), (b, "decision"), (a, "rating"), (b, "rating")}
    assert state(Session, [a, b]) == [("none", 0), ("none", 0)]
    with Session() as session:
        assert not review.can_undo(session)
    with Session.begin() as session:
        review.redo(session)
    assert state(Session, [a, b]) == [("accepted", 3), ("accepted", 3)]


def test_joining_a_group_that_changed_nothing_starts_one(Session, contents):
    a = contents[0]
    with Session.begin() as session:
        group = review.set_decision(session, [a], "none")  # no change: no group
        assert group is None
        assert review.set_rating(session, [a], 2, group=group) is not None
    with Session.begin() as session:
        review.undo(session)
    assert state(Session, [a]) == [("none", 0)]


def _deep_history(Session, content_id: int, decisions: int, undone: int) -> None:
    """The log `decisions` keypresses on one picture (one group each, alternating accept /
    reject) followed by `undone` undos would leave, written in bulk to keep the test fast;
    the picture's decision is what that history leaves."""
    values = ["none"] + [("accepted", "rejected")[i % 2] for i in range(decisions)]
    me = review.local_reviewer()  # the author of the Session fixture's changes
    rows = [dict(group_id=g, content_id=content_id, field="decision", old_value=values[g - 1],
                 new_value=values[g], source="app", reverts_group=None, author=me)
            for g in range(1, decisions + 1)]
    rows += [dict(group_id=decisions + k, content_id=content_id, field="decision",
                  old_value=values[decisions - k + 1], new_value=values[decisions - k],
                  source="undo", reverts_group=decisions - k + 1, author=me)
             for k in range(1, undone + 1)]
    with Session.begin() as session:
        session.execute(insert(ReviewLog), rows)
        session.get(Content, content_id).decision = values[decisions - undone]


def test_undo_reaches_the_first_of_6000_decisions(Session, contents):
    """Undo has no depth limit (it stopped after 2,500 of 6,000 steps: a window of 5,000
    log groups, in which the undo groups themselves counted)."""
    a = contents[0]
    _deep_history(Session, a, 6000, 5990)
    assert state(Session, [a]) == [("rejected", 0)]  # after the 10th decision
    with Session.begin() as session:
        for _ in range(10):
            assert review.undo(session), "an undo step was lost"
        assert not review.can_undo(session) and review.can_redo(session)
    assert state(Session, [a]) == [("none", 0)]
    with Session.begin() as session:
        assert [c.new_value for c in review.redo(session)] == ["accepted"]
        assert [c.new_value for c in review.redo(session)] == ["rejected"]


def test_thousands_of_real_undos_and_redos_in_a_row(Session, contents):
    a = contents[0]
    _deep_history(Session, a, 1500, 0)
    for _ in range(3):  # a transaction per keypress would be slower still; chunks will do
        with Session.begin() as session:
            for _ in range(500):
                assert review.undo(session)
    with Session.begin() as session:
        assert not review.can_undo(session)
        for _ in range(1500):
            assert review.redo(session)
        assert not review.can_redo(session)
    assert state(Session, [a]) == [("rejected", 0)]  # the 1500th decision


def _reference_stacks(log: list[tuple[int, str, int | None]]) -> tuple[list[int], list[int]]:
    """The stacks by replaying the whole log forwards (the definition)."""
    done: list[int] = []
    undone: list[int] = []
    for group, source, reverts in log:
        if source == "undo" and reverts in done:
            done.remove(reverts)
            undone.append(reverts)
        elif source == "redo" and reverts in undone:
            undone.remove(reverts)
            done.append(reverts)
        elif source in review.USER_SOURCES:
            done.append(group)
            undone.clear()
    return done, undone


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.sampled_from(["app", "cli", "undo", "redo", "watch"]),
                      min_size=1, max_size=60))
def test_the_stacks_read_backwards_agree_with_a_full_replay(Session, contents, steps):
    """Any mix of actions, undos, redos and audit entries: the next undo and redo found
    by reading the log backwards are the tops of the stacks a full replay builds."""
    with Session.begin() as session:
        session.query(ReviewLog).delete()
    a, b, _ = contents
    for i, step in enumerate(steps):
        with Session.begin() as session:
            if step == "undo":
                review.undo(session)
            elif step == "redo":
                review.redo(session)
            elif step == "watch":
                review.record_path_changes(session, [(a, f"/x/{i}", f"/y/{i}")],
                                           source="watch")
            else:
                target = [a] if i % 3 else [a, b]
                review.set_rating(session, target, (i % 5) + 1, source=step)
        with Session() as session:
            log = session.execute(
                select(ReviewLog.group_id, ReviewLog.source, ReviewLog.reverts_group)
                .distinct().order_by(ReviewLog.group_id)).all()
            done, undone = _reference_stacks([tuple(row) for row in log])
            assert review._undo_target(session) == (done[-1] if done else None)
            assert review._redo_target(session) == (undone[-1] if undone else None)


# --- several reviewers (review_log.author, migration 0008) -------------------------------------

def _reviewer(Session, name):
    """Sessions of another reviewer on the same library (as `--user NAME` makes them)."""
    from db.engine import session_factory

    return session_factory(Session.kw["bind"], reviewer=name)


def _step(sessions, action, *args):
    from db.transaction import write_transaction

    with write_transaction(sessions) as session:
        return action(session, *args)


def test_the_log_names_who_decided(Session, contents):
    ann = _reviewer(Session, "ann")
    _step(ann, review.set_decision, [contents[0]], "accepted")
    _step(Session, review.set_rating, [contents[1]], 3)
    with Session() as session:
        authors = session.scalars(select(ReviewLog.author).order_by(ReviewLog.id)).all()
    assert authors == ["ann", review.local_reviewer()]


def test_each_reviewer_undoes_and_redoes_only_their_own_steps(Session, contents):
    a, b, c = contents
    ann, bob = _reviewer(Session, "ann"), _reviewer(Session, "bob")
    _step(ann, review.set_decision, [a], "accepted")
    _step(bob, review.set_decision, [b], "rejected")
    _step(ann, review.set_rating, [c], 4)
    assert [c_.content_id for c_ in _step(ann, review.undo)] == [c]
    assert [c_.content_id for c_ in _step(ann, review.undo)] == [a]
    assert not _step(ann, review.can_undo) and _step(bob, review.can_undo)
    assert state(Session, contents) == [("none", 0), ("rejected", 0), ("none", 0)]
    assert not _step(bob, review.can_redo), "bob's redo stack holds ann's undos"
    assert [c_.content_id for c_ in _step(bob, review.undo)] == [b]
    assert state(Session, contents) == [("none", 0), ("none", 0), ("none", 0)]
    assert [c_.content_id for c_ in _step(ann, review.redo)] == [a]
    assert state(Session, [a]) == [("accepted", 0)]
    assert _step(bob, review.can_redo) and _step(ann, review.can_redo)


def test_an_undo_never_overwrites_what_another_reviewer_decided_since(Session, contents):
    a = contents[0]
    ann, bob = _reviewer(Session, "ann"), _reviewer(Session, "bob")
    _step(ann, review.set_decision, [a], "accepted")
    _step(bob, review.set_decision, [a], "rejected")
    undone = _step(ann, review.undo)  # ann takes back her accept: bob's reject stands
    assert [(u.old_value, u.new_value) for u in undone] == [("rejected", "rejected")]
    assert state(Session, [a]) == [("rejected", 0)]
    assert not _step(ann, review.can_undo)
    _step(ann, review.redo)  # nor does her redo overwrite it
    assert state(Session, [a]) == [("rejected", 0)]
    _step(bob, review.undo)  # bob's undo restores what he changed: ann's accept
    assert state(Session, [a]) == [("accepted", 0)]
    with Session() as session:  # the log stays a chain of true old values
        rows = session.scalars(select(ReviewLog).order_by(ReviewLog.id)).all()
    assert all(p.new_value == n.old_value for p, n in zip(rows, rows[1:]))


def test_review_steps_logged_before_authors_belong_to_the_account_that_upgrades(
        blank_library_db):
    """A library from before migration 0008: its log rows get the upgrading account's name
    (the OS user; db.review.local_reviewer), so that person can still undo them."""
    from alembic import command

    from db.engine import create_library_engine, open_library, session_factory
    from db.migrate import alembic_config

    engine = create_library_engine(blank_library_db.target)
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0007_clip_embeddings")
        connection.execute(insert(Content.__table__).values(
            id=1, sha256="c" * 64, decision="accepted", rating=0, flagged=False,
            flag_nsfw=False, flag_incoherent=False, analysed=False))
        connection.execute(text(  # the columns of a 0007 review_log: no author
            "INSERT INTO review_log (group_id, content_id, field, old_value, new_value, "
            "source, at) VALUES (1, 1, 'decision', 'none', 'accepted', 'app', :at)"),
            {"at": review.utcnow()})
    engine.dispose()
    engine = open_library(blank_library_db.target)
    try:
        sessions = session_factory(engine)
        with sessions() as session:
            assert session.scalar(select(ReviewLog.author)) == review.local_reviewer()
        assert [c.new_value for c in _step(sessions, review.undo)] == ["none"]
        assert not _step(session_factory(engine, reviewer="someone else"), review.can_redo)
    finally:
        engine.dispose()
