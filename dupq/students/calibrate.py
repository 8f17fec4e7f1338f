"""A student's own thresholds: its cosines are not its teacher's, so the teacher's threshold is wrong for it.

Two ways, recorded in the student's ``dupq.json`` as ``calibration_method``:

* ``labelled dev pairs`` (``--pairs``): exactly what ``dupq train`` does on its dev split — best-F1
  threshold, Platt-scaled P(duplicate), the precision 0.90 / 0.95 operating points;
* ``teacher agreement`` (no labels): candidate pairs are mined among the texts (each text's nearest
  neighbours under the teacher *and* under the student, so both the teacher's duplicates and the
  student's false friends are in the set); the teacher decides each pair at its own threshold, and the
  student gets the threshold whose decisions agree best with those (best F1 against the teacher's
  decisions). Each operating point of the teacher gets its own student threshold the same way.

For a static student it also records (``two_tier``) how good a *candidate finder* it would be: the highest
student cosine that still keeps :data:`RECALL_TARGET` of the teacher's duplicate pairs. (A two-tier dedupe
built on it was measured not better than the transformer alone and removed: README, "Two tiers at 100k".)
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from dupq.card import decision_fields
from dupq.evaluation.calibration import best_f1_threshold

logger = logging.getLogger(__name__)

#: Share of the teacher's duplicate pairs the static student's candidate threshold must keep.
RECALL_TARGET = 0.99
#: Neighbours per text when mining candidate pairs for the label-free calibration.
MINE_K = 10


def knn_pairs(vectors: np.ndarray, k: int = MINE_K) -> np.ndarray:
    """Each row's ``k`` nearest other rows by inner product (unit vectors: cosine), as unique sorted
    ``(i, j)`` rows with ``i < j`` (exact FAISS flat search: the calibration must not miss pairs)."""
    import faiss

    n = len(vectors)
    k = min(k, n - 1)
    if k < 1:
        return np.zeros((0, 2), dtype=np.int64)
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    _, nbrs = index.search(x, k + 1)
    rows = np.repeat(np.arange(n), k + 1)
    pairs = np.stack([rows, nbrs.ravel()], axis=1)
    pairs = pairs[(pairs[:, 1] >= 0) & (pairs[:, 0] != pairs[:, 1])]
    return np.unique(np.sort(pairs, axis=1), axis=0)


def pair_cosines(vectors: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Cosine of each ``(i, j)`` pair of unit ``vectors`` (float64)."""
    a, b = vectors[pairs[:, 0]].astype(np.float64), vectors[pairs[:, 1]].astype(np.float64)
    return np.einsum("ij,ij->i", a, b)


def agreement_threshold(teacher: np.ndarray, student: np.ndarray, teacher_threshold: float) -> dict[str, Any]:
    """The student threshold whose decisions best reproduce the teacher's at ``teacher_threshold``.

    ``teacher`` and ``student`` are the two models' cosines on the same pairs. The teacher's decisions
    (``cosine >= teacher_threshold``) are the labels; the student's best-F1 threshold on them is the
    answer (ties: the highest, midway to the next lower score, as :func:`best_f1_threshold`). Where the
    teacher calls no pair a duplicate there is nothing to agree with: the teacher's threshold is kept,
    with ``"reached": False``.
    """
    labels = (np.asarray(teacher) >= teacher_threshold).astype(np.int64)
    student = np.asarray(student, dtype=np.float64)
    base = {"teacher_threshold": float(teacher_threshold), "pairs": int(len(labels))}
    if labels.sum() == 0 or labels.sum() == len(labels):
        logger.warning(
            "teacher agreement: the teacher calls %s of %d candidate pairs a duplicate at %.3f; "
            "keeping its threshold for the student",
            "none" if labels.sum() == 0 else "all",
            len(labels),
            teacher_threshold,
        )
        return {"threshold": float(teacher_threshold), "reached": False, **base}
    threshold, f1 = best_f1_threshold(student, labels)
    pred = student >= threshold
    tp = int((pred & (labels == 1)).sum())
    return {
        "threshold": float(threshold),
        "agreement_f1": float(f1),
        "agreement_precision": tp / max(int(pred.sum()), 1),
        "agreement_recall": tp / int(labels.sum()),
        "teacher_duplicates": int(labels.sum()),
        "reached": True,
        **base,
    }


