"""The one encode path every part of dupq uses (training evaluation, Matcher, dedupe, benchmarks).

Encoding is where nearly all the time goes, so the cheap wins are taken here once:

* exact-duplicate texts are encoded once and the vector is copied back to every occurrence;
* texts are tokenised **once** (in chunks, ids kept as int32) and sorted by token length so that each
  batch pads to a similar length (less wasted work); batches are padded here and fed straight to the
  model (torch) or to an exported runtime (:mod:`dupq.backends`: ONNX fp32 / int8);
* inference runs under ``torch.inference_mode`` (and fp16/bf16 autocast on CUDA), with intra-op
  threads capped at the physical cores (hyperthreads only add contention to dense matmuls);
* results come back as float32, L2-normalised, **in input order** — so cosine similarity is a dot
  product and FAISS inner-product indexes work directly.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from tqdm.auto import tqdm

from dupq.backends import make_runner, resolve_backend
from dupq.encoder import embedding_dim, load_encoder, model_fingerprint, model_source, token_counts
from dupq.runtime import allowed_cpus, cap_torch_threads
from dupq.vectors import l2_normalize

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

#: ``sink(positions, token_vectors, input_ids, attention_mask)`` of one padded batch (token vectors
#: ``(batch, tokens, dim)``, not normalised; ``positions`` index the texts given to the encode call).
TokenSink = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], None]

#: How many batches are sent to the backend per call (progress granularity).
_BATCHES_PER_CALL = 8
#: Texts tokenised per tokenizer call (bounds the transient Python lists of ids).
_TOKENIZE_CHUNK = 65536
#: Fewest texts worth a tokenising thread of their own.
_MIN_TEXTS_PER_THREAD = 1024
#: ``max_seq_length`` of a model without a length limit (a static token table): nothing is truncated.
UNLIMITED = 2**31 - 1


class Embedder:
    """Turns questions into unit-length vectors with one model and one backend.

    ``model`` may be a loaded ``SentenceTransformer``, a model directory or id, or ``None`` for the
    embedded default. ``backend`` is ``"torch"`` (default) or an accelerated runtime registered in
    :mod:`dupq.backends` (e.g. ``"onnx"``, ``"onnx-int8"``, ``"openvino"``, ``"openvino-int8"``), or
    ``"auto"``: the fastest verified one on this CPU (probed once per model and machine, cached).
    ``calibration``: a sample of the texts that will be encoded — ``openvino-int8`` is post-training
    quantised on them (without them it is weight-only int8), and ``auto`` times the backends on them.
    """

    def __init__(
        self,
        model: SentenceTransformer | str | Path | None = None,
        *,
        device: str | None = None,
        batch_size: int = 64,
        backend: str = "torch",
        calibration: Sequence[str] | None = None,
    ) -> None:
        if model is None or isinstance(model, (str, Path)):
            model = load_encoder(model, device=device)
        self.model = model
        self.batch_size = batch_size
        #: What was asked for (``"auto"`` included) and what runs (``backend``: never ``"auto"``).
        self.requested_backend = backend
        #: The calibration sample (≤ 400 texts) when one matters — handed to Ray actors so that each
        #: quantises exactly as this process did (same sample, same cached IR).
        self.calibration = _calibration_sample(calibration) if backend in ("openvino-int8", "auto") else None
        self.backend = resolve_backend(model, backend, calibration=self.calibration)
        cap_torch_threads(str(model.device))
        runner = make_runner(model, self.backend, calibration=self.calibration)
        self._run_batch: Callable[[list[str], int], np.ndarray] = runner
        self._run_ids: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = runner.run_ids
        #: ``(token vectors, pooled)`` of a padded batch in one pass, where the runner has it.
        self._run_tokens: Callable[..., tuple[np.ndarray, np.ndarray]] | None = getattr(
            runner, "run_tokens", None
        )
        #: False for a runner without padding (a static model's): sorting by length would only cost a
        #: second tokenisation of every text.
        self._length_sorted: bool = getattr(runner, "length_sorted", True)
        #: ``(max_seq_length, copy)``: a private copy of a fast tokenizer's ``tokenizers`` backend that
        #: truncates there (made on first use; ``None`` when it cannot be copied).
        self._backend: tuple[int, Any] | None = None

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
        """Tokens the model reads; :data:`UNLIMITED` for a static model (a token table reads any length)."""
        length = self.model.max_seq_length
        return UNLIMITED if length is None or length == float("inf") else int(length)

    def token_lengths(self, texts: Sequence[str]) -> np.ndarray:
        """Number of tokens of each text, before truncation (used to sort and to report truncation)."""
        return token_counts(self.model.tokenizer, texts)

    def encode(
        self,
        texts: Sequence[str],
        *,
        batch_size: int | None = None,
        show_progress: bool = False,
        desc: str = "encoding",
    ) -> np.ndarray:
        """Encode ``texts`` into a ``(len(texts), dim)`` float32 array of unit vectors, in input order."""
        return self._encode(texts, batch_size, show_progress, desc, flags=False)[0]

    @property
    def keeps_tokens(self) -> bool:
        """Whether :meth:`encode_flagged` can hand each batch's token vectors to a ``token_sink``
        (a runner with a token output and a plain tokenizer path)."""
        return self._run_ids is not None and self._run_tokens is not None

    def encode_flagged(
        self,
        texts: Sequence[str],
        *,
        batch_size: int | None = None,
        show_progress: bool = False,
        desc: str = "encoding",
        token_sink: TokenSink | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`encode`, and per text whether it was truncated (longer than :attr:`max_seq_length`).

        Why not :meth:`token_lengths` beside :meth:`encode`: that tokenises every text a second time
        (single-threaded: ~30 s at 1M questions). Here only the texts whose truncated ids fill the
        limit — the few that may be longer — are tokenised again; a static model truncates nothing.

        ``token_sink(positions, token_vectors, input_ids, attention_mask)``: called per batch with the
        same pass's token vectors (``positions`` index ``texts``; a repeated text comes once), so a
        verifier needs no second pass (:class:`dupq.dedupe.tokens.TokenSpill`). Where the encode path
        has no token output (:attr:`keeps_tokens` false, or a tokenizer without ids) it is not called.
        """
        vectors, flagged = self._encode(texts, batch_size, show_progress, desc, flags=True, sink=token_sink)
        assert flagged is not None
        return vectors, flagged

    def _encode(
        self,
        texts: Sequence[str],
        batch_size: int | None,
        show_progress: bool,
        desc: str,
        *,
        flags: bool,
        sink: TokenSink | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The one encode loop; truncation is looked at only when ``flags`` asks (a text-path runner
        would otherwise tokenise every text again on each plain :meth:`encode`)."""
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"text {i} is {type(t).__name__}, not str")
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out, np.zeros(0, dtype=bool) if flags else None
        unique, inverse = _unique(texts)
        unique_vecs = np.empty((len(unique), self.dim), dtype=np.float32)
        bs = batch_size or self.batch_size
        tokens = self._tokenize(unique) if self._run_ids is not None else None
        with (
            tqdm(total=len(unique), desc=desc, unit="q", disable=not show_progress) as bar,
            _eval_mode(self.model),
        ):
            if tokens is not None and sink is not None and self._run_tokens is not None:
                first = np.empty(len(unique), dtype=np.int64)
                first[inverse[::-1]] = np.arange(len(texts) - 1, -1, -1)  # each unique text's first position
                self._encode_tokens(tokens, bs, unique_vecs, bar, lambda idx, *out: sink(first[idx], *out))
            elif tokens is not None:
                self._encode_tokens(tokens, bs, unique_vecs, bar)
            elif not self._length_sorted:
                self._encode_in_order(unique, bs, unique_vecs, bar)
            else:
                self._encode_texts(unique, bs, unique_vecs, bar)
        l2_normalize(unique_vecs, out=unique_vecs)
        out[:] = unique_vecs[inverse]
        return out, self._truncated(unique, tokens)[inverse] if flags else None

    def _truncated(self, unique: list[str], tokens: _Tokens | None) -> np.ndarray:
        """Per unique text: longer than the model reads? Only candidates are tokenised again."""
        limit = self.max_seq_length
        if limit >= UNLIMITED:
            return np.zeros(len(unique), dtype=bool)
        if tokens is None:
            return self.token_lengths(unique) > limit
        flagged = np.zeros(len(unique), dtype=bool)
        full = np.flatnonzero(tokens.length >= limit)  # at the limit: exactly that long, or cut there
        if len(full):
            flagged[full] = self.token_lengths([unique[i] for i in full.tolist()]) > limit
        return flagged

    # -- the two encode loops ---------------------------------------------------------------------
    def _tokenize(self, texts: list[str]) -> _Tokens | None:
        """Token ids of every text, truncated to ``max_seq_length``, flat int32 + offsets.

        Tokenising once (instead of once to sort and again per batch) and keeping the ids as one
        int32 array (4 bytes a token, not a Python list of ints) keeps a million questions cheap.
        A fast tokenizer's own ``tokenizers`` backend does the work, split over the CPUs
        (:func:`_encode_threaded`).
        """
        encode = self._id_encoder()
        if encode is None:
            return None
        lengths, flats = [], []
        try:
            for start in range(0, len(texts), _TOKENIZE_CHUNK):
                for ids in encode(texts[start : start + _TOKENIZE_CHUNK]):
                    lengths.append(np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids)))
                    flats.append(np.fromiter(itertools.chain.from_iterable(ids), dtype=np.int32))
        except Exception:  # an exotic tokenizer: let the model's own encode handle it
            return None
        length = np.concatenate(lengths)
        offsets = np.zeros(len(length) + 1, dtype=np.int64)
        np.cumsum(length, out=offsets[1:])
        return _Tokens(np.concatenate(flats), offsets, length)

    def _id_encoder(self) -> Callable[[list[str]], Iterator[list[list[int]]]] | None:
        """``encode(texts)``: their truncated ids with special tokens, in order, in one or more pieces;
        ``None`` when there is no tokenizer to call."""
        tok = self.model.tokenizer
        limit = self.max_seq_length  # read each time: a caller may change the model's
        if getattr(tok, "is_fast", False) and hasattr(tok, "backend_tokenizer"):
            if self._backend is None or self._backend[0] != limit:
                try:
                    self._backend = (limit, _truncating_copy(tok, limit))
                except Exception:  # a backend that cannot be copied: the wrapper's call below
                    self._backend = (limit, None)
            if self._backend[1] is not None:
                return functools.partial(_encode_threaded, self._backend[1], allowed_cpus())
        if not callable(tok):
            return None

        def encode(texts: list[str]) -> Iterator[list[list[int]]]:
            yield tok(
                texts,
                add_special_tokens=True,
                truncation=True,
                max_length=limit,
                return_attention_mask=False,
                return_token_type_ids=False,
            )["input_ids"]

        return encode

    def _encode_tokens(self, tokens: _Tokens, bs: int, out: np.ndarray, bar, sink: Any = None) -> None:
        """Longest first, ``bs`` texts a batch, each padded only to its own longest text; with a
        ``sink``, the batch runs through the token output and its token vectors go there."""
        for idx, ids, mask in _padded_batches(tokens, bs, self.model.tokenizer.pad_token_id or 0):
            if sink is None:
                out[idx] = self._run_ids(ids, mask)
            else:
                token_vectors, out[idx] = self._run_tokens(ids, mask)
                sink(idx, token_vectors, ids, mask)
            bar.update(len(idx))

    def _encode_in_order(self, unique: list[str], bs: int, out: np.ndarray, bar) -> None:
        """For a runner that needs no sort (no padding): big chunks in input order, the runner free to
        spread each over threads."""
        for start in range(0, len(unique), _TOKENIZE_CHUNK):
            chunk = unique[start : start + _TOKENIZE_CHUNK]
            out[start : start + len(chunk)] = self._run_batch(chunk, bs)
            bar.update(len(chunk))

    def _encode_texts(self, unique: list[str], bs: int, out: np.ndarray, bar) -> None:
        """Fallback for models without a plain tokenizer: sort, then hand texts to the runner."""
        order = np.argsort(-_approx_lengths(self, unique), kind="stable")
        step = bs * _BATCHES_PER_CALL
        for start in range(0, len(unique), step):
            idx = order[start : start + step]
            out[idx] = self._run_batch([unique[i] for i in idx], bs)
            bar.update(len(idx))


def _truncating_copy(tok: Any, max_length: int) -> Any:
    """A copy of ``tok``'s ``tokenizers`` backend that truncates to ``max_length`` and never pads.

    Why a copy, set once: the transformers wrapper re-sets truncation on its backend at every call — a
    mutation, which makes concurrent calls from threads fail ("Already borrowed"); the copy is only
    read by ``encode_batch``, which many threads may run at once (it releases the GIL).
    """
    from tokenizers import Tokenizer

    own = Tokenizer.from_str(tok.backend_tokenizer.to_str())
    own.no_padding()
    own.enable_truncation(max_length, direction=getattr(tok, "truncation_side", "right"))
    return own


def _encode_threaded(backend: Any, threads: int, texts: list[str]) -> Iterator[list[list[int]]]:
    """``texts``' ids (special tokens added) in order, split over up to ``threads`` threads: dupq keeps
    ``TOKENIZERS_PARALLELISM`` off, so one ``encode_batch`` call would use one core."""

    def piece(part: list[str]) -> list[list[int]]:
        return [e.ids for e in backend.encode_batch(part, add_special_tokens=True)]

    parts = max(1, min(threads, len(texts) // _MIN_TEXTS_PER_THREAD))
    if parts == 1:
        yield piece(texts)
        return
    step = -(-len(texts) // parts)
    with ThreadPoolExecutor(parts) as pool:
        yield from pool.map(piece, [texts[i : i + step] for i in range(0, len(texts), step)])


def _padded_batches(
    tokens: _Tokens, bs: int, pad_id: int
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``(rows, input_ids, attention_mask)`` per batch of ``bs`` texts, longest first, each batch padded
    only to its own longest text."""
    order = np.argsort(-tokens.length, kind="stable")
    for start in range(0, len(order), bs):
        idx = order[start : start + bs]
        lens = tokens.length[idx]
        width = int(lens.max())
        ids = np.full((len(idx), width), pad_id, dtype=np.int64)
        mask = (np.arange(width)[None, :] < lens[:, None]).astype(np.int64)
        for row, i in enumerate(idx):
            ids[row, : lens[row]] = tokens.flat[tokens.offsets[i] : tokens.offsets[i + 1]]
        yield idx, ids, mask


class _Tokens(NamedTuple):
    """Token ids of many texts: text ``i`` is ``flat[offsets[i]:offsets[i + 1]]``."""

    flat: np.ndarray
    offsets: np.ndarray
    length: np.ndarray


@contextlib.contextmanager
def _eval_mode(model) -> Iterator[None]:
    """Dropout off while encoding (evaluation runs mid-training), the caller's mode restored after."""
    was_training = model.training
    if was_training:
        model.eval()
    try:
        yield
    finally:
        if was_training:
            model.train()


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


def _calibration_sample(texts: Sequence[str] | None) -> list[str] | None:
    """The texts a calibrated backend uses, out of all of them (sampled evenly; see
    :func:`dupq.backends.openvino.calibration_split`)."""
    if not texts:
        return None
    from dupq.backends.openvino import calibration_split

    calib, held = calibration_split(texts)
    return calib + held or None


def as_embedder(model: Embedder | SentenceTransformer | str | Path | None, **kwargs) -> Embedder:
    """Accept whatever a user passes as "the encoder" and return an :class:`Embedder`."""
    if isinstance(model, Embedder):
        return model
    return Embedder(model, **kwargs)
