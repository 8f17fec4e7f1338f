"""The recommended Quora recipe (``make quora-model``): bi-encoder + verifier, measured against zero-shot.

Trains from the real pair sets in ``../shared/data`` (not shipped with dupq), every set split by
question components (``dupq.data.split_pairs``, dev 10 %, test 20 %, seed 42), so no test question is
seen in training or tuning:

1. **bi-encoder** (``models/quora/``): the default model fine-tuned with ``--loss`` on the Quora train
   split (plus ``--mix`` general sets), early stopping on the mixed dev split, optionally with
   near-miss augmentation (``--augment``) and AugSBERT-style distillation from the verifier
   (``--distill``: the verifier labels mined candidate pairs of the training questions);
2. **verifier** (``models/quora-verifier/``): the late-interaction head over that encoder's token
   vectors, trained on the train splits of Quora, PAWS-QQP, PAWS-Wiki and MQP;
3. **report**: average precision and accuracy (threshold: best accuracy on the same set's *dev*
   split) on every *test* split, STS-B test Spearman, for TF-IDF, zero-shot, the fine-tuned
   bi-encoder and the verifier; the cost of each (train seconds, pairs/s).

    python benchmarks/quora_model.py                         # the recipe behind `make quora-model`
    python benchmarks/quora_model.py --stages report         # re-measure existing models
    python benchmarks/quora_model.py --loss mnrl --lr 5e-6 --tag mnrl-lr5e-6 --out-json ...

Prints a markdown table and writes ``benchmarks/results/quora-model.json`` (command, git commit, CPU).
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
from dupq.data import load_shared, shared_data_dir, split_pairs  # noqa: E402

#: name -> shared set; every one is split the same way (component-disjoint, seed 42).
SETS = {
    "quora": "quora-bimpm",
    "paws-qqp": "paws-qqp",
    "paws-wiki": "paws-wiki",
    "mqp": "mqp",
    "semeval": "semeval-cqa",
}
VERIFIER_TRAIN = ("quora", "paws-qqp", "paws-wiki", "mqp")


def load_splits(seed: int = 42) -> dict[str, object]:
    """Every shared set split by question components (dev 10 %, test 20 %)."""
    return {
        name: split_pairs(load_shared(shared).pairs, dev=0.1, test=0.2, seed=seed)
        for name, shared in SETS.items()
    }


def sts_test() -> pd.DataFrame:
    """STS-B test pairs with their 0–5 gold scores (a general-semantics check, never trained on)."""
    import csv

    path = shared_data_dir() / "stsbenchmark" / "sts-test.tsv"
    df = pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE, keep_default_na=False)
    return df[["sentence1", "sentence2", "score"]]


def concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    return pd.concat(frames, ignore_index=True)


# -- stages --------------------------------------------------------------------------------------------
def train_biencoder(args: argparse.Namespace, splits: dict) -> dict:
    """Fine-tune the default model on Quora (+ mixed sets); returns the training record."""
    from dupq.training import TrainConfig, train_model

    names = ["quora", *args.mix]
    train = concat([splits[n].train for n in names])
    dev = concat([splits[n].dev for n in ["quora", *args.dev_mix]])
    if args.augment:
        from dupq.augment import augment_pairs

        train = augment_pairs(train, seed=args.seed)
    if args.distill:
        from dupq.distill import distillation_pairs
        from dupq.verifier import Verifier

        verifier = Verifier.load(args.distill, backend="onnx-int8")  # labels agree 98 % with torch, 3x faster
        extra = distillation_pairs(
            verifier, pd.concat([train.question1, train.question2]).unique(), k=args.distill_k, seed=args.seed
        )
        if args.distill_max and len(extra) > args.distill_max:  # bound the added training time
            extra = extra.sample(n=args.distill_max, random_state=args.seed)
        print(f"distillation: {len(extra)} pairs, {int(extra.label.sum())} positive", flush=True)
        train = concat([train, extra.drop(columns=["augment"])])
    cfg = TrainConfig(
        base_model="default",
        loss=args.loss,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        seed=args.seed,
        eval_steps=args.eval_steps,
        patience=args.patience,
        tensorboard=False,
        save_total_limit=1,
    )
    t0 = time.perf_counter()
    general = {f"{n}-dev": splits[n].dev for n in args.general}
    result = train_model(
        train,
        dev,
        args.model_dir,
        cfg,
        extra_metadata={"recipe": vars(args) | {"train_sets": names}},
        general_pairs=general,
    )
    return {"train_pairs": len(train), "seconds": round(time.perf_counter() - t0, 1), "steps": result.steps}


def train_the_verifier(args: argparse.Namespace, splits: dict) -> dict:
    from dupq.verifier import train_verifier

    encoder = args.model_dir if (Path(args.model_dir) / "modules.json").exists() else "default"
    if args.verifier_encoder:
        encoder = args.verifier_encoder
    train = concat([splits[n].train for n in VERIFIER_TRAIN])
    dev = concat([splits[n].dev for n in VERIFIER_TRAIN])
    t0 = time.perf_counter()
    train_verifier(
        train, dev, args.verifier_dir, encoder=encoder, seed=args.seed, extra_metadata={"recipe": vars(args)}
    )
    return {"train_pairs": len(train), "seconds": round(time.perf_counter() - t0, 1), "encoder": str(encoder)}


def train_the_cross_encoder(args: argparse.Namespace, splits: dict) -> dict:
    """The other verifier kind: a cross-encoder from the default model, on the verifier's train sets."""
    from dupq.verifier.cross import train_cross_verifier

    train = concat([splits[n].train for n in VERIFIER_TRAIN])
    dev = concat([splits[n].dev for n in VERIFIER_TRAIN])
    t0 = time.perf_counter()
    v = train_cross_verifier(
        train,
        dev,
        args.cross_dir,
        encoder=args.cross_base,
        epochs=args.cross_epochs,
        learning_rate=args.cross_lr,
        seed=args.seed,
        extra_metadata={"recipe": vars(args)},
    )
    return {
        "train_pairs": len(train),
        "seconds": round(time.perf_counter() - t0, 1),
        "dev_ap": v.metadata["verifier"]["dev_average_precision"],
    }


