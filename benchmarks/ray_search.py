"""The Ray engine's partitioned search (``dupq.dedupe.ray_search``) on stored vectors: pair recall
against exact search on the same vectors, and per-partition size, time and memory.

Input: a ``.npy`` of unit rows (float32 or float16), e.g. the 100k real all-MiniLM-L6-v2 embeddings
``benchmarks/.cache/dedupe/emb-100000.npy`` that ``benchmarks/dedupe.py`` leaves. They are stored as
the dedupe store keeps them (``--dtype float16`` by default) in ``--workdir`` and searched exactly as
``dupq dedupe --engine ray --ray-search partitioned`` searches them: candidate pairs down to the
threshold minus the search margin by k-NN (k=32) and a range search at the threshold, one Ray task
per k-means partition (local Ray, ``--cpus`` CPUs).

**Recall** (pairs at or above the threshold): ``--queries`` rows sampled uniformly are range-searched
exactly (``faiss.IndexFlatIP``, base in blocks) against every stored vector (the same float16 values,
in float32); recall = the fraction of their pairs the partitioned search found, with a 95 % interval
from a bootstrap over the sampled rows (a row's pairs are not independent of each other).
``--compare-driver`` also runs the local engine's one search on the driver and scores it the same way;
``--driver-index join hnsw`` runs it once per index kind (``--no-partitioned``: only those).

**Per partition** (measured inside each Ray task, which runs in a fresh worker process): vectors,
index kind and size, read / build / search seconds, peak RSS of the worker and its RSS before the
work (the Ray worker and imports), pairs. **Driver**: wall time of each step and the benchmark
process's peak RSS after the search (before the exact check, which holds every vector as float32).

``--tile N`` (SYNTHETIC STRESS, labelled so in the JSON): N copies of the vectors, each copy turned by
its own random rotation (cosine ``--tile-cos`` between a vector and its copy on average) plus a little
noise, then re-normalised — a larger set with the real set's local structure. Recall against exact
search on it is as meaningful as on real vectors; its duplicate structure is not real data's.

    python benchmarks/ray_search.py --vectors benchmarks/.cache/dedupe/emb-100000.npy \\
        --partitions 4 8 16 --assignments 1 2
    python benchmarks/ray_search.py --vectors emb-1000000.npy               # partitions: the size rule
    python benchmarks/ray_search.py --vectors emb-100000.npy --tile 10      # 1M synthetic stress

Writes ``benchmarks/results/ray-search-<n>k[-tile<N>].json`` (``--out``) and prints a table.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._record import load_average, write_result  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
CACHE = REPO / "benchmarks" / ".cache" / "ray_search"


def _rotation(dim: int, scale: float, rng: np.random.Generator) -> np.ndarray:
    """An orthogonal matrix near the identity: Q of QR(I + scale·G/√dim) (signs fixed: det-free)."""
    q, r = np.linalg.qr(np.eye(dim) + scale * rng.standard_normal((dim, dim)) / np.sqrt(dim))
    return (q * np.sign(np.diag(r))).astype(np.float32)


def _rotation_for_cos(dim: int, target: float, sample: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random rotation turning ``sample`` rows by a mean cosine of about ``target`` (bisection)."""
    lo, hi = 0.0, 8.0
    for _ in range(25):
        mid = (lo + hi) / 2
        cos = float(np.mean(np.sum(sample * (sample @ _rotation(dim, mid, np.random.default_rng(7))), 1)))
        lo, hi = (mid, hi) if cos > target else (lo, mid)
    return _rotation(dim, (lo + hi) / 2, rng)


