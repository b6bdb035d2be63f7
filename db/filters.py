"""The one filter syntax shared by the app's filter bar, saved filters and the command line.

`parse_filter(text) -> ImageFilter` and `format_filter(f) -> str` are inverses:
`parse_filter(format_filter(f)) == f` for every filter. The syntax (README.md, "Filters"):

    is:unreviewed is:flagged tag:cat -tag:dog tag:a|b nsfw-vit:nsfw aesthetic>=6
    coherence:incoherent prompt:"red hair" generator:comfyui model:"sdxl base"
    folder:/path status:broken sort:-aesthetic sort:unreviewed
    stack:0123456789abcdef is:stacked sort:stack dup:42 is:duplicate
    like:"red umbrella" similar:1234 sort:-similarity

A term is `[-]key:value`, `key>=number` (also `>`, `<=`, `<`), or a bare word (a substring the
prompt must contain). Values with spaces go in double quotes; `a|b` means either. Unknown
keys are errors, not silent prompt words, so a typo never quietly returns nothing.

Limits (README "Filters"): a filter holds at most MAX_FILTER_VALUES values in all (each term
counts its `a|b` alternatives), so the SQL stays within SQLite's expression depth; rating
bounds lie within ±MAX_RATING_NUMBER and folder ids within SQLite's integers. Beyond them
FilterSyntaxError says so, instead of a database error later.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from db.ranking import Ranking
from inference.catalog import FILTERABLE_ANALYSERS

# The analysers a filter may name.
KNOWN_ANALYSERS: tuple[str, ...] = FILTERABLE_ANALYSERS
DECISIONS: frozenset[str] = frozenset({"none", "accepted", "rejected"})
STATUSES: frozenset[str] = frozenset({"ok", "broken", "missing"})
DEFAULT_STATUSES: frozenset[str] = frozenset({"ok"})

# Each value adds about two levels to the SQL expression tree (an OR of patterns, an AND of
# prompt words) and SQLite stops at a depth of 1000: 256 values keep well inside that
# (tests/db/test_filters.py runs the worst kinds at the limit against a real database).
MAX_FILTER_VALUES = 256
# Integers must fit SQLite's 64-bit INTEGER. Ratings are 0..5: a bound beyond ±1e15 can only
# be a mistake (and would not fit once rounded); scores are compared as doubles, so any
# finite score bound works.
MAX_RATING_NUMBER = 1e15
MAX_FOLDER_ID = 2**63 - 1

# Families (library.families): `stack:ID` (a 16-hex-digit stack key), `dup:GROUP` (a
# duplicate group's number), `is:stacked`, `is:duplicate`, `sort:stack`.
_FAMILY_KEYS = ("stack", "dup")
_STACK_ID_RE = re.compile(r"^[0-9a-f]{16}$")
_IS_FAMILY = {"stacked": "stacked", "duplicate": "duplicate"}
_IS_DECISION = {"unreviewed": {"none"}, "accepted": {"accepted"}, "rejected": {"rejected"},
                "reviewed": {"accepted", "rejected"}}
_BUILTIN_KEYS = ("is", "tag", "prompt", "generator", "model", "sampler", "lora", "folder",
                 "folder-id", "status", "sort", "rating", "like", "similar", *_FAMILY_KEYS)
# The sort a like:/similar: term implies unless a sort: term says otherwise: most similar first.
SIMILARITY = "similarity"


class FilterSyntaxError(ValueError):
    """The filter text cannot be read; the message names the column and what was expected."""

    def __init__(self, message: str, position: int | None = None) -> None:
        self.position = position
        super().__init__(message if position is None else f"column {position + 1}: {message}")


@dataclass(frozen=True)
class ScoreRange:
    """Bounds on an analyser's score; None = unbounded. Strict = `>` / `<` rather than `>=`."""

    lo: float | None = None
    hi: float | None = None
    lo_strict: bool = False
    hi_strict: bool = False

    def intersect(self, other: ScoreRange) -> ScoreRange:
        lo, lo_strict = self.lo, self.lo_strict
        if other.lo is not None and (lo is None or other.lo > lo):
            lo, lo_strict = other.lo, other.lo_strict
        elif other.lo is not None and other.lo == lo:
            lo_strict = lo_strict or other.lo_strict
        hi, hi_strict = self.hi, self.hi_strict
        if other.hi is not None and (hi is None or other.hi < hi):
            hi, hi_strict = other.hi, other.hi_strict
        elif other.hi is not None and other.hi == hi:
            hi_strict = hi_strict or other.hi_strict
        return ScoreRange(lo, hi, lo_strict, hi_strict)

    def contains(self, value: float | None) -> bool:
        if value is None:
            return False
        if self.lo is not None and (value < self.lo or (self.lo_strict and value == self.lo)):
            return False
        return self.hi is None or not (value > self.hi or (self.hi_strict and value == self.hi))


