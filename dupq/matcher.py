"""The Matcher: "has this question been asked before?" in milliseconds, next to a Q&A site's database.

A :class:`Matcher` holds stored questions (int id, text, optional JSON metadata), their embeddings in
a :class:`dupq.index.VectorIndex`, and a hash table of normalised texts. ``match`` answers, for one or
many new questions, the ranked stored questions with cosine score, calibrated ``P(duplicate)`` (when
the model carries a calibration) and a duplicate flag at the model's threshold.

Design points, each with a reason:

* **Exact duplicates by hash first.** A query whose :func:`dupq.text.normalize` form equals a stored
  question's is answered from a dict, score 1.0, without running the model (``exact_first=True``):
  re-posts are the most common duplicate and cost nothing to find.
* **One encode path.** Everything is encoded by :class:`dupq.embed.Embedder`; a batch of queries is
  encoded in one call.
* **Thread-safe.** A readers–writer lock: any number of ``match`` calls run together, ``add``/``remove``
  are exclusive and never observed half-done (an id is in the index iff its text is stored). Encoding
  happens outside the store lock, serialised by its own lock (Hugging Face fast tokenizers raise
  "Already borrowed" when one tokenizer is used from two threads at once).
* **Durable, self-checking persistence.** One directory: ``index.dupqidx`` (FAISS, with its own
  checksum), ``questions.parquet`` (id, text, key, truncated, metadata JSON) and ``manifest.json``
  (model fingerprint, dimension, metric, count, index kind, threshold, calibration, format version and
  the sha256 of every file). :meth:`Matcher.save` writes a complete new directory and swaps it in
  (:func:`dupq.io.atomic_dir`); a process killed at any instant leaves the previous store loadable.
  :meth:`Matcher.load` refuses a store built with another model (vectors of two models live in
  different spaces) and any missing, short or altered file, with :class:`dupq.errors.StoreError`.

Bad input, and what happens (all-or-nothing: a rejected batch changes nothing):

* empty/whitespace-only or non-string question → :class:`dupq.errors.InputError` naming its position
  (``row`` is 1-based, ``column="text"``), in ``add`` and in ``match``;
* a text longer than the model reads (``max_seq_length`` tokens) → encoded from its beginning (the
  tokenizer truncates), a :class:`TruncationWarning` is issued, stored rows keep ``truncated=True``,
  and a query's :class:`~dupq.datamodels.QueryMatches` has ``truncated=True``;
* ids: non-negative ints (``-1`` is FAISS's "no result"); a duplicate id within one ``add`` or an id
  already stored → ``InputError`` (update = ``remove`` then ``add``); ``ids=None`` assigns
  ``max(stored id) + 1 …``;
* ``remove`` of an id that is not stored → :class:`UnknownIdError` listing them, nothing removed —
  unless ``missing_ok=True``, where unknown ids are skipped and the count removed is returned.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
import uuid
import warnings
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dupq.checks import as_id, check_ids, check_metadata, check_texts, read_questions
from dupq.datamodels import Match, QueryMatches, format_matches  # noqa: F401  (format_matches: re-exported)
from dupq.embed import Embedder, as_embedder
from dupq.encoder import DEFAULT_THRESHOLD, check_threshold, read_metadata, resolve_threshold
from dupq.errors import ConflictError, InputError, StoreError, UnknownIdError
from dupq.index import VectorIndex
from dupq.io import atomic_dir, atomic_write_json, recover_dir, sha256_file, store_lock
from dupq.manifest import (
    INDEX_FILE,
    MANIFEST_FILE,
    QUESTIONS_FILE,
    STORE_FORMAT,
    STORE_FORMAT_VERSION,
    check_files,
    check_unchanged,
    generation,
    read_manifest,
)
from dupq.runtime import RWLock, torch_threads
from dupq.text import text_key

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from dupq.verifier import Verifier

logger = logging.getLogger(__name__)

#: Query batches smaller than this are encoded with ``query_threads`` torch threads (default 1).
#: Measured here (2 cores, busy): one short question takes 27–40 ms with 1 intra-op thread and
#: 230–300 ms with 2, because a parallel region waits for a descheduled worker; a short sequence has
#: too little work to split anyway. Large batches (``add`` of a table) keep torch's own setting.
SMALL_BATCH = 16
#: Testing aid: seconds to sleep after writing each file of a save (lets a test kill a save midway).
_SLOW_SAVE_ENV = "DUPQ_SLOW_SAVE"


class TruncationWarning(UserWarning):
    """Some texts were longer than the model's ``max_seq_length``; only their beginning was encoded."""


