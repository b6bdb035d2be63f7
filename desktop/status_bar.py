"""The status bar: analysis worker (device, done / queued, images/s, pause) and watch state."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QLabel, QStatusBar, QToolButton, QWidget

MESSAGE_TIMEOUT_MS = 6000


def _metric_label(name: str, tooltip: str) -> QLabel:
    label = QLabel()
    label.setObjectName("statusMetric")
    label.setAccessibleName(name)
    label.setToolTip(tooltip)
    return label


class StatusBar(QStatusBar):
    pause_toggled = Signal(bool)  # True: the person asked to pause analysis

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.images_label = _metric_label("images", "Images shown / in the library")
        self.analysis_label = _metric_label("analysis", "What the analysis worker is doing")
        self.progress_label = _metric_label("progress",
                                            "Analysed this session / still queued, speed")
        self.watch_label = _metric_label("watch", "Folder watching")
        self.pause_button = QToolButton()
        self.pause_button.setObjectName("pauseButton")
        self.pause_button.setCheckable(True)
        self.pause_button.setText("Pause")
        self.pause_button.setToolTip("Pause or resume the analysis of new images")
        self.pause_button.toggled.connect(self._on_pause_button_toggled)
        for widget in (self.images_label, self.analysis_label, self.progress_label,
                       self.pause_button, self.watch_label):
            self.addPermanentWidget(widget)
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
        self.images_label.setText(f"{shown:,} images" if total is None or total == shown
                                  else f"{shown:,} of {total:,} images")

    def show_analysis_status(self, text: str) -> None:
        self.analysis_label.setText(text)
        self.analysis_label.setToolTip(text)

    def show_analysis_unavailable(self, reason: str) -> None:
        """The runner or models could not start: say so, and there is nothing to pause."""
        self.analysis_label.setText("Analysis unavailable")
        self.analysis_label.setToolTip(reason)
        self.progress_label.setText("")
        self.pause_button.setEnabled(False)
        self.showMessage(reason, MESSAGE_TIMEOUT_MS * 2)

    def show_progress(self, progress: Any) -> None:
        """library.analysis.RunProgress (or inference.types.Progress: same fields)."""
        done = getattr(progress, "done", 0)
        queued = getattr(progress, "queued", 0)
        rate = getattr(progress, "images_per_s", 0.0) or 0.0
        device = getattr(progress, "device", "") or ""
        paused = bool(getattr(progress, "paused", False))
        self.pause_button.setEnabled(True)
        state = "paused" if paused else (f"{rate:.1f} img/s" if queued else "idle")
        self.progress_label.setText(f"{device} · {done:,} done / {queued:,} queued · {state}")
        self.set_paused(paused)

    def show_watch_state(self, text: str) -> None:
        self.watch_label.setText(text)

    def post(self, message: str) -> None:
        self.showMessage(message, MESSAGE_TIMEOUT_MS)
