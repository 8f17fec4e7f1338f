"""Students: faster encoders distilled from any dupq model (``dupq distill``, :func:`distill_student`).

Not to be confused with :mod:`dupq.distill`, which distils the *verifier* into the bi-encoder (more
training pairs). Here the bi-encoder itself is the teacher and a cheaper model learns to give its
vectors:

* ``layers`` (:mod:`dupq.students.layers`): the teacher with every other transformer layer, fitted to
  the teacher's vectors (MSE) on the user's questions: about twice the encoding speed;
* ``static`` (:mod:`dupq.students.static`): a Model2Vec token table distilled from the teacher
  (optionally tuned on the user's questions): no transformer at encode time.

Either way the output is an ordinary model directory (``Embedder``, ``dupq dedupe --model``,
``Matcher``, ``dupq evaluate``) with a ``dupq.json`` that records the kind, the teacher (path and
fingerprint), the texts it learnt from and **its own thresholds** (:mod:`dupq.students.calibrate`):
a student's cosines are not its teacher's. The directory is written beside ``out`` and renamed into
place at the end, so a failed or killed run never leaves a half-written model at ``out``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dupq.card import ModelCard
from dupq.encoder import embedding_dim, load_encoder, model_fingerprint, model_source
from dupq.errors import InputError
from dupq.students.texts import Texts, read_texts, sample, teacher_texts

logger = logging.getLogger(__name__)

KINDS = ("layers", "static")
#: Texts kept aside (never trained on) to measure how close the student came: at most this many …
CHECK_TEXTS = 1000
#: … and at most this share of the texts.
CHECK_SHARE = 0.1


@dataclass
class DistillConfig:
    """Every knob of a student run; stored verbatim in the student's ``dupq.json``."""

    kind: str = "layers"
    epochs: float = 1.0
    batch_size: int = 32
    learning_rate: float | None = None  # layers 1e-4, static tuning 5e-3
    max_texts: int | None = 20_000
    calibration_texts: int = 5_000
    pca_dims: int | None = 256
    tune: bool = False
    seed: int = 42
    device: str | None = None
    show_progress: bool = True

    def lr(self) -> float:
        if self.learning_rate is not None:
            return self.learning_rate
        return 1e-4 if self.kind == "layers" else 5e-3


@dataclass
class DistillResult:
    """Where the student is and what ``dupq.json`` says about it."""

    model_dir: Path
    metadata: dict[str, Any]
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    def format_summary(self) -> str:
        m, s = self.metadata, self.metadata["student"]
        lines = [
            f"student written to {self.model_dir} ({s['kind']}, teacher {m['teacher']['path']})",
            f"texts              {m['texts']['unique_used']} from {m['texts']['source']}",
            f"threshold          {m['threshold']:.4f} ({m['calibration_method']}; teacher "
            f"{m['teacher']['threshold']:.4f})",
        ]
        check = s.get("check")
        if check and check.get("mse_after") is not None:
            lines.append(
                f"MSE to teacher     {check['mse_before']:.3e} -> {check['mse_after']:.3e} on "
                f"{check['texts']} held-out texts (mean cosine {check['mean_cosine_after']:.4f})"
            )
        if check:
            lines.append(
                f"cosine-matrix MSE  {check['similarity_mse_before']:.3e} -> "
                f"{check['similarity_mse_after']:.3e} (held-out texts, student vs teacher)"
            )
        detail = m.get("calibration_detail", {})
        if "ap_lost" in detail:
            lines.append(
                f"AP on --pairs      teacher {detail['teacher_average_precision']:.4f} -> student "
                f"{detail['average_precision']:.4f}"
            )
        if "two_tier" in m:
            t = m["two_tier"]
            lines.append(
                f"99%-recall cut     {t['candidate_threshold']:.4f} keeps {t['recall']:.3f} of the teacher's "
                f"{t['teacher_duplicates']} duplicate pairs"
            )
        lines.append(f"seconds            {self.seconds:.1f}")
        return "\n".join(lines)


