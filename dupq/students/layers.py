"""The ``layers`` student: the teacher with every other transformer layer, taught to give its vectors.

Encoding cost is almost all transformer layers, so half the layers is about twice the speed. Dropping
layers from a trained model (not training a small one from scratch) keeps the embeddings, the
tokenizer, the pooling and most of what the kept layers learnt; a short MSE fit on the teacher's
vectors of the user's own questions repairs the rest (the recipe of DistilBERT and of
sentence-transformers' model-distillation example).
"""

from __future__ import annotations

import copy
import logging
import time
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from dupq.errors import DupqError

logger = logging.getLogger(__name__)

#: Where BERT-like models keep their stack of layers (BERT, RoBERTa, MPNet, XLM-R: ``encoder.layer``;
#: DistilBERT: ``transformer.layer``; ModernBERT and decoder-style encoders: ``layers``).
LAYER_PATHS = ("encoder.layer", "transformer.layer", "layers", "encoder.layers")


def _layer_list(auto_model: Any) -> tuple[str, Any]:
    """``(path, ModuleList)`` of the transformer's layer stack, or a :class:`DupqError` naming the type."""
    import torch

    for path in LAYER_PATHS:
        obj = auto_model
        for part in path.split("."):
            obj = getattr(obj, part, None)
        if isinstance(obj, torch.nn.ModuleList) and len(obj) > 0:
            return path, obj
    raise DupqError(
        f"cannot find the layer stack of {type(auto_model).__name__} (looked for "
        f"{', '.join(LAYER_PATHS)}); the layers student supports BERT-like encoders — "
        "use --kind static for this model"
    )


def kept_layers(n: int) -> list[int]:
    """Every other layer of ``n``, always including the last (its output is what pooling sees, so the
    student starts closest to the teacher's space): 6 -> [1, 3, 5], 12 -> [1, 3, …, 11], 1 -> [0]."""
    return sorted(range(n - 1, -1, -2))


def halve_layers(teacher: Any) -> tuple[Any, dict[str, Any]]:
    """A deep copy of the SentenceTransformer ``teacher`` keeping :func:`kept_layers` of its transformer."""
    import torch

    student = copy.deepcopy(teacher)
    first = student[0]
    auto_model = getattr(first, "auto_model", None) or getattr(first, "model", None)
    if auto_model is None:
        raise DupqError(
            f"the teacher's first module is {type(first).__name__}, not a transformer; "
            "the layers student needs one (use --kind static)"
        )
    path, layers = _layer_list(auto_model)
    keep = kept_layers(len(layers))
    if len(layers) < 2:
        raise DupqError(f"the teacher has {len(layers)} transformer layer; nothing to halve")
    new = torch.nn.ModuleList([layers[i] for i in keep])
    parent = auto_model
    *head, last = path.split(".")
    for part in head:
        parent = getattr(parent, part)
    setattr(parent, last, new)
    for i, layer in enumerate(new):  # attention caches index layers by position
        for module in layer.modules():
            if hasattr(module, "layer_idx"):
                module.layer_idx = i
    config = auto_model.config
    for attr in ("num_hidden_layers", "n_layers", "num_layers"):
        if hasattr(config, attr):
            setattr(config, attr, len(keep))
    if hasattr(config, "layer_types") and isinstance(config.layer_types, list):
        config.layer_types = [config.layer_types[i] for i in keep]
    return student, {"teacher_layers": len(layers), "kept_layers": keep, "layer_path": path}


def fit_mse(
    student: Any,
    texts: list[str],
    targets: np.ndarray,
    *,
    epochs: float,
    batch_size: int,
    learning_rate: float,
    seed: int,
    show_progress: bool = True,
    desc: str = "distilling",
) -> dict[str, Any]:
    """Train ``student`` so that its unit vectors of ``texts`` match ``targets`` (mean squared error).

    A plain loop (AdamW, linear decay after a 10 % warm-up): the trainer's machinery (evaluation,
    checkpoints) buys nothing for a regression onto fixed vectors and costs a dataset copy. Dropout
    stays off (the model is fitted in eval mode): the targets are the teacher's deterministic vectors
    and the student is used without dropout, so dropout would only add noise to a short fit.
    """
    import torch

    device = student.device
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    steps_per_epoch = max(1, int(np.ceil(len(texts) / batch_size)))
    total = max(1, int(np.ceil(steps_per_epoch * epochs)))
    opt = torch.optim.AdamW([p for p in student.parameters() if p.requires_grad], lr=learning_rate)
    warm = max(1, total // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm)))
    )
    target = torch.from_numpy(np.ascontiguousarray(targets, dtype=np.float32))
    student.eval()  # no dropout (see above); gradients flow all the same
    losses: list[float] = []
    t0 = time.perf_counter()
    order = np.zeros(0, dtype=np.int64)
    with tqdm(total=total, desc=desc, unit="step", disable=not show_progress) as bar:
        for _ in range(total):
            if len(order) < batch_size:
                order = np.concatenate([order, rng.permutation(len(texts))])
            idx, order = order[:batch_size], order[batch_size:]
            features = model_features(student, [texts[i] for i in idx])
            features = {k: v.to(device) if hasattr(v, "to") else v for k, v in features.items()}
            emb = torch.nn.functional.normalize(student(features)["sentence_embedding"], dim=-1)
            loss = torch.nn.functional.mse_loss(emb, target[idx].to(device))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
            bar.update(1)
            bar.set_postfix(mse=f"{np.mean(losses[-20:]):.2e}")
    student.eval()
    return {
        "steps": total,
        "seconds": round(time.perf_counter() - t0, 2),
        "texts_per_second": round(total * batch_size / max(time.perf_counter() - t0, 1e-9), 1),
        "train_mse_first": losses[0],
        "train_mse_last": float(np.mean(losses[-max(1, min(20, total // 5)) :])),
    }


def model_features(model: Any, texts: list[str]) -> dict[str, Any]:
    """The model's input features for ``texts`` (``preprocess`` in sentence-transformers 6, which
    deprecates the older ``tokenize``)."""
    fn = getattr(model, "preprocess", None) or model.tokenize
    return fn(texts)
