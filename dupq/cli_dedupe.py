"""``dupq dedupe`` and ``dupq report``: the batch-dedupe commands (registered on the app in :mod:`dupq.cli`).

The options of ``dupq dedupe`` are not written here: they are the fields of
:class:`~dupq.dedupe.config.DedupeConfig` that have flags, turned into typer options by
:func:`~dupq.cli_options.option_parameters`, so their flags, defaults and help are declared once.
The pipeline itself is imported inside the command.
"""

from __future__ import annotations

import inspect
from typing import Any

import typer

from dupq.cli_options import option_parameters
from dupq.dedupe.config import DedupeConfig
from dupq.options import NO_VERIFIER, declared


def dedupe(
    input: str = typer.Argument(
        ...,
        help="Questions: .csv, .tsv, .parquet, .jsonl, a Parquet-shard dir or a save_to_disk dataset dir.",
    ),
    **options: Any,
) -> None:
    """Find duplicate groups in a file of questions; write every row with its group and status."""
    from dupq.dedupe import deduplicate

    verifier_off = options.pop("no_verifier")
    config = {name: spec.from_cli(options[spec.param or name]) for name, spec in CLI_OPTIONS}
    if verifier_off:
        config["verifier"] = None
    try:
        result = deduplicate(input, **config)
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
    if config["report"] is not None:
        typer.echo(f"report             {config['report']}")


#: The options of ``dupq dedupe``: the fields of DedupeConfig that have flags (dupq.options.Flag).
CLI_OPTIONS = [(name, spec) for name, spec in declared(DedupeConfig) if spec.on_cli]
#: The order ``dupq dedupe --help`` lists them in (the command's parameter names; an option declared
#: later and missing here is listed last).
HELP_ORDER = (
    "text_column",
    "out",
    "id_column",
    "model",
    "threshold",
    "pairs",
    "against",
    "against_text_column",
    "against_id_column",
    "cluster",
    "k",
    "engine",
    "ray_address",
    "ray_search",
    "ray_partitions",
    "ray_assignments",
    "backend",
    "device",
    "batch_size",
    "index",
    "ef_search",
    "join_recall",
    "workdir",
    "summary",
    "sep",
    "encoding",
    "quiet",
    "verifier",
    "no_verifier",
    "verify_below",
    "escape_formulas",
    "verify_above",
    "search_margin",
    "decisions",
    "report",
    "keep_only",
    "keep",
)


def _signature() -> inspect.Signature:
    """``dedupe``'s signature for typer: INPUT, then an option per declared field (and
    ``--no-verifier``), in :data:`HELP_ORDER`."""
    params = {p.name: p for p in option_parameters([*CLI_OPTIONS, ("no_verifier", NO_VERIFIER)])}
    ordered = [params.pop(name) for name in HELP_ORDER if name in params] + list(params.values())
    input_param = inspect.signature(dedupe).parameters["input"].replace(annotation=str)
    return inspect.Signature([input_param, *ordered], return_annotation=None)


dedupe.__signature__ = _signature()  # type: ignore[attr-defined]


def report(
    workdir: str = typer.Argument(..., help="The --workdir of a `dupq dedupe` run."),
    out: str = typer.Option("report.html", "--out", "-o", help="The HTML file to write."),
) -> None:
    """Write the review report of the last `dupq dedupe` run that used WORKDIR (no re-computation)."""
    from dupq.dedupe.report import report_from_workdir

    path = report_from_workdir(workdir, out)
    typer.echo(f"report             {path}  ({path.stat().st_size / 1e6:.2f} MB)")
