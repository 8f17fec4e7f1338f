"""Evaluation benchmark: the cost of exact duplicate retrieval over a whole split, and what it replaces.

``dupq evaluate`` ranks *every* question of a split against all the others (exact search) to get
recall@k / MRR@10 / nDCG@10. On a QQP-sized test split (~50k questions) that is 2.5 billion
similarities, so how it is done decides whether evaluation fits in memory. Measured side by side in
one run, each method in a fresh process (peak RSS growth = ``ru_maxrss`` after minus before):

* ``dupq``: :func:`dupq.evaluation.retrieval_from_vectors` — blocked numpy inner products (a 64 MiB
  score block at a time) + ``argpartition`` top-10;
* ``faiss-flat``: what a user would pick instead — ``faiss.IndexFlatIP`` search for the top-11
  neighbours of every question, then the same metric code;
* ``numpy-full``: the one-liner ``S = X @ X.T`` and a per-row top-10 (only where N² floats fit).

All three must agree on the metrics (identical rankings up to ties); the table says so.

Vectors are synthetic unit vectors (dim 384, like all-MiniLM-L6-v2) with a QQP-like duplicate
structure: clusters of 2 (most), 3–5 (some), and singletons; duplicates are noisy copies of a
cluster centre. Encoding cost is not part of this benchmark (see ``benchmarks/matcher.py``).

    python benchmarks/evaluate.py                              # 10k and 50k questions
    python benchmarks/evaluate.py --sizes 5000 20000 --full-max 5000

Writes ``benchmarks/results/evaluate-retrieval.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._record import write_result  # noqa: E402
from dupq.vectors import l2_normalize  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "evaluate-retrieval.json"
DIM = 384
#: Per-dimension noise around a cluster centre: duplicates at cosine ~0.2, like hard real pairs.
NOISE = 2.2
METRICS = ("recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10")


def make_split(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(vectors, cluster) for ``n`` questions: ~60% in clusters of 2, ~15% in clusters of 3-5, rest alone."""
    rng = np.random.default_rng(seed)
    sizes: list[int] = []
    total = 0
    while total < n:
        r = rng.random()
        size = 2 if r < 0.6 else int(rng.integers(3, 6)) if r < 0.75 else 1
        size = min(size, n - total)
        sizes.append(size)
        total += size
    cluster = np.repeat(np.arange(len(sizes)), sizes)
    centres = rng.standard_normal((len(sizes), DIM), dtype=np.float32)
    vectors = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, 4096):  # in chunks: no big temporaries to inflate the peak-RSS baseline
        chunk = rng.standard_normal((min(4096, n - start), DIM), dtype=np.float32) * NOISE
        chunk += centres[cluster[start : start + len(chunk)]]
        vectors[start : start + len(chunk)] = l2_normalize(chunk)
    return vectors, cluster


def _metrics_from_topk(top: np.ndarray, cluster: np.ndarray) -> dict[str, float]:
    """The same definitions as dupq, from a precomputed (queries x 10) ranking of neighbour ids."""
    sizes = np.bincount(cluster)
    n_rel = sizes[cluster] - 1
    queries = np.flatnonzero(n_rel > 0)
    top = top[queries]
    rel = cluster[top] == cluster[queries][:, None]
    hits = np.cumsum(rel, axis=1)
    total = n_rel[queries]
    discounts = 1 / np.log2(np.arange(2, 12))
    first = np.where(rel.any(axis=1), rel.argmax(axis=1) + 1, np.inf)
    idcg = np.cumsum(discounts)[np.minimum(total, 10) - 1]
    return {
        "recall@1": float(np.mean(hits[:, 0] / total)),
        "recall@5": float(np.mean(hits[:, 4] / total)),
        "recall@10": float(np.mean(hits[:, 9] / total)),
        "mrr@10": float(np.mean(1 / first)),
        "ndcg@10": float(np.mean((rel * discounts).sum(axis=1) / idcg)),
    }


