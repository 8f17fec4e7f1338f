"""The pair-file formats: which columns make a pair in each, how a header is recognised, and the
per-row checks that turn a parsed table into a :class:`~dupq.pairdata.PairData`.

Split from :mod:`dupq.data` by job (issue 26): that module finds and reads the sources (files, the
Hugging Face hub, the shared sets) and splits them; this one knows the formats and validates rows, the
same way for every source. :mod:`dupq.data` re-exports the public names.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dupq.delimited import Table, show, uses_csv_quoting
from dupq.errors import InputError
from dupq.pairdata import PAIR_COLUMNS, PairData, RowIssue, empty_pairs
from dupq.text import is_blank, normalize, normalized_key

logger = logging.getLogger(__name__)

#: Formats :func:`load_pairs` understands (``auto`` detects one of the others from the header).
FORMATS = ("auto", "quora", "kaggle", "glue", "mqp", "semeval-cqa", "mrpc", "generic")

QUORA_COLUMNS = ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"]
MQP_COLUMNS = ["dr_id", "question1", "question2", "label"]
MRPC_COLUMNS = ["label", "id1", "id2", "sentence1", "sentence2"]
MRPC_GLUE_COLUMNS = ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"]
SEMEVAL_COLUMNS = ["orgq_id", "orgq_subject", "orgq_body", "relq_id", "relq_subject", "relq_body", "label"]

#: Column names :func:`load_pairs` recognises in generic files, tried in order (case-insensitive).
TEXT_COLUMN_PAIRS = [
    ("question1", "question2"),
    ("sentence1", "sentence2"),
    ("text1", "text2"),
    ("s1", "s2"),
    ("text_a", "text_b"),
    ("sentence_a", "sentence_b"),
]
LABEL_COLUMNS = ["label", "is_duplicate", "duplicate", "is_paraphrase", "labels"]
QID_COLUMN_PAIRS = [("qid1", "qid2")]


@dataclass
class Spec:
    """Which source columns make each canonical column (text may join several, e.g. subject + body)."""

    q1: list[str]
    q2: list[str]
    label: str
    qid1: str | None = None
    qid2: str | None = None


def check_not_unlabelled(path: Path, header: list[str]) -> None:
    """GLUE ``test.tsv`` and Kaggle ``test.csv`` carry no labels: say so instead of 'missing column'."""
    names = [h.strip() for h in header]
    if names == ["id", "question1", "question2"]:
        raise InputError(
            "this is GLUE QQP test.tsv, which has no labels (GLUE keeps them private); "
            "use train.tsv or dev.tsv for training and evaluation",
            file=path,
            column="is_duplicate",
        )
    if names == ["test_id", "question1", "question2"]:
        raise InputError(
            "this is Kaggle's Quora test.csv, which has no labels; use train.csv",
            file=path,
            column="is_duplicate",
        )


def detect_format(path: Path, header: list[str], delim: str, text: str) -> str:
    names = [h.strip() for h in header]
    if names == QUORA_COLUMNS:
        if delim == ",":
            return "kaggle"
        # Quora's original file and GLUE's QQP share the header; Quora's is CSV-quoted, GLUE's is not.
        if "quora" in path.name.lower():
            return "quora"
        return "quora" if uses_csv_quoting(text, delim) else "glue"
    if names == MQP_COLUMNS:
        return "mqp"
    if names in (MRPC_COLUMNS, MRPC_GLUE_COLUMNS):
        return "mrpc"
    if all(c in names for c in SEMEVAL_COLUMNS):
        return "semeval-cqa"
    return "generic"


def fixed_spec(
    path: Path,
    table: Table,
    q1: list[str],
    q2: list[str],
    label: str,
    qid1: str | None = None,
    qid2: str | None = None,
) -> Spec:
    needed = [*q1, *q2, label, *(c for c in (qid1, qid2) if c)]
    _require(path, list(table.columns), needed)
    return Spec(q1, q2, label, qid1, qid2)


def _require(path: Path, found: list[str], needed: list[str]) -> None:
    missing = [c for c in needed if c not in found]
    if missing:
        raise InputError(
            f"missing column {missing[0]!r}; the file has columns {found}", file=path, column=missing[0]
        )


def generic_spec(path: Path, found: list[str], overrides: dict[str, str | None]) -> Spec:
    """Resolve the text, label and qid columns of a generic file (explicit names win over detection)."""
    lower = {c.lower(): c for c in found}

    def pick_pair(options: Sequence[tuple[str, str]]) -> tuple[str, str] | None:
        for a, b in options:
            if a in lower and b in lower:
                return lower[a], lower[b]
        return None

    q1, q2 = overrides["question1"], overrides["question2"]
    if q1 is None or q2 is None:
        detected = pick_pair(TEXT_COLUMN_PAIRS)
        if detected is None:
            expected = ", ".join("/".join(p) for p in TEXT_COLUMN_PAIRS)
            raise InputError(
                f"cannot find the two question columns (tried {expected}); the file has columns {found}; "
                "name them with question1=/question2= (CLI --question1/--question2)",
                file=path,
                column=q1 or "question1",
            )
        q1, q2 = q1 or detected[0], q2 or detected[1]
    lab = overrides["label"]
    if lab is None:
        lab = next((lower[c] for c in LABEL_COLUMNS if c in lower), None)
        if lab is None:
            raise InputError(
                f"cannot find a 0/1 label column (tried {', '.join(LABEL_COLUMNS)}); the file has columns "
                f"{found}; name it with label= (CLI --label)",
                file=path,
                column="label",
            )
    id1, id2 = overrides["qid1"], overrides["qid2"]
    if (id1 is None) != (id2 is None):
        raise InputError("give both qid1= and qid2= or neither", file=path, column=id1 or id2)
    if id1 is None:
        detected_ids = pick_pair(QID_COLUMN_PAIRS)
        if detected_ids is not None:
            id1, id2 = detected_ids
    _require(path, found, [q1, q2, lab, *(c for c in (id1, id2) if c)])
    return Spec([q1], [q2], lab, id1, id2)


def _as_text(value: Any) -> str | None:
    """A question's text, or None when there is nothing a model could encode."""
    if is_blank(value):
        return None
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, (bytes, bytearray)):
        return None
    return str(value).strip() or None


