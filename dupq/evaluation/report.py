"""The whole evaluation: every system on the same pairs, thresholds chosen the same way, report files."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dupq.embed import Embedder, as_embedder
from dupq.encoder import check_threshold
from dupq.errors import EncoderLoadError, InputError, StoreError
from dupq.evaluation.calibration import Calibration, best_f1_threshold, calibrate
from dupq.evaluation.metrics import QuestionSet, check_pairs, classification_metrics, retrieval_from_vectors
from dupq.evaluation.records import EvaluationReport, SystemResult
from dupq.evaluation.scorers import (
    FINE_TUNED,
    TFIDF,
    ZERO_SHOT,
    EmbeddingScorer,
    Scorer,
    TfidfScorer,
    pair_dot,
)

logger = logging.getLogger(__name__)

# Threshold provenance labels (shown in reports).
SRC_ARGUMENT = "given"
SRC_METADATA = "dupq.json (dev-calibrated at training)"
SRC_DEV = "calibrated on dev"
SRC_EVAL = "best F1 on the evaluated pairs (optimistic)"


def evaluate(
    model: Any,
    pairs: pd.DataFrame,
    *,
    threshold: float | None = None,
    calibration: Calibration | dict[str, Any] | None = None,
    baselines: Sequence[str] = (TFIDF, ZERO_SHOT),
    base_model: Any = None,
    train_pairs: pd.DataFrame | None = None,
    dev_pairs: pd.DataFrame | None = None,
    out_dir: str | Path | None = None,
    plots: bool = True,
    name: str | None = None,
    device: str | None = None,
    batch_size: int | None = None,
    show_progress: bool = False,
    data_info: dict[str, Any] | None = None,
) -> EvaluationReport:
    """Evaluate ``model`` on ``pairs`` against the TF-IDF and zero-shot baselines; optionally write a report.

    ``model`` is a model directory / id, a ``SentenceTransformer`` or an :class:`~dupq.embed.Embedder`.
    Its threshold is, by precedence: ``threshold`` (or ``calibration``) > the model's ``dupq.json``
    > calibrated on ``dev_pairs`` > best F1 on ``pairs`` (optimistic, flagged in the notes).
    Each baseline gets its own threshold chosen the same way (on ``dev_pairs`` when given), so the
    comparison is fair. The zero-shot baseline is ``base_model``, else ``dupq.json``'s ``base_model``,
    else skipped with a note. TF-IDF is fitted on ``train_pairs``' questions when given.

    With ``out_dir``, writes ``report.json``, ``report.md`` and (``plots=True``) PNG plots there.
    ``data_info`` (where the pairs came from) is recorded in the report as is.
    """
    t_start = time.perf_counter()
    unknown = set(baselines) - {TFIDF, ZERO_SHOT}
    if unknown:
        raise InputError(f"unknown baseline(s) {sorted(unknown)}; choose from {[TFIDF, ZERO_SHOT]}")
    qs = QuestionSet.from_pairs(pairs)
    dev_qs = QuestionSet.from_pairs(dev_pairs) if dev_pairs is not None and len(dev_pairs) else None
    if dev_qs is not None and dev_qs.labels.min() == dev_qs.labels.max():
        raise InputError("dev pairs hold one class only: cannot calibrate thresholds on them")
    embedder = model if isinstance(model, Embedder) else Embedder(model, device=device)
    if batch_size:
        embedder.batch_size = batch_size
    source = embedder.source
    meta = _read_meta(source)
    notes: list[str] = []
    if source and not meta:
        notes.append(
            "the evaluated model has no dupq.json (not a dupq training output): 'fine-tuned' is simply "
            "the evaluated model."
        )

    student = meta.get("kind") == "student"
    if student:
        kind = (meta.get("student") or {}).get("kind", "?")
        notes.append(
            f"the evaluated model is a {kind} student distilled from {meta.get('base_model')} (dupq "
            "distill), not fine-tuned on pairs: 'fine-tuned' names the evaluated model, and the zero-shot "
            "baseline is its teacher."
        )
    fixed = _fixed_threshold(threshold, calibration, meta)
    vectors: dict[str, np.ndarray] = {}
    scores: dict[str, np.ndarray] = {}
    model_desc = source or type(embedder.model).__name__
    ft_scorer = EmbeddingScorer(embedder, name=FINE_TUNED, show_progress=show_progress)
    run = functools.partial(
        _evaluate_system, qs=qs, dev_qs=dev_qs, vectors=vectors, scores=scores, notes=notes
    )
    systems = [run(ft_scorer, model_desc, fixed=fixed)]
    if TFIDF in baselines:
        tfidf = _tfidf_scorer(train_pairs, notes)
        result = run(tfidf, "TF-IDF cosine, word 1-2-grams, sublinear tf")
        result.description += f", fitted on {tfidf.fitted_on}"
        systems.append(result)
    if ZERO_SHOT in baselines:
        base = _load_base(base_model, meta, source, embedder, device, notes)
        if base is not None:
            base_scorer = EmbeddingScorer(base, name=ZERO_SHOT, show_progress=show_progress)
            what = "the teacher" if student else "not fine-tuned"
            systems.append(run(base_scorer, f"{base.source or base_model} ({what})"))

    report = _assemble(qs, dev_qs, train_pairs, systems, notes, source, name, data_info)
    if out_dir is not None:
        write_report(report, out_dir, qs=qs, vectors=vectors, scores=scores, plots=plots)
    logger.info("evaluation finished in %.1fs", time.perf_counter() - t_start)
    return report


def _assemble(
    qs: QuestionSet,
    dev_qs: QuestionSet | None,
    train_pairs: pd.DataFrame | None,
    systems: list[SystemResult],
    notes: list[str],
    source: str | None,
    name: str | None,
    data_info: dict[str, Any] | None,
) -> EvaluationReport:
    """The report over every system, with a note when a threshold was chosen on the evaluated pairs."""
    if any(s.threshold_source == SRC_EVAL for s in systems):
        optimistic = [s.name for s in systems if s.threshold_source == SRC_EVAL]
        notes.append(
            f"threshold chosen on the evaluated pairs for {', '.join(optimistic)} (no dev pairs given): "
            "their F1/precision/recall/accuracy are optimistic; "
            "AP, ROC-AUC and retrieval are unaffected."
        )

    n_clusters = int(np.sum(np.bincount(qs.cluster) > 1))
    return EvaluationReport(
        name=name or _default_name(source),
        n_pairs=len(qs.labels),
        n_positive=int(qs.labels.sum()),
        n_questions=len(qs.qids),
        n_queries=int(np.sum(qs.cluster_sizes > 1)),
        n_clusters=n_clusters,
        systems=systems,
        notes=notes,
        model=source,
        data={
            **(data_info or {}),
            "dev pairs": len(dev_qs.labels) if dev_qs is not None else 0,
            "train pairs (TF-IDF fit)": len(train_pairs) if train_pairs is not None else 0,
        },
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )


def _fixed_threshold(
    threshold: float | None, calibration: Calibration | dict[str, Any] | None, meta: dict[str, Any]
) -> tuple[Calibration | None, float, str] | None:
    """The fine-tuned model's threshold when it is not to be chosen on data: given > ``dupq.json``."""
    if calibration is not None:
        cal = calibration if isinstance(calibration, Calibration) else Calibration.from_dict(calibration)
        return cal, cal.threshold if threshold is None else check_threshold(threshold), SRC_ARGUMENT
    if threshold is not None:
        return None, check_threshold(threshold), SRC_ARGUMENT
    if meta.get("threshold") is not None:
        try:
            cal = Calibration.from_dict(meta)
        except StoreError:
            cal = None
        return cal, float(meta["threshold"]), SRC_METADATA
    return None