@dataclass(frozen=True)
class SortKey:
    """`field` is "time" (file modification time), "name" (file name) or an analyser key
    (its score; images without one come last). Ties break by image id, same direction."""

    field: str = "time"
    descending: bool = True


SIMILARITY_SORT = SortKey(SIMILARITY, True)


@dataclass(frozen=True)
class ImageFilter:
    """What the grid (or an export) shows. Every criterion narrows the result (AND); empty
    sets mean "any". Treat instances as immutable: use dataclasses.replace to derive one."""

    folders: frozenset[str] = frozenset()  # directories: images at any depth below them
    folder_ids: frozenset[int] = frozenset()  # watched folders, by id (the app's sidebar)
    decisions: frozenset[str] = frozenset()  # subset of DECISIONS; images without content = "none"
    flagged: bool | None = None
    analysed: bool | None = None  # an NSFW analyser's verdict is present (any NSFW analyser)
    rating_min: int | None = None
    rating_max: int | None = None
    # analyser -> labels (any of them)
    labels: Mapping[str, frozenset[str]] = field(default_factory=dict, hash=False)
    scores: Mapping[str, ScoreRange] = field(default_factory=dict, hash=False)
    tags_all: frozenset[str] = frozenset()
    tags_any: tuple[frozenset[str], ...] = ()  # each group: at least one of its tags
    tags_none: frozenset[str] = frozenset()
    prompt: tuple[str, ...] = ()  # substrings the prompt must contain (case-insensitive)
    prompt_none: tuple[str, ...] = ()  # substrings it must not contain
    generators: frozenset[str] = frozenset()  # exact values or globs with * (any of them)
    models: frozenset[str] = frozenset()
    samplers: frozenset[str] = frozenset()
    loras: frozenset[str] = frozenset()  # LoRA names (any of them), exact or globs with *
    statuses: frozenset[str] = DEFAULT_STATUSES
    sort: SortKey = SortKey()
    unreviewed_first: bool = False
    stacks: frozenset[str] = frozenset()  # stack keys (any of them)
    stacked: bool | None = None  # shares its stack with another picture
    dup_groups: frozenset[int] = frozenset()  # duplicate groups (any of them)
    duplicate: bool | None = None  # has a near-duplicate
    # Semantic terms (at most one): `like:"text"` ranks by the CLIP text embedding, `similar:ID`
    # by image ID's CLIP embedding. The ranked contents (library.search computes them) travel
    # in `ranking`, which is not part of the filter's identity or text.
    like: str | None = None
    similar_to: int | None = None
    ranking: Ranking | None = field(default=None, compare=False, hash=False, repr=False)

    @property
    def semantic(self) -> bool:
        return self.like is not None or self.similar_to is not None

    def __post_init__(self) -> None:
        # Normalise equivalent spellings so that equal filters compare equal (and round-trip
        # through the text form): all three decisions = any; a one-tag "any of" group = a
        # required tag; an analyser with no labels = no label criterion.
        decisions = frozenset(self.decisions)
        if not decisions <= DECISIONS:
            raise ValueError(f"unknown decisions: {sorted(decisions - DECISIONS)}")
        statuses = frozenset(self.statuses)
        if not statuses or not statuses <= STATUSES:
            raise ValueError(f"statuses must be a non-empty subset of {sorted(STATUSES)}")
        groups = tuple(frozenset(group) for group in self.tags_any)
        if any(not group for group in groups):
            raise ValueError("an empty tags_any group can match nothing")
        set_attr = object.__setattr__
        set_attr(self, "decisions", frozenset() if decisions == DECISIONS else decisions)
        set_attr(self, "statuses", statuses)
        set_attr(self, "tags_all", frozenset(self.tags_all).union(
            *(group for group in groups if len(group) == 1)))
        set_attr(self, "tags_any", tuple(group for group in groups if len(group) > 1))
        set_attr(self, "labels", {analyser: frozenset(labels)
                                  for analyser, labels in self.labels.items() if labels})
        set_attr(self, "scores", dict(self.scores))
        for name in ("folders", "folder_ids", "tags_none", "generators", "models", "samplers",
                     "loras", "stacks", "dup_groups"):
            set_attr(self, name, frozenset(getattr(self, name)))
        set_attr(self, "prompt", tuple(self.prompt))
        set_attr(self, "prompt_none", tuple(self.prompt_none))
        if self.like is not None and self.similar_to is not None:
            raise ValueError("one semantic term at a time: like: or similar:, not both")
        if self.like is not None and not self.like.strip():
            raise ValueError("like: needs some text")
        if self.sort.field == SIMILARITY and not self.semantic:
            raise ValueError("sort:similarity needs a like: or similar: term")


