"""The verification stage of a dedupe (``--verifier DIR``): cosine finds candidates, the verifier decides.

Search runs at ``threshold - verify_below`` so that duplicates the cosine scores a little low are found
too; each candidate pair with a cosine below ``verify_above`` is then decided by the verifier
(:mod:`dupq.verifier`) at its dedupe operating point (:meth:`dupq.card.ModelCard.dedupe_point`),
while pairs at or above it (near-identical wording) are accepted on the cosine alone. The summary
says how many pairs each stage decided.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from dupq.verifier import Verifier
    from dupq.verifier.tokens import TokenSource


@dataclass
class Verification:
    """What the verifier stage decided: the pairs kept, and counts for the summary."""

    keep: np.ndarray
    by_cosine: int
    verified: int
    verified_duplicate: int
    threshold: float


def verifier_threshold(verifier: Verifier) -> float:
    """The verifier's dedupe threshold on dev (:meth:`dupq.card.ModelCard.dedupe_point`: its recipe's
    own dedupe point, else precision 0.90), or its best-F1 threshold without one."""
    chosen = verifier.card.dedupe_point()
    return float(chosen["threshold"]) if chosen is not None else verifier.threshold


def verify_pairs(
    a: np.ndarray,
    b: np.ndarray,
    cosine: np.ndarray,
    texts: list[str],
    verifier: Verifier,
    *,
    threshold: float,
    verify_above: float,
    show_progress: bool = False,
    tokens: TokenSource | None = None,
) -> Verification:
    """Decide candidate pairs ``(texts[a[i]], texts[b[i]])`` with cosine ``cosine[i]``.

    Pairs with ``cosine >= verify_above`` are kept without verifying; the others are kept when the
    verifier's P(duplicate) reaches ``threshold``. ``tokens``: the texts' token vectors from the
    encode pass (:mod:`dupq.dedupe.tokens`), for a late-interaction verifier.
    """
    cosine = np.asarray(cosine)
    by_cos = cosine >= verify_above
    n_todo = int(len(by_cos) - by_cos.sum())
    keep = by_cos.copy()
    n_dup = 0
    if n_todo and hasattr(verifier, "predict_indexed") and n_todo >= len(by_cos) // 2:
        # late interaction, and most pairs to verify: score them all in place — the few at or above
        # verify_above cost little, where copies of the pairs to verify (indices, both sides) were
        # ~1 GB at a million texts' 40M candidate pairs — and let the cosine decide those few
        ok = verifier.predict_indexed(texts, a, b, tokens=tokens, show_progress=show_progress).probability
        ok = (ok >= threshold) & ~by_cos
        keep |= ok
        n_dup = int(ok.sum())
    elif n_todo:
        todo = np.flatnonzero(~by_cos)
        if hasattr(verifier, "predict_indexed"):  # late interaction: one token pass per text, no copies
            p = verifier.predict_indexed(
                texts, a[todo], b[todo], tokens=tokens, show_progress=show_progress
            ).probability
        else:
            p = verifier.predict(
                [texts[i] for i in a[todo]], [texts[i] for i in b[todo]], show_progress=show_progress
            ).probability
        ok = p >= threshold
        keep[todo[ok]] = True
        n_dup = int(ok.sum())
    return Verification(keep, int(by_cos.sum()), n_todo, n_dup, threshold)
