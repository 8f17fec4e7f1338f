"""Stage 3, **search**: similar pairs among unique texts, and matches against an existing base.

Up to :data:`~dupq.dedupe.config.EXACT_SEARCH_MAX` texts, each unique text's ``k`` nearest neighbours
come from an exact :class:`dupq.index.VectorIndex` (``flat``; also ``hnsw`` and ``ivf`` on request), and
texts whose k-th neighbour is still above the threshold get a range search so that large groups are
not cut at ``k``. Above it, the self-search is the cell join of :mod:`dupq.dedupe.join` (``join``):
every pair above the floor, exact within each text's nearest k-means cells, as matrix products.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm.auto import tqdm

from dupq.dedupe.config import (
    DEFAULT_CHUNK,
    DEFAULT_K,
    EXACT_SEARCH_MAX,
    HNSW_EF_CONSTRUCTION,
    HNSW_EF_SEARCH,
    HNSW_M,
)
from dupq.dedupe.join import best_of_parts, best_per_key, join_pairs
from dupq.vectors import l2_normalize, unit_rows

if TYPE_CHECKING:
    from dupq.dedupe.config import DedupeConfig
    from dupq.dedupe.scan import Scan
    from dupq.index import VectorIndex


def index_kind(n: int, index: str) -> str:
    """The self-search ``index="auto"`` means for ``n`` vectors (else ``index`` itself): exact ``flat``
    up to :data:`EXACT_SEARCH_MAX`, the cell ``join`` above (higher pair recall than HNSW in less time:
    :mod:`dupq.dedupe.join`)."""
    if index == "auto":
        return "flat" if n <= EXACT_SEARCH_MAX else "join"
    return index


def lookup_kind(n: int, index: str) -> str:
    """The :class:`~dupq.index.VectorIndex` kind for searching *other* vectors against these ``n``
    (matching new texts to a base): the join only answers the self-search, so it means HNSW here."""
    kind = index_kind(n, index)
    return "hnsw" if kind == "join" else kind


def build_index(
    vectors: Any, *, index: str, chunk_size: int, show_progress: bool, ef_search: int | None = None
) -> VectorIndex:
    """A VectorIndex over ``vectors`` (ids = row positions), filled chunk by chunk (no full copy)."""
    from dupq.index import VectorIndex

    n = len(vectors)
    dim = vectors.shape[1]
    kind = lookup_kind(n, index)
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
            vindex.add(unit_rows(vectors, start, stop), np.arange(start, stop, dtype=np.int64))
            bar.update(stop - start)
    return vindex


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
    a, b, s, _ = candidate_pairs(
        vectors,
        threshold,
        k=k,
        index=index,
        chunk_size=chunk_size,
        show_progress=show_progress,
        ef_search=ef_search,
    )
    return a, b, s


def candidate_pairs(
    vectors: np.ndarray | Any,
    floor: float,
    *,
    range_at: float | None = None,
    k: int = DEFAULT_K,
    index: str = "auto",
    chunk_size: int = DEFAULT_CHUNK,
    show_progress: bool = False,
    ef_search: int | None = None,
    vindex: VectorIndex | None = None,
    join_recall: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pairs with cosine ``>= floor`` among each row's ``k`` nearest neighbours, completed by a range
    search at ``range_at`` (default ``floor``) for rows whose k-th neighbour reaches it.

    With ``index`` ``join`` (``auto`` above :data:`EXACT_SEARCH_MAX` rows) every pair ``>= floor`` comes
    from :func:`dupq.dedupe.join.join_pairs` instead, and ``complete_to`` is ``floor`` for every row.

    Returns ``(a, b, scores, complete_to)``: ``complete_to[i]`` is the lowest threshold down to which
    row ``i``'s neighbours are all listed (``range_at`` after a range search, else just above its k-th
    neighbour's cosine; -2 when ``k`` covers every row). The pairs at a threshold ``x >= floor`` are
    complete when no row has ``complete_to > x`` — what :mod:`dupq.dedupe.cache` checks before it
    answers another threshold from saved pairs. Searching the floor by k-NN only and ranging at the
    threshold keeps a run as cheap as a search at the threshold: on the 100k-row report check a range
    search at the floor (0.70) took the search stage from 75 s to 624 s, many real sentences there having
    hundreds of neighbours above 0.70 (``benchmarks/results/report-check-100k-cold.json``; the 624 s are in
    ``report-check-100k.json`` as of commit 77dc914). ``vindex``: an index already built over ``vectors``
    by :func:`build_index` (the Ray partition search times building and searching apart).
    ``join_recall``: the join's pair-recall target (default :data:`dupq.dedupe.join.JOIN_RECALL`).
    """
    n = len(vectors)
    empty = np.zeros(0, np.int64)
    if n < 2:
        return empty, empty, np.zeros(0, np.float32), np.full(n, -2.0, np.float32)
    range_at = floor if range_at is None else max(float(range_at), floor)
    if vindex is None and index_kind(n, index) == "join":
        key, s, reached = join_pairs(
            vectors,
            floor,
            chunk_size=max(chunk_size, 4096),
            show_progress=show_progress,
            keep_above=range_at,
            recall=join_recall,
        )
        a, b = np.divmod(key, n)
        return a, b, s, np.full(n, np.float32(reached), dtype=np.float32)
    if vindex is None:
        vindex = build_index(
            vectors, index=index, chunk_size=chunk_size, show_progress=show_progress, ef_search=ef_search
        )
    kk = min(k + 1, n)  # +1: a row finds itself
    complete = np.full(n, -2.0, dtype=np.float32)
    # Pairs are kept as one int64 key (lo * n + hi) and a float32 score per hit — 12 bytes instead of
    # 20 for (a, b, score) — and de-duplicated per chunk: at 1M rows the floor search yields tens of
    # millions of hits, and the old (a, b, s) concatenate + lexsort + re-index peaked at ~2.5 GB over
    # the index itself.
    parts_k, parts_s = [], []

    def keep_pairs(a: np.ndarray, b: np.ndarray, sc: np.ndarray) -> None:
        key = np.minimum(a, b) * n + np.maximum(a, b)
        key, sc = best_per_key(key, sc.astype(np.float32, copy=False))
        parts_k.append(key)
        parts_s.append(sc)

    with tqdm(total=n, desc="searching", unit="q", disable=not show_progress) as bar:
        for start in range(0, n, chunk_size):
            q = unit_rows(vectors, start, min(start + chunk_size, n))
            qids = np.arange(start, start + len(q), dtype=np.int64)
            scores, ids = vindex.search(q, kk)
            keep = (ids >= 0) & (scores >= np.float32(floor)) & (ids != qids[:, None])
            rows, cols = np.nonzero(keep)
            keep_pairs(qids[rows], ids[rows, cols].astype(np.int64), scores[rows, cols])
            if kk < n:
                kth = scores[:, -1]
                saturated = np.flatnonzero(kth >= np.float32(range_at))
                complete[qids] = np.nextafter(kth, np.float32(np.inf))
                complete[qids[saturated]] = range_at
                if len(saturated):
                    for qi, (nids, nscores) in zip(
                        saturated.tolist(), vindex.range_search(q[saturated], range_at), strict=True
                    ):
                        mask = nids != qids[qi]
                        keep_pairs(
                            np.full(int(mask.sum()), qids[qi], dtype=np.int64), nids[mask], nscores[mask]
                        )
            bar.update(len(q))
    del vindex  # the index (0.8 GB at 1M) is not needed for the merge below: let it go first
    key, s = best_of_parts(parts_k, parts_s)  # consumes the parts: no unsorted copy beside the sorted one
    a, b = np.divmod(key, n)
    return a, b, s, complete


