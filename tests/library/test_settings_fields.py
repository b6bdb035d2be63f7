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


def test_an_analyser_added_later_is_switched_on_for_existing_settings(tmp_path):
    """A settings file from before `clip` existed lists the analysers it had: clip (on by
    default) joins them, style (opt-in) does not, and an analyser the person switched off
    stays off."""
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"enabled_analysers": ["nsfw-default", "coherence"]}),
                    encoding="utf-8")
    settings = Settings.load(path)
    assert settings.enabled_analysers == ["nsfw-default", "coherence", "clip"]
    settings.enabled_analysers.remove("clip")  # switched off in Settings afterwards
    settings.save(path)
    assert Settings.load(path).enabled_analysers == ["nsfw-default", "coherence"]
    # A garbled list of known analysers changes nothing.
    path.write_text(json.dumps({"enabled_analysers": ["coherence"], "known_analysers": 5}),
                    encoding="utf-8")
    assert Settings.load(path).enabled_analysers == ["coherence"]
