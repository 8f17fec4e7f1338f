"""Honest numbers for a duplicate-question encoder: pair classification, duplicate retrieval, baselines.

A fine-tuned encoder is only worth its training time if it beats what a person would try first, on
the same held-out pairs: TF-IDF cosine (no model at all) and the base encoder before fine-tuning
("zero-shot"). :func:`evaluate` puts all three in one report, each at a decision threshold chosen
the same way, so the comparison is fair.

Two views of quality are measured because users need both:

* **pair classification** — "are these two questions duplicates?" at a decision threshold on the
  cosine: accuracy, precision, recall, F1, plus threshold-free average precision and ROC-AUC;
* **duplicate retrieval** — "given a new question, is its duplicate among the top hits?": every
  question of the split is a query against all other questions of the split (exact search),
  scored with recall@1/5/10, MRR@10 and nDCG@10.

Thresholds come, in order of precedence, from an explicit argument, the model's ``dupq.json``
(calibrated on dev at training time), a calibration on ``dev_pairs``, or — flagged as optimistic —
the best F1 on the evaluated pairs themselves.

Calling the module is the same as calling :func:`evaluate` (``dupq.evaluate(model, pairs)``), so the
package can expose both the function and this module under one name.
"""

from __future__ import annotations

import logging
import math
import sys
import time
import types
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from dupq.datamodels import EvaluationReport, SystemResult
from dupq.embed import Embedder, as_embedder
from dupq.errors import EncoderLoadError, InputError, StoreError
from dupq.text import text_key

if TYPE_CHECKING:
    from scipy import sparse

logger = logging.getLogger(__name__)

#: Columns evaluation needs; ``qid1``/``qid2`` are derived from the normalised text when absent.
REQUIRED_COLUMNS = ("question1", "question2", "label")
#: The systems a report compares, in table order.
FINE_TUNED, TFIDF, ZERO_SHOT = "fine-tuned", "tfidf", "zero-shot"
#: Retrieval cut-offs.
RETRIEVAL_KS = (1, 5, 10)
#: Upper bound on the dense score block used by exact retrieval (bytes); keeps memory flat on big splits.
_BLOCK_BYTES = 64 << 20
#: t-SNE is an illustration, not a metric: cap its cost.
TSNE_MAX_QUESTIONS = 500

# Threshold provenance labels (shown in reports).
SRC_ARGUMENT = "given"
SRC_METADATA = "dupq.json (dev-calibrated at training)"
SRC_DEV = "calibrated on dev"
SRC_EVAL = "best F1 on the evaluated pairs (optimistic)"


# ================================================================================================
# Input checks and the question set of a split
# ================================================================================================
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
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

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
        graph = coo_matrix((np.ones(int(pos.sum())), (q[0, pos], q[1, pos])), shape=(n, n))
        _, cluster = connected_components(graph, directed=False)
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


# ================================================================================================
# Scorers: one interface for the fine-tuned model and the baselines
# ================================================================================================
@runtime_checkable
class Scorer(Protocol):
    """Anything that turns questions into vectors whose inner product is their similarity."""

    name: str

    def question_vectors(self, texts: Sequence[str]) -> Any:
        """Row-normalised vectors (dense ndarray or scipy sparse), one per text, input order."""

    def pair_scores(self, pairs: pd.DataFrame) -> np.ndarray:
        """Cosine similarity of each pair."""


class EmbeddingScorer:
    """Cosine of Siamese-encoder embeddings (the fine-tuned model, or the zero-shot base model)."""

    def __init__(
        self,
        embedder: Embedder | Any,
        *,
        name: str = FINE_TUNED,
        batch_size: int | None = None,
        show_progress: bool = False,
    ) -> None:
        self.embedder = as_embedder(embedder)
        self.name = name
        self.batch_size = batch_size
        self.show_progress = show_progress

    def question_vectors(self, texts: Sequence[str]) -> np.ndarray:
        return self.embedder.encode(
            list(texts), batch_size=self.batch_size, show_progress=self.show_progress, desc=self.name
        )

    def pair_scores(self, pairs: pd.DataFrame) -> np.ndarray:
        qs = QuestionSet.from_pairs(pairs)
        return _pair_dot(self.question_vectors(qs.texts), qs.t1, qs.t2)


