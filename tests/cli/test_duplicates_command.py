"""`gentriage duplicates`: listing (text and the exact JSON shape), --filter, --distance,
--resolve (counts, one undo step per group, decided images spared), bad input, and the
export's family columns."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cli_support import run_cli
from family_images import encode, generated_png, photo, structured
from sqlalchemy import select

from db.engine import open_library, session_factory
from db.review import set_decision, undo
from db.schema import Content, Image, ReviewLog
from db.transaction import write_transaction
from gentriage.cli import main
from library.scan import scan_folders
from library.thumbnails import ThumbnailCache

pytest.importorskip("skimage")


@pytest.fixture
def library(tmp_path, library_db) -> tuple[str, Path]:
    """Two families (coffee ×3, rocket ×2), a stack of two seeds, a loner, in a library on
    the test's backend. Returns (--db value, dir)."""
    out = tmp_path / "out"
    (out / "shared").mkdir(parents=True)
    coffee, rocket = photo("coffee", 640), photo("rocket", 640)
    (out / "coffee.png").write_bytes(encode(coffee, "PNG"))
    (out / "coffee_q70.jpg").write_bytes(encode(coffee, "JPEG", quality=70))
    (out / "shared" / "coffee.webp").write_bytes(encode(coffee, "WEBP"))
    (out / "rocket.png").write_bytes(encode(rocket, "PNG"))
    (out / "shared" / "rocket_half.png").write_bytes(
        encode(rocket.resize((320, 213)), "PNG"))
    for seed in (1, 2):
        (out / f"seed{seed}.png").write_bytes(
            generated_png(structured(seed, (256, 256)), "a castle", seed=seed))
    (out / "loner.png").write_bytes(encode(structured(9, (256, 256)), "PNG"))
    db = library_db.target
    engine = open_library(db)
    try:
        scan_folders(session_factory(engine), [out], ThumbnailCache(tmp_path / "thumbs"),
                     workers=1)
    finally:
        engine.dispose()
    return db, out


def decisions(db: str) -> dict[str, str]:
    engine = open_library(db)
    try:
        with session_factory(engine)() as s:
            return dict(s.execute(select(Image.name, Content.decision)
                                  .join(Content, Content.id == Image.content_id)).all())
    finally:
        engine.dispose()


def test_json_prints_one_object_per_group_with_the_exact_keys(library, capsys):
    db, out = library
    assert main(["duplicates", "--json", "--db", str(db)]) == 0
    lines = capsys.readouterr().out.splitlines()
    groups = [json.loads(line) for line in lines]
    assert [list(g) for g in groups] == [["group", "keeper", "paths", "distance"]] * 2
    by_keeper = {Path(g["keeper"]).name: g for g in groups}
    assert set(by_keeper) == {"coffee.png", "rocket.png"}
    coffee = by_keeper["coffee.png"]
    assert coffee["paths"][0] == coffee["keeper"] == str(out / "coffee.png")
    assert sorted(Path(p).name for p in coffee["paths"]) == ["coffee.png", "coffee.webp",
                                                            "coffee_q70.jpg"]
    assert isinstance(coffee["group"], int) and 0 <= coffee["distance"] <= 8
    # The group number is the one `dup:GROUP` filters on.
    assert main(["export", "--format", "jsonl", "--filter", f"dup:{coffee['group']}",
                 "--db", str(db)]) == 0
    exported = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(r["name"] for r in exported) == ["coffee.png", "coffee.webp",
                                                   "coffee_q70.jpg"]
    assert {r["duplicate_group"] for r in exported} == {coffee["group"]}


def test_text_listing_filter_and_distance(library, capsys):
    db, out = library
    assert main(["duplicates", "--db", str(db), "--filter", f"folder:{out / 'shared'}"]) == 0
    assert "no near-duplicates found" in capsys.readouterr().out  # one file of each there
    assert main(["duplicates", "--json", "--db", str(db), "--distance", "0"]) == 0
    exact = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert all(g["distance"] == 0 for g in exact)  # only identical hashes at distance 0
    assert main(["duplicates", "--db", str(db)]) == 0
    text = capsys.readouterr().out
    assert f"keep  {out / 'coffee.png'}" in text and f"other {out / 'coffee_q70.jpg'}" in text


