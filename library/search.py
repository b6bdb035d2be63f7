"""Semantic search over the `clip` analyser's embeddings: text -> pictures, picture -> pictures.

Shared by `gentriage search` / `gentriage similar` and the app's like:/similar: filter terms
(no Qt here). The vectors live in the library database (db.embeddings, one float16 row per
content); this module keeps them in memory as ONE contiguous float32 matrix, loaded once and
then topped up with what the analysis runner wrote since (`stored_seq`), and ranks by a
matrix-vector product.

Why a plain numpy matrix and not an ANN library — measured before choosing, on this project's
2-core CPU with 768-d unit vectors, top-100, medians (other jobs were loading the machine, so
the figures are upper bounds; `benchmarks/bench_search.py` repeats the numpy ones):
  * numpy float32 matrix @ query + argpartition, OpenBLAS's default 2 threads: 100k 37-80 ms,
    1M 280-380 ms; the same with ONE BLAS thread: 100k ~10 ms, 1M 180-230 ms (two BLAS
    threads busy-wait for a core another job holds);
  * usearch 2.26 exact search, f16: 100k 34-52 ms, 1M 280-330 ms (f32: slower than numpy);
  * faiss-cpu 1.15 IndexScalarQuantizer fp16 (flat, exact): 100k 58-88 ms, 1M 140-235 ms;
    IndexFlatIP (fp32): 100k ~156 ms, 1M ~1,080 ms;
  * sqlite-vec: cannot load here at all (this Python's sqlite3 is built without extension
    loading, as on several distributions), and it would tie the user's database file to an
    extension that PostgreSQL does not have.
A brute-force scan is memory-bound, so the exact options land within ~2x of each other and
the single-threaded numpy scan is as fast as any; the fp16 ones would halve the memory (1.5 GB
instead of 3 GB at 1M). Approximate indexes (HNSW) answer in < 1 ms but take minutes to build
for 1M vectors on 2 cores, need a cache file of their own beside the database to avoid that at
every start, lose exactness (a re-encoded copy must rank first), and would make "every other
filter term combines" approximate too. numpy adds no compiled dependency (threadpoolctl, which
keeps the scan on one BLAS thread, is pure Python), no second OpenMP runtime beside torch's
(faiss ships its own libgomp), filters exactly with a boolean mask, and appends incrementally.
If memory at millions of pictures becomes the constraint, swapping the matrix for usearch's f16
kernel is local to `EmbeddingIndex`.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from db import embeddings as stored
from db.filters import ImageFilter, SortKey, with_semantic
from db.queries import MAX_RANKED, matching_content_ids
from db.ranking import Ranking
from inference.weights import READY, ModelStatus

log = logging.getLogger(__name__)

DIM = 768
# How many pictures a like:/similar: term shows in the app: the closest ones that the other
# filter terms allow. Beyond it the grid ends (search again with more words, or narrow the
# other terms: the ranking is redone within them).
APP_RESULTS = 1_000
TEXT_CACHE_SIZE = 64  # recent like:/search texts whose embedding is kept
# With other filter terms: how many times `limit` of the closest pictures are checked against
# them before falling back to listing every picture they allow.
WIDEN = 4
MODELS_HINT = "see `gentriage models`"


class SearchUnavailable(Exception):
    """Search cannot run; the message names what is missing and how to get it."""


class EmbeddingIndex:
    """The embeddings of one weights version as a contiguous (n, dim) float32 matrix, with
    the content id of every row. Grows by appending (capacity doubles, so a million rows
    arriving in small batches are copied about once); a content embedded again (only possible
    within a version if the runner redid it) is overwritten in place. Thread-safe."""

    def __init__(self, dim: int = DIM) -> None:
        self.dim = dim
        self.version: str | None = None
        self.seq = 0  # highest stored_seq loaded
        self._matrix = np.zeros((0, dim), dtype=np.float32)
        self._ids = np.zeros(0, dtype=np.int64)
        self._count = 0
        self._row_of: dict[int, int] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self._count

    def reset(self, version: str | None) -> None:
        with self._lock:
            self.version, self.seq, self._count = version, 0, 0
            self._row_of.clear()
            self._matrix = np.zeros((0, self.dim), dtype=np.float32)
            self._ids = np.zeros(0, dtype=np.int64)

    def reserve(self, rows: int) -> None:
        with self._lock:
            self._grow_to(rows)

    def _grow_to(self, rows: int) -> None:
        if rows <= len(self._ids):
            return
        capacity = max(rows, 2 * len(self._ids), 1024)
        matrix = np.zeros((capacity, self.dim), dtype=np.float32)
        ids = np.zeros(capacity, dtype=np.int64)
        matrix[:self._count] = self._matrix[:self._count]
        ids[:self._count] = self._ids[:self._count]
        self._matrix, self._ids = matrix, ids

    def add(self, content_ids: Sequence[int], vectors: np.ndarray) -> None:
        """Rows of `vectors` (any float dtype, (len(content_ids), dim)) for these contents."""
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(content_ids), self.dim)
        with self._lock:
            fresh = [i for i, cid in enumerate(content_ids) if cid not in self._row_of]
            for i, cid in enumerate(content_ids):
                row = self._row_of.get(cid)
                if row is not None:
                    self._matrix[row] = vectors[i]
            if not fresh:
                return
            self._grow_to(self._count + len(fresh))
            start, end = self._count, self._count + len(fresh)
            self._matrix[start:end] = vectors[fresh]
            self._ids[start:end] = [content_ids[i] for i in fresh]
            for offset, i in enumerate(fresh):
                self._row_of[content_ids[i]] = start + offset
            self._count = end

    def refresh(self, session: Session, version: str) -> int:
        """Catch up with the database: everything of `version` on the first call (or after the
        version changed), afterwards only rows written since. Returns the rows read."""
        if version != self.version:
            self.reset(version)
            self.reserve(stored.count_embeddings(session, version))
        read = 0
        if stored.latest_seq(session) <= self.seq:
            return 0  # nothing written since (one index lookup)
        for chunk in stored.stream_embeddings(session, version, self.seq):
            good = [(cid, vector) for cid, vector, _ in chunk if len(vector) == 2 * self.dim]
            if good:
                matrix = np.frombuffer(b"".join(v for _, v in good), dtype="<f2")
                self.add([cid for cid, _ in good], matrix.reshape(len(good), self.dim))
            self.seq = max(self.seq, max(seq for _, _, seq in chunk))
            read += len(chunk)
        return read

    def vector_of(self, content_id: int) -> np.ndarray | None:
        with self._lock:
            row = self._row_of.get(content_id)
            return None if row is None else self._matrix[row].copy()

    def top(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None,
            exclude: Iterable[int] = ()) -> list[tuple[int, float]]:
        """The `k` contents most similar to `query` (a unit vector): (content id, cosine),
        best first. `allowed`: content ids to rank among (None: all); `exclude`: never these."""
        query = np.asarray(query, dtype=np.float32).reshape(self.dim)
        with self._lock:
            n = self._count
            if n == 0 or k <= 0:
                return []
            with _one_blas_thread():
                scores = self._matrix[:n] @ query  # one BLAS sgemv: the whole cost
            ids = self._ids[:n]
            if allowed is not None:
                scores[~_member_mask(ids, allowed)] = -np.inf
            for cid in exclude:
                row = self._row_of.get(cid)
                if row is not None:
                    scores[row] = -np.inf
            k = min(k, n)
            best = np.argpartition(-scores, k - 1)[:k] if k < n else np.arange(n)
            # Best first; equal scores by content id so results are stable.
            best = best[np.lexsort((ids[best], -scores[best]))]
            return [(int(ids[i]), float(scores[i])) for i in best if np.isfinite(scores[i])]


_BLAS: Any = None


def _one_blas_thread() -> Any:
    """Limit numpy's OpenBLAS to one thread for the duration (see the module docstring).
    Only OpenBLAS is touched: torch's own BLAS/OpenMP threads keep their settings."""
    global _BLAS
    if _BLAS is None:
        from threadpoolctl import ThreadpoolController

        _BLAS = ThreadpoolController().select(internal_api="openblas")
    return _BLAS.limit(limits=1)


