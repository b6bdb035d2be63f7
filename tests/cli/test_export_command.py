"""`gentriage export`: rows, columns and values from a seeded library (tests/cli/conftest.py)."""

from __future__ import annotations

import csv
import io
import json

import pytest
from cli_support import SEED_ROWS

import db.queries
from db.filters import KNOWN_ANALYSERS
from gentriage.cli import main
from gentriage.commands import export


def _csv(seeded, capsys, *extra: str) -> list[dict[str, str]]:
    assert main(["export", "--db", str(seeded.db), *extra]) == 0
    return list(csv.DictReader(io.StringIO(capsys.readouterr().out)))


def test_csv_has_one_row_per_image_with_every_column(seeded, capsys):
    rows = _csv(seeded, capsys)
    assert len(rows) == len(SEED_ROWS)
    assert list(rows[0]) == export.columns(KNOWN_ANALYSERS)
    by_name = {r["name"]: r for r in rows}
    first = by_name["seed0.png"]
    assert first["path"] == str(seeded.paths[0])
    assert first["status"] == "ok"
    assert first["decision"] == "accepted"
    assert first["flagged"] == "0"
    assert first["coherence_label"] == "coherent"
    assert float(first["aesthetic_score"]) == 6.0
    assert float(first["aesthetic_prompt_adherence"]) == 30.0
    assert first["nsfw-default_label"] == "sfw"
    assert first["nsfw-vit_score"] == ""  # never analysed
    assert first["tags"] == "cat:0.90"
    assert (first["model"], first["sampler"], first["seed"]) == ("modelA", "Euler a", "0")
    assert first["loras"] == "styleX:0.8"
    assert by_name["seed1.png"]["flagged"] == "1"  # nsfw 0.9


def test_jsonl_with_the_app_filter_syntax(seeded, capsys):
    assert main(["export", "--format", "jsonl", "--filter", "is:flagged",
                 "--db", str(seeded.db)]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(r["name"] for r in records) == ["seed1.png", "seed2.png"]
    incoherent = next(r for r in records if r["name"] == "seed2.png")
    assert incoherent["coherence_label"] == "incoherent"
    assert incoherent["tags"] == {"cat": 0.9}
    assert incoherent["loras"] == [{"name": "styleX", "weight": 0.8}]
    assert incoherent["flag_incoherent"] is True


def test_output_file_and_score_filter(seeded, tmp_path, capsys):
    out = tmp_path / "export.csv"
    assert main(["export", "--filter", "aesthetic>=5.5", "-o", str(out),
                 "--db", str(seeded.db)]) == 0
    assert "exported 2 image(s)" in capsys.readouterr().err
    rows = list(csv.DictReader(out.open(encoding="utf-8", newline="")))
    assert sorted(r["name"] for r in rows) == ["seed0.png", "seed3.png"]


def test_streams_in_keyset_pages(seeded, capsys, monkeypatch):
    pages = []
    real = db.queries.fetch_page

    def spy(session, f, after=None, limit=200, **options):
        rows, cursor = real(session, f, after=after, limit=limit, **options)
        pages.append(len(rows))
        return rows, cursor

    monkeypatch.setattr(export, "PAGE_SIZE", 3)
    monkeypatch.setattr(db.queries, "fetch_page", spy)
    rows = _csv(seeded, capsys)
    assert pages == [3, 1]
    assert sorted(r["name"] for r in rows) == [f"seed{i}.png" for i in range(len(SEED_ROWS))]


def test_bad_filter_is_a_usage_error(seeded, capsys):
    assert main(["export", "--filter", "colour:red", "--db", str(seeded.db)]) == 2
    assert "bad --filter" in capsys.readouterr().err


def test_missing_database_exits_1(tmp_path, capsys):
    assert main(["export", "--db", str(tmp_path / "nope.sqlite3")]) == 1
    assert "no library database" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_empty_result_still_writes_a_valid_file(seeded, capsys, fmt):
    assert main(["export", "--format", fmt, "--filter", "model:nothing",
                 "--db", str(seeded.db)]) == 0
    out = capsys.readouterr().out
    header = ",".join(export.columns(KNOWN_ANALYSERS))
    assert out.splitlines() == ([header] if fmt == "csv" else [])
