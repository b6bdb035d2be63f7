"""`gentriage similar PATH [--filter F] [--limit N] [--json]`: the pictures most like this one,
by CLIP image embedding (cosine similarity), best first.

PATH must be an indexed file with an embedding (`gentriage scan` with the clip analyser). The
picture itself is never listed, nor other files showing the same picture (same content).
Output, options, requirements and exit status as for `gentriage search`.
"""

from __future__ import annotations

import argparse
from typing import Any

from gentriage.commands.search import add_result_options, run_ranked


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", metavar="PATH", help="an image file in the library")
    add_result_options(parser)


def run(args: argparse.Namespace) -> int:
    return run_ranked(args, "similar", lambda search, sessions, f: rank_like_file(
        search, sessions, f, args.path, args.limit))


def rank_like_file(search: Any, sessions: Any, f: Any, raw_path: str, limit: int) -> Any:
    from dataclasses import replace

    from db.review import content_ids_for_paths
    from gentriage.commands.review import _candidates
    from library.search import SearchUnavailable

    with sessions() as session:
        found = content_ids_for_paths(session, _candidates(raw_path))
    content_id = next((cid for cid in found.values() if cid is not None), None)
    if content_id is None:
        raise SearchUnavailable(f"{raw_path}: not in the library (scan its folder first: "
                                "gentriage scan FOLDER)")
    ranking = search.rank_similar(content_id, limit, f, raw_path)
    image_id = _any_image_id(sessions, content_id)
    if image_id is None:  # the file vanished from the library meanwhile
        raise SearchUnavailable(f"{raw_path}: not in the library any more")
    return replace(f, ranking=ranking, similar_to=image_id)


def _any_image_id(sessions: Any, content_id: int) -> int | None:
    """An image id showing this content: the filter's similar: term names an image."""
    from db.embeddings import first_image_of

    with sessions() as session:
        return first_image_of(session, content_id)
