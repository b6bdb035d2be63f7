"""The `gentriage` console command.

`gentriage [FOLDER…]` opens the desktop app; `gentriage <command> …` runs headless.
This module imports nothing heavy at load time: `gentriage --help` must not load PySide6
or torch (tests/cli/test_cli_imports.py). Each subcommand lives in its own module under
gentriage.commands and is imported only when it runs.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy import Engine

# name -> (module under gentriage.commands, one-line help). The module exposes
# `configure(parser)` and `run(args) -> int` (the exit status).
COMMANDS: dict[str, tuple[str, str]] = {
    "scan": ("scan", "index and analyse folders without a window"),
    "metadata": ("metadata", "print the generation metadata embedded in image files"),
    "models": ("models", "list the analysers and where their weights were found"),
    "export": ("export", "write one row per image as CSV or JSON lines"),
    "review": ("review", "accept, reject or clear images from a script"),
    "stats": ("stats", "good-image rates grouped by model, sampler, LoRA, generator or folder"),
    "search": ("search", "pictures ranked by how well they match a text (CLIP)"),
    "similar": ("similar", "pictures most like a given one (CLIP)"),
}

EXIT_OK = 0
EXIT_SOME_BROKEN = 1
EXIT_USAGE = 2


def add_storage_options(parser: argparse.ArgumentParser) -> None:
    """--db and --models-dir, shared by every command that touches the library."""
    parser.add_argument("--db", metavar="PATH", help="library database (default: $GENTRIAGE_DB, "
                        "else the user data directory, or $GENTRIAGE_HOME)")
    parser.add_argument("--models-dir", metavar="DIR", help="folder with one subfolder per "
                        "analyser (default: $GENTRIAGE_MODELS_DIR, else <data dir>/models)")


def _database_locked(exc: BaseException) -> bool:
    """SQLite gave up waiting for another process's write lock (after the busy timeout)."""
    import sqlite3

    cause = getattr(exc, "orig", exc)  # SQLAlchemy wraps the driver's exception
    return isinstance(cause, sqlite3.OperationalError) and (
        "locked" in str(cause) or "busy" in str(cause))


def open_library_for(command: str, database: Path, *, must_exist: bool = True) -> Engine | None:
    """Open the library database for a headless command, or say on stderr why it cannot be
    opened and return None (the command then exits with EXIT_SOME_BROKEN)."""
    from db.engine import DatabaseError, open_library

    if must_exist and not database.exists():
        print(f"gentriage {command}: no library database at {database} "
              "(run 'gentriage scan FOLDER' first)", file=sys.stderr)
        return None
    try:
        return open_library(database)
    except DatabaseError as exc:
        print(f"gentriage {command}: {exc}", file=sys.stderr)
        return None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gentriage",
        description="Triage locally generated images. Without a command, opens the app.",
        epilog="Run 'gentriage COMMAND --help' for a command's options.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        # Subparsers are configured lazily (see main) so --help stays cheap; the
        # placeholder keeps the name listed.
        sub_parser.set_defaults(_module=module)
    return parser


def _app_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gentriage", description="Open the GenTriage window.")
    parser.add_argument("folders", nargs="*", metavar="FOLDER",
                        help="folders to watch (default: the folders remembered from last time)")
    add_storage_options(parser)
    parser.add_argument("--device", help="analysis device: auto, cpu, cuda, cuda:N, mps")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in COMMANDS:
        module_name, help_text = COMMANDS[argv[0]]
        module = importlib.import_module(f"gentriage.commands.{module_name}")
        parser = argparse.ArgumentParser(prog=f"gentriage {argv[0]}", description=help_text)
        module.configure(parser)
        args = parser.parse_args(argv[1:])
        try:
            return int(module.run(args) or 0)
        except KeyboardInterrupt:
            return 130
        except Exception as exc:
            if not _database_locked(exc):
                raise
            print(f"gentriage {argv[0]}: the library database stayed locked by another "
                  "program for too long; nothing was lost — run the command again "
                  "(is another GenTriage scan running?)", file=sys.stderr)
            return EXIT_SOME_BROKEN
    if argv and argv[0] in ("-h", "--help"):
        build_parser().print_help()
        return EXIT_OK
    args = _app_parser().parse_args(argv)
    from desktop.app import run_app  # the only path that loads Qt

    return run_app(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
