"""What `gentriage` does before any work: a mistyped command, no display for the window, Qt's
X11 libraries missing. Each ends in one clear line and an exit status, never Qt's abort."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_support import REPO, cli_env

from gentriage.cli import _unknown_command
from gentriage.display import XCB_PACKAGES, display_problem, missing_xcb_library

# Runs main() and reports its status and whether Qt or the desktop package were imported.
PROBE = """
import json, sys
from gentriage.cli import main
try:
    status = main(sys.argv[1:])
except SystemExit as exc:
    status = exc.code
loaded = sorted({name.split('.')[0] for name in sys.modules} & {"PySide6", "desktop"})
print("PROBE" + json.dumps({"status": status, "loaded": loaded}))
"""


def _probe(args: list[str], home: Path, **env: str | None) -> tuple[dict, str]:
    environment = cli_env(home)
    for key, value in env.items():
        if value is None:
            environment.pop(key, None)
        else:
            environment[key] = value
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=REPO, env=environment,
                          capture_output=True, text=True, timeout=120)
    line = next((line for line in proc.stdout.splitlines() if line.startswith("PROBE")), None)
    assert line is not None, f"rc={proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return json.loads(line[len("PROBE"):]), proc.stderr


@pytest.mark.parametrize("typo, meant", [("scna", "scan"), ("exprot", "export"),
                                         ("stat", "stats"), ("reveiw", "review")])
def test_a_mistyped_command_is_named_not_opened_as_a_folder(tmp_path, typo, meant):
    result, stderr = _probe([typo, str(tmp_path / "out")], tmp_path / "home",
                            DISPLAY=None, WAYLAND_DISPLAY=None, QT_QPA_PLATFORM=None)
    assert result == {"status": 2, "loaded": []}
    assert f"unknown command '{typo}' — did you mean '{meant}'?" in stderr
    assert "Traceback" not in stderr


def test_an_existing_folder_with_a_command_like_name_is_a_folder(tmp_path, monkeypatch):
    (tmp_path / "scna").mkdir()
    monkeypatch.chdir(tmp_path)
    assert _unknown_command("scna") is None  # opens the app on it, as asked
    assert _unknown_command("holidays") is None  # far from every command: a folder to open
    assert _unknown_command("scnaa") == "scan"


def test_without_a_display_the_app_says_so_instead_of_aborting(tmp_path):
    folder = tmp_path / "pics"
    folder.mkdir()
    result, stderr = _probe([str(folder)], tmp_path / "home",
                            DISPLAY=None, WAYLAND_DISPLAY=None, QT_QPA_PLATFORM=None)
    assert result == {"status": 1, "loaded": []}  # Qt was never imported: no abort possible
    assert "no display" in stderr and "gentriage scan" in stderr
    assert "Traceback" not in stderr


def test_a_display_nobody_listens_on_is_reported(tmp_path):
    free = next(n for n in range(990, 1100) if not Path(f"/tmp/.X11-unix/X{n}").exists())
    problem = display_problem({"DISPLAY": f":{free}"}, platform="linux",
                              missing_library=lambda: None)
    assert problem is not None and f"DISPLAY=:{free}" in problem


def test_missing_xcb_libraries_are_named_with_the_packages_to_install():
    def loader_without_cursor(_path: Path) -> None:
        # What the dynamic loader says when libxcb-cursor0 is not installed.
        raise OSError("libxcb-cursor.so.0: cannot open shared object file: No such file or "
                      "directory")

    missing = missing_xcb_library(Path("/opt/qt/plugins/platforms/libqxcb.so"),
                                  loader_without_cursor)
    assert missing == "libxcb-cursor.so.0"
    problem = display_problem({"DISPLAY": ":0"}, platform="linux",
                              missing_library=lambda: missing, answers=lambda _d: True)
    assert problem is not None
    assert "libxcb-cursor.so.0" in problem and "libxcb-cursor0" in problem
    assert XCB_PACKAGES in problem and "gentriage scan" in problem


@pytest.mark.parametrize("environ, platform", [
    ({"QT_QPA_PLATFORM": "offscreen"}, "linux"),  # no display needed
    ({"WAYLAND_DISPLAY": "wayland-0"}, "linux"),  # Qt's Wayland plugin
    ({}, "darwin"),  # cocoa
    ({"DISPLAY": ":0"}, "linux"),  # X11 with every library present
])
def test_no_false_alarm_where_the_window_can_open(environ, platform):
    assert display_problem(environ, platform=platform, missing_library=lambda: None,
                           answers=lambda _d: True) is None


def test_the_installed_xcb_plugin_is_probed_for_real():
    """On this machine: the loader either loads PySide6's xcb plugin or names a library."""
    from gentriage.display import xcb_plugin_path

    plugin = xcb_plugin_path()
    if plugin is None:
        pytest.skip("this PySide6 build has no xcb plugin")
    missing = missing_xcb_library(plugin)
    assert missing is None or missing.startswith("lib"), missing


def test_non_utf8_folder_names_for_the_app_are_a_usage_error(tmp_path):
    if sys.platform == "darwin":
        pytest.skip("macOS file names are always UTF-8")
    folder = os.fsencode(tmp_path) + b"/caf\xe9"
    proc = subprocess.run([sys.executable, "-m", "gentriage", folder], cwd=REPO,
                          env={**cli_env(tmp_path / "home"), "QT_QPA_PLATFORM": "offscreen"},
                          capture_output=True, timeout=120)
    assert proc.returncode == 2
    stderr = proc.stderr.decode("utf-8")  # strict: what was printed is valid UTF-8
    assert "not valid UTF-8" in stderr and "\\xe9" in stderr and "Traceback" not in stderr
