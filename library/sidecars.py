"""XMP sidecars: the review in a form photo managers read (darktable, digiKam, Lightroom,
Immich), and ratings read back from them (no Qt).

Naming: `NAME.EXT.xmp` (darktable, digiKam; the default) or `NAME.xmp` (Lightroom; refused
when another picture in the folder has the same NAME, since both would share one sidecar).

What a sidecar says:
- `xmp:Rating`: the 0–5 rating; -1 for a rejected picture (Lightroom's convention);
- `xmp:Label`: "Green" for accepted, "Red" for rejected (colour names, which Lightroom and
  digiKam show as colour labels); an unreviewed picture gets no label — a label GenTriage
  wrote earlier is removed, one set by someone else is left alone;
- `dc:subject`: the tags at or above the tag threshold, added to the keywords already there
  (tags GenTriage wrote earlier and no longer gives are removed; others' keywords are kept);
- `dc:description` (`x-default`): the prompt; other languages are kept.
What GenTriage itself wrote is remembered in its own namespace (`gentriage:Label`,
`gentriage:Subjects`) so that rewriting never removes somebody else's label or keyword.

Merging: an existing sidecar is parsed and only those properties change; every other
property, namespace and description block is kept. A sidecar that is not well-formed XMP is
reported and left untouched. Writes are atomic (temporary file, then rename).

Why plain XML: XMP sidecars are RDF/XML with a handful of standard namespaces; the standard
library's ElementTree builds and serialises them, and defusedxml parses the (untrusted)
existing ones without DTDs or entity expansion. python-xmp-toolkit needs the Exempi C library
on every machine, and pyexiv2 ships native exiv2 binaries for a job four properties big.
"""

from __future__ import annotations

import os
import re
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from db.filters import ImageFilter
from db.interop import PictureFacts, matching_rows, picture_facts, readable_images_of
from db.review import set_decision, set_rating
from db.transaction import write_transaction
from library.decode import IMAGE_SUFFIXES

X = "adobe:ns:meta/"
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
XMP = "http://ns.adobe.com/xap/1.0/"
DC = "http://purl.org/dc/elements/1.1/"
GENTRIAGE = "http://gentriage.invalid/xmp/1.0/"  # .invalid: an identifier, never fetched
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
STANDARD_PREFIXES = {"x": X, "rdf": RDF, "xmp": XMP, "dc": DC, "gentriage": GENTRIAGE}

NAMINGS = ("darktable", "lightroom")  # NAME.EXT.xmp, NAME.xmp
LABELS = {"accepted": "Green", "rejected": "Red"}
REJECTED_RATING = -1
MAX_SIDECAR_BYTES = 16 * 1024 * 1024

for _prefix, _uri in STANDARD_PREFIXES.items():
    ET.register_namespace(_prefix, _uri)


def _q(namespace: str, name: str) -> str:
    return f"{{{namespace}}}{name}"


class SidecarError(Exception):
    """A sidecar could not be read or written; the message names it and says why."""


@dataclass
class SidecarReport:
    written: int = 0
    merged: int = 0  # of those, merged into a sidecar that already existed
    imported: int = 0  # --read: pictures whose review changed
    rejected: int = 0
    rated: int = 0
    unrejected: int = 0
    without_sidecar: int = 0
    errors: list[str] = field(default_factory=list)
    undo_group: int | None = None


# --- names ----------------------------------------------------------------------------------

def sidecar_path(image_path: str | os.PathLike[str], naming: str = "darktable") -> Path:
    path = Path(image_path)
    if naming == "lightroom":
        return path.with_suffix(".xmp")
    if naming != "darktable":
        raise ValueError(f"sidecar naming must be one of {NAMINGS}, got {naming!r}")
    return path.with_name(path.name + ".xmp")


def _shared_lightroom_name(image_path: Path) -> Path | None:
    """Another picture in the folder with the same NAME (it would share NAME.xmp)."""
    for suffix in IMAGE_SUFFIXES:
        for spelled in (suffix, suffix.upper()):
            other = image_path.with_suffix(spelled)
            if other.name != image_path.name and other.exists():
                return other
    return None


