"""Stage 1, **scan**: the input table read chunk by chunk, each row classified, exact duplicates keyed.

Each row gets a status (``ok``, ``empty``, ``unreadable``) and, when it has text, an exact-duplicate key
(:func:`dupq.text.text_key`: case, punctuation and spacing do not matter). Rows with the same key are
duplicates with score 1.0 and cost no model call: only the first text of each key is encoded.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from dupq.errors import InputError
from dupq.io import detect_format
from dupq.text import is_blank, normalize, text_key

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
    """A table read chunk by chunk, twice (scan, then write), from a file or a DataFrame."""

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
        self.path: Path | None = None
        self.json_columns: list[str] | None = None
        if isinstance(data, pd.DataFrame):
            self.frame = data
            self.fmt = "dataframe"
            columns = [str(c) for c in data.columns]
        else:
            self.path = Path(data)
            if not self.path.exists():
                raise InputError("no such file", file=self.path)
            if self.path.is_dir():
                raise InputError("is a directory, not a table", file=self.path)
            self.fmt = detect_format(self.path)
            self.sep, self.encoding = sep, encoding
            if self.fmt in ("csv", "tsv"):
                self.encoding = encoding or _detect_encoding(self.path)
                self.sep = sep or ("\t" if self.fmt == "tsv" else _detect_delimiter(self.path, self.encoding))
            columns = self._peek_columns()
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
        self.name = str(self.path) if self.path is not None else "<DataFrame>"

    def _peek_columns(self) -> list[str]:
        assert self.path is not None
        if self.fmt == "parquet":
            import pyarrow.parquet as pq

            try:
                return [str(c) for c in pq.ParquetFile(self.path).schema_arrow.names]
            except Exception as exc:  # pyarrow raises ArrowInvalid, OSError …
                raise InputError(f"cannot read as Parquet: {exc}", file=self.path) from exc
        if self.fmt == "jsonl":
            cols: dict[str, None] = {}
            for _, chunk in self._jsonl_chunks():
                cols.update(dict.fromkeys(str(c) for c in chunk.columns))
            self.json_columns = list(cols)
            return self.json_columns
        for _, chunk in self._csv_chunks(nrows=1):
            return [str(c) for c in chunk.columns]
        return []

    def chunks(self) -> Iterator[tuple[int, pd.DataFrame]]:
        """``(first row position, chunk)`` over the whole table, in order."""
        if self.frame is not None:
            for start in range(0, len(self.frame), self.chunk_rows):
                yield start, self.frame.iloc[start : start + self.chunk_rows]
            return
        if self.fmt == "parquet":
            yield from self._parquet_chunks()
        elif self.fmt == "jsonl":
            yield from self._jsonl_chunks()
        else:
            yield from self._csv_chunks()

    def _csv_chunks(self, nrows: int | None = None) -> Iterator[tuple[int, pd.DataFrame]]:
        kwargs: dict[str, Any] = {
            "sep": self.sep,
            "dtype": str,
            "keep_default_na": False,
            "encoding": self.encoding,
            "chunksize": self.chunk_rows if nrows is None else None,
            "nrows": nrows,
        }
        if self.sep == "\t":
            kwargs["quoting"] = csv.QUOTE_NONE  # the Quora/GLUE convention (see dupq.io.read_table)
        start = 0
        try:
            if nrows is not None:
                yield 0, pd.read_csv(self.path, **kwargs)
                return
            with pd.read_csv(self.path, **kwargs) as reader:
                for chunk in reader:
                    yield start, chunk
                    start += len(chunk)
        except pd.errors.EmptyDataError as exc:
            raise InputError("the file is empty (no header row)", file=self.path) from exc
        except pd.errors.ParserError as exc:
            raise InputError(_parser_message(exc, self.sep), file=self.path, row=_parser_row(exc)) from exc
        except UnicodeDecodeError as exc:
            raise InputError(
                f"cannot decode as {self.encoding}: {exc}; pass --encoding", file=self.path, row=start + 1
            ) from exc

    def _parquet_chunks(self) -> Iterator[tuple[int, pd.DataFrame]]:
        import pyarrow.parquet as pq

        start = 0
        try:
            pf = pq.ParquetFile(self.path)
            for batch in pf.iter_batches(batch_size=self.chunk_rows):
                chunk = batch.to_pandas()
                chunk.index = pd.RangeIndex(start, start + len(chunk))
                yield start, chunk
                start += len(chunk)
        except InputError:
            raise
        except Exception as exc:
            raise InputError(f"cannot read as Parquet: {exc}", file=self.path, row=start + 1) from exc

    def _jsonl_chunks(self) -> Iterator[tuple[int, pd.DataFrame]]:
        records: list[dict] = []
        start = 0
        row = 0
        with open(self.path, encoding="utf-8-sig", errors="strict") as fh:
            lineno = 0
            while True:
                try:
                    line = fh.readline()
                except UnicodeDecodeError as exc:
                    raise InputError(f"not UTF-8 text: {exc}", file=self.path, row=row + 1) from exc
                if not line:
                    break
                lineno += 1
                if not line.strip():
                    continue  # a blank line is not a record
                row += 1
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    hint = (
                        " (dupq reads JSON Lines: one object per line, not a JSON array)"
                        if lineno == 1
                        else ""
                    )
                    raise InputError(
                        f"line {lineno} is not valid JSON: {exc.msg}{hint}", file=self.path, row=row
                    ) from None
                if not isinstance(obj, dict):
                    raise InputError(
                        f"line {lineno} is a JSON {type(obj).__name__}, not an object",
                        file=self.path,
                        row=row,
                    )
                records.append(obj)
                if len(records) >= self.chunk_rows:
                    yield start, self._json_frame(records, start)
                    start += len(records)
                    records = []
        if records or start == 0:
            yield start, self._json_frame(records, start)

    def _json_frame(self, records: list[dict], start: int) -> pd.DataFrame:
        df = pd.DataFrame.from_records(records) if records else pd.DataFrame()
        if self.json_columns is not None:
            df = df.reindex(columns=self.json_columns)
        df.index = pd.RangeIndex(start, start + len(df))
        return df


def _detect_encoding(path: Path) -> str:
    """UTF-8 (with or without BOM) when the whole file decodes, else cp1252/latin-1; binary files refuse.

    The check streams the file once (a few seconds per GB) so that a bad byte in row 900,000 does not
    abort a run after the encoding stage.
    """
    import codecs

    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in {".gz", ".bz2", ".zip", ".xz", ".zst"}:
        return "utf-8"  # compressed: pandas decompresses; assume UTF-8
    with open(path, "rb") as fh:
        head = fh.read(8192)
        if b"\x00" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise InputError("looks like a binary file, not CSV/TSV text", file=path)
        if head.startswith((b"\xff\xfe", b"\xfe\xff")):
            return "utf-16"
        fh.seek(0)
        decoder = codecs.getincrementaldecoder("utf-8")()
        try:
            while block := fh.read(1 << 20):
                decoder.decode(block)
            decoder.decode(b"", final=True)
            return "utf-8-sig"  # also reads plain UTF-8; strips a BOM
        except UnicodeDecodeError:
            pass
    logger.warning("%s is not UTF-8; reading it as cp1252/latin-1", path)
    try:
        with open(path, "rb") as fh:
            while block := fh.read(1 << 20):
                block.decode("cp1252")
        return "cp1252"
    except UnicodeDecodeError:
        return "latin-1"


def _detect_delimiter(path: Path, encoding: str) -> str:
    """The most frequent of ``, ; TAB |`` in the header line (headers rarely quote), else comma."""
    try:
        with open(path, encoding=encoding, errors="replace", newline="") as fh:
            header = fh.readline()
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", file=path) from exc
    counts = {d: header.count(d) for d in (",", ";", "\t", "|")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > 0 else ","


def _parser_row(exc: Exception) -> int | None:
    import re

    m = re.search(r"line (\d+)", str(exc))
    return int(m.group(1)) - 1 if m else None  # physical line (header = 1) -> data row


def _parser_message(exc: Exception, sep: str | None) -> str:
    msg = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    return f"cannot parse (delimiter {sep!r}): {msg}; fix the row, or pass --sep/--encoding"


def classify(value: Any) -> tuple[int, str]:
    """``(code, text)``: 0 with the text to encode, or :data:`EMPTY` / :data:`UNREADABLE`."""
    if isinstance(value, str):
        text = value
    elif is_blank(value) or value is pd.NA or value is pd.NaT:
        return EMPTY, ""
    elif isinstance(value, (bytes, bytearray, memoryview)):
        try:
            text = bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return UNREADABLE, ""
    elif isinstance(value, (bool, np.bool_)):
        return UNREADABLE, ""
    elif isinstance(value, (int, float, np.integer, np.floating)):
        text = str(value)  # a number in a text column (JSON/Parquet) is still text to a person
    else:
        return UNREADABLE, ""  # dicts, lists, arrays: not a question
    if not text.strip():
        return EMPTY, ""
    if "\ufffd" in text or "\x00" in text:
        return UNREADABLE, ""  # undecodable bytes were replaced, or binary data
    bad = sum(
        1 for ch in text if unicodedata.category(ch) in ("Cc", "Cs", "Co", "Cn") and ch not in _CONTROL_OK
    )
    if bad and bad / len(text) > 0.1:
        return UNREADABLE, ""
    if not normalize(text):
        return EMPTY, ""  # only punctuation/symbols: nothing a model could compare
    return 0, text


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

    def uid_id(self, uids: np.ndarray) -> np.ndarray:
        """The id (or row position) of the first row of each uid."""
        rows = self.first_row[uids]
        if self.row_ids is None:
            return rows
        return np.asarray([self.row_ids[r] for r in rows.tolist()], dtype=object)


def scan(source: Source, show_progress: bool) -> Scan:
    """First pass: statuses, exact-duplicate keys, unique texts, ids (checked unique)."""
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
                code, text = classify(value)
                if code:
                    codes[i] = code
                    continue
                key = text_key(text)
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
    return Scan(
        source=source,
        n_rows=n_rows,
        row_uid=row_uid,
        row_code=np.concatenate(code_parts) if code_parts else np.zeros(0, np.int8),
        row_ids=row_ids,
        texts=texts,
        keys=keys,
        first_row=np.asarray(first_row, dtype=np.int64),
        counts=counts,
        digest=h.hexdigest(),
    )
