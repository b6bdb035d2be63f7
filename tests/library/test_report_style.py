"""The report's style loss: each group's mean over its pictures' stored Grams (of the
reference's weights version only) against the reference's mean Grams."""

from __future__ import annotations

import numpy as np
import pytest
from report_library import build_report_library

from db.engine import open_library, session_factory
from db.filters import ImageFilter
from db.style_grams import save_grams
from db.transaction import write_transaction
from inference.style_gram import LAYERS, pack, style_loss, unpack
from library.report import StyleReference, build_report
from library.report_charts import draw_charts


def _triangles(seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(0, 1, layer.channels * (layer.channels + 1) // 2).astype(np.float32)
            for layer in LAYERS]


def test_group_style_loss_is_the_mean_over_pictures_with_current_grams(tmp_path):
    lib = build_report_library(tmp_path)
    engine = open_library(lib.db)
    sessions = session_factory(engine)
    try:
        stored = {key: pack(_triangles(i)) for i, key in enumerate(("p1", "p2", "p5"), 1)}
        with write_transaction(sessions) as session:
            save_grams(session, [(lib.content_ids[k], "v1", data) for k, data in stored.items()])
            # Grams from other weights do not compare with this reference: ignored.
            save_grams(session, [(lib.content_ids["p6"], "v0", pack(_triangles(9)))])
        reference = StyleReference("ref", [t.astype(np.float64) for t in _triangles(4)], "v1", 3)
        report = build_report(sessions, "model", ImageFilter(), style=reference)
    finally:
        engine.dispose()
    groups = {g.group: g for g in report.groups}
    loss = {k: style_loss(unpack(data), reference.mean) for k, data in stored.items()}
    assert groups["A"].style_loss == pytest.approx((loss["p1"] + loss["p2"]) / 2)
    assert groups["A"].style_images == 2  # p3, p4 have none
    assert groups["B"].style_loss == pytest.approx(loss["p5"])  # p6's are "v0", p9 none
    assert groups[None].style_loss is None and groups[None].style_images == 0
    # The nine readable pictures (p8's file is broken) but p1, p2, p5.
    assert report.style_without_grams == 6
    assert all("style_loss" in g for g in report.to_json()["groups"])
    assert "style_loss" in {c.key for c in draw_charts(report)}
