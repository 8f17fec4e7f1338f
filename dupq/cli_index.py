"""What ``dupq index build/add/copy`` do (each one library call sequence), apart from :mod:`dupq.cli`
so that module stays a thin shell of commands. A store is a directory or a PostgreSQL store
(:mod:`dupq.stores`): the same calls, but a database store commits every write and needs no save."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def build_store(
    table: str | Path,
    out: str | Path,
    *,
    text_column: str,
    id_column: str | None = None,
    metadata_columns: Sequence[str] | None = None,
    model: str | Path | None = None,
    index_kind: str = "auto",
    threshold: float | None = None,
) -> Any:
    """``dupq index build``: a new store at ``out`` (a directory, or a PostgreSQL store) from one table."""
    from dupq.errors import StoreError
    from dupq.matcher import Matcher
    from dupq.stores import is_database

    if is_database(out):
        matcher = Matcher(model, threshold=threshold, index_kind=index_kind, store=str(out))
        if len(matcher):
            raise StoreError(
                f"the PostgreSQL store {matcher.store.where} already holds {len(matcher)} questions: "
                "`dupq index add` appends to it"
            )
    else:
        matcher = Matcher(model, threshold=threshold, index_kind=index_kind)
    matcher.add_table(table, text_column=text_column, id_column=id_column, metadata_columns=metadata_columns)
    if not matcher.store.durable:
        matcher.save(out, overwrite=True)  # "build" replaces whatever store was at --out
    return matcher


def add_to_store(
    store: str | Path,
    tables: Sequence[str | Path],
    *,
    text_column: str,
    id_column: str | None = None,
    metadata_columns: Sequence[str] | None = None,
    model: str | Path | None = None,
) -> tuple[Any, int, dict[str, list[int]]]:
    """``dupq index add``: append tables to a store (saved once, after every table was accepted);
    also the rows without text each table skipped."""
    from dupq.matcher import Matcher

    matcher = Matcher.load(store, model)
    before = len(matcher)
    skipped: dict[str, list[int]] = {}
    for table in tables:
        matcher.add_table(
            table, text_column=text_column, id_column=id_column, metadata_columns=metadata_columns
        )
        skipped[str(table)] = matcher.skipped_rows
    if not matcher.store.durable:  # a database store committed every table already
        matcher.save(store)
    return matcher, len(matcher) - before, skipped


def copy_store(source: str | Path, dest: str | Path, *, model: str | Path | None = None) -> int:
    """``dupq index copy``: every question and vector of ``source`` into ``dest`` (a new directory,
    or an empty PostgreSQL store), without re-encoding. Returns how many were copied."""
    from dupq.errors import StoreError
    from dupq.matcher import Matcher
    from dupq.stores import is_database

    src = Matcher.load(source, model)
    if not is_database(dest):
        src.save(dest)  # a database source is exported to a file store first (Matcher._file_store)
        return len(src)
    dst = Matcher(src.embedder, threshold=src.threshold, store=str(dest))
    if len(dst):
        raise StoreError(f"the PostgreSQL store {dst.store.where} already holds {len(dst)} questions")
    copied = 0
    for ids, vecs, rows in src.store.export():
        dst.store.add(vecs, rows, ids)
        copied += len(ids)
    return copied
