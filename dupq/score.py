"""Scoring a pair file (``dupq score``): how a user checks a model on their own pairs.

Every input row comes back, all its columns kept, plus ``similarity`` (bi-encoder cosine), ``score``
and ``probability`` (the verifier's P(duplicate) when one is given, else the cosine and its
calibrated probability), ``is_duplicate``, ``decided_by`` (``exact``, ``verifier`` or ``cosine``: the
stage that decided the row) and ``status`` — all prefixed ``dupq_`` when one of these
names is already an input column (Quora's label column is ``is_duplicate``). A row that cannot be
scored (a blank question) keeps its place with ``status = missing_text:<column>`` and empty scores;
a self-pair (same text after normalisation) is an exact duplicate, as everywhere in dupq. With a
label column, pair classification metrics over the scored rows are printed too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dupq.data import LABEL_COLUMNS, TEXT_COLUMN_PAIRS
from dupq.errors import InputError
from dupq.tables import TableFile
from dupq.tablewriter import check_not_input, output_format
from dupq.text import is_blank, normalize

RESULT_COLUMNS = ("similarity", "score", "probability", "is_duplicate", "decided_by", "status")


@dataclass
class ScoreResult:
    """The scored table, where it was written, and metrics when the file had labels."""

    table: pd.DataFrame
    out: Path | None
    status_column: str = "status"
    metrics: dict[str, Any] = field(default_factory=dict)
    decided_by: str = "bi-encoder"
    label_column: str | None = None
    #: Scored rows whose label is not 0/1 (``yes``, ``2``, blank), by value: left out of the metrics,
    #: and said so (a silent leave-out would make the metrics look like they cover every pair).
    other_labels: dict[str, int] = field(default_factory=dict)

    def format_summary(self) -> str:
        status = self.table[self.status_column].value_counts().to_dict()
        lines = [
            f"rows scored   {status.get('ok', 0) + status.get('exact', 0)} of {len(self.table)} "
            f"(decided by the {self.decided_by})",
            "statuses      "
            + (", ".join(f"{k}: {v}" for k, v in sorted(status.items())) or "none (no rows)"),
        ]
        if self.metrics:
            m = self.metrics
            lines.append(
                f"labelled      {m['pairs']} pairs: AP {_num(m.get('average_precision'))}, accuracy "
                f"{_num(m.get('accuracy'))}, F1 {_num(m.get('f1'))} (precision {_num(m.get('precision'))}, "
                f"recall {_num(m.get('recall'))}) at threshold {_num(m.get('threshold'))}"
            )
            if len(set(m.get("classes", ()))) == 1:
                lines.append(
                    f"              every labelled pair is class {m['classes'][0]}: AP and F1 need both "
                    "classes (n/a)"
                )
        if self.other_labels:
            n = sum(self.other_labels.values())
            shown = ", ".join(f"{k!r}: {v}" for k, v in list(self.other_labels.items())[:5])
            more = " …" if len(self.other_labels) > 5 else ""
            lines.append(
                f"not counted   {n} scored rows whose {self.label_column!r} is not 0 or 1 ({shown}{more})"
            )
        if self.out is not None:
            lines.append(f"written to    {self.out}")
        return "\n".join(lines)


def _num(value: Any) -> str:
    """A metric for people: 4 decimals, or ``n/a`` where it is undefined (one class: no AP)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.4f}"


def find_columns(
    df: pd.DataFrame, question1: str | None, question2: str | None, label: str | None, *, file: Path
) -> tuple[str, str, str | None]:
    """The two text columns and the label column (``None`` when unlabelled), by name or detected."""
    lower = {str(c).lower(): c for c in df.columns}
    if question1 is None or question2 is None:
        pair = next(((lower[a], lower[b]) for a, b in TEXT_COLUMN_PAIRS if a in lower and b in lower), None)
        if pair is None:
            raise InputError(
                f"no question columns found (tried {', '.join('/'.join(p) for p in TEXT_COLUMN_PAIRS)}); "
                f"name them with --question1/--question2. Columns: {list(df.columns)}",
                file=file,
                column=question1 or question2 or TEXT_COLUMN_PAIRS[0][0],
            )
        question1, question2 = question1 or pair[0], question2 or pair[1]
    for col in (question1, question2, label):
        if col is not None and col not in df.columns:
            raise InputError(f"no column {col!r}; columns: {list(df.columns)}", file=file, column=col)
    if label is None:
        label = next((lower[c] for c in LABEL_COLUMNS if c in lower), None)
    return question1, question2, label


