"""The compare view (desktop.compare): panes, synchronised zoom and pan, the field table with
differences highlighted, the blur rule in every pane (Space peeks only the focused one), and
the review keys on the focused pane — P, X, 0–5, Tab, and Shift+X "reject the others" as one
undo step."""

from __future__ import annotations

import pytest
from grid_test_helpers import checkerboard, high_frequency
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication
from sqlalchemy import func, select

from db import review
from db.queries import rows_by_image_ids
from db.schema import Content, Generation, Image, ReviewLog
from db.transaction import write_transaction
from desktop.compare.view import CompareView
from desktop.roles import Role

CLEAR = 20.0  # a 4 px checkerboard painted clear scores tens; blurred, about 0


@pytest.fixture
def compare(qtbot, library, blur, loader):
    view = CompareView(library.Session, blur, loader)
    qtbot.addWidget(view)
    view.resize(1200, 800)
    view.show()
    qtbot.waitExposed(view)
    yield view
    view.shutdown()


def add_generation(library, image_id: int, **fields) -> None:
    with library.Session() as session:
        content_id = session.get(Image, image_id).content_id
        values = {"generator": "a1111", "prompt": "a castle", "model": "sdxl", "seed": "1",
                  "steps": 20, "sampler": "Euler a", "cfg_scale": 7.0, "raw": {}}
        values.update(fields)
        session.add(Generation(content_id=content_id, **values))
        session.commit()


def show(view, library, ids, keeper=None, total=None):
    with library.Session() as session:
        rows = rows_by_image_ids(session, ids)
    view.show_rows(rows, keeper, total)


