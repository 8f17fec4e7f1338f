"""Scorers: one interface for the fine-tuned model and the baselines (TF-IDF, zero-shot)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from dupq.embed import Embedder, as_embedder
from dupq.errors import InputError
from dupq.evaluation.metrics import RETRIEVAL_KS, QuestionSet, is_sparse, retrieval_from_vectors

if TYPE_CHECKING:
    from scipy import sparse

#: The systems a report compares, in table order.
FINE_TUNED, TFIDF, ZERO_SHOT = "fine-tuned", "tfidf", "zero-shot"


@runtime_checkable
class Scorer(Protocol):
    """Anything that turns questions into vectors whose inner product is their similarity."""

    name: str

    def question_vectors(self, texts: Sequence[str]) -> Any:
        """Row-normalised vectors (dense ndarray or scipy sparse), one per text, input order."""

    def pair_scores(self, pairs: pd.DataFrame) -> np.ndarray:
        """Cosine similarity of each pair."""


class EmbeddingScorer:
    """Cosine of Siamese-encoder embeddings (the fine-tuned model, or the zero-shot base model)."""

    def __init__(
        self,
        embedder: Embedder | Any,
        *,
        name: str = FINE_TUNED,
        batch_size: int | None = None,
        show_progress: bool = False,
    ) -> None:
        self.embedder = as_embedder(embedder)
        self.name = name
        self.batch_size = batch_size
        self.show_progress = show_progress

    def question_vectors(self, texts: Sequence[str]) -> np.ndarray:
        return self.embedder.encode(
            list(texts), batch_size=self.batch_size, show_progress=self.show_progress, desc=self.name
        )

    def pair_scores(self, pairs: pd.DataFrame) -> np.ndarray:
        qs = QuestionSet.from_pairs(pairs)
        return pair_dot(self.question_vectors(qs.texts), qs.t1, qs.t2)


class TfidfScorer:
    """TF-IDF cosine: the no-model baseline (word 1–2-grams, sublinear tf, L2-normalised rows).

    The vocabulary and IDF are fitted on ``fit_texts`` (the train split's questions) when given — the
    honest setting — else on the first texts it is asked about (the evaluated questions; IDF from
    the test split itself is a mild, label-free transductive advantage, reported in the notes).
    """

    name = TFIDF

    def __init__(self, fit_texts: Iterable[str] | None = None, **vectorizer_kwargs: Any) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        params = {"ngram_range": (1, 2), "sublinear_tf": True, "lowercase": True, "norm": "l2"}
        params.update(vectorizer_kwargs)
        self.vectorizer = TfidfVectorizer(**params)
        self.fitted_on: str | None = None
        if fit_texts is not None:
            self.fit(fit_texts, origin="given texts")

    def fit(self, texts: Iterable[str], *, origin: str = "given texts") -> TfidfScorer:
        texts = list(dict.fromkeys(texts))
        try:
            self.vectorizer.fit(texts)
        except ValueError as exc:  # empty vocabulary (only stop words / punctuation)
            raise InputError(f"cannot fit TF-IDF on {len(texts)} text(s): {exc}") from exc
        self.fitted_on = f"{origin} ({len(texts)} questions)"
        return self

    def question_vectors(self, texts: Sequence[str]) -> sparse.csr_matrix:
        texts = list(texts)
        if self.fitted_on is None:
            self.fit(texts, origin="evaluated questions")
        return self.vectorizer.transform(texts).tocsr()

    def pair_scores(self, pairs: pd.DataFrame) -> np.ndarray:
        qs = QuestionSet.from_pairs(pairs)
        return pair_dot(self.question_vectors(qs.texts), qs.t1, qs.t2)


def pair_dot(vectors: Any, i1: np.ndarray, i2: np.ndarray) -> np.ndarray:
    """Row-wise inner product of ``vectors[i1]`` and ``vectors[i2]`` (dense or sparse)."""
    if isinstance(vectors, np.ndarray):
        return np.einsum("ij,ij->i", vectors[i1], vectors[i2]).astype(np.float64)
    a, b = vectors[i1], vectors[i2]
    return np.asarray(a.multiply(b).sum(axis=1), dtype=np.float64).ravel()


def pair_similarities(
    embedder: Embedder | Any,
    pairs: pd.DataFrame,
    *,
    batch_size: int | None = None,
    show_progress: bool = False,
) -> np.ndarray:
    """Cosine similarity of each pair under ``embedder``, encoding each distinct question once."""
    return EmbeddingScorer(embedder, batch_size=batch_size, show_progress=show_progress).pair_scores(pairs)


def retrieval_metrics(
    source: Any,
    pairs: pd.DataFrame,
    *,
    ks: Sequence[int] = RETRIEVAL_KS,
    block_size: int | None = None,
) -> dict[str, float]:
    """Duplicate retrieval over all questions of the split (exact search).

    ``source`` is a :class:`Scorer` (TF-IDF or embeddings), an :class:`~dupq.embed.Embedder` /
    ``SentenceTransformer`` / model path (wrapped in :class:`EmbeddingScorer`), or a precomputed
    matrix of row-normalised vectors, one per question in :func:`split_questions` order.

    Every question with at least one known duplicate is a query; the candidates are all *other*
    questions of the split; the relevant ones are the other members of its duplicate cluster (the
    transitive closure of label-1 pairs). Questions only seen in label-0 pairs are distractors.
    Unlabelled pairs count as non-duplicates, so on incompletely labelled data (QQP) the numbers
    are a lower bound. Within the top 10, equal similarities are ranked by question order.
    """
    qs = QuestionSet.from_pairs(pairs)
    if isinstance(source, np.ndarray) or is_sparse(source):
        vectors = source
        if vectors.shape[0] != len(qs.qids):
            raise InputError(
                f"{vectors.shape[0]} vectors for {len(qs.qids)} questions (use split_questions() order)"
            )
    else:
        scorer = source if isinstance(source, Scorer) else EmbeddingScorer(source)
        vectors = scorer.question_vectors(qs.texts)[qs.qid_text]
    return retrieval_from_vectors(vectors, qs.cluster, ks=ks, block_size=block_size)
