"""`gentriage sidecars`: written, merged into existing ones without losing their fields, read
back by exiftool (an independent reader, when installed), `--read` round trip with undo,
Lightroom naming, broken input, and the automatic write after `gentriage review`.

Seeded pictures (tests/cli/conftest.py): seed0 accepted, seed1 rejected, seed2 unreviewed,
seed3 accepted; each tagged "cat" (0.9) with the prompt "prompt N"."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import select

from db.engine import open_library, session_factory
from db.review import set_rating, undo
from db.schema import Content, Tag
from db.transaction import write_transaction
from gentriage.cli import main
from library.paths import settings_path
from library.settings import Settings
from library.sidecars import rating_in, write_for_contents

EXIFTOOL = shutil.which("exiftool")
needs_exiftool = pytest.mark.skipif(
    EXIFTOOL is None, reason="exiftool is not installed (apt-get install libimage-exiftool-perl;"
                             " .ci/run installs it when run as root)")

DARKTABLE_SIDECAR = """<?xml version="1.0" encoding="UTF-8"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 4.4.0-Exiv2">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:xmpMM="http://ns.adobe.com/xap/1.0/mm/"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:darktable="http://darktable.sf.net/"
    xmp:Rating="1"
    xmp:Label="Blue"
    xmpMM:DerivedFrom="seed2.png"
    darktable:xmp_version="5"
    darktable:auto_presets_applied="1">
   <dc:subject><rdf:Bag><rdf:li>holiday</rdf:li></rdf:Bag></dc:subject>
   <dc:description><rdf:Alt>
     <rdf:li xml:lang="x-default">old text</rdf:li>
     <rdf:li xml:lang="de">Beschreibung</rdf:li>
   </rdf:Alt></dc:description>
   <darktable:history><rdf:Seq>
     <rdf:li darktable:operation="exposure"/>
   </rdf:Seq></darktable:history>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
