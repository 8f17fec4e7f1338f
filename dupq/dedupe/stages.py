"""The model-facing stages of a dedupe run, as :mod:`~dupq.dedupe.pipeline` calls them: encode (load
the model, resolve the threshold, fill the stores), search (the candidate pairs, or the saved ones),
and verify (the verifier decides the pairs below ``verify_above``).

Each takes the run's :class:`~dupq.dedupe.config.DedupeConfig` and hands on a small typed result, so
the pipeline module is left with the order of the stages and the accounting of every row.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dupq.card import DEDUPE_POINT
from dupq.dedupe.cache import CandidatePairs, PairCache, Pairs
from dupq.dedupe.config import DedupeConfig
from dupq.dedupe.scan import Scan, Source
from dupq.dedupe.search import candidate_pairs, index_kind
from dupq.dedupe.store import EmbeddingStore, encode, release_memory
from dupq.dedupe.timing import StageTimer
from dupq.dedupe.tokens import TokenSpill, shares_pass, token_pass_backend
from dupq.dedupe.verify import Verification, verifier_threshold, verify_pairs
from dupq.encoder import resolve_threshold
from dupq.verifier.choose import choose_verifier, describe

logger = logging.getLogger(__name__)


def sources(data: Any, cfg: DedupeConfig) -> tuple[Source, Source | None]:
    """The input to dedupe and the base to match it against (``against``; ``None`` without one)."""
    source = Source(data, cfg.text_column, cfg.id_column, cfg.chunk_size, cfg.sep, cfg.encoding)
    if cfg.against is None:
        return source, None
    base = Source(
        cfg.against,
        cfg.against_text_column or cfg.text_column,
        cfg.against_id_column,
        cfg.chunk_size,
        None,
        None,
        id_optional=cfg.against_id_column is None,
        default_id=cfg.id_column,
    )
    return source, base


@dataclass
class Encoded:
    """What the encode stage hands on: the stores (new texts, then the base), the threshold and the model."""

    stores: list[EmbeddingStore]
    threshold: float
    threshold_source: str
    model: str
    fingerprint: str
    encoded: int
    reused: int
    backend: str  # the one that ran (``auto`` resolved)
    verifier: Any = None  # what decides (dupq.verifier.choose): None, a directory/"default", or loaded
    tokens: TokenSpill | None = None  # the encode pass's token vectors of the new texts, for the verifier


def encode_texts(
    new: Scan, base: Scan | None, cfg: DedupeConfig, workdir: Path, timer: StageTimer
) -> Encoded:
    """Load the model, resolve the threshold, fill the stores; the model is released on return."""
    from dupq.embed import as_embedder

    # openvino-int8 is post-training quantised on (and auto times the backends on) the run's own texts;
    # the Embedder samples them only for those backends
    embedder = as_embedder(
        cfg.model, device=cfg.device, batch_size=cfg.batch_size, backend=cfg.backend, calibration=new.texts
    )
    threshold, threshold_source = resolve_threshold(cfg.threshold, embedder.source, point=DEDUPE_POINT)
    verifier = choose_verifier(cfg.verifier, embedder.source)
    fp = embedder.fingerprint
    timer.stage("load_model")
    stores = []
    encoded = reused = 0
    spill = None
    for sc in [new] + ([base] if base is not None else []):
        store = EmbeddingStore.open(
            workdir, sc.digest, fp, embedder.backend, len(sc.texts), embedder.dim, cfg.dtype
        )
        reused += int(store.done.sum())
        if not stores and shares_pass(verifier, embedder, cfg.engine):  # pairs are among the new texts
            spill = TokenSpill(store.dir, len(sc.texts), embedder.dim, embedder.model.tokenizer)
        encoded += encode(store, sc.texts, embedder, cfg, spill if not stores else None)
        stores.append(store)
    model_source, backend = embedder.source or "", embedder.backend
    del embedder  # the model and its runtime are not needed past here: give their memory back
    for st in stores:
        st.reopen_readonly()  # unmaps the pages encoding dirtied; later reads map only what they touch
    if spill is not None:
        spill.finish(stores[0].vectors)
        logger.info("kept the encode pass's token vectors for the verifier (%.0f MB)", spill.nbytes / 2**20)
    release_memory()
    return Encoded(
        stores, threshold, threshold_source, model_source, fp, encoded, reused, backend, verifier, spill
    )


@dataclass
class Searched:
    """What the search stage hands on: the candidate pairs, whether they were the saved ones, and
    where the search ran (``engine``: local, driver or ray-partitioned; ``ray``: for the partitioned
    search, its partitions, sizes and times)."""

    candidates: CandidatePairs
    reused: bool
    engine: str
    ray: dict[str, Any] | None = None


def search_candidates(store: EmbeddingStore, search_at: float, cfg: DedupeConfig) -> Searched:
    """Candidate pairs among all unique texts down to ``search_at - search_margin`` (k-NN only below
    ``search_at``): the saved ones when they give every pair at ``search_at`` (a re-threshold), else a
    search of the stored vectors (then saved) — on the driver, or partitioned on Ray
    (:mod:`dupq.dedupe.ray_search`) with ``engine="ray"``."""
    n = len(store.vectors)
    kind = index_kind(n, cfg.index)
    plan = None
    if cfg.engine == "ray":
        from dupq.dedupe.ray_search import search_plan

        plan = search_plan(n, cfg.ray_search, cfg.ray_partitions, cfg.ray_assignments)
    engine = "local" if cfg.engine == "local" else "driver"
    ray: dict[str, Any] = {}
    if plan is not None:
        engine, ray = "ray-partitioned", {"partitions": plan.partitions, "assignments": plan.assignments}
    elif cfg.engine == "ray":
        logger.info("search: on the driver (%d unique texts; --ray-search %s)", n, cfg.ray_search)
    extra = plan.cache_key() if plan is not None else {}
    if kind == "join":  # pairs found for another recall are not these pairs
        extra = {**extra, "join_recall": cfg.join_recall}
    cache = PairCache(store.dir, k=cfg.k, index=kind, ef_search=cfg.ef_search, extra=extra or None)
    found = cache.load(search_at)
    if found is not None:
        logger.info("re-using %d candidate pairs saved down to %.3f", len(found.a), found.floor)
        return Searched(found, True, engine, ray or None)
    floor = max(-1.0, search_at - cfg.search_margin)
    if plan is not None:
        from dupq.dedupe.ray_search import search_store

        found, ray_info = search_store(store.dir, plan, floor, search_at, cfg)
        ray_info.pop("per_partition")  # the sizes and times are summarised; the files keep them
        ray.update(ray_info)
    else:
        a, b, s, complete_to = candidate_pairs(
            store.vectors,
            floor,
            range_at=search_at,
            k=cfg.k,
            index=kind,
            chunk_size=cfg.chunk_size,
            show_progress=cfg.show_progress,
            ef_search=cfg.ef_search,
            join_recall=cfg.join_recall,
        )
        found = CandidatePairs(a, b, s, floor, complete_to)
    cache.save(found)
    return Searched(found, False, engine, ray or None)


def live_pairs(
    candidates: CandidatePairs, search_at: float, match: tuple[np.ndarray, np.ndarray] | None
) -> Pairs:
    """The pairs at or above ``search_at`` between texts not already matched to the base."""
    pairs = candidates.above(search_at)
    if match is None:
        return pairs
    live = match[0] < 0
    return pairs.select(live[pairs.a] & live[pairs.b])


@dataclass
class Verified:
    """What the verify stage hands on: the pairs it kept, the ones it was given, its per-pair decisions
    (for the report) and the summary's counts."""

    pairs: Pairs
    checked: Pairs
    result: Verification
    info: dict[str, Any]

    def verdicts(self, candidates: CandidatePairs, verify_above: float) -> np.ndarray:
        """Per candidate pair: 0 not verified, 1 the verifier accepted it, 2 it rejected it."""
        n = int(max(candidates.a.max(initial=0), candidates.b.max(initial=0))) + 1
        ckey = candidates.a.astype(np.int64) * n + candidates.b.astype(np.int64)
        verified = self.checked.s < verify_above
        vkey = self.checked.a[verified] * n + self.checked.b[verified]
        order = np.argsort(ckey)
        pos = order[np.searchsorted(ckey, vkey, sorter=order)]
        verdict = np.zeros(len(ckey), dtype=np.int8)
        verdict[pos] = np.where(self.result.keep[verified], 1, 2)
        return verdict


