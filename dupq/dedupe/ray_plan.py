"""The plan of the Ray engine's partitioned cell join, made by Ray tasks rather than on the driver.

Why: the partitioned join needs every row's nearest cells (its probes). Computed on the driver that
was one pass over every vector on one machine and ``rows × 32`` int32 held in its memory (12.8 GB and
~45 min of a 32-core driver at 100M rows: the README's scale model named it the first thing to
rebuild). Here the driver only does what is small, and the probing is a Ray pass:

1. **driver** — the join's cell centroids (spherical k-means on a sample,
   :func:`dupq.dedupe.join.train_cells`), the cells grouped into partitions of neighbouring cells
   (k-means over the centroids), and the recall sample (:data:`~dupq.dedupe.join.JOIN_RECALL_SAMPLE`
   rows: their vectors and nearest-cell lists);
2. **probe tasks** — one Ray task per :data:`PROBE_TASK_ROWS` rows finds its rows' nearest cells (the
   local join's own chunked pass, so the same lists), writes them **bucketed by partition** under
   ``probes-T/`` (each array sorted by partition, with offsets, so a partition reads only its slice
   through a memory map), and searches the sample against its rows exactly — returning not the pairs
   but their histograms of probes needed (:func:`dupq.dedupe.join.need_histogram`);
3. **driver** — the summed histograms choose the probes and the floor by the local join's own rule
   (:func:`dupq.dedupe.join.choose_probes`); ``plan.json`` records them (last: it marks the plan done).

A partition task then reads its slice of every bucket (:func:`partition_probes`), keeps the probes
the plan chose, and runs the join's per-cell products. Every probe lands in exactly one partition, so
the partitions together do exactly the local join's work: the same pairs (``tests/test_dedupe_ray.py``).
A probe task whose ``done.json`` exists is not run again (resume after a kill).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from dupq.dedupe.store import MappedRows
from dupq.io import atomic_path, atomic_write_json
from dupq.vectors import l2_normalize, unit_rows

#: Rows per probe task: 4 of the join's reads (100 MB of float32 each at 384-d), ~75 MB of bucketed
#: probes written at 32 probes a row; 1M rows make 4 tasks, 100M make 382.
PROBE_TASK_ROWS = 4 * 65_536
#: Rows read at a time inside a probe task: the local join's chunk, so the same nearest-cell lists.
PROBE_CHUNK = 65_536
#: k-means iterations for the partitions (over the cell centroids here; over a sample of the vectors in
#: :mod:`dupq.dedupe.ray_search`'s older scheme).
KMEANS_ITERATIONS = 20
#: The bucket arrays of a probe task, each sorted by partition (``*_off``: the partitions' offsets).
_BUCKET = ("d_rows", "d_cells", "d_off", "q_rows", "q_cells", "q_col", "q_off")


def probe_tasks(n: int) -> list[tuple[int, int]]:
    """``[start, stop)`` row ranges, one per probe task: :data:`PROBE_TASK_ROWS` rounded to whole
    :data:`PROBE_CHUNK` reads (each read is then the local join's, so are the cell lists)."""
    step = max(PROBE_CHUNK, PROBE_TASK_ROWS - PROBE_TASK_ROWS % PROBE_CHUNK)
    return [(start, min(start + step, n)) for start in range(0, n, step)]


def plan_driver(vectors: Any, root: Path, partitions: int, seed: int) -> dict[str, int]:
    """Step 1: ``centroids.npy`` (the local join's cells, trained as it trains them) and ``groups.npy``
    (per cell its partition); returns ``n``, ``cells`` and ``width`` (the most probes a row gets).

    Made once per work directory: a plan resumed after a kill reuses them, since its finished probe
    tasks bucketed their rows by these cells (k-means run again need not give the same ones)."""
    from dupq.dedupe.join import join_plan, train_cells

    n = len(vectors)
    cells, probes = join_plan(n)
    if not (root / "groups.npy").exists():
        centroids = train_cells(vectors, cells)
        _save(root / "centroids.npy", centroids)
        _save(root / "groups.npy", cell_groups(centroids, partitions, seed).astype(np.int32))  # last
    return {"n": n, "cells": cells, "width": min(probes, cells)}


def plan_sample(vectors: Any, root: Path, width: int) -> None:
    """Step 1's recall sample (once per work directory, as :func:`plan_driver`'s files): rows drawn as
    the local join draws them, their vectors and cell lists."""
    from dupq.dedupe.join import JOIN_RECALL_SAMPLE, nearest_cells

    if (root / "sample_probe.npy").exists():
        return
    n = len(vectors)
    rng = np.random.default_rng(1)  # as the local join's assign_cells (seed 0, + 1)
    rows = np.sort(rng.choice(n, min(n, JOIN_RECALL_SAMPLE), replace=False))
    vecs = np.ascontiguousarray(l2_normalize(np.asarray(vectors[rows], dtype=np.float32)))
    _save(root / "sample_rows.npy", rows)
    _save(root / "sample_vecs.npy", vecs)
    _save(root / "sample_probe.npy", nearest_cells(vecs, np.load(root / "centroids.npy"), width))  # last


def _save(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array)


def cell_groups(centroids: np.ndarray, partitions: int, seed: int) -> np.ndarray:
    """Per cell, its partition: spherical k-means over the cell centroids (neighbouring cells together)."""
    cells = len(centroids)
    if partitions <= 1 or cells <= partitions:
        return np.arange(cells) % max(partitions, 1)
    import faiss

    km = faiss.Kmeans(centroids.shape[1], partitions, niter=KMEANS_ITERATIONS, seed=seed, spherical=True)
    km.cp.min_points_per_centroid = 1
    km.train(centroids)  # all the centroids (faiss samples 256 a partition): what the 1M run measured
    return km.index.search(centroids, 1)[1][:, 0]


def probe_task(
    vectors_path: str,
    root: str,
    task: int,
    rows: tuple[int, int],
    shape: tuple[int, int],
    sample_at: tuple[float, float] | None,
    threads: int,
) -> dict[str, Any]:
    """Step 2 for ``rows = (start, stop)`` (a Ray task): the nearest ``width`` cells of each row,
    bucketed into ``probes-T/`` by partition (``shape = (width, partitions)``). With ``sample_at =
    (low, recall_at)``: the :func:`~dupq.dedupe.join.need_histogram` of the sample's pairs with these
    rows at or above ``recall_at`` and in ``[low, recall_at)``, and that band's pair count — a few
    hundred numbers however dense the sample. Writes ``done.json`` (what it returns) last."""
    import faiss

    from dupq.dedupe.join import need_histogram

    t0 = time.perf_counter()
    faiss.omp_set_num_threads(threads)
    base = Path(root)
    start, stop = rows
    width, partitions = shape
    out = base / f"probes-{task:05d}"
    out.mkdir(exist_ok=True)
    centroids = np.load(base / "centroids.npy")
    index = faiss.IndexFlatIP(centroids.shape[1])
    index.add(centroids)
    vectors = MappedRows(Path(vectors_path))
    probe = np.empty((stop - start, width), dtype=np.int32)
    sample = _sample(base) if sample_at is not None else None
    needs: list[np.ndarray] = []
    scores: list[np.ndarray] = []
    for at in range(start, stop, PROBE_CHUNK):
        chunk = unit_rows(vectors, at, min(at + PROBE_CHUNK, stop))
        lists = index.search(chunk, width)[1]
        probe[at - start : at - start + len(chunk)] = lists
        if sample is not None and sample_at is not None:
            need, score = _sample_needs(sample, chunk, lists, at, sample_at[0])
            needs.append(need)
            scores.append(score)
    _write_buckets(out, probe, np.load(base / "groups.npy"), start, partitions)
    info: dict[str, Any] = {"task": task, "rows": stop - start, "seconds": round(time.perf_counter() - t0, 3)}
    if sample_at is not None:
        need = np.concatenate(needs) if needs else np.zeros(0, np.int64)
        band = np.concatenate(scores) < np.float32(sample_at[1]) if scores else np.zeros(0, bool)
        info.update(
            need_above=need_histogram(need[~band], width).tolist(),
            need_band=need_histogram(need[band], width).tolist(),
            band_pairs=int(band.sum()),
        )
    atomic_write_json(out / "done.json", info)
    return info


def _sample(base: Path) -> dict[str, np.ndarray]:
    return {k: np.load(base / f"sample_{k}.npy") for k in ("rows", "vecs", "probe")}


def _sample_needs(
    sample: dict[str, np.ndarray], chunk: np.ndarray, probe: np.ndarray, start: int, low: float
) -> tuple[np.ndarray, np.ndarray]:
    """Probes needed (:func:`dupq.dedupe.join.probes_needed`) and scores of the sample's pairs
    ``>= low`` with the ``chunk``'s rows (rows from ``start``; ``probe``: their cell lists)."""
    from dupq.dedupe.join import probes_needed

    sims = sample["vecs"] @ chunk.T
    r, c = np.nonzero(sims >= np.float32(low))
    other = sample["rows"][r] != c + start
    r, c = r[other], c[other]
    lists = np.concatenate([sample["probe"], probe])  # the sample's lists, then the chunk's
    return probes_needed(lists, r, len(sample["probe"]) + c), sims[r, c]


def _write_buckets(out: Path, probe: np.ndarray, groups: np.ndarray, start: int, partitions: int) -> None:
    """The task's rows (stored in their home cell) and probes, sorted by partition, with offsets (every
    partition has its offsets, an empty one too: fewer cells than partitions leaves some empty)."""
    width = probe.shape[1]
    # row ids as int32 while they fit (100M rows: 9 bytes a probe on disk, not 13)
    ids = np.int32 if start + len(probe) <= np.iinfo(np.int32).max else np.int64
    home_part = groups[probe[:, 0]]
    order = np.argsort(home_part, kind="stable")  # rows ascend within a partition
    arrays = {
        "d_rows": (order + start).astype(ids),
        "d_cells": probe[order, 0],
        "d_off": _offsets(home_part, partitions),
    }
    probe_part = groups[probe].ravel()
    order = np.argsort(probe_part, kind="stable")  # (row, rank) ascend within a partition
    rows, col = np.divmod(order, width)
    arrays.update(
        q_rows=(rows + start).astype(ids),
        q_cells=probe.ravel()[order],
        q_col=col.astype(np.uint8),
        q_off=_offsets(probe_part, partitions),
    )
    for name in _BUCKET:
        _save(out / f"{name}.npy", arrays[name])


def _offsets(part: np.ndarray, partitions: int) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(np.bincount(part, minlength=partitions))]).astype(np.int64)


