"""`gentriage export-files DEST [--filter F] [--strip-metadata] [--captions tags|prompt|both]
[--tag-style underscores|spaces] [--layout flat|folders] [--move]`: the pictures themselves.

The work is library.export_files (guarantees in its docstring); this module parses options,
opens the library and prints what happened.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

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

MAX_LISTED = 20  # problems printed one by one; the rest are counted


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("destination", metavar="DEST", help="folder to export into "
                        "(created if missing; nothing in it is ever overwritten)")
    parser.add_argument("--filter", default="", metavar="TEXT",
                        help="the app's filter syntax (default: every readable image); "
                             "flagged unreviewed pictures only with 'is:flagged'")
    parser.add_argument("--strip-metadata", action="store_true",
                        help="write the pictures without any generation metadata")
    parser.add_argument("--captions", choices=("tags", "prompt", "both"),
                        help="write NAME.txt beside each picture for training")
    parser.add_argument("--tag-style", choices=("underscores", "spaces"), default="underscores",
                        help="tags in captions as the tagger writes them (red_hair) or with "
                             "spaces (red hair)")
    parser.add_argument("--layout", choices=("flat", "folders"), default="flat",
                        help="all in DEST, or DEST/<watched folder>/<sub-folders>")
    parser.add_argument("--move", action="store_true",
                        help="move the files instead of copying them (undo with Ctrl+Z in "
                             "the app)")
    add_storage_options(parser)


def run(args: argparse.Namespace) -> int:
    from db.interop import watched_folder_containing
    from library.export_files import ExportError, ExportOptions, export_files
    from library.settings import Settings

    image_filter = filter_option("export-files", args.filter)
    if image_filter is None:
        return EXIT_USAGE
    locations = resolve_locations("export-files", args)
    if locations is None:
        return EXIT_USAGE
    settings = Settings.load(locations.settings)
    options = ExportOptions(Path(args.destination).expanduser().absolute(),
                            strip_metadata=args.strip_metadata, captions=args.captions,
                            tag_style=args.tag_style, layout=args.layout, move=args.move,
                            tag_threshold=settings.thresholds.tagger)
    try:
        options.check()
    except ExportError as exc:
        say(f"gentriage export-files: {exc}", file=sys.stderr)
        return EXIT_USAGE
    engine = open_library_for("export-files", locations.database)
    if engine is None:
        return EXIT_SOME_BROKEN
    sessions = sessions_for(engine, args)
    try:
        with sessions() as session:
            inside = watched_folder_containing(session, str(options.destination))
        if inside is not None:
            say(f"note: {options.destination} is inside the watched folder {inside}; "
                  "the exported pictures will be indexed there too", file=sys.stderr)
        report = export_files(sessions, image_filter, options)
    except OSError as exc:
        say(f"gentriage export-files: {exc}", file=sys.stderr)
        return EXIT_SOME_BROKEN
    finally:
        engine.dispose()

    verb = "moved" if options.move else "exported"
    line = f"{verb} {report.exported} picture(s) to {options.destination}"
    details = []
    if report.stripped:
        details.append(f"{report.stripped} without metadata")
    if report.renamed:
        details.append(f"{report.renamed} renamed to avoid overwriting")
    if options.captions:
        details.append(f"{report.captions} caption file(s)")
    say(line + (f" ({', '.join(details)})" if details else ""))
    if report.without_caption:
        say(f"no caption written for {report.without_caption} picture(s): no "
              f"{'tags above the threshold' if options.captions == 'tags' else 'prompt or tags'}")
    if report.skipped_private:
        say(f"skipped {report.skipped_private} flagged picture(s) nobody has reviewed; "
              "add is:flagged to the filter to export them")
    for note in report.reencoded[:MAX_LISTED]:
        say(f"  re-encoded: {note}", file=sys.stderr)
    if options.move and report.undo_group is not None:
        say("undo: Ctrl+Z in the app moves them back")
    for error in report.errors[:MAX_LISTED]:
        say(f"  error: {error}", file=sys.stderr)
    if len(report.errors) > MAX_LISTED:
        say(f"  … and {len(report.errors) - MAX_LISTED} more error(s)", file=sys.stderr)
    return EXIT_SOME_BROKEN if report.errors else EXIT_OK
