"""Read queries for the grid and the command line: filtered, sorted, keyset-paginated pages.

One row is an image (a file) with its content's review state. An `ImageFilter` (db.filters)
becomes one WHERE clause; the sort becomes an ordered list of *segments*, each one index
walk in a single direction:

- "unreviewed first" splits the result into unreviewed, then reviewed images;
- sorting by an analyser's score splits it into images with that score (by score), then
  images without one (newest first), so the missing ones always come last.

Each segment orders by (key, image id) with both in the same direction, so a page boundary
is the pair (key, id) and the next page is `WHERE (key, id) < (last key, last id)`: no
OFFSET, no duplicates and no gaps even with equal keys, and the cost of page 500 is the cost
of page 1. Every function takes a session; none commits.

Tags: the tagger stores every tag down to a low floor (inference.catalog.TAG_STORE_FLOOR);
the tag threshold the person chose applies here, when reading (`tag_threshold`: a tag counts
when its score is at or above it; None counts every stored tag). So `tag:` filters, the
details pane and the export agree, and a new threshold needs no re-analysis.

A filter the database cannot run (a number beyond its integers, an expression deeper than
SQLite allows) raises FilterQueryError, a ValueError with a message for people, never a
driver error.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    exists,
    func,
    literal,
    literal_column,
    or_,
    select,
    tuple_,
)
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from db.dialect import (
    contains_text,
    dialect_name,
    glob_match,
    no_index,
    prompt_listing,
    ranking_rows,
    serial_page_reads,
)
from db.filters import (
    DECISIONS,
    SIMILARITY,
    STATUSES,
    FilterSyntaxError,
    ImageFilter,
    ScoreRange,
    format_filter,
    parse_filter,
    with_semantic,
)
from db.schema import (
    AnalysisResult,
    Content,
    Folder,
    Generation,
    Image,
    LoraUse,
    SavedFilter,
    Tag,
)

# Aliases keep the generated SQL readable in EXPLAIN QUERY PLAN output.
_i = Image.__table__.alias("i")
_c = Content.__table__.alias("c")
_results = AnalysisResult.__table__
_tags = Tag.__table__
_generation = Generation.__table__
_loras = LoraUse.__table__
_FROM = _i.outerjoin(_c, _c.c.id == _i.c.content_id)  # broken files may have no content

# Trigram indexes (SQLite's FTS5, PostgreSQL's pg_trgm) index three-character sequences:
# shorter text cannot use them.
_TRIGRAM = 3
# Bound parameters per IN list, well below SQLite's limit (32766).
_IN_CHUNK = 500


class FilterQueryError(ValueError):
    """The database cannot run this filter; the message says why, in the filter's terms."""


# SQLite's words for a statement beyond its limits (sqlite3.OperationalError), as opposed to
# a busy, damaged or missing database, which are not the filter's fault.
_LIMIT_WORDS = ("too large", "too many", "too complex", "too big", "too deep",
                "stack overflow")


@contextmanager
def _within_database_limits() -> Iterator[None]:
    try:
        yield
    except OverflowError as exc:
        raise FilterQueryError("a number in this filter is too large for the library "
                               f"database ({exc})") from exc
    except OperationalError as exc:
        reason = str(exc.orig) if exc.orig is not None else str(exc)
        if not any(words in reason.lower() for words in _LIMIT_WORDS):
            raise
        raise FilterQueryError(f"this filter is too complex for the library database "
                               f"({reason}); use fewer terms") from exc


@dataclass(frozen=True)
class GridRow:
    image_id: int
    content_id: int | None
    path: str
    name: str
    folder_id: int | None
    status: str
    error: str | None
    mtime_ns: int
    width: int | None
    height: int | None
    format: str | None
    sha256: str | None
    decision: str
    rating: int
    flagged: bool
    flag_nsfw: bool
    flag_incoherent: bool
    analysed: bool
    # The sort's value for this row: mtime_ns, name or the analyser's score (None when the
    # image has no score for the sorted analyser).
    sort_value: Any = None


@dataclass(frozen=True)
class PageCursor:
    """Where the previous page ended. Opaque: pass it back to fetch_page with the same filter."""

    segment: int
    key: Any
    image_id: int
    filter_signature: str


_ROW_COLUMNS = (
    _i.c.id, _i.c.content_id, _i.c.path, _i.c.name, _i.c.folder_id, _i.c.status, _i.c.error,
    _i.c.mtime_ns, _c.c.width, _c.c.height, _c.c.format, _c.c.sha256, _c.c.decision,
    _c.c.rating, _c.c.flagged, _c.c.flag_nsfw, _c.c.flag_incoherent, _c.c.analysed,
)


def _row(values: Sequence[Any], sort_value: Any) -> GridRow:
    (image_id, content_id, path, name, folder_id, status, error, mtime_ns, width, height, fmt,
     sha256, decision, rating, flagged, flag_nsfw, flag_incoherent, analysed) = values[:18]
    return GridRow(image_id, content_id, path, name, folder_id, status, error, mtime_ns, width,
                   height, fmt, sha256, decision or "none", rating or 0, bool(flagged),
                   bool(flag_nsfw), bool(flag_incoherent), bool(analysed), sort_value)


