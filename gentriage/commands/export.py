"""`gentriage export [--format csv|jsonl] [--filter TEXT] [-o FILE]`: one row per image.

Each row: the file (path, status, size of the picture, SHA-256), the review (decision, rating),
the flags, every analyser's label and score (and the aesthetic analyser's prompt adherence),
the tags at or above the tag threshold, and the generation fields. The filter uses the same
syntax as the app's filter bar (db.filters), and rows stream out page by page with keyset
pagination (db.queries.fetch_page), so a library of any size exports in constant memory.

Cells come from files (names, prompts), so they pass library.safe_output: in CSV a text cell
starting with = + - @ tab or CR gets a leading ' (a spreadsheet shows it as text instead of
running it as a formula) and control characters other than line breaks appear as `\\xNN`;
JSON lines are exact, valid UTF-8 with control characters as JSON escapes.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import IO, Any

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

PAGE_SIZE = 500
FILE_COLUMNS = ["path", "name", "status", "error", "width", "height", "format", "sha256"]
REVIEW_COLUMNS = ["decision", "rating", "flagged", "flag_nsfw", "flag_incoherent", "analysed"]
# Families (library.families): the stack id (null without a prompt) and the near-duplicate
# group (null without a near-duplicate) — the values `stack:ID` and `dup:GROUP` filter on.
FAMILY_COLUMNS = ["stack", "duplicate_group"]
GENERATION_COLUMNS = ["generator", "prompt", "negative_prompt", "seed", "steps", "sampler",
                      "scheduler", "cfg_scale", "model", "model_hash", "loras"]


def analyser_columns(analysers: Sequence[str]) -> list[str]:
    columns = []
    for analyser in analysers:
        columns += [f"{analyser}_label", f"{analyser}_score"]
        if analyser == "aesthetic":
            columns.append("aesthetic_prompt_adherence")
    return columns


def columns(analysers: Sequence[str]) -> list[str]:
    return [*FILE_COLUMNS, *REVIEW_COLUMNS, *FAMILY_COLUMNS, *analyser_columns(analysers), "tags",
            *GENERATION_COLUMNS]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("csv", "jsonl"), default="csv",
                        help="CSV with a header row (default) or one JSON object per line")
    parser.add_argument("--filter", default="", metavar="TEXT",
                        help="the app's filter syntax, e.g. 'is:flagged aesthetic>=6' "
                             "(default: every readable image)")
    parser.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    add_storage_options(parser)


def _extras(session: Any, content_ids: list[int], tag_threshold: float) -> dict[str, dict]:
    """Results, tags, generation and LoRAs of one page's contents, keyed by kind then id."""
    from sqlalchemy import select

    from db.families import family_columns
    from db.schema import AnalysisResult, Generation, LoraUse, Tag

    results: dict[int, dict[str, AnalysisResult]] = defaultdict(dict)
    tags: dict[int, list[tuple[str, float]]] = defaultdict(list)
    loras: dict[int, list[tuple[str, float | None]]] = defaultdict(list)
    if not content_ids:
        return {"results": results, "tags": tags, "generation": {}, "loras": loras,
                "families": {}}
    for result in session.scalars(select(AnalysisResult)
                                  .where(AnalysisResult.content_id.in_(content_ids))):
        results[result.content_id][result.analyser] = result
    for cid, tag, score in session.execute(
            select(Tag.content_id, Tag.tag, Tag.score)
            .where(Tag.content_id.in_(content_ids), Tag.score >= tag_threshold)
            .order_by(Tag.content_id, Tag.score.desc(), Tag.tag)):
        tags[cid].append((tag, score))
    generation = {g.content_id: g for g in session.scalars(
        select(Generation).where(Generation.content_id.in_(content_ids)))}
    for cid, name, weight in session.execute(
            select(LoraUse.content_id, LoraUse.name, LoraUse.weight)
            .where(LoraUse.content_id.in_(content_ids)).order_by(LoraUse.id)):
        loras[cid].append((name, weight))
    return {"results": results, "tags": tags, "generation": generation, "loras": loras,
            "families": family_columns(session, content_ids)}


