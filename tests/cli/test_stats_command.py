"""`gentriage stats` is an alias of `gentriage report`: same options, same output
(tests/cli/test_report_command.py tests the report itself)."""

from __future__ import annotations

import json

import pytest

from gentriage.cli import main


@pytest.mark.parametrize("by", ["model", "lora", "sampler", "generator", "folder", "prompt"])
def test_stats_prints_what_report_prints(seeded, capsys, by):
    outputs = []
    for command in ("stats", "report"):
        assert main([command, "--by", by, "--json", "--db", str(seeded.db)]) == 0
        outputs.append(json.loads(capsys.readouterr().out))
    assert outputs[0] == outputs[1]
    assert outputs[0]["by"] == by and outputs[0]["groups"]


def test_stats_table_and_options_are_the_reports(seeded, capsys):
    args = ["--by", "sampler", "--filter", "is:accepted", "--good-threshold", "5",
            "--db", str(seeded.db)]
    assert main(["stats", *args]) == 0
    stats = capsys.readouterr().out
    assert main(["report", *args]) == 0
    assert stats == capsys.readouterr().out
    assert stats.split()[:3] == ["sampler", "images", "aesthetic"]


def test_unknown_grouping_is_a_usage_error(seeded):
    with pytest.raises(SystemExit) as exc:
        main(["stats", "--by", "colour", "--db", str(seeded.db)])
    assert exc.value.code == 2
