"""Light, dark, or whatever the system uses (the default).

"system" leaves Qt to follow the platform's colour scheme (Qt ≥ 6.5 tracks it live).
"dark" and "light" force the scheme through QStyleHints (Fusion then draws a matching
palette) and add the bundled stylesheet for the few widgets GenTriage styles itself.
"""

from __future__ import annotations

import logging
from importlib import resources

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

log = logging.getLogger(__name__)

THEMES = ("system", "light", "dark")


def stylesheet(name: str) -> str:
    """The bundled resources/themes/<name>.qss, or "" when there is none."""
    try:
        return resources.files("resources").joinpath("themes", f"{name}.qss").read_text(
            encoding="utf-8")
    except (FileNotFoundError, OSError):
        return ""


def apply_theme(app: QApplication, theme: str) -> str:
    """Apply a theme; returns the one applied (unknown names fall back to "system")."""
    theme = theme if theme in THEMES else "system"
    scheme = {"system": Qt.ColorScheme.Unknown, "light": Qt.ColorScheme.Light,
              "dark": Qt.ColorScheme.Dark}[theme]
    hints = app.styleHints()
    if hasattr(hints, "setColorScheme"):  # Qt 6.8+
        hints.setColorScheme(scheme)
    if theme != "system" and app.style().name().lower() not in ("fusion",):
        # Native styles may ignore a forced scheme; Fusion honours the palette it implies.
        app.setStyle("Fusion")
    app.setStyleSheet(stylesheet("base") + "\n" + (stylesheet(theme) if theme == "dark" else ""))
    return theme