def recall_threshold(
    teacher: np.ndarray, student: np.ndarray, teacher_threshold: float, recall: float = RECALL_TARGET
) -> dict[str, Any] | None:
    """The highest student cosine that keeps at least ``recall`` of the teacher's duplicate pairs
    (``teacher >= teacher_threshold``) at or above it; ``None`` when the teacher found none."""
    positives = np.sort(np.asarray(student, dtype=np.float64)[np.asarray(teacher) >= teacher_threshold])
    if len(positives) == 0:
        return None
    lose = int(np.floor((1.0 - recall) * len(positives)))  # at most this many may fall below
    cut = float(positives[lose])
    candidates = int((np.asarray(student) >= cut).sum())
    return {
        "candidate_threshold": cut,
        "recall_target": recall,
        "recall": float((positives >= cut).mean()),
        "teacher_threshold": float(teacher_threshold),
        "teacher_duplicates": int(len(positives)),
        "candidate_pairs": candidates,
        "mined_pairs": int(len(student)),
    }


def label_free(
    teacher_vecs: np.ndarray,
    student_vecs: np.ndarray,
    teacher_threshold: float,
    teacher_points: dict[str, Any],
    *,
    dedupe_threshold: float | None = None,
    k: int = MINE_K,
) -> dict[str, Any]:
    """The student's ``threshold``, ``operating_points`` and the evidence, from teacher agreement.

    ``teacher_vecs``/``student_vecs`` encode the same texts (unit rows). ``teacher_points`` is the
    teacher's ``operating_points`` (possibly empty); ``dedupe_threshold`` the teacher threshold dedupe
    uses (for the two-tier candidate threshold; default ``teacher_threshold``).
    """
    pairs = np.unique(np.concatenate([knn_pairs(teacher_vecs, k), knn_pairs(student_vecs, k)]), axis=0)
    t, s = pair_cosines(teacher_vecs, pairs), pair_cosines(student_vecs, pairs)
    top = agreement_threshold(t, s, teacher_threshold)
    points = {}
    for name, point in (teacher_points or {}).items():
        if isinstance(point, dict) and point.get("threshold") is not None:
            agreed = agreement_threshold(t, s, float(point["threshold"]))
            agreed["reached"] = bool(agreed["reached"] and point.get("reached", True))
            points[name] = agreed
    out: dict[str, Any] = {
        **decision_fields(top["threshold"], None, points),
        "calibration_method": "teacher agreement",
        "calibration_detail": {
            **top,
            "mined": f"{k} nearest neighbours of each text under teacher and student",
            "texts": int(len(teacher_vecs)),
        },
    }
    if teacher_vecs.shape == student_vecs.shape:  # a static student lives in its own (PCA) space
        cos = np.einsum("ij,ij->i", teacher_vecs, student_vecs)
        out["calibration_detail"]["mean_cosine_to_teacher"] = float(np.mean(cos))
    tier = recall_threshold(t, s, dedupe_threshold if dedupe_threshold is not None else teacher_threshold)
    if tier is not None:
        out["two_tier"] = tier
    return out


def labelled(student: Any, teacher: Any, pairs: Any) -> dict[str, Any]:
    """Calibrate the student on labelled ``pairs`` as ``dupq train`` does on dev, and measure the
    average precision both models reach there (the quality the student lost)."""
    from sklearn.metrics import average_precision_score

    from dupq.embed import Embedder
    from dupq.evaluation.scorers import pair_similarities
    from dupq.training import _operating_point

    y = pairs["label"].to_numpy()
    ap_student = float(average_precision_score(y, pair_similarities(Embedder(student), pairs)))
    ap_teacher = float(average_precision_score(y, pair_similarities(Embedder(teacher), pairs)))
    return {
        **_operating_point(student, pairs),
        "calibration_method": "labelled dev pairs",
        "calibration_detail": {
            "pairs": int(len(pairs)),
            "duplicates": int(y.sum()),
            "average_precision": ap_student,
            "teacher_average_precision": ap_teacher,
            "ap_lost": ap_teacher - ap_student,
        },
    }
