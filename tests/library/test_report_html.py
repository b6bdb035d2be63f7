"""The HTML report: self-contained, with its charts, escaped text, and thumbnails that obey
the blur rule — checked on the decoded pixels of every embedded picture."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest
from PIL import Image
from report_library import build_report_library

from db.engine import open_library, session_factory
from db.filters import ImageFilter
from library.privacy import COVER_RGB
from library.report import build_report
from library.report_html import render_html
from library.thumbnails import ThumbnailCache

IMG = re.compile(r'<img [^>]*src="data:(image/[a-z+]+);base64,([A-Za-z0-9+/=]+)"')


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    return build_report_library(tmp_path_factory.mktemp("report-html"))


@pytest.fixture(scope="module")
def report(lib):
    engine = open_library(lib.db)
    try:
        return build_report(session_factory(engine), "model", ImageFilter(), details=True)
    finally:
        engine.dispose()


def _embedded(document: str, mime: str) -> list[bytes]:
    return [base64.b64decode(data) for kind, data in IMG.findall(document) if kind == mime]


def _distance(embedded: Image.Image, source: Image.Image) -> float:
    """Mean absolute pixel difference at the source's size: ~12 for the JPEG of the picture
    itself, ~46 for a blur or cover of it (or any other picture: they are random detail)."""
    a = np.asarray(embedded.convert("RGB").resize(source.size, Image.Resampling.BICUBIC),
                   dtype=np.float32)
    return float(np.abs(a - np.asarray(source.convert("RGB"), dtype=np.float32)).mean())


def test_self_contained_with_every_chart(report, lib):
    document = render_html(report, ThumbnailCache(lib.thumbnails).load)
    charts = set(re.findall(r'data-chart="([a-z_]+)"', document))
    assert charts == {"aesthetic", "scatter", "good_rate", "prompts"}  # no style reference
    svgs = _embedded(document, "image/svg+xml")
    assert len(svgs) == 4 and all(svg.lstrip().startswith(b"<?xml") and b"<svg" in svg
                                  for svg in svgs)
    assert "default-src 'none'" in document  # the browser may fetch nothing
    lowered = document.lower()
    for forbidden in ("<script", "<link", "src=\"http", "url(", "<iframe"):
        assert forbidden not in lowered
    for src in re.findall(r'src="([^"]*)"', document):
        assert src.startswith("data:image/")


def test_library_text_is_escaped(report, lib):
    document = render_html(report, ThumbnailCache(lib.thumbnails).load)
    assert '<b>"bold"</b>' not in document
    assert "C &lt;b&gt;&quot;bold&quot;&lt;/b&gt; &amp; co" in document
    assert "red fox" in document  # the per-prompt table


def test_no_flagged_unreviewed_picture_is_embedded_clear(report, lib):
    cache = ThumbnailCache(lib.thumbnails)
    document = render_html(report, cache.load)
    embedded = [Image.open(io.BytesIO(data)) for data in _embedded(document, "image/jpeg")]
    # Showcase: A: p2, p1 · B: p5, p6 · C: p10 · unknown: p7 (rejected p3 never).
    assert len(embedded) == 6

    def closest(key: str) -> float:
        source = cache.load(lib.sha256[key])
        return min(_distance(image, source) for image in embedded)

    for key in ("p1", "p6", "p7"):  # nobody flagged them: shown as they are
        assert closest(key) < 25, key
    # p2 (incoherent), p5 (NSFW): flagged, unreviewed; p10: sensitive folder, unanalysed.
    # p3 was rejected: a person decided it should not be seen, so it is not shown at all.
    for key in ("p2", "p5", "p10", "p3"):
        assert closest(key) > 35, key


def test_cover_mode_embeds_solid_covers(report, lib):
    cache = ThumbnailCache(lib.thumbnails)
    document = render_html(report, cache.load, blur_mode="cover")
    flat = [image for image in (Image.open(io.BytesIO(d)) for d in
                                _embedded(document, "image/jpeg"))
            if np.asarray(image, dtype=np.float32).std() < 12]
    assert len(flat) == 3  # p2, p5, p10
    for image in flat:
        mean = np.asarray(image.convert("RGB"), dtype=np.float32).reshape(-1, 3).mean(0)
        assert np.abs(mean - COVER_RGB).max() < 12


def test_missing_thumbnails_are_left_out(report):
    document = render_html(report, lambda sha: None)
    assert not _embedded(document, "image/jpeg")
    assert 'data-chart="aesthetic"' in document
