"""The ``static`` student: a Model2Vec table of one vector per token, averaged — no transformer at all.

Model2Vec (``pip install 'dupq[distill]'``) passes every token of the teacher's vocabulary through the
teacher once, reduces the outputs with PCA and weights them by token frequency (SIF); a question's
vector is then the mean of its tokens' rows. Encoding is a table look-up, hundreds of times cheaper
than a transformer, at a cost in quality (word order and context are gone). dupq saves it as a
sentence-transformers directory with one ``StaticEmbedding`` module, so every dupq command loads it
like any other model.

``tune``: the distilled table is then fitted to the teacher on the user's questions. The table lives
in its own (PCA-rotated, possibly smaller) space, so it cannot regress onto the teacher's vectors
directly; it is fitted to reproduce the teacher's **cosine matrix** within each batch (MSE between the
two models' in-batch similarity matrices), which is what duplicate detection uses and which is
invariant to rotation and dimension.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from dupq.errors import DupqError
from dupq.students.layers import model_features

logger = logging.getLogger(__name__)


def static_embedding_cls() -> type:
    """sentence-transformers' ``StaticEmbedding`` (its import path moved in version 6)."""
    try:
        from sentence_transformers.sentence_transformer.modules import StaticEmbedding
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers.models import StaticEmbedding
    return StaticEmbedding


def is_static(model: Any) -> bool:
    """True for a SentenceTransformer whose first module is a ``StaticEmbedding`` (a table, no layers)."""
    first = next(iter(model.children()), None) if hasattr(model, "children") else None
    return type(first).__name__ == "StaticEmbedding"


def distill_static(teacher: Any, *, pca_dims: int | None, device: str) -> tuple[Any, dict[str, Any]]:
    """A ``SentenceTransformer([StaticEmbedding])`` distilled from ``teacher``'s transformer and tokenizer.

    Calls ``model2vec.distill.distill_from_model`` on the loaded teacher (not on a path): it works
    for any model dupq loads, offline, whatever folder layout the teacher has.
    """
    try:
        from model2vec.distill import distill_from_model
    except ImportError as exc:
        raise DupqError(
            "the static student needs Model2Vec's distillation: pip install 'dupq[distill]' "
            f"({exc.__class__.__name__}: {exc})"
        ) from None
    from sentence_transformers import SentenceTransformer

    first = teacher[0]
    auto_model = getattr(first, "auto_model", None)
    if auto_model is None or is_static(teacher):
        raise DupqError(
            f"the teacher's first module is {type(first).__name__}; a static student is distilled from "
            "a transformer"
        )
    dims = auto_model.config.hidden_size
    if pca_dims is not None and pca_dims > dims:
        raise DupqError(f"--pca-dims {pca_dims} is more than the teacher's {dims} dimensions")
    t0 = time.perf_counter()
    m2v = distill_from_model(
        model=auto_model, tokenizer=teacher.tokenizer, pca_dims=pca_dims, device=device, quantize_to="float32"
    )
    weights = static_embedding_cls()._fold_model2vec_weights(
        m2v.embedding, getattr(m2v, "token_mapping", None), getattr(m2v, "weights", None)
    )
    module = static_embedding_cls()(m2v.tokenizer, embedding_weights=weights.float())
    model = SentenceTransformer(modules=[module], device=device)
    info = {
        "pca_dims": pca_dims,
        "vocabulary": int(weights.shape[0]),
        "dim": int(weights.shape[1]),
        "model2vec_seconds": round(time.perf_counter() - t0, 2),
        "model2vec_version": _version("model2vec"),
    }
    return model, info


def fit_similarities(
    student: Any,
    texts: list[str],
    targets: np.ndarray,
    *,
    epochs: float,
    batch_size: int,
    learning_rate: float,
    seed: int,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Fit the static table so that in-batch cosines match the teacher's (``targets``: its unit vectors)."""
    import torch

    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    total = max(1, int(np.ceil(np.ceil(len(texts) / batch_size) * epochs)))
    opt = torch.optim.Adam([p for p in student.parameters() if p.requires_grad], lr=learning_rate)
    target = torch.from_numpy(np.ascontiguousarray(targets, dtype=np.float32))
    student.train()
    losses: list[float] = []
    t0 = time.perf_counter()
    order = np.zeros(0, dtype=np.int64)
    with tqdm(total=total, desc="tuning static", unit="step", disable=not show_progress) as bar:
        for _ in range(total):
            if len(order) < batch_size:
                order = np.concatenate([order, rng.permutation(len(texts))])
            idx, order = order[:batch_size], order[batch_size:]
            features = model_features(student, [texts[i] for i in idx])
            emb = torch.nn.functional.normalize(student(features)["sentence_embedding"], dim=-1)
            t = target[idx]
            loss = torch.nn.functional.mse_loss(emb @ emb.T, t @ t.T)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
            bar.update(1)
            bar.set_postfix(mse=f"{np.mean(losses[-20:]):.2e}")
    student.eval()
    return {
        "objective": "MSE of in-batch cosine matrices (student vs teacher)",
        "steps": total,
        "seconds": round(time.perf_counter() - t0, 2),
        "train_mse_first": losses[0],
        "train_mse_last": float(np.mean(losses[-max(1, min(20, total // 5)) :])),
    }


def _version(module: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(module)
    except PackageNotFoundError:
        return None