def score_pairs(
    path: str | Path,
    out: str | Path | None = None,
    *,
    model: Any = None,
    verifier: Any = "auto",
    backend: str = "default",
    question1: str | None = None,
    question2: str | None = None,
    label: str | None = None,
    threshold: float | None = None,
    batch_size: int = 64,
    sep: str | None = None,
    encoding: str | None = None,
    show_progress: bool = False,
) -> ScoreResult:
    """Score every row of a pair file; write it (all columns + results) to ``out`` when given.

    ``model`` is a bi-encoder (directory, loaded model or ``None`` for the default); ``verifier`` an
    optional :class:`dupq.verifier.Verifier` or its directory, which then decides. ``threshold``
    overrides the deciding stage's threshold (a cosine, or the verifier's probability). The file is
    read by :class:`dupq.tables.TableFile` (``sep``/``encoding`` override its detection) and written
    by :mod:`dupq.tablewriter`: the same rules as ``dupq dedupe``. ``show_progress``: bars while
    encoding (3,000 pairs take a minute on a CPU).
    """
    from dupq.matcher import Matcher
    from dupq.rescore import same_pass
    from dupq.verifier.choose import describe

    path = Path(path)
    if out is not None:
        output_format(out)  # a wrong suffix fails before the model loads
        check_not_input(out, [path])
    df = TableFile(path, sep=sep, encoding=encoding).read()
    q1, q2, label_col = find_columns(df, question1, question2, label, file=path)
    matcher = Matcher(model, batch_size=batch_size, verifier=verifier, backend=backend)
    thr = matcher.threshold if threshold is None else float(threshold)
    status = np.full(len(df), "ok", dtype=object)
    for col in (q2, q1):  # the first column named wins when both are blank
        blank = np.asarray([is_blank(v) for v in df[col].tolist()], dtype=bool)
        status[blank] = f"missing_text:{col}"
    ok = np.flatnonzero(status == "ok").astype(np.int64)
    a = [str(v) for v in df[q1].to_numpy(dtype=object)[ok]]
    b = [str(v) for v in df[q2].to_numpy(dtype=object)[ok]]
    exact = np.array([normalize(x) == normalize(y) for x, y in zip(a, b, strict=True)], dtype=bool)
    status[ok[exact]] = "exact"
    sim = np.full(len(df), np.nan)
    prob = np.full(len(df), np.nan)
    score = np.full(len(df), np.nan)
    if len(ok):
        tokens = None
        if same_pass(matcher.verifier, matcher.embedder):  # one transformer pass serves both stages
            tokens = matcher.verifier.token_vectors(a + b, show_progress=show_progress)
            va, vb = tokens.sentence[: len(a)], tokens.sentence[len(a) :]
        else:
            va = matcher.embedder.encode(a, batch_size=batch_size, show_progress=show_progress, desc=q1)
            vb = matcher.embedder.encode(b, batch_size=batch_size, show_progress=show_progress, desc=q2)
        sim[ok] = np.clip((va * vb).sum(axis=1), -1.0, 1.0)
        if matcher.verifier is not None:
            v = matcher.verifier
            p = v.predict(a, b, tokens=tokens, show_progress=show_progress).probability
            prob[ok], score[ok] = p, p
            thr = v.threshold if threshold is None else float(threshold)
        else:
            score[ok] = sim[ok]
            if matcher.calibration is not None:
                prob[ok] = [matcher.probability(s) for s in sim[ok]]
        score[ok[exact]], prob[ok[exact]], sim[ok[exact]] = 1.0, 1.0, 1.0
    decided = np.where(np.isnan(score), None, score >= thr)
    stage = np.full(len(df), None, dtype=object)
    stage[ok] = "verifier" if matcher.verifier is not None else "cosine"
    stage[ok[exact]] = "exact"
    metrics = _metrics(score, df[label_col], thr) if label_col else {}
    other = _other_labels(score, df[label_col]) if label_col else {}
    names = result_names(df.columns)
    table = df.copy()
    for name, values in zip(
        RESULT_COLUMNS, (sim, score, prob, pd.array(decided, dtype="boolean"), stage, status), strict=True
    ):
        table[names[name]] = values
    if out is not None:
        from dupq.tablewriter import write_frame  # the one CSV/TSV/Parquet/JSONL writer, atomic

        write_frame(table, Path(out))
    return ScoreResult(
        table=table,
        out=Path(out) if out is not None else None,
        status_column=names["status"],
        metrics=metrics,
        decided_by=describe(matcher.verifier) if matcher.verifier is not None else "bi-encoder",
        label_column=label_col,
        other_labels=other,
    )


def result_names(columns: Any) -> dict[str, str]:
    """Output column names: plain, or all prefixed ``dupq_`` when one would overwrite an input column
    (Quora's own label column is called ``is_duplicate``)."""
    clash = set(RESULT_COLUMNS) & {str(c) for c in columns}
    return {c: f"dupq_{c}" if clash else c for c in RESULT_COLUMNS}


def _metrics(score: np.ndarray, label: pd.Series, threshold: float) -> dict[str, Any]:
    """Classification metrics over scored rows whose label is 0 or 1 (other labels are not counted)."""
    from dupq.evaluation import classification_metrics

    labels = pd.to_numeric(label, errors="coerce").to_numpy()
    scored = ~np.isnan(score)
    use = scored & np.isin(labels, [0, 1])
    if not use.any():
        return {}
    m = classification_metrics(score[use], labels[use].astype(int), threshold)
    m["pairs"] = int(use.sum())
    m["classes"] = sorted({int(x) for x in labels[use]})
    m["unlabelled_or_bad_label"] = int((scored & ~use).sum())
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in m.items()}


def _other_labels(score: np.ndarray, label: pd.Series) -> dict[str, int]:
    """Scored rows whose label is not 0 or 1, counted by the label as written."""
    labels = pd.to_numeric(label, errors="coerce").to_numpy()
    other = ~np.isnan(score) & ~np.isin(labels, [0, 1])
    counts: dict[str, int] = {}
    for v in label.to_numpy(dtype=object)[other]:
        key = "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
        counts[key] = counts.get(key, 0) + 1
    return counts
