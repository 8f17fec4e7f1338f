"""The batch self-join: every pair of unit rows with cosine ``>= floor``, searched cell by cell.

A dedupe run asks one question of its vectors — *which pairs are this close?* — not millions of
separate nearest-neighbour questions. So instead of building a graph (HNSW) and walking it once per
row, the rows are split into k-means cells (about :data:`JOIN_CELL_SIZE` rows each), every row is
compared **exactly** with all rows whose cell is among its nearest cells (its probes), and the
comparisons run as dense matrix products (BLAS), cell by cell. A pair is found when either row's
probes reach the other's cell, so only a pair whose two cells are both far from the other row is
missed. How many probes: the fewest (at most :data:`JOIN_PROBES`) that find :data:`JOIN_RECALL` of the
pairs at the threshold, measured in the run itself on a sample searched exactly (:func:`assign_cells`).

Measured on the 1M real-derived vectors of the 1M dedupe benchmark (all-MiniLM-L6-v2 int8, threshold
0.75, pair recall against exact search on 5,000 sampled rows,
``benchmarks/results/search-1m-join-vs-hnsw.json``):
4,000 cells × 32 probes found 99.5 % of the pairs where the HNSW search (M=16, efC=40, ef=128, k=32)
found 95.2 %; inside the 1M dedupe the join's search stage took 147 s against HNSW's 298 s
(runs of ``benchmarks/dedupe.py --sizes 1000000``, since replaced in ``benchmarks/results/``: see
git history). A fixed 32 probes was what those
vectors needed; the static student's at 0.80 need 12–14 for 0.99 (its 1M join: 151 → 88 s).

Every pair at or above ``floor`` is listed (not only each row's ``k`` nearest), so ``complete_to`` is
``floor`` for every row and a re-run at any threshold down to the floor needs no search — unless the
band below the threshold is too dense to keep (more than :data:`JOIN_BAND_PER_ROW` pairs a row on
average), when only the threshold's pairs are kept and they are complete down to the threshold.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from dupq.vectors import l2_normalize, release_pages, unit_rows

logger = logging.getLogger(__name__)

#: Rows per k-means cell (the cell count is rows / this); smaller cells with the same rows compared
#: per query (probes × cell size) gave higher recall: 2,000 cells × 16 probes 0.990, 4,000 × 32 0.996.
JOIN_CELL_SIZE = 250
#: Cells each row is compared against (its nearest centroids, its own first) — at most: fewer when a
#: sample shows that fewer reach :data:`JOIN_RECALL` (:func:`assign_cells`).
JOIN_PROBES = 32
#: Pair recall the probe count is chosen for, estimated on :data:`JOIN_RECALL_SAMPLE` rows searched
#: exactly; 1.0 keeps :data:`JOIN_PROBES` always. How many cells a pair's rows lie apart depends on the
#: vectors: the static student's 256-dim table vectors at 0.80 need half the probes MiniLM's need.
JOIN_RECALL = 0.99
JOIN_RECALL_SAMPLE = 1000
#: The sample's pairs are thinned (uniformly) to about this many when its rows have dense neighbourhoods.
JOIN_RECALL_PAIRS = 200_000
#: Fewest probes :func:`assign_cells` picks (a sample's tail is the least certain part of it).
JOIN_MIN_PROBES = 4
#: At most this many cells (cells then grow past :data:`JOIN_CELL_SIZE`): training and probing cost
#: rows × cells, so uncapped they would grow with the square of the rows (README: the 100M model).
JOIN_MAX_CELLS = 65_536
#: k-means training points per cell, and iterations (training cost grows with cells²).
JOIN_TRAIN_PER_CELL = 32
JOIN_TRAIN_ITER = 10
#: Query rows per matrix product (bounds the block of scores: rows × cell size float32).
JOIN_BLOCK = 8192
#: Pairs per row allowed below the threshold (the search margin's band) before the band is dropped:
#: the k-NN search kept k = 32 per row there, so the join keeps no more than that on average.
JOIN_BAND_PER_ROW = 32
#: Pair hits held before they are compacted (each pair once): bounds the merge's peak memory.
JOIN_COMPACT = 8_000_000
#: Up to this many bytes the rows are held in memory as float32 unit vectors (1.5 GB at 1M × 384):
#: each row is read ~``probes`` times, and converting and normalising it every time took a third of the
#: join's time; above it they are gathered from ``vectors`` (a memory map) per cell.
JOIN_RAM_BYTES = 2 * 2**30


def join_plan(n: int, cell_size: int | None = None, probes: int | None = None) -> tuple[int, int]:
    """``(cells, probes)`` for ``n`` rows (defaults :data:`JOIN_CELL_SIZE`, :data:`JOIN_PROBES`, read at
    call time): one cell (an exact all-pairs join) when probes would cover every cell anyway."""
    cell_size = JOIN_CELL_SIZE if cell_size is None else cell_size
    probes = JOIN_PROBES if probes is None else probes
    cells = min(max(1, n // max(1, cell_size)), JOIN_MAX_CELLS)
    return (1, 1) if cells <= probes else (cells, probes)


def train_cells(
    vectors: Any,
    cells: int,
    seed: int = 0,
    *,
    per_cell: int = JOIN_TRAIN_PER_CELL,
    niter: int = JOIN_TRAIN_ITER,
) -> np.ndarray:
    """Unit centroids of ``cells`` spherical k-means cells, trained on a uniform sample of ``per_cell``
    rows a cell (one centroid: the uniform direction). Also the Ray search's partition centroids."""
    import faiss

    n, dim = vectors.shape
    if cells == 1:
        return np.full((1, dim), 1 / np.sqrt(dim), np.float32)
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n, min(n, cells * per_cell), replace=False))
    train = np.ascontiguousarray(l2_normalize(vectors[sample]))
    km = faiss.Kmeans(dim, cells, niter=niter, spherical=True, seed=seed)
    km.cp.max_points_per_centroid = per_cell
    km.cp.min_points_per_centroid = 1  # a small sample is deliberate: centroids only need to be good cells
    km.train(train)
    return np.ascontiguousarray(km.centroids, dtype=np.float32)


