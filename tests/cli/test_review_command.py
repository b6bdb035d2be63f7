"""`gentriage review`: scripted decisions, logged with source "cli" and undoable like the app's."""

from __future__ import annotations

from cli_support import write_png
from sqlalchemy import select

from db.engine import open_library, session_factory
from db.review import undo
from db.schema import Content, ReviewLog
from gentriage.cli import main


def _contents(db):
    engine = open_library(db)
    try:
        with session_factory(engine)() as s:
            return {c.id: (c.decision, c.rating) for c in s.scalars(select(Content))}
    finally:
        engine.dispose()


def test_accept_with_rating_is_logged_as_cli_and_undoable(seeded, capsys):
    target = seeded.paths[2]  # seeded as undecided
    status = main(["review", str(target), "--accept", "--rating", "4", "--db", str(seeded.db)])

    assert status == 0
    assert "accepted and rated 4 1 image(s)" in capsys.readouterr().out
    cid = seeded.content_ids[2]
    assert _contents(seeded.db)[cid] == ("accepted", 4)
    engine = open_library(seeded.db)
    try:
        Session = session_factory(engine)
        with Session() as s:
            log = list(s.scalars(select(ReviewLog).where(ReviewLog.content_id == cid)))
        assert {(r.field, r.old_value, r.new_value, r.source) for r in log} == {
            ("decision", "none", "accepted", "cli"), ("rating", "0", "4", "cli")}
        assert len({r.group_id for r in log}) == 1  # one command, one undo step
        # The app's undo reverts the whole scripted change at once.
        with Session.begin() as s:
            undo(s)
    finally:
        engine.dispose()
    assert _contents(seeded.db)[cid] == ("none", 0)


def test_clear_and_reject_a_whole_folder(seeded, capsys):
    assert main(["review", str(seeded.folder), "--reject", "--db", str(seeded.db)]) == 0
    assert set(d for d, _ in _contents(seeded.db).values()) == {"rejected"}
    assert main(["review", str(seeded.paths[0]), "--clear", "--db", str(seeded.db)]) == 0
    assert _contents(seeded.db)[seeded.content_ids[0]][0] == "none"
    assert "cleared 1 image(s)" in capsys.readouterr().out


def test_unknown_paths_are_reported_and_exit_1_but_known_ones_apply(seeded, tmp_path, capsys):
    unknown = tmp_path / "not-indexed.png"
    status = main(["review", str(unknown), str(seeded.paths[2]), "--reject",
                   "--db", str(seeded.db)])
    captured = capsys.readouterr()
    assert status == 1
    assert f"{unknown}: not in the library" in captured.err
    assert _contents(seeded.db)[seeded.content_ids[2]][0] == "rejected"


def test_repeating_a_decision_writes_no_new_log_group(seeded, capsys):
    args = ["review", str(seeded.paths[0]), "--accept", "--db", str(seeded.db)]  # already so
    assert main(args) == 0
    assert "(no change)" in capsys.readouterr().out
    engine = open_library(seeded.db)
    try:
        with session_factory(engine)() as s:
            assert s.scalars(select(ReviewLog)).first() is None
    finally:
        engine.dispose()


def test_usage_errors_exit_2(seeded, capsys):
    assert main(["review", str(seeded.paths[0]), "--db", str(seeded.db)]) == 2
    try:
        main(["review", str(seeded.paths[0]), "--accept", "--reject", "--db", str(seeded.db)])
    except SystemExit as exc:
        assert exc.code == 2
    else:
        raise AssertionError("--accept with --reject must be a usage error")
    try:
        main(["review", str(seeded.paths[0]), "--rating", "7", "--db", str(seeded.db)])
    except SystemExit as exc:
        assert exc.code == 2
    else:
        raise AssertionError("a rating of 7 must be a usage error")


def test_a_folder_matches_its_own_files_only_not_a_differently_cased_sibling(seeded, capsys):
    """File systems here are case-sensitive: PICTURES/ is another folder than pictures/."""
    from db.schema import Image

    other = write_png(seeded.folder.parent / "PICTURES" / "other.png", "other")
    engine = open_library(seeded.db)
    try:
        with session_factory(engine).begin() as s:
            content = Content(sha256="f" * 64)
            s.add(content)
            s.flush()
            s.add(Image(path=str(other), name=other.name, content_id=content.id))
            other_id = content.id
    finally:
        engine.dispose()

    assert main(["review", str(seeded.folder), "--reject", "--db", str(seeded.db)]) == 0
    assert "rejected 4 image(s)" in capsys.readouterr().out
    decisions = _contents(seeded.db)
    assert decisions[other_id] == ("none", 0)
    assert {decisions[cid][0] for cid in seeded.content_ids} == {"rejected"}


def test_user_names_the_reviewer_whose_undo_it_is(seeded, capsys):
    """`--user bob`: the log names bob; bob's sessions undo it, the default reviewer's
    (the OS user, as the app without a reviewer setting) cannot."""
    from db.review import local_reviewer

    target, cid = seeded.paths[2], seeded.content_ids[2]
    assert main(["review", str(target), "--accept", "--user", "bob", "--db", seeded.db]) == 0
    engine = open_library(seeded.db)
    try:
        with session_factory(engine)() as s:
            authors = set(s.scalars(select(ReviewLog.author)
                                   .where(ReviewLog.content_id == cid)))
        assert authors == {"bob"} and local_reviewer() != "bob"
        with session_factory(engine).begin() as s:  # the OS user's undo: nothing of bob's
            assert undo(s) == []
        with session_factory(engine, reviewer="bob").begin() as s:
            assert [c.content_id for c in undo(s)] == [cid]
    finally:
        engine.dispose()
    assert _contents(seeded.db)[cid] == ("none", 0)


def test_a_bad_user_or_database_url_is_a_usage_error(seeded, capsys):
    target = str(seeded.paths[0])
    assert main(["review", target, "--accept", "--user", "  ", "--db", seeded.db]) == 2
    assert "--user: a reviewer name cannot be empty" in capsys.readouterr().err
    assert main(["review", target, "--accept", "--user", "x" * 65, "--db", seeded.db]) == 2
    assert "at most 64 characters" in capsys.readouterr().err
    assert main(["review", target, "--accept", "--db", "mysql://ann@dbhost/triage"]) == 2
    err = capsys.readouterr().err
    assert "not 'mysql'" in err and "Traceback" not in err
