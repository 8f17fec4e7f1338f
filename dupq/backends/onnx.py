"""The ONNX backends: the same model exported to ONNX and run with onnxruntime.

Why: on a CPU, plain PyTorch spends much of its time in framework overhead and fp32 matmuls. The
same transformer exported to ONNX runs faster in onnxruntime (fused kernels, no autograd machinery),
and dynamically quantised to int8 weights it runs faster still, with embeddings that stay within a
fraction of a percent (cosine) of the fp32 model.

How it is kept safe:

* the export is **local** (``torch.onnx.export`` of the loaded model: nothing is downloaded, and
  ``optimum`` — which would pin older transformers/sentence-transformers — is not needed);
* mean/CLS/max pooling is part of the exported graph, so the runtime returns sentence vectors;
* the exported file is **cached** next to the model (``<model_dir>/onnx/``; when that is not
  writable, ``~/.cache/dupq/onnx/<fingerprint>/``), named by the model fingerprint so a changed
  model is exported again, never served from a stale file;
* every export is **verified** against the torch model on a fixed probe set of questions (mean
  cosine ≥ :data:`MIN_MEAN_COSINE`, min cosine ≥ :data:`MIN_MIN_COSINE`); a file that disagrees is
  deleted and a :class:`~dupq.errors.DupqError` says so.

Backends here: ``onnx`` (fp32) and ``onnx-int8`` (dynamic int8 quantisation, per-channel QInt8
weights). Install the runtime with ``pip install dupq[onnx]``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dupq.backends.registry import ONNX_BACKENDS
from dupq.backends.torch import model_input_names
from dupq.encoder import model_fingerprint, model_source
from dupq.errors import DupqError
from dupq.io import atomic_path, atomic_write_json
from dupq.runtime import physical_cores
from dupq.vectors import l2_normalize

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)

#: Bump when the export recipe changes, so caches written by an older dupq are rebuilt.
#: 2: the graph also returns the token vectors (``token_embeddings``) for the verifier.
#: 3: traced with eager attention (see :func:`eager_attention`).
EXPORT_VERSION = 3
#: Export is refused below these cosines (exported vs torch embeddings on :data:`PROBE_QUESTIONS`).
MIN_MEAN_COSINE = 0.99
MIN_MIN_COSINE = 0.95
#: Environment variable that overrides where exports are cached (else next to the model).
CACHE_ENV = "DUPQ_ONNX_CACHE"

#: Fixed, varied probe set (short and long, several domains, typos) for export verification.
PROBE_QUESTIONS = (
    "How do I learn Python quickly?",
    "What is the best way to learn programming?",
    "How can I lose weight fast without dieting?",
    "Why is the sky blue?",
    "Which laptop should I buy for data science under $1000?",
    "Can I drink alcohol while taking antibiotics like amoxicillin?",
    "What are the early symptoms of diabetes in adults?",
    "How do I get a tourist visa for Japan from India?",
    "Is it safe to eat raw eggs?",
    "What's the difference between a virus and a bacterium?",
    "how to fix error 0x80070005 when installing windows updates",
    "Where can I find a good dentist in Doha?",
    "Who will win the next football world cup?",
    "How do I improve my English speaking skills?",
    "What should I do if my dog eats chocolate?",
    "Is bitcoin a good investment in the long run or just a bubble that will burst?",
    "how r u",
    "What is the meaning of life?",
    "I have had a headache for three days, my neck is stiff and I feel feverish. "
    "Should I see a doctor right away or wait for it to pass?",
    "Which is better for a beginner: Java or C++? I want to get into competitive programming "
    "and eventually work as a software engineer at a big company.",
    "How can I stop procrastinating?",
    "What are good books on machine learning for someone with a math background?",
    "Why do onions make you cry?",
    "How long does it take to recover from a broken wrist?",
    "How do I reset my iPhone to factory settings?",
    "Best places to visit in Europe in winter?",
    "What causes hair loss in young men and can it be reversed?",
    "How do you cook rice in a microwave?",
    "Qual é a capital do Brasil?",
    "Wie lerne ich am besten Deutsch?",
    "What is 2 + 2?",
    "x",
)


def _require_onnxruntime():
    try:
        import onnxruntime
    except ImportError as exc:
        raise DupqError(
            "the onnx backends need onnxruntime and onnx: pip install 'dupq[onnx]' (or use --backend torch)"
        ) from exc
    return onnxruntime


# -- model structure ------------------------------------------------------------------------------
def _pooling_mode(model: SentenceTransformer) -> str:
    """The pooling of a Transformer → Pooling (→ Normalize) model; other layouts are refused.

    Only these layouts are exported because the pooling has to be rebuilt in the graph; a model with
    extra modules (Dense, …) would silently lose them.
    """
    modules = list(model.children())
    names = [type(m).__name__ for m in modules]
    if (
        len(modules) < 2
        or names[0] != "Transformer"
        or names[1] != "Pooling"
        or any(n != "Normalize" for n in names[2:])
    ):
        raise DupqError(
            f"the onnx backends support Transformer → Pooling (→ Normalize) models; this one is "
            f"{' → '.join(names)}. Use --backend torch."
        )
    mode = modules[1].pooling_mode
    if not isinstance(mode, str):
        mode = mode[0] if len(mode) == 1 else "+".join(mode)
    mode = {"mean_tokens": "mean", "cls_token": "cls", "max_tokens": "max"}.get(mode, mode)
    if mode not in ("mean", "cls", "max"):
        raise DupqError(
            f"the onnx backends support mean, cls or max pooling, not {mode!r}; use --backend torch"
        )
    if getattr(modules[1], "include_prompt", True) is False:
        logger.info("include_prompt=False is irrelevant here: dupq encodes without prompts")
    return mode


def _pooled_module(model: SentenceTransformer, mode: str):
    """A ``torch.nn.Module`` (input_ids, attention_mask[, token_type_ids]) → (pooled, token vectors).

    The token vectors are a second output of the same pass: the late-interaction verifier reads them,
    and a caller that asks only for the pooled output (the Embedder) does not pay for copying them.
    """
    import torch

    auto_model = model[0].auto_model

    class _Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = auto_model

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
            if token_type_ids is not None:
                kwargs["token_type_ids"] = token_type_ids
            hidden = self.model(**kwargs).last_hidden_state
            if mode == "cls":
                return hidden[:, 0], hidden
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            if mode == "max":
                return (hidden - (1.0 - mask) * 1e9).max(dim=1).values, hidden
            return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9), hidden

    return _Pooled().eval()


# -- cache ----------------------------------------------------------------------------------------
def _writable(directory: Path) -> bool:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".dupq-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
        return True
    except OSError:
        return False


def cache_dir(model: SentenceTransformer) -> Path:
    """Where a model's exports live: ``$DUPQ_ONNX_CACHE/<fp>``, ``<model_dir>/onnx``, or ``~/.cache``.

    Next to the model is preferred (the export travels and is deleted with it); a read-only model
    directory (a system-wide install, a mounted volume) falls back to the user's cache.
    """
    fp = model_fingerprint(model)
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser() / fp[:16]
    src = model_source(model)
    if src and Path(src).is_dir():
        local = Path(src) / "onnx"
        if _writable(local):
            return local
    return Path.home() / ".cache" / "dupq" / "onnx" / fp[:16]


def exported_path(model: SentenceTransformer, backend: str) -> Path:
    """File name of ``backend``'s export of ``model`` (keyed by the model fingerprint)."""
    fp = model_fingerprint(model)
    return cache_dir(model) / f"dupq-{backend}-{fp[:16]}.onnx"


