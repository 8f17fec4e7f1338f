"""Candidate pairs kept in the work directory, so that another threshold needs no search.

The search stage looks for pairs down to a **floor** below the threshold (``search_margin``, default
:data:`~dupq.dedupe.config.SEARCH_MARGIN`) and saves them beside the embeddings. A later run on the same
texts, model and search settings at a threshold at or above the floor takes its pairs from here (a
filter, not a search: seconds at 100k rows), and the report's what-if table is computed from the same
pairs. A threshold below the floor searches again from the stored vectors (no re-encoding) and replaces
the saved pairs.

For exact (flat) search, the pairs above a threshold ``t >= floor`` are exactly the pairs a fresh search
at ``t`` finds: every row whose ``k``-th neighbour is above the floor gets a range search at the floor,
so no pair above ``t`` is cut at ``k`` either way (``tests/test_dedupe_rethreshold.py``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dupq.io import atomic_path, atomic_write_json

logger = logging.getLogger(__name__)


@dataclass
class CandidatePairs:
    """Pairs ``a < b`` of unique texts with their cosine ``s``, searched down to ``floor``."""

    a: np.ndarray
    b: np.ndarray
    s: np.ndarray
    floor: float

    def above(self, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The pairs with cosine ``>= threshold`` (which must not be below :attr:`floor`)."""
        if threshold < self.floor - 1e-9:
            raise ValueError(f"pairs were searched down to {self.floor}, not {threshold}")
        keep = self.s >= np.float32(threshold)
        return self.a[keep].astype(np.int64), self.b[keep].astype(np.int64), self.s[keep]


class PairCache:
    """The saved candidate pairs of one embedding store under one set of search settings."""

    def __init__(self, store_dir: Path, *, k: int, index: str, ef_search: int | None) -> None:
        settings = {"k": k, "index": index, "ef_search": ef_search}
        key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
        self.settings = settings
        self.path = store_dir / f"pairs-{key}.npz"
        self.meta_path = store_dir / f"pairs-{key}.json"

    def load(self, threshold: float) -> CandidatePairs | None:
        """The saved pairs when they reach down to ``threshold`` (None: search needed)."""
        try:
            meta = json.loads(self.meta_path.read_text(encoding="utf-8"))
            if meta.get("settings") != self.settings or threshold < meta["floor"] - 1e-9:
                return None
            with np.load(self.path) as z:
                pairs = CandidatePairs(z["a"], z["b"], z["s"], float(meta["floor"]))
        except (OSError, ValueError, KeyError):
            return None
        if len(pairs.a) != meta.get("pairs"):
            logger.warning("ignoring damaged saved pairs at %s", self.path)
            return None
        return pairs

    def save(self, pairs: CandidatePairs) -> None:
        """Save the pairs (the arrays first, then the meta that makes them valid; both atomically)."""
        small = len(pairs.a) == 0 or int(max(pairs.a.max(), pairs.b.max())) < 2**31
        dtype = np.int32 if small else np.int64
        with atomic_path(self.path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, a=pairs.a.astype(dtype), b=pairs.b.astype(dtype), s=pairs.s.astype(np.float32))
        meta = {"settings": self.settings, "floor": pairs.floor, "pairs": int(len(pairs.a))}
        atomic_write_json(self.meta_path, meta)
