"""The Matcher's second stage: the verifier rescoring the top k, on one transformer pass per query.

Kept apart from :mod:`dupq.matcher` (the store, its locks and its persistence): this is the decision
side. A late-interaction verifier reads the same encoder's token vectors, and its token pass also
gives the pooled sentence vector, so when the verifier runs the Matcher's own model on the Matcher's
own backend a query is encoded once for both the search and the verification
(:func:`encode_queries`); the stored candidates get their token vectors in one batch
(:func:`rescore`). Callers hold the Matcher's encode lock around both.
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


def rescore(verifier: Any, results: list[QueryMatches], query_tokens: Any = None) -> None:
    """Rescore every non-exact match of ``results`` with ``verifier`` (one batch for all queries), in
    place, best first. ``query_tokens``: the queries' token vectors from :func:`encode_queries`."""
    todo = [(r, j) for r in results for j, m in enumerate(r) if not m.exact]
    if not todo:
        return
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
    for r in results:
        r.sort(key=lambda m: (not m.exact, -m.score))
