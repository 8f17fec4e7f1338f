"""Leakage-free train/dev/test splits of labelled pairs: whole question components go to one split.

In Quora Question Pairs the same question appears in many pairs. A random *pair* split puts "How do I
learn Python?" in train and again in test, and the test score then measures memorisation.
:func:`split_pairs` joins questions that share a qid *or* a normalised text into connected components
(:func:`question_components`) and assigns whole components to one split.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import pandas as pd

from dupq.errors import InputError
from dupq.pairdata import PairData, Splits
from dupq.text import text_key
from dupq.vectors import connected_components

logger = logging.getLogger(__name__)


def question_components(pairs: pd.DataFrame) -> np.ndarray:
    """Component id per pair: pairs share a component when they are linked through a question that
    has the same qid or the same normalised text (:func:`dupq.text.text_key`). Ids are numbered in
    order of first appearance, so the result depends only on the table."""
    nodes: dict[tuple[str, str], int] = {}
    keys: dict[str, str] = {}

    def node(kind: str, value: str) -> int:
        return nodes.setdefault((kind, value), len(nodes))

    def tkey(t: str) -> str:
        k = keys.get(t)
        if k is None:
            k = keys[t] = text_key(t)
        return k

    firsts, ea, eb = [], [], []
    for q1, q2, t1, t2 in zip(
        pairs["qid1"], pairs["qid2"], pairs["question1"], pairs["question2"], strict=True
    ):
        a, b = node("q", str(q1)), node("q", str(q2))
        ea += [a, a, b]
        eb += [b, node("t", tkey(str(t1))), node("t", tkey(str(t2)))]
        firsts.append(a)
    if not firsts:
        return np.zeros(0, dtype=np.int64)
    labels = connected_components(len(nodes), np.asarray(ea, np.int64), np.asarray(eb, np.int64))
    comp_of_label: dict[int, int] = {}
    out = np.empty(len(firsts), dtype=np.int64)
    for i, a in enumerate(firsts):
        out[i] = comp_of_label.setdefault(int(labels[a]), len(comp_of_label))
    return out


def split_pairs(
    pairs: pd.DataFrame | PairData, *, dev: float = 0.1, test: float = 0.1, seed: int = 42
) -> Splits:
    """Split pairs into train/dev/test so that no question (by qid or normalised text) is in two splits.

    Components of the question graph are shuffled with ``seed`` and dealt out one at a time to the
    split furthest below its target share (a component goes to dev/test only if it fits), so pair
    counts approach the fractions. A component too large for dev or test (QQP has a few giant ones)
    stays in train. Same pairs + same seed ⇒ same split.
    """
    df = pairs.pairs if isinstance(pairs, PairData) else pairs
    for name, frac in (("dev", dev), ("test", test)):
        if not 0.0 <= frac < 1.0:
            raise InputError(f"{name} fraction must be in [0, 1), got {frac}")
    if dev + test >= 1.0:
        raise InputError(f"dev + test fractions must leave something to train on, got {dev} + {test}")
    missing = [c for c in ("qid1", "qid2", "question1", "question2", "label") if c not in df.columns]
    if missing:
        raise InputError(f"pairs table lacks column {missing[0]!r}", column=missing[0])
    n = len(df)
    comp = question_components(df) if n else np.empty(0, dtype=np.int64)
    n_comp = int(comp.max()) + 1 if n else 0
    sizes = np.bincount(comp, minlength=n_comp) if n else np.empty(0, dtype=np.int64)
    targets = {"train": 0, "dev": int(round(dev * n)), "test": int(round(test * n))}
    targets["train"] = n - targets["dev"] - targets["test"]
    counts = dict.fromkeys(targets, 0)
    assign = np.empty(n_comp, dtype=object)
    order = np.random.default_rng(seed).permutation(n_comp)
    for c in order:
        s = int(sizes[c])
        best, best_gap = "train", -math.inf
        for name in ("test", "dev", "train"):
            if name != "train" and counts[name] + s > targets[name]:
                continue
            gap = (targets[name] - counts[name]) / max(targets[name], 1)
            if gap > best_gap:
                best, best_gap = name, gap
        assign[c] = best
        counts[best] += s
    per_pair = assign[comp] if n else np.empty(0, dtype=object)
    frames = {name: df[per_pair == name].reset_index(drop=True) for name in ("train", "dev", "test")}
    largest = int(sizes.max()) if n_comp else 0
    info: dict[str, Any] = {
        "components": n_comp,
        "largest_component": largest,
        "largest_component_split": str(assign[int(np.argmax(sizes))]) if n_comp else None,
        "target_fractions": {"dev": dev, "test": test},
    }
    if n and largest > 0.5 * n:
        logger.warning("one question component holds %d of %d pairs; it stays in train", largest, n)
    for name in ("dev", "test"):
        if targets[name] and not counts[name]:
            logger.warning(
                "%s split is empty: no question component is small enough for %d pairs", name, targets[name]
            )
    return Splits(frames["train"], frames["dev"], frames["test"], seed=seed, info=info)
