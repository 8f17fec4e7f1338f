"""Plain result dataclasses shared across dupq modules (data, training, evaluation, …).

They live in one dependency-light module so that any stage can return or accept them without importing
the heavier module that produced them. Keep this a module of dataclasses: behaviour here is limited to
summarising, printing and saving the data the class holds.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from dupq.errors import StoreError

#: The canonical columns of a pairs table, in order. Every reader returns exactly these.
PAIR_COLUMNS = ["qid1", "qid2", "question1", "question2", "label", "source_row"]

#: Issue kinds a reader can report for one input row (each excludes the row from ``pairs``).
ISSUE_KINDS = ("malformed_row", "missing_text", "bad_label", "self_pair")


def empty_pairs() -> pd.DataFrame:
    """A zero-row pairs table with the canonical columns and dtypes."""
    return pd.DataFrame(
        {
            "qid1": pd.Series([], dtype=str),
            "qid2": pd.Series([], dtype=str),
            "question1": pd.Series([], dtype=str),
            "question2": pd.Series([], dtype=str),
            "label": pd.Series([], dtype="int64"),
            "source_row": pd.Series([], dtype="int64"),
        }
    )


@dataclass(frozen=True)
class RowIssue:
    """One problem found in one input row.

    ``row`` is the 1-based data row of the source (header excluded, a quoted multi-line field counts
    as one row), ``column`` the source column name (``None`` when the whole row is at fault), ``kind``
    one of :data:`ISSUE_KINDS` and ``value`` a short rendering of the offending value.
    """

    row: int
    column: str | None
    kind: str
    value: str

    def describe(self) -> str:
        where = f"row {self.row}" + (f", column {self.column!r}" if self.column else "")
        return f"{where}: {self.kind} ({self.value})"


@dataclass
class PairData:
    """Validated labelled question pairs plus an account of every input row that was left out.

    ``len(pairs) + len(rows_with_issues) == n_input_rows`` always holds: a row is either a usable pair
    or it is reported, never silently dropped.
    """

    pairs: pd.DataFrame
    issues: list[RowIssue]
    source: str
    sha256: str | None
    n_input_rows: int
    fmt: str

    @property
    def rows_with_issues(self) -> list[int]:
        """Sorted distinct row numbers that have at least one issue."""
        return sorted({i.row for i in self.issues})

    def issue_counts(self) -> dict[str, int]:
        """Number of rows per issue kind (a row with two kinds counts in both)."""
        counts: dict[str, set[int]] = {}
        for issue in self.issues:
            counts.setdefault(issue.kind, set()).add(issue.row)
        return {k: len(v) for k, v in sorted(counts.items())}

    def summary(self) -> dict[str, Any]:
        """JSON-ready counts: rows in, pairs kept, rows excluded per issue kind, duplicate rate."""
        n = len(self.pairs)
        n_dup = int(self.pairs["label"].sum()) if n else 0
        questions = set(self.pairs["qid1"]).union(self.pairs["qid2"]) if n else set()
        return {
            "source": self.source,
            "format": self.fmt,
            "sha256": self.sha256,
            "input_rows": int(self.n_input_rows),
            "pairs": n,
            "excluded_rows": len(self.rows_with_issues),
            "issues": self.issue_counts(),
            "duplicates": n_dup,
            "duplicate_rate": round(n_dup / n, 4) if n else 0.0,
            "questions": len(questions),
        }

    def report(self, max_rows: int = 5) -> str:
        """Human report: what was read, what was kept, and the first rows of each issue kind."""
        s = self.summary()
        lines = [
            f"{s['source']} ({s['format']}): {s['input_rows']} rows read, {s['pairs']} pairs kept, "
            f"{s['excluded_rows']} rows excluded",
            f"  questions: {s['questions']}, duplicates: {s['duplicates']} ({s['duplicate_rate']:.1%})",
        ]
        by_kind: dict[str, list[RowIssue]] = {}
        for issue in self.issues:
            by_kind.setdefault(issue.kind, []).append(issue)
        for kind in sorted(by_kind):
            issues = by_kind[kind]
            rows = sorted({i.row for i in issues})
            shown = ", ".join(str(r) for r in rows[:max_rows]) + (" …" if len(rows) > max_rows else "")
            lines.append(f"  {kind}: {len(rows)} rows (rows {shown})")
            for issue in issues[: min(max_rows, 3)]:
                lines.append(f"    {issue.describe()}")
        return "\n".join(lines)


_SPLITS = ("train", "dev", "test")


@dataclass
class Splits:
    """Leakage-free train/dev/test pair tables (no question in two splits) and the seed that made them.

    ``info`` carries how the split was made (component counts, the largest component) so that a skewed
    split can be explained rather than guessed at.
    """

    train: pd.DataFrame
    dev: pd.DataFrame
    test: pd.DataFrame
    seed: int
    info: dict[str, Any] = field(default_factory=dict)

    def items(self) -> list[tuple[str, pd.DataFrame]]:
        return [(name, getattr(self, name)) for name in _SPLITS]

    def summary(self) -> dict[str, Any]:
        """Pairs, questions, duplicates and duplicate rate per split (plus totals and split info)."""
        out: dict[str, Any] = {"seed": int(self.seed), "splits": {}}
        total = 0
        for name, df in self.items():
            n = len(df)
            total += n
            n_dup = int(df["label"].sum()) if n else 0
            out["splits"][name] = {
                "pairs": n,
                "questions": len(set(df["qid1"]).union(df["qid2"])) if n else 0,
                "duplicates": n_dup,
                "duplicate_rate": round(n_dup / n, 4) if n else 0.0,
            }
        for name in _SPLITS:
            out["splits"][name]["fraction"] = round(out["splits"][name]["pairs"] / total, 4) if total else 0.0
        out["total_pairs"] = total
        out.update(self.info)
        return out

    def format_summary(self) -> str:
        """A small fixed-width table for the terminal."""
        s = self.summary()
        lines = [f"{'split':<6} {'pairs':>7} {'share':>6} {'questions':>9} {'dups':>6} {'dup rate':>8}"]
        for name in _SPLITS:
            r = s["splits"][name]
            lines.append(
                f"{name:<6} {r['pairs']:>7} {r['fraction']:>6.1%} {r['questions']:>9} "
                f"{r['duplicates']:>6} {r['duplicate_rate']:>8.1%}"
            )
        extra = []
        if "components" in s:
            extra.append(f"{s['components']} question components")
        if s.get("largest_component"):
            extra.append(f"largest {s['largest_component']} pairs (in {s.get('largest_component_split')})")
        lines.append(f"seed {s['seed']}" + ("; " + ", ".join(extra) if extra else ""))
        return "\n".join(lines)

    def save(self, directory: str | Path) -> Path:
        """Write ``train.tsv``, ``dev.tsv``, ``test.tsv`` and ``split_summary.json`` into ``directory``.

        Each file is replaced atomically, the summary last; it records every TSV's sha256 so that
        :meth:`load` notices a directory whose files come from two different saves.
        """
        from dupq.io import atomic_path, atomic_write_json, sha256_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        hashes = {}
        for name, df in self.items():
            path = directory / f"{name}.tsv"
            with atomic_path(path) as tmp:
                tmp.write_text(pairs_to_tsv(df), encoding="utf-8")
            hashes[f"{name}.tsv"] = sha256_file(path)
        summary = self.summary()
        summary["files"] = hashes
        atomic_write_json(directory / "split_summary.json", summary)
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> Splits:
        """Read a directory written by :meth:`save` (checking the files against the summary's hashes)."""
        from dupq.io import sha256_file

        directory = Path(directory)
        summary_path = directory / "split_summary.json"
        if not summary_path.exists():
            raise StoreError(f"{directory}: no split_summary.json (not a directory written by Splits.save)")
        try:
            summary = json.loads(summary_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise StoreError(f"{summary_path}: unreadable split summary: {exc}") from exc
        frames = {}
        for name in _SPLITS:
            path = directory / f"{name}.tsv"
            if not path.exists():
                raise StoreError(f"{directory}: missing {name}.tsv")
            expected = summary.get("files", {}).get(f"{name}.tsv")
            if expected is not None and sha256_file(path) != expected:
                raise StoreError(f"{path}: contents do not match split_summary.json (a torn or edited save)")
            frames[name] = pairs_from_tsv(path)
        info = {k: v for k, v in summary.items() if k not in {"seed", "splits", "total_pairs", "files"}}
        return cls(
            frames["train"], frames["dev"], frames["test"], seed=int(summary.get("seed", 0)), info=info
        )


def pairs_to_tsv(df: pd.DataFrame) -> str:
    """Render a pairs table as TSV with CSV quoting, so texts holding tabs or newlines round-trip."""
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(PAIR_COLUMNS)
    for row in df[PAIR_COLUMNS].itertuples(index=False, name=None):
        writer.writerow(row)
    return buf.getvalue()


def pairs_from_tsv(path: str | Path) -> pd.DataFrame:
    """Read a TSV written by :func:`pairs_to_tsv` back into a canonical pairs table."""
    path = Path(path)
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter="\t")
        header = next(reader, None)
        if header != PAIR_COLUMNS:
            raise StoreError(f"{path}: header {header} is not the canonical {PAIR_COLUMNS}")
        rows = [r for r in reader if r]
    bad = [i + 1 for i, r in enumerate(rows) if len(r) != len(PAIR_COLUMNS)]
    if bad:
        raise StoreError(f"{path}: row {bad[0]} has the wrong number of fields")
    if not rows:
        return empty_pairs()
    cols = list(zip(*rows, strict=True))
    df = pd.DataFrame({c: list(v) for c, v in zip(PAIR_COLUMNS, cols, strict=True)})
    df["label"] = df["label"].astype("int64")
    df["source_row"] = df["source_row"].astype("int64")
    return df


# ================================================================================================
# Evaluation results (dupq.evaluate)
# ================================================================================================
#: Metric columns of the comparison table, with their display names, in order.
EVAL_TABLE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("classification", "average_precision", "AP"),
    ("classification", "roc_auc", "ROC-AUC"),
    ("classification", "f1", "F1"),
    ("classification", "precision", "Prec"),
    ("classification", "recall", "Rec"),
    ("classification", "accuracy", "Acc"),
    ("retrieval", "recall@1", "R@1"),
    ("retrieval", "recall@5", "R@5"),
    ("retrieval", "recall@10", "R@10"),
    ("retrieval", "mrr@10", "MRR@10"),
    ("retrieval", "ndcg@10", "nDCG@10"),
)


