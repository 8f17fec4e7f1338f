"""Stage 1, **scan**: the input table read chunk by chunk, each row classified, exact duplicates keyed.

Each row gets a status (``ok``, ``empty``, ``unreadable``) and, when it has text, an exact-duplicate key
(:func:`dupq.text.text_key`: case, punctuation and spacing do not matter). Rows with the same key are
duplicates with score 1.0 and cost no model call: only the first text of each key is encoded.
"""

from __future__ import annotations

import hashlib
import logging
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from dupq.dedupe.keep import KeepRule, best_rows
from dupq.errors import InputError
from dupq.tables import TableFile, check_columns, dataset_chunks
from dupq.text import has_content, is_blank, normalize, normalized_key

logger = logging.getLogger(__name__)

#: Row statuses written in the ``status`` column.
STATUS_OK = "ok"
STATUS_EMPTY = "empty"
STATUS_UNREADABLE = "unreadable"
STATUS_TRUNCATED = "too_long_truncated"
STATUSES = (STATUS_OK, STATUS_EMPTY, STATUS_UNREADABLE, STATUS_TRUNCATED)
EMPTY, UNREADABLE = 1, 2  # row status codes during the scan (0 = has text)

_CONTROL_OK = {"\t", "\n", "\r"}


class Source:
    """A table read chunk by chunk, twice (scan, then write), from a file (:class:`~dupq.tables.TableFile`)
    or a DataFrame."""

    def __init__(
        self,
        data: str | Path | pd.DataFrame,
        text_column: str,
        id_column: str | None,
        chunk_rows: int,
        sep: str | None,
        encoding: str | None,
        *,
        id_optional: bool = False,
        default_id: str | None = None,
    ) -> None:
        self.text_column = text_column
        self.chunk_rows = max(1, int(chunk_rows))
        self.frame: pd.DataFrame | None = None
        self.file: TableFile | None = None
        self.path: Path | None = None
        self.dataset: Any = None
        if isinstance(data, pd.DataFrame):
            self.frame = data
            self.fmt = "dataframe"
            columns = check_columns(list(data.columns), None)
        elif is_dataset(data):
            self.dataset = data
            self.fmt = "dataset"
            columns = check_columns(list(data.column_names), None)
        else:
            self.file = TableFile(data, sep=sep, encoding=encoding, chunk_rows=self.chunk_rows)
            self.path, self.fmt = self.file.path, self.file.fmt
            columns = self.file.columns
        self.columns = columns
        if text_column not in columns:
            raise InputError(
                f"no column {text_column!r}; the columns are {columns}", file=self.path, column=text_column
            )
        if id_column is None and default_id is not None and default_id in columns:
            id_column = default_id  # --against files usually share the id column name
        if id_column is not None and id_column not in columns:
            raise InputError(
                f"no id column {id_column!r}; the columns are {columns}", file=self.path, column=id_column
            )
        self.id_column = id_column
        self.name = str(self.path) if self.path is not None else f"<{type(data).__name__}>"

    def chunks(self) -> Iterator[tuple[int, pd.DataFrame]]:
        """``(first row position, chunk)`` over the whole table, in order."""
        if self.file is not None:
            yield from self.file.chunks()
            return
        if self.dataset is not None:
            yield from dataset_chunks(self.dataset, self.chunk_rows)
            return
        assert self.frame is not None
        for start in range(0, len(self.frame), self.chunk_rows):
            yield start, self.frame.iloc[start : start + self.chunk_rows]


def is_dataset(data: Any) -> bool:
    """A Hugging Face ``datasets.Dataset`` (checked without importing ``datasets``)."""
    return type(data).__module__.startswith("datasets.") and hasattr(data, "column_names")


def classify(value: Any) -> tuple[int, str]:
    """``(code, text)``: 0 with the text to encode, or :data:`EMPTY` / :data:`UNREADABLE`."""
    code, text, _ = classify_key(value)
    return code, text


def classify_key(value: Any) -> tuple[int, str, str]:
    """:func:`classify`, and the text's exact-duplicate key (``""`` when it has none) — the scan's one
    pass per row: normalising (for the empty check and for the key) is done once."""
    if isinstance(value, str):
        text = value
    elif is_blank(value) or value is pd.NA or value is pd.NaT:
        return EMPTY, "", ""
    elif isinstance(value, (bytes, bytearray, memoryview)):
        try:
            text = bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return UNREADABLE, "", ""
    elif isinstance(value, (bool, np.bool_)):
        return UNREADABLE, "", ""
    elif isinstance(value, (int, float, np.integer, np.floating)):
        text = str(value)  # a number in a text column (JSON/Parquet) is still text to a person
    else:
        return UNREADABLE, "", ""  # dicts, lists, arrays: not a question
    if not text.strip():
        return EMPTY, "", ""
    if "\ufffd" in text or "\x00" in text:
        return UNREADABLE, "", ""  # undecodable bytes were replaced, or binary data
    # printable text has no control, surrogate, private or unassigned characters: the per-character
    # count (a Python loop, ~10 s at 1M questions) is only needed for the rest
    if not text.isprintable() and _control_share(text) > 0.1:
        return UNREADABLE, "", ""
    normal = normalize(text)
    if not has_content(normal):
        return EMPTY, "", ""  # only punctuation/symbols: nothing a model could compare
    return 0, text, normalized_key(normal)


