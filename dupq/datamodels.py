"""Where dupq's result dataclasses used to live; kept so that code importing them from here still works.

They are split by domain now: pairs and splits in :mod:`dupq.pairdata`, the evaluation report in
:mod:`dupq.evaluation.records`, Matcher results in :mod:`dupq.matches`.
"""

from __future__ import annotations

from dupq.evaluation.records import EvaluationReport, SystemResult
from dupq.matches import Match, QueryMatches, format_matches
from dupq.pairdata import (
    ISSUE_KINDS,
    PAIR_COLUMNS,
    PairData,
    RowIssue,
    Splits,
    empty_pairs,
    pairs_from_tsv,
    pairs_to_tsv,
)

__all__ = [
    "ISSUE_KINDS",
    "PAIR_COLUMNS",
    "EvaluationReport",
    "Match",
    "PairData",
    "QueryMatches",
    "RowIssue",
    "Splits",
    "SystemResult",
    "empty_pairs",
    "format_matches",
    "pairs_from_tsv",
    "pairs_to_tsv",
]
