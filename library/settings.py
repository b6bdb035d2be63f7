"""User settings shared by the app and the command line (a JSON file, no Qt).

The app's settings dialog edits the same file, so thresholds a moderator sets in the window
apply to `gentriage scan` too. Unknown keys are preserved, missing keys take defaults, and a
corrupt file falls back to defaults (with the broken file kept beside it) rather than
stopping the program. Each known key is validated on its own (`_VALID`): a value of the wrong
type or out of range (a NaN threshold, a number in the analyser list) is replaced by that
key's default with a warning naming the key, and the other keys keep their values. The file
is written private to the user (0600).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from db.private_files import write_private_text
from db.review import reviewer_problem
from inference.catalog import ANALYSER_KEYS, DEFAULT_ENABLED
from library.user_files import NotARegularFileError, open_regular_file

log = logging.getLogger(__name__)

# A settings file is a few kilobytes; anything far larger is not one (and is not read whole).
MAX_SETTINGS_BYTES = 4 * 1024 * 1024


@dataclass
class Thresholds:
    """When an analyser's verdict flags an image (README: "Flags and thresholds")."""

    nsfw_default: float = 0.7  # open_nsfw P(nsfw); Yahoo: < 0.2 safe, > 0.8 very likely NSFW
    nsfw_vit: float = 0.5  # Falconsai P(nsfw)
    safety_checker: float = 0.0  # flag when any concept margin exceeds this (upstream rule: > 0)
    coherence: float = 0.5  # P(incoherent) + P(semi-incoherent)
    tagger: float = 0.2  # JTP tag probability kept as a tag (upstream recommendation)


@dataclass
class Settings:
    enabled_analysers: list[str] = field(default_factory=lambda: list(DEFAULT_ENABLED))
    device: str = "auto"
    thresholds: Thresholds = field(default_factory=Thresholds)
    blur_mode: str = "blur"  # "blur" or "cover"
    blur_radius: int = 48
    rejected_action: str = "mark"  # "mark", "move", "trash"
    rejected_folder: str = ""
    auto_advance: bool = True
    theme: str = "system"  # "system", "light", "dark"
    thumbnail_size: int = 192
    models_dir: str = ""
    # Interop (library/sidecars.py, desktop/interop.py): write XMP sidecars after every
    # review decision; their naming ("darktable": NAME.EXT.xmp, "lightroom": NAME.xmp); the
    # ComfyUI server "Queue in ComfyUI" posts to (the only network use besides downloads).
    sidecar_auto: bool = False
    sidecar_naming: str = "darktable"
    comfyui_url: str = "http://127.0.0.1:8188"
    # Who the review log names for this app's decisions (several reviewers on one library:
    # undo and redo are per reviewer, db.review); empty: the OS user name. `--user` wins.
    reviewer: str = ""
    # Key rebindings that differ from the defaults: action id -> key sequences (the app's
    # Settings -> Keys; desktop.actions.ActionRegistry.overrides()).
    shortcuts: dict[str, list[str]] = field(default_factory=dict)
    # The main window's last geometry and pane widths ({"geometry": base64, "panes": [...]}),
    # restored at the next start.
    window: dict[str, Any] = field(default_factory=dict)
    # The analysers this settings file has been offered. An analyser added by a later version
    # (and on by default) is switched on for existing users too: `enabled_analysers` alone
    # cannot tell "switched off" from "did not exist yet".
    known_analysers: list[str] = field(default_factory=lambda: list(ANALYSER_KEYS))
    extra: dict[str, Any] = field(default_factory=dict)  # keys this version does not know

    @classmethod
    def load(cls, path: Path) -> Settings:
        try:
            raw = json.loads(_read_settings_file(path))
            if not isinstance(raw, dict):
                raise ValueError("settings file is not a JSON object")
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError, RecursionError) as exc:
            # RecursionError: json's parser recurses once per nesting level.
            reason = "nested too deeply" if isinstance(exc, RecursionError) else exc
            log.warning("settings file %s is unreadable (%s); using defaults", path, reason)
            if path.is_file():  # keep it for the user to look at; never move a pipe or folder
                try:
                    path.replace(path.with_suffix(".broken.json"))
                except OSError:
                    pass
            return cls()
        return cls.from_dict(raw)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Settings:
        known = {f.name for f in fields(cls)} - {"extra", "thresholds"}
        settings = cls(extra={k: v for k, v in raw.items() if k not in known | {"thresholds"}})
        for name in known:
            if name in raw:
                default = getattr(settings, name)
                value = raw[name]
                same_type = type(value) is type(default) or (
                    isinstance(default, float) and isinstance(value, int)
                    and not isinstance(value, bool))
                check = _VALID.get(name)
                if same_type and (check is None or check(value)):
                    setattr(settings, name, value)
                else:
                    _warn_invalid(name, value, default)
        offered = raw.get("known_analysers") if "known_analysers" in raw else LEGACY_ANALYSERS
        if "enabled_analysers" in raw and isinstance(offered, (list, tuple)) \
                and _is_key_list(list(offered)):
            new = [k for k in DEFAULT_ENABLED if k not in offered]
            if new:
                log.info("settings: switching on the new analyser(s) %s", ", ".join(new))
                settings.enabled_analysers = [k for k in ANALYSER_KEYS if k in new
                                              or k in settings.enabled_analysers]
        settings.known_analysers = list(ANALYSER_KEYS)
        unknown = [k for k in settings.enabled_analysers if k not in ANALYSER_KEYS]
        if unknown:  # e.g. written by a newer version with another analyser
            log.warning("settings: enabled_analysers names unknown analyser(s) %s; ignored",
                        ", ".join(map(repr, unknown)))
            settings.enabled_analysers = [k for k in settings.enabled_analysers
                                          if k in ANALYSER_KEYS]
        tr = raw.get("thresholds")
        if isinstance(tr, dict):
            for f in fields(Thresholds):
                if f.name not in tr:
                    continue
                value = tr[f.name]
                low, high = THRESHOLD_RANGES[f.name]
                if (isinstance(value, (int, float)) and not isinstance(value, bool)
                        and math.isfinite(value) and low <= value <= high):
                    setattr(settings.thresholds, f.name, float(value))
                else:
                    _warn_invalid(f"thresholds.{f.name}", value,
                                  getattr(settings.thresholds, f.name))
        elif "thresholds" in raw:
            _warn_invalid("thresholds", tr, "the default thresholds")
        return settings

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        extra = data.pop("extra")
        return {**extra, **data}

    def save(self, path: Path) -> None:
        """Write atomically (a crash mid-write never leaves a half-written settings file), in
        a file only the user can read."""
        write_private_text(path, json.dumps(self.to_dict(), indent=2, sort_keys=True))


