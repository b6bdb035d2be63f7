"""Families of pictures: the rules, without a database or Qt (shared by ingest, CLI and app).

Two kinds of family:

* A **stack** is every picture whose generation metadata share prompt, negative prompt and
  model (seed, size, steps, sampler may differ): the 4–32 seeds of one prompt. Its identity
  is the *stack key* (`stack_key`), a hash of the normalised three fields, computed once per
  content at ingest and stored with it, so a moved or renamed file keeps its stack.
* A **duplicate group** is every picture whose perceptual hash (`perceptual_hash`) lies within
  a Hamming distance of another's: the same picture re-encoded as JPEG/WebP, resized, lightly
  brightened. `group_hashes` finds them without comparing all pairs (multi-index hashing),
  and `keeper_order` decides which one of a group is kept.

This module is imported by library.ingest (worker threads and processes), so it imports
neither SQLAlchemy nor db/, and numpy only where it is used.
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from collections.abc import Iterator, Sequence
from itertools import combinations
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

# --- stacks ------------------------------------------------------------------------------------

STACK_KEY_VERSION = "1"  # part of the hashed text: a new normalisation gives new keys
STACK_KEY_LENGTH = 16  # hex characters (64 bits): short to type in `stack:ID`, no collisions
STACK_KEY_RE = re.compile(r"^[0-9a-f]{16}$")
_WHITESPACE = re.compile(r"\s+")
# Checkpoint file suffixes: ComfyUI records "sdxl/juggernaut_v9.safetensors" where A1111 writes
# "juggernaut_v9" for the same model; both name one model.
_MODEL_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft")


class GenerationFields(Protocol):
    prompt: str | None
    negative_prompt: str | None
    model: str | None


def normalise_text(text: str | None) -> str:
    """The form in which two prompts count as the same prompt.

    Unicode NFKC (full-width and compatibility characters fold to their plain forms), every
    run of whitespace (line breaks, tabs, double spaces) becomes one space, ends trimmed, and
    case folded. Why case and whitespace: Stable Diffusion's CLIP tokenizer lower-cases the
    prompt and collapses whitespace before encoding it, so prompts differing only there give
    the same conditioning — they are one prompt to the generator, so one stack. Punctuation
    and weights ("(red hair:1.2)") are kept: they change the picture.
    """
    if not text:
        return ""
    folded = unicodedata.normalize("NFKC", text)
    return _WHITESPACE.sub(" ", folded).strip().casefold()


def normalise_model(model: str | None) -> str:
    """A checkpoint name without its folder and file suffix, normalised like a prompt."""
    name = normalise_text(model)
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    for suffix in _MODEL_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)].strip()
    return name


def stack_key(prompt: str | None, negative_prompt: str | None, model: str | None) -> str | None:
    """The stack of a picture with these generation fields; None without a prompt (such a
    picture belongs to no stack)."""
    positive = normalise_text(prompt)
    if not positive:
        return None
    text = "\x1f".join((STACK_KEY_VERSION, positive, normalise_text(negative_prompt),
                        normalise_model(model)))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:STACK_KEY_LENGTH]


def stack_key_of(generation: GenerationFields | None) -> str | None:
    if generation is None:
        return None
    return stack_key(generation.prompt, generation.negative_prompt, generation.model)


# --- perceptual hashes ----------------------------------------------------------------------

HASH_BITS = 64
# Chosen from measurements (tests/library/test_families_phash.py prints them; README): over
# 320 pictures (scikit-image photos and structured synthetic pictures), each saved as PNG,
# JPEG q70, half size, +8 % brightness and WebP and hashed as ingest hashes them, no copy was
# further than 4 bits from its original, and no two different pictures' copies came closer
# than 14. 8 keeps four bits of margin over the worst copy and six under the closest
# stranger; a low bound also keeps chance collisions rare in a library of 100k (independent
# 64-bit hashes: ~1 pair within 8 bits among 5·10⁹ pairs, ~40 within 10).
DEFAULT_DISTANCE = 8
MAX_DISTANCE = 12  # beyond this, different pictures merge (closest measured: 14 bits)
# pHash looks at a 32×32 greyscale version. Shrinking the whole decoded picture to it with
# Lanczos (what imagehash does) costs ~2.3 ms for 1024 px. Area-averaging (box filters) it to
# 128×128 first costs a fraction of that and makes the small version all but independent of
# the source size: a half-size copy averages to the same 128 px. Measured on the 320 test
# families: worst copy 4 bits (6 from the whole picture), the same closest stranger (14 bits).
_PREREDUCE_SIDE = 4 * 32
_HASH_SIDE, _LOW = 32, 8


def _dct_rows() -> np.ndarray:
    """The 8 lowest rows of the unnormalised DCT-II on 32 samples: scipy.fftpack.dct's
    y[k] = 2 Σ x[n] cos(π k (2n + 1) / 2N), the transform imagehash.phash applies."""
    import numpy as np

    k = np.arange(_LOW)[:, None]
    n = np.arange(_HASH_SIDE)[None, :]
    return 2.0 * np.cos(np.pi * k * (2 * n + 1) / (2 * _HASH_SIDE))


_DCT_ROWS: np.ndarray | None = None


def perceptual_hash(image: Image.Image) -> int:
    """The 64-bit DCT perceptual hash of a decoded picture, as an unsigned integer: the
    picture greyscale at 32×32 (Lanczos), its 2-D DCT, and the 8×8 lowest frequencies
    compared with their median, row by row, first bit highest.

    The same arithmetic as imagehash.phash (tests/library/test_families.py checks they agree
    bit for bit), written out because in the ingest path imagehash's per-call overhead — two
    whole-block scipy DCTs, a median and bit packing through Python objects — measured ~1 ms
    a picture, more than everything else hashing does; two small matrix products over only
    the 8 needed frequencies cost a few microseconds. Ingest and the thumbnail backfill both
    go through here."""
    from inference.decoding import import_numpy

    import_numpy()  # ingest threads hash at once: the first import must not race
    import numpy as np
    from PIL import Image as PILImage

    global _DCT_ROWS
    if _DCT_ROWS is None:
        _DCT_ROWS = _dct_rows()
    factor = min(image.size) // _PREREDUCE_SIDE
    # reduce() is Pillow's fast integer box filter; BOX then averages the rest exactly.
    grey = (image.reduce(factor) if factor > 1 else image).convert("L")
    if grey.size != (_PREREDUCE_SIDE, _PREREDUCE_SIDE):
        grey = grey.resize((_PREREDUCE_SIDE, _PREREDUCE_SIDE), PILImage.Resampling.BOX)
    small = grey.resize((_HASH_SIDE, _HASH_SIDE), PILImage.Resampling.LANCZOS)
    pixels = np.asarray(small, dtype=np.float64)
    # == dct(dct(pixels, axis=0), axis=1)[:8, :8]. einsum, not `@`: a matrix product goes to
    # BLAS, whose threads keep spinning after the call and took the core from the next
    # file's decoding (measured: +9 % ingest time for a 0.3 ms hash).
    low = np.einsum("km,lm->kl", np.einsum("kn,nm->km", _DCT_ROWS, pixels), _DCT_ROWS)
    bits = (low > np.median(low)).reshape(-1)
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def to_signed64(value: int) -> int:
    """An unsigned 64-bit hash as SQLite's signed INTEGER stores it."""
    return value - (1 << 64) if value >= 1 << 63 else value