# --- scanning -------------------------------------------------------------------------------

_KEY_RE = re.compile(r"([A-Za-z][A-Za-z0-9_-]*)(>=|<=|:|>|<|=)")


@dataclass
class _Term:
    position: int
    negated: bool
    key: str | None  # None: a bare word or phrase (prompt text)
    op: str
    values: list[str]
    quoted: list[bool] = field(default_factory=list)  # per value: written in quotes


def _read_quoted(text: str, pos: int) -> tuple[str, int]:
    """Read a "..." string starting at text[pos] == '"'; backslash escapes only \" and \\."""
    out: list[str] = []
    i = pos + 1
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text) and text[i + 1] in '"\\':
            out.append(text[i + 1])
            i += 2
        elif char == '"':
            return "".join(out), i + 1
        else:
            out.append(char)
            i += 1
    raise FilterSyntaxError("unclosed quote", pos)


def _read_values(text: str, pos: int, key: str) -> tuple[list[str], list[bool], int]:
    """Read `piece(|piece)*` where a piece is "quoted" or a run without spaces, | or quotes."""
    values: list[str] = []
    quoted: list[bool] = []
    while True:
        quoted.append(pos < len(text) and text[pos] == '"')
        if quoted[-1]:
            value, pos = _read_quoted(text, pos)
        else:
            end = pos
            while end < len(text) and not text[end].isspace() and text[end] not in '|"':
                end += 1
            value, pos = text[pos:end], end
            if not value:
                raise FilterSyntaxError(f"'{key}' needs a value", pos)
        values.append(value)
        if pos < len(text) and text[pos] == "|":
            pos += 1
            continue
        if pos < len(text) and not text[pos].isspace():
            raise FilterSyntaxError(f"unexpected {text[pos]!r} after the value of '{key}'", pos)
        return values, quoted, pos


def _scan(text: str) -> list[_Term]:
    terms: list[_Term] = []
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return terms
        start = pos
        negated = text[pos] == "-" and pos + 1 < len(text) and not text[pos + 1].isspace()
        if negated:
            pos += 1
        match = _KEY_RE.match(text, pos)
        if match:
            values, quoted, pos = _read_values(text, match.end(), match.group(1))
            terms.append(_Term(start, negated, match.group(1).lower(), match.group(2), values,
                               quoted))
        elif text[pos] == '"':
            value, pos = _read_quoted(text, pos)
            if pos < len(text) and not text[pos].isspace():
                raise FilterSyntaxError("expected a space after the closing quote", pos)
            terms.append(_Term(start, negated, None, "", [value]))
        else:
            end = pos
            while end < len(text) and not text[end].isspace():
                end += 1
            terms.append(_Term(start, negated, None, "", [text[pos:end]]))
            pos = end


