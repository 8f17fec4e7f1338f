"""Pair features for the late-interaction verifier: what a single cosine cannot see.

A bi-encoder squeezes a question into one vector, so "reverse a *list*" and "reverse a *string*", or
"flights from A to B" and "from B to A", land close together. The Siamese encoder's *token* vectors
still hold the difference. For each pair we align the two questions' tokens (MaxSim, as in ColBERT)
and summarise the alignment: how well the worst-matched content token is covered, whether the matched
tokens keep their order, whether numbers differ, how much of the wording is shared in order. A small
learned head (:mod:`dupq.verifier.head`) turns these into a decision.

Everything here is a pure function of arrays and strings — the model-level code lives in
:mod:`dupq.verifier.model` — so it is cheap to test and to run on cached token vectors.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

#: Function words left out of "content" tokens (subword pieces of content words are kept).
STOPWORDS = frozenset(
    """a an the and or but if of to in on at by for with from into onto about as than then so is are was
    were be been being am do does did doing have has had having i me my mine we our ours you your yours he
    him his she her hers it its they them their theirs this that these those there here what which who
    whom whose when where why how can could should would will shall may might must not no nor any some
    all each every more most much many very just also too only own same such get got getting make
    ? . , ! ; : ' " ( ) - [ ] / s t""".split()
)
_NEGATIONS = frozenset({"not", "no", "never", "nor", "without", "n't", "cannot", "cant", "dont", "doesnt"})
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]", re.IGNORECASE)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_WH = ("what", "how", "why", "when", "where", "who", "which", "whom", "whose")

FEATURE_NAMES: tuple[str, ...] = (
    "cosine",
    "maxsim_mean_min",  # the less covered side's mean MaxSim over its content tokens
    "maxsim_mean_max",
    "maxsim_worst",  # the least-matched content token of either side
    "maxsim_second_worst",
    "unmatched_share",  # share of content tokens (both sides) whose best match is below 0.6
    "order_discordance",  # share of matched-token pairs whose order flips between the questions
    "position_shift",  # mean |relative position| shift of matched tokens
    "word_jaccard",
    "content_jaccard",
    "bigram_jaccard",
    "bigram_minus_unigram",  # low when the same words appear in another order
    "only_in_one_words",  # content words in one question only (count)
    "number_mismatch",
    "numbers_present",
    "negation_mismatch",
    "wh_mismatch",
    "length_ratio",
    "length_log_sum",
)


def words(text: str) -> list[str]:
    """Lower-cased word and punctuation tokens (tokenised and untokenised text give the same words)."""
    return [w.lower() for w in _WORD.findall(text)]


def _jaccard(a: frozenset, b: frozenset) -> float:
    # the union's size from the intersection's: no third set built (a dedupe calls this millions of times)
    inter = len(a & b)
    union = len(a) + len(b) - inter
    return inter / union if union else 1.0


def _discordance(match: np.ndarray) -> float:
    """Share of index pairs (i < i') whose matched positions are in the opposite order."""
    n = len(match)
    if n < 2:
        return 0.0
    diff = match[None, :] - match[:, None]
    upper = np.triu(np.ones((n, n), dtype=bool), 1)
    return float((diff[upper] < 0).sum() / upper.sum())


def alignment_features(sim: np.ndarray, content_a: np.ndarray, content_b: np.ndarray) -> list[float]:
    """MaxSim and order features of one token similarity matrix ``sim`` (tokens of A × tokens of B).

    ``content_a``/``content_b`` are boolean masks of the content tokens; a side with none falls back
    to all its tokens (a question of stopwords only is still a question).
    """
    if sim.size == 0:
        return [0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0]
    ca = content_a if content_a.any() else np.ones(sim.shape[0], dtype=bool)
    cb = content_b if content_b.any() else np.ones(sim.shape[1], dtype=bool)
    best_a = sim.max(axis=1)[ca]
    best_b = sim.max(axis=0)[cb]
    means = sorted((float(best_a.mean()), float(best_b.mean())))
    both = np.sort(np.r_[best_a, best_b])
    second = float(both[1]) if len(both) > 1 else float(both[0])
    unmatched = float((both < 0.6).mean())
    disc, shift = [], []
    for s, mask_from, mask_to in ((sim, ca, cb), (sim.T, cb, ca)):
        sub = s[np.ix_(mask_from, mask_to)]
        keep = sub.max(axis=1) >= 0.5
        match = sub.argmax(axis=1)[keep]
        disc.append(_discordance(match))
        if keep.any():
            src = np.flatnonzero(keep) / max(sub.shape[0] - 1, 1)
            dst = match / max(sub.shape[1] - 1, 1)
            shift.append(float(np.abs(src - dst).mean()))
        else:
            shift.append(1.0)
    return [
        means[0],
        means[1],
        float(both[0]),
        second,
        unmatched,
        float(np.mean(disc)),
        float(np.mean(shift)),
    ]


