"""Stage 4, **group**: pairs above the threshold become groups, numbered by their first input row.

Connected components of the "similar" graph chain unrelated questions through A≈B≈C≈… paths: with a
threshold of 0.8 and a thousand questions about one topic, components routinely merge questions whose
direct similarity is 0.3. The default, ``cluster="leader"``, is a leader (community-detection style)
pass: texts are visited in descending order of how many neighbours they have above the threshold; an
unassigned text becomes a group *representative* and takes all of its still-unassigned neighbours.
Every member of a group is therefore within the threshold of its representative (the ``score``
column is that similarity), and a group's diameter is bounded. ``cluster="components"`` gives the
transitive closure instead (larger groups, some members below the threshold to the representative;
their ``score`` shows it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from dupq.dedupe.config import DEFAULT_K
from dupq.dedupe.decisions import Decisions, constrained_leader
from dupq.dedupe.keep import KeepRule, parse_keep
from dupq.dedupe.keep import priority as keep_priority
from dupq.dedupe.search import similar_pairs
from dupq.errors import InputError
from dupq.vectors import connected_components, l2_normalize

if TYPE_CHECKING:
    from dupq.dedupe.scan import Scan


def group_pairs(
    n: int,
    a: np.ndarray,
    b: np.ndarray,
    *,
    method: str = "leader",
    weights: np.ndarray | None = None,
    priority: np.ndarray | None = None,
) -> np.ndarray:
    """Group ``n`` items linked by the pairs ``(a[i], b[i])`` (all above the threshold).

    Returns ``rep``: for each item, the index of its group's representative (``rep[r] == r`` for a
    representative). ``method="leader"``: items are visited by descending degree (ties: larger
    ``weights`` — e.g. how many rows share the text — then lower index); an unassigned item becomes a
    representative and takes its unassigned neighbours, so every member is linked *directly* to its
    representative. ``method="components"``: connected components (transitive closure), represented
    by their highest-degree member. ``priority`` (a rank per item, 0 first; see
    :func:`dupq.dedupe.keep.priority`) replaces the degree order: the survivor rule of ``--keep``.
    """
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    rep = np.arange(n, dtype=np.int64)
    if n == 0 or len(a) == 0:
        return rep
    w = np.ones(n, dtype=np.int64) if weights is None else np.asarray(weights, dtype=np.int64)
    deg = _degree(n, a, b)
    if method == "components":
        labels = connected_components(n, a, b)
        best = (np.arange(n), -w, -deg) if priority is None else (priority,)
        order = np.lexsort((*best, labels))  # by label, then best representative first
        first = np.ones(n, dtype=bool)
        first[1:] = labels[order][1:] != labels[order][:-1]
        label_rep = np.empty(labels.max() + 1, dtype=np.int64)
        label_rep[labels[order][first]] = order[first]
        return label_rep[labels]
    if method != "leader":
        raise ValueError(f"method must be 'leader' or 'components', got {method!r}")
    indptr, dst, _ = neighbour_lists(n, a, b)
    return _leader(indptr, dst, deg, w, priority)


def _leader(
    indptr: np.ndarray,
    dst: np.ndarray,
    deg: np.ndarray,
    w: np.ndarray,
    priority: np.ndarray | None,
    ok: np.ndarray | None = None,
) -> np.ndarray:
    """The leader pass of :func:`group_pairs` over neighbour lists (``ok``: which list entries count)."""
    n = len(deg)
    rep = np.arange(n, dtype=np.int64)
    assigned = deg == 0  # items without neighbours are their own singleton groups
    candidates = np.flatnonzero(deg > 0)
    if priority is None:
        candidates = candidates[np.lexsort((candidates, -w[candidates], -deg[candidates]))]
    else:
        candidates = candidates[np.argsort(priority[candidates], kind="stable")]
    for c in candidates.tolist():
        if assigned[c]:
            continue
        lo, hi = indptr[c], indptr[c + 1]
        nb = dst[lo:hi] if ok is None else dst[lo:hi][ok[lo:hi]]
        nb = nb[~assigned[nb]]
        rep[nb] = c
        assigned[nb] = True
        assigned[c] = True
    return rep


class LeaderLadder:
    """Leader groupings of many subsets of one pair set — the report's what-if ladder re-groups the
    run's pairs at a dozen thresholds. The neighbour lists are built once (with each entry's pair), and
    each grouping masks them: the same groups as :func:`group_pairs` on the subset, without rebuilding
    lists of up to 2 × 123M entries per threshold."""

    def __init__(self, n: int, a: np.ndarray, b: np.ndarray) -> None:
        self.n, self.pairs = n, len(a)
        self.indptr, self.dst, self.pair = neighbour_lists(n, a, b, with_pairs=True)

    def reps(self, use: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """``group_pairs(n, a[use], b[use], weights=weights)`` (leader, degree order).

        The degrees are counted on the masked lists (each pair is an entry at both its ends), not by
        copying ``a[use]``/``b[use]``: at 123M pairs those copies were 2 GB a rung."""
        rep = np.arange(self.n, dtype=np.int64)
        if self.n == 0 or self.pairs == 0 or not use.any():
            return rep
        ok = use[self.pair]
        counted = np.zeros(len(ok) + 1, dtype=np.int32 if len(ok) < 2**31 - 1 else np.int64)
        np.cumsum(ok, out=counted[1:])
        deg = (counted[self.indptr[1:]] - counted[self.indptr[:-1]]).astype(np.int64)
        del counted
        w = np.ones(self.n, dtype=np.int64) if weights is None else np.asarray(weights, dtype=np.int64)
        return _leader(self.indptr, self.dst, deg, w, None, ok=ok)


def neighbour_lists(
    n: int, a: np.ndarray, b: np.ndarray, *, with_pairs: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(indptr, neighbours, pair)``: item ``i``'s neighbours are ``neighbours[indptr[i]:indptr[i + 1]]``
    (each pair listed from both ends; their order within an item is not defined); ``with_pairs``: ``pair``
    gives each entry's index in ``a``/``b`` (the pairs must then be distinct), else it is None.

    Why scipy's COO → CSR: it is a counting sort (linear in the pairs), where a stable ``argsort`` of
    the 2 × pairs endpoints took 18 of the 30 s the leader pass took at 123M pairs (the static student
    at 1M); int32 ids (fewer than 2³¹ items) halve the memory of both lists.
    """
    from scipy.sparse import coo_matrix

    kind = np.int32 if n < 2**31 - 1 else np.int64
    src = np.concatenate([a.astype(kind, copy=False), b.astype(kind, copy=False)])
    dst = np.concatenate([b.astype(kind, copy=False), a.astype(kind, copy=False)])
    if not with_pairs:
        csr = coo_matrix((np.ones(len(src), dtype=np.bool_), (src, dst)), shape=(n, n)).tocsr()
        return csr.indptr.astype(np.int64, copy=False), csr.indices, None
    index = np.arange(1, len(a) + 1, dtype=np.int64 if len(a) >= 2**31 - 1 else np.int32)
    csr = coo_matrix((np.concatenate([index, index]), (src, dst)), shape=(n, n)).tocsr()
    del src, dst, index  # the matrix holds its own lists now
    if csr.nnz != 2 * len(a):  # a repeated pair was summed into one entry: its index is meaningless
        raise ValueError("neighbour_lists(with_pairs=True) needs distinct pairs")
    pair = csr.data
    pair -= 1  # in place: a copy is another 4 bytes an entry
    return csr.indptr.astype(np.int64, copy=False), csr.indices, pair