# Allowed range of each threshold: probabilities are 0..1; the safety checker's margin is a
# cosine-similarity difference, -1..1. A NaN or infinite threshold would silently flag
# nothing (every comparison with NaN is false), so it is refused like any other bad value.
THRESHOLD_RANGES: dict[str, tuple[float, float]] = {
    "nsfw_default": (0.0, 1.0), "nsfw_vit": (0.0, 1.0), "safety_checker": (-1.0, 1.0),
    "coherence": (0.0, 1.0), "tagger": (0.0, 1.0)}


def _is_key_list(value: list[Any]) -> bool:
    # Anything but strings: the whole list falls back to the default (every analyser on),
    # never to "fewer analysers than asked", which would flag less.
    return all(isinstance(key, str) for key in value)


# Value checks beyond the type (the type must match the default's already).
# The analysers of the versions that wrote no `known_analysers` (before clip and style).
LEGACY_ANALYSERS = ("nsfw-default", "coherence", "nsfw-vit", "safety-checker", "aesthetic",
                    "tagger-jtp")

_VALID: dict[str, Callable[[Any], bool]] = {
    "enabled_analysers": _is_key_list,
    "known_analysers": _is_key_list,
    "blur_mode": lambda v: v in ("blur", "cover"),
    "blur_radius": lambda v: 1 <= v <= 512,
    "rejected_action": lambda v: v in ("mark", "move", "trash"),
    "theme": lambda v: v in ("system", "light", "dark"),
    "thumbnail_size": lambda v: 32 <= v <= 2048,
    "device": lambda v: 0 < len(v) <= 64,
    "reviewer": lambda v: v == "" or reviewer_problem(v) is None,
}


def _warn_invalid(key: str, value: Any, default: Any) -> None:
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    log.warning("settings: ignoring %s = %s (not a valid value); using %r", key, shown,
                default)


def _read_settings_file(path: Path) -> str:
    """The file's text; ValueError unless it is a regular file of a sane size (a FIFO named
    settings.json must not hang the program, library.user_files)."""
    try:
        handle = open_regular_file(path)
    except NotARegularFileError as exc:
        raise ValueError(exc.strerror) from exc
    with handle:
        if os.fstat(handle.fileno()).st_size > MAX_SETTINGS_BYTES:
            raise ValueError(f"larger than {MAX_SETTINGS_BYTES // (1024 * 1024)} MiB")
        return handle.read(MAX_SETTINGS_BYTES + 1).decode("utf-8")
