"""Delimited text of labelled pair files, parsed row by row so that nothing is dropped silently.

Unlike :mod:`dupq.tables` (which stops at the first bad row), this parser keeps going: a row with the
wrong number of fields becomes a ``malformed_row`` issue with its row number, so ``dupq data`` can
account for every input row. It also decides per file whether quotes are CSV quoting (Quora's TSV,
every CSV) or plain characters (GLUE, MQP, MRPC, SemEval). Text decoding follows :mod:`dupq.tables`'
byte-order-mark rule, but refuses a legacy fallback (mojibake would silently hurt training data).
"""

from __future__ import annotations

import csv
import io
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from dupq.errors import InputError
from dupq.pairdata import RowIssue
from dupq.tables import bom_encoding, decode_error

logger = logging.getLogger(__name__)


_QUOTED_FIELD_START = {"\t": re.compile(r'(?:^|\t)"', re.M), ",": re.compile(r'(?:^|,)"', re.M)}


@dataclass
class Table:
    """Column lists aligned with their 1-based source row numbers, plus rows that could not be parsed."""

    columns: dict[str, list[Any]]
    rows: list[int]
    malformed: list[RowIssue]
    n_input_rows: int


def decode(path: Path, encoding: str | None) -> str:
    """The whole file as text; a decoding failure names the line, because a silent latin-1 fallback
    would turn every accented question into mojibake that no model can match."""
    data = read_bytes(path)
    enc = encoding or bom_encoding(data[:4]) or "utf-8-sig"
    try:
        return data.decode(enc)
    except UnicodeDecodeError as exc:
        raise decode_error(path, data, exc, encoding) from exc
    except LookupError as exc:
        raise InputError(f"unknown encoding {encoding!r}", file=path) from exc


_COMPRESSED = {".gz", ".bz2", ".xz", ".zip"}


def read_bytes(path: Path) -> bytes:
    """File bytes, decompressed for ``.gz``/``.bz2``/``.xz``/single-member ``.zip`` (Kaggle ships
    ``train.csv.zip``)."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".gz":
            import gzip

            return gzip.decompress(path.read_bytes())
        if suffix == ".bz2":
            import bz2

            return bz2.decompress(path.read_bytes())
        if suffix == ".xz":
            import lzma

            return lzma.decompress(path.read_bytes())
        if suffix == ".zip":
            import zipfile

            with zipfile.ZipFile(path) as zf:
                members = [m for m in zf.namelist() if not m.endswith("/") and not m.startswith("__MACOSX")]
                if len(members) != 1:
                    raise InputError(f"zip archive must hold exactly one file, found {members}", file=path)
                return zf.read(members[0])
    except InputError:
        raise
    except Exception as exc:  # corrupt archive: name the file
        raise InputError(f"cannot decompress: {exc}", file=path) from exc
    return path.read_bytes()


def data_suffix(path: Path) -> str:
    """The suffix that says what the data is (``train.csv.zip`` -> ``.csv``)."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in _COMPRESSED:
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


def guess_delimiter(path: Path, text: str) -> str:
    suffix = data_suffix(path)
    if suffix == ".tsv":
        return "\t"
    if suffix == ".csv":
        return ","
    first = text.split("\n", 1)[0]
    return "\t" if "\t" in first else ","


def first_record(text: str, delim: str) -> list[str]:
    first = text.split("\n", 1)[0].rstrip("\r")
    if not first.strip():
        return []
    return [h.strip().lstrip("\ufeff") for h in next(csv.reader([first], delimiter=delim))]


class StrictParse:
    """Strict CSV-quoting parse of one text, kept for reuse: format sniffing and reading both need it,
    and a QQP-sized file takes about a second per parse."""

    def __init__(self) -> None:
        self.key: tuple[int, str] | None = None
        self.result: tuple[list[list[str]] | None, str, int] = (None, "", 0)

    def __call__(self, text: str, delim: str) -> tuple[list[list[str]] | None, str, int]:
        """``(records or None, error, line)`` for ``text``."""
        key = (id(text), delim)
        if key != self.key:
            reader = csv.reader(io.StringIO(text, newline=""), delimiter=delim, strict=True)
            try:
                self.result = ([r for r in reader if r], "", reader.line_num)
            except csv.Error as exc:
                self.result = (None, str(exc), reader.line_num)
            self.key = key
        return self.result

    def clear(self) -> None:
        self.key, self.result = None, (None, "", 0)


