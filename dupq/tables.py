"""The one table reader: CSV / TSV / Parquet / JSON Lines (or a JSON array), a directory of Parquet
shards, or a Hugging Face dataset saved with ``save_to_disk`` — streamed in chunks.

``dupq dedupe``, ``dupq score``, ``dupq index build`` / :meth:`Matcher.add_table
<dupq.matcher.Matcher.add_table>`, ``dupq data`` (Parquet/JSON input) and result files read back by
their users all go through :class:`TableFile`, so one file reads the same everywhere, under one set
of rules:

* **compression** (``.gz``, ``.bz2``, ``.xz``, ``.zip``, ``.zst``): every rule below looks at the
  decompressed text (:func:`open_bytes`), never at the compressed bytes;
* **text encoding** (:func:`detect_encoding`): a byte-order mark wins (UTF-8, UTF-32, UTF-16);
  otherwise UTF-8 when the whole file decodes. A file that is not UTF-8 is read as cp1252 / latin-1
  (with a warning) only when it looks like one: a file that is UTF-8 but for a few bytes, or whose
  high bytes come in runs (Shift-JIS, GBK …), is refused naming the line and byte offset, because
  any guess would turn correct text into mojibake reported as ``ok``. ``--encoding`` overrides.
  Labelled pairs (:mod:`dupq.data`) refuse every legacy fallback (:func:`decode_error`);
* **delimiter**: by suffix (``.tsv`` tab), else the most frequent of ``, ; TAB |`` in the header;
* **quoting**: CSV quoting for CSV; for TSV only when the file really uses it — it parses that way
  and some quoted field needed the quotes (it holds a tab, a line break or a doubled quote, as in
  dupq's own TSV output) — else quotes are plain characters (the Quora/GLUE convention: a question
  ``"Fully quoted"`` keeps its quotes);
* **values** stay as they were: text stays strings ("NA" or "null" is a question, not a missing
  value); JSON and Parquet integers with a null stay integers (never ``2.0``); a Parquet ``binary``
  column is decoded as UTF-8 (never written back as ``b'…'``);
* **header names** are kept as written: an empty name stays empty (not ``Unnamed: 3``);
* **errors** name the file and the row: a row with more *or fewer* fields than the header (pandas
  would shift the columns, take the extra field for an index, or give a short row's missing last
  fields empty values, so that its values sit under the wrong names), an unclosed quote (lenient
  parsing glues the next rows into one field), duplicate column names (pandas would rename one
  ``question.1``), a duplicate key in a JSON object (``json`` keeps the last), an undecodable byte,
  a line that is not a JSON object. A table with no rows is still a table: its columns come back with no rows.

The writer (:mod:`dupq.tablewriter`) is the reader's mirror: what it writes, the
reader gives back unchanged (``tests/test_table_roundtrip.py`` checks it on random tables).
"""

from __future__ import annotations

import codecs
import csv
import json
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from dupq.errors import InputError
from dupq.textfiles import (  # noqa: F401 -- bom_encoding, decode_error: also read from here (dupq.delimited)
    bom_encoding,
    compression,
    decode_error,
    detect_encoding,
    open_bytes,
    open_text,
)

logger = logging.getLogger(__name__)

#: Rows per chunk when streaming.
DEFAULT_CHUNK_ROWS = 16_384
# A question may be long (a pasted log): the csv module's default limit (128 KiB) would refuse it.
csv.field_size_limit(2**31 - 1)


