"""Every figure of the report against a hand computation on tests/report_library.py's
pictures (their table is the specification these numbers come from)."""

from __future__ import annotations

import numpy as np
import pytest
from report_library import MODEL_C, build_report_library

from db.engine import open_library, session_factory
from db.filters import ImageFilter, parse_filter
from db.queries import count_images
from library.report import build_report, group_filter


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    return build_report_library(tmp_path_factory.mktemp("report-library"))


@pytest.fixture
def sessions(lib):
    engine = open_library(lib.db)
    yield session_factory(engine)
    engine.dispose()


def _groups(sessions, by, text="", threshold=6.0, **kw):
    report = build_report(sessions, by, parse_filter(text), threshold, **kw)
    return report, {g.group: g for g in report.groups}


def test_by_model_every_figure(sessions):
    report, groups = _groups(sessions, "model")
    a, b, c, unknown = groups["A"], groups["B"], groups[MODEL_C], groups[None]
    # A: p1..p4 (p8's only file is broken); aesthetic of p1, p2, p3.
    assert a.images == 4
    assert a.aesthetic_mean == pytest.approx(np.mean([6.0, 7.0, 4.0]))
    assert a.aesthetic_std == pytest.approx(np.std([6.0, 7.0, 4.0]))  # population (ddof=0)
    assert a.aesthetic_std != pytest.approx(np.std([6.0, 7.0, 4.0], ddof=1))
    # p1 6.0 counts (>= 6, accepted, coherent); p2 7.0 is incoherent; p3 4.0 is low.
    assert a.good_rate == pytest.approx(1 / 3)
    assert a.prompt_adherence_mean == pytest.approx((30 + 20) / 2)  # p3 has no CLIPScore
    assert a.coherent_rate == pytest.approx(2 / 4)  # semi-incoherent is not coherent
    assert (a.accepted_rate, a.rejected_rate) == (pytest.approx(1 / 4), pytest.approx(1 / 4))
    # B: p5, p6, p9 (p9's aesthetic result is an error: no score).
    assert b.images == 3
    assert (b.aesthetic_mean, b.aesthetic_std) == (pytest.approx(7.25), pytest.approx(0.75))
    # p5 is flagged NSFW but that is not a quality verdict; p6 has no coherence verdict.
    assert b.good_rate == pytest.approx(1.0)
    assert b.prompt_adherence_mean == pytest.approx(25.0)
    assert b.coherent_rate == pytest.approx(1.0)  # p5, p9 judged, both coherent
    assert (b.accepted_rate, b.rejected_rate) == (pytest.approx(1 / 3), 0.0)
    assert (c.images, c.aesthetic_mean, c.aesthetic_std, c.good_rate, c.coherent_rate) == \
        (1, 9.5, 0.0, 1.0, None)
    assert (unknown.images, unknown.aesthetic_mean, unknown.good_rate,
            unknown.prompt_adherence_mean, unknown.coherent_rate) == (1, 5.0, 0.0, None, 1.0)
    # Ranked by aesthetic mean.
    assert [g.group for g in report.groups] == [MODEL_C, "B", "A", None]
    assert report.style is None and all(g.style_loss is None for g in report.groups)


def test_json_shape(sessions):
    report, _ = _groups(sessions, "model", threshold=7.0)
    data = report.to_json()
    assert set(data) == {"by", "good_threshold", "groups"}
    assert (data["by"], data["good_threshold"]) == ("model", 7.0)
    assert set(data["groups"][0]) == {
        "group", "images", "aesthetic_mean", "aesthetic_std", "good_rate",
        "prompt_adherence_mean", "coherent_rate", "accepted_rate", "rejected_rate"}
    a = next(g for g in data["groups"] if g["group"] == "A")
    assert a["good_rate"] == 0.0  # at 7.0 only p2 scores high enough, and it is incoherent


