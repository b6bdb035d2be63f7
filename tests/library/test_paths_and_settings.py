import json

from library import paths
from library.settings import Settings, Thresholds


def test_gentriage_home_holds_everything(isolated_home):
    loc = paths.Locations.resolve()
    for p in (loc.database, loc.models, loc.thumbnails, loc.settings):
        assert isolated_home in p.parents


def test_explicit_beats_environment_beats_home(isolated_home, monkeypatch, tmp_path):
    monkeypatch.setenv("GENTRIAGE_DB", str(tmp_path / "env.sqlite3"))
    monkeypatch.setenv("GENTRIAGE_MODELS_DIR", str(tmp_path / "env-models"))
    assert paths.database_path() == tmp_path / "env.sqlite3"
    assert paths.database_path(tmp_path / "cli.sqlite3") == tmp_path / "cli.sqlite3"
    assert paths.models_dir() == tmp_path / "env-models"
    assert paths.models_dir(str(tmp_path / "m")) == tmp_path / "m"


def test_without_home_the_platform_user_dirs_are_used(monkeypatch):
    monkeypatch.delenv("GENTRIAGE_HOME")
    assert "GenTriage" in str(paths.database_path())
    assert "GenTriage" in str(paths.thumbnails_dir())


def test_settings_round_trip_and_keep_unknown_keys(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"blur_mode": "cover", "future_option": [1, 2],
                                "thresholds": {"nsfw_vit": 0.65}}))
    settings = Settings.load(path)
    assert settings.blur_mode == "cover"
    assert settings.thresholds.nsfw_vit == 0.65
    assert settings.thresholds.coherence == Thresholds().coherence
    settings.auto_advance = False
    settings.save(path)
    saved = json.loads(path.read_text())
    assert saved["future_option"] == [1, 2] and saved["auto_advance"] is False
    assert Settings.load(path).to_dict() == settings.to_dict()


def test_wrongly_typed_values_fall_back_to_defaults(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"blur_radius": "huge", "thresholds": {"coherence": True}}))
    settings = Settings.load(path)
    assert settings.blur_radius == Settings().blur_radius
    assert settings.thresholds.coherence == Thresholds().coherence


def test_a_corrupt_settings_file_is_kept_aside_and_defaults_used(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text("{not json")
    assert Settings.load(path) == Settings()
    assert (tmp_path / "settings.broken.json").read_text() == "{not json"


def test_the_reviewer_setting_is_kept_when_valid_and_dropped_when_not(tmp_path):
    from library.settings import Settings

    assert Settings().reviewer == ""  # the OS user name (db.review.local_reviewer)
    assert Settings.from_dict({"reviewer": "ann"}).reviewer == "ann"
    for bad in ("x" * 65, "tab\there", "   "):
        assert Settings.from_dict({"reviewer": bad}).reviewer == ""
    path = tmp_path / "settings.json"
    Settings(reviewer="bob").save(path)
    assert Settings.load(path).reviewer == "bob"


def test_a_database_url_is_a_location_and_a_bad_one_a_problem(monkeypatch):
    from sqlalchemy import URL

    from library.paths import Locations

    monkeypatch.setenv("GENTRIAGE_DB", "postgresql://ann@dbhost/triage")
    locations = Locations.resolve()
    assert isinstance(locations.database, URL)
    assert locations.database.drivername == "postgresql+psycopg"
    assert locations.problem() is None
    bad = Locations.resolve("oracle://ann@dbhost/triage")
    assert "not 'oracle'" in bad.problem()
