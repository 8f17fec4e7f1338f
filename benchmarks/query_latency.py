"""Single-question latency of ``Matcher.match`` end to end, per encoding backend, side by side.

A Q&A backend calls ``match`` once per new question, so what matters is the latency of *one* query:
tokenise + encode one short text + search. ``benchmarks/matcher.py`` measures search at 500k stored
vectors; this script measures the part that dominates end to end — encoding the query — with the
real default model, for the torch backend (what a plain sentence-transformers user gets) and the
ONNX backends, against a store of real questions from ``../shared/data``.

    python benchmarks/query_latency.py                       # 10k stored questions, 300 queries
    python benchmarks/query_latency.py --stored 20000 --backends torch onnx-int8

Prints a table and writes ``benchmarks/results/query-latency-10k.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._record import write_result  # noqa: E402
from benchmarks.matcher import real_texts  # noqa: E402
from dupq.embed import Embedder  # noqa: E402
from dupq.matcher import Matcher  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stored", type=int, default=10_000, help="questions in the store")
    ap.add_argument("--queries", type=int, default=300, help="single-question queries timed per backend")
    ap.add_argument("--backends", nargs="+", default=["torch", "onnx-int8"])
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "query-latency-10k.json"))
    args = ap.parse_args(argv)

    texts = real_texts()
    stored, queries = texts[: args.stored], texts[args.stored : args.stored + args.queries]
    rows = []
    for backend in args.backends:
        embedder = Embedder(None, device="cpu", backend=backend)
        matcher = Matcher(embedder, index_kind="flat")
        t0 = time.perf_counter()
        matcher.add(stored, ids=list(range(len(stored))))
        add_s = time.perf_counter() - t0
        for q in queries[:10]:  # warm-up (thread pools, allocator)
            matcher.match(q, k=10)
        lat, enc = [], []
        for q in queries:
            t = time.perf_counter()
            embedder.encode([q])
            enc.append((time.perf_counter() - t) * 1e3)
            t = time.perf_counter()
            matcher.match(q, k=10, exact_first=False)
            lat.append((time.perf_counter() - t) * 1e3)
        row = {
            "backend": backend,
            "stored": len(matcher),
            "add_seconds": round(add_s, 2),
            "encode_p50_ms": round(float(np.percentile(enc, 50)), 2),
            "encode_p99_ms": round(float(np.percentile(enc, 99)), 2),
            "match_p50_ms": round(float(np.percentile(lat, 50)), 2),
            "match_p99_ms": round(float(np.percentile(lat, 99)), 2),
        }
        rows.append(row)
        print(row, flush=True)

    header = "| backend | stored | encode p50 / p99 ms | match (encode + flat search) p50 / p99 ms |"
    lines = [header, "|---|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r['backend']} | {r['stored']:,} | {r['encode_p50_ms']:.2f} / {r['encode_p99_ms']:.2f} "
            f"| {r['match_p50_ms']:.2f} / {r['match_p99_ms']:.2f} |"
        )
    table = "\n".join(lines)
    print("\n" + table)
    load = os.getloadavg()[0]
    print(f"load average at the end: {load:.2f}")
    out = Path(args.out)
    write_result(out, "query_latency.py", argv, {"results": rows, "table": table})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
