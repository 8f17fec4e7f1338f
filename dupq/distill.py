"""Distilling the verifier into the Siamese encoder (AugSBERT-style): more labelled pairs for free.

The verifier decides better than the cosine, but it only sees pairs the bi-encoder retrieved. To make
the *retriever* better, mine candidate pairs among the training questions with the bi-encoder (each
question's nearest neighbours — exactly the pairs it finds hard), let the verifier label them, and
train the bi-encoder on those labels together with the human ones. Only confident labels are kept
(P(duplicate) at least ``positive`` or at most ``negative``): a pair the verifier is unsure of would
teach noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from dupq.embed import Embedder
from dupq.text import text_key

if TYPE_CHECKING:
    from dupq.verifier import Verifier


def mine_candidates(vectors: np.ndarray, k: int, *, block: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``k`` nearest other rows by cosine (unit vectors), as unique ``(i, j)`` with ``i < j``."""
    n = len(vectors)
    k = min(k, n - 1)
    if k < 1:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    pairs = []
    for start in range(0, n, block):
        sims = vectors[start : start + block] @ vectors.T
        rows = np.arange(start, min(start + block, n))
        sims[rows - start, rows] = -np.inf  # not itself
        top = np.argpartition(-sims, k, axis=1)[:, :k]
        pairs.append(np.stack([np.repeat(rows, k), top.ravel()], axis=1))
    both = np.sort(np.concatenate(pairs), axis=1)
    both = np.unique(both, axis=0)
    return both[:, 0], both[:, 1]


def distillation_pairs(
    verifier: Verifier,
    questions: Sequence[str],
    *,
    k: int = 3,
    positive: float = 0.8,
    negative: float = 0.2,
    seed: int = 42,
) -> pd.DataFrame:
    """Verifier-labelled candidate pairs among ``questions`` (canonical pair columns + ``augment``).

    Candidates are each question's ``k`` nearest neighbours under the verifier's own encoder;
    questions with the same normalised text are one question.
    """
    by_key: dict[str, str] = {}
    for q in questions:
        if isinstance(q, str) and q.strip():
            by_key.setdefault(text_key(q), q)  # the first text of each normalised question
    uniq = list(by_key.values())
    vecs = Embedder(verifier.encoder).encode(uniq)
    i, j = mine_candidates(vecs, k)
    a = [uniq[x] for x in i]
    b = [uniq[x] for x in j]
    p = verifier.predict(a, b).probability if len(a) else np.zeros(0)
    keep = (p >= positive) | (p <= negative)
    rng = np.random.default_rng(seed)
    swap = rng.random(len(a)) < 0.5  # either question first, as people ask them
    q1 = np.where(swap, b, a)[keep]
    q2 = np.where(swap, a, b)[keep]
    return pd.DataFrame(
        {
            "qid1": [f"distil-{text_key(q)[:16]}" for q in q1],
            "qid2": [f"distil-{text_key(q)[:16]}" for q in q2],
            "question1": q1,
            "question2": q2,
            "label": (p[keep] >= positive).astype(np.int64),
            "augment": "distill",
        }
    )
