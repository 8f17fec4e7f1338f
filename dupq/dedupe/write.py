"""Stage 5, **write**: the input streamed again with the result columns, atomically; the pairs frame."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from dupq.dedupe.scan import EMPTY, STATUS_EMPTY, STATUS_OK, STATUS_TRUNCATED, STATUS_UNREADABLE, UNREADABLE
from dupq.errors import InputError
from dupq.io import atomic_path

# The one table writer lives in dupq.tablewriter (score and dedupe share it); re-exported here.
from dupq.tablewriter import ChunkWriter, output_format, write_frame  # noqa: F401
from dupq.textfiles import compression

if TYPE_CHECKING:
    from dupq.dedupe.group import Groups
    from dupq.dedupe.scan import Scan, Source

#: Columns added to every output row, in order.
RESULT_COLUMNS = ("group_id", "is_representative", "duplicate_of", "score", "status")
#: Added with ``against=``: True when ``duplicate_of`` names a row of the existing base.
EXISTING_COLUMN = "duplicate_of_existing"


def check_no_result_columns(columns: Any, path: Any) -> None:
    """Refuse an input that already has a column dedupe writes — checked before the model loads, so a
    wrong file fails in a second, not after hours of encoding."""
    clash = [c for c in (*RESULT_COLUMNS, EXISTING_COLUMN) if c in list(columns)]
    if clash:
        raise InputError(
            f"the input already has a column named {clash[0]!r}; rename it (dedupe adds {RESULT_COLUMNS})",
            file=path,
            column=clash[0],
        )


class OutputColumns:
    """Turns per-text results into the result columns of any range of rows."""

    def __init__(self, scan: Scan, groups: Groups, truncated: np.ndarray) -> None:
        self.scan = scan
        n = len(scan.texts)
        self.rep = groups.rep
        self.uid_group = groups.group
        self.uid_score = groups.score
        self.uid_dup = groups.dup
        self.matched = groups.matched
        self.truncated = truncated
        self.with_existing = groups.with_existing
        self.rep_row = (
            scan.rep_row[self.rep] if n else np.zeros(0, np.int64)
        )  # the representative row per uid

    def row_is_rep(self, rows: np.ndarray | None = None) -> np.ndarray:
        scan = self.scan
        rows = np.arange(scan.n_rows) if rows is None else rows
        uid = scan.row_uid[rows]
        has = uid >= 0
        out = np.zeros(len(rows), dtype=bool)
        u = uid[has]
        out[has] = (self.matched[u] < 0) & (self.rep[u] == u) & (scan.rep_row[u] == rows[has])
        return out

    def attach(self, chunk: pd.DataFrame, start: int) -> pd.DataFrame:
        check_no_result_columns(chunk.columns, self.scan.source.path)
        scan = self.scan
        rows = np.arange(start, start + len(chunk))
        uid = scan.row_uid[rows]
        code = scan.row_code[rows]
        has = uid >= 0
        u = np.where(has, uid, 0)
        is_rep = self.row_is_rep(rows)
        dup_mask = has & ~is_rep
        group = pd.array(np.where(has, self.uid_group[u] if len(self.uid_group) else 0, 0), dtype="Int64")
        group[~has] = pd.NA
        score = np.where(dup_mask, np.round(self.uid_score[u], 6) if len(self.uid_score) else 0.0, np.nan)
        exact_of_rep = dup_mask & (self.rep[u] == u) & (self.matched[u] < 0) if len(self.rep) else dup_mask
        score[exact_of_rep] = 1.0
        if scan.row_ids is None and not self.with_existing:
            ints = self.uid_dup[u].astype(np.int64) if len(self.uid_dup) else np.zeros(len(rows), np.int64)
            dup = pd.array(np.where(dup_mask, ints, 0), dtype="Int64")
            dup[~dup_mask] = pd.NA
        else:  # string ids (or ids from two tables)
            vals = self.uid_dup[u] if len(self.uid_dup) else np.zeros(len(rows), dtype=object)
            dup = pd.array(
                [str(v) if m else None for v, m in zip(vals, dup_mask, strict=True)], dtype="string"
            )
        status = np.where(
            code == EMPTY, STATUS_EMPTY, np.where(code == UNREADABLE, STATUS_UNREADABLE, STATUS_OK)
        )
        if len(self.truncated):
            status = np.where(has & self.truncated[u], STATUS_TRUNCATED, status)
        out = chunk.copy()
        out["group_id"] = group
        out["is_representative"] = is_rep
        out["duplicate_of"] = dup
        out["score"] = score
        out["status"] = status.astype(object)
        if self.with_existing:
            out[EXISTING_COLUMN] = (
                has & (self.matched[u] >= 0) if len(self.matched) else np.zeros(len(rows), bool)
            )
        return out


#: Leading characters that make a spreadsheet treat a cell as a formula (OWASP's CSV-injection list).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def escape_formulas(df: pd.DataFrame) -> pd.DataFrame:
    """Prefix text cells that a spreadsheet would run as a formula with ``'`` (``--escape-formulas``).

    Off by default: the output must round-trip the input's text exactly; this is for files people open in
    Excel or LibreOffice, where ``=HYPERLINK(…)`` in a question would otherwise become a live formula.
    """
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            out[col] = out[col].map(
                lambda v: "'" + v if isinstance(v, str) and v.startswith(FORMULA_START) else v
            )
    return out


def kept_rows(table: pd.DataFrame) -> np.ndarray:
    """Rows ``keep_only="representatives"`` writes: each group's representative, and every row without
    text (empty/unreadable rows were never judged duplicates, so they are not dropped)."""
    return (table["is_representative"].to_numpy(bool) | table["group_id"].isna().to_numpy()).astype(bool)


def write_table(
    source: Source,
    columns: OutputColumns,
    out: Path,
    show_progress: bool,
    escape: bool = False,
    dropped: Path | None = None,
) -> tuple[int, int]:
    """Stream the input again and write it with the result columns, atomically; with ``dropped``, only
    the :func:`kept_rows` go to ``out`` and the others to ``dropped`` (no row is lost). Returns
    ``(rows written to out, rows written to dropped)``."""
    counts = [0, 0]
    with atomic_path(out) as tmp, contextlib.ExitStack() as stack:
        writers = [ChunkWriter(tmp, output_format(out), compression=compression(out), name=out)]
        stack.callback(writers[0].close)
        if dropped is not None:
            writers.append(
                ChunkWriter(
                    stack.enter_context(atomic_path(dropped)),
                    output_format(dropped),
                    compression=compression(dropped),
                    name=dropped,
                )
            )
            stack.callback(writers[1].close)
        with tqdm(total=columns.scan.n_rows, desc="writing", unit=" rows", disable=not show_progress) as bar:
            for start, chunk in source.chunks():
                table = columns.attach(chunk, start)
                table = escape_formulas(table) if escape else table
                keep = kept_rows(table) if dropped is not None else np.ones(len(table), bool)
                writers[0].write(table[keep])
                counts[0] += int(keep.sum())
                if dropped is not None:
                    writers[1].write(table[~keep])
                    counts[1] += int((~keep).sum())
                bar.update(len(chunk))
    return counts[0], counts[1]


def pairs_frame(scan, base_scan, pa_, pb_, ps_, matched, match_score) -> pd.DataFrame:
    """Every pair above the threshold: distinct texts (``similar``), exact copies (``exact``), and
    matches to the existing base (``existing``). Texts are named by the id of their first row."""
    frames = []
    if len(pa_):
        frames.append(
            pd.DataFrame(
                {
                    "id_a": scan.uid_id(pa_),
                    "id_b": scan.uid_id(pb_),
                    "score": np.round(ps_.astype(np.float64), 6),
                    "kind": "similar",
                    "text_a": [scan.texts[i] for i in pa_.tolist()],
                    "text_b": [scan.texts[i] for i in pb_.tolist()],
                }
            )
        )
    rows = np.arange(scan.n_rows)
    has = scan.row_uid >= 0
    copies = rows[has][scan.rep_row[scan.row_uid[has]] != rows[has]]
    if len(copies):
        cu = scan.row_uid[copies]
        ids_b = (
            copies if scan.row_ids is None else np.asarray([scan.row_ids[r] for r in copies.tolist()], object)
        )
        frames.append(
            pd.DataFrame(
                {
                    "id_a": scan.uid_id(cu),
                    "id_b": ids_b,
                    "score": 1.0,
                    "kind": "exact",
                    "text_a": [scan.texts[i] for i in cu.tolist()],
                    "text_b": [scan.texts[i] for i in cu.tolist()],  # the same text up to case/punctuation
                }
            )
        )
    if base_scan is not None:
        m = np.flatnonzero(matched >= 0)
        if len(m):
            frames.append(
                pd.DataFrame(
                    {
                        "id_a": scan.uid_id(m),
                        "id_b": base_scan.uid_id(matched[m]),
                        "score": np.round(match_score[m].astype(np.float64), 6),
                        "kind": "existing",
                        "text_a": [scan.texts[i] for i in m.tolist()],
                        "text_b": [base_scan.texts[i] for i in matched[m].tolist()],
                    }
                )
            )
    if not frames:
        return pd.DataFrame({c: [] for c in ("id_a", "id_b", "score", "kind", "text_a", "text_b")})
    df = pd.concat(frames, ignore_index=True)
    if any(isinstance(v, str) for v in df["id_a"].head(1)) or base_scan is not None:
        df["id_a"] = df["id_a"].astype(str)
        df["id_b"] = df["id_b"].astype(str)
    return df