def _join_text(values: list[Any]) -> str | None:
    """Join subject and body (SemEval) into one question; a single column passes through."""
    if len(values) == 1:
        v = values[0]
        if type(v) is str:  # the common case, kept cheap: QQP has 800k question cells
            v = v.strip()
            return v or None
        return _as_text(v)
    parts = [t for t in (_as_text(v) for v in values) if t]
    if not parts:
        return None
    out = parts[0]
    for part in parts[1:]:
        if part.startswith(out):  # bodies often repeat the subject
            out = part
            continue
        out = f"{out} {part}" if out[-1] in ".?!:;" else f"{out}. {part}"
    return out


_LABELS = {"0": 0, "1": 1, "0.0": 0, "1.0": 1, "false": 0, "true": 1}


def parse_label(value: Any) -> int | None:
    """0 or 1 from the ways files spell a binary label (``1``, ``"1"``, ``1.0``, ``True``); else None."""
    if type(value) is str:
        return _LABELS.get(value) if value in _LABELS else _LABELS.get(value.strip().lower())
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (int, np.integer)):
        return int(value) if value in (0, 1) else None
    if isinstance(value, (float, np.floating)):
        return int(value) if value in (0.0, 1.0) else None
    if isinstance(value, str):
        return _LABELS.get(value.strip().lower())
    return None


def _as_qid(value: Any) -> str | None:
    if type(value) is str:
        return value.strip() or None
    if is_blank(value):
        return None
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))  # Parquet/JSON turn nullable integer ids into floats
    return str(value).strip()