def nearest_cells(vectors: Any, centroids: np.ndarray, k: int, chunk_size: int = 65_536) -> np.ndarray:
    """``(n, k)`` int32: each row's ``k`` nearest centroids by cosine, nearest first, read ``chunk_size``
    rows at a time (``vectors`` may be a memory map)."""
    return _cells_pass(vectors, centroids, k, chunk_size)[0]


def _cells_pass(
    vectors: Any,
    centroids: np.ndarray,
    k: int,
    chunk_size: int,
    sample: np.ndarray | None = None,
    at: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """``(probe, q, partner, score, rate)``: :func:`nearest_cells`, and in the same read of the rows the
    pairs ``(sample[q], partner)`` with cosine ``score >= at`` found exactly for the ``sample`` rows
    (sorted ids), each kept with probability ``rate`` (below 1 when the sample's pairs were thinned)."""
    import faiss

    index = faiss.IndexFlatIP(centroids.shape[1])
    index.add(centroids)
    n = len(vectors)
    out = np.empty((n, k), dtype=np.int32)
    queries = None if sample is None else np.ascontiguousarray(l2_normalize(vectors[sample]))
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    rate, rng = 1.0, np.random.default_rng(0)  # the kept share of the sample's pairs (a dense sample)
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        chunk = unit_rows(vectors, start, stop)
        out[start:stop] = index.search(chunk, k)[1]
        if queries is not None:
            sims = (queries @ chunk.T).ravel()
            hit = np.flatnonzero(sims >= np.float32(at))
            if rate < 1.0:
                hit = hit[rng.random(len(hit)) < rate]
            r, c = np.divmod(hit, stop - start)
            c += start
            other = sample[r] != c
            found.append((r[other], c[other], sims[hit[other]]))
            while sum(len(f[0]) for f in found) > 2 * JOIN_RECALL_PAIRS:
                rate /= 2
                found = [tuple(x[keep] for x in f) for f in found for keep in [rng.random(len(f[0])) < 0.5]]
    empty = [(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))]
    q, partner, score = (np.concatenate([f[i] for f in found or empty]) for i in range(3))
    return out, q, partner, score, rate