# --- filter -> WHERE --------------------------------------------------------------------------

class SemanticNotResolved(ValueError):
    """A like:/similar: filter reached the query layer without its ranking
    (library.search.resolve computes it)."""


# The most ranked contents one statement carries (two bound values each; SQLite allows 32,766).
MAX_RANKED = 10_000


def _ranked_cte(f: ImageFilter, dialect: str) -> Any:
    """The ranking as a CTE `ranked(content_id, score)` (db.dialect.ranking_rows)."""
    if f.ranking is None:
        raise SemanticNotResolved(
            f"the filter {format_filter(f)!r} has a like:/similar: term but no ranking; "
            "resolve it with library.search first")
    if len(f.ranking) > MAX_RANKED:
        raise ValueError(f"a ranking holds at most {MAX_RANKED:,} pictures")
    # An empty ranking becomes one row no content has (ids start at 1): VALUES cannot be empty.
    pairs = list(zip(f.ranking.content_ids, f.ranking.scores)) or [(0, 0.0)]
    return ranking_rows(dialect, pairs)


_no_index = no_index  # `+col` on SQLite (db.dialect): an index it must not pick


class _Membership:
    """Decides how each content-level criterion (a tag, a label, a score range, a prompt
    substring, a generator...) is tested, because the cheap form depends on how common it is.

    A common criterion (thousands of pictures) is cheapest as a correlated EXISTS probed per
    row while SQLite walks the sort index: 200 hits arrive after a short walk. A rare one is
    cheapest as `content_id IN (list)`, which lets SQLite start from the short list and sort
    it. Which one applies is measured, not guessed: the listing is counted up to a cap
    (a bounded index range scan, well under a millisecond to a few ms).
    """

    def __init__(self, session: Session, probe_above: int | None,
                 tag_threshold: float | None = None) -> None:
        self.session = session
        self.probe_above = probe_above  # None: always lists (counting visits every row anyway)
        self.tag_threshold = tag_threshold  # see the module docstring
        self._ranked: Any = None

    def ranked(self, f: ImageFilter) -> Any:
        """The filter's like:/similar: ranking as one CTE `ranked(content_id, score)`, shared
        by the WHERE clause and the sort of the statement being built."""
        if self._ranked is None:
            self._ranked = _ranked_cte(f, dialect_name(self.session))
        return self._ranked

    def tagged(self, condition: ColumnElement) -> Select:
        """SELECT content_id of the tags meeting `condition` that count (the threshold)."""
        stmt = select(_tags.c.content_id).where(condition)
        if self.tag_threshold is not None:
            stmt = stmt.where(_tags.c.score >= self.tag_threshold)
        return stmt

    def is_common(self, listing: Select) -> bool:
        if self.probe_above is None:
            return False
        # Selecting a constant lets SQLite count from the index alone (no table lookups).
        capped = listing.with_only_columns(literal(1), maintain_column_froms=True).limit(
            self.probe_above).subquery()
        count = self.session.execute(select(func.count()).select_from(capped)).scalar_one()
        return count >= self.probe_above

    def content_test(self, build: Callable[[Any], ColumnElement]) -> ColumnElement:
        """A test on the row's content columns, `build(columns)`. When common, the columns
        are marked unindexable so SQLite walks the sort index instead of reading thousands
        of contents by the index on the tested column and sorting them."""
        plain = Content.__table__
        if self.is_common(select(plain.c.id).where(build(plain.c))):
            return build(_Unindexed(_c))
        return build(_c.c)

    def has(self, listing: Select, probe: Select | None = None) -> ColumnElement:
        """Images whose content is in `listing` (SELECT content_id ...). `probe`: the same
        test correlated to the row, when it cannot be derived from the listing."""
        if self.is_common(listing):
            return exists(probe if probe is not None else _correlated(listing))
        return _i.c.content_id.in_(listing)

    @staticmethod
    def lacks(probe: Select) -> ColumnElement:
        """Images whose content fails the correlated `probe` (images without content too).
        A negative criterion passes most rows, so probing during the walk always wins."""
        return ~exists(probe)


class _Unindexed:
    """Column access that yields `+alias.column` (see _no_index)."""

    def __init__(self, alias: Any) -> None:
        self._alias = alias

    def __getattr__(self, name: str) -> ColumnElement:
        return _no_index(self._alias.c[name])


def _correlated(listing: Select) -> Select:
    return listing.where(listing.selected_columns[0] == _i.c.content_id)


def _prompt_like(term: str) -> Select:
    """Correlated: this row's prompt contains `term`, ignoring case (db.dialect)."""
    return select(_generation.c.content_id).where(
        _generation.c.content_id == _i.c.content_id,
        contains_text(_generation.c.prompt, term))


