"""GridModel: Qt's model contract, exact lazy loading, in-place refresh, live inserts."""

from grid_test_helpers import wait_for_thumbnails
from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtGui import QImage

from db.filters import ImageFilter, parse_filter
from desktop.grid import model as model_module
from desktop.roles import Role


def _ids(model):
    return [model.image_id_at(r) for r in range(model.rowCount())]


def test_model_passes_qt_model_tester(qtmodeltester, library, make_model):
    for k in range(7):
        library.add(flagged=k % 3 == 0, decision=("none", "accepted", "rejected")[k % 3],
                    seed=k)
    model = make_model(page_size=3)
    qtmodeltester.check(model)  # it exercises fetchMore too
    assert model.rowCount() == 7
    model.set_filter(parse_filter("is:flagged"))
    qtmodeltester.check(model)
    empty = make_model(f=None)
    qtmodeltester.check(empty)


def test_fetch_more_inserts_exactly_the_page_in_sort_order(qtbot, library, make_model):
    ids = [library.add(seed=k) for k in range(8)]  # each newer than the last
    model = make_model(page_size=3)
    assert _ids(model) == ids[::-1][:3]
    inserted = []
    model.rowsInserted.connect(lambda parent, first, last: inserted.append((first, last)))
    assert model.canFetchMore(QModelIndex())
    model.fetchMore(QModelIndex())
    assert inserted == [(3, 5)]  # the Python port of Qt's example would say (3, 6)
    assert model.rowCount() == 6
    model.fetchMore(QModelIndex())
    assert inserted[-1] == (6, 7)
    assert not model.canFetchMore(QModelIndex())
    assert _ids(model) == ids[::-1]
    model.fetchMore(QModelIndex())  # nothing left: no empty insert
    assert len(inserted) == 2


def test_filter_change_resets_and_loads_first_page(qtbot, library, make_model):
    flagged = [library.add(flagged=True, seed=k) for k in range(3)]
    library.add(seed=10)
    model = make_model(page_size=2)
    with qtbot.waitSignal(model.modelReset):
        model.set_filter(parse_filter("is:flagged"))
    assert model.rowCount() == 2
    assert model.total_count() == 3
    assert model.fetch_all_to(2)
    assert sorted(_ids(model)) == sorted(flagged)


def test_roles_expose_the_grid_row(library, make_model):
    image_id = library.add("a.png", flagged=True, rating=4, incoherent=True)
    model = make_model()
    index = model.index(0)
    row = index.data(Role.Row)
    assert row.image_id == image_id == index.data(Role.ImageId)
    assert index.data(Qt.ItemDataRole.DisplayRole) == "a.png"
    assert index.data(Role.Rating) == 4
    assert index.data(Role.Flagged) and index.data(Role.FlagNsfw)
    assert index.data(Role.FlagIncoherent)
    assert index.data(Role.Decision) == "none"
    assert index.data(Role.NeedsBlur) is True
    assert index.data(Role.Path).endswith("a.png")
    assert model.grid_row(0) == row
    assert model.row_of_image(image_id) == 0


def test_refresh_contents_updates_only_that_row(qtbot, library, make_model):
    ids = [library.add(seed=k) for k in range(5)]
    model = make_model()
    target_row = model.row_of_image(ids[2])
    content_id = library.set(ids[2], decision="accepted", rating=3)
    changed = []
    model.dataChanged.connect(lambda a, b, roles: changed.append((a.row(), b.row())))
    with qtbot.assertNotEmitted(model.modelReset):
        assert model.refresh_contents([content_id]) == [target_row]
    assert changed == [(target_row, target_row)]
    assert model.index(target_row).data(Role.Decision) == "accepted"
    assert model.index(target_row).data(Role.Rating) == 3
    assert _ids(model) == ids[::-1]


def test_reviewed_row_stays_in_place_under_an_unreviewed_filter(library, make_model):
    ids = [library.add(seed=k) for k in range(3)]
    model = make_model(f=parse_filter("is:unreviewed"))
    library.set(ids[1], decision="accepted")
    model.refresh_images([ids[1]])
    assert _ids(model) == ids[::-1]
    assert model.index(model.row_of_image(ids[1])).data(Role.Decision) == "accepted"


