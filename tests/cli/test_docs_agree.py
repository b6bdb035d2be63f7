"""Documentation that points somewhere must point at something real, and say what the code
does: file paths named in docstrings, comments and the README exist; `is:analysed` is
described as the code computes it."""

from __future__ import annotations

import re

import pytest
from cli_support import REPO

SOURCES = [p for p in REPO.rglob("*.py")
           if ".venv" not in p.parts and p.name != "test_docs_agree.py"] + [REPO / "README.md"]
# Repository paths as they are cited: tests/…py, docs/…, any top-level package's module;
# not a pattern such as `benchmarks/bench_<topic>.py`.
_CITED = re.compile(r"(?<![\w./-])((?:tests|docs|db|library|inference|gentriage|desktop|"
                    r"benchmarks)/[\w./-]*\w)(?![\w./<*-])")


def _cited_paths() -> dict[str, list[str]]:
    cited: dict[str, list[str]] = {}
    for source in SOURCES:
        for match in _CITED.finditer(source.read_text(encoding="utf-8")):
            cited.setdefault(match.group(1), []).append(str(source.relative_to(REPO)))
    return cited


def _exists(cited: str) -> bool:
    path = REPO / cited
    return path.exists() or path.with_suffix(".py").exists()  # a file, folder or module


def test_every_cited_repository_path_exists():
    missing = {path: where for path, where in _cited_paths().items() if not _exists(path)}
    assert missing == {}, "stale references (path: cited in): " + repr(missing)


def test_the_readme_describes_is_analysed_as_the_flags_compute_it():
    from db.flags import verdict
    from inference.catalog import NSFW_ANALYSERS
    from library.settings import Thresholds

    class Result:
        def __init__(self, analyser: str) -> None:
            self.analyser, self.error, self.label, self.score = analyser, None, "sfw", 0.0
            self.scores: dict[str, float] = {}

    for key in NSFW_ANALYSERS:  # any one NSFW analyser's verdict makes it "analysed"
        assert verdict([Result(key)], Thresholds(), set(NSFW_ANALYSERS))[2], key
    row = next(line for line in (REPO / "README.md").read_text().splitlines()
               if line.startswith("| `is:analysed`"))
    assert "an NSFW analyser's verdict is present" in row
    assert "default" not in row


@pytest.mark.parametrize("name", ["docs/filters.md", "tests/cli/test_cli_imports.py"])
def test_the_reference_finder_sees_stale_paths(tmp_path, name):
    """The check above is not vacuous: these two stale references were in the code."""
    assert _CITED.search(f"The syntax ({name}):").group(1) == name
    assert not _exists(name)