def alignment_batch(
    tokens_a: Sequence[np.ndarray],
    tokens_b: Sequence[np.ndarray],
    content_a: Sequence[np.ndarray],
    content_b: Sequence[np.ndarray],
) -> np.ndarray:
    """:func:`alignment_features` of many pairs at once, ``(n_pairs, 7)``: the pairs' token vectors are
    padded into one array and every step is one numpy call for all of them (a dedupe verifies hundreds
    of thousands of pairs; per pair, numpy's call overhead was most of the cost). Same values as
    :func:`alignment_features` up to float rounding (tested)."""
    n = len(tokens_a)
    out = np.zeros((n, 7), dtype=np.float32)
    la = np.fromiter((len(t) for t in tokens_a), dtype=np.int64, count=n)
    lb = np.fromiter((len(t) for t in tokens_b), dtype=np.int64, count=n)
    empty = (la == 0) | (lb == 0)
    out[empty] = (0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0)
    rows = np.flatnonzero(~empty)
    if not len(rows):
        return out
    m, big_a, big_b = len(rows), int(la[rows].max()), int(lb[rows].max())
    dim = tokens_a[rows[0]].shape[1]
    a = np.zeros((m, big_a, dim), dtype=np.float32)
    b = np.zeros((m, big_b, dim), dtype=np.float32)
    ca = np.zeros((m, big_a), dtype=bool)
    cb = np.zeros((m, big_b), dtype=bool)
    for k, r in enumerate(rows):
        a[k, : la[r]] = tokens_a[r]
        b[k, : lb[r]] = tokens_b[r]
        ca[k, : la[r]] = content_a[r]
        cb[k, : lb[r]] = content_b[r]
    va = np.arange(big_a) < la[rows, None]
    vb = np.arange(big_b) < lb[rows, None]
    ca = np.where(ca.any(axis=1, keepdims=True), ca, va)  # no content token: all tokens count
    cb = np.where(cb.any(axis=1, keepdims=True), cb, vb)
    sim = np.matmul(a, b.transpose(0, 2, 1))
    best_a = np.where(vb[:, None, :], sim, -np.inf).max(axis=2)
    best_b = np.where(va[:, :, None], sim, -np.inf).max(axis=1)
    n_a, n_b = ca.sum(axis=1), cb.sum(axis=1)
    mean_a = np.where(ca, best_a, 0.0).sum(axis=1, dtype=np.float64) / n_a
    mean_b = np.where(cb, best_b, 0.0).sum(axis=1, dtype=np.float64) / n_b
    both = np.sort(
        np.concatenate([np.where(ca, best_a, np.inf), np.where(cb, best_b, np.inf)], axis=1), axis=1
    )
    total = n_a + n_b
    second = np.where(total > 1, both[:, 1 % both.shape[1]], both[:, 0])
    unmatched = (both < 0.6).sum(axis=1) / total
    disc_ab, shift_ab = _order_batch(sim, ca, cb)
    disc_ba, shift_ba = _order_batch(sim.transpose(0, 2, 1), cb, ca)
    out[rows] = np.stack(
        [
            np.minimum(mean_a, mean_b),
            np.maximum(mean_a, mean_b),
            both[:, 0],
            second,
            unmatched,
            (disc_ab + disc_ba) / 2,
            (shift_ab + shift_ba) / 2,
        ],
        axis=1,
    )
    return out


