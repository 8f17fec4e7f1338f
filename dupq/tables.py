"""The one table reader: CSV / TSV / Parquet / JSON Lines (or a JSON array), a directory of Parquet
shards, or a Hugging Face dataset saved with ``save_to_disk`` — streamed in chunks.

``dupq dedupe``, ``dupq index build`` / :meth:`Matcher.add_table <dupq.matcher.Matcher.add_table>`,
``dupq data`` (Parquet/JSON input) and result files read back by their users all go through
:class:`TableFile`, so one file reads the same everywhere, under one set of rules:

* **text encoding** (:func:`detect_encoding`): a byte-order mark wins (UTF-8, UTF-16); otherwise
  UTF-8 when the whole file decodes, else cp1252 / latin-1 with a warning. Labelled pairs
  (:mod:`dupq.data`) take the same byte-order marks but refuse the legacy fallback, naming the line
  (:func:`decode_error`): mojibake in training data would silently hurt;
* **delimiter**: by suffix (``.tsv`` tab), else the most frequent of ``, ; TAB |`` in the header;
* **quoting**: CSV quoting for CSV; for TSV only when the file really uses it (a field opens with a
  quote and the whole file parses that way, as dupq's own TSV output does), else quotes are plain
  characters (the Quora/GLUE convention);
* **values** stay strings: "NA" or "null" is a question, not a missing value;
* **errors** name the file and the row: a row with more fields than the header (pandas would shift
  the columns or take the extra field for an index), duplicate column names (pandas would rename one
  ``question.1``), an undecodable byte, a line that is not a JSON object.
"""

from __future__ import annotations

import codecs
import csv
import json
import logging
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from dupq.errors import InputError

logger = logging.getLogger(__name__)

#: Rows per chunk when streaming.
DEFAULT_CHUNK_ROWS = 16_384
_COMPRESSED = {".gz", ".bz2", ".zip", ".xz", ".zst"}
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def detect_format(path: str | Path) -> str:
    """One of ``csv``, ``tsv``, ``parquet``, ``jsonl`` from the suffix (or a tab in the first line)."""
    path = Path(path)
    suffixes = [s.lower() for s in path.suffixes]
    suffix = suffixes[-1] if suffixes else ""
    if suffix in _COMPRESSED and len(suffixes) > 1:
        suffix = suffixes[-2]
    if suffix in {".parquet", ".pq"}:
        return "parquet"
    if suffix in {".jsonl", ".ndjson", ".json"}:
        return "jsonl"
    if suffix in {".tsv", ".csv"}:
        return suffix[1:]
    try:  # unknown suffix (.txt or none): sniff the first line for a tab
        with open(path, encoding="utf-8", errors="replace") as fh:
            first = fh.readline()
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", file=path) from exc
    return "tsv" if "\t" in first else "csv"


def bom_encoding(head: bytes) -> str | None:
    """The encoding a byte-order mark at the start of ``head`` announces, if any."""
    return next((enc for bom, enc in _BOMS if head.startswith(bom)), None)


def decode_error(path: Path, data: bytes, exc: UnicodeDecodeError, encoding: str | None) -> InputError:
    """The one message for undecodable text: the line and bytes, and what to do."""
    line = data[: exc.start].count(b"\n") + 1
    bad = data[exc.start : exc.start + 4]
    return InputError(
        f"not valid {encoding or 'UTF-8'} text at line {line} (byte offset {exc.start}: {bad!r}); "
        "re-save the file as UTF-8 or pass its encoding (encoding='latin-1', CLI --encoding)",
        file=path,
    )


def detect_encoding(path: Path) -> str:
    """The text encoding of ``path`` (rules in the module docstring); binary files are refused.

    The check streams the file once (a few seconds per GB) so that a bad byte in row 900,000 does not
    abort a run after hours of work.
    """
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in _COMPRESSED:
        return "utf-8"  # compressed: pandas decompresses; assume UTF-8
    with open(path, "rb") as fh:
        head = fh.read(8192)
        bom = bom_encoding(head)
        if bom is not None and bom != "utf-8-sig":
            return bom
        if b"\x00" in head:
            raise InputError("looks like a binary file, not CSV/TSV text", file=path)
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


