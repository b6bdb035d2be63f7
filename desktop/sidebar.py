"""The folder sidebar: watched folders with their image counts; add, remove, rescan, and mark
a folder sensitive (its unanalysed images stay blurred). Selecting a folder filters the grid.

The widget only displays and asks: the main window does the database work and calls
`set_folders` with fresh entries.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop.safe_text import escaped_rich_text

ALL_FOLDERS = -1  # the item id of "All folders"


@dataclass(frozen=True)
class FolderEntry:
    id: int
    path: str
    count: int
    sensitive: bool = False
    lost: bool = False  # the folder is not on disk right now (unmounted, deleted)


class FolderSidebar(QWidget):
    add_requested = Signal()
    remove_requested = Signal(int)  # folder id
    rescan_requested = Signal(int)  # folder id, or ALL_FOLDERS
    sensitive_toggled = Signal(int, bool)
    folder_selected = Signal(int)  # folder id, or ALL_FOLDERS

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("folderSidebar")
        self._entries: dict[int, FolderEntry] = {}
        title = QLabel("Folders")
        title.setObjectName("detailsHeading")
        self.list = QListWidget()
        self.list.setObjectName("folderList")
        self.list.setFocusPolicy(Qt.FocusPolicy.ClickFocus)  # arrows belong to the grid
        self.list.currentItemChanged.connect(self._on_list_current_item_changed)
        # Tool buttons, not push buttons: a styled push button is at least 80 pixels wide,
        # and three of them made the sidebar (and so the window) wider than it needs to be.
        self.add_button = QToolButton()
        self.add_button.setText("Add…")
        self.add_button.setToolTip("Watch another folder (Ctrl+O)")
        self.remove_button = QToolButton()
        self.remove_button.setText("Remove")
        self.remove_button.setToolTip("Stop watching the selected folder (files stay on disk)")
        self.rescan_button = QToolButton()
        self.rescan_button.setText("Rescan")
        self.rescan_button.setToolTip("Look for new, changed and vanished files")
        self.sensitive_box = QCheckBox("Sensitive folder")
        self.sensitive_box.setToolTip("Keep this folder's images blurred until analysed")
        for button in (self.add_button, self.remove_button, self.rescan_button,
                       self.sensitive_box):
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.add_button.clicked.connect(self.add_requested)
        self.remove_button.clicked.connect(self._on_remove_button_clicked)
        self.rescan_button.clicked.connect(
            lambda: self.rescan_requested.emit(self.selected_folder_id()))
        self.sensitive_box.toggled.connect(self._on_sensitive_box_toggled)

        buttons = QHBoxLayout()
        buttons.setSpacing(4)
        for button in (self.add_button, self.remove_button, self.rescan_button):
            button.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
            buttons.addWidget(button, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 4, 6)
        layout.setSpacing(4)
        layout.addWidget(title)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.sensitive_box)
        layout.addLayout(buttons)
        self._update_buttons()

    # ---------------------------------------------------------------- content

    def set_folders(self, entries: list[FolderEntry]) -> None:
        selected = self.selected_folder_id()
        self._entries = {e.id: e for e in entries}
        self.list.blockSignals(True)
        self.list.clear()
        total = sum(e.count for e in entries)
        self._add_item(ALL_FOLDERS, f"All folders ({total:,})", "Every watched folder")
        for entry in sorted(entries, key=lambda e: e.path.lower()):
            name = Path(entry.path).name or entry.path
            marks = (" 🔒" if entry.sensitive else "") + (" ⚠" if entry.lost else "")
            tooltip = entry.path + ("\nNot found on disk" if entry.lost else "") + (
                "\nSensitive: blurred until analysed" if entry.sensitive else "")
            self._add_item(entry.id, f"{name} ({entry.count:,}){marks}", tooltip)
        self._select(selected if selected in self._entries else ALL_FOLDERS)
        self.list.blockSignals(False)
        self._update_buttons()

    def _add_item(self, folder_id: int, text: str, tooltip: str) -> None:
        item = QListWidgetItem(text)
        item.setData(Qt.ItemDataRole.UserRole, folder_id)
        item.setToolTip(escaped_rich_text(tooltip))
        self.list.addItem(item)

    def _select(self, folder_id: int) -> None:
        for row in range(self.list.count()):
            if self.list.item(row).data(Qt.ItemDataRole.UserRole) == folder_id:
                self.list.setCurrentRow(row)
                return

    def entries(self) -> list[FolderEntry]:
        return list(self._entries.values())

    def selected_folder_id(self) -> int:
        item = self.list.currentItem()
        return int(item.data(Qt.ItemDataRole.UserRole)) if item is not None else ALL_FOLDERS

    # ---------------------------------------------------------------- reactions

    def _on_list_current_item_changed(self, *_: object) -> None:
        self._update_buttons()
        self.folder_selected.emit(self.selected_folder_id())

    def _on_remove_button_clicked(self) -> None:
        folder_id = self.selected_folder_id()
        if folder_id != ALL_FOLDERS:
            self.remove_requested.emit(folder_id)

    def _on_sensitive_box_toggled(self, checked: bool) -> None:
        folder_id = self.selected_folder_id()
        if folder_id != ALL_FOLDERS:
            self.sensitive_toggled.emit(folder_id, checked)

    def _update_buttons(self) -> None:
        folder_id = self.selected_folder_id()
        entry = self._entries.get(folder_id)
        self.remove_button.setEnabled(entry is not None)
        self.sensitive_box.setEnabled(entry is not None)
        self.sensitive_box.blockSignals(True)
        self.sensitive_box.setChecked(bool(entry and entry.sensitive))
        self.sensitive_box.blockSignals(False)
        self.rescan_button.setEnabled(bool(self._entries))