def test_resolve_rejects_non_keepers_one_undo_step_per_group(library, capsys):
    db, _ = library
    engine = open_library(db)
    try:
        sessions = session_factory(engine)
        with sessions() as s:
            webp = s.scalar(select(Image.content_id).where(Image.name == "coffee.webp"))
        with write_transaction(sessions) as s:
            set_decision(s, [webp], "rejected")  # a person's decision: never touched again
    finally:
        engine.dispose()
    assert main(["duplicates", "--resolve", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "rejected 2 image(s) in 2 group(s); 1 already decided" in out
    state = decisions(db)
    assert (state["coffee.png"], state["coffee_q70.jpg"], state["coffee.webp"]) == (
        "none", "rejected", "rejected")
    assert (state["rocket.png"], state["rocket_half.png"]) == ("none", "rejected")
    assert {state["seed1.png"], state["seed2.png"], state["loner.png"]} == {"none"}
    engine = open_library(db)
    try:
        sessions = session_factory(engine)
        with sessions() as s:
            cli_rows = s.execute(select(ReviewLog.group_id, ReviewLog.content_id)
                                 .where(ReviewLog.source == "cli")).all()
        assert webp not in {cid for _, cid in cli_rows}
        assert len({group for group, _ in cli_rows}) == 2  # one log group per family
        with write_transaction(sessions) as s:  # the app's Ctrl+Z: the last family only
            undone = undo(s)
    finally:
        engine.dispose()
    assert len(undone) == 1
    state = decisions(db)
    assert sorted(state[n] for n in ("coffee_q70.jpg", "rocket_half.png")) == [
        "none", "rejected"]  # one family undone, the other not
    assert state["coffee.webp"] == "rejected"


def test_bad_input_is_a_usage_error_and_a_missing_library_says_so(library, tmp_path, capsys):
    db, _ = library
    assert main(["duplicates", "--filter", "stack:nope", "--db", str(db)]) == 2
    assert "bad --filter" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["duplicates", "--distance", "99", "--db", str(db)])
    assert exit_info.value.code == 2
    assert "0-12" in capsys.readouterr().err
    assert main(["duplicates", "--db", str(tmp_path / "none.sqlite3")]) == 1
    assert "no library database" in capsys.readouterr().err


def test_the_command_end_to_end_with_a_keeper_deleted_before_resolving(library, tmp_path):
    """A subprocess, as a script would run it: list, the keeper vanishes, resolve."""
    db, out = library
    listed = run_cli(["duplicates", "--json", "--db", str(db)], tmp_path)
    assert listed.returncode == 0, listed.stderr
    os.remove(out / "rocket.png")  # gone before the resolve run (the library still lists it)
    before = decisions(db)
    resolved = run_cli(["duplicates", "--resolve", "--json", "--db", str(db)], tmp_path)
    assert resolved.returncode == 1
    assert f"keeper {out / 'rocket.png'} is gone" in resolved.stderr
    state = decisions(db)
    assert (state["rocket.png"], state["rocket_half.png"]) == ("none", "none")  # untouched
    assert state["coffee_q70.jpg"] == "rejected" and before["coffee_q70.jpg"] == "none"
    assert "rejected 2 image(s) in 1 group(s)" in resolved.stderr  # --json: counts on stderr
    assert all(json.loads(line)["keeper"] for line in resolved.stdout.splitlines())


def test_export_has_the_stack_column_and_stack_filters_find_it(library, capsys):
    from library.families import stack_key

    db, _ = library
    assert main(["export", "--format", "jsonl", "--filter", "is:stacked", "--db", str(db)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(r["name"] for r in rows) == ["seed1.png", "seed2.png"]
    expected = stack_key("a castle", "blurry", "sd_xl_base_1.0")
    assert {r["stack"] for r in rows} == {expected}
    assert main(["export", "--format", "csv", "--filter", f"stack:{expected} sort:stack",
                 "--db", str(db)]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = lines[0].split(",")
    assert "stack" in header and "duplicate_group" in header and len(lines) == 3
    assert main(["export", "--format", "jsonl", "--filter=-is:stacked", "--db", str(db)]) == 0
    others = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {r["stack"] for r in others} == {None}  # no prompt, no stack