def picture_score(pane) -> float:
    """How much detail the pane paints in the middle of its picture (away from the badges,
    the hint band and the focus frame)."""
    area = pane.picture_rect().toAlignedRect().intersected(pane.rect())
    middle = area.adjusted(area.width() // 4, area.height() // 4, -area.width() // 4,
                           -area.height() // 4)
    return high_frequency(pane.grab().toImage().copy(middle))


def wait_clear(qtbot, pane, clear: bool = True) -> None:
    """Until the pane paints the full picture clear (or blurred)."""
    def painted() -> bool:
        if not pane.has_full_image():
            return False
        score = picture_score(pane)
        return score > CLEAR if clear else score < 2.0
    qtbot.waitUntil(painted, timeout=10_000)


def test_panes_follow_the_rows_and_mark_the_keeper(compare, library):
    ids = [library.add(seed=i) for i in range(5)]
    show(compare, library, ids, keeper=ids[1], total=5)
    assert len(compare.panes) == 4  # at most four
    assert [p.row.image_id for p in compare.panes] == ids[:4]
    assert [p.is_keeper() for p in compare.panes] == [False, True, False, False]
    assert compare.title.text() == "Comparing 4 of 5 pictures"
    show(compare, library, ids[:2])
    assert len(compare.panes) == 2 and compare.title.text() == "Comparing 2 pictures"


def test_zoom_and_pan_move_every_pane_together(qtbot, compare, library):
    ids = [library.add(seed=i) for i in range(3)]
    show(compare, library, ids)
    first, second, third = compare.panes
    before = [p.picture_rect() for p in compare.panes]
    centre = QPointF(first.width() / 2, first.height() / 2)
    wheel = QWheelEvent(centre, first.mapToGlobal(centre), QPoint(), QPoint(0, 240),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
                        Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(first, wheel)
    assert compare.zoom.zoom == pytest.approx(1.25 ** 2)
    for pane, old in zip(compare.panes, before):
        assert pane.picture_rect().width() == pytest.approx(old.width() * 1.25 ** 2)
    # Drag in the second pane: all three show the same part of their pictures.
    start = QPoint(second.width() // 2, second.height() // 2)
    qtbot.mousePress(second, Qt.MouseButton.LeftButton, pos=start)
    qtbot.mouseMove(second, start + QPoint(-60, -30))
    qtbot.mouseRelease(second, Qt.MouseButton.LeftButton, pos=start + QPoint(-60, -30))
    assert compare.zoom.centre.x() > 0.5 and compare.zoom.centre.y() > 0.5
    offsets = {round(p.picture_rect().x() - p.width() / 2, 3) for p in compare.panes}
    assert len(offsets) == 1
    assert compare.focused_index() == 1  # the click focused it
    compare.zoom_actual()
    ratio = third.devicePixelRatioF()
    assert third.picture_rect().width() == pytest.approx(third.natural_size().width() / ratio)
    compare.zoom_fit()
    assert compare.zoom.zoom == 1.0 and first.picture_rect().height() <= first.height() + 0.5


def test_the_table_highlights_what_differs(qtbot, qtmodeltester, compare, library):
    a, b = library.add(seed=1), library.add(seed=2)
    add_generation(library, a, seed="111", steps=20)
    add_generation(library, b, seed="222", steps=20, cfg_scale=5.5)
    show(compare, library, [a, b])
    model = compare.fields
    qtmodeltester.check(model)

    def cell(label, column):
        return model.index(model.row_of(label), column)

    assert cell("Seed", 0).data() == "111" and cell("Seed", 1).data() == "222"
    assert cell("Seed", 0).data(Role.Differs) is True
    assert cell("CFG scale", 1).data(Role.Differs) is True
    assert cell("Seed", 1).data(Qt.ItemDataRole.BackgroundRole) is not None
    for same in ("Steps", "Model", "Sampler", "Size", "Prompt"):
        assert cell(same, 0).data(Role.Differs) is False, same
        assert cell(same, 0).data(Qt.ItemDataRole.BackgroundRole) is None
    # A prompt shaped like HTML shows as text, never as markup (an <img> would load a file).
    html_like = library.add(seed=3)
    add_generation(library, html_like, prompt='<img src="x.png">')
    show(compare, library, [a, html_like])
    assert "&lt;img" in cell("Prompt", 1).data(Qt.ItemDataRole.ToolTipRole)
    assert cell("Prompt", 1).data(Role.Differs) is True


def test_blur_applies_in_every_pane_and_space_peeks_only_the_focused_one(
        qtbot, compare, library, blur):
    flagged = [library.add(picture=checkerboard(seed=i), flagged=True) for i in range(2)]
    clear = library.add(picture=checkerboard(seed=5), decision="accepted")
    show(compare, library, [*flagged, clear])
    first, second, third = compare.panes
    wait_clear(qtbot, third)
    wait_clear(qtbot, first, clear=False)
    wait_clear(qtbot, second, clear=False)
    compare.set_focus_index(1)
    qtbot.keyPress(compare, Qt.Key.Key_Space)
    assert blur.peeking_image_id == flagged[1]
    wait_clear(qtbot, second)
    assert picture_score(first) < 2.0  # still blurred
    qtbot.keyRelease(compare, Qt.Key.Key_Space)
    assert blur.peeking_image_id is None
    wait_clear(qtbot, second, clear=False)
    # Zoomed in, a blurred pane stays blurred (no detail appears at 1:1).
    compare.zoom_actual()
    assert picture_score(first) < 2.0


def decisions(library) -> dict[int, str]:
    with library.Session() as session:
        return dict(session.execute(select(Image.id, Content.decision)
                                    .join(Content, Content.id == Image.content_id)).all())


def log_groups(library) -> int:
    with library.Session() as session:
        return session.scalar(select(func.count(func.distinct(ReviewLog.group_id)))) or 0


def test_review_keys_act_on_the_focused_pane(qtbot, compare, library):
    ids = [library.add(seed=i) for i in range(3)]
    show(compare, library, ids)
    written = []
    compare.decisions_written.connect(written.append)
    qtbot.keyClick(compare, Qt.Key.Key_Tab)
    assert compare.focused_index() == 1 and compare.panes[1].is_focused()
    qtbot.keyClick(compare, Qt.Key.Key_P)
    assert decisions(library)[ids[1]] == "accepted"
    assert compare.panes[1].row.decision == "accepted"  # repainted from the database
    assert compare.fields.index(0, 1).data() == "Accepted"
    qtbot.keyClick(compare, Qt.Key.Key_Right)
    qtbot.keyClick(compare, Qt.Key.Key_4)
    with library.Session() as session:
        assert session.get(Content, session.get(Image, ids[2]).content_id).rating == 4
    qtbot.keyClick(compare, Qt.Key.Key_Left)
    qtbot.keyClick(compare, Qt.Key.Key_X)
    assert decisions(library)[ids[1]] == "rejected"
    assert written and all(isinstance(i, int) for batch in written for i in batch)


def test_shift_x_keeps_the_focused_one_and_rejects_the_others_as_one_step(
        qtbot, compare, library):
    ids = [library.add(seed=i) for i in range(3)]
    show(compare, library, ids, keeper=ids[0])
    compare.set_focus_index(2)
    qtbot.keyClick(compare, Qt.Key.Key_P)
    before = log_groups(library)
    qtbot.keyClick(compare, Qt.Key.Key_X, Qt.KeyboardModifier.ShiftModifier)
    state = decisions(library)
    assert [state[i] for i in ids] == ["rejected", "rejected", "accepted"]
    assert log_groups(library) == before + 1
    with write_transaction(library.Session) as session:
        review.undo(session)
    compare.refresh()
    assert [decisions(library)[i] for i in ids] == ["none", "none", "accepted"]
    assert [p.row.decision for p in compare.panes] == ["none", "none", "accepted"]


def test_escape_asks_to_close(qtbot, compare, library):
    show(compare, library, [library.add(seed=1), library.add(seed=2)])
    with qtbot.waitSignal(compare.close_requested):
        qtbot.keyClick(compare, Qt.Key.Key_Escape)
