"""The one encode path every part of dupq uses (training evaluation, Matcher, dedupe, benchmarks).

Encoding is where nearly all the time goes, so the cheap wins are taken here once:

* exact-duplicate texts are encoded once and the vector is copied back to every occurrence;
* texts are sorted by token length so that each batch pads to a similar length (less wasted work);
* inference runs under ``torch.inference_mode`` (and fp16/bf16 autocast on CUDA);
* results come back as float32, L2-normalised, **in input order** — so cosine similarity is a dot
  product and FAISS inner-product indexes work directly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm.auto import tqdm

from dupq.encoder import embedding_dim, load_encoder, model_fingerprint, model_source

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

#: How many batches are sent to the backend per call (progress granularity).
_BATCHES_PER_CALL = 8


class Embedder:
    """Turns questions into unit-length vectors with one model and one backend.

    ``model`` may be a loaded ``SentenceTransformer``, a model directory or id, or ``None`` for the
    embedded default. ``backend`` is ``"torch"`` (default) or an accelerated runtime registered in
    :mod:`dupq.backends` (e.g. ``"onnx"``, ``"onnx-int8"``).
    """

    def __init__(
        self,
        model: SentenceTransformer | str | Path | None = None,
        *,
        device: str | None = None,
        batch_size: int = 64,
        backend: str = "torch",
    ) -> None:
        if model is None or isinstance(model, (str, Path)):
            model = load_encoder(model, device=device)
        self.model = model
        self.batch_size = batch_size
        self.backend = backend
        self._run_batch = self._make_runner(backend)

    # -- public API -------------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        """Embedding dimension."""
        return embedding_dim(self.model)

    @property
    def fingerprint(self) -> str:
        """sha256 of the model weights + vocabulary (see :func:`dupq.encoder.model_fingerprint`)."""
        return model_fingerprint(self.model)

    @property
    def source(self) -> str | None:
        """Directory the model was loaded from, if known."""
        return model_source(self.model)

    @property
    def max_seq_length(self) -> int:
        return int(self.model.max_seq_length)

    def token_lengths(self, texts: Sequence[str]) -> np.ndarray:
        """Number of tokens of each text, before truncation (used to sort and to report truncation)."""
        tok = self.model.tokenizer
        if not texts:
            return np.zeros(0, dtype=np.int64)
        enc = tok(list(texts), add_special_tokens=True, truncation=False, return_attention_mask=False)
        return np.fromiter((len(ids) for ids in enc["input_ids"]), dtype=np.int64, count=len(texts))

    def encode(
        self,
        texts: Sequence[str],
        *,
        batch_size: int | None = None,
        show_progress: bool = False,
        desc: str = "encoding",
    ) -> np.ndarray:
        """Encode ``texts`` into a ``(len(texts), dim)`` float32 array of unit vectors, in input order."""
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"text {i} is {type(t).__name__}, not str")
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        unique, inverse = _unique(texts)
        order = np.argsort(-_approx_lengths(self, unique), kind="stable")
        unique_vecs = np.empty((len(unique), self.dim), dtype=np.float32)
        bs = batch_size or self.batch_size
        step = bs * _BATCHES_PER_CALL
        with tqdm(total=len(unique), desc=desc, unit="q", disable=not show_progress) as bar:
            for start in range(0, len(unique), step):
                idx = order[start : start + step]
                vecs = self._run_batch([unique[i] for i in idx], bs)
                unique_vecs[idx] = vecs
                bar.update(len(idx))
        _normalise_inplace(unique_vecs)
        out[:] = unique_vecs[inverse]
        return out

    def encode_iter(
        self, texts: Sequence[str], *, chunk_size: int = 8192, **kwargs
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(start, vectors)`` chunks: for streaming into a memory-mapped array."""
        for start in range(0, len(texts), chunk_size):
            yield start, self.encode(texts[start : start + chunk_size], **kwargs)

    # -- backends ---------------------------------------------------------------------------------
    def _make_runner(self, backend: str) -> Callable[[list[str], int], np.ndarray]:
        if backend == "torch":
            return self._torch_batch
        from dupq import backends

        return backends.make_runner(self, backend)

    def _torch_batch(self, texts: list[str], batch_size: int) -> np.ndarray:
        import torch

        device = str(self.model.device)
        autocast = (
            torch.autocast("cuda", dtype=torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
            if device.startswith("cuda")
            else contextlib.nullcontext()
        )
        with torch.inference_mode(), autocast:
            emb = self.model.encode(
                texts,
                batch_size=batch_size,
                convert_to_numpy=True,
                normalize_embeddings=False,
                show_progress_bar=False,
            )
        return np.asarray(emb, dtype=np.float32)


def _unique(texts: list[str]) -> tuple[list[str], np.ndarray]:
    """Unique texts (first-seen order) and, for each input, the index of its unique text."""
    index: dict[str, int] = {}
    inverse = np.empty(len(texts), dtype=np.int64)
    for i, t in enumerate(texts):
        inverse[i] = index.setdefault(t, len(index))
    return list(index), inverse


def _approx_lengths(embedder: Embedder, texts: list[str]) -> np.ndarray:
    """Token lengths when the tokenizer is fast (it is, for every HF encoder we load); else chars."""
    try:
        return embedder.token_lengths(texts)
    except Exception:  # a slow or exotic tokenizer: characters are a fine proxy for sorting
        return np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))


def _normalise_inplace(vecs: np.ndarray) -> None:
    norms = np.linalg.norm(vecs, axis=1, keepdims=True)
    np.divide(vecs, np.maximum(norms, 1e-12), out=vecs)


def as_embedder(encoder: Embedder | SentenceTransformer | str | Path | None, **kwargs) -> Embedder:
    """Accept whatever a user passes as "the encoder" and return an :class:`Embedder`."""
    if isinstance(encoder, Embedder):
        return encoder
    return Embedder(encoder, **kwargs)
