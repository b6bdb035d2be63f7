"""Stacks, duplicates and the compare view inside the main window.

`install_family_views(window, thumbnails)` (called by the composition root) adds three pages
to the window's central stack and their commands to its action registry and menus:

* **Stack view** (S, View menu): one cell per stack of the images the filter shows — its best
  image and a count badge. Enter opens the stack in the grid (the filter gains `stack:ID`),
  Esc there comes back to the stacks. P / X on a stack cell decide nothing: a whole stack is
  decided only by the explicit Shift+P / Shift+X (one undo step).
* **Duplicates** (D): one cell per near-duplicate group, its keeper as the cover. Enter (or
  C) compares the group with the keeper marked; Shift+X there keeps the focused picture and
  rejects the rest, one undo step.
* **Compare** (C): the selected 2–4 images, or the current image's duplicate group or stack.

While one of these pages is shown, the registry routes the review, navigation, peek and back
commands to it (ActionRegistry.route), so the same (rebindable) keys act on what is shown.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import QLabel, QMenu, QVBoxLayout, QWidget

from db import families as family_db
from db import queries
from db.filters import ImageFilter, SortKey
from db.image_details import load_details
from desktop.compare.view import MAX_PANES, CompareView
from desktop.families.cells import (
    DuplicateCellsModel,
    FamilyCellsModel,
    FamilyGridView,
    StackCellsModel,
    stack_filter,
)
from library import family_ops
from library.families import keeper_order

STACK_HINT = ("Stacks: one cell per prompt + negative prompt + model, its best image on top. "
              "Enter opens a stack \u00b7 Shift+P / Shift+X decide the whole stack \u00b7 "
              "C compares \u00b7 S or Esc back to the grid")
DUPLICATES_HINT = ("Near-duplicates: one cell per group, its keeper on top. Enter compares "
                   "the group \u00b7 Shift+X keeps the keeper and rejects the others \u00b7 "
                   "Esc back to the grid")
REVIEW_ACTIONS = ("review.accept", "review.reject", "review.clear",
                  *(f"review.rate_{n}" for n in range(6)))


class FamilyPage(QWidget):
    """A hint line over a grid of family cells."""

    def __init__(self, model: FamilyCellsModel, hint: str, thumbnail_size: int,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.hint = QLabel(hint)
        self.hint.setWordWrap(True)
        self.hint.setTextFormat(Qt.TextFormat.PlainText)
        self.hint.setContentsMargins(8, 4, 8, 4)
        self.view = FamilyGridView(thumbnail_size=thumbnail_size)
        self.view.setModel(model)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.hint)
        layout.addWidget(self.view, 1)
        model.cells_loaded.connect(self._on_model_cells_loaded)
        self._keep_key: Any = None

    def load(self, f: ImageFilter, keep_key: Any = None) -> None:
        self._keep_key = keep_key
        self.model.load(f)

    def current_row(self) -> int:
        return self.view.current_row()

    def move_current(self, step: int) -> None:
        count = self.model.rowCount()
        if count:
            self.view.set_current_row(max(0, min(count - 1, self.current_row() + step)))

    def _on_model_cells_loaded(self) -> None:
        row = self.model.row_of_key(self._keep_key) if self._keep_key is not None else None
        if self.model.rowCount():
            self.view.set_current_row(row if row is not None else 0)


class FamilyViews(QObject):
    """The pages, their commands and their wiring (see the module doc)."""

    def __init__(self, window: Any, thumbnails: Any) -> None:
        super().__init__(window)
        self.window = window
        size = window.settings.thumbnail_size
        self.stacks = FamilyPage(StackCellsModel(window.sessions, thumbnails, window.blur),
                                 STACK_HINT, size)
        self.duplicates = FamilyPage(
            DuplicateCellsModel(window.sessions, thumbnails, window.blur), DUPLICATES_HINT,
            size)
        self.compare = CompareView(
            window.sessions, window.blur, thumbnails, keyboard=False,
            rejected_action=lambda: (window.settings.rejected_action,
                                     window.settings.rejected_folder or ""))
        for page in (self.stacks, self.duplicates, self.compare):
            window.stack.addWidget(page)
        self._return_to: QWidget = window.view
        self._opened_stack: tuple[ImageFilter, Any] | None = None  # (filter before, key)
        self._bind(window.registry)
        self._route(window.registry)
        self._add_to_menus()
        for page in (self.stacks, self.duplicates):
            page.model.load_failed.connect(window.status.post)
        self.duplicates.model.cells_loaded.connect(self._on_duplicates_cells_loaded)
        self.compare.message_posted.connect(window.status.post)
        self.compare.decisions_written.connect(self._on_compare_decisions_written)
        self.compare.close_requested.connect(self.close_compare)
        window.controller.decisions_written.connect(self._on_controller_decisions_written)
        # The details pane follows what the page shown has current (its preview goes
        # through BlurPolicy like everywhere else).
        self.compare.focused_row_changed.connect(self._show_details)
        for page in (self.stacks, self.duplicates):
            page.view.selectionModel().currentChanged.connect(
                lambda current, _previous, page=page: self._show_details(
                    page.model.cover_row(current.row()) if current.isValid() else None))
        window.filter_bar.filter_changed.connect(self._on_filter_bar_filter_changed)

    # ================================================================ set-up

    def _bind(self, registry: Any) -> None:
        registry.bind("view.stacks", self.set_stack_view)
        registry.bind("view.duplicates", self.show_duplicates)
        registry.bind("view.compare", self.compare_current)
        registry.bind("family.accept", lambda: self.decide_family("accepted"))
        registry.bind("family.reject", lambda: self.decide_family("rejected"))

    def _route(self, registry: Any) -> None:
        on_compare = self._showing(self.compare)
        on_cells = self._showing(self.stacks, self.duplicates)
        compare = self.compare
        for decision, action in (("accepted", "review.accept"), ("rejected", "review.reject"),
                                 ("none", "review.clear")):
            registry.route(action, on_compare, lambda d=decision: compare.decide_focused(d))
        for n in range(6):
            registry.route(f"review.rate_{n}", on_compare, lambda n=n: compare.rate_focused(n))
        registry.route("nav.previous", on_compare, lambda: compare.move_focus(-1))
        registry.route("nav.next", on_compare, lambda: compare.move_focus(1))
        registry.route("view.full", on_compare, lambda: None)
        registry.route("view.back", on_compare, self.close_compare)
        registry.route("view.peek", on_compare, compare.peek)

        for action in REVIEW_ACTIONS:
            registry.route(action, on_cells, self._explain_whole_family)
        registry.route("nav.previous", on_cells, lambda: self._page().move_current(-1))
        registry.route("nav.next", on_cells, lambda: self._page().move_current(1))
        registry.route("view.full", self._showing(self.stacks), self.open_stack)
        registry.route("view.full", self._showing(self.duplicates), self.compare_current)
        registry.route("view.back", on_cells, self.show_grid)
        registry.route("view.peek", on_cells, self._peek_cover)
        registry.route("view.back", self._in_opened_stack, self.back_to_stacks)

    def _add_to_menus(self) -> None:
        menus = {menu.title(): menu for menu in self.window.menuBar().findChildren(QMenu)}
        if "&View" in menus:
            menus["&View"].addSeparator()
            self.window.registry.fill_menu(menus["&View"], [
                "view.stacks", "view.duplicates", "view.compare"])
        if "&Review" in menus:
            menus["&Review"].addSeparator()
            self.window.registry.fill_menu(menus["&Review"], ["family.accept", "family.reject"])

    def _showing(self, *pages: QWidget) -> Any:
        window = self.window
        return lambda: (window.stack.currentWidget() in pages
                        and not window.help_overlay.isVisible())

    def _in_opened_stack(self) -> bool:
        window = self.window
        return (self._opened_stack is not None and window.stack.currentWidget() is window.view
                and not window.help_overlay.isVisible())

    def _page(self) -> FamilyPage:
        current = self.window.stack.currentWidget()
        return current if isinstance(current, FamilyPage) else self.stacks

    def _current_filter(self) -> ImageFilter:
        return self.window.model.filter or ImageFilter()

    # ================================================================ pages

    def _show(self, page: QWidget) -> None:
        self.window.stack.setCurrentWidget(page)
        (page.view if isinstance(page, FamilyPage) else page).setFocus(
            Qt.FocusReason.OtherFocusReason)
        self._check_stack_action(page is self.stacks)

    def _check_stack_action(self, checked: bool) -> None:
        action = self.window.registry.action("view.stacks")
        if action.isChecked() != checked:
            action.blockSignals(True)
            action.setChecked(checked)
            action.blockSignals(False)

    def set_stack_view(self, on: bool) -> None:
        """S: the stack view, or back to the grid."""
        if on:
            self.show_stacks()
        else:
            self.show_grid()

    def show_stacks(self, keep_key: Any = None) -> None:
        self._opened_stack = None
        self.stacks.load(self._current_filter(), keep_key)
        self._show(self.stacks)

    def show_duplicates(self) -> None:
        self._opened_stack = None
        self.duplicates.load(self._current_filter())
        self._show(self.duplicates)
        self.window.status.post("Looking for near-duplicates\u2026")

    def show_grid(self) -> None:
        window = self.window
        self.compare.end_peek()
        if window.stack.currentWidget() is not window.view:
            window.stack.setCurrentWidget(window.view)
            self._show_grid_details()
        window.view.setFocus(Qt.FocusReason.OtherFocusReason)
        self._check_stack_action(False)

    def open_stack(self) -> None:
        """Enter on a stack cell: the grid shows that stack; Esc comes back here."""
        cell = self.stacks.model.cell(self.stacks.current_row())
        if cell is None:
            return
        base = self._current_filter()
        self._opened_stack = (base, cell.key)
        self.show_grid()
        self.window.filter_bar.set_filter(stack_filter(base, str(cell.key)))
        self.window.controller.select_row(0)
        self.window.status.post(f"Stack of {cell.count}: Esc goes back to the stacks")

    def back_to_stacks(self) -> None:
        if self._opened_stack is None:
            return
        base, key = self._opened_stack
        self._opened_stack = None
        self.window.filter_bar.set_filter(base)
        self.show_stacks(keep_key=key)

    def _show_details(self, row: Any) -> None:
        window = self.window
        if row is None:
            return
        with window.sessions() as session:
            details = load_details(session, row.image_id)
        window.details.show_details(details)
        if window.preview is not None:
            window.preview.set_row(row)

    def _show_grid_details(self) -> None:
        row = self.window.current_grid_row()
        if row is not None:
            self._show_details(row)

    # ================================================================ compare

    def compare_current(self) -> None:
        """C: compare what is selected or current in the page shown."""
        window = self.window
        page = window.stack.currentWidget()
        if page is self.compare:
            return
        if page is self.duplicates:
            cell = self.duplicates.model.cell(self.duplicates.current_row())
            if cell is not None:
                self._compare_ids(list(cell.member_image_ids), cell.member_image_ids[0],
                                  cell.count)
            return
        if page is self.stacks:
            cell = self.stacks.model.cell(self.stacks.current_row())
            if cell is not None:
                self._compare_stack(str(cell.key))
            return
        rows = [window.model.grid_row(r) for r in window.controller.target_rows()]
        rows = [r for r in rows if r is not None]
        if 2 <= len(rows) <= MAX_PANES:
            self._compare_ids([r.image_id for r in rows], None, len(rows))
        elif len(rows) > MAX_PANES:
            window.status.post(f"Select 2 to {MAX_PANES} images to compare")
        elif rows:
            self._compare_family_of(rows[0])
        else:
            window.status.post("Nothing selected to compare")

    def _compare_family_of(self, row: Any) -> None:
        """One image: its near-duplicate group, else its stack."""
        with self.window.sessions() as session:
            members = family_db.stored_group_members(session, row.content_id,
                                                     self._current_filter())
            key = family_db.stack_of_image(session, row.image_id)
        if len(members) > 1:
            ordered = sorted(members, key=keeper_order)
            ids = [m.image_ids[0] for m in ordered]
            self._compare_ids(ids, ids[0], len(ids))
            return
        if key is None:
            self.window.status.post("Select 2 to 4 images to compare (this one has no "
                                    "near-duplicate and no stack)")
            return
        self._compare_stack(key)

    def _compare_stack(self, key: str) -> None:
        f = replace(stack_filter(self._current_filter(), key), sort=SortKey("stack", False),
                    unreviewed_first=False)  # best first
        with self.window.sessions() as session:
            rows, _ = queries.fetch_page(session, f, limit=MAX_PANES)
            total = queries.count_images(session, f)
        if len(rows) < 2:
            self.window.status.post("This stack has a single image: nothing to compare")
            return
        self._show_compare(rows, None, total)

    def _compare_ids(self, image_ids: list[int], keeper: int | None, total: int) -> None:
        with self.window.sessions() as session:
            rows = queries.rows_by_image_ids(session, image_ids[:MAX_PANES])
        if len(rows) < 2:
            self.window.status.post("Nothing to compare")
            return
        self._show_compare(rows, keeper, total)

    def _show_compare(self, rows: list[Any], keeper: int | None, total: int) -> None:
        current = self.window.stack.currentWidget()
        self._return_to = current if current is not self.compare else self.window.view
        self.compare.show_rows(rows, keeper, total)
        self._show(self.compare)

    def close_compare(self) -> None:
        self.compare.clear()  # the decoded pictures go with the panes
        target = self._return_to
        if target is self.stacks or target is self.duplicates:
            target.model.refresh_rows()
            self._show(target)
        else:
            self.show_grid()

    # ================================================================ decisions

    def decide_family(self, decision: str) -> None:
        """Shift+P / Shift+X: the whole stack (or, in compare, the culling gesture)."""
        window = self.window
        page = window.stack.currentWidget()
        if page is self.compare:
            self.compare.reject_others() if decision == "rejected" else self.compare.accept_all()
            return
        if page is self.duplicates:
            self._decide_group(decision)
            return
        if page is self.stacks:
            cell = self.stacks.model.cell(self.stacks.current_row())
            key = str(cell.key) if cell is not None else None
        else:
            row = window.current_grid_row()
            with window.sessions() as session:
                key = family_db.stack_of_image(session, row.image_id) if row else None
            if row is not None and key is None:
                window.status.post("This image belongs to no stack (it has no prompt)")
                return
        if key is None:
            return
        with window.sessions() as session:
            ids = family_db.stack_content_ids(session, key, self._current_filter())
        self._apply(ids, decision, f"the whole stack ({len(ids)})")

    def _decide_group(self, decision: str) -> None:
        """Duplicates page: Shift+X keeps the keeper and rejects the others; Shift+P accepts
        the whole group. One undo step either way."""
        cell = self.duplicates.model.cell(self.duplicates.current_row())
        if cell is None:
            return
        with self.window.sessions() as session:
            rows = queries.rows_by_image_ids(session, cell.member_image_ids)
        ids = [r.content_id for r in rows if r.content_id is not None]
        if decision == "rejected":
            ids = ids[1:]  # the keeper comes first
        self._apply(ids, decision, "the others" if decision == "rejected" else "the group")

    def _apply(self, content_ids: list[int], decision: str, what: str) -> None:
        window = self.window
        if not content_ids:
            window.status.post("Nothing to decide")
            return
        result = family_ops.decide(window.sessions, content_ids, decision,
                                   window.settings.rejected_action,
                                   window.settings.rejected_folder or "")
        for error in result.errors:
            window.status.post(error)
        verb = {"accepted": "Accepted", "rejected": "Rejected"}[decision]
        window.status.post(f"{verb} {what}" if result.log_group is not None
                           else f"Already {decision}")
        self._after_decisions(content_ids)

    def _explain_whole_family(self) -> None:
        self.window.status.post("On a stack or group, Shift+P / Shift+X decide all of it; "
                                "Enter opens it to decide one image")

    def _peek_cover(self, pressed: bool) -> None:
        page = self._page()
        row = page.model.cover_row(page.current_row())
        if pressed and row is not None:
            self.window.blur.peek(row.image_id)
        else:
            self.window.blur.end_peek()

    def shutdown(self) -> None:
        """Stop the worker threads (the app's shutdown)."""
        self.compare.shutdown()
        for page in (self.stacks, self.duplicates):
            page.model.wait()

    # ================================================================ refreshing

    def _after_decisions(self, content_ids: list[int]) -> None:
        window = self.window
        window.model.refresh_contents(content_ids)
        window.controller.refresh_history()
        # The same news the grid's own review keys give: the window refreshes its details
        # pane and lists, and this object its pages (_on_controller_decisions_written).
        window.controller.decisions_written.emit(sorted(set(content_ids)))

    def _on_compare_decisions_written(self, content_ids: list) -> None:
        self._after_decisions(list(content_ids))

    def _on_controller_decisions_written(self, _content_ids: list) -> None:
        # An undo or a decision in the grid: what the other pages show may have changed.
        for page in (self.stacks, self.duplicates):
            page.model.refresh_rows()
        if self.compare.rows() and self.window.stack.currentWidget() is self.compare:
            self.compare.refresh()

    def _on_duplicates_cells_loaded(self) -> None:
        count = self.duplicates.model.rowCount()
        self.window.status.post(f"{count} group(s) of near-duplicates" if count
                                else "No near-duplicates among these images")

    def _on_filter_bar_filter_changed(self, f: ImageFilter) -> None:
        page = self.window.stack.currentWidget()
        if page in (self.stacks, self.duplicates):
            page.load(f)


def install_family_views(window: Any, thumbnails: Any) -> FamilyViews:
    """Add the stack, duplicates and compare pages to `window` (desktop.main_window)."""
    return FamilyViews(window, thumbnails)
