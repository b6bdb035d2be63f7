"""The Models view (View → Models…): `gentriage report`'s table and charts for the grid's
current filter, in a window beside the main one.

- The table is sortable (click a header; groups without a value sort last either way) and
  clicking a group narrows the grid to it (`group_filter_requested`): the view keeps showing
  every group of the filter it was opened for, so another group is one click away.
- Everything slow happens on the view's own worker thread: the SQL (library/report.py), the
  style reference's VGG19 pass, and the charts (matplotlib on the Agg canvas, rendered to
  PNG and decoded to a QImage there). The GUI thread only turns the finished images into
  pixmaps. A newer request supersedes an older one; its results are dropped on arrival.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QRunnable,
    QSortFilterProxyModel,
    Qt,
    QThreadPool,
    QTimer,
    Signal,
)
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from db.filters import ImageFilter, format_filter
from db.transaction import Sessions
from desktop.roles import Role
from library.report import (
    DEFAULT_GOOD_THRESHOLD,
    GROUPINGS,
    GroupFigures,
    Report,
    StyleReference,
    build_report,
    group_filter,
)

log = logging.getLogger(__name__)

Index = QModelIndex | QPersistentModelIndex
REFRESH_DEBOUNCE_MS = 250
UNKNOWN = "(unknown)"
GROUPING_TEXT = {"model": "Model", "lora": "LoRA", "sampler": "Sampler", "prompt": "Prompt",
                 "generator": "Generator", "folder": "Folder"}


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f}%"


def _num(digits: int) -> Any:
    return lambda value: "–" if value is None else f"{value:.{digits}f}"


# (field of GroupFigures, header, formatter)
COLUMNS: tuple[tuple[str, str, Any], ...] = (
    ("group", "Group", lambda v: UNKNOWN if v is None else " ".join(v.split())),
    ("images", "Images", str),
    ("aesthetic_mean", "Aesthetic", _num(2)),
    ("aesthetic_std", "± std", _num(2)),
    ("good_rate", "Good", _pct),
    ("prompt_adherence_mean", "Prompt adherence", _num(1)),
    ("coherent_rate", "Coherent", _pct),
    ("accepted_rate", "Accepted", _pct),
    ("rejected_rate", "Rejected", _pct),
    ("style_loss", "Style loss", lambda v: "–" if v is None else f"{v:.4g}"),
)
STYLE_COLUMN = len(COLUMNS) - 1


class ReportTableModel(QAbstractTableModel):
    """The report's groups, one row each, in rank order. Role.SortValue holds the raw value
    (None when unknown); Role.Group the group (None for the unknown group)."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._groups: list[GroupFigures] = []
        self._with_style = False

    def set_report(self, report: Report | None) -> None:
        self.beginResetModel()
        self._groups = list(report.groups) if report is not None else []
        self._with_style = report is not None and report.style is not None
        self.endResetModel()

    @property
    def with_style(self) -> bool:
        return self._with_style

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt signature
        return 0 if parent.isValid() else len(self._groups)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt signature
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole \
                and 0 <= section < len(COLUMNS):
            return COLUMNS[section][1]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not (0 <= index.row() < len(self._groups)) \
                or not (0 <= index.column() < len(COLUMNS)):
            return None
        group = self._groups[index.row()]
        name, _, fmt = COLUMNS[index.column()]
        value = getattr(group, name)
        if role == Qt.ItemDataRole.DisplayRole:
            return fmt(value)
        if role == Qt.ItemDataRole.TextAlignmentRole:
            if index.column() == 0:
                return int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ToolTipRole and index.column() == 0:
            return fmt(value)  # plain text: a long prompt or path in full
        if role == Role.SortValue:
            return value
        if role == Role.Group:
            return group.group
        return None


