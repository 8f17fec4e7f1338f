"""The Matcher: "has this question been asked before?" in milliseconds, next to a Q&A site's database.

A :class:`Matcher` holds stored questions (int id, text, optional JSON metadata), their embeddings in
a :class:`dupq.index.VectorIndex`, and a hash table of normalised texts. ``match`` answers, for one or
many new questions, the ranked stored questions with cosine score, calibrated ``P(duplicate)`` (when
the model carries a calibration) and a duplicate flag at the model's threshold.

Design points, each with a reason:

* **Where the questions live is a store** (:mod:`dupq.stores`): the in-memory FAISS file store (default,
  one process, the persistence below) or PostgreSQL + pgvector (``store="postgresql://…"``: shared by many
  processes, every write a transaction). The code below is the same on both.
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
  and a query's :class:`~dupq.matches.QueryMatches` has ``truncated=True``;
* ids: non-negative ints (``-1`` is FAISS's "no result"); a duplicate id within one ``add`` or an id
  already stored → ``InputError`` (update = ``remove`` then ``add``); ``ids=None`` assigns
  ``max(stored id) + 1 …``;
* ``remove`` of an id that is not stored → :class:`UnknownIdError` listing them, nothing removed —
  unless ``missing_ok=True``, where unknown ids are skipped and the count removed is returned.
"""

from __future__ import annotations

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