def _prompt_clauses(members: _Membership, terms: Sequence[str]) -> list[ColumnElement]:
    """Each term must be a substring of the prompt. Three characters or more: looked up in
    the trigram index (or probed with LIKE when common); shorter: LIKE only."""
    clauses: list[ColumnElement] = []
    for term in terms:
        probe = _prompt_like(term)
        if len(term) < _TRIGRAM:
            clauses.append(exists(probe))
            continue
        listing = prompt_listing(dialect_name(members.session), _generation, term)
        clauses.append(members.has(listing, probe))
    return clauses


def _value_matches(target: Any, values: Iterable[str]) -> ColumnElement:
    """Exact values, or glob patterns when they contain * (case-sensitive, like the index)."""
    exact = sorted(v for v in values if "*" not in v)
    patterns = sorted(v for v in values if "*" in v)
    clauses = [target.in_(exact)] if exact else []
    clauses += [glob_match(target, p) for p in patterns]
    return or_(*clauses)


def _score_bounds(column: Any, bounds: ScoreRange) -> list[ColumnElement]:
    clauses = [column.is_not(None)]
    if bounds.lo is not None:
        clauses.append(column > bounds.lo if bounds.lo_strict else column >= bounds.lo)
    if bounds.hi is not None:
        clauses.append(column < bounds.hi if bounds.hi_strict else column <= bounds.hi)
    return clauses


def _folder_clause(session: Session, f: ImageFilter) -> ColumnElement | None:
    if not f.folders and not f.folder_ids:
        return None
    watched = {path.rstrip("/\\") or path: folder_id
               for folder_id, path in session.execute(select(Folder.id, Folder.path))}
    ids = set(f.folder_ids)
    clauses: list[ColumnElement] = []
    for raw in f.folders:
        path = raw.rstrip("/\\") or raw
        if path in watched:  # a watched folder: its images, via ix_images_folder_mtime
            ids.add(watched[path])
            continue
        separator = "\\" if "\\" in path and "/" not in path else "/"
        prefix = path if path.endswith(separator) else path + separator
        upper = prefix[:-1] + chr(ord(separator) + 1)  # every path starting with prefix sorts below
        clauses.append(and_(_i.c.path >= prefix, _i.c.path < upper))
    if ids:
        clauses.append(_i.c.folder_id.in_(sorted(ids)))
    return or_(*clauses)


def _probe_threshold(session: Session, page_size: int | None) -> int | None:
    """Above how many matching pictures a criterion is probed rather than listed.

    Probing walks about page_size * library_size / matches rows; listing costs about
    `matches` rows (read, then sorted). Both cost the same at sqrt(page_size * library_size)
    (~4,500 for a 200-row page of 100,000 images)."""
    if page_size is None:
        return None
    library_size = session.execute(select(func.max(_i.c.id))).scalar() or 0
    return max(500, int(math.sqrt(page_size * library_size)))


def _decision_clause(members: _Membership, decisions: Iterable[str]) -> ColumnElement:
    decisions = sorted(decisions)
    if "none" not in decisions:
        return members.content_test(lambda c: c.decision.in_(decisions))
    # An image without content (unreadable file) has no decision: it counts as "none". That
    # OR hides the decision index from SQLite, so a rare state (the last unreviewed images
    # of a reviewed library) is listed by content id instead; a common one is probed per row.
    plain = Content.__table__
    listing = select(plain.c.id).where(plain.c.decision.in_(decisions))
    if members.is_common(listing):
        return or_(_no_index(_c.c.decision).in_(decisions), _c.c.id.is_(None))
    return or_(_i.c.content_id.in_(listing), _i.c.content_id.is_(None))


def _flag_clause(members: _Membership, flag: str, wanted: bool) -> ColumnElement:
    if wanted:
        return members.content_test(lambda c: getattr(c, flag) == True)  # noqa: E712
    return members.content_test(
        lambda c: or_(getattr(c, flag) == False, c.id.is_(None)))  # noqa: E712


def filter_clauses(session: Session, f: ImageFilter, *, for_page: int | None = None,
                   tag_threshold: float | None = None) -> list[ColumnElement]:
    """The WHERE terms (ANDed) that select the images `f` shows. `for_page`: the page size
    when the terms serve a sorted page (tunes how common criteria are tested)."""
    return _filter_clauses(session, f, _Membership(
        session, _probe_threshold(session, for_page), tag_threshold))


