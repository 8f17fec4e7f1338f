"""Which candidate pairs the verifier decides: one band, shared by dedupe and the Matcher.

The cosine finds candidates; the verifier decides those whose cosine lies in
``[threshold - VERIFY_BELOW, VERIFY_ABOVE)``. Below the band a pair is not a duplicate, at or above
it (near-identical wording) it is, both on the cosine alone. Dedupe searches from the band's floor,
so a Matcher that verified every one of its top ``k`` would decide a pair differently from a dedupe
of the same two questions; with one band they agree, and a query whose candidates all lie outside
it costs no second transformer pass (``benchmarks/default_latency.py``).
"""

from __future__ import annotations

from dupq.errors import InputError

#: How far below the cosine threshold candidates are still verified (dedupe searches from there).
VERIFY_BELOW = 0.10
#: Cosines at or above this are accepted without the verifier (near-identical wording).
VERIFY_ABOVE = 0.98


def check_band(below: float, above: float, *, max_below: float = 2.0) -> tuple[float, float]:
    """``(below, above)`` as floats, or an ``InputError`` naming the bad one. ``below`` up to 2 and
    ``above`` 1.01 let a Matcher verify every match (any cosine is at least ``threshold - 2``); a
    dedupe, which *searches* from the floor, allows ``max_below=1``."""
    if not 0.0 <= below <= max_below:
        raise InputError(f"verify_below must be in [0, {max_below:g}], got {below}", column="verify_below")
    if not -1.0 <= above <= 1.01:
        raise InputError(
            f"verify_above must be a cosine in [-1, 1] (or 1.01: verify all), got {above}",
            column="verify_above",
        )
    return float(below), float(above)
