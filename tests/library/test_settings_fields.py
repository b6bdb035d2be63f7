"""Keys the app writes to settings.json are fields of Settings, not unknown extras."""

from __future__ import annotations

import json

from library.settings import Settings


def test_shortcuts_and_window_layout_are_fields_and_round_trip(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({
        "shortcuts": {"review.accept": ["Y"]},
        "window": {"geometry": "AdnQywAD", "panes": [170, 330, 280]},
        "watched_folders": ["/old"],  # written by older versions, no longer a setting
        "future_option": 3,
    }), encoding="utf-8")
    settings = Settings.load(path)
    assert settings.shortcuts == {"review.accept": ["Y"]}
    assert settings.window["panes"] == [170, 330, 280]
    assert set(settings.extra) == {"watched_folders", "future_option"}  # kept, untouched
    assert not hasattr(settings, "watched_folders")
    settings.save(path)
    again = json.loads(path.read_text(encoding="utf-8"))
    assert again["shortcuts"] == {"review.accept": ["Y"]}
    assert again["future_option"] == 3


def test_defaults_are_empty():
    settings = Settings()
    assert settings.shortcuts == {} and settings.window == {} and settings.extra == {}
