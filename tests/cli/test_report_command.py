"""`gentriage report`: JSON, table, HTML, usage errors, and the style loss end to end
(real VGG19-layout weights through `gentriage scan --analysers style`)."""

from __future__ import annotations

import json
import re

import pytest
from report_library import MODEL_C, build_report_library

from gentriage.cli import main
from inference.testing import photo_like, write_style


@pytest.fixture
def lib(tmp_path, home):
    # Thumbnails where the CLI looks for them: $GENTRIAGE_HOME/cache/thumbnails.
    return build_report_library(tmp_path / "lib", thumbnails=home / "cache" / "thumbnails")


def _json(capsys, *args) -> dict:
    assert main(["report", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_figures_and_shape(lib, capsys):
    data = _json(capsys, "--db", str(lib.db), "--good-threshold", "6.5")
    assert (data["by"], data["good_threshold"]) == ("model", 6.5)
    groups = {g["group"]: g for g in data["groups"]}
    assert [g["group"] for g in data["groups"]] == [MODEL_C, "B", "A", None]  # ranked
    b = groups["B"]
    assert (b["images"], b["aesthetic_mean"], b["aesthetic_std"]) == (3, 7.25, 0.75)
    assert b["good_rate"] == 1.0  # 8.0 and 6.5 both reach 6.5
    assert groups["A"]["good_rate"] == 0.0  # only p2 (7.0) reaches 6.5: incoherent
    assert "style_loss" not in b


def test_filter_and_grouping(lib, capsys):
    data = _json(capsys, "--db", str(lib.db), "--by", "lora", "--filter", "model:A")
    assert {g["group"]: g["images"] for g in data["groups"]} == {"x": 2, "y": 1, None: 2}


def test_plain_table(lib, capsys):
    assert main(["report", "--db", str(lib.db)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["model", "images", "aesthetic", "±", "std", "good", "prompt",
                                "adherence", "coherent", "accepted", "rejected"]
    row = next(line for line in lines if line.startswith("B "))
    assert row.split()[1:] == ["3", "7.25", "0.75", "100%", "25.0", "100%", "33%", "0%"]
    assert any(line.startswith("(unknown)") for line in lines)


def test_html_report_file(lib, tmp_path, capsys):
    target = tmp_path / "out" / "report.html"
    assert main(["report", "--db", str(lib.db), "--html", str(target)]) == 0
    document = target.read_text(encoding="utf-8")
    assert set(re.findall(r'data-chart="([a-z_]+)"', document)) == {
        "aesthetic", "scatter", "good_rate", "prompts"}
    assert document.count("data:image/jpeg;base64,") == 6  # thumbnails from the cache
    assert capsys.readouterr().out.split()[0] == "model"  # the table still prints


@pytest.mark.parametrize("args, message", [
    (["--filter", "gnerator:x"], "bad --filter"),
    (["--style-reference", "/no/such/folder"], "is not a folder"),
])
def test_usage_errors(lib, capsys, args, message):
    assert main(["report", "--db", str(lib.db), *args]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("args", [["--good-threshold", "six"], ["--by", "colour"]])
def test_bad_options_exit_2(lib, args):
    with pytest.raises(SystemExit) as exc:
        main(["report", "--db", str(lib.db), *args])
    assert exc.value.code == 2


def test_failures_exit_1_with_a_message(lib, tmp_path, capsys):
    assert main(["report", "--db", str(tmp_path / "none.sqlite3")]) == 1
    assert "no library database" in capsys.readouterr().err
    reference = tmp_path / "ref"
    reference.mkdir()
    photo_like(32, 32).save(reference / "a.png")
    assert main(["report", "--db", str(lib.db), "--style-reference", str(reference),
                 "--models-dir", str(tmp_path / "models")]) == 1
    assert "vgg19-dcbb9e9d.pth" in capsys.readouterr().err  # says what to get
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["report", "--db", str(lib.db), "--html", str(blocker / "r.html")]) == 1
    assert "cannot write" in capsys.readouterr().err


@pytest.mark.slow
def test_style_loss_end_to_end(tmp_path, home, capsys):
    """Two pictures, each its own model; the reference folder holds a copy of the first:
    its group's style loss is ~0, the other's is larger."""
    from cli_support import a1111_parameters
    from PIL.PngImagePlugin import PngInfo

    models = tmp_path / "models"
    write_style(models)
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    for name, seed in (("first", 1), ("second", 77)):
        info = PngInfo()
        info.add_text("parameters", a1111_parameters(f"a {name} picture", model=name))
        photo_like(96, 64, seed=seed).save(pictures / f"{name}.png", pnginfo=info)
    reference = tmp_path / "reference"
    reference.mkdir()
    (reference / "same.png").write_bytes((pictures / "first.png").read_bytes())
    db = str(tmp_path / "library.sqlite3")
    common = ["--db", db, "--models-dir", str(models)]
    assert main(["scan", str(pictures), "--analysers", "style", "--device", "cpu",
                 *common]) == 0
    capsys.readouterr()
    data = _json(capsys, "--style-reference", str(reference), "--device", "cpu",
                 "--html", str(tmp_path / "r.html"), *common)
    losses = {g["group"]: g["style_loss"] for g in data["groups"]}
    assert losses["first"] == pytest.approx(0.0, abs=1e-9)
    assert losses["second"] > 1e3 * max(losses["first"], 1e-12)
    assert 'data-chart="style_loss"' in (tmp_path / "r.html").read_text(encoding="utf-8")