def from_signed64(value: int) -> int:
    return value + (1 << 64) if value < 0 else value


def hamming(a: int, b: int) -> int:
    return (from_signed64(a) ^ from_signed64(b)).bit_count()


# --- grouping (multi-index hashing) -----------------------------------------------------------

_MIN_BANDS = 3  # 64 bits in 3 bands: 22 + 21 + 21


def _band_plan(n: int, distance: int) -> int:
    """How many bands to split 64 bits into. If two hashes are within `distance`, at least one
    of m bands differs in at most floor(distance / m) bits (pigeonhole), so each band is
    probed with every flip pattern up to that radius. Each probe costs about the number of
    occupied buckets plus its candidate pairs (n²/2^(bits+1)), a candidate ~4 times a bucket
    (measured): the plan with the smallest estimate wins — 3 bands of ~21 bits for distance 8
    at 100k. A band indexes a table of 2^bits entries, so bands are at most 22 bits."""
    best_m, best_cost = _MIN_BANDS, math.inf
    for m in range(_MIN_BANDS, 17):
        bits = HASH_BITS // m
        radius = distance // m
        probes = sum(math.comb(bits, k) for k in range(radius + 1))
        cost = m * probes * (min(n, 2 ** bits) + 4 * n * n / float(2 ** (bits + 1)))
        if cost < best_cost:
            best_m, best_cost = m, cost
    return best_m


