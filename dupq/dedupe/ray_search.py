"""The Ray engine's search stage: candidate pairs searched partition by partition, one Ray task each.

Why: the local engine builds one index over every unique text on one machine. At 100M texts that
index (HNSW over 100M × 384) no longer fits a machine, and one search uses one machine's cores. So
with ``--engine ray`` the stored vectors are split into partitions and each partition is searched by a
Ray task on its own.

Above the exact size (the local engine's cell join: ``index`` auto or ``join``) the partitions split
the join itself — groups of its cells — and the plan (cells, each row's probes bucketed by partition,
the probes chosen for the join's recall) is made by Ray tasks in :mod:`dupq.dedupe.ray_plan`; each
partition task reads its buckets and runs the join's per-cell products, so the pairs are the local
join's. With ``--index flat``/``hnsw`` the older scheme runs:

1. **plan** — centroids are trained (``faiss.Kmeans``, spherical) on a uniform sample of the stored
   vectors; the number of partitions comes from :func:`partition_count` (about
   :data:`~dupq.dedupe.config.RAY_PARTITION_TARGET` vectors per partition) unless given.
2. **assign** — each vector goes to its ``assignments`` nearest centroids (default 2): a duplicate
   pair whose texts fall on either side of a boundary still shares a partition, which one nearest
   centroid would lose (``tests/test_dedupe_ray.py``). The driver does this in chunks (one
   matrix product against the centroids) and writes each partition's member rows to the work dir.
3. **search** — one Ray task per partition reads its members' vectors from the memory-mapped store
   (on a cluster the work directory is on shared storage, as for the encoding stage) and runs the
   search the local engine runs (:func:`dupq.dedupe.search.candidate_pairs`); it writes its pairs
   ``(i, j, score)`` as Parquet. A partition whose Parquet exists is not searched again (resume
   after a kill).
4. **merge** — the driver reads the pair files and keeps each pair once (two texts that share two
   partitions are found by both); grouping then runs unchanged, so the output files are the local
   engine's formats.

The pairs equal an exact search's only as far as every duplicate pair shares a partition: pair
recall against exact search is measured by ``benchmarks/ray_search.py`` (README, "Scaling out").
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import resource
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dupq.dedupe.cache import CandidatePairs
from dupq.dedupe.config import RAY_ASSIGNMENTS, RAY_PARTITION_TARGET, RAY_SEARCH_MIN
from dupq.dedupe.join import nearest_cells
from dupq.dedupe.ray_plan import KMEANS_ITERATIONS, partition_probes, run_plan
from dupq.dedupe.search import build_index, candidate_pairs, index_kind
from dupq.dedupe.store import MappedRows
from dupq.io import atomic_path, atomic_write_json

if TYPE_CHECKING:
    from dupq.dedupe.config import DedupeConfig

logger = logging.getLogger(__name__)

#: Version of the files a search writes in its directory: 2 = the cell join's plan made by Ray tasks
#: (probe buckets per task, members written by the partition tasks; 1 had ``cells-P.npz``).
LAYOUT = 2
#: Rows read at a time by the driver (k-means sample, assignment).
ASSIGN_CHUNK = 65_536
#: Training points per centroid for k-means (faiss's own default cap): more adds time, not balance.
KMEANS_POINTS_PER_CENTROID = 256


def partition_count(n: int, assignments: int = RAY_ASSIGNMENTS, target: int = RAY_PARTITION_TARGET) -> int:
    """Partitions for ``n`` vectors: about ``target`` vectors each once every vector is copied into
    ``assignments`` of them; at least ``assignments + 1`` when there is more than one (with as many
    partitions as assignments every vector would be in every partition)."""
    p = max(1, -(-n * assignments // target))
    return min(max(p, assignments + 1), max(n, 1)) if p > 1 else 1


@dataclass(frozen=True)
class SearchPlan:
    """How a partitioned search splits the vectors; part of the key of its files and saved pairs."""

    partitions: int
    assignments: int
    seed: int = 1234

    def cache_key(self) -> dict[str, Any]:
        return {"search": "ray-partitioned", **asdict(self)}


def search_plan(n: int, mode: str, partitions: int | None, assignments: int) -> SearchPlan | None:
    """The partitioned search's plan for ``n`` unique texts, or ``None`` to search on the driver.

    ``mode``: ``"partitioned"`` always; ``"driver"`` never; ``"auto"`` from
    :data:`~dupq.dedupe.config.RAY_SEARCH_MIN` texts or when ``partitions`` is given.
    """
    if mode == "driver" or n < 2 or (mode == "auto" and partitions is None and n < RAY_SEARCH_MIN):
        return None
    p = min(partitions, n) if partitions is not None else partition_count(n, assignments)
    return SearchPlan(partitions=p, assignments=min(assignments, p))


@dataclass(frozen=True)
class SearchParams:
    """What each partition's search is told (the local engine's search settings)."""

    floor: float
    range_at: float
    k: int
    index: str
    ef_search: int | None
    chunk_size: int
    threads: int = 1
    join_recall: float | None = None


def train_centroids(vectors: Any, partitions: int, seed: int) -> np.ndarray:
    """Spherical k-means partition centroids (unit rows) trained on a uniform sample of ``vectors``."""
    from dupq.dedupe.join import train_cells

    return train_cells(
        vectors, partitions, seed, per_cell=KMEANS_POINTS_PER_CENTROID, niter=KMEANS_ITERATIONS
    )


def members(labels: np.ndarray, partitions: int) -> list[np.ndarray]:
    """Per partition, its member rows in ascending order (a row at most once per partition)."""
    flat = labels.ravel()
    order = np.argsort(flat, kind="stable")  # row-major: rows ascend within each partition
    rows = (order // labels.shape[1]).astype(np.int64)
    bounds = np.concatenate([[0], np.cumsum(np.bincount(flat, minlength=partitions))])
    return [rows[bounds[p] : bounds[p + 1]] for p in range(partitions)]


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def read_partition(path: Path, rows: np.ndarray, chunk: int = ASSIGN_CHUNK // 4) -> np.ndarray:
    """The vectors of (sorted) ``rows`` of the ``.npy`` at ``path``, read ``chunk`` rows per mapping
    into one preallocated array. A partition's rows are scattered over the whole file: read through
    one mapping, every page they touch stayed resident until the end (+1.1 GB peak for 254k rows of a
    768 MB file, ``benchmarks/results/ray-search-read-chunks.json``); per chunk, only a chunk's pages are."""
    mapped = MappedRows(path)
    out = np.empty((len(rows), mapped.shape[1]), dtype=mapped.dtype)
    for start in range(0, len(rows), chunk):
        out[start : start + chunk] = mapped[rows[start : start + chunk]]
    return out