"""


def sidecars(seeded, *extra: str) -> int:
    return main(["sidecars", "--db", str(seeded.db), *extra])


def exiftool(path: Path) -> dict:
    assert EXIFTOOL is not None
    out = subprocess.run([EXIFTOOL, "-json", "-G1", "-struct", "-XMP:all", str(path)],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    return json.loads(out)[0]


def review(seeded) -> dict[int, tuple[str, int]]:
    engine = open_library(seeded.db)
    with session_factory(engine)() as session:
        rows = {c.id: (c.decision, c.rating) for c in session.scalars(select(Content))}
    engine.dispose()
    return rows


def rate(seeded, index: int, rating: int) -> None:
    engine = open_library(seeded.db)
    with write_transaction(session_factory(engine)) as session:
        set_rating(session, [seeded.content_ids[index]], rating)
    engine.dispose()


def test_writes_one_sidecar_per_picture_with_the_review(seeded, capsys):
    rate(seeded, 0, 4)
    assert sidecars(seeded) == 0
    assert "wrote 4 sidecar(s)" in capsys.readouterr().out
    expected = {0: 4, 1: -1, 2: 0, 3: 0}
    for index, path in enumerate(seeded.paths):
        sidecar = path.with_name(path.name + ".xmp")
        assert rating_in(sidecar.read_bytes()) == expected[index]
    text = seeded.paths[1].with_name("seed1.png.xmp").read_text(encoding="utf-8")
    assert 'xmp:Label="Red"' in text and "<rdf:li>cat</rdf:li>" in text
    assert '<rdf:li xml:lang="x-default">prompt 1</rdf:li>' in text


@needs_exiftool
def test_exiftool_reads_rating_label_subject_and_description(seeded):
    rate(seeded, 0, 4)
    assert sidecars(seeded) == 0
    accepted = exiftool(seeded.paths[0].with_name("seed0.png.xmp"))
    assert accepted["XMP-xmp:Rating"] == 4
    assert accepted["XMP-xmp:Label"] == "Green"
    assert accepted["XMP-dc:Subject"] in ("cat", ["cat"])
    assert accepted["XMP-dc:Description"] == "prompt 0"
    rejected = exiftool(seeded.paths[1].with_name("seed1.png.xmp"))
    assert rejected["XMP-xmp:Rating"] == -1 and rejected["XMP-xmp:Label"] == "Red"


def test_merges_into_an_existing_sidecar_keeping_its_fields(seeded):
    sidecar = seeded.paths[2].with_name("seed2.png.xmp")  # seed2: unreviewed
    sidecar.write_text(DARKTABLE_SIDECAR, encoding="utf-8")

    assert sidecars(seeded) == 0

    text = sidecar.read_text(encoding="utf-8")
    for kept in ('darktable:xmp_version="5"', 'darktable:operation="exposure"',
                 'xmpMM:DerivedFrom="seed2.png"', "<rdf:li>holiday</rdf:li>",
                 '<rdf:li xml:lang="de">Beschreibung</rdf:li>', 'xmp:Label="Blue"'):
        assert kept in text
    assert "<rdf:li>cat</rdf:li>" in text
    assert '<rdf:li xml:lang="x-default">prompt 2</rdf:li>' in text
    assert "old text" not in text
    assert rating_in(sidecar.read_bytes()) == 0
    assert text.count("xmp:Rating") == 1

    # The tagger no longer gives "cat" and the picture is accepted: our old tag goes, the
    # user's keyword stays, and the decision's label replaces the user's.
    engine = open_library(seeded.db)
    with write_transaction(session_factory(engine)) as session:
        session.get(Tag, (seeded.content_ids[2], "tagger-jtp", "cat")).tag = "dog"
        session.get(Content, seeded.content_ids[2]).decision = "accepted"
    engine.dispose()
    assert sidecars(seeded) == 0
    text = sidecar.read_text(encoding="utf-8")
    assert "<rdf:li>holiday</rdf:li>" in text and "<rdf:li>dog</rdf:li>" in text
    assert "<rdf:li>cat</rdf:li>" not in text
    assert 'xmp:Label="Green"' in text
    # Back to unreviewed: the label GenTriage wrote is removed again.
    engine = open_library(seeded.db)
    with write_transaction(session_factory(engine)) as session:
        session.get(Content, seeded.content_ids[2]).decision = "none"
    engine.dispose()
    assert sidecars(seeded) == 0
    assert "xmp:Label" not in sidecar.read_text(encoding="utf-8")


@needs_exiftool
def test_exiftool_reads_a_merged_sidecar(seeded):
    sidecar = seeded.paths[2].with_name("seed2.png.xmp")
    sidecar.write_text(DARKTABLE_SIDECAR, encoding="utf-8")
    assert sidecars(seeded) == 0
    tags = exiftool(sidecar)
    assert tags["XMP-xmp:Rating"] == 0
    assert tags["XMP-xmp:Label"] == "Blue"
    assert sorted(tags["XMP-dc:Subject"]) == ["cat", "holiday"]
    assert tags["XMP-dc:Description"] == "prompt 2"
    assert tags["XMP-dc:Description-de"] == "Beschreibung"
    assert tags["XMP-darktable:Xmp_version"] == 5


def test_read_imports_ratings_and_rejections_as_one_undoable_step(seeded, capsys):
    assert sidecars(seeded) == 0
    before = review(seeded)

    def set_sidecar_rating(index: int, rating: int) -> None:
        sidecar = seeded.paths[index].with_name(f"seed{index}.png.xmp")
        text = sidecar.read_text(encoding="utf-8")
        current = rating_in(sidecar.read_bytes())
        sidecar.write_text(text.replace(f'xmp:Rating="{current}"', f'xmp:Rating="{rating}"'),
                           encoding="utf-8")

    set_sidecar_rating(0, -1)  # rejected in Lightroom
    set_sidecar_rating(1, 3)  # was rejected here; rated 3 there
    set_sidecar_rating(3, 5)
    capsys.readouterr()

    assert sidecars(seeded, "--read") == 0

    assert "imported 3 picture(s) from sidecars: 1 rejected, 1 no longer rejected, 2 rated" \
        in capsys.readouterr().out
    after = review(seeded)
    ids = seeded.content_ids
    assert after[ids[0]] == ("rejected", 0)
    assert after[ids[1]] == ("none", 3)
    assert after[ids[2]] == before[ids[2]]
    assert after[ids[3]] == ("accepted", 5)

    engine = open_library(seeded.db)
    with write_transaction(session_factory(engine)) as session:
        assert undo(session)
    engine.dispose()
    assert review(seeded) == before


def test_lightroom_naming_and_a_shared_name(seeded, capsys):
    shutil.copy(seeded.paths[3], seeded.paths[3].with_suffix(".jpg"))  # another seed3.*
    assert sidecars(seeded, "--naming", "lightroom") == 1
    err = capsys.readouterr().err
    assert "would be shared by seed3.png and seed3.jpg" in err
    assert seeded.paths[0].with_suffix(".xmp").is_file()
    assert not seeded.paths[3].with_suffix(".xmp").exists()
    assert not seeded.paths[0].with_name("seed0.png.xmp").exists()
    # --read finds Lightroom-named sidecars whatever the naming asked for.
    text = seeded.paths[0].with_suffix(".xmp").read_text(encoding="utf-8")
    seeded.paths[0].with_suffix(".xmp").write_text(
        text.replace('xmp:Rating="0"', 'xmp:Rating="2"'), encoding="utf-8")
    assert sidecars(seeded, "--read") == 0
    assert review(seeded)[seeded.content_ids[0]] == ("accepted", 2)


def test_broken_and_hostile_sidecars_are_reported_and_left_alone(seeded, capsys):
    broken = seeded.paths[0].with_name("seed0.png.xmp")
    broken.write_text("<x:xmpmeta><unclosed>", encoding="utf-8")
    bomb = seeded.paths[1].with_name("seed1.png.xmp")
    bomb.write_text('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">'
                    '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><x>&b;</x>', encoding="utf-8")
    before = broken.read_bytes(), bomb.read_bytes()

    assert sidecars(seeded) == 1

    err = capsys.readouterr().err
    assert "seed0.png.xmp: not well-formed XMP" in err
    assert "seed1.png.xmp: not well-formed XMP" in err
    assert (broken.read_bytes(), bomb.read_bytes()) == before
    assert seeded.paths[3].with_name("seed3.png.xmp").is_file()  # the others were written
    assert sidecars(seeded, "--read") == 1  # unreadable ratings: reported, nothing applied


def test_review_writes_sidecars_when_the_setting_is_on(seeded, capsys):
    Settings(sidecar_auto=True).save(settings_path())
    assert main(["review", str(seeded.paths[2]), "--accept", "--rating", "3",
                 "--db", str(seeded.db)]) == 0
    sidecar = seeded.paths[2].with_name("seed2.png.xmp")
    assert rating_in(sidecar.read_bytes()) == 3
    assert 'xmp:Label="Green"' in sidecar.read_text(encoding="utf-8")
    assert not seeded.paths[0].with_name("seed0.png.xmp").exists()  # only the decided one

    Settings(sidecar_auto=False).save(settings_path())
    assert main(["review", str(seeded.paths[0]), "--reject", "--db", str(seeded.db)]) == 0
    assert not seeded.paths[0].with_name("seed0.png.xmp").exists()


def test_an_unknown_naming_in_the_settings_writes_nothing_and_says_so(seeded):
    engine = open_library(seeded.db)
    report = write_for_contents(session_factory(engine), seeded.content_ids, "picasa", 0.2)
    engine.dispose()
    assert report.written == 0 and "'picasa' is not one of darktable, lightroom" in \
        report.errors[0]
    assert not list(seeded.folder.glob("*.xmp"))
