"""Labelled question pairs as dupq holds them: the pair table, its row issues, and its splits.

The data side of what was ``dupq.datamodels`` (split by domain): :class:`PairData` is what
:mod:`dupq.data` reads, :class:`Splits` what :mod:`dupq.splits` makes. Dataclasses only — behaviour
here is limited to summarising, printing and saving what they hold, so any stage can take them
without importing the module that produced them.
"""

from __future__ import annotations

import csv
import io
import json
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
