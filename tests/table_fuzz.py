"""Random tables for the property test of dupq's table I/O (issue 24), shared by
``tests/test_table_roundtrip.py`` (bounded, in ``make test``) and ``benchmarks/table_fuzz.py`` (10,000
examples, counts in JSON).

A :class:`Case` is a table — column names that may repeat or be empty, ids with leading zeros, nulls
and mixed types, text with quotes, tabs, line breaks, NULs, byte-order marks, emoji, combining marks
and right-to-left script — plus a format (CSV, TSV, JSON Lines, Parquet) and, for the text formats, a
compression (none, gz, bz2). Each check writes it with dupq's writer and reads it back (or runs
``dupq dedupe`` / ``dupq score`` on it) and returns what happened:

* ``"ok"``: every row came back exactly once, in order, every input column's value unchanged (as the
  format holds it: CSV/TSV hold text, so a null is ``""`` and ``7`` is ``"7"``);
* ``"refused: <reason>"``: a one-line :class:`~dupq.errors.InputError` naming the file and the row or
  column, for a reason this table really has (repeated column names; a Parquet column mixing types;
  for dedupe, an empty or repeated id; a JSON Lines file without rows has no header to keep).

Anything else — a changed value, a lost or extra row, another exception, an error the table does not
deserve — raises ``AssertionError``, which Hypothesis then shrinks to a minimal table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from hypothesis import strategies as st

from dupq.errors import InputError
from dupq.tables import read_table
from dupq.tablewriter import write_frame

FORMATS = ("csv", "tsv", "jsonl", "parquet")
COMPRESSIONS = ("", ".gz", ".bz2")
#: Characters that broke (or could break) a reader or writer somewhere: quoting, delimiters, line
#: breaks, NUL, BOM, emoji, a combining accent, Hebrew/Arabic letters, a right-to-left override.
SPECIAL = list("\",;|\t\n\r\x00\ufeff\\'") + [
    "😀",
    "👩",
    "\u200d",
    "\u0301",
    "\u05d0",
    "\u0627",
    "\u202e",
    "é",
    " ",
]
NAMES = ["id", "", "note", "tag", "Ünïcode", "a b", "x,y", 'q"t', "label", "question", "question1"]

text_values = st.text(alphabet=st.one_of(st.sampled_from(SPECIAL), st.characters(codec="utf-8")), max_size=12)
id_values = st.one_of(
    st.none(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.from_regex(r"0[0-9]{1,5}", fullmatch=True),  # leading zeros: "007" must stay "007"
    text_values,
)


@dataclass
class Case:
    """A table (``names`` may repeat; ``columns`` are lists of Python values), where it goes, and how."""

    names: list[str]
    columns: list[list[Any]]
    fmt: str
    compression: str

    @property
    def n_rows(self) -> int:
        return len(self.columns[0]) if self.columns else 0

    def frame(self) -> pd.DataFrame:
        df = pd.DataFrame({i: pd.Series(col, dtype=object) for i, col in enumerate(self.columns)})
        df.columns = self.names
        return df

    def suffix(self) -> str:
        return f".{self.fmt}{self.compression}"


@st.composite
def cases(draw: Any, purpose: str = "plain") -> Case:
    """A random table; ``purpose`` ``dedupe`` adds a ``question`` column, ``score`` ``question1`` and
    ``question2`` (each may still be repeated by a random extra column)."""
    n_rows = draw(st.integers(min_value=0, max_value=6))
    required = {"plain": [], "dedupe": ["question"], "score": ["question1", "question2"]}[purpose]
    extra = draw(st.lists(st.sampled_from(NAMES), min_size=0 if required else 1, max_size=4))
    names = list(required) + extra
    order = draw(st.permutations(range(len(names))))
    names = [names[i] for i in order]
    columns = []
    for name in names:
        values = id_values if name in ("id", "tag", "label") else st.one_of(text_values, st.none())
        columns.append(draw(st.lists(values, min_size=n_rows, max_size=n_rows)))
    fmt = draw(st.sampled_from(FORMATS))
    compression = "" if fmt == "parquet" else draw(st.sampled_from(COMPRESSIONS))
    return Case(names, columns, fmt, compression)


# -- expectations ----------------------------------------------------------------------------------
def is_null(v: Any) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))


def as_stored(v: Any, fmt: str) -> Any:
    """What a format holds for the value ``v``: CSV/TSV text (a null is an empty field); JSON and
    Parquet the value itself (any null is ``None``)."""
    if fmt in ("csv", "tsv"):
        return "" if is_null(v) else str(v)
    return None if is_null(v) else v


def duplicate_names(case: Case) -> bool:
    return len(set(case.names)) < len(case.names)


def mixed_types(case: Case) -> bool:
    """A column Parquet cannot hold: values of more than one Python type (nulls aside)."""
    return any(len({type(v) for v in col if not is_null(v)}) > 1 for col in case.columns)


def refusal(exc: InputError, path: Path, allowed: dict[str, bool]) -> str:
    """``"refused: <reason>"`` when ``exc`` is a one-line error naming ``path`` and a row or column, for
    one of the ``allowed`` reasons (message text -> whether this table has that problem)."""
    msg = str(exc)
    assert "\n" not in msg, f"an error of several lines: {msg!r}"
    assert exc.file == str(path), f"the error names {exc.file!r}, not {str(path)!r}: {msg}"
    assert exc.row is not None or exc.column is not None, f"the error names no row or column: {msg}"
    for reason, deserved in allowed.items():
        if reason in msg:
            assert deserved, f"refused for {reason!r}, which this table does not have: {msg}"
            return f"refused: {reason}"
    raise AssertionError(f"an error this table does not deserve: {msg}")


def assert_same_rows(case: Case, back: pd.DataFrame, fmt: str) -> None:
    """Every input row back once, in order, each input column's value as ``fmt`` holds it."""
    assert len(back) == case.n_rows, f"{case.n_rows} rows written, {len(back)} read back"
    if fmt == "jsonl" and case.n_rows == 0:
        return  # JSON Lines has no header: a table without rows has no columns to give back
    assert list(back.columns[: len(case.names)]) == case.names, (list(back.columns), case.names)
    for i, (name, col) in enumerate(zip(case.names, case.columns, strict=True)):
        got = back.iloc[:, i].tolist()
        if fmt not in ("csv", "tsv"):
            got = [None if is_null(v) else v for v in got]
        want = [as_stored(v, fmt) for v in col]
        assert got == want, f"column {name!r}: wrote {want!r}, read back {got!r}"