def detect_format(path: str | Path) -> str:
    """One of ``csv``, ``tsv``, ``parquet``, ``jsonl`` from the suffix (or a tab in the first line)."""
    path = Path(path)
    suffixes = [s.lower() for s in path.suffixes]
    suffix = suffixes[-1] if suffixes else ""
    if compression(path) and len(suffixes) > 1:
        suffix = suffixes[-2]
    if suffix in {".parquet", ".pq"}:
        return "parquet"
    if suffix in {".jsonl", ".ndjson", ".json"}:
        return "jsonl"
    if suffix in {".tsv", ".csv"}:
        return suffix[1:]
    try:  # unknown suffix (.txt or none): sniff the first line for a tab
        with open_text(path, "utf-8", errors="replace") as fh:
            first = fh.readline()
    except (OSError, EOFError) as exc:
        raise InputError(f"cannot read: {getattr(exc, 'strerror', None) or exc}", file=path) from exc
    return "tsv" if "\t" in first else "csv"


def detect_delimiter(path: Path, encoding: str) -> str:
    """The most frequent of ``, ; TAB |`` in the header line (headers rarely quote), else comma."""
    try:
        with open_text(path, encoding, errors="replace") as fh:
            header = fh.readline()
    except (OSError, EOFError) as exc:
        raise InputError(f"cannot read: {getattr(exc, 'strerror', None) or exc}", file=path) from exc
    counts = {d: header.count(d) for d in (",", ";", "\t", "|")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > 0 else ","


def check_columns(columns: list[Any], path: Path | None) -> list[str]:
    """Column names as strings; duplicates are an error (a second ``question`` must not be lost)."""
    names = [str(c) for c in columns]
    dupes = sorted({c for c in names if names.count(c) > 1})
    if dupes:
        raise InputError(f"duplicate column name(s) {dupes}; rename them", file=path, column=dupes[0])
    return names


class TableFile:
    """A table file read chunk by chunk (as often as needed), every value a string."""

    def __init__(
        self,
        path: str | Path,
        *,
        fmt: str | None = None,
        sep: str | None = None,
        encoding: str | None = None,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
    ) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise InputError("no such file", file=self.path)
        if not self.path.is_dir() and not os.access(self.path, os.R_OK):
            raise InputError("cannot read: permission denied", file=self.path)
        self.chunk_rows = max(1, int(chunk_rows))
        if self.path.is_dir():
            fmt = fmt or detect_directory(self.path)
        self.fmt = fmt or detect_format(self.path)
        self.sep, self.encoding = sep, encoding
        self.quoting = csv.QUOTE_MINIMAL
        self._json_columns: list[str] | None = None
        if self.fmt in ("csv", "tsv"):
            if encoding is not None:
                try:
                    codecs.lookup(encoding)
                except LookupError:
                    raise InputError(f"unknown encoding {encoding!r}", file=self.path) from None
            self.encoding = encoding or detect_encoding(self.path)
            self.sep = sep or ("\t" if self.fmt == "tsv" else detect_delimiter(self.path, self.encoding))
            if self.sep == "\t" and not _uses_csv_quoting(self.path, self.encoding):
                self.quoting = csv.QUOTE_NONE  # the Quora/GLUE convention: quotes are text
        self.columns = self._read_columns()

    def _read_columns(self) -> list[str]:
        if self.fmt == "hf-disk":
            return check_columns(list(self._hf_dataset().column_names), self.path)
        if self.fmt == "parquet-dir":
            return check_columns(_parquet_shards(self.path)[1], self.path)
        if self.fmt == "parquet":
            import pyarrow.parquet as pq

            try:
                names = pq.ParquetFile(self.path).schema_arrow.names
            except Exception as exc:  # pyarrow raises ArrowInvalid, OSError …
                raise InputError(f"cannot read as Parquet: {exc}", file=self.path) from exc
            return check_columns(names, self.path)
        if self.fmt == "jsonl":
            cols: dict[str, None] = {}
            for _, chunk in self._json_chunks():
                cols.update(dict.fromkeys(str(c) for c in chunk.columns))
            self._json_columns = list(cols)
            return self._json_columns
        return check_columns(self._csv_header(), self.path)

    def _csv_header(self) -> list[str]:
        """The header record as written (pandas would rename an empty name ``Unnamed: 3`` and a repeated
        one ``question.1``), read from the decompressed text."""
        assert self.encoding is not None and self.sep is not None
        try:
            with open_text(self.path, self.encoding) as fh:
                header = next(csv.reader(fh, delimiter=self.sep, quoting=self.quoting), None)
        except UnicodeDecodeError as exc:
            raise InputError(
                f"cannot decode the header as {self.encoding}: {exc.reason}", file=self.path
            ) from exc
        except (csv.Error, EOFError, OSError) as exc:
            raise InputError(f"cannot read the header: {exc}", file=self.path) from exc
        if not header:
            raise InputError("the file is empty (no header row)", file=self.path)
        return [h.lstrip("\ufeff") if i == 0 else h for i, h in enumerate(header)]

    def chunks(self) -> Iterator[tuple[int, pd.DataFrame]]:
        """``(first row position, chunk)`` over the whole table, in order; a table without rows gives one
        empty chunk with its columns, so that what is written from it still has its header."""
        empty = True
        for start, chunk in self._chunks():
            empty = False
            yield start, chunk
        if empty:
            yield 0, pd.DataFrame({c: pd.Series([], dtype=object) for c in self.columns})

    def _chunks(self) -> Iterator[tuple[int, pd.DataFrame]]:
        if self.fmt == "parquet":
            yield from self._parquet_chunks()
        elif self.fmt == "parquet-dir":
            yield from self._parquet_dir_chunks()
        elif self.fmt == "hf-disk":
            yield from self._hf_chunks()
        elif self.fmt == "jsonl":
            yield from self._json_chunks()
        else:
            yield from self._csv_chunks()

    def read(self, columns: list[str] | None = None) -> pd.DataFrame:
        """The whole table (only ``columns``, which must exist, when given)."""
        if columns is not None:
            missing = [c for c in columns if c not in self.columns]
            if missing:
                raise InputError(
                    f"missing column(s) {missing}; found {self.columns}", file=self.path, column=missing[0]
                )
        parts = [chunk if columns is None else chunk[columns] for _, chunk in self.chunks()]
        if not parts:
            return pd.DataFrame(columns=columns or self.columns)
        return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0].reset_index(drop=True)

    # -- delimited text ------------------------------------------------------------------------------
    def _csv_chunks(self) -> Iterator[tuple[int, pd.DataFrame]]:
        """Rows parsed by the csv module, so that each row's field count is known: a row with more *or
        fewer* fields than the header is refused, naming it (pandas fills a short row's last columns
        with empty strings — a tag read as the question — and cannot tell that from real empty fields).
        A blank line holds no row, except in a one-column table, where it is a row with an empty value
        (dedupe reports it ``empty``)."""
        assert self.encoding is not None and self.sep is not None
        width = len(self.columns)
        start = 0
        records: list[list[str]] = []
        reader: Any = None
        try:
            with open_text(self.path, self.encoding) as fh:
                # strict: an unclosed quote, or text after a closing one, is an error naming the line
                # (lenient parsing glues the following rows into one field, silently)
                reader = csv.reader(fh, delimiter=self.sep, quoting=self.quoting, strict=True)
                next(reader, None)  # the header (self.columns)
                for rec in reader:
                    if len(rec) != width:
                        if not rec:
                            if width > 1:
                                continue
                            rec = [""]
                        else:
                            raise self._width_error(
                                len(rec), width, start + len(records) + 1, reader.line_num
                            )
                    records.append(rec)
                    if len(records) >= self.chunk_rows:
                        yield start, self._frame(records, start)
                        start += len(records)
                        records = []
            if records:
                yield start, self._frame(records, start)
        except csv.Error as exc:
            line = reader.line_num if reader is not None else 0
            raise InputError(
                f"cannot parse near line {line} (delimiter {self.sep!r}): {exc}; fix the row (an "
                "unclosed quote, or text after a closing quote?), or pass --sep/--encoding",
                file=self.path,
                row=start + len(records) + 1,
            ) from exc
        except UnicodeDecodeError as exc:
            raise InputError(
                f"cannot decode as {self.encoding}: {exc.reason} "
                f"(bytes {exc.object[exc.start : exc.start + 4]!r}); pass --encoding",
                file=self.path,
                row=start + len(records) + 1,
            ) from exc
        except (OSError, EOFError) as exc:  # a truncated archive
            raise InputError(f"cannot read: {exc}", file=self.path, row=start + len(records) + 1) from exc

    def _width_error(self, fields: int, width: int, row: int, line: int) -> InputError:
        if fields > width:
            fix = "quote the text or fix the row"
        else:
            fix = "its values would land in the wrong columns: add the missing fields (empty ones are fine)"
        return InputError(
            f"{fields} {'field' if fields == 1 else 'fields'} on line {line}, but the header has {width} "
            f"(delimiter {self.sep!r}); {fix}",
            file=self.path,
            row=row,
        )

    def _frame(self, records: list[list[str]], start: int) -> pd.DataFrame:
        # every record is as wide as the header (checked above); the names are unique (check_columns)
        index = pd.RangeIndex(start, start + len(records))
        return pd.DataFrame(records, columns=self.columns, index=index, dtype=str)

    # -- Parquet ---------------------------------------------------------------------------------------
    def _parquet_chunks(self) -> Iterator[tuple[int, pd.DataFrame]]:
        import pyarrow.parquet as pq

        start = 0
        try:
            pf = pq.ParquetFile(self.path)
            for batch in pf.iter_batches(batch_size=self.chunk_rows):
                chunk = arrow_to_frame(batch, self.path, start)
                yield start, chunk
                start += len(chunk)
        except InputError:
            raise
        except Exception as exc:
            raise InputError(f"cannot read as Parquet: {exc}", file=self.path, row=start + 1) from exc

    def _parquet_dir_chunks(self) -> Iterator[tuple[int, pd.DataFrame]]:
        """The shards of a Parquet directory in name order, one row numbering across them."""
        start = 0
        for shard in _parquet_shards(self.path)[0]:
            part = TableFile(shard, fmt="parquet", chunk_rows=self.chunk_rows)
            for _, chunk in part._chunks():
                chunk.index = pd.RangeIndex(start, start + len(chunk))
                yield start, chunk
                start += len(chunk)

    # -- a Hugging Face dataset saved with save_to_disk ------------------------------------------------
    def _hf_dataset(self) -> Any:
        from datasets import DatasetDict, load_from_disk

        try:
            ds = load_from_disk(str(self.path))
        except Exception as exc:  # FileNotFoundError, ArrowInvalid …
            raise InputError(f"cannot load as a saved Hugging Face dataset: {exc}", file=self.path) from exc
        if isinstance(ds, DatasetDict):
            if len(ds) != 1:
                raise InputError(
                    f"a DatasetDict with splits {list(ds)}; give one split's directory "
                    f"(e.g. {self.path / next(iter(ds))})",
                    file=self.path,
                )
            ds = next(iter(ds.values()))
        return ds

    def _hf_chunks(self) -> Iterator[tuple[int, pd.DataFrame]]:
        yield from dataset_chunks(self._hf_dataset(), self.chunk_rows)

    # -- JSON ------------------------------------------------------------------------------------------
    def _json_chunks(self) -> Iterator[tuple[int, pd.DataFrame]]:
        """JSON Lines (one object per line), or one JSON array of objects."""
        records: list[dict] = []
        start = 0
        for row, obj in self._json_records():
            if not isinstance(obj, dict):
                raise InputError(
                    f"record {row} is a JSON {type(obj).__name__}, not an object", file=self.path, row=row
                )
            records.append(obj)
            if len(records) >= self.chunk_rows:
                yield start, self._json_frame(records, start)
                start += len(records)
                records = []
        if records or start == 0:
            yield start, self._json_frame(records, start)

    def _json_records(self) -> Iterator[tuple[int, Any]]:
        try:
            yield from self._json_records_checked()
        except _DuplicateKey as exc:
            raise InputError(
                f"key {exc.key!r} appears twice in one JSON object (only its last value would be kept)",
                file=self.path,
                row=exc.row,
                column=exc.key,
            ) from None

    def _json_records_checked(self) -> Iterator[tuple[int, Any]]:
        with open_text(self.path, "utf-8-sig") as fh:
            try:
                first = fh.read(1)
                while first.isspace():
                    first = fh.read(1)
                fh.seek(0)
                if first == "[":  # a JSON array: read whole (such files are small)
                    try:
                        data = json.load(fh, object_pairs_hook=_unique_keys)
                    except json.JSONDecodeError as exc:
                        raise InputError(f"not valid JSON: {exc}", file=self.path) from None
                    yield from enumerate(data, start=1)
                    return
                row = lineno = 0
                while line := fh.readline():
                    lineno += 1
                    if not line.strip():
                        continue  # a blank line is not a record
                    row += 1
                    try:
                        obj = json.loads(line, object_pairs_hook=_unique_keys)
                    except _DuplicateKey as exc:
                        exc.row = row
                        raise
                    except json.JSONDecodeError as exc:
                        raise InputError(
                            f"line {lineno} is not valid JSON: {exc.msg}", file=self.path, row=row
                        ) from None
                    yield row, obj
            except UnicodeDecodeError as exc:
                raise InputError(f"not UTF-8 text: {exc}", file=self.path) from exc

    def _json_frame(self, records: list[dict], start: int) -> pd.DataFrame:
        """Object columns holding the values as parsed: ``[1, null, 2]`` stays ``1, None, 2`` (pandas
        would make it ``1.0, NaN, 2.0``, and an id ``2.0``); a key a record lacks is ``None``; a record
        ``{}`` is still a row."""
        names = self._json_columns
        if names is None:
            names = list(dict.fromkeys(k for r in records for k in r))
        index = pd.RangeIndex(start, start + len(records))
        return pd.DataFrame(
            {c: pd.Series([r.get(c) for r in records], index=index, dtype=object) for c in names},
            index=index,
        )


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key, self.row = key, None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json`` hook: a JSON object as a dict, refusing a repeated key (``json`` keeps the last)."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        raise _DuplicateKey(next(k for k, _ in pairs if k in seen or seen.add(k)))  # type: ignore[func-returns-value]
    return obj