def test_live_insert_goes_to_the_top_without_reset(qtbot, library, make_model):
    old = [library.add(seed=k) for k in range(5)]
    model = make_model(page_size=2)
    current = model.row_of_image(old[-2])
    new = library.add(seed=99)  # newest: sorts first
    inserted = []
    model.rowsInserted.connect(lambda parent, first, last: inserted.append((first, last)))
    with qtbot.assertNotEmitted(model.modelReset):
        assert model.insert_new_images([new]) == 1
    assert inserted[0] == (0, 0)
    assert model.image_id_at(0) == new
    assert model.row_of_image(old[-2]) == current + 1
    assert model.row_of_image(old[-1]) == 1
    # Positions stay right for rows appended after a top insert.
    assert model.fetch_all_to(5)
    assert _ids(model) == [new] + old[::-1]
    assert [model.row_of_image(i) for i in _ids(model)] == list(range(6))


def test_live_insert_after_the_end_arrives_through_fetch_more(library, make_model):
    ids = [library.add(seed=k) for k in range(3)]
    model = make_model()
    assert not model.canFetchMore(QModelIndex())
    oldest = library.add(seed=50, mtime_ns=1)  # sorts last under newest-first
    assert model.insert_new_images([oldest]) == 0
    assert model.canFetchMore(QModelIndex())
    model.fetchMore(QModelIndex())
    assert _ids(model) == ids[::-1] + [oldest]


def test_live_insert_inside_loaded_rows_offers_a_reload(qtbot, library, make_model):
    ids = [library.add(seed=k) for k in range(4)]
    model = make_model()
    with library.Session() as session:
        from db.schema import Image
        middle_time = (session.get(Image, ids[1]).mtime_ns + session.get(Image, ids[2]).mtime_ns) // 2
    middle = library.add(seed=60, mtime_ns=middle_time)
    not_matching = library.add(seed=61, status="broken")  # the default filter hides broken
    with qtbot.waitSignal(model.new_images_pending) as pending:
        assert model.insert_new_images([middle, not_matching]) == 0
    assert pending.args == [1]
    assert model.reload(keep_image_id=ids[0]) == 4
    assert _ids(model) == [ids[3], ids[2], middle, ids[1], ids[0]]


def test_evicted_rows_are_read_back_by_id(monkeypatch, library, make_model):
    monkeypatch.setattr(model_module, "ROW_CACHE_ROWS", 4)
    ids = [library.add(seed=k, rating=k % 6) for k in range(12)]
    model = make_model(page_size=4)
    model.fetch_all_to(11)
    assert len(model._cache) <= 4  # the bound is the point of this test
    for row, image_id in enumerate(ids[::-1]):
        assert model.grid_row(row).image_id == image_id
        assert model.index(row).data(Role.Rating) == (ids.index(image_id)) % 6


def test_next_unreviewed_far_below_is_reached_with_one_read_of_ids(qtbot, library, make_model):
    """Auto-advance's target lies below the loaded rows: the ids up to it are appended in
    one read (not page after page), the rows in between are read only when shown, and
    scrolling on afterwards continues exactly after it."""
    ids = [library.add(seed=k, decision="accepted") for k in range(9)]
    library.set(ids[1], decision="none")  # the second oldest: row 7 of 9
    model = make_model(page_size=2)
    assert model.rowCount() == 2
    pages: list[int] = []
    original = model._read_next_page
    model._read_next_page = lambda: pages.append(1) or original()
    with qtbot.waitSignal(model.rowsInserted):
        row = model.next_unreviewed_row(0)
    assert row == 7 and model.image_id_at(7) == ids[1]
    assert pages == []  # no page walk
    assert model.grid_row(4).image_id == ids[4]  # read by id when needed
    model.fetchMore(QModelIndex())
    assert [model.image_id_at(r) for r in range(model.rowCount())] == ids[::-1]
    assert model.next_unreviewed_row(7) == 7  # wraps round to the only one
    library.set(ids[1], decision="rejected")
    assert model.next_unreviewed_row(7) is None