class Matcher:
    """Find stored questions that duplicate new ones (see the module docstring for the contract).

    ``model``: ``None`` (the embedded all-MiniLM-L6-v2), a model directory, a loaded
    ``SentenceTransformer`` or a :class:`dupq.embed.Embedder`. ``threshold``: cosine above which a
    match is a duplicate; default the model's ``dupq.json`` threshold, else :data:`DEFAULT_THRESHOLD`.
    ``index_kind``/``index_params``: see :mod:`dupq.index` (``auto``: exact flat search up to
    :data:`dupq.index.AUTO_FLAT_MAX` questions, HNSW above; crossing it converts the index once, inside
    that ``add``). ``query_threads``: torch threads for query batches under :data:`SMALL_BATCH`.
    ``verifier``: a :class:`dupq.verifier.Verifier` (or its directory) that rescores every non-exact
    match: ``score``, ``probability`` and ``is_duplicate`` then come from the verifier (its own
    threshold, best F1 on its dev split), and the cosine is kept as ``similarity``.
    """

    def __init__(
        self,
        model: Embedder | SentenceTransformer | str | Path | None = None,
        *,
        threshold: float | None = None,
        index_kind: str = "auto",
        index_params: dict[str, Any] | None = None,
        device: str | None = None,
        batch_size: int = 64,
        query_threads: int | None = 1,
        verifier: Verifier | str | Path | None = None,
    ) -> None:
        self.embedder = as_embedder(model, device=device, batch_size=batch_size)
        self.query_threads = query_threads
        self.verifier = _as_verifier(verifier, device)
        meta = read_metadata(self.embedder.source) if self.embedder.source else {}
        self.calibration: dict[str, float] | None = _calibration(meta.get("calibration"))
        self.threshold = resolve_threshold(threshold, self.embedder.source, warn=False)[0]
        self.index = VectorIndex(self.embedder.dim, kind=index_kind, **(index_params or {}))
        self._rows: dict[int, tuple[str, str, bool, dict | None]] = {}  # id -> (text, key, truncated, meta)
        self._by_key: dict[str, list[int]] = {}
        self._lock = RWLock()
        self._encode_lock = threading.Lock()
        self._save_lock = threading.Lock()
        self._next_id = 0
        self.skipped_rows: list[int] = []  # rows without text that the last add_table skipped
        self._generations: dict[str, str] = {}  # store directory -> manifest hash we loaded / saved there

    @classmethod
    def from_model(cls, model_dir: str | Path, **kwargs: Any) -> Matcher:
        """A Matcher over a fine-tuned model directory, using its calibrated threshold and P(duplicate).

        Reads ``dupq.json`` (``threshold``; ``calibration`` ``{"coef": a, "intercept": b}`` so that
        ``P = 1 / (1 + exp(-(a*cos + b)))``). Without it, ``probability`` is ``None`` and the threshold
        is :data:`DEFAULT_THRESHOLD` (a warning says so).
        """
        if not read_metadata(model_dir):
            warnings.warn(
                f"{model_dir} has no dupq.json: no calibrated P(duplicate); threshold {DEFAULT_THRESHOLD}",
                stacklevel=2,
            )
        return cls(model_dir, **kwargs)

    # -- scoring ------------------------------------------------------------------------------------
    def probability(self, score: float) -> float | None:
        """Calibrated P(duplicate) for a cosine score, or ``None`` without a calibration."""
        if self.calibration is None:
            return None
        from dupq.evaluation.calibration import Calibration

        cal = Calibration(threshold=self.threshold, f1=math.nan, **self.calibration)
        return float(cal.probability(float(score)))

    # -- writes -------------------------------------------------------------------------------------
    def add(
        self,
        texts: str | Sequence[str],
        ids: Sequence[int] | None = None,
        metadata: Sequence[dict[str, Any] | None] | None = None,
        *,
        show_progress: bool = False,
    ) -> list[int]:
        """Store questions; returns their ids. All-or-nothing: a bad item rejects the whole call."""
        return self._add(texts, ids, metadata, show_progress=show_progress)[0]

    def _add(
        self,
        texts: str | Sequence[str],
        ids: Sequence[int] | None = None,
        metadata: Sequence[dict[str, Any] | None] | None = None,
        *,
        show_progress: bool = False,
    ) -> tuple[list[int], list[bool]]:
        """:meth:`add`, also returning which texts were truncated (the server reports those without
        reading them back, which could race a concurrent delete)."""
        if isinstance(texts, str) or not isinstance(texts, (list, tuple, np.ndarray, pd.Series)):
            texts = [texts]
        texts = list(texts)
        check_texts(texts)
        if ids is not None:
            ids = check_ids(ids, len(texts))
        if metadata is not None:
            metadata = check_metadata(metadata, len(texts))
        if not texts:
            return [], []
        vecs, truncated = self._encode(texts, show_progress=show_progress)
        with self._lock.write():
            if ids is None:
                start = self._next_id
                ids = list(range(start, start + len(texts)))
            else:
                present = [i for i in ids if i in self._rows]
                if present:
                    raise ConflictError(
                        f"{len(present)} id(s) already stored, e.g. {present[:5]} "
                        "(remove them first to replace)",
                        row=ids.index(present[0]) + 1,
                        column="id",
                    )
            self.index.add(vecs, np.asarray(ids, dtype=np.int64))
            for j, (i, t) in enumerate(zip(ids, texts, strict=True)):
                key = text_key(t)
                self._rows[i] = (t, key, bool(truncated[j]), metadata[j] if metadata else None)
                self._by_key.setdefault(key, []).append(i)
            self._next_id = max(self._next_id, max(ids) + 1)
        return list(ids), [bool(t) for t in truncated]

    def remove(self, ids: int | Iterable[int], *, missing_ok: bool = False) -> int:
        """Remove stored questions by id; returns how many were removed (see module doc for unknown ids)."""
        if isinstance(ids, (str, bytes, int, np.integer)) or not isinstance(ids, Iterable):
            ids = [ids]  # one id — or one bad value (None, "abc"), reported as such below
        checked = []
        for r, v in enumerate(ids, start=1):
            try:
                checked.append(as_id(v))
            except ValueError as exc:
                raise InputError(str(exc), row=r, column="id") from None
        wanted = list(dict.fromkeys(checked))
        with self._lock.write():
            unknown = [i for i in wanted if i not in self._rows]
            if unknown and not missing_ok:
                raise UnknownIdError(unknown)
            hit = [i for i in wanted if i in self._rows]
            self.index.remove(hit)
            for i in hit:
                _, key, _, _ = self._rows.pop(i)
                same = self._by_key[key]
                same.remove(i)
                if not same:
                    del self._by_key[key]
        return len(hit)

    def add_table(
        self,
        path: str | Path,
        *,
        text_column: str,
        id_column: str | None = None,
        metadata_columns: Sequence[str] | None = None,
        show_progress: bool = True,
        **read_kwargs: Any,
    ) -> list[int]:
        """Add every row of a CSV/TSV/Parquet/JSONL file (read by :func:`dupq.tables.read_table`).

        Errors name the file, the 1-based data row and the column. Rows without text (blank, or only
        punctuation) are skipped, as ``dupq dedupe`` marks them ``empty``: their 1-based rows are in
        :attr:`skipped_rows` (and logged), so none is lost unsaid. Every other row is stored, or the
        whole file is rejected: a text that is not a string, a non-integer or repeated id is an
        ``InputError``.
        """
        q = read_questions(path, text_column, id_column, metadata_columns, **read_kwargs)
        self.skipped_rows = q.skipped_rows
        try:
            return self.add(q.texts, q.ids, q.metadata, show_progress=show_progress)
        except InputError as exc:
            row = q.rows[exc.row - 1] if exc.row and exc.row <= len(q.rows) else exc.row
            raise InputError(exc.reason, file=path, row=row, column=id_column or exc.column) from None

    # -- reads --------------------------------------------------------------------------------------
    def match(
        self,
        text_or_texts: str | Sequence[str],
        k: int = 5,
        threshold: float | None = None,
        *,
        exact_first: bool = True,
        only_duplicates: bool = False,
    ) -> QueryMatches | list[QueryMatches]:
        """Ranked stored questions for one query (a :class:`QueryMatches`) or for each of many (a list).

        Exact duplicates (same :func:`dupq.text.normalize` form) come first with score 1.0. With
        ``exact_first`` a query that has one is answered from the hash table alone (no model call);
        with ``exact_first=False`` it is also encoded and the rest of its top-``k`` filled by cosine.
        ``only_duplicates`` drops matches below the threshold.
        """
        single = isinstance(text_or_texts, str)
        if not single and not isinstance(text_or_texts, (list, tuple, np.ndarray, pd.Series)):
            # one non-string "question" (None, a number …): reported like a bad item of a batch
            single, text_or_texts = True, [text_or_texts]
        queries = [text_or_texts] if isinstance(text_or_texts, str) else list(text_or_texts)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise InputError(f"k must be a positive integer, got {k!r}", column="k")
        thr = self.threshold if threshold is None else check_threshold(threshold)
        check_texts(queries)
        keys = [text_key(q) for q in queries]
        with self._lock.read():
            exact = [list(self._by_key.get(key, ())) for key in keys]
        need = [i for i, hits in enumerate(exact) if not (exact_first and hits)]
        vecs = np.zeros((0, self.embedder.dim), np.float32)
        truncated = np.zeros(len(queries), bool)
        if need:
            vecs, trunc = self._encode([queries[i] for i in need])
            truncated[need] = trunc
        out: list[QueryMatches] = []
        with self._lock.read():
            # No query can get more than every stored question: a huge k (10**8) must not make FAISS
            # allocate an n-by-k result matrix (gigabytes) for a store of a few thousand.
            search_k = max(1, min(int(k), len(self.index)))
            if len(need) and len(self.index):
                scores, found = self.index.search(vecs, search_k)
            else:
                scores = np.full((len(need), search_k), -np.inf, np.float32)
                found = np.full((len(need), search_k), -1, np.int64)
            row_of = {q: r for r, q in enumerate(need)}
            for qi, query in enumerate(queries):
                results: list[Match] = []
                seen: set[int] = set()
                for i in sorted(exact[qi]):
                    if i in self._rows:  # not removed between the two locks
                        results.append(self._match(i, 1.0, thr, exact=True))
                        seen.add(i)
                if qi in row_of:
                    r = row_of[qi]
                    for s, i in zip(scores[r], found[r], strict=True):
                        i = int(i)
                        if i < 0 or i in seen or i not in self._rows:
                            continue
                        results.append(self._match(i, float(s), thr))
                        seen.add(i)
                out.append(QueryMatches(results[:k], query=query, truncated=bool(truncated[qi])))
        if self.verifier is not None:
            self._verify(out)
        if only_duplicates:
            out = [
                QueryMatches([m for m in r if m.is_duplicate], query=r.query, truncated=r.truncated)
                for r in out
            ]
        return out[0] if single else out

    def _verify(self, results: list[QueryMatches]) -> None:
        """Rescore every non-exact match with the verifier (one batch for all queries), best first."""
        todo = [(r, j) for r in results for j, m in enumerate(r) if not m.exact]
        if not todo:
            return
        with self._encode_lock, torch_threads(self.query_threads if len(todo) < 4 * SMALL_BATCH else None):
            scores = self.verifier.predict([r.query for r, _ in todo], [r[j].text for r, j in todo])
        for (r, j), p, dup in zip(todo, scores.probability, scores.is_duplicate, strict=True):
            m = r[j]
            r[j] = Match(
                m.id, m.text, float(p), float(p), bool(dup), m.metadata, m.exact, similarity=m.similarity
            )
        for r in results:
            r.sort(key=lambda m: (not m.exact, -m.score))

    def _match(self, i: int, score: float, thr: float, exact: bool = False) -> Match:
        text, _, _, meta = self._rows[i]
        score = min(score, 1.0)
        return Match(
            id=i,
            text=text,
            score=score,
            probability=self.probability(score),
            is_duplicate=exact or score >= thr,
            metadata=meta,
            exact=exact,
            similarity=score,
        )

    def get(self, id_: int) -> dict[str, Any]:
        """The stored question ``id_`` (``UnknownIdError`` if absent)."""
        with self._lock.read():
            if id_ not in self._rows:
                raise UnknownIdError([id_])
            text, _, truncated, meta = self._rows[id_]
        return {"id": id_, "text": text, "truncated": truncated, "metadata": meta}

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, id_: object) -> bool:
        return id_ in self._rows

    @property
    def ids(self) -> list[int]:
        with self._lock.read():
            return sorted(self._rows)

    def stats(self) -> dict[str, Any]:
        """Counts and configuration (what ``GET /stats`` returns)."""
        with self._lock.read():
            return {
                "count": len(self._rows),
                "distinct_normalised_texts": len(self._by_key),
                "truncated": sum(1 for r in self._rows.values() if r[2]),
                "index_kind": self.index.kind,
                "index_requested_kind": self.index.requested_kind,
                "index_params": dict(self.index.params),
                "dim": self.embedder.dim,
                "metric": "cosine",
                "model_source": self.embedder.source,
                "model_fingerprint": self.embedder.fingerprint,
                "max_seq_length": self.embedder.max_seq_length,
                "threshold": self.threshold,
                "calibrated": self.calibration is not None,
                "verifier": None if self.verifier is None else self.verifier.source,
            }

    def _encode(self, texts: list[str], show_progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
        threads = self.query_threads if len(texts) < SMALL_BATCH else None
        with self._encode_lock, torch_threads(threads):
            vecs, truncated = self.embedder.encode_flagged(
                texts, show_progress=show_progress, desc="encoding questions"
            )
        if truncated.any():
            first = int(np.flatnonzero(truncated)[0])
            warnings.warn(
                f"{int(truncated.sum())} of {len(texts)} text(s) exceed the model's "
                f"{self.embedder.max_seq_length} tokens and were truncated (first: position {first + 1}, "
                f"{int(self.embedder.token_lengths([texts[first]])[0])} tokens)",
                TruncationWarning,
                stacklevel=3,
            )
        return vecs, truncated

    # -- persistence --------------------------------------------------------------------------------
    def save(self, directory: str | Path, *, overwrite: bool = False) -> Path:
        """Write the store to ``directory`` atomically (a complete new directory is swapped in).

        Holds the store's exclusive file lock (:func:`dupq.io.store_lock`, ``<directory>.lock``) from
        the check below to the swap, so saves and loads of other processes never interleave with it.
        A ``directory`` that already holds a store is overwritten only if it is the store this
        Matcher loaded or last saved *and it is unchanged on disk since*; otherwise (another process
        saved it meanwhile — ``dupq index add`` beside ``dupq serve`` — or it is some other store)
        :class:`~dupq.errors.StoreConflictError` is raised and nothing is written, unless
        ``overwrite=True`` (replace whatever is there).
        """
        directory = Path(directory)
        delay = float(os.environ.get(_SLOW_SAVE_ENV, "0") or 0)
        key = str(directory.resolve())
        # _save_lock: this Matcher's own saves one at a time; store_lock: everyone's, across processes.
        with self._save_lock, store_lock(directory, exclusive=True):
            recover_dir(directory)
            check_unchanged(directory, self._generations.get(key), overwrite=overwrite)
            self._write_store(directory, delay)
            self._generations[key] = generation(directory)
        return directory

    def _write_store(self, directory: Path, delay: float) -> None:
        with self._lock.read(), atomic_dir(directory) as tmp:
            self.index.save(tmp / INDEX_FILE)
            _pause(delay)
            ids = sorted(self._rows)
            rows = [self._rows[i] for i in ids]
            table = pd.DataFrame(
                {
                    "id": pd.Series(ids, dtype="int64"),
                    "text": pd.Series([r[0] for r in rows], dtype=object),
                    "key": pd.Series([r[1] for r in rows], dtype=object),
                    "truncated": pd.Series([r[2] for r in rows], dtype=bool),
                    "metadata": pd.Series(
                        [None if r[3] is None else json.dumps(r[3], ensure_ascii=False) for r in rows],
                        dtype=object,
                    ),
                }
            )
            table.to_parquet(tmp / QUESTIONS_FILE, index=False)
            _pause(delay)
            manifest = {
                "format": STORE_FORMAT,
                "format_version": STORE_FORMAT_VERSION,
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                # unique per save: two saves never leave the same manifest (see dupq.manifest.generation)
                "generation": uuid.uuid4().hex,
                "model_fingerprint": self.embedder.fingerprint,
                "model_source": self.embedder.source,
                "dim": self.embedder.dim,
                "metric": "cosine (inner product of L2-normalised vectors)",
                "count": len(ids),
                "next_id": self._next_id,
                "index_kind": self.index.kind,
                "index_requested_kind": self.index.requested_kind,
                "threshold": self.threshold,
                "calibration": self.calibration,
                "files": {
                    name: {"sha256": sha256_file(tmp / name), "bytes": (tmp / name).stat().st_size}
                    for name in (INDEX_FILE, QUESTIONS_FILE)
                },
            }
            atomic_write_json(tmp / MANIFEST_FILE, manifest)
            _pause(delay)

    @classmethod
    def load(
        cls,
        directory: str | Path,
        model: Embedder | SentenceTransformer | str | Path | None = None,
        *,
        threshold: float | None = None,
        device: str | None = None,
        verifier: Verifier | str | Path | None = None,
    ) -> Matcher:
        """Open a store written by :meth:`save` (``verifier`` as for the constructor; not stored).

        ``model`` defaults to the model the store was built with (its recorded directory, else the
        embedded default). A store from another model, or with a missing/short/altered file, raises
        :class:`StoreError`.
        """
        directory = recover_dir(Path(directory))
        # Every file is read under the store's shared lock: a save (exclusive) by another process or
        # thread can neither swap the directory midway nor be caught between its two renames.
        with store_lock(directory, exclusive=False):
            stored_generation = generation(directory)
            manifest = read_manifest(directory)
            check_files(directory, manifest)
            index = VectorIndex.load(directory / INDEX_FILE)
            try:
                table = pd.read_parquet(directory / QUESTIONS_FILE)
            except Exception as exc:  # pyarrow raises several types for a damaged file
                raise StoreError(f"{directory / QUESTIONS_FILE}: unreadable: {exc}") from exc
        if model is None:
            src = manifest.get("model_source")
            model = src if src and Path(src).is_dir() else None
        embedder = as_embedder(model, device=device)
        if embedder.fingerprint != manifest["model_fingerprint"]:
            raise StoreError(
                f"{directory} was built with another model "
                f"(fingerprint {manifest['model_fingerprint'][:12]}…, "
                f"from {manifest.get('model_source')}); this encoder is {embedder.fingerprint[:12]}… "
                f"({embedder.source}). Vectors of different models are not comparable: load it with the "
                "same model, or rebuild the store."
            )
        if embedder.dim != manifest["dim"]:
            raise StoreError(f"{directory}: dimension {manifest['dim']} != encoder's {embedder.dim}")
        if len(table) != manifest["count"] or len(index) != manifest["count"]:
            raise StoreError(
                f"{directory}: manifest count {manifest['count']}, questions {len(table)}, index {len(index)}"
            )
        self = cls.__new__(cls)
        self.embedder = embedder
        self.query_threads = 1
        self.verifier = _as_verifier(verifier, device)
        self.calibration = _calibration(manifest.get("calibration"))
        self.threshold = check_threshold(manifest["threshold"] if threshold is None else threshold)
        self.index = index
        self._rows = {}
        self._by_key = {}
        for i, text, key, trunc, meta in zip(
            table["id"].tolist(),
            table["text"].tolist(),
            table["key"].tolist(),
            table["truncated"].tolist(),
            table["metadata"].tolist(),
            strict=True,
        ):
            # a null metadata cell may come back as None or NaN depending on the pandas version
            self._rows[int(i)] = (text, key, bool(trunc), json.loads(meta) if isinstance(meta, str) else None)
            self._by_key.setdefault(key, []).append(int(i))
        if set(self._rows) != set(index.ids.tolist()):
            raise StoreError(f"{directory}: the index and the questions table hold different ids")
        self._lock = RWLock()
        self._encode_lock = threading.Lock()
        self._save_lock = threading.Lock()
        self._next_id = int(manifest.get("next_id", max(self._rows, default=-1) + 1))
        self._generations = {str(directory.resolve()): stored_generation}
        return self

    def __repr__(self) -> str:
        return (
            f"Matcher(n={len(self)}, index={self.index.kind}, threshold={self.threshold}, "
            f"model={self.embedder.source})"
        )


# -- validation ---------------------------------------------------------------------------------------
def _as_verifier(verifier: Verifier | str | Path | None, device: str | None) -> Verifier | None:
    """A loaded verifier from a directory (or the one given); ``None`` stays ``None``."""
    if verifier is None:
        return None
    from dupq.verifier import Verifier

    if isinstance(verifier, (str, Path)):
        return Verifier.load(verifier, device=device)
    return verifier  # a loaded verifier of either kind (late-interaction or cross-encoder)


def _calibration(c: Any) -> dict[str, float] | None:
    if not c:
        return None
    try:
        return {"coef": float(c["coef"]), "intercept": float(c["intercept"])}
    except (KeyError, TypeError, ValueError) as exc:
        raise StoreError(f"calibration {c!r} is not {{'coef': a, 'intercept': b}}") from exc


def _pause(seconds: float) -> None:
    if seconds > 0:
        time.sleep(seconds)
