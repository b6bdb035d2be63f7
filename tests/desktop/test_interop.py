"""The real window's way back to the generator: what "Copy generation parameters" and
"Copy ComfyUI workflow" put on the clipboard, "Queue in ComfyUI" against a local stub, the
privacy rule on dragging files out and on queueing, automatic sidecars after a decision,
and the Sharing settings page."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from comfy_stub import comfy_stub
from fixtures_app import build_app
from PIL import Image as PILImage
from PIL.PngImagePlugin import PngInfo
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from sqlalchemy import select

from db.engine import session_factory
from db.schema import Content, Image
from db.transaction import write_transaction
from desktop.settings_dialog import SettingsDialog
from library.settings import Settings
from library.sidecars import rating_in

A1111_TEXT = ("a red fox\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, CFG scale: 7, "
              "Seed: 42, Size: 48x32, Model hash: abc, Model: dream, Version: v1.10.1")
API_GRAPH = {
    "3": {"class_type": "KSampler", "inputs": {
        "seed": 7, "steps": 12, "cfg": 5.0, "sampler_name": "euler_ancestral",
        "scheduler": "karras", "positive": ["6", 0], "negative": ["7", 0], "model": ["4", 0],
        "latent_image": ["5", 0]}},
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "base.safetensors"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 48, "height": 32}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a blue bird"}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "ugly"}},
}
WORKFLOW = {"last_node_id": 7, "nodes": [{"id": 3, "type": "KSampler"}], "links": []}


def write(folder: Path, name: str, colour: tuple[int, int, int], age: int,
          texts: dict[str, str]) -> Path:
    info = PngInfo()
    for key, value in texts.items():
        info.add_text(key, value)
    path = folder / name
    PILImage.new("RGB", (48, 32), colour).save(path, "PNG", pnginfo=info)
    os.utime(path, ns=(1_700_000_000_000_000_000 + age * 10**9,) * 2)
    return path


@pytest.fixture
def app(qtbot, tmp_path):
    folder = tmp_path / "outputs"
    folder.mkdir()
    write(folder, "a1111.png", (200, 10, 10), 3, {"parameters": A1111_TEXT})
    write(folder, "comfy.png", (10, 200, 10), 2, {"prompt": json.dumps(API_GRAPH),
                                                  "workflow": json.dumps(WORKFLOW)})
    write(folder, "plain.png", (10, 10, 200), 1, {})
    application, engine = build_app(qtbot, tmp_path, [folder], expect_rows=3)
    yield application
    application.shutdown()
    application.window.close()
    engine.dispose()


def select_name(app, name: str) -> None:
    for row in range(app.model.rowCount()):
        if app.model.grid_row(row).name == name:
            app.window.controller.select_row(row)
            return
    raise AssertionError(f"{name} not in the grid")


def trigger(app, action_id: str) -> None:
    app.window.registry.action(action_id).trigger()


def set_content(app, name: str, **values) -> None:
    with write_transaction(session_factory(app.engine)) as session:
        content_id = session.scalar(select(Image.content_id).where(Image.name == name))
        for key, value in values.items():
            setattr(session.get(Content, content_id), key, value)
    app.model.reload()


def test_copy_generation_parameters_and_workflow(qtbot, app):
    clipboard = QGuiApplication.clipboard()
    select_name(app, "a1111.png")
    trigger(app, "edit.copy_parameters")
    assert clipboard.text() == A1111_TEXT  # an A1111 image: its own text, verbatim

    select_name(app, "comfy.png")
    trigger(app, "edit.copy_parameters")
    assert clipboard.text() == ("a blue bird\nNegative prompt: ugly\nSteps: 12, Sampler: "
                                "Euler a, Schedule type: Karras, CFG scale: 5, Seed: 7, "
                                "Size: 48x32, Model: base")
    trigger(app, "edit.copy_workflow")
    assert json.loads(clipboard.text()) == WORKFLOW

    clipboard.setText("unchanged")
    select_name(app, "plain.png")
    with qtbot.waitSignal(app.window.interop.message_posted) as message:
        trigger(app, "edit.copy_workflow")
    assert message.args == ["This image has no ComfyUI workflow"]
    trigger(app, "edit.copy_parameters")
    assert clipboard.text() == "unchanged"


def test_actions_are_in_the_menus_with_their_keys(app):
    texts = [a.text() for menu in app.window.menuBar().findChildren(type(
        app.window.menuBar().actions()[0].menu())) for a in menu.actions()]
    assert {"Copy generation parameters", "Copy ComfyUI workflow", "Queue in ComfyUI"} <= \
        set(texts)
    assert app.window.registry.shortcut_text("edit.copy_parameters")


def test_queue_in_comfyui_posts_the_graph_and_respects_privacy(qtbot, app):
    with comfy_stub() as stub:
        app.window.settings.comfyui_url = stub.url
        select_name(app, "comfy.png")
        with qtbot.waitSignal(app.window.interop.queue_finished, timeout=20_000) as done:
            trigger(app, "file.queue_comfyui")
        assert done.args[0] is True and "abc-123" in done.args[1]
        assert stub.received == [("/prompt", {"prompt": API_GRAPH,
                                              "client_id": stub.received[0][1]["client_id"]})]

        set_content(app, "comfy.png", flagged=True, flag_nsfw=True)  # nobody reviewed it
        select_name(app, "comfy.png")
        with qtbot.waitSignal(app.window.interop.message_posted) as message:
            trigger(app, "file.queue_comfyui")
        assert "Review this flagged image" in message.args[0]
        assert len(stub.received) == 1

        stub.status, stub.answer = 400, {"error": {"message": "Invalid prompt"}}
        set_content(app, "comfy.png", decision="accepted")
        select_name(app, "comfy.png")
        with qtbot.waitSignal(app.window.interop.queue_finished, timeout=20_000) as done:
            trigger(app, "file.queue_comfyui")
        assert done.args == [False, "Not queued: ComfyUI refused the prompt: Invalid prompt"]


def test_flagged_unreviewed_files_are_not_dragged_out(app):
    def dragged(name: str) -> list[str]:
        row = next(r for r in range(app.model.rowCount())
                   if app.model.grid_row(r).name == name)
        return [Path(u.toLocalFile()).name
                for u in app.model.mimeData([app.model.index(row)]).urls()]

    assert dragged("comfy.png") == ["comfy.png"]  # the original file, workflow inside
    set_content(app, "comfy.png", flagged=True, flag_nsfw=True)
    assert dragged("comfy.png") == []
    app.window.blur.set_session_unblurred(True)  # B does not let the file out
    assert dragged("comfy.png") == []
    set_content(app, "comfy.png", decision="accepted")
    assert dragged("comfy.png") == ["comfy.png"]
    set_content(app, "comfy.png", decision="rejected")
    assert dragged("comfy.png") == []


def test_sidecars_follow_every_decision_when_the_setting_is_on(qtbot, app):
    app.window.settings.sidecar_auto = True
    select_name(app, "a1111.png")
    sidecar = Path(app.window.current_grid_row().path + ".xmp")
    qtbot.keyClick(app.view, Qt.Key.Key_P)  # accept (the cursor then moves on)
    assert 'xmp:Label="Green"' in sidecar.read_text(encoding="utf-8")
    select_name(app, "a1111.png")
    qtbot.keyClick(app.view, Qt.Key.Key_4)
    assert rating_in(sidecar.read_bytes()) == 4
    select_name(app, "a1111.png")
    qtbot.keyClick(app.view, Qt.Key.Key_X)
    assert rating_in(sidecar.read_bytes()) == -1
    qtbot.keyClick(app.view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert rating_in(sidecar.read_bytes()) == 4  # undo rewrites it too
    assert not (sidecar.parent / "comfy.png.xmp").exists()  # only the decided picture

    app.window.settings.sidecar_auto = False
    select_name(app, "plain.png")
    qtbot.keyClick(app.view, Qt.Key.Key_P)
    assert not (sidecar.parent / "plain.png.xmp").exists()


def test_sharing_settings_page_round_trip(qtbot):
    dialog = SettingsDialog(Settings())
    qtbot.addWidget(dialog)
    page = dialog.sharing_page
    assert not page.sidecar_auto_box.isChecked()
    assert page.comfyui_url_edit.text() == "http://127.0.0.1:8188"
    page.sidecar_auto_box.setChecked(True)
    page.sidecar_naming_combo.setCurrentIndex(page.sidecar_naming_combo.findData("lightroom"))
    page.comfyui_url_edit.setText("http://192.0.2.1:9000 ")
    result = dialog.result_settings()
    assert (result.sidecar_auto, result.sidecar_naming, result.comfyui_url) == (
        True, "lightroom", "http://192.0.2.1:9000")
    assert Settings.from_dict(result.to_dict()).sidecar_naming == "lightroom"
