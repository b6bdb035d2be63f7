"""Suite-wide setup: Qt offscreen, and no test ever touches the user's real data."""

import os

# Before any test module can import Qt.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Model code must never try the network from the tests.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch):
    """Every test gets its own GENTRIAGE_HOME, so databases, thumbnails, settings and the
    default models folder land in a temporary directory."""
    home = tmp_path_factory.mktemp("gentriage-home")
    monkeypatch.setenv("GENTRIAGE_HOME", str(home))
    monkeypatch.delenv("GENTRIAGE_DB", raising=False)
    monkeypatch.delenv("GENTRIAGE_MODELS_DIR", raising=False)
    # The style analyser also looks in torch hub's cache, which may hold the user's VGG19.
    monkeypatch.setenv("TORCH_HOME", str(home / "torch-home"))
    return home
