"""Hostile input to the command line: names and prompts that carry terminal escape sequences
or spreadsheet formulas, bytes that are not UTF-8, filters built to overflow, pipes where
files should be, a PNG whose text chunks inflate to gigabytes, and a settings file nobody
should have written. Output is shown, never executed; every case ends in a clear message and
an exit status, never a traceback or a hang."""

from __future__ import annotations

import csv
import io
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from reliability_support import NSFW_ONLY, REPO, child_env, gentriage

# Terminal controls: OSC (set the title), CSI (clear the screen), BEL, the 8-bit CSI (C1),
# a right-to-left override that reorders what is shown.
ESCAPES = ("\x1b", "\x07", "\x9b", "\u202e", "\r")
EVIL_PROMPT = "a cat\x1b]0;owned\x07 on a mat\x1b[2J\x9b31m in \u202egnp.exe"
EVIL_NAME = "evil\x1b]0;title\x07\x1b[31m\r.png"


def _png(path: Path, parameters: str | None = None, seed: int = 0, **texts: str) -> Path:
    info = PngInfo()
    if parameters is not None:
        info.add_text("parameters", parameters)
    for key, value in texts.items():
        info.add_text(key, value)
    colour = (seed * 37 % 256, seed * 91 % 256, seed * 13 % 256)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (16, 16), colour).save(path, "PNG", pnginfo=info)
    return path


def _a1111(prompt: str, model: str = "model", seed: int = 1) -> str:
    return (f"{prompt}\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: {seed}, "
            f"Size: 16x16, Model: {model}")