def match_against(
    scan: Scan, base_scan: Scan, vectors: Any, base_vectors: Any, threshold: float, cfg: DedupeConfig
) -> tuple[np.ndarray, np.ndarray]:
    """``(matched, score)`` per unique new text: the base text it duplicates (-1: none) and the cosine.

    Exact copies (same :func:`~dupq.text.text_key`) match with score 1.0 without a search; the rest
    search the base for their nearest neighbour.
    """
    n = len(scan.texts)
    matched = np.full(n, -1, dtype=np.int64)
    score = np.zeros(n, dtype=np.float32)
    for key, uid in scan.keys.items():
        buid = base_scan.keys.get(key)
        if buid is not None:
            matched[uid] = buid
            score[uid] = 1.0
    todo = np.flatnonzero(matched < 0)
    if not len(todo) or not len(base_scan.texts):
        return matched, score
    chunk = cfg.chunk_size
    bindex = build_index(
        base_vectors,
        index=cfg.index,
        chunk_size=chunk,
        show_progress=cfg.show_progress,
        ef_search=cfg.ef_search,
    )
    for start in range(0, len(todo), chunk):
        sel = todo[start : start + chunk]
        scores, ids = bindex.search(l2_normalize(vectors[sel]), 1)
        hit = (ids[:, 0] >= 0) & (scores[:, 0] >= np.float32(threshold))
        matched[sel[hit]] = ids[hit, 0]
        score[sel[hit]] = scores[hit, 0]
    return matched, score
