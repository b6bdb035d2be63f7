"""Blur until reviewed, checked on painted pixels in every place an image is shown."""

from dataclasses import replace

import numpy as np
import pytest
from grid_test_helpers import (
    checkerboard,
    high_frequency,
    noise,
    qimage_array,
    wait_for_thumbnails,
)
from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtGui import QColor, QImage
from PySide6.QtTest import QTest

from desktop import preview as preview_module
from desktop.blur import COVER_COLOUR, BlurPolicy, CoverKind, strong_blur
from desktop.grid.view import GridView
from desktop.preview import FullView, ImagePreview
from desktop.roles import Role

SHARP = 20.0  # a 4 px checkerboard fitted to a cell scores ~50; blurred ones score < 2
BLURRED = 3.0


def _qimage(pil) -> QImage:
    data = pil.convert("RGBA").tobytes()
    return QImage(data, pil.width, pil.height, QImage.Format.Format_RGBA8888).copy()


# --- the rule -------------------------------------------------------------------------------

class _Row:
    def __init__(self, image_id=1, decision="none", flagged=False, analysed=True, folder_id=1):
        self.image_id, self.decision, self.flagged = image_id, decision, flagged
        self.analysed, self.folder_id, self.sha256 = analysed, folder_id, "a" * 64


@pytest.mark.parametrize("row, sensitive, expected", [
    (_Row(flagged=True), set(), CoverKind.BLUR),
    (_Row(flagged=True, decision="accepted"), set(), CoverKind.CLEAR),
    (_Row(flagged=True, decision="rejected"), set(), CoverKind.SOLID),
    (_Row(flagged=False, decision="rejected"), set(), CoverKind.SOLID),
    (_Row(flagged=False), set(), CoverKind.CLEAR),
    (_Row(analysed=False), {1}, CoverKind.BLUR),
    (_Row(analysed=False), {2}, CoverKind.CLEAR),
    (_Row(analysed=True), {1}, CoverKind.CLEAR),
    (None, set(), CoverKind.SOLID),
])
def test_rule(qtbot, row, sensitive, expected):
    policy = BlurPolicy(sensitive_folder_ids=sensitive)
    assert policy.cover_kind(row) is expected
    assert policy.needs_cover(row) is (expected is not CoverKind.CLEAR)


def test_session_toggle_never_uncovers_rejected(qtbot):
    policy = BlurPolicy(sensitive_folder_ids={1})
    with qtbot.waitSignal(policy.changed):
        policy.set_session_unblurred(True)
    assert not policy.needs_cover(_Row(flagged=True))
    assert not policy.needs_cover(_Row(analysed=False))
    assert policy.cover_kind(_Row(decision="rejected")) is CoverKind.SOLID


def test_peek_reveals_only_that_image(qtbot):
    policy = BlurPolicy()
    with qtbot.waitSignal(policy.changed):
        policy.peek(1)
    assert not policy.needs_cover(_Row(image_id=1, flagged=True))
    assert policy.needs_cover(_Row(image_id=2, flagged=True))
    policy.end_peek()
    assert policy.needs_cover(_Row(image_id=1, flagged=True))


def test_cover_mode_and_explicit_sensitive_argument(qtbot):
    policy = BlurPolicy(mode="cover")
    assert policy.cover_kind(_Row(flagged=True)) is CoverKind.SOLID
    assert policy.cover_kind(_Row(analysed=False), sensitive_folder_ids={1}) is CoverKind.SOLID
    with pytest.raises(ValueError):
        policy.set_mode("pixelate")


def test_strong_blur_removes_detail_at_every_strength(qtbot):
    source = _qimage(checkerboard(512, square=8))
    assert high_frequency(source) > 25
    for radius in (8, 48, 200):
        blurred = strong_blur(source, radius)
        assert blurred.width() == blurred.height()  # aspect kept
        enlarged = blurred.scaled(512, 512, Qt.AspectRatioMode.IgnoreAspectRatio,
                                  Qt.TransformationMode.SmoothTransformation)
        assert high_frequency(enlarged) < BLURRED


