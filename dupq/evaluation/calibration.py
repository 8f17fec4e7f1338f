"""Decision thresholds and calibrated probabilities (shared by evaluation, training and the Matcher).

Imports neither a model nor matplotlib: the Matcher and training read a :class:`Calibration` cheaply.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dupq.errors import InputError, StoreError
from dupq.evaluation.metrics import as_scores_labels

logger = logging.getLogger(__name__)


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
    s, y = as_scores_labels(scores, labels)
    cuts, f1 = f1_curve(s, y)
    best = int(np.flatnonzero(f1 == f1.max())[0])  # cuts descend: the first maximum is the highest
    threshold = (cuts[best] + cuts[best + 1]) / 2 if best + 1 < len(cuts) else cuts[best]
    return float(threshold), float(f1[best])


def f1_curve(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """F1 of "duplicate when ``score >= cut``" for every distinct score ``cut``, cuts in descending order.

    One sort and two cumulative sums: exact and O(n log n), so it serves both threshold choice and the
    F1-vs-threshold plot on hundreds of thousands of pairs.
    """
    s, y = as_scores_labels(scores, labels)
    n_pos = int(y.sum())
    if n_pos == 0:
        raise InputError("cannot choose a threshold: no duplicate (label 1) pairs")
    cuts, tp, fp = _cut_counts(s, y)
    return cuts, 2 * tp / (tp + fp + n_pos)


def _cut_counts(s: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct scores in descending order, with the true and false positives of "duplicate when
    ``score >= cut``" at each (one sort, two cumulative sums)."""
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    tp = np.cumsum(y_sorted)
    fp = np.cumsum(1 - y_sorted)
    # last position of each run of equal scores = predicting positive for score >= that value
    last = np.flatnonzero(np.r_[s_sorted[1:] != s_sorted[:-1], True])
    return s_sorted[last], tp[last], fp[last]


def calibrate(scores: Any, labels: Any) -> Calibration:
    """Best-F1 threshold and Platt-scaled probabilities, fitted on (dev) similarities and labels.

    Platt scaling is a 1-d logistic regression of the label on the cosine (scikit-learn
    ``LogisticRegression``), with Platt's smoothed targets ``(N+ + 1)/(N+ + 2)`` and ``1/(N- + 2)``
    so that perfectly separated dev data still gives finite, sane probabilities instead of a step.
    """
    from sklearn.linear_model import LogisticRegression

    s, y = as_scores_labels(scores, labels)
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
    s, y = as_scores_labels(scores, labels)
    cuts, tp, fp = _cut_counts(s, y)
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
