"""`gentriage stats`: per-group rates computed from the seeded rows (tests/cli/conftest.py)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from db.engine import open_library, session_factory
from db.schema import Image
from gentriage.cli import main


def _stats(seeded, capsys, by: str) -> dict[str, dict]:
    assert main(["stats", "--by", by, "--json", "--db", str(seeded.db)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["by"] == by
    return {g["group"]: g for g in data["groups"]}


def test_by_model_rates_and_means(seeded, capsys):
    groups = _stats(seeded, capsys, "model")
    a, b = groups["modelA"], groups["modelB"]
    assert a["images"] == 3
    assert a["coherent"] == pytest.approx(2 / 3)
    assert a["flagged"] == pytest.approx(2 / 3)  # one nsfw, one incoherent
    assert a["accepted"] == pytest.approx(1 / 3)
    assert a["rejected"] == pytest.approx(1 / 3)
    assert a["aesthetic"] == pytest.approx(5.0)
    assert a["prompt_adherence"] == pytest.approx(20.0)
    assert (b["images"], b["coherent"], b["flagged"], b["accepted"]) == (1, 1.0, 0.0, 1.0)
    assert b["prompt_adherence"] == pytest.approx(25.0)
    assert list(groups) == ["modelA", "modelB"]  # largest group first


def test_by_lora_puts_pictures_without_one_in_unknown(seeded, capsys):
    groups = _stats(seeded, capsys, "lora")
    assert groups["styleX"]["images"] == 2
    assert groups["styleX"]["aesthetic"] == pytest.approx(5.0)
    assert groups["(unknown)"]["images"] == 2


def test_a_duplicate_file_counts_its_picture_once(seeded, capsys):
    engine = open_library(seeded.db)
    try:
        with session_factory(engine).begin() as s:
            original = s.scalar(select(Image).where(Image.path == str(seeded.paths[0])))
            s.add(Image(path=str(seeded.folder / "copy.png"), name="copy.png",
                        folder_id=original.folder_id, content_id=original.content_id))
    finally:
        engine.dispose()
    groups = _stats(seeded, capsys, "folder")
    assert groups[str(seeded.folder)]["images"] == 4
    assert groups[str(seeded.folder)]["accepted"] == pytest.approx(2 / 4)


def test_plain_table_when_not_a_terminal(seeded, capsys):
    assert main(["stats", "--by", "sampler", "--db", str(seeded.db)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["sampler", "images", "coherent"]
    rows = {line.rsplit(None, 7)[0]: line.rsplit(None, 7)[1:] for line in lines[1:]}
    assert rows["Euler a"][:5] == ["2", "100%", "50%", "50%", "50%"]
    assert rows["DPM++ 2M"][0] == "2"


def test_unknown_grouping_is_a_usage_error(seeded):
    with pytest.raises(SystemExit) as exc:
        main(["stats", "--by", "colour", "--db", str(seeded.db)])
    assert exc.value.code == 2
