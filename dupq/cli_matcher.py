"""The Matcher's commands: ``dupq index build/add/copy``, ``dupq match`` and ``dupq serve``
(registered on the app in :mod:`dupq.cli`; what the index commands do is :mod:`dupq.cli_index`).

Split from :mod:`dupq.cli` by job (issue 26): these commands work on a Matcher store, which the
training, scoring and dedupe commands never open. Heavy imports happen inside the commands.
"""

from __future__ import annotations

from pathlib import Path

import typer

from dupq.cli_options import BACKEND_OPTION, NO_VERIFIER_OPTION, VERIFIER_OPTION

index_app = typer.Typer(
    help="Build and extend a Matcher store (FAISS index + questions + manifest).", no_args_is_help=True
)


@index_app.command("build")
def index_build(
    table: str = typer.Argument(..., help="Questions file: .csv, .tsv, .parquet or .jsonl."),
    text_column: str = typer.Option(..., "--text-column", "-t", help="Column holding the questions."),
    out: str | None = typer.Option(
        None, "--out", "-o", help="Store directory to create (replaced atomically)."
    ),
    store: str | None = typer.Option(
        None,
        "--store",
        "-s",
        help="Instead of --out: a PostgreSQL store (postgresql://…, env:NAME, file:PATH), created if absent.",
    ),
    id_column: str | None = typer.Option(None, "--id-column", help="Integer id column (default: 0, 1, …)."),
    metadata_column: list[str] = typer.Option(
        [], "--metadata-column", help="Column kept as metadata (repeat)."
    ),
    model: str | None = typer.Option(None, "--model", "-m", help="Model directory (default: MiniLM)."),
    index_kind: str = typer.Option("auto", "--index", "--index-kind", help="auto, flat, hnsw or ivf."),
    threshold: float | None = typer.Option(None, "--threshold", help="Cosine threshold (default: model's)."),
) -> None:
    """Encode every question of TABLE and write a new store to --out (or into --store)."""
    from dupq.errors import InputError

    if (out is None) == (store is None):
        raise InputError("give exactly one of --out DIRECTORY and --store postgresql://…")
    from dupq.cli_index import build_store

    m = build_store(
        table,
        out or store,
        text_column=text_column,
        id_column=id_column,
        metadata_columns=metadata_column,
        model=model,
        index_kind=index_kind,
        threshold=threshold,
    )
    where = out or f"the PostgreSQL store {m.store.where}"  # never the connection string (a secret)
    typer.echo(f"stored {len(m)} questions in {where} (index {m.index.kind}, threshold {m.threshold:.3f})")
    _echo_skipped(table, m.skipped_rows)


@index_app.command("add")
def index_add(
    store: str = typer.Argument(
        ..., help="Store directory written by `dupq index build`, or postgresql://…, env:NAME, file:PATH."
    ),
    tables: list[str] = typer.Argument(..., help="One or more questions files to append."),
    text_column: str = typer.Option(..., "--text-column", "-t", help="Column holding the questions."),
    id_column: str | None = typer.Option(None, "--id-column", help="Integer id column (default: next ids)."),
    metadata_column: list[str] = typer.Option(
        [], "--metadata-column", help="Column kept as metadata (repeat)."
    ),
    model: str | None = typer.Option(None, "--model", "-m", help="Model (default: the store's own)."),
) -> None:
    """Append TABLES to STORE (all-or-nothing: the store is saved once every table was accepted)."""

    from dupq.cli_index import add_to_store

    m, added, skipped = add_to_store(
        store,
        tables,
        text_column=text_column,
        id_column=id_column,
        metadata_columns=metadata_column,
        model=model,
    )
    where = getattr(m.store, "where", None) or store
    typer.echo(f"added {added} questions; {where} now holds {len(m)} (index {m.index.kind})")
    for table, rows in skipped.items():
        _echo_skipped(table, rows)


