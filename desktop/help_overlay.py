"""The `?` overlay: every command and its current keys, read from the action registry."""

from __future__ import annotations

from html import escape

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QColor, QKeyEvent, QMouseEvent, QPainter, QPaintEvent
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

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
        self._label.setStyleSheet("color: white; font-size: 13px;")
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
        self._label.setText(self.render_html())
        self.setGeometry(self.parentWidget().rect())
        self.raise_()
        self.show()
        self.setFocus()

    def render_html(self) -> str:
        columns = []
        for group, specs in self._registry.grouped():
            rows = "".join(
                f"<tr><td style='padding:2px 14px 2px 0'><b>"
                f"{escape(self._registry.shortcut_text(spec.id)) or '—'}</b></td>"
                f"<td>{escape(spec.text)}</td></tr>" for spec in specs)
            columns.append(f"<h3>{escape(group)}</h3><table>{rows}</table>")
        half = (len(columns) + 1) // 2
        cells = "".join(f"<td valign='top' style='padding:0 24px'>{''.join(part)}</td>"
                        for part in (columns[:half], columns[half:]))
        return (f"<h2>Keyboard shortcuts</h2><table><tr>{cells}</tr></table>"
                "<p>Press any key to close. Shortcuts can be changed in Settings.</p>")

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt API
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(0, 0, 0, 200))

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt API
        self.hide()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        self.hide()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        if event.type() == QEvent.Type.Resize and self.isVisible():
            self.setGeometry(self.parentWidget().rect())
        return False