def _control_share(text: str) -> float:
    bad = sum(
        1 for ch in text if unicodedata.category(ch) in ("Cc", "Cs", "Co", "Cn") and ch not in _CONTROL_OK
    )
    return bad / len(text)


@dataclass
class Scan:
    """What the first pass over a table keeps: per-row arrays and per-unique-text arrays."""

    source: Source
    n_rows: int
    row_uid: np.ndarray  # int64, -1 for rows without text
    row_code: np.ndarray  # int8: 0 text, 1 empty, 2 unreadable
    row_ids: list[str] | None  # ids of all rows when an id column is used
    texts: list[str]  # unique texts (first occurrence's raw text)
    keys: dict[str, int]  # exact-duplicate key -> uid
    first_row: np.ndarray  # int64 per uid
    counts: np.ndarray  # rows per uid
    digest: str  # fingerprint of the unique texts in order
    rep_row: np.ndarray  # int64 per uid: the row standing for it (its first; --keep column: the best)
    keep_values: list | None = None  # per uid, the --keep column's value in its rep_row

    def uid_id(self, uids: np.ndarray) -> np.ndarray:
        """The id (or row position) of the row standing for each uid (:attr:`rep_row`)."""
        rows = self.rep_row[uids]
        if self.row_ids is None:
            return rows
        return np.asarray([self.row_ids[r] for r in rows.tolist()], dtype=object)


def scan(source: Source, show_progress: bool, keep_column: KeepRule | None = None) -> Scan:
    """First pass: statuses, exact-duplicate keys, unique texts, ids (checked unique).

    ``keep_column`` (a ``column:`` survivor rule): the column's values are read too, and each text
    is represented by its exact-duplicate row with the winning value rather than by its first row.
    """
    if keep_column is not None and keep_column.column not in source.columns:
        raise InputError(
            f"--keep names column {keep_column.column!r}, which the input lacks; the columns are "
            f"{source.columns}",
            file=source.path,
            column=keep_column.column,
        )
    row_values: list = []
    keys: dict[str, int] = {}
    texts: list[str] = []
    first_row: list[int] = []
    uid_parts: list[np.ndarray] = []
    code_parts: list[np.ndarray] = []
    row_ids: list[str] | None = [] if source.id_column is not None else None
    h = hashlib.sha256()
    n_rows = 0
    with tqdm(desc=f"reading {Path(source.name).name}", unit=" rows", disable=not show_progress) as bar:
        for start, chunk in source.chunks():
            values = chunk[source.text_column].tolist()
            uids = np.full(len(values), -1, dtype=np.int64)
            codes = np.zeros(len(values), dtype=np.int8)
            for i, value in enumerate(values):
                code, text, key = classify_key(value)
                if code:
                    codes[i] = code
                    continue
                uid = keys.get(key)
                if uid is None:
                    uid = keys[key] = len(texts)
                    texts.append(text)
                    first_row.append(start + i)
                    h.update(text.encode("utf-8", "surrogatepass") + b"\x00")
                uids[i] = uid
            if row_ids is not None:
                for i, value in enumerate(chunk[source.id_column].tolist()):
                    if is_blank(value):
                        raise InputError(
                            "empty id", file=source.path, row=start + i + 1, column=source.id_column
                        )
                    row_ids.append(str(value))
            if keep_column is not None:
                row_values.extend(chunk[keep_column.column].tolist())
            uid_parts.append(uids)
            code_parts.append(codes)
            n_rows = start + len(values)
            bar.update(len(values))
    if row_ids is not None:
        dup = pd.Index(row_ids).duplicated()
        if dup.any():
            row = int(np.flatnonzero(dup)[0])
            raise InputError(
                f"id {row_ids[row]!r} is used by more than one row; ids must be unique for duplicate_of "
                "to name one row",
                file=source.path,
                row=row + 1,
                column=source.id_column,
            )
    row_uid = np.concatenate(uid_parts) if uid_parts else np.zeros(0, np.int64)
    counts = np.bincount(row_uid[row_uid >= 0], minlength=len(texts)).astype(np.int64)
    first = np.asarray(first_row, dtype=np.int64)
    rep_row, keep_values = first, None
    if keep_column is not None:
        rep_row = best_rows(row_uid, row_values, len(texts), keep_column.descending)
        keep_values = [row_values[r] for r in rep_row.tolist()]
    return Scan(
        source=source,
        n_rows=n_rows,
        row_uid=row_uid,
        row_code=np.concatenate(code_parts) if code_parts else np.zeros(0, np.int8),
        row_ids=row_ids,
        texts=texts,
        keys=keys,
        first_row=first,
        counts=counts,
        digest=h.hexdigest(),
        rep_row=rep_row,
        keep_values=keep_values,
    )
