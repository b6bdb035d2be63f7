"""`gentriage export-files`: copies, collisions, file times, captions, clean copies, folder
layout, move + undo, and the privacy rule, on a seeded library (tests/cli/conftest.py).

Seeded pictures: seed0 accepted, seed1 rejected and flagged, seed2 flagged and unreviewed,
seed3 accepted; each tagged "cat" (0.9)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from cli_support import a1111_parameters, write_png
from PIL import Image as PILImage
from sqlalchemy import select

from db.engine import open_library, session_factory
from db.review import undo
from db.schema import Image, ReviewLog, Tag
from db.transaction import write_transaction
from gentriage.cli import main
from library.export_files import ExportOptions, caption_text, target_folder
from library.file_actions import replay_path_changes
from library.metadata import read_metadata_file

VISIBLE = ["seed0.png", "seed1.png", "seed3.png"]  # seed2: flagged, nobody reviewed it


def export(seeded, dest: Path, *extra: str) -> int:
    return main(["export-files", str(dest), "--db", str(seeded.db), *extra])


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_copies_keep_bytes_and_times_and_skip_unreviewed_flagged(seeded, tmp_path, capsys):
    for i, path in enumerate(seeded.paths):
        os.utime(path, ns=(1_600_000_000_000_000_000 + i, 1_500_000_000_000_000_000 + i))
    dest = tmp_path / "out"

    assert export(seeded, dest) == 0

    out = capsys.readouterr().out
    assert "exported 3 picture(s)" in out
    assert "skipped 1 flagged picture(s) nobody has reviewed" in out
    assert names(dest) == VISIBLE
    for name in VISIBLE:
        original = seeded.folder / name
        copy = dest / name
        assert copy.read_bytes() == original.read_bytes()
        assert copy.stat().st_mtime_ns == original.stat().st_mtime_ns
    assert (seeded.folder / "seed2.png").exists()  # copies never touch the originals


def test_flagged_unreviewed_only_when_the_filter_names_them(seeded, tmp_path, capsys):
    assert export(seeded, tmp_path / "all-flagged", "--filter", "is:flagged") == 0
    assert names(tmp_path / "all-flagged") == ["seed1.png", "seed2.png"]
    # A filter that merely includes it is not enough.
    assert export(seeded, tmp_path / "by-tag", "--filter", "tag:cat") == 0
    assert "seed2.png" not in names(tmp_path / "by-tag")
    assert export(seeded, tmp_path / "unreviewed", "--filter", "is:unreviewed") == 0
    assert not (tmp_path / "unreviewed").exists() or names(tmp_path / "unreviewed") == []
    assert "skipped 1 flagged" in capsys.readouterr().out


def test_collisions_get_numbered_names_and_nothing_is_overwritten(seeded, tmp_path, capsys):
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "seed0.png").write_bytes(b"somebody else's file")
    (dest / "seed1.txt").write_text("somebody's caption")

    assert export(seeded, dest, "--captions", "tags") == 0
    assert export(seeded, dest, "--filter", "is:accepted") == 0

    assert (dest / "seed0.png").read_bytes() == b"somebody else's file"
    assert (dest / "seed1.txt").read_text() == "somebody's caption"
    assert names(dest) == sorted([
        "seed0.png", "seed0 (2).png", "seed0 (2).txt", "seed0 (3).png",
        "seed1.txt", "seed1 (2).png", "seed1 (2).txt",
        "seed3.png", "seed3.txt", "seed3 (2).png"])
    assert (dest / "seed0 (2).png").read_bytes() == seeded.paths[0].read_bytes()
    assert not [p for p in dest.iterdir() if p.name.endswith(".partial")]
    assert "renamed to avoid overwriting" in capsys.readouterr().out


def test_captions_tags_prompt_both(seeded, tmp_path):
    engine = open_library(seeded.db)
    with write_transaction(session_factory(engine)) as session:
        session.add(Tag(content_id=seeded.content_ids[0], analyser="tagger-jtp",
                        tag="red_hair", score=0.95))
        session.add(Tag(content_id=seeded.content_ids[0], analyser="tagger-jtp",
                        tag="below_threshold", score=0.05))
    engine.dispose()
    for mode in ("tags", "prompt", "both"):
        assert export(seeded, tmp_path / mode, "--captions", mode, "--tag-style", "spaces",
                      "--filter", "is:accepted") == 0
    assert (tmp_path / "tags" / "seed0.txt").read_text() == "red hair, cat\n"
    assert (tmp_path / "prompt" / "seed0.txt").read_text() == "prompt 0\n"
    assert (tmp_path / "both" / "seed0.txt").read_text() == "prompt 0, red hair, cat\n"
    assert export(seeded, tmp_path / "raw", "--captions", "tags") == 0
    assert (tmp_path / "raw" / "seed0.txt").read_text() == "red_hair, cat\n"


def test_caption_text_rules():
    prompt = "1girl, red hair,\nsmiling"
    assert caption_text("prompt", prompt, ()) == "1girl, red hair, smiling"
    assert caption_text("both", prompt, ("red_hair", "blue_eyes"), "underscores") == \
        "1girl, red hair, smiling, blue_eyes"
    assert caption_text("both", None, ("cat",)) == "cat"
    assert caption_text("tags", prompt, ()) is None
    assert caption_text("prompt", "   ", ("cat",)) is None


def test_strip_metadata_writes_clean_pixel_identical_copies(seeded, tmp_path, capsys):
    for i, path in enumerate(seeded.paths):  # give the files real embedded metadata
        write_png(path, f"seed{i}", a1111_parameters(f"prompt {i}", "modelA", seed=i))
        assert read_metadata_file(path).prompt == f"prompt {i}"
    dest = tmp_path / "clean"

    assert export(seeded, dest, "--strip-metadata") == 0

    assert "3 without metadata" in capsys.readouterr().out
    for name in VISIBLE:
        meta = read_metadata_file(dest / name)
        assert meta.generator is None and meta.raw == {}
        with PILImage.open(dest / name) as clean, PILImage.open(seeded.folder / name) as orig:
            assert np.array_equal(np.asarray(clean), np.asarray(orig))
        assert (dest / name).stat().st_mtime_ns == (seeded.folder / name).stat().st_mtime_ns
    assert b"parameters" in seeded.paths[0].read_bytes()  # the original keeps its metadata


def test_folders_layout_mirrors_the_watched_folder(seeded, tmp_path):
    options = ExportOptions(tmp_path / "dest", layout="folders")
    folders = {1: str(seeded.folder)}
    nested = str(seeded.folder / "2024" / "may" / "x.png")
    assert target_folder(nested, 1, folders, options) == tmp_path / "dest" / "pictures" / \
        "2024" / "may"
    assert target_folder("/elsewhere/batch/x.png", None, folders, options) == \
        tmp_path / "dest" / "batch"
    flat = ExportOptions(tmp_path / "dest")
    assert target_folder(nested, 1, folders, flat) == tmp_path / "dest"

    assert export(seeded, tmp_path / "dest", "--layout", "folders") == 0
    assert names(tmp_path / "dest" / "pictures") == VISIBLE


def test_move_is_one_undoable_step(seeded, tmp_path, capsys):
    dest = tmp_path / "keepers"
    originals = {p.name: p.read_bytes() for p in seeded.paths}

    assert export(seeded, dest, "--move", "--filter", "is:accepted") == 0

    assert "moved 2 picture(s)" in capsys.readouterr().out
    assert names(dest) == ["seed0.png", "seed3.png"]
    assert not seeded.paths[0].exists() and not seeded.paths[3].exists()
    engine = open_library(seeded.db)
    sessions = session_factory(engine)
    with sessions() as session:
        paths = set(session.scalars(select(Image.path)))
        assert {str(dest / "seed0.png"), str(dest / "seed3.png")} <= paths
        log = session.scalars(select(ReviewLog).where(ReviewLog.field == "path")).all()
        assert {row.source for row in log} == {"cli"} and len({r.group_id for r in log}) == 1

    with write_transaction(sessions) as session:  # what the app's Ctrl+Z does
        changes = undo(session)
        outcome = replay_path_changes(session, changes)
    assert outcome.errors == []
    for path in (seeded.paths[0], seeded.paths[3]):
        assert path.read_bytes() == originals[path.name]
    assert names(dest) == []
    with sessions() as session:
        assert {str(p) for p in seeded.paths} <= set(session.scalars(select(Image.path)))
    engine.dispose()


def test_problems_are_reported_and_the_rest_is_exported(seeded, tmp_path, capsys):
    seeded.paths[3].unlink()  # indexed, then deleted behind the library's back
    assert export(seeded, tmp_path / "out") == 1
    captured = capsys.readouterr()
    assert "exported 2 picture(s)" in captured.out
    assert "seed3.png" in captured.err
    assert names(tmp_path / "out") == ["seed0.png", "seed1.png"]


@pytest.mark.parametrize("extra, message", [
    (["--move", "--strip-metadata"], "use one or the other"),
    (["--filter", "gnerator:x"], "bad --filter"),
])
def test_usage_errors(seeded, tmp_path, capsys, extra, message):
    assert export(seeded, tmp_path / "out", *extra) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_destination_that_is_a_file_is_a_usage_error(seeded, tmp_path, capsys):
    target = tmp_path / "a-file"
    target.write_text("x")
    assert export(seeded, target) == 2
    assert "not a folder" in capsys.readouterr().err
