"""`gentriage stats [--by model|sampler|lora|generator|folder] [--json]`: good-image rates.

Per group: how many pictures, the share judged coherent (of those the coherence analyser
judged), the share flagged, the shares accepted and rejected, and the mean aesthetic and
prompt-adherence (CLIPScore) scores. A picture counts once per group even when several files
show it; only pictures with a readable file (status ok) count.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, dataclass, replace
from typing import Any

from gentriage.cli import (
    EXIT_OK,
    EXIT_SOME_BROKEN,
    EXIT_USAGE,
    add_storage_options,
    open_library_for,
    resolve_locations,
)

GROUPINGS = ("model", "sampler", "lora", "generator", "folder")
UNKNOWN = "(unknown)"
# Where the aesthetic analyser stores CLIPScore (inference/aesthetic.py).
PROMPT_ADHERENCE_KEY = "prompt_adherence"


@dataclass
class GroupStats:
    group: str
    images: int
    coherent: float | None  # share of coherence-judged pictures labelled coherent
    flagged: float
    accepted: float
    rejected: float
    aesthetic: float | None
    prompt_adherence: float | None


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--by", choices=GROUPINGS, default="model",
                        help="what to group by (default: model)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_storage_options(parser)


def compute(session: Any, by: str) -> list[GroupStats]:
    """One row per group, largest group first."""
    from sqlalchemy import Select, and_, case, distinct, func, select
    from sqlalchemy.orm import aliased

    from db.schema import AnalysisResult, Content, Folder, Generation, Image, LoraUse

    ok = Image.status == "ok"
    grouped: Select[str | None, int | None]
    if by == "folder":
        grouped = (select(Folder.path.label("grp"), Image.content_id.label("cid"))
                   .select_from(Image).outerjoin(Folder, Folder.id == Image.folder_id))
    else:
        column = {"model": Generation.model, "sampler": Generation.sampler,
                  "generator": Generation.generator, "lora": LoraUse.name}[by]
        grouped = select(column.label("grp"), Image.content_id.label("cid")).select_from(Image)
        grouped = grouped.outerjoin(Generation, Generation.content_id == Image.content_id)
        if by == "lora":
            grouped = grouped.outerjoin(LoraUse, LoraUse.content_id == Image.content_id)
    # distinct (group, content): duplicates of one picture, or a LoRA listed twice, count once.
    pairs = grouped.where(ok, Image.content_id.is_not(None)).distinct().subquery()

    coherence = aliased(AnalysisResult)
    aesthetic = aliased(AnalysisResult)
    images = func.count(distinct(pairs.c.cid))

    def share(condition: Any) -> Any:
        return func.avg(case((condition, 1.0), else_=0.0))

    judged = coherence.label.is_not(None)
    adherence = func.json_extract(aesthetic.scores, f"$.{PROMPT_ADHERENCE_KEY}")
    query = (
        select(pairs.c.grp, images,
               func.sum(case((coherence.label == "coherent", 1), else_=0))
               * 1.0 / func.nullif(func.sum(case((judged, 1), else_=0)), 0),
               share(Content.flagged), share(Content.decision == "accepted"),
               share(Content.decision == "rejected"),
               func.avg(aesthetic.score), func.avg(adherence))
        .select_from(pairs)
        .join(Content, Content.id == pairs.c.cid)
        .outerjoin(coherence, and_(coherence.content_id == pairs.c.cid,
                                   coherence.analyser == "coherence",
                                   coherence.error.is_(None)))
        .outerjoin(aesthetic, and_(aesthetic.content_id == pairs.c.cid,
                                   aesthetic.analyser == "aesthetic",
                                   aesthetic.error.is_(None)))
        .group_by(pairs.c.grp)
        .order_by(images.desc(), pairs.c.grp)
    )
    return [GroupStats(group if group is not None else UNKNOWN, n, coherent, flagged or 0.0,
                       accepted or 0.0, rejected or 0.0, mean_aesthetic, mean_adherence)
            for group, n, coherent, flagged, accepted, rejected, mean_aesthetic, mean_adherence
            in session.execute(query)]


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _number(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


COLUMNS = ("images", "coherent", "flagged", "accepted", "rejected", "aesthetic",
           "prompt adherence")


def _cells(row: GroupStats) -> list[str]:
    return [str(row.images), _percent(row.coherent), _percent(row.flagged),
            _percent(row.accepted), _percent(row.rejected), _number(row.aesthetic),
            _number(row.prompt_adherence, 1)]


def _print_table(rows: list[GroupStats], by: str) -> None:
    from library.safe_output import terminal_text

    # Group names are model, sampler, LoRA and folder names from the files: shown, not run.
    rows = [replace(row, group=terminal_text(row.group)) for row in rows]
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        table = Table(title=f"GenTriage stats by {by}")
        table.add_column(by, overflow="fold")
        for name in COLUMNS:
            table.add_column(name, justify="right")
        for row in rows:
            table.add_row(Text(row.group), *_cells(row))  # Text: no [markup] in names
        Console().print(table)
        return
    header = [by, *COLUMNS]
    body = [[row.group, *_cells(row)] for row in rows]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    for line in [header, *body]:
        print("  ".join(cell.ljust(widths[0]) if i == 0 else cell.rjust(widths[i])
                        for i, cell in enumerate(line)).rstrip())


def run(args: argparse.Namespace) -> int:
    from db.engine import session_factory
    from library.safe_output import json_text

    locations = resolve_locations("stats", args)
    if locations is None:
        return EXIT_USAGE
    engine = open_library_for("stats", locations.database)
    if engine is None:
        return EXIT_SOME_BROKEN
    try:
        with session_factory(engine)() as session:
            rows = compute(session, args.by)
    finally:
        engine.dispose()
    if args.json:
        print(json_text({"by": args.by, "groups": [asdict(r) for r in rows]}, indent=2))
    elif not rows:
        print("no images in the library yet")
    else:
        _print_table(rows, args.by)
    return EXIT_OK