def partition_probes(root: Path, part: int, tasks: int, probes: int) -> dict[str, np.ndarray]:
    """Partition ``part``'s slice of every probe task's buckets: the rows stored in its cells
    (``d_rows``, ``d_cells``) and every probe of rank ``< probes`` into them (``q_rows``, ``q_cells``),
    in row order — read through memory maps, so a partition reads its own share only."""
    got: dict[str, list[np.ndarray]] = {k: [] for k in ("d_rows", "d_cells", "q_rows", "q_cells")}
    for task in range(tasks):
        base = root / f"probes-{task:05d}"
        maps = {k: np.load(base / f"{k}.npy", mmap_mode="r") for k in _BUCKET}
        d0, d1 = maps["d_off"][part], maps["d_off"][part + 1]
        q0, q1 = maps["q_off"][part], maps["q_off"][part + 1]
        keep = np.asarray(maps["q_col"][q0:q1]) < probes
        got["d_rows"].append(np.asarray(maps["d_rows"][d0:d1], dtype=np.int64))
        got["d_cells"].append(np.asarray(maps["d_cells"][d0:d1]))
        got["q_rows"].append(np.asarray(maps["q_rows"][q0:q1], dtype=np.int64)[keep])
        got["q_cells"].append(np.asarray(maps["q_cells"][q0:q1])[keep])
    empty = {"d_rows": np.int64, "d_cells": np.int32, "q_rows": np.int64, "q_cells": np.int32}
    return {k: np.concatenate(v) if v else np.zeros(0, empty[k]) for k, v in got.items()}


