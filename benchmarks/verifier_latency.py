"""Added latency of the verifier per query: ``Matcher.match(q, k=5)`` with and without it, side by side.

The store holds the questions of ``data/sample_questions.csv``; the queries are questions from the
Quora test split (``benchmarks/quora_model.py``'s split, so ``../shared/data`` is needed). Each query is
timed alone (a Q&A backend answers one question at a time), alternating the two Matchers so both see
the same machine load.

    python benchmarks/verifier_latency.py --model models/quora --verifier models/quora-verifier

Prints p50/p99 per system and writes ``benchmarks/results/verifier_latency.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from benchmarks._record import write_result  # noqa: E402
from benchmarks.quora_model import load_splits  # noqa: E402
from dupq import Matcher  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(REPO / "models" / "quora"))
    ap.add_argument("--verifier", default=str(REPO / "models" / "quora-verifier"))
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("-k", type=int, default=5)
    ap.add_argument("--out-json", default=str(REPO / "benchmarks" / "results" / "verifier_latency.json"))
    args = ap.parse_args(argv)
    qs = pd.read_csv(REPO / "data" / "sample_questions.csv", dtype=str, keep_default_na=False)
    qs = qs[qs["question"].str.strip() != ""]
    queries = load_splits()["quora"].test.question1.drop_duplicates().head(args.queries).tolist()
    plain = Matcher(args.model)
    verified = Matcher(args.model, verifier=args.verifier)
    for m in (plain, verified):
        m.add(qs["question"].tolist())
        m.match(queries[0], k=args.k)  # warm-up
    times: dict[str, list[float]] = {"bi-encoder": [], "bi-encoder + verifier": []}
    for q in queries:
        for name, m in (("bi-encoder", plain), ("bi-encoder + verifier", verified)):
            t0 = time.perf_counter()
            m.match(q, k=args.k)
            times[name].append((time.perf_counter() - t0) * 1000)
    rows = {
        name: {"p50_ms": float(np.percentile(t, 50)), "p99_ms": float(np.percentile(t, 99)), "n": len(t)}
        for name, t in times.items()
    }
    for name, r in rows.items():
        print(f"{name:<24} p50 {r['p50_ms']:7.1f} ms  p99 {r['p99_ms']:7.1f} ms  ({r['n']} queries)")
    payload = {"store_size": len(plain), "k": args.k, "results": rows}
    out = write_result(args.out_json, "verifier_latency.py", argv, payload)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
