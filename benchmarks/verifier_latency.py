"""Added latency of the verifier per query: ``Matcher.match(q, k=5)`` with and without it, side by side;
and its throughput (pairs/s) and quality per backend (torch, int8 ONNX) and kind (cross-encoder).

The store holds the questions of ``data/sample_questions.csv``; the queries are questions from the
Quora test split (``benchmarks/quora_model.py``'s split, so ``../shared/data`` is needed). Each query is
timed alone (a Q&A backend answers one question at a time), alternating the two Matchers so both see
the same machine load.

    python benchmarks/verifier_latency.py --model models/quora --verifier models/quora-verifier

Throughput: the verifier scores the Quora test pairs (``--pairs``) with each backend in one run;
AP and the decisions' agreement with the torch path say what int8 costs in quality.

Prints p50/p99 per system and writes ``benchmarks/results/verifier-latency.json``.
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
from dupq.verifier import Verifier  # noqa: E402


def verifier_throughput(verifiers: dict, n_pairs: int) -> dict[str, dict]:
    """Pairs/s (token pass included), AP and decision agreement with the torch verifier on Quora test."""
    from sklearn.metrics import average_precision_score

    test = load_splits()["quora"].test.head(n_pairs)
    out: dict[str, dict] = {}
    ref = None
    for name, v in verifiers.items():
        v.predict(test.question1.head(32), test.question2.head(32))  # warm-up (and any export)
        t0 = time.perf_counter()
        s = v.predict(test.question1, test.question2)
        seconds = time.perf_counter() - t0
        ref = s if ref is None else ref
        out[name] = {
            "pairs": len(test),
            "pairs_per_s": round(len(test) / seconds, 1),
            "ap": float(average_precision_score(test.label, s.probability)),
            "agreement": float((s.is_duplicate == ref.is_duplicate).mean()),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(REPO / "models" / "quora"))
    ap.add_argument("--verifier", default=str(REPO / "models" / "quora-verifier"))
    ap.add_argument("--cross", default=str(REPO / "models" / "quora-cross"), help="cross-encoder verifier")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--pairs", type=int, default=1000, help="Quora test pairs for the throughput")
    ap.add_argument("-k", type=int, default=5)
    ap.add_argument("--out-json", default=str(REPO / "benchmarks" / "results" / "verifier-latency.json"))
    args = ap.parse_args(argv)
    qs = pd.read_csv(REPO / "data" / "sample_questions.csv", dtype=str, keep_default_na=False)
    qs = qs[qs["question"].str.strip() != ""]
    queries = load_splits()["quora"].test.question1.drop_duplicates().head(args.queries).tolist()
    verifiers = {
        "verifier": Verifier.load(args.verifier),
        "verifier onnx-int8": Verifier.load(args.verifier, backend="onnx-int8"),
    }
    if args.cross and (Path(args.cross) / "dupq.json").exists():
        verifiers["cross-encoder"] = Verifier.load(args.cross)
    matchers = {"bi-encoder": Matcher(args.model)}
    matchers |= {f"bi-encoder + {name}": Matcher(args.model, verifier=v) for name, v in verifiers.items()}
    for m in matchers.values():
        m.add(qs["question"].tolist())
        m.match(queries[0], k=args.k)  # warm-up
    times: dict[str, list[float]] = {name: [] for name in matchers}
    for q in queries:
        for name, m in matchers.items():  # alternating: every system sees the same load
            t0 = time.perf_counter()
            m.match(q, k=args.k)
            times[name].append((time.perf_counter() - t0) * 1000)
    rows = {
        name: {"p50_ms": float(np.percentile(t, 50)), "p99_ms": float(np.percentile(t, 99)), "n": len(t)}
        for name, t in times.items()
    }
    for name, r in rows.items():
        print(f"{name:<24} p50 {r['p50_ms']:7.1f} ms  p99 {r['p99_ms']:7.1f} ms  ({r['n']} queries)")
    throughput = verifier_throughput(verifiers, args.pairs)
    for name, r in throughput.items():
        print(
            f"{name:<24} {r['pairs_per_s']:7.1f} pairs/s  Quora test AP {r['ap']:.4f}  "
            f"same decision as torch {r['agreement']:.3f}"
        )
    payload = {
        "store_size": len(matchers["bi-encoder"]),
        "k": args.k,
        "results": rows,
        "throughput": throughput,
    }
    out = write_result(args.out_json, "verifier_latency.py", argv, payload)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
