"""The embedded store: questions in memory, vectors in a FAISS :class:`~dupq.index.VectorIndex`, saved
to one directory by :meth:`dupq.matcher.Matcher.save` (FAISS index + Parquet table + manifest).

It is fast (no round trip: a match is a FAISS search and dict lookups) and needs nothing running, which
is why it is the default; but one process owns it. Two processes that save the same directory get
:class:`~dupq.errors.StoreConflictError` (nothing is lost, the second must reload and retry), and the
vectors of every question live in that process's memory. For many processes, or more questions than one
process should hold, use :class:`dupq.stores.postgres.PostgresStore`.

Thread safety: a readers–writer lock: any number of searches run together, ``add``/``remove`` are
exclusive and never observed half-done (an id is in the index iff its row is stored).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dupq.errors import ConflictError, StoreError, UnknownIdError
from dupq.index import VectorIndex
from dupq.runtime import RWLock
from dupq.stores.base import Hit, Row
from dupq.text import KEY_VERSION, text_key


class FileStore:
    """Rows in a dict, vectors in a :class:`VectorIndex` (``index_kind``/``index_params``: see
    :mod:`dupq.index`), a hash table from exact key to ids."""

    durable = False  # a write reaches disk only with the next Matcher.save

    def __init__(self, dim: int, *, index_kind: str = "auto", index_params: dict[str, Any] | None = None):
        self.index = VectorIndex(dim, kind=index_kind, **(index_params or {}))
        self._rows: dict[int, Row] = {}
        self._by_key: dict[str, list[int]] = {}
        self._lock = RWLock()
        self._next_id = 0

    # -- writes -------------------------------------------------------------------------------------
    def add(self, vectors: np.ndarray, rows: Sequence[Row], ids: Sequence[int] | None) -> list[int]:
        with self._lock.write():
            if ids is None:
                start = self._next_id
                ids = list(range(start, start + len(rows)))
            else:
                ids = list(ids)
                present = [i for i in ids if i in self._rows]
                if present:
                    raise ConflictError(
                        f"{len(present)} id(s) already stored, e.g. {present[:5]} "
                        "(remove them first to replace)",
                        row=ids.index(present[0]) + 1,
                        column="id",
                    )
            self.index.add(vectors, np.asarray(ids, dtype=np.int64))
            for i, row in zip(ids, rows, strict=True):
                self._rows[i] = row
                self._by_key.setdefault(row.key, []).append(i)
            self._next_id = max(self._next_id, max(ids) + 1)
        return ids

    def remove(self, ids: Sequence[int], *, missing_ok: bool) -> int:
        with self._lock.write():
            unknown = [i for i in ids if i not in self._rows]
            if unknown and not missing_ok:
                raise UnknownIdError(unknown)
            hit = [i for i in ids if i in self._rows]
            self.index.remove(hit)
            for i in hit:
                key = self._rows.pop(i).key
                same = self._by_key[key]
                same.remove(i)
                if not same:
                    del self._by_key[key]
        return len(hit)

    # -- reads --------------------------------------------------------------------------------------
    def exact(self, keys: Sequence[str]) -> list[list[Hit]]:
        with self._lock.read():
            return [[Hit(i, 1.0, self._rows[i]) for i in sorted(self._by_key.get(k, ()))] for k in keys]

    def search(self, vectors: np.ndarray, k: int) -> list[list[Hit]]:
        with self._lock.read():
            # No query can get more than every stored question: a huge k (10**8) must not make FAISS
            # allocate an n-by-k result matrix (gigabytes) for a store of a few thousand.
            search_k = max(1, min(int(k), len(self.index)))
            if not len(vectors) or not len(self.index):
                return [[] for _ in range(len(vectors))]
            scores, found = self.index.search(vectors, search_k)
            return [
                [Hit(int(i), float(s), self._rows[int(i)]) for s, i in zip(sr, fr, strict=True) if i >= 0]
                for sr, fr in zip(scores, found, strict=True)
            ]

    def get(self, id_: int) -> Row | None:
        with self._lock.read():
            return self._rows.get(id_)

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, id_: object) -> bool:
        return id_ in self._rows

    def ids(self) -> list[int]:
        with self._lock.read():
            return sorted(self._rows)

    def stats(self) -> dict[str, Any]:
        with self._lock.read():
            return {
                "store": "file",
                "count": len(self._rows),
                "distinct_normalised_texts": len(self._by_key),
                "truncated": sum(1 for r in self._rows.values() if r.truncated),
                "index_kind": self.index.kind,
                "index_requested_kind": self.index.requested_kind,
                "index_params": dict(self.index.params),
            }

    def export(self, batch_size: int = 10_000) -> Iterator[tuple[list[int], np.ndarray, list[Row]]]:
        with self._lock.read():
            ids, vecs = self.index.reconstruct_all()
            rows = [self._rows[int(i)] for i in ids.tolist()]
        for s in range(0, len(rows), batch_size):
            yield ids[s : s + batch_size].tolist(), vecs[s : s + batch_size], rows[s : s + batch_size]

    def close(self) -> None:
        pass

    # -- files (used by Matcher.save / Matcher.load, which own the manifest) ------------------------
    def write(self, index_path: Path, questions_path: Path, pause: Any = None) -> dict[str, Any]:
        """Write the index and the questions table; returns the manifest fields they determine.
        The caller holds :meth:`reading` so the two files and the manifest describe one state."""
        self.index.save(index_path)
        if pause:
            pause()
        ids = sorted(self._rows)
        rows = [self._rows[i] for i in ids]
        table = pd.DataFrame(
            {
                "id": pd.Series(ids, dtype="int64"),
                "text": pd.Series([r.text for r in rows], dtype=object),
                "key": pd.Series([r.key for r in rows], dtype=object),
                "truncated": pd.Series([r.truncated for r in rows], dtype=bool),
                "metadata": pd.Series(
                    [
                        None if r.metadata is None else json.dumps(r.metadata, ensure_ascii=False)
                        for r in rows
                    ],
                    dtype=object,
                ),
            }
        )
        table.to_parquet(questions_path, index=False)
        return {
            "count": len(ids),
            "next_id": self._next_id,
            "index_kind": self.index.kind,
            "index_requested_kind": self.index.requested_kind,
        }

    def reading(self) -> Any:
        """The read lock (a consistent state for :meth:`write`)."""
        return self._lock.read()

    @classmethod
    def from_files(
        cls,
        directory: Path,
        index: VectorIndex,
        table: pd.DataFrame,
        count: int,
        next_id: int | None,
        key_version: int = 1,
    ) -> FileStore:
        """A store from a loaded index and questions table (checked against each other and ``count``).

        A table saved under another exact-key rule (``key_version``, :data:`dupq.text.KEY_VERSION`) is
        re-keyed from its texts, which are stored: two rules are never mixed in one store."""
        if len(table) != count or len(index) != count:
            raise StoreError(
                f"{directory}: manifest count {count}, questions {len(table)}, index {len(index)}"
            )
        self = cls.__new__(cls)
        self.index = index
        self._rows = {}
        self._by_key = {}
        rekey = key_version != KEY_VERSION
        for i, text, key, trunc, meta in zip(
            table["id"].tolist(),
            table["text"].tolist(),
            table["key"].tolist(),
            table["truncated"].tolist(),
            table["metadata"].tolist(),
            strict=True,
        ):
            if rekey:
                key = text_key(text)
            # a null metadata cell may come back as None or NaN depending on the pandas version
            self._rows[int(i)] = Row(
                text, key, bool(trunc), json.loads(meta) if isinstance(meta, str) else None
            )
            self._by_key.setdefault(key, []).append(int(i))
        if set(self._rows) != set(index.ids.tolist()):
            raise StoreError(f"{directory}: the index and the questions table hold different ids")
        self._lock = RWLock()
        self._next_id = int(next_id if next_id is not None else max(self._rows, default=-1) + 1)
        return self
