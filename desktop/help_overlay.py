"""The `?` overlay: every command and its current keys, read from the action registry."""

from __future__ import annotations

from html import escape

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import (
    QColor,
    QHideEvent,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
)
from PySide6.QtWidgets import QApplication, QLabel, QVBoxLayout, QWidget
from shiboken6 import isValid

from desktop.actions import ActionRegistry


class HelpOverlay(QWidget):
    """A translucent sheet over the whole window; any key or click closes it."""

    def __init__(self, registry: ActionRegistry, parent: QWidget) -> None:
        super().__init__(parent)
        self._registry = registry
        self.setObjectName("helpOverlay")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, False)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self._label = QLabel(self)
        self._label.setObjectName("helpOverlayText")
        self._label.setTextFormat(Qt.TextFormat.RichText)
        self._label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        # An opaque card: over a translucent sheet alone the text ran across thumbnails.
        self._label.setStyleSheet("color: #f2f3f5; font-size: 13px; background: #1c1d21;"
                                  "border: 1px solid #3a3b40; border-radius: 12px;"
                                  "padding: 18px 10px;")
        self._return_focus: QWidget | None = None
        layout = QVBoxLayout(self)
        layout.addWidget(self._label, alignment=Qt.AlignmentFlag.AlignCenter)
        parent.installEventFilter(self)
        self.hide()

    def toggle(self) -> None:
        if self.isVisible():
            self.hide()
        else:
            self.show_overlay()

    def show_overlay(self) -> None:
        focus = QApplication.focusWidget()
        self._return_focus = focus if focus is not None and focus is not self else None
        self._label.setText(self.render_html())
        self.setGeometry(self.parentWidget().rect())
        self.raise_()
        self.show()
        self.setFocus()

    def render_html(self) -> str:
        """Two columns of groups; each column is ONE table, so its key column lines up
        across groups (one table per group gave every group its own indent)."""
        groups = self._registry.grouped()
        sizes = [len(specs) + 2 for _, specs in groups]  # a heading weighs about two rows
        half = min(range(1, max(2, len(groups))),  # the split that balances the rows
                   key=lambda k: abs(sum(sizes[:k]) - sum(sizes[k:])))
        columns = []
        for part in (groups[:half], groups[half:]):
            rows = []
            for group, specs in part:
                rows.append(f"<tr><td colspan='2' style='padding:12px 0 4px 0'>"
                            f"<span style='font-size:15px;font-weight:bold'>{escape(group)}"
                            f"</span></td></tr>")
                rows += [f"<tr><td style='padding:2px 18px 2px 0;color:#ffd36a'><b>"
                         f"{escape(self._registry.shortcut_text(spec.id)) or '—'}</b></td>"
                         f"<td style='padding:2px 0'>{escape(spec.text)}</td></tr>"
                         for spec in specs]
            columns.append(f"<td valign='top' style='padding:0 28px'><table cellspacing='0'>"
                           f"{''.join(rows)}</table></td>")
        return ("<h2 style='margin-bottom:4px'>Keyboard shortcuts</h2>"
                f"<table><tr>{''.join(columns)}</tr></table>"
                "<p style='color:#b8bcc4'>Press any key to close · "
                "change keys in Settings → Keys</p>")

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(0, 0, 0, 150))

    def hideEvent(self, event: QHideEvent) -> None:
        """Give the keyboard back to whatever had it (the grid): left to Qt, focus moved
        on to the next widget in the tab chain, the filter field, and review keys typed
        into it."""
        super().hideEvent(event)
        target, self._return_focus = self._return_focus, None
        if target is not None and isValid(target) and target.isVisible():
            target.setFocus(Qt.FocusReason.OtherFocusReason)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        self.hide()

    def mousePressEvent(self, event: QMouseEvent) -> None:
        self.hide()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Resize and self.isVisible():
            self.setGeometry(self.parentWidget().rect())
        return False