class _RowChecker:
    """Checks one row of a table against a :class:`Spec`: text present, label 0/1, not a self-pair.

    Normalised texts and their keys are cached: QQP repeats the same questions many times."""

    def __init__(self, table: Table, spec: Spec) -> None:
        cols = table.columns
        self.spec = spec
        self.c_q1 = [cols[c] for c in spec.q1]
        self.c_q2 = [cols[c] for c in spec.q2]
        self.c_label = cols[spec.label]
        self.c_id1 = cols[spec.qid1] if spec.qid1 else None
        self.c_id2 = cols[spec.qid2] if spec.qid2 else None
        self.name_q1 = "+".join(spec.q1)
        self.name_q2 = "+".join(spec.q2)
        self._norms: dict[str, str] = {}
        self._keys: dict[str, str] = {}

    def norm(self, t: str) -> str:
        n = self._norms.get(t)
        if n is None:
            n = self._norms[t] = normalize(t)
        return n

    def key(self, t: str) -> str:
        k = self._keys.get(t)
        if k is None:
            k = self._keys[t] = normalized_key(self.norm(t))
        return k

    def check(self, i: int, row: int) -> tuple[list[RowIssue], tuple[Any, ...]]:
        """``(issues, (qid1, qid2, question1, question2, label))`` for the ``i``-th row (source ``row``)."""
        spec, name_q1, name_q2 = self.spec, self.name_q1, self.name_q2
        issues: list[RowIssue] = []
        raw1 = [c[i] for c in self.c_q1]
        raw2 = [c[i] for c in self.c_q2]
        t1, t2 = _join_text(raw1), _join_text(raw2)
        if t1 is None:
            issues.append(RowIssue(row, name_q1, "missing_text", show(raw1[0] if len(raw1) == 1 else raw1)))
        if t2 is None:
            issues.append(RowIssue(row, name_q2, "missing_text", show(raw2[0] if len(raw2) == 1 else raw2)))
        lab = parse_label(self.c_label[i])
        if lab is None:
            issues.append(RowIssue(row, spec.label, "bad_label", show(self.c_label[i])))
        # A blank qid falls back to the text key below, so the row is kept and still joins its component.
        id1 = _as_qid(self.c_id1[i]) if self.c_id1 is not None else None
        id2 = _as_qid(self.c_id2[i]) if self.c_id2 is not None else None
        if t1 is not None and t2 is not None:
            same_text = self.norm(t1) == self.norm(t2)
            id1 = id1 or self.key(t1)
            id2 = id2 or self.key(t2)
            if id1 == id2 and spec.qid2 is not None and not same_text:
                issues.append(RowIssue(row, spec.qid2, "self_pair", f"same qid {id1!r} on both sides"))
            elif same_text:
                issues.append(RowIssue(row, name_q2, "self_pair", f"same text as {name_q1}: {show(t2)}"))
        return issues, (id1, id2, t1, t2, lab)


def build_pair_data(
    path: Path | str, table: Table, spec: Spec, *, fmt: str, strict: bool, sha: str | None
) -> PairData:
    """Validate every row into the canonical table; collect (or, strictly, raise) per-row issues."""
    checker = _RowChecker(table, spec)
    out: dict[str, list[Any]] = {c: [] for c in PAIR_COLUMNS}
    issues: list[RowIssue] = list(table.malformed)
    first_malformed = table.malformed[0].row if table.malformed else None
    for i, row in enumerate(table.rows):
        if strict and first_malformed is not None and first_malformed < row:
            break
        row_issues, values = checker.check(i, row)
        if row_issues:
            if strict:
                issues = row_issues
                break
            issues.extend(row_issues)
            continue
        for column, value in zip(("qid1", "qid2", "question1", "question2", "label"), values, strict=True):
            out[column].append(value)
        out["source_row"].append(row)
    if strict and issues:
        first = min(issues, key=lambda x: x.row)
        raise InputError(f"{first.kind}: {first.value}", file=path, row=first.row, column=first.column)
    issues.sort(key=lambda x: x.row)
    pairs = empty_pairs() if not out["label"] else pd.DataFrame(out)
    if len(pairs):
        pairs["label"] = pairs["label"].astype("int64")
        pairs["source_row"] = pairs["source_row"].astype("int64")
    data = PairData(pairs, issues, str(path), sha, table.n_input_rows, fmt)
    if issues:
        logger.info(  # callers print data.report(); a warning here would say it twice
            "%s: %d of %d rows excluded (%s)",
            path,
            len(data.rows_with_issues),
            table.n_input_rows,
            ", ".join(f"{k}={v}" for k, v in data.issue_counts().items()),
        )
    return data
