"""The app's way back to the generator and out to photo managers.

- "Copy generation parameters" (Ctrl+Shift+C): the current image's A1111 infotext, which
  A1111/Forge/SD.Next paste into txt2img;
- "Copy ComfyUI workflow" (Ctrl+Alt+C): the embedded graph as JSON, which ComfyUI loads on
  paste;
- "Queue in ComfyUI": the embedded API prompt posted to the ComfyUI address in Settings
  (`/prompt`), off the GUI thread;
- XMP sidecars written after every review decision when Settings say so;
- the "Sharing" page of the settings dialog.

Privacy: queueing reproduces the picture in another program, so — like dragging the file
out (desktop.blur.BlurPolicy.file_may_leave) — it is refused for a flagged image nobody has
reviewed. Copying text is not: the details pane shows the same text.

The texts themselves come from library.generation_params (Qt-free); this module only reads
the current image, fills the clipboard and reports on the status bar.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QWidget,
)
from superqt.utils import create_worker

from db.interop import GenerationRecord, generation_record
from desktop.blur import BlurPolicy
from library.generation_params import (
    ComfyUIError,
    comfyui_prompt,
    comfyui_workflow,
    infotext,
    queue_prompt,
)
from library.settings import Settings
from library.sidecars import NAMINGS, write_for_contents

ACTION_IDS = ("edit.copy_parameters", "edit.copy_workflow", "file.queue_comfyui")


class InteropActions(QObject):
    """The copy / queue commands and the automatic sidecars, for the current image."""

    message_posted = Signal(str)
    queue_finished = Signal(bool, str)  # succeeded, what to tell the person

    def __init__(self, sessions: Any, settings: Callable[[], Settings],
                 current_row: Callable[[], Any], blur: BlurPolicy,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._sessions = sessions
        self._settings = settings
        self._current_row = current_row
        self._blur = blur
        self._queue_worker: Any = None
        self.queue_finished.connect(lambda _ok, text: self.message_posted.emit(text))

    def _record(self) -> GenerationRecord | None:
        row = self._current_row()
        if row is None:
            self.message_posted.emit("No image selected")
            return None
        with self._sessions() as session:
            return generation_record(session, row.image_id)

    def copy_parameters(self) -> bool:
        record = self._record()
        if record is None:
            return False
        text = infotext(record.fields, record.loras, record.raw)
        if text is None:
            self.message_posted.emit("This image has no generation parameters to copy")
            return False
        QGuiApplication.clipboard().setText(text)
        self.message_posted.emit("Copied the generation parameters (paste them into "
                                 "A1111/Forge's prompt box)")
        return True

    def copy_workflow(self) -> bool:
        record = self._record()
        if record is None:
            return False
        found = comfyui_workflow(record.raw)
        if found is None:
            self.message_posted.emit("This image has no ComfyUI workflow")
            return False
        text, kind = found
        QGuiApplication.clipboard().setText(text)
        self.message_posted.emit("Copied the ComfyUI workflow (paste it into ComfyUI)"
                                 if kind == "workflow" else
                                 "Copied the ComfyUI API prompt (no editor workflow was saved)")
        return True

    def queue_in_comfyui(self) -> bool:
        """Start posting the prompt graph; `queue_finished` tells how it went."""
        row = self._current_row()
        if row is not None and not self._blur.file_may_leave(row):
            self.message_posted.emit("Review this flagged image before sending it to ComfyUI")
            return False
        record = self._record()
        if record is None:
            return False
        graph = comfyui_prompt(record.raw)
        if graph is None:
            self.message_posted.emit("This image has no ComfyUI prompt graph to queue")
            return False
        if self._queue_worker is not None:
            self.message_posted.emit("Still sending the previous prompt to ComfyUI…")
            return False
        url = self._settings().comfyui_url
        self.message_posted.emit(f"Sending the prompt to ComfyUI at {url}…")
        # A short job on superqt's shared pool; errors come back as values, not re-raised.
        self._queue_worker = create_worker(
            queue_prompt, url, graph, _start_thread=True,
            _connect={"returned": lambda prompt_id: self._on_queued(True, prompt_id, url),
                      "errored": lambda exc: self._on_queued(False, exc, url)})
        return True

    def _on_queued(self, ok: bool, result: Any, url: str) -> None:
        self._queue_worker = None
        if ok:
            self.queue_finished.emit(True, f"Queued in ComfyUI at {url} (prompt {result})")
        elif isinstance(result, ComfyUIError):
            self.queue_finished.emit(False, f"Not queued: {result}")
        else:
            self.queue_finished.emit(False, f"Not queued: {type(result).__name__}: {result}")

    def on_decisions_written(self, content_ids: Iterable[int]) -> None:
        """After a decision, rating or undo: rewrite those pictures' sidecars (a few small
        files) when the setting is on."""
        settings = self._settings()
        if not settings.sidecar_auto:
            return
        report = write_for_contents(self._sessions, list(content_ids),
                                    settings.sidecar_naming, settings.thresholds.tagger)
        if report.errors:
            self.message_posted.emit(f"Sidecar not written: {report.errors[0]}"
                                     + (f" (+{len(report.errors) - 1} more)"
                                        if len(report.errors) > 1 else ""))


class SharingSettingsPage(QWidget):
    """Settings → Sharing: automatic sidecars, their naming, the ComfyUI address."""

    def __init__(self, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        form = QFormLayout(self)
        self.sidecar_auto_box = QCheckBox("Write an XMP sidecar after every review decision")
        self.sidecar_auto_box.setChecked(settings.sidecar_auto)
        form.addRow("XMP sidecars", self.sidecar_auto_box)
        self.sidecar_naming_combo = QComboBox()
        labels = {"darktable": "NAME.EXT.xmp (darktable, digiKam)",
                  "lightroom": "NAME.xmp (Lightroom)"}
        for naming in NAMINGS:
            self.sidecar_naming_combo.addItem(labels[naming], naming)
        self.sidecar_naming_combo.setCurrentIndex(
            max(0, self.sidecar_naming_combo.findData(settings.sidecar_naming)))
        form.addRow("Sidecar names", self.sidecar_naming_combo)
        self.comfyui_url_edit = QLineEdit(settings.comfyui_url)
        self.comfyui_url_edit.setPlaceholderText("http://127.0.0.1:8188")
        form.addRow("ComfyUI address", self.comfyui_url_edit)
        note = QLabel("“Queue in ComfyUI” sends the image's embedded prompt graph to this "
                      "address; nothing else is ever sent anywhere.")
        note.setObjectName("settingsNote")
        note.setWordWrap(True)
        form.addRow("", note)

    def apply_to(self, settings: Settings) -> None:
        settings.sidecar_auto = self.sidecar_auto_box.isChecked()
        settings.sidecar_naming = self.sidecar_naming_combo.currentData()
        settings.comfyui_url = self.comfyui_url_edit.text().strip() or "http://127.0.0.1:8188"
