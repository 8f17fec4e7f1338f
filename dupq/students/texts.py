"""The questions a student learns from: the user's file (``--texts FILE --text-column COL``), else the
training questions the teacher's own ``dupq train`` run recorded (``<teacher>/splits/train.tsv``).

A student only has to reproduce its teacher's vectors, so any unlabelled questions of the user's domain
teach it; the closer they are to what it will encode later, the less quality it loses there.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dupq.errors import InputError

logger = logging.getLogger(__name__)

#: Where ``dupq train`` keeps the train split of a teacher (its questions are the fallback texts).
TEACHER_TRAIN_SPLIT = Path("splits") / "train.tsv"


@dataclass
class Texts:
    """Unique, non-empty questions and where they came from (recorded in the student's ``dupq.json``)."""

    texts: list[str]
    source: str
    column: str | None = None
    rows: int = 0
    skipped_empty: int = 0
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "column": self.column,
            "rows": self.rows,
            "skipped_empty": self.skipped_empty,
            "unique_used": len(self.texts),
            "fingerprint": texts_fingerprint(self.texts),
            **self.info,
        }


def texts_fingerprint(texts: list[str]) -> str:
    """sha256 over the texts in order (which questions taught this student)."""
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8", "surrogatepass"))
        h.update(b"\n")
    return h.hexdigest()


def read_texts(path: str | Path, column: str) -> Texts:
    """Every question of ``column`` in the table ``path`` (CSV/TSV/Parquet/JSONL, read as dedupe reads).

    Blank rows are skipped and counted; a value that is not text (binary, a JSON object, undecodable
    bytes) stops with an :class:`InputError` naming the file, the 1-based row and the column — a student
    trained on garbage would quietly be a worse student.
    """
    from dupq.dedupe.scan import EMPTY, classify
    from dupq.io import sha256_file
    from dupq.tables import TableFile

    path = Path(path)
    table = TableFile(path)
    if column not in table.columns:
        raise InputError(f"no column {column!r}; found {table.columns}", file=path, column=column)
    out: dict[str, None] = {}
    rows = empty = 0
    for start, chunk in table.chunks():
        for offset, value in enumerate(chunk[column].tolist()):
            rows += 1
            code, text = classify(value)
            if code == EMPTY:
                empty += 1
            elif code:
                raise InputError(
                    f"not readable text ({_show(value)}); fix or remove the row",
                    file=path,
                    row=start + offset + 1,
                    column=column,
                )
            else:
                out.setdefault(text.strip(), None)
    if not out:
        raise InputError(f"no question text in {rows} row(s)", file=path, column=column)
    info = {"sha256": sha256_file(path)} if path.is_file() else {}
    return Texts(list(out), str(path), column, rows, empty, info)


def teacher_texts(teacher_dir: str | Path | None) -> Texts | None:
    """The questions of the teacher's recorded train split, or ``None`` when it has none."""
    if teacher_dir is None:
        return None
    split = Path(teacher_dir) / TEACHER_TRAIN_SPLIT
    if not split.is_file():
        return None
    from dupq.tables import read_table

    df = read_table(split, columns=["question1", "question2"])
    both = [str(t).strip() for t in df["question1"].tolist() + df["question2"].tolist()]
    uniq = list(dict.fromkeys(t for t in both if t))
    logger.info("no --texts: using the %d questions of the teacher's train split %s", len(uniq), split)
    return Texts(uniq, str(split), None, len(both), len(both) - sum(1 for t in both if t))


def sample(texts: list[str], n: int | None, seed: int) -> list[str]:
    """At most ``n`` of ``texts`` (a seeded random subset, kept in input order), or all of them."""
    if n is None or n <= 0 or len(texts) <= n:
        return list(texts)
    keep = np.sort(np.random.default_rng(seed).choice(len(texts), size=n, replace=False))
    return [texts[i] for i in keep]


def _show(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:limit]}{'…' if len(text) > limit else ''}"