def _metrics(dev_s: np.ndarray, dev_y: np.ndarray, test_s: np.ndarray, test_y: np.ndarray) -> dict:
    from sklearn.metrics import average_precision_score

    from dupq.evaluation import operating_points

    t = operating_points(dev_s, dev_y)["best_accuracy"]["threshold"]
    return {
        "ap": float(average_precision_score(test_y, test_s)),
        "accuracy": float(((test_s >= t) == test_y).mean()),
        "threshold": float(t),
    }


def report(args: argparse.Namespace, splits: dict) -> list[dict]:
    """Every system on every test split (thresholds from the same set's dev split)."""
    from scipy.stats import spearmanr

    from dupq.embed import Embedder
    from dupq.encoder import load_encoder
    from dupq.evaluation import TfidfScorer
    from dupq.verifier import Verifier
    from dupq.verifier.model import pair_feature_matrix

    rows: list[dict] = []
    tfidf = TfidfScorer().fit(
        concat([splits[n].train for n in SETS]).pipe(lambda d: pd.concat([d.question1, d.question2]))
    )
    want = set(args.systems)
    systems: list[tuple[str, object, Verifier | None]] = []
    if "zero-shot" in want:
        systems.append(("zero-shot", "default", None))
    if "fine-tuned" in want and (Path(args.model_dir) / "modules.json").exists():
        systems.append(("fine-tuned", args.model_dir, None))
    if "verifier" in want and (Path(args.verifier_dir) / "dupq.json").exists():
        v = Verifier.load(args.verifier_dir)
        systems.append(("verifier", v.encoder, v))
    if "cross-encoder" in want and (Path(args.cross_dir) / "dupq.json").exists():
        systems.append(("cross-encoder", None, Verifier.load(args.cross_dir)))
    sts = sts_test()
    for name in SETS if "tfidf" in want else ():
        sp = splits[name]
        d, t = sp.dev, sp.test
        m = _metrics(tfidf.pair_scores(d), d.label.to_numpy(), tfidf.pair_scores(t), t.label.to_numpy())
        rows.append({"system": "tfidf", "set": name, **m})
    for system, enc, verifier in systems:
        model = enc if not isinstance(enc, str) else load_encoder(enc)
        t0 = time.perf_counter()
        n_pairs = 0
        for name in SETS:
            sp = splits[name]
            n_pairs += len(sp.dev) + len(sp.test)
            if model is None:  # a cross-encoder: no encoder of its own to read features from
                sd = verifier.predict(sp.dev.question1, sp.dev.question2).probability
                st = verifier.predict(sp.test.question1, sp.test.question2).probability
                rows.append(
                    {
                        "system": system,
                        "set": name,
                        **_metrics(sd, sp.dev.label.to_numpy(), st, sp.test.label.to_numpy()),
                    }
                )
                continue
            xd = pair_feature_matrix(model, sp.dev.question1, sp.dev.question2)
            xt = pair_feature_matrix(model, sp.test.question1, sp.test.question2)
            if verifier is None:
                sd, st = xd[:, 0], xt[:, 0]
            else:
                sd, st = verifier.probability_from_features(xd), verifier.probability_from_features(xt)
            rows.append(
                {
                    "system": system,
                    "set": name,
                    **_metrics(sd, sp.dev.label.to_numpy(), st, sp.test.label.to_numpy()),
                }
            )
        pairs_per_s = n_pairs / (time.perf_counter() - t0)
        if model is None:
            rows.append({"system": system, "set": "sts-b", "pairs_per_s": round(pairs_per_s, 1)})
            print(f"  measured {system}", flush=True)
            continue
        emb = Embedder(model)
        a, b = emb.encode(sts.sentence1.tolist()), emb.encode(sts.sentence2.tolist())
        rho = spearmanr((a * b).sum(1), sts.score).statistic
        rows.append(
            {"system": system, "set": "sts-b", "spearman": float(rho), "pairs_per_s": round(pairs_per_s, 1)}
        )
        print(f"  measured {system}", flush=True)
    return rows