# --- parsing --------------------------------------------------------------------------------

def _number(value: str, term: _Term) -> float:
    try:
        number = float(value)
    except ValueError:
        raise FilterSyntaxError(f"'{value}' is not a number", term.position) from None
    if not math.isfinite(number):
        raise FilterSyntaxError(f"'{value}' is not a finite number", term.position)
    return number


def _single(term: _Term) -> str:
    if len(term.values) != 1:
        raise FilterSyntaxError(f"'{term.key}' takes one value, not a|b alternatives",
                                term.position)
    return term.values[0]


def _range_from(term: _Term) -> ScoreRange:
    """`key>=x`, `key>x`, `key<=x`, `key<x`, `key=x`, `key:x`, `key:lo..hi` (inclusive)."""
    value = _single(term)
    if term.op in (":", "=") and ".." in value:
        lo_text, _, hi_text = value.partition("..")
        lo = _number(lo_text, term) if lo_text else None
        hi = _number(hi_text, term) if hi_text else None
        return ScoreRange(lo, hi)  # "analyser:.." = has any score
    number = _number(value, term)
    return {">=": ScoreRange(lo=number), ">": ScoreRange(lo=number, lo_strict=True),
            "<=": ScoreRange(hi=number), "<": ScoreRange(hi=number, hi_strict=True),
            ":": ScoreRange(number, number), "=": ScoreRange(number, number)}[term.op]


def _is_range_value(value: str) -> bool:
    if ".." in value:
        return True
    try:
        float(value)
    except ValueError:
        return False
    return True


