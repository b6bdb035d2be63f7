"""Can the desktop app open a window here? Checked before Qt is imported.

Without a display, or without the system libraries of Qt's X11 platform plugin (xcb),
Qt prints a few lines and aborts the process (SIGABRT, a core dump). `display_problem`
finds both cases first so the command line can say what to do instead: install the
packages, or use the headless commands.

The library check loads the xcb plugin itself with the system's dynamic loader, which
resolves every library the plugin needs and names the first that is missing — exact for the
installed PySide6, instead of a list of libraries to keep in step with Qt's releases.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import re
import socket
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

# What README's troubleshooting section tells Debian/Ubuntu users to install.
XCB_PACKAGES = ("libxcb-cursor0 libxkbcommon-x11-0 libxcb-icccm4 libxcb-keysyms1 "
                "libxcb-image0 libxcb-render-util0 libxcb-shape0 libxcb-randr0 "
                "libxcb-xinerama0 libegl1 libfontconfig1 libdbus-1-3")
HEADLESS_HINT = ("the headless commands work without a display: gentriage scan FOLDER, "
                 "gentriage export, gentriage review (see gentriage --help)")
# Platform plugins that need no display server.
_SELF_CONTAINED = {"offscreen", "minimal", "vnc", "linuxfb", "eglfs", "vkkhrdisplay",
                   "minimalegl"}
_MISSING_LIBRARY = re.compile(r"(lib[\w.+-]+\.so[\w.]*): cannot open shared object file")


def xcb_plugin_path() -> Path | None:
    """PySide6's xcb platform plugin, without importing PySide6."""
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        plugin = Path(location) / "Qt" / "plugins" / "platforms" / "libqxcb.so"
        if plugin.is_file():
            return plugin
    return None


def _load(path: Path) -> None:
    ctypes.CDLL(str(path))


def missing_xcb_library(plugin: Path | None,
                        load: Callable[[Path], None] = _load) -> str | None:
    """The first system library the xcb plugin cannot load (e.g. "libxcb-cursor.so.0"), the
    loader's message when it failed for another reason, or None when it loads."""
    if plugin is None:
        return None
    try:
        load(plugin)
    except OSError as exc:
        match = _MISSING_LIBRARY.search(str(exc))
        return match.group(1) if match else str(exc)
    return None


def x_server_answers(display: str) -> bool:
    """False only when nothing listens at `display` (":0", "localhost:10.0"): connection
    refused or no socket. Any other outcome (it answered, a timeout, no permission) is left
    for Qt to judge."""
    match = re.fullmatch(r"(?:unix/)?([^:]*):(\d+)(?:\.\d+)?", display)
    if match is None:
        return True
    host, number = match.group(1), int(match.group(2))
    addresses: list[tuple[socket.AddressFamily, Any]]
    if host in ("", "unix"):
        path = f"/tmp/.X11-unix/X{number}"
        addresses = [(socket.AF_UNIX, "\0" + path), (socket.AF_UNIX, path)]  # abstract first
    else:
        addresses = [(socket.AF_INET, (host, 6000 + number))]
    for family, address in addresses:
        try:
            with socket.socket(family, socket.SOCK_STREAM) as probe:
                probe.settimeout(2.0)
                probe.connect(address)
            return True
        except (ConnectionRefusedError, FileNotFoundError):
            continue
        except OSError:
            return True
    return False


def display_problem(environ: Mapping[str, str] | None = None,
                    platform: str | None = None,
                    missing_library: Callable[[], str | None] | None = None,
                    answers: Callable[[str], bool] = x_server_answers) -> str | None:
    """Why the window cannot open here (a message for the user), or None when it can (or
    when it is not for us to judge: macOS, Windows, a platform plugin the user chose)."""
    env = os.environ if environ is None else environ
    system = sys.platform if platform is None else platform
    if system in ("darwin", "win32", "cygwin"):
        return None  # Qt's cocoa / windows plugins need no extra packages
    chosen = [name.split(":")[0].strip() for name in env.get("QT_QPA_PLATFORM", "").split(";")]
    chosen = [name for name in chosen if name]
    if any(name in _SELF_CONTAINED for name in chosen):
        return None
    wayland = bool(env.get("WAYLAND_DISPLAY"))
    x11 = bool(env.get("DISPLAY"))
    if chosen and all(name == "wayland" for name in chosen):
        return None if wayland else (
            "QT_QPA_PLATFORM=wayland but WAYLAND_DISPLAY is not set (no Wayland session); "
            + HEADLESS_HINT)
    if chosen and "xcb" not in chosen and "wayland" not in chosen:
        return None  # a plugin we do not know: let Qt decide
    if not x11 and not wayland:
        return ("no display: DISPLAY and WAYLAND_DISPLAY are not set, so the window cannot "
                f"open. Run it in a desktop session, or {HEADLESS_HINT}")
    if wayland and "xcb" not in chosen:
        return None  # Qt uses its Wayland plugin (bundled with PySide6)
    if not answers(env["DISPLAY"]):
        return (f"no X server answers at DISPLAY={env['DISPLAY']}, so the window cannot "
                f"open. Start the desktop session (or Xvfb), or {HEADLESS_HINT}")
    missing = (missing_library or (lambda: missing_xcb_library(xcb_plugin_path())))()
    if missing is None:
        return None
    return (f"Qt's X11 platform plugin cannot load {missing}. Install the system libraries "
            f"it needs (Debian/Ubuntu: sudo apt-get install {XCB_PACKAGES}), or "
            f"{HEADLESS_HINT}")