def detect_delimiter(path: Path, encoding: str) -> str:
    """The most frequent of ``, ; TAB |`` in the header line (headers rarely quote), else comma."""
    try:
        with open(path, encoding=encoding, errors="replace", newline="") as fh:
            header = fh.readline()
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", file=path) from exc
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
        self.chunk_rows = max(1, int(chunk_rows))
        if self.path.is_dir():
            fmt = fmt or detect_directory(self.path)
        self.fmt = fmt or detect_format(self.path)
        self.sep, self.encoding = sep, encoding
        self.quoting = csv.QUOTE_MINIMAL
        self._json_columns: list[str] | None = None
        if self.fmt in ("csv", "tsv"):
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
        if self.path.suffix.lower() not in _COMPRESSED:
            try:
                with open(self.path, encoding=self.encoding, newline="") as fh:
                    header = next(csv.reader(fh, delimiter=self.sep, quoting=self.quoting), [])
                check_columns([h.lstrip("\ufeff") for h in header], self.path)
            except (OSError, UnicodeDecodeError, csv.Error):
                pass  # unreadable: pandas says why below
        for _, chunk in self._csv_chunks(nrows=1):
            return [str(c) for c in chunk.columns]
        return []

    def chunks(self) -> Iterator[tuple[int, pd.DataFrame]]:
        """``(first row position, chunk)`` over the whole table, in order."""
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
    def _csv_chunks(self, nrows: int | None = None) -> Iterator[tuple[int, pd.DataFrame]]:
        kwargs: dict[str, Any] = {
            "sep": self.sep,
            "dtype": str,
            "keep_default_na": False,
            "encoding": self.encoding,
            "index_col": False,  # an extra field is an error below, never an index
            "quoting": self.quoting,
            "chunksize": self.chunk_rows if nrows is None else None,
            "nrows": nrows,
        }
        start = 0
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", pd.errors.ParserWarning)
                if nrows is not None:
                    yield 0, pd.read_csv(self.path, **kwargs)
                    return
                with pd.read_csv(self.path, **kwargs) as reader:
                    for chunk in reader:
                        yield start, chunk
                        start += len(chunk)
        except pd.errors.EmptyDataError as exc:
            raise InputError("the file is empty (no header row)", file=self.path) from exc
        except pd.errors.ParserWarning as exc:  # pandas would drop the extra fields of a row
            raise self._wide_row_error() from exc
        except pd.errors.ParserError as exc:
            msg = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise InputError(
                f"cannot parse (delimiter {self.sep!r}): {msg}; fix the row, or pass --sep/--encoding",
                file=self.path,
                row=_parser_row(exc),
            ) from exc
        except UnicodeDecodeError as exc:
            raise InputError(
                f"cannot decode as {self.encoding}: {exc}; pass --encoding", file=self.path, row=start + 1
            ) from exc

    def _wide_row_error(self) -> InputError:
        """The first row with more fields than the header, named (found with the csv module)."""
        with open(self.path, encoding=self.encoding, newline="") as fh:
            reader = csv.reader(fh, delimiter=self.sep, quoting=self.quoting)
            width = len(next(reader, []))
            for row, record in enumerate(reader, start=1):
                if len(record) > width:
                    return InputError(
                        f"{len(record)} fields, but the header has {width} (delimiter {self.sep!r}); "
                        "quote the text or fix the row",
                        file=self.path,
                        row=row,
                    )
        return InputError(f"rows do not match the header's {width} fields", file=self.path)

    # -- Parquet ---------------------------------------------------------------------------------------
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

    def _parquet_dir_chunks(self) -> Iterator[tuple[int, pd.DataFrame]]:
        """The shards of a Parquet directory in name order, one row numbering across them."""
        start = 0
        for shard in _parquet_shards(self.path)[0]:
            part = TableFile(shard, fmt="parquet", chunk_rows=self.chunk_rows)
            for _, chunk in part.chunks():
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
        with open(self.path, encoding="utf-8-sig", errors="strict") as fh:
            try:
                first = fh.read(1)
                while first.isspace():
                    first = fh.read(1)
                fh.seek(0)
                if first == "[":  # a JSON array: read whole (such files are small)
                    try:
                        data = json.load(fh)
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
                        yield row, json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise InputError(
                            f"line {lineno} is not valid JSON: {exc.msg}", file=self.path, row=row
                        ) from None
            except UnicodeDecodeError as exc:
                raise InputError(f"not UTF-8 text: {exc}", file=self.path) from exc

    def _json_frame(self, records: list[dict], start: int) -> pd.DataFrame:
        df = pd.DataFrame.from_records(records) if records else pd.DataFrame()
        if self._json_columns is not None:
            df = df.reindex(columns=self._json_columns)
        df.index = pd.RangeIndex(start, start + len(df))
        return df


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


def _parser_row(exc: Exception) -> int | None:
    m = re.search(r"line (\d+)", str(exc))
    return int(m.group(1)) - 1 if m else None  # physical line (header = 1) -> data row


_QUOTED_FIELD = re.compile(r'(?:^|\t)"', re.M)


def _uses_csv_quoting(path: Path, encoding: str | None) -> bool:
    """True when a TSV file quotes fields CSV-style: some field opens with a quote, and the whole file
    parses strictly that way with every record as wide as the header."""
    try:
        with open(path, encoding=encoding, errors="replace", newline="") as fh:
            if not any(_QUOTED_FIELD.search(line) for line in fh):
                return False
            fh.seek(0)
            reader = csv.reader(fh, delimiter="\t", strict=True)
            width = len(next(reader, []))
            return all(len(rec) == width for rec in reader if rec)
    except (csv.Error, OSError):
        return False