# -- the three checks ------------------------------------------------------------------------------
def check_roundtrip(case: Case, tmp: Path) -> str:
    """dupq's writer, then dupq's reader."""
    path = tmp / f"table{case.suffix()}"
    allowed = {
        "duplicate column name": duplicate_names(case),
        "mixes": case.fmt == "parquet" and mixed_types(case),
    }
    try:
        write_frame(case.frame(), path)
    except InputError as exc:
        return refusal(exc, path, allowed)
    assert not duplicate_names(case), "a table with repeated column names was written"
    try:
        back = read_table(path)
    except InputError as exc:
        return refusal(exc, path, allowed)
    assert_same_rows(case, back, case.fmt)
    return "ok"


def _written(case: Case, tmp: Path) -> tuple[Path | None, str | None]:
    """The case written as input (``None`` and the outcome when the writer refused it)."""
    path = tmp / f"input{case.suffix()}"
    try:
        write_frame(case.frame(), path)
    except InputError as exc:
        allowed = {
            "duplicate column name": duplicate_names(case),
            "mixes": case.fmt == "parquet" and mixed_types(case),
        }
        return None, refusal(exc, path, allowed)
    return path, None


def check_dedupe(case: Case, tmp: Path, model: Any) -> str:
    """``dupq dedupe`` (the library call the command makes): input written by dupq, output read back."""
    from dupq.dedupe import deduplicate

    path, outcome = _written(case, tmp)
    if path is None:
        return outcome or ""
    out = tmp / f"out.{case.fmt}"
    unique = not duplicate_names(case)
    id_column = "id" if unique and "id" in case.names else None
    ids = case.columns[case.names.index("id")] if id_column else []
    stored_ids = [as_stored(v, case.fmt) for v in ids]
    allowed = {
        "duplicate column name": not unique,
        "empty id": any(is_null(v) or (isinstance(v, str) and not v.strip()) for v in stored_ids),
        "is used by more than one row": len({str(v) for v in stored_ids}) < len(stored_ids),
        "no column 'question'": case.fmt == "jsonl" and case.n_rows == 0,
    }
    try:
        deduplicate(
            path, text_column="question", id_column=id_column, model=model, out=out, show_progress=False,
            threshold=0.99,
        )  # fmt: skip
        back = read_table(out)
    except InputError as exc:
        return refusal(exc, path, allowed)
    assert unique, "dedupe accepted a table with repeated column names"
    assert_same_rows(case, back, case.fmt)
    return "ok"


def check_score(case: Case, tmp: Path, model: Any) -> str:
    """``dupq score``: input written by dupq, output read back."""
    from dupq.score import score_pairs

    path, outcome = _written(case, tmp)
    if path is None:
        return outcome or ""
    out = tmp / f"out.{case.fmt}"
    allowed = {
        "duplicate column name": duplicate_names(case),
        "no question columns found": case.fmt == "jsonl" and case.n_rows == 0,
    }
    try:
        score_pairs(path, out, model=model)
        back = read_table(out)
    except InputError as exc:
        return refusal(exc, path, allowed)
    assert not duplicate_names(case), "score accepted a table with repeated column names"
    assert_same_rows(case, back, case.fmt)
    return "ok"
