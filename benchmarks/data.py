"""Data benchmark: what dupq's reader and leakage-free split cost, and what the usual alternatives leak.

Two measurements, each side by side with what a user would otherwise write:

1. **Reading** a Quora-schema TSV of ``--rows`` pairs (default 404,290, QQP's size; synthetic text, since
   the Quora file is not on this machine, written with Quora's quoting: some fields quoted with tabs,
   newlines and doubled quotes; a few questions that are literally "NA"/"null"; a few empty ones):
   ``pandas.read_csv(path, sep="\\t")`` (the usual one-liner) vs :func:`dupq.data.load_pairs` (parses,
   validates every row, derives nothing silently). Reports wall time, rows/s and what each returns for
   the planted problem rows.
2. **Splitting**: ``sklearn.model_selection.train_test_split`` on pairs (a random pair split) vs
   :func:`dupq.data.split_pairs` (components of the question graph), on the real sets in
   ``../shared/data`` (MQP, SemEval CQA, MRPC) and on the synthetic QQP-sized graph. Leakage = share of
   test pairs with at least one question (by qid or normalised text) that also occurs in train.

    python benchmarks/data.py                 # QQP-sized synthetic file + shared sets
    python benchmarks/data.py --rows 100000   # smaller

Writes ``benchmarks/results/data-splits.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import csv
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._record import write_result  # noqa: E402
from dupq.data import load_pairs, split_pairs  # noqa: E402
from dupq.text import text_key  # noqa: E402

SHARED = REPO.parent / "shared" / "data"
RESULTS = REPO / "benchmarks" / "results" / "data-splits.json"
WORDS = (
    "how what why when where which is can do does should i my the a an to in of for with best way learn "
    "python java money travel visa cook rice sleep health job career stock market india university exam "
    "phone laptop weight diet movie book love friend life business startup english spanish japan usa"
).split()


def make_quora_tsv(path: Path, rows: int, seed: int = 0) -> dict[str, int]:
    """A Quora-schema TSV with a QQP-like question graph: most questions appear once, a few very often."""
    rng = random.Random(seed)
    n_questions = int(rows * 1.33)
    texts: list[str] = []
    for i in range(n_questions):
        t = " ".join(rng.choices(WORDS, k=rng.randint(5, 14))).capitalize() + f" {i}?"
        if i % 500 == 0:
            t = f'What does "{rng.choice(WORDS)}" mean in {i}?'  # quoted field
        if i % 4001 == 0:
            t = t + "\nSecond line\twith a tab"  # Quora's file has a few multi-line questions
        texts.append(t)
    planted = {"na_text": 0, "empty": 0}
    next_new = 0
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, delimiter="\t", lineterminator="\n")
        w.writerow(["id", "qid1", "qid2", "question1", "question2", "is_duplicate"])
        for i in range(rows):
            ids: list[int] = []
            while len(ids) < 2:
                if next_new < 2 or (next_new < n_questions and rng.random() < 0.75):
                    ids.append(next_new)
                    next_new += 1
                else:  # an earlier question again, skewed to the oldest (heavy tail, like QQP)
                    old = int(next_new * rng.random() ** 4)
                    if not ids or old != ids[0]:
                        ids.append(old)
            q1, q2 = texts[ids[0]], texts[ids[1]]
            if i % 50_000 == 17:
                q2, planted["na_text"] = "NA", planted["na_text"] + 1
            if i % 100_000 == 33:
                q2, planted["empty"] = "", planted["empty"] + 1
            w.writerow([i, ids[0] + 1, ids[1] + 1, q1, q2, int(rng.random() < 0.37)])
    return planted


def leakage(train: pd.DataFrame, test: pd.DataFrame) -> float:
    """Share of test pairs that have a question (qid or normalised text) also present in train."""
    seen = set(train["qid1"]) | set(train["qid2"])
    seen_text = {text_key(t) for t in pd.concat([train["question1"], train["question2"]])}
    leaked = 0
    for q1, q2, t1, t2 in zip(test["qid1"], test["qid2"], test["question1"], test["question2"], strict=True):
        if q1 in seen or q2 in seen or text_key(t1) in seen_text or text_key(t2) in seen_text:
            leaked += 1
    return leaked / max(len(test), 1)


def compare_splits(name: str, pairs: pd.DataFrame, seed: int = 42) -> dict:
    from sklearn.model_selection import train_test_split

    t = time.perf_counter()
    train, test = train_test_split(pairs, test_size=0.1, random_state=seed)
    t_random = time.perf_counter() - t
    t = time.perf_counter()
    splits = split_pairs(pairs, dev=0.1, test=0.1, seed=seed)
    t_comp = time.perf_counter() - t
    return {
        "data": name,
        "pairs": len(pairs),
        "random": {"seconds": t_random, "test_pairs": len(test), "leakage": leakage(train, test)},
        "components": {
            "seconds": t_comp,
            "test_pairs": len(splits.test),
            "leakage": leakage(pd.concat([splits.train, splits.dev]), splits.test),
            "components": splits.info["components"],
            "largest_component": splits.info["largest_component"],
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=404_290, help="pairs in the synthetic Quora-schema file")
    ap.add_argument("--no-shared", action="store_true", help="skip the real sets in ../shared/data")
    args = ap.parse_args()

    results: dict = {"machine": platform.platform(), "python": platform.python_version(), "rows": args.rows}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "quora_duplicate_questions.tsv"
        planted = make_quora_tsv(path, args.rows)
        size_mb = path.stat().st_size / 1e6

        t = time.perf_counter()
        df = pd.read_csv(path, sep="\t")
        t_pandas = time.perf_counter() - t
        pandas_nan = int(df[["question1", "question2"]].isna().any(axis=1).sum())

        t = time.perf_counter()
        data = load_pairs(path)
        t_dupq = time.perf_counter() - t
        results["read"] = {
            "file_mb": round(size_mb, 1),
            "planted": planted,
            "pandas_read_csv": {
                "seconds": t_pandas,
                "rows": len(df),
                "rows_per_s": len(df) / t_pandas,
                "rows_with_nan_text": pandas_nan,
                "note": "NaN rows mix the literal question 'NA' with truly empty ones; nothing is reported",
            },
            "dupq_load_pairs": {
                "seconds": t_dupq,
                "rows": data.n_input_rows,
                "rows_per_s": data.n_input_rows / t_dupq,
                "pairs": len(data.pairs),
                "issues": data.issue_counts(),
            },
        }
        split_rows = [compare_splits(f"synthetic QQP-sized ({args.rows:,} pairs)", data.pairs)]
    if not args.no_shared:
        for name, rel in [
            ("MQP", "medical-question-pairs/mqp.tsv"),
            ("SemEval CQA", "semeval2016-task3-cqa-subtaskB/train-part2.tsv"),
            ("MRPC train", "mrpc/train.tsv"),
        ]:
            split_rows.insert(-1, compare_splits(name, load_pairs(SHARED / rel).pairs))
    results["split"] = split_rows

    r = results["read"]
    p, d = r["pandas_read_csv"], r["dupq_load_pairs"]
    print(f"\nReading a Quora-schema TSV: {args.rows:,} rows, {r['file_mb']} MB, planted {planted}")
    print(f"{'reader':<22} {'seconds':>8} {'rows/s':>9} {'rows':>8}  problem rows")
    print(
        f"{'pandas.read_csv':<22} {p['seconds']:>8.1f} {p['rows_per_s']:>9,.0f} {p['rows']:>8}  "
        f"{p['rows_with_nan_text']} NaN texts, unreported"
    )
    print(
        f"{'dupq.load_pairs':<22} {d['seconds']:>8.1f} {d['rows_per_s']:>9,.0f} {d['rows']:>8}  "
        f"reported: {d['issues'] or 'none'}"
    )
    print(f"dupq / pandas time: {d['seconds'] / p['seconds']:.1f}x")
    print("\nTest-set leakage (share of test pairs with a question also in train), 10% test")
    print(f"{'data':<34} {'pairs':>7} {'random split':>13} {'components':>11} {'comp. time s':>12}")
    for row in split_rows:
        print(
            f"{row['data']:<34} {row['pairs']:>7} {row['random']['leakage']:>13.1%} "
            f"{row['components']['leakage']:>11.1%} {row['components']['seconds']:>12.1f}"
        )
    write_result(RESULTS, "data.py", None, results)
    print(f"\nwritten: {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
