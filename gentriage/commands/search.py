"""`gentriage search TEXT [--filter F] [--limit N] [--json]`: pictures ranked by how well they
match a text, by CLIP (cosine similarity between the text's embedding and each picture's).

Needs the CLIP ViT-L/14 weights (with the text tower and tokenizer) and embeddings made by
the `clip` analyser (`gentriage scan`); without either it says what is missing and exits 1.
The filter narrows the pictures first (the app's syntax), so `--filter is:unreviewed`
ranks the unreviewed ones. Prints paths and scores only, best first: `SCORE  PATH` lines,
or with --json one `{"path": …, "score": …}` object per line. `gentriage similar` shares
everything below `configure`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from gentriage.cli import (
    EXIT_OK,
    EXIT_SOME_BROKEN,
    EXIT_USAGE,
    add_storage_options,
    filter_option,
    open_library_for,
    resolve_locations,
    say,
    warn,
)

DEFAULT_LIMIT = 20


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("text", metavar="TEXT", help='what to look for, e.g. "a red umbrella"')
    add_result_options(parser)


def add_result_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--filter", default="", metavar="F",
                        help="the app's filter syntax, e.g. 'is:unreviewed folder:/out' "
                             "(default: every readable image)")
    parser.add_argument("--limit", type=int, default=DEFAULT_LIMIT, metavar="N",
                        help=f"how many results (default {DEFAULT_LIMIT})")
    parser.add_argument("--json", action="store_true",
                        help='one {"path": …, "score": …} object per line')
    add_storage_options(parser)


def run(args: argparse.Namespace) -> int:
    return run_ranked(args, "search", lambda search, _sessions, f: search.resolve(
        with_like(f, args.text), limit=args.limit))


def with_like(f: Any, text: str) -> Any:
    from db.filters import with_semantic

    return with_semantic(f, like=text)


def run_ranked(args: argparse.Namespace, command: str,
               rank: Callable[[Any, Any, Any], Any]) -> int:
    """Parse --filter, open the library, let `rank(search, sessions, filter)` return the filter
    with its ranking, and print the rows. Every failure is a message, never a traceback."""
    from db.engine import session_factory
    from db.queries import MAX_RANKED
    from library.safe_output import json_text
    from library.search import SearchUnavailable, SemanticSearch

    if not 1 <= args.limit <= MAX_RANKED:
        warn(command, f"--limit must be between 1 and {MAX_RANKED:,}")
        return EXIT_USAGE
    image_filter = filter_option(command, args.filter)
    if image_filter is None:
        return EXIT_USAGE
    if image_filter.semantic:
        warn(command, "--filter cannot hold like: or similar: (the command gives the ranking)")
        return EXIT_USAGE
    locations = resolve_locations(command, args)
    if locations is None:
        return EXIT_USAGE
    engine = open_library_for(command, locations.database)
    if engine is None:
        return EXIT_SOME_BROKEN
    try:
        sessions = session_factory(engine)
        search = SemanticSearch(sessions, locations.models)
        try:
            ranked = rank(search, sessions, image_filter)
        except SearchUnavailable as exc:
            warn(command, exc)
            return EXIT_SOME_BROKEN
        rows = ranked_rows(sessions, ranked, args.limit)
    finally:
        engine.dispose()
    for path, score in rows:
        if args.json:
            print(json_text({"path": path, "score": round(score, 6)}))
        else:
            say(f"{score:7.4f}  {path}")  # paths come from files: shown, never run
    if not rows and not args.json:
        print("no matching pictures", file=sys.stderr)
    return EXIT_OK


def ranked_rows(sessions: Any, ranked: Any, limit: int) -> list[tuple[str, float]]:
    """(path, score) of the first `limit` rows of a resolved filter, best first."""
    from dataclasses import replace

    from db.filters import SIMILARITY_SORT
    from db.queries import fetch_page

    # The commands always list by similarity (a sort in --filter only affects the app).
    by_score = replace(ranked, sort=SIMILARITY_SORT, unreviewed_first=False)
    with sessions() as session:
        rows, _ = fetch_page(session, by_score, limit=limit)
    return [(row.path, float(row.sort_value)) for row in rows]