def search_partition(vectors_path: str, root: str, part: int, params: SearchParams) -> dict[str, Any]:
    """Search one partition (a Ray task, in a fresh worker process: its peak RSS is this task's).

    Reads the partition's members and their vectors, builds the index the local engine would build
    for that many vectors, searches, and writes ``complete-P.npy``, ``stats-P.json`` and, last,
    ``pairs-P.parquet`` (whose existence marks the partition done); returns the stats.
    """
    import faiss

    t0 = time.perf_counter()
    rss_start = _rss_mb()
    faiss.omp_set_num_threads(params.threads)
    base = Path(root)
    plan = json.loads((base / "plan.json").read_text(encoding="utf-8"))
    if plan.get("mode") == "cells":
        return _join_partition(vectors_path, base, part, plan, params, t0, rss_start)
    rows = np.load(base / f"members-{part:05d}.npy")
    vecs = read_partition(Path(vectors_path), rows)
    t_read = time.perf_counter()
    kind = index_kind(len(rows), params.index)
    built = []  # the index is handed over, not kept here: candidate_pairs may release it before its merge
    if len(rows) >= 2 and kind != "join":  # the join builds nothing ahead: it is all search
        built.append(
            build_index(
                vecs,
                index=kind,
                chunk_size=params.chunk_size,
                show_progress=False,
                ef_search=params.ef_search,
            )
        )
    index_mb = round(built[0].memory_bytes() / 2**20, 2) if built else 0.0
    t_build = time.perf_counter()
    a, b, s, complete = candidate_pairs(
        vecs,
        params.floor,
        range_at=params.range_at,
        k=params.k,
        index=kind,
        chunk_size=params.chunk_size,
        ef_search=params.ef_search,
        vindex=built.pop() if built else None,
        join_recall=params.join_recall,
    )
    t_search = time.perf_counter()
    with atomic_path(base / f"complete-{part:05d}.npy") as tmp, open(tmp, "wb") as fh:
        np.save(fh, complete.astype(np.float32))
    stats = {
        "partition": part,
        "vectors": int(len(rows)),
        "index": kind,
        "index_mb": index_mb,
        "read_s": round(t_read - t0, 3),
        "build_s": round(t_build - t_read, 3),
        "search_s": round(t_search - t_build, 3),
        "pairs": int(len(a)),
        "rss_start_mb": round(rss_start, 1),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
    }
    _write_partition(base, part, stats, rows[a], rows[b], s)
    return stats


