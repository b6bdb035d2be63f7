"""Stacks and near-duplicates in the app: the cell models (qtmodeltester, best image, count,
blur), and the real window's flows — S / Enter / Esc through a stack, Shift+X on a whole stack
as one undo step, D and the keeper-marked compare, C on a selection, review keys routed to the
page shown."""

from __future__ import annotations

import pytest
from fixtures_app import build_app, decisions
from grid_test_helpers import checkerboard, high_frequency
from PySide6.QtCore import QItemSelectionModel, Qt
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication
from sqlalchemy import func, select

from db.filters import ImageFilter
from db.schema import ReviewLog
from desktop.families.cells import DuplicateCellsModel, StackCellsModel
from desktop.roles import Role

A, B = "aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb"


# --- the models ---------------------------------------------------------------------------------

def loaded(qtbot, model, f: ImageFilter | None = None):
    with qtbot.waitSignal(model.cells_loaded, timeout=20_000):
        model.load(f or ImageFilter())
    return model


def test_stack_cells_show_the_best_image_and_a_count(qtbot, qtmodeltester, library, loader,
                                                     blur):
    plain = [library.add(seed=i) for i in range(3)]
    best = library.add(seed=9, rating=4)
    other = library.add(seed=10)
    for image_id in (*plain, best):
        library.set(image_id, stack_key=A)
    library.set(other, stack_key=B)
    library.add(seed=11)  # no prompt: in no stack
    model = loaded(qtbot, StackCellsModel(library.Session, loader, blur))
    qtmodeltester.check(model)
    cells = {model.index(r).data(Role.FamilyKey): r for r in range(model.rowCount())}
    assert set(cells) == {A, B}
    row_a = cells[A]
    assert model.index(row_a).data(Role.FamilyCount) == 4
    assert model.index(row_a).data(Role.ImageId) == best  # the highest rating
    assert model.index(row_a).data() == "stack of 4"
    mime = model.mimeData([model.index(row_a)])
    assert [u.toLocalFile() for u in mime.urls()] == [model.index(row_a).data(Role.Path)]
    # The filter decides which images count.
    loaded(qtbot, model, ImageFilter(rating_min=1))
    assert model.rowCount() == 1 and model.index(0).data(Role.FamilyCount) == 1


def test_a_flagged_unreviewed_cover_is_blurred_in_its_cell(qtbot, library, loader, blur):
    cover = library.add(picture=checkerboard(seed=1), flagged=True, rating=3)
    library.set(cover, stack_key=A)
    library.set(library.add(picture=checkerboard(seed=2)), stack_key=A)
    model = loaded(qtbot, StackCellsModel(library.Session, loader, blur))
    index = model.index(0)
    assert index.data(Role.ImageId) == cover and index.data(Role.NeedsBlur) is True
    model.set_visible_rows(0, 0)
    qtbot.waitUntil(lambda: isinstance(index.data(Qt.ItemDataRole.DecorationRole), QImage),
                    timeout=10_000)
    assert high_frequency(index.data(Qt.ItemDataRole.DecorationRole)) < 2.0
    blur.peek(cover)
    assert high_frequency(index.data(Qt.ItemDataRole.DecorationRole)) > 20.0
    blur.end_peek()
    assert high_frequency(index.data(Qt.ItemDataRole.DecorationRole)) < 2.0


def test_duplicate_cells_have_the_keeper_first(qtbot, qtmodeltester, library, loader, blur):
    small = library.add(picture=checkerboard(size=128, seed=3))
    large = library.add(picture=checkerboard(size=256, seed=3))
    single = library.add(picture=checkerboard(seed=7))
    for image_id, value in ((small, 0x0F0F), (large, 0x0F0E), (single, -0x7000_0000_0000_0000)):
        library.set(image_id, phash=value)
    model = loaded(qtbot, DuplicateCellsModel(library.Session, loader, blur))
    qtmodeltester.check(model)
    assert model.rowCount() == 1
    cell = model.cell(0)
    assert cell.member_image_ids == (large, small)  # most pixels keeps
    assert model.index(0).data(Role.ImageId) == large and model.index(0).data() == "2 copies"


# --- the real window ------------------------------------------------------------------------------

@pytest.fixture
def family_app(qtbot, tmp_path):
    from family_images import encode, generated_png, photo, structured

    folder = tmp_path / "outputs"
    folder.mkdir()
    for seed in range(3):  # a stack of three seeds
        (folder / f"castle_{seed}.png").write_bytes(
            generated_png(structured(seed, (128, 128)), "a castle", seed=seed))
    (folder / "lone.png").write_bytes(generated_png(structured(7, (128, 128)), "a lake"))
    coffee = photo("coffee", 256)
    (folder / "coffee.png").write_bytes(encode(coffee, "PNG"))
    (folder / "coffee.jpg").write_bytes(encode(coffee, "JPEG", quality=70))
    app, engine = build_app(qtbot, tmp_path, [folder], expect_rows=6)
    yield app
    app.shutdown()
    app.window.close()
    engine.dispose()


def key(qtbot, app, k, modifier=Qt.KeyboardModifier.NoModifier):
    qtbot.keyClick(QApplication.focusWidget() or app.view, k, modifier)


def current_page(app):
    return app.window.stack.currentWidget()


def log_groups(app) -> int:
    with app.window.sessions() as session:
        return session.scalar(select(func.count(func.distinct(ReviewLog.group_id)))) or 0


