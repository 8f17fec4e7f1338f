"""Checks of what callers hand the Matcher (and through it ``dupq index`` and ``dupq serve``): question
texts, ids and metadata. Each failure is an :class:`~dupq.errors.InputError` naming the 1-based row and
the column, and a rejected batch changes nothing."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from dupq.errors import InputError
from dupq.text import normalize


def check_texts(texts: list[Any]) -> None:
    for r, t in enumerate(texts, start=1):
        if not isinstance(t, str):
            raise InputError(f"question is {type(t).__name__}, not a string", row=r, column="text")
        if not t.strip():
            raise InputError("question is empty", row=r, column="text")
        if not normalize(t):
            # Only punctuation/symbols: nothing a model or the exact-match key can work with.
            raise InputError(f"question {t[:40]!r} has no letters or digits", row=r, column="text")


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