def test_a_picture_counts_once_per_group_it_belongs_to(sessions, lib):
    _, loras = _groups(sessions, "lora")
    assert (loras["x"].images, loras["y"].images) == (2, 2)  # p2 has both LoRAs
    assert loras["x"].aesthetic_mean == pytest.approx(6.5)
    assert loras["y"].good_rate == pytest.approx(1 / 2)  # p5 yes, p2 incoherent
    assert loras[None].images == 6  # p3, p4, p6, p9, p10, and p7 (no metadata)
    _, folders = _groups(sessions, "folder")
    main, other = folders[str(lib.folders["main"])], folders[str(lib.folders["other"])]
    assert (main.images, other.images) == (8, 1)  # p1's copy: once in each folder
    assert other.accepted_rate == 1.0
    _, prompts = _groups(sessions, "prompt")
    assert prompts["red fox"].images == 3 and prompts["green frog"].images == 2
    _, samplers = _groups(sessions, "sampler")
    assert samplers["euler"].images == 5 and samplers["dpm"].images == 3


def test_the_filter_narrows_the_pictures(sessions):
    _, groups = _groups(sessions, "model", "is:accepted")
    assert {g: v.images for g, v in groups.items()} == {"A": 1, "B": 1}
    assert groups["A"].aesthetic_mean == 6.0 and groups["A"].good_rate == 1.0
    _, groups = _groups(sessions, "model", "lora:y")
    assert {g: v.images for g, v in groups.items()} == {"A": 1, "B": 1}
    _, groups = _groups(sessions, "model", "status:broken")
    assert {g: v.images for g, v in groups.items()} == {"A": 1}  # p8 alone


def test_per_prompt_breakdown_lists_prompts_with_several_pictures(sessions):
    report, _ = _groups(sessions, "model", details=True)
    prompts = {(p.group, p.prompt): p for p in report.prompts}
    assert set(prompts) == {("A", "red fox"), ("A", "blue owl"), ("B", "green frog")}
    fox = prompts[("A", "red fox")]
    assert (fox.images, fox.aesthetic_mean, fox.aesthetic_std, fox.good_rate,
            fox.prompt_adherence_mean) == (2, 6.5, 0.5, 0.5, 25.0)
    owl = prompts[("A", "blue owl")]
    assert (owl.images, owl.aesthetic_mean, owl.good_rate) == (2, 4.0, 0.0)
    assert prompts[("B", "green frog")].good_rate == 1.0


def test_details_carry_every_score_and_the_best_unrejected_pictures(sessions, lib):
    report, _ = _groups(sessions, "model", details=True)
    assert sorted(s.aesthetic for s in report.scores["A"] if s.aesthetic is not None) == \
        [4.0, 6.0, 7.0]
    shots = {}
    for shot in report.showcase:
        shots.setdefault(shot.group, []).append(shot)
    # Best first; p3 (rejected) never, p4 (no score) not either.
    assert [s.content_id for s in shots["A"]] == [lib.content_ids["p2"], lib.content_ids["p1"]]
    p2, p1 = shots["A"]
    assert p2.flagged and p2.decision == "none" and not p1.flagged
    p10 = shots[MODEL_C][0]
    assert (p10.analysed, p10.in_sensitive_folder, p10.flagged) == (False, True, False)


def test_clicking_a_group_filters_exactly_its_pictures(sessions):
    """The filter the Models view applies for a group shows that group's pictures: its
    report holds that group alone (LoRA: pictures with several LoRAs bring those along),
    with the same figures."""
    base = ImageFilter()
    for by in ("model", "lora", "sampler", "generator", "folder", "prompt"):
        report, _ = _groups(sessions, by)
        for g in report.groups:
            narrowed = group_filter(by, g.group, base)
            if g.group is None:
                assert narrowed is None  # no filter term names "unknown"
                continue
            sub = {x.group: x for x in build_report(sessions, by, narrowed).groups}
            assert sub[g.group] == g, (by, g.group)
            if by != "lora":
                assert list(sub) == [g.group], (by, g.group)
    with sessions() as session:  # files, not pictures: p1 has a copy in another folder
        assert count_images(session, group_filter("model", "A", base)) == 5


def test_charts_are_drawn_only_for_figures_that_exist(sessions):
    """Without aesthetic scores the per-prompt breakdown (a heat map of mean aesthetic
    scores) would be an empty frame: it is left out, like every chart without data."""
    from dataclasses import replace

    from library.report_charts import draw_charts

    report, _ = _groups(sessions, "model", details=True)
    assert "prompts" in {chart.key for chart in draw_charts(report)}
    unscored = replace(report, prompts=[replace(p, aesthetic_mean=None)
                                        for p in report.prompts])
    assert unscored.prompts and "prompts" not in {c.key for c in draw_charts(unscored)}
