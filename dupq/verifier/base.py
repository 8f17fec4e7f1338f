"""What both verifier kinds share: scores, the calibrated decision, the dev calibration, the checks.

Kept apart from :mod:`.model` (late interaction) and :mod:`.cross` (cross-encoder) so that neither
kind imports the other: :meth:`dupq.verifier.Verifier.load` picks the kind from ``dupq.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from dupq.card import ModelCard
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


class CalibratedDecision:
    """The decision both kinds make the same way: a raw score (head log-odds or cross-encoder logit),
    Platt-scaled on dev into P(duplicate), compared with a probability threshold from ``dupq.json``."""

    def _init_decision(self, card: ModelCard, threshold: float | None, source: str | None) -> None:
        self.card = card
        self.source = source
        t = (card.threshold if card.threshold is not None else 0.5) if threshold is None else threshold
        self.threshold = check_probability(t)
        cal = card.calibration or {}
        self._coef = float(cal.get("coef", 1.0))
        self._intercept = float(cal.get("intercept", 0.0))

    @property
    def metadata(self) -> dict[str, Any]:
        """The model card as its JSON object (what ``dupq.json`` holds)."""
        return self.card.to_dict()

    def cosine_probability(self, cosine: np.ndarray) -> np.ndarray | None:
        """P(duplicate) from the cosine alone, on this verifier's scale, where it has such a path (a
        guarded late-interaction verifier); ``None`` otherwise. Scores the pairs it does not decide."""
        return None

    def calibrated(self, raw: np.ndarray) -> np.ndarray:
        """P(duplicate) from raw scores (Platt scaling fitted on dev)."""
        from scipy.special import expit

        return expit(self._coef * np.asarray(raw) + self._intercept)


def verifier_card(verifier: dict[str, Any], platt: Any, points: dict[str, Any], **fields: Any) -> ModelCard:
    """The model card of a verifier of either kind: its own fields, the dev Platt scaling, the dev
    operating points (best-F1 threshold by default), and any further card ``fields``."""
    extra = fields.pop("extra", {})
    return ModelCard(
        kind="verifier",
        verifier=verifier,
        threshold=points["best_f1"]["threshold"],
        calibration={"coef": platt.coef, "intercept": platt.intercept, "f1": points["best_f1"]["f1"]},
        operating_points=points,
        extra=dict(extra),
        **fields,
    )


def calibrate_on_dev(raw_dev: np.ndarray, y_dev: np.ndarray) -> tuple[Any, dict]:
    """Platt scaling of raw dev scores and the operating points of the calibrated probabilities."""
    from scipy.special import expit

    from dupq.evaluation.calibration import calibrate, operating_points

    platt = calibrate(raw_dev, y_dev)
    return platt, operating_points(expit(platt.coef * raw_dev + platt.intercept), y_dev)
