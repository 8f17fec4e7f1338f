"""``Matcher.match`` latency with dupq's defaults, the shipped verifier on and off, side by side.

What a Q&A backend gets from ``Matcher()`` with no options: the stock encoder on the ``default``
backend (onnx-int8 on a CPU) and the shipped verifier rescoring the top k. This stores up to
``--stored`` real questions (every distinct text of the shared pair sets), then times single-question
``match(q, k=5)`` calls for held-out questions, on the same Matcher with the verifier on and off
(alternating per query, so load hits both alike), and the same for a torch-backend Matcher on a
smaller store (the alternative a plain sentence-transformers user has). The shared sets hold ~81k
distinct questions; a larger store is topped up from ``benchmarks/dedupe.py``'s corpus (real
sentences, then halves of two recombined), and the JSON says how many.

    python benchmarks/default_latency.py                    # 100k stored, 1,000 queries
    python benchmarks/default_latency.py --stored 20000 --queries 100

Prints a table and writes ``benchmarks/results/matcher-defaults-latency.json``.
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

SETS = ("quora-bimpm", "paws-qqp", "paws-wiki", "mqp", "semeval-cqa", "mrpc", "mrpc-test")


def question_pool() -> list[str]:
    """Every distinct (by exact key) text of the shared pair sets plus the STS-B / SICK sentences, in a
    fixed order (texts over 300 characters left out: a store of questions, not posts)."""
    from benchmarks.matcher import real_texts
    from dupq.data import load_shared
    from dupq.text import text_key

    seen: set[str] = set()
    out: list[str] = []
    texts = [t for name in SETS for df in [load_shared(name).pairs] for c in ("question1", "question2")
             for t in df[c]]  # fmt: skip
    for t in texts + real_texts():
        t = " ".join(str(t).split())
        k = text_key(t)
        if t and len(t) <= 300 and k not in seen:
            seen.add(k)
            out.append(t)
    rng = np.random.default_rng(0)
    return [out[i] for i in rng.permutation(len(out))]


def time_queries(matcher, queries: list[str], k: int) -> dict[str, list[float]]:
    """Per query, ``match`` with the verifier on and off, alternating (same queries, same store)."""
    verifier = matcher.verifier
    out: dict[str, list[float]] = {"on": [], "off": []}
    for q in queries[:10]:  # warm-up: thread pools, allocator, ONNX sessions
        matcher.match(q, k=k, exact_first=False)
    for i, q in enumerate(queries):
        for mode in ("on", "off") if i % 2 == 0 else ("off", "on"):
            matcher.verifier = verifier if mode == "on" else None
            t = time.perf_counter()
            matcher.match(q, k=k, exact_first=False)
            out[mode].append((time.perf_counter() - t) * 1e3)
    matcher.verifier = verifier
    return out


def main(argv: list[str] | None = None) -> int:
    from dupq.matcher import Matcher

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stored", type=int, default=100_000)
    ap.add_argument("--torch-stored", type=int, default=10_000, help="store size for the torch Matcher")
    ap.add_argument("--queries", type=int, default=1000, help="held-out queries (a p99 needs many)")
    ap.add_argument("-k", type=int, default=5)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "matcher-defaults-latency.json"))
    args = ap.parse_args(argv)
    pool = question_pool()
    queries = pool[-args.queries :]
    stored = pool[: len(pool) - args.queries][: args.stored]
    synthetic = 0
    if len(stored) < args.stored:  # top up with the dedupe benchmark's corpus (real + recombined)
        from benchmarks.dedupe import build_corpus
        from dupq.text import text_key

        have = {text_key(t) for t in pool}
        extra, _, synthetic = build_corpus(args.stored + len(pool))
        stored += [t for t in extra if text_key(t) not in have][: args.stored - len(stored)]
    rows = []
    for backend, n in (("default", len(stored)), ("torch", min(args.torch_stored, len(stored)))):
        m = Matcher(backend=backend)  # the stock encoder; verifier="auto": the shipped one
        t0 = time.perf_counter()
        m.add(stored[:n], show_progress=True)
        add_s = time.perf_counter() - t0
        lat = time_queries(m, queries, args.k)
        for mode in ("on", "off"):
            v = np.asarray(lat[mode])
            rows.append({
                "backend": m.embedder.backend, "requested": backend, "verifier": mode, "stored": len(m),
                "index": m.index.kind, "k": args.k, "queries": len(v),
                "p50_ms": round(float(np.percentile(v, 50)), 2),
                "p99_ms": round(float(np.percentile(v, 99)), 2),
                "mean_ms": round(float(v.mean()), 2), "add_seconds": round(add_s, 1),
                "adds_per_second": round(n / add_s, 1),
            })  # fmt: skip
            print(rows[-1], flush=True)
        del m
    lines = [
        "| backend | stored | index | verifier | match p50 ms | match p99 ms |",
        "|---|---:|---|---|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['backend']} | {r['stored']:,} | {r['index']} | {r['verifier']} | "
                     f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} |")  # fmt: skip
    table = "\n".join(lines)
    print("\n" + table)
    payload = {"results": rows, "table": table, "real_questions": len(pool), "queries_held_out": len(queries),
               "stored_from_dedupe_corpus": max(0, len(stored) - (len(pool) - len(queries))),
               "dedupe_corpus_recombined": synthetic}  # fmt: skip
    write_result(args.out, "default_latency.py", argv, payload)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