def prepare(src: Path, dst: Path, dtype: str, tile: int, tile_cos: float, noise: float) -> None:
    """``dst``: ``src`` as unit rows in ``dtype`` (tiled ``tile`` times when asked; see the docstring).

    Runs in a child process so that the driver's peak RSS is the search's, not this copy's."""
    base = np.load(src, mmap_mode="r")
    n, dim = base.shape
    out = np.lib.format.open_memmap(
        dst.with_suffix(".tmp.npy"), mode="w+", dtype=dtype, shape=(n * tile, dim)
    )
    rng = np.random.default_rng(0)
    sample = np.asarray(base[: min(n, 2000)], dtype=np.float32)
    for t in range(tile):
        rot = None if t == 0 else _rotation_for_cos(dim, tile_cos, sample, rng)
        for start in range(0, n, 65_536):
            x = np.array(base[start : start + 65_536], dtype=np.float32)
            if rot is not None:
                x = x @ rot
                g = rng.standard_normal(x.shape).astype(np.float32)
                x = x + noise * g / np.linalg.norm(g, axis=1, keepdims=True)
            x /= np.linalg.norm(x, axis=1, keepdims=True)
            out[t * n + start : t * n + start + len(x)] = x.astype(dtype)
    out.flush()
    del out
    dst.with_suffix(".tmp.npy").replace(dst)


