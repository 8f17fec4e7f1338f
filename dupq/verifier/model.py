"""The verifier: a second-stage duplicate decision over the bi-encoder's candidate pairs.

The bi-encoder stays the retriever (one vector per question, FAISS search); the verifier decides.
It is *late interaction* on the same Siamese encoder: each question is encoded once into token
vectors, each candidate pair is summarised by alignment and lexical features
(:mod:`dupq.verifier.features`), and a small head trained on labelled pairs
(:mod:`dupq.verifier.head`) gives P(duplicate). It stays Siamese — no pair is ever fed through the
transformer together — so the cost is one encoder pass per question, as for retrieval.

A verifier directory holds ``dupq.json`` (``"kind": "verifier"``, feature names, the dev-calibrated
threshold and operating points, provenance), ``head.npz`` and, unless it runs on the embedded
default model, the encoder it was trained with under ``encoder/``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm.auto import tqdm

from dupq.card import CARD_FILE, ModelCard
from dupq.encoder import DEFAULT_ALIASES, load_encoder, model_source
from dupq.errors import InputError, StoreError
from dupq.verifier.base import CalibratedDecision, VerifierScores
from dupq.verifier.features import (
    FEATURE_NAMES,
    TextProfile,
    alignment_batch,
    lexical_from_profiles,
    text_profile,
)
from dupq.verifier.guard import Guard
from dupq.verifier.head import HEAD_FILE, Head
from dupq.verifier.tokens import MemoryTokens, TokenSource, TokenVectors, encode_tokens

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)

VERIFIER_TYPE = "late-interaction"
#: Candidate pairs a dedupe scores per block (:meth:`Verifier.predict_indexed`): the block's texts'
#: token vectors, as float32, are what it holds — at most 2 x 8,192 texts, ~0.5 GB at 20 tokens, per
#: block in flight (one per thread).
PAIR_BLOCK = 8_192


def verify_threads() -> int:
    """Threads that score blocks of pairs at once (``DUPQ_VERIFY_THREADS``, else the CPUs allowed)."""
    import os

    from dupq.runtime import allowed_cpus

    want = os.environ.get("DUPQ_VERIFY_THREADS")
    return max(1, int(want)) if want and want.strip().isdigit() else allowed_cpus()


def _one_blas_thread(on: bool) -> Any:
    """While blocks run in threads, BLAS runs one thread in each (no oversubscription)."""
    import contextlib

    if not on:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


ENCODER_DIR = "encoder"
#: The name that loads the verifier shipped inside the package (``dupq/verifiers/default``).
DEFAULT_VERIFIER = "default"


def default_verifier_dir() -> Path:
    """Where the shipped default verifier lives: package data, fit by ``make default-verifier``."""
    return Path(__file__).resolve().parents[1] / "verifiers" / DEFAULT_VERIFIER


class Verifier(CalibratedDecision):
    """Decides whether candidate pairs are duplicates, from the Siamese encoder's token vectors.

    Load one with :meth:`Verifier.load` (a ``dupq train --kind verifier`` output); ``threshold`` is the
    probability above which a pair is a duplicate (default: the one stored in ``dupq.json``).
    """

    def __init__(
        self,
        encoder: SentenceTransformer,
        head: Head,
        card: ModelCard | dict[str, Any],
        *,
        threshold: float | None = None,
        source: str | None = None,
        backend: str = "torch",
    ) -> None:
        card = card if isinstance(card, ModelCard) else ModelCard.from_dict(card)
        names = card.features or list(FEATURE_NAMES)
        if list(names) != list(FEATURE_NAMES):
            raise StoreError(
                f"verifier {source or ''} was trained on features {names}; this dupq computes "
                f"{list(FEATURE_NAMES)} — retrain it with this version"
            )
        self.encoder = encoder
        self.head = head
        self.guard = Guard.from_dict((card.verifier or {}).get("guard"))
        self._init_decision(card, threshold, source)
        from dupq.backends import make_runner, resolve_backend

        self.backend = resolve_backend(encoder, backend)  # "auto" -> the probed one, as for the Embedder
        self._runner: Any = None
        if self.backend != "torch":  # the token pass in an exported runtime (verified and cached)
            self._runner = make_runner(encoder, self.backend)

    # -- loading ----------------------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        directory: str | Path,
        *,
        device: str | None = None,
        threshold: float | None = None,
        point: str | None = None,
        backend: str = "torch",
        encoder: SentenceTransformer | None = None,
    ) -> Verifier:
        """Load a verifier directory; a missing file or a directory of another kind is a ``StoreError``.

        The decision threshold is ``threshold`` if given, else the operating point ``point`` of its
        ``dupq.json`` (``"precision_0.90"`` …, when reached on dev), else its best-F1 threshold.
        ``backend`` runs the token pass: ``torch``, or ``onnx`` / ``onnx-int8`` (faster on a CPU; a
        cross-encoder verifier always runs in torch). ``"default"`` loads the verifier shipped in
        the package. ``encoder``: an already loaded bi-encoder, reused when the verifier reads the same
        (stock) encoder instead of loading a second copy.
        """
        if str(directory) == DEFAULT_VERIFIER:
            directory = default_verifier_dir()
        directory = Path(directory)
        card = ModelCard.read(directory)
        if card is None or not card.is_verifier:
            raise StoreError(
                f'{directory} is not a dupq verifier (its {CARD_FILE} lacks "kind": "verifier"); '
                "train one with `dupq train --kind verifier`"
            )
        if threshold is None and point and card.point(point) is not None:
            threshold = card.threshold_at(point)
        if (card.verifier or {}).get("type") == "cross-encoder":
            from dupq.verifier.cross import CrossVerifier

            return CrossVerifier.load(directory, card, device=device, threshold=threshold)  # type: ignore[return-value]
        return cls.load_parts(
            directory, card, device=device, threshold=threshold, backend=backend, encoder=encoder
        )

    @classmethod
    def load_parts(
        cls,
        directory: Path,
        card: ModelCard,
        *,
        device: str | None = None,
        threshold: float | None = None,
        backend: str = "torch",
        encoder: SentenceTransformer | None = None,
    ) -> Verifier:
        """A late-interaction verifier from its directory's ``head.npz`` and an already read ``card``
        (the head's recorded sha256, where the card has one, must match the file)."""
        from dupq.io import sha256_file

        head_path = directory / HEAD_FILE
        want = (card.provenance or {}).get("head_sha256")
        if want and head_path.is_file() and sha256_file(head_path) != want:
            raise StoreError(f"{head_path} does not match the sha256 its {CARD_FILE} records")
        head = Head.load(head_path)
        enc = card.encoder or "default"
        enc_path = enc if enc in DEFAULT_ALIASES else directory / enc
        if encoder is not None and enc in DEFAULT_ALIASES and encoder_reference(encoder) == "default":
            model = encoder  # the caller's stock encoder: one copy of the weights, not two
        else:
            model = load_encoder(enc_path, device=device)
        return cls(
            model,
            head,
            card,
            threshold=threshold,
            source=str(directory),
            backend=backend,
        )

    # -- scoring ----------------------------------------------------------------------------------
    def features(
        self,
        questions1: Sequence[str],
        questions2: Sequence[str],
        *,
        tokens: TokenVectors | None = None,
        show_progress: bool = False,
    ) -> np.ndarray:
        """The ``(n_pairs, n_features)`` feature matrix (token vectors computed unless given)."""
        return pair_feature_matrix(
            self.encoder,
            questions1,
            questions2,
            tokens=tokens,
            show_progress=show_progress,
            runner=self._runner,
        )

    def probability_from_features(self, x: np.ndarray) -> np.ndarray:
        """Calibrated P(duplicate) from a feature matrix (head log-odds, then Platt scaling on dev)."""
        raw = self.head.raw_score(x)
        if self.guard is not None:
            raw = self.guard.apply(raw, x)
        return self.calibrated(raw)

    def cosine_probability(self, cosine: np.ndarray) -> np.ndarray | None:
        """The guard's cosine path alone (the head given no weight), Platt-scaled like every score:
        what this verifier says of a pair it does not decide (outside :mod:`dupq.verifier.band`)."""
        if self.guard is None:
            return None
        c = np.asarray(cosine, dtype=np.float64)
        return self.calibrated(self.guard.coef * c + self.guard.intercept)

    def token_vectors(self, texts: Sequence[str], *, show_progress: bool = False) -> TokenVectors:
        """One encoder pass over ``texts``: token vectors for the features and the pooled unit vector
        (the bi-encoder's own embedding, so a caller can search with it instead of encoding again)."""
        return encode_tokens(self.encoder, texts, show_progress=show_progress, runner=self._runner)

    def predict(
        self,
        questions1: Sequence[str],
        questions2: Sequence[str],
        *,
        show_progress: bool = False,
        tokens: TokenVectors | None = None,
    ) -> VerifierScores:
        """Score pairs ``(questions1[i], questions2[i])``: cosine, P(duplicate), decision.

        ``tokens``: the token vectors of ``list(questions1) + list(questions2)`` when the caller has
        them already (the Matcher's query pass)."""
        if len(questions1) != len(questions2):
            raise InputError(f"{len(questions1)} first questions but {len(questions2)} second questions")
        x = self.features(questions1, questions2, show_progress=show_progress, tokens=tokens)
        return self._scores(x)

    def predict_indexed(
        self,
        texts: Sequence[str],
        a: np.ndarray,
        b: np.ndarray,
        *,
        tokens: TokenSource | None = None,
        show_progress: bool = False,
    ) -> VerifierScores:
        """Score the pairs ``(texts[a[i]], texts[b[i]])`` of one list of texts (a dedupe's candidate
        pairs) with no per-pair copy of vectors or text.

        ``tokens``: the texts' token vectors by index where the caller has them already (a dedupe's
        encode pass keeps them, :class:`dupq.dedupe.tokens.TokenSpill`); the texts it lacks — and all
        texts without one — get one token pass here. Pairs are scored :data:`PAIR_BLOCK` at a time,
        sorted by their first text, and each block reads only its own texts' vectors: memory is
        bounded by the block, not by the number of pairs.
        """
        a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
        if len(a) != len(b):
            raise InputError(f"{len(a)} first indices but {len(b)} second indices")
        # the texts in a pair, by a mask over the texts (not a unique() of 2 x pairs: at 1M texts the
        # candidate pairs are ~40M, and their concatenation and its sort were 1.2 GB at once)
        in_pair = np.zeros(len(texts), dtype=bool)
        in_pair[a] = True
        in_pair[b] = True
        used = np.flatnonzero(in_pair)
        del in_pair
        missing = used if tokens is None else used[~tokens.has(used)]
        own = None
        if len(missing):
            picked = [texts[i] for i in missing.tolist()]  # references, not copies of the strings
            own = MemoryTokens(self.token_vectors(picked, show_progress=show_progress), missing)
        source: TokenSource = own if tokens is None else _Either(tokens, own)  # type: ignore[assignment]
        similarity = np.zeros(len(a), dtype=np.float32)  # the cosine: float32 like the vectors
        probability = np.zeros(len(a), dtype=np.float64)
        order = np.argsort(a, kind="stable")  # a block's pairs share their first texts
        blocks = [order[start : start + PAIR_BLOCK] for start in range(0, len(a), PAIR_BLOCK)]

        def score(sel: np.ndarray) -> tuple[np.ndarray, VerifierScores]:
            ba, bb = a[sel], b[sel]
            ids = np.unique(np.concatenate([ba, bb]))
            tv = source.read(ids)
            x = indexed_feature_matrix(
                tv, np.searchsorted(ids, ba), np.searchsorted(ids, bb), [texts[i] for i in ids.tolist()]
            )
            return sel, self._scores(x)

        threads = min(verify_threads(), len(blocks))
        progress = tqdm(
            total=len(a), desc="verifying", unit="pair", disable=not show_progress, mininterval=1.0
        )
        with (
            progress as bar,
            _one_blas_thread(threads > 1),
            ThreadPoolExecutor(max(threads, 1)) as pool,
        ):
            # blocks in threads: most of a block's work is numpy that lets go of the GIL
            for sel, scores in pool.map(score, blocks):
                similarity[sel], probability[sel] = scores.similarity, scores.probability
                bar.update(len(sel))
        return VerifierScores(
            similarity=similarity, probability=probability, is_duplicate=probability >= self.threshold
        )

    def _scores(self, x: np.ndarray) -> VerifierScores:
        """Cosine, P(duplicate) and decision of each feature row."""
        p = self.probability_from_features(x) if len(x) else np.zeros(0)
        return VerifierScores(
            similarity=x[:, 0] if len(x) else np.zeros(0), probability=p, is_duplicate=p >= self.threshold
        )

    def __repr__(self) -> str:
        return (
            f"Verifier({self.source or 'unsaved'}, head={self.head.kind}, threshold={self.threshold:.3f}, "
            f"backend={self.backend})"
        )


def pair_feature_matrix(
    encoder: SentenceTransformer,
    questions1: Sequence[str],
    questions2: Sequence[str],
    *,
    tokens: TokenVectors | None = None,
    batch_size: int = 64,
    show_progress: bool = False,
    runner: Any = None,
) -> np.ndarray:
    """Features of every pair; each distinct question is encoded once (``tokens`` may be precomputed
    for ``list(questions1) + list(questions2)``; ``runner``: an ONNX runner for the token pass)."""
    q1, q2 = list(questions1), list(questions2)
    n = len(q1)
    if n == 0:
        return np.zeros((0, len(FEATURE_NAMES)), dtype=np.float32)
    if tokens is not None:
        return indexed_feature_matrix(tokens, np.arange(n), np.arange(n, 2 * n), q1 + q2)
    texts = list(dict.fromkeys(q1 + q2))
    where = {t: i for i, t in enumerate(texts)}
    tv = encode_tokens(encoder, texts, batch_size=batch_size, show_progress=show_progress, runner=runner)
    ia = np.fromiter((where[t] for t in q1), dtype=np.int64, count=n)
    ib = np.fromiter((where[t] for t in q2), dtype=np.int64, count=n)
    return indexed_feature_matrix(tv, ia, ib, texts, show_progress=show_progress)


#: Pairs per batch of the alignment features (padded to the batch's longest texts; pairs are sorted by
#: length first, so a batch pads little).
FEATURE_BATCH = 256


def indexed_feature_matrix(
    tv: TokenVectors,
    ia: np.ndarray,
    ib: np.ndarray,
    texts: Sequence[str],
    *,
    show_progress: bool = False,
) -> np.ndarray:
    """Features of the pairs ``(texts[ia[i]], texts[ib[i]])`` whose token vectors are ``tv`` (one
    entry per text of ``texts``). The alignment features are computed for a batch of pairs at a time
    (:func:`dupq.verifier.features.alignment_batch`), and each text's words are read once: a dedupe
    scores a text in many pairs. Same values as :func:`pair_features` pair by pair (tested)."""
    ia, ib = np.asarray(ia, dtype=np.int64), np.asarray(ib, dtype=np.int64)
    n = len(ia)
    out = np.zeros((n, len(FEATURE_NAMES)), dtype=np.float32)
    if n == 0:
        return out
    sent = tv.sentence
    lengths = np.fromiter((len(t) for t in tv.tokens), dtype=np.int64, count=len(tv.tokens))
    order = np.lexsort((lengths[ib], lengths[ia]))
    profiles: dict[int, TextProfile] = {}

    def profile(i: int) -> TextProfile:
        p = profiles.get(i)
        if p is None:
            p = profiles[i] = text_profile(texts[i])
        return p

    with tqdm(total=n, desc="pair features", unit="pair", disable=not show_progress, mininterval=1.0) as bar:
        for start in range(0, n, FEATURE_BATCH):
            idx = order[start : start + FEATURE_BATCH]
            pa, pb = ia[idx].tolist(), ib[idx].tolist()
            out[idx, 1:8] = alignment_batch(
                [tv.tokens[i] for i in pa], [tv.tokens[j] for j in pb],
                [tv.content[i] for i in pa], [tv.content[j] for j in pb],
            )  # fmt: skip
            out[idx, 0] = np.einsum("ij,ij->i", sent[pa], sent[pb])
            lexical = [lexical_from_profiles(profile(i), profile(j)) for i, j in zip(pa, pb, strict=True)]
            out[idx, 8:] = lexical
            bar.update(len(idx))
    return out


class _Either:
    """A :class:`TokenSource` reading from ``first`` what it has, else from ``second``."""

    def __init__(self, first: TokenSource, second: TokenSource | None) -> None:
        self.first, self.second = first, second

    def has(self, ids: np.ndarray) -> np.ndarray:
        got = self.first.has(ids)
        return got if self.second is None else got | self.second.has(ids)

    def read(self, ids: np.ndarray) -> TokenVectors:
        here = self.first.has(ids)
        if self.second is None or here.all():
            return self.first.read(ids)
        if not here.any():
            return self.second.read(ids)
        one, two = self.first.read(ids[here]), self.second.read(ids[~here])
        tokens: list[np.ndarray] = [np.empty(0)] * len(ids)
        content: list[np.ndarray] = [np.empty(0)] * len(ids)
        sentence = np.empty((len(ids), one.sentence.shape[1]), dtype=np.float32)
        for where, tv in ((np.flatnonzero(here), one), (np.flatnonzero(~here), two)):
            for k, i in enumerate(where.tolist()):
                tokens[i], content[i] = tv.tokens[k], tv.content[k]
            sentence[where] = tv.sentence
        return TokenVectors(tokens, content, sentence)


def encoder_reference(encoder: SentenceTransformer) -> str:
    """How a verifier directory names its encoder: ``"default"`` for the embedded model, else a copy."""
    from dupq.encoder import default_model_path

    src = model_source(encoder)
    if src and Path(src).resolve() == default_model_path().resolve():
        return "default"
    return ENCODER_DIR