def test_noise_is_not_recoverable_from_the_blur(qtbot):
    a, b = _qimage(noise(seed=1)), _qimage(noise(seed=2))
    diff = np.abs(qimage_array(strong_blur(a)) - qimage_array(strong_blur(b))).mean()
    assert diff < 4  # two different noise pictures blur to (almost) the same grey


def test_safe_image_caches_and_returns_source_when_clear(qtbot):
    policy = BlurPolicy()
    image = _qimage(checkerboard())
    flagged = _Row(flagged=True)
    first = policy.safe_image(flagged, image)
    assert first is not image and first.cacheKey() == policy.safe_image(flagged, image).cacheKey()
    assert policy.safe_image(_Row(decision="accepted"), image) is image
    assert policy.safe_image(flagged, None) is None
    policy.set_radius(96)  # a new strength makes new pixels
    assert policy.safe_image(flagged, image).cacheKey() != first.cacheKey()


# --- painted pixels: grid, drag, preview, full view -------------------------------------------

@pytest.fixture
def grid(qtbot, make_model):
    def make(**kwargs):
        model = make_model(**kwargs)
        view = GridView(thumbnail_size=192)
        view.setModel(model)
        view.resize(900, 700)
        qtbot.addWidget(view)
        view.show()
        qtbot.waitExposed(view)
        wait_for_thumbnails(qtbot, model, range(model.rowCount()))
        return model, view
    return make


def _cell(view: GridView, row: int) -> QImage:
    """The painted thumbnail area of one cell (inside the badges)."""
    grab = view.viewport().grab().toImage()
    rect = view.delegate.image_rect(view.visualRect(view.model().index(row, 0)))
    return grab.copy(rect.adjusted(40, 40, -40, -40))


def test_flagged_thumbnail_is_painted_blurred_until_accepted(qtbot, library, grid):
    flagged = library.add(flagged=True, seed=1)
    clear = library.add(flagged=False, seed=2)
    model, view = grid()
    flagged_row, clear_row = model.row_of_image(flagged), model.row_of_image(clear)
    assert high_frequency(_cell(view, clear_row)) > SHARP
    assert high_frequency(_cell(view, flagged_row)) < BLURRED

    content_id = library.set(flagged, decision="accepted")
    model.refresh_contents([content_id])
    qtbot.waitUntil(lambda: high_frequency(_cell(view, flagged_row)) > SHARP)


def test_space_peek_shows_the_grid_cell(qtbot, library, grid, blur):
    flagged = library.add(flagged=True, seed=1)
    model, view = grid()
    row = model.row_of_image(flagged)
    blur.peek(flagged)
    qtbot.waitUntil(lambda: high_frequency(_cell(view, row)) > SHARP)
    blur.end_peek()
    qtbot.waitUntil(lambda: high_frequency(_cell(view, row)) < BLURRED)


def test_rejected_image_stays_covered(qtbot, library, grid, blur):
    a = library.add(decision="rejected", picture=checkerboard(seed=3))
    b = library.add(decision="rejected", picture=noise(seed=4))
    model, view = grid()
    blur.set_session_unblurred(True)
    qtbot.wait(1)  # let the repaint requested by `changed` happen (no timing involved)
    cells = []
    for image_id in (a, b):
        rect = view.delegate.image_rect(
            view.visualRect(view.model().index(model.row_of_image(image_id), 0)))
        cells.append(qimage_array(view.viewport().grab().toImage().copy(rect)))
    assert np.array_equal(cells[0], cells[1])  # nothing of either picture shows through
    top_band = cells[0][30:60, 40:-40]  # below the badges, above the centred label
    assert np.all(top_band == top_band[0, 0])
    grey = QColor(COVER_COLOUR)
    assert abs(top_band[0, 0] - (0.299 * grey.red() + 0.587 * grey.green()
                                 + 0.114 * grey.blue())) < 3


