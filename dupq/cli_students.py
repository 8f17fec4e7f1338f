"""``dupq distill``: a faster student of any dupq model (registered on the app in :mod:`dupq.cli`).

Heavy imports happen inside the command so that ``dupq --help`` stays fast.
"""

from __future__ import annotations

import typer


def distill(
    model: str = typer.Argument(
        ..., help="Teacher: a model directory (e.g. a `dupq train` output) or 'default'."
    ),
    out: str = typer.Option(..., "--out", "-o", help="Student model directory (written atomically)."),
    kind: str = typer.Option(
        "layers", "--kind", help="layers (every other transformer layer, ~2x faster) | static (Model2Vec)."
    ),
    texts: str | None = typer.Option(
        None,
        "--texts",
        help="Questions to learn from (CSV/TSV/Parquet/JSONL) (default: the teacher's train split).",
    ),
    text_column: str | None = typer.Option(None, "--text-column", "-t", help="Column of --texts."),
    pairs: str | None = typer.Option(
        None, "--pairs", help="Labelled dev pairs (question1,question2,is_duplicate) to calibrate on."
    ),
    epochs: float = typer.Option(1.0, "--epochs", help="Passes over the texts (layers, static --tune)."),
    max_texts: int = typer.Option(20_000, "--max-texts", help="Train on at most this many texts (0: all)."),
    batch_size: int = typer.Option(32, "--batch-size", help="Texts per training step."),
    lr: float | None = typer.Option(None, "--lr", help="Learning rate (default: layers 1e-4, static 5e-3)."),
    pca_dims: int = typer.Option(256, "--pca-dims", help="Static: dimensions kept by PCA (0: no PCA)."),
    tune: bool = typer.Option(False, "--tune", help="Static: fit the table to the teacher's cosines."),
    calibration_texts: int = typer.Option(
        5_000, "--calibration-texts", help="Texts mined for label-free calibration (no --pairs)."
    ),
    seed: int = typer.Option(42, "--seed", help="Seed for sampling, shuffling and initialisation."),
    device: str | None = typer.Option(None, "--device", help="cpu | cuda (default: cuda when present)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Distil a faster student of MODEL into --out, with its own calibrated thresholds in dupq.json."""
    from dupq.students import distill_student

    result = distill_student(
        model,
        out,
        texts=texts,
        text_column=text_column,
        pairs=pairs,
        kind=kind,
        epochs=epochs,
        max_texts=max_texts or None,
        batch_size=batch_size,
        learning_rate=lr,
        pca_dims=pca_dims or None,
        tune=tune,
        calibration_texts=calibration_texts,
        seed=seed,
        device=device,
        show_progress=not quiet,
    )
    typer.echo(result.format_summary())