def test_next_unreviewed_skips_pending_decisions_and_starts_after_the_anchor(library,
                                                                             make_model):
    ids = [library.add(seed=k) for k in range(4)]  # all unreviewed; rows: newest first
    model = make_model()
    anchor = model.anchor_at(1)
    content = model.grid_row(2).content_id
    assert model.next_unreviewed_row(1, anchor) == 2
    assert model.next_unreviewed_row(1, anchor, skip_contents=[content]) == 3
    library.set(ids[2], decision="accepted")  # row 1 (under its old anchor) is decided now
    assert model.next_unreviewed_row(1, anchor) == 2


def test_auto_advance_from_an_image_the_filter_no_longer_shows(library, make_model):
    """Under `is:unreviewed` a decided row stays where it is until the next reload; the
    search starts from the next row the filter still shows, which counts itself."""
    ids = [library.add(seed=k) for k in range(4)]
    model = make_model(f=ImageFilter(decisions=frozenset({"none"})))
    library.set(ids[2], decision="accepted")  # row 1
    model.refresh_images([ids[2]])
    assert model.anchor_at(1) is None
    assert model.next_unreviewed_row(1) == 2
    library.set(ids[1], decision="accepted")  # row 2 too
    model.refresh_images([ids[1]])
    assert model.next_unreviewed_row(1) == 3


def test_decoration_arrives_after_loading(qtbot, library, make_model, loader):
    library.add(seed=3)
    model = make_model()
    assert model.index(0).data(Qt.ItemDataRole.DecorationRole) is None  # placeholder
    with qtbot.waitSignal(model.dataChanged, timeout=10_000) as changed:
        pass
    assert changed.args[0].row() == 0
    assert Qt.ItemDataRole.DecorationRole in changed.args[2]
    image = model.index(0).data(Qt.ItemDataRole.DecorationRole)
    assert isinstance(image, QImage) and image.width() == 256


def test_set_visible_rows_prefetches_thumbnails(qtbot, library, make_model, loader):
    for k in range(6):
        library.add(seed=k)
    model = make_model()
    model.set_visible_rows(0, 1)  # rows 2..3 are the page ahead
    qtbot.waitUntil(lambda: all(loader.get(model.grid_row(r).sha256) is not None
                                for r in range(4)), timeout=10_000)
    assert loader.get(model.grid_row(5).sha256) is None


def test_tooltip_is_escaped_text(library, make_model):
    library.add('<img src="x.png">.png', flagged=True)
    model = make_model()
    tip = model.index(0).data(Qt.ItemDataRole.ToolTipRole)
    assert isinstance(tip, str)
    assert "<img" not in tip and "&lt;img" in tip
    assert "Flagged: NSFW" in tip


def test_mime_data_carries_file_urls_not_pixels(library, make_model):
    library.add("one.png")
    model = make_model()
    wait = model.mimeData([model.index(0)])
    assert [u.toLocalFile() for u in wait.urls()] == [model.grid_row(0).path]
    assert not wait.hasImage()


def test_empty_filter_result(qtbot, library, make_model):
    library.add(seed=1)
    model = make_model(f=parse_filter("is:rejected"))
    assert model.rowCount() == 0 and not model.canFetchMore(QModelIndex())
    assert model.total_count() == 0
    rejected = library.add(seed=2, decision="rejected")
    assert model.insert_new_images([rejected]) == 1
    assert _ids(model) == [rejected]


def test_thumbnails_wait_for_visible_rows(qtbot, library, make_model):
    library.add(seed=1)
    model = make_model(f=ImageFilter())
    wait_for_thumbnails(qtbot, model, [0])


def test_waiting_rows_of_dropped_thumbnail_requests_are_forgotten(qtbot, library, make_model,
                                                                   loader, monkeypatch):
    """Scrolling past rows drops their queued thumbnails; the model must forget them too,
    or its bookkeeping grows by one entry per row ever shown."""
    for k in range(40):
        library.add(seed=k)
    monkeypatch.setattr(loader, "_dispatch", lambda: None)  # everything stays queued
    model = make_model()
    model.set_visible_rows(0, 9)  # rows 0-9 visible, 10-19 prefetched
    early = {model.grid_row(r).sha256 for r in range(0, 20)}
    assert early <= set(model._waiting)
    model.set_visible_rows(30, 39)  # scrolled on: 0-29 no longer wanted
    assert not early & set(model._waiting)
    assert set(model._waiting) == {model.grid_row(r).sha256 for r in range(30, 40)}
    assert all(loader.is_pending(sha) for sha in model._waiting)
