"""The cosine guard: a verifier that defers to the cosine where its head has seen little.

A head fit on labelled pairs learns what those pairs teach: on short questions, word order and the
one word that differs ("delete a *local* branch" / "a *remote* one"). Out of that domain — long
forum posts of several sentences, graded Stack Exchange questions — the alignment features drift
and the head can rank worse than the plain cosine it started from. A default verifier must never do
that, so its log-odds are a length-weighted blend with the cosine's own calibrated log-odds::

    g = gain * sigmoid(slope * (midpoint - length_log_sum))  # ~gain for short pairs, -> 0 for long
    z = g * head + (1 - g) * (coef * cosine + intercept)  # then the usual Platt scaling on dev

``length_log_sum`` is the feature ``log(words_a + words_b)``; ``gain`` (at most 1) caps the head's
weight even on short pairs. ``coef``/``intercept`` are the cosine's Platt scaling on dev pairs where
the cosine means something (not the word-scrambled PAWS sets, whose negatives are built to fool it:
there the fit flattens the cosine to nothing); ``gain``/``midpoint``/``slope`` are chosen on dev
splits (:func:`fit_guard`). The guard is stored in the model card's ``verifier.guard`` and applied by
:class:`dupq.verifier.Verifier`. Pure arrays, like the head, so it is cheap to test.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from dupq.verifier.features import FEATURE_NAMES

_COSINE = FEATURE_NAMES.index("cosine")
_LENGTH = FEATURE_NAMES.index("length_log_sum")


@dataclass(frozen=True)
class Guard:
    """The blend's numbers (see the module docstring)."""

    coef: float
    intercept: float
    midpoint: float
    slope: float
    gain: float = 1.0

    def weight(self, x: np.ndarray) -> np.ndarray:
        """The head's weight per pair (1 = the head alone, 0 = the cosine alone)."""
        from scipy.special import expit

        return self.gain * expit(self.slope * (self.midpoint - np.asarray(x, dtype=np.float64)[:, _LENGTH]))

    def apply(self, head_raw: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Blended log-odds of the head's ``head_raw`` and the cosine, per feature row of ``x``."""
        x = np.asarray(x, dtype=np.float64)
        g = self.weight(x)
        return g * np.asarray(head_raw, dtype=np.float64) + (1 - g) * (
            self.coef * x[:, _COSINE] + self.intercept
        )

    def to_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Guard | None:
        if not data:
            return None
        return cls(
            *(float(data[k]) for k in ("coef", "intercept", "midpoint", "slope")),
            float(data.get("gain", 1.0)),
        )


def fit_guard(
    head_raw: Mapping[str, np.ndarray],
    x: Mapping[str, np.ndarray],
    y: Mapping[str, np.ndarray],
    *,
    cosine_sets: Sequence[str] | None = None,
    tolerance: float = 0.005,
) -> tuple[Guard, dict[str, Any]]:
    """Choose the guard on dev splits, one per data set (``head_raw``/``x``/``y`` keyed by set name).

    The cosine's Platt scaling is fit on the dev pairs of ``cosine_sets`` (default: all). Then, over
    a grid of gains, midpoints and slopes (gain 1 with no length gate is "no guard"), the guard kept is
    the one with the highest mean dev AP among those that lose no more than ``tolerance`` AP to the
    cosine on any set; when none qualifies, the one whose worst loss is smallest. Returns the guard
    and its record (per-set dev AP of cosine, head and guarded head).
    """
    from sklearn.metrics import average_precision_score

    from dupq.evaluation.calibration import calibrate

    names = list(x)
    fit_on = list(cosine_sets or names)
    cos_all = np.concatenate([np.asarray(x[n])[:, _COSINE] for n in fit_on])
    y_all = np.concatenate([np.asarray(y[n]) for n in fit_on])
    platt = calibrate(cos_all, y_all)
    ap_cos = {n: float(average_precision_score(y[n], np.asarray(x[n])[:, _COSINE])) for n in names}
    ap_head = {n: float(average_precision_score(y[n], head_raw[n])) for n in names}
    lengths = np.concatenate([np.asarray(x[n])[:, _LENGTH] for n in names])
    mids = np.quantile(lengths, np.linspace(0.5, 0.995, 12))
    candidates = []
    for gain in (1.0, 0.8, 0.6, 0.5, 0.4, 0.3, 0.2):
        candidates.append(Guard(platt.coef, platt.intercept, 1e6, 1.0, gain))  # no length gate
        candidates += [
            Guard(platt.coef, platt.intercept, float(m), float(s), gain)
            for m in mids
            for s in (1.0, 2.0, 4.0, 8.0)
        ]
    best: tuple[tuple[int, float], Guard, dict[str, float]] | None = None
    for guard in candidates:
        ap = {n: float(average_precision_score(y[n], guard.apply(head_raw[n], x[n]))) for n in names}
        worst = min(ap[n] - ap_cos[n] for n in names)
        ok = worst >= -tolerance
        key = (int(ok), float(np.mean(list(ap.values()))) if ok else worst)
        if best is None or key > best[0]:
            best = (key, guard, ap)
    assert best is not None
    _, guard, ap = best
    record = {
        "dev_ap_cosine": ap_cos,
        "dev_ap_head": ap_head,
        "dev_ap_guarded": ap,
        "qualified": bool(best[0][0]),
        "cosine_calibrated_on": fit_on,
        "tolerance": tolerance,
        "candidates": len(candidates),
    }
    return guard, record
