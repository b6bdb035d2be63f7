"""The status bar: analysis worker (device, done / queued, images/s, pause), watch state, and
the errors the app's error sink reported."""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QLabel, QStatusBar, QToolButton, QWidget

from desktop.safe_text import escaped_rich_text

MESSAGE_TIMEOUT_MS = 6000
ERROR_TIMEOUT_MS = 15_000  # an error stays readable longer than a notice
ERRORS_LISTED = 10  # latest errors listed in the error count's tooltip


def _plain_label() -> QLabel:
    label = QLabel()
    # Folder names and error messages land here: never let Qt guess "rich text" (safe_text).
    label.setTextFormat(Qt.TextFormat.PlainText)
    return label


def _metric_label(name: str, tooltip: str) -> QLabel:
    label = _plain_label()
    label.setObjectName("statusMetric")
    label.setAccessibleName(name)
    label.setToolTip(tooltip)
    return label


class StatusBar(QStatusBar):
    """Left: transient messages. Right, permanently: how many images are shown, one line
    on the analysis worker (what it is doing, not two labels that can contradict each
    other), its pause button, and the watch state."""

    pause_toggled = Signal(bool)  # True: the person asked to pause analysis

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        # Left, under transient messages: what the folder scan is doing (it can take a
        # while on a big folder, and an empty grid with no word of progress looks broken).
        self.scan_label = _plain_label()
        self.scan_label.setObjectName("scanLabel")
        self.addWidget(self.scan_label, 1)
        self.images_label = _metric_label("images", "Images shown / in the library")
        self.analysis_label = _metric_label("analysis", "What the analysis worker is doing")
        self.watch_label = _metric_label("watch", "Folder watching")
        # Hidden until something goes wrong; then how many errors, the latest in its tooltip
        # (the transient message that announced each one goes away).
        self.errors_label = _metric_label("errors", "Errors since GenTriage started")
        self.errors_label.setObjectName("errorCount")
        self.errors_label.hide()
        self._errors: deque[str] = deque(maxlen=ERRORS_LISTED)
        self._error_count = 0
        self.pause_button = QToolButton()
        self.pause_button.setObjectName("pauseButton")
        self.pause_button.setCheckable(True)
        self.pause_button.setText("Pause")
        self.pause_button.setToolTip("Pause or resume the analysis of new images")
        self.pause_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # keys belong to the grid
        self.pause_button.toggled.connect(self._on_pause_button_toggled)
        for widget in (self.errors_label, self.images_label, self.analysis_label,
                       self.pause_button, self.watch_label):
            self.addPermanentWidget(widget)
        self._scan_what = ""
        self._worker_status = ""  # the worker's own line: which analysers, which device
        self.analysis_label.setText("Analysis: starting…")
        self.watch_label.setText("Not watching yet")

    def _on_pause_button_toggled(self, paused: bool) -> None:
        self.pause_button.setText("Resume" if paused else "Pause")
        self.pause_toggled.emit(paused)

    def set_paused(self, paused: bool) -> None:
        """Reflect a pause made elsewhere (menu) without re-emitting."""
        self.pause_button.blockSignals(True)
        self.pause_button.setChecked(paused)
        self.pause_button.setText("Resume" if paused else "Pause")
        self.pause_button.blockSignals(False)

    def show_counts(self, shown: int, total: int | None = None) -> None:
        noun = "image" if (total if total is not None else shown) == 1 else "images"
        self.images_label.setText(f"{shown:,} {noun}" if total is None or total == shown
                                  else f"{shown:,} of {total:,} {noun}")

    def show_analysis_status(self, text: str) -> None:
        """The worker's state line ("Loading models…", "Analysing on cpu: nsfw-default").
        Shown until progress arrives; after that it explains the progress in the tooltip."""
        self._worker_status = text
        self.analysis_label.setText(text)
        self.analysis_label.setToolTip(escaped_rich_text(text))

    def show_analysis_unavailable(self, reason: str) -> None:
        """The runner or models could not start: say so, and there is nothing to pause."""
        self.analysis_label.setText("Analysis unavailable")
        self.analysis_label.setToolTip(escaped_rich_text(reason))
        self.pause_button.setEnabled(False)
        self.showMessage(reason, MESSAGE_TIMEOUT_MS * 2)

    def show_progress(self, progress: Any) -> None:
        """library.analysis.RunProgress (or inference.types.Progress: same fields)."""
        self.analysis_label.setText(describe_progress(progress))
        device = getattr(progress, "device", "") or ""
        done = getattr(progress, "done", 0)
        details = [self._worker_status] if self._worker_status else []
        details.append(f"{done:,} analysed since GenTriage started"
                       + (f" (on {device})" if device else ""))
        self.analysis_label.setToolTip(escaped_rich_text("\n".join(details)))
        self.pause_button.setEnabled(True)
        self.set_paused(bool(getattr(progress, "paused", False)))

    def show_scan_started(self, folders: list[str]) -> None:
        names = ", ".join(Path(f).name or f for f in folders[:2]) + (
            f" and {len(folders) - 2} more" if len(folders) > 2 else "")
        self._scan_what = names
        self.scan_label.setText(f"Indexing {names}…")
        self.scan_label.setToolTip(escaped_rich_text("\n".join(folders)))

    def show_scan_progress(self, done: int, total: int) -> None:
        what = self._scan_what or "folders"
        self.scan_label.setText(f"Indexing {what}… {done:,} of {total:,} files" if total
                                else f"Indexing {what}…")

    def show_scan_finished(self) -> None:
        self.scan_label.setText("")
        self.scan_label.setToolTip("")

    def show_watch_state(self, text: str) -> None:
        self.watch_label.setText(text)

    def post(self, message: str) -> None:
        self.showMessage(message, MESSAGE_TIMEOUT_MS)

    def show_error(self, message: str, _details: str = "") -> None:
        """One report of the app's error sink (the traceback is in the log)."""
        self._error_count += 1
        self._errors.append(message)
        self.errors_label.setText(f"{self._error_count:,} error"
                                  + ("" if self._error_count == 1 else "s"))
        self.errors_label.setToolTip(escaped_rich_text(
            "Latest errors (details in the log):\n" + "\n".join(reversed(self._errors))))
        self.errors_label.show()
        self.showMessage(message, ERROR_TIMEOUT_MS)

    @property
    def error_count(self) -> int:
        return self._error_count


def describe_progress(progress: Any) -> str:
    """One short line: busy (with speed), paused (with what waits), or up to date."""
    done = getattr(progress, "done", 0)
    queued = getattr(progress, "queued", 0)
    rate = getattr(progress, "images_per_s", 0.0) or 0.0
    if getattr(progress, "paused", False):
        return f"Analysis paused · {queued:,} waiting" if queued else "Analysis paused"
    if queued:
        speed = f" · {rate:.1f} img/s" if rate > 0 else ""
        return f"Analysing: {done:,} done, {queued:,} to go{speed}"
    return "Analysis up to date"
