"""Layer rules and start-up cost, enforced."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_linter_contracts_hold():
    """db/ and inference/ (and library/) never import PySide6 or desktop/; lower layers never
    import higher ones; desktop/ never imports SQLAlchemy (contracts in pyproject.toml)."""
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint, "import-linter is not installed (pip install -e '.[test]')"
    result = subprocess.run([lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 5 kept, 0 broken" in result.stdout


def _modules_after(code: str) -> set[str]:
    probe = code + "\nimport sys, json; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    import json

    return set(json.loads(out.splitlines()[-1]))


def test_help_loads_neither_qt_nor_torch():
    modules = _modules_after(
        "import contextlib, io\n"
        "from gentriage.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert main(['--help']) == 0\n")
    heavy = {m.split(".")[0] for m in modules} & {"PySide6", "torch", "transformers", "timm",
                                                   "onnxruntime", "desktop"}
    assert heavy == set()


def test_headless_packages_import_without_qt_or_torch():
    modules = _modules_after("import db.schema, db.review, db.flags, library.settings, "
                             "library.paths")
    assert not {m.split(".")[0] for m in modules} & {"PySide6", "torch", "desktop"}


# The app as a user starts it (offscreen), on a folder it indexes and analyses; once the
# picture has its verdict, the window closes and what was imported is printed.
APP_PROBE = r"""
import sqlite3, sys
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

folder, db = sys.argv[1], sys.argv[2]
qapp = QApplication(sys.argv[:1])  # run_app uses this instance


def analysed():
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            return conn.execute("SELECT count(*) FROM analysis_results").fetchone()[0] > 0
    except sqlite3.Error:
        return False


timer = QTimer()
timer.timeout.connect(lambda: analysed() and qapp.quit())
timer.start(50)
QTimer.singleShot(120_000, qapp.quit)
from gentriage.cli import main
status = main([folder, "--db", db])
print("ANALYSED", analysed())
"""


def test_neither_the_app_nor_a_local_scan_loads_ray(tmp_path):
    """Ray is the `scan --ray` extra: the app analysing a folder and a local scan never
    import it (library.distributed imports it only when a cluster is joined)."""
    from PIL import Image

    folder = tmp_path / "pics"
    folder.mkdir()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(folder / "one.png")
    scan = _modules_after(
        "from gentriage.cli import main\n"
        f"assert main(['scan', {str(folder)!r}, '--db', {str(tmp_path / 'scan.db')!r}, "
        "'--analysers', 'nsfw-default']) == 0\n")
    probe = APP_PROBE + "\nimport json\nprint(json.dumps(sorted(sys.modules)))\n"
    app = subprocess.run([sys.executable, "-c", probe, str(folder), str(tmp_path / "app.db")],
                         cwd=ROOT, capture_output=True, text=True, timeout=240,
                         env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert "ANALYSED True" in app.stdout, app.stderr[-3000:]
    app_modules = set(json.loads(app.stdout.splitlines()[-1]))
    assert "onnxruntime" in scan and "onnxruntime" in app_modules  # both really analysed
    assert {m for m in scan | app_modules if m == "ray" or m.startswith("ray.")} == set()
    # Importing the module that speaks to Ray does not load Ray either.
    assert "ray" not in _modules_after("import library.distributed")


def test_every_write_goes_through_the_one_transaction_helper():
    """No product code commits or begins a transaction itself: writes use
    db.transaction.write_transaction (BEGIN IMMEDIATE), reads a plain session."""
    import ast

    allowed = {ROOT / "db" / "transaction.py", ROOT / "db" / "migrate.py"}
    offenders = []
    for package in ("db", "library", "inference", "desktop", "gentriage"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path in allowed:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and node.func.attr in {"commit", "begin", "begin_nested"}):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


def test_only_the_engine_module_names_the_postgresql_driver():
    """psycopg (the optional `postgres` extra) is imported by db/engine.py alone, and only
    when a PostgreSQL library is used: a SQLite install never needs it."""
    import ast

    importers = []
    for package in ("db", "library", "inference", "desktop", "gentriage", "benchmarks"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                if any(name.split(".")[0] == "psycopg" for name in names):
                    importers.append(str(path.relative_to(ROOT)))
    assert sorted(set(importers)) == ["db/engine.py"]
    modules = _modules_after(
        "import tempfile, pathlib\n"
        "from db.engine import open_library\n"
        "with tempfile.TemporaryDirectory() as d:\n"
        "    open_library(pathlib.Path(d) / 'lib.sqlite3').dispose()\n")
    assert "psycopg" not in {m.split(".")[0] for m in modules}
