"""The pairs a model is trained on, beyond the train split: a reviewer's extra pairs, near-miss
augmentation, and the fingerprint that records which pairs trained it.

Split from :mod:`dupq.training` by job (issue 26): choosing the training pairs (and keeping dev and
test questions out of them) is its own concern, separate from running the trainer.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from dupq.errors import InputError

if TYPE_CHECKING:
    from dupq.pairdata import Splits

logger = logging.getLogger(__name__)


def with_extra_pairs(
    train_pairs: pd.DataFrame, splits: Splits, paths: Sequence[str | Path]
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The train split plus the pairs of ``paths`` (read by :func:`dupq.data.load_pairs`).

    A pair sharing a question with dev or test is left out (and counted): it would leak held-out
    questions into training and flatter the calibration and the evaluation.
    """
    from dupq.data import load_pairs
    from dupq.text import text_key

    held_out = {
        text_key(t)
        for part in (splits.dev, splits.test)
        for col in ("question1", "question2")
        for t in part[col].tolist()
    }
    frames, info = [], {"files": [], "added": 0, "left_out_overlapping_dev_test": 0}
    for path in paths:
        data = load_pairs(path)
        pairs = data.pairs
        overlap = pairs["question1"].map(text_key).isin(held_out) | pairs["question2"].map(text_key).isin(
            held_out
        )
        frames.append(pairs[~overlap])
        info["files"].append({"path": str(path), "sha256": data.sha256, "pairs": int(len(pairs))})
        info["added"] += int((~overlap).sum())
        info["left_out_overlapping_dev_test"] += int(overlap.sum())
    logger.info(
        "extra pairs: %d added to train, %d left out (share a dev/test question)",
        info["added"],
        info["left_out_overlapping_dev_test"],
    )
    return pd.concat([train_pairs, *frames], ignore_index=True), info


def augmented(train_pairs: pd.DataFrame, augment: str, seed: int) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The train split plus generated near-miss pairs, and what was added (by rule and label)."""
    from dupq.augment import augment_pairs

    if augment != "near-miss":
        raise InputError(f"unknown augmentation {augment!r}; the one there is: near-miss", column="augment")
    out = augment_pairs(train_pairs, seed=seed)
    added = out[out["augment"] != ""]
    summary = {
        "kind": augment,
        "pairs_added": int(len(added)),
        "by_rule": {str(k): int(v) for k, v in added["augment"].value_counts().items()},
        "positives_added": int(added["label"].sum()),
    }
    logger.info("near-miss augmentation added %d pairs: %s", len(added), summary["by_rule"])
    return out.drop(columns=["augment"]), summary


def frame_fingerprint(pairs: pd.DataFrame) -> str:
    """sha256 over the pair texts and labels, order-sensitive (which data trained this model)."""
    h = hashlib.sha256()
    for q1, q2, lab in zip(pairs["question1"], pairs["question2"], pairs["label"], strict=True):
        h.update(f"{q1}\t{q2}\t{int(lab)}\n".encode())
    return h.hexdigest()
