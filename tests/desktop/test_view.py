"""GridView: zoom by Ctrl+wheel and Ctrl +/-, visible-range reporting."""

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from desktop.grid.delegate import PADDING
from desktop.grid.view import GridView
from desktop.roles import Role


def _wheel(view: GridView, delta: int, ctrl: bool = True) -> None:
    modifiers = (Qt.KeyboardModifier.ControlModifier if ctrl
                 else Qt.KeyboardModifier.NoModifier)
    event = QWheelEvent(QPointF(50, 50), QPointF(50, 50), QPoint(0, 0), QPoint(0, delta),
                        Qt.MouseButton.NoButton, modifiers, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(view.viewport(), event)


@pytest.fixture
def view(qtbot, library, make_model):
    for k in range(60):
        library.add(seed=k % 5, name=f"n{k:03d}.png")
    model = make_model(page_size=20)
    view = GridView(thumbnail_size=128)
    view.setModel(model)
    view.resize(700, 500)
    qtbot.addWidget(view)
    view.show()
    qtbot.waitExposed(view)
    return view


def test_ctrl_wheel_zooms_within_limits(qtbot, view):
    grid_before = view.gridSize()
    with qtbot.waitSignal(view.thumbnail_size_changed) as changed:
        _wheel(view, 120)
    assert changed.args == [154] and view.thumbnail_size == 154
    assert view.gridSize().height() > grid_before.height()  # widths are spread to fit
    assert view.gridSize().width() >= view.thumbnail_size
    _wheel(view, -120)
    assert view.thumbnail_size == 128
    _wheel(view, 60)  # half a notch (touchpad): not yet
    assert view.thumbnail_size == 128
    _wheel(view, 60)
    assert view.thumbnail_size == 154
    for _ in range(20):
        _wheel(view, 120)
    assert view.thumbnail_size == 512
    for _ in range(30):
        _wheel(view, -120)
    assert view.thumbnail_size == 64


def test_plain_wheel_scrolls_instead_of_zooming(qtbot, view):
    _wheel(view, -120, ctrl=False)
    assert view.thumbnail_size == 128
    assert view.verticalScrollBar().value() > 0


def test_ctrl_plus_and_minus_keys_zoom(qtbot, view):
    QTest.keyClick(view, Qt.Key.Key_Plus, Qt.KeyboardModifier.ControlModifier)
    assert view.thumbnail_size == 154
    QTest.keyClick(view, Qt.Key.Key_Minus, Qt.KeyboardModifier.ControlModifier)
    assert view.thumbnail_size == 128
    QTest.keyClick(view, Qt.Key.Key_Equal, Qt.KeyboardModifier.ControlModifier)
    assert view.thumbnail_size == 154
    view.set_thumbnail_size(10_000)
    assert view.thumbnail_size == 512


def test_visible_range_follows_scrolling(qtbot, view):
    model = view.source_model()
    with qtbot.waitSignal(view.visible_range_changed, timeout=5_000) as shown:
        view.verticalScrollBar().setValue(1)
    first, last = shown.args
    assert first == 0 and last >= 4 and model.visible_rows == (first, last)
    while view.model().canFetchMore(view.rootIndex()):  # through the proxy
        view.model().fetchMore(view.rootIndex())
    view.doItemsLayout()
    with qtbot.waitSignal(view.visible_range_changed, timeout=5_000) as scrolled:
        view.verticalScrollBar().setValue(view.verticalScrollBar().maximum())
    first, last = scrolled.args
    assert first > 0 and last == model.rowCount() - 1
    assert view.indexAt(QPoint(10, 10)).row() <= first + 5  # the top of the screen


def test_view_shows_the_grid_model_through_a_same_rows_proxy(qtbot, qtmodeltester, view):
    source = view.source_model()
    proxy = view.model()
    assert proxy is not source and proxy.rowCount() == source.rowCount()
    qtmodeltester.check(proxy)
    view.setCurrentIndex(source.index(7))  # a source index is accepted and mapped
    assert view.current_row() == 7
    assert view.currentIndex().data(Role.ImageId) == source.image_id_at(7)
    view.set_current_row(3)
    assert view.currentIndex().data(Role.ImageId) == source.image_id_at(3)
    # The review controller knows only the GridModel: its indexes work on the selection.
    selection = view.selectionModel()
    selection.setCurrentIndex(source.index(5), selection.SelectionFlag.ClearAndSelect)
    assert view.current_row() == 5 and view.selected_rows() == [5]
    selection.select(source.index(6), selection.SelectionFlag.Select)
    assert view.selected_rows() == [5, 6]


def test_grid_and_list_arrangements(qtbot, view):
    assert view.is_icon_mode() and view.isWrapping()
    assert view.flow() == view.Flow.LeftToRight
    columns = view.visible_range()[1] - view.visible_range()[0] + 1
    assert columns > 1  # several cells per line
    assert view.visualRect(view.model().index(1, 0)).top() == \
        view.visualRect(view.model().index(0, 0)).top()
    view.set_icon_mode(False)
    assert not view.is_icon_mode() and not view.isWrapping()
    view.doItemsLayout()
    assert view.visualRect(view.model().index(1, 0)).top() > \
        view.visualRect(view.model().index(0, 0)).top()


def test_settle_after_startup_freezes_startup_objects_out_of_collections():
    import gc
    import weakref

    from desktop.grid.gc_policy import settle_after_startup

    class Node:
        pass

    garbage = Node()
    garbage.itself = garbage  # a cycle: only a collection frees it
    garbage_alive = weakref.ref(garbage)
    del garbage
    survivor = [Node()]
    try:
        frozen = settle_after_startup()
        assert frozen > 0 and gc.get_freeze_count() > 0
        assert garbage_alive() is None  # start-up garbage was collected, not frozen
        # The survivor is out of reach of every later collection (the permanent generation).
        assert not any(obj is survivor for obj in gc.get_objects())
    finally:
        gc.unfreeze()


def _first_line_columns(view: GridView) -> int:
    model = view.model()
    top = view.visualRect(model.index(0, 0)).top()
    return sum(view.visualRect(model.index(i, 0)).top() == top for i in range(model.rowCount()))


@pytest.mark.parametrize("width", [640, 913, 1240])
def test_columns_spread_over_the_whole_width(qtbot, view, width):
    """As many columns as fit, widened so no empty strip is left at the right edge."""
    natural = 128 + 2 * PADDING  # the delegate's cell for 128 px thumbnails
    view.resize(width, 500)
    expected = (view.viewport().width() - 1) // natural

    def spread() -> bool:
        unused = view.viewport().width() - view.gridSize().width() * expected
        return _first_line_columns(view) == expected and 0 < unused <= expected

    qtbot.waitUntil(spread)
