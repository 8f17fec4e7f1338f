"""Candidate pairs kept in the work directory, so that another threshold needs no search.

The search stage keeps, besides the pairs above the threshold, every pair down to a **floor** below it
(``search_margin``, default :data:`~dupq.dedupe.config.SEARCH_MARGIN`) among each text's ``k`` nearest
neighbours, and saves them beside the embeddings with, per text, the lowest threshold down to which its
neighbours are all listed (``complete_to``: the threshold when its k-th neighbour reached it and a range
search completed it, else just above its k-th neighbour's cosine). A later run on the same texts, model
and search settings takes its pairs from here when its threshold is at or above the floor and no text's
list is cut above it — always for a higher threshold, and for a lower one when ``k`` was enough — a
filter, not a search (seconds at 100k rows). Otherwise it searches the stored vectors again (no
re-encoding) and replaces the saved pairs. The report's what-if table uses the same pairs and says, per
threshold, how many texts' lists are cut there.

For exact (flat) search the pairs taken from here equal those of a fresh search at that threshold:
every text's neighbours above it are listed either way (``tests/test_dedupe_rethreshold.py``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from dupq.io import atomic_path, atomic_write_json

logger = logging.getLogger(__name__)


class Pairs(NamedTuple):
    """Pairs ``a < b`` of unique texts with their cosine ``s``, as a stage hands them on (the live ones,
    the verified ones). A tuple, so ``a, b, s = pairs`` still reads; named, so a stage's signature says
    what it takes."""

    a: np.ndarray
    b: np.ndarray
    s: np.ndarray

    def select(self, keep: np.ndarray) -> Pairs:
        """The pairs where ``keep`` (bool per pair) is set."""
        return Pairs(self.a[keep], self.b[keep], self.s[keep])


@dataclass
class CandidatePairs:
    """Pairs ``a < b`` of unique texts with their cosine ``s``, searched down to ``floor``; per text,
    ``complete_to`` (see the module docstring)."""

    a: np.ndarray
    b: np.ndarray
    s: np.ndarray
    floor: float
    complete_to: np.ndarray

    def cut_above(self, threshold: float, live: np.ndarray | None = None) -> int:
        """How many texts (of ``live``) have neighbours at or above ``threshold`` missing here."""
        cut = self.complete_to > np.float32(threshold)
        return int((cut if live is None else cut & live).sum())

    def covers(self, threshold: float) -> bool:
        """Whether :meth:`above` gives every pair at ``threshold`` (so no search is needed)."""
        return threshold >= self.floor - 1e-9 and self.cut_above(threshold) == 0

    def above(self, threshold: float) -> Pairs:
        """The pairs with cosine ``>= threshold`` (which must not be below :attr:`floor`) — when all of
        them qualify, these arrays themselves rather than copies: read them, do not modify them."""
        if threshold < self.floor - 1e-9:
            raise ValueError(f"pairs were searched down to {self.floor}, not {threshold}")
        keep = self.s >= np.float32(threshold)
        if keep.all():  # the arrays themselves (read-only use): copies of 123M pairs are 2.5 GB
            return Pairs(self.a.astype(np.int64, copy=False), self.b.astype(np.int64, copy=False), self.s)
        return Pairs(self.a[keep].astype(np.int64), self.b[keep].astype(np.int64), self.s[keep])


class PairCache:
    """The saved candidate pairs of one embedding store under one set of search settings."""

    def __init__(
        self, store_dir: Path, *, k: int, index: str, ef_search: int | None, extra: dict | None = None
    ) -> None:
        # ``extra``: what else decides which pairs a search finds (the Ray partitioned search's
        # partitions and assignments), so pairs of one search are never taken for another's.
        settings = {"k": k, "index": index, "ef_search": ef_search, **(extra or {})}
        key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
        self.settings = settings
        self.path = store_dir / f"pairs-{key}.npz"
        self.meta_path = store_dir / f"pairs-{key}.json"

    def load(self, threshold: float) -> CandidatePairs | None:
        """The saved pairs when they give every pair at ``threshold`` (None: search needed)."""
        try:
            meta = json.loads(self.meta_path.read_text(encoding="utf-8"))
            if meta.get("settings") != self.settings or threshold < meta["floor"] - 1e-9:
                return None
            with np.load(self.path) as z:
                pairs = CandidatePairs(z["a"], z["b"], z["s"], float(meta["floor"]), z["complete_to"])
        except (OSError, ValueError, KeyError):
            return None
        if len(pairs.a) != meta.get("pairs"):
            logger.warning("ignoring damaged saved pairs at %s", self.path)
            return None
        if not pairs.covers(threshold):
            logger.info("saved pairs are cut at k above %.3f for some texts: searching again", threshold)
            return None
        return pairs

    def save(self, pairs: CandidatePairs) -> None:
        """Save the pairs (the arrays first, then the meta that makes them valid; both atomically)."""
        small = len(pairs.a) == 0 or int(max(pairs.a.max(), pairs.b.max())) < 2**31
        dtype = np.int32 if small else np.int64
        with atomic_path(self.path) as tmp, open(tmp, "wb") as fh:
            np.savez(
                fh,
                a=pairs.a.astype(dtype),
                b=pairs.b.astype(dtype),
                s=pairs.s.astype(np.float32),
                complete_to=pairs.complete_to.astype(np.float32),
            )
        meta = {"settings": self.settings, "floor": pairs.floor, "pairs": int(len(pairs.a))}
        atomic_write_json(self.meta_path, meta)