# --- XML ------------------------------------------------------------------------------------

def _parse(data: bytes, where: Path) -> ET.Element:
    try:
        root = SafeET.fromstring(data)
        for _event, (prefix, uri) in SafeET.iterparse(_BytesSource(data), events=("start-ns",)):
            # Keep the prefixes the other tool chose (ElementTree's map is by URI; prefixes
            # it would invent are "ns0"…, and a prefix taken by a standard namespace stays).
            if (prefix and not re.fullmatch(r"ns\d+", prefix) and prefix not in
                    STANDARD_PREFIXES and uri not in STANDARD_PREFIXES.values()):
                ET.register_namespace(prefix, uri)
    except (ET.ParseError, DefusedXmlException, ValueError) as exc:
        raise SidecarError(f"{where}: not well-formed XMP ({exc}); left untouched") from exc
    return root


class _BytesSource:
    """A minimal file object for iterparse over bytes already in memory."""

    def __init__(self, data: bytes) -> None:
        self._data, self._pos = data, 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._data) if size is None or size < 0 else self._pos + size
        chunk = self._data[self._pos:end]
        self._pos += len(chunk)
        return chunk


def _rdf_of(root: ET.Element, where: Path) -> ET.Element:
    if root.tag == _q(RDF, "RDF"):
        return root
    rdf = root.find(f".//{_q(RDF, 'RDF')}")
    if rdf is None:
        raise SidecarError(f"{where}: no rdf:RDF in this XMP; left untouched")
    return rdf


def new_document() -> ET.Element:
    root = ET.Element(_q(X, "xmpmeta"), {_q(X, "xmptk"): "GenTriage"})
    rdf = ET.SubElement(root, _q(RDF, "RDF"))
    ET.SubElement(rdf, _q(RDF, "Description"), {_q(RDF, "about"): ""})
    return root


def _property_values(descriptions: Sequence[ET.Element], name: str) -> list[str]:
    """Texts of an array property (rdf:li items) or a simple one, over every description."""
    values: list[str] = []
    for description in descriptions:
        if name in description.attrib:
            values.append(description.attrib[name])
        for element in description.findall(name):
            items = element.findall(f".//{_q(RDF, 'li')}")
            if items:
                values += [item.text or "" for item in items]
            elif element.text and element.text.strip():
                values.append(element.text.strip())
    return values


def _remove_property(descriptions: Sequence[ET.Element], name: str) -> None:
    for description in descriptions:
        description.attrib.pop(name, None)
        for element in description.findall(name):
            description.remove(element)


def _bag(parent: ET.Element, name: str, items: Iterable[str]) -> None:
    bag = ET.SubElement(ET.SubElement(parent, name), _q(RDF, "Bag"))
    for item in items:
        ET.SubElement(bag, _q(RDF, "li")).text = item


