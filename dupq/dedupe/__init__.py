"""Batch deduplication of a table of questions: ``dupq dedupe`` and :func:`deduplicate`.

The pipeline is built so that a million-row export runs on a laptop and every input row comes back.
Each stage is a module, each a function of one :class:`~dupq.dedupe.config.DedupeConfig`:

1. :mod:`~dupq.dedupe.scan` — the input is streamed in chunks (CSV/TSV/Parquet/JSONL or a DataFrame);
   each row gets a status and an exact-duplicate key; only the first text of each key is encoded.
2. :mod:`~dupq.dedupe.store` — the unique texts are encoded into a resumable, memory-mapped store in
   the work directory (:mod:`~dupq.dedupe.ray` runs this stage on Ray Data with ``engine="ray"``).
3. :mod:`~dupq.dedupe.search` — each text's nearest neighbours above the threshold (flat or HNSW
   index, range search past ``k``), and matches to an existing base (``against=``).
   Candidate pairs are searched a margin below the threshold and kept in the work directory
   (:mod:`~dupq.dedupe.cache`), so another threshold re-groups without a search.
4. :mod:`~dupq.dedupe.group` — pairs become groups (``cluster="leader"``: no chaining; or
   ``"components"``), numbered by their first input row; the survivor rule (:mod:`~dupq.dedupe.keep`)
   and a reviewer's marks (:mod:`~dupq.dedupe.decisions`) steer it.
5. :mod:`~dupq.dedupe.write` — the input is streamed again and written with the result columns,
   atomically; the pairs table; the review report (:mod:`~dupq.dedupe.report`).

:mod:`~dupq.dedupe.pipeline` runs them in order.
"""

from __future__ import annotations

from dupq.dedupe.config import DEFAULT_CHUNK, DEFAULT_K, EXACT_SEARCH_MAX, HNSW_EF_SEARCH, DedupeConfig
from dupq.dedupe.group import group_pairs, group_vectors
from dupq.dedupe.pipeline import deduplicate, peak_rss_mb, run
from dupq.dedupe.results import DedupeResult, DedupeSummary
from dupq.dedupe.scan import STATUSES
from dupq.dedupe.search import index_kind, similar_pairs
from dupq.dedupe.write import EXISTING_COLUMN, RESULT_COLUMNS
from dupq.encoder import DEFAULT_THRESHOLD, resolve_threshold

__all__ = [
    "DEFAULT_CHUNK",
    "DEFAULT_K",
    "DEFAULT_THRESHOLD",
    "EXACT_SEARCH_MAX",
    "EXISTING_COLUMN",
    "HNSW_EF_SEARCH",
    "RESULT_COLUMNS",
    "STATUSES",
    "DedupeConfig",
    "DedupeResult",
    "DedupeSummary",
    "deduplicate",
    "group_pairs",
    "group_vectors",
    "index_kind",
    "peak_rss_mb",
    "resolve_threshold",
    "run",
    "similar_pairs",
]