def _run(args: list[str | bytes], home: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    """The command with byte-exact output (decoded by the test, strictly)."""
    return subprocess.run([sys.executable, "-m", "gentriage", *args], cwd=REPO,
                          env=child_env(home), capture_output=True, timeout=timeout)


def _text(raw: bytes) -> str:
    return raw.decode("utf-8")  # strict: everything GenTriage prints is valid UTF-8


# ----------------------------------------------------------------------------- injection

@pytest.fixture(scope="module")
def evil_library(tmp_path_factory):
    root = tmp_path_factory.mktemp("evil")
    folder = root / "pics"
    _png(folder / EVIL_NAME, _a1111(EVIL_PROMPT + "\nNegative prompt: blurry",
                                    model="m\x1b[5mblink"), seed=1)
    _png(folder / "=HYPERLINK(x).png", _a1111('=HYPERLINK("http://evil","click")',
                                              model="@SUM(1+1)"), seed=2)
    _png(folder / "+cmd.png", _a1111("-2+3"), seed=3)
    _png(folder / "\ttab.png", _a1111("tabbed"), seed=10)
    home, db = root / "home", root / "lib.sqlite3"
    scan = _run(["scan", str(folder), "--db", str(db), *NSFW_ONLY, "--workers", "1"], home)
    return folder, home, db, scan


def test_every_command_shows_escape_sequences_instead_of_running_them(evil_library):
    folder, home, db, scan = evil_library
    evil = folder / EVIL_NAME
    outputs = {"scan": scan}
    for name, args in {
        "metadata": ["metadata", str(evil)],
        "metadata --json": ["metadata", "--json", str(evil)],
        "export csv": ["export", "--db", str(db)],
        "export jsonl": ["export", "--format", "jsonl", "--db", str(db)],
        "stats": ["stats", "--by", "model", "--db", str(db)],
        "stats --json": ["stats", "--json", "--db", str(db)],
        "review": ["review", str(evil), "--accept", "--db", str(db)],
        "review unknown": ["review", str(folder / "x\x1b]0;t\x07.png"), "--reject", "--db",
                           str(db)],
        "usage error": ["scan", str(folder), "--x\x1b]0;t\x07"],  # argparse quotes it
        # The flat test pictures share one perceptual hash: one near-duplicate group that
        # lists every path, the evil one included.
        "duplicates": ["duplicates", "--db", str(db)],
        "duplicates --json": ["duplicates", "--json", "--db", str(db)],
        "report": ["report", "--by", "model", "--db", str(db)],
        "bad filter": ["export-files", str(folder.parent / "out"), "--filter",
                       "model:\x1b]0;t\x07 bogus:1", "--db", str(db)],
    }.items():
        outputs[name] = _run(args, home)
    for name, done in outputs.items():
        stdout, stderr = _text(done.stdout), _text(done.stderr)
        if name == "export csv":
            stdout = stdout.replace("\r\n", "\n")  # the CSV dialect's own line ends
        assert "Traceback" not in stderr, (name, stderr[-3000:])
        for char in ESCAPES:
            assert char not in stdout and char not in stderr, (name, repr(char))
    # Shown as visible escapes, and the data itself is exact in JSON.
    assert "\\x1b]0;owned\\x07" in _text(outputs["metadata"].stdout)
    (record,) = [json.loads(line) for line in _text(outputs["metadata --json"].stdout)
                 .splitlines()]
    assert record["prompt"] == EVIL_PROMPT
    assert record["path"] == str(evil)
    rows = [json.loads(line) for line in _text(outputs["export jsonl"].stdout).splitlines()]
    assert EVIL_PROMPT in {row["prompt"] for row in rows}
    assert "evil\\x1b]0;title" in _text(outputs["duplicates"].stdout)
    groups = [json.loads(line) for line in _text(outputs["duplicates --json"].stdout)
              .splitlines()]
    assert str(evil) in {path for group in groups for path in group["paths"]}


def test_csv_export_neutralises_formulas_and_says_so_nowhere_else(evil_library):
    _, home, db, _ = evil_library
    out = Path(str(db) + ".csv")
    done = _run(["export", "--db", str(db), "-o", str(out)], home)
    assert done.returncode == 0, _text(done.stderr)
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    cells = [cell for row in rows for cell in row.values() if cell]
    formulas = [c for c in cells if c.startswith(("=", "+", "-", "@", "\t", "\r"))]
    assert formulas == []  # OWASP: no cell a spreadsheet would evaluate
    prompts = {row["prompt"] for row in rows}
    assert "'=HYPERLINK(\"http://evil\",\"click\")" in prompts and "'-2+3" in prompts
    assert "'@SUM(1+1)" in {row["model"] for row in rows}
    names = {row["name"] for row in rows}
    assert {"'=HYPERLINK(x).png", "'+cmd.png", "'\ttab.png"} <= names
    # JSON lines keep the exact text: only CSV cells, read by spreadsheets, get the quote.
    jsonl = _run(["export", "--format", "jsonl", "--db", str(db)], home)
    assert "=HYPERLINK(x).png" in {json.loads(line)["name"]
                                   for line in _text(jsonl.stdout).splitlines()}


# ----------------------------------------------------------------------------- not UTF-8

needs_byte_names = pytest.mark.skipif(sys.platform == "darwin",
                                      reason="macOS file names are always UTF-8")


@needs_byte_names
def test_names_that_are_not_utf8_are_handled_end_to_end(tmp_path):
    folder = tmp_path / "pics"
    _png(folder / "good.png", _a1111("fine"), seed=4)
    raw_file = os.fsencode(folder) + b"/caf\xe9 \xff.png"
    _png(Path(os.fsdecode(raw_file)), _a1111("odd name"), seed=5)
    home, db = tmp_path / "home", tmp_path / "lib.sqlite3"

    scan = _run(["scan", str(folder), "--db", str(db), *NSFW_ONLY], home)
    assert scan.returncode == 1  # the odd name is recorded broken, with the reason
    assert "caf\\xe9 \\xff.png" in _text(scan.stderr) and "UTF-8" in _text(scan.stderr)
    meta = _run(["metadata", "--json", raw_file], home)
    (record,) = [json.loads(line) for line in _text(meta.stdout).splitlines()]
    assert record["path"].endswith("caf\\xe9 \\xff.png") and record["prompt"] == "odd name"
    bad_folder = os.fsencode(tmp_path) + b"/\xff-folder"
    os.mkdir(bad_folder)
    for args in (["scan", bad_folder, "--db", str(db)],
                 ["review", raw_file, "--reject", "--db", str(db)],
                 ["export", "--filter", b"folder:" + bad_folder, "--db", str(db)],
                 ["export", "--filter", b"prompt:caf\xe9", "--db", str(db)]):
        done = _run(args, home)
        assert done.returncode in (0, 1, 2), args
        stderr = _text(done.stderr)
        _text(done.stdout)
        assert "Traceback" not in stderr and "UnicodeEncodeError" not in stderr, stderr
    assert _run(["scan", bad_folder, "--db", str(db)], home).returncode == 2


def test_a_lone_surrogate_in_metadata_json_is_stored_and_printed_as_valid_text(tmp_path):
    folder = tmp_path / "pics"
    invoke = json.dumps({"positive_prompt": "a \ud800 cat", "negative_prompt": "",
                         "seed": 3, "steps": 20, "model": {"name": "m\udcff"},
                         "app_version": "4.2.0"})
    assert "\\ud800" in invoke  # json writes the escape; reading it back gives a surrogate
    path = _png(folder / "invoke.png", None, seed=6, invokeai_metadata=invoke)
    home, db = tmp_path / "home", tmp_path / "lib.sqlite3"
    meta = _run(["metadata", "--json", str(path)], home)
    (record,) = [json.loads(line) for line in _text(meta.stdout).splitlines()]
    assert record["prompt"] == "a \ufffd cat" and record["generator"] == "invokeai"
    scan = _run(["scan", str(folder), "--db", str(db), *NSFW_ONLY], home)
    assert scan.returncode == 0, _text(scan.stderr)[-3000:]
    export = _run(["export", "--format", "jsonl", "--db", str(db)], home)
    (row,) = [json.loads(line) for line in _text(export.stdout).splitlines()]
    assert row["prompt"] == "a \ufffd cat" and row["model"] == "m\\xff"


# ----------------------------------------------------------------------------- filters

@pytest.mark.parametrize("text", [
    "rating>=1e300", "rating:..1e20", "folder-id:" + "9" * 30,
    " ".join(f"word{i}" for i in range(3000)),  # "Expression tree is too large" before
    "model:" + "|".join(f"m{i}*" for i in range(600)),
])
def test_filters_built_to_overflow_are_usage_errors(tmp_path, library, text):
    _, _, db = library
    done = gentriage(["export", "--db", str(db), "--filter", text], tmp_path / "home")
    assert done.returncode == 2, done.stderr[-2000:]
    assert "bad --filter" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


# ----------------------------------------------------------------------------- pipes

def test_no_entry_point_blocks_on_a_fifo(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    fifo = tmp_path / "picture.png"
    os.mkfifo(fifo)
    os.mkfifo(home / "settings.json")
    folder = tmp_path / "pics"
    _png(folder / "ok.png", _a1111("fine"), seed=7)
    meta = gentriage(["metadata", str(fifo), "--json"], home, timeout=60)
    assert meta.returncode == 0 and "not a regular file" in json.loads(meta.stdout)["error"]
    # A FIFO where settings.json should be: a warning, then the scan runs with defaults.
    scan = gentriage(["scan", str(folder), *NSFW_ONLY], home, timeout=180)
    assert scan.returncode == 0, scan.stderr[-3000:]
    assert "settings" in scan.stderr and "not a regular file" in scan.stderr
    for args in (["stats", "--db", str(fifo)], ["review", str(fifo), "--accept"]):
        done = gentriage(args, home, timeout=60)
        assert done.returncode in (1, 2) and "Traceback" not in done.stderr, args


# ----------------------------------------------------------------------------- text bombs

def _chunk(ctype: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + ctype + data
            + struct.pack(">I", zlib.crc32(ctype + data) & 0xFFFFFFFF))


def _ztxt_bomb(path: Path, chunks: int = 600) -> Path:
    """A ~10 MB PNG: a tiny picture, then `chunks` zTXt chunks after IDAT, each ~16 KB that
    inflates to 16 MiB; most repeat one key, the rest are all different."""
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (9, 9, 9)).save(buffer, "PNG")
    png = buffer.getvalue()
    iend = png.rindex(b"IEND") - 4
    bomb = zlib.compress(b"a" * (16 * 1024 * 1024 - 1024), 9)
    body = b"".join(_chunk(b"zTXt", (b"parameters" if i % 2 else b"k%d" % i) + b"\0\0" + bomb)
                    for i in range(chunks))
    path.write_bytes(png[:iend] + body + png[iend:])
    return path


@pytest.fixture
def inflation_meter(monkeypatch):
    """Counts the bytes the metadata reader inflates (the work a text bomb multiplies)."""
    from library.metadata import containers

    inflated: list[int] = []
    real = containers._inflate

    def counting(data: bytes, limit: int = containers.MAX_TEXT_BYTES) -> bytes | None:
        out = real(data, limit)
        inflated.append(len(out or b""))
        return out

    monkeypatch.setattr(containers, "_inflate", counting)
    return inflated


def test_a_text_chunk_bomb_costs_one_bounded_budget_per_file(tmp_path, inflation_meter):
    from library.ingest import ingest_file
    from library.metadata import containers, read_metadata_file

    bomb = _ztxt_bomb(tmp_path / "bomb.png")
    assert bomb.stat().st_size > 9_000_000
    meta = read_metadata_file(bomb)
    assert meta.generator is None
    # One budget for the whole file: repeated keys and chunks after it is spent add nothing.
    assert sum(inflation_meter) <= containers.MAX_TOTAL_TEXT_BYTES
    assert len(inflation_meter) <= 4
    inflation_meter.clear()
    result = ingest_file(str(bomb))  # the scan's path: reader (+ Pillow's own bounded pass)
    assert result.error is None or "text" in result.error
    assert sum(inflation_meter) <= 2 * containers.MAX_TOTAL_TEXT_BYTES  # at most one retry


# ----------------------------------------------------------------------------- settings

def test_a_hostile_settings_file_falls_back_per_key_with_warnings(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "settings.json").write_text(
        '{"thresholds": {"nsfw_default": NaN, "coherence": Infinity, "tagger": 0.3},'
        ' "enabled_analysers": ["nsfw-default", 7], "blur_mode": "cover",'
        ' "thumbnail_size": -5}')
    folder = tmp_path / "pics"
    _png(folder / "ok.png", _a1111("fine"), seed=8)
    done = gentriage(["scan", str(folder), *NSFW_ONLY], home)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    for key in ("thresholds.nsfw_default", "thresholds.coherence", "enabled_analysers",
                "thumbnail_size"):
        assert f"ignoring {key}" in done.stderr, key

    from library.settings import Settings, Thresholds

    settings = Settings.load(home / "settings.json")
    assert settings.thresholds.nsfw_default == Thresholds().nsfw_default  # not NaN
    assert settings.thresholds.tagger == 0.3 and settings.blur_mode == "cover"  # kept


def test_a_settings_file_nested_100k_deep_is_unreadable_not_a_crash(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "settings.json").write_text("[" * 100_000 + "]" * 100_000)
    folder = tmp_path / "pics"
    _png(folder / "ok.png", _a1111("fine"), seed=9)
    done = gentriage(["scan", str(folder), *NSFW_ONLY], home)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert "nested too deeply" in done.stderr
    assert (home / "settings.broken.json").exists()  # kept for the user to look at