def merge_review(root: ET.Element, facts: PictureFacts, where: Path = Path("?")) -> None:
    """Set GenTriage's properties in the document `root`, keeping everything else."""
    rdf = _rdf_of(root, where)
    descriptions = rdf.findall(_q(RDF, "Description"))
    if not descriptions:
        descriptions = [ET.SubElement(rdf, _q(RDF, "Description"), {_q(RDF, "about"): ""})]
    target = descriptions[0]

    ours_before = set(_property_values(descriptions, _q(GENTRIAGE, "Subjects")))
    label_before = next(iter(_property_values(descriptions, _q(GENTRIAGE, "Label"))), None)
    subjects = [s for s in _property_values(descriptions, _q(DC, "subject"))
                if s not in ours_before]
    current_label = next(iter(_property_values(descriptions, _q(XMP, "Label"))), None)
    alternatives = [(item.get(XML_LANG), item.text or "")
                    for description in descriptions
                    for element in description.findall(_q(DC, "description"))
                    for item in element.findall(f".//{_q(RDF, 'li')}")]
    for name in (_q(XMP, "Rating"), _q(XMP, "Label"), _q(DC, "subject"), _q(DC, "description"),
                 _q(GENTRIAGE, "Subjects"), _q(GENTRIAGE, "Label")):
        _remove_property(descriptions, name)

    rating = REJECTED_RATING if facts.decision == "rejected" else facts.rating
    target.set(_q(XMP, "Rating"), str(rating))
    label = LABELS.get(facts.decision)
    if label is not None:
        target.set(_q(XMP, "Label"), label)
        target.set(_q(GENTRIAGE, "Label"), label)
    elif current_label is not None and current_label != label_before:
        target.set(_q(XMP, "Label"), current_label)  # somebody else's label: keep it
    for tag in facts.tags:
        if tag not in subjects:
            subjects.append(tag)
    if subjects:
        _bag(target, _q(DC, "subject"), subjects)
    if facts.tags:
        _bag(target, _q(GENTRIAGE, "Subjects"), facts.tags)
    others = [(lang, text) for lang, text in alternatives if lang not in (None, "x-default")]
    default = facts.prompt or next((text for lang, text in alternatives
                                    if lang in (None, "x-default")), None)
    if default is not None or others:
        alt = ET.SubElement(ET.SubElement(target, _q(DC, "description")), _q(RDF, "Alt"))
        if default is not None:
            ET.SubElement(alt, _q(RDF, "li"), {XML_LANG: "x-default"}).text = default
        for lang, text in others:
            ET.SubElement(alt, _q(RDF, "li"), {XML_LANG: lang or "x-default"}).text = text


def serialise(root: ET.Element) -> bytes:
    ET.indent(root, space=" ")
    return (b'<?xml version="1.0" encoding="UTF-8"?>\n'
            + ET.tostring(root, encoding="utf-8", xml_declaration=False) + b"\n")


def rating_in(data: bytes, where: Path = Path("?")) -> int | None:
    """The xmp:Rating of a sidecar (-1…5), None when it has none. SidecarError when the
    file is not XMP or the rating is not a number in range."""
    root = _parse(data, where)
    values = _property_values(_rdf_of(root, where).findall(_q(RDF, "Description")),
                              _q(XMP, "Rating"))
    if not values:
        return None
    try:
        number = float(values[0])
    except ValueError:
        raise SidecarError(f"{where}: xmp:Rating {values[0]!r} is not a number") from None
    if not number.is_integer() or not REJECTED_RATING <= number <= 5:
        raise SidecarError(f"{where}: xmp:Rating {values[0]!r} is not -1…5")
    return int(number)


# --- files ----------------------------------------------------------------------------------

def _read_bytes(path: Path) -> bytes | None:
    try:
        if path.stat().st_size > MAX_SIDECAR_BYTES:
            raise SidecarError(f"{path}: larger than {MAX_SIDECAR_BYTES} bytes; left untouched")
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SidecarError(f"{path}: cannot read ({exc.strerror or exc})") from exc


def write_sidecar(image_path: str | os.PathLike[str], facts: PictureFacts,
                  naming: str = "darktable") -> tuple[Path, bool]:
    """Write or merge the sidecar of one picture; returns (its path, whether it existed)."""
    image = Path(image_path)
    target = sidecar_path(image, naming)
    if naming == "lightroom":
        other = _shared_lightroom_name(image)
        if other is not None:
            raise SidecarError(f"{target}: would be shared by {image.name} and {other.name}; "
                               "use the NAME.EXT.xmp naming for this folder")
    existing = _read_bytes(target)
    root = _parse(existing, target) if existing is not None else new_document()
    merge_review(root, facts, target)
    data = serialise(root)
    try:
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".gentriage-",
                                             suffix=".xmp.partial")
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, target)
    except OSError as exc:
        raise SidecarError(f"{target}: cannot write ({exc.strerror or exc})") from exc
    return target, existing is not None


