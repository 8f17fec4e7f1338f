"""The Matcher's second stage: the verifier rescoring the top k, on one transformer pass per query.

Kept apart from :mod:`dupq.matcher` (the store, its locks and its persistence): this is the decision
side. A late-interaction verifier reads the same encoder's token vectors, and its token pass also
gives the pooled sentence vector, so when the verifier runs the Matcher's own model on the Matcher's
own backend a query is encoded once for both the search and the verification
(:func:`encode_queries`); the stored candidates get their token vectors in one batch
(:func:`rescore`) — only those whose cosine lies in the verifier's band (:mod:`dupq.verifier.band`),
the pairs a dedupe would verify too. Callers hold the Matcher's encode lock around both.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dupq.matches import Match, QueryMatches


def deciding_verifier(verifier: Any, embedder: Any, device: str | None) -> Any:
    """The Matcher's deciding verifier (:func:`dupq.verifier.choose.resolve_verifier`): its token pass
    on the embedder's backend where that backend has one (ONNX), reusing the embedder's stock encoder."""
    from dupq.backends import ONNX_BACKENDS
    from dupq.verifier.choose import resolve_verifier

    return resolve_verifier(
        verifier,
        embedder.source,
        device=device,
        backend=embedder.backend if embedder.backend in ONNX_BACKENDS else "torch",
        encoder=embedder.model,
    )


def same_pass(verifier: Any, embedder: Any) -> bool:
    """Whether ``verifier``'s token pass runs ``embedder``'s model on ``embedder``'s backend, so that
    its sentence vectors are the embedder's own (fingerprints are cached on the models)."""
    if verifier is None or not hasattr(verifier, "token_vectors"):
        return False
    if getattr(verifier, "backend", None) != embedder.backend:
        return False
    if verifier.encoder is embedder.model:
        return True
    from dupq.encoder import model_fingerprint

    return model_fingerprint(verifier.encoder) == embedder.fingerprint


def encode_queries(verifier: Any, embedder: Any, texts: list[str]) -> tuple[np.ndarray, np.ndarray, Any]:
    """Unit query vectors, truncation flags and the queries' token vectors, from one pass."""
    tv = verifier.token_vectors(texts)
    limit = embedder.max_seq_length
    truncated = np.zeros(len(texts), bool)
    at_limit = [i for i, t in enumerate(tv.tokens) if len(t) + 2 >= limit]  # + [CLS], [SEP]
    if at_limit and limit:
        lengths = embedder.token_lengths([texts[i] for i in at_limit])
        truncated[at_limit] = np.asarray(lengths) > limit
    position = {t: i for i, t in enumerate(texts)}
    return np.ascontiguousarray(tv.sentence, dtype=np.float32), truncated, (position, tv)


def rescore(
    verifier: Any,
    results: list[QueryMatches],
    query_tokens: Any = None,
    *,
    band: tuple[float, float] = (-np.inf, np.inf),
) -> None:
    """Rescore the non-exact matches of ``results`` whose cosine lies in ``band`` (``[low, high)``,
    :mod:`dupq.verifier.band`) with ``verifier`` (one batch for all queries), in place, best first.

    A match outside the band is decided by the cosine — a duplicate at or above ``high``, not one
    below ``low`` — as a dedupe of the same pair would decide it; its score is then the verifier's
    probability for the cosine alone (:meth:`~dupq.verifier.Verifier.cosine_probability`) where the
    verifier has one, so that one list ranks on one scale. ``query_tokens``: the queries' token
    vectors from :func:`encode_queries`."""
    low, high = band
    todo: list[tuple[QueryMatches, int]] = []
    for r in results:
        for j, m in enumerate(r):
            if m.exact:
                continue
            sim = m.similarity if m.similarity is not None else m.score
            if low <= sim < high:
                todo.append((r, j))
            else:
                r[j] = _by_cosine(verifier, m, sim, accept=sim >= high)
    if todo:
        _verify(verifier, todo, query_tokens)
    for r in results:
        r.sort(key=lambda m: (not m.exact, not m.is_duplicate, -m.score))


def _by_cosine(verifier: Any, m: Match, sim: float, *, accept: bool) -> Match:
    """``m`` decided on its cosine beside a verifier (outside its band)."""
    p = verifier.cosine_probability(np.asarray([sim]))  # None for a verifier without a cosine path
    prob = m.probability if p is None else float(p[0])
    score = m.score if prob is None else prob
    return Match(
        m.id, m.text, float(score), prob, bool(accept), m.metadata, m.exact,
        similarity=sim, decided_by="cosine",
    )  # fmt: skip


def _verify(verifier: Any, todo: list[tuple[QueryMatches, int]], query_tokens: Any) -> None:
    """The verifier's decision for each ``(results, index)`` of ``todo``, in place."""
    q1, q2 = [r.query for r, _ in todo], [r[j].text for r, j in todo]
    extra: dict[str, Any] = {}
    if query_tokens is not None:
        from dupq.verifier.tokens import TokenVectors

        position, qtv = query_tokens
        ctv = verifier.token_vectors(q2)
        rows = [position[q] for q in q1]
        extra["tokens"] = TokenVectors(
            tokens=[qtv.tokens[i] for i in rows] + ctv.tokens,
            content=[qtv.content[i] for i in rows] + ctv.content,
            sentence=np.concatenate([qtv.sentence[rows], ctv.sentence]),
        )
    scores = verifier.predict(q1, q2, **extra)
    for (r, j), p, dup in zip(todo, scores.probability, scores.is_duplicate, strict=True):
        m = r[j]
        r[j] = Match(
            m.id, m.text, float(p), float(p), bool(dup), m.metadata, m.exact,
            similarity=m.similarity, decided_by="verifier",
        )  # fmt: skip