def _record(row: Any, extras: dict[str, dict], analysers: Sequence[str]) -> dict[str, Any]:
    cid = row.content_id
    record: dict[str, Any] = {name: getattr(row, name) for name in FILE_COLUMNS}
    record.update({name: getattr(row, name) for name in REVIEW_COLUMNS})
    record["stack"], record["duplicate_group"] = extras["families"].get(cid, (None, None))
    results = extras["results"].get(cid, {})
    for analyser in analysers:
        result = results.get(analyser)
        usable = result is not None and result.error is None
        record[f"{analyser}_label"] = result.label if usable else None
        record[f"{analyser}_score"] = result.score if usable else None
        if analyser == "aesthetic":
            record["aesthetic_prompt_adherence"] = (
                (result.scores or {}).get("prompt_adherence") if usable else None)
    record["tags"] = {tag: round(score, 4) for tag, score in extras["tags"].get(cid, [])}
    generation = extras["generation"].get(cid)
    for name in GENERATION_COLUMNS[:-1]:
        record[name] = getattr(generation, name) if generation is not None else None
    record["loras"] = [{"name": n, "weight": w} for n, w in extras["loras"].get(cid, [])]
    return record


def iter_records(session_factory: Any, image_filter: Any, analysers: Sequence[str],
                 tag_threshold: float) -> Iterator[dict[str, Any]]:
    """Every row of the filter, one keyset page (and one short read session) at a time."""
    from db.queries import fetch_page

    cursor = None
    while True:
        with session_factory() as session:
            rows, cursor = fetch_page(session, image_filter, after=cursor, limit=PAGE_SIZE,
                                      tag_threshold=tag_threshold)
            extras = _extras(session, [r.content_id for r in rows if r.content_id is not None],
                             tag_threshold)
        for row in rows:
            yield _record(row, extras, analysers)
        if cursor is None:
            return


def _csv_value(value: Any) -> Any:
    if isinstance(value, dict):  # tags
        return "; ".join(f"{tag}:{score:.2f}" for tag, score in value.items())
    if isinstance(value, list):  # loras
        return "; ".join(f"{item['name']}:{item['weight']}" if item["weight"] is not None
                         else item["name"] for item in value)
    if isinstance(value, bool):
        return int(value)
    return "" if value is None else value


def write(records: Iterator[dict[str, Any]], out: IO[str], fmt: str,
          header: list[str]) -> int:
    from library.safe_output import csv_cell, json_text, terminal_text

    count = 0
    if fmt == "csv":
        writer = csv.writer(out)
        writer.writerow(header)
        for record in records:
            cells = [csv_cell(_csv_value(record[name])) for name in header]
            # Control characters are shown as \xNN even in a file: CSV is read on terminals
            # (`| head`, `less`) as often as in spreadsheets. Line breaks stay (quoted).
            writer.writerow([terminal_text(c, multiline=True) if isinstance(c, str) else c
                             for c in cells])
            count += 1
    else:
        for record in records:
            out.write(json_text(record) + "\n")
            count += 1
    return count


def run(args: argparse.Namespace) -> int:
    from db.engine import session_factory
    from db.filters import KNOWN_ANALYSERS
    from library.settings import Settings

    image_filter = filter_option("export", args.filter)
    if image_filter is None:
        return EXIT_USAGE
    locations = resolve_locations("export", args)
    if locations is None:
        return EXIT_USAGE
    engine = open_library_for("export", locations.database)
    if engine is None:
        return EXIT_SOME_BROKEN
    if image_filter.semantic:  # like:/similar: are ranked first (library.search)
        from library.search import SearchUnavailable, SemanticSearch

        try:
            image_filter = SemanticSearch(session_factory(engine),
                                          locations.models).resolve(image_filter)
        except SearchUnavailable as exc:
            print(f"gentriage export: {exc}", file=sys.stderr)
            engine.dispose()
            return EXIT_SOME_BROKEN
    settings = Settings.load(locations.settings)
    analysers = list(KNOWN_ANALYSERS)
    records = iter_records(session_factory(engine), image_filter, analysers,
                           settings.thresholds.tagger)
    try:
        if args.output:
            with open(args.output, "w", encoding="utf-8", newline="") as out:
                count = write(records, out, args.format, columns(analysers))
            say(f"exported {count} image(s) to {os.fsdecode(args.output)}", file=sys.stderr)
        else:
            write(records, sys.stdout, args.format, columns(analysers))
    except OSError as exc:
        warn("export", f"cannot write {args.output or 'stdout'}: {exc.strerror or exc}")
        return EXIT_SOME_BROKEN
    finally:
        engine.dispose()
    return EXIT_OK