@index_app.command("copy")
def index_copy(
    source: str = typer.Argument(
        ..., help="Store to copy: a directory, or postgresql://…, env:NAME, file:PATH."
    ),
    dest: str = typer.Argument(
        ..., help="Where to: a new directory, or a PostgreSQL store (empty or absent)."
    ),
    model: str | None = typer.Option(None, "--model", "-m", help="Model (default: the source's own)."),
) -> None:
    """Copy a store to another, vectors and all (no re-encoding): directory <-> PostgreSQL."""
    from dupq.cli_index import copy_store

    copied = copy_store(source, dest, model=model)
    typer.echo(f"copied {copied} questions")


def match_cmd(
    questions: list[str] = typer.Argument(..., help="One or more new questions."),
    store: str = typer.Option(
        ...,
        "--store",
        "-s",
        envvar="DUPQ_STORE",
        help="Store directory, or postgresql://…, env:NAME, file:PATH.",
    ),
    k: int = typer.Option(5, "-k", "--k", help="Matches per question."),
    threshold: float | None = typer.Option(None, "--threshold", help="Cosine threshold (default: store's)."),
    model: str | None = typer.Option(None, "--model", "-m", help="Model (default: the store's own)."),
    verifier: str = VERIFIER_OPTION,
    no_verifier: bool = NO_VERIFIER_OPTION,
    backend: str = BACKEND_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Find the stored questions closest to each QUESTION."""
    import json

    from dupq.matcher import Matcher, format_matches

    chosen = None if no_verifier else verifier
    matcher = Matcher.load(store, model, verifier=chosen, backend=backend)
    results = matcher.match(questions, k=k, threshold=threshold)
    if as_json:
        typer.echo(json.dumps([r.to_dict() for r in results], indent=2, ensure_ascii=False))
    else:
        typer.echo(format_matches(results))


def serve_cmd(
    store: str = typer.Option(
        ...,
        "--store",
        "-s",
        envvar="DUPQ_STORE",
        help="Store directory, or a PostgreSQL store: postgresql://…, env:NAME, file:PATH.",
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind (0.0.0.0 exposes it)."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    model: str | None = typer.Option(None, "--model", "-m", help="Model (default: the store's own)."),
    persist: str = typer.Option("write", "--persist", help="write | interval | manual (see dupq.server)."),
    save_interval: float = typer.Option(30.0, "--save-interval", help="Seconds between saves (interval)."),
    create: bool = typer.Option(False, "--create", help="Start an empty store if --store does not exist."),
    token_file: str | None = typer.Option(
        None,
        "--token-file",
        help="File whose first line is the bearer token that writes and /save need (default: $DUPQ_TOKEN).",
    ),
    insecure: bool = typer.Option(
        False, "--insecure", help="Allow a non-loopback --host without a token (anyone may write)."
    ),
    max_in_flight: int = typer.Option(
        32, "--max-in-flight", help="Requests worked on at once; more get 503 + Retry-After."
    ),
    verifier: str = VERIFIER_OPTION,
    no_verifier: bool = NO_VERIFIER_OPTION,
    backend: str = BACKEND_OPTION,
    workers: int = typer.Option(
        1, "--workers", help="Server processes (more than 1 needs a PostgreSQL store)."
    ),
    ef_search: int | None = typer.Option(
        None, "--ef-search", help="PostgreSQL store: HNSW search beam (default: 200); larger finds more."
    ),
) -> None:
    """Serve STORE over HTTP: POST /match, POST /questions, DELETE /questions/{id}, /health, /stats, /docs."""
    from dupq.server import read_token, serve

    serve(
        store,
        host=host,
        port=port,
        model=model,
        persist=persist,
        save_interval=save_interval,
        create=create,
        token=read_token(token_file),
        insecure=insecure,
        max_in_flight=max_in_flight,
        verifier=None if no_verifier else verifier,
        backend=backend,
        workers=workers,
        ef_search=ef_search,
    )


def _echo_skipped(table: str | Path, rows: list[int]) -> None:
    """Say which rows were skipped for having no text (as dedupe's ``empty``): none is lost unsaid."""
    if rows:
        shown = ", ".join(map(str, rows[:20])) + (" …" if len(rows) > 20 else "")
        typer.echo(f"skipped {len(rows)} row(s) of {table} without text (rows {shown})")