from dupq.card import ModelCard, has_card
from dupq.checks import as_id, check_ids, check_metadata, check_texts, read_questions
from dupq.embed import Embedder, as_embedder
from dupq.encoder import DEFAULT_THRESHOLD, check_threshold, resolve_threshold
from dupq.errors import InputError, StoreError, UnknownIdError
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
from dupq.matches import Match, QueryMatches, format_matches  # noqa: F401  (format_matches: re-exported)
from dupq.rescore import deciding_verifier, encode_queries, rescore, same_pass
from dupq.runtime import torch_threads
from dupq.stores import FileStore, QuestionStore, Row, is_database, open_database, open_store
from dupq.text import KEY_VERSION, text_key
from dupq.verifier.band import VERIFY_ABOVE, VERIFY_BELOW, check_band

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
    ``verifier``: the stage that rescores the non-exact matches whose cosine lies in its band,
    ``[threshold - verify_below, verify_above)`` (:mod:`dupq.verifier.band`; the pairs a dedupe
    verifies — outside it the cosine decides, as in a dedupe) — ``"auto"`` (default: the model
    directory's own verifier, else for the stock encoder the one shipped in dupq; see
    :mod:`dupq.verifier.choose`), a :class:`dupq.verifier.Verifier` or its directory, or ``None`` for
    the cosine alone. With one, ``score``, ``probability`` and ``is_duplicate`` come from the verifier
    (its own threshold, best F1 on its dev split), and the cosine is kept as ``similarity``.
    ``backend``: how texts are encoded — ``"default"`` (``onnx-int8`` on a CPU where it is installed
    and verifies, else torch; see :mod:`dupq.backends`), or any name of ``dupq.backends.BACKEND_CHOICES``.
    ``verify_below``/``verify_above``: the verifier's band (defaults shared with dedupe;
    ``verify_below=2, verify_above=1.01`` verifies every non-exact match).
    ``store``: where the questions live (:mod:`dupq.stores`): ``None`` — in memory, saved to a directory
    with :meth:`save` (the embedded default); a PostgreSQL connection string (``postgresql://…``, or
    ``env:NAME`` / ``file:PATH`` naming one) — a pgvector table shared by any number of processes, every
    write committed before it returns (``index_params``: ``ef_search``, ``M``, ``ef_construction``,
    ``table``). A database store built with another model is refused.
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
        verifier: Verifier | str | Path | None = "auto",
        backend: str = "default",
        store: str | QuestionStore | None = None,
        verify_below: float = VERIFY_BELOW,
        verify_above: float = VERIFY_ABOVE,
    ) -> None:
        self.verify_below, self.verify_above = check_band(verify_below, verify_above)
        self.embedder = as_embedder(model, device=device, batch_size=batch_size, backend=backend)
        self.query_threads = query_threads
        self.verifier = deciding_verifier(verifier, self.embedder, device)
        card = ModelCard.read(self.embedder.source)
        self.calibration: dict[str, float] | None = _calibration(card.calibration if card else None)
        self.threshold = resolve_threshold(threshold, self.embedder.source, warn=False)[0]
        self.store: QuestionStore = open_store(
            store,
            dim=self.embedder.dim,
            fingerprint=self.embedder.fingerprint,
            model_source=self.embedder.source,
            threshold=self.threshold,
            calibration=self.calibration,
            index_kind=index_kind,
            index_params=index_params,
        )
        stored = getattr(self.store, "meta", None) or {}
        if threshold is None and stored.get("threshold") is not None:
            self.threshold = check_threshold(stored["threshold"])  # the store's, as Matcher.load does
        self._encode_lock = threading.Lock()
        self._save_lock = threading.Lock()
        self.skipped_rows: list[int] = []  # rows without text that the last add_table skipped
        self._generations: dict[str, str] = {}  # store directory -> manifest hash we loaded / saved there

    @classmethod
    def from_model(cls, model_dir: str | Path, **kwargs: Any) -> Matcher:
        """A Matcher over a fine-tuned model directory, using its calibrated threshold and P(duplicate).

        Reads ``dupq.json`` (``threshold``; ``calibration`` ``{"coef": a, "intercept": b}`` so that
        ``P = 1 / (1 + exp(-(a*cos + b)))``). Without it, ``probability`` is ``None`` and the threshold
        is :data:`DEFAULT_THRESHOLD` (a warning says so).
        """
        if not has_card(model_dir):
            warnings.warn(
                f"{model_dir} has no dupq.json: no calibrated P(duplicate); threshold {DEFAULT_THRESHOLD}",
                stacklevel=2,
            )
        return cls(model_dir, **kwargs)

    @property
    def index(self) -> Any:
        """The store's index (``kind``, ``requested_kind``, ``params``; a :class:`VectorIndex` for the
        file store)."""
        return self.store.index

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
        rows = [
            Row(t, text_key(t), bool(truncated[j]), metadata[j] if metadata else None)
            for j, t in enumerate(texts)
        ]
        ids = self.store.add(vecs, rows, ids)
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
        return self.store.remove(list(dict.fromkeys(checked)), missing_ok=missing_ok)

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
        exact = self.store.exact(keys)
        need = [i for i, hits in enumerate(exact) if not (exact_first and hits)]
        vecs = np.zeros((0, self.embedder.dim), np.float32)
        truncated = np.zeros(len(queries), bool)
        query_tokens = None
        if need:
            vecs, trunc, query_tokens = self._encode_queries([queries[i] for i in need])
            truncated[need] = trunc
        out: list[QueryMatches] = []
        hits = self.store.search(vecs, int(k)) if need else []
        row_of = {q: r for r, q in enumerate(need)}
        for qi, query in enumerate(queries):
            results: list[Match] = []
            seen: set[int] = set()
            for hit in exact[qi]:
                results.append(self._match(hit.id, hit.row, 1.0, thr, exact=True))
                seen.add(hit.id)
            if qi in row_of:
                for hit in hits[row_of[qi]]:
                    if hit.id not in seen:
                        results.append(self._match(hit.id, hit.row, hit.score, thr))
                        seen.add(hit.id)
            out.append(QueryMatches(results[:k], query=query, truncated=bool(truncated[qi])))
        if self.verifier is not None:
            self._verify(out, query_tokens, thr)
        if only_duplicates:
            out = [
                QueryMatches([m for m in r if m.is_duplicate], query=r.query, truncated=r.truncated)
                for r in out
            ]
        return out[0] if single else out

    def _one_pass(self) -> bool:
        """Whether a query's one encoding pass serves search and verifier (:mod:`dupq.rescore`)."""
        if getattr(self, "_same_pass", None) is None or self._same_pass[0] is not self.verifier:
            self._same_pass = (self.verifier, same_pass(self.verifier, self.embedder))
        return self._same_pass[1]

    def _encode_queries(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, Any]:
        """Query vectors and truncation flags — and, with a verifier on the same model and backend,
        the queries' token vectors from the same pass (one transformer pass per query, not two)."""
        if not self._one_pass():
            return (*self._encode(texts), None)
        with self._encode_lock, torch_threads(self.query_threads if len(texts) < SMALL_BATCH else None):
            vecs, truncated, tokens = encode_queries(self.verifier, self.embedder, texts)
        if truncated.any():
            warnings.warn(
                f"{int(truncated.sum())} of {len(texts)} text(s) exceed the model's "
                f"{self.embedder.max_seq_length} tokens and were truncated",
                TruncationWarning,
                stacklevel=3,
            )
        return vecs, truncated, tokens

    def _verify(
        self, results: list[QueryMatches], query_tokens: Any = None, thr: float | None = None
    ) -> None:
        """Rescore the non-exact matches in the verifier's band around ``thr`` (:func:`.rescore.rescore`)."""
        thr = self.threshold if thr is None else thr
        band = (thr - self.verify_below, self.verify_above)
        n = sum(not m.exact for r in results for m in r)
        with self._encode_lock, torch_threads(self.query_threads if n < 4 * SMALL_BATCH else None):
            rescore(self.verifier, results, query_tokens, band=band)

    def _match(self, i: int, row: Row, score: float, thr: float, exact: bool = False) -> Match:
        text, meta = row.text, row.metadata
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
            decided_by="exact" if exact else "cosine",
        )

    def get(self, id_: int) -> dict[str, Any]:
        """The stored question ``id_`` (``UnknownIdError`` if absent)."""
        row = self.store.get(id_)
        if row is None:
            raise UnknownIdError([id_])
        return {"id": id_, "text": row.text, "truncated": row.truncated, "metadata": row.metadata}

    def __len__(self) -> int:
        return len(self.store)

    def __contains__(self, id_: object) -> bool:
        return id_ in self.store

    @property
    def ids(self) -> list[int]:
        return self.store.ids()

    def stats(self) -> dict[str, Any]:
        """Counts and configuration (what ``GET /stats`` returns)."""
        return {
            **self.store.stats(),
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
        store = self._file_store()
        with store.reading(), atomic_dir(directory) as tmp:
            files = store.write(tmp / INDEX_FILE, tmp / QUESTIONS_FILE, pause=lambda: _pause(delay))
            _pause(delay)
            manifest = {
                "format": STORE_FORMAT,
                "format_version": STORE_FORMAT_VERSION,
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                # unique per save: two saves never leave the same manifest (see dupq.manifest.generation)
                "generation": uuid.uuid4().hex,
                "model_fingerprint": self.embedder.fingerprint,
                "model_source": self.embedder.source,
                "key_version": KEY_VERSION,
                "dim": self.embedder.dim,
                "metric": "cosine (inner product of L2-normalised vectors)",
                **files,  # count, next_id, index_kind, index_requested_kind
                "threshold": self.threshold,
                "calibration": self.calibration,
                "files": {
                    name: {"sha256": sha256_file(tmp / name), "bytes": (tmp / name).stat().st_size}
                    for name in (INDEX_FILE, QUESTIONS_FILE)
                },
            }
            atomic_write_json(tmp / MANIFEST_FILE, manifest)
            _pause(delay)

    def _file_store(self) -> FileStore:
        """The store :meth:`save` writes: the Matcher's own file store, or — for a database store — a
        file store copied from it (vectors and all, no re-encoding: the way from PostgreSQL to a
        directory)."""
        if isinstance(self.store, FileStore):
            return self.store
        copy = FileStore(self.embedder.dim)
        for ids, vecs, rows in self.store.export():
            copy.add(vecs, rows, ids)
        return copy

    @classmethod
    def load(
        cls,
        directory: str | Path,
        model: Embedder | SentenceTransformer | str | Path | None = None,
        *,
        threshold: float | None = None,
        device: str | None = None,
        verifier: Verifier | str | Path | None = "auto",
        backend: str = "default",
        index_params: dict[str, Any] | None = None,
    ) -> Matcher:
        """Open a store written by :meth:`save` (``verifier`` as for the constructor; not stored).

        ``model`` defaults to the model the store was built with (its recorded directory, else the
        embedded default). A store from another model, or with a missing/short/altered file, raises
        :class:`StoreError`. ``directory`` may also name a PostgreSQL store (``postgresql://…``,
        ``env:NAME``, ``file:PATH``): its model fingerprint, model and threshold come from the database,
        and ``index_params`` may set its search beam (``{"ef_search": 400}``).
        """
        if is_database(directory):
            db = open_database(str(directory), **(index_params or {}))
            if db.meta is None:
                db.close()
                raise StoreError(
                    f"no dupq store (table {db.table}) in the PostgreSQL database at {db.where}; "
                    "create it with `dupq index build --store …` or Matcher(model, store=…)"
                )
            if model is None:
                src = db.meta.get("model_source")
                model = src if src and Path(src).is_dir() else None
            return cls(
                model,
                threshold=threshold,
                device=device,
                verifier=verifier,
                backend=backend,
                store=db,
            )
        if index_params:
            raise InputError("index_params on load apply to a PostgreSQL store (a directory keeps its own)")
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
        embedder = as_embedder(model, device=device, backend=backend)
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
        count, next_id, key_version = (
            manifest["count"],
            manifest.get("next_id"),
            manifest.get("key_version", 1),
        )
        store = FileStore.from_files(directory, index, table, count, next_id, key_version)
        self = cls.__new__(cls)
        self.embedder = embedder
        self.query_threads = 1
        self.verify_below, self.verify_above = VERIFY_BELOW, VERIFY_ABOVE
        self.skipped_rows = []
        self.verifier = deciding_verifier(verifier, embedder, device)
        self.calibration = _calibration(manifest.get("calibration"))
        self.threshold = check_threshold(manifest["threshold"] if threshold is None else threshold)
        self.store = store
        self._encode_lock = threading.Lock()
        self._save_lock = threading.Lock()
        self._generations = {str(directory.resolve()): stored_generation}
        return self

    def __repr__(self) -> str:
        return (
            f"Matcher(n={len(self)}, index={self.index.kind}, threshold={self.threshold}, "
            f"model={self.embedder.source})"
        )


# -- validation ---------------------------------------------------------------------------------------
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
