"""The cosine guard (dupq.verifier.guard): where the head is out of its depth, the cosine decides."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score

from dupq.verifier.features import FEATURE_NAMES
from dupq.verifier.guard import Guard, fit_guard

COS, LEN = FEATURE_NAMES.index("cosine"), FEATURE_NAMES.index("length_log_sum")


def _set(n: int, length: float, head_good: bool, seed: int):
    """Pairs whose cosine ranks them fairly; a head that ranks them perfectly, or backwards."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = np.zeros((n, len(FEATURE_NAMES)))
    x[:, COS] = 0.6 + 0.25 * y + rng.normal(0, 0.1, n)
    x[:, LEN] = length + rng.normal(0, 0.05, n)
    head = (4.0 if head_good else -4.0) * (y - 0.5) + rng.normal(0, 0.5, n)
    return head, x, y


def test_weight_falls_with_length_and_is_capped_by_gain():
    g = Guard(coef=5.0, intercept=-3.0, midpoint=4.0, slope=4.0, gain=0.5)
    x = np.zeros((3, len(FEATURE_NAMES)))
    x[:, LEN] = [2.0, 4.0, 6.0]
    w = g.weight(x)
    assert w[0] > w[1] > w[2] and w.max() <= 0.5 and abs(w[1] - 0.25) < 1e-9
    z = g.apply(np.array([10.0, 10.0, 10.0]), x)
    assert z[2] < z[0]  # the long pair leans on the cosine's log-odds, not the head's
    assert Guard.from_dict(g.to_dict()) == g and Guard.from_dict(None) is None


def test_fit_guard_keeps_the_head_where_it_helps_and_defers_on_long_text():
    short = _set(400, 3.0, True, 0)
    long = _set(400, 5.0, False, 1)  # the head ranks long pairs backwards: it must not decide them
    head_raw = {"short": short[0], "long": long[0]}
    x = {"short": short[1], "long": long[1]}
    y = {"short": short[2], "long": long[2]}
    guard, record = fit_guard(head_raw, x, y, tolerance=0.005)
    assert record["qualified"]
    for name in ("short", "long"):
        guarded = average_precision_score(y[name], guard.apply(head_raw[name], x[name]))
        assert guarded >= record["dev_ap_cosine"][name] - 0.005, name
    ap_short = average_precision_score(y["short"], guard.apply(head_raw["short"], x["short"]))
    assert ap_short > record["dev_ap_cosine"]["short"] + 0.02  # the head's gain on short pairs survives
