"""The analyser list has one source (inference.catalog); everything else derives from it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from db.filters import KNOWN_ANALYSERS
from db.flags import verdict
from inference.catalog import (
    ANALYSER_KEYS,
    BY_KEY,
    CATALOG,
    DEFAULT_ENABLED,
    FILTERABLE_ANALYSERS,
    Role,
)
from inference.registry import ANALYSERS
from library.settings import Settings, Thresholds

REPO = Path(__file__).resolve().parents[2]


def test_registry_has_a_class_for_every_catalog_entry_and_nothing_else() -> None:
    assert tuple(ANALYSERS) == ANALYSER_KEYS
    for key, cls in ANALYSERS.items():
        assert cls.key == key


def test_keys_are_unique_and_every_entry_describes_itself() -> None:
    assert len(set(ANALYSER_KEYS)) == len(ANALYSER_KEYS)
    for info in CATALOG:
        assert info.title and info.description
        assert BY_KEY[info.key] is info


def test_layers_read_the_catalogue() -> None:
    assert KNOWN_ANALYSERS == FILTERABLE_ANALYSERS
    assert Settings().enabled_analysers == list(DEFAULT_ENABLED)
    # Only style is opt-in (its Gram matrices are large and only the report reads them).
    assert set(ANALYSER_KEYS) - set(DEFAULT_ENABLED) == {"style"}
    assert "style" not in FILTERABLE_ANALYSERS


def test_flag_rule_follows_the_roles() -> None:
    """Every NSFW-role analyser's verdict counts as "analysed"; no other role does."""

    class Result:
        def __init__(self, analyser: str) -> None:
            self.analyser, self.score, self.scores, self.error = analyser, 0.0, {}, None

    for info in CATALOG:
        _, _, analysed = verdict([Result(info.key)], Thresholds(), ANALYSER_KEYS)
        assert analysed == (info.role is Role.NSFW), info.key


def test_catalogue_is_importable_without_heavy_libraries() -> None:
    code = ("import sys, inference.catalog, db.filters, db.flags, library.settings\n"
            "heavy = {'torch', 'onnxruntime', 'transformers', 'timm', 'PySide6'} & set(sys.modules)\n"
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_the_measured_costs_agree_with_the_catalogue_order() -> None:
    """The pipeline orders by the catalogue; custom analysers slot in by cpu_ms_per_image."""
    by_cost = sorted(ANALYSERS, key=lambda key: ANALYSERS[key].cpu_ms_per_image)
    assert tuple(by_cost) == ANALYSER_KEYS


def _literal_lists_of_keys(path: Path) -> list[str]:
    """Tuple/list/set/dict literals in `path` naming two or more analysers: a private list."""
    import ast

    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        items = node.keys if isinstance(node, ast.Dict) else \
            node.elts if isinstance(node, (ast.Tuple, ast.List, ast.Set)) else []
        named = {item.value for item in items if isinstance(item, ast.Constant)
                 and item.value in ANALYSER_KEYS}
        if len(named) >= 2:
            found.append(f"{path.relative_to(REPO)}:{node.lineno}: {sorted(named)}")
    return found


def test_no_module_of_inference_or_the_runner_keeps_its_own_analyser_list() -> None:
    files = [p for p in (REPO / "inference").glob("*.py") if p.name != "catalog.py"]
    files.append(REPO / "library" / "analysis.py")
    assert [hit for path in files for hit in _literal_lists_of_keys(path)] == []


def test_the_private_list_check_sees_one() -> None:
    """Guard for the test above: it finds a literal list of keys where there is one."""
    sample = REPO / "tests" / "inference" / "test_weights.py"  # lists every key in a literal
    assert _literal_lists_of_keys(sample)