def probes_needed(probe: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per pair ``(a, b)``, the probes the join needs to find it: it is found when ``b``'s cell is among
    ``a``'s nearest ``p`` or the other way round, so ``1 + min(rank of b's home in a's list, rank of a's
    home in b's list)`` — ``probe.shape[1] + 1`` when neither list reaches the other's home."""
    width = probe.shape[1]

    def rank(row: np.ndarray, other: np.ndarray) -> np.ndarray:
        match = probe[row] == probe[other, 0][:, None]
        return np.where(match.any(1), match.argmax(1), width)

    return np.minimum(rank(a, b), rank(b, a)) + 1


def _row_reader(vectors: Any, chunk_size: int) -> Any:
    """``rows(idx)``: float32 unit vectors of rows ``idx`` (sorted) — from an in-memory float32 copy when
    it fits :data:`JOIN_RAM_BYTES`, else gathered and normalised from ``vectors`` on each call."""
    n, dim = vectors.shape
    if n * dim * 4 <= JOIN_RAM_BYTES:
        held = np.empty((n, dim), dtype=np.float32)
        for start in range(0, n, chunk_size):
            held[start : start + chunk_size] = unit_rows(vectors, start, start + chunk_size)
        release_pages(vectors)  # the map's pages (read by the passes so far) are not needed again
        return held.__getitem__
    return lambda idx: l2_normalize(vectors[idx])


def assign_cells(
    vectors: Any,
    cells: int,
    probes: int,
    *,
    chunk_size: int = 65_536,
    seed: int = 0,
    recall_at: float | None = None,
    recall: float | None = None,
    floor: float | None = None,
) -> tuple[np.ndarray, np.ndarray, float | None]:
    """``(centroids, probe, floor)``: the cells' unit centroids; per row its nearest cells (int32, its own
    cell first); and the floor the join should search down to.

    Without ``recall_at`` every row gets ``probes`` cells and ``floor`` comes back as given. With
    ``recall_at`` (the threshold; ``floor``, if given, the search margin below it) :data:`JOIN_RECALL_SAMPLE`
    rows are searched exactly against all rows, in the same read of the rows as the cell assignment
    (sample × rows × dim more work: ~4 s at 1M × 256 on 2 cores), and:

    * when the sample shows the band ``[floor, recall_at)`` denser than half :data:`JOIN_BAND_PER_ROW`
      pairs a row — where the join would drop it (``_Pairs`` counts a pair's hits in two unmerged runs
      twice) — the floor is raised to ``recall_at`` before the search, not after it;
    * each row gets the fewest probes (down to :data:`JOIN_MIN_PROBES`) that find ``recall`` (default
      :data:`JOIN_RECALL`) of the sample's pairs at or above that floor, each pair's need read off the
      rows' nearest-cell lists (:func:`probes_needed`). Pairs below the threshold lie further apart in
      cells, so a kept band costs probes: saved pairs then serve a re-threshold down to the floor with
      the same recall as a search would.

    How far apart a pair's rows lie depends on the vectors: on the 1M benchmark the static student at
    0.80 (band dropped) needed 14 probes for 0.99, MiniLM at 0.75 with its band down to 0.70 about 25,
    where 32 had been fixed. One cell: every row's only probe is cell 0."""
    if cells == 1:
        return train_cells(vectors, 1), np.zeros((len(vectors), 1), dtype=np.int32), floor
    centroids = train_cells(vectors, cells, seed)
    recall = JOIN_RECALL if recall is None else recall
    if recall_at is None or recall >= 1.0 or probes <= JOIN_MIN_PROBES:
        return centroids, nearest_cells(vectors, centroids, probes, chunk_size), floor
    low = recall_at if floor is None else min(floor, recall_at)
    rng = np.random.default_rng(seed + 1)
    sample = np.sort(rng.choice(len(vectors), min(len(vectors), JOIN_RECALL_SAMPLE), replace=False))
    probe, q, partner, score, rate = _cells_pass(vectors, centroids, probes, chunk_size, sample, low)
    need = probes_needed(probe, sample[q], partner)
    band = score < np.float32(recall_at)
    chosen, low = choose_probes(
        need_histogram(need[~band], probes),
        need_histogram(need[band], probes),
        float(band.sum()) / rate,
        len(sample),
        recall_at=recall_at,
        recall=recall,
        floor=floor,
    )
    return centroids, np.ascontiguousarray(probe[:, :chosen]), low


def need_histogram(need: np.ndarray, probes: int) -> np.ndarray:
    """How many sample pairs need each number of probes (index ``p``: ``p`` probes; the last,
    ``probes + 1``: not found with all of them) — what :func:`choose_probes` reads, and what the Ray
    engine's probe tasks send back instead of their pairs."""
    return np.bincount(need, minlength=probes + 2)[: probes + 2].astype(np.int64)


