"""The `gentriage` console command.

`gentriage [FOLDER…]` opens the desktop app; `gentriage <command> …` runs headless.
This module imports nothing heavy at load time: `gentriage --help` must not load PySide6
or torch (tests/cli/test_no_qt_imports.py). Each subcommand lives in its own module under
gentriage.commands and is imported only when it runs.

Everything a command prints that came from a file or an argument goes through
library.safe_output (terminal escapes shown, not executed); `say` and `warn` do that for
messages. A failure no command handled ends in one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import difflib
import gc
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TextIO

if TYPE_CHECKING:
    from _typeshed import SupportsWrite
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from db.engine import DatabaseTarget
    from db.filters import ImageFilter
    from library.paths import Locations

# name -> (module under gentriage.commands, one-line help). The module exposes
# `configure(parser)` and `run(args) -> int` (the exit status).
COMMANDS: dict[str, tuple[str, str]] = {
    "scan": ("scan", "index and analyse folders without a window"),
    "metadata": ("metadata", "print the generation metadata embedded in image files"),
    "models": ("models", "list the analysers and where their weights were found"),
    "export": ("export", "write one row per image as CSV or JSON lines"),
    "review": ("review", "accept, reject or clear images from a script"),
    "stats": ("stats", "alias of 'report'"),
    "report": ("report", "per model, LoRA, sampler, prompt, generator or folder: aesthetic, "
               "good-image rate, prompt adherence, style loss; --html for charts"),
    "export-files": ("export_files", "copy or move pictures, optionally without their metadata"),
    "sidecars": ("sidecars", "write XMP sidecars for photo managers, or read their ratings back"),
    "duplicates": ("duplicates", "list near-duplicate pictures and their keepers; --resolve "
                   "rejects the rest"),
    "search": ("search", "pictures ranked by how well they match a text (CLIP)"),
    "similar": ("similar", "pictures most like a given one (CLIP)"),
}

EXIT_OK = 0
EXIT_SOME_BROKEN = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
# Set to see the traceback behind an "unexpected error" line.
DEBUG_ENV = "GENTRIAGE_DEBUG"


def say(*parts: object, file: TextIO | None = None) -> None:
    """print() for text that may hold names or prompts from files: shown, never executed
    by the terminal (library.safe_output.terminal_text)."""
    from library.safe_output import terminal_text

    print(" ".join(terminal_text(part) for part in parts), file=file or sys.stdout)


class ArgumentParser(argparse.ArgumentParser):
    """argparse, with its messages terminal-safe: a usage error quotes the offending
    argument, which may hold escape sequences (`gentriage scan --$'\\e]0;x\\a'`)."""

    def _print_message(self, message: str, file: SupportsWrite[str] | None = None) -> None:
        from library.safe_output import terminal_text

        super()._print_message(terminal_text(message, multiline=True) if message else message,
                               file)


def log_to_stderr() -> None:
    """Library warnings (they quote file names) on stderr, terminal-safe."""
    from library.safe_output import TerminalSafeFormatter

    handler = logging.StreamHandler()
    handler.setFormatter(TerminalSafeFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler])


def warn(command: str, message: object) -> None:
    """`gentriage COMMAND: message` (`gentriage: message` for the app) on stderr,
    terminal-safe."""
    say(f"gentriage {command}:" if command else "gentriage:", message, file=sys.stderr)


def filter_option(command: str, text: str) -> ImageFilter | None:
    """The command's --filter in the app's syntax, or None after saying why it is not one
    (the command then exits EXIT_USAGE). Non-UTF-8 bytes in it are written as stored paths
    are, so `folder:` still finds them."""
    from db.filters import FilterSyntaxError, parse_filter
    from library.paths import storable_text

    try:
        return parse_filter(storable_text(text))
    except FilterSyntaxError as exc:
        warn(command, f"bad --filter: {exc}")
        return None


def add_storage_options(parser: argparse.ArgumentParser) -> None:
    """--db, --models-dir and --user, shared by every command that touches the library."""
    parser.add_argument("--db", metavar="PATH|URL", help="library database: a SQLite file, or "
                        "a PostgreSQL URL (postgresql+psycopg://USER@HOST/DATABASE) (default: "
                        "$GENTRIAGE_DB, else the user data directory, or $GENTRIAGE_HOME)")
    parser.add_argument("--models-dir", metavar="DIR", help="folder with one subfolder per "
                        "analyser (default: $GENTRIAGE_MODELS_DIR, else <data dir>/models)")
    parser.add_argument("--user", metavar="NAME", help="the reviewer the review log names "
                        "for this run's decisions; undo and redo are per reviewer (default: "
                        "the OS user name)")


def sessions_for(engine: Engine, args: argparse.Namespace) -> sessionmaker[Session]:
    """The library's sessions for this run, writing review changes as `--user`."""
    from db.engine import session_factory

    return session_factory(engine, reviewer=getattr(args, "user", None))


def resolve_locations(command: str, args: argparse.Namespace) -> Locations | None:
    """The run's locations (--db, --models-dir, environment), or None after saying on stderr
    why they cannot be used (a GENTRIAGE_HOME that is a file…): the command exits
    EXIT_USAGE."""
    from library.paths import Locations

    locations = Locations.resolve(getattr(args, "db", None), getattr(args, "models_dir", None))
    problem = locations.problem()
    if problem is None and getattr(args, "user", None) is not None:
        from db.review import reviewer_problem

        problem = reviewer_problem(args.user)
        if problem is not None:  # not a location: no GENTRIAGE_HOME to blame
            warn(command, f"--user: {problem}")
            return None
    if problem is not None:
        home = os.environ.get("GENTRIAGE_HOME")
        origin = f" (GENTRIAGE_HOME={home})" if home else ""
        warn(command, f"{problem}{origin}")
        return None
    return locations


