"""The Models view: fills its table and charts from a worker thread, sorts, and clicking a
group narrows the real window's grid to it."""

from __future__ import annotations

import threading

import pytest
from fixtures_app import build_app
from PySide6.QtCore import Qt
from report_library import MODEL_C, build_report_library

from db.engine import open_library, session_factory
from db.filters import ImageFilter
from desktop.models_view import STYLE_COLUMN
from desktop.roles import Role


@pytest.fixture
def report_lib(tmp_path, isolated_home):
    # The app's own locations: the database at tmp_path, thumbnails under GENTRIAGE_HOME.
    return build_report_library(tmp_path, thumbnails=isolated_home / "cache" / "thumbnails")


@pytest.fixture
def view(qtbot, report_lib, tmp_path):
    from desktop.models_view import ModelsView

    engine = open_library(report_lib.db)
    widget = ModelsView(session_factory(engine), tmp_path / "models", "cpu")
    qtbot.addWidget(widget)
    yield widget
    widget.shutdown()
    engine.dispose()


def _groups(view) -> list:
    model = view.table.model()
    return [model.index(r, 0).data(Role.Group) for r in range(model.rowCount())]


def _cell(view, group, column) -> str:
    model = view.table.model()
    row = _groups(view).index(group)
    return model.index(row, column).data()


def _show(qtbot, view) -> None:
    with qtbot.waitSignal(view.report_shown, timeout=30_000):
        view.refresh()


def test_fills_table_and_charts_off_the_gui_thread(qtbot, view, monkeypatch):
    import library.report_charts as charts

    drawn_on = []
    real_to_png = charts.to_png

    def spying_to_png(figure, dpi=100):
        drawn_on.append(threading.current_thread() is threading.main_thread())
        return real_to_png(figure, dpi)

    monkeypatch.setattr(charts, "to_png", spying_to_png)
    _show(qtbot, view)
    assert _groups(view) == [MODEL_C, "B", "A", None]  # rank order
    assert [_cell(view, "B", c) for c in range(1, 9)] == [
        "3", "7.25", "0.75", "100%", "25.0", "100%", "33%", "0%"]
    assert _cell(view, None, 0) == "(unknown)"
    titles = [view.charts.tabText(i) for i in range(view.charts.count())]
    assert titles == ["Aesthetic score distribution per group",
                      "Aesthetic score vs prompt adherence", "Good-image rate",
                      "Per-prompt breakdown (mean aesthetic score)"]
    for key in ("aesthetic", "scatter", "good_rate", "prompts"):
        label = view.findChild(type(view.status_label), f"chart_{key}")
        assert label is not None and not label.pixmap().isNull()
        assert label.pixmap().width() > 300
    assert drawn_on and not any(drawn_on)  # every chart rendered on the worker
    assert view.table.isColumnHidden(STYLE_COLUMN)  # no style reference, no style column


def test_table_model_passes_the_model_tester(qtbot, qtmodeltester, view):
    _show(qtbot, view)
    qtmodeltester.check(view.table_model)
    qtmodeltester.check(view.proxy)


def test_sorting_by_a_column_keeps_unknown_values_last(qtbot, view):
    _show(qtbot, view)
    view.table.sortByColumn(1, Qt.SortOrder.DescendingOrder)  # images
    assert _groups(view)[:2] == ["A", "B"]
    view.table.sortByColumn(6, Qt.SortOrder.DescendingOrder)  # coherent rate
    assert _groups(view)[-1] == MODEL_C  # no coherence verdicts: last either way
    view.table.sortByColumn(6, Qt.SortOrder.AscendingOrder)
    assert _groups(view)[0] == "A" and _groups(view)[-1] == MODEL_C
    view.table.sortByColumn(0, Qt.SortOrder.AscendingOrder)  # by name
    assert _groups(view) == ["A", "B", MODEL_C, None]


