"""`gentriage report`: which models, LoRAs, samplers, prompts… give good pictures.

    gentriage report [--by model|lora|sampler|prompt|generator|folder] [--filter F] [--json]
                     [--html FILE] [--good-threshold T] [--style-reference DIR] [--device D]

Per group (library/report.py has the definitions): pictures, aesthetic mean and population
standard deviation, good-image rate, prompt adherence, coherent / accepted / rejected rates,
and with --style-reference the mean style loss against that folder's pictures. A table on a
terminal, plain columns otherwise, JSON with --json; --html also writes a self-contained
report with charts. `gentriage stats` is the same command (an alias kept for old scripts).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
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

GROUPINGS = ("model", "lora", "sampler", "prompt", "generator", "folder")  # db.report_queries
DEFAULT_THRESHOLD = 6.0  # library.report.DEFAULT_GOOD_THRESHOLD (not imported: --help stays light)
MATPLOTLIB_HINT = ("--html needs matplotlib: pip install matplotlib "
                   "(it is a dependency of gentriage; reinstall with: pip install -e .)")


def _threshold(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--by", choices=GROUPINGS, default="model",
                        help="what to group by (default: model)")
    parser.add_argument("--filter", default="", metavar="F",
                        help="only the pictures this filter shows (the app's filter syntax)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--html", metavar="FILE", help="also write a self-contained HTML "
                        "report with charts to FILE")
    parser.add_argument("--good-threshold", type=_threshold, default=DEFAULT_THRESHOLD,
                        metavar="T", help="aesthetic score of a good picture (default 6.0, "
                        "LAION's 'aesthetic 6+')")
    parser.add_argument("--style-reference", metavar="DIR", help="add each group's style "
                        "loss against the pictures in DIR (needs the style analyser's VGG19)")
    parser.add_argument("--device", default="auto",
                        help="device for the style reference: auto, cpu, cuda, cuda:N, mps")
    add_storage_options(parser)


def run(args: argparse.Namespace, command: str = "report") -> int:
    from db.engine import session_factory
    from library.report import build_report
    from library.safe_output import json_text

    image_filter = filter_option(command, args.filter)
    if image_filter is None:
        return EXIT_USAGE
    reference_dir = Path(args.style_reference).expanduser() if args.style_reference else None
    if reference_dir is not None and not reference_dir.is_dir():
        warn(command, f"--style-reference {reference_dir} is not a folder")
        return EXIT_USAGE
    if args.html:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            warn(command, MATPLOTLIB_HINT)
            return EXIT_SOME_BROKEN
    locations = resolve_locations(command, args)
    if locations is None:
        return EXIT_USAGE
    engine = open_library_for(command, locations.database)
    if engine is None:
        return EXIT_SOME_BROKEN
    try:
        style = None
        if reference_dir is not None:
            style = _reference(reference_dir, locations.models, args.device, command)
            if style is None:
                return EXIT_SOME_BROKEN
        report = build_report(session_factory(engine), args.by, image_filter,
                              args.good_threshold, details=bool(args.html), style=style)
    finally:
        engine.dispose()
    if style is not None and report.style_without_grams:
        print(f"note: {report.style_without_grams} picture(s) have no Gram matrices from "
              "these VGG19 weights yet and are left out of the style loss; run "
              "'gentriage scan FOLDER --analysers style' to add them", file=sys.stderr)
    status = EXIT_OK
    if args.html and not _write_html(report, Path(args.html), locations.thumbnails,
                                     locations.settings, command):
        status = EXIT_SOME_BROKEN
    if args.json:
        print(json_text(report.to_json(), indent=2))
    elif not report.groups:
        print("no pictures match" if args.filter else "no images in the library yet")
    else:
        _print_table(report)
    return status


def _reference(folder: Path, models: Path, device: str, command: str) -> Any:
    from library.style_reference import (
        StyleReferenceError,
        compute_reference,
        load_style_analyser,
    )

    def skipped(path: Path, why: str) -> None:
        say(f"  skipped (unreadable): {path}: {why}", file=sys.stderr)

    try:
        return compute_reference(folder, load_style_analyser(models, device), skipped)
    except StyleReferenceError as exc:
        warn(command, exc)
        return None


def _write_html(report: Any, target: Path, thumbnails: Path, settings_path: Path,
                command: str) -> bool:
    from library.report_html import render_html
    from library.settings import Settings
    from library.thumbnails import ThumbnailCache

    settings = Settings.load(settings_path)
    cache = ThumbnailCache(thumbnails)
    document = render_html(report, cache.load, blur_mode=settings.blur_mode,
                           blur_radius=settings.blur_radius)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(document, encoding="utf-8")
    except OSError as exc:
        warn(command, f"cannot write {target}: {exc.strerror or exc}")
        return False
    say(f"wrote {target}", file=sys.stderr)
    return True


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _number(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _columns(with_style: bool) -> list[str]:
    return ["images", "aesthetic", "± std", "good", "prompt adherence", "coherent",
            "accepted", "rejected"] + (["style loss"] if with_style else [])


def _cells(g: Any, with_style: bool) -> list[str]:
    cells = [str(g.images), _number(g.aesthetic_mean), _number(g.aesthetic_std),
             _percent(g.good_rate), _number(g.prompt_adherence_mean, 1),
             _percent(g.coherent_rate), _percent(g.accepted_rate), _percent(g.rejected_rate)]
    if with_style:
        cells.append("-" if g.style_loss is None else f"{g.style_loss:.4g}")
    return cells


def _name(group: str | None) -> str:
    return "(unknown)" if group is None else " ".join(group.split())


def _print_table(report: Any) -> None:
    from library.safe_output import terminal_text

    with_style = report.style is not None
    columns = _columns(with_style)
    title = (f"GenTriage report by {report.by} (good: aesthetic >= {report.good_threshold:g}, "
             "not rejected, not incoherent; ranked by aesthetic mean)")
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table

        table = Table(title=title)
        table.add_column(report.by, overflow="fold")
        for name in columns:
            table.add_column(name, justify="right")
        for g in report.groups:
            table.add_row(escape(terminal_text(_name(g.group))), *_cells(g, with_style))
        Console().print(table)
        return
    header = [report.by, *columns]
    body = [[terminal_text(_name(g.group)), *_cells(g, with_style)] for g in report.groups]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    for line in [header, *body]:
        print("  ".join(cell.ljust(widths[0]) if i == 0 else cell.rjust(widths[i])
                        for i, cell in enumerate(line)).rstrip())