@dataclass
class SystemResult:
    """One system's scores in an :class:`EvaluationReport` (the fine-tuned model or a baseline).

    ``threshold_source`` says where the decision threshold came from, because a threshold chosen on
    the evaluated pairs themselves flatters F1/accuracy/precision/recall (AP, ROC-AUC and the
    retrieval metrics do not depend on it).
    """

    name: str
    description: str
    threshold: float
    threshold_source: str
    classification: dict[str, float]
    retrieval: dict[str, float]
    calibration: dict[str, float] | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "threshold": self.threshold,
            "threshold_source": self.threshold_source,
            "classification": _json_safe(self.classification),
            "retrieval": _json_safe(self.retrieval),
            "calibration": _json_safe(self.calibration) if self.calibration else None,
            "seconds": round(float(self.seconds), 3),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SystemResult:
        return cls(
            name=d["name"],
            description=d.get("description", ""),
            threshold=float(d["threshold"]),
            threshold_source=d.get("threshold_source", ""),
            classification=_from_json(d.get("classification", {})),
            retrieval=_from_json(d.get("retrieval", {})),
            calibration=d.get("calibration"),
            seconds=float(d.get("seconds", 0.0)),
        )


@dataclass
class EvaluationReport:
    """The result of ``dupq evaluate``: every system on the same pairs, plus where the files went."""

    name: str
    n_pairs: int
    n_positive: int
    n_questions: int
    n_queries: int
    n_clusters: int
    systems: list[SystemResult]
    notes: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    model: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    created: str = ""

    def system(self, name: str) -> SystemResult:
        """The result of one system (``fine-tuned``, ``tfidf``, ``zero-shot``); KeyError if absent."""
        for s in self.systems:
            if s.name == name:
                return s
        raise KeyError(f"no system {name!r} in this report (have {[s.name for s in self.systems]})")

    @property
    def system_names(self) -> list[str]:
        return [s.name for s in self.systems]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "created": self.created,
            "model": self.model,
            "data": self.data,
            "n_pairs": self.n_pairs,
            "n_positive": self.n_positive,
            "n_questions": self.n_questions,
            "n_queries": self.n_queries,
            "n_clusters": self.n_clusters,
            "systems": [s.to_dict() for s in self.systems],
            "notes": list(self.notes),
            "files": dict(self.files),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EvaluationReport:
        return cls(
            name=d["name"],
            n_pairs=int(d["n_pairs"]),
            n_positive=int(d["n_positive"]),
            n_questions=int(d["n_questions"]),
            n_queries=int(d["n_queries"]),
            n_clusters=int(d["n_clusters"]),
            systems=[SystemResult.from_dict(s) for s in d["systems"]],
            notes=list(d.get("notes", [])),
            files=dict(d.get("files", {})),
            model=d.get("model"),
            data=dict(d.get("data", {})),
            created=d.get("created", ""),
        )

    def _rows(self) -> list[list[str]]:
        rows = []
        for s in self.systems:
            metrics = {"classification": s.classification, "retrieval": s.retrieval}
            cells = [s.name, _fmt_metric(s.threshold)]
            cells += [_fmt_metric(metrics[group].get(key)) for group, key, _ in EVAL_TABLE_COLUMNS]
            rows.append(cells)
        return rows

    def _header(self) -> list[str]:
        return ["system", "threshold"] + [label for _, _, label in EVAL_TABLE_COLUMNS]

    def format_table(self) -> str:
        """A fixed-width comparison table for the terminal."""
        header, rows = self._header(), self._rows()
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        line = _table_line(header, widths)
        out = [
            f"{self.name}: {self.n_pairs} pairs ({self.n_positive} duplicates), "
            f"{self.n_questions} questions, {self.n_queries} retrieval queries",
            line,
            "-" * len(line),
        ]
        for r in rows:
            out.append(_table_line(r, widths))
        out.append("thresholds: " + "; ".join(f"{s.name} {s.threshold_source}" for s in self.systems))
        out += [f"note: {n}" for n in self.notes]
        return "\n".join(out)

    def to_markdown(self) -> str:
        """A self-contained Markdown report: data summary, comparison table, thresholds, notes, plots."""
        header, rows = self._header(), self._rows()
        md = [
            f"# Evaluation: {self.name}",
            "",
            f"- model: `{self.model}`" if self.model else "- model: (in memory)",
            f"- pairs: {self.n_pairs} ({self.n_positive} duplicates, "
            f"{self.n_positive / max(self.n_pairs, 1):.1%})",
            f"- questions: {self.n_questions} in {self.n_clusters} duplicate clusters of 2+; "
            f"{self.n_queries} retrieval queries (questions with a known duplicate)",
        ]
        md += [f"- {k}: {v}" for k, v in self.data.items()]
        if self.created:
            md.append(f"- created: {self.created}")
        md += [
            "",
            "| " + " | ".join(header) + " |",
            "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
        ]
        md += ["| " + " | ".join(r) + " |" for r in rows]
        md += [
            "",
            "AP, ROC-AUC and retrieval metrics are threshold-free; F1, precision, recall and accuracy are at "
            "each system's threshold. Retrieval: every question with a known duplicate queries all other "
            "questions of the split (exact search); relevant = other members of its duplicate cluster.",
            "",
            "## Thresholds",
            "",
        ]
        md += [
            f"- **{s.name}** ({s.description}): {s.threshold:.4f} — {s.threshold_source}"
            for s in self.systems
        ]
        if self.notes:
            md += ["", "## Notes", ""] + [f"- {n}" for n in self.notes]
        plots = {k: v for k, v in self.files.items() if v.endswith(".png")}
        if plots:
            md += ["", "## Plots", ""]
            md += [f"![{k}]({Path(v).name})" for k, v in plots.items()]
        return "\n".join(md) + "\n"


