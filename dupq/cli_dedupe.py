"""``dupq dedupe`` and ``dupq report``: the batch-dedupe commands (registered on the app in :mod:`dupq.cli`).

Heavy imports happen inside the commands so that ``dupq --help`` stays fast.
"""

from __future__ import annotations

import typer

from dupq.cli_options import BACKEND_OPTION, NO_VERIFIER_OPTION, VERIFIER_OPTION


def dedupe(
    input: str = typer.Argument(
        ...,
        help="Questions: .csv, .tsv, .parquet, .jsonl, a Parquet-shard dir or a save_to_disk dataset dir.",
    ),
    text_column: str = typer.Option(..., "--text-column", "-t", help="Column holding the questions."),
    out: str = typer.Option(..., "--out", "-o", help="Output file (every input row + result columns)."),
    id_column: str | None = typer.Option(None, "--id-column", help="Column naming rows in duplicate_of."),
    model: str | None = typer.Option(None, "--model", "-m", help="Model directory (default: MiniLM-L6)."),
    threshold: str = typer.Option(
        "auto", "--threshold", help="Cosine in [-1, 1], or 'auto' (dupq.json's precision-0.90 point)."
    ),
    pairs: str | None = typer.Option(None, "--pairs", help="Also write every pair above the threshold here."),
    against: str | None = typer.Option(None, "--against", help="Existing base: mark rows duplicating it."),
    against_text_column: str | None = typer.Option(
        None, "--against-text-column", help="Text column of --against (default: --text-column)."
    ),
    against_id_column: str | None = typer.Option(
        None, "--against-id-column", help="Id column of --against (default: --id-column if present)."
    ),
    cluster: str = typer.Option("leader", "--cluster", help="leader (no chaining) or components."),
    k: int = typer.Option(
        32, "-k", "--k", help="Neighbours per question (range search beyond, if all k match)."
    ),
    engine: str = typer.Option(
        "local", "--engine", help="local, or ray (encoding on Ray Data, search on Ray tasks)."
    ),
    ray_address: str | None = typer.Option(None, "--ray-address", help="ray://host:port (or $RAY_ADDRESS)."),
    ray_search: str = typer.Option(
        "auto",
        "--ray-search",
        help="With --engine ray: partitioned (search on Ray tasks), driver, or auto (partitioned from "
        "200,000 unique texts or with --ray-partitions).",
    ),
    ray_partitions: int | None = typer.Option(
        None, "--ray-partitions", help="k-means search partitions (default: ~200,000 vectors each)."
    ),
    ray_assignments: int = typer.Option(
        2,
        "--ray-assignments",
        help="--index flat/hnsw on Ray: nearest partitions per vector (the join's partitions need none).",
    ),
    backend: str = BACKEND_OPTION,
    device: str | None = typer.Option(None, "--device", help="cpu / cuda (default: cuda when available)."),
    batch_size: int = typer.Option(64, "--batch-size", help="Encoding batch size."),
    index: str = typer.Option(
        "auto", "--index", "--index-kind", help="auto (flat to 20k texts, join above), flat, join, hnsw, ivf."
    ),
    ef_search: int | None = typer.Option(
        None,
        "--ef-search",
        help="With --index hnsw: the search beam (default 128; 64: ~1.3x faster, pair recall ~0.99).",
    ),
    join_recall: float = typer.Option(
        0.99,  # dupq.dedupe.join.JOIN_RECALL (not imported here: `dupq --help` stays fast; a test checks)
        "--join-recall",
        help="The join's pair-recall target: its probes are chosen for it (1.0: the most; lower: faster).",
    ),
    workdir: str | None = typer.Option(
        None, "--workdir", help="Keep embeddings here (resume; re-group without re-encoding)."
    ),
    summary: str | None = typer.Option(None, "--summary", help="Summary JSON (default: <out>.summary.json)."),
    sep: str | None = typer.Option(None, "--sep", help="CSV delimiter (default: detected)."),
    encoding: str | None = typer.Option(None, "--encoding", help="Text encoding (default: detected)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    verifier: str = VERIFIER_OPTION,
    no_verifier: bool = NO_VERIFIER_OPTION,
    verify_below: float = typer.Option(
        0.10, "--verify-below", help="With --verifier: search this far below the threshold."
    ),
    escape_formulas: bool = typer.Option(
        False, "--escape-formulas", help="Prefix cells starting with = + - @ with ' (for spreadsheets)."
    ),
    verify_above: float = typer.Option(
        0.98, "--verify-above", help="With --verifier: pairs at/above this cosine are accepted unverified."
    ),
    search_margin: float = typer.Option(
        0.05,
        "--search-margin",
        help="Keep candidate pairs this far below the threshold in --workdir (re-threshold, what-ifs).",
    ),
    decisions: str | None = typer.Option(
        None, "--decisions", help="Review marks CSV (the report's export): must-link / cannot-link pairs."
    ),
    report: str | None = typer.Option(
        None, "--report", help="Write the review report here (one self-contained HTML file)."
    ),
    keep_only: str | None = typer.Option(
        None,
        "--keep-only",
        help="representatives: write one row per group; the others go to <out>.dropped<suffix>.",
    ),
    keep: str = typer.Option(
        "most-neighbours",
        "--keep",
        help="Survivor rule: most-neighbours | first | longest | shortest | most-frequent | "
        "column:NAME[:asc|desc].",
    ),
) -> None:
    """Find duplicate groups in a file of questions; write every row with its group and status."""
    from dupq.dedupe import deduplicate

    try:
        result = deduplicate(
            input,
            text_column=text_column,
            id_column=id_column,
            model=model,
            threshold=threshold,
            cluster=cluster,
            k=k,
            against=against,
            against_text_column=against_text_column,
            against_id_column=against_id_column,
            out=out,
            pairs_out=pairs,
            summary_out=summary,
            workdir=workdir,
            engine=engine,
            backend=backend,
            device=device,
            batch_size=batch_size,
            index=index,
            ef_search=ef_search,
            join_recall=join_recall,
            sep=sep,
            encoding=encoding,
            ray_address=ray_address,
            show_progress=not quiet,
            verifier=None if no_verifier else verifier,
            verify_below=verify_below,
            verify_above=verify_above,
            escape_formulas=escape_formulas,
            keep=keep,
            search_margin=search_margin,
            decisions=decisions,
            keep_only=keep_only,
            report=report,
            ray_search=ray_search,
            ray_partitions=ray_partitions,
            ray_assignments=ray_assignments,
        )
    except KeyboardInterrupt:
        typer.secho(
            "interrupted: the embeddings written so far are kept; rerun the same command to resume",
            fg=typer.colors.YELLOW,
            err=True,
        )
        raise typer.Exit(130) from None
    typer.echo(result.summary.format())
    if result.summary_out is not None:
        typer.echo(f"summary            {result.summary_out}")
    if report is not None:
        typer.echo(f"report             {report}")


def report(
    workdir: str = typer.Argument(..., help="The --workdir of a `dupq dedupe` run."),
    out: str = typer.Option("report.html", "--out", "-o", help="The HTML file to write."),
) -> None:
    """Write the review report of the last `dupq dedupe` run that used WORKDIR (no re-computation)."""
    from dupq.dedupe.report import report_from_workdir

    path = report_from_workdir(workdir, out)
    typer.echo(f"report             {path}  ({path.stat().st_size / 1e6:.2f} MB)")
