"""Which verifier head, trained on which sets? Measured on the zero-shot encoder's pair features.

For every shared set (split as in ``benchmarks/quora_model.py``: components, dev 10 %, test 20 %,
seed 42) the late-interaction features of each pair are computed once with the embedded default model
and cached under ``benchmarks/.cache/verifier/``. Heads (gradient-boosted trees, MLP, logistic
regression) are fitted on the train splits of ``--train-sets`` and scored on every test split: AP and
accuracy at the best-accuracy threshold of the same set's dev split. The cosine alone is the baseline.

    python benchmarks/verifier_heads.py
    python benchmarks/verifier_heads.py --train-sets quora paws-qqp
    python benchmarks/verifier_heads.py --augment --out-json benchmarks/results/verifier-heads-augment.json

Prints a table and writes ``benchmarks/results/verifier-heads.json``.
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

from benchmarks._record import write_result  # noqa: E402
from benchmarks.quora_model import SETS, load_splits  # noqa: E402

CACHE = REPO / "benchmarks" / ".cache" / "verifier"


def features(splits: dict) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    """(set, part) -> (features, labels) with the default encoder, cached as .npz."""
    from dupq.encoder import load_encoder
    from dupq.verifier.model import pair_feature_matrix

    CACHE.mkdir(parents=True, exist_ok=True)
    out, model = {}, None
    for name in SETS:
        for part in ("train", "dev", "test"):
            path = CACHE / f"{name}_{part}.npz"
            if not path.exists():
                model = model or load_encoder("default")
                df = getattr(splits[name], part)
                x = pair_feature_matrix(model, df.question1, df.question2, show_progress=True)
                np.savez(path, X=x, y=df.label.to_numpy())
            with np.load(path) as z:
                out[(name, part)] = (z["X"], z["y"])
    return out


def augmented(splits: dict, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels of near-miss pairs generated from the train splits of ``names`` (cached)."""
    from dupq.augment import near_miss_pairs
    from dupq.encoder import load_encoder
    from dupq.verifier.model import pair_feature_matrix

    xs, ys, model = [], [], None
    for name in names:
        path = CACHE / f"{name}_augment.npz"
        if not path.exists():
            model = model or load_encoder("default")
            gen = near_miss_pairs(splits[name].train, seed=42)
            x = pair_feature_matrix(model, gen.question1, gen.question2, show_progress=True)
            np.savez(path, X=x, y=gen.label.to_numpy())
        with np.load(path) as z:
            xs.append(z["X"])
            ys.append(z["y"])
    return np.concatenate(xs), np.concatenate(ys)


def score(feats: dict, prob_dev: dict, prob_test: dict) -> dict:
    from sklearn.metrics import average_precision_score

    from dupq.evaluation import operating_points

    row = {}
    for name in SETS:
        yd, yt = feats[(name, "dev")][1], feats[(name, "test")][1]
        t = operating_points(prob_dev[name], yd)["best_accuracy"]["threshold"]
        row[name] = {
            "ap": float(average_precision_score(yt, prob_test[name])),
            "accuracy": float(((prob_test[name] >= t) == yt).mean()),
        }
    return row


def main(argv: list[str] | None = None) -> int:
    from dupq.verifier.head import fit_head

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train-sets", nargs="+", default=["quora", "paws-qqp", "paws-wiki", "mqp"])
    ap.add_argument("--augment", action="store_true", help="add near-miss pairs generated from train")
    ap.add_argument("--out-json", default=str(REPO / "benchmarks" / "results" / "verifier-heads.json"))
    args = ap.parse_args(argv)
    splits = load_splits()
    feats = features(splits)
    x = np.concatenate([feats[(n, "train")][0] for n in args.train_sets])
    y = np.concatenate([feats[(n, "train")][1] for n in args.train_sets])
    if args.augment:
        xa, ya = augmented(splits, args.train_sets)
        print(f"near-miss augmentation: +{len(ya)} pairs ({int(ya.sum())} positives)")
        x, y = np.concatenate([x, xa]), np.concatenate([y, ya])
    results = {"cosine": score(feats, {n: feats[(n, "dev")][0][:, 0] for n in SETS},
                               {n: feats[(n, "test")][0][:, 0] for n in SETS})}  # fmt: skip
    seconds = {}
    for kind in ("gbdt", "mlp", "logistic"):
        t0 = time.perf_counter()
        if kind == "logistic":
            from sklearn.linear_model import LogisticRegression
            from sklearn.preprocessing import StandardScaler

            sc = StandardScaler().fit(x)
            lr = LogisticRegression(max_iter=2000).fit(sc.transform(x), y)

            def prob(f, sc=sc, lr=lr):
                return lr.predict_proba(sc.transform(f))[:, 1]
        else:
            head = fit_head(x, y, kind)
            prob = head.probability
        seconds[kind] = round(time.perf_counter() - t0, 2)
        results[kind] = score(
            feats,
            {n: prob(feats[(n, "dev")][0]) for n in SETS},
            {n: prob(feats[(n, "test")][0]) for n in SETS},
        )
    lines = ["| system | " + " | ".join(f"{n} AP / acc" for n in SETS) + " |", "|---|" + "---:|" * len(SETS)]
    for system, row in results.items():
        cells = [f"{row[n]['ap']:.3f} / {row[n]['accuracy']:.3f}" for n in SETS]
        lines.append(f"| {system} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print(table)
    payload = {
        "encoder": "default (all-MiniLM-L6-v2, zero-shot)",
        "train_sets": args.train_sets,
        "augment": "near-miss" if args.augment else None,
        "fit_seconds": seconds,
        "results": results,
        "table": table,
    }
    out = write_result(args.out_json, "verifier_heads.py", argv, payload)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
