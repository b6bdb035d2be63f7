"""`gentriage sidecars [--filter F] [--naming darktable|lightroom] [--read]`: XMP sidecars.

Writes (or merges into) one sidecar per matching picture, or with --read imports ratings and
rejections from the sidecars into the review log (one undoable step). The work and the
sidecar fields are library.sidecars.
"""

from __future__ import annotations

import argparse
import sys

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
)

MAX_LISTED = 20


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--filter", default="", metavar="TEXT",
                        help="the app's filter syntax (default: every readable image)")
    parser.add_argument("--naming", choices=("darktable", "lightroom"),
                        help="NAME.EXT.xmp (darktable, digiKam) or NAME.xmp (Lightroom); "
                             "default from the settings (darktable)")
    parser.add_argument("--read", action="store_true",
                        help="import ratings and rejections (-1) from existing sidecars "
                             "instead of writing them (undo with Ctrl+Z in the app)")
    add_storage_options(parser)


def run(args: argparse.Namespace) -> int:
    from library.settings import Settings
    from library.sidecars import NAMINGS, read_sidecars, write_sidecars

    image_filter = filter_option("sidecars", args.filter)
    if image_filter is None:
        return EXIT_USAGE
    locations = resolve_locations("sidecars", args)
    if locations is None:
        return EXIT_USAGE
    settings = Settings.load(locations.settings)
    naming = args.naming or settings.sidecar_naming
    if naming not in NAMINGS:
        say(f"gentriage sidecars: sidecar_naming {naming!r} in the settings is not one of "
              f"{', '.join(NAMINGS)}", file=sys.stderr)
        return EXIT_USAGE
    engine = open_library_for("sidecars", locations.database)
    if engine is None:
        return EXIT_SOME_BROKEN
    sessions = sessions_for(engine, args)
    try:
        if args.read:
            report = read_sidecars(sessions, image_filter, naming)
        else:
            report = write_sidecars(sessions, image_filter, naming,
                                    settings.thresholds.tagger)
    finally:
        engine.dispose()

    if args.read:
        say(f"imported {report.imported} picture(s) from sidecars: {report.rejected} "
              f"rejected, {report.unrejected} no longer rejected, {report.rated} rated"
              + (f"; {report.without_sidecar} without a sidecar" if report.without_sidecar
                 else ""))
        if report.undo_group is not None:
            say("undo: Ctrl+Z in the app")
    else:
        say(f"wrote {report.written} sidecar(s)"
              + (f" ({report.merged} merged into existing ones)" if report.merged else ""))
    for error in report.errors[:MAX_LISTED]:
        say(f"  error: {error}", file=sys.stderr)
    if len(report.errors) > MAX_LISTED:
        say(f"  … and {len(report.errors) - MAX_LISTED} more error(s)", file=sys.stderr)
    return EXIT_SOME_BROKEN if report.errors else EXIT_OK