def arrow_to_frame(batch: Any, path: Path | None, start: int) -> pd.DataFrame:
    """An Arrow record batch as a DataFrame whose values are the stored ones.

    ``ignore_metadata``: a pandas index saved in the file (``id``) stays a column, as the schema lists
    it (pandas would move it to the index, and ``id`` would be missing); ``integer_object_nulls``: an
    integer column with a null keeps integers (not ``2.0``); ``binary`` columns are decoded as UTF-8
    (never written back as ``b'…'``), refusing bytes that are not text, naming the row.
    """
    import pyarrow as pa

    chunk = batch.to_pandas(integer_object_nulls=True, ignore_metadata=True)
    for name, typ in zip(batch.schema.names, batch.schema.types, strict=True):
        if pa.types.is_binary(typ) or pa.types.is_large_binary(typ) or pa.types.is_fixed_size_binary(typ):
            chunk[name] = pd.Series(_decode_binary(chunk[name].tolist(), path, start, name), dtype=object)
    chunk.index = pd.RangeIndex(start, start + len(chunk))
    return chunk


def _decode_binary(values: list[Any], path: Path | None, start: int, column: str) -> list[Any]:
    out: list[Any] = []
    for i, v in enumerate(values):
        if isinstance(v, (bytes, bytearray, memoryview)):
            try:
                v = bytes(v).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(
                    f"binary value is not UTF-8 text (byte offset {exc.start}: "
                    f"{bytes(v)[exc.start : exc.start + 4]!r})",
                    file=path,
                    row=start + i + 1,
                    column=column,
                ) from None
        out.append(v)
    return out