strict_parse = StrictParse()


def uses_csv_quoting(text: str, delim: str) -> bool:
    """True when some field starts with a quote and the whole file parses as strict CSV quoting."""
    pattern = _QUOTED_FIELD_START.get(delim) or re.compile(rf'(?:^|{re.escape(delim)})"', re.M)
    if not pattern.search(text):
        return False
    records, _, _ = strict_parse(text, delim)
    return bool(records) and all(len(r) == len(records[0]) for r in records)


def parse(text: str, delim: str, mode: str, path: Path, names: list[str] | None = None) -> Table:
    """Parse delimited text into aligned columns.

    ``mode``: ``csv`` (quoted fields may hold delimiters, doubled quotes and newlines — Quora's TSV and
    every CSV), ``none`` (quotes are plain characters — GLUE, MQP, MRPC, SemEval), or ``auto`` (CSV
    quoting when the whole file parses strictly that way, else none; for generic TSVs).
    Rows with the wrong number of fields become ``malformed_row`` issues.
    """
    if mode == "auto":
        mode = "csv" if uses_csv_quoting(text, delim) else "none"
    records = None
    if mode == "csv":
        # Strict first: it stops at a stray or unclosed quote, which lenient parsing (pandas' and the
        # csv module's default) would silently glue onto the following rows.
        records, error, line = strict_parse(text, delim)
        if records is None:
            logger.warning(
                "%s: irregular quoting near line %d (%s); parsed leniently — check malformed_row issues",
                path,
                line,
                error,
            )
    if records is None:
        quoting = csv.QUOTE_NONE if mode == "none" else csv.QUOTE_MINIMAL
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delim, quoting=quoting)
        try:
            records = [r for r in reader if r]
        except csv.Error as exc:
            raise InputError(f"cannot parse near line {reader.line_num}: {exc}", file=path) from exc
    if names is None:
        if not records:
            raise InputError("empty file (no header)", file=path)
        header, records = [h.strip().lstrip("\ufeff") for h in records[0]], records[1:]
    else:
        header = names
    width = len(header)
    columns: dict[str, list[Any]] = {h: [] for h in header}
    if len(columns) != width:
        dupes = sorted({h for h in header if header.count(h) > 1})
        raise InputError(f"duplicate column name(s) {dupes} in the header", file=path, column=dupes[0])
    if all(len(rec) == width for rec in records):  # the common case: transpose in C
        transposed = list(zip(*records, strict=True)) if records else [() for _ in header]
        columns = {h: list(col) for h, col in zip(header, transposed, strict=True)}
        return Table(columns, list(range(1, len(records) + 1)), [], len(records))
    rows: list[int] = []
    malformed: list[RowIssue] = []
    lists = [columns[h] for h in header]
    for i, rec in enumerate(records, start=1):
        if len(rec) != width:
            shown = delim.join(rec)
            lines = shown.rstrip("\r\n").count("\n") + 1
            spans = f", spans {lines} lines (unclosed quote?)" if lines > 1 else ""
            malformed.append(
                RowIssue(
                    i,
                    None,
                    "malformed_row",
                    f"{len(rec)} fields, expected {width}{spans}: {show(shown, 120)}",
                )
            )
            continue
        rows.append(i)
        for lst, value in zip(lists, rec, strict=True):
            lst.append(value)
    return Table(columns, rows, malformed, len(records))


def table_from_frame(df: pd.DataFrame) -> Table:
    columns = {str(c): df[c].tolist() for c in df.columns}
    return Table(columns, list(range(1, len(df) + 1)), [], len(df))


def show(value: Any, limit: int = 60) -> str:
    """Short printable rendering of a bad value for reports."""
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
