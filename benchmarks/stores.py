"""The two Matcher stores side by side: the FAISS file store and PostgreSQL + pgvector (issue 27).

Per stored size (``--sizes``, e.g. 100000 1000000), for each store:

* **build**: bulk load of every question (vectors precomputed) — adds/s; then **single adds** (one
  question per call, vectors precomputed: what a store costs per acknowledged write) — adds/s;
* **memory and disk**: the file store's FAISS index bytes, process RSS growth and saved directory;
  PostgreSQL's table + index bytes on disk (``pg_total_relation_size``), HNSW index bytes, and the
  server processes' RSS;
* **search alone**, ``k=5``, one query at a time: p50/p99 and recall@5 against exact search over the
  same vectors — for the pgvector store at every ``--ef-search`` value (the default in
  :mod:`dupq.stores.postgres` is the cheapest value reaching recall@5 >= 0.98 here);
* **``Matcher.match(k=5)`` end to end**: encoding the query with ``--backend`` (the fast one by default)
  plus the store's search, p50/p99;
* **HTTP** (``--http``): ``dupq serve`` over the store, ``--clients`` concurrent single-question
  ``POST /match`` clients (10% ``POST /questions``) from ``benchmarks/server_load.py``, with 1 and 4
  server workers (4 only for PostgreSQL: a store directory is owned by one process).

Vectors: ``--real`` distinct real texts of ``../shared/data`` are encoded with the default model and
the store padded to the size with recombinations of them (``benchmarks/matcher.py``'s
``pad_vectors``: vectors that live where real question vectors live), as ``benchmarks/matcher.py``
does and for the same reason (encoding 1M questions takes hours on this shared 2-core machine); the
JSON says so (``vectors``). Queries are other real texts, encoded for real.

    python benchmarks/stores.py --sizes 100000 --http
    python benchmarks/stores.py --sizes 1000000 --no-file-store

Prints a table per size and merges its rows into ``benchmarks/results/stores.json`` (by size, store,
index settings).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._record import load_average, provenance, write_result  # noqa: E402
from benchmarks.matcher import corpus, pad_vectors  # noqa: E402
from dupq.embed import Embedder  # noqa: E402
from dupq.matcher import Matcher  # noqa: E402
from dupq.stores import FileStore, Row  # noqa: E402
from dupq.text import text_key  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "stores.json"
CACHE = REPO / "benchmarks" / ".cache" / "stores"
K = 5


def pct(xs: list[float], p: float) -> float:
    return round(float(np.percentile(np.asarray(xs) * 1000, p)), 3)


def recall(found: list[list[int]], truth: np.ndarray) -> float:
    return round(
        float(np.mean([len(set(f) & set(t.tolist())) / K for f, t in zip(found, truth, strict=True)])), 4
    )


def exact_top(vectors: np.ndarray, queries: np.ndarray) -> np.ndarray:
    import faiss

    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    return index.search(queries, K)[1]


def encoded(embedder: Embedder, texts: list[str], name: str) -> np.ndarray:
    """``texts`` encoded once and cached (keyed by model fingerprint and the texts)."""
    path = CACHE / f"{embedder.fingerprint[:12]}_{name}_{len(texts)}_{text_key(''.join(texts))[:12]}.npy"
    if path.exists():
        return np.load(path)
    t0 = time.perf_counter()
    vecs = embedder.encode(texts, show_progress=False)
    print(f"  encoded {len(texts)} texts in {time.perf_counter() - t0:.0f}s", flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, vecs)
    return vecs


def rows_for(n: int, real_texts: list[str]) -> list[Row]:
    texts = real_texts[:n] + [f"generated question {i}" for i in range(len(real_texts), n)]
    return [Row(t, text_key(t), False, None) for t in texts[:n]]


def search_only(store, queries: np.ndarray, truth: np.ndarray) -> dict:
    store.search(queries[:10], K)  # warm-up
    lat, found = [], []
    for q in queries:
        t0 = time.perf_counter()
        hits = store.search(q[None, :], K)[0]
        lat.append(time.perf_counter() - t0)
        found.append([h.id for h in hits])
    return {"search_p50_ms": pct(lat, 50), "search_p99_ms": pct(lat, 99), "recall@5": recall(found, truth)}


def match_latency(matcher: Matcher, texts: list[str]) -> dict:
    matcher.match(texts[:5], k=K)
    lat = []
    for q in texts:
        t0 = time.perf_counter()
        matcher.match(q, k=K, exact_first=False)
        lat.append(time.perf_counter() - t0)
    return {"match_p50_ms": pct(lat, 50), "match_p99_ms": pct(lat, 99)}


def single_adds(store, dim: int, n: int, start_id: int) -> float:
    rng = np.random.default_rng(1)
    vecs = rng.standard_normal((n, dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    t0 = time.perf_counter()
    for j in range(n):
        t = f"single add {start_id + j}?"
        store.add(vecs[j : j + 1], [Row(t, text_key(t), False, None)], [start_id + j])
    return round(n / (time.perf_counter() - t0), 1)


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# -- HTTP ---------------------------------------------------------------------------------------------
def http_load(store: str, workers: int, clients: int, seconds: float, env: dict) -> dict:
    from benchmarks.server_load import load

    with __import__("socket").socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dupq.cli",
            "serve",
            "--store",
            store,
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--persist",
            "interval",
            "--max-in-flight",
            "64",
        ],
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        import httpx

        deadline = time.monotonic() + 600
        while True:
            if proc.poll() is not None:
                return {"error": f"server exited {proc.returncode}"}
            try:
                if httpx.get(f"{base}/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                return {"error": "server did not come up"}
            time.sleep(1)
        time.sleep(2 * workers)  # the other workers finish loading
        return asyncio.run(load(base, clients, 10**9, seconds, 0.1, seed=workers))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# -- one store at one size --------------------------------------------------------------------------
def run_file(size, vectors, rows, queries, qtexts, truth, embedder, args, tmp: Path) -> dict:
    gc.collect()
    rss0 = psutil.Process().memory_info().rss
    store = FileStore(embedder.dim, index_kind="auto")
    t0 = time.perf_counter()
    for s in range(0, size, 50_000):
        store.add(vectors[s : s + 50_000], rows[s : s + 50_000], list(range(s, min(size, s + 50_000))))
    build = time.perf_counter() - t0
    out = {
        "store": "file",
        "index": f"{store.index.kind} {store.index.params['M']}/{store.index.params['ef_construction']}/"
        f"ef_search={store.index.params['ef_search']}"
        if store.index.kind == "hnsw"
        else store.index.kind,
        "bulk_adds_per_s": round(size / build, 1),
        "build_s": round(build, 1),
        "index_bytes": store.index.memory_bytes(),
        "rss_growth_bytes": psutil.Process().memory_info().rss - rss0,
        **search_only(store, queries, truth),
    }
    m = Matcher(embedder, store=store)
    out.update(match_latency(m, qtexts[: args.match_queries]))
    out["single_adds_per_s"] = single_adds(store, embedder.dim, args.single_adds, size + 10)
    m.save(tmp / "filestore")
    out["disk_bytes"] = dir_bytes(tmp / "filestore")
    if args.http:
        out["http"] = {"1": http_load(str(tmp / "filestore"), 1, args.clients, args.http_seconds, {})}
        out["http"]["4"] = (
            "not possible: a store directory is owned by one process (--workers needs PostgreSQL)"
        )
    return out


def run_pg(size, vectors, rows, queries, qtexts, truth, embedder, args, tmp: Path) -> dict:
    import pgserver
    import psycopg

    from dupq.stores.postgres import EF_SEARCH, PostgresStore

    server = pgserver.get_server(tmp / "pg", cleanup_mode="delete")
    try:
        url = server.get_uri()
        if args.shared_buffers:
            _restart_with(server, url, shared_buffers=args.shared_buffers)
        m = Matcher(embedder, store=url)
        t0 = time.perf_counter()
        m.store.add(vectors, rows, list(range(size)))  # one COPY, one HNSW build (BULK_MIN)
        build = time.perf_counter() - t0
        with psycopg.connect(url, autocommit=True) as conn:
            table_bytes = conn.execute("SELECT pg_total_relation_size('dupq_questions')").fetchone()[0]
            hnsw_bytes = conn.execute("SELECT pg_relation_size('dupq_questions_hnsw')").fetchone()[0]
            conn.execute("VACUUM ANALYZE dupq_questions")
        postmaster = psutil.Process(server.get_postmaster_info().pid)
        server_rss = sum(p.memory_info().rss for p in [postmaster, *postmaster.children()])
        out = {
            "store": "postgresql",
            "index": f"pgvector {m.store.index.params['M']}/{m.store.index.params['ef_construction']}",
            "bulk_adds_per_s": round(size / build, 1),
            "build_s": round(build, 1),
            "disk_bytes": int(table_bytes),
            "hnsw_index_bytes": int(hnsw_bytes),
            "server_rss_bytes": int(server_rss),
            "shared_buffers": args.shared_buffers or "128MB (pgserver's default)",
            "ef_search": {},
        }
        for ef in args.ef_search:
            s = PostgresStore(url, ef_search=ef)
            out["ef_search"][str(ef)] = search_only(s, queries, truth)
            # end to end at this beam: Matcher.match = encode + exact-key lookup + search
            out["ef_search"][str(ef)].update(
                match_latency(Matcher(embedder, store=s), qtexts[: args.match_queries])
            )
            s.close()
        at_default = out["ef_search"].get(str(EF_SEARCH))
        if at_default is None:
            at_default = {
                **search_only(m.store, queries, truth),
                **match_latency(m, qtexts[: args.match_queries]),
            }
        out.update({**at_default, "default_ef_search": EF_SEARCH})
        out["single_adds_per_s"] = single_adds(m.store, embedder.dim, args.single_adds, size + 10)
        m.store.close()
        if args.http:
            out["http"] = {
                str(w): http_load(
                    "env:DUPQ_BENCH_STORE", w, args.clients, args.http_seconds, {"DUPQ_BENCH_STORE": url}
                )
                for w in (1, 4)
            }
        return out
    finally:
        server.cleanup()


def _restart_with(server, url: str, **settings: str) -> None:
    """``ALTER SYSTEM SET`` and restart (``pg_ctl restart`` keeps pgserver's socket options)."""
    import psycopg
    from pgserver._commands import pg_ctl
    from pgserver.utils import PostmasterInfo

    with psycopg.connect(url, autocommit=True) as conn:
        for k, v in settings.items():
            conn.execute(f"ALTER SYSTEM SET {k} = '{v}'")
    pg_ctl(["-w", "restart"], pgdata=server.pgdata, user=server.system_user)
    server._postmaster_info = PostmasterInfo.read_from_pgdata(server.pgdata)  # the new postmaster's pid


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    ap.add_argument("--real", type=int, default=4000, help="real texts encoded (the rest is padding)")
    ap.add_argument("--queries", type=int, default=300, help="held-out real queries for recall and latency")
    ap.add_argument("--match-queries", type=int, default=200, help="of which timed through Matcher.match")
    ap.add_argument("--single-adds", type=int, default=200)
    ap.add_argument("--ef-search", type=int, nargs="+", default=[40, 64, 100, 200])
    ap.add_argument("--backend", default="onnx-int8", help="encoding backend of Matcher.match")
    ap.add_argument("--no-file-store", action="store_true")
    ap.add_argument("--no-postgres", action="store_true")
    ap.add_argument("--http", action="store_true", help="also HTTP throughput, 1 and 4 workers")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--http-seconds", type=float, default=30)
    ap.add_argument(
        "--shared-buffers", default=None, help="PostgreSQL shared_buffers (e.g. 3GB) [default: 128MB]"
    )
    ap.add_argument("--tmp", default=None, help="where stores and the database go [default: a temp dir]")
    args = ap.parse_args(argv)
    load0 = load_average()
    embedder = Embedder(None, device="cpu", backend=args.backend)
    texts, qtexts = corpus(args.real)
    qtexts = qtexts[: args.queries]
    real = encoded(embedder, texts, "real")
    queries = encoded(embedder, qtexts, "queries")
    results = json.loads(RESULTS.read_text()).get("rows", []) if RESULTS.exists() else []
    for size in args.sizes:
        vectors = pad_vectors(real, size)
        rows = rows_for(size, texts)
        truth = exact_top(vectors, queries)
        for kind, run in (("file", run_file), ("postgresql", run_pg)):
            if (kind == "file" and args.no_file_store) or (kind == "postgresql" and args.no_postgres):
                continue
            tmp = Path(tempfile.mkdtemp(prefix="dupq-bench-", dir=args.tmp))
            try:
                print(f"== {kind} store, {size:,} questions", flush=True)
                row = {"size": size, **run(size, vectors, rows, queries, qtexts, truth, embedder, args, tmp)}
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            row["backend"] = embedder.backend
            # each row its own provenance: rows of several runs (sizes) share one file
            row["run"] = provenance("stores.py", argv, load_at_start=load0)
            print(json.dumps(row, indent=1), flush=True)
            same = (size, kind, row["index"])
            results = [r for r in results if (r["size"], r["store"], r["index"]) != same] + [row]
            write_result(
                RESULTS,
                "stores.py",
                argv,
                {
                    "vectors": f"{args.real} real texts encoded with the default model, padded to each size "
                    "with recombinations of them (benchmarks/matcher.py pad_vectors); queries: "
                    f"{args.queries} held-out real texts, encoded",
                    "k": K,
                    "notes": [
                        "search_* and recall@5: the store's search alone, one query at a time (the database "
                        "store over a unix socket); match_*: Matcher.match(k=5) end to end, query encoding "
                        "with the backend in each row included",
                        "single_adds_per_s: one question per add call, vector precomputed (one transaction "
                        "each for PostgreSQL)",
                        "http: dupq serve (torch backend), clients sending single-question POST /match with "
                        "10% POST /questions, benchmarks/server_load.py's client; the file store is served "
                        "with --persist interval (saving the whole store per write would dominate), the "
                        "PostgreSQL store commits every write",
                        "file store memory: index_bytes (serialised FAISS index) and rss_growth_bytes of "
                        "this process; PostgreSQL: disk_bytes = pg_total_relation_size of the table (heap, "
                        "TOAST, HNSW and key indexes), server_rss_bytes of its processes",
                    ],
                    "rows": sorted(results, key=lambda r: (r["size"], r["store"])),
                },
                load_at_start=load0,
            )
    print(table(results))
    return 0


def table(rows: list[dict]) -> str:
    head = (
        "| size | store | recall@5 | search p50/p99 ms | match p50/p99 ms | bulk adds/s | single adds/s "
        "| disk MB | HTTP 1 / 4 workers ok/s |"
    )
    lines = [head, "|" + "---|" * 9]
    for r in sorted(rows, key=lambda r: (r["size"], r["store"])):
        http = r.get("http", {})
        h = " / ".join(
            str(v.get("ok_per_s", v.get("error"))) if isinstance(v, dict) else "n/a" for v in http.values()
        )
        lines.append(
            f"| {r['size']:,} | {r['store']} | {r['recall@5']} | {r['search_p50_ms']} / {r['search_p99_ms']} "
            f"| {r['match_p50_ms']} / {r['match_p99_ms']} | {r['bulk_adds_per_s']:,} "
            f"| {r['single_adds_per_s']} | {r['disk_bytes'] / 2**20:.0f} | {h or '-'} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
