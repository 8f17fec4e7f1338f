"""Pair-classification and retrieval metrics over plain arrays, and the question set of a split.

Nothing here loads a model: the inputs are scores, labels and vectors, so the functions serve the
evaluation report, the benchmarks and tests alike.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dupq.errors import InputError
from dupq.text import text_key
from dupq.vectors import connected_components

#: Columns evaluation needs; ``qid1``/``qid2`` are derived from the normalised text when absent.
REQUIRED_COLUMNS = ("question1", "question2", "label")
#: Retrieval cut-offs.
RETRIEVAL_KS = (1, 5, 10)
#: Upper bound on the dense score block used by exact retrieval (bytes); keeps memory flat on big splits.
_BLOCK_BYTES = 64 << 20


def check_pairs(pairs: pd.DataFrame, *, file: str | Path | None = None) -> pd.DataFrame:
    """Validate a pairs frame (columns present, labels 0/1, questions are strings); return it indexed 0..n-1.

    ``dupq.data`` already validates what it reads; this guards frames users build by hand, with
    errors that name the row (``source_row`` when present, else the 1-based position) and column.
    """
    if not isinstance(pairs, pd.DataFrame):
        raise InputError(f"pairs must be a pandas DataFrame, not {type(pairs).__name__}", file=file)
    missing = [c for c in REQUIRED_COLUMNS if c not in pairs.columns]
    if missing:
        raise InputError(
            f"missing column(s) {missing}; found {list(pairs.columns)}", file=file, column=missing[0]
        )
    if len(pairs) == 0:
        raise InputError("no pairs to evaluate", file=file)
    pairs = pairs.reset_index(drop=True)
    rows = pairs["source_row"].tolist() if "source_row" in pairs.columns else list(range(1, len(pairs) + 1))
    for col in ("question1", "question2"):
        bad = [i for i, v in enumerate(pairs[col].tolist()) if not isinstance(v, str)]
        if bad:
            raise InputError(
                f"question is {type(pairs[col].iat[bad[0]]).__name__}, not text ({len(bad)} such row(s))",
                file=file,
                row=int(rows[bad[0]]),
                column=col,
            )
    labels = pd.to_numeric(pairs["label"], errors="coerce")
    bad_mask = ~labels.isin([0, 1])
    if bad_mask.any():
        i = int(np.flatnonzero(bad_mask.to_numpy())[0])
        raise InputError(
            f"label {pairs['label'].iat[i]!r} is not 0 or 1 ({int(bad_mask.sum())} such row(s))",
            file=file,
            row=int(rows[i]),
            column="label",
        )
    if not (pd.api.types.is_integer_dtype(pairs["label"]) and set(pairs.columns) >= {"qid1", "qid2"}):
        pairs = pairs.copy()
        pairs["label"] = labels.astype(np.int64)
        for n in ("1", "2"):
            if f"qid{n}" not in pairs.columns:
                pairs[f"qid{n}"] = [text_key(t) for t in pairs[f"question{n}"]]
    return pairs


@dataclass
class QuestionSet:
    """The questions of a split, with each pair mapped onto them (computed once per evaluation).

    * ``texts``: every distinct question text (what gets encoded, once);
    * ``t1``/``t2``: for each pair, the index of its question1/question2 in ``texts``;
    * ``qids``: every distinct question id — the identity used for retrieval;
    * ``qid_text``: for each qid, the index of its (first seen) text;
    * ``cluster``: for each qid, its duplicate cluster: connected components of the label=1 edges,
      i.e. the transitive closure of "is a duplicate of" (if A~B and B~C then C is a relevant hit for A).
    """

    texts: list[str]
    t1: np.ndarray
    t2: np.ndarray
    qids: list[str]
    qid_text: np.ndarray
    cluster: np.ndarray
    labels: np.ndarray

    @classmethod
    def from_pairs(cls, pairs: pd.DataFrame) -> QuestionSet:
        pairs = check_pairs(pairs)
        text_index: dict[str, int] = {}
        t1 = np.fromiter(
            (text_index.setdefault(t, len(text_index)) for t in pairs["question1"]), np.int64, len(pairs)
        )
        t2 = np.fromiter(
            (text_index.setdefault(t, len(text_index)) for t in pairs["question2"]), np.int64, len(pairs)
        )
        qid_index: dict[str, int] = {}
        qid_text: list[int] = []
        q = np.empty((2, len(pairs)), dtype=np.int64)
        for side, (qcol, tidx) in enumerate((("qid1", t1), ("qid2", t2))):
            for i, (qid, ti) in enumerate(zip(pairs[qcol].astype(str), tidx, strict=True)):
                j = qid_index.get(qid)
                if j is None:
                    j = qid_index[qid] = len(qid_index)
                    qid_text.append(int(ti))
                q[side, i] = j
        labels = pairs["label"].to_numpy(dtype=np.int64)
        pos = labels == 1
        n = len(qid_index)
        cluster = connected_components(n, q[0, pos], q[1, pos])
        return cls(
            texts=list(text_index),
            t1=t1,
            t2=t2,
            qids=list(qid_index),
            qid_text=np.asarray(qid_text, dtype=np.int64),
            cluster=cluster.astype(np.int64),
            labels=labels,
        )

    @property
    def cluster_sizes(self) -> np.ndarray:
        """Size of each qid's duplicate cluster (1 = no known duplicate)."""
        return np.bincount(self.cluster)[self.cluster]

    def frame(self) -> pd.DataFrame:
        """One row per question: ``qid``, ``question``, ``cluster``, ``n_duplicates`` (retrieval order)."""
        return pd.DataFrame(
            {
                "qid": self.qids,
                "question": [self.texts[i] for i in self.qid_text],
                "cluster": self.cluster,
                "n_duplicates": self.cluster_sizes - 1,
            }
        )