def verify(pairs: Pairs, texts: list[str], enc: Encoded, cfg: DedupeConfig) -> Verified:
    """The verifier decides the candidate pairs below ``verify_above``; keep the ones it accepts."""
    from dupq.verifier import Verifier

    threshold, verifier = enc.threshold, enc.verifier
    if isinstance(verifier, (str, Path)):
        # the token pass on the encode stage's fast runtime where it has one (ONNX), else torch
        verifier = Verifier.load(verifier, device=cfg.device, backend=token_pass_backend(enc.backend))
    v_thr = verifier_threshold(verifier)
    try:
        result = verify_pairs(
            pairs.a,
            pairs.b,
            pairs.s,
            texts,
            verifier,
            threshold=v_thr,
            verify_above=cfg.verify_above,
            show_progress=cfg.show_progress,
            tokens=enc.tokens,
        )
    finally:
        if enc.tokens is not None:
            enc.tokens.remove()
    keep = result.keep
    info = {
        "decided_by": describe(verifier),
        "verifier": verifier.source,
        "verifier_threshold": v_thr,
        "candidate_pairs": int(len(keep)),
        "searched_from": float(threshold - cfg.verify_below),
        "verify_above": cfg.verify_above,
        "accepted_by_cosine": result.by_cosine,
        "verified": result.verified,
        "accepted_by_verifier": result.verified_duplicate,
        "rejected_by_verifier": result.verified - result.verified_duplicate,
    }
    return Verified(pairs.select(keep), pairs, result, info)
