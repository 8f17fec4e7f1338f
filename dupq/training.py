"""Fine-tuning the Siamese encoder on question pairs (``dupq train`` / ``dupq.train``).

Built on ``SentenceTransformerTrainer`` so users get its machinery (schedules, checkpoints,
TensorBoard, multi-GPU) while dupq adds what duplicate detection needs on top:

* leakage-free component splits (a question never sits in two splits — random pair splits leak on QQP);
* dev evaluation every N steps with early stopping on dev average precision, best checkpoint kept;
* a decision threshold calibrated on dev (best F1) and a Platt-scaled ``P(duplicate)``, stored in
  ``dupq.json`` next to the model so that the Matcher and dedupe use the same operating point;
* provenance: base model, loss and hyper-parameters, sha256 of the inputs, split sizes.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from dupq.card import DEDUPE_POINT, ModelCard, decision_fields
from dupq.encoder import embedding_dim, load_encoder, resolve_device
from dupq.errors import InputError
from dupq.losses import LossSpec, build_datasets, build_loss
from dupq.trainpairs import augmented, frame_fingerprint, with_extra_pairs

if TYPE_CHECKING:
    from dupq.pairdata import PairData, Splits

logger = logging.getLogger(__name__)

_with_extra_pairs = with_extra_pairs  # its name before dupq.trainpairs (tests/test_dedupe_decisions.py)

#: Average-precision points a fine-tuned model may lose against its base model, on dev or on a
#: general set, before ``train`` warns: a model that gains in-domain and loses elsewhere regressed.
FORGETTING_TOLERANCE = 0.01

#: The dev metric early stopping and best-checkpoint selection watch (sentence-transformers'
#: BinaryClassificationEvaluator named "dev", cosine similarity, average precision).
BEST_METRIC = "eval_dev_cosine_ap"


@dataclass
class TrainConfig:
    """Every knob of a training run; stored verbatim in ``dupq.json``."""

    base_model: str = "default"
    loss: str = "mnrl"
    margin: float = 0.5
    distance: str = "cosine"
    epochs: float = 1.0
    max_steps: int = -1
    batch_size: int = 32
    learning_rate: float = 2e-5
    warmup_ratio: float = 0.1
    lr_scheduler: str = "linear"
    weight_decay: float = 0.01
    max_seq_length: int | None = 128
    eval_steps: int | None = None
    patience: int | None = 3
    seed: int = 42
    device: str | None = None
    tensorboard: bool = True
    save_total_limit: int = 2
    show_progress: bool = True

    def loss_spec(self) -> LossSpec:
        return LossSpec(name=self.loss, margin=self.margin, distance=self.distance)


@dataclass
class TrainResult:
    """What a training run produced: where the model is and how it did on dev."""

    model_dir: Path
    metadata: dict[str, Any]
    dev_loss_before: float | None
    dev_loss_after: float | None
    best_dev_ap: float | None
    train_seconds: float
    steps: int
    history: list[dict[str, Any]] = field(default_factory=list)

    def format_summary(self) -> str:
        cal = self.metadata.get("calibration", {})
        lines = [
            f"model written to   {self.model_dir}",
            f"steps              {self.steps} in {self.train_seconds:.1f}s",
            f"dev loss           {_fmt(self.dev_loss_before)} -> {_fmt(self.dev_loss_after)}",
            f"best dev AP        {_fmt(self.best_dev_ap)}",
            f"threshold (dev F1) {_fmt(self.metadata.get('threshold'))} (dev F1 {_fmt(cal.get('f1'))})",
        ]
        p90 = ModelCard.from_dict(self.metadata).point(DEDUPE_POINT)
        if p90:
            lines.append(
                f"precision 0.90 at {_fmt(p90['threshold'])} (dev recall {_fmt(p90['recall'])}, dedupe)"
            )
        if self.metadata.get("kind") == "verifier":
            lines.insert(
                1,
                f"verifier head      {self.metadata['verifier']['head']} (dev AP by head: "
                f"{self.metadata['verifier']['dev_average_precision']})",
            )
        for name, f in self.metadata.get("forgetting", {}).items():
            lines.append(
                f"AP on {name:<12} {_fmt(f['base_ap'])} -> {_fmt(f['ap'])} (zero-shot -> fine-tuned)"
            )
        return "\n".join(lines)


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def _dev_evaluator(dev_pairs: pd.DataFrame, config: TrainConfig) -> Any:
    """Average precision of the cosine on the dev pairs: what early stopping and the best checkpoint use."""
    from sentence_transformers.evaluation import BinaryClassificationEvaluator

    return BinaryClassificationEvaluator(
        dev_pairs["question1"].tolist(),
        dev_pairs["question2"].tolist(),
        dev_pairs["label"].astype(int).tolist(),
        name="dev",
        batch_size=max(config.batch_size, 64),
        similarity_fn_names=["cosine"],
        write_csv=False,
    )


def _training_args(config: TrainConfig, spec: LossSpec, device: str, n_train: int, checkpoints: Path) -> Any:
    """The trainer's arguments: steps, evaluation cadence, best-checkpoint selection, precision, sampler."""
    from sentence_transformers import SentenceTransformerTrainingArguments
    from sentence_transformers.training_args import BatchSamplers, MultiDatasetBatchSamplers

    steps_per_epoch = max(1, math.ceil(n_train / config.batch_size))
    total_steps = config.max_steps if config.max_steps > 0 else math.ceil(steps_per_epoch * config.epochs)
    eval_steps = config.eval_steps or max(1, min(500, total_steps // 5))
    use_cuda = device.startswith("cuda")
    bf16 = False
    if use_cuda:
        import torch

        bf16 = torch.cuda.is_bf16_supported()

    return SentenceTransformerTrainingArguments(
        output_dir=str(checkpoints),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        **_warmup(config.warmup_ratio),
        lr_scheduler_type=config.lr_scheduler,
        weight_decay=config.weight_decay,
        seed=config.seed,
        data_seed=config.seed,
        batch_sampler=BatchSamplers.NO_DUPLICATES
        if spec.needs_no_duplicates_sampler
        else BatchSamplers.BATCH_SAMPLER,
        multi_dataset_batch_sampler=MultiDatasetBatchSamplers.ROUND_ROBIN,
        eval_strategy="steps",
        eval_steps=eval_steps,
        save_strategy="steps",
        save_steps=eval_steps,
        save_total_limit=config.save_total_limit,
        load_best_model_at_end=True,
        metric_for_best_model=BEST_METRIC,
        greater_is_better=True,
        logging_steps=max(1, eval_steps // 2),
        report_to=["tensorboard"] if config.tensorboard else "none",
        use_cpu=not use_cuda,
        bf16=use_cuda and bf16,
        fp16=use_cuda and not bf16,
        disable_tqdm=not config.show_progress,
        dataloader_num_workers=0,
    )


def _fit(
    model: Any,
    args: Any,
    train_ds: Any,
    dev_ds: Any,
    loss: Any,
    evaluator: Any,
    config: TrainConfig,
    out_dir: Path,
    resume_from_checkpoint: str | bool | None,
) -> tuple[Any, Any, float, float | None, float | None]:
    """Run the trainer: ``(trainer, output, seconds, dev loss before, dev loss after)``."""
    from sentence_transformers import SentenceTransformerTrainer

    callbacks = []
    if config.patience:
        callbacks.append(_early_stopping(config.patience))

    with _env("TENSORBOARD_LOGGING_DIR", str(out_dir / "tensorboard")):
        trainer = SentenceTransformerTrainer(
            model=model,
            args=args,
            train_dataset=train_ds,
            eval_dataset=dev_ds,
            loss=loss,
            evaluator=evaluator,
            callbacks=callbacks,
        )
        before = None if resume_from_checkpoint else _dev_loss(trainer.evaluate())
        t0 = time.perf_counter()
        output = trainer.train(resume_from_checkpoint=resume_from_checkpoint)
        seconds = time.perf_counter() - t0
        after = _dev_loss(trainer.evaluate())
    return trainer, output, seconds, before, after


def train_model(
    train_pairs: pd.DataFrame,
    dev_pairs: pd.DataFrame,
    out_dir: str | Path,
    config: TrainConfig | None = None,
    *,
    resume_from_checkpoint: str | bool | None = None,
    extra_metadata: dict[str, Any] | None = None,
    general_pairs: dict[str, pd.DataFrame] | None = None,
) -> TrainResult:
    """Fine-tune ``config.base_model`` on canonical pairs; write the model and ``dupq.json`` to ``out_dir``.

    ``train_pairs``/``dev_pairs`` are canonical pair frames (``question1, question2, label`` …), normally
    the train/dev parts of :func:`dupq.data.split_pairs`. ``resume_from_checkpoint`` is a checkpoint
    directory, or ``True`` for the latest one under ``out_dir/checkpoints``. ``general_pairs`` are
    labelled pair sets from other domains (name -> frame): the model is compared with its base on them
    and on dev, and a loss of more than :data:`FORGETTING_TOLERANCE` AP is warned about and recorded.
    """
    config = config or TrainConfig()
    spec = config.loss_spec()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if len(train_pairs) == 0:
        raise InputError("no training pairs")
    if len(dev_pairs) == 0 or dev_pairs["label"].nunique() < 2:
        raise InputError(
            "the dev split needs both duplicate and non-duplicate pairs (for AP and the threshold)"
        )

    device = resolve_device(config.device)
    _seed_everything(config.seed)
    model = load_encoder(config.base_model, device=device, max_seq_length=config.max_seq_length)

    train_ds = build_datasets(train_pairs, spec, seed=config.seed)
    dev_ds = build_datasets(dev_pairs, spec, seed=config.seed)
    loss = build_loss(model, spec)
    evaluator = _dev_evaluator(dev_pairs, config)
    n_train = len(train_ds) if not isinstance(train_ds, dict) else max(len(d) for d in train_ds.values())
    args = _training_args(config, spec, device, n_train, out_dir / "checkpoints")
    trainer, output, seconds, before, after = _fit(
        model, args, train_ds, dev_ds, loss, evaluator, config, out_dir, resume_from_checkpoint
    )
    history = [h for h in trainer.state.log_history if BEST_METRIC in h or "loss" in h]
    best_ap = trainer.state.best_metric
    model = trainer.model
    model.save(str(out_dir))

    metadata: dict[str, Any] = {
        "format_version": 1,
        "dupq_version": _version(),
        "base_model": config.base_model,
        "loss": asdict(spec),
        "config": asdict(config),
        "embedding_dim": embedding_dim(model),
        **_operating_point(model, dev_pairs),
        "split_sizes": {"train": int(len(train_pairs)), "dev": int(len(dev_pairs))},
        "data_fingerprint": {"train": frame_fingerprint(train_pairs), "dev": frame_fingerprint(dev_pairs)},
        "training": {
            "steps": int(output.global_step),
            "seconds": round(seconds, 2),
            "pairs_per_second": round(output.global_step * config.batch_size / max(seconds, 1e-9), 2),
            "best_dev_ap": best_ap,
            "best_checkpoint": trainer.state.best_model_checkpoint,
            "dev_loss_before": before,
            "dev_loss_after": after,
            "device": device,
        },
    }
    metadata["forgetting"] = forgetting_check(
        config.base_model, model, {"dev": dev_pairs, **(general_pairs or {})}, device=device
    )
    if extra_metadata:
        metadata.update(extra_metadata)
    ModelCard.from_dict(metadata).write(out_dir)
    return TrainResult(
        model_dir=out_dir,
        metadata=metadata,
        dev_loss_before=before,
        dev_loss_after=after,
        best_dev_ap=best_ap,
        train_seconds=seconds,
        steps=int(output.global_step),
        history=history,
    )


def train(
    data: str | Path | PairData | Splits,
    out_dir: str | Path,
    *,
    fmt: str = "auto",
    dev: float = 0.1,
    test: float = 0.1,
    max_train_pairs: int | None = None,
    resume_from_checkpoint: str | bool | None = None,
    kind: str = "bi-encoder",
    augment: str | None = None,
    verifier_head: str = "auto",
    general: Sequence[str | Path] = (),
    extra_pairs: Sequence[str | Path] = (),
    **config: Any,
) -> TrainResult:
    """The whole job behind ``dupq train``: read → validate → component split → fine-tune → calibrate.

    ``data`` is a pair file (any format :func:`dupq.data.load_pairs` reads), a ``PairData``, or ready
    ``Splits`` (e.g. a split directory loaded with ``Splits.load``). The splits are saved under
    ``out_dir/splits`` so that ``dupq evaluate`` scores exactly the held-out questions.
    ``kind`` is ``bi-encoder`` (fine-tune the Siamese encoder) or ``verifier`` (fit the second-stage
    verifier over ``base_model``'s token vectors, :mod:`dupq.verifier`). ``augment="near-miss"`` adds
    generated hard negatives and noise positives to the train split only (:mod:`dupq.augment`).
    ``general`` names labelled pair files from other domains to check for forgetting (see
    :func:`train_model`). ``extra_pairs`` names more labelled pair files for the train split only —
    e.g. the review marks a dedupe report exports — see :func:`dupq.trainpairs.with_extra_pairs`.
    ``config`` holds :class:`TrainConfig` fields.
    """
    from dupq.data import load_pairs, split_pairs
    from dupq.pairdata import PairData, Splits

    cfg = TrainConfig(**config)
    sources: dict[str, Any] = {}
    if isinstance(data, (str, Path)) and Path(data).is_dir():
        data = Splits.load(data)
    if isinstance(data, (str, Path)):
        data = load_pairs(data, fmt=fmt)
    if isinstance(data, PairData):
        sources = {
            "source": data.source,
            "sha256": data.sha256,
            "format": data.fmt,
            "issues": len(data.issues),
            # every row read is either in a split or excluded with a reason: the two add up to input_rows
            "input_rows": int(data.n_input_rows),
            "excluded_rows": len(data.rows_with_issues),
        }
        if data.issues:
            logger.warning("%s", data.report())
        splits = split_pairs(data.pairs, dev=dev, test=test, seed=cfg.seed)
    else:
        splits = data
    if kind not in ("bi-encoder", "verifier"):
        raise InputError(f"unknown kind {kind!r}; choose bi-encoder or verifier", column="kind")
    train_pairs = splits.train
    if max_train_pairs is not None and len(train_pairs) > max_train_pairs:
        train_pairs = train_pairs.sample(n=max_train_pairs, random_state=cfg.seed)
    extra: dict[str, Any] = {
        "data": sources,
        "split_summary": splits.summary(),
        "split_sizes": {k: int(len(getattr(splits, k))) for k in ("train", "dev", "test")},
    }
    if extra_pairs:
        train_pairs, extra["extra_pairs"] = with_extra_pairs(train_pairs, splits, extra_pairs)
    if augment is not None:
        train_pairs, extra["augment"] = augmented(train_pairs, augment, cfg.seed)
    if kind == "verifier":
        return _train_verifier(train_pairs, splits, out_dir, cfg, verifier_head, extra)
    splits.save(Path(out_dir) / "splits")
    return train_model(
        train_pairs,
        splits.dev,
        out_dir,
        cfg,
        resume_from_checkpoint=resume_from_checkpoint,
        extra_metadata=extra,
    )


def _train_verifier(
    train_pairs: pd.DataFrame,
    splits: Splits,
    out_dir: str | Path,
    cfg: TrainConfig,
    head: str,
    extra: dict[str, Any],
) -> TrainResult:
    """``dupq train --kind verifier``: the verifier over ``cfg.base_model``, its splits saved beside it."""
    from dupq.verifier import train_verifier
    from dupq.verifier.cross import CROSS_TYPE, train_cross_verifier

    t0 = time.perf_counter()
    common = {"seed": cfg.seed, "device": cfg.device, "show_progress": cfg.show_progress}
    if head == CROSS_TYPE:  # both questions in one pass, started from the base model's transformer
        verifier = train_cross_verifier(
            train_pairs,
            splits.dev,
            out_dir,
            encoder=cfg.base_model,
            epochs=cfg.epochs,
            batch_size=cfg.batch_size,
            learning_rate=cfg.learning_rate,
            max_length=cfg.max_seq_length or 128,
            extra_metadata=extra,
            **common,
        )
    else:
        verifier = train_verifier(
            train_pairs,
            splits.dev,
            out_dir,
            encoder=cfg.base_model,
            head=head,
            extra_metadata=extra,
            **common,
        )
    splits.save(Path(out_dir) / "splits")
    meta = verifier.metadata
    return TrainResult(
        model_dir=Path(out_dir),
        metadata=meta,
        dev_loss_before=None,
        dev_loss_after=None,
        best_dev_ap=max(meta["verifier"]["dev_average_precision"].values()),
        train_seconds=time.perf_counter() - t0,
        steps=int(meta.get("training", {}).get("steps", 0)),
    )


def _operating_point(model: Any, dev_pairs: pd.DataFrame) -> dict[str, Any]:
    """Threshold, Platt P(duplicate) and the named operating points, calibrated on dev with the *best*
    model (what ``dupq.json`` carries so that the Matcher and dedupe decide alike)."""
    from dupq.embed import Embedder
    from dupq.evaluation.calibration import calibrate, operating_points
    from dupq.evaluation.scorers import pair_similarities

    scores = pair_similarities(Embedder(model), dev_pairs)
    labels = dev_pairs["label"].to_numpy()
    cal = calibrate(scores, labels).to_dict()
    return decision_fields(cal["threshold"], cal, operating_points(scores, labels))


def forgetting_check(
    base_model: str, model: Any, sets: dict[str, pd.DataFrame], *, device: str | None = None
) -> dict[str, dict[str, Any]]:
    """AP of the base model and of the fine-tuned ``model`` on each labelled set; warns on a loss."""
    from sklearn.metrics import average_precision_score

    from dupq.embed import Embedder
    from dupq.evaluation import pair_similarities

    base = Embedder(load_encoder(base_model, device=device))
    tuned = Embedder(model)
    out: dict[str, dict[str, Any]] = {}
    for name, pairs in sets.items():
        if len(pairs) == 0 or pairs["label"].nunique() < 2:
            continue
        y = pairs["label"].to_numpy()
        before = float(average_precision_score(y, pair_similarities(base, pairs)))
        after = float(average_precision_score(y, pair_similarities(tuned, pairs)))
        forgot = after < before - FORGETTING_TOLERANCE
        out[name] = {"base_ap": before, "ap": after, "delta": after - before, "forgot": forgot}
        if forgot:
            logger.warning(
                "fine-tuning lost %.3f AP on %s (%.4f -> %.4f, tolerance %.2f): the model got worse there",
                before - after,
                name,
                before,
                after,
                FORGETTING_TOLERANCE,
            )
    return out


def _dev_loss(metrics: dict[str, float]) -> float | None:
    """The dev loss (summed over tasks for multi-task training)."""
    if "eval_loss" in metrics:
        return float(metrics["eval_loss"])
    parts = [v for k, v in metrics.items() if k.startswith("eval_") and k.endswith("_loss")]
    return float(sum(parts)) if parts else None


def _warmup(ratio: float) -> dict[str, float]:
    """transformers 5 takes the warm-up share as a float ``warmup_steps``; 4.x as ``warmup_ratio``."""
    import transformers

    if int(transformers.__version__.split(".")[0]) >= 5:
        return {"warmup_steps": float(ratio)}
    return {"warmup_ratio": ratio}


def _early_stopping(patience: int):
    """Early stopping on dev AP that stays quiet on multi-task evaluations.

    With several dev sets (multi-task training) the trainer evaluates them one by one and the AP
    evaluator reports with the first only; the stock callback warns on the others. The merged
    metrics still drive best-checkpoint selection.
    """
    from transformers import EarlyStoppingCallback

    class _Quiet(EarlyStoppingCallback):
        def on_evaluate(self, args, state, control, metrics, **kwargs):
            if BEST_METRIC in metrics:
                super().on_evaluate(args, state, control, metrics, **kwargs)

    return _Quiet(early_stopping_patience=patience)


def _seed_everything(seed: int) -> None:
    from transformers import set_seed

    set_seed(seed)


@contextlib.contextmanager
def _env(key: str, value: str):
    old = os.environ.get(key)
    os.environ[key] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old


def _version() -> str:
    from dupq._version import __version__

    return __version__
