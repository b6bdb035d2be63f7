"""The settings dialog: edits a copy of library.settings.Settings (the same JSON file the
command line reads) plus the keyboard shortcut rebindings. The main window saves the result
and applies what changed (flags are recomputed off the GUI thread, the analysis worker
restarts for new analysers / device / models)."""

from __future__ import annotations

import copy
from dataclasses import fields

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QKeySequenceEdit,
    QLabel,
    QLineEdit,
    QPushButton,
    QSlider,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from db.review import local_reviewer, reviewer_problem
from desktop.actions import ActionRegistry
from desktop.interop import SharingSettingsPage
from desktop.theme import THEMES
from inference.catalog import CATALOG, TAG_STORE_FLOOR
from library.settings import Settings, Thresholds

DEVICES = ("auto", "cpu", "cuda", "mps")
REJECTED_ACTIONS = (("mark", "Only mark them (files stay where they are)"),
                    ("move", "Move them to a folder"),
                    ("trash", "Send them to the system trash"))
THRESHOLD_TEXT = {
    "nsfw_default": "NSFW (open_nsfw) flags at P(nsfw) ≥",
    "nsfw_vit": "NSFW (ViT) flags at P(nsfw) ≥",
    "safety_checker": "Safety checker flags at margin >",
    "coherence": "Coherence flags at P(incoherent) ≥",
    "tagger": "Tags count at probability ≥",
}
BLUR_STRENGTH = (8, 160)


def _folder_row(edit: QLineEdit, parent: QWidget, title: str) -> QWidget:
    row = QWidget()
    layout = QHBoxLayout(row)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(edit, 1)
    browse = QPushButton("Browse…")

    def choose() -> None:
        folder = QFileDialog.getExistingDirectory(parent, title, edit.text())
        if folder:
            edit.setText(folder)

    browse.clicked.connect(choose)
    layout.addWidget(browse)
    return row


