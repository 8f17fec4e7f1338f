"""Exceptions with enough context to fix the input.

Every error a user can cause names *where* the problem is (file, row, column) because a data team
running dupq over a million-row export cannot bisect the file by hand. One type per meaning, so that
callers (the CLI, ``dupq serve``'s HTTP codes) map types, never message text:

* :class:`InputError` — bad input (422); :class:`ConflictError` — an id already stored (409);
* :class:`UnknownIdError` — ids that are not stored (404);
* :class:`StoreError` / :class:`EncoderLoadError` — a store or model that cannot be used.
* :class:`StoreConflictError` — a save refused: the store changed on disk since it was loaded (409
  ``store_conflict`` in ``dupq serve``).
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


class ConflictError(InputError):
    """The input clashes with what is stored (an id already stored); HTTP 409 in ``dupq serve``."""


class UnknownIdError(DupqError, LookupError):
    """Ids that are not stored (``.ids`` lists them); nothing was changed. HTTP 404 in ``dupq serve``."""

    def __init__(self, ids: list[int]) -> None:
        self.ids = ids
        shown = ", ".join(map(str, ids[:10])) + (" …" if len(ids) > 10 else "")
        super().__init__(f"{len(ids)} unknown id(s): {shown}")

    def __str__(self) -> str:  # LookupError would repr() the message
        return self.args[0]


class EncoderLoadError(DupqError, OSError):
    """A model could not be loaded (unknown id, hub unreachable, not a model directory)."""


class StoreError(DupqError):
    """A persisted store (index, matcher, model metadata) is missing, corrupt or incompatible."""


class StoreConflictError(StoreError):
    """A save would overwrite a store that changed on disk since this process loaded (or last saved)
    it — another process or Matcher wrote it meanwhile. Nothing was written."""