def distill_student(
    teacher: str | Path | None,
    out: str | Path,
    *,
    texts: str | Path | list[str] | None = None,
    text_column: str | None = None,
    pairs: str | Path | None = None,
    **config: Any,
) -> DistillResult:
    """Distil a ``kind`` student of ``teacher`` into ``out`` (the whole job behind ``dupq distill``).

    ``texts`` is a table file (with ``text_column``) or a list of questions; without it the teacher's
    recorded train split is used. ``pairs`` is a labelled pair file (any format
    :func:`dupq.data.load_pairs` reads, e.g. CSV ``question1,question2,is_duplicate``) to calibrate the
    student's threshold on; without it the threshold is the one that best agrees with the teacher.
    ``config`` holds :class:`DistillConfig` fields.
    """
    cfg = DistillConfig(**config)
    if cfg.kind not in KINDS:
        raise InputError(f"unknown student kind {cfg.kind!r}; choose {' or '.join(KINDS)}", column="kind")
    t0 = time.perf_counter()
    teacher_model = load_encoder(teacher, device=cfg.device)
    source = _texts(teacher_model, texts, text_column)
    labelled = _pairs(pairs)
    if source is None and labelled is None:
        raise InputError(
            "no texts to learn from: pass --texts FILE --text-column COL (the teacher has no recorded "
            "train split)"
        )
    if source is None and (cfg.kind == "layers" or cfg.tune):
        raise InputError(
            f"the {cfg.kind} student{' with --tune' if cfg.tune else ''} trains on questions: pass "
            "--texts FILE --text-column COL"
        )
    student, info = _make_student(teacher_model, source, cfg)
    meta = _metadata(teacher_model, student, source, cfg, info)
    meta.update(_calibrate(teacher_model, student, source, labelled, cfg))
    return _save(student, meta, out, time.perf_counter() - t0)


def _texts(teacher: Any, texts: Any, column: str | None) -> Texts | None:
    if texts is None:
        return teacher_texts(model_source(teacher))
    if isinstance(texts, (list, tuple)):
        uniq = list(dict.fromkeys(t.strip() for t in texts if isinstance(t, str) and t.strip()))
        if not uniq:
            raise InputError("no question text in the given list")
        return Texts(uniq, "<list>", None, len(texts), len(texts) - len(uniq))
    if not column:
        raise InputError("--texts needs --text-column (the column holding the questions)", file=texts)
    return read_texts(texts, column)


def _pairs(path: str | Path | None) -> Any:
    if path is None:
        return None
    from dupq.data import load_pairs

    data = load_pairs(path)
    if data.pairs["label"].nunique() < 2:
        raise InputError("--pairs needs both duplicate and non-duplicate pairs to calibrate on", file=path)
    return data.pairs


def _make_student(teacher: Any, source: Texts | None, cfg: DistillConfig) -> tuple[Any, dict[str, Any]]:
    """The trained student and what its training did (layers kept / table size, held-out MSE …)."""
    from dupq.embed import Embedder
    from dupq.encoder import resolve_device

    device = resolve_device(cfg.device)
    train, check = _split(source.texts if source else [], cfg)
    teach = Embedder(teacher)
    if cfg.kind == "layers":
        from dupq.students.layers import fit_mse, halve_layers

        student, info = halve_layers(teacher)
    else:
        from dupq.students.static import distill_static

        student, info = distill_static(teacher, pca_dims=cfg.pca_dims, device=device)
    info["kind"] = cfg.kind
    check_vecs = teach.encode(check) if check else None
    before = _check(student, check, check_vecs) if check else None
    if cfg.kind == "layers" or cfg.tune:
        targets = teach.encode(train, show_progress=cfg.show_progress, desc="teacher vectors")
        common = {"epochs": cfg.epochs, "batch_size": cfg.batch_size, "learning_rate": cfg.lr()}
        common |= {"seed": cfg.seed, "show_progress": cfg.show_progress}
        if cfg.kind == "layers":
            info["training"] = fit_mse(student, train, targets, **common)
        else:
            from dupq.students.static import fit_similarities

            info["training"] = fit_similarities(student, train, targets, **common)
        info["training"]["texts"] = len(train)
    if check:
        after = _check(student, check, check_vecs)
        info["check"] = {"texts": len(check)}
        info["check"] |= {f"{k}_before": v for k, v in before.items()}
        info["check"] |= {f"{k}_after": v for k, v in after.items()}
    return student, info