def _meta_path(path: Path) -> Path:
    return path.with_suffix(".json")


def _cached_ok(path: Path, fingerprint: str, backend: str) -> bool:
    meta = _meta_path(path)
    if not (path.exists() and meta.exists()):
        return False
    try:
        info = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    return (
        info.get("fingerprint") == fingerprint
        and info.get("backend") == backend
        and info.get("export_version") == EXPORT_VERSION
    )


def _remove(*paths: Path) -> None:
    for p in paths:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def _remove_stale(directory: Path, backend: str, keep: Path) -> None:
    """Delete this backend's exports of *other* fingerprints (a retrained model in the same dir).

    Names are matched exactly: ``dupq-onnx-<fp>`` must not match ``dupq-onnx-int8-<fp>`` (it did, so
    each fp32 export deleted the int8 one beside it and the two were re-exported in turn).
    """
    pattern = re.compile(rf"dupq-{re.escape(backend)}-[0-9a-f]{{16}}")
    for old in directory.glob(f"dupq-{backend}-*.onnx"):
        if old != keep and pattern.fullmatch(old.stem):
            _remove(old, _meta_path(old))


# -- export ---------------------------------------------------------------------------------------
def _torch_export(model: SentenceTransformer, path: Path) -> None:
    """Trace the pooled transformer to ONNX (TorchScript exporter: no onnxscript, dynamic axes)."""
    import torch

    mode = _pooling_mode(model)
    names = model_input_names(model)
    device = model.device
    module = _pooled_module(model, mode).to("cpu")
    # A padded batch, so the traced graph keeps the attention-mask path (an unpadded one may skip it).
    enc = model.tokenizer(
        ["how do i learn python quickly and well", "why"], padding=True, return_tensors="pt"
    )
    args = tuple(enc[n] if n in enc else torch.zeros_like(enc["input_ids"]) for n in names)
    dynamic = {n: {0: "batch", 1: "tokens"} for n in names}
    dynamic["sentence_embedding"] = {0: "batch"}
    dynamic["token_embeddings"] = {0: "batch", 1: "tokens"}
    was_training = module.training
    with torch.no_grad(), warnings_silenced(), eager_attention(module.model):
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=names,
            output_names=["sentence_embedding", "token_embeddings"],
            dynamic_axes=dynamic,
            opset_version=17,
            do_constant_folding=True,
            dynamo=False,
        )
    module.train(was_training)
    # The auto_model was moved to CPU for export: put it back where the Embedder runs it.
    model.to(device)