class TfidfScorer:
    """TF-IDF cosine: the no-model baseline (word 1–2-grams, sublinear tf, L2-normalised rows).

    The vocabulary and IDF are fitted on ``fit_texts`` (the train split's questions) when given — the
    honest setting — else on the first texts it is asked about (the evaluated questions; IDF from
    the test split itself is a mild, label-free transductive advantage, reported in the notes).
    """

    name = TFIDF

    def __init__(self, fit_texts: Iterable[str] | None = None, **vectorizer_kwargs: Any) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        params = {"ngram_range": (1, 2), "sublinear_tf": True, "lowercase": True, "norm": "l2"}
        params.update(vectorizer_kwargs)
        self.vectorizer = TfidfVectorizer(**params)
        self.fitted_on: str | None = None
        if fit_texts is not None:
            self.fit(fit_texts, origin="given texts")

    def fit(self, texts: Iterable[str], *, origin: str = "given texts") -> TfidfScorer:
        texts = list(dict.fromkeys(texts))
        try:
            self.vectorizer.fit(texts)
        except ValueError as exc:  # empty vocabulary (only stop words / punctuation)
            raise InputError(f"cannot fit TF-IDF on {len(texts)} text(s): {exc}") from exc
        self.fitted_on = f"{origin} ({len(texts)} questions)"
        return self

    def question_vectors(self, texts: Sequence[str]) -> sparse.csr_matrix:
        texts = list(texts)
        if self.fitted_on is None:
            self.fit(texts, origin="evaluated questions")
        return self.vectorizer.transform(texts).tocsr()

    def pair_scores(self, pairs: pd.DataFrame) -> np.ndarray:
        qs = QuestionSet.from_pairs(pairs)
        return _pair_dot(self.question_vectors(qs.texts), qs.t1, qs.t2)


def _pair_dot(vectors: Any, i1: np.ndarray, i2: np.ndarray) -> np.ndarray:
    """Row-wise inner product of ``vectors[i1]`` and ``vectors[i2]`` (dense or sparse)."""
    if isinstance(vectors, np.ndarray):
        return np.einsum("ij,ij->i", vectors[i1], vectors[i2]).astype(np.float64)
    a, b = vectors[i1], vectors[i2]
    return np.asarray(a.multiply(b).sum(axis=1), dtype=np.float64).ravel()


def pair_similarities(
    embedder: Embedder | Any,
    pairs: pd.DataFrame,
    *,
    batch_size: int | None = None,
    show_progress: bool = False,
) -> np.ndarray:
    """Cosine similarity of each pair under ``embedder``, encoding each distinct question once."""
    return EmbeddingScorer(embedder, batch_size=batch_size, show_progress=show_progress).pair_scores(pairs)


