"""The one table writer: CSV / TSV / Parquet / JSON Lines (CSV, TSV and JSONL optionally ``.gz``,
``.bz2`` or ``.xz``), used by ``dupq dedupe``, ``dupq score`` and every result file dupq writes.

It is :mod:`dupq.tables`' mirror: what it writes, the reader gives back unchanged, row for row and
value for value (``tests/test_table_roundtrip.py`` checks it on random tables). Saves are atomic
(:func:`dupq.io.atomic_path`).
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from dupq.errors import InputError
from dupq.textfiles import compression

#: Output formats by suffix; CSV, TSV and JSON Lines may be compressed (``out.csv.gz``).
OUTPUT_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".txt": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}
_WRITE_COMPRESSED = {"gz", "bz2", "xz"}


def output_format(path: str | Path) -> str:
    """The format a path's suffix asks for (``csv``, ``tsv``, ``parquet``, ``jsonl``); checked before any
    work starts, so a wrong suffix fails in a second."""
    path = Path(path)
    kind = compression(path)
    suffix = Path(path.stem).suffix.lower() if kind else path.suffix.lower()
    fmt = OUTPUT_FORMATS.get(suffix)
    if fmt is None or (kind is not None and (fmt == "parquet" or kind not in _WRITE_COMPRESSED)):
        shown = "".join(path.suffixes[-2:]) if kind else path.suffix
        raise InputError(
            f"cannot tell the output format from the suffix {shown!r}; use one of {sorted(OUTPUT_FORMATS)} "
            "(CSV, TSV and JSON Lines may add .gz, .bz2 or .xz)",
            file=path,
        )
    return fmt


def check_not_input(out: str | Path | None, inputs: list[Any], option: str = "--out") -> None:
    """Refuse an output path that is one of the inputs: the write would replace the data being read
    (the atomic rename makes it complete, but the original would be gone)."""
    if out is None:
        return
    out_path = Path(out)
    for src in inputs:
        if not isinstance(src, (str, Path)):
            continue
        src_path = Path(src)
        same = out_path.resolve() == src_path.resolve()
        with contextlib.suppress(OSError):
            same = same or (out_path.exists() and os.path.samefile(out_path, src_path))
        if same:
            raise InputError(
                f"{option} is the input file; writing there would overwrite the input: choose another path",
                file=out_path,
            )


class ChunkWriter:
    """Appends DataFrames to one CSV/TSV/Parquet/JSONL file (the schema comes from the first chunk).

    What it writes, :class:`TableFile` reads back unchanged: CSV/TSV quote a field when they must
    (and every field of a chunk that holds a carriage return, which the csv module would leave bare and
    a reader would take for a line break); JSON Lines holds the values as JSON (nulls as ``null``, full
    float precision); Parquet refuses a column that mixes types, naming the row, instead of guessing.
    ``name``: the path named in errors (``path`` is usually the temporary file of an atomic save).
    """

    def __init__(
        self, path: Path, fmt: str, *, compression: str | None = None, name: str | Path | None = None
    ) -> None:
        self.path, self.fmt = Path(path), fmt
        self.name = Path(name) if name is not None else self.path
        self.first = True
        self.rows = 0
        self._pq: Any = None
        self._schema: Any = None
        # Kept open across write() calls and closed by close() (the caller's try/finally).
        self._fh: IO[str] | None = None if fmt == "parquet" else _open_for_writing(self.path, compression)

    def write(self, df: pd.DataFrame) -> None:
        if self.first:
            names = [str(c) for c in df.columns]
            dupes = sorted({c for c in names if names.count(c) > 1})
            if dupes:  # JSON objects would keep one of them; the reader would refuse the others
                raise InputError(
                    f"duplicate column name(s) {dupes}; rename them", file=self.name, column=dupes[0]
                )
        if self.fmt in ("csv", "tsv"):
            quoting = csv.QUOTE_ALL if _has_carriage_return(df) else csv.QUOTE_MINIMAL
            df.to_csv(
                self._fh,
                index=False,
                header=self.first,
                sep="\t" if self.fmt == "tsv" else ",",
                quoting=quoting,
                lineterminator="\n",
            )
        elif self.fmt == "jsonl":
            assert self._fh is not None
            names = [str(c) for c in df.columns]
            for row in df.itertuples(index=False, name=None):
                record = dict(zip(names, map(_jsonable, row), strict=True))
                self._fh.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        else:
            self._write_parquet(df)
        self.first = False
        self.rows += len(df)

    def _write_parquet(self, df: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            table = pa.Table.from_pandas(df, schema=self._schema, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError) as exc:
            raise self._parquet_error(df, exc) from exc
        if self._pq is None:
            self._schema = table.schema
            self._pq = pq.ParquetWriter(self.path, self._schema)
        self._pq.write_table(table)

    def _parquet_error(self, df: pd.DataFrame, exc: Exception) -> InputError:
        """Which column and row Parquet cannot hold (a column mixing text and numbers, say)."""
        import pyarrow as pa

        for col in df.columns:
            values = df[col].tolist()
            try:
                pa.array(values, from_pandas=True)
                continue
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError):
                pass
            first = next((type(v) for v in values if not _is_null(v)), None)
            row = next((i for i, v in enumerate(values) if not _is_null(v) and type(v) is not first), 0)
            kinds = sorted({type(v).__name__ for v in values if not _is_null(v)})
            return InputError(
                f"this column mixes {', '.join(kinds)} values, and a Parquet column holds one type: "
                "write CSV, TSV or JSON Lines, or make the column one type",
                file=self.name,
                row=self.rows + row + 1,
                column=str(col),
            )
        return InputError(f"cannot write as Parquet: {exc}", file=self.name)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if self._pq is not None:
            self._pq.close()
            self._pq = None
        elif self.fmt == "parquet" and self.first:
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.table({}), self.path)


def write_frame(df: pd.DataFrame, path: str | Path) -> None:
    """Write ``df`` to ``path`` atomically, in the format its suffix names (:func:`output_format`)."""
    from dupq.io import atomic_path

    path = Path(path)
    fmt = output_format(path)
    with atomic_path(path) as tmp:
        writer = ChunkWriter(tmp, fmt, compression=compression(path), name=path)
        try:
            writer.write(df)
        finally:
            writer.close()


def _open_for_writing(path: Path, kind: str | None) -> IO[str]:
    if kind == "gz":
        import gzip

        return gzip.open(path, "wt", encoding="utf-8", newline="")
    if kind == "bz2":
        import bz2

        return bz2.open(path, "wt", encoding="utf-8", newline="")
    if kind == "xz":
        import lzma

        return lzma.open(path, "wt", encoding="utf-8", newline="")
    return open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115 -- closed by ChunkWriter.close


def _has_carriage_return(df: pd.DataFrame) -> bool:
    if any("\r" in str(c) for c in df.columns):
        return True
    for col in df.columns:
        s = df[col]
        if (s.dtype == object or pd.api.types.is_string_dtype(s)) and any(
            isinstance(v, str) and "\r" in v for v in s.tolist()
        ):
            return True
    return False


def _is_null(v: Any) -> bool:
    return v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and math.isnan(v))


def _jsonable(v: Any) -> Any:
    """A cell as a JSON value: every kind of null as ``null`` (JSON has no NaN), numpy scalars as
    Python ones, Python floats at full precision."""
    if isinstance(v, np.generic):
        v = v.item()
    if _is_null(v):
        return None
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).decode("utf-8", "backslashreplace")
    if isinstance(v, (pd.Timestamp, pd.Timedelta)):
        return v.isoformat()
    return v