def test_grouping_and_threshold_change_the_report(qtbot, view):
    _show(qtbot, view)
    with qtbot.waitSignal(view.report_shown, timeout=30_000):
        view.set_by("lora")
    assert set(_groups(view)) == {"x", "y", None}
    with qtbot.waitSignal(view.report_shown, timeout=30_000):
        view.threshold_spin.setValue(7.5)
    assert _cell(view, "y", 4) == "50%"  # p5's 8.0; p2's 7.0 falls short
    assert view.report.good_threshold == 7.5


def test_clicking_a_group_narrows_the_real_grid(qtbot, tmp_path, report_lib):
    app, engine = build_app(qtbot, tmp_path, [], expect_rows=10)  # 11 files, p8 broken
    try:
        window = app.window
        window.registry.action("view.models").trigger()
        view = window.models_view
        qtbot.waitUntil(lambda: view.report is not None and view.table.model().rowCount() == 4,
                        timeout=30_000)
        assert view.isVisible()

        def click(group) -> None:
            model = view.table.model()
            index = model.index(_groups(view).index(group), 0)
            qtbot.mouseClick(view.table.viewport(), Qt.MouseButton.LeftButton,
                             pos=view.table.visualRect(index).center())

        click("B")
        qtbot.waitUntil(lambda: app.model.rowCount() == 3, timeout=10_000)  # p5, p6, p9
        assert window.filter_bar.current_filter().models == {"B"}
        names = {app.model.grid_row(r).name for r in range(app.model.rowCount())}
        assert names == {"p5.png", "p6.png", "p9.png"}
        assert len(_groups(view)) == 4  # the overview stays
        click("A")
        qtbot.waitUntil(lambda: app.model.rowCount() == 5, timeout=10_000)  # p1 (twice)..p4
        click(None)  # no filter term names "model unknown": nothing changes, it says so
        assert "cannot be written as a filter" in view.status_label.text()
        assert window.filter_bar.current_filter().models == {"A"}
        # A filter change elsewhere is followed.
        with qtbot.waitSignal(view.report_shown, timeout=30_000):
            window.filter_bar.set_filter(ImageFilter(decisions=frozenset({"accepted"})))
        assert set(_groups(view)) == {"A", "B"}
    finally:
        app.shutdown()
        app.window.close()
        engine.dispose()


def test_the_view_uses_the_apps_models_folder_and_device(qtbot, tmp_path):
    """--models-dir and --device win over the settings here as for analysis; a settings
    change reaches a view already open."""
    from library.settings import Settings

    explicit = tmp_path / "explicit-models"
    app, engine = build_app(qtbot, tmp_path, [], models_dir=str(explicit), device="cpu",
                            settings=Settings(models_dir=str(tmp_path / "set-models")))
    try:
        window = app.window
        window.registry.action("view.models").trigger()
        assert window.models_view.models == (explicit, "cpu")
        app.models_dir = lambda settings: tmp_path / "changed"  # as after a settings change
        app.device = "cuda"
        window.registry.action("view.models").trigger()
        assert window.models_view.models == (tmp_path / "changed", "cuda")
    finally:
        app.shutdown()
        app.window.close()
        engine.dispose()

    (tmp_path / "b").mkdir()
    app, engine = build_app(qtbot, tmp_path / "b", [],
                            settings=Settings(models_dir=str(tmp_path / "set-models"),
                                              device="cpu"))
    try:
        app.window.registry.action("view.models").trigger()
        # No --models-dir or --device: the settings' choices.
        assert app.window.models_view.models == (tmp_path / "set-models", "cpu")
    finally:
        app.shutdown()
        app.window.close()
        engine.dispose()


def test_an_empty_library_says_so(qtbot, tmp_path):
    from desktop.models_view import ModelsView

    engine = open_library(tmp_path / "empty.sqlite3")
    widget = ModelsView(session_factory(engine), tmp_path / "models")
    qtbot.addWidget(widget)
    try:
        _show(qtbot, widget)
        assert widget.table.model().rowCount() == 0 and widget.charts.count() == 0
        assert "No pictures match" in widget.status_label.text()
    finally:
        widget.shutdown()
        engine.dispose()