def _order_batch(sim: np.ndarray, c_from: np.ndarray, c_to: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pair, the order discordance and position shift of the content tokens of one side matched
    (MaxSim >= 0.5) to the other side's content tokens (:func:`alignment_features`, batched)."""
    s = np.where(c_to[:, None, :], sim, -np.inf)
    match = np.take_along_axis(np.cumsum(c_to, axis=1) - 1, s.argmax(axis=2), axis=1)
    keep = c_from & (s.max(axis=2) >= 0.5)
    kept = keep.sum(axis=1)
    size = sim.shape[1]
    upper = np.triu(np.ones((size, size), dtype=bool), 1)
    flips = (keep[:, :, None] & keep[:, None, :] & upper & (match[:, None, :] < match[:, :, None])).sum(
        axis=(1, 2)
    )
    disc = np.where(kept >= 2, flips / np.maximum(kept * (kept - 1) / 2, 1), 0.0)
    src = (np.cumsum(c_from, axis=1) - 1) / np.maximum(c_from.sum(axis=1) - 1, 1)[:, None]
    dst = match / np.maximum(c_to.sum(axis=1) - 1, 1)[:, None]
    moved = np.where(keep, np.abs(src - dst), 0.0).sum(axis=1) / np.maximum(kept, 1)
    return disc, np.where(kept > 0, moved, 1.0)


class TextProfile(NamedTuple):
    """What the lexical features read of one text, computed once per text (a dedupe scores each text
    in many pairs): its words, word/content/bigram sets, numbers, negation and question word."""

    n_words: int
    words: frozenset
    content: frozenset
    bigrams: frozenset
    numbers: frozenset
    negated: bool
    wh: str


def text_profile(text: str) -> TextProfile:
    """The :class:`TextProfile` of ``text``."""
    w = words(text)
    sw = frozenset(w)
    return TextProfile(
        n_words=len(w),
        words=sw,
        content=sw - STOPWORDS,
        # joined, not tuples: a str caches its hash, a tuple hashes its items again at every set operation
        # (words hold no whitespace, so the space keeps every bigram distinct)
        bigrams=frozenset(f"{x} {y}" for x, y in zip(w, w[1:], strict=False)),
        numbers=frozenset(_NUMBER.findall(text)),
        negated=bool(sw & _NEGATIONS),
        wh=next((x for x in w if x in _WH), ""),
    )


def lexical_from_profiles(a: TextProfile, b: TextProfile) -> list[float]:
    """:func:`lexical_features` of two texts from their profiles."""
    uni = _jaccard(a.words, b.words)
    bi = _jaccard(a.bigrams, b.bigrams)
    la, lb = max(a.n_words, 1), max(b.n_words, 1)
    return [
        uni,
        _jaccard(a.content, b.content),
        bi,
        bi - uni,
        float(len(a.content ^ b.content)),
        float(a.numbers != b.numbers),
        float(bool(a.numbers or b.numbers)),
        float(a.negated != b.negated),
        float(a.wh != b.wh),
        min(la, lb) / max(la, lb),
        float(np.log(la + lb)),
    ]


def lexical_features(text_a: str, text_b: str) -> list[float]:
    """Word-level features: overlap, order (bigrams), numbers, negation, question word, length."""
    return lexical_from_profiles(text_profile(text_a), text_profile(text_b))


def pair_features(
    cosine: float,
    tokens_a: np.ndarray,
    tokens_b: np.ndarray,
    content_a: np.ndarray,
    content_b: np.ndarray,
    text_a: str,
    text_b: str,
) -> np.ndarray:
    """The :data:`FEATURE_NAMES` vector of one pair, from unit token vectors and the raw texts: the
    pair-by-pair definition that :func:`dupq.verifier.model.indexed_feature_matrix` computes in batches."""
    sim = tokens_a @ tokens_b.T if len(tokens_a) and len(tokens_b) else np.zeros((0, 0), np.float32)
    row = [float(cosine), *alignment_features(sim, content_a, content_b), *lexical_features(text_a, text_b)]
    return np.asarray(row, dtype=np.float32)


def content_mask(tokens: Sequence[str]) -> np.ndarray:
    """True for tokens that carry content (not a stopword or punctuation; subword pieces count)."""
    return np.fromiter(
        (not (t.lower() in STOPWORDS or not any(c.isalnum() for c in t)) for t in tokens),
        dtype=bool,
        count=len(tokens),
    )