class ReportSortProxy(QSortFilterProxyModel):
    """Sorts by Role.SortValue; unknown values (None) always sort last, text ignores case."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.setSortRole(int(Role.SortValue))

    def lessThan(self, left: Index, right: Index) -> bool:
        a, b = left.data(Role.SortValue), right.data(Role.SortValue)
        descending = self.sortOrder() == Qt.SortOrder.DescendingOrder
        if a is None or b is None:
            # Qt reverses the comparison for descending order: undo that for None.
            return (a is not None) != descending if (a is None) != (b is None) else False
        if isinstance(a, str) and isinstance(b, str):
            return a.casefold() < b.casefold()
        return a < b


@dataclass
class ReportRequest:
    generation: int
    by: str
    image_filter: ImageFilter
    good_threshold: float
    style_folder: Path | None
    style: StyleReference | None  # already computed for style_folder
    models_dir: Path
    device: str
    pixel_ratio: float


@dataclass
class ReportResult:
    generation: int
    report: Report | None = None
    charts: list[tuple[str, str, QImage]] = field(default_factory=list)  # key, title, pixels
    style: StyleReference | None = None
    error: str = ""  # the report failed (nothing to show) or only the style part did


class _Delivery(QObject):
    """Lives on the GUI thread; the worker emits through it (queued connection)."""

    finished = Signal(object)  # ReportResult


class _ReportJob(QRunnable):
    def __init__(self, request: ReportRequest, sessions: Sessions,
                 delivery: _Delivery, is_current: Any) -> None:
        super().__init__()
        self._request = request
        self._sessions = sessions
        self._delivery = delivery
        self._is_current = is_current

    def run(self) -> None:
        request = self._request
        result = ReportResult(request.generation)
        try:
            if not self._is_current(request.generation):
                return
            style = request.style
            if request.style_folder is not None and style is None:
                style, result.error = _style_reference(request)
            result.style = style
            stop = lambda: not self._is_current(request.generation)  # noqa: E731
            report = build_report(self._sessions, request.by, request.image_filter,
                                  request.good_threshold, details=True, style=style,
                                  should_stop=stop)
            if stop():
                return
            result.report = report
            result.charts = _render_charts(report, request.pixel_ratio, stop)
        except Exception as exc:
            log.exception("Models view report failed")
            result.error = f"{type(exc).__name__}: {exc}"
        self._delivery.finished.emit(result)


def _style_reference(request: ReportRequest) -> tuple[StyleReference | None, str]:
    from library.style_reference import (
        StyleReferenceError,
        compute_reference,
        load_style_analyser,
    )

    assert request.style_folder is not None
    try:
        analyser = load_style_analyser(request.models_dir, request.device)
        return compute_reference(request.style_folder, analyser), ""
    except StyleReferenceError as exc:
        return None, str(exc)


def _render_charts(report: Report, pixel_ratio: float, stop: Any
                   ) -> list[tuple[str, str, QImage]]:
    """On the worker thread: matplotlib draws on Agg, the PNG decodes to a QImage."""
    from library.report_charts import CHARTS, to_png

    charts = []
    for key, title, draw in CHARTS:
        if stop():
            break
        figure = draw(report)
        if figure is None:
            continue
        image = QImage.fromData(to_png(figure, dpi=100 * pixel_ratio))  # PNG, detected
        image.setDevicePixelRatio(pixel_ratio)
        charts.append((key, title, image))
    return charts


class ModelsView(QWidget):
    """The window. `set_filter` follows the grid's filter; `group_filter_requested` asks the
    main window to narrow the grid to one group."""

    group_filter_requested = Signal(object)  # ImageFilter
    report_shown = Signal()  # a finished report is on screen (tests wait for it)

    def __init__(self, sessions: Sessions, models_dir: Path | str,
                 device: str = "auto", parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.setObjectName("modelsView")
        self.setWindowTitle("Models — GenTriage")
        self.resize(1100, 820)
        self._sessions = sessions
        self._models_dir = Path(models_dir)
        self._device = device
        self._filter = ImageFilter()
        self._requested: ImageFilter | None = None  # the last filter this view asked for
        self._style_folder: Path | None = None
        self._style: StyleReference | None = None
        self._generation = 0
        self._generation_lock = threading.Lock()
        self._report: Report | None = None
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._delivery = _Delivery(self)
        self._delivery.finished.connect(self._on_job_finished)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(REFRESH_DEBOUNCE_MS)
        self._timer.timeout.connect(self.refresh)
        self._build()

    # ---------------------------------------------------------------- widgets

    def _build(self) -> None:
        self.by_combo = QComboBox()
        for by in GROUPINGS:
            self.by_combo.addItem(GROUPING_TEXT[by], by)
        self.threshold_spin = QDoubleSpinBox()
        self.threshold_spin.setRange(0.0, 10.0)
        self.threshold_spin.setSingleStep(0.5)
        self.threshold_spin.setDecimals(1)
        self.threshold_spin.setValue(DEFAULT_GOOD_THRESHOLD)
        self.threshold_spin.setToolTip("Aesthetic score of a good picture (LAION's 6+)")
        self.style_button = QPushButton("Style reference…")
        self.style_button.setToolTip("A folder of pictures in the style to compare with "
                                     "(needs the style analyser's VGG19 weights)")
        self.clear_style_button = QPushButton("No style")
        self.clear_style_button.setEnabled(False)
        self.refresh_button = QPushButton("Refresh")
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Group by"))
        bar.addWidget(self.by_combo)
        bar.addSpacing(12)
        bar.addWidget(QLabel("Good ≥"))
        bar.addWidget(self.threshold_spin)
        bar.addSpacing(12)
        bar.addWidget(self.style_button)
        bar.addWidget(self.clear_style_button)
        bar.addStretch(1)
        bar.addWidget(self.refresh_button)

        self.status_label = QLabel()
        self.status_label.setObjectName("modelsStatus")
        self.status_label.setTextFormat(Qt.TextFormat.PlainText)  # paths, prompts: never HTML
        self.status_label.setWordWrap(True)

        self.table_model = ReportTableModel(self)
        self.proxy = ReportSortProxy(self)
        self.proxy.setSourceModel(self.table_model)
        self.table = QTableView()
        self.table.setObjectName("modelsTable")
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(-1, Qt.SortOrder.AscendingOrder)  # rank order until clicked
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.setToolTip("Click a group to show its pictures in the grid")
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for column in range(1, len(COLUMNS)):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        self.table.setColumnHidden(STYLE_COLUMN, True)

        self.charts = QTabWidget()
        self.charts.setObjectName("modelsCharts")
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.table)
        splitter.addWidget(self.charts)
        splitter.setStretchFactor(0, 2)
        splitter.setStretchFactor(1, 3)
        splitter.setSizes([280, 460])  # the charts get the larger part from the start
        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(self.status_label)
        layout.addWidget(splitter, 1)

        self.by_combo.currentIndexChanged.connect(self.schedule_refresh)
        self.threshold_spin.valueChanged.connect(self.schedule_refresh)
        self.refresh_button.clicked.connect(self.refresh)
        self.style_button.clicked.connect(self._choose_style_folder)
        self.clear_style_button.clicked.connect(lambda: self.set_style_folder(None))
        self.table.clicked.connect(self._on_table_clicked)

    # ---------------------------------------------------------------- public API

    @property
    def report(self) -> Report | None:
        return self._report

    @property
    def by(self) -> str:
        return str(self.by_combo.currentData())

    def set_by(self, by: str) -> None:
        self.by_combo.setCurrentIndex(GROUPINGS.index(by))

    def set_filter(self, f: ImageFilter) -> None:
        """The grid's filter changed. A change this view asked for itself (a group clicked)
        keeps the overview of the filter it was opened for."""
        if f == self._requested:
            return
        self._requested = None
        if f != self._filter:
            self._filter = f
            self.schedule_refresh()

    @property
    def models(self) -> tuple[Path, str]:
        """The models folder and device a style reference is computed with."""
        return self._models_dir, self._device

    def use_models(self, models_dir: Path | str, device: str) -> None:
        """The app's models folder or device changed (settings): a style reference computed
        with other weights is computed again."""
        if (Path(models_dir), device) != (self._models_dir, self._device):
            self._models_dir, self._device = Path(models_dir), device
            self._style = None

    def set_style_folder(self, folder: Path | str | None) -> None:
        self._style_folder = Path(folder) if folder else None
        self._style = None
        self.clear_style_button.setEnabled(self._style_folder is not None)
        self.schedule_refresh()

    def schedule_refresh(self, *_: object) -> None:
        self._timer.start()

    def refresh(self) -> None:
        """Compute the report again (on the worker thread) for the current choices."""
        self._timer.stop()
        with self._generation_lock:
            self._generation += 1
            generation = self._generation
        screen = self.screen()
        request = ReportRequest(generation, self.by, self._filter, self.threshold_spin.value(),
                                self._style_folder, self._style, self._models_dir,
                                self._device, screen.devicePixelRatio() if screen else 1.0)
        self.status_label.setText("Computing…" + (
            " (the style reference runs VGG19 over its pictures first)"
            if self._style_folder is not None and self._style is None else ""))
        self._pool.start(_ReportJob(request, self._sessions, self._delivery, self._is_current))

    def shutdown(self, timeout_ms: int = 30_000) -> bool:
        """Drop pending work and wait for the running job (call before the app quits)."""
        self._timer.stop()
        with self._generation_lock:
            self._generation += 1  # a running job stops at its next check
        self._pool.clear()
        return self._pool.waitForDone(timeout_ms)

    # ---------------------------------------------------------------- worker results

    def _is_current(self, generation: int) -> bool:
        with self._generation_lock:
            return generation == self._generation

    def _on_job_finished(self, result: ReportResult) -> None:
        if not self._is_current(result.generation):
            return  # superseded while it ran
        if result.style is not None:
            self._style = result.style
        self._report = result.report
        self.table_model.set_report(result.report)
        self.table.setColumnHidden(STYLE_COLUMN, not self.table_model.with_style)
        while self.charts.count():
            page = self.charts.widget(0)
            self.charts.removeTab(0)
            if page is not None:
                page.deleteLater()
        for key, title, image in result.charts:
            label = QLabel()
            label.setObjectName(f"chart_{key}")
            label.setAlignment(Qt.AlignmentFlag.AlignCenter)
            label.setPixmap(QPixmap.fromImage(image))
            scroll = QScrollArea()
            scroll.setWidget(label)
            scroll.setWidgetResizable(True)
            self.charts.addTab(scroll, title)
        self.status_label.setText(self._summary(result))
        self.report_shown.emit()

    def _summary(self, result: ReportResult) -> str:
        report = result.report
        if report is None:
            return f"The report could not be made: {result.error}"
        parts = []
        if not report.groups:
            parts.append("No pictures match the filter.")
        else:
            pictures = sum(g.images for g in report.groups)
            parts.append(f"{len(report.groups)} group(s) · {pictures} picture(s) · filter: "
                         f"{format_filter(self._filter) or '(none)'} · ranked by aesthetic "
                         "mean; click a group to show it in the grid.")
            if len(report.groups) > len(report.charted()):
                parts.append(f"Charts show the best {len(report.charted())} groups.")
        if report.style is not None:
            parts.append(f"Style reference: {report.style.images} picture(s) in "
                         f"{report.style.folder}.")
            if report.style_without_grams:
                parts.append(f"{report.style_without_grams} picture(s) have no style data "
                             "yet (turn the style analyser on in Settings).")
        if result.error:
            parts.append(result.error)
        return " ".join(parts)

    # ---------------------------------------------------------------- interaction

    def _on_table_clicked(self, index: QModelIndex) -> None:
        group = index.data(Role.Group)
        narrowed = group_filter(self.by, group, self._filter)
        if narrowed is None:
            self.status_label.setText(
                f"“{UNKNOWN if group is None else group}” cannot be written as a filter "
                "term, so the grid cannot be narrowed to it.")
            return
        self._requested = narrowed
        self.group_filter_requested.emit(narrowed)

    def _choose_style_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Style reference folder")
        if folder:
            self.set_style_folder(folder)
