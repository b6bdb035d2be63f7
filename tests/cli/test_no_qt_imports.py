"""No headless command loads Qt: each runs in a fresh interpreter, which then reports what
ended up in sys.modules."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from cli_support import REPO, cli_env, make_folder

QT_MODULES = ("PySide6", "shiboken6", "superqt", "desktop")

PROBE = """
import json, sys
from gentriage.cli import main
try:
    status = main(sys.argv[1:])
except SystemExit as exc:
    status = exc.code
loaded = sorted({name.split('.')[0] for name in sys.modules} & set(json.loads(QT)))
print("PROBE" + json.dumps({"status": status, "qt": loaded}))
"""


def _probe(args: list[str], home) -> dict:
    code = PROBE.replace("json.loads(QT)", repr(list(QT_MODULES)))
    proc = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, env=cli_env(home),
                          capture_output=True, text=True, timeout=240)
    line = next(line for line in proc.stdout.splitlines() if line.startswith("PROBE"))
    return json.loads(line[len("PROBE"):])


@pytest.mark.parametrize("command", ["scan", "export", "review", "stats", "report"])
def test_command_runs_without_importing_qt(command, seeded, home, tmp_path):
    db = ["--db", str(seeded.db)]
    args = {
        "scan": ["scan", str(make_folder(tmp_path / "new", 2)), "--analysers", "nsfw-default",
                 *db],
        "export": ["export", "--format", "jsonl", *db],
        "review": ["review", str(seeded.paths[0]), "--reject", *db],
        "stats": ["stats", "--by", "lora", *db],
        # matplotlib draws on Agg: the HTML report must not pull in a Qt backend either.
        "report": ["report", "--by", "model", "--html", str(tmp_path / "r.html"), *db],
    }[command]
    result = _probe(args, home)
    assert result["status"] == 0  # the command really ran its work
    assert result["qt"] == []