def _table_line(cells: list[str], widths: list[int]) -> str:
    """First column left-aligned (names), the rest right-aligned (numbers)."""
    return "  ".join(
        c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
    )


def _fmt_metric(v: Any) -> str:
    if v is None:
        return "-"
    v = float(v)
    return "n/a" if math.isnan(v) else f"{v:.4f}"


def _json_safe(d: dict[str, Any] | None) -> dict[str, Any] | None:
    """NaN is not JSON: store it as null."""
    if d is None:
        return None
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}


def _from_json(d: dict[str, Any]) -> dict[str, float]:
    return {k: (math.nan if v is None else v) for k, v in d.items()}


# ================================================================================================
# Matcher results (dupq.matcher)
# ================================================================================================
@dataclass(frozen=True)
class Match:
    """One stored question returned for a query, best first.

    ``score`` is the cosine similarity (1.0 for an exact duplicate after normalisation, found by hash);
    ``probability`` the calibrated P(duplicate) when the model's ``dupq.json`` has a calibration, else
    ``None``; ``is_duplicate`` is ``score >= threshold``; ``exact`` says it was found by hash.
    With a verifier, ``score`` and ``probability`` are the verifier's P(duplicate) and ``is_duplicate``
    its decision; ``similarity`` is always the bi-encoder cosine. ``decided_by`` names the stage that
    decided: ``exact`` (same exact-duplicate key), ``verifier`` or ``cosine``.
    """

    id: int
    text: str
    score: float
    probability: float | None
    is_duplicate: bool
    metadata: dict[str, Any] | None = None
    exact: bool = False
    similarity: float | None = None
    decided_by: str = "cosine"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "text": self.text,
            "score": round(float(self.score), 6),
            "similarity": None if self.similarity is None else round(float(self.similarity), 6),
            "probability": None if self.probability is None else round(float(self.probability), 6),
            "is_duplicate": bool(self.is_duplicate),
            "exact": bool(self.exact),
            "decided_by": self.decided_by,
            "metadata": self.metadata,
        }


