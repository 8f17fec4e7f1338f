"""dupq — semantic duplicate-question detection with Siamese text encoders and FAISS.

The names a user needs are here; everything else is reachable from its module, which follow the
pipeline: :mod:`dupq.data` → :mod:`dupq.encoder` / :mod:`dupq.embed` (:mod:`dupq.backends`) →
:mod:`dupq.training` → :mod:`dupq.evaluation` → :mod:`dupq.index` → :mod:`dupq.matcher` /
:mod:`dupq.dedupe` → :mod:`dupq.cli` / :mod:`dupq.server`.
"""

from __future__ import annotations

from dupq._version import __version__
from dupq.data import load_pairs, split_pairs
from dupq.dedupe import DedupeResult, DedupeSummary, deduplicate
from dupq.embed import Embedder
from dupq.errors import ConflictError, DupqError, EncoderLoadError, InputError, StoreError, UnknownIdError
from dupq.evaluation import evaluate
from dupq.evaluation.records import EvaluationReport
from dupq.matcher import Matcher
from dupq.matches import Match, QueryMatches
from dupq.pairdata import PairData, Splits
from dupq.training import TrainResult, train

__all__ = [
    "ConflictError",
    "DedupeResult",
    "DedupeSummary",
    "DupqError",
    "Embedder",
    "EncoderLoadError",
    "EvaluationReport",
    "InputError",
    "Match",
    "Matcher",
    "PairData",
    "QueryMatches",
    "Splits",
    "StoreError",
    "TrainResult",
    "UnknownIdError",
    "__version__",
    "deduplicate",
    "evaluate",
    "load_pairs",
    "split_pairs",
    "train",
]