def parse_filter(text: str, analysers: Iterable[str] = KNOWN_ANALYSERS) -> ImageFilter:
    """Read the filter syntax (README.md, "Filters"). Raises FilterSyntaxError on bad input."""
    analysers = tuple(analysers)
    fields: dict = {}
    decisions_in: set[str] = set()
    decisions_out: set[str] = set()
    statuses: set[str] = set()
    labels: dict[str, set[str]] = {}
    scores: dict[str, ScoreRange] = {}
    rating = ScoreRange()
    sets: dict[str, set] = {name: set() for name in (
        "folders", "folder_ids", "tags_all", "tags_none", "generators", "models", "samplers",
        "loras", "stacks", "dup_groups")}
    tags_any: list[frozenset[str]] = []
    prompt: list[str] = []
    prompt_none: list[str] = []

    terms = _scan(text)
    values = sum(len(term.values) for term in terms)
    if values > MAX_FILTER_VALUES:
        raise FilterSyntaxError(f"the filter is too long: {values} terms and alternatives, at "
                                f"most {MAX_FILTER_VALUES}")
    for term in terms:
        key = term.key
        if key is None:
            (prompt_none if term.negated else prompt).append(term.values[0])
            continue
        if key not in _BUILTIN_KEYS and key not in analysers:
            raise FilterSyntaxError(
                f"unknown filter key '{key}' (known: {', '.join(_BUILTIN_KEYS + analysers)}); "
                f'to search prompts for it, put it in quotes: "{key}{term.op}..."',
                term.position)
        comparison = term.op not in (":",)
        if comparison and key not in analysers and key != "rating":
            raise FilterSyntaxError(f"'{key}' takes ':' (only scores and rating compare)",
                                    term.position)
        negatable = key in ("is", "tag", "prompt")
        if term.negated and not negatable:
            raise FilterSyntaxError(f"'-{key}:' is not supported (only is:, tag: and prompt: "
                                    "can be negated)", term.position)

        if key == "is":
            for value in term.values:
                value = value.lower()
                if value in _IS_DECISION:
                    (decisions_out if term.negated else decisions_in).update(_IS_DECISION[value])
                elif value in ("flagged", "analysed", "analyzed"):
                    name = "analysed" if value != "flagged" else "flagged"
                    if len(term.values) > 1:
                        raise FilterSyntaxError(f"is:{value} cannot be combined with |",
                                                term.position)
                    fields[name] = not term.negated
                elif value in ("unanalysed", "unanalyzed"):
                    fields["analysed"] = term.negated
                elif value in _IS_FAMILY:
                    if len(term.values) > 1:
                        raise FilterSyntaxError(f"is:{value} cannot be combined with |",
                                                term.position)
                    fields[_IS_FAMILY[value]] = not term.negated
                else:
                    raise FilterSyntaxError(
                        f"unknown is:{value} (use unreviewed, accepted, rejected, reviewed, "
                        "flagged, analysed, unanalysed, stacked, duplicate)", term.position)
        elif key == "tag":
            if term.negated:
                sets["tags_none"].update(term.values)
            elif len(term.values) > 1:
                tags_any.append(frozenset(term.values))
            else:
                sets["tags_all"].add(term.values[0])
        elif key == "prompt":
            (prompt_none if term.negated else prompt).append(_single(term))
        elif key in ("generator", "model", "sampler", "lora"):
            sets[key + "s"].update(term.values)
        elif key == "folder":
            sets["folders"].update(term.values)
        elif key == "folder-id":
            for value in term.values:
                if not (value.isascii() and value.isdigit()):
                    raise FilterSyntaxError(f"folder-id:{value} is not a number", term.position)
                if int(value) > MAX_FOLDER_ID:
                    raise FilterSyntaxError(f"folder-id:{value} is out of range",
                                            term.position)
                sets["folder_ids"].add(int(value))
        elif key == "status":
            for value in term.values:
                value = value.lower()
                if value in ("any", "all"):
                    statuses.update(STATUSES)
                elif value in STATUSES:
                    statuses.add(value)
                else:
                    raise FilterSyntaxError(
                        f"unknown status:{value} (use ok, broken, missing or any)", term.position)
        elif key in _FAMILY_KEYS:
            _read_family_term(term, sets)
        elif key == "sort":
            _apply_sort(term, fields, analysers)
        elif key == "rating":
            bounds = _range_from(term)
            if any(b is not None and abs(b) > MAX_RATING_NUMBER for b in (bounds.lo, bounds.hi)):
                raise FilterSyntaxError(f"rating{term.op}{term.values[0]} is out of range "
                                        "(ratings are 0 to 5)", term.position)
            rating = rating.intersect(_integer_rating(bounds))
        elif key in ("like", "similar"):
            _apply_semantic(term, fields)
        elif term.op == ":" and not all(
                _is_range_value(v) and not q for v, q in zip(term.values, term.quoted)):
            labels.setdefault(key, set()).update(term.values)  # analyser:label|label
        else:
            bounds = _range_from(term)
            scores[key] = scores[key].intersect(bounds) if key in scores else bounds

    decisions = (decisions_in or set(DECISIONS)) - decisions_out
    if decisions_out and not decisions:
        raise FilterSyntaxError("the is: terms exclude every review state")
    semantic = "like" in fields or "similar_to" in fields
    if semantic and "sort" not in fields:
        fields["sort"] = SIMILARITY_SORT  # like:/similar: sort by similarity unless told
    if not semantic and fields.get("sort", SortKey()).field == SIMILARITY:
        raise FilterSyntaxError("sort:similarity needs a like: or similar: term")
    return ImageFilter(
        folders=frozenset(sets["folders"]), folder_ids=frozenset(sets["folder_ids"]),
        decisions=frozenset(decisions),
        rating_min=None if rating.lo is None else int(rating.lo),
        rating_max=None if rating.hi is None else int(rating.hi),
        labels={k: frozenset(v) for k, v in labels.items()}, scores=scores,
        tags_all=frozenset(sets["tags_all"]), tags_any=tuple(tags_any),
        tags_none=frozenset(sets["tags_none"]), prompt=tuple(prompt),
        prompt_none=tuple(prompt_none), generators=frozenset(sets["generators"]),
        models=frozenset(sets["models"]), samplers=frozenset(sets["samplers"]),
        loras=frozenset(sets["loras"]),
        stacks=frozenset(sets["stacks"]), dup_groups=frozenset(sets["dup_groups"]),
        statuses=frozenset(statuses) if statuses else DEFAULT_STATUSES, **fields)


