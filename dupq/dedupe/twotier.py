"""Two-tier dedupe (``--candidates STATIC_DIR``): a static student finds the pairs, the transformer decides.

Encoding is nearly all of a dedupe's time, and in a real file most questions have no duplicate at all.
A static student (``dupq distill --kind static``) encodes every text for almost nothing; its candidate
pairs at a deliberately low, recall-safe cosine say which texts could have a duplicate. Only those
texts go through the transformer, and a pair is a duplicate when the **transformer's** cosine reaches
the threshold — on candidate pairs only. Texts without a candidate are their own group, unencoded.

The candidate threshold comes from the student's ``dupq.json`` (``two_tier.candidate_threshold``: the
highest student cosine that kept :data:`~dupq.students.calibrate.RECALL_TARGET` of the teacher's
duplicate pairs at distill time), else the student's threshold minus :data:`CANDIDATE_MARGIN`, or is
given. With a candidate threshold of -1 every pair is a candidate and the result is the one-tier one.

Not combined with ``--against``, ``--verifier`` or ``--engine ray`` (refused in the config), and not
resumable: the transformer's vectors are kept in memory, not in the work directory.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dupq.dedupe.cache import CandidatePairs
from dupq.dedupe.config import DedupeConfig
from dupq.dedupe.scan import Scan
from dupq.dedupe.search import candidate_pairs, index_kind
from dupq.dedupe.verify import DEDUPE_POINT
from dupq.encoder import check_threshold, read_metadata, resolve_threshold
from dupq.errors import InputError

logger = logging.getLogger(__name__)

#: Below the static student's own threshold, when its dupq.json has no two-tier candidate threshold.
CANDIDATE_MARGIN = 0.10
#: Static cosine from which a text's candidates are *all* its neighbours (a range search); between the
#: cut and this, its ``k`` nearest. Ranging down to the low, recall-safe cut listed 20M candidate pairs
#: for 100k real questions (texts with thousands of neighbours above 0.54), more than the one-tier run's
#: whole search; the k-NN bound is also how the cut was calibrated (each text's nearest neighbours).
CANDIDATE_RANGE_AT = 0.95
#: Candidate pairs scored per block (transformer cosine), so memory stays flat whatever their number.
PAIR_BLOCK = 1 << 20


@dataclass
class TwoTier:
    """What the two tiers hand to grouping: the transformer's vectors (zero rows for texts it did not
    encode), truncation flags, the candidate pairs with the transformer's cosines, and the accounting."""

    vectors: np.ndarray
    truncated: np.ndarray
    candidates: CandidatePairs
    threshold: float
    threshold_source: str
    model: str
    fingerprint: str
    encoded: int
    backend: str  # the transformer tier's backend as run ("auto" resolved)
    info: dict[str, Any] = field(default_factory=dict)


def candidate_threshold(static_source: str | None, given: float | None) -> tuple[float, str]:
    """The static tier's cosine cut and where it came from (given, dupq.json's two-tier cut, or the
    student's threshold minus :data:`CANDIDATE_MARGIN`)."""
    if given is not None:
        return check_threshold(given), "given"
    meta = read_metadata(static_source) if static_source else {}
    tier = meta.get("two_tier") or {}
    if tier.get("candidate_threshold") is not None:
        return check_threshold(tier["candidate_threshold"]), (
            f"dupq.json of {static_source}: keeps {tier.get('recall_target', '?')} of the teacher's pairs"
        )
    if meta.get("threshold") is not None:
        cut = max(-1.0, float(meta["threshold"]) - CANDIDATE_MARGIN)
        return cut, f"dupq.json threshold of {static_source} - {CANDIDATE_MARGIN}"
    raise InputError(
        f"{static_source} has no dupq.json threshold (not a dupq distill student): pass a candidate "
        "threshold",
        column="candidate_threshold",
    )


def run_two_tier(scan: Scan, cfg: DedupeConfig) -> TwoTier:
    """Static tier over every unique text, transformer tier over the texts in a candidate pair."""
    from dupq.embed import as_embedder

    n = len(scan.texts)
    static = as_embedder(cfg.candidates, device=cfg.device, batch_size=cfg.batch_size)
    cut, cut_source = candidate_threshold(static.source, cfg.candidate_threshold)
    svecs = static.encode(scan.texts, show_progress=cfg.show_progress, desc="static candidates")
    static_source, static_fp = static.source, static.fingerprint
    del static
    a, b, _, _ = candidate_pairs(
        svecs,
        cut,
        range_at=cut if cut <= -1.0 else max(cut, CANDIDATE_RANGE_AT),  # -1: every pair, as documented
        k=cfg.k,
        index=index_kind(n, cfg.index),
        chunk_size=cfg.chunk_size,
        show_progress=cfg.show_progress,
        ef_search=cfg.ef_search,
    )
    del svecs
    need = np.unique(np.concatenate([a, b])).astype(np.int64)
    texts = [scan.texts[i] for i in need]
    embedder = as_embedder(  # openvino-int8 is quantised on (auto probes on) the texts it will encode
        cfg.model,
        device=cfg.device,
        batch_size=cfg.batch_size,
        backend=cfg.backend,
        calibration=texts,  # sampled by the Embedder only for the backends that use it
    )
    threshold, threshold_source = resolve_threshold(cfg.threshold, embedder.source, point=DEDUPE_POINT)
    vectors = np.zeros((n, embedder.dim), dtype=cfg.dtype)
    truncated = np.zeros(n, dtype=bool)
    if texts:
        vectors[need] = embedder.encode(texts, show_progress=cfg.show_progress, desc="encoding candidates")
        truncated[need] = embedder.token_lengths(texts) > embedder.max_seq_length
    s = np.empty(len(a), dtype=np.float32)
    for lo in range(0, len(a), PAIR_BLOCK):
        hi = min(lo + PAIR_BLOCK, len(a))
        s[lo:hi] = np.einsum(
            "ij,ij->i", vectors[a[lo:hi]].astype(np.float32), vectors[b[lo:hi]].astype(np.float32)
        )
    floor = max(-1.0, threshold - cfg.search_margin)
    keep = s >= np.float32(floor)
    # complete_to -2: every candidate pair is listed (the candidate set, not a k-NN list, bounds them)
    pairs = CandidatePairs(a[keep], b[keep], s[keep].astype(np.float32), floor, np.full(n, -2.0, np.float32))
    info = {
        "candidates_model": static_source,
        "candidates_fingerprint": static_fp,
        "candidate_threshold": cut,
        "candidate_threshold_source": cut_source,
        "candidate_pairs": int(len(a)),
        "texts_with_candidates": int(len(need)),
        "texts_not_encoded": int(n - len(need)),
    }
    logger.info(
        "two-tier: %d candidate pairs at static cosine >= %.3f; the transformer encodes %d of %d texts",
        len(a),
        cut,
        len(need),
        n,
    )
    return TwoTier(
        vectors,
        truncated,
        pairs,
        threshold,
        threshold_source,
        embedder.source or "",
        embedder.fingerprint,
        len(texts),
        embedder.backend,
        info,
    )
