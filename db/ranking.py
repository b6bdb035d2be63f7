"""A semantic ranking: the contents a like:/similar: term selects, with their similarity.

Computed outside db/ (library.search ranks the CLIP embeddings in memory) and handed to the
query layer attached to the ImageFilter (`ImageFilter.ranking`), so every query function —
page, count, position, rows — sees the same ranked set. db.queries joins it as a VALUES
table: the other filter terms still combine in SQL and paging stays keyset, with the score
as the sort key. Pure data, no SQL.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Ranking:
    """Content ids, most similar first, with their cosine similarity (-1..1).

    `limit`: how many the ranker was asked for (the ranking holds fewer when fewer pictures
    qualified). `note`: one line for people about what was ranked ("1,000 closest to …")."""

    content_ids: tuple[int, ...]
    scores: tuple[float, ...]
    limit: int
    note: str = ""
    _by_id: dict[int, float] = field(default_factory=dict, init=False, repr=False,
                                     compare=False, hash=False)

    def __post_init__(self) -> None:
        if len(self.content_ids) != len(self.scores):
            raise ValueError("a ranking needs one score per content id")
        self._by_id.update(zip(self.content_ids, self.scores))

    @classmethod
    def of(cls, pairs: Iterable[tuple[int, float]], limit: int, note: str = "") -> Ranking:
        pairs = list(pairs)
        return cls(tuple(int(c) for c, _ in pairs), tuple(float(s) for _, s in pairs), limit,
                   note)

    def score_of(self, content_id: int | None) -> float | None:
        return None if content_id is None else self._by_id.get(content_id)

    def __len__(self) -> int:
        return len(self.content_ids)


__all__ = ["Ranking"]
