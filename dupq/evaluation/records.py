"""The evaluation report's records: one :class:`SystemResult` per system, one :class:`EvaluationReport`.

Moved out of ``dupq.datamodels`` (split by domain); dataclasses that summarise, print and save the
scores :mod:`dupq.evaluation.report` computes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
