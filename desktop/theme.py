"""Light, dark, or whatever the system uses (the default).

"system" leaves Qt to follow the platform's colour scheme (Qt ≥ 6.5 tracks it live).
"dark" and "light" switch to Fusion with an explicit palette. The colour-scheme hint alone
is not enough: where no platform theme supplies a dark palette (X11 without a desktop's
theme plugin, some Windows setups) Fusion kept its light palette under the dark stylesheet,
which left light text on light backgrounds in every widget the stylesheet does not paint
(scroll areas, tab pages, group boxes, scroll bars). The bundled stylesheet adds the
finishing for the few widgets GenTriage styles itself.
"""

from __future__ import annotations

import logging
from importlib import resources

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

log = logging.getLogger(__name__)

THEMES = ("system", "light", "dark")

_R = QPalette.ColorRole
_G = QPalette.ColorGroup

# (role, active colour, disabled colour or None for the same)
DARK_COLOURS: tuple[tuple[QPalette.ColorRole, str, str | None], ...] = (
    (_R.Window, "#1e1f22", None),
    (_R.WindowText, "#dcdde0", "#7a7c82"),
    (_R.Base, "#17181a", "#1b1c1f"),
    (_R.AlternateBase, "#222327", None),
    (_R.Text, "#dcdde0", "#7a7c82"),
    (_R.PlaceholderText, "#80838a", None),
    (_R.Button, "#2c2d32", "#25262a"),
    (_R.ButtonText, "#dcdde0", "#7a7c82"),
    (_R.BrightText, "#ffffff", None),
    (_R.Highlight, "#3d5a99", "#33363d"),
    (_R.HighlightedText, "#ffffff", "#9a9ca2"),
    (_R.ToolTipBase, "#2c2d32", None),
    (_R.ToolTipText, "#dcdde0", None),
    (_R.Link, "#7aa7ff", None),
    (_R.Light, "#3a3b40", None),
    (_R.Midlight, "#303136", None),
    (_R.Mid, "#2a2b2f", None),
    (_R.Dark, "#141517", None),
    (_R.Shadow, "#000000", None),
)


def dark_palette() -> QPalette:
    palette = QPalette()
    for role, colour, disabled in DARK_COLOURS:
        palette.setColor(_G.All, role, QColor(colour))
        if disabled is not None:
            palette.setColor(_G.Disabled, role, QColor(disabled))
    return palette


def stylesheet(name: str) -> str:
    """The bundled resources/themes/<name>.qss, or "" when there is none. `{themes}` in
    it becomes the themes folder, for url() images (relative urls would resolve against
    the working directory)."""
    folder = resources.files("resources").joinpath("themes")
    try:
        text = folder.joinpath(f"{name}.qss").read_text(encoding="utf-8")
    except (FileNotFoundError, OSError):
        return ""
    return text.replace("{themes}", str(folder).replace("\\", "/"))


def apply_theme(app: QApplication, theme: str) -> str:
    """Apply a theme; returns the one applied (unknown names fall back to "system")."""
    theme = theme if theme in THEMES else "system"
    scheme = {"system": Qt.ColorScheme.Unknown, "light": Qt.ColorScheme.Light,
              "dark": Qt.ColorScheme.Dark}[theme]
    hints = app.styleHints()
    if hasattr(hints, "setColorScheme"):  # Qt 6.8+
        hints.setColorScheme(scheme)
    if theme != "system" and app.style().name().lower() != "fusion":
        # Native styles may ignore a forced palette; Fusion honours it.
        app.setStyle("Fusion")
    if theme == "dark":
        app.setPalette(dark_palette())
    elif theme == "light":
        app.setPalette(app.style().standardPalette())  # Fusion's light palette
    else:
        app.setPalette(QPalette())  # an empty palette: back to the platform's own
    app.setStyleSheet(stylesheet("base") + "\n" + (stylesheet(theme) if theme == "dark" else ""))
    return theme