def _read_family_term(term: _Term, sets: dict[str, set]) -> None:
    """`stack:ID|ID` (16 hex digits, as `gentriage export` prints them) or `dup:N|N`."""
    for value in term.values:
        if term.key == "stack":
            if not _STACK_ID_RE.match(value.lower()):
                raise FilterSyntaxError(f"stack:{value} is not a stack id (16 hex digits, as "
                                        "the export's stack column shows)", term.position)
            sets["stacks"].add(value.lower())
        else:
            if not value.isdigit():
                raise FilterSyntaxError(f"dup:{value} is not a duplicate group number",
                                        term.position)
            sets["dup_groups"].add(int(value))


def _apply_semantic(term: _Term, fields: dict) -> None:
    """`like:"text"` or `similar:IMAGE_ID`; one of them per filter."""
    if "like" in fields or "similar_to" in fields:
        raise FilterSyntaxError("only one like: or similar: term per filter", term.position)
    value = _single(term)
    if term.key == "like":
        if not value.strip():
            raise FilterSyntaxError("like: needs some text, e.g. like:\"red umbrella\"",
                                    term.position)
        fields["like"] = value
    elif value.isdigit():
        fields["similar_to"] = int(value)
    else:
        raise FilterSyntaxError(f"similar:{value} is not an image id (a number)", term.position)


def with_semantic(f: ImageFilter, *, like: str | None = None,
                  similar_to: int | None = None) -> ImageFilter:
    """`f` with its semantic term replaced (the other terms kept). Sorts by similarity unless
    `f` was sorted by something other than the default."""
    sort = f.sort if f.sort not in (SortKey(), SIMILARITY_SORT) else SIMILARITY_SORT
    if like is None and similar_to is None:
        sort = SortKey() if f.sort.field == SIMILARITY else f.sort
    return replace(f, like=like, similar_to=similar_to, ranking=None, sort=sort)


def _integer_rating(bounds: ScoreRange) -> ScoreRange:
    """Ratings are whole stars: `rating>2` is `rating>=3`."""
    lo = None if bounds.lo is None else (
        math.floor(bounds.lo) + 1 if bounds.lo_strict else math.ceil(bounds.lo))
    hi = None if bounds.hi is None else (
        math.ceil(bounds.hi) - 1 if bounds.hi_strict else math.floor(bounds.hi))
    return ScoreRange(lo, hi)


def _apply_sort(term: _Term, fields: dict, analysers: tuple[str, ...]) -> None:
    for value in term.values:
        lowered = value.lower()
        if lowered in ("unreviewed", "unreviewed-first"):
            fields["unreviewed_first"] = True
            continue
        if lowered == "stack":
            fields["sort"] = SortKey("stack", False)  # stacks together, best first
            continue
        descending = lowered.startswith("-")
        name = lowered.lstrip("-")
        if name == "newest" and not descending:
            fields["sort"] = SortKey("time", True)
        elif name == "oldest" and not descending:
            fields["sort"] = SortKey("time", False)
        elif name in ("name", "time", SIMILARITY) or name in analysers:
            fields["sort"] = SortKey(name, descending)
        else:
            raise FilterSyntaxError(
                f"unknown sort:{value} (use newest, oldest, name, -name, unreviewed, stack, "
                f"-similarity, or an analyser's score: {', '.join(analysers)}, with - for "
                "highest first)", term.position)


# --- formatting -----------------------------------------------------------------------------

_SAFE_VALUE_RE = re.compile(r'^[^\s"|]+$')


def _quote(value: str) -> str:
    out = ['"']
    for index, char in enumerate(value):
        if char == '"':
            out.append('\\"')
        elif char == "\\" and (index + 1 == len(value) or value[index + 1] in '"\\'):
            out.append("\\\\")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def _value(value: str) -> str:
    return value if _SAFE_VALUE_RE.match(value) else _quote(value)


def _bare(value: str) -> str:
    """A prompt word written bare only when it cannot be mistaken for a term or a negation."""
    if _SAFE_VALUE_RE.match(value) and not value.startswith("-") and not _KEY_RE.match(value):
        return value
    return _quote(value)


