"""File-system text never becomes rich text (a name like `<img src=x.png>` would make Qt load
and paint that file, bypassing the blur)."""

from PySide6.QtCore import Qt
from PySide6.QtGui import QTextDocument

from desktop.safe_text import escaped_rich_text
from desktop.sidebar import FolderEntry, FolderSidebar
from desktop.status_bar import StatusBar

HOSTILE = '/out/<img src="target.png">/b&w'


def shown_as(rich: str) -> str:
    document = QTextDocument()
    document.setHtml(rich)
    return document.toPlainText()


def test_escaped_text_displays_literally_and_keeps_line_breaks():
    rich = escaped_rich_text(HOSTILE + "\nsecond line")
    assert rich.startswith("<qt>")  # an explicit wrapper: Qt never has to guess
    assert "<img" not in rich
    assert shown_as(rich) == HOSTILE + "\nsecond line"


def test_sidebar_tooltips_and_status_labels_escape_folder_names(qtbot):
    sidebar = FolderSidebar()
    qtbot.addWidget(sidebar)
    sidebar.set_folders([FolderEntry(1, HOSTILE, 3)])
    tooltips = [sidebar.list.item(i).toolTip() for i in range(sidebar.list.count())]
    assert tooltips and all("<img" not in t for t in tooltips)
    assert any(HOSTILE in shown_as(t) for t in tooltips)

    status = StatusBar()
    qtbot.addWidget(status)
    status.show_scan_started([HOSTILE])
    assert status.scan_label.textFormat() == Qt.TextFormat.PlainText
    assert "<img" not in status.scan_label.toolTip()