def _flip_masks(bits: int, radius: int) -> list[int]:
    masks = []
    for k in range(radius + 1):
        for positions in combinations(range(bits), k):
            mask = 0
            for p in positions:
                mask |= 1 << p
            masks.append(mask)
    return masks


def as_uint64(hashes: Sequence[int] | np.ndarray) -> np.ndarray:
    """Hashes as stored (signed 64-bit) or as computed (unsigned) → a uint64 array."""
    import numpy as np

    if isinstance(hashes, np.ndarray):
        return hashes if hashes.dtype == np.uint64 else hashes.astype(np.int64).view(np.uint64)
    return np.fromiter((from_signed64(int(h)) for h in hashes), dtype=np.uint64,
                       count=len(hashes))


def close_pairs(hashes: np.ndarray, distance: int) -> np.ndarray:
    """Every pair (i, j), i < j, of positions whose hashes differ in at most `distance` bits,
    as an array of shape (k, 2). `hashes`: uint64. Never compares all pairs (multi-index
    hashing): each band of bits sorts the hashes into buckets by that band's value; two
    hashes are candidates only when their buckets differ by one of the band's flip patterns
    (at most the pigeonhole radius), and only candidates have their full distance checked.
    Work is done per pair of buckets, each unordered pair once, all in numpy."""
    import numpy as np

    n = len(hashes)
    if n < 2:
        return np.empty((0, 2), dtype=np.int64)
    hashes = np.ascontiguousarray(hashes, dtype=np.uint64)
    m = _band_plan(n, distance)
    radius = distance // m
    found: list[np.ndarray] = []
    start_bit = 0
    for band in range(m):
        bits = HASH_BITS // m + (1 if band < HASH_BITS % m else 0)
        values = ((hashes >> np.uint64(start_bit)) & np.uint64((1 << bits) - 1)).astype(np.int64)
        start_bit += bits
        order = np.argsort(values, kind="stable")
        counts = np.bincount(values, minlength=1 << bits)
        starts = np.cumsum(counts) - counts
        occupied = np.flatnonzero(counts)
        for flip in _flip_masks(bits, radius):
            if flip == 0:  # pairs inside one bucket
                a = b = occupied[counts[occupied] > 1]
            else:  # pairs across buckets a and a ^ flip, each bucket pair once
                partner = occupied ^ flip
                chosen = (occupied < partner) & (counts[partner] > 0)
                a, b = occupied[chosen], partner[chosen]
            for part_a, part_b in _bounded(a, b, counts):
                near_pairs = _check(part_a, part_b, counts, starts, order, hashes, distance,
                                    same_bucket=flip == 0)
                if len(near_pairs):
                    found.append(near_pairs)
    if not found:
        return np.empty((0, 2), dtype=np.int64)
    return np.unique(np.concatenate(found), axis=0)


_MAX_CANDIDATES = 4_000_000  # candidate pairs checked at once: bounds the memory used