def _filter_clauses(session: Session, f: ImageFilter, members: _Membership
                    ) -> list[ColumnElement]:
    clauses: list[ColumnElement] = []
    if f.semantic:  # only the ranked contents (a short list: SQLite starts from it)
        clauses.append(_i.c.content_id.in_(select(members.ranked(f).c.content_id)))
    if f.statuses != STATUSES:
        statuses = sorted(f.statuses)
        # Most files are "ok": an index on status would only slow a sorted walk down.
        status = _no_index(_i.c.status) if "ok" in f.statuses else _i.c.status
        clauses.append(status.in_(statuses))
    folder = _folder_clause(session, f)
    if folder is not None:
        clauses.append(folder)
    if f.decisions and f.decisions != DECISIONS:
        clauses.append(_decision_clause(members, f.decisions))
    if f.flagged is not None:
        clauses.append(_flag_clause(members, "flagged", f.flagged))
    if f.analysed is not None:
        clauses.append(_flag_clause(members, "analysed", f.analysed))
    if f.rating_min is not None or f.rating_max is not None:
        low = f.rating_min if f.rating_min is not None else -1
        high = f.rating_max if f.rating_max is not None else 1 << 30
        clauses.append(members.content_test(lambda c: c.rating.between(low, high)))
    for analyser, labels in sorted(f.labels.items()):
        clauses.append(members.has(select(_results.c.content_id).where(
            _results.c.analyser == analyser, _results.c.label.in_(sorted(labels)))))
    for analyser, bounds in sorted(f.scores.items()):
        clauses.append(members.has(select(_results.c.content_id).where(
            _results.c.analyser == analyser, *_score_bounds(_results.c.score, bounds))))
    for tag in sorted(f.tags_all):
        clauses.append(members.has(members.tagged(_tags.c.tag == tag)))
    for group in f.tags_any:
        clauses.append(members.has(members.tagged(_tags.c.tag.in_(sorted(group)))))
    if f.tags_none:
        clauses.append(members.lacks(_correlated(
            members.tagged(_tags.c.tag.in_(sorted(f.tags_none))))))
    clauses += _prompt_clauses(members, f.prompt)
    clauses += [members.lacks(_prompt_like(term)) for term in f.prompt_none]
    for field, values in ((_generation.c.generator, f.generators),
                          (_generation.c.model, f.models), (_generation.c.sampler, f.samplers)):
        if values:
            clauses.append(members.has(
                select(_generation.c.content_id).where(_value_matches(field, values))))
    if f.loras:
        clauses.append(members.has(
            select(_loras.c.content_id).where(_value_matches(_loras.c.name, f.loras))))
    clauses += _family_clauses(members, f)
    return clauses


# --- families (stacks, near-duplicates: library.families) ------------------------------------

def _stacked() -> ColumnElement:
    """The picture's stack key is held by two or more pictures that have a readable file:
    another such picture exists — and, where this picture has no readable file itself, a
    second one. Correlated EXISTS probes on the stack-key index, so a page of `is:stacked`
    stops after a page of rows instead of first grouping every stack key (100 ms at 100k)."""
    # Explicit correlation: SQLAlchemy correlates on its own to the enclosing SELECT only,
    # and `c` is two levels up in the inner probes.
    def readable(content: Any) -> ColumnElement:
        return exists().where(Image.content_id == content.c.id, Image.status == "ok") \
            .correlate_except(Image)

    other = Content.__table__.alias("other")
    second = Content.__table__.alias("second")
    another_readable = exists().where(
        second.c.stack_key == _c.c.stack_key, second.c.id.not_in([_c.c.id, other.c.id]),
        readable(second)).correlate_except(second)
    return exists().where(
        other.c.stack_key == _c.c.stack_key, other.c.id != _c.c.id, readable(other),
        or_(readable(_c), another_readable)).correlate_except(other)


def _family_clauses(members: _Membership, f: ImageFilter) -> list[ColumnElement]:
    clauses: list[ColumnElement] = []
    if f.stacks:
        clauses.append(members.content_test(lambda c: c.stack_key.in_(sorted(f.stacks))))
    if f.stacked is not None:
        shared = _stacked()
        clauses.append(shared if f.stacked else or_(_c.c.id.is_(None),
                                                    _c.c.stack_key.is_(None), ~shared))
    if f.dup_groups:
        clauses.append(members.content_test(lambda c: c.dup_group.in_(sorted(f.dup_groups))))
    if f.duplicate is not None:
        if f.duplicate:
            clauses.append(members.content_test(lambda c: c.dup_group.is_not(None)))
        else:
            clauses.append(or_(_c.c.id.is_(None), _c.c.dup_group.is_(None)))
    return clauses


def matching_image_ids(session: Session, f: ImageFilter) -> Select:
    """SELECT of the ids of the images `f` shows (for queries elsewhere in db/)."""
    return select(_i.c.id).select_from(_FROM).where(*filter_clauses(session, f))


def matching_files(session: Session, f: ImageFilter, *columns: str) -> Select:
    """SELECT of the named `images` columns of the files `f` shows that have a picture (not
    broken), for queries elsewhere in db/ (db.report_queries)."""
    return (select(*(_i.c[name] for name in columns)).select_from(_FROM)
            .where(*filter_clauses(session, f), _i.c.content_id.is_not(None)))


# --- sort -> segments -------------------------------------------------------------------------

@dataclass(frozen=True)
class _Segment:
    where: tuple[ColumnElement, ...]
    key: Any  # the ordering expression; ties break by image id in the same direction
    descending: bool
    score_of: str | None = None  # join this analyser's result as `rs` (key = rs.score)
    shows_key: bool = True  # GridRow.sort_value = key (False: the row has no score)
    unscored_of: str | None = None  # the images lacking this analyser's score
    ranked_by: Any = None  # join the like:/similar: ranking CTE (key = its score)


