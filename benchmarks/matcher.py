"""Matcher / VectorIndex benchmark: flat vs HNSW vs IVF on 100k–500k real-ish questions, default model.

What a Q&A backend cares about, measured side by side in one run:

* build time and memory (serialised index size, process RSS growth) per kind;
* single-query latency p50/p99, *search alone* and *query encoding + search* (what ``Matcher.match``
  costs for one new question);
* batch throughput (queries/s for a batch of queries, search alone);
* recall@10 of each approximate setting against exact flat search on the same vectors;
* a sweep of HNSW ``ef_search`` and IVF ``nprobe`` — the defaults in :mod:`dupq.index` are the
  cheapest settings of this sweep with recall@10 >= 0.98.

Corpus: distinct real sentences/questions of the pair sets in ``../shared/data`` (MQP, SemEval Qatar
Living, MRPC, STS-B, SICK — 34k distinct texts): ``--real`` of them (default 10k) are encoded with the
default model and indexed, 1000 others are held out as queries. The index is then padded to ``--size``
vectors with *generated variety in embedding space*: ``normalize((1-l)*a + l*b + e)`` for random real
vectors ``a, b``, ``l ~ U(0.15, 0.5)``, ``|e| ~ 0.1``. Why not encode 100k–500k texts: on this 2-core
machine shared by several jobs the default model encodes 8–30 questions/s, i.e. hours for 100k; the
index cost (build, latency, memory, recall) depends on the vectors, not on where they came from, and
these vectors live where real question vectors live. Query *encoding* latency is measured with the real
model on real held-out questions. Encoded vectors are cached under ``benchmarks/.cache/matcher/`` in
chunks (resumable) and reused by later runs.

    python benchmarks/matcher.py --size 500000             # encode (cached) + measure
    python benchmarks/matcher.py --real 10000 --encode-only # just fill the cache

Writes ``benchmarks/results/matcher-index-kinds-<size/1000>k.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import csv
import gc
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._record import load_average, write_result  # noqa: E402
from dupq.embed import Embedder  # noqa: E402
from dupq.index import VectorIndex, default_nlist  # noqa: E402
from dupq.text import is_blank, text_key  # noqa: E402
from dupq.vectors import l2_normalize  # noqa: E402

SHARED = REPO.parent / "shared" / "data"
CACHE = REPO / "benchmarks" / ".cache" / "matcher"
RESULTS = REPO / "benchmarks" / "results"
CHUNK = 2_000
N_QUERIES = 1000


# -- corpus -----------------------------------------------------------------------------------------
def _tsv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE, keep_default_na=False, dtype=str)


def real_texts() -> list[str]:
    """Every distinct (by normalised key) text of the shared pair sets, in a fixed order."""
    sources = [
        ("medical-question-pairs/mqp.tsv", ["question1", "question2"]),
        ("semeval2016-task3-cqa-subtaskB/train-part2.tsv", ["orgq_subject", "relq_subject"]),
        ("mrpc/train.tsv", ["sentence1", "sentence2"]),
        ("mrpc/test.tsv", ["sentence1", "sentence2"]),
        ("stsbenchmark/sts-train.tsv", ["sentence1", "sentence2"]),
        ("stsbenchmark/sts-dev.tsv", ["sentence1", "sentence2"]),
        ("stsbenchmark/sts-test.tsv", ["sentence1", "sentence2"]),
        ("sick/train.tsv", ["sentence_A", "sentence_B"]),
        ("sick/trial.tsv", ["sentence_A", "sentence_B"]),
        ("sick/test.tsv", ["sentence_A", "sentence_B"]),
    ]
    seen: set[str] = set()
    out: list[str] = []
    for rel, cols in sources:
        path = SHARED / rel
        if not path.exists():
            raise SystemExit(f"missing {path}: the benchmark reads the real pair sets in ../shared/data")
        df = _tsv(path)
        for col in cols:
            for t in df[col]:
                t = " ".join(str(t).split())
                if is_blank(t) or len(t) > 300:
                    continue
                k = text_key(t)
                if k not in seen:
                    seen.add(k)
                    out.append(t)
    return out


def corpus(n_real: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """(``n_real`` real texts to index, ``N_QUERIES`` other real texts held out as queries)."""
    real = real_texts()
    random.Random(seed).shuffle(real)
    queries, rest = real[:N_QUERIES], real[N_QUERIES:]
    return rest[:n_real], queries


def pad_vectors(real: np.ndarray, size: int, seed: int = 0) -> np.ndarray:
    """``size`` unit vectors: the real ones, then recombinations of two real ones plus a little noise.

    ``normalize((1-l)*a + l*b + e)`` with ``l ~ U(0.15, 0.5)`` and ``|e| ~ 0.1``: points between two
    real questions, never a copy of one, so the index holds ``size`` distinct vectors whose
    neighbourhoods look like those of real questions (dense where real questions are dense).
    """
    rng = np.random.default_rng(seed)
    n_real, dim = real.shape
    out = np.empty((size, dim), np.float32)
    out[: min(n_real, size)] = real[:size]
    for start in range(n_real, size, 50_000):
        m = min(50_000, size - start)
        a = real[rng.integers(0, n_real, m)]
        b = real[rng.integers(0, n_real, m)]
        lam = rng.uniform(0.15, 0.5, (m, 1)).astype(np.float32)
        noise = rng.standard_normal((m, dim)).astype(np.float32) * np.float32(0.1 / np.sqrt(dim))
        v = (1 - lam) * a + lam * b + noise
        out[start : start + m] = l2_normalize(v)
    return out


def cached_vectors(embedder: Embedder, texts: list[str]) -> np.ndarray:
    """Encode ``texts`` in chunks cached on disk (keyed by model fingerprint and chunk contents)."""
    folder = CACHE / embedder.fingerprint[:16]
    folder.mkdir(parents=True, exist_ok=True)
    out = np.empty((len(texts), embedder.dim), np.float32)
    for c, start in enumerate(range(0, len(texts), CHUNK)):
        part = texts[start : start + CHUNK]
        key = text_key("\n".join(part))[:16]
        path = folder / f"chunk{c:03d}_{len(part)}_{key}.npy"
        if path.exists():
            out[start : start + len(part)] = np.load(path)
            continue
        t0 = time.perf_counter()
        vecs = embedder.encode(part, show_progress=True, desc=f"encoding chunk {c} ({start}+{len(part)})")
        dt = time.perf_counter() - t0
        print(f"  chunk {c}: {len(part)} texts in {dt:.0f}s ({len(part) / dt:.0f}/s)", flush=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, vecs)
        os.replace(tmp, path)
        out[start : start + len(part)] = vecs
    return out


# -- measurements -----------------------------------------------------------------------------------
def rss() -> int:
    return psutil.Process().memory_info().rss


def pct(xs: list[float], p: float) -> float:
    return float(np.percentile(np.asarray(xs) * 1000, p))


def recall_at(found: np.ndarray, truth: np.ndarray) -> float:
    k = truth.shape[1]
    return float(np.mean([len(set(f[:k]) & set(t)) / k for f, t in zip(found, truth, strict=True)]))


def single_latencies(index: VectorIndex, queries: np.ndarray, k: int) -> list[float]:
    lat = []
    for q in queries:
        t0 = time.perf_counter()
        index.search(q[None, :], k)
        lat.append(time.perf_counter() - t0)
    return lat


def measure(index: VectorIndex, qvecs: np.ndarray, truth: np.ndarray, k: int, n_single: int) -> dict:
    index.search(qvecs[:20], k)  # warm-up
    lat = single_latencies(index, qvecs[:n_single], k)
    t0 = time.perf_counter()
    _, found = index.search(qvecs, k)
    batch_s = time.perf_counter() - t0
    return {
        "search_p50_ms": round(pct(lat, 50), 3),
        "search_p99_ms": round(pct(lat, 99), 3),
        "batch_qps": round(len(qvecs) / batch_s, 1),
        "recall@10": round(recall_at(found, truth), 4),
    }


def encode_latencies(embedder: Embedder, queries: list[str], n: int) -> list[float]:
    """One question at a time, the way Matcher.match encodes it (1 torch thread for small batches)."""
    from dupq.runtime import torch_threads

    lat = []
    with torch_threads(1):
        embedder.encode(queries[:5])
        for q in queries[:n]:
            t0 = time.perf_counter()
            embedder.encode([q])
            lat.append(time.perf_counter() - t0)
    return lat


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=100_000, help="vectors in the index (default 100000)")
    ap.add_argument("--real", type=int, default=10_000, help="real texts encoded with the model")
    ap.add_argument("--model", default=None, help="model dir (default: embedded all-MiniLM-L6-v2)")
    ap.add_argument("--backend", default="torch", help="Embedder backend for the bulk encoding")
    ap.add_argument("--encode-only", action="store_true", help="only fill the vector cache")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--ef", default="16,32,64,128,256", help="HNSW ef_search values to sweep")
    ap.add_argument("--nprobe", default="16,32,64,128,256", help="IVF nprobe values to sweep")
    ap.add_argument("--single", type=int, default=300, help="queries timed one at a time (search alone)")
    ap.add_argument("--hnsw-m", type=int, default=32)
    ap.add_argument("--ef-construction", type=int, default=80)
    ap.add_argument("--nlist", type=int, default=0, help="IVF cells (0: dupq's default for the size)")
    ap.add_argument("--encode-queries", type=int, default=200, help="single queries timed with encoding")
    ap.add_argument(
        "--out", type=Path, default=None, help="default: results/matcher-index-kinds-<size/1000>k.json"
    )
    args = ap.parse_args()
    load_at_start = load_average()

    from dupq.index import set_num_threads

    threads = set_num_threads()
    texts, queries = corpus(min(args.real, args.size))
    n_real = len(texts)
    print(f"{n_real} real texts from {SHARED} (+{len(queries)} held-out real queries)", flush=True)
    embedder = Embedder(args.model, device="cpu", backend=args.backend)
    t0 = time.perf_counter()
    qvecs = cached_vectors(embedder, queries)
    real_vecs = cached_vectors(embedder, texts)
    encode_s = time.perf_counter() - t0
    if args.encode_only:
        print(f"cached {len(real_vecs) + len(qvecs)} vectors in {encode_s:.0f}s")
        return
    vecs = pad_vectors(real_vecs, args.size)
    print(f"index of {len(vecs)} vectors: {n_real} real + {len(vecs) - n_real} recombined", flush=True)
    ids = np.arange(len(vecs), dtype=np.int64)
    k = args.k

    # Query encoding alone, one question at a time (what every Matcher.match pays on top of search).
    enc_lat = encode_latencies(embedder, queries, args.encode_queries)

    rows: list[dict] = []

    def run(kind: str, setting: str, build_params: dict, sweep: list[tuple[str, dict]]) -> VectorIndex:
        gc.collect()
        r0 = rss()
        t = time.perf_counter()
        index = VectorIndex.build(vecs, ids, kind=kind, **build_params)
        build_s = time.perf_counter() - t
        mem = rss() - r0
        size = index.memory_bytes()
        print(f"  built {kind} in {build_s:.1f}s ({size / 2**20:.0f} MiB)", flush=True)
        for label, sp in sweep or [(setting, {})]:
            if sp:
                index.set_search_params(**sp)
            m = measure(index, qvecs, truth, k, args.single)
            # one new question end to end: its encoding time + a search, paired query by query
            e2e = [a + b for a, b in zip(enc_lat, m_lat(index), strict=True)]
            m["e2e_p50_ms"] = round(pct(e2e, 50), 3)
            m["e2e_p99_ms"] = round(pct(e2e, 99), 3)
            row = {
                "kind": kind,
                "setting": label,
                "build_s": round(build_s, 2),
                "index_mib": round(size / 2**20, 1),
                "rss_growth_mib": round(mem / 2**20, 1),
                **m,
            }
            rows.append(row)
            print("   ", row, flush=True)
        return index

    def m_lat(index: VectorIndex) -> list[float]:
        return single_latencies(index, qvecs[: len(enc_lat)], k)

    # Exact ground truth first (flat), then the approximate kinds.
    print("flat (exact) …", flush=True)
    flat = VectorIndex.build(vecs, ids, kind="flat")
    _, truth = flat.search(qvecs, k)
    del flat
    run("flat", "exact", {}, [])
    # Where exact search stops meeting the latency target: flat single-query latency vs size (the
    # auto cut-off in dupq.index.AUTO_FLAT_MAX comes from this).
    scaling = []
    for n in sorted({n for n in (10_000, 25_000, 50_000, 100_000, 200_000, len(vecs)) if n <= len(vecs)}):
        sub = VectorIndex.build(vecs[:n], ids[:n], kind="flat")
        lat = single_latencies(sub, qvecs[: args.single], k)
        scaling.append({"size": n, "p50_ms": round(pct(lat, 50), 3), "p99_ms": round(pct(lat, 99), 3)})
        print("   flat scaling", scaling[-1], flush=True)
        del sub
    print("hnsw …", flush=True)
    efs = [int(x) for x in args.ef.split(",")]
    run(
        "hnsw",
        "",
        {"M": args.hnsw_m, "ef_construction": args.ef_construction},
        [(f"M={args.hnsw_m} efC={args.ef_construction} ef={e}", {"ef_search": e}) for e in efs],
    )
    print("ivf …", flush=True)
    nlist = args.nlist or default_nlist(len(vecs))
    probes = [int(x) for x in args.nprobe.split(",")]
    run("ivf", "", {"nlist": nlist}, [(f"nlist={nlist} nprobe={p}", {"nprobe": p}) for p in probes])

    flat_row = rows[0]
    for r in rows:
        r["p99_vs_flat"] = round(r["search_p99_ms"] / flat_row["search_p99_ms"], 3)
        r["qps_vs_flat"] = round(r["batch_qps"] / flat_row["batch_qps"], 2)

    result = {
        "size": len(vecs),
        "real_texts": n_real,
        "generated_vectors": len(vecs) - n_real,
        "padding": "normalize((1-l)*a + l*b + e), a, b real vectors, l ~ U(0.15, 0.5), |e| ~ 0.1",
        "queries": len(qvecs),
        "k": k,
        "model": embedder.source,
        "backend": args.backend,
        "dim": embedder.dim,
        "faiss_threads": threads,
        "encode_cached": encode_s < 60,
        "query_encode_p50_ms": round(pct(enc_lat, 50), 3),
        "query_encode_p99_ms": round(pct(enc_lat, 99), 3),
        "rows": rows,
        "flat_scaling": scaling,
        "single_queries_timed": args.single,
    }
    if args.out is None:
        args.out = RESULTS / f"matcher-index-kinds-{args.size // 1000}k.json"
    write_result(args.out, "matcher.py", None, result, load_at_start=load_at_start)
    print_table(result)
    print(f"\nwrote {args.out}")


def print_table(r: dict) -> None:
    print(
        f"\n{r['size']} vectors ({r['real_texts']} real questions + {r['generated_vectors']} recombined), "
        f"dim {r['dim']}, "
        f"{r['queries']} held-out queries, k={r['k']}, faiss threads {r['faiss_threads']}, "
        f"load avg {os.getloadavg()[0]:.2f}"
    )
    print(
        f"query encoding alone (default model, one question): p50 {r['query_encode_p50_ms']:.1f} ms, "
        f"p99 {r['query_encode_p99_ms']:.1f} ms"
    )
    print(
        "exact (flat) single-query search vs size: "
        + ", ".join(
            f"{x['size']}: p50 {x['p50_ms']:.1f} / p99 {x['p99_ms']:.1f} ms" for x in r["flat_scaling"]
        )
    )
    cols = [
        ("kind", "kind", "{}"),
        ("setting", "setting", "{}"),
        ("build s", "build_s", "{:.1f}"),
        ("index MiB", "index_mib", "{:.0f}"),
        ("search p50 ms", "search_p50_ms", "{:.2f}"),
        ("search p99 ms", "search_p99_ms", "{:.2f}"),
        ("enc+search p50", "e2e_p50_ms", "{:.1f}"),
        ("enc+search p99", "e2e_p99_ms", "{:.1f}"),
        ("batch q/s", "batch_qps", "{:.0f}"),
        ("recall@10", "recall@10", "{:.4f}"),
        ("p99 vs flat", "p99_vs_flat", "{:.2f}x"),
    ]
    cells = [[c[0] for c in cols]] + [[fmt.format(row[key]) for _, key, fmt in cols] for row in r["rows"]]
    widths = [max(len(c[i]) for c in cells) for i in range(len(cols))]
    print("| " + " | ".join(c.ljust(w) for c, w in zip(cells[0], widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for c in cells[1:]:
        print("| " + " | ".join(x.ljust(w) for x, w in zip(c, widths, strict=True)) + " |")


if __name__ == "__main__":
    main()