def test_cover_mode_paints_flagged_cells_solid(qtbot, library, grid, blur):
    flagged = library.add(flagged=True, seed=1)
    model, view = grid()
    blur.set_mode("cover")
    row = model.row_of_image(flagged)
    qtbot.waitUntil(lambda: high_frequency(_cell(view, row).copy(0, 0, 100, 20)) == 0)


def test_sensitive_folder_blurs_unanalysed_images(qtbot, library, grid, blur):
    pending = library.add(sensitive=True, analysed=False, seed=5)
    model, view = grid()
    row = model.row_of_image(pending)
    assert high_frequency(_cell(view, row)) > SHARP
    blur.set_sensitive_folders({library.folder("sensitive", True)})
    assert model.index(row).data(Role.NeedsBlur)
    qtbot.waitUntil(lambda: high_frequency(_cell(view, row)) < BLURRED)
    library.set(pending, analysed=True)
    model.refresh_images([pending])
    qtbot.waitUntil(lambda: high_frequency(_cell(view, row)) > SHARP)


def test_drag_pixmap_is_the_safe_image(qtbot, library, grid):
    flagged = library.add(flagged=True, seed=1)
    accepted = library.add(flagged=True, decision="accepted", seed=2)
    model, view = grid()
    for image_id, sharp in ((flagged, False), (accepted, True)):
        index = view.model().index(model.row_of_image(image_id), 0)
        view.setCurrentIndex(index)
        picture = view.drag_pixmap([index]).toImage()
        assert picture.width() == 128
        centre = picture.copy(QRect(24, 24, 80, 80))
        assert (high_frequency(centre) > SHARP) is sharp


def test_tooltip_carries_no_image(library, make_model):
    library.add('<img src="secret.png">', flagged=True)
    model = make_model()
    tip = model.index(0).data(Qt.ItemDataRole.ToolTipRole)
    assert isinstance(tip, str) and "<img" not in tip.lower()


@pytest.mark.parametrize("widget_class", [ImagePreview, FullView])
def test_preview_and_full_view_paint_the_safe_image(qtbot, library, make_model, blur, loader,
                                                    widget_class, monkeypatch):
    flagged = library.add(flagged=True, picture=checkerboard(600, square=6))
    model = make_model()
    row = model.grid_row(model.row_of_image(flagged))
    reads = []
    real_read = preview_module.read_fitted
    monkeypatch.setattr(preview_module, "read_fitted",
                        lambda path, available: reads.append(path) or real_read(path, available))
    widget = widget_class(blur, loader)
    qtbot.addWidget(widget)
    widget.resize(640, 640)
    widget.show()
    qtbot.waitExposed(widget)

    def centre() -> QImage:
        return widget.grab().toImage().copy(QRect(170, 170, 300, 200))

    with qtbot.waitSignal(widget.image_loaded, timeout=10_000):
        widget.set_row(row)
    assert widget.has_full_image()
    assert high_frequency(centre()) < BLURRED
    widget.peek(True)  # rendered clear on the reader thread, from the picture already read
    qtbot.waitUntil(lambda: high_frequency(centre()) > SHARP, timeout=10_000)
    widget.peek(False)  # the clear pixels are refused at once, not after a new render
    assert high_frequency(centre()) < BLURRED
    qtbot.waitUntil(widget.has_full_image, timeout=10_000)
    assert high_frequency(centre()) < BLURRED
    library.set(flagged, decision="rejected")
    rejected = replace(row, decision="rejected")
    widget.set_row(rejected)

    def covered() -> bool:
        band = qimage_array(widget.grab().toImage().copy(QRect(170, 60, 300, 60)))
        return bool(np.all(band == band[0, 0]))

    assert covered()  # at once (the thumbnail's cover), then the full-size cover
    qtbot.waitUntil(widget.has_full_image, timeout=10_000)
    assert covered()
    widget.set_row(replace(row, decision="accepted"))
    qtbot.waitUntil(lambda: high_frequency(centre()) > SHARP, timeout=10_000)
    assert len(reads) == 1  # the same picture: decoded once, re-rendered for each decision