def _tfidf_scorer(train_pairs: pd.DataFrame | None, notes: list[str]) -> TfidfScorer:
    """TF-IDF fitted on the train questions, else (with a note) on the evaluated ones."""
    if train_pairs is not None and len(train_pairs):
        train_qs = check_pairs(train_pairs)
        tfidf = TfidfScorer(pd.concat([train_qs["question1"], train_qs["question2"]]).tolist())
        tfidf.fitted_on = f"train questions ({len(tfidf.vectorizer.vocabulary_)} terms)"
        return tfidf
    notes.append(
        "TF-IDF was fitted on the evaluated questions (no train pairs given): its IDF saw the "
        "test questions (label-free, but transductive)."
    )
    return TfidfScorer()


def _evaluate_system(
    scorer: Scorer,
    description: str,
    *,
    qs: QuestionSet,
    dev_qs: QuestionSet | None,
    vectors: dict[str, Any],
    scores: dict[str, np.ndarray],
    notes: list[str],
    fixed: tuple[Calibration | None, float, str] | None = None,
) -> SystemResult:
    """Score one system: encode the split's questions once, derive pair scores and retrieval from them."""
    t0 = time.perf_counter()
    vecs = scorer.question_vectors(qs.texts)
    s = pair_dot(vecs, qs.t1, qs.t2)
    cal: Calibration | None
    if fixed is not None:
        cal, thr, src = fixed
    elif dev_qs is not None:
        dev_scores = pair_dot(scorer.question_vectors(dev_qs.texts), dev_qs.t1, dev_qs.t2)
        cal = calibrate(dev_scores, dev_qs.labels)
        thr, src = cal.threshold, SRC_DEV
    else:
        thr, src, cal = best_f1_threshold(s, qs.labels)[0], SRC_EVAL, None
    metrics = classification_metrics(s, qs.labels, thr)
    if qs.labels.min() != qs.labels.max():
        metrics["best_f1"] = best_f1_threshold(s, qs.labels)[1]  # the ceiling any threshold could reach
    if cal is not None:
        p = cal.probability(s)
        metrics["brier"] = float(np.mean((p - qs.labels) ** 2))
    retrieval = retrieval_from_vectors(vecs[qs.qid_text], qs.cluster)
    vectors[scorer.name] = vecs
    scores[scorer.name] = s
    return SystemResult(
        name=scorer.name,
        description=description,
        threshold=float(thr),
        threshold_source=src,
        classification=metrics,
        retrieval=retrieval,
        calibration=cal.to_dict() if cal is not None else None,
        seconds=time.perf_counter() - t0,
    )


