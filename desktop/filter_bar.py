"""The filter bar: widgets for the common criteria and a text field in the shared filter
syntax (db.filters), kept in sync both ways.

The bar holds one ImageFilter. A widget change derives a new filter from it with
dataclasses.replace (so criteria only the text can express — `tag:a|b`, `sampler:` — survive
widget edits) and rewrites the text with format_filter; typing in the text field parses it
(on Enter, or after a pause) and moves the widgets to match. Either way `filter_changed`
fires once with the new filter. Saved filters, tag suggestions and the generator/model
choices come from the database through the main window, which owns the sessions.

A filter that cannot be used never ends in an empty grid or an exception: text that does
not parse is reported under the field (`error_label`), and so is a filter the database
refuses to run (the main window calls `show_error`, and the grid keeps the last good one).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace

from PySide6.QtCore import QStringListModel, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QCompleter,
    QGridLayout,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QToolButton,
    QVBoxLayout,
    QWidget,
)
from superqt import QFlowLayout, QLabeledDoubleRangeSlider

from db.filters import (
    KNOWN_ANALYSERS,
    FilterSyntaxError,
    ImageFilter,
    ScoreRange,
    SortKey,
    format_filter,
    parse_filter,
    with_semantic,
)
from desktop.semantic import SemanticIndicator
from inference.catalog import CATALOG, TAG_ANALYSERS

log = logging.getLogger(__name__)

DEFAULT_FILTER = ImageFilter(unreviewed_first=True)
TEXT_APPLY_DELAY_MS = 600
ANY = ""

# (label, decisions) for the review-state combo.
REVIEW_STATES: tuple[tuple[str, frozenset[str]], ...] = (
    ("Any review state", frozenset()),
    ("Unreviewed", frozenset({"none"})),
    ("Accepted", frozenset({"accepted"})),
    ("Rejected", frozenset({"rejected"})),
    ("Reviewed", frozenset({"accepted", "rejected"})),
)
# Analysers with a score worth a range slider, and the score's natural range.
SCORE_RANGES: dict[str, tuple[float, float]] = {
    info.key: info.score_range for info in CATALOG if info.score_range is not None}


def _split_tags(text: str) -> tuple[list[str], list[str]]:
    """'cat, -dog  hat' → (['cat', 'hat'], ['dog']): commas or spaces separate; '-'
    excludes. Tags with spaces use underscores, as taggers write them."""
    include, exclude = [], []
    for token in text.replace(",", " ").split():
        if token.startswith("-") and len(token) > 1:
            exclude.append(token[1:])
        elif token != "-":
            include.append(token)
    return include, exclude


class TagLineEdit(QLineEdit):
    """A line of tags whose last word is completed from the library's tag table."""

    def __init__(self, suggest: Callable[[str], list[str]] | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._suggest = suggest
        self._model = QStringListModel(self)
        self._completer = QCompleter(self._model, self)
        self._completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self._completer.setWidget(self)
        self._completer.activated.connect(self._on_completer_activated)
        self.textEdited.connect(self._on_text_edited)

    @property
    def completer_model(self) -> QStringListModel:
        return self._model

    def set_suggest(self, suggest: Callable[[str], list[str]]) -> None:
        self._suggest = suggest

    def _last_word(self) -> str:
        word = self.text()[:self.cursorPosition()].replace(",", " ").split(" ")[-1]
        return word[1:] if word.startswith("-") else word

    def _on_text_edited(self, _text: str) -> None:
        prefix = self._last_word()
        if not prefix or self._suggest is None:
            self._completer.popup().hide()
            return
        self._model.setStringList(self._suggest(prefix))
        self._completer.setCompletionPrefix(prefix)
        if self._model.rowCount():
            self._completer.complete()

    def _on_completer_activated(self, tag: str) -> None:
        before = self.text()[:self.cursorPosition()]
        after = self.text()[self.cursorPosition():]
        cut = len(self._last_word())
        head = before[:len(before) - cut] if cut else before
        self.setText(f"{head}{tag} {after.lstrip()}")
        self.setCursorPosition(len(head) + len(tag) + 1)
        self.editingFinished.emit()


class FilterBar(QWidget):
    filter_changed = Signal(object)  # ImageFilter
    save_requested = Signal(str, str)  # name, filter text
    delete_requested = Signal(str)  # name

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("filterBar")
        self._filter = DEFAULT_FILTER
        self._saved: dict[str, str] = {}
        self._updating = False

        # --- the text field --------------------------------------------------------------
        self.query_edit = QLineEdit()
        self.query_edit.setObjectName("filterQuery")
        self.query_edit.setPlaceholderText(
            'Filter (Ctrl+F): is:unreviewed is:flagged tag:cat aesthetic>=6 "red hair"')
        self.query_edit.setClearButtonEnabled(True)
        self.error_label = QLabel()
        self.error_label.setObjectName("filterError")
        # The message may quote the typed text: never rendered as HTML (an <img> in a filter
        # must not load a picture), and wrapped so a long one cannot widen the window.
        self.error_label.setTextFormat(Qt.TextFormat.PlainText)
        self.error_label.setWordWrap(True)
        self.error_label.hide()
        self.semantic_indicator = SemanticIndicator()  # like:/similar: active (desktop.semantic)
        self.semantic_indicator.clear_requested.connect(
            lambda: self.set_filter(with_semantic(self._filter)))
        self._text_timer = QTimer(self)
        self._text_timer.setSingleShot(True)
        self._text_timer.setInterval(TEXT_APPLY_DELAY_MS)
        self._text_timer.timeout.connect(self.apply_text)
        self.query_edit.textEdited.connect(lambda _t: self._text_timer.start())
        self.query_edit.returnPressed.connect(self.apply_text)

        self.saved_combo = QComboBox()
        self.saved_combo.setToolTip("Saved filters")
        self.saved_combo.setMinimumContentsLength(8)
        self.saved_combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.saved_combo.activated.connect(self._on_saved_combo_activated)
        self.save_button = QToolButton()
        self.save_button.setText("Save…")
        self.save_button.setToolTip("Save the current filter under a name")
        self.save_button.clicked.connect(self._on_save_button_clicked)
        self.delete_button = QToolButton()
        self.delete_button.setText("✕")
        self.delete_button.setToolTip("Delete the selected saved filter")
        self.delete_button.clicked.connect(self._on_delete_button_clicked)
        self.reset_button = QToolButton()
        self.reset_button.setText("Reset")
        self.reset_button.setToolTip("Back to the default view: everything, unreviewed first")
        self.reset_button.clicked.connect(lambda: self.set_filter(DEFAULT_FILTER))

        # --- widgets ---------------------------------------------------------------------
        self.review_combo = QComboBox()
        for label, decisions in REVIEW_STATES:
            self.review_combo.addItem(label, decisions)
        self.flagged_box = QCheckBox("Flagged")
        self.unreviewed_first_box = QCheckBox("Unreviewed first")
        self.unreviewed_first_box.setToolTip("Show undecided images before decided ones")
        self.flagged_box.setToolTip("Only images an analyser flagged")
        self.sort_combo = QComboBox()
        self.sort_combo.setToolTip("Sort order")
        # Python-side list: QVariant comparison (findData) does not use SortKey.__eq__.
        self._sort_keys: list[SortKey] = []
        for text, key in (("Newest", SortKey("time", True)), ("Oldest", SortKey("time", False)),
                          ("Name", SortKey("name", False))):
            self._add_sort(text, key)
        for analyser in KNOWN_ANALYSERS:
            if analyser not in TAG_ANALYSERS:
                self._add_sort(f"{analyser} score ↓", SortKey(analyser, True))
        self.generator_combo = self._choice_combo("Any generator")
        self.model_combo = self._choice_combo("Any model")
        self.label_combo = QComboBox()
        self.label_combo.setToolTip("An analyser's label")
        self.label_combo.addItem("Any label", None)
        self.tags_edit = TagLineEdit()
        self.tags_edit.setObjectName("filterTags")
        self.tags_edit.setPlaceholderText("Tags: cat -dog")
        self.tags_edit.setToolTip("Tags to include; prefix with - to exclude")
        self.prompt_edit = QLineEdit()
        self.prompt_edit.setPlaceholderText("Prompt contains…")
        self.prompt_edit.setClearButtonEnabled(True)
        self.scores_button = QToolButton()
        self.scores_button.setText("Scores ▾")
        self.scores_button.setCheckable(True)
        self.scores_button.setToolTip("Filter by analyser score ranges")

        self.review_combo.currentIndexChanged.connect(self._on_widgets_changed)
        self.flagged_box.toggled.connect(self._on_widgets_changed)
        self.unreviewed_first_box.toggled.connect(self._on_widgets_changed)
        self.sort_combo.currentIndexChanged.connect(self._on_widgets_changed)
        self.generator_combo.currentIndexChanged.connect(self._on_widgets_changed)
        self.model_combo.currentIndexChanged.connect(self._on_widgets_changed)
        self.label_combo.currentIndexChanged.connect(self._on_widgets_changed)
        self.tags_edit.editingFinished.connect(self._on_widgets_changed)
        self.prompt_edit.editingFinished.connect(self._on_widgets_changed)

        # --- score sliders (hidden until asked for) --------------------------------------
        self.score_panel = QWidget()
        grid = QGridLayout(self.score_panel)
        grid.setContentsMargins(0, 0, 0, 0)
        self.score_sliders: dict[str, QLabeledDoubleRangeSlider] = {}
        for i, (analyser, (lo, hi)) in enumerate(SCORE_RANGES.items()):
            slider = QLabeledDoubleRangeSlider(Qt.Orientation.Horizontal)
            # superqt types the double slider's range and step as int (they are floats).
            slider.setRange(lo, hi)  # type: ignore[arg-type]
            slider.setSingleStep((hi - lo) / 100)  # type: ignore[arg-type]
            slider.setDecimals(2)
            slider.setValue((lo, hi))
            slider.setTracking(False)  # one filter change per drag, not per pixel
            slider.valueChanged.connect(self._on_widgets_changed)
            self.score_sliders[analyser] = slider
            grid.addWidget(QLabel(analyser), i // 2, (i % 2) * 2)
            grid.addWidget(slider, i // 2, (i % 2) * 2 + 1)
        self.score_panel.setVisible(False)
        self.scores_button.toggled.connect(self.score_panel.setVisible)

        # Combos size to their usual entries (long generator or model names are elided; the
        # popups still show whole entries). The criteria sit in a flow layout that wraps onto
        # a second line when the window is narrow, so the bar never forces the window wider
        # than its narrowest widget.
        for combo, chars in ((self.review_combo, 14), (self.sort_combo, 9),
                             (self.generator_combo, 11), (self.model_combo, 11),
                             (self.label_combo, 11), (self.saved_combo, 12)):
            combo.setSizeAdjustPolicy(
                QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(chars)
        self.query_edit.setMinimumWidth(120)
        for edit in (self.tags_edit, self.prompt_edit):
            edit.setFixedWidth(130)
        top = QHBoxLayout()
        top.setSpacing(4)
        top.addWidget(self.query_edit, 1)
        for widget in (self.saved_combo, self.save_button, self.delete_button,
                       self.reset_button):
            top.addWidget(widget)
        row = QFlowLayout()
        row.setHorizontalSpacing(6)
        row.setVerticalSpacing(4)
        for control in (self.review_combo, self.flagged_box, self.unreviewed_first_box,
                        self.sort_combo, self.generator_combo, self.model_combo,
                        self.label_combo, self.tags_edit, self.prompt_edit,
                        self.scores_button):
            row.addWidget(control)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 4)
        layout.setSpacing(4)
        layout.addLayout(top)
        layout.addWidget(self.error_label)
        layout.addWidget(self.semantic_indicator)
        layout.addLayout(row)
        layout.addWidget(self.score_panel)
        self.set_saved_filters([])
        self._show_filter(self._filter)

    def _add_sort(self, text: str, key: SortKey) -> None:
        self._sort_keys.append(key)
        self.sort_combo.addItem(text)

    @staticmethod
    def _choice_combo(any_text: str) -> QComboBox:
        combo = QComboBox()
        combo.addItem(any_text, ANY)
        combo.setMinimumContentsLength(8)
        combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        return combo

    # ---------------------------------------------------------------- public API

    def current_filter(self) -> ImageFilter:
        return self._filter

    def set_filter(self, f: ImageFilter) -> None:
        """Show `f` in the widgets and the text; emits filter_changed if it differs."""
        self._show_filter(f)
        self._commit(f)

    def set_folder(self, folder_id: int | None) -> None:
        """The sidebar's selection (None: every folder)."""
        ids = frozenset() if folder_id is None else frozenset({folder_id})
        self.set_filter(replace(self._filter, folder_ids=ids))

    def set_choices(self, generators: Iterable[str], models: Iterable[str]) -> None:
        for combo, values in ((self.generator_combo, generators), (self.model_combo, models)):
            current = combo.currentData()
            combo.blockSignals(True)
            while combo.count() > 1:
                combo.removeItem(1)
            for value in values:
                combo.addItem(value, value)
            combo.blockSignals(False)
            self._select_data(combo, current)
        self._show_filter(self._filter)

    def set_label_choices(self, labels: Mapping[str, Iterable[str]]) -> None:
        """(analyser → labels present in the library) for the label combo."""
        self.label_combo.blockSignals(True)
        while self.label_combo.count() > 1:
            self.label_combo.removeItem(1)
        for analyser in sorted(labels):
            for label in sorted(labels[analyser]):
                self.label_combo.addItem(f"{analyser}: {label}", (analyser, label))
        self.label_combo.blockSignals(False)
        self._show_filter(self._filter)

    def set_tag_suggester(self, suggest: Callable[[str], list[str]]) -> None:
        self.tags_edit.set_suggest(suggest)

    def set_saved_filters(self, saved: Iterable[tuple[str, str]]) -> None:
        self._saved = dict(saved)
        self.saved_combo.blockSignals(True)
        self.saved_combo.clear()
        self.saved_combo.addItem("Saved filters…", None)
        for name in self._saved:
            self.saved_combo.addItem(name, name)
        self.saved_combo.blockSignals(False)
        self.delete_button.setEnabled(bool(self._saved))

    def focus_search(self) -> None:
        self.query_edit.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.query_edit.selectAll()

    # ---------------------------------------------------------------- text → filter

    def apply_text(self) -> bool:
        self._text_timer.stop()
        text = self.query_edit.text()
        try:
            f = parse_filter(text)
        except (FilterSyntaxError, ValueError) as exc:  # ValueError: the dataclass refused it
            self.show_error(str(exc))
            return False
        except Exception as exc:
            log.exception("filter text %r could not be read", text)
            self.show_error(f"This filter could not be read: {exc}")
            return False
        self.error_label.hide()
        self._show_widgets(f)
        self._commit(f, rewrite_text=False)
        return True

    def show_error(self, message: str, restore: ImageFilter | None = None) -> None:
        """Say under the text field why the filter cannot be used. `restore`: the filter the
        grid still shows (the new one could not be run): the widgets go back to it, the text
        stays as typed so it can be corrected."""
        self.error_label.setText(message)
        self.error_label.setToolTip(message)
        self.error_label.show()
        if restore is not None and restore != self._filter:
            self._filter = restore
            self._show_widgets(restore)

    # ---------------------------------------------------------------- widgets → filter

    def _on_widgets_changed(self, *_: object) -> None:
        if self._updating:
            return
        try:
            f = self._filter_from_widgets()
        except ValueError as exc:  # e.g. "sort:similarity" chosen with no like:/similar:
            self.error_label.setText(str(exc))
            self.error_label.show()
            return
        self._commit(f)

    def _filter_from_widgets(self) -> ImageFilter:
        f = self._filter
        include, exclude = _split_tags(self.tags_edit.text())
        prompt = self.prompt_edit.text().strip()
        labels = {k: v for k, v in f.labels.items()}
        chosen = self.label_combo.currentData()
        # The label combo owns single-label criteria; richer ones from the text survive.
        for analyser, values in list(labels.items()):
            if len(values) == 1:
                del labels[analyser]
        if chosen is not None:
            labels[chosen[0]] = frozenset({chosen[1]})
        scores = dict(f.scores)
        for analyser, slider in self.score_sliders.items():
            lo, hi = slider.value()
            full_lo, full_hi = slider.minimum(), slider.maximum()
            if lo <= full_lo and hi >= full_hi:
                scores.pop(analyser, None)
            else:
                scores[analyser] = ScoreRange(None if lo <= full_lo else round(lo, 4),
                                              None if hi >= full_hi else round(hi, 4))
        generator = self.generator_combo.currentData()
        model = self.model_combo.currentData()
        return replace(
            f,
            decisions=self.review_combo.currentData(),
            flagged=True if self.flagged_box.isChecked() else (
                None if f.flagged else f.flagged),
            unreviewed_first=self.unreviewed_first_box.isChecked(),
            sort=self._sort_keys[max(0, self.sort_combo.currentIndex())],
            generators=frozenset({generator}) if generator else (
                f.generators if len(f.generators) > 1 else frozenset()),
            models=frozenset({model}) if model else (
                f.models if len(f.models) > 1 else frozenset()),
            labels=labels,
            scores=scores,
            tags_all=frozenset(include),
            tags_none=frozenset(exclude),
            prompt=(prompt,) if prompt else (),
        )

    def _commit(self, f: ImageFilter, rewrite_text: bool = True) -> None:
        if rewrite_text:
            self._set_text(format_filter(f))
            self.error_label.hide()
        if f != self._filter or not f.semantic:
            self.semantic_indicator.show_filter(f)
        if f != self._filter:
            self._filter = f
            self.filter_changed.emit(f)

    # ---------------------------------------------------------------- filter → widgets

    def _show_filter(self, f: ImageFilter) -> None:
        self._show_widgets(f)
        self._set_text(format_filter(f))

    def _set_text(self, text: str) -> None:
        if self.query_edit.text() != text:
            self.query_edit.setText(text)

    def _show_widgets(self, f: ImageFilter) -> None:
        self._updating = True
        try:
            index = next((i for i, (_, d) in enumerate(REVIEW_STATES) if d == f.decisions), 0)
            self.review_combo.setCurrentIndex(index)
            self.flagged_box.setChecked(f.flagged is True)
            self.unreviewed_first_box.setChecked(f.unreviewed_first)
            if f.sort not in self._sort_keys:
                self._add_sort(f"{f.sort.field} {'↓' if f.sort.descending else '↑'}", f.sort)
            self.sort_combo.setCurrentIndex(self._sort_keys.index(f.sort))
            self._select_data(self.generator_combo,
                              next(iter(f.generators)) if len(f.generators) == 1 else ANY)
            self._select_data(self.model_combo,
                              next(iter(f.models)) if len(f.models) == 1 else ANY)
            single = [(a, next(iter(v))) for a, v in sorted(f.labels.items()) if len(v) == 1]
            if single and self.label_combo.findData(single[0]) < 0:
                self.label_combo.addItem(f"{single[0][0]}: {single[0][1]}", single[0])
            self.label_combo.setCurrentIndex(
                self.label_combo.findData(single[0]) if single else 0)
            tags = sorted(f.tags_all) + [f"-{t}" for t in sorted(f.tags_none)]
            self.tags_edit.setText(" ".join(tags))
            self.prompt_edit.setText(f.prompt[0] if len(f.prompt) == 1 else "")
            for analyser, slider in self.score_sliders.items():
                bounds = f.scores.get(analyser, ScoreRange())
                slider.setValue((slider.minimum() if bounds.lo is None else bounds.lo,
                                 slider.maximum() if bounds.hi is None else bounds.hi))
            if any(a in self.score_sliders for a in f.scores):
                self.scores_button.setChecked(True)
        finally:
            self._updating = False

    @staticmethod
    def _select_data(combo: QComboBox, data: object) -> None:
        index = combo.findData(data)
        if index < 0 and data:
            combo.addItem(str(data), data)  # a value from the text not (yet) in the library
            index = combo.count() - 1
        combo.setCurrentIndex(max(0, index))

    # ---------------------------------------------------------------- saved filters

    def _on_saved_combo_activated(self, index: int) -> None:
        name = self.saved_combo.itemData(index)
        if name is None:
            return
        self.query_edit.setText(self._saved[name])
        self.apply_text()

    def _on_save_button_clicked(self) -> None:
        name, ok = QInputDialog.getText(self, "Save filter", "Name for this filter:")
        if ok and name.strip():
            self.save_requested.emit(name.strip(), format_filter(self._filter))

    def _on_delete_button_clicked(self) -> None:
        name = self.saved_combo.currentData()
        if name is not None:
            self.delete_requested.emit(name)
