"""Rejected files: moved or trashed (never deleted), logged with the decision, undone."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import select

from db import review
from db.engine import open_library, session_factory
from db.schema import Content, Folder, Image, ImageStatus, ReviewLog
from library import file_actions
from library.file_actions import (
    FileActionError,
    apply_rejected_action,
    find_in_trash,
    move_to_folder,
    replay_path_changes,
    restore_from_trash,
    unique_destination,
)


@pytest.fixture
def trash_home(tmp_path, monkeypatch):
    """A private freedesktop home trash: send2trash reads its location at import time, so
    its module constants are pointed here too (HOME on the same device as tmp_path)."""
    from send2trash import plat_other

    home = tmp_path / "home"
    data = home / ".local" / "share"
    data.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_DATA_HOME", str(data))
    monkeypatch.setattr(plat_other, "XDG_DATA_HOME", os.fsencode(data))
    monkeypatch.setattr(plat_other, "HOMETRASH_B", os.fsencode(data / "Trash"))
    return data / "Trash"


@pytest.fixture
def library(tmp_path):
    engine = open_library(tmp_path / "library.sqlite3")
    Session = session_factory(engine)
    watched = tmp_path / "watched"
    watched.mkdir()
    with Session() as session:
        folder = Folder(path=str(watched))
        session.add(folder)
        session.flush()
        for i in range(3):
            path = watched / f"img{i}.png"
            path.write_bytes(b"picture %d" % i)
            content = Content(sha256=f"{i:064d}")
            session.add(content)
            session.flush()
            session.add(Image(path=str(path), name=path.name, folder_id=folder.id,
                              content_id=content.id))
        session.commit()
    yield Session, watched
    engine.dispose()


def test_unique_destination_never_reuses_a_taken_name(tmp_path):
    (tmp_path / "a.png").write_bytes(b"1")
    (tmp_path / "a (2).png").write_bytes(b"2")
    assert unique_destination(tmp_path, "a.png") == tmp_path / "a (3).png"
    assert unique_destination(tmp_path, "b.png") == tmp_path / "b.png"


def test_move_to_folder_keeps_both_files_on_a_name_clash(tmp_path):
    source = tmp_path / "src" / "x.png"
    source.parent.mkdir()
    source.write_bytes(b"new")
    rejected = tmp_path / "rejected"
    rejected.mkdir()
    (rejected / "x.png").write_bytes(b"old")
    moved = move_to_folder(source, rejected)
    assert moved == rejected / "x (2).png"
    assert moved.read_bytes() == b"new" and (rejected / "x.png").read_bytes() == b"old"
    assert not source.exists()


def test_restore_picks_the_newest_trashinfo_for_the_path(tmp_path, trash_home):
    target = tmp_path / "pic.png"
    for payload in (b"first", b"second"):
        target.write_bytes(payload)
        file_actions.send_to_trash(target)
        assert not target.exists()
    # Both copies are in the trash; make the ordering unambiguous whatever the clock did.
    infos = sorted((trash_home / "info").glob("*.trashinfo"))
    assert len(infos) == 2
    for info, date in zip(infos, ("2020-01-01T00:00:00", "2021-01-01T00:00:00")):
        text = info.read_text().splitlines()
        info.write_text("\n".join(line if not line.startswith("DeletionDate=") else
                                  f"DeletionDate={date}" for line in text) + "\n")
    newest = find_in_trash(target)
    assert newest is not None and newest.info == infos[1]
    expected = newest.file.read_bytes()
    restore_from_trash(target)
    assert target.read_bytes() == expected
    assert not infos[1].exists() and infos[0].exists()


def test_restore_refuses_to_overwrite(tmp_path, trash_home):
    target = tmp_path / "pic.png"
    target.write_bytes(b"trashed")
    file_actions.send_to_trash(target)
    target.write_bytes(b"a new file with the same name")
    with pytest.raises(FileActionError):
        restore_from_trash(target)
    assert target.read_bytes() == b"a new file with the same name"


def _reject(Session, content_ids, action, folder=""):
    with Session() as session:
        group = review.set_decision(session, content_ids, "rejected")
        session.commit()
        outcome = apply_rejected_action(session, group, content_ids, action, folder)
        session.commit()
    return group, outcome


def test_move_rejected_is_logged_with_the_decision_and_undone_in_one_step(library, tmp_path):
    Session, watched = library
    rejected_dir = tmp_path / "rejected"
    group, outcome = _reject(Session, [1, 2], "move", rejected_dir)
    assert not outcome.errors
    assert sorted(p.name for p in rejected_dir.iterdir()) == ["img0.png", "img1.png"]
    with Session() as session:
        rows = session.scalars(select(ReviewLog).where(ReviewLog.group_id == group)).all()
        assert sorted(r.field for r in rows) == ["decision", "decision", "path", "path"]
        image = session.scalar(select(Image).where(Image.content_id == 1))
        assert image.path == str(rejected_dir / "img0.png") and image.folder_id is None

        changes = review.undo(session)
        undo_outcome = replay_path_changes(session, changes)
        session.commit()
    assert not undo_outcome.errors
    assert (watched / "img0.png").read_bytes() == b"picture 0"
    assert (watched / "img1.png").exists() and not any(rejected_dir.iterdir())
    with Session() as session:
        image = session.scalar(select(Image).where(Image.content_id == 1))
        assert image.path == str(watched / "img0.png") and image.folder_id is not None
        assert session.get(Content, 1).decision == "none"
        # Redo moves them out again.
        replay_path_changes(session, review.redo(session))
        session.commit()
    assert not (watched / "img0.png").exists()
    assert (rejected_dir / "img0.png").exists()


def test_trash_rejected_then_undo_restores_the_file(library, trash_home):
    Session, watched = library
    _, outcome = _reject(Session, [3], "trash")
    assert not outcome.errors
    assert not (watched / "img2.png").exists()
    assert len(list((trash_home / "files").iterdir())) == 1
    with Session() as session:
        assert session.scalar(select(Image.status).where(Image.content_id == 3)) == \
            ImageStatus.MISSING.value
        replay_path_changes(session, review.undo(session))
        session.commit()
        assert session.scalar(select(Image.status).where(Image.content_id == 3)) == \
            ImageStatus.OK.value
        assert session.get(Content, 3).decision == "none"
    assert (watched / "img2.png").read_bytes() == b"picture 2"
    assert not list((trash_home / "files").iterdir())


def test_move_without_a_folder_only_marks(library):
    Session, watched = library
    _, outcome = _reject(Session, [1], "move", "")
    assert outcome.errors and not outcome.moves
    assert (watched / "img0.png").exists()


def test_a_vanished_file_is_reported_and_the_rest_still_move(library, tmp_path):
    Session, watched = library
    (watched / "img0.png").unlink()
    _, outcome = _reject(Session, [1, 2], "move", tmp_path / "rejected")
    assert len(outcome.errors) == 1 and "img0.png" in outcome.errors[0]
    assert [Path(new).name for _, _, new in outcome.moves] == ["img1.png"]
