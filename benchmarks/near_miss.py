"""Planted near-misses: does a dedupe of ``data/sample_questions.csv`` merge questions that differ?

``data/sample_questions.csv`` plants duplicate groups (``data/sample_questions_groups.csv``) among
near-miss questions written to share most words with a group member and ask something else
("reverse a *list* / a *string* in Python", "port on *Linux* / on *Windows*" — ``NEAR_MISSES`` in
``data/make_samples.py``). For each system this runs ``dupq.deduplicate`` at its default settings and
reports how many planted near-miss pairs end in one group (should be 0) and the recall of planted
duplicate pairs (should stay >= 0.8).

    python benchmarks/near_miss.py                                   # default model, and models/quora*
    python benchmarks/near_miss.py --systems default quora quora+verifier quora+cross-encoder quora-augment

Prints a table and writes ``benchmarks/results/near-miss.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import pandas as pd  # noqa: E402

from benchmarks._record import write_result  # noqa: E402
from dupq import deduplicate  # noqa: E402

DATA = REPO / "data"


def planted() -> tuple[pd.DataFrame, list[tuple[str, str]], list[tuple[str, str]]]:
    """The questions, the planted duplicate pairs and the planted near-miss pairs (both sides present)."""
    spec = importlib.util.spec_from_file_location("make_samples", DATA / "make_samples.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    qs = pd.read_csv(DATA / "sample_questions.csv", dtype=str, keep_default_na=False)
    groups = pd.read_csv(DATA / "sample_questions_groups.csv", dtype=str, keep_default_na=False)
    qs = qs.merge(groups, on="id")
    present = set(qs["question"])
    dup_pairs = [
        (a, b)
        for _, g in qs[qs["group"] != ""].groupby("group")
        for a, b in itertools.combinations(g["question"].tolist(), 2)
    ]
    near = [(a, b) for a, b in mod.NEAR_MISSES.items() if a in present and b in present]
    return qs, dup_pairs, near


def measure(system: str, model: str | None, verifier: str | None, qs, dup_pairs, near) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        res = deduplicate(
            qs[["id", "question"]],
            text_column="question",
            id_column="id",
            model=model,
            verifier=verifier,
            workdir=Path(tmp) / "w",
            show_progress=False,
        )
        seconds = time.perf_counter() - t0
    table = res.table
    group_of = dict(zip(table["question"], table["group_id"], strict=True))
    same = [group_of[a] == group_of[b] for a, b in dup_pairs]
    merged_near = [(a, b) for a, b in near if group_of[a] == group_of[b]]
    return {
        "system": system,
        "near_miss_pairs": len(near),
        "near_miss_merged": len(merged_near),
        "merged_examples": merged_near[:10],
        "planted_duplicate_pairs": len(dup_pairs),
        "duplicate_pair_recall": sum(same) / max(len(dup_pairs), 1),
        "threshold": res.summary.threshold,
        "threshold_source": res.summary.threshold_source,
        "verification": getattr(res.summary, "verification", None),
        "seconds": round(seconds, 1),
    }


def diagnose(model: str | None, verifier: str, floor: float, dup_pairs, near) -> dict:
    """Why recall is what it is: planted duplicate pairs above the candidate floor (cosine), and what
    the verifier's other operating points would accept (candidates above the floor only)."""
    import numpy as np

    from dupq.embed import Embedder
    from dupq.verifier import Verifier

    emb = Embedder(model)
    v = Verifier.load(verifier)

    def accepted(pairs: list[tuple[str, str]], threshold: float) -> int:
        a, b = emb.encode([p[0] for p in pairs]), emb.encode([p[1] for p in pairs])
        p = v.predict([x for x, _ in pairs], [y for _, y in pairs]).probability
        return int((((a * b).sum(1) >= floor) & (p >= threshold)).sum())

    a, b = emb.encode([p[0] for p in dup_pairs]), emb.encode([p[1] for p in dup_pairs])
    out: dict = {"duplicate_pairs_above_floor": float(np.mean((a * b).sum(1) >= floor)), "by_point": {}}
    for name, point in v.card.operating_points.items():
        out["by_point"][name] = {
            "threshold": point["threshold"],
            "planted_duplicate_pairs_accepted": accepted(dup_pairs, point["threshold"]),
            "near_miss_pairs_accepted": accepted(near, point["threshold"]),
        }
    return out


SYSTEMS = {
    "stock-cosine": (None, None),  # the stock encoder, no verifier (dupq's default before the shipped one)
    "default": (None, "auto"),  # what `dupq dedupe` does with no options: the shipped verifier decides
    "default+verifier": (None, str(REPO / "models" / "quora-verifier-default")),
    "quora": (str(REPO / "models" / "quora"), None),
    "quora+verifier": (str(REPO / "models" / "quora"), str(REPO / "models" / "quora-verifier")),
    "quora+cross-encoder": (str(REPO / "models" / "quora"), str(REPO / "models" / "quora-cross")),
    "quora-augment": (str(REPO / "models" / "quora-augment"), None),
    "quora-distill": (str(REPO / "models" / "quora-distill"), None),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--systems", nargs="+", default=["stock-cosine", "default"])
    ap.add_argument("--out-json", default=str(REPO / "benchmarks" / "results" / "near-miss.json"))
    args = ap.parse_args(argv)
    qs, dup_pairs, near = planted()
    rows = []
    for name in args.systems:
        model, verifier = SYSTEMS[name]
        for path in (model, verifier):
            if path not in (None, "auto") and not Path(path).exists():
                raise SystemExit(f"{name}: {path} not found (run `make quora-model` first)")
        rows.append(measure(name, model, verifier, qs, dup_pairs, near))
        r = rows[-1]
        if r["verification"]:  # pairwise, without grouping: what each operating point would accept
            chosen = "default" if verifier == "auto" else verifier
            r["diagnosis"] = diagnose(model, chosen, r["verification"]["searched_from"], dup_pairs, near)
        print(
            f"{name:<18} near-miss merged {r['near_miss_merged']}/{r['near_miss_pairs']}  "
            f"duplicate recall {r['duplicate_pair_recall']:.3f}  threshold {r['threshold']:.3f} "
            f"({r['threshold_source']})",
            flush=True,
        )
    out = write_result(args.out_json, "near_miss.py", argv, {"results": rows})
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
