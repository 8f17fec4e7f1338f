"""Training a verifier (``dupq train --kind verifier``): features → head → dev calibration → directory.

The encoder is not changed here: the verifier reads the token vectors of the bi-encoder it will
verify (the embedded default, or a fine-tuned ``dupq train`` output), so one encoder pass per question
serves both retrieval and verification. What is learned is the head, in seconds to minutes on a CPU.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dupq.card import ModelCard
from dupq.encoder import load_encoder, model_source
from dupq.errors import InputError
from dupq.io import atomic_dir
from dupq.verifier.base import calibrate_on_dev, check_pairs, verifier_card
from dupq.verifier.features import FEATURE_NAMES
from dupq.verifier.head import HEAD_FILE, HEAD_KINDS, Head, fit_head
from dupq.verifier.model import ENCODER_DIR, VERIFIER_TYPE, Verifier, encoder_reference, pair_feature_matrix

logger = logging.getLogger(__name__)


def train_verifier(
    train_pairs: pd.DataFrame,
    dev_pairs: pd.DataFrame,
    out_dir: str | Path,
    *,
    encoder: str | Path | None = None,
    head: str = "auto",
    seed: int = 42,
    device: str | None = None,
    show_progress: bool = True,
    extra_metadata: dict[str, Any] | None = None,
) -> Verifier:
    """Fit a late-interaction verifier on labelled pairs and save it to ``out_dir``.

    ``encoder`` is the bi-encoder whose token vectors it reads (default: the embedded model).
    ``head`` is ``gbdt``, ``mlp`` or ``auto`` (both fitted; the one with the higher dev average
    precision is kept and both dev scores are recorded). The head's log-odds are Platt-scaled on dev
    and the thresholds (best F1, best accuracy, precision 0.90/0.95) are chosen on dev.
    """

    check_pairs(train_pairs, dev_pairs)
    if head not in (*HEAD_KINDS, "auto"):
        raise InputError(
            f"unknown verifier head {head!r}; choose auto, {', '.join(HEAD_KINDS)} or cross-encoder"
        )
    model = load_encoder(encoder, device=device)
    t0 = time.perf_counter()
    x_train = pair_feature_matrix(
        model, train_pairs["question1"], train_pairs["question2"], show_progress=show_progress
    )
    x_dev = pair_feature_matrix(
        model, dev_pairs["question1"], dev_pairs["question2"], show_progress=show_progress
    )
    feature_seconds = time.perf_counter() - t0
    y_train = train_pairs["label"].to_numpy().astype(np.int64)
    y_dev = dev_pairs["label"].to_numpy().astype(np.int64)

    t1 = time.perf_counter()
    chosen, best, dev_ap, platt, points = _fit_and_calibrate(x_train, y_train, x_dev, y_dev, head, seed)
    fit_seconds = time.perf_counter() - t1

    card = verifier_card(
        {"type": VERIFIER_TYPE, "head": chosen, "dev_average_precision": dev_ap},
        platt,
        points,
        encoder=encoder_reference(model),
        features=list(FEATURE_NAMES),
        extra={
            "encoder_source": model_source(model),
            "split_sizes": {"train": int(len(train_pairs)), "dev": int(len(dev_pairs))},
            "training": {
                "feature_seconds": round(feature_seconds, 2),
                "fit_seconds": round(fit_seconds, 2),
                "pairs_per_second": round(
                    (len(train_pairs) + len(dev_pairs)) / max(feature_seconds, 1e-9), 1
                ),
                "seed": seed,
            },
        },
    )
    if extra_metadata:
        card = ModelCard.from_dict({**card.to_dict(), **extra_metadata})
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        best.save(tmp / HEAD_FILE)
        if card.encoder == ENCODER_DIR:
            model.save(str(tmp / ENCODER_DIR))
        card.write(tmp)
    return Verifier(model, best, card, source=str(out_dir))


def _fit_and_calibrate(
    x_train: np.ndarray, y_train: np.ndarray, x_dev: np.ndarray, y_dev: np.ndarray, head: str, seed: int
) -> tuple[str, Head, dict[str, float], Any, dict]:
    """Fit the head kind(s), keep the best dev AP, Platt-scale its log-odds on dev, pick the thresholds."""
    from sklearn.metrics import average_precision_score

    candidates: dict[str, Head] = {}
    dev_ap: dict[str, float] = {}
    for kind in HEAD_KINDS if head == "auto" else (head,):
        candidates[kind] = fit_head(x_train, y_train, kind, seed=seed)
        dev_ap[kind] = float(average_precision_score(y_dev, candidates[kind].raw_score(x_dev)))
        logger.info("verifier head %s: dev AP %.4f", kind, dev_ap[kind])
    chosen = max(dev_ap, key=dev_ap.__getitem__)
    raw_dev = candidates[chosen].raw_score(x_dev)
    platt, points = calibrate_on_dev(raw_dev, y_dev)
    return chosen, candidates[chosen], dev_ap, platt, points
