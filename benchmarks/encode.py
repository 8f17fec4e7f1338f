"""Encoding benchmark: plain ``SentenceTransformer.encode`` vs dupq torch / onnx / onnx-int8, one run.

Same model (embedded all-MiniLM-L6-v2 by default), same CPU, same real questions (MQP + SemEval CQA,
about 5,200 unique): questions/s and the ratio to plain encode, mean/min cosine to fp32 torch, the
duplicate-detection AP on all 3,048 labelled MQP pairs per backend, and achieved GFLOP/s vs the CPU
peak (formula and peak assumptions in :mod:`dupq.bench_encode`).

    python benchmarks/encode.py                       # everything, ~2-5 min on 2 cores
    python benchmarks/encode.py --n 2000 --repeats 2  # smaller timed set, best of 2 runs
    python benchmarks/encode.py --backends plain,onnx-int8

Also available as ``dupq bench-encode``. Writes ``benchmarks/results/encode.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from dupq.bench_encode import format_table, run_encode_benchmark  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "encode.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=None, help="timed questions (default: all ~5,200)")
    ap.add_argument("--backends", default=None, help="comma list of plain,torch,onnx,onnx-int8,torch-cuda")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=1, help="interleaved runs per backend; best is reported")
    ap.add_argument("--model", default=None, help="model dir (default: embedded all-MiniLM-L6-v2)")
    ap.add_argument("--data", default=None, help="folder holding medical-question-pairs/ (../shared/data)")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    result = run_encode_benchmark(
        n=args.n,
        backends=args.backends.split(",") if args.backends else None,
        batch_size=args.batch_size,
        repeats=args.repeats,
        model=args.model,
        data_dir=args.data,
        out=args.out,
    )
    print(format_table(result))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