def detect_directory(path: Path) -> str:
    """A directory is a table when it is a ``save_to_disk`` dataset or holds Parquet shards."""
    if (path / "state.json").exists() or (path / "dataset_dict.json").exists():
        return "hf-disk"
    if any(path.rglob("*.parquet")):
        return "parquet-dir"
    raise InputError(
        "is a directory, but neither a saved Hugging Face dataset (save_to_disk) nor Parquet shards",
        file=path,
    )


def _parquet_shards(path: Path) -> tuple[list[Path], list[str]]:
    """The ``*.parquet`` files under ``path`` (name order) and their columns, which must agree."""
    import pyarrow.parquet as pq

    shards = sorted(p for p in path.rglob("*.parquet") if not p.name.startswith((".", "_")))
    names: list[str] | None = None
    for shard in shards:
        try:
            these = pq.ParquetFile(shard).schema_arrow.names
        except Exception as exc:
            raise InputError(f"cannot read as Parquet: {exc}", file=shard) from exc
        if names is None:
            names = these
        elif these != names:
            raise InputError(f"columns {these} differ from the first shard's {names}", file=shard)
    return shards, names or []


def dataset_chunks(dataset: Any, chunk_rows: int) -> Iterator[tuple[int, pd.DataFrame]]:
    """``(first row, chunk)`` of a ``datasets.Dataset`` as DataFrames (Arrow memory stays mapped)."""
    for start in range(0, len(dataset), chunk_rows):
        chunk = dataset.select(range(start, min(start + chunk_rows, len(dataset)))).to_pandas()
        chunk.index = pd.RangeIndex(start, start + len(chunk))
        yield start, chunk


