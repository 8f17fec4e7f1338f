"""``make demo`` / ``dupq demo``: the whole product end to end, offline, in a few minutes on a laptop CPU.

It is the first thing a new user runs, so it uses only what ships with dupq — the bundled sample data
in ``data/`` and the embedded default model — and prints what a person wants to see: the split,
training progress, the evaluation table against TF-IDF and the zero-shot model, duplicate groups
found in a CSV, and a few Matcher answers, with where every artefact was written.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "data"

#: New questions for the Matcher: paraphrases of questions in data/sample_questions.csv, and one
#: question that has no duplicate there (a good matcher says so).
QUERIES = (
    "As an American, do I have to get a visa before going to Japan?",
    "What's the best method to clean a cast-iron skillet?",
    "How can I remove a branch from the remote repository in git?",
    "What is the airspeed velocity of an unladen swallow?",
)


def _say(title: str) -> None:
    typer.secho(f"\n== {title} ", fg=typer.colors.CYAN, bold=True)


def run_demo(
    out_dir: str | Path = "demo_output",
    *,
    data_dir: str | Path = SAMPLE_DIR,
    base_model: str = "default",
    epochs: float = 2.0,
    batch_size: int = 16,
    device: str | None = None,
) -> dict[str, Path]:
    """Run data → train → evaluate → dedupe → match on the bundled samples; return the artefact paths."""
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    data_dir = Path(data_dir)
    model_dir = out_dir / "model"
    splits, data = _data_step(data_dir, out_dir)
    _train_step(splits, data, model_dir, base_model, epochs, batch_size, device)
    _evaluate_step(splits, model_dir, base_model, out_dir, device)
    verifier_dir = _verifier_step(splits, model_dir, out_dir, device)
    # What `pip install dupq` gives with no options: the stock encoder and the verifier shipped for it.
    deduped, rows = _dedupe_step(data_dir, out_dir, base_model, device)
    store = _matcher_step(rows, base_model, out_dir, device)

    paths = {
        "model": model_dir,
        "verifier": verifier_dir,
        "report": out_dir / "report" / "report.md",
        "deduped": deduped,
        "store": Path(store),
        "tensorboard": model_dir / "tensorboard",
    }
    _say(f"done in {time.perf_counter() - t0:.0f}s — artefacts")
    for k, v in paths.items():
        typer.echo(f"  {k:<12} {v}")
    return paths


def _data_step(data_dir: Path, out_dir: Path) -> tuple[Any, Any]:
    from dupq.data import load_pairs, split_pairs

    _say("1. data: bundled Quora-schema sample pairs, split by question components (no leakage)")
    data = load_pairs(data_dir / "sample_pairs.tsv")
    typer.echo(data.report())
    splits = split_pairs(data.pairs, dev=0.15, test=0.25, seed=42)
    typer.echo(splits.format_summary())
    splits.save(out_dir / "splits")
    return splits, data


def _train_step(
    splits: Any,
    data: Any,
    model_dir: Path,
    base_model: str,
    epochs: float,
    batch_size: int,
    device: str | None,
) -> None:
    from dupq.training import TrainConfig, train_model

    # Multi-task: MNRL ranks duplicates above in-batch strangers, online-contrastive learns the
    # sample's hard negatives (same topic, different intent) that the zero-shot model confuses.
    _say(f"2. fine-tune {base_model} (MNRL + online-contrastive, {epochs:g} epochs, batch {batch_size})")
    config = TrainConfig(
        base_model=base_model,
        loss="mnrl+online-contrastive",
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=5e-5,
        eval_steps=10,
        device=device,
        show_progress=True,
        tensorboard=True,
        save_total_limit=1,
    )
    result = train_model(
        splits.train,
        splits.dev,
        model_dir,
        config,
        extra_metadata={"data": {"source": data.source, "sha256": data.sha256, "format": data.fmt}},
    )
    typer.echo(result.format_summary())


def _evaluate_step(splits: Any, model_dir: Path, base_model: str, out_dir: Path, device: str | None) -> None:
    from dupq.evaluation import evaluate

    _say("3. evaluate on the held-out test split: fine-tuned vs zero-shot vs TF-IDF")
    report = evaluate(
        model_dir,
        splits.test,
        base_model=base_model,
        train_pairs=splits.train,
        dev_pairs=splits.dev,
        out_dir=out_dir / "report",
        device=device,
    )
    typer.echo(report.format_table())


def _verifier_step(splits: Any, model_dir: Path, out_dir: Path, device: str | None) -> Path:
    from dupq.augment import augment_pairs
    from dupq.card import MATCH_POINT
    from dupq.verifier import train_verifier

    # The cosine alone merges near-misses ("reverse a list / a string in Python"); the verifier reads
    # the same encoder's token vectors and decides, trained on the train split plus generated near-misses.
    _say("4. verifier: a second stage over the fine-tuned encoder's token vectors (near-miss augmented)")
    verifier_dir = out_dir / "verifier"
    train = augment_pairs(splits.train, seed=42).drop(columns=["augment"])
    v = train_verifier(train, splits.dev, verifier_dir, encoder=model_dir, device=device, show_progress=False)
    best = v.card.point(MATCH_POINT) or {}
    typer.echo(
        f"{len(train)} training pairs ({len(train) - len(splits.train)} generated near-misses); head "
        f"{v.head.kind}; dev threshold {v.threshold:.3f} (best F1 {best.get('f1', float('nan')):.3f})"
    )
    return verifier_dir


def _dedupe_step(data_dir: Path, out_dir: Path, base_model: str, device: str | None) -> tuple[Path, Any]:
    from dupq.dedupe import deduplicate

    _say(
        "5. dedupe data/sample_questions.csv with the defaults: the stock encoder finds candidates, "
        "the shipped verifier decides"
    )
    deduped = out_dir / "sample_questions.deduped.csv"
    dd = deduplicate(
        data_dir / "sample_questions.csv",
        text_column="question",
        id_column="id",
        model=base_model,
        threshold="auto",
        out=deduped,
        pairs_out=out_dir / "sample_questions.pairs.csv",
        summary_out=out_dir / "sample_questions.summary.json",
        workdir=out_dir / "dedupe_work",
        device=device,
        show_progress=False,
    )
    typer.echo(dd.summary.format())
    typer.echo("largest duplicate groups:")
    for group in dd.groups("question")[:5]:
        typer.echo("  - " + "\n    ".join(group[:4]))
    return deduped, dd.read()


def _matcher_step(rows: Any, base_model: str, out_dir: Path, device: str | None) -> Any:
    from dupq.matcher import Matcher
    from dupq.verifier.choose import describe

    _say("6. Matcher() with its defaults: index the sample questions (the rows with text), ask new ones")
    keep = rows[rows["status"] != "empty"]
    matcher = Matcher(base_model, device=device)
    matcher.add(keep["question"].tolist(), ids=keep["id"].astype(int).tolist())
    store = matcher.save(out_dir / "store", overwrite=True)  # a rerun replaces it
    typer.echo(f"{len(matcher)} questions indexed (of {len(rows)} rows; blank rows skipped)")
    typer.echo(f"decisions by {describe(matcher.verifier)}, backend {matcher.embedder.backend}")
    for query in QUERIES:
        typer.echo(f"\nQ: {query}")
        for m in matcher.match(query, k=3):
            flag = "DUPLICATE" if m.is_duplicate else "         "
            p = "  -  " if m.probability is None else f"{m.probability:.2f}"
            typer.echo(f"  {flag} P(dup)={p} cos={m.similarity:.3f} by {m.decided_by:<8} [{m.id}] {m.text}")
    return store