class QueryMatches(list):
    """The ranked :class:`Match` list of one query, plus what happened to the query itself.

    A plain ``list`` (index it, iterate it, ``len`` it) with two attributes: ``query`` (the text) and
    ``truncated`` (the query had more tokens than the model reads, so only its beginning was matched).
    """

    def __init__(self, matches: list[Match] = (), *, query: str = "", truncated: bool = False) -> None:
        super().__init__(matches)
        self.query = query
        self.truncated = truncated

    @property
    def best(self) -> Match | None:
        return self[0] if self else None

    @property
    def duplicates(self) -> list[Match]:
        return [m for m in self if m.is_duplicate]

    def to_dict(self) -> dict[str, Any]:
        return {"query": self.query, "truncated": self.truncated, "matches": [m.to_dict() for m in self]}

    def __repr__(self) -> str:
        return f"QueryMatches(query={self.query!r}, truncated={self.truncated}, {list.__repr__(self)})"


def format_matches(results: Sequence[QueryMatches], width: int = 70) -> str:
    """A plain-text table per query (what ``dupq match`` prints)."""
    lines: list[str] = []
    for r in results:
        lines.append(f"query: {r.query}" + ("  [truncated to the model's length]" if r.truncated else ""))
        if not r:
            lines.append("  (no stored questions)")
        else:
            lines.append(f"  {'#':>2}  {'id':>8}  {'score':>6}  {'P(dup)':>6}  {'dup':<3}  {'by':<8}  text")
        for rank, m in enumerate(r, start=1):
            p = "-" if m.probability is None else f"{m.probability:.3f}"
            text = m.text if len(m.text) <= width else m.text[: width - 1] + "…"
            flag = "yes" if m.is_duplicate else "no"
            lines.append(
                f"  {rank:>2}  {m.id:>8}  {m.score:>6.3f}  {p:>6}  {flag:<3}  {m.decided_by:<8}  {text}"
            )
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
