"""The inputs of the measured students (``dupq distill``): training questions and labelled dev pairs.

    python benchmarks/student_inputs.py --out models/student-inputs

Every shared set the students touch is split the way ``benchmarks/quora_model.py`` splits it (question
components, dev 10 %, test 20 %, seed 42), so the students never see a test question and
``benchmarks/encode.py --test-splits`` measures them on the same held-out pairs:

* ``train_questions.csv`` (column ``question``): the unique questions of the Quora and MQP train splits
  (what the students learn the teacher's vectors from — no labels are used);
* ``dev_pairs.csv`` (``question1, question2, is_duplicate``): the Quora and MQP dev pairs, to calibrate
  the students' thresholds (``--pairs``).

Writes data (git-ignored under ``models/``), not results.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import pandas as pd  # noqa: E402

from dupq.data import load_shared, split_pairs  # noqa: E402

#: name -> shared set, as in benchmarks/quora_model.py.
SETS = {"quora": "quora-bimpm", "mqp": "mqp"}
SEED = 42


def splits(seed: int = SEED) -> dict:
    """Each set's component split (dev 10 %, test 20 %)."""
    return {name: split_pairs(load_shared(s).pairs, dev=0.1, test=0.2, seed=seed) for name, s in SETS.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(REPO / "models" / "student-inputs"))
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    parts = splits()
    train = pd.concat([p.train for p in parts.values()], ignore_index=True)
    questions = list(dict.fromkeys(train["question1"].tolist() + train["question2"].tolist()))
    pd.DataFrame({"question": questions}).to_csv(out / "train_questions.csv", index=False)
    dev = pd.concat([p.dev for p in parts.values()], ignore_index=True)
    dev = dev.rename(columns={"label": "is_duplicate"})[["question1", "question2", "is_duplicate"]]
    dev.to_csv(out / "dev_pairs.csv", index=False)
    for name, p in parts.items():
        print(f"{name}: train {len(p.train)}, dev {len(p.dev)}, test {len(p.test)} pairs")
    print(f"wrote {out}/train_questions.csv ({len(questions)} questions), dev_pairs.csv ({len(dev)} pairs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