def split_questions(pairs: pd.DataFrame) -> pd.DataFrame:
    """The questions of a split in the order :func:`retrieval_metrics` expects precomputed vectors."""
    return QuestionSet.from_pairs(pairs).frame()


def as_scores_labels(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel()
    if len(s) != len(y):
        raise InputError(f"{len(s)} scores but {len(y)} labels")
    if len(s) == 0:
        raise InputError("no scores")
    if not np.isin(y, (0, 1)).all():
        raise InputError("labels must be 0 or 1")
    if not np.isfinite(s).all():
        raise InputError("scores contain NaN or infinity")
    return s, y.astype(np.int64)


def classification_metrics(scores: Any, labels: Any, threshold: float) -> dict[str, float]:
    """Pair classification at ``threshold`` (duplicate when ``score >= threshold``) plus ranking metrics.

    ``average_precision`` and ``roc_auc`` are threshold-free (scikit-learn); they are NaN when the
    pairs hold a single class. Precision is 0 when nothing is predicted duplicate.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    s, y = as_scores_labels(scores, labels)
    pred = s >= threshold
    tp = int(np.sum(pred & (y == 1)))
    fp = int(np.sum(pred & (y == 0)))
    fn = int(np.sum(~pred & (y == 1)))
    tn = int(np.sum(~pred & (y == 0)))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    two_classes = 0 < y.sum() < len(y)
    return {
        "threshold": float(threshold),
        "accuracy": (tp + tn) / len(y),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "average_precision": float(average_precision_score(y, s)) if two_classes else math.nan,
        "roc_auc": float(roc_auc_score(y, s)) if two_classes else math.nan,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
    }


def is_sparse(x: Any) -> bool:
    try:
        from scipy import sparse as sp
    except ImportError:  # pragma: no cover - scipy comes with scikit-learn
        return False
    return sp.issparse(x)


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest scores of each row and their columns (unordered; ties at the cut arbitrary).

    ``torch.topk`` (torch is loaded anyway for the encoder) is about 10x faster than
    ``np.argpartition`` on wide rows, and top-k selection dominates exact retrieval after the matmul.
    """
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency
        top = np.argpartition(scores, scores.shape[1] - k, axis=1)[:, -k:]
        return np.take_along_axis(scores, top, axis=1), top
    values, idx = torch.topk(torch.from_numpy(scores), k, dim=1, sorted=False)
    return values.numpy(), idx.numpy()


def retrieval_from_vectors(
    vectors: Any, cluster: np.ndarray, *, ks: Sequence[int] = RETRIEVAL_KS, block_size: int | None = None
) -> dict[str, float]:
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise ValueError("ks must be positive integers")
    n = vectors.shape[0]
    sizes = np.bincount(cluster)
    n_rel = sizes[cluster] - 1
    queries = np.flatnonzero(n_rel > 0)
    out: dict[str, float] = {"n_questions": int(n), "n_queries": int(len(queries))}
    kmax = min(max(ks + [10]), max(n - 1, 1))
    names = [f"recall@{k}" for k in ks] + ["mrr@10", "ndcg@10"]
    if len(queries) == 0 or n < 2:
        out.update(dict.fromkeys(names, math.nan))
        return out
    sums = dict.fromkeys(names, 0.0)
    discounts = 1.0 / np.log2(np.arange(2, kmax + 2))
    idcg_cum = np.cumsum(discounts)
    if block_size is None:
        block_size = max(1, min(4096, _BLOCK_BYTES // (8 * n)))
    dense = isinstance(vectors, np.ndarray)
    if dense:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    else:
        vectors = vectors.tocsr()
        vectors_t = vectors.T.tocsc()
    for start in range(0, len(queries), block_size):
        q = queries[start : start + block_size]
        scores = vectors[q] @ vectors.T if dense else (vectors[q] @ vectors_t).toarray()
        scores = np.asarray(scores, dtype=np.float32)
        scores[np.arange(len(q)), q] = -np.inf  # a question is not its own duplicate
        top_scores, top = top_k(scores, kmax)
        order = np.lexsort((top, -top_scores), axis=-1)  # by score, then by question index
        top = np.take_along_axis(top, order, axis=1)
        rel = cluster[top] == cluster[q][:, None]  # (b, kmax) relevance of each ranked hit
        total = n_rel[q].astype(np.float64)
        hits = np.cumsum(rel, axis=1)
        for k in ks:
            sums[f"recall@{k}"] += float(np.sum(hits[:, min(k, kmax) - 1] / total))
        depth = min(10, kmax)
        first = np.where(rel[:, :depth].any(axis=1), rel[:, :depth].argmax(axis=1) + 1, np.inf)
        sums["mrr@10"] += float(np.sum(1.0 / first))
        dcg = (rel[:, :depth] * discounts[:depth]).sum(axis=1)
        idcg = idcg_cum[np.minimum(n_rel[q], depth) - 1]
        sums["ndcg@10"] += float(np.sum(dcg / idcg))
    out.update({k: v / len(queries) for k, v in sums.items()})
    return out