def _number_text(value: float) -> str:
    return repr(float(value))


def _alternatives(values: Iterable[str]) -> str:
    return "|".join(_value(v) for v in sorted(values))


def format_filter(f: ImageFilter) -> str:
    """The canonical text of a filter; parse_filter(format_filter(f)) == f."""
    terms: list[str] = []
    if f.decisions == {"accepted", "rejected"}:
        terms.append("is:reviewed")
    else:
        terms += [f"is:{name}" for name, ds in _IS_DECISION.items()
                  if len(ds) == 1 and ds <= f.decisions]
    if f.flagged is not None:
        terms.append("is:flagged" if f.flagged else "-is:flagged")
    if f.analysed is not None:
        terms.append("is:analysed" if f.analysed else "is:unanalysed")
    if f.stacked is not None:
        terms.append("is:stacked" if f.stacked else "-is:stacked")
    if f.duplicate is not None:
        terms.append("is:duplicate" if f.duplicate else "-is:duplicate")
    if f.stacks:
        terms.append("stack:" + "|".join(sorted(f.stacks)))
    if f.dup_groups:
        terms.append("dup:" + "|".join(str(g) for g in sorted(f.dup_groups)))
    if f.statuses != DEFAULT_STATUSES:
        terms.append("status:" + "|".join(sorted(f.statuses)))
    if f.folders:
        terms.append("folder:" + _alternatives(f.folders))
    if f.folder_ids:
        terms.append("folder-id:" + "|".join(str(i) for i in sorted(f.folder_ids)))
    for key, values in (("generator", f.generators), ("model", f.models),
                        ("sampler", f.samplers), ("lora", f.loras)):
        if values:
            terms.append(f"{key}:{_alternatives(values)}")
    for analyser in sorted(f.labels):
        labels = sorted(f.labels[analyser])
        # A label that reads as a number or range is quoted so it stays a label.
        terms.append(f"{analyser}:" + "|".join(
            _quote(label) if _is_range_value(label) else _value(label) for label in labels))
    for analyser in sorted(f.scores):
        terms += _range_terms(analyser, f.scores[analyser])
    if f.rating_min is not None:
        terms.append(f"rating>={f.rating_min}")
    if f.rating_max is not None:
        terms.append(f"rating<={f.rating_max}")
    terms += [f"tag:{_value(tag)}" for tag in sorted(f.tags_all)]
    terms += [f"tag:{_alternatives(group)}" for group in f.tags_any]
    terms += [f"-tag:{_value(tag)}" for tag in sorted(f.tags_none)]
    terms += [_bare(text) for text in f.prompt]
    terms += ["-" + _quote(text) for text in f.prompt_none]
    if f.like is not None:
        terms.append(f"like:{_value(f.like)}")
    if f.similar_to is not None:
        terms.append(f"similar:{f.similar_to}")
    if f.unreviewed_first:
        terms.append("sort:unreviewed")
    if f.sort != (SIMILARITY_SORT if f.semantic else SortKey()):
        terms.append("sort:" + _sort_text(f.sort))
    return " ".join(terms)


def _range_terms(analyser: str, bounds: ScoreRange) -> list[str]:
    if bounds.lo is not None and bounds.lo == bounds.hi and not (bounds.lo_strict or
                                                                 bounds.hi_strict):
        return [f"{analyser}={_number_text(bounds.lo)}"]
    terms = []
    if bounds.lo is not None:
        terms.append(f"{analyser}{'>' if bounds.lo_strict else '>='}{_number_text(bounds.lo)}")
    if bounds.hi is not None:
        terms.append(f"{analyser}{'<' if bounds.hi_strict else '<='}{_number_text(bounds.hi)}")
    if not terms:  # an unbounded range still requires a score: any value
        terms.append(f"{analyser}:..")
    return terms


def _sort_text(sort: SortKey) -> str:
    if sort.field == "stack":
        return "stack"
    if sort.field == "time":
        return "newest" if sort.descending else "oldest"
    return ("-" if sort.descending else "") + sort.field