def _split(texts: list[str], cfg: DistillConfig) -> tuple[list[str], list[str]]:
    """``(train, check)``: a seeded held-out slice to measure the student on, the rest (capped) to train."""
    if len(texts) < 20:
        return list(texts), []
    n_check = min(CHECK_TEXTS, int(len(texts) * CHECK_SHARE))
    perm = np.random.default_rng(cfg.seed).permutation(len(texts))
    check = [texts[i] for i in np.sort(perm[:n_check])]
    train = [texts[i] for i in np.sort(perm[n_check:])]
    return sample(train, cfg.max_texts, cfg.seed), check


def _check(student: Any, texts: list[str], targets: np.ndarray) -> dict[str, float]:
    """Mean squared error and mean cosine of the student's unit vectors against the teacher's.

    Vector MSE and cosine only mean something when both live in one space (the layers student); the
    MSE between the two models' cosine matrices over the texts (``similarity_mse``) is comparable for
    both kinds, since duplicate detection only ever looks at cosines.
    """
    from dupq.embed import Embedder

    vecs = Embedder(student).encode(texts)
    out: dict[str, float | None] = {
        "similarity_mse": float(np.mean((vecs @ vecs.T - targets @ targets.T) ** 2)),
        "mse": None,
        "mean_cosine": None,
    }
    if vecs.shape == targets.shape:
        out["mse"] = float(np.mean((vecs - targets) ** 2))
        out["mean_cosine"] = float(np.mean(np.einsum("ij,ij->i", vecs, targets)))
    return out


def _metadata(
    teacher: Any, student: Any, source: Texts | None, cfg: DistillConfig, info: dict[str, Any]
) -> dict[str, Any]:
    from dupq.encoder import resolve_threshold
    from dupq.training import _version

    src = model_source(teacher)
    threshold, how = resolve_threshold(None, src, warn=False)
    return {
        "format_version": 1,
        "dupq_version": _version(),
        "kind": "student",
        # evaluate's zero-shot baseline is dupq.json's base_model: for a student, its teacher
        "base_model": src,
        "student": info,
        "teacher": {
            "path": src,
            "fingerprint": model_fingerprint(teacher),
            "threshold": threshold,
            "threshold_source": how,
            "kind": ModelCard.read_or_empty(src).kind,
        },
        "texts": source.to_dict() if source else {"source": None, "unique_used": 0},
        "config": asdict(cfg),
        "embedding_dim": embedding_dim(student),
        "fingerprint": model_fingerprint(student),
    }


def _calibrate(
    teacher: Any, student: Any, source: Texts | None, pairs: Any, cfg: DistillConfig
) -> dict[str, Any]:
    """The student's thresholds: on labelled pairs when given, else by agreement with the teacher.

    The 99 %-recall candidate cut of a static student needs texts, so it is computed from them even
    when the threshold itself comes from labelled pairs.
    """
    from dupq.card import DEDUPE_POINT
    from dupq.embed import Embedder
    from dupq.encoder import resolve_threshold
    from dupq.students.calibrate import label_free, labelled

    free = None
    if source is not None:
        src = model_source(teacher)
        points = ModelCard.read_or_empty(src).operating_points
        threshold, _ = resolve_threshold(None, src, warn=False)
        dedupe_t, _ = resolve_threshold(None, src, warn=False, point=DEDUPE_POINT)
        texts = sample(source.texts, cfg.calibration_texts, cfg.seed + 1)
        free = label_free(
            Embedder(teacher).encode(texts),
            Embedder(student).encode(texts),
            threshold,
            points,
            dedupe_threshold=dedupe_t,
        )
        if cfg.kind != "static":
            free.pop("two_tier", None)  # only a static student is cheap enough to be a candidate finder
    if pairs is None:
        return free  # type: ignore[return-value]
    out = labelled(student, teacher, pairs)
    if free is not None:
        out["teacher_agreement"] = free["calibration_detail"]
        if "two_tier" in free:
            out["two_tier"] = free["two_tier"]
    return out


def _save(student: Any, meta: dict[str, Any], out: str | Path, seconds: float) -> DistillResult:
    """Write the model and ``dupq.json`` into a temporary directory beside ``out``, then rename it in."""
    from dupq.io import atomic_dir

    out = Path(out)
    meta["student"]["seconds"] = round(seconds, 2)
    with atomic_dir(out) as tmp:
        student.save(str(tmp))
        ModelCard.from_dict(meta).write(tmp)
    logger.info("student written to %s", out)
    return DistillResult(model_dir=out, metadata=meta, seconds=seconds)


__all__ = ["KINDS", "DistillConfig", "DistillResult", "distill_student"]
