"""`gentriage review PATH… --accept|--reject|--clear [--rating N]`: scripted review decisions.

Decisions go through db.review with source "cli", into the same append-only log as the app's,
so the app can undo them. A PATH may be an indexed file or a folder (every indexed image
under it). Paths the library does not know are reported; the known ones are still applied and
the exit status is 1.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from gentriage.cli import (
    EXIT_OK,
    EXIT_SOME_BROKEN,
    EXIT_USAGE,
    add_storage_options,
    open_library_for,
    resolve_locations,
    say,
    sessions_for,
    warn,
)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="indexed image files, or folders (every indexed image under them)")
    decision = parser.add_mutually_exclusive_group()
    decision.add_argument("--accept", dest="decision", action="store_const", const="accepted")
    decision.add_argument("--reject", dest="decision", action="store_const", const="rejected")
    decision.add_argument("--clear", dest="decision", action="store_const", const="none",
                          help="remove the accept/reject decision")
    parser.add_argument("--rating", type=int, choices=range(0, 6), metavar="N",
                        help="star rating 0-5 (0 = none)")
    add_storage_options(parser)


def _candidates(raw: str) -> list[str]:
    """Spellings under which a path may have been stored (as given, absolute, resolved),
    in the stored form (library.paths.storable_text: non-UTF-8 bytes as `\\xNN`)."""
    from library.paths import storable_text

    path = Path(raw).expanduser()
    spellings = [raw, str(path), os.path.abspath(path)]
    try:
        spellings.append(str(path.resolve()))
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop (Python < 3.13)
        pass
    return list(dict.fromkeys(storable_text(s) for s in spellings))


def _resolve(session, raw: str) -> list[int]:
    """Content ids for one PATH argument (a file, or a folder prefix)."""
    from sqlalchemy import or_, select

    from db.review import content_ids_for_paths
    from db.schema import Image
    from db.store import path_under

    spellings = _candidates(raw)
    found = content_ids_for_paths(session, spellings)
    ids = [cid for cid in found.values() if cid is not None]
    if ids:
        return ids
    if Path(raw).expanduser().is_dir():
        ids = list(session.scalars(select(Image.content_id).where(
            or_(*[path_under(s) for s in spellings]), Image.content_id.is_not(None))
            .distinct()))
    return ids


def run(args: argparse.Namespace) -> int:
    if args.decision is None and args.rating is None:
        warn("review", "give --accept, --reject, --clear and/or --rating N")
        return EXIT_USAGE

    from db.review import set_decision, set_rating
    from db.transaction import write_transaction

    locations = resolve_locations("review", args)
    if locations is None:
        return EXIT_USAGE
    engine = open_library_for("review", locations.database)
    if engine is None:
        return EXIT_SOME_BROKEN
    unknown: list[str] = []
    try:
        with write_transaction(sessions_for(engine, args)) as session:
            content_ids: set[int] = set()
            for raw in args.paths:
                ids = _resolve(session, raw)
                if ids:
                    content_ids.update(ids)
                else:
                    unknown.append(raw)
            # One command is one log group: the app's Ctrl+Z undoes all of it at once.
            group = None
            if args.decision is not None and content_ids:
                group = set_decision(session, content_ids, args.decision, source="cli")
            if args.rating is not None and content_ids:
                group = set_rating(session, content_ids, args.rating, source="cli",
                                   group=group)
            changed = group is not None
        if changed:
            _write_sidecars_if_enabled(sessions_for(engine, args), content_ids, locations)
    finally:
        engine.dispose()

    for raw in unknown:
        warn("review", f"{raw}: not in the library (scan its folder first)")
    what = {"accepted": "accepted", "rejected": "rejected", "none": "cleared"}
    parts = []
    if args.decision is not None:
        parts.append(what[args.decision])
    if args.rating is not None:
        parts.append(f"rated {args.rating}")
    say(f"{' and '.join(parts)} {len(content_ids)} image(s)"
        + ("" if changed else " (no change)"))
    return EXIT_SOME_BROKEN if unknown else EXIT_OK


def _write_sidecars_if_enabled(sessions, content_ids: set[int], locations) -> None:
    """Settings → "write XMP sidecars after every decision" applies to scripted ones too."""
    from library.settings import Settings
    from library.sidecars import write_for_contents

    settings = Settings.load(locations.settings)
    if not settings.sidecar_auto:
        return
    report = write_for_contents(sessions, content_ids, settings.sidecar_naming,
                                settings.thresholds.tagger)
    for error in report.errors:
        warn("review", f"sidecar not written: {error}")