def format_table(rows: list[dict]) -> str:
    sets = [*SETS, "sts-b"]
    systems = list(dict.fromkeys(r["system"] for r in rows))
    head = "| system | " + " | ".join(f"{s} AP / acc" if s != "sts-b" else "STS-B ρ" for s in sets) + " |"
    lines = [head, "|---|" + "---:|" * len(sets)]
    for sys_name in systems:
        cells = []
        for s in sets:
            r = next((r for r in rows if r["system"] == sys_name and r["set"] == s), None)
            if r is None:
                cells.append("")
            elif s == "sts-b":
                cells.append(f"{r['spearman']:.3f}" if "spearman" in r else "")
            else:
                cells.append(f"{r['ap']:.3f} / {r['accuracy']:.3f}")
        lines.append(f"| {sys_name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stages", default="biencoder,verifier,report")
    ap.add_argument("--model-dir", default=str(REPO / "models" / "quora"))
    ap.add_argument("--verifier-dir", default=str(REPO / "models" / "quora-verifier"))
    ap.add_argument(
        "--verifier-encoder", default=None, help="encoder for the verifier (default: the bi-encoder)"
    )
    ap.add_argument("--loss", default="online-contrastive")
    ap.add_argument("--mix", nargs="*", default=["mqp"], help="general sets mixed into bi-encoder training")
    ap.add_argument("--dev-mix", nargs="*", default=["mqp", "semeval"], help="sets mixed into the dev split")
    ap.add_argument(
        "--general",
        nargs="*",
        default=["mqp", "semeval", "paws-wiki"],
        help="dev splits checked for forgetting",
    )
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-5)
    ap.add_argument("--eval-steps", type=int, default=50)
    ap.add_argument("--patience", type=int, default=3)
    ap.add_argument("--augment", action="store_true", help="near-miss augmentation of the bi-encoder's data")
    ap.add_argument("--distill", default=None, help="a verifier directory to distil into the bi-encoder")
    ap.add_argument("--cross-dir", default=str(REPO / "models" / "quora-cross"))
    ap.add_argument("--cross-base", default="default", help="bi-encoder the cross-encoder starts from")
    ap.add_argument("--cross-epochs", type=float, default=1.0)
    ap.add_argument("--cross-lr", type=float, default=2e-5)
    ap.add_argument("--distill-k", type=int, default=3, help="neighbours mined per training question")
    ap.add_argument("--distill-max", type=int, default=0, help="at most this many distilled pairs (0: all)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--systems", nargs="+", default=["tfidf", "zero-shot", "fine-tuned", "verifier"])
    ap.add_argument("--tag", default="recipe")
    ap.add_argument("--out-json", default=str(REPO / "benchmarks" / "results" / "quora-model.json"))
    args = ap.parse_args(argv)
    stages = set(args.stages.split(","))

    t0 = time.perf_counter()
    splits = load_splits(args.seed)
    record: dict = {
        "args": vars(args),
        "split_sizes": {
            n: {k: len(getattr(s, k)) for k in ("train", "dev", "test")} for n, s in splits.items()
        },
    }
    if "biencoder" in stages:
        record["biencoder"] = train_biencoder(args, splits)
        print(f"bi-encoder: {record['biencoder']}", flush=True)
    if "verifier" in stages:
        record["verifier"] = train_the_verifier(args, splits)
        print(f"verifier: {record['verifier']}", flush=True)
    if "cross" in stages:
        record["cross_encoder"] = train_the_cross_encoder(args, splits)
        print(f"cross-encoder: {record['cross_encoder']}", flush=True)
    if "report" in stages:
        record["results"] = report(args, splits)
        record["table"] = format_table(record["results"])
        print("\n" + record["table"])
    record["seconds"] = round(time.perf_counter() - t0, 1)
    out = write_result(args.out_json, "quora_model.py", argv, record)
    print(f"\nwrote {out} ({record['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