class SettingsDialog(QDialog):
    def __init__(self, settings: Settings, registry: ActionRegistry | None = None,
                 default_models_dir: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("GenTriage settings")
        self.setMinimumWidth(600)
        self._original = settings
        self._registry = registry
        tabs = QTabWidget()
        tabs.addTab(self._general_tab(settings), "General")
        tabs.addTab(self._analysis_tab(settings, default_models_dir), "Analysis")
        self.sharing_page = SharingSettingsPage(settings)
        tabs.addTab(self.sharing_page, "Sharing")
        if registry is not None:
            tabs.addTab(self._keys_tab(registry), "Keys")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(tabs)
        layout.addWidget(buttons)

    # ---------------------------------------------------------------- tabs

    def _general_tab(self, s: Settings) -> QWidget:
        page = QWidget()
        form = QFormLayout(page)
        self.theme_combo = QComboBox()
        for theme in THEMES:
            self.theme_combo.addItem({"system": "Follow the system"}.get(theme,
                                                                         theme.capitalize()),
                                     theme)
        self.theme_combo.setCurrentIndex(max(0, self.theme_combo.findData(s.theme)))
        form.addRow("Theme", self.theme_combo)
        self.auto_advance_box = QCheckBox("Move to the next unreviewed image after a decision")
        self.auto_advance_box.setChecked(s.auto_advance)
        form.addRow("Auto-advance", self.auto_advance_box)
        self.blur_mode_combo = QComboBox()
        self.blur_mode_combo.addItem("Blur", "blur")
        self.blur_mode_combo.addItem("Solid cover", "cover")
        self.blur_mode_combo.setCurrentIndex(max(0, self.blur_mode_combo.findData(s.blur_mode)))
        form.addRow("Flagged images", self.blur_mode_combo)
        self.blur_strength = QSlider(Qt.Orientation.Horizontal)
        self.blur_strength.setRange(*BLUR_STRENGTH)
        self.blur_strength.setValue(min(max(s.blur_radius, BLUR_STRENGTH[0]), BLUR_STRENGTH[1]))
        self.blur_strength.setToolTip("How strongly flagged images are blurred")
        form.addRow("Blur strength", self.blur_strength)
        self.rejected_combo = QComboBox()
        for value, text in REJECTED_ACTIONS:
            self.rejected_combo.addItem(text, value)
        self.rejected_combo.setCurrentIndex(max(0, self.rejected_combo.findData(
            s.rejected_action)))
        form.addRow("Rejected files", self.rejected_combo)
        self.rejected_folder_edit = QLineEdit(s.rejected_folder)
        self.rejected_folder_edit.setPlaceholderText("Folder for rejected files")
        self._rejected_folder_row = _folder_row(self.rejected_folder_edit, self,
                                                "Folder for rejected files")
        form.addRow("Rejected folder", self._rejected_folder_row)
        self.rejected_combo.currentIndexChanged.connect(self._update_rejected_folder)
        self._update_rejected_folder()
        self.reviewer_edit = QLineEdit(s.reviewer)
        self.reviewer_edit.setPlaceholderText(local_reviewer())
        self.reviewer_edit.setToolTip(
            "The name the review log records for your decisions. Several reviewers on one "
            "library: each undoes only their own steps. Empty: your user name.")
        form.addRow("Reviewer name", self.reviewer_edit)
        return page

    def _analysis_tab(self, s: Settings, default_models_dir: str) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        where = QFormLayout()
        self.models_dir_edit = QLineEdit(s.models_dir)
        self.models_dir_edit.setPlaceholderText(default_models_dir or "default models folder")
        where.addRow("Models folder", _folder_row(self.models_dir_edit, self, "Models folder"))
        self.device_combo = QComboBox()
        self.device_combo.setEditable(True)  # cuda:1 and the like
        self.device_combo.addItems(DEVICES)
        self.device_combo.setCurrentText(s.device)
        self.device_combo.setToolTip("auto: CUDA, then Apple MPS, then the CPU")
        where.addRow("Device", self.device_combo)
        layout.addLayout(where)

        analysers = QGroupBox("Analysers")
        analyser_grid = QGridLayout(analysers)
        self.analyser_boxes: dict[str, QCheckBox] = {}
        for i, info in enumerate(CATALOG):
            box = QCheckBox(info.key)
            box.setChecked(info.key in s.enabled_analysers)
            box.setToolTip(f"{info.title}: {info.description}")
            self.analyser_boxes[info.key] = box
            note = QLabel(info.description)
            note.setObjectName("settingsNote")
            analyser_grid.addWidget(box, i, 0)
            analyser_grid.addWidget(note, i, 1)
        analyser_grid.setColumnStretch(1, 1)
        layout.addWidget(analysers)

        thresholds = QGroupBox("Flags and tags")
        threshold_form = QFormLayout(thresholds)
        self.threshold_spins: dict[str, QDoubleSpinBox] = {}
        for f in fields(Thresholds):
            spin = QDoubleSpinBox()
            spin.setDecimals(3)
            spin.setSingleStep(0.05)
            spin.setRange(-10.0, 10.0) if f.name == "safety_checker" else spin.setRange(0.0, 1.0)
            if f.name == "tagger":  # tags are stored down to this floor: lower finds nothing new
                spin.setMinimum(TAG_STORE_FLOOR)
            spin.setValue(getattr(s.thresholds, f.name))
            spin.setMaximumWidth(110)  # a number, not a text field
            self.threshold_spins[f.name] = spin
            threshold_form.addRow(THRESHOLD_TEXT.get(f.name, f.name), spin)
        layout.addWidget(thresholds)
        layout.addStretch(1)
        return page

    def _keys_tab(self, registry: ActionRegistry) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        specs = registry.specs()
        self.keys_table = QTableWidget(len(specs), 2)
        self.keys_table.setHorizontalHeaderLabels(["Command", "Shortcut"])
        header = self.keys_table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Fixed)
        header.resizeSection(1, 220)  # room for "Ctrl+Shift+Z, Ctrl+Y"
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        self.keys_table.verticalHeader().setVisible(False)
        self.key_edits: dict[str, QKeySequenceEdit] = {}
        for row, spec in enumerate(specs):
            item = QTableWidgetItem(spec.text)
            item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
            self.keys_table.setItem(row, 0, item)
            edit = QKeySequenceEdit(QKeySequence(", ".join(registry.shortcuts(spec.id))))
            edit.setClearButtonEnabled(True)
            self.key_edits[spec.id] = edit
            self.keys_table.setCellWidget(row, 1, edit)
        reset = QPushButton("Restore default keys")
        reset.clicked.connect(self._reset_keys)
        layout.addWidget(self.keys_table)
        layout.addWidget(reset, alignment=Qt.AlignmentFlag.AlignRight)
        return page

    def _reset_keys(self) -> None:
        assert self._registry is not None
        for spec in self._registry.specs():
            self.key_edits[spec.id].setKeySequence(QKeySequence(", ".join(spec.shortcuts)))

    def _update_rejected_folder(self) -> None:
        self._rejected_folder_row.setEnabled(self.rejected_combo.currentData() == "move")

    # ---------------------------------------------------------------- result

    def result_settings(self) -> Settings:
        """A new Settings with the dialog's values (the original is left untouched)."""
        s = copy.deepcopy(self._original)
        s.theme = self.theme_combo.currentData()
        s.auto_advance = self.auto_advance_box.isChecked()
        s.blur_mode = self.blur_mode_combo.currentData()
        s.blur_radius = self.blur_strength.value()
        s.rejected_action = self.rejected_combo.currentData()
        s.rejected_folder = self.rejected_folder_edit.text().strip()
        s.reviewer = self.reviewer_edit.text().strip()
        s.models_dir = self.models_dir_edit.text().strip()
        s.device = self.device_combo.currentText().strip() or "auto"
        s.enabled_analysers = [a for a, box in self.analyser_boxes.items() if box.isChecked()]
        for name, spin in self.threshold_spins.items():
            setattr(s.thresholds, name, float(spin.value()))
        self.sharing_page.apply_to(s)
        return s

    def shortcut_choices(self) -> dict[str, list[str]]:
        """action id → the shortcuts chosen in the Keys tab (portable text)."""
        if self._registry is None:
            return {}
        result = {}
        for action_id, edit in self.key_edits.items():
            sequence = edit.keySequence()
            # QKeySequence[i] exists at run time; PySide6's stubs omit __getitem__.
            result[action_id] = [sequence[i].toCombined()  # type: ignore[index]
                                 and QKeySequence(sequence[i]).toString()  # type: ignore[index]
                                 for i in range(sequence.count())]
        return result

    def validate(self) -> str | None:
        """A problem that should keep the dialog open, or None."""
        if self.rejected_combo.currentData() == "move" and not \
                self.rejected_folder_edit.text().strip():
            return "Choose a folder for rejected files, or pick another rejected-file action."
        reviewer = self.reviewer_edit.text().strip()
        if reviewer and (problem := reviewer_problem(reviewer)) is not None:
            return f"Reviewer name: {problem}."
        return None

    def accept(self) -> None:
        problem = self.validate()
        if problem:
            from PySide6.QtWidgets import QMessageBox

            QMessageBox.warning(self, "Settings", problem)
            return
        super().accept()