def choose_probes(
    need_above: np.ndarray,
    need_band: np.ndarray,
    band_pairs: float,
    sample_rows: int,
    *,
    recall_at: float,
    recall: float,
    floor: float | None,
) -> tuple[int, float | None]:
    """``(probes, floor)`` from the recall sample: ``need_above`` / ``need_band`` are the
    :func:`need_histogram` of its pairs at or above ``recall_at`` / in the band ``[floor, recall_at)``,
    ``band_pairs`` that band's pair count (before any thinning), ``sample_rows`` the sample's size.

    The band is dropped (the floor raised to ``recall_at``) when it holds more than half
    :data:`JOIN_BAND_PER_ROW` pairs a row — where the join would drop it (``_Pairs`` counts a pair's
    hits in two unmerged runs twice; the static student at 0.80: 28.5 pairs a row estimated, dropped
    half-way through the join); the probes are the fewest (:data:`JOIN_MIN_PROBES` up to all) that find
    ``recall`` of the kept pairs. One rule for the local join and the Ray plan pass."""
    probes = len(need_above) - 2
    low = recall_at if floor is None else min(floor, recall_at)
    band_per_row = band_pairs / max(sample_rows, 1) / 2  # each pair was seen from both its rows
    if band_per_row > JOIN_BAND_PER_ROW / 2:
        low = recall_at
    hist = need_above + need_band if low < recall_at else need_above
    total = int(hist.sum())
    cumulative = np.cumsum(hist)
    chosen = int(np.searchsorted(cumulative, int(np.ceil(recall * total)))) if total else JOIN_MIN_PROBES
    chosen = min(probes, max(JOIN_MIN_PROBES, chosen))
    logger.info(
        "join: %d probes of %d for pair recall %.3f down to %.4f (estimated %.4f on %d sample pairs; "
        "band %.1f pairs a row)",
        chosen, probes, recall, low, cumulative[chosen] / total if total else 1.0, total, band_per_row,
    )  # fmt: skip
    return chosen, (low if floor is not None else None)


