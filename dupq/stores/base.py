"""The interface every Matcher store implements, and what the stores exchange with the Matcher.

The :class:`~dupq.matcher.Matcher` does the model work (encoding, scoring, verifying) and hands a store
the rest: keeping rows and vectors, the exact-key lookup, the nearest-neighbour search, ids. Two stores
implement it:

* :class:`dupq.stores.file.FileStore` — in memory, saved to a directory (FAISS + Parquet): the embedded
  default, owned by one process;
* :class:`dupq.stores.postgres.PostgresStore` — a PostgreSQL table with a pgvector HNSW index: every
  write is a transaction, any number of processes on any number of hosts share it.

The Matcher never asks which one it has (only :meth:`Matcher.save`/``load`` of a directory are the file
store's own), so the scoring logic above stays one code path.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np


class Row(NamedTuple):
    """One stored question as the Matcher reads it back."""

    text: str
    key: str  # dupq.text.text_key of the text (computed by the Matcher, never by a store)
    truncated: bool
    metadata: dict[str, Any] | None


class Hit(NamedTuple):
    """One search result: a stored question and its cosine similarity to the query."""

    id: int
    score: float
    row: Row


@runtime_checkable
class QuestionStore(Protocol):
    """What a Matcher needs from a store. Every method is safe to call from several threads.

    ``durable``: whether a write is on durable storage once :meth:`add`/:meth:`remove` return (the
    database store) or only after a save (the file store): ``dupq serve`` saves after writes only when
    it is not. ``index``: an object with ``kind``, ``requested_kind`` and ``params`` (what ``/stats``
    and the CLI report).
    """

    durable: bool
    index: Any

    def add(
        self,
        vectors: np.ndarray,
        rows: Sequence[Row],
        ids: Sequence[int] | None,
    ) -> list[int]:
        """Store ``rows`` with their unit ``vectors``; all or nothing. ``ids=None`` assigns new ids
        (never reused); an id already stored raises :class:`~dupq.errors.ConflictError`."""

    def remove(self, ids: Sequence[int], *, missing_ok: bool) -> int:
        """Remove ``ids`` (distinct); all or nothing. Unknown ids raise
        :class:`~dupq.errors.UnknownIdError` unless ``missing_ok``. Returns how many were removed."""

    def exact(self, keys: Sequence[str]) -> list[list[Hit]]:
        """For each key, the stored questions with that exact key (score 1.0), by id."""

    def search(self, vectors: np.ndarray, k: int) -> list[list[Hit]]:
        """For each query vector, up to ``k`` stored questions by descending cosine."""

    def get(self, id_: int) -> Row | None:
        """The stored question ``id_``, or ``None``."""

    def __len__(self) -> int: ...

    def __contains__(self, id_: object) -> bool: ...

    def ids(self) -> list[int]:
        """Every stored id, ascending."""

    def stats(self) -> dict[str, Any]:
        """Counts and index configuration (merged into ``Matcher.stats()``)."""

    def export(self, batch_size: int = 10_000) -> Iterator[tuple[list[int], np.ndarray, list[Row]]]:
        """Every stored question with its vector, in id order, ``batch_size`` at a time (a copy to
        another store needs no re-encoding)."""

    def close(self) -> None:
        """Release connections (no-op for the file store)."""
