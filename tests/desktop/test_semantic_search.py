"""The app's semantic search on a real library embedded by the tiny CLIP: the like: term ranks
the grid by the text tower (off the GUI thread), "Find similar" (key F, context menu) shows
the re-encoded copy first, the filter bar says a semantic term is active, other terms still
combine, a flagged picture stays blurred among the results, and a missing model is said in
the window without breaking it."""

from __future__ import annotations

import pytest
from fixtures_app import build_app, current_name, names_in_view
from PySide6.QtCore import Qt
from search_support import build_search_library
from sqlalchemy import update

from db.engine import session_factory
from db.filters import parse_filter
from db.schema import Content, Image
from db.transaction import write_transaction
from desktop.roles import Role
from library.search import SemanticSearch

WAIT_MS = 60_000  # the first search loads the text tower on a busy 2-core machine


@pytest.fixture(autouse=True)
def _no_hf_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path_factory.getbasetemp() / "empty-hf-cache"))


@pytest.fixture
def searchable_app(qtbot, tmp_path):
    library = build_search_library(tmp_path)  # tmp_path/library.sqlite3 and tmp_path/models
    engine = library.sessions()[0]
    with write_transaction(session_factory(engine)) as session:  # the copy is flagged NSFW
        copy_content = session.query(Image.content_id).filter(
            Image.name == library.copy.name).scalar()
        session.execute(update(Content).where(Content.id == copy_content)
                        .values(flagged=True, flag_nsfw=True, analysed=True))
    engine.dispose()
    app, engine = build_app(qtbot, tmp_path, [library.folder], expect_rows=8)
    yield app, library
    app.shutdown()
    app.window.close()
    engine.dispose()


def _apply(bar, text: str) -> None:
    bar.query_edit.setText(text)
    assert bar.apply_text()


def _ranked_names(app, text: str) -> list[str]:
    """What the model itself ranks (library.search, same weights), as file names."""
    resolved = SemanticSearch(app.sessions, app.models_dir(app.settings)).resolve(
        parse_filter(text))
    with app.sessions() as session:
        from db.queries import fetch_page

        return [row.name for row in fetch_page(session, resolved, limit=100)[0]]


def test_like_ranks_the_grid_by_the_text_tower(qtbot, searchable_app):
    app, _library = searchable_app
    bar = app.window.filter_bar
    _apply(bar, 'like:"a red umbrella"')
    assert bar.semantic_indicator.isVisibleTo(bar)
    assert "searching" in bar.semantic_indicator.label.text()
    qtbot.waitUntil(lambda: app.model.filter is not None and app.model.filter.ranking
                    is not None, timeout=WAIT_MS)
    expected = _ranked_names(app, 'like:"a red umbrella"')
    assert names_in_view(app) == expected and len(expected) == 8
    scores = [app.model.grid_row(r).sort_value for r in range(app.model.rowCount())]
    assert scores == sorted(scores, reverse=True)
    text = bar.semantic_indicator.label.text()
    assert "a red umbrella" in text and "most similar first" in text
    # Combined with another term: only accepted pictures, still ranked.
    app.window.controller.select_row(3)
    chosen = current_name(app)
    qtbot.keyClick(app.view, Qt.Key.Key_P)
    _apply(bar, 'like:"a red umbrella" is:accepted')
    qtbot.waitUntil(lambda: names_in_view(app) == [chosen], timeout=WAIT_MS)
    # Dropping the term (the indicator's ✕) returns to the plain view.
    bar.semantic_indicator.clear_button.click()
    assert not bar.semantic_indicator.isVisibleTo(bar)
    assert not bar.current_filter().semantic and "like:" not in bar.query_edit.text()
    assert names_in_view(app) == [chosen]


def test_find_similar_key_and_context_menu_show_the_copy_first_blurred(qtbot, searchable_app):
    app, library = searchable_app
    names = names_in_view(app)
    app.window.controller.select_row(names.index("p0.png"))
    qtbot.keyClick(app.view, Qt.Key.Key_F)
    bar = app.window.filter_bar
    assert bar.current_filter().similar_to is not None
    assert "similar:" in bar.query_edit.text()
    qtbot.waitUntil(lambda: app.model.filter.ranking is not None, timeout=WAIT_MS)
    shown = names_in_view(app)
    assert shown[0] == library.copy.name
    assert "p0.png" not in shown and len(shown) == 7
    # The copy is flagged and unreviewed: blurred in the results like anywhere else.
    assert app.model.data(app.model.index(0), Role.NeedsBlur) is True
    assert app.model.data(app.model.index(1), Role.NeedsBlur) is False
    # The context menu offers the same action; from the copy it finds p0 first.
    app.window.controller.select_row(0)
    menu = app.window.context_menu.build()
    find = next(a for a in menu.actions() if a.text().startswith("Find similar"))
    assert find is app.window.registry.action("view.find_similar")
    find.trigger()
    qtbot.waitUntil(lambda: app.model.filter.ranking is not None
                    and names_in_view(app)[:1] == ["p0.png"], timeout=WAIT_MS)
    menu.deleteLater()


def test_without_the_model_the_window_says_what_is_missing(qtbot, tmp_path):
    library = build_search_library(tmp_path, embed=False)
    app, engine = build_app(qtbot, tmp_path / "elsewhere", [library.folder], expect_rows=8,
                            models_dir=str(tmp_path / "no-models"))
    try:
        bar = app.window.filter_bar
        before = names_in_view(app)
        _apply(bar, "like:cat")
        qtbot.waitUntil(lambda: "unavailable" in bar.semantic_indicator.label.text(),
                        timeout=WAIT_MS)
        assert "gentriage models" in bar.semantic_indicator.label.text()
        assert names_in_view(app) == before  # the grid keeps what it showed
    finally:
        app.shutdown()
        app.window.close()
        engine.dispose()