def test_preview_gets_only_safe_pixels_rendered_at_the_painted_size(qtbot, library,
                                                                    make_model, blur):
    """The reader thread scales and blurs; the GUI thread receives pixels that are already
    safe for the row and exactly the device size they are painted at (a blit)."""
    flagged = library.add(flagged=True, picture=checkerboard(1200, square=6))
    clear = library.add(picture=checkerboard(1200, square=6, seed=3))
    model = make_model()
    preview = ImagePreview(blur)
    qtbot.addWidget(preview)
    preview.resize(400, 300)
    preview.show()
    qtbot.waitExposed(preview)
    delivered: list[tuple[QImage, object]] = []
    preview._delivery.loaded.connect(
        lambda _generation, image, decision, _natural, _error: delivered.append(
            (image, decision)))

    with qtbot.waitSignal(preview.image_loaded, timeout=10_000):
        preview.set_row(model.grid_row(model.row_of_image(flagged)))
    qtbot.waitUntil(lambda: len(delivered) == 1, timeout=10_000)  # queued like the widget's
    ratio = preview.devicePixelRatioF()
    fitted = QSize(round(300 * ratio), round(300 * ratio))  # 1200x1200 within 400x300
    assert [image.size() for image, _ in delivered] == [fitted]
    assert delivered[0][1].kind is CoverKind.BLUR
    assert high_frequency(delivered[0][0]) < BLURRED  # never a clear picture, even briefly
    assert high_frequency(preview.displayed_image()) < BLURRED

    with qtbot.waitSignal(preview.image_loaded, timeout=10_000):
        preview.set_row(model.grid_row(model.row_of_image(clear)))
    qtbot.waitUntil(lambda: len(delivered) == 2, timeout=10_000)
    assert delivered[-1][0].size() == fitted and delivered[-1][1].kind is CoverKind.CLEAR
    assert high_frequency(preview.displayed_image()) > SHARP

    preview.resize(200, 200)  # a new size is rendered again at that size
    smaller = QSize(round(200 * ratio), round(200 * ratio))
    qtbot.waitUntil(lambda: preview.displayed_image().size() == smaller, timeout=10_000)


def test_pixels_rendered_for_one_decision_are_refused_under_another(qtbot):
    policy = BlurPolicy()
    flagged = _Row(flagged=True)
    image = _qimage(checkerboard())
    blurred_for = policy.decision(flagged)
    blurred = blurred_for.render(image, QSize(200, 200))
    assert blurred.size() == QSize(200, 200) and high_frequency(blurred) < BLURRED
    assert policy.safe_image(flagged, blurred, made_for=blurred_for) is blurred
    clear_for = policy.decision(_Row(decision="accepted"))
    # Clear pixels offered for a flagged row are refused, never blurred on the spot.
    assert policy.safe_image(flagged, image, made_for=clear_for) is None
    policy.peek(flagged.image_id)
    assert policy.safe_image(flagged, image, made_for=clear_for) is image
    assert policy.safe_image(flagged, blurred, made_for=blurred_for) is blurred  # a cover: safe
    policy.end_peek()
    rejected = _Row(flagged=True, decision="rejected")
    assert policy.safe_image(rejected, blurred, made_for=blurred_for) is None
    policy.set_radius(96)
    assert policy.safe_image(flagged, blurred, made_for=blurred_for) is None


def test_full_view_escape_asks_to_close(qtbot, blur):
    view = FullView(blur)
    qtbot.addWidget(view)
    with qtbot.waitSignal(view.close_requested):
        QTest.keyClick(view, Qt.Key.Key_Escape)


def test_preview_reports_unreadable_files(qtbot, library, make_model, blur, tmp_path):
    image_id = library.add(seed=1)
    model = make_model()
    row = model.grid_row(0)
    (tmp_path / "files" / "out" / row.name).write_bytes(b"not a png")
    preview = ImagePreview(blur)
    qtbot.addWidget(preview)
    preview.resize(QSize(200, 200))
    with qtbot.waitSignal(preview.load_failed, timeout=10_000) as failed:
        preview.set_row(row)
    assert failed.args[0] == image_id and "cannot read" in failed.args[1]
    assert preview.displayed_image() is None
