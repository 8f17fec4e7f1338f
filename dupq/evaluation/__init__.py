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

Modules: :mod:`~dupq.evaluation.metrics` (arrays in, numbers out), :mod:`~dupq.evaluation.calibration`
(thresholds and probabilities; no model, no matplotlib), :mod:`~dupq.evaluation.scorers` (the model and
the baselines behind one interface), :mod:`~dupq.evaluation.report` (:func:`evaluate` and the report
files) and :mod:`~dupq.evaluation.plots`.
"""

from __future__ import annotations

from dupq.evaluation.calibration import (
    PRECISION_TARGETS,
    Calibration,
    best_f1_threshold,
    calibrate,
    f1_curve,
)

# Re-exported under its own name but kept out of ``__all__``: the name is also a
# model-card key, and dupq.card owns every spelling of those (issue 26).
from dupq.evaluation.calibration import operating_points as operating_points
from dupq.evaluation.metrics import (
    REQUIRED_COLUMNS,
    RETRIEVAL_KS,
    QuestionSet,
    check_pairs,
    classification_metrics,
    retrieval_from_vectors,
    split_questions,
)
from dupq.evaluation.report import (
    SRC_ARGUMENT,
    SRC_DEV,
    SRC_EVAL,
    SRC_METADATA,
    evaluate,
    load_eval_data,
    write_report,
)
from dupq.evaluation.scorers import (
    FINE_TUNED,
    TFIDF,
    ZERO_SHOT,
    EmbeddingScorer,
    Scorer,
    TfidfScorer,
    pair_similarities,
    retrieval_metrics,
)

__all__ = [
    "FINE_TUNED",
    "PRECISION_TARGETS",
    "REQUIRED_COLUMNS",
    "RETRIEVAL_KS",
    "SRC_ARGUMENT",
    "SRC_DEV",
    "SRC_EVAL",
    "SRC_METADATA",
    "TFIDF",
    "ZERO_SHOT",
    "Calibration",
    "EmbeddingScorer",
    "QuestionSet",
    "Scorer",
    "TfidfScorer",
    "best_f1_threshold",
    "calibrate",
    "check_pairs",
    "classification_metrics",
    "evaluate",
    "f1_curve",
    "load_eval_data",
    "pair_similarities",
    "retrieval_from_vectors",
    "retrieval_metrics",
    "split_questions",
    "write_report",
]