def _member_mask(ids: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """ids[i] in allowed, for every i, in O(n): ids are dense database keys, so a lookup table
    over 0..max id (1 byte each) beats sorting both lists."""
    allowed = np.asarray(allowed, dtype=np.int64)
    if allowed.size == 0:
        return np.zeros(len(ids), dtype=bool)
    top = int(max(ids.max(initial=0), allowed.max())) + 1
    table = np.zeros(top, dtype=bool)
    table[allowed[allowed >= 0]] = True
    return table[ids]


def narrows(f: ImageFilter) -> bool:
    """Whether terms other than the semantic one narrow the view (then the ranking is done
    within what they allow, so the closest matches are never crowded out by pictures the
    other terms hide)."""
    plain = replace(with_semantic(f), sort=SortKey(), unreviewed_first=False)
    return plain != ImageFilter()


class SemanticSearch:
    """Ranks pictures for like:/similar: terms and the search commands.

    Discovery runs at every call (cheap: headers and cached checksums), so replaced weights
    are noticed: the index reloads for the new version and the text tower is reloaded."""

    def __init__(self, sessions: sessionmaker[Session], models_dir: Path | str,
                 hf_cache: Path | None = None, device: str = "cpu",
                 text_cache_size: int = TEXT_CACHE_SIZE) -> None:
        self._sessions = sessions
        self._models_dir = Path(models_dir)
        self._hf_cache = hf_cache
        self._device = device
        self.index = EmbeddingIndex()
        self._text_encoder: Any = None
        self._text_version: str | None = None
        self._text_cache: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._text_cache_size = text_cache_size
        self.texts_encoded = 0  # text tower calls (tests check the cache)

    # ---------------------------------------------------------------- availability

    def status(self) -> ModelStatus:
        from inference.weights import discover

        (status,) = discover(self._models_dir, ["clip"], hf_cache=self._hf_cache)
        return status

    def _ready_status(self) -> ModelStatus:
        status = self.status()
        if status.status != READY or not status.version:
            raise SearchUnavailable(
                f"needs the CLIP ViT-L/14 model ({CLIP_WHAT}), which is {status.status}: "
                f"{status.message}. Get it: {status.how_to_get}; {MODELS_HINT}")
        return status

    def refresh(self) -> int:
        """Load what the analysis runner stored since the last call (all, the first time).
        Returns the rows read. Raises SearchUnavailable without weights or embeddings."""
        status = self._ready_status()
        with self._sessions() as session:
            read = self.index.refresh(session, str(status.version))
            if len(self.index) == 0:
                raise SearchUnavailable(self._no_embeddings_message(session, str(status.version)))
        return read

    @staticmethod
    def _no_embeddings_message(session: Session, version: str) -> str:
        others = sum(stored.versions_present(session).values())
        if others:
            return (f"the library's {others:,} CLIP embedding(s) were made with other CLIP "
                    "weights than the ones found now; run `gentriage scan` to embed the "
                    f"pictures again with the current weights ({MODELS_HINT})")
        return ("no picture has a CLIP embedding yet: run `gentriage scan` with the clip "
                f"analyser enabled (it needs the CLIP ViT-L/14 weights; {MODELS_HINT})")

    # ---------------------------------------------------------------- queries

    def text_vector(self, text: str) -> np.ndarray:
        """The text's CLIP embedding (recent texts from a cache; the tower loads on first use)."""
        status = self._ready_status()
        version = str(status.version)
        key = (version, text)
        hit = self._text_cache.get(key)
        if hit is not None:
            self._text_cache.move_to_end(key)
            return hit
        encoder = self._encoder_for(status)
        try:
            vector = encoder.encode([text])[0]
        except Exception as exc:
            raise SearchUnavailable(f"the CLIP text tower failed: {exc}") from exc
        self.texts_encoded += 1
        self._text_cache[key] = vector
        while len(self._text_cache) > self._text_cache_size:
            self._text_cache.popitem(last=False)
        return vector

    def _encoder_for(self, status: ModelStatus) -> Any:
        from inference.clip_search import ClipTextEncoder
        from inference.weights import WeightsError

        if self._text_encoder is None or self._text_version != status.version:
            try:
                encoder = ClipTextEncoder(status, self._device)
                encoder.load()
            except WeightsError as exc:
                raise SearchUnavailable(
                    f"text search needs CLIP's text tower and tokenizer: {exc}. Get the whole "
                    f"{CLIP_WHAT} folder: {status.how_to_get}; {MODELS_HINT}") from exc
            self._text_encoder, self._text_version = encoder, status.version
            self._text_cache.clear()
        return self._text_encoder

    def rank_text(self, text: str, limit: int, f: ImageFilter | None = None) -> Ranking:
        """The `limit` contents closest to `text` (among those `f`'s other terms allow)."""
        self.refresh()
        query = self.text_vector(text)
        return self._rank(query, limit, f, (), f"{min(limit, len(self.index)):,} closest to "
                          f"“{text}”")

    def rank_similar(self, content_id: int, limit: int, f: ImageFilter | None = None,
                     what: str = "") -> Ranking:
        """The `limit` contents closest to this content's picture, itself excluded."""
        self.refresh()
        query = self.index.vector_of(content_id)
        if query is None:
            raise SearchUnavailable(
                f"{what or f'picture {content_id}'} has no CLIP embedding yet (the clip "
                "analyser has not analysed it; run `gentriage scan`, or wait for the app's "
                "analysis to reach it)")
        return self._rank(query, limit, f, (content_id,),
                          f"{min(limit, len(self.index)):,} most similar to "
                          f"{what or f'picture {content_id}'}")

    def _rank(self, query: np.ndarray, limit: int, f: ImageFilter | None,
              exclude: Sequence[int], note: str) -> Ranking:
        """Exact top-`limit` among the contents `f`'s other terms allow. Usual case first: of
        the WIDEN x limit closest overall, check which the terms allow (one short SQL
        query); when at least `limit` pass, they are exactly the answer. Otherwise (a very
        narrow filter) list every allowed content and rank among those."""
        limit = max(1, min(limit, MAX_RANKED))
        if f is None or not narrows(f):
            return Ranking.of(self.index.top(query, limit, None, exclude), limit, note)
        wanted = min(limit * WIDEN, MAX_RANKED)
        wide = self.index.top(query, wanted, None, exclude)
        with self._sessions() as session:
            passing = set(matching_content_ids(session, f, among=[c for c, _ in wide]))
            kept = [(c, s) for c, s in wide if c in passing]
            if len(kept) < limit and len(wide) == wanted:
                allowed = np.asarray(matching_content_ids(session, f), dtype=np.int64)
                kept = self.index.top(query, limit, allowed, exclude)
        return Ranking.of(kept[:limit], limit, note)

    def resolve(self, f: ImageFilter, limit: int = APP_RESULTS) -> ImageFilter:
        """`f` with the ranking of its like:/similar: term attached (unchanged without one)."""
        if not f.semantic:
            return f
        if f.like is not None:
            ranking = self.rank_text(f.like, limit, f)
        else:
            assert f.similar_to is not None
            with self._sessions() as session:
                content_id = stored.content_of_image(session, f.similar_to)
            if content_id is None:
                raise SearchUnavailable(f"similar:{f.similar_to}: no such image in the library")
            ranking = self.rank_similar(content_id, limit, f, f"image {f.similar_to}")
        return replace(f, ranking=ranking)


CLIP_WHAT = "openai/clip-vit-large-patch14"

__all__ = ["APP_RESULTS", "EmbeddingIndex", "SearchUnavailable", "SemanticSearch", "narrows"]