def join_pairs(
    vectors: Any,
    floor: float,
    *,
    cells: int | None = None,
    probes: int | None = None,
    chunk_size: int = 65_536,
    show_progress: bool = False,
    seed: int = 0,
    keep_above: float | None = None,
    recall: float | None = None,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Every pair ``i < j`` of rows with cosine ``>= floor`` found cell by cell (see the module).

    Returns ``(key, score, floor)``: ``key = i * n + j`` ascending, one float32 score each, and the floor
    the pairs are complete to (``floor``, or ``keep_above`` when the band below it was too dense to keep:
    :func:`assign_cells` predicts that from its sample, :func:`join_cells` finds it out). Unless ``probes``
    is given they are chosen for pair recall ``recall`` (default :data:`JOIN_RECALL`) down to that floor.
    ``vectors`` may be a
    memory map (float16 or float32, unit rows or not); it is read in ``chunk_size`` rows for the cell
    assignment, then held in memory or gathered per cell (:data:`JOIN_RAM_BYTES`).
    """
    n = len(vectors)
    if n < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.float32), floor
    chosen = probes is None  # the caller's probes are kept; the default ones are chosen for ``recall``
    if cells is None or probes is None:
        cells, probes = join_plan(n, probes=probes)
    probes = min(probes, cells)
    recall_at = (floor if keep_above is None else max(floor, keep_above)) if chosen else None
    _, probe, floor = assign_cells(
        vectors,
        cells,
        probes,
        chunk_size=chunk_size,
        seed=seed,
        recall_at=recall_at,
        recall=recall,
        floor=floor,
    )
    every = np.arange(n, dtype=np.int32)
    data = (probe[:, 0].copy(), every)
    queries = (probe.ravel(), np.repeat(every, probe.shape[1]))
    del probe
    # the float32 copy of the rows is made only once the cell lists are built (and dropped before the
    # final merge of the pairs): at 1M rows the lists, the copy and the pairs do not all peak together
    return join_cells(
        lambda: _row_reader(vectors, chunk_size),
        data,
        queries,
        floor,
        n_keys=n,
        keep_above=keep_above,
        show_progress=show_progress,
    )


def join_cells(
    make_rows: Any,
    data: tuple[np.ndarray, np.ndarray],
    queries: tuple[np.ndarray, np.ndarray],
    floor: float,
    *,
    ids: np.ndarray | None = None,
    n_keys: int | None = None,
    keep_above: float | None = None,
    band_limit: int | None = None,
    show_progress: bool = False,
) -> tuple[np.ndarray, np.ndarray, float]:
    """The join's work, cell by cell: ``data = (cell, position)`` per row stored in a cell (its home),
    ``queries = (cell, position)`` per row probing a cell (both are consumed); ``make_rows()`` returns
    ``rows(positions)``, which gives their unit float32 vectors (positions ascending). Pairs are keyed
    in ``ids`` (global row ids of the positions; default the positions themselves) as
    ``lo * n_keys + hi`` (default: the largest id + 1) — so a Ray task holding some rows returns keys in
    the whole store's numbering. Pairs below ``keep_above`` are dropped once there are more than
    ``band_limit`` of them (default: :data:`JOIN_BAND_PER_ROW` per row; see ``_Pairs``). Returns
    ``(key, score, floor)``: keys ascending, and the floor down to which the pairs are complete.
    """
    d_pos, d_spans, present = _by_cell(*data)
    q_pos, q_spans, _ = _by_cell(*queries, cells=present)
    del data, queries
    if n_keys is None:
        n_keys = (
            int(ids.max()) + 1
            if ids is not None
            else int(max(d_pos.max(initial=0), q_pos.max(initial=0))) + 1
        )
    n = n_keys
    rows = make_rows()
    if band_limit is None:
        band_limit = JOIN_BAND_PER_ROW * max(len(d_pos), 1)
    pairs = _Pairs(floor, floor if keep_above is None else keep_above, band_limit)
    with tqdm(total=len(present), desc="joining cells", unit="cell", disable=not show_progress) as bar:
        for c in range(len(present)):
            base_pos = d_pos[d_spans[c, 0] : d_spans[c, 1]]
            probing = q_pos[q_spans[c, 0] : q_spans[c, 1]]
            if len(probing):
                base = rows(base_pos)
                gbase = (base_pos if ids is None else ids[base_pos]).astype(np.int64)
                for s in range(0, len(probing), JOIN_BLOCK):
                    q = probing[s : s + JOIN_BLOCK]
                    sims = rows(q) @ base.T
                    # the live floor: once the band is dropped, its hits are not even listed; and a flat
                    # nonzero + divmod is ~4x faster than a 2-D nonzero (13 s of 60 at 1M, static)
                    hit = np.flatnonzero(sims.ravel() >= np.float32(pairs.floor))
                    r, k = np.divmod(hit, sims.shape[1])
                    a = (q if ids is None else ids[q])[r].astype(np.int64)
                    b = gbase[k]
                    other = a != b
                    key = np.minimum(a[other], b[other]) * n + np.maximum(a[other], b[other])
                    pairs.add(*best_per_key(key, sims[r[other], k[other]]))
            bar.update(1)
    del rows  # the float32 copy goes before the final merge
    return pairs.result()


class _Pairs:
    """Pair hits collected block by block and kept as a few sorted runs (each key once, best score):
    a pair is hit from both of its rows, and the floor band holds many more pairs than the threshold, so
    uncompacted hits would peak at twice the pairs and more.

    Whenever :data:`JOIN_COMPACT` hits are pending they become one run, and runs are merged size-tiered
    (the newest with the one before while it is at least half its size), so each pair is merged about
    log2(pairs / JOIN_COMPACT) times. Re-sorting every pair found so far at each compaction (the first
    version) took 113 of the join's 268 s at 123M pairs (the static student at 1M).

    The band below ``keep_above`` (the threshold; the floor is the search margin below it) is dropped
    once it passes ``band_limit`` hits (a pair held in two runs counts twice until they merge): then
    ``floor`` rises to ``keep_above`` and the caller records the pairs as complete only down to there.
    A dense embedding space (a static model at a low threshold) can have tens of pairs per row in the
    margin; the threshold's own pairs are always kept."""

    def __init__(self, floor: float, keep_above: float, band_limit: int) -> None:
        self.runs: list[tuple[np.ndarray, np.ndarray, int]] = []  # (key, score, pairs below keep_above)
        self.pending: list[tuple[np.ndarray, np.ndarray]] = []
        self.count = 0
        self.floor, self.keep_above, self.band_limit = floor, max(keep_above, floor), band_limit

    def add(self, key: np.ndarray, score: np.ndarray) -> None:
        if self.floor > score.min(initial=np.inf) and len(key):
            keep = score >= np.float32(self.floor)
            key, score = key[keep], score[keep]
        self.pending.append((key, score))
        self.count += len(key)
        if self.count >= JOIN_COMPACT:
            self._compact()

    def _run(self, key: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        below = int((score < np.float32(self.keep_above)).sum()) if self.floor < self.keep_above else 0
        return key, score, below

    def _merge(self, parts: list[tuple[Any, ...]]) -> tuple[np.ndarray, np.ndarray, int]:
        """One run of ``parts`` (each ``(key, score, ...)``); the list is emptied."""
        keys, scores = [p[0] for p in parts], [p[1] for p in parts]
        parts.clear()
        return self._run(*best_of_parts(keys, scores))

    def _compact(self) -> None:
        if self.pending:
            self.runs.append(self._merge(self.pending))
            self.count = 0
        while len(self.runs) > 1 and 2 * len(self.runs[-1][0]) >= len(self.runs[-2][0]):
            self.runs.append(self._merge([self.runs.pop(-2), self.runs.pop()]))
        if self.floor < self.keep_above and sum(r[2] for r in self.runs) > self.band_limit:
            limit = np.float32(self.keep_above)
            self.runs = [(k[s >= limit], s[s >= limit], 0) for k, s, _ in self.runs]
            self.floor = self.keep_above

    def result(self) -> tuple[np.ndarray, np.ndarray, float]:
        self._compact()
        if not self.runs:
            return np.zeros(0, np.int64), np.zeros(0, np.float32), self.floor
        key, score, _ = self.runs[0] if len(self.runs) == 1 else self._merge(self.runs)
        self.runs = []
        return key, score, self.floor


def _by_cell(
    cell: np.ndarray, pos: np.ndarray, cells: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(positions, spans, cells)``: positions sorted by cell (ascending within a cell), and for each
    of ``cells`` (default: the cells present) its span ``[start, stop)`` in them."""
    order = np.argsort(cell, kind="stable")  # positions come ascending: a stable sort keeps them so
    if len(pos) > 1 and np.any(pos[1:] < pos[:-1]):
        order = np.lexsort((pos, cell))
    sorted_cells = cell[order]
    positions = pos[order]
    del order
    if cells is None:
        cells = np.unique(sorted_cells)
    spans = np.stack(
        [np.searchsorted(sorted_cells, cells), np.searchsorted(sorted_cells, cells, side="right")], axis=1
    )
    return positions, spans, cells


def best_per_key(key: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique keys, ascending, each with its highest score (a pair found from both ends is listed once).

    ``key`` is often a few sorted runs (merged blocks): the stable sort (timsort) merges them in near
    linear time. A key is usually there at most twice (once from each row of the pair), which a shifted
    comparison settles; ``maximum.reduceat`` is only needed for keys seen three times or more."""
    return _best([key, scores])


def best_of_parts(keys: list[np.ndarray], scores: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """:func:`best_per_key` of the parts concatenated, **consuming them** (both lists are emptied).

    Why: memory. A caller that keeps its arrays while they are sorted holds the unsorted copy beside the
    sorted one; here only the sort's own arrays live at the peak (the Ray merge of 18.85M pairs found:
    45.6 bytes a pair at its peak, 56.6 when the caller kept its concatenated copy)."""
    box = [_joined(keys, np.int64), _joined(scores, np.float32)]
    keys.clear()
    scores.clear()
    return _best(box)


def _joined(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
    """The parts as one array (one part: itself, not a copy)."""
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts) if parts else np.zeros(0, dtype)


def _best(box: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The work of :func:`best_per_key` on ``box = [key, scores]``, which it empties: once rebound, an
    unsorted array is freed here unless the caller still holds it."""
    key, scores = box
    box.clear()
    scores = scores.astype(np.float32, copy=False)
    if len(key) == 0:
        return key.astype(np.int64), scores
    order = np.argsort(key, kind="stable")
    key = key[order]
    scores = scores[order]
    del order
    again = key[1:] == key[:-1]  # again[i]: key[i + 1] repeats key[i]
    if not again.any():
        return key, scores
    if np.any(again[1:] & again[:-1]):  # some key three times or more
        starts = np.flatnonzero(np.concatenate(([True], ~again)))
        return key[starts], np.maximum.reduceat(scores, starts)
    second = np.flatnonzero(again) + 1
    del again
    scores[second - 1] = np.maximum(scores[second - 1], scores[second])
    keep = np.ones(len(key), dtype=bool)
    keep[second] = False
    return key[keep], scores[keep]
