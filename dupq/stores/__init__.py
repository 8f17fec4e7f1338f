"""Where a Matcher keeps its questions: :class:`~dupq.stores.file.FileStore` (embedded, one process,
saved to a directory — the default) or :class:`~dupq.stores.postgres.PostgresStore` (PostgreSQL +
pgvector, shared by any number of processes). Both implement :class:`~dupq.stores.base.QuestionStore`.
"""

from __future__ import annotations

from typing import Any

from dupq.errors import InputError
from dupq.stores.base import Hit, QuestionStore, Row
from dupq.stores.dsn import is_database, redact, resolve
from dupq.stores.file import FileStore

__all__ = ["FileStore", "Hit", "QuestionStore", "Row", "is_database", "open_database", "open_store"]

_DB_PARAMS = {"ef_search", "M", "ef_construction", "table", "pool_size"}


def open_database(spec: str, **params: Any) -> Any:
    """A :class:`~dupq.stores.postgres.PostgresStore` for ``spec`` (a connection string, ``env:NAME``
    or ``file:PATH``: :mod:`dupq.stores.dsn`), not yet bound to a model."""
    from dupq.stores.postgres import PostgresStore

    unknown = set(params) - _DB_PARAMS
    if unknown:
        raise InputError(
            f"unknown PostgreSQL store parameter(s) {sorted(unknown)}; expected {sorted(_DB_PARAMS)}"
        )
    return PostgresStore(resolve(spec), **params)


def open_store(
    store: str | QuestionStore | None,
    *,
    dim: int,
    fingerprint: str,
    model_source: str | None,
    threshold: float,
    calibration: dict[str, float] | None,
    index_kind: str = "auto",
    index_params: dict[str, Any] | None = None,
) -> QuestionStore:
    """The store a new :class:`~dupq.matcher.Matcher` works on: a fresh :class:`FileStore` for ``None``;
    for a database (a connection string, ``env:``/``file:`` spec, or an opened store) the store bound to
    this model — created if absent, refused if it was built with another model."""
    if store is None:
        return FileStore(dim, index_kind=index_kind, index_params=index_params)
    if isinstance(store, str) and is_database(store):
        if index_kind not in ("auto", "hnsw"):
            raise InputError(
                f"a PostgreSQL store has an HNSW index; index kind {index_kind!r} is not available"
            )
        store = open_database(store, **(index_params or {}))
    if not isinstance(store, QuestionStore):
        shown = redact(str(store)) if isinstance(store, str) else type(store).__name__
        raise InputError(
            f"store must be a postgresql:// connection string, env:NAME, file:PATH or an opened store, got "
            f"{shown!r} (a store directory is opened with Matcher.load)",
            column="store",
        )
    bind = getattr(store, "bind", None)
    if bind is not None:
        bind(
            fingerprint=fingerprint,
            dim=dim,
            model_source=model_source,
            threshold=threshold,
            calibration=calibration,
        )
    return store