def _read_meta(source: str | None) -> dict[str, Any]:
    if not source:
        return {}
    from dupq.card import ModelCard

    card = ModelCard.read(source)
    return card.to_dict() if card is not None else {}


def _load_base(
    base_model: Any,
    meta: dict[str, Any],
    source: str | None,
    embedder: Embedder,
    device: str | None,
    notes: list[str],
) -> Embedder | None:
    """The un-fine-tuned base encoder, or None (with a note saying why it was skipped)."""
    from dupq.encoder import load_encoder

    if base_model is None:
        base_model = meta.get("base_model")
        if base_model is None:
            notes.append("zero-shot baseline skipped: no base model given and none recorded in dupq.json.")
            return None
        from_meta = True
    else:
        from_meta = False
    if isinstance(base_model, (Embedder,)):
        return base_model
    if not isinstance(base_model, (str, Path)):
        return as_embedder(base_model)
    dev = device or str(embedder.model.device)
    try:
        base = Embedder(load_encoder(base_model, device=dev), batch_size=embedder.batch_size)
    except EncoderLoadError as exc:
        if not from_meta:
            raise
        notes.append(
            f"zero-shot baseline skipped: the base model recorded in dupq.json cannot be loaded ({exc})."
        )
        return None
    if source and base.source and Path(base.source) == Path(source):
        notes.append("zero-shot baseline skipped: the base model is the evaluated model itself.")
        return None
    return base


def _default_name(source: str | None) -> str:
    return Path(source).name if source else "model"


def write_report(
    report: EvaluationReport,
    out_dir: str | Path,
    *,
    qs: QuestionSet | None = None,
    vectors: dict[str, Any] | None = None,
    scores: dict[str, np.ndarray] | None = None,
    plots: bool = True,
) -> dict[str, str]:
    """Write the plots (when data is given), then ``report.md`` and ``report.json`` (each atomically).

    The paths land in ``report.files``; ``report.json`` is written last so that its presence means
    the report is complete.
    """
    from dupq.io import atomic_write_json, atomic_write_text

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    if plots and qs is not None and scores:
        from dupq.evaluation.plots import write_plots

        files.update(write_plots(report, out, qs, vectors or {}, scores))
    files["report.md"] = str(out / "report.md")
    files["report.json"] = str(out / "report.json")
    report.files = files
    atomic_write_text(out / "report.md", report.to_markdown())
    atomic_write_json(out / "report.json", report.to_dict())
    return files


def load_eval_data(
    data: str | Path, *, split: str = "test", fmt: str | None = None
) -> tuple[pd.DataFrame, pd.DataFrame | None, pd.DataFrame | None, dict[str, Any]]:
    """``(pairs, train_pairs, dev_pairs, info)`` from a split directory or a pair file.

    A split directory (written by ``Splits.save``, e.g. ``MODEL/splits`` after ``dupq train``)
    gives the chosen split plus train (TF-IDF fit) and dev (baseline calibration); a single pair
    file is evaluated as is.
    """
    path = Path(data)
    if path.is_dir():
        from dupq.pairdata import pairs_from_tsv

        if split not in ("train", "dev", "test"):
            raise InputError(f"unknown split {split!r}; choose train, dev or test", file=path)
        files = {name: path / f"{name}.tsv" for name in ("train", "dev", "test")}
        if not files[split].exists():
            raise InputError(
                f"a split directory needs {split}.tsv (as written by dupq data split)", file=path
            )
        frames = {n: pairs_from_tsv(p) if p.exists() else None for n, p in files.items()}
        pairs = frames[split]
        train = frames["train"] if split != "train" else None
        dev = frames["dev"] if split != "dev" else None
        return pairs, train, dev, {"data": str(path), "split": split}
    from dupq.data import load_pairs

    loaded = load_pairs(path, fmt=fmt or "auto")
    info: dict[str, Any] = {"data": str(path), "format": loaded.fmt, "input rows": loaded.n_input_rows}
    if loaded.issues:
        # excluded rows are reported, never silently dropped
        info["rows excluded"] = ", ".join(f"{k}: {v}" for k, v in loaded.issue_counts().items())
    return loaded.pairs, None, None, info
