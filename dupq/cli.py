"""The ``dupq`` command line: a thin shell over the library (each command calls one library function).

Commands are grouped by pipeline stage. Heavy imports happen inside the commands so that
``dupq --help`` stays fast.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import click
import typer
from typer.core import TyperGroup

from dupq.cli_dedupe import dedupe, report
from dupq.cli_matcher import index_app, match_cmd, serve_cmd
from dupq.cli_options import BACKEND_OPTION, NO_VERIFIER_OPTION, VERIFIER_OPTION
from dupq.cli_students import distill

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class _Group(TyperGroup):
    """The root command group: every :class:`~dupq.errors.DupqError` a command raises is reported here,
    once, as one clear line with exit code 2 (no traceback for user errors)."""

    def invoke(self, ctx: click.Context) -> object:
        from dupq.errors import DupqError

        try:
            return super().invoke(ctx)
        except DupqError as exc:
            _fail(exc)
        except OSError as exc:
            # A file the command could not read or write (permissions, a full disk, a directory where
            # a file was expected): the system's reason and the path, in one line, not a traceback.
            if exc.filename is None:
                raise
            where = f"{exc.filename}" + (f" -> {exc.filename2}" if exc.filename2 else "")
            _fail(RuntimeError(f"{where}: {exc.strerror or exc}"))


app = typer.Typer(
    cls=_Group,
    name="dupq",
    help="Semantic duplicate-question detection: train, evaluate, index, match, dedupe, serve.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _fail(exc: Exception) -> None:
    """Print a dupq error as one clear line and exit 2 (no traceback for user errors)."""
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


@app.callback()
def _main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress details.")) -> None:
    level = logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(message)s")


@app.command()
def version() -> None:
    """Print the dupq version."""
    from dupq._version import __version__

    typer.echo(__version__)


# --- data / train / evaluate (core) ------------------------------------------------------------

data_app = typer.Typer(help="Inspect labelled pair files and split them without question leakage.")
app.add_typer(data_app, name="data")

_FORMAT_HELP = "auto, quora, kaggle, glue, mqp, semeval-cqa, mrpc or generic (auto detects by header)."


@data_app.command("inspect")
def data_inspect(
    file: str = typer.Argument(..., help="Pair file: Quora/GLUE TSV, Kaggle CSV, any CSV/TSV/Parquet/JSONL."),
    fmt: str = typer.Option("auto", "--format", help=_FORMAT_HELP),
    question1: str | None = typer.Option(None, "--question1", help="First question column (generic)."),
    question2: str | None = typer.Option(None, "--question2", help="Second question column (generic)."),
    label: str | None = typer.Option(None, "--label", help="0/1 label column (generic)."),
    encoding: str | None = typer.Option(None, "--encoding", help="Text encoding if not UTF-8."),
    strict: bool = typer.Option(False, "--strict", help="Fail at the first bad row instead of reporting."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary and every issue as JSON."),
) -> None:
    """Read FILE, validate every row, and report what was kept and what was excluded (by row)."""
    import dataclasses
    import json

    from dupq.data import load_pairs

    data = load_pairs(
        file,
        fmt=fmt,
        question1=question1,
        question2=question2,
        label=label,
        encoding=encoding,
        strict=strict,
    )
    if as_json:
        out = data.summary() | {"issue_rows": [dataclasses.asdict(i) for i in data.issues]}
        typer.echo(json.dumps(out, indent=2))
    else:
        typer.echo(data.report())


@data_app.command("split")
def data_split(
    file: str = typer.Argument(..., help="Pair file to split (any format `dupq data inspect` reads)."),
    out: str = typer.Option(
        ..., "--out", help="Output directory for {train,dev,test}.tsv + split_summary.json."
    ),
    dev: float = typer.Option(0.1, "--dev", help="Fraction of pairs for dev."),
    test: float = typer.Option(0.1, "--test", help="Fraction of pairs for test."),
    seed: int = typer.Option(42, "--seed", help="Seed for shuffling question components."),
    fmt: str = typer.Option("auto", "--format", help=_FORMAT_HELP),
    question1: str | None = typer.Option(None, "--question1", help="First question column (generic)."),
    question2: str | None = typer.Option(None, "--question2", help="Second question column (generic)."),
    label: str | None = typer.Option(None, "--label", help="0/1 label column (generic)."),
    encoding: str | None = typer.Option(None, "--encoding", help="Text encoding if not UTF-8."),
    strict: bool = typer.Option(False, "--strict", help="Fail at the first bad row instead of reporting."),
) -> None:
    """Split FILE into train/dev/test by question components (no question in two splits)."""
    from dupq.data import split_file

    data, splits = split_file(
        file,
        out,
        fmt=fmt,
        dev=dev,
        test=test,
        seed=seed,
        strict=strict,
        encoding=encoding,
        question1=question1,
        question2=question2,
        label=label,
    )
    typer.echo(data.report())
    typer.echo(splits.format_summary())
    typer.echo(f"written: {out}/{{train,dev,test}}.tsv and {out}/split_summary.json")


@app.command()
def train(
    data: str = typer.Argument(..., help="Labelled pair file (any `dupq data inspect` format) or split dir."),
    out: str = typer.Option(..., "--out", "-o", help="Output model directory."),
    fmt: str = typer.Option("auto", "--format", help="Pair-file format (see `dupq.data.load_pairs`)."),
    model: str = typer.Option("default", "--model", "-m", help="Base model: dir, hub id or 'default'."),
    loss: str = typer.Option(
        "mnrl",
        help="contrastive | online-contrastive | cosine | mnrl | triplet | mnrl+online-contrastive.",
    ),
    margin: float = typer.Option(0.5, help="Margin of the (online) contrastive loss."),
    distance: str = typer.Option("cosine", help="Contrastive distance: cosine | euclidean | manhattan."),
    epochs: float = typer.Option(1.0, help="Training epochs."),
    max_steps: int = typer.Option(-1, help="Stop after this many steps (overrides epochs when > 0)."),
    batch_size: int = typer.Option(32, help="Pairs per batch (MNRL: in-batch negatives)."),
    lr: float = typer.Option(2e-5, "--lr", help="Peak learning rate."),
    warmup_ratio: float = typer.Option(0.1, help="Linear warm-up share of the steps."),
    scheduler: str = typer.Option("linear", help="Learning-rate schedule (transformers names)."),
    max_seq_length: int = typer.Option(128, help="Tokens per question; longer ones are truncated."),
    eval_steps: int | None = typer.Option(None, help="Evaluate on dev every N steps (default: ~5 per run)."),
    patience: int = typer.Option(3, help="Early stopping: evaluations without dev-AP gain (0 = off)."),
    dev: float = typer.Option(0.1, help="Dev share (component split)."),
    test: float = typer.Option(0.1, help="Test share (component split)."),
    max_train_pairs: int | None = typer.Option(None, help="Subsample the train split (quick runs)."),
    seed: int = typer.Option(42, help="Seed for split, sampling and initialisation."),
    device: str | None = typer.Option(None, help="cpu | cuda | cuda:N (default: cuda when present)."),
    resume: str | None = typer.Option(None, help="Resume from a checkpoint dir, or 'last'."),
    no_tensorboard: bool = typer.Option(False, "--no-tensorboard", help="Do not write TensorBoard logs."),
    kind: str = typer.Option(
        "bi-encoder", "--kind", help="bi-encoder (fine-tune the encoder) | verifier (second-stage scorer)."
    ),
    augment: str | None = typer.Option(
        None, "--augment", help="near-miss: add generated hard negatives/noise positives to train."
    ),
    verifier_head: str = typer.Option(
        "auto", "--verifier-head", help="Verifier head: auto | gbdt | mlp (late interaction) | cross-encoder."
    ),
    general: list[str] = typer.Option(
        [], "--general", help="Labelled pair file from another domain: warn if fine-tuning loses AP there."
    ),
    extra_pairs: list[str] = typer.Option(
        [], "--extra-pairs", help="More labelled pairs for train only, e.g. a dedupe report's marks CSV."
    ),
) -> None:
    """Fine-tune the Siamese encoder, or fit a verifier over it (--kind verifier), on question pairs.

    Writes a model directory with a dupq.json calibrated on dev (best-F1 threshold, precision 0.90/0.95
    thresholds, P(duplicate)).
    """
    from dupq.training import train as run_training

    result = run_training(
        data,
        out,
        fmt=fmt,
        dev=dev,
        test=test,
        max_train_pairs=max_train_pairs,
        resume_from_checkpoint=True if resume == "last" else resume,
        kind=kind,
        augment=augment,
        verifier_head=verifier_head,
        general=general,
        extra_pairs=extra_pairs,
        base_model=model,
        loss=loss,
        margin=margin,
        distance=distance,
        epochs=epochs,
        max_steps=max_steps,
        batch_size=batch_size,
        learning_rate=lr,
        warmup_ratio=warmup_ratio,
        lr_scheduler=scheduler,
        max_seq_length=max_seq_length,
        eval_steps=eval_steps,
        patience=patience or None,
        seed=seed,
        device=device,
        tensorboard=not no_tensorboard,
    )
    typer.echo(result.format_summary())
    typer.echo(f"evaluate with: dupq evaluate {out} {out}/splits")


@app.command()
def evaluate(
    model: str = typer.Argument(..., help="Model directory (e.g. a `dupq train` output) or 'default'."),
    data: str = typer.Argument(..., help="A split directory (train/dev/test.tsv) or a labelled pair file."),
    split: str = typer.Option("test", "--split", help="Which split of a split directory to evaluate."),
    fmt: str = typer.Option("auto", "--format", help="Pair-file format (see `dupq.data.load_pairs`)."),
    out: str | None = typer.Option(
        None, "--out", help="Report directory (default: evaluation/<model>-<data>)."
    ),
    threshold: float | None = typer.Option(
        None, "--threshold", help="Decision threshold on the cosine (default: the model's dupq.json)."
    ),
    base_model: str | None = typer.Option(
        None, "--base-model", help="Zero-shot baseline encoder (default: dupq.json's base_model)."
    ),
    no_baselines: bool = typer.Option(
        False, "--no-baselines", help="Skip the TF-IDF and zero-shot baselines."
    ),
    no_plots: bool = typer.Option(False, "--no-plots", help="Write report.json/report.md only."),
    device: str | None = typer.Option(
        None, "--device", help="cpu, cuda, cuda:1 … (default: cuda if present)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON instead of a table."),
) -> None:
    """Score MODEL on labelled pairs against TF-IDF and the zero-shot base model; write a report."""
    import json

    from dupq.evaluation import evaluate as run_evaluation
    from dupq.evaluation import load_eval_data

    pairs, train_pairs, dev_pairs, info = load_eval_data(data, split=split, fmt=fmt)
    data_path = Path(data)
    if out is None:
        tag = f"{data_path.name}-{split}" if data_path.is_dir() else data_path.stem
        out = str(Path("evaluation") / f"{Path(model).name}-{tag}")
    name = f"{Path(model).name} on {Path(data).name}" + (f" ({split})" if data_path.is_dir() else "")
    report = run_evaluation(
        model,
        pairs,
        threshold=threshold,
        baselines=() if no_baselines else ("tfidf", "zero-shot"),
        base_model=base_model,
        train_pairs=train_pairs,
        dev_pairs=dev_pairs,
        out_dir=out,
        plots=not no_plots,
        device=device,
        show_progress=not as_json,
        data_info=info,
        name=name,
    )
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        typer.echo(report.format_table())
        typer.echo(f"report: {report.files['report.md']}  (json: {report.files['report.json']})")


@app.command()
def demo(
    out: str = typer.Option("demo_output", "--out", "-o", help="Where the model, report and store go."),
    epochs: float = typer.Option(2.0, help="Fine-tuning epochs on the sample pairs."),
    device: str | None = typer.Option(None, help="cpu | cuda (default: cuda when present)."),
) -> None:
    """Run the whole pipeline offline on the bundled samples: split, train, evaluate, dedupe, match."""
    from dupq.demo import run_demo

    run_demo(out, epochs=epochs, device=device)


# --- index / match / serve (Matcher; dupq/cli_matcher.py) --------------------------------------
app.add_typer(index_app, name="index")
app.command("match")(match_cmd)
app.command("serve")(serve_cmd)


# --- score -------------------------------------------------------------------------------------
@app.command()
def score(
    pairs: str = typer.Argument(..., help="Pair file (CSV/TSV/Parquet/JSONL), labelled or not."),
    out: str = typer.Option(..., "--out", "-o", help="Output file: every input row + score columns."),
    model: str | None = typer.Option(None, "--model", "-m", help="Bi-encoder dir (default: MiniLM-L6)."),
    verifier: str = VERIFIER_OPTION,
    no_verifier: bool = NO_VERIFIER_OPTION,
    backend: str = BACKEND_OPTION,
    question1: str | None = typer.Option(None, "--question1", help="First text column (default: detected)."),
    question2: str | None = typer.Option(None, "--question2", help="Second text column (default: detected)."),
    label: str | None = typer.Option(None, "--label", help="Label column (default: detected, if any)."),
    threshold: float | None = typer.Option(
        None, "--threshold", help="Decision threshold (default: model's)."
    ),
    sep: str | None = typer.Option(None, "--sep", help="CSV delimiter (default: detected)."),
    encoding: str | None = typer.Option(None, "--encoding", help="Text encoding (default: detected)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Score every pair of PAIRS; with labels, print AP / accuracy / F1.

    Every input row is written with similarity, score, probability, is_duplicate and status.
    """
    from dupq.score import score_pairs

    result = score_pairs(
        pairs,
        out,
        model=model,
        verifier=None if no_verifier else verifier,
        backend=backend,
        question1=question1,
        question2=question2,
        label=label,
        threshold=threshold,
        sep=sep,
        encoding=encoding,
        show_progress=not quiet,
    )
    typer.echo(result.format_summary())


