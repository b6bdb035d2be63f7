"""`gentriage search` and `gentriage similar`: JSON lines in descending score, the picture
itself and its other files left out, filters, and exit 1 with a message (no traceback) when
the CLIP weights or the embeddings are missing."""

from __future__ import annotations

import json

import pytest
from cli_support import run_cli
from search_support import SearchLibrary, build_search_library


@pytest.fixture(autouse=True)
def _no_hf_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path_factory.getbasetemp() / "empty-hf-cache"))


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> SearchLibrary:
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_CACHE", str(tmp_path_factory.getbasetemp() / "empty-hf-cache"))
    try:
        return build_search_library(tmp_path_factory.mktemp("cli-search"))
    finally:
        mp.undo()


def _args(library: SearchLibrary, *args: str) -> list[str]:
    return [*args, "--db", str(library.db), "--models-dir", str(library.models)]


def _json_lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def test_search_prints_json_lines_best_first(library, home):
    result = run_cli(_args(library, "search", "a red umbrella", "--json"), home)
    assert result.returncode == 0, result.stderr
    rows = _json_lines(result.stdout)
    assert len(rows) == 8  # every file (7 pictures, one of them in two files)
    assert all(set(r) == {"path", "score"} for r in rows)
    scores = [r["score"] for r in rows]
    assert scores == sorted(scores, reverse=True)
    limited = _json_lines(run_cli(_args(library, "search", "a red umbrella", "--json",
                                        "--limit", "3"), home).stdout)
    assert limited == rows[:3]


def test_similar_lists_the_re_encoded_copy_first_and_never_the_picture(library, home):
    result = run_cli(_args(library, "similar", str(library.pictures[0]), "--json"), home)
    assert result.returncode == 0, result.stderr
    paths = [r["path"] for r in _json_lines(result.stdout)]
    assert paths[0] == str(library.copy)
    assert str(library.pictures[0]) not in paths
    # The duplicate's content: neither of its two files is listed for it.
    dup = _json_lines(run_cli(_args(library, "similar", str(library.duplicate), "--json"),
                              home).stdout)
    assert {r["path"] for r in dup}.isdisjoint({str(library.duplicate),
                                                str(library.pictures[1])})
    plain = run_cli(_args(library, "similar", str(library.pictures[0]), "--limit", "2"), home)
    lines = plain.stdout.splitlines()
    assert len(lines) == 2 and lines[0].split(maxsplit=1)[1] == str(library.copy)


def test_filter_narrows_the_results(library, home):
    result = run_cli(_args(library, "search", "anything", "--json", "--filter",
                           f'folder:"{library.folder}" prompt:zzz'), home)
    assert result.returncode == 0 and _json_lines(result.stdout) == []
    bad = run_cli(_args(library, "search", "x", "--filter", "nonsense:1"), home)
    assert bad.returncode == 2 and "bad --filter" in bad.stderr


def test_missing_weights_exit_1_with_what_to_do(library, home, tmp_path):
    for command in (["search", "a cat"], ["similar", str(library.pictures[0])]):
        result = run_cli([*command, "--db", str(library.db), "--models-dir",
                          str(tmp_path / "no-models")], home)
        assert result.returncode == 1
        assert "openai/clip-vit-large-patch14" in result.stderr
        assert "gentriage models" in result.stderr
        assert "Traceback" not in result.stderr and result.stdout == ""


def test_missing_embeddings_and_unknown_paths_exit_1(tmp_path, home):
    bare = build_search_library(tmp_path, embed=False)
    result = run_cli(_args(bare, "search", "a cat"), home)
    assert result.returncode == 1
    assert "no picture has a CLIP embedding yet" in result.stderr
    assert "gentriage models" in result.stderr and "Traceback" not in result.stderr
    unknown = run_cli(_args(bare, "similar", str(tmp_path / "nowhere.png")), home)
    assert unknown.returncode == 1 and "not in the library" in unknown.stderr


def test_export_ranks_a_like_term_and_says_when_it_cannot(library, home, tmp_path):
    result = run_cli(_args(library, "export", "--format", "jsonl", "--filter",
                           f"similar:{library.image_ids()['p0.png']}"), home)
    assert result.returncode == 0, result.stderr
    paths = [r["path"] for r in _json_lines(result.stdout)]
    assert paths[0] == str(library.copy) and str(library.pictures[0]) not in paths
    failed = run_cli(["export", "--filter", "like:cat", "--db", str(library.db),
                      "--models-dir", str(tmp_path / "none")], home)
    assert failed.returncode == 1 and "gentriage models" in failed.stderr
    assert "Traceback" not in failed.stderr


def test_models_lists_the_clip_analyser(library, home):
    result = run_cli(["models", "--json", "--models-dir", str(library.models)], home)
    clip = next(s for s in json.loads(result.stdout) if s["key"] == "clip")
    assert clip["status"] == "ready" and clip["version"].startswith("1-")
    assert clip["path"].endswith("clip-vit-large-patch14")