# ================================================================================================
# Threshold calibration (shared with training)
# ================================================================================================
@dataclass(frozen=True)
class Calibration:
    """A decision threshold on the cosine plus a Platt-scaled probability of "duplicate".

    ``threshold`` maximises F1 on the data it was fitted on (normally dev); P(duplicate) for a
    cosine ``s`` is ``1 / (1 + exp(-(coef * s + intercept)))``.
    """

    threshold: float
    coef: float
    intercept: float
    f1: float

    def probability(self, scores: Any) -> np.ndarray:
        """P(duplicate) for each cosine (a logistic curve, increasing when ``coef > 0``)."""
        from scipy.special import expit  # numerically stable logistic (no overflow warnings)

        return expit(self.coef * np.asarray(scores, dtype=np.float64) + self.intercept)

    def predict(self, scores: Any) -> np.ndarray:
        """1 where the cosine reaches the threshold."""
        return (np.asarray(scores, dtype=np.float64) >= self.threshold).astype(np.int64)

    def to_dict(self) -> dict[str, Any]:
        """``{"threshold", "coef", "intercept", "f1"}`` — stored as ``calibration`` in ``dupq.json``.

        Training also copies ``threshold`` to the top level of ``dupq.json``.
        """
        return {
            "threshold": float(self.threshold),
            "coef": float(self.coef),
            "intercept": float(self.intercept),
            "f1": float(self.f1),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        """Inverse of :meth:`to_dict`; also accepts a whole ``dupq.json`` dict.

        In a ``dupq.json`` the top-level ``threshold`` wins (it is what users edit to move the
        operating point) and ``coef``/``intercept`` come from its ``calibration`` entry.
        """
        try:
            cal = data.get("calibration", data) if isinstance(data.get("calibration"), dict) else data
            threshold = data["threshold"] if "threshold" in data else cal["threshold"]
            return cls(
                threshold=float(threshold),
                coef=float(cal["coef"]),
                intercept=float(cal["intercept"]),
                f1=float(cal.get("f1", math.nan)),
            )
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise StoreError(
                f"not a dupq calibration (need 'threshold', 'coef' and 'intercept'): {exc!r}"
            ) from exc


def best_f1_threshold(scores: Any, labels: Any) -> tuple[float, float]:
    """The threshold with the highest F1 when predicting "duplicate" for ``score >= threshold``.

    Candidates are the distinct scores. **Tie rule:** among thresholds with equal best F1 the
    highest one wins (fewer predicted duplicates: a wrong merge costs more than a missed one), and
    the returned value is the midpoint between that score and the next lower distinct score — it
    classifies the fitting data identically but sits in the gap instead of on a data point, which
    generalises better. When every pair is predicted duplicate the lowest score itself is returned.
    Returns ``(threshold, f1)``.
    """
    s, y = _as_scores_labels(scores, labels)
    cuts, f1 = f1_curve(s, y)
    best = int(np.flatnonzero(f1 == f1.max())[0])  # cuts descend: the first maximum is the highest
    threshold = (cuts[best] + cuts[best + 1]) / 2 if best + 1 < len(cuts) else cuts[best]
    return float(threshold), float(f1[best])


def f1_curve(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """F1 of "duplicate when ``score >= cut``" for every distinct score ``cut``, cuts in descending order.

    One sort and two cumulative sums: exact and O(n log n), so it serves both threshold choice and the
    F1-vs-threshold plot on hundreds of thousands of pairs.
    """
    s, y = _as_scores_labels(scores, labels)
    n_pos = int(y.sum())
    if n_pos == 0:
        raise InputError("cannot choose a threshold: no duplicate (label 1) pairs")
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    tp = np.cumsum(y_sorted)
    fp = np.cumsum(1 - y_sorted)
    # last position of each run of equal scores = predicting positive for score >= that value
    last = np.flatnonzero(np.r_[s_sorted[1:] != s_sorted[:-1], True])
    return s_sorted[last], 2 * tp[last] / (tp[last] + fp[last] + n_pos)


def calibrate(scores: Any, labels: Any) -> Calibration:
    """Best-F1 threshold and Platt-scaled probabilities, fitted on (dev) similarities and labels.

    Platt scaling is a 1-d logistic regression of the label on the cosine (scikit-learn
    ``LogisticRegression``), with Platt's smoothed targets ``(N+ + 1)/(N+ + 2)`` and ``1/(N- + 2)``
    so that perfectly separated dev data still gives finite, sane probabilities instead of a step.
    """
    from sklearn.linear_model import LogisticRegression

    s, y = _as_scores_labels(scores, labels)
    if y.min() == y.max():
        raise InputError(f"cannot calibrate on pairs of one class only (all labels are {int(y[0])})")
    threshold, f1 = best_f1_threshold(s, y)
    n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
    t_pos, t_neg = (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2)
    target = np.where(y == 1, t_pos, t_neg)
    # soft targets via sample weights: each score appears once as class 1 (weight t), once as 0 (1 - t)
    x = np.r_[s, s].reshape(-1, 1)
    yy = np.r_[np.ones(len(s)), np.zeros(len(s))]
    w = np.r_[target, 1 - target]
    lr = LogisticRegression(C=1e6, max_iter=1000)
    lr.fit(x, yy, sample_weight=w)
    coef, intercept = float(lr.coef_[0, 0]), float(lr.intercept_[0])
    if coef <= 0:
        logger.warning("calibration: similarity does not increase with duplicate rate (coef=%.3g)", coef)
    return Calibration(threshold=threshold, coef=coef, intercept=intercept, f1=f1)


#: Precision targets whose thresholds ``dupq.json`` keeps beside best F1 (dedupe defaults to 0.90:
#: a wrong merge hides a question, a missed one only leaves a duplicate in place).
PRECISION_TARGETS = (0.90, 0.95)


def operating_points(scores: Any, labels: Any, precisions: Sequence[float] = PRECISION_TARGETS) -> dict:
    """Named thresholds fitted on (dev) scores: ``best_f1``, ``best_accuracy`` and ``precision_0.90`` …

    A precision point is the *lowest* threshold whose precision on these pairs reaches the target
    (the most recall at that precision); where no threshold reaches it, the most precise one, with
    ``"reached": false``. Thresholds sit midway to the next lower distinct score, as in
    :func:`best_f1_threshold`. Each point records its precision, recall, F1 and accuracy here.
    """
    s, y = _as_scores_labels(scores, labels)
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    tp = np.cumsum(y_sorted)
    fp = np.cumsum(1 - y_sorted)
    last = np.flatnonzero(np.r_[s_sorted[1:] != s_sorted[:-1], True])
    cuts, tp, fp = s_sorted[last], tp[last], fp[last]
    n_pos, n = int(y.sum()), len(y)
    precision = tp / np.maximum(tp + fp, 1)
    recall = tp / max(n_pos, 1)
    f1 = 2 * tp / (tp + fp + n_pos)
    accuracy = (tp + (n - n_pos - fp)) / n

    def point(i: int, **extra: Any) -> dict[str, Any]:
        thr = (cuts[i] + cuts[i + 1]) / 2 if i + 1 < len(cuts) else cuts[i]
        return {
            "threshold": float(thr),
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "accuracy": float(accuracy[i]),
            **extra,
        }

    points = {
        "best_f1": point(int(np.flatnonzero(f1 == f1.max())[0])),
        "best_accuracy": point(int(np.flatnonzero(accuracy == accuracy.max())[0])),
    }
    for target in precisions:
        ok = np.flatnonzero(precision >= target)
        if len(ok):
            points[f"precision_{target:.2f}"] = point(int(ok[-1]), reached=True)
        else:
            points[f"precision_{target:.2f}"] = point(int(np.argmax(precision)), reached=False)
    return points


def _as_scores_labels(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
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


# ================================================================================================
# Metrics
# ================================================================================================
def classification_metrics(scores: Any, labels: Any, threshold: float) -> dict[str, float]:
    """Pair classification at ``threshold`` (duplicate when ``score >= threshold``) plus ranking metrics.

    ``average_precision`` and ``roc_auc`` are threshold-free (scikit-learn); they are NaN when the
    pairs hold a single class. Precision is 0 when nothing is predicted duplicate.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    s, y = _as_scores_labels(scores, labels)
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


def retrieval_metrics(
    source: Any,
    pairs: pd.DataFrame,
    *,
    ks: Sequence[int] = RETRIEVAL_KS,
    block_size: int | None = None,
) -> dict[str, float]:
    """Duplicate retrieval over all questions of the split (exact search).

    ``source`` is a :class:`Scorer` (TF-IDF or embeddings), an :class:`~dupq.embed.Embedder` /
    ``SentenceTransformer`` / model path (wrapped in :class:`EmbeddingScorer`), or a precomputed
    matrix of row-normalised vectors, one per question in :func:`split_questions` order.

    Every question with at least one known duplicate is a query; the candidates are all *other*
    questions of the split; the relevant ones are the other members of its duplicate cluster (the
    transitive closure of label-1 pairs). Questions only seen in label-0 pairs are distractors.
    Unlabelled pairs count as non-duplicates, so on incompletely labelled data (QQP) the numbers
    are a lower bound. Within the top 10, equal similarities are ranked by question order.
    """
    qs = QuestionSet.from_pairs(pairs)
    if isinstance(source, np.ndarray) or _is_sparse(source):
        vectors = source
        if vectors.shape[0] != len(qs.qids):
            raise InputError(
                f"{vectors.shape[0]} vectors for {len(qs.qids)} questions (use split_questions() order)"
            )
    else:
        scorer = source if isinstance(source, Scorer) else EmbeddingScorer(source)
        vectors = scorer.question_vectors(qs.texts)[qs.qid_text]
    return _retrieval_from_vectors(vectors, qs.cluster, ks=ks, block_size=block_size)


def _is_sparse(x: Any) -> bool:
    try:
        from scipy import sparse as sp
    except ImportError:  # pragma: no cover - scipy comes with scikit-learn
        return False
    return sp.issparse(x)


def _top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
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


def _retrieval_from_vectors(
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
        top_scores, top = _top_k(scores, kmax)
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


# ================================================================================================
# The whole evaluation
# ================================================================================================
def evaluate(
    model: Any,
    pairs: pd.DataFrame,
    *,
    threshold: float | None = None,
    calibration: Calibration | dict[str, Any] | None = None,
    baselines: Sequence[str] = (TFIDF, ZERO_SHOT),
    base_model: Any = None,
    train_pairs: pd.DataFrame | None = None,
    dev_pairs: pd.DataFrame | None = None,
    out_dir: str | Path | None = None,
    plots: bool = True,
    name: str | None = None,
    device: str | None = None,
    batch_size: int | None = None,
    show_progress: bool = False,
    data_info: dict[str, Any] | None = None,
) -> EvaluationReport:
    """Evaluate ``model`` on ``pairs`` against the TF-IDF and zero-shot baselines; optionally write a report.

    ``model`` is a model directory / id, a ``SentenceTransformer`` or an :class:`~dupq.embed.Embedder`.
    Its threshold is, by precedence: ``threshold`` (or ``calibration``) > the model's ``dupq.json``
    > calibrated on ``dev_pairs`` > best F1 on ``pairs`` (optimistic, flagged in the notes).
    Each baseline gets its own threshold chosen the same way (on ``dev_pairs`` when given), so the
    comparison is fair. The zero-shot baseline is ``base_model``, else ``dupq.json``'s ``base_model``,
    else skipped with a note. TF-IDF is fitted on ``train_pairs``' questions when given.

    With ``out_dir``, writes ``report.json``, ``report.md`` and (``plots=True``) PNG plots there.
    ``data_info`` (where the pairs came from) is recorded in the report as is.
    """
    t_start = time.perf_counter()
    unknown = set(baselines) - {TFIDF, ZERO_SHOT}
    if unknown:
        raise ValueError(f"unknown baseline(s) {sorted(unknown)}; choose from {[TFIDF, ZERO_SHOT]}")
    qs = QuestionSet.from_pairs(pairs)
    dev_qs = QuestionSet.from_pairs(dev_pairs) if dev_pairs is not None and len(dev_pairs) else None
    if dev_qs is not None and dev_qs.labels.min() == dev_qs.labels.max():
        raise InputError("dev pairs hold one class only: cannot calibrate thresholds on them")
    embedder = model if isinstance(model, Embedder) else Embedder(model, device=device)
    if batch_size:
        embedder.batch_size = batch_size
    source = embedder.source
    meta = _read_meta(source)
    notes: list[str] = []
    if source and not meta:
        notes.append(
            "the evaluated model has no dupq.json (not a dupq training output): 'fine-tuned' is simply "
            "the evaluated model."
        )

    # -- fine-tuned: threshold precedence ---------------------------------------------------------
    fixed: tuple[Calibration | None, float, str] | None = None
    if calibration is not None:
        cal = calibration if isinstance(calibration, Calibration) else Calibration.from_dict(calibration)
        fixed = (cal, cal.threshold if threshold is None else float(threshold), SRC_ARGUMENT)
    elif threshold is not None:
        fixed = (None, float(threshold), SRC_ARGUMENT)
    elif meta.get("threshold") is not None:
        try:
            cal = Calibration.from_dict(meta)
        except StoreError:
            cal = None
        fixed = (cal, float(meta["threshold"]), SRC_METADATA)

    vectors: dict[str, np.ndarray] = {}
    scores: dict[str, np.ndarray] = {}
    systems: list[SystemResult] = []
    model_desc = source or type(embedder.model).__name__
    ft_scorer = EmbeddingScorer(embedder, name=FINE_TUNED, show_progress=show_progress)
    systems.append(_evaluate_system(ft_scorer, model_desc, qs, dev_qs, fixed, vectors, scores, notes))

    # -- baselines ---------------------------------------------------------------------------------
    if TFIDF in baselines:
        if train_pairs is not None and len(train_pairs):
            train_qs = check_pairs(train_pairs)
            tfidf = TfidfScorer(pd.concat([train_qs["question1"], train_qs["question2"]]).tolist())
            tfidf.fitted_on = f"train questions ({len(tfidf.vectorizer.vocabulary_)} terms)"
        else:
            tfidf = TfidfScorer()
            notes.append(
                "TF-IDF was fitted on the evaluated questions (no train pairs given): its IDF saw the "
                "test questions (label-free, but transductive)."
            )
        result = _evaluate_system(
            tfidf, "TF-IDF cosine, word 1-2-grams, sublinear tf", qs, dev_qs, None, vectors, scores, notes
        )
        result.description += f", fitted on {tfidf.fitted_on}"
        systems.append(result)
    if ZERO_SHOT in baselines:
        base = _load_base(base_model, meta, source, embedder, device, notes)
        if base is not None:
            base_scorer = EmbeddingScorer(base, name=ZERO_SHOT, show_progress=show_progress)
            systems.append(
                _evaluate_system(
                    base_scorer,
                    f"{base.source or base_model} (not fine-tuned)",
                    qs,
                    dev_qs,
                    None,
                    vectors,
                    scores,
                    notes,
                )
            )

    if any(s.threshold_source == SRC_EVAL for s in systems):
        optimistic = [s.name for s in systems if s.threshold_source == SRC_EVAL]
        notes.append(
            f"threshold chosen on the evaluated pairs for {', '.join(optimistic)} (no dev pairs given): "
            "their F1/precision/recall/accuracy are optimistic; "
            "AP, ROC-AUC and retrieval are unaffected."
        )

    n_clusters = int(np.sum(np.bincount(qs.cluster) > 1))
    report = EvaluationReport(
        name=name or _default_name(source),
        n_pairs=len(qs.labels),
        n_positive=int(qs.labels.sum()),
        n_questions=len(qs.qids),
        n_queries=int(np.sum(qs.cluster_sizes > 1)),
        n_clusters=n_clusters,
        systems=systems,
        notes=notes,
        model=source,
        data={
            **(data_info or {}),
            "dev pairs": len(dev_qs.labels) if dev_qs is not None else 0,
            "train pairs (TF-IDF fit)": len(train_pairs) if train_pairs is not None else 0,
        },
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    if out_dir is not None:
        write_report(report, out_dir, qs=qs, vectors=vectors, scores=scores, plots=plots)
    logger.info("evaluation finished in %.1fs", time.perf_counter() - t_start)
    return report


def _evaluate_system(
    scorer: Scorer,
    description: str,
    qs: QuestionSet,
    dev_qs: QuestionSet | None,
    fixed: tuple[Calibration | None, float, str] | None,
    vectors: dict[str, Any],
    scores: dict[str, np.ndarray],
    notes: list[str],
) -> SystemResult:
    """Score one system: encode the split's questions once, derive pair scores and retrieval from them."""
    t0 = time.perf_counter()
    vecs = scorer.question_vectors(qs.texts)
    s = _pair_dot(vecs, qs.t1, qs.t2)
    cal: Calibration | None
    if fixed is not None:
        cal, thr, src = fixed
    elif dev_qs is not None:
        dev_scores = _pair_dot(scorer.question_vectors(dev_qs.texts), dev_qs.t1, dev_qs.t2)
        cal = calibrate(dev_scores, dev_qs.labels)
        thr, src = cal.threshold, SRC_DEV
    else:
        thr, src, cal = best_f1_threshold(s, qs.labels)[0], SRC_EVAL, None
    metrics = classification_metrics(s, qs.labels, thr)
    if qs.labels.min() != qs.labels.max():
        metrics["best_f1"] = best_f1_threshold(s, qs.labels)[1]  # the ceiling any threshold could reach
    if cal is not None:
        p = cal.probability(s)
        metrics["brier"] = float(np.mean((p - qs.labels) ** 2))
    retrieval = _retrieval_from_vectors(vecs[qs.qid_text], qs.cluster)
    vectors[scorer.name] = vecs
    scores[scorer.name] = s
    return SystemResult(
        name=scorer.name,
        description=description,
        threshold=float(thr),
        threshold_source=src,
        classification=metrics,
        retrieval=retrieval,
        calibration=cal.to_dict() if cal is not None else None,
        seconds=time.perf_counter() - t0,
    )


def _read_meta(source: str | None) -> dict[str, Any]:
    if not source:
        return {}
    from dupq.encoder import read_metadata

    return read_metadata(source)


def _load_base(
    base_model: Any,
    meta: dict[str, Any],
    source: str | None,
    embedder: Embedder,
    device: str | None,
    notes: list[str],
) -> Embedder | None:
    """The un-fine-tuned base encoder, or None (with a note saying why it was skipped)."""
    from dupq.encoder import load_encoder

    if base_model is None:
        base_model = meta.get("base_model")
        if base_model is None:
            notes.append("zero-shot baseline skipped: no base model given and none recorded in dupq.json.")
            return None
        from_meta = True
    else:
        from_meta = False
    if isinstance(base_model, (Embedder,)):
        return base_model
    if not isinstance(base_model, (str, Path)):
        return as_embedder(base_model)
    dev = device or str(embedder.model.device)
    try:
        base = Embedder(load_encoder(base_model, device=dev), batch_size=embedder.batch_size)
    except EncoderLoadError as exc:
        if not from_meta:
            raise
        notes.append(
            f"zero-shot baseline skipped: the base model recorded in dupq.json cannot be loaded ({exc})."
        )
        return None
    if source and base.source and Path(base.source) == Path(source):
        notes.append("zero-shot baseline skipped: the base model is the evaluated model itself.")
        return None
    return base


def _default_name(source: str | None) -> str:
    return Path(source).name if source else "model"


# ================================================================================================
# Report files and plots
# ================================================================================================
def write_report(
    report: EvaluationReport,
    out_dir: str | Path,
    *,
    qs: QuestionSet | None = None,
    vectors: dict[str, Any] | None = None,
    scores: dict[str, np.ndarray] | None = None,
    plots: bool = True,
) -> dict[str, str]:
    """Write the plots (when data is given), then ``report.md`` and ``report.json`` (each atomically).

    The paths land in ``report.files``; ``report.json`` is written last so that its presence means
    the report is complete.
    """
    from dupq.io import atomic_write_json, atomic_write_text

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    if plots and qs is not None and scores:
        files.update(_write_plots(report, out, qs, vectors or {}, scores))
    files["report.md"] = str(out / "report.md")
    files["report.json"] = str(out / "report.json")
    report.files = files
    atomic_write_text(out / "report.md", report.to_markdown())
    atomic_write_json(out / "report.json", report.to_dict())
    return files


def _save_figure(fig: Any, path: Path) -> str:
    import matplotlib.pyplot as plt

    from dupq.io import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return str(path)


def _write_plots(
    report: EvaluationReport,
    out: Path,
    qs: QuestionSet,
    vectors: dict[str, Any],
    scores: dict[str, np.ndarray],
) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve

    y = qs.labels
    thresholds = {s.name: s.threshold for s in report.systems}
    files: dict[str, str] = {}
    two_classes = y.min() != y.max()

    if two_classes:
        fig, ax = plt.subplots(figsize=(6, 4.5))
        for name, s in scores.items():
            prec, rec, _ = precision_recall_curve(y, s)
            ap = report.system(name).classification.get("average_precision", math.nan)
            ax.step(rec, prec, where="post", label=f"{name} (AP {ap:.3f})")
        ax.axhline(y.mean(), color="grey", lw=0.8, ls=":", label=f"chance ({y.mean():.2f})")
        ax.set(
            xlabel="recall",
            ylabel="precision",
            title="Precision-recall, duplicate pairs",
            xlim=(0, 1),
            ylim=(0, 1.02),
        )
        ax.legend(loc="lower left")
        files["pr_curve"] = _save_figure(fig, out / "pr_curve.png")

    fig, axes = plt.subplots(1, len(scores), figsize=(4.2 * len(scores), 3.6), squeeze=False)
    for ax, (name, s) in zip(axes[0], scores.items(), strict=True):
        bins = np.linspace(min(s.min(), thresholds[name]), max(s.max(), thresholds[name]), 41)
        ax.hist(s[y == 0], bins=bins, alpha=0.6, label="not duplicate", color="tab:blue")
        ax.hist(s[y == 1], bins=bins, alpha=0.6, label="duplicate", color="tab:orange")
        ax.axvline(thresholds[name], color="black", ls="--", lw=1, label=f"threshold {thresholds[name]:.3f}")
        ax.set(title=name, xlabel="cosine similarity", ylabel="pairs")
        ax.legend(fontsize=7)
    fig.suptitle("Similarity by label")
    files["similarity_hist"] = _save_figure(fig, out / "similarity_hist.png")

    if two_classes:
        fig, ax = plt.subplots(figsize=(6, 4.5))
        for name, s in scores.items():
            cuts, f1 = f1_curve(s, y)
            keep = np.unique(np.linspace(0, len(cuts) - 1, min(len(cuts), 2000)).astype(np.int64))
            (line,) = ax.plot(cuts[keep], f1[keep], label=name)
            chosen = classification_metrics(s, y, thresholds[name])["f1"]
            ax.plot([thresholds[name]], [chosen], "o", color=line.get_color())
        ax.set(
            xlabel="threshold (cosine)",
            ylabel="F1",
            title="F1 vs threshold (dot = chosen threshold)",
            ylim=(0, 1.02),
        )
        ax.legend()
        files["f1_threshold"] = _save_figure(fig, out / "f1_threshold.png")

    tsne = _tsne_plot(qs, {k: v for k, v in vectors.items() if k != TFIDF})
    if tsne is not None:
        files["tsne"] = _save_figure(tsne, out / "tsne.png")
    else:
        report.notes.append("t-SNE plot skipped: fewer than 10 questions in duplicate clusters.")
    return files


def _tsne_plot(qs: QuestionSet, vectors: dict[str, np.ndarray]) -> Any:
    """t-SNE of the questions of the largest duplicate clusters (≤ TSNE_MAX_QUESTIONS), per encoder."""
    import matplotlib.pyplot as plt
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    sizes = np.bincount(qs.cluster)
    clusters = [c for c in np.argsort(-sizes, kind="stable") if sizes[c] > 1]
    chosen: list[int] = []
    for c in clusters:
        if len(chosen) + sizes[c] > TSNE_MAX_QUESTIONS:
            break
        chosen.append(int(c))
    members = np.flatnonzero(np.isin(qs.cluster, chosen))
    if len(members) < 10 or not vectors:
        return None
    colour = {c: i for i, c in enumerate(chosen)}
    cmap = plt.get_cmap("tab20")
    colours = [cmap(colour[c] % 20) for c in qs.cluster[members]]
    fig, axes = plt.subplots(1, len(vectors), figsize=(5.5 * len(vectors), 5), squeeze=False)
    for ax, (name, vecs) in zip(axes[0], vectors.items(), strict=True):
        x = np.asarray(vecs)[qs.qid_text[members]]
        perplexity = float(min(30.0, max(2.0, (len(members) - 1) / 3)))
        # one thread: Barnes-Hut t-SNE's OpenMP threads slow it down 10x on a busy machine
        with threadpool_limits(1):
            tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=0, max_iter=500)
            xy = tsne.fit_transform(x)
        for c in chosen:  # thin lines from each member to its cluster's centre make clusters readable
            idx = np.flatnonzero(qs.cluster[members] == c)
            centre = xy[idx].mean(axis=0)
            for i in idx:
                ax.plot(
                    [xy[i, 0], centre[0]],
                    [xy[i, 1], centre[1]],
                    color=cmap(colour[c] % 20),
                    lw=0.5,
                    alpha=0.6,
                )
        ax.scatter(xy[:, 0], xy[:, 1], c=colours, s=14)
        ax.set(
            title=f"{name}: {len(members)} questions, {len(chosen)} duplicate clusters", xticks=[], yticks=[]
        )
    fig.suptitle("t-SNE of question embeddings, coloured by duplicate cluster")
    return fig


# ================================================================================================
# Reading evaluation data for the CLI
# ================================================================================================
def load_eval_data(
    data: str | Path, *, split: str = "test", fmt: str | None = None
) -> tuple[pd.DataFrame, pd.DataFrame | None, pd.DataFrame | None, dict[str, Any]]:
    """``(pairs, train_pairs, dev_pairs, info)`` from a split directory or a pair file.

    A split directory (written by ``Splits.save``, e.g. ``MODEL/splits`` after ``dupq train``)
    gives the chosen split plus train (TF-IDF fit) and dev (baseline calibration); a single pair
    file is evaluated as is.
    """
    path = Path(data)
    if path.is_dir():
        from dupq.datamodels import pairs_from_tsv

        if split not in ("train", "dev", "test"):
            raise InputError(f"unknown split {split!r}; choose train, dev or test", file=path)
        files = {name: path / f"{name}.tsv" for name in ("train", "dev", "test")}
        if not files[split].exists():
            raise InputError(
                f"a split directory needs {split}.tsv (as written by dupq data split)", file=path
            )
        frames = {n: pairs_from_tsv(p) if p.exists() else None for n, p in files.items()}
        pairs = frames[split]
        train = frames["train"] if split != "train" else None
        dev = frames["dev"] if split != "dev" else None
        return pairs, train, dev, {"data": str(path), "split": split}
    from dupq.data import load_pairs

    loaded = load_pairs(path, fmt=fmt or "auto")
    info: dict[str, Any] = {"data": str(path), "format": loaded.fmt, "input rows": loaded.n_input_rows}
    if loaded.issues:
        # excluded rows are reported, never silently dropped
        info["rows excluded"] = ", ".join(f"{k}: {v}" for k, v in loaded.issue_counts().items())
    return loaded.pairs, None, None, info


# ``dupq.evaluate(...)`` works whether ``dupq.evaluate`` resolves to this module or to the function.
class _CallableModule(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> EvaluationReport:
        return evaluate(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