def _bounded(a: np.ndarray, b: np.ndarray, counts: np.ndarray
             ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The bucket pairs (a, b) in slices of at most ~_MAX_CANDIDATES candidate pairs."""
    import numpy as np

    if len(a) == 0:
        return
    cumulative = np.cumsum(counts[a] * counts[b])
    start = 0
    while start < len(a):
        base = cumulative[start - 1] if start else 0
        end = int(np.searchsorted(cumulative, base + _MAX_CANDIDATES, side="right"))
        end = max(end, start + 1)  # one huge bucket pair still goes (on its own)
        yield a[start:end], b[start:end]
        start = end


def _check(a: np.ndarray, b: np.ndarray, counts: np.ndarray, starts: np.ndarray,
           order: np.ndarray, hashes: np.ndarray, distance: int, same_bucket: bool
           ) -> np.ndarray:
    """Every (i, j), i < j, from bucket a[k] × bucket b[k] within `distance` bits."""
    import numpy as np

    size_a, size_b = counts[a], counts[b]
    per_pair = size_a * size_b
    total = int(per_pair.sum())
    if total == 0:
        return np.empty((0, 2), dtype=np.int64)
    which = np.repeat(np.arange(len(a)), per_pair)
    local = np.arange(total) - (np.cumsum(per_pair) - per_pair)[which]
    row, column = np.divmod(local, size_b[which])
    first = order[starts[a][which] + row]
    second = order[starts[b][which] + column]
    near = np.bitwise_count(hashes[first] ^ hashes[second]) <= distance
    if same_bucket:
        near &= first < second  # each pair once, never a hash with itself
    lo = np.minimum(first[near], second[near])
    hi = np.maximum(first[near], second[near])
    return np.stack((lo, hi), axis=1)


def group_hashes(ids: Sequence[int] | np.ndarray, hashes: Sequence[int] | np.ndarray,
                 distance: int = DEFAULT_DISTANCE) -> list[list[int]]:
    """Groups (2 or more ids) of pictures linked by hashes within `distance` bits, directly or
    through others (connected components: a chain of copies stays one family). Each group
    is sorted; groups are ordered by their smallest id. `hashes` as stored (signed or not)."""
    import numpy as np

    if not 0 <= distance <= MAX_DISTANCE:
        raise ValueError(f"distance must be 0-{MAX_DISTANCE}, got {distance}")
    ids_array = np.asarray(ids, dtype=np.int64)
    # Identical hashes (byte-different files of one picture, or many flat pictures) are
    # grouped up front: only distinct values go through the band index, so a thousand equal
    # hashes cost one entry, not half a million candidate pairs.
    distinct, which = np.unique(as_uint64(hashes), return_inverse=True)
    which = which.reshape(-1)
    pairs = close_pairs(distinct, distance)
    parent = np.arange(len(distinct))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in pairs.tolist():
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    roots = np.fromiter((root(i) for i in range(len(distinct))), dtype=np.int64,
                        count=len(distinct))
    label = roots[which]
    members: dict[int, list[int]] = {}
    shared = np.flatnonzero(np.bincount(label, minlength=len(distinct)) > 1)
    for position in np.flatnonzero(np.isin(label, shared)).tolist():
        members.setdefault(int(label[position]), []).append(int(ids_array[position]))
    groups = [sorted(group) for group in members.values()]
    return sorted(groups, key=lambda group: group[0])


def max_distance(hashes: Sequence[int]) -> int:
    """The largest pairwise distance inside one group (all pairs: groups are small, and
    this runs in numpy even for a large one)."""
    import numpy as np

    values = as_uint64(list(hashes))
    best = 0
    for i in range(len(values) - 1):
        best = max(best, int(np.bitwise_count(values[i + 1:] ^ values[i]).max()))
    return best


# --- the keeper ------------------------------------------------------------------------------

LOSSLESS_FORMATS = frozenset({"PNG", "BMP", "TIFF", "GIF"})
_DECISION_RANK = {"accepted": 0, "none": 1, "rejected": 2}


class KeeperFacts(Protocol):
    """What the keeper rule reads about one picture of a group (db.families.FamilyMember)."""

    content_id: int
    decision: str
    rating: int
    width: int | None
    height: int | None
    format: str | None
    oldest_mtime_ns: int  # its oldest file's modification time


K = TypeVar("K", bound=KeeperFacts)


def keeper_order(facts: KeeperFacts) -> tuple[Any, ...]:
    """Sort key: the keeper sorts first. Accepted first (and a rejected picture last: a
    person said not to keep it), then the highest rating, then the most pixels, then a
    lossless format over a lossy one, then the oldest file; the content id breaks ties so
    the choice never depends on the order rows were read in."""
    pixels = (facts.width or 0) * (facts.height or 0)
    lossless = (facts.format or "").upper() in LOSSLESS_FORMATS
    return (_DECISION_RANK.get(facts.decision, 1), -facts.rating, -pixels, not lossless,
            facts.oldest_mtime_ns, facts.content_id)


def choose_keeper(group: Sequence[K]) -> K:
    if not group:
        raise ValueError("an empty group has no keeper")
    return min(group, key=keeper_order)
