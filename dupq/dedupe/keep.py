"""Survivor rules (``--keep``): which text of a duplicate group is its representative.

A rule does not pick a survivor *after* grouping (that would break the leader grouping's guarantee:
members are within the threshold of the text that took them, not of a text promoted later). It sets
the **order in which the leader pass visits texts**: the best unassigned text by the rule becomes a
representative and takes its unassigned neighbours. Every member is therefore still within the
threshold of its representative, and the representative is the best text of its group by the rule
(every member was unassigned, so visited later, when it was taken).

Rules: ``most-neighbours`` (the default: the text with the most neighbours above the threshold, then
the most rows, then the first), ``first`` (earliest input row), ``longest`` / ``shortest`` (characters),
``most-frequent`` (shared by the most rows, i.e. exact duplicates), ``column:NAME[:asc|desc]`` (the
smallest value of column NAME by default, the largest with ``:desc``; numbers compare as numbers when
every value of the column is one, else as text, so ISO dates sort right; empty values lose).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dupq.errors import InputError

#: The rules ``--keep`` accepts (``column:NAME[:asc|desc]`` besides these).
KEEP_RULES = ("most-neighbours", "first", "longest", "shortest", "most-frequent")


@dataclass(frozen=True)
class KeepRule:
    """A parsed ``--keep`` value."""

    kind: str
    column: str | None = None
    descending: bool = False

    def __str__(self) -> str:
        if self.kind != "column":
            return self.kind
        return f"column:{self.column}:{'desc' if self.descending else 'asc'}"


def parse_keep(spec: str | KeepRule) -> KeepRule:
    """``"longest"`` or ``"column:votes:desc"`` → :class:`KeepRule` (an :class:`InputError` otherwise)."""
    if isinstance(spec, KeepRule):
        return spec
    if spec in KEEP_RULES:
        return KeepRule(spec)
    if spec.startswith("column:"):
        rest = spec[len("column:") :]
        name, direction = rest, "asc"
        if rest.rsplit(":", 1)[-1] in ("asc", "desc") and ":" in rest:
            name, direction = rest.rsplit(":", 1)
        if name:
            return KeepRule("column", name, direction == "desc")
    raise InputError(
        f"keep must be one of {', '.join(KEEP_RULES)} or column:NAME[:asc|desc], got {spec!r}",
        column="keep",
    )


def value_ranks(values: list, descending: bool) -> np.ndarray:
    """Rank of each value (0 = wins); numbers as numbers when all are, empty values last."""
    s = pd.Series(values, dtype=object)
    missing = s.isna() | s.map(lambda v: isinstance(v, str) and not v.strip())
    present = s[~missing]
    numeric = pd.to_numeric(present, errors="coerce")
    keyed = numeric if len(present) and numeric.notna().all() else present.astype(str)
    ranks = np.full(len(s), len(s), dtype=np.int64)  # missing: after every present value
    if len(present):
        dense = keyed.rank(method="dense", ascending=not descending).to_numpy()
        ranks[np.flatnonzero(~missing.to_numpy())] = dense.astype(np.int64) - 1
    return ranks


def best_rows(row_uid: np.ndarray, row_values: list, n_uid: int, descending: bool) -> np.ndarray:
    """Per uid, the row (among its exact duplicates) with the winning value; ties: the first row."""
    rows = np.flatnonzero(row_uid >= 0)
    ranks = value_ranks([row_values[r] for r in rows.tolist()], descending)
    order = np.lexsort((rows, ranks, row_uid[rows]))  # per uid: best rank, then earliest row
    uids = row_uid[rows][order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = uids[1:] != uids[:-1]
    best = np.zeros(n_uid, dtype=np.int64)
    best[uids[first]] = rows[order][first]
    return best


def priority(
    rule: KeepRule,
    deg: np.ndarray,
    weights: np.ndarray,
    *,
    first_row: np.ndarray | None = None,
    texts: list[str] | None = None,
    values: list | None = None,
) -> np.ndarray:
    """Visiting rank per item for the leader pass (0 = visited first = the best representative).

    ``deg``: neighbours above the threshold; ``weights``: rows per text; ``first_row``: each text's first
    input row; ``texts``: the texts (``longest``/``shortest``); ``values``: the column value of each
    text's representative row (``column:``). Ties fall back to the default order.
    """
    n = len(deg)
    idx = np.arange(n)
    default = [idx, -weights, -deg]  # np.lexsort: the last key is the primary one
    if rule.kind == "most-neighbours":
        keys = default
    elif rule.kind == "first":
        keys = [idx, _need(first_row, rule)]
    elif rule.kind in ("longest", "shortest"):
        lengths = np.fromiter((len(t) for t in _need(texts, rule)), dtype=np.int64, count=n)
        keys = [*default, -lengths if rule.kind == "longest" else lengths]
    elif rule.kind == "most-frequent":
        keys = [idx, -deg, -weights]
    else:
        keys = [*default, value_ranks(_need(values, rule), rule.descending)]
    order = np.lexsort(keys)
    rank = np.empty(n, dtype=np.int64)
    rank[order] = idx
    return rank


def _need(value, rule: KeepRule):
    if value is None:
        raise ValueError(f"keep rule {rule} needs more than the grouping was given")
    return value