def exact_pairs(path: Path, queries: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """``(q, j)``: every pair of a sampled row ``q`` with another row at cosine >= ``threshold``,
    by exact inner product (the stored values in float32), the base added in blocks."""
    import faiss

    from dupq.dedupe.store import MappedRows

    vecs = MappedRows(path)
    qv = np.ascontiguousarray(vecs[queries], dtype=np.float32)
    out_q, out_j = [], []
    for start in range(0, len(vecs), 200_000):
        block = np.ascontiguousarray(vecs[start : start + 200_000], dtype=np.float32)
        index = faiss.IndexFlatIP(block.shape[1])
        index.add(block)
        lims, _, ids = index.range_search(qv, float(threshold))
        rows = np.repeat(np.arange(len(queries)), np.diff(lims).astype(np.int64))
        j = ids.astype(np.int64) + start
        keep = j != queries[rows]
        out_q.append(queries[rows][keep])
        out_j.append(j[keep])
    return np.concatenate(out_q), np.concatenate(out_j)


def recall(
    found_a: np.ndarray, found_b: np.ndarray, true_q: np.ndarray, true_j: np.ndarray, queries: np.ndarray
) -> dict:
    """Pair recall of ``found`` on the sampled rows' exact pairs, with a 95 % bootstrap interval."""
    n = int(max(found_a.max(initial=0), found_b.max(initial=0), true_j.max(initial=0), queries.max())) + 1
    found = np.union1d(found_a * n + found_b, found_b * n + found_a)  # either order
    hit = np.isin(true_q * n + true_j, found)
    qpos = np.searchsorted(queries, true_q)  # queries are sorted
    per_total = np.bincount(qpos, minlength=len(queries))
    per_hit = np.bincount(qpos, weights=hit, minlength=len(queries))
    rng = np.random.default_rng(0)
    draws = rng.integers(0, len(queries), size=(1000, len(queries)))
    boot = per_hit[draws].sum(1) / np.maximum(per_total[draws].sum(1), 1)
    total = int(per_total.sum())
    return {
        "recall": round(float(hit.sum() / total), 5) if total else None,
        "ci95": [round(float(np.percentile(boot, 2.5)), 5), round(float(np.percentile(boot, 97.5)), 5)],
        "exact_pairs": total,
        "found": int(hit.sum()),
        "missed": int(total - hit.sum()),
        "queries_with_pairs": int((per_total > 0).sum()),
    }


def _figures(values: list[float]) -> dict:
    arr = np.asarray(values, dtype=float)
    return {
        "min": round(float(arr.min()), 3),
        "median": round(float(np.median(arr)), 3),
        "max": round(float(arr.max()), 3),
    }


def run_one(
    path: Path, workdir: Path, partitions: int | None, assignments: int, args: argparse.Namespace
) -> tuple[dict, tuple[np.ndarray, np.ndarray]]:
    """One partitioned search (fresh: its partition files are removed first) and its figures."""
    from dupq.dedupe.ray_search import SearchParams, partitioned_search, search_plan

    for old in workdir.glob("ray-search-*"):
        shutil.rmtree(old)
    n = len(np.load(path, mmap_mode="r"))
    plan = search_plan(n, "partitioned", partitions, assignments)
    assert plan is not None
    params = SearchParams(
        args.threshold - args.margin, args.threshold, args.k, args.index, args.ef_search, 16_384
    )
    t0 = time.perf_counter()
    pairs, info = partitioned_search(path, workdir, plan, params, show_progress=False)
    wall = time.perf_counter() - t0
    per = info.pop("per_partition")
    run = {
        "partitions": plan.partitions,
        "assignments": plan.assignments,
        "wall_s": round(wall, 2),
        "driver_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "pairs_at_threshold": int((pairs.s >= np.float32(args.threshold)).sum()),
        "candidate_pairs": int(len(pairs.a)),
        **{k: v for k, v in info.items() if k != "dir"},
        "per_partition_figures": {
            key: _figures([p[key] for p in per])
            for key in (
                "vectors",
                "index_mb",
                "read_s",
                "build_s",
                "search_s",
                "peak_rss_mb",
                "rss_start_mb",
                "pairs",
            )
        },
        "per_partition": per,
    }
    run["per_partition_figures"]["build_search_s"] = _figures([p["build_s"] + p["search_s"] for p in per])
    run["per_partition_figures"]["task_rss_mb"] = _figures(
        [p["peak_rss_mb"] - p["rss_start_mb"] for p in per]
    )
    keep = pairs.s >= np.float32(args.threshold)
    return run, (pairs.a[keep], pairs.b[keep])


def driver_search(path: Path, args: argparse.Namespace) -> tuple[dict, tuple[np.ndarray, np.ndarray]]:
    """The local engine's one search over every vector (what --ray-search driver runs)."""
    from dupq.dedupe.search import candidate_pairs
    from dupq.dedupe.store import MappedRows

    t0 = time.perf_counter()
    a, b, s, _ = candidate_pairs(
        MappedRows(path), args.threshold - args.margin, range_at=args.threshold, k=args.k,
        index=args.index, ef_search=args.ef_search,
    )  # fmt: skip
    keep = s >= np.float32(args.threshold)
    info = {
        "index": args.index,
        "wall_s": round(time.perf_counter() - t0, 2),
        "pairs_at_threshold": int(keep.sum()),
        "candidate_pairs": int(len(a)),
    }
    return info, (
        a[keep],
        b[keep],
    )


def print_table(result: dict) -> None:
    print(
        f"\n{result['vectors']:,} vectors, threshold {result['threshold']}, "
        f"{result['queries']:,} sampled rows"
    )
    head = f"{'P':>4} {'asg':>3} {'recall':>8} {'95% CI':>17} {'wall s':>8} {'vec/part min/med/max':>24} "
    print(head + f"{'build+search s med/max':>22} {'worker peak MB med/max':>23} {'driver MB':>9}")
    for r in result["runs"]:
        f = r["per_partition_figures"]
        v, bs, rss = f["vectors"], f["build_search_s"], f["peak_rss_mb"]
        sizes = f"{v['min']:.0f}/{v['median']:.0f}/{v['max']:.0f}"
        times = f"{bs['median']:.1f}/{bs['max']:.1f}"
        mem = f"{rss['median']:.0f}/{rss['max']:.0f}"
        rec = r["recall"]
        print(
            f"{r['partitions']:>4} {r['assignments'] or '-':>3} {rec['recall']:>8.4f} {str(rec['ci95']):>17} "
            f"{r['wall_s']:>8.1f} {sizes:>24} {times:>22} {mem:>23} {r['driver_peak_rss_mb']:>9.0f}"
        )
    drivers = dict(result.get("drivers", {}))
    if "driver" in result:
        drivers[result["driver"].get("index", "driver")] = result["driver"]
    for kind, d in drivers.items():
        print(
            f"driver search ({kind}): recall {d['recall']['recall']:.4f} {d['recall']['ci95']}, "
            f"{d['wall_s']} s, {d['pairs_at_threshold']:,} pairs at the threshold"
        )


def main() -> None:
    from dupq.encoder import DEFAULT_THRESHOLD

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vectors", type=Path, required=True, help=".npy of unit rows (float32 or float16)")
    ap.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    ap.add_argument(
        "--margin", type=float, default=0.05, help="candidate floor below the threshold (as dedupe)"
    )
    ap.add_argument("--partitions", type=int, nargs="+", default=[None], help="default: dupq's size rule")
    ap.add_argument("--assignments", type=int, nargs="+", default=[2])
    ap.add_argument("--k", type=int, default=32)
    ap.add_argument("--index", default="auto")
    ap.add_argument("--ef-search", type=int, default=None)
    ap.add_argument(
        "--dtype", default="float16", choices=["float16", "float32"], help="as the store keeps them"
    )
    ap.add_argument("--queries", type=int, default=5000, help="rows sampled for the exact check")
    ap.add_argument("--cpus", type=int, default=2, help="local Ray's CPUs (one partition task per CPU)")
    ap.add_argument("--compare-driver", action="store_true", help="also run the driver's one search")
    ap.add_argument(
        "--driver-index",
        nargs="+",
        default=None,
        help="run the driver's one search with each of these index kinds (e.g. join hnsw), scored alike",
    )
    ap.add_argument("--no-partitioned", action="store_true", help="only the driver search(es)")
    ap.add_argument("--tile", type=int, default=1, help="SYNTHETIC: N rotated copies of the vectors")
    ap.add_argument("--tile-cos", type=float, default=0.5, help="mean cosine of a vector and its copy")
    ap.add_argument("--tile-noise", type=float, default=0.05, help="noise norm added to each copy")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    load_start = load_average()
    n_src = len(np.load(args.vectors, mmap_mode="r"))
    n = n_src * args.tile
    name = f"ray_search_{n // 1000}k" + (f"_tile{args.tile}" if args.tile > 1 else "")
    workdir = args.workdir or CACHE / name
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"vectors-{args.dtype}.npy"
    t0 = time.perf_counter()
    if not path.exists():
        child = multiprocessing.get_context("spawn").Process(
            target=prepare, args=(args.vectors, path, args.dtype, args.tile, args.tile_cos, args.tile_noise)
        )
        child.start()
        child.join()
        assert child.exitcode == 0, "preparing the vectors failed"
    prepare_s = time.perf_counter() - t0
    import ray

    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    runs, found = [], []
    for p in [] if args.no_partitioned else args.partitions:
        for a in args.assignments:
            run, pairs = run_one(path, workdir, p, a, args)
            runs.append(run)
            found.append(pairs)
            print(f"partitions {run['partitions']} assignments {a}: {run['wall_s']} s", flush=True)
    ray.shutdown()
    queries = np.sort(np.random.default_rng(1).choice(n, size=min(args.queries, n), replace=False))
    t1 = time.perf_counter()
    true_q, true_j = exact_pairs(path, queries, args.threshold)
    exact_s = time.perf_counter() - t1
    for run, (fa, fb) in zip(runs, found, strict=True):
        run["recall"] = recall(fa, fb, true_q, true_j, queries)
    result = {
        "vectors": n,
        "source": str(args.vectors),
        "synthetic": args.tile > 1,
        "tile": {"copies": args.tile, "cos": args.tile_cos, "noise": args.tile_noise}
        if args.tile > 1
        else None,
        "dtype": args.dtype,
        "threshold": args.threshold,
        "floor": round(args.threshold - args.margin, 6),
        "k": args.k,
        "queries": len(queries),
        "ray_cpus": args.cpus,
        "prepare_s": round(prepare_s, 2),
        "exact_check_s": round(exact_s, 2),
        "runs": runs,
    }
    if args.compare_driver:
        info, (fa, fb) = driver_search(path, args)
        result["driver"] = {**info, "recall": recall(fa, fb, true_q, true_j, queries)}
    for kind in args.driver_index or []:
        info, (fa, fb) = driver_search(path, argparse.Namespace(**{**vars(args), "index": kind}))
        result.setdefault("drivers", {})[kind] = {**info, "recall": recall(fa, fb, true_q, true_j, queries)}
        print(f"driver search, index {kind}: {info['wall_s']} s", flush=True)
    out = args.out or RESULTS / f"{name.replace('_', '-')}.json"
    write_result(out, "ray_search.py", None, result, load_at_start=load_start)
    print_table(result)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