def _drop_self(neighbours: np.ndarray, k: int = 10) -> np.ndarray:
    """Remove each row's own id from its neighbour list, keep the first ``k``."""
    n = neighbours.shape[0]
    mask = neighbours != np.arange(n)[:, None]
    out = np.empty((n, k), dtype=np.int64)
    for i in range(n):
        out[i] = neighbours[i][mask[i]][:k]
    return out


def run_method(method: str, n: int, queue: mp.Queue) -> None:
    """Child process: build the split, measure one method's wall time and peak RSS growth."""
    # imports first: their memory is not the method's (torch is loaded anyway whenever dupq evaluates,
    # because the encoder runs on it)
    import faiss
    import psutil
    import torch  # noqa: F401

    from dupq.evaluation import retrieval_from_vectors

    vectors, cluster = make_split(n)
    before = psutil.Process().memory_info().rss // 1024  # KiB, like ru_maxrss on Linux
    t0 = time.perf_counter()
    if method == "dupq":
        m = retrieval_from_vectors(vectors, cluster)
    elif method == "faiss-flat":
        index = faiss.IndexFlatIP(DIM)
        index.add(vectors)
        _, nn = index.search(vectors, 11)
        m = _metrics_from_topk(_drop_self(nn), cluster)
    elif method == "numpy-full":
        s = vectors @ vectors.T
        np.fill_diagonal(s, -np.inf)
        top = np.argpartition(-s, 9, axis=1)[:, :10]
        order = np.argsort(-np.take_along_axis(s, top, axis=1), axis=1, kind="stable")
        m = _metrics_from_topk(np.take_along_axis(top, order, axis=1), cluster)
    else:
        raise ValueError(method)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    queue.put({"seconds": seconds, "peak_rss_growth_mb": max(peak - before, 0) / 1024, "metrics": m})


def measure(method: str, n: int) -> dict:
    ctx = mp.get_context("spawn")
    queue: mp.Queue = ctx.Queue()
    proc = ctx.Process(target=run_method, args=(method, n, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return {"method": method, "questions": n, **result}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000], help="questions per split")
    ap.add_argument("--full-max", type=int, default=10_000, help="largest N for the N x N numpy baseline")
    args = ap.parse_args()

    rows = []
    for n in args.sizes:
        methods = ["dupq", "faiss-flat"] + (["numpy-full"] if n <= args.full_max else [])
        for method in methods:
            r = measure(method, n)
            rows.append(r)
            print(
                f"  {method:<11} n={n:>7}: {r['seconds']:.1f}s, +{r['peak_rss_growth_mb']:.0f} MB", flush=True
            )

    print()
    header = (
        f"{'questions':>9}  {'method':<11} {'seconds':>8} {'vs dupq':>8} {'peak RSS +MB':>12} {'vs dupq':>8}"
    )
    header += "  " + "  ".join(f"{m:>9}" for m in METRICS) + "  same metrics"
    print(header)
    print("-" * len(header))
    for n in args.sizes:
        base = next(r for r in rows if r["questions"] == n and r["method"] == "dupq")
        for r in (r for r in rows if r["questions"] == n):
            same = all(abs(r["metrics"][m] - base["metrics"][m]) < 1e-6 for m in METRICS)
            r["time_ratio_vs_dupq"] = r["seconds"] / base["seconds"]
            r["memory_ratio_vs_dupq"] = r["peak_rss_growth_mb"] / max(base["peak_rss_growth_mb"], 1e-9)
            r["same_metrics_as_dupq"] = same
            print(
                f"{n:>9}  {r['method']:<11} {r['seconds']:>8.2f} {r['time_ratio_vs_dupq']:>7.2f}x "
                f"{r['peak_rss_growth_mb']:>12.0f} {r['memory_ratio_vs_dupq']:>7.2f}x  "
                + "  ".join(f"{r['metrics'][m]:>9.4f}" for m in METRICS)
                + f"  {'yes' if same else 'NO'}"
            )
    payload = {
        "benchmark": "evaluate: exact duplicate retrieval over a whole split",
        "dim": DIM,
        "rows": rows,
    }
    write_result(RESULTS, "evaluate.py", None, payload)
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
