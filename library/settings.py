"""User settings shared by the app and the command line (a JSON file, no Qt).

The app's settings dialog edits the same file, so thresholds a moderator sets in the window
apply to `gentriage scan` too. Unknown keys are preserved, missing keys take defaults, and a
corrupt file falls back to defaults (with the broken file kept beside it) rather than
stopping the program.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from inference.catalog import DEFAULT_ENABLED

log = logging.getLogger(__name__)


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
    watched_folders: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # keys this version does not know

    @classmethod
    def load(cls, path: Path) -> "Settings":
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(raw, dict):
                raise ValueError("settings file is not a JSON object")
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError) as exc:
            log.warning("settings file %s is unreadable (%s); using defaults", path, exc)
            try:
                path.replace(path.with_suffix(".broken.json"))
            except OSError:
                pass
            return cls()
        return cls.from_dict(raw)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "Settings":
        known = {f.name for f in fields(cls)} - {"extra", "thresholds"}
        settings = cls(extra={k: v for k, v in raw.items() if k not in known | {"thresholds"}})
        for name in known:
            if name in raw:
                default = getattr(settings, name)
                value = raw[name]
                if type(value) is type(default) or (isinstance(default, float) and isinstance(value, int)):
                    setattr(settings, name, value)
        tr = raw.get("thresholds")
        if isinstance(tr, dict):
            for f in fields(Thresholds):
                value = tr.get(f.name)
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    setattr(settings.thresholds, f.name, float(value))
        return settings

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        extra = data.pop("extra")
        return {**extra, **data}

    def save(self, path: Path) -> None:
        """Write atomically: a crash mid-write never leaves a half-written settings file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)