def open_stacks(qtbot, app):
    families = app.families
    with qtbot.waitSignal(families.stacks.model.cells_loaded, timeout=20_000):
        key(qtbot, app, Qt.Key.Key_S)
    assert current_page(app) is families.stacks
    return families.stacks


def test_s_enter_esc_walk_through_a_stack(qtbot, family_app):
    pytest.importorskip("skimage")
    app = family_app
    view_menu = next(a.menu() for a in app.window.menuBar().actions() if a.text() == "&View")
    assert app.window.registry.action("view.stacks") in view_menu.actions()
    page = open_stacks(qtbot, app)
    assert app.window.registry.action("view.stacks").isChecked()
    counts = sorted(page.model.index(r).data(Role.FamilyCount)
                    for r in range(page.model.rowCount()))
    assert counts == [1, 3]
    castle = next(r for r in range(page.model.rowCount())
                  if page.model.index(r).data(Role.FamilyCount) == 3)
    page.view.set_current_row(castle)
    key(qtbot, app, Qt.Key.Key_Return)
    assert current_page(app) is app.view
    assert "stack:" in app.window.filter_bar.query_edit.text()
    qtbot.waitUntil(lambda: app.model.rowCount() == 3)
    assert {app.model.grid_row(r).name for r in range(3)} == {
        "castle_0.png", "castle_1.png", "castle_2.png"}
    with qtbot.waitSignal(page.model.cells_loaded, timeout=20_000):
        key(qtbot, app, Qt.Key.Key_Escape)
    assert current_page(app) is page and page.current_row() == castle
    assert "stack:" not in app.window.filter_bar.query_edit.text()
    key(qtbot, app, Qt.Key.Key_S)
    assert current_page(app) is app.view


def test_whole_stack_decisions_only_through_shift_and_undo_as_one_step(qtbot, family_app):
    pytest.importorskip("skimage")
    app = family_app
    page = open_stacks(qtbot, app)
    castle = next(r for r in range(page.model.rowCount())
                  if page.model.index(r).data(Role.FamilyCount) == 3)
    page.view.set_current_row(castle)
    before, groups = decisions(app), log_groups(app)
    key(qtbot, app, Qt.Key.Key_X)  # a plain review key on a stack cell decides nothing
    assert decisions(app) == before
    key(qtbot, app, Qt.Key.Key_X, Qt.KeyboardModifier.ShiftModifier)
    state = decisions(app)
    assert {state[f"castle_{s}.png"] for s in range(3)} == {"rejected"}
    assert state["lone.png"] == "none" and log_groups(app) == groups + 1
    key(qtbot, app, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert {decisions(app)[f"castle_{s}.png"] for s in range(3)} == {"none"}


def test_duplicates_compare_with_the_keeper_and_shift_x(qtbot, family_app):
    pytest.importorskip("skimage")
    app = family_app
    page = app.families.duplicates
    with qtbot.waitSignal(page.model.cells_loaded, timeout=20_000):
        key(qtbot, app, Qt.Key.Key_D)
    assert current_page(app) is page and page.model.rowCount() == 1
    key(qtbot, app, Qt.Key.Key_Return)
    compare = app.families.compare
    assert current_page(app) is compare
    assert [p.row.name for p in compare.panes] == ["coffee.png", "coffee.jpg"]
    assert [p.is_keeper() for p in compare.panes] == [True, False]
    key(qtbot, app, Qt.Key.Key_X, Qt.KeyboardModifier.ShiftModifier)
    state = decisions(app)
    assert (state["coffee.png"], state["coffee.jpg"]) == ("none", "rejected")
    key(qtbot, app, Qt.Key.Key_Escape)
    assert current_page(app) is page


def test_c_compares_the_selection_and_review_keys_follow_the_focus(qtbot, family_app):
    app = family_app
    selection = app.view.selectionModel()
    rows = [app.model.index(r) for r in (0, 1)]
    selection.setCurrentIndex(rows[0], QItemSelectionModel.SelectionFlag.ClearAndSelect)
    selection.select(rows[1], QItemSelectionModel.SelectionFlag.Select)
    names = [app.model.grid_row(r).name for r in (0, 1)]
    key(qtbot, app, Qt.Key.Key_C)
    compare = app.families.compare
    assert current_page(app) is compare and [p.row.name for p in compare.panes] == names
    key(qtbot, app, Qt.Key.Key_Right)  # routed: moves the focus, not the grid's cursor
    assert compare.focused_index() == 1
    key(qtbot, app, Qt.Key.Key_P)
    assert decisions(app)[names[1]] == "accepted" and decisions(app)[names[0]] == "none"
    focus = QApplication.focusWidget()
    assert focus is compare  # the page has the keyboard
    qtbot.keyPress(focus, Qt.Key.Key_Space)  # through the window's hold-key filter
    assert app.blur.peeking_image_id == compare.focused_image_id()
    qtbot.keyRelease(focus, Qt.Key.Key_Space)
    assert app.blur.peeking_image_id is None
    key(qtbot, app, Qt.Key.Key_Escape)
    assert current_page(app) is app.view and compare.panes == []
    # The details pane already knows: the grid row and its preview show the acceptance.
    row = next(r for r in range(app.model.rowCount())
               if app.model.grid_row(r).name == names[1])
    assert app.model.grid_row(row).decision == "accepted"