def run_plan(
    ray: Any,
    vectors_path: Path,
    root: Path,
    partitions: int,
    seed: int,
    *,
    recall_at: float | None,
    recall: float | None,
    floor: float | None,
    threads: int = 1,
    show_progress: bool = False,
) -> dict[str, Any]:
    """Steps 1–3 (module docstring): returns the plan (``probes``, ``floor``, ``probe_tasks`` …) with
    the seconds taken; the caller writes it as ``plan.json``."""
    from dupq.dedupe.join import JOIN_MIN_PROBES, JOIN_RECALL, choose_probes

    vectors = MappedRows(vectors_path)
    t0 = time.perf_counter()
    recall = JOIN_RECALL if recall is None else recall
    sizes = plan_driver(vectors, root, partitions, seed)
    width = sizes["width"]
    sample_at = None
    if recall_at is not None and recall < 1.0 and width > JOIN_MIN_PROBES and sizes["cells"] > 1:
        plan_sample(vectors, root, width)
        sample_at = (recall_at if floor is None else min(floor, recall_at), recall_at)
    t1 = time.perf_counter()
    ranges = probe_tasks(sizes["n"])
    infos = _run_probe_tasks(
        ray, vectors_path, root, ranges, (width, partitions), sample_at, threads, show_progress
    )
    probes, chosen_floor = width, floor
    if sample_at is not None:
        assert recall_at is not None
        probes, chosen_floor = choose_probes(
            np.sum([i["need_above"] for i in infos], axis=0),
            np.sum([i["need_band"] for i in infos], axis=0),
            float(sum(i["band_pairs"] for i in infos)),
            len(np.load(root / "sample_rows.npy")),
            recall_at=recall_at,
            recall=recall,
            floor=floor,
        )
    return {
        "mode": "cells",
        "cells": sizes["cells"],
        "probes": int(probes),
        "probe_width": width,
        "probe_tasks": len(ranges),
        "floor": chosen_floor,
        "seconds": {"kmeans_s": round(t1 - t0, 3), "assign_s": round(time.perf_counter() - t1, 3)},
    }


def _run_probe_tasks(
    ray: Any,
    vectors_path: Path,
    root: Path,
    ranges: list[tuple[int, int]],
    shape: tuple[int, int],
    sample_at: tuple[float, float] | None,
    threads: int,
    show_progress: bool,
) -> list[dict[str, Any]]:
    """Step 2: one Ray task per range not yet done (a finished task's ``done.json`` is reused)."""
    from tqdm.auto import tqdm

    task = ray.remote(num_cpus=threads, max_calls=1)(probe_task)
    infos: list[dict[str, Any]] = []
    refs = []
    for t, rows in enumerate(ranges):
        done = root / f"probes-{t:05d}" / "done.json"
        if done.exists():
            infos.append(json.loads(done.read_text(encoding="utf-8")))
        else:
            refs.append(task.remote(str(vectors_path), str(root), t, rows, shape, sample_at, threads))
    with tqdm(
        total=len(ranges), initial=len(infos), desc="probing cells", unit="task", disable=not show_progress
    ) as bar:
        while refs:
            ready, refs = ray.wait(refs, num_returns=1)
            infos.extend(ray.get(ready))  # raises the task's error here
            bar.update(len(ready))
    return infos