def write_sidecars(sessions: Any, image_filter: ImageFilter, naming: str,
                   tag_threshold: float, chunk: int = 500) -> SidecarReport:
    """One sidecar per picture the filter matches (`gentriage sidecars`)."""
    report = SidecarReport()
    if not _naming_ok(naming, report):
        return report
    batch: list[tuple[str, int]] = []

    def flush() -> None:
        with sessions() as session:
            facts = picture_facts(session, [cid for _, cid in batch], tag_threshold)
        for path, content_id in batch:
            _write_one(path, facts.get(content_id), naming, report)
        batch.clear()

    for row in matching_rows(sessions, image_filter):
        if row.content_id is not None:
            batch.append((row.path, row.content_id))
        if len(batch) >= chunk:
            flush()
    if batch:
        flush()
    return report


def write_for_contents(sessions: Any, content_ids: Iterable[int], naming: str,
                       tag_threshold: float) -> SidecarReport:
    """The sidecars of every readable file of these contents (the automatic write after a
    review decision)."""
    report = SidecarReport()
    ids = list(content_ids)
    if not ids or not _naming_ok(naming, report):
        return report
    with sessions() as session:
        images = readable_images_of(session, ids)
        facts = picture_facts(session, ids, tag_threshold)
    for _image_id, content_id, path in images:
        _write_one(path, facts.get(content_id), naming, report)
    return report


def _naming_ok(naming: str, report: SidecarReport) -> bool:
    """A hand-edited settings file may name an unknown naming: say so, write nothing."""
    if naming in NAMINGS:
        return True
    report.errors.append(f"sidecar naming {naming!r} is not one of {', '.join(NAMINGS)}; "
                         "no sidecar written")
    return False


def _write_one(path: str, facts: PictureFacts | None, naming: str,
               report: SidecarReport) -> None:
    if facts is None:
        return
    try:
        _target, existed = write_sidecar(path, facts, naming)
    except SidecarError as exc:
        report.errors.append(str(exc))
        return
    report.written += 1
    report.merged += existed


def find_sidecar(image_path: str | os.PathLike[str], naming: str = "darktable") -> Path | None:
    """The sidecar of a picture: the configured naming first, then the other one."""
    order = [naming] + [n for n in NAMINGS if n != naming]
    for candidate in (sidecar_path(image_path, n) for n in order):
        if candidate.is_file():
            return candidate
    return None


def read_sidecars(sessions: Any, image_filter: ImageFilter, naming: str) -> SidecarReport:
    """Import ratings and rejections from existing sidecars into the review log, as one
    undoable step (source "cli"): -1 rejects; 0–5 sets the rating and lifts a rejection."""
    report = SidecarReport()
    ratings: dict[int, int] = {}
    for row in matching_rows(sessions, image_filter):
        if row.content_id is None:
            continue
        sidecar = find_sidecar(row.path, naming)
        if sidecar is None:
            report.without_sidecar += 1
            continue
        try:
            data = _read_bytes(sidecar)
            rating = rating_in(data or b"", sidecar)
        except SidecarError as exc:
            report.errors.append(str(exc))
            continue
        if rating is not None:
            ratings[row.content_id] = rating
    if not ratings:
        return report
    with write_transaction(sessions) as session:
        facts = picture_facts(session, ratings, 0.0)
        reject = [cid for cid, r in ratings.items() if r == REJECTED_RATING]
        lift = [cid for cid, r in ratings.items()
                if r != REJECTED_RATING and facts[cid].decision == "rejected"]
        group = set_decision(session, reject, "rejected", source="cli")
        group = set_decision(session, lift, "none", source="cli", group=group)
        by_value: dict[int, list[int]] = {}
        for cid, r in ratings.items():
            if r != REJECTED_RATING and facts[cid].rating != r:
                by_value.setdefault(r, []).append(cid)
        for value, ids in sorted(by_value.items()):
            group = set_rating(session, ids, value, source="cli", group=group)
    report.undo_group = group
    report.rejected = sum(1 for cid in reject if facts[cid].decision != "rejected")
    report.unrejected = len(lift)
    report.rated = sum(len(ids) for ids in by_value.values())
    report.imported = len({*(c for c in reject if facts[c].decision != "rejected"), *lift,
                           *(c for ids in by_value.values() for c in ids)})
    return report