def read_table(
    path: str | Path,
    *,
    fmt: str | None = None,
    sep: str | None = None,
    encoding: str | None = None,
    columns: list[str] | None = None,
) -> pd.DataFrame:
    """Read a whole CSV/TSV/Parquet/JSONL file into a DataFrame of strings (rules: module docstring)."""
    return TableFile(path, fmt=fmt, sep=sep, encoding=encoding).read(columns)


_QUOTED_FIELD = re.compile(r'(?:^|\t)"', re.M)


def _uses_csv_quoting(path: Path, encoding: str | None) -> bool:
    """True when a TSV file quotes fields CSV-style: some field opens with a quote, the whole file parses
    strictly that way with every record as wide as the header, and the quotes were needed somewhere —
    a quoted field holds a tab, a line break or a doubled quote (as a CSV writer makes them), or every
    header field is quoted (a quote-everything writer). Otherwise a question ``"Fully quoted"`` is
    text with its quotes (Quora/GLUE TSV), not a quoted field."""
    enc = encoding or "utf-8"
    try:
        opens = needed = False
        with open_text(path, enc, errors="replace") as fh:
            for i, line in enumerate(fh):
                if _QUOTED_FIELD.search(line):
                    opens = True
                    if '""' in line or (i == 0 and _all_quoted(line)):
                        needed = True
                        break
        if not opens:
            return False
        with open_text(path, enc, errors="replace") as fh:
            reader = csv.reader(fh, delimiter="\t", strict=True)
            width = len(next(reader, []))
            for rec in reader:
                if not rec:
                    continue
                if len(rec) != width:
                    return False
                if not needed and any("\t" in f or "\n" in f or "\r" in f for f in rec):
                    needed = True
        return needed
    except (csv.Error, OSError, EOFError, InputError):
        return False


def _all_quoted(line: str) -> bool:
    fields = line.rstrip("\r\n").split("\t")
    return all(len(f) >= 2 and f.startswith('"') and f.endswith('"') for f in fields)
