"""Checks of what callers hand the Matcher (and through it ``dupq index`` and ``dupq serve``): question
texts, ids and metadata. Each failure is an :class:`~dupq.errors.InputError` naming the 1-based row and
the column, and a rejected batch changes nothing."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dupq.errors import InputError
from dupq.text import is_blank, normalize


def check_texts(texts: list[Any]) -> None:
    for r, t in enumerate(texts, start=1):
        if not isinstance(t, str):
            raise InputError(f"question is {type(t).__name__}, not a string", row=r, column="text")
        if not t.strip():
            raise InputError("question is empty", row=r, column="text")
        if not normalize(t):
            # Only punctuation/symbols: nothing a model or the exact-match key can work with.
            raise InputError(f"question {t[:40]!r} has no letters or digits", row=r, column="text")


def no_text(value: Any) -> bool:
    """A cell a bulk add skips rather than refuses: no value, only spaces, or nothing a model could
    compare (only punctuation) — the rows ``dupq dedupe`` marks ``empty``. Other non-strings stay
    errors (:func:`check_texts`)."""
    if isinstance(value, str):
        return not value.strip() or not normalize(value)
    return is_blank(value)


_ASCII_INT = re.compile(r"\+?[0-9]+")


def as_id(v: Any) -> int:
    if isinstance(v, bool):
        raise ValueError(f"id {v!r} is a boolean, not an integer")
    if isinstance(v, (int, np.integer)):
        i = int(v)
    elif isinstance(v, str) and _ASCII_INT.fullmatch(v.strip()):
        # ASCII digits only: str.isdigit() and int() also take "١٢" (Arabic-Indic) or "１２" (full
        # width), which would silently become the id 12.
        i = int(v.strip())
    elif isinstance(v, float) and v.is_integer():
        i = int(v)
    else:
        raise ValueError(f"id {v!r} is not a non-negative integer")
    if not 0 <= i < 2**63:
        raise ValueError(f"id {i} is out of range (0 .. 2**63-1)")
    return i


def check_ids(ids: Sequence[Any], n: int) -> list[int]:
    ids = list(ids)
    if len(ids) != n:
        raise InputError(f"{n} questions but {len(ids)} ids", column="id")
    out, seen = [], {}
    for r, v in enumerate(ids, start=1):
        try:
            i = as_id(v)
        except ValueError as exc:
            raise InputError(str(exc), row=r, column="id") from None
        if i in seen:
            raise InputError(f"id {i} repeats row {seen[i]}", row=r, column="id")
        seen[i] = r
        out.append(i)
    return out


def check_metadata(metadata: Sequence[Any], n: int) -> list[dict | None]:
    metadata = list(metadata)
    if len(metadata) != n:
        raise InputError(f"{n} questions but {len(metadata)} metadata entries", column="metadata")
    for r, m in enumerate(metadata, start=1):
        if m is not None and not isinstance(m, dict):
            raise InputError(
                f"metadata is {type(m).__name__}, expected a dict or None", row=r, column="metadata"
            )
        try:
            json.dumps(m)
        except (TypeError, ValueError) as exc:
            raise InputError(f"metadata is not JSON-serialisable: {exc}", row=r, column="metadata") from None
    return metadata


logger = logging.getLogger(__name__)


@dataclass
class Questions:
    """A questions file checked for a bulk add: texts, ids and metadata of the rows to store, their
    1-based file rows, and the rows skipped for having no text."""

    texts: list[str]
    ids: list[int] | None
    metadata: list[dict] | None
    rows: list[int]
    skipped_rows: list[int]


def read_questions(
    path: str | Path,
    text_column: str,
    id_column: str | None = None,
    metadata_columns: Sequence[str] | None = None,
    **read_kwargs: Any,
) -> Questions:
    """Read and check a questions file (:func:`dupq.tables.read_table`) for ``Matcher.add_table``.

    Rows without text (:func:`no_text`) are skipped, counted and logged, as ``dupq dedupe`` marks
    them ``empty`` (the bundled sample has such rows: the index must still build). Any other bad
    value refuses the file, naming the file row and the column.
    """
    from dupq.tables import read_table

    columns = [text_column] + ([id_column] if id_column else []) + list(metadata_columns or [])
    df = read_table(path, columns=columns, **read_kwargs)
    blank = [no_text(t) for t in df[text_column].tolist()]
    rows = [r + 1 for r, b in enumerate(blank) if not b]
    skipped = [r + 1 for r, b in enumerate(blank) if b]
    if skipped:
        shown = ", ".join(map(str, skipped[:20])) + (" …" if len(skipped) > 20 else "")
        logger.warning("%s: skipped %d row(s) without text (rows %s)", path, len(skipped), shown)
        df = df.iloc[[r - 1 for r in rows]].reset_index(drop=True)
    texts = df[text_column].tolist()
    try:
        check_texts(texts)
    except InputError as exc:
        row = rows[exc.row - 1] if exc.row else None
        raise InputError(exc.reason, file=path, row=row, column=text_column) from None
    ids = None
    if id_column:
        ids = []
        for r, v in zip(rows, df[id_column].tolist(), strict=True):
            try:
                ids.append(as_id(v))
            except ValueError as exc:
                raise InputError(str(exc), file=path, row=r, column=id_column) from None
        seen: dict[int, int] = {}
        for r, i in zip(rows, ids, strict=True):
            if i in seen:
                raise InputError(f"id {i} repeats row {seen[i]}", file=path, row=r, column=id_column)
            seen[i] = r
    meta = None
    if metadata_columns:
        meta = [{c: row[c] for c in metadata_columns} for row in df.to_dict("records")]
    return Questions(texts, ids, meta, rows, skipped)
