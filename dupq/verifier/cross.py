"""The other verifier kind: a cross-encoder (both questions in one transformer pass).

Why it is here: a cross-encoder lets every token of one question attend to every token of the
other, which is the most expressive pair model there is — published cross-encoders reach AP ~0.88 on
QQP where bi-encoders stay far lower. The price is one full transformer pass *per pair* (nothing can
be cached per question) and, on a CPU with a few thousand labelled pairs, a classifier head that
starts from random. dupq therefore measures it against the late-interaction verifier
(``benchmarks/quora_model.py --verifier-type cross-encoder``) and the recipe keeps whichever has
the higher dev AP; both kinds load through :meth:`dupq.verifier.Verifier.load` and answer the same
``predict`` — the Matcher, ``dupq dedupe`` and ``dupq score`` cannot tell them apart.

A cross-encoder verifier directory holds ``dupq.json`` (``"kind": "verifier"``, ``verifier.type``
``"cross-encoder"``, Platt calibration and operating points on dev) and the model under
``cross-encoder/``. It is initialised from a bi-encoder's transformer (the embedded default model or
any ``dupq train`` output) with a fresh one-logit head, trained with binary cross-entropy.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dupq.card import ModelCard
from dupq.errors import InputError, StoreError
from dupq.io import atomic_dir
from dupq.verifier.base import (
    CalibratedDecision,
    VerifierScores,
    calibrate_on_dev,
    check_pairs,
    verifier_card,
)

logger = logging.getLogger(__name__)

CROSS_TYPE = "cross-encoder"
CROSS_DIR = "cross-encoder"


class CrossVerifier(CalibratedDecision):
    """A trained cross-encoder behind the :class:`~dupq.verifier.Verifier` interface.

    ``predict`` returns :class:`~dupq.verifier.VerifierScores`; ``similarity`` is NaN there (a
    cross-encoder computes no cosine — callers keep the bi-encoder's own).
    """

    def __init__(
        self,
        model: Any,
        card: ModelCard | dict[str, Any],
        *,
        threshold: float | None = None,
        source: str | None = None,
    ) -> None:
        self.model = model
        card = card if isinstance(card, ModelCard) else ModelCard.from_dict(card)
        self._init_decision(card, threshold, source)

    @classmethod
    def load(
        cls, directory: str | Path, card: ModelCard, *, device: str | None, threshold: float | None
    ) -> CrossVerifier:
        """Load the model saved under ``directory/cross-encoder`` (a missing one is a ``StoreError``)."""
        from sentence_transformers.cross_encoder import CrossEncoder

        path = Path(directory) / CROSS_DIR
        if not (path / "config.json").exists():
            raise StoreError(f"{directory} names a cross-encoder verifier but {path} holds no model")
        model = CrossEncoder(str(path), device=device or "cpu", local_files_only=True)
        return cls(model, card, threshold=threshold, source=str(directory))

    def logits(
        self, questions1: Sequence[str], questions2: Sequence[str], *, show_progress: bool = False
    ) -> np.ndarray:
        """Raw logits of every pair, in both orders averaged (a duplicate is symmetric, the model not)."""
        import torch

        q1, q2 = list(questions1), list(questions2)
        if not q1:
            return np.zeros(0)
        kw = {"activation_fn": torch.nn.Identity(), "batch_size": 64, "convert_to_numpy": True}
        ab = self.model.predict(list(zip(q1, q2, strict=True)), show_progress_bar=show_progress, **kw)
        ba = self.model.predict(list(zip(q2, q1, strict=True)), show_progress_bar=False, **kw)
        return (np.asarray(ab, dtype=np.float64) + np.asarray(ba, dtype=np.float64)) / 2

    def probability_from_logits(self, z: np.ndarray) -> np.ndarray:
        """Calibrated P(duplicate) from logits (Platt scaling fitted on dev)."""
        return self.calibrated(z)

    def predict(self, questions1: Sequence[str], questions2: Sequence[str], *, show_progress: bool = False):
        """Score pairs ``(questions1[i], questions2[i])``: P(duplicate) and the decision."""
        if len(questions1) != len(questions2):
            raise InputError(f"{len(questions1)} first questions but {len(questions2)} second questions")
        p = self.probability_from_logits(self.logits(questions1, questions2, show_progress=show_progress))
        return VerifierScores(
            similarity=np.full(len(p), np.nan), probability=p, is_duplicate=p >= self.threshold
        )

    def __repr__(self) -> str:
        return f"CrossVerifier({self.source or 'unsaved'}, threshold={self.threshold:.3f})"


def _transformer_path(encoder: str | Path | None) -> Path:
    """The plain transformer folder of a bi-encoder (the embedded default or a model directory)."""
    from dupq.encoder import DEFAULT_ALIASES, default_model_path

    if encoder is None or str(encoder) in DEFAULT_ALIASES:
        return default_model_path()
    path = Path(encoder)
    if not (path / "config.json").exists():
        raise InputError(f"{path} is not a model directory (no config.json) to start a cross-encoder from")
    return path


def train_cross_verifier(
    train_pairs: pd.DataFrame,
    dev_pairs: pd.DataFrame,
    out_dir: str | Path,
    *,
    encoder: str | Path | None = None,
    epochs: float = 1.0,
    batch_size: int = 32,
    learning_rate: float = 2e-5,
    max_length: int = 128,
    seed: int = 42,
    device: str | None = None,
    show_progress: bool = True,
    extra_metadata: dict[str, Any] | None = None,
) -> CrossVerifier:
    """Train a cross-encoder verifier on labelled pairs; calibrate it on dev; save it to ``out_dir``.

    Each training pair is seen in a random order and scoring averages both orders (the decision must
    not depend on which question came first). The logits are Platt-scaled on dev and the operating
    points chosen there, as for the late-interaction verifier.
    """
    from sentence_transformers.cross_encoder import CrossEncoder

    check_pairs(train_pairs, dev_pairs)
    base = _transformer_path(encoder)
    model = CrossEncoder(
        str(base), num_labels=1, max_length=max_length, device=device or "cpu", local_files_only=True
    )
    t0 = time.perf_counter()
    steps = _fit(model, train_pairs, epochs, batch_size, learning_rate, seed, show_progress)
    train_seconds = time.perf_counter() - t0
    verifier = CrossVerifier(model, {})
    t1 = time.perf_counter()
    z_dev = verifier.logits(dev_pairs["question1"], dev_pairs["question2"], show_progress=show_progress)
    score_seconds = time.perf_counter() - t1
    card = _card(z_dev, dev_pairs["label"].to_numpy().astype(np.int64))
    card.extra.update(
        {
            "encoder_source": str(base),
            "split_sizes": {"train": int(len(train_pairs)), "dev": int(len(dev_pairs))},
            "training": {
                "epochs": epochs,
                "batch_size": batch_size,
                "learning_rate": learning_rate,
                "max_length": max_length,
                "steps": steps,
                "seconds": round(train_seconds, 1),
                "pairs_per_second_train": round(len(train_pairs) * epochs / max(train_seconds, 1e-9), 1),
                "pairs_per_second": round(len(dev_pairs) / max(score_seconds, 1e-9), 1),
                "seed": seed,
            },
        }
    )
    if extra_metadata:
        card = ModelCard.from_dict({**card.to_dict(), **extra_metadata})
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        model.save(str(tmp / CROSS_DIR))
        card.write(tmp)
    return CrossVerifier(model, card, source=str(out_dir))


def _fit(
    model: Any,
    pairs: pd.DataFrame,
    epochs: float,
    batch_size: int,
    learning_rate: float,
    seed: int,
    show_progress: bool,
) -> int:
    """Binary cross-entropy on every pair, its order drawn at random (sentence-transformers' trainer)."""
    from datasets import Dataset
    from sentence_transformers.cross_encoder import CrossEncoderTrainer, CrossEncoderTrainingArguments
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss

    a = pairs["question1"].astype(str).tolist()
    b = pairs["question2"].astype(str).tolist()
    y = pairs["label"].astype(float).tolist()
    rng = np.random.default_rng(seed)
    swap = rng.random(len(a)) < 0.5  # either question first, as people ask them; scoring averages both
    first = [q2 if s else q1 for q1, q2, s in zip(a, b, swap, strict=True)]
    second = [q1 if s else q2 for q1, q2, s in zip(a, b, swap, strict=True)]
    data = Dataset.from_dict({"question1": first, "question2": second, "label": y}).shuffle(seed=seed)
    with tempfile.TemporaryDirectory(prefix="dupq-cross-") as tmp:
        args = CrossEncoderTrainingArguments(
            output_dir=tmp,
            num_train_epochs=epochs,
            per_device_train_batch_size=batch_size,
            learning_rate=learning_rate,
            warmup_steps=0.1,  # a fraction: the warm-up share of all steps
            save_strategy="no",
            report_to="none",
            logging_steps=50,
            seed=seed,
            disable_tqdm=not show_progress,
            use_cpu=model.device.type == "cpu",
        )
        trainer = CrossEncoderTrainer(
            model=model, args=args, train_dataset=data, loss=BinaryCrossEntropyLoss(model)
        )
        result = trainer.train()
    return int(result.global_step)


def _card(z_dev: np.ndarray, y_dev: np.ndarray) -> ModelCard:
    """Platt scaling and operating points on dev, in the same shape as the late-interaction verifier's."""
    from sklearn.metrics import average_precision_score

    platt, points = calibrate_on_dev(z_dev, y_dev)
    return verifier_card(
        {
            "type": CROSS_TYPE,
            "head": CROSS_TYPE,
            "dev_average_precision": {CROSS_TYPE: float(average_precision_score(y_dev, z_dev))},
        },
        platt,
        points,
    )


def is_cross(directory: str | Path) -> bool:
    """Whether a verifier directory holds a cross-encoder (by its model card)."""
    card = ModelCard.read(directory)
    return card is not None and (card.verifier or {}).get("type") == CROSS_TYPE
