"""`gentriage duplicates [--filter TEXT] [--json] [--resolve] [--distance N]`: near-duplicates.

Lists the groups of near-duplicate pictures (the same picture re-encoded, resized, lightly
edited: perceptual hashes within N bits, library.families), each with its keeper — accepted
first, then the highest rating, the most pixels, a lossless format, the oldest file. `--json`
prints one object per group per line:

    {"group": 12, "keeper": PATH, "paths": [PATH, ...], "distance": 4}

`--resolve` rejects every non-keeper that nobody has decided yet, one review-log step per
group (each undoable in the app, source "cli"), and prints the counts. A group whose keeper
file disappeared between the listing and its resolution is left unchanged and reported
(exit status 1). Before listing, pictures indexed by an older version get their hashes
(from the thumbnail cache) and the stored groups behind `dup:GROUP` are brought up to date.
"""

from __future__ import annotations

import argparse
import sys
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
    sessions_for,
    warn,
)
from library.families import DEFAULT_DISTANCE as _DEFAULT_DISTANCE  # light: no numpy yet
from library.families import MAX_DISTANCE as _MAX_DISTANCE


def _distance(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 <= value <= _MAX_DISTANCE:
        raise argparse.ArgumentTypeError(f"must be 0-{_MAX_DISTANCE} bits, got {value}")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--filter", default="", metavar="TEXT",
                        help="only images this filter shows (the app's syntax), e.g. "
                             "'folder:/out is:unreviewed'")
    parser.add_argument("--json", action="store_true",
                        help='one JSON object per group per line: {"group", "keeper", '
                             '"paths", "distance"}')
    parser.add_argument("--resolve", action="store_true",
                        help="reject every undecided non-keeper (one undo step per group); "
                             "decisions people made are never changed")
    parser.add_argument("--distance", type=_distance, default=_DEFAULT_DISTANCE, metavar="N",
                        help=f"largest perceptual-hash difference, in bits, that still counts "
                             f"as the same picture (0-{_MAX_DISTANCE}, default "
                             f"{_DEFAULT_DISTANCE})")
    add_storage_options(parser)


def _print_text(groups: list[Any]) -> None:
    for group in groups:
        count = len(group.paths())
        say(f"group {group.group_id}: {count} file(s), distance {group.distance}")
        for index, member in enumerate(group.members):
            role = "keep  " if index == 0 else "other "
            note = "" if member.decision == "none" else f"  [{member.decision}]"
            for path in member.paths:
                say(f"  {role}{path}{note}")  # paths come from files: shown, never run


def run(args: argparse.Namespace) -> int:
    from library import family_ops
    from library.safe_output import json_text
    from library.thumbnails import ThumbnailCache

    image_filter = filter_option("duplicates", args.filter)
    locations = resolve_locations("duplicates", args)
    if image_filter is None or locations is None:
        return EXIT_USAGE
    engine = open_library_for("duplicates", locations.database)
    if engine is None:
        return EXIT_SOME_BROKEN
    sessions = sessions_for(engine, args)
    try:
        filled = family_ops.backfill(sessions, ThumbnailCache(locations.thumbnails))
        if filled.hashes:
            print(f"computed perceptual hashes for {filled.hashes} image(s) indexed earlier",
                  file=sys.stderr)
        if filled.hash_failures:
            print(f"{filled.hash_failures} image(s) could not be read to hash them; they are "
                  "left out (rescan their folders)", file=sys.stderr)
        groups = family_ops.find_groups(sessions, image_filter, args.distance, store=True)
        if args.json:
            for group in groups:
                print(json_text(group.as_json()))
        else:
            _print_text(groups)
            if not groups:
                print("no near-duplicates found")
        if not args.resolve:
            return EXIT_OK
        report = family_ops.resolve_groups(sessions, groups, source="cli")
    finally:
        engine.dispose()

    for reason in report.skipped:
        warn("duplicates", reason)
    summary = (f"rejected {report.rejected} image(s) in {report.groups_resolved} group(s); "
               f"{report.already_decided} already decided left as they were; "
               f"{len(report.skipped)} group(s) skipped")
    print(summary, file=sys.stderr if args.json else sys.stdout)
    return EXIT_SOME_BROKEN if report.skipped else EXIT_OK
