"""The export's `tag:` filter and `tags` column read tags at the tag threshold of the
settings, like the app's filter bar and details pane (tags are stored down to a low floor,
so a new threshold needs no re-analysis)."""

from __future__ import annotations

import csv
import io

from db.engine import open_library, session_factory
from db.schema import Tag
from gentriage.cli import main
from library.paths import Locations
from library.settings import Settings, Thresholds


def _add_dog_tags(seeded) -> None:
    engine = open_library(seeded.db)
    with session_factory(engine).begin() as session:
        session.add(Tag(content_id=seeded.content_ids[0], analyser="tagger-jtp", tag="dog",
                        score=0.1))
        session.add(Tag(content_id=seeded.content_ids[1], analyser="tagger-jtp", tag="dog",
                        score=0.5))
    engine.dispose()


def _export(seeded, capsys, tagger: float) -> dict[str, str]:
    Settings(thresholds=Thresholds(tagger=tagger)).save(Locations.resolve(None, None).settings)
    assert main(["export", "--db", str(seeded.db), "--filter", "tag:dog"]) == 0
    return {row["name"]: row["tags"]
            for row in csv.DictReader(io.StringIO(capsys.readouterr().out))}


def test_the_filter_and_the_tags_column_agree_at_every_threshold(seeded, capsys):
    _add_dog_tags(seeded)
    assert _export(seeded, capsys, 0.2) == {"seed1.png": "cat:0.90; dog:0.50"}
    assert _export(seeded, capsys, 0.05) == {"seed0.png": "cat:0.90; dog:0.10",
                                             "seed1.png": "cat:0.90; dog:0.50"}