def _write_partition(
    base: Path, part: int, stats: dict[str, Any], i: np.ndarray, j: np.ndarray, s: np.ndarray
) -> None:
    """``stats-P.json``, then ``pairs-P.parquet`` (global row ids ``i < j``): its existence marks P done."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    atomic_write_json(base / f"stats-{part:05d}.json", stats)
    table = pa.table(
        {
            "i": pa.array(i, type=pa.int64()),
            "j": pa.array(j, type=pa.int64()),
            "score": pa.array(s.astype(np.float32), type=pa.float32()),
        }
    )
    with atomic_path(base / f"pairs-{part:05d}.parquet") as tmp:
        pq.write_table(table, tmp)


def _join_partition(
    vectors_path: str,
    base: Path,
    part: int,
    plan: dict[str, Any],
    params: SearchParams,
    t0: float,
    rss_start: float,
) -> dict[str, Any]:
    """A cell-mode partition: read the rows its cells store and the rows probing them, then run the
    join's per-cell matrix products over them (:func:`dupq.dedupe.join.join_cells`)."""
    from dupq.dedupe.join import JOIN_BAND_PER_ROW, join_cells
    from dupq.vectors import l2_normalize

    z = partition_probes(base, part, plan["probe_tasks"], plan["probes"])
    rows = np.union1d(z["d_rows"], z["q_rows"]).astype(np.int64)
    with atomic_path(base / f"members-{part:05d}.npy") as tmp, open(tmp, "wb") as fh:
        np.save(fh, rows)
    n = int(plan["n"])
    vecs = l2_normalize(read_partition(Path(vectors_path), rows))
    t_read = time.perf_counter()
    key, s, reached = join_cells(
        lambda: vecs.__getitem__,
        (z["d_cells"], np.searchsorted(rows, z["d_rows"])),
        (z["q_cells"], np.searchsorted(rows, z["q_rows"])),
        params.floor,
        ids=rows,
        n_keys=n,
        keep_above=params.range_at,
        band_limit=JOIN_BAND_PER_ROW * len(z["d_rows"]),
    )
    t_search = time.perf_counter()
    with atomic_path(base / f"complete-{part:05d}.npy") as tmp, open(tmp, "wb") as fh:
        # the join lists every pair down to `reached`; a vector also probed here is only as complete as
        # the least complete partition it is in (merge takes the maximum)
        np.save(fh, np.full(len(rows), reached, dtype=np.float32))
    stats = {
        "partition": part,
        "vectors": int(len(rows)),
        "index": "join",
        "index_mb": 0.0,
        "data_rows": int(len(z["d_rows"])),
        "query_probes": int(len(z["q_rows"])),
        "cells": int(len(np.unique(z["d_cells"]))),
        "read_s": round(t_read - t0, 3),
        "build_s": 0.0,
        "search_s": round(t_search - t_read, 3),
        "pairs": int(len(key)),
        "rss_start_mb": round(rss_start, 1),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
    }
    _write_partition(base, part, stats, key // n, key % n, s)
    return stats


def search_root(workdir: Path, n: int, dim: int, plan: SearchPlan, params: SearchParams) -> Path:
    """This search's directory under ``workdir``: keyed by everything that decides its files, and by
    :data:`LAYOUT` (a work directory an older dupq wrote is not resumed with files it lacks)."""
    spec = {"n": n, "dim": dim, **asdict(plan), **asdict(params), "layout": LAYOUT}
    spec.pop("threads")
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
    return workdir / f"ray-search-{key}"


def cell_mode(n: int, params: SearchParams) -> bool:
    """Whether the search is the cell join (``index`` auto above the exact size, or ``join``): then
    partitions are groups of the join's cells and give exactly the local join's pairs."""
    return index_kind(n, params.index) == "join"


def prepare(
    vectors_path: Path,
    root: Path,
    plan: SearchPlan,
    params: SearchParams,
    cells: bool = False,
    ray: Any = None,
    show_progress: bool = False,
) -> dict[str, Any]:
    """Centroids and member files, or in cell mode the Ray plan pass (:mod:`dupq.dedupe.ray_plan`) —
    skipped when ``plan.json`` says a previous run made them; returns the seconds taken and the
    ``floor`` the partitions search down to (the cell join's may be raised: its band too dense)."""
    if (root / "plan.json").exists():
        saved = json.loads((root / "plan.json").read_text(encoding="utf-8"))
        return {"kmeans_s": 0.0, "assign_s": 0.0, "floor": saved.get("floor", params.floor)}
    root.mkdir(parents=True, exist_ok=True)
    vectors = MappedRows(vectors_path)
    if cells:
        made = run_plan(
            ray,
            vectors_path,
            root,
            plan.partitions,
            plan.seed,
            recall_at=max(params.floor, params.range_at),
            recall=params.join_recall,
            floor=params.floor,
            threads=params.threads,
            show_progress=show_progress,
        )
        seconds = made.pop("seconds")
        atomic_write_json(root / "plan.json", {**asdict(plan), "n": len(vectors), **made})  # last
        return {**seconds, "floor": made["floor"]}
    t0 = time.perf_counter()
    centroids = train_centroids(vectors, plan.partitions, plan.seed)
    t1 = time.perf_counter()
    labels = nearest_cells(vectors, centroids, plan.assignments, ASSIGN_CHUNK)
    for p, rows in enumerate(members(labels, plan.partitions)):
        with atomic_path(root / f"members-{p:05d}.npy") as tmp, open(tmp, "wb") as fh:
            np.save(fh, rows)
    np.save(root / "centroids.npy", centroids)
    t2 = time.perf_counter()
    atomic_write_json(root / "plan.json", {**asdict(plan), "n": len(vectors)})  # last: marks it complete
    return {"kmeans_s": round(t1 - t0, 3), "assign_s": round(t2 - t1, 3), "floor": params.floor}


def run_tasks(
    ray: Any, vectors_path: Path, root: Path, todo: list[int], params: SearchParams, show_progress: bool
) -> None:
    """One Ray task per partition in ``todo``; each in a fresh worker (``max_calls=1``), so a
    worker's peak RSS is its partition's and its memory goes back to the node afterwards."""
    from tqdm.auto import tqdm

    task = ray.remote(num_cpus=params.threads, max_calls=1)(search_partition)
    refs = [task.remote(str(vectors_path), str(root), p, params) for p in todo]
    with tqdm(total=len(refs), desc="searching partitions", unit="part", disable=not show_progress) as bar:
        while refs:
            done, refs = ray.wait(refs, num_returns=1)
            ray.get(done)  # raises the task's error here
            bar.update(len(done))


def merge(root: Path, partitions: int, n: int, floor: float) -> tuple[CandidatePairs, dict[str, Any]]:
    """All partitions' pairs, each pair once (best score), and per row the lowest threshold down to
    which every partition it is in lists its neighbours (the most conservative: the maximum).

    Memory is what bounds the driver at scale, so the partitions' pairs are read into one int64 key
    and one float32 score array (12 bytes a pair found; the ``i``/``j`` columns dropped as each file is
    read) and settled by :func:`dupq.dedupe.join.best_of_parts`, whose stable sort merges the
    partitions' sorted runs. On the 1M real vectors' 18.85M pairs found: +596 MB at the peak (33 bytes a
    pair found) and 1.3 s, where a lexsort over ``i``, ``j``, ``score`` and their copies took +1,735 MB
    (96.5 bytes) and 11.2 s — the same pairs, scores and completeness.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from dupq.dedupe.join import best_of_parts

    complete = np.full(n, -2.0, dtype=np.float32)
    paths = [root / f"pairs-{p:05d}.parquet" for p in range(partitions)]
    found = sum(pq.ParquetFile(path).metadata.num_rows for path in paths)
    keys, scores = [np.empty(found, np.int64)], [np.empty(found, np.float32)]  # filled in place: no copies
    stats, at = [], 0
    for p, path in enumerate(paths):
        table = pq.read_table(path)
        got = table.num_rows
        keys[0][at : at + got] = table.column("i").to_numpy() * n + table.column("j").to_numpy()  # i < j
        scores[0][at : at + got] = table.column("score").to_numpy()
        at += got
        del table
        pa.default_memory_pool().release_unused()  # else the decoded columns' pages stay resident
        rows = np.load(root / f"members-{p:05d}.npy")
        complete[rows] = np.maximum(complete[rows], np.load(root / f"complete-{p:05d}.npy"))
        stats.append(json.loads((root / f"stats-{p:05d}.json").read_text(encoding="utf-8")))
    key, score = best_of_parts(keys, scores)
    info = {"pairs_found": int(found), "pairs_unique": int(len(key)), "per_partition": stats}
    a, b = np.divmod(key, n)
    del key
    return CandidatePairs(a, b, score, floor, complete), info


@contextlib.contextmanager
def _ray(address: str | None, *, needed: bool) -> Iterator[Any]:
    """Ray, connected (or started, and then stopped afterwards) only when there is work for it."""
    if not needed:
        yield None
        return
    from dupq.dedupe.ray import _init_ray, require_ray

    ray = require_ray()
    started = _init_ray(ray, address)
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def partitioned_search(
    vectors_path: Path,
    workdir: Path,
    plan: SearchPlan,
    params: SearchParams,
    *,
    address: str | None = None,
    show_progress: bool = True,
) -> tuple[CandidatePairs, dict[str, Any]]:
    """Candidate pairs of the ``.npy`` at ``vectors_path`` by the partitioned Ray search (module
    docstring); returns them and what the summary and the benchmark report (sizes, times, RSS)."""
    mapped = MappedRows(vectors_path)
    n, dim = mapped.shape
    root = search_root(workdir, n, dim, plan, params)
    t0 = time.perf_counter()
    cells = cell_mode(n, params)
    todo = [p for p in range(plan.partitions) if not (root / f"pairs-{p:05d}.parquet").exists()]
    with _ray(address, needed=bool(todo) or (cells and not (root / "plan.json").exists())) as ray:
        seconds = prepare(vectors_path, root, plan, params, cells, ray, show_progress)
        raised = seconds.pop("floor", None)
        if raised is not None and raised > params.floor:  # the band was too dense to keep (the sample said)
            params = replace(params, floor=float(raised))
        logger.info(
            "search: partitioned on Ray, %d partitions (%d to search, %d reused), %s",
            plan.partitions,
            len(todo),
            plan.partitions - len(todo),
            "groups of the join's cells" if cells else f"{plan.assignments} assignments per vector",
        )
        t1 = time.perf_counter()
        if todo:
            run_tasks(ray, vectors_path, root, todo, params, show_progress)
    t2 = time.perf_counter()
    pairs, info = merge(root, plan.partitions, n, params.floor)
    sizes = np.asarray([st["vectors"] for st in info["per_partition"]])
    seconds.update(search_s=round(t2 - t1, 3), merge_s=round(time.perf_counter() - t2, 3))
    seconds["total_s"] = round(time.perf_counter() - t0, 3)
    info.update(
        mode="partitioned cells" if cells else "partitioned",
        plan=json.loads((root / "plan.json").read_text(encoding="utf-8")),
        partitions=plan.partitions,
        assignments=None if cells else plan.assignments,
        partitions_searched=len(todo),
        partitions_reused=plan.partitions - len(todo),
        vectors_per_partition={
            "min": int(sizes.min()),
            "median": float(np.median(sizes)),
            "max": int(sizes.max()),
        },
        pairs_found_more_than_once=info["pairs_found"] - info["pairs_unique"],
        seconds=seconds,
        dir=str(root),
    )
    return pairs, info


def search_store(
    store_dir: Path, plan: SearchPlan, floor: float, search_at: float, cfg: DedupeConfig
) -> tuple[CandidatePairs, dict[str, Any]]:
    """The partitioned search of a dedupe store's ``vectors.npy`` with the local search's settings
    (floor, range search at ``search_at``, ``k``, index, ``ef_search``); its files go in the store."""
    params = SearchParams(
        floor, search_at, cfg.k, cfg.index, cfg.ef_search, cfg.chunk_size, join_recall=cfg.join_recall
    )
    return partitioned_search(
        store_dir / "vectors.npy",
        store_dir,
        plan,
        params,
        address=cfg.ray_address,
        show_progress=cfg.show_progress,
    )
