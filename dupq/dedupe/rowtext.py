"""The text of a row *as it is in the input*, for the report, which names rows one by one.

The scan keeps one text per exact-duplicate key — the raw text of the key's first row — because that is
all the model needs and all a 1M-row run can afford to hold. But a reviewer deciding about row 120 must
see row 120 ("What causes inflation??"), not its key's first row ("What causes inflation?"): case and
punctuation are exactly what an exact-key rule may get wrong. So the few rows a report lists have their
own text read back from the source here: rows that are their key's first row take it from the scan, the
others come from one more pass over the input, which stops after the last row wanted.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

from dupq.dedupe.scan import classify_key
from dupq.errors import InputError

if TYPE_CHECKING:
    from dupq.dedupe.scan import Scan


def row_texts(scan: Scan, rows: Iterable[int] | np.ndarray) -> dict[int, str]:
    """``{row: its own text}`` for rows (0-based positions) that have text.

    Only the rows that are not their key's first row cost a read of the source; when there are none
    (no exact duplicates among ``rows``), the source is not touched.
    """
    wanted = np.unique(np.asarray(list(rows) if not isinstance(rows, np.ndarray) else rows, dtype=np.int64))
    if not len(wanted):
        return {}
    uid = scan.row_uid[wanted]
    if (uid < 0).any():
        raise ValueError(f"row {int(wanted[uid < 0][0])} has no text")
    first = scan.first_row[uid] == wanted
    out = {r: scan.texts[u] for r, u in zip(wanted[first].tolist(), uid[first].tolist(), strict=True)}
    if not first.all():
        out.update(_read(scan, wanted[~first]))
    return out


def _read(scan: Scan, rows: np.ndarray) -> dict[int, str]:
    """The own texts of ``rows`` (sorted, distinct) from a pass over the source; each one must still
    have the key the scan gave it (else the input changed during the run, and the page would show a
    text the run never saw)."""
    source, column = scan.source, scan.source.text_column
    out: dict[int, str] = {}
    last = int(rows[-1])
    with contextlib.closing(source.chunks()) as chunks:  # type: ignore[arg-type]
        for start, chunk in chunks:
            lo, hi = np.searchsorted(rows, [start, start + len(chunk)])
            picked = rows[lo:hi]
            if len(picked):
                values = chunk[column].iloc[picked - start].tolist()
                for r, value in zip(picked.tolist(), values, strict=True):
                    code, text, key = classify_key(value)
                    if code or scan.keys.get(key) != scan.row_uid[r]:
                        raise InputError(
                            "the input changed while dedupe ran: this row's text is not the one scanned",
                            file=source.path,
                            row=r + 1,
                            column=column,
                        )
                    out[r] = text
            if start + len(chunk) > last:
                break
    if len(out) != len(rows):
        missing = int(np.setdiff1d(rows, np.fromiter(out, np.int64, len(out)))[0])
        raise InputError(
            "the input changed while dedupe ran: it is shorter now", file=source.path, row=missing + 1
        )
    return out