# --- dedupe (dupq/cli_dedupe.py: its options outgrew this module) ------------------------------
app.command("dedupe")(dedupe)
app.command("report")(report)
app.command("distill")(distill)


# --- encoding backends -------------------------------------------------------------------------


@app.command("export-onnx")
def export_onnx_cmd(
    model: str | None = typer.Argument(None, help="Model dir (default: embedded all-MiniLM-L6-v2)."),
    backend: str = typer.Option(
        "onnx-int8",
        "--backend",
        help="onnx (fp32), onnx-int8, openvino (fp32), openvino-int8 (weight-only without texts), or auto "
        "(export and time them all here; cache the fastest for this model and CPU).",
    ),
    force: bool = typer.Option(False, "--force", help="Export (or probe) again even if cached."),
) -> None:
    """Export, verify and cache MODEL for an onnx/openvino backend ahead of time (e.g. in a Docker build)."""
    import json

    from dupq.backends import OPENVINO_BACKENDS, available_backends, check_backend, make_runner
    from dupq.backends.onnx import export_onnx
    from dupq.encoder import load_encoder

    check_backend(backend)
    encoder = load_encoder(model, device="cpu")
    if backend == "auto":
        from dupq.backends.auto import cached_choice, resolve_auto

        chosen = resolve_auto(encoder, force=force, make_runner=make_runner, available=available_backends())
        record = cached_choice(encoder) or {}
        for name, qps in sorted(record.get("questions_per_s", {}).items(), key=lambda kv: -kv[1]):
            typer.echo(f"{name:<14} {qps:>8.1f} q/s{'  <- auto' if name == chosen else ''}")
        for name, why in record.get("skipped", {}).items():
            typer.echo(f"{name:<14} skipped: {why}")
        return
    if backend in OPENVINO_BACKENDS:
        from dupq.backends.openvino import export_openvino

        path = export_openvino(encoder, backend, force=force)
    elif backend == "torch":
        raise typer.BadParameter("torch needs no export", param_hint="--backend")
    else:
        path = export_onnx(encoder, backend, force=force)
    meta = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    typer.echo(str(path))
    mean, low = meta["probe_mean_cosine"], meta["probe_min_cosine"]
    typer.echo(f"probe cosine vs torch: mean {mean:.4f}, min {low:.4f}")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
