"""Quality benchmark: does fine-tuning the Siamese encoder beat TF-IDF and the zero-shot model?

Fine-tunes the embedded default model (all-MiniLM-L6-v2) on real labelled question pairs from
``../shared/data`` — split by question components, so no test question was seen in training — and
reports, on the held-out test split, pair classification at the dev-calibrated threshold and
duplicate retrieval for: TF-IDF cosine, the zero-shot model, and each fine-tuned model.

    python benchmarks/quality.py                               # MQP, mnrl + online-contrastive, 1 epoch
    python benchmarks/quality.py --datasets mqp semeval-cqa --losses mnrl cosine --epochs 2

Prints a markdown table and writes ``benchmarks/results/quality-finetune-losses.json``. Runs on the CPU in
minutes
(MNRL trains at roughly 40 pairs/s here); a GPU is used when present.
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

from benchmarks._record import write_result  # noqa: E402
from dupq.data import load_shared, split_pairs  # noqa: E402
from dupq.evaluation import evaluate  # noqa: E402
from dupq.training import TrainConfig, train_model  # noqa: E402

COLUMNS = ("average_precision", "f1", "accuracy", "roc_auc", "recall@1", "mrr@10")


def _row(metrics: dict) -> dict:
    flat = {}
    for part in ("classification", "retrieval"):
        flat.update(metrics.get(part, {}))
    return {k: flat.get(k) for k in COLUMNS}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--datasets", nargs="+", default=["mqp"], help="shared pair sets (mqp, semeval-cqa, mrpc)"
    )
    ap.add_argument("--losses", nargs="+", default=["mnrl", "online-contrastive"])
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--eval-steps", type=int, default=25, help="dev evaluation (and checkpoint) interval")
    ap.add_argument("--work", default=str(REPO / "benchmarks" / ".cache" / "quality"))
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "quality-finetune-losses.json"))
    args = ap.parse_args(argv)

    results = []
    for name in args.datasets:
        data = load_shared(name)
        splits = split_pairs(data.pairs, dev=0.1, test=0.2, seed=args.seed)
        print(f"\n## {name}: {data.source}\n{splits.format_summary()}", flush=True)
        baseline_done = False
        for loss in args.losses:
            work = Path(args.work) / f"{name}-{loss}"
            config = TrainConfig(
                base_model="default",
                loss=loss,
                epochs=args.epochs,
                batch_size=args.batch_size,
                learning_rate=args.lr,
                seed=args.seed,
                eval_steps=args.eval_steps,
                tensorboard=False,
                show_progress=False,
                save_total_limit=1,
            )
            t0 = time.perf_counter()
            trained = train_model(splits.train, splits.dev, work, config)
            train_s = time.perf_counter() - t0
            report = evaluate(
                work,
                splits.test,
                base_model="default",
                train_pairs=splits.train,
                dev_pairs=splits.dev,
                baselines=() if baseline_done else ("tfidf", "zero-shot"),
                plots=False,
            ).to_dict()
            for metrics in report["systems"]:
                system = metrics["name"]
                label = f"fine-tuned ({loss})" if system == "fine-tuned" else system
                results.append(
                    {
                        "dataset": name,
                        "system": label,
                        **_row(metrics),
                        "train_seconds": round(train_s, 1) if system == "fine-tuned" else None,
                        "train_steps": trained.steps if system == "fine-tuned" else None,
                        "threshold": metrics.get("threshold"),
                    }
                )
            baseline_done = True
            print(f"  trained {loss}: {trained.steps} steps in {train_s:.0f}s", flush=True)

    header = ["dataset", "system", *COLUMNS, "train s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in results:
        cells = (
            [r["dataset"], r["system"]]
            + ["" if r[c] is None else f"{r[c]:.3f}" for c in COLUMNS]
            + ["" if r["train_seconds"] is None else f"{r['train_seconds']:.0f}"]
        )
        lines.append("| " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print("\n" + table)
    out = Path(args.out)
    payload = {
        "args": vars(args),
        "results": results,
        "table": table,
    }
    write_result(out, "quality.py", argv, payload)
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