def _segments(f: ImageFilter, members: _Membership) -> list[_Segment]:
    sort = f.sort
    if sort.field == "time":
        by_sort = [_Segment((), _i.c.mtime_ns, sort.descending)]
    elif sort.field == "name":
        by_sort = [_Segment((), _i.c.name, sort.descending)]
    elif sort.field == "stack":  # stacked images (by stack, best first), then the rest
        # The stored rank (stack, then best first: migration 0009) makes it an index walk.
        by_sort = [_Segment((_i.c.stack_rank.is_not(None),), _i.c.stack_rank, False),
                   _Segment((_i.c.stack_rank.is_(None),), _i.c.mtime_ns, True,
                            shows_key=False)]
    elif sort.field == SIMILARITY:
        ranked = members.ranked(f)
        by_sort = [_Segment((), ranked.c.score, sort.descending, ranked_by=ranked)]
    else:
        rs = _results.alias("rs")
        scored = _Segment((rs.c.score.is_not(None),), rs.c.score, sort.descending,
                          score_of=sort.field)
        unscored = _Segment((_Membership.lacks(_correlated(select(_results.c.content_id).where(
            _results.c.analyser == sort.field, _results.c.score.is_not(None)))),),
            _i.c.mtime_ns, True, shows_key=False, unscored_of=sort.field)
        by_sort = [scored, unscored]
    if not f.unreviewed_first:
        return by_sort
    wanted = f.decisions or DECISIONS
    parts: list[tuple[ColumnElement, ...]] = []
    if "none" in wanted:
        parts.append((_decision_clause(members, {"none"}),))
    if wanted - {"none"}:
        parts.append((_decision_clause(members, wanted - {"none"}),))
    return [replace(seg, where=part + seg.where) for part in parts for seg in by_sort]


def _anything_unscored(session: Session, analyser: str) -> bool:
    """Whether any image could lack `analyser`'s score, from two index counts (a few ms).

    Finding the unscored images means walking every image (no index can list missing rows),
    which is slow exactly when there are none, the usual state of an analysed library."""
    if session.execute(select(_i.c.id).where(_i.c.content_id.is_(None)).limit(1)).first():
        return True
    contents = session.execute(select(func.count()).select_from(_c)).scalar_one()
    scored = session.execute(select(func.count()).select_from(_results).where(
        _results.c.analyser == analyser, _results.c.score.is_not(None))).scalar_one()
    return scored < contents


def _segment_from(segment: _Segment) -> Any:
    if segment.ranked_by is not None:
        return _FROM.join(segment.ranked_by, segment.ranked_by.c.content_id == _i.c.content_id)
    if segment.score_of is None:
        return _FROM
    rs = segment.key.table
    return _FROM.join(rs, and_(rs.c.content_id == _i.c.content_id,
                               rs.c.analyser == segment.score_of))


def _after(segment: _Segment, key: Any, image_id: int) -> ColumnElement:
    """Rows strictly after (key, image_id) in the segment's order."""
    if segment.score_of is None and segment.ranked_by is None:
        # A row value over the index's own columns: SQLite seeks straight to the position.
        if segment.descending:
            return tuple_(segment.key, _i.c.id) < tuple_(literal(key), literal(image_id))
        return tuple_(segment.key, _i.c.id) > tuple_(literal(key), literal(image_id))
    # Key and id live in different tables: spell it out so the key bound can use the index.
    if segment.descending:
        return and_(segment.key <= key, or_(segment.key < key, _i.c.id < image_id))
    return and_(segment.key >= key, or_(segment.key > key, _i.c.id > image_id))


def _before(segment: _Segment, key: Any, image_id: int) -> ColumnElement:
    """Rows strictly before (key, image_id) in the segment's order."""
    if segment.descending:
        return or_(segment.key > key, and_(segment.key == key, _i.c.id > image_id))
    return or_(segment.key < key, and_(segment.key == key, _i.c.id < image_id))


def _up_to(segment: _Segment, key: Any, image_id: int) -> ColumnElement:
    """Rows up to and including (key, image_id) in the segment's order: an upper bound the
    index walk stops at (written like _after, so SQLite can use it as one)."""
    if segment.score_of is None:
        if segment.descending:
            return tuple_(segment.key, _i.c.id) >= tuple_(literal(key), literal(image_id))
        return tuple_(segment.key, _i.c.id) <= tuple_(literal(key), literal(image_id))
    if segment.descending:
        return and_(segment.key >= key, or_(segment.key > key, _i.c.id >= image_id))
    return and_(segment.key <= key, or_(segment.key < key, _i.c.id <= image_id))


def _signature(f: ImageFilter) -> str:
    return hashlib.sha1(format_filter(f).encode()).hexdigest()[:16]


def _check_cursor(f: ImageFilter, cursor: PageCursor | None) -> str:
    signature = _signature(f)
    if cursor is not None and cursor.filter_signature != signature:
        raise ValueError("this cursor belongs to a different filter or sort; start over")
    return signature


def _segment_select(segment: _Segment, base: list[ColumnElement]) -> Select:
    return (select(*_ROW_COLUMNS, segment.key.label("sort_key"))
            .select_from(_segment_from(segment)).where(*base, *segment.where))