@contextlib.contextmanager
def eager_attention(auto_model):
    """Trace with the model's eager (matmul + softmax) attention, then put its own back.

    Why: transformers' default ``sdpa`` attention traces into a graph with ``IsNaN``/``Select`` guards
    around the softmax, which OpenVINO cannot fuse; the eager graph becomes one fused
    ``ScaledDotProductAttention`` op there, and is faster under onnxruntime too (measured on
    all-MiniLM-L6-v2, real questions, Zen 5: openvino-int8 +12 % median, onnx-int8 +7 %). The maths is
    the same (cosine 1.0 to torch on the probes). Models that cannot switch are traced as they are.
    """
    config = getattr(auto_model, "config", None)
    current = getattr(config, "_attn_implementation", None)
    setter = getattr(auto_model, "set_attn_implementation", None)
    switched = False
    if current not in (None, "eager") and setter is not None:
        try:
            setter("eager")
            switched = getattr(config, "_attn_implementation", None) == "eager"
        except (ValueError, TypeError, ImportError, NotImplementedError) as exc:
            logger.debug("tracing with %s attention: %s", current, exc)
    try:
        yield
    finally:
        if switched:
            setter(current)


@contextlib.contextmanager
def warnings_silenced():
    """Quiet the tracer and quantiser: they warn about things that do not matter here."""
    import warnings

    root = logging.getLogger()
    level = root.level
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        root.setLevel(logging.ERROR)  # onnxruntime.quantization logs through the root logger
        try:
            yield
        finally:
            root.setLevel(level)


def _quantize_int8(src: Path, dst: Path) -> None:
    """Dynamic int8 quantisation: per-channel QInt8 weights, activations quantised at run time.

    Per-channel scales keep the small-norm rows of each weight matrix accurate; full 8-bit range
    (``reduce_range=False``) measured closer to fp32 here (mean cosine 0.993 vs 0.992 on MQP).
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with warnings_silenced():
        quantize_dynamic(
            str(src),
            str(dst),
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=False,
            extra_options={"DefaultTensorType": 1},  # float: for nodes shape inference can't type
        )


def probe_agreement(
    model: SentenceTransformer, path: Path, questions: Sequence[str] = PROBE_QUESTIONS
) -> tuple[float, float]:
    """(mean, min) cosine between the exported model at ``path`` and the torch model on ``questions``."""
    import torch

    with torch.inference_mode():
        ref = model.encode(
            list(questions),
            batch_size=16,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
    runner = OnnxRunner(model, path, device="cpu")
    got = runner(list(questions), 16)
    got = l2_normalize(got)
    cos = np.einsum("ij,ij->i", ref.astype(np.float32), got)
    if not np.all(np.isfinite(cos)):
        return float("nan"), float("nan")
    return float(cos.mean()), float(cos.min())


def export_onnx(model: SentenceTransformer, backend: str = "onnx", *, force: bool = False) -> Path:
    """Export (or reuse the verified cached export of) ``model`` for ``backend``; return the file.

    ``onnx-int8`` is quantised from the (cached) fp32 export. Raises :class:`DupqError` — and leaves
    no file behind — when the export disagrees with the torch model on the probe questions.
    """
    if backend not in ONNX_BACKENDS:
        raise DupqError(f"{backend!r} is not an onnx backend ({', '.join(ONNX_BACKENDS)})")
    _require_onnxruntime()
    fp = model_fingerprint(model)
    path = exported_path(model, backend)
    if not force and _cached_ok(path, fp, backend):
        return path
    if backend == "onnx-int8":
        src = export_onnx(model, "onnx", force=force)
    path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with atomic_path(path) as tmp:
        if backend == "onnx":
            _torch_export(model, tmp)
        else:
            _quantize_int8(src, tmp)
        mean_cos, min_cos = probe_agreement(model, tmp)
        if not (mean_cos >= MIN_MEAN_COSINE and min_cos >= MIN_MIN_COSINE):
            _remove(tmp)
            raise DupqError(
                f"refusing the {backend} export of {model_source(model) or 'the model'}: its embeddings "
                f"disagree with the torch model on {len(PROBE_QUESTIONS)} probe questions (mean cosine "
                f"{mean_cos:.4f} < {MIN_MEAN_COSINE} or min {min_cos:.4f} < {MIN_MIN_COSINE}). "
                "Use --backend torch (or onnx instead of onnx-int8)."
            )
    import onnxruntime

    atomic_write_json(
        _meta_path(path),
        {
            "backend": backend,
            "fingerprint": fp,
            "export_version": EXPORT_VERSION,
            "source": model_source(model),
            "pooling": _pooling_mode(model),
            "inputs": model_input_names(model),
            "probe_mean_cosine": round(mean_cos, 6),
            "probe_min_cosine": round(min_cos, 6),
            "probe_questions": len(PROBE_QUESTIONS),
            "onnxruntime": onnxruntime.__version__,
            "export_seconds": round(time.perf_counter() - t0, 2),
        },
    )
    _remove_stale(path.parent, backend, keep=path)
    logger.info("exported %s to %s (probe cosine mean %.4f, min %.4f)", backend, path, mean_cos, min_cos)
    return path


# -- runtime --------------------------------------------------------------------------------------
def session_options(threads: int | None = None):
    """onnxruntime options for encoder inference: one op at a time, ``threads`` = physical cores.

    (The transformer fusions of ``onnxruntime.transformers.optimizer`` — fused Attention, SkipLayerNorm —
    were measured too: no faster here, before or after int8 quantisation, so the plain export is used.)
    """
    ort = _require_onnxruntime()
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.intra_op_num_threads = threads or physical_cores()
    so.inter_op_num_threads = 1
    # No busy-waiting between ops: with batches of 64 the wake-up cost is negligible, and on a shared
    # machine spinning threads burned ~30 % more CPU for the same (or worse) wall time here.
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return so


def tokenize_np(model: SentenceTransformer, texts: list[str]) -> dict[str, np.ndarray]:
    """One padded batch as numpy ids and mask, truncated to the model's length: how every exported
    runner (ONNX, OpenVINO) and the verifier's token pass tokenise."""
    return model.tokenizer(
        texts,
        padding=True,
        truncation=True,
        max_length=int(model.max_seq_length),
        return_tensors="np",
        return_token_type_ids=False,
    )