def open_library_for(command: str, database: DatabaseTarget, *,
                     must_exist: bool = True) -> Engine | None:
    """Open the library database for a headless command, or say on stderr why it cannot be
    opened and return None (the command then exits with EXIT_SOME_BROKEN). `must_exist`
    applies to a SQLite file; a PostgreSQL database exists or the server says so."""
    from db.engine import DatabaseError, open_library

    if must_exist and isinstance(database, Path) and not database.exists():
        warn(command, f"no library database at {database} (run 'gentriage scan FOLDER' first)")
        return None
    try:
        return open_library(database)
    except DatabaseError as exc:
        warn(command, exc)
        return None


def _failure_line(exc: Exception, database: DatabaseTarget | None) -> str:
    """One line for an exception no command handled: the storage problem in the user's
    terms when SQLite reported one (`database`: the library file, for the free-space check
    behind "disk full"), else what went wrong and how to see more."""
    from db.engine import describe_database_error

    reason = describe_database_error(exc, database)
    if reason is not None:
        return reason
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror or exc}{where}"
    return (f"unexpected error ({type(exc).__name__}: {exc}); set {DEBUG_ENV}=1 to see "
            "the traceback, and please report it")


def _unknown_command(word: str) -> str | None:
    """The command `word` is probably a typo of, when it is not a folder either."""
    if word.startswith("-") or os.path.isdir(word):
        return None
    close = difflib.get_close_matches(word.lower(), COMMANDS, n=1, cutoff=0.6)
    return close[0] if close else None


def _bad_folder_arguments(folders: Sequence[str]) -> list[str]:
    """Folder arguments whose names are not valid UTF-8: the library cannot store them."""
    from library.paths import is_storable

    return [f for f in folders if not is_storable(f)]


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
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
    parser = ArgumentParser(prog="gentriage", description="Open the GenTriage window.")
    parser.add_argument("folders", nargs="*", metavar="FOLDER",
                        help="folders to watch (default: the folders remembered from last time)")
    add_storage_options(parser)
    parser.add_argument("--device", help="analysis device: auto, cpu, cuda, cuda:N, mps")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in COMMANDS:
        return _run_command(argv[0], argv[1:])
    if argv and argv[0] in ("-h", "--help"):
        build_parser().print_help()
        return EXIT_OK
    if argv and (guess := _unknown_command(argv[0])) is not None:
        warn("", f"unknown command '{argv[0]}' — did you mean '{guess}'? "
             "(run 'gentriage --help' for the commands)")
        return EXIT_USAGE
    return _run_app(argv)


def run() -> NoReturn:
    """The program (console script, `python -m gentriage`): `main`, then exit with its status.

    After a command, every object left is moved out of the garbage collector's sight
    (`gc.freeze`) before exiting: the interpreter's shutdown collections would otherwise walk
    all that SQLAlchemy's import built, ~0.1 s — a quarter of an unchanged rescan. Shutdown
    itself still runs (atexit handlers, thread joins, module teardown); files and database
    connections are closed by the commands themselves, not left to the collector. Not after
    the window (Qt's objects are left to tear down as they always have), and never in `main`,
    which tests call in-process."""
    status = main()
    if sys.argv[1:2] and sys.argv[1] in COMMANDS:
        gc.freeze()
    sys.exit(status)


def _run_command(name: str, arguments: list[str]) -> int:
    module_name, help_text = COMMANDS[name]
    module = importlib.import_module(f"gentriage.commands.{module_name}")
    parser = ArgumentParser(prog=f"gentriage {name}", description=help_text)
    module.configure(parser)
    args = parser.parse_args(arguments)
    log_to_stderr()
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:  # the last line of defence: one line, no traceback
        from db.engine import DatabaseError

        if isinstance(exc, DatabaseError):  # already one line in the user's terms
            warn(name, exc)
            return EXIT_SOME_BROKEN
        if os.environ.get(DEBUG_ENV):
            raise
        warn(name, _failure_line(exc, _database_named_by(args)))
        return EXIT_SOME_BROKEN


def _database_named_by(args: argparse.Namespace) -> DatabaseTarget | None:
    """The run's database for a failure message (None when it cannot even be named)."""
    from db.engine import DatabaseError
    from library.paths import database_path

    try:
        return database_path(getattr(args, "db", None))
    except DatabaseError:
        return None


def _run_app(argv: list[str]) -> int:
    args = _app_parser().parse_args(argv)
    if bad := _bad_folder_arguments(args.folders):
        warn("", f"the folder name {bad[0]} is not valid UTF-8 and cannot be stored in the "
             "library; rename the folder")
        return EXIT_USAGE
    if resolve_locations("", args) is None:
        return EXIT_USAGE
    from gentriage.display import display_problem

    if (problem := display_problem()) is not None:
        warn("", f"cannot open the window: {problem}")
        return EXIT_SOME_BROKEN
    from desktop.app import run_app  # the only path that loads Qt

    return run_app(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
