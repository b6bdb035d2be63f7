"""The real thing: `gentriage FOLDER` on a real X server (Xvfb), checked by a screenshot.

Everything else in tests/desktop runs on Qt's offscreen platform; this test proves the app
starts as a user starts it — console command, xcb platform plugin, window manager-less X
display — and that the grid really paints the folder's images. It skips, with the reason,
when Xvfb or ImageMagick's `import` is not installed, or when Qt's X11 plugin cannot load its
system libraries (libxcb-cursor0 & co; .ci/run installs them all) — the same check
(gentriage.display) that makes `gentriage FOLDER` say what is missing instead of aborting.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gentriage.display import display_problem

pytestmark = pytest.mark.skipif(
    not (shutil.which("Xvfb") and shutil.which("import")),
    reason="needs Xvfb and ImageMagick (apt-get install xvfb imagemagick)")

# Saturated colours that appear nowhere in the app's chrome: finding them on screen means the
# thumbnails of these files were painted.
COLOURS = [(230, 20, 20), (20, 200, 40), (30, 60, 230), (240, 200, 0)]


@pytest.fixture
def x_display():
    read, write = os.pipe()
    # -noreset: by default Xvfb resets whenever its last client disconnects (here: the
    # display probe below), and a client connecting during the reset is refused.
    server = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "1280x800x24",
                               "-nolisten", "tcp", "-noreset"], pass_fds=(write,),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    with os.fdopen(read) as pipe:
        number = pipe.readline().strip()  # Xvfb writes the display number once it is ready
    if not number:
        server.kill()
        pytest.skip("Xvfb did not start")
    problem = display_problem({"DISPLAY": f":{number}", "QT_QPA_PLATFORM": "xcb"})
    if problem is not None:
        server.terminate()
        server.wait(10)
        pytest.skip(problem)
    yield f":{number}"
    server.terminate()
    server.wait(10)


def _screenshot(display: str, path: Path) -> Image.Image | None:
    done = subprocess.run(["import", "-display", display, "-window", "root", str(path)],
                          capture_output=True, timeout=30)
    if done.returncode != 0 or not path.exists():
        return None
    return Image.open(path).convert("RGB")


def _colours_found(shot: Image.Image) -> set[tuple[int, int, int]]:
    pixels = np.asarray(shot.reduce(4), dtype=np.int16).reshape(-1, 3)  # thumbnails >> 4 px
    return {c for c in COLOURS if (np.abs(pixels - c).max(axis=1) <= 6).any()}


def test_gentriage_folder_opens_a_real_window_showing_the_grid(tmp_path, x_display):
    folder = tmp_path / "outputs"
    folder.mkdir()
    for i, colour in enumerate(COLOURS):
        Image.new("RGB", (320, 320), colour).save(folder / f"ComfyUI_{i:05d}_.png")
    env = {**os.environ, "DISPLAY": x_display, "QT_QPA_PLATFORM": "xcb",
           "GENTRIAGE_HOME": str(tmp_path / "home")}
    app = subprocess.Popen([sys.executable, "-m", "gentriage", str(folder)], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        found: set[tuple[int, int, int]] = set()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and app.poll() is None:
            shot = _screenshot(x_display, tmp_path / "screen.png")
            if shot is not None:
                found = _colours_found(shot)
                if found == set(COLOURS):
                    break
            time.sleep(0.5)  # polling an external X server: there is no signal to await
        output = b""
        if app.poll() is not None:
            output = app.stdout.read() if app.stdout else b""
        assert app.poll() is None, f"the app exited: {output.decode(errors='replace')[-3000:]}"
        assert found == set(COLOURS), f"thumbnails painted: {sorted(found)} of {COLOURS}"
    finally:
        app.send_signal(signal.SIGTERM)
        try:
            app.wait(20)
        except subprocess.TimeoutExpired:
            app.kill()
