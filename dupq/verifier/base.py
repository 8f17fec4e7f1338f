"""What both verifier kinds share: their scores, their threshold check, their training-data check.

Kept apart from :mod:`.model` (late interaction) and :mod:`.cross` (cross-encoder) so that neither
kind imports the other: :meth:`dupq.verifier.Verifier.load` picks the kind from ``dupq.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from dupq.errors import InputError


@dataclass
class VerifierScores:
    """Per pair: the bi-encoder cosine, the verifier's P(duplicate) and its decision."""

    similarity: np.ndarray
    probability: np.ndarray
    is_duplicate: np.ndarray


def check_pairs(train_pairs: pd.DataFrame, dev_pairs: pd.DataFrame) -> None:
    """Both splits need both labels: a head (or a calibration) fitted on one class decides nothing."""
    for name, frame in (("train", train_pairs), ("dev", dev_pairs)):
        if len(frame) == 0 or frame["label"].nunique() < 2:
            raise InputError(
                f"the {name} pairs need both duplicate and non-duplicate pairs to train a verifier"
            )


def check_probability(t: Any) -> float:
    try:
        value = float(t)
    except (TypeError, ValueError):
        raise InputError(f"verifier threshold {t!r} is not a number", column="threshold") from None
    if not 0.0 <= value <= 1.0:
        raise InputError(
            f"verifier threshold {value} is outside the probability range [0, 1]", column="threshold"
        )
    return value
