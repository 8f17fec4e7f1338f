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


def _jaccard(a: set, b: set) -> float:
    union = a | b
    return len(a & b) / len(union) if union else 1.0


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
        bigrams=frozenset(zip(w, w[1:], strict=False)),
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
    text_a: str | TextProfile,
    text_b: str | TextProfile,
) -> np.ndarray:
    """The :data:`FEATURE_NAMES` vector of one pair, from unit token vectors and the raw texts (or
    their :class:`TextProfile`, when the caller scores a text in many pairs)."""
    sim = tokens_a @ tokens_b.T if len(tokens_a) and len(tokens_b) else np.zeros((0, 0), np.float32)
    pa = text_a if isinstance(text_a, TextProfile) else text_profile(text_a)
    pb = text_b if isinstance(text_b, TextProfile) else text_profile(text_b)
    row = [float(cosine), *alignment_features(sim, content_a, content_b), *lexical_from_profiles(pa, pb)]
    return np.asarray(row, dtype=np.float32)


def content_mask(tokens: Sequence[str]) -> np.ndarray:
    """True for tokens that carry content (not a stopword or punctuation; subword pieces count)."""
    return np.fromiter(
        (not (t.lower() in STOPWORDS or not any(c.isalnum() for c in t)) for t in tokens),
        dtype=bool,
        count=len(tokens),
    )