def graph_feeds(input_names: Sequence[str], input_ids: np.ndarray, attention_mask: np.ndarray) -> dict:
    """The exported graph's inputs: int64 ids and mask, zero token types where the graph takes them."""
    feeds: dict[str, Any] = {
        "input_ids": np.ascontiguousarray(input_ids, dtype=np.int64),
        "attention_mask": np.ascontiguousarray(attention_mask, dtype=np.int64),
    }
    if "token_type_ids" in input_names:
        feeds["token_type_ids"] = np.zeros_like(feeds["input_ids"])
    return feeds


def encode_batches(runner: Any, texts: list[str], batch_size: int) -> np.ndarray:
    """The generic runner call (texts in, pooled vectors out) over ``runner.run_ids``."""
    out = []
    for start in range(0, len(texts), batch_size):
        enc = tokenize_np(runner.model, texts[start : start + batch_size])
        out.append(runner.run_ids(enc["input_ids"], enc["attention_mask"]))
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


class OnnxRunner:
    """Runs an exported encoder: ``runner(texts, batch_size)`` or ``runner.run_ids(ids, mask)``.

    The :class:`~dupq.embed.Embedder` tokenises once and calls :meth:`run_ids` with length-sorted,
    padded batches; ``__call__`` (texts in, raw pooled vectors out) is the generic runner protocol.
    """

    def __init__(self, model: SentenceTransformer, path: str | Path, *, device: str = "cpu") -> None:
        ort = _require_onnxruntime()
        self.model = model
        self.path = Path(path)
        self.input_names = model_input_names(model)
        providers = ["CPUExecutionProvider"]
        if str(device).startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        self.session = ort.InferenceSession(str(self.path), session_options(), providers=providers)

    def _feeds(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> dict[str, Any]:
        return graph_feeds(self.input_names, input_ids, attention_mask)

    def run_ids(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """Pooled (not normalised) float32 vectors for one padded batch."""
        out = self.session.run(["sentence_embedding"], self._feeds(input_ids, attention_mask))
        return np.asarray(out[0], dtype=np.float32)

    def run_tokens(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(token vectors ``(batch, tokens, dim)``, pooled vectors) for one padded batch, one pass."""
        pooled, tokens = self.session.run(
            ["sentence_embedding", "token_embeddings"], self._feeds(input_ids, attention_mask)
        )
        return np.asarray(tokens, dtype=np.float32), np.asarray(pooled, dtype=np.float32)

    def __call__(self, texts: list[str], batch_size: int) -> np.ndarray:
        return encode_batches(self, texts, batch_size)