def _ordered(stmt: Select, segment: _Segment) -> Select:
    if segment.descending:
        return stmt.order_by(segment.key.desc(), _i.c.id.desc())
    return stmt.order_by(segment.key.asc(), _i.c.id.asc())


def _not_among(content_ids: Collection[int]) -> ColumnElement:
    """Images whose content is none of these (images without content too)."""
    ids = sorted(set(content_ids))
    chunks = [_i.c.content_id.not_in(ids[k:k + _IN_CHUNK]) for k in range(0, len(ids), _IN_CHUNK)]
    return or_(_i.c.content_id.is_(None), and_(*chunks))


# --- public API -------------------------------------------------------------------------------

def fetch_page(session: Session, f: ImageFilter, after: PageCursor | None = None,
               limit: int = 200, *, tag_threshold: float | None = None
               ) -> tuple[list[GridRow], PageCursor | None]:
    """The next `limit` rows after `after` (None: the first page), and a cursor for the page
    after them (None when there are no more rows)."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    signature = _check_cursor(f, after)
    serial_page_reads(session)
    with _within_database_limits():
        members = _Membership(session, _probe_threshold(session, limit), tag_threshold)
        segments = _segments(f, members)
        base = _filter_clauses(session, f, members)
        found: list[tuple[int, Any, GridRow]] = []  # (segment, key, row)
        first = after.segment if after is not None else 0
        for index in range(first, len(segments)):
            segment = segments[index]
            if segment.unscored_of and not _anything_unscored(session, segment.unscored_of):
                continue
            stmt = _segment_select(segment, base)
            if after is not None and index == after.segment:
                stmt = stmt.where(_after(segment, after.key, after.image_id))
            # One row beyond the page tells whether there is a next page.
            stmt = _ordered(stmt, segment).limit(limit + 1 - len(found))
            for values in session.execute(stmt):
                key = values[-1]
                found.append((index, key, _row(values, key if segment.shows_key else None)))
            if len(found) > limit:
                break
    if len(found) <= limit:
        return [row for _, _, row in found], None
    index, key, row = found[limit - 1]
    return ([row for _, _, row in found[:limit]],
            PageCursor(index, key, row.image_id, signature))


def count_images(session: Session, f: ImageFilter, *,
                 tag_threshold: float | None = None) -> int:
    """How many images `f` shows."""
    with _within_database_limits():
        stmt = select(func.count()).select_from(_FROM).where(
            *filter_clauses(session, f, tag_threshold=tag_threshold))
        return int(session.execute(stmt).scalar_one())


def _locate(session: Session, segments: list[_Segment], base: list[ColumnElement],
            image_id: int) -> tuple[int, Any] | None:
    for index, segment in enumerate(segments):
        stmt = (select(segment.key).select_from(_segment_from(segment))
                .where(*base, *segment.where, _i.c.id == image_id))
        hit = session.execute(stmt).first()
        if hit is not None:
            return index, hit[0]
    return None


def locate(session: Session, f: ImageFilter, image_id: int, *,
           tag_threshold: float | None = None) -> PageCursor | None:
    """Where `image_id` sits in the result of `f`, as a cursor (the rows after it follow
    it), or None when `f` does not show it."""
    with _within_database_limits():
        members = _Membership(session, None, tag_threshold)
        found = _locate(session, _segments(f, members), _filter_clauses(session, f, members),
                        image_id)
    return None if found is None else PageCursor(found[0], found[1], image_id, _signature(f))


def position_of(session: Session, f: ImageFilter, image_id: int, *,
                tag_threshold: float | None = None) -> int | None:
    """The 0-based row of `image_id` in the result of `f`, or None when `f` does not show it."""
    with _within_database_limits():
        members = _Membership(session, None, tag_threshold)
        base = _filter_clauses(session, f, members)
        segments = _segments(f, members)
        found = _locate(session, segments, base, image_id)
        if found is None:
            return None
        index, key = found
        earlier = 0
        for previous in segments[:index]:
            earlier += session.execute(select(func.count()).select_from(
                _segment_from(previous)).where(*base, *previous.where)).scalar_one()
        segment = segments[index]
        before = session.execute(select(func.count()).select_from(_segment_from(segment)).where(
            *base, *segment.where, _before(segment, key, image_id))).scalar_one()
        return earlier + before


def next_unreviewed(session: Session, f: ImageFilter, after: PageCursor | None, *,
                    skip_contents: Collection[int] = (),
                    tag_threshold: float | None = None) -> PageCursor | None:
    """The first unreviewed image after `after` (None: from the top) in the result of `f`,
    as a cursor (its `image_id` is the image), or None when there is none after it.
    `skip_contents`: pictures to treat as reviewed (decisions not written yet).

    One keyset query per segment, LIMIT 1: how the unreviewed test is made depends on how
    common unreviewed pictures are (_Membership), so the last unreviewed image of 100,000
    is found from the decision index rather than by walking every row."""
    signature = _check_cursor(f, after)
    with _within_database_limits():
        members = _Membership(session, _probe_threshold(session, 1), tag_threshold)
        segments = _segments(f, members)
        base = _filter_clauses(session, f, members) + [_decision_clause(members, {"none"})]
        if skip_contents:
            base.append(_not_among(skip_contents))
        first = after.segment if after is not None else 0
        for index in range(first, len(segments)):
            segment = segments[index]
            if segment.unscored_of and not _anything_unscored(session, segment.unscored_of):
                continue
            stmt = (select(_i.c.id, segment.key).select_from(_segment_from(segment))
                    .where(*base, *segment.where))
            if after is not None and index == after.segment:
                stmt = stmt.where(_after(segment, after.key, after.image_id))
            hit = session.execute(_ordered(stmt, segment).limit(1)).first()
            if hit is not None:
                return PageCursor(index, hit[1], hit[0], signature)
    return None


def image_ids_through(session: Session, f: ImageFilter, after: PageCursor | None,
                      through: PageCursor, *, tag_threshold: float | None = None) -> list[int]:
    """The ids of the rows after `after` (None: from the top) up to and including
    `through`, in order: what the grid appends to reach a row far below what it loaded,
    in one read of ids only (their rows are read when shown). Empty when `through` does
    not come after `after`."""
    _check_cursor(f, after)
    _check_cursor(f, through)
    first = after.segment if after is not None else 0
    ids: list[int] = []
    with _within_database_limits():
        # Every criterion is probed while walking the sort index: the rows up to `through`
        # are read anyway, and walking needs no sort.
        members = _Membership(session, 1, tag_threshold)
        segments = _segments(f, members)
        base = _filter_clauses(session, f, members)
        for index in range(first, through.segment + 1):
            segment = segments[index]
            if index < through.segment and segment.unscored_of \
                    and not _anything_unscored(session, segment.unscored_of):
                continue
            stmt = select(_i.c.id).select_from(_segment_from(segment)).where(
                *base, *segment.where)
            if after is not None and index == after.segment:
                stmt = stmt.where(_after(segment, after.key, after.image_id))
            if index == through.segment:
                stmt = stmt.where(_up_to(segment, through.key, through.image_id))
            ids.extend(_fetch_ids(session, _ordered(stmt, segment)))
    return ids


def _fetch_ids(session: Session, stmt: Select) -> list[int]:
    """The first column of every row, read with the driver's own fetchall.

    Hand-written on purpose: for 100,000 bare ids SQLAlchemy's result processing cost three
    times the query itself (bench_scroll: ~100 ms of GUI-thread CPU). The statement is
    compiled by SQLAlchemy as usual and runs on the session's own connection, inside its
    transaction."""
    connection = session.connection()
    compiled = stmt.compile(dialect=connection.dialect,
                            compile_kwargs={"render_postcompile": True})
    params = compiled.construct_params()
    arguments: Any = (tuple(params[name] for name in compiled.positiontup or ())
                      if compiled.positional else params)  # qmark (SQLite), pyformat (psycopg)
    cursor = connection.connection.cursor()
    try:
        cursor.execute(str(compiled), arguments)
        return [row[0] for row in cursor.fetchall()]
    finally:
        cursor.close()


def rows_by_image_ids(session: Session, image_ids: Iterable[int],
                      f: ImageFilter | None = None) -> list[GridRow]:
    """Fresh rows for these images (in the given order; ids no longer present are left out),
    for repainting rows in place. `f` only decides what `sort_value` holds."""
    ids = list(dict.fromkeys(image_ids))
    if not ids:
        return []
    sort_field = f.sort.field if f is not None else "time"
    source: Any = _FROM
    if sort_field == "time":
        key: Any = _i.c.mtime_ns
    elif sort_field == "name":
        key = _i.c.name
    elif sort_field == "stack":
        key = _i.c.stack_rank
    elif sort_field == SIMILARITY:
        key = _i.c.content_id  # the score comes from the ranking, below
    else:
        rs = _results.alias("rs")
        source = _FROM.outerjoin(rs, and_(rs.c.content_id == _i.c.content_id,
                                          rs.c.analyser == sort_field))
        key = rs.c.score
    by_id: dict[int, GridRow] = {}
    for start in range(0, len(ids), 500):  # stay well below SQLite's bound-parameter limit
        chunk = ids[start:start + 500]
        stmt = select(*_ROW_COLUMNS, key).select_from(source).where(_i.c.id.in_(chunk))
        for row_values in session.execute(stmt):
            key_value = row_values[-1]
            if sort_field == SIMILARITY:
                key_value = f.ranking.score_of(key_value) if f and f.ranking else None
            by_id[row_values[0]] = _row(row_values, key_value)
    return [by_id[i] for i in ids if i in by_id]


def matching_content_ids(session: Session, f: ImageFilter,
                         among: Sequence[int] | None = None) -> list[int]:
    """Content ids of the images `f` shows, ignoring its like:/similar: term (the semantic
    ranker ranks only these when other terms narrow the view); `among`: only these ids
    (at most MAX_RANKED) are checked."""
    plain = with_semantic(f)
    clauses = [*filter_clauses(session, plain), _i.c.content_id.is_not(None)]
    if among is not None:
        if len(among) > MAX_RANKED:
            raise ValueError(f"at most {MAX_RANKED:,} ids at a time")
        clauses.append(_i.c.content_id.in_(list(among)))
    stmt = select(_i.c.content_id).select_from(_FROM).where(*clauses).distinct()
    return list(session.scalars(stmt))


def folder_counts(session: Session, statuses: Iterable[str] = ("ok",)) -> dict[int, int]:
    """Images per watched folder (by folder id), counting only the given statuses."""
    stmt = (select(_i.c.folder_id, func.count()).where(
        _i.c.folder_id.is_not(None), _no_index(_i.c.status).in_(sorted(statuses)))
        .group_by(_i.c.folder_id))
    return {folder_id: count for folder_id, count in session.execute(stmt)}


def tag_suggestions(session: Session, prefix: str, limit: int = 20, *,
                    tag_threshold: float | None = None) -> list[tuple[str, int]]:
    """Tags starting with `prefix`, most used first, with how many pictures the tagger gave
    each (every stored tag). With `tag_threshold`, only tags that some picture carries at
    or above it are suggested (a suggestion always finds something)."""
    stmt = select(_tags.c.tag, func.count(func.distinct(_tags.c.content_id)).label("n"))
    if prefix:
        # A range on the (tag, content_id) index; LIKE would not use it (case-insensitive).
        upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        stmt = stmt.where(_tags.c.tag >= prefix, _tags.c.tag < upper)
    # Ranked from the (tag, content_id) index alone: counting at the threshold would read
    # every tag row (1.5 s for an empty prefix at 100,000 images); the threshold is checked
    # for the few candidates instead, one index probe each.
    stmt = stmt.group_by(_tags.c.tag).order_by(literal_column("n").desc(), _tags.c.tag)
    if tag_threshold is None:
        return [(tag, count) for tag, count in session.execute(stmt.limit(limit))]
    found: list[tuple[str, int]] = []
    for tag, count in session.execute(stmt.limit(limit * _SUGGESTION_CANDIDATES)).all():
        counts = session.execute(select(literal(1)).where(
            _tags.c.tag == tag, _tags.c.score >= tag_threshold).limit(1)).first()
        if counts is not None:
            found.append((tag, count))
            if len(found) == limit:
                break
    return found


# Candidates read per suggestion wanted, before the threshold check drops some.
_SUGGESTION_CANDIDATES = 4


_DISTINCT_COLUMNS = {"generator": Generation.generator, "model": Generation.model,
                     "sampler": Generation.sampler}


def distinct_values(session: Session, field: str) -> list[str]:
    """Every value of generation.<field> present in the library, sorted ("generator",
    "model" or "sampler"): the filter bar's choices."""
    try:
        target = _DISTINCT_COLUMNS[field]
    except KeyError:
        raise ValueError(f"distinct_values: unknown field {field!r} "
                         f"(use {', '.join(_DISTINCT_COLUMNS)})") from None
    stmt = select(target).where(target.is_not(None)).distinct().order_by(target)
    return list(session.scalars(stmt))