def group_vectors(
    vectors: np.ndarray,
    threshold: float,
    *,
    cluster: str = "leader",
    k: int = DEFAULT_K,
    index: str = "auto",
    weights: np.ndarray | None = None,
    keep: str | KeepRule = "most-neighbours",
    texts: list[str] | None = None,
    values: list | None = None,
) -> np.ndarray:
    """Representative index of each row of ``vectors``: the search + grouping :func:`deduplicate` runs
    (``keep``: the survivor rule; ``texts``/``values`` for the rules that need them)."""
    a, b, _ = similar_pairs(vectors, threshold, k=k, index=index)
    n = len(vectors)
    w = np.ones(n, dtype=np.int64) if weights is None else np.asarray(weights, dtype=np.int64)
    rank = keep_priority(
        parse_keep(keep), _degree(n, a, b), w, first_row=np.arange(n), texts=texts, values=values
    )
    return group_pairs(n, a, b, method=cluster, weights=w, priority=rank)


def _degree(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.bincount(np.asarray(a, np.int64), minlength=n) + np.bincount(
        np.asarray(b, np.int64), minlength=n
    )


def group_reps(
    scan: Scan,
    pairs: tuple[np.ndarray, np.ndarray],
    cluster: str,
    keep: KeepRule | None = None,
    decisions: Decisions | None = None,
) -> np.ndarray:
    """The representative of each unique text of ``scan``: the grouping a run (and each what-if) does."""
    n = len(scan.texts)
    if decisions is None:
        rank = scan_priority(scan, pairs, keep)
        return group_pairs(n, pairs[0], pairs[1], method=cluster, weights=scan.counts, priority=rank)
    if cluster != "leader":
        raise InputError(
            "review decisions need cluster='leader': in a transitive closure a pair marked 'not a "
            "duplicate' can still be joined through other pairs",
            column="cluster",
        )
    rank = scan_priority(scan, pairs, keep or KeepRule("most-neighbours"), always=True)
    assert rank is not None
    return constrained_leader(
        n, np.asarray(pairs[0], np.int64), np.asarray(pairs[1], np.int64), rank, decisions
    )


def degree_order(keep: KeepRule | None) -> bool:
    """Whether ``keep`` is the leader pass's own visiting order (most neighbours first): then no priority
    is computed, and the report's what-if ladder can re-group with :class:`LeaderLadder`."""
    return keep is None or keep.kind == "most-neighbours"


def scan_priority(
    scan: Scan, pairs: tuple[np.ndarray, np.ndarray], keep: KeepRule | None, always: bool = False
) -> np.ndarray | None:
    """The leader pass's visiting order for ``keep`` over the texts of ``scan`` (None: the default
    degree order, which :func:`group_pairs` computes itself unless ``always``)."""
    if not always and degree_order(keep):
        return None
    n = len(scan.texts)
    return keep_priority(
        keep or KeepRule("most-neighbours"),
        _degree(n, pairs[0], pairs[1]),
        scan.counts,
        first_row=scan.rep_row,
        texts=scan.texts,
        values=scan.keep_values,
    )


@dataclass
class Groups:
    """Per unique text: its representative, group number, score to the representative (or to the
    matched base text), the id ``duplicate_of`` names, and the matched base text (-1: none)."""

    rep: np.ndarray
    group: np.ndarray
    score: np.ndarray
    dup: np.ndarray
    matched: np.ndarray
    n_groups: int
    with_existing: bool


def group(
    scan: Scan,
    vectors: Any,
    pairs: tuple[np.ndarray, np.ndarray],
    cluster: str,
    chunk: int,
    base_scan: Scan | None = None,
    match: tuple[np.ndarray, np.ndarray] | None = None,
    keep: KeepRule | None = None,
    decisions: Decisions | None = None,
) -> Groups:
    """Group the unique texts of ``scan`` from their similar ``pairs`` (and their ``match`` to a base);
    ``keep`` is the survivor rule (default: most neighbours), ``decisions`` a reviewer's marks."""
    n = len(scan.texts)
    matched, match_score = match if match is not None else (np.full(n, -1, np.int64), np.zeros(n, np.float32))
    rep = group_reps(scan, pairs, cluster, keep, decisions)
    # Similarity of each text to its representative (the ``score`` column).
    score = np.ones(n, dtype=np.float32)
    nonrep = np.flatnonzero((rep != np.arange(n)) & (matched < 0))
    for start in range(0, len(nonrep), chunk):
        sel = nonrep[start : start + chunk]
        score[sel] = np.einsum("ij,ij->i", l2_normalize(vectors[sel]), l2_normalize(vectors[rep[sel]]))
    score[matched >= 0] = match_score[matched >= 0]
    # Group ids: numbered by the first input row of each group.
    labels = np.where(matched >= 0, n + matched, rep)
    label_first = np.full(n + (len(base_scan.texts) if base_scan is not None else 0), np.iinfo(np.int64).max)
    np.minimum.at(label_first, labels, scan.first_row)
    used = np.unique(labels)
    rank = np.empty(len(label_first), dtype=np.int64)
    rank[used[np.argsort(label_first[used], kind="stable")]] = np.arange(len(used))
    # duplicate_of per uid: the representative's id, or the base row's id.
    dup = scan.uid_id(rep).astype(object)
    if base_scan is not None and (matched >= 0).any():
        m = np.flatnonzero(matched >= 0)
        dup[m] = base_scan.uid_id(matched[m])
    return Groups(rep, rank[labels], score, dup, matched, len(used), base_scan is not None)
