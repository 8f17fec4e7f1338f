"""Exceptions with enough context to fix the input.

Every error a user can cause names *where* the problem is (file, row, column) because a data team
running dupq over a million-row export cannot bisect the file by hand.
"""

from __future__ import annotations

from pathlib import Path


class DupqError(Exception):
    """Base class of every error dupq raises on purpose."""


class InputError(DupqError, ValueError):
    """Bad input data: a missing column, an unreadable file, an invalid value.

    ``file``, ``row`` (1-based data row, header excluded) and ``column`` are kept as attributes so
    programs can act on them, and are rendered in the message for people.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        self.file = str(file) if file is not None else None
        self.row = row
        self.column = column
        where = []
        if self.file is not None:
            where.append(f"file {self.file!s}")
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column {column!r}")
        self.reason = message
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


class EncoderLoadError(DupqError, OSError):
    """A model could not be loaded (unknown id, hub unreachable, not a model directory)."""


class StoreError(DupqError):
    """A persisted store (index, matcher, model metadata) is missing, corrupt or incompatible."""


class StoreConflictError(StoreError):
    """A save would overwrite a store that changed on disk since this process loaded (or last saved)
    it — another process or Matcher wrote it meanwhile. Nothing was written."""
