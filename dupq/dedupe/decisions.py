"""Review decisions (``--decisions marks.csv``): a reviewer's "duplicate" / "not a duplicate" marks,
applied to the grouping as must-link / cannot-link constraints.

The file is the one the HTML report exports, and an ordinary labelled pair file (``qid1, qid2,
question1, question2, label``; 1 = duplicate), so it is read by :func:`dupq.data.load_pairs` — the
same file ``dupq train --extra-pairs`` takes, which closes the loop from review to a better model.
Pairs are matched to the input by their texts (:func:`dupq.text.text_key`, as exact duplicates are),
so the marks survive re-ordered or re-exported inputs.

Grouping with decisions (:func:`constrained_leader`) is the leader pass with two changes: texts joined
by "duplicate" marks move as one block (a must-link pair is always grouped, even below the threshold),
and a text is not taken into a group that holds a text it was marked "not a duplicate" of (a
cannot-link pair is never grouped). Every member that no mark forced is still within the threshold of
its representative.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dupq.errors import InputError
from dupq.text import text_key
from dupq.vectors import connected_components

if TYPE_CHECKING:
    from dupq.dedupe.scan import Scan

logger = logging.getLogger(__name__)


@dataclass
class Decisions:
    """Must-link and cannot-link pairs of unique texts (uids), and what could not be applied."""

    must_a: np.ndarray
    must_b: np.ndarray
    cannot_a: np.ndarray
    cannot_b: np.ndarray
    source: str = ""
    not_found: int = 0
    skipped: int = 0
    rows: dict[tuple[int, int], int] = field(default_factory=dict, repr=False)  # uid pair -> file row

    def summary(self) -> dict[str, object]:
        return {
            "file": self.source,
            "must_link": int(len(self.must_a)),
            "cannot_link": int(len(self.cannot_a)),
            "texts_not_in_input": self.not_found,
            "rows_skipped": self.skipped,
        }


def load_decisions(path: str | Path, scan: Scan) -> Decisions:
    """Read a marks file and map its pairs to the unique texts of ``scan``.

    Rows whose texts are not in the input are counted (``not_found``) and skipped with a warning; a
    bad label is an error naming the row; a pair marked both ways, or a "not a duplicate" pair joined
    by "duplicate" marks, is an error naming the rows.
    """
    from dupq.data import load_pairs

    data = load_pairs(path, strict=False)
    bad = [i for i in data.issues if i.kind != "self_pair"]
    if bad:
        raise InputError(f"{bad[0].kind}: {bad[0].value}", file=path, row=bad[0].row, column=bad[0].column)
    pairs = data.pairs
    must: list[tuple[int, int]] = []
    cannot: list[tuple[int, int]] = []
    rows: dict[tuple[int, int], int] = {}
    not_found = 0
    for q1, q2, label, row in zip(
        pairs["question1"], pairs["question2"], pairs["label"], pairs["source_row"], strict=True
    ):
        u1, u2 = scan.keys.get(text_key(q1)), scan.keys.get(text_key(q2))
        if u1 is None or u2 is None:
            not_found += 1
            continue
        if u1 == u2:
            continue  # exact copies: always one text
        key = (min(u1, u2), max(u1, u2))
        if key in rows and (key in must) != bool(label):
            raise InputError(f"marked both duplicate and not (also row {rows[key]})", file=path, row=int(row))
        rows[key] = int(row)
        (must if label else cannot).append(key)
    if not_found:
        logger.warning("%s: %d marked pairs name texts that are not in this input", path, not_found)
    decisions = Decisions(
        *_arrays(must),
        *_arrays(cannot),
        source=str(path),
        not_found=not_found,
        skipped=len(data.issues),
        rows=rows,
    )
    _check_consistent(decisions, len(scan.texts), path)
    return decisions


def _arrays(pairs: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    arr = np.asarray(sorted(set(pairs)), dtype=np.int64).reshape(-1, 2)
    return arr[:, 0], arr[:, 1]


def _check_consistent(d: Decisions, n: int, path: str | Path) -> None:
    """A cannot-link pair inside one must-link block cannot be satisfied: name its row."""
    block = connected_components(n, d.must_a, d.must_b) if n else np.zeros(0, np.int64)
    clash = np.flatnonzero(block[d.cannot_a] == block[d.cannot_b]) if len(d.cannot_a) else []
    if len(clash):
        i = int(clash[0])
        row = d.rows.get((int(d.cannot_a[i]), int(d.cannot_b[i])))
        raise InputError(
            "marked not a duplicate, but other rows mark the two texts duplicates through a chain of "
            "pairs; change one of the marks",
            file=path,
            row=row,
        )


def constrained_leader(
    n: int, a: np.ndarray, b: np.ndarray, rank: np.ndarray, decisions: Decisions
) -> np.ndarray:
    """The leader pass (``rank``: visiting order, 0 first) under must-link / cannot-link decisions."""
    cannot = {(int(x), int(y)) for x, y in zip(decisions.cannot_a, decisions.cannot_b, strict=True)}
    if cannot and len(a):
        keep = np.fromiter(
            ((int(x), int(y)) not in cannot for x, y in zip(a, b, strict=True)), dtype=bool, count=len(a)
        )
        a, b = a[keep], b[keep]
    forbid: dict[int, set[int]] = {}
    for x, y in cannot:
        forbid.setdefault(x, set()).add(y)
        forbid.setdefault(y, set()).add(x)
    block = connected_components(n, decisions.must_a, decisions.must_b)
    members: dict[int, list[int]] = {}
    for u in np.unique(np.concatenate([decisions.must_a, decisions.must_b])).tolist():
        members.setdefault(int(block[u]), []).append(u)
    src, dst = np.concatenate([a, b]), np.concatenate([b, a])
    order = np.argsort(src, kind="stable")
    dst = dst[order]
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(src, minlength=n), out=indptr[1:])
    rep = np.arange(n, dtype=np.int64)
    assigned = np.zeros(n, dtype=bool)
    linked = (indptr[1:] > indptr[:-1]) | np.isin(np.arange(n), _flat(members))
    candidates = np.flatnonzero(linked)
    for c in candidates[np.argsort(rank[candidates], kind="stable")].tolist():
        if assigned[c]:
            continue
        group = members.get(int(block[c]), [c])
        banned = set().union(*(forbid.get(u, ()) for u in group))
        rep[group] = c
        assigned[group] = True
        for nb in dst[indptr[c] : indptr[c + 1]].tolist():
            if assigned[nb]:
                continue
            blk = members.get(int(block[nb]), [nb])
            if banned.intersection(blk):
                continue
            rep[blk] = c
            assigned[blk] = True
            banned.update(*(forbid.get(u, ()) for u in blk))
    return rep


def _flat(members: dict[int, list[int]]) -> list[int]:
    return [u for us in members.values() for u in us]
