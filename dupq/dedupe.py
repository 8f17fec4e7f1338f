"""Batch deduplication of a table of questions: ``dupq dedupe`` and :func:`deduplicate`.

The pipeline is built so that a million-row export runs on a laptop and every input row comes back:

1. **scan** — the input is streamed in chunks (CSV/TSV/Parquet/JSONL or a DataFrame). Each row gets a
   status (``ok``, ``empty``, ``unreadable``) and, when it has text, an exact-duplicate key
   (:func:`dupq.text.text_key`: case, punctuation and spacing do not matter). Rows with the same key
   are duplicates with score 1.0 and cost no model call: only the first text of each key is encoded.
2. **encode** — the unique texts are encoded through :class:`dupq.embed.Embedder` (sorted by length,
   batched, with a progress bar) into a memory-mapped array in the work directory, shard by shard. A
   per-text "done" marker is saved after each shard, keyed by a fingerprint of the unique texts, the
   model's weights, the backend and the storage dtype; an interrupted run (Ctrl-C, kill, crash)
   resumes from the embeddings already written. ``engine="ray"`` runs this stage on Ray Data
   (:mod:`dupq.ray_engine`).
3. **search** — each unique text's ``k`` nearest neighbours come from a :class:`dupq.index.VectorIndex`
   (exact flat search up to :data:`EXACT_SEARCH_MAX` texts, HNSW above); texts whose k-th neighbour is
   still above the threshold get a range search so that large groups are not cut at ``k``.
4. **group** — pairs above the threshold become groups (:func:`group_pairs`).
5. **write** — the input is streamed again and written with the result columns, atomically.

Grouping and chaining
---------------------
Connected components of the "similar" graph chain unrelated questions through A≈B≈C≈… paths: with a
threshold of 0.8 and a thousand questions about one topic, components routinely merge questions whose
direct similarity is 0.3. The default, ``cluster="leader"``, is a leader (community-detection style)
pass: texts are visited in descending order of how many neighbours they have above the threshold; an
unassigned text becomes a group *representative* and takes all of its still-unassigned neighbours.
Every member of a group is therefore within the threshold of its representative (the ``score``
column is that similarity), and a group's diameter is bounded. ``cluster="components"`` gives the
transitive closure instead (larger groups, some members below the threshold to the representative;
their ``score`` shows it).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import logging
import os
import resource
import shutil
import tempfile
import time
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from dupq.datamodels import DedupeResult, DedupeSummary
from dupq.encoder import DEFAULT_THRESHOLD
from dupq.errors import DupqError, InputError
from dupq.io import atomic_path, detect_format
from dupq.text import is_blank, normalize, text_key

if TYPE_CHECKING:
    from dupq.embed import Embedder

logger = logging.getLogger(__name__)

#: Row statuses written in the ``status`` column.
STATUS_OK = "ok"
STATUS_EMPTY = "empty"
STATUS_UNREADABLE = "unreadable"
STATUS_TRUNCATED = "too_long_truncated"
STATUSES = (STATUS_OK, STATUS_EMPTY, STATUS_UNREADABLE, STATUS_TRUNCATED)
_EMPTY, _UNREADABLE = 1, 2  # row status codes during the scan (0 = has text)

#: Columns added to every output row, in order.
RESULT_COLUMNS = ("group_id", "is_representative", "duplicate_of", "score", "status")
#: Added with ``against=``: True when ``duplicate_of`` names a row of the existing base.
EXISTING_COLUMN = "duplicate_of_existing"

#: Exact (flat) search up to this many unique texts; HNSW above (recall measured in benchmarks/dedupe.py).
EXACT_SEARCH_MAX = 20_000
#: Neighbours looked at per text (more are fetched by range search when all k are above the threshold).
DEFAULT_K = 32
#: Rows per read chunk and unique texts per encoding shard (the unit of resume).
DEFAULT_CHUNK = 16_384
#: HNSW search breadth for the batch search (above the Matcher's default: batch search is cheap per query
#: and recall of pairs matters more than latency here).
HNSW_EF_SEARCH = 128
#: HNSW graph settings for the batch index (it lives for one run, so build speed matters more than for
#: the Matcher's long-lived index); pair recall against exact search is measured in benchmarks/dedupe.py.
#: At 60k real-derived vectors: M=16/efC=40 30 s vs M=32/efC=80 46 s vs exact 51 s, pair recall 0.9997.
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 40

_CONTROL_OK = {"\t", "\n", "\r"}


# ================================================================================================
# Public API
# ================================================================================================
def deduplicate(
    data: str | Path | pd.DataFrame,
    *,
    text_column: str,
    id_column: str | None = None,
    model: Any = None,
    threshold: float | str | None = "auto",
    cluster: str = "leader",
    k: int = DEFAULT_K,
    against: str | Path | pd.DataFrame | None = None,
    against_text_column: str | None = None,
    against_id_column: str | None = None,
    out: str | Path | None = None,
    pairs_out: str | Path | None = None,
    summary_out: str | Path | None = None,
    workdir: str | Path | None = None,
    engine: str = "local",
    backend: str = "torch",
    device: str | None = None,
    batch_size: int = 64,
    chunk_size: int = DEFAULT_CHUNK,
    index: str = "auto",
    ef_search: int | None = None,
    dtype: str = "float16",
    sep: str | None = None,
    encoding: str | None = None,
    ray_address: str | None = None,
    show_progress: bool = True,
) -> DedupeResult:
    """Find duplicate groups in a table of questions; return (and optionally write) every input row.

    ``data`` is a file (CSV/TSV/Parquet/JSONL, by suffix; delimiter and text encoding are detected
    unless ``sep``/``encoding`` are given) or a DataFrame. ``text_column`` holds the questions;
    ``id_column`` (optional) names rows in ``duplicate_of`` — without it rows are named by their
    0-based position in the input.

    ``model``: a model directory, a loaded SentenceTransformer or :class:`~dupq.embed.Embedder`, or
    ``None`` for the embedded default. ``threshold``: a cosine in (0, 1], or ``"auto"`` for the
    model's dev-calibrated threshold (``dupq.json``), falling back to :data:`DEFAULT_THRESHOLD`.
    ``cluster``: ``"leader"`` (default, no chaining) or ``"components"`` (see the module docstring).
    ``against``: an existing base (file or DataFrame); new rows that duplicate one of its rows get
    ``duplicate_of`` = that row's id and ``duplicate_of_existing`` = True.

    ``out``/``pairs_out``/``summary_out`` are written atomically (format by suffix); ``summary_out``
    defaults to ``<out stem>.summary.json`` beside ``out``. ``workdir`` keeps the embeddings between
    runs (resume after an interruption, or re-group at another threshold without re-encoding); by
    default a hidden directory beside ``out`` is used and removed after a successful run.

    ``engine``: ``"local"`` or ``"ray"`` (encoding on Ray Data; ``ray_address`` or ``$RAY_ADDRESS``
    for a cluster). ``backend``: the Embedder backend (``"torch"``, ``"onnx-int8"`` …).
    ``index``: ``"auto"`` | ``"flat"`` | ``"hnsw"`` | ``"ivf"``. ``ef_search``: the HNSW search beam
    (default :data:`HNSW_EF_SEARCH`; lower is faster at some pair recall: see the README).
    ``dtype``: storage of the embeddings on disk (``"float16"`` halves memory; cosine error < 1e-3).
    """
    if cluster not in ("leader", "components"):
        raise ValueError(f"cluster must be 'leader' or 'components', got {cluster!r}")
    if engine not in ("local", "ray"):
        raise ValueError(f"engine must be 'local' or 'ray', got {engine!r}")
    if dtype not in ("float16", "float32"):
        raise ValueError(f"dtype must be 'float16' or 'float32', got {dtype!r}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if ef_search is not None and ef_search < 1:
        raise ValueError(f"ef_search must be >= 1, got {ef_search}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    out = Path(out) if out is not None else None
    pairs_out = Path(pairs_out) if pairs_out is not None else None
    for target in (out, pairs_out):
        if target is not None:
            _output_format(target)  # fail before hours of encoding, not after
    if summary_out is None and out is not None:
        summary_out = out.with_suffix(".summary.json")  # deduped.csv -> deduped.summary.json
    summary_out = Path(summary_out) if summary_out is not None else None

    timer = _StageTimer()
    workdir_path, cleanup = _resolve_workdir(workdir, out)
    try:
        result = _run(
            data,
            text_column=text_column,
            id_column=id_column,
            model=model,
            threshold=threshold,
            cluster=cluster,
            k=k,
            against=against,
            against_text_column=against_text_column,
            against_id_column=against_id_column,
            out=out,
            pairs_out=pairs_out,
            summary_out=summary_out,
            workdir=workdir_path,
            engine=engine,
            backend=backend,
            device=device,
            batch_size=batch_size,
            chunk_size=chunk_size,
            index=index,
            ef_search=ef_search,
            dtype=dtype,
            sep=sep,
            encoding=encoding,
            ray_address=ray_address,
            show_progress=show_progress,
            timer=timer,
        )
    except BaseException:
        has_embeddings = any(workdir_path.glob("emb-*/done.npy"))
        if cleanup and (out is None or not has_embeddings):
            shutil.rmtree(workdir_path, ignore_errors=True)  # nothing worth resuming from
        else:
            logger.warning("dedupe stopped; rerun the same command to resume from %s", workdir_path)
        raise
    if cleanup:
        shutil.rmtree(workdir_path, ignore_errors=True)
    return result


def resolve_threshold(threshold: float | str | None, embedder: Embedder) -> tuple[float, str]:
    """The cosine threshold to use and where it came from (for the summary)."""
    if threshold is None or (isinstance(threshold, str) and threshold.strip().lower() == "auto"):
        from dupq.encoder import DEFAULT_MODEL, default_model_path, read_metadata

        source = embedder.source
        meta = read_metadata(source) if source else {}
        if meta.get("threshold") is not None:
            return float(meta["threshold"]), f"dupq.json of {source}"
        is_default = source is not None and Path(source).resolve() == default_model_path().resolve()
        if not is_default:
            logger.warning(
                "threshold auto: model %s has no dupq.json threshold; using the %s default %.2f "
                "(pass --threshold to choose one for this model)",
                source,
                DEFAULT_MODEL,
                DEFAULT_THRESHOLD,
            )
        return DEFAULT_THRESHOLD, f"default for {DEFAULT_MODEL} (measured on MQP)"
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        raise InputError(f"threshold must be a number in (0, 1] or 'auto', got {threshold!r}") from None
    if not 0.0 < value <= 1.0:
        raise InputError(f"threshold must be in (0, 1], got {value}")
    return value, "given"


def group_pairs(
    n: int,
    a: np.ndarray,
    b: np.ndarray,
    *,
    method: str = "leader",
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """Group ``n`` items linked by the pairs ``(a[i], b[i])`` (all above the threshold).

    Returns ``rep``: for each item, the index of its group's representative (``rep[r] == r`` for a
    representative). ``method="leader"``: items are visited by descending degree (ties: larger
    ``weights`` — e.g. how many rows share the text — then lower index); an unassigned item becomes a
    representative and takes its unassigned neighbours, so every member is linked *directly* to its
    representative. ``method="components"``: connected components (transitive closure), represented
    by their highest-degree member.
    """
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    rep = np.arange(n, dtype=np.int64)
    if n == 0 or len(a) == 0:
        return rep
    w = np.ones(n, dtype=np.int64) if weights is None else np.asarray(weights, dtype=np.int64)
    deg = np.bincount(a, minlength=n) + np.bincount(b, minlength=n)
    if method == "components":
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n, n)).tocsr()
        _, labels = connected_components(graph, directed=False)
        order = np.lexsort((np.arange(n), -w, -deg, labels))  # by label, then best representative first
        first = np.ones(n, dtype=bool)
        first[1:] = labels[order][1:] != labels[order][:-1]
        label_rep = np.empty(labels.max() + 1, dtype=np.int64)
        label_rep[labels[order][first]] = order[first]
        return label_rep[labels]
    if method != "leader":
        raise ValueError(f"method must be 'leader' or 'components', got {method!r}")
    src = np.concatenate([a, b])
    dst = np.concatenate([b, a])
    order = np.argsort(src, kind="stable")
    dst = dst[order]
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(src, minlength=n), out=indptr[1:])
    assigned = deg == 0  # items without neighbours are their own singleton groups
    candidates = np.flatnonzero(deg > 0)
    candidates = candidates[np.lexsort((candidates, -w[candidates], -deg[candidates]))]
    for c in candidates.tolist():
        if assigned[c]:
            continue
        nb = dst[indptr[c] : indptr[c + 1]]
        nb = nb[~assigned[nb]]
        rep[nb] = c
        assigned[nb] = True
        assigned[c] = True
    return rep


def similar_pairs(
    vectors: np.ndarray | Any,
    threshold: float,
    *,
    k: int = DEFAULT_K,
    index: str = "auto",
    chunk_size: int = DEFAULT_CHUNK,
    show_progress: bool = False,
    ef_search: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs ``i < j`` of rows of ``vectors`` (unit vectors) with cosine ``>= threshold``.

    Returns ``(a, b, scores)``. Each row's ``k`` nearest neighbours come from a
    :class:`~dupq.index.VectorIndex` (exact up to :data:`EXACT_SEARCH_MAX` rows unless ``index`` says
    otherwise); a row whose k-th neighbour is still above the threshold gets a range search, so no
    group is cut at ``k``. ``vectors`` may be a memory map; it is read ``chunk_size`` rows at a time.
    """
    n = len(vectors)
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
    if n < 2:
        return empty
    vindex = _build_index(
        vectors, index=index, chunk_size=chunk_size, show_progress=show_progress, ef_search=ef_search
    )
    kk = min(k + 1, n)  # +1: a row finds itself
    parts_a, parts_b, parts_s = [], [], []
    with tqdm(total=n, desc="searching", unit="q", disable=not show_progress) as bar:
        for start in range(0, n, chunk_size):
            q = _unit_rows(vectors, start, min(start + chunk_size, n))
            qids = np.arange(start, start + len(q), dtype=np.int64)
            scores, ids = vindex.search(q, kk)
            keep = (ids >= 0) & (scores >= np.float32(threshold)) & (ids != qids[:, None])
            rows, cols = np.nonzero(keep)
            parts_a.append(qids[rows])
            parts_b.append(ids[rows, cols])
            parts_s.append(scores[rows, cols])
            if kk < n:
                saturated = np.flatnonzero(scores[:, -1] >= np.float32(threshold))
                if len(saturated):
                    for qi, (nids, nscores) in zip(
                        saturated.tolist(), vindex.range_search(q[saturated], threshold), strict=True
                    ):
                        mask = nids != qids[qi]
                        parts_a.append(np.full(int(mask.sum()), qids[qi], dtype=np.int64))
                        parts_b.append(nids[mask])
                        parts_s.append(nscores[mask])
            bar.update(len(q))
    a = np.concatenate(parts_a)
    b = np.concatenate(parts_b)
    s = np.concatenate(parts_s).astype(np.float32)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    key = lo * n + hi
    order = np.lexsort((-s, key))  # per pair, the best score first
    key, lo, hi, s = key[order], lo[order], hi[order], s[order]
    first = np.ones(len(key), dtype=bool)
    first[1:] = key[1:] != key[:-1]
    return lo[first], hi[first], s[first]