def label_choices(session: Session) -> dict[str, set[str]]:
    """analyser -> every label it gave in this library (the filter bar's label choices)."""
    labels: dict[str, set[str]] = {}
    for analyser, label in session.execute(
            select(_results.c.analyser, _results.c.label)
            .where(_results.c.label.is_not(None)).distinct()):
        labels.setdefault(analyser, set()).add(label)
    return labels


def saved_filters(session: Session) -> list[tuple[str, str]]:
    """(name, filter text) of every saved filter, by name."""
    return [(row.name, row.query) for row in
            session.scalars(select(SavedFilter).order_by(SavedFilter.name))]


def save_filter(session: Session, name: str, text: str) -> None:
    """Save (or replace) a named filter. The text is checked first: FilterSyntaxError if it
    does not parse. Stored as written, so the user's spelling survives."""
    name = name.strip()
    if not name:
        raise ValueError("a saved filter needs a name")
    parse_filter(text)
    existing = session.scalars(select(SavedFilter).where(SavedFilter.name == name)).first()
    if existing is None:
        session.add(SavedFilter(name=name, query=text))
    else:
        existing.query = text
    session.flush()


def delete_saved_filter(session: Session, name: str) -> bool:
    """Delete a saved filter; False when there was none by that name."""
    existing = session.scalars(select(SavedFilter).where(SavedFilter.name == name)).first()
    if existing is None:
        return False
    session.delete(existing)
    session.flush()
    return True


__all__ = [
    "FilterQueryError", "FilterSyntaxError", "GridRow", "MAX_RANKED", "PageCursor",
    "SemanticNotResolved", "count_images", "delete_saved_filter", "distinct_values",
    "fetch_page", "filter_clauses", "folder_counts", "image_ids_through", "label_choices",
    "locate", "matching_content_ids", "matching_image_ids", "next_unreviewed", "position_of",
    "rows_by_image_ids", "save_filter", "saved_filters", "tag_suggestions",
]