def group_vectors(
    vectors: np.ndarray,
    threshold: float,
    *,
    cluster: str = "leader",
    k: int = DEFAULT_K,
    index: str = "auto",
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """Representative index of each row of ``vectors``: the search + grouping :func:`deduplicate` runs."""
    a, b, _ = similar_pairs(vectors, threshold, k=k, index=index)
    return group_pairs(len(vectors), a, b, method=cluster, weights=weights)


# ================================================================================================
# The pipeline
# ================================================================================================
@dataclass
class _Scan:
    """What the first pass over a table keeps: per-row arrays and per-unique-text arrays."""

    source: _Source
    n_rows: int
    row_uid: np.ndarray  # int64, -1 for rows without text
    row_code: np.ndarray  # int8: 0 text, 1 empty, 2 unreadable
    row_ids: list[str] | None  # ids of all rows when an id column is used
    texts: list[str]  # unique texts (first occurrence's raw text)
    keys: dict[str, int]  # exact-duplicate key -> uid
    first_row: np.ndarray  # int64 per uid
    counts: np.ndarray  # rows per uid
    digest: str  # fingerprint of the unique texts in order

    def uid_id(self, uids: np.ndarray) -> np.ndarray:
        """The id (or row position) of the first row of each uid."""
        rows = self.first_row[uids]
        if self.row_ids is None:
            return rows
        return np.asarray([self.row_ids[r] for r in rows.tolist()], dtype=object)


def _run(data, **kw) -> DedupeResult:
    timer: _StageTimer = kw["timer"]
    show = kw["show_progress"]
    chunk = kw["chunk_size"]

    source = _Source(data, kw["text_column"], kw["id_column"], chunk, kw["sep"], kw["encoding"])
    scan = _scan(source, show)
    base_scan = None
    if kw["against"] is not None:
        against_id = kw["against_id_column"]
        base_src = _Source(
            kw["against"],
            kw["against_text_column"] or kw["text_column"],
            against_id,
            chunk,
            None,
            None,
            id_optional=against_id is None,
            default_id=kw["id_column"],
        )
        base_scan = _scan(base_src, show)
    timer.stage("scan")

    from dupq.embed import as_embedder

    embedder = as_embedder(
        kw["model"], device=kw["device"], batch_size=kw["batch_size"], backend=kw["backend"]
    )
    threshold, threshold_source = resolve_threshold(kw["threshold"], embedder)
    fp = embedder.fingerprint
    timer.stage("load_model")
    stores = []
    encoded = reused = 0
    for sc in [scan] + ([base_scan] if base_scan is not None else []):
        store = _EmbeddingStore.open(
            kw["workdir"], sc.digest, fp, kw["backend"], len(sc.texts), embedder.dim, kw["dtype"]
        )
        reused += int(store.done.sum())
        encoded += _encode_store(store, sc.texts, embedder, kw, chunk)
        stores.append(store)
    model_source = embedder.source or ""
    del embedder  # the model and its runtime are not needed past here: give their memory back
    for st in stores:
        st.reopen_readonly()  # unmaps the pages encoding dirtied; later reads map only what they touch
    _release_memory()
    timer.stage("encode")
    store = stores[0]
    n = len(scan.texts)

    # -- against: match new texts to the existing base ----------------------------------------
    matched = np.full(n, -1, dtype=np.int64)  # base uid per new uid
    match_score = np.zeros(n, dtype=np.float32)
    if base_scan is not None:
        base_store = stores[1]
        for key, uid in scan.keys.items():
            buid = base_scan.keys.get(key)
            if buid is not None:
                matched[uid] = buid
                match_score[uid] = 1.0
        todo = np.flatnonzero(matched < 0)
        if len(todo) and len(base_scan.texts):
            bindex = _build_index(
                base_store.vectors,
                index=kw["index"],
                chunk_size=chunk,
                show_progress=show,
                ef_search=kw["ef_search"],
            )
            for start in range(0, len(todo), chunk):
                sel = todo[start : start + chunk]
                scores, ids = bindex.search(_normalised(store.vectors[sel]), 1)
                hit = (ids[:, 0] >= 0) & (scores[:, 0] >= np.float32(threshold))
                matched[sel[hit]] = ids[hit, 0]
                match_score[sel[hit]] = scores[hit, 0]
            del bindex
    timer.stage("against")

    # -- kNN pairs among the remaining unique texts --------------------------------------------
    live = np.flatnonzero(matched < 0)
    live_vectors = store.vectors if len(live) == n else _Subset(store.vectors, live)
    la, lb, ls = similar_pairs(
        live_vectors,
        threshold,
        k=kw["k"],
        index=kw["index"],
        chunk_size=chunk,
        show_progress=show,
        ef_search=kw["ef_search"],
    )
    pa, pb = live[la], live[lb]
    index_kind = _index_kind(len(live), kw["index"])
    timer.stage("search")

    rep = group_pairs(n, pa, pb, method=kw["cluster"], weights=scan.counts)
    # Similarity of each text to its representative (the ``score`` column).
    uid_score = np.ones(n, dtype=np.float32)
    nonrep = np.flatnonzero((rep != np.arange(n)) & (matched < 0))
    for start in range(0, len(nonrep), chunk):
        sel = nonrep[start : start + chunk]
        uid_score[sel] = np.einsum(
            "ij,ij->i", _normalised(store.vectors[sel]), _normalised(store.vectors[rep[sel]])
        )
    uid_score[matched >= 0] = match_score[matched >= 0]
    # Group ids: numbered by the first input row of each group.
    labels = np.where(matched >= 0, n + matched, rep)
    label_first = np.full(n + (len(base_scan.texts) if base_scan is not None else 0), np.iinfo(np.int64).max)
    np.minimum.at(label_first, labels, scan.first_row)
    used = np.unique(labels)
    rank = np.empty(len(label_first), dtype=np.int64)
    rank[used[np.argsort(label_first[used], kind="stable")]] = np.arange(len(used))
    uid_group = rank[labels]
    # duplicate_of per uid: the representative's id, or the base row's id.
    uid_dup = scan.uid_id(rep).astype(object)
    if base_scan is not None and (matched >= 0).any():
        m = np.flatnonzero(matched >= 0)
        uid_dup[m] = base_scan.uid_id(matched[m])
    truncated = store.truncated
    timer.stage("group")

    # -- write ------------------------------------------------------------------------------------
    with_existing = base_scan is not None
    columns = _OutputColumns(scan, rep, uid_group, uid_score, uid_dup, matched, truncated, with_existing)
    table = None
    if kw["out"] is not None:
        _write_table(source, columns, kw["out"], show)
    else:
        table = pd.concat([columns.attach(c, r0) for r0, c in source.chunks()], ignore_index=False)
        if source.frame is not None and len(table) == len(source.frame):
            table.index = source.frame.index

    def pairs() -> pd.DataFrame:  # built only when asked for (it holds both texts of every pair)
        return _pairs_frame(scan, base_scan, pa, pb, ls, matched, match_score)

    pairs_arg: Any = pairs
    if kw["pairs_out"] is not None:
        pairs_arg = pairs()
        _write_frame(pairs_arg, kw["pairs_out"])
    timer.stage("write")

    is_rep_rows = columns.row_is_rep()
    ok_rows = int((scan.row_code == 0).sum())
    n_trunc_rows = int(truncated[scan.row_uid[scan.row_uid >= 0]].sum()) if n else 0
    group_sizes = np.bincount(uid_group, weights=scan.counts, minlength=len(used)) if n else np.zeros(0)
    summary = DedupeSummary(
        rows=scan.n_rows,
        ok_rows=ok_rows - n_trunc_rows,
        truncated_rows=n_trunc_rows,
        empty_rows=int((scan.row_code == _EMPTY).sum()),
        unreadable_rows=int((scan.row_code == _UNREADABLE).sum()),
        unique_texts=n,
        exact_duplicate_rows=ok_rows - n,
        groups=len(used),
        duplicate_groups=int((group_sizes >= 2).sum()),
        rows_marked_duplicate=ok_rows - int(is_rep_rows.sum()),
        rows_duplicate_of_existing=int(scan.counts[matched >= 0].sum()) if with_existing else 0,
        similar_pairs=len(pa),
        threshold=threshold,
        threshold_source=threshold_source,
        cluster=kw["cluster"],
        k=kw["k"],
        index=index_kind,
        engine=kw["engine"],
        backend=kw["backend"],
        model=model_source,
        model_fingerprint=fp,
        texts_encoded=encoded,
        embeddings_reused=reused,
        existing_rows=base_scan.n_rows if base_scan is not None else None,
        seconds=timer.seconds,
        rss_mb=timer.rss_mb,
        peak_rss_mb=timer.peak_mb(),
        input=str(source.path) if source.path is not None else "<DataFrame>",
        output=str(kw["out"]) if kw["out"] is not None else None,
        pairs_output=str(kw["pairs_out"]) if kw["pairs_out"] is not None else None,
        workdir=str(kw["workdir"]),
    )
    if kw["summary_out"] is not None:
        from dupq.io import atomic_write_json

        atomic_write_json(kw["summary_out"], summary.to_dict())
    return DedupeResult(
        summary=summary,
        table=table,
        pairs_factory=pairs_arg,
        out=kw["out"],
        pairs_out=kw["pairs_out"],
        summary_out=kw["summary_out"],
    )


def _encode_store(store: _EmbeddingStore, texts: list[str], embedder: Embedder, kw: dict, chunk: int) -> int:
    """Encode the texts of ``store`` that are not done yet; return how many were encoded."""
    pending = store.pending_shards(chunk)
    if not pending:
        return 0
    if kw["engine"] == "ray":
        from dupq import ray_engine

        store.write_text_shards(texts, chunk)
        return ray_engine.encode_store(
            store,
            model=embedder,
            backend=kw["backend"],
            batch_size=kw["batch_size"],
            address=kw["ray_address"],
            show_progress=kw["show_progress"],
        )
    todo = sum(stop - start for start, stop in pending)
    done_before = len(texts) - todo
    encoded = 0
    max_len = embedder.max_seq_length
    with tqdm(
        total=len(texts), initial=done_before, desc="encoding", unit="q", disable=not kw["show_progress"]
    ) as bar:
        for start, stop in pending:
            shard = texts[start:stop]
            too_long = embedder.token_lengths(shard) > max_len
            vecs = embedder.encode(shard, batch_size=kw["batch_size"])
            store.write(start, vecs, too_long)
            encoded += len(shard)
            bar.update(len(shard))
    return encoded


# ================================================================================================
# Reading
# ================================================================================================
class _Source:
    """A table read chunk by chunk, twice (scan, then write), from a file or a DataFrame."""

    def __init__(
        self,
        data: str | Path | pd.DataFrame,
        text_column: str,
        id_column: str | None,
        chunk_rows: int,
        sep: str | None,
        encoding: str | None,
        *,
        id_optional: bool = False,
        default_id: str | None = None,
    ) -> None:
        self.text_column = text_column
        self.chunk_rows = max(1, int(chunk_rows))
        self.frame: pd.DataFrame | None = None
        self.path: Path | None = None
        self.json_columns: list[str] | None = None
        if isinstance(data, pd.DataFrame):
            self.frame = data
            self.fmt = "dataframe"
            columns = [str(c) for c in data.columns]
        else:
            self.path = Path(data)
            if not self.path.exists():
                raise InputError("no such file", file=self.path)
            if self.path.is_dir():
                raise InputError("is a directory, not a table", file=self.path)
            self.fmt = detect_format(self.path)
            self.sep, self.encoding = sep, encoding
            if self.fmt in ("csv", "tsv"):
                self.encoding = encoding or _detect_encoding(self.path)
                self.sep = sep or ("\t" if self.fmt == "tsv" else _detect_delimiter(self.path, self.encoding))
            columns = self._peek_columns()
        self.columns = columns
        if text_column not in columns:
            raise InputError(
                f"no column {text_column!r}; the columns are {columns}", file=self.path, column=text_column
            )
        if id_column is None and default_id is not None and default_id in columns:
            id_column = default_id  # --against files usually share the id column name
        if id_column is not None and id_column not in columns:
            raise InputError(
                f"no id column {id_column!r}; the columns are {columns}", file=self.path, column=id_column
            )
        self.id_column = id_column
        self.name = str(self.path) if self.path is not None else "<DataFrame>"

    def _peek_columns(self) -> list[str]:
        assert self.path is not None
        if self.fmt == "parquet":
            import pyarrow.parquet as pq

            try:
                return [str(c) for c in pq.ParquetFile(self.path).schema_arrow.names]
            except Exception as exc:  # pyarrow raises ArrowInvalid, OSError …
                raise InputError(f"cannot read as Parquet: {exc}", file=self.path) from exc
        if self.fmt == "jsonl":
            cols: dict[str, None] = {}
            for _, chunk in self._jsonl_chunks():
                cols.update(dict.fromkeys(str(c) for c in chunk.columns))
            self.json_columns = list(cols)
            return self.json_columns
        for _, chunk in self._csv_chunks(nrows=1):
            return [str(c) for c in chunk.columns]
        return []

    def chunks(self) -> Iterator[tuple[int, pd.DataFrame]]:
        """``(first row position, chunk)`` over the whole table, in order."""
        if self.frame is not None:
            for start in range(0, len(self.frame), self.chunk_rows):
                yield start, self.frame.iloc[start : start + self.chunk_rows]
            return
        if self.fmt == "parquet":
            yield from self._parquet_chunks()
        elif self.fmt == "jsonl":
            yield from self._jsonl_chunks()
        else:
            yield from self._csv_chunks()

    def _csv_chunks(self, nrows: int | None = None) -> Iterator[tuple[int, pd.DataFrame]]:
        kwargs: dict[str, Any] = {
            "sep": self.sep,
            "dtype": str,
            "keep_default_na": False,
            "encoding": self.encoding,
            "chunksize": self.chunk_rows if nrows is None else None,
            "nrows": nrows,
        }
        if self.sep == "\t":
            kwargs["quoting"] = csv.QUOTE_NONE  # the Quora/GLUE convention (see dupq.io.read_table)
        start = 0
        try:
            if nrows is not None:
                yield 0, pd.read_csv(self.path, **kwargs)
                return
            with pd.read_csv(self.path, **kwargs) as reader:
                for chunk in reader:
                    yield start, chunk
                    start += len(chunk)
        except pd.errors.EmptyDataError as exc:
            raise InputError("the file is empty (no header row)", file=self.path) from exc
        except pd.errors.ParserError as exc:
            raise InputError(_parser_message(exc, self.sep), file=self.path, row=_parser_row(exc)) from exc
        except UnicodeDecodeError as exc:
            raise InputError(
                f"cannot decode as {self.encoding}: {exc}; pass --encoding", file=self.path, row=start + 1
            ) from exc

    def _parquet_chunks(self) -> Iterator[tuple[int, pd.DataFrame]]:
        import pyarrow.parquet as pq

        start = 0
        try:
            pf = pq.ParquetFile(self.path)
            for batch in pf.iter_batches(batch_size=self.chunk_rows):
                chunk = batch.to_pandas()
                chunk.index = pd.RangeIndex(start, start + len(chunk))
                yield start, chunk
                start += len(chunk)
        except InputError:
            raise
        except Exception as exc:
            raise InputError(f"cannot read as Parquet: {exc}", file=self.path, row=start + 1) from exc

    def _jsonl_chunks(self) -> Iterator[tuple[int, pd.DataFrame]]:
        records: list[dict] = []
        start = 0
        row = 0
        with open(self.path, encoding="utf-8-sig", errors="strict") as fh:
            lineno = 0
            while True:
                try:
                    line = fh.readline()
                except UnicodeDecodeError as exc:
                    raise InputError(f"not UTF-8 text: {exc}", file=self.path, row=row + 1) from exc
                if not line:
                    break
                lineno += 1
                if not line.strip():
                    continue  # a blank line is not a record
                row += 1
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    hint = (
                        " (dupq reads JSON Lines: one object per line, not a JSON array)"
                        if lineno == 1
                        else ""
                    )
                    raise InputError(
                        f"line {lineno} is not valid JSON: {exc.msg}{hint}", file=self.path, row=row
                    ) from None
                if not isinstance(obj, dict):
                    raise InputError(
                        f"line {lineno} is a JSON {type(obj).__name__}, not an object",
                        file=self.path,
                        row=row,
                    )
                records.append(obj)
                if len(records) >= self.chunk_rows:
                    yield start, self._json_frame(records, start)
                    start += len(records)
                    records = []
        if records or start == 0:
            yield start, self._json_frame(records, start)

    def _json_frame(self, records: list[dict], start: int) -> pd.DataFrame:
        df = pd.DataFrame.from_records(records) if records else pd.DataFrame()
        if self.json_columns is not None:
            df = df.reindex(columns=self.json_columns)
        df.index = pd.RangeIndex(start, start + len(df))
        return df


def _detect_encoding(path: Path) -> str:
    """UTF-8 (with or without BOM) when the whole file decodes, else cp1252/latin-1; binary files refuse.

    The check streams the file once (a few seconds per GB) so that a bad byte in row 900,000 does not
    abort a run after the encoding stage.
    """
    import codecs

    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in {".gz", ".bz2", ".zip", ".xz", ".zst"}:
        return "utf-8"  # compressed: pandas decompresses; assume UTF-8
    with open(path, "rb") as fh:
        head = fh.read(8192)
        if b"\x00" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise InputError("looks like a binary file, not CSV/TSV text", file=path)
        if head.startswith((b"\xff\xfe", b"\xfe\xff")):
            return "utf-16"
        fh.seek(0)
        decoder = codecs.getincrementaldecoder("utf-8")()
        try:
            while block := fh.read(1 << 20):
                decoder.decode(block)
            decoder.decode(b"", final=True)
            return "utf-8-sig"  # also reads plain UTF-8; strips a BOM
        except UnicodeDecodeError:
            pass
    logger.warning("%s is not UTF-8; reading it as cp1252/latin-1", path)
    try:
        with open(path, "rb") as fh:
            while block := fh.read(1 << 20):
                block.decode("cp1252")
        return "cp1252"
    except UnicodeDecodeError:
        return "latin-1"


def _detect_delimiter(path: Path, encoding: str) -> str:
    """The most frequent of ``, ; TAB |`` in the header line (headers rarely quote), else comma."""
    try:
        with open(path, encoding=encoding, errors="replace", newline="") as fh:
            header = fh.readline()
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", file=path) from exc
    counts = {d: header.count(d) for d in (",", ";", "\t", "|")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > 0 else ","


def _parser_row(exc: Exception) -> int | None:
    import re

    m = re.search(r"line (\d+)", str(exc))
    return int(m.group(1)) - 1 if m else None  # physical line (header = 1) -> data row


def _parser_message(exc: Exception, sep: str | None) -> str:
    msg = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    return f"cannot parse (delimiter {sep!r}): {msg}; fix the row, or pass --sep/--encoding"


def _classify(value: Any) -> tuple[int, str]:
    """``(code, text)``: 0 with the text to encode, or :data:`_EMPTY` / :data:`_UNREADABLE`."""
    if isinstance(value, str):
        text = value
    elif is_blank(value) or value is pd.NA or value is pd.NaT:
        return _EMPTY, ""
    elif isinstance(value, (bytes, bytearray, memoryview)):
        try:
            text = bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return _UNREADABLE, ""
    elif isinstance(value, (bool, np.bool_)):
        return _UNREADABLE, ""
    elif isinstance(value, (int, float, np.integer, np.floating)):
        text = str(value)  # a number in a text column (JSON/Parquet) is still text to a person
    else:
        return _UNREADABLE, ""  # dicts, lists, arrays: not a question
    if not text.strip():
        return _EMPTY, ""
    if "\ufffd" in text or "\x00" in text:
        return _UNREADABLE, ""  # undecodable bytes were replaced, or binary data
    bad = sum(
        1 for ch in text if unicodedata.category(ch) in ("Cc", "Cs", "Co", "Cn") and ch not in _CONTROL_OK
    )
    if bad and bad / len(text) > 0.1:
        return _UNREADABLE, ""
    if not normalize(text):
        return _EMPTY, ""  # only punctuation/symbols: nothing a model could compare
    return 0, text


def _scan(source: _Source, show_progress: bool) -> _Scan:
    """First pass: statuses, exact-duplicate keys, unique texts, ids (checked unique)."""
    keys: dict[str, int] = {}
    texts: list[str] = []
    first_row: list[int] = []
    uid_parts: list[np.ndarray] = []
    code_parts: list[np.ndarray] = []
    row_ids: list[str] | None = [] if source.id_column is not None else None
    h = hashlib.sha256()
    n_rows = 0
    with tqdm(desc=f"reading {Path(source.name).name}", unit=" rows", disable=not show_progress) as bar:
        for start, chunk in source.chunks():
            values = chunk[source.text_column].tolist()
            uids = np.full(len(values), -1, dtype=np.int64)
            codes = np.zeros(len(values), dtype=np.int8)
            for i, value in enumerate(values):
                code, text = _classify(value)
                if code:
                    codes[i] = code
                    continue
                key = text_key(text)
                uid = keys.get(key)
                if uid is None:
                    uid = keys[key] = len(texts)
                    texts.append(text)
                    first_row.append(start + i)
                    h.update(text.encode("utf-8", "surrogatepass") + b"\x00")
                uids[i] = uid
            if row_ids is not None:
                for i, value in enumerate(chunk[source.id_column].tolist()):
                    if is_blank(value):
                        raise InputError(
                            "empty id", file=source.path, row=start + i + 1, column=source.id_column
                        )
                    row_ids.append(str(value))
            uid_parts.append(uids)
            code_parts.append(codes)
            n_rows = start + len(values)
            bar.update(len(values))
    if row_ids is not None:
        dup = pd.Index(row_ids).duplicated()
        if dup.any():
            row = int(np.flatnonzero(dup)[0])
            raise InputError(
                f"id {row_ids[row]!r} is used by more than one row; ids must be unique for duplicate_of "
                "to name one row",
                file=source.path,
                row=row + 1,
                column=source.id_column,
            )
    row_uid = np.concatenate(uid_parts) if uid_parts else np.zeros(0, np.int64)
    counts = np.bincount(row_uid[row_uid >= 0], minlength=len(texts)).astype(np.int64)
    return _Scan(
        source=source,
        n_rows=n_rows,
        row_uid=row_uid,
        row_code=np.concatenate(code_parts) if code_parts else np.zeros(0, np.int8),
        row_ids=row_ids,
        texts=texts,
        keys=keys,
        first_row=np.asarray(first_row, dtype=np.int64),
        counts=counts,
        digest=h.hexdigest(),
    )


# ================================================================================================
# The embeddings store (resumable)
# ================================================================================================
class _EmbeddingStore:
    """Embeddings of one list of unique texts under one model, memory-mapped, with per-text done flags.

    Files: ``meta.json`` (what the vectors are of), ``vectors.npy`` (a memory-mapped ``.npy``),
    ``done.npy`` / ``truncated.npy`` (bool per text, replaced atomically after each shard), and for
    the Ray engine ``texts/`` and ``ray-out/`` (Parquet shards). The directory name is derived from
    the fingerprint, so a changed input or model can never pick up stale vectors.
    """

    def __init__(self, directory: Path, meta: dict) -> None:
        self.dir = directory
        self.meta = meta
        n, dim = meta["n"], meta["dim"]
        vec_path = directory / "vectors.npy"
        if n == 0:
            self.vectors = np.zeros((0, dim), dtype=meta["dtype"])
        elif vec_path.exists():
            self.vectors = np.load(vec_path, mmap_mode="r+")
        else:
            self.vectors = np.lib.format.open_memmap(vec_path, mode="w+", dtype=meta["dtype"], shape=(n, dim))
        self.done = self._load_flags("done.npy", n)
        self.truncated = self._load_flags("truncated.npy", n)

    @classmethod
    def open(
        cls, workdir: Path, digest: str, model_fp: str, backend: str, n: int, dim: int, dtype: str
    ) -> _EmbeddingStore:
        key = hashlib.sha256(f"{digest}|{model_fp}|{backend}|{dtype}|{n}|{dim}".encode()).hexdigest()
        directory = workdir / f"emb-{key[:24]}"
        meta = {
            "format": "dupq-dedupe-embeddings",
            "version": 1,
            "key": key,
            "texts_sha256": digest,
            "model_fingerprint": model_fp,
            "backend": backend,
            "dtype": dtype,
            "n": n,
            "dim": dim,
        }
        meta_path = directory / "meta.json"
        if directory.exists():
            try:
                old = json.loads(meta_path.read_text(encoding="utf-8"))
                vec = np.load(directory / "vectors.npy", mmap_mode="r") if n else None
                ok = old == meta and (vec is None or (vec.shape == (n, dim) and vec.dtype == np.dtype(dtype)))
            except (OSError, ValueError):
                ok = False
            if not ok:
                logger.warning("discarding an incompatible or damaged embeddings store at %s", directory)
                shutil.rmtree(directory)
        if not directory.exists():
            directory.mkdir(parents=True)
            from dupq.io import atomic_write_json

            atomic_write_json(meta_path, meta)
        store = cls(directory, meta)
        if store.done.any():
            logger.info("resuming: %d of %d embeddings already in %s", int(store.done.sum()), n, directory)
        return store

    def _load_flags(self, name: str, n: int) -> np.ndarray:
        path = self.dir / name
        if path.exists():
            try:
                flags = np.load(path)
                if flags.shape == (n,) and flags.dtype == bool:
                    return flags
            except (OSError, ValueError):
                pass
        return np.zeros(n, dtype=bool)

    def reopen_readonly(self) -> None:
        """Swap the writable memmap for per-read mappings (:class:`_MappedRows`) once encoding is done."""
        if isinstance(self.vectors, np.memmap):
            self.vectors.flush()
            path = Path(self.vectors.filename)
            self.vectors = _MappedRows(path)

    def pending_shards(self, chunk: int) -> list[tuple[int, int]]:
        """``(start, stop)`` of each shard with at least one text not encoded yet."""
        n = self.meta["n"]
        return [(s, min(s + chunk, n)) for s in range(0, n, chunk) if not self.done[s : s + chunk].all()]

    def write(self, start: int, vectors: np.ndarray, truncated: np.ndarray) -> None:
        """Store a shard's vectors, flush them to disk, then mark them done (in that order)."""
        stop = start + len(vectors)
        self.vectors[start:stop] = vectors.astype(self.vectors.dtype)
        self.mark_done(np.arange(start, stop), truncated)

    def write_rows(self, uids: np.ndarray, vectors: np.ndarray, truncated: np.ndarray) -> None:
        """Like :meth:`write` for scattered rows (Ray output shards)."""
        self.vectors[uids] = vectors.astype(self.vectors.dtype)
        self.mark_done(uids, truncated)

    def mark_done(self, uids: np.ndarray, truncated: np.ndarray) -> None:
        if isinstance(self.vectors, np.memmap):
            self.vectors.flush()
        self.done[uids] = True
        self.truncated[uids] = truncated
        self._save_flags("truncated.npy", self.truncated)
        self._save_flags("done.npy", self.done)

    def _save_flags(self, name: str, flags: np.ndarray) -> None:
        with atomic_path(self.dir / name) as tmp, open(tmp, "wb") as fh:
            np.save(fh, flags)

    def write_text_shards(self, texts: list[str], chunk: int) -> list[Path]:
        """Parquet shards ``(uid, text)`` for engines that read texts from files (Ray)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        tdir = self.dir / "texts"
        tdir.mkdir(exist_ok=True)
        paths = []
        for i, start in enumerate(range(0, len(texts), chunk)):
            path = tdir / f"part-{i:06d}-{chunk}.parquet"
            if not path.exists():
                table = pa.table(
                    {
                        "uid": pa.array(np.arange(start, min(start + chunk, len(texts)), dtype=np.int64)),
                        "text": pa.array(texts[start : start + chunk], type=pa.string()),
                    }
                )
                with atomic_path(path) as tmp:
                    pq.write_table(table, tmp)
            paths.append(path)
        return paths


class _Subset:
    """Rows ``rows`` of a (memory-mapped) array, sliceable like an array (for the search stage)."""

    def __init__(self, array: np.ndarray, rows: np.ndarray) -> None:
        self.array, self.rows = array, rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, item: slice) -> np.ndarray:
        return self.array[self.rows[item]]

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.rows), self.array.shape[1])

    @property
    def dtype(self) -> np.dtype:
        return self.array.dtype


class _MappedRows:
    """Read-only rows of a ``.npy`` file, memory-mapped only for the duration of each read.

    A long-lived memmap keeps every page it has touched resident, and counted in the process's RSS
    (the whole 768 MB of a 1M-row float16 store once search has read it all); mapping per read keeps
    RSS to the rows being read, for one ``mmap`` call per chunk of rows.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        m = np.load(path, mmap_mode="r")
        self.shape: tuple[int, int] = m.shape
        self.dtype = m.dtype
        del m

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, item: Any) -> np.ndarray:
        m = np.load(self.path, mmap_mode="r")
        try:
            return np.array(m[item])
        finally:
            del m


def _release_memory() -> None:
    """Collect garbage and hand freed heap back to the OS (glibc keeps it otherwise), so the peak
    RSS of a large run is the index and the pairs, not the model that is no longer used."""
    import gc

    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


def _normalised(x: np.ndarray) -> np.ndarray:
    """float32 unit rows (float16 storage rounds norms by ~1e-4; FAISS adds check unit length)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def _unit_rows(vectors: Any, start: int, stop: int) -> np.ndarray:
    return np.ascontiguousarray(_normalised(vectors[start:stop]))


def _index_kind(n: int, index: str) -> str:
    if index == "auto":
        return "flat" if n <= EXACT_SEARCH_MAX else "hnsw"
    return index


def _build_index(
    vectors: Any, *, index: str, chunk_size: int, show_progress: bool, ef_search: int | None = None
):
    """A VectorIndex over ``vectors`` (ids = row positions), filled chunk by chunk (no full copy)."""
    from dupq.index import VectorIndex

    n = len(vectors)
    dim = vectors.shape[1]
    kind = _index_kind(n, index)
    params: dict[str, Any] = {}
    if kind == "hnsw":
        params.update(M=HNSW_M, ef_construction=HNSW_EF_CONSTRUCTION, ef_search=ef_search or HNSW_EF_SEARCH)
        # float16 vectors on disk: an fp16 graph loses nothing more and halves the index (0.77 GB at 1M)
        if np.dtype(getattr(vectors, "dtype", np.float32)) == np.float16:
            params["storage"] = "float16"
    vindex = VectorIndex(dim, kind, **params)
    step = max(chunk_size, 4096)
    with tqdm(total=n, desc=f"indexing ({kind})", unit="q", disable=not show_progress) as bar:
        for start in range(0, n, step):
            stop = min(start + step, n)
            vindex.add(_unit_rows(vectors, start, stop), np.arange(start, stop, dtype=np.int64))
            bar.update(stop - start)
    return vindex


# ================================================================================================
# Writing
# ================================================================================================
class _OutputColumns:
    """Turns per-text results into the result columns of any range of rows."""

    def __init__(self, scan, rep, uid_group, uid_score, uid_dup, matched, truncated, with_existing) -> None:
        self.scan = scan
        n = len(scan.texts)
        self.rep = rep
        self.uid_group = uid_group
        self.uid_score = uid_score
        self.uid_dup = uid_dup
        self.matched = matched
        self.truncated = truncated
        self.with_existing = with_existing
        self.rep_row = scan.first_row[rep] if n else np.zeros(0, np.int64)  # the representative row per uid

    def row_is_rep(self, rows: np.ndarray | None = None) -> np.ndarray:
        scan = self.scan
        rows = np.arange(scan.n_rows) if rows is None else rows
        uid = scan.row_uid[rows]
        has = uid >= 0
        out = np.zeros(len(rows), dtype=bool)
        u = uid[has]
        out[has] = (self.matched[u] < 0) & (self.rep[u] == u) & (scan.first_row[u] == rows[has])
        return out

    def attach(self, chunk: pd.DataFrame, start: int) -> pd.DataFrame:
        clash = [c for c in (*RESULT_COLUMNS, EXISTING_COLUMN) if c in chunk.columns]
        if clash:
            raise InputError(
                f"the input already has a column named {clash[0]!r}; rename it "
                f"(dedupe adds {RESULT_COLUMNS})",
                file=self.scan.source.path,
                column=clash[0],
            )
        scan = self.scan
        rows = np.arange(start, start + len(chunk))
        uid = scan.row_uid[rows]
        code = scan.row_code[rows]
        has = uid >= 0
        u = np.where(has, uid, 0)
        is_rep = self.row_is_rep(rows)
        dup_mask = has & ~is_rep
        group = pd.array(np.where(has, self.uid_group[u] if len(self.uid_group) else 0, 0), dtype="Int64")
        group[~has] = pd.NA
        score = np.where(dup_mask, np.round(self.uid_score[u], 6) if len(self.uid_score) else 0.0, np.nan)
        exact_of_rep = dup_mask & (self.rep[u] == u) & (self.matched[u] < 0) if len(self.rep) else dup_mask
        score[exact_of_rep] = 1.0
        if scan.row_ids is None and not self.with_existing:
            ints = self.uid_dup[u].astype(np.int64) if len(self.uid_dup) else np.zeros(len(rows), np.int64)
            dup = pd.array(np.where(dup_mask, ints, 0), dtype="Int64")
            dup[~dup_mask] = pd.NA
        else:  # string ids (or ids from two tables)
            vals = self.uid_dup[u] if len(self.uid_dup) else np.zeros(len(rows), dtype=object)
            dup = pd.array(
                [str(v) if m else None for v, m in zip(vals, dup_mask, strict=True)], dtype="string"
            )
        status = np.where(
            code == _EMPTY, STATUS_EMPTY, np.where(code == _UNREADABLE, STATUS_UNREADABLE, STATUS_OK)
        )
        if len(self.truncated):
            status = np.where(has & self.truncated[u], STATUS_TRUNCATED, status)
        out = chunk.copy()
        out["group_id"] = group
        out["is_representative"] = is_rep
        out["duplicate_of"] = dup
        out["score"] = score
        out["status"] = status.astype(object)
        if self.with_existing:
            out[EXISTING_COLUMN] = (
                has & (self.matched[u] >= 0) if len(self.matched) else np.zeros(len(rows), bool)
            )
        return out


_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".txt": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}


def _output_format(path: Path) -> str:
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(
            f"cannot tell the output format from the suffix {path.suffix!r}; use one of {sorted(_FORMATS)}"
        )
    return fmt


def _write_table(source: _Source, columns: _OutputColumns, out: Path, show_progress: bool) -> None:
    """Stream the input again and write it with the result columns, atomically."""
    fmt = _output_format(out)
    with atomic_path(out) as tmp:
        writer = _ChunkWriter(tmp, fmt)
        try:
            with tqdm(
                total=columns.scan.n_rows, desc="writing", unit=" rows", disable=not show_progress
            ) as bar:
                for start, chunk in source.chunks():
                    writer.write(columns.attach(chunk, start))
                    bar.update(len(chunk))
        finally:
            writer.close()


def _write_frame(df: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        writer = _ChunkWriter(tmp, _output_format(path))
        try:
            writer.write(df)
        finally:
            writer.close()


class _ChunkWriter:
    """Appends DataFrames to one CSV/TSV/Parquet/JSONL file (the schema comes from the first chunk)."""

    def __init__(self, path: Path, fmt: str) -> None:
        self.path, self.fmt = path, fmt
        self.first = True
        self._pq = None
        self._schema = None
        # Kept open across write() calls and closed by close() (the caller's try/finally).
        self._fh = None if fmt == "parquet" else open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115

    def write(self, df: pd.DataFrame) -> None:
        if self.fmt in ("csv", "tsv"):
            df.to_csv(self._fh, index=False, header=self.first, sep="\t" if self.fmt == "tsv" else ",")
        elif self.fmt == "jsonl":
            if len(df):
                text = df.to_json(orient="records", lines=True, force_ascii=False)
                self._fh.write(text if text.endswith("\n") else text + "\n")
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            if self._pq is None:
                table = pa.Table.from_pandas(df, preserve_index=False)
                self._schema = table.schema
                self._pq = pq.ParquetWriter(self.path, self._schema)
            else:
                table = pa.Table.from_pandas(df, schema=self._schema, preserve_index=False)
            self._pq.write_table(table)
        self.first = False

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if self._pq is not None:
            self._pq.close()
            self._pq = None
        elif self.fmt == "parquet" and self.first:
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.table({}), self.path)


def _pairs_frame(scan, base_scan, pa_, pb_, ps_, matched, match_score) -> pd.DataFrame:
    """Every pair above the threshold: distinct texts (``similar``), exact copies (``exact``), and
    matches to the existing base (``existing``). Texts are named by the id of their first row."""
    frames = []
    if len(pa_):
        frames.append(
            pd.DataFrame(
                {
                    "id_a": scan.uid_id(pa_),
                    "id_b": scan.uid_id(pb_),
                    "score": np.round(ps_.astype(np.float64), 6),
                    "kind": "similar",
                    "text_a": [scan.texts[i] for i in pa_.tolist()],
                    "text_b": [scan.texts[i] for i in pb_.tolist()],
                }
            )
        )
    rows = np.arange(scan.n_rows)
    has = scan.row_uid >= 0
    copies = rows[has][scan.first_row[scan.row_uid[has]] != rows[has]]
    if len(copies):
        cu = scan.row_uid[copies]
        ids_b = (
            copies if scan.row_ids is None else np.asarray([scan.row_ids[r] for r in copies.tolist()], object)
        )
        frames.append(
            pd.DataFrame(
                {
                    "id_a": scan.uid_id(cu),
                    "id_b": ids_b,
                    "score": 1.0,
                    "kind": "exact",
                    "text_a": [scan.texts[i] for i in cu.tolist()],
                    "text_b": [scan.texts[i] for i in cu.tolist()],  # the same text up to case/punctuation
                }
            )
        )
    if base_scan is not None:
        m = np.flatnonzero(matched >= 0)
        if len(m):
            frames.append(
                pd.DataFrame(
                    {
                        "id_a": scan.uid_id(m),
                        "id_b": base_scan.uid_id(matched[m]),
                        "score": np.round(match_score[m].astype(np.float64), 6),
                        "kind": "existing",
                        "text_a": [scan.texts[i] for i in m.tolist()],
                        "text_b": [base_scan.texts[i] for i in matched[m].tolist()],
                    }
                )
            )
    if not frames:
        return pd.DataFrame({c: [] for c in ("id_a", "id_b", "score", "kind", "text_a", "text_b")})
    df = pd.concat(frames, ignore_index=True)
    if any(isinstance(v, str) for v in df["id_a"].head(1)) or base_scan is not None:
        df["id_a"] = df["id_a"].astype(str)
        df["id_b"] = df["id_b"].astype(str)
    return df


# ================================================================================================
# Bookkeeping
# ================================================================================================
def _resolve_workdir(workdir: str | Path | None, out: Path | None) -> tuple[Path, bool]:
    """The work directory and whether to delete it after a successful run."""
    if workdir is not None:
        path = Path(workdir)
        path.mkdir(parents=True, exist_ok=True)
        return path, False
    if out is not None:
        path = out.parent / f".{out.name}.dupq-work"
        path.mkdir(parents=True, exist_ok=True)
        return path, True
    return Path(tempfile.mkdtemp(prefix="dupq-dedupe-")), True


class _StageTimer:
    """Wall time, RSS and peak RSS at the end of each stage (for the summary and the benchmark)."""

    def __init__(self) -> None:
        self.t = time.perf_counter()
        self.seconds: dict[str, float] = {}
        self.rss_mb: dict[str, float] = {}

    def stage(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = round(self.seconds.get(name, 0.0) + now - self.t, 3)
        self.t = now
        self.rss_mb[name] = round(_rss_mb(), 1)

    def peak_mb(self) -> float:
        return round(peak_rss_mb(), 1)


def _rss_mb() -> float:
    with contextlib.suppress(Exception):
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    return peak_rss_mb()


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if os.uname().sysname == "Darwin" else peak / 1024


__all__ = [
    "DEFAULT_THRESHOLD",
    "DedupeResult",
    "DedupeSummary",
    "DupqError",
    "RESULT_COLUMNS",
    "STATUSES",
    "deduplicate",
    "group_pairs",
    "group_vectors",
    "resolve_threshold",
    "similar_pairs",
]
