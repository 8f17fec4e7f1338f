"""The encode pass's token vectors, kept in the work directory for the verifier: one transformer pass
per text in a dedupe.

The late-interaction verifier reads each text's token vectors; the bi-encoder computes them anyway on
its way to the pooled vector. When the verifier runs the encoder and backend the encode stage runs
(:func:`shares_pass`: the shipped verifier over the stock encoder on the default backend), the encode
stage hands every batch's token vectors to a :class:`TokenSpill`, which appends them to one float16
file beside the embeddings. The verify stage then reads only the texts of each block of candidate
pairs (:meth:`dupq.verifier.model.Verifier.predict_indexed`), so a text in no candidate pair costs
disk (~10 KB), never memory, and no text is encoded twice. The file is removed once verified.

A text whose vectors were written by an earlier, interrupted run (resumed from the embeddings store)
has none here; the verifier gives those a token pass of their own.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from dupq.verifier.tokens import TokenVectors, unit_token_rows, vocab_masks

logger = logging.getLogger(__name__)

SPILL_FILE = "tokens.f16"


class TokenSpill:
    """Unit token vectors (float16, special tokens dropped) of texts ``0..n-1``, appended to one file
    as the encode pass makes them; text ``i`` is rows ``offset[i]:offset[i] + length[i]``.

    A :class:`~dupq.verifier.tokens.TokenSource` once :meth:`finish` has closed the file: ``sentence``
    gives the texts' pooled unit vectors (the embeddings store's, read per block).
    """

    def __init__(self, directory: Path, n: int, dim: int, tokenizer: Any) -> None:
        self.path = Path(directory) / SPILL_FILE
        self.dim = dim
        self.offset = np.full(n, -1, dtype=np.int64)
        self.length = np.zeros(n, dtype=np.int32)
        self._special, self._content_of = vocab_masks(tokenizer)
        self._content: list[np.ndarray] = []
        self._mask = np.zeros(0, dtype=bool)
        self._rows = 0
        self._fh: Any = open(self.path, "wb")  # noqa: SIM115 - appended to across many encode calls
        self.sentence: Any = None

    # -- writing (the encode stage) --------------------------------------------------------------
    def add(self, uids: np.ndarray, token_vectors: np.ndarray, ids: np.ndarray, attn: np.ndarray) -> None:
        """Append one padded batch's token vectors for texts ``uids`` (a :data:`dupq.embed.TokenSink`)."""
        rows = list(unit_token_rows(token_vectors, ids, attn, self._special, self._content_of))
        blob = np.concatenate([t for t, _ in rows]) if rows else np.zeros((0, self.dim), np.float16)
        lengths = np.fromiter((len(t) for t, _ in rows), dtype=np.int64, count=len(rows))
        starts = self._rows + np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        self._fh.write(np.ascontiguousarray(blob, dtype=np.float16).tobytes())
        self.offset[uids], self.length[uids] = starts, lengths
        if rows:  # one mask array per batch, not per text (a million small arrays cost ~100 MB)
            self._content.append(np.concatenate([m for _, m in rows]))
        self._rows += int(lengths.sum())

    def finish(self, sentence: Any) -> None:
        """Close the file; ``sentence[ids]`` reads the pooled unit vectors of ``ids`` (the store's)."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if self._content:
            self._mask = np.concatenate(self._content)
            self._content = []
        self.sentence = sentence

    def remove(self) -> None:
        """Delete the file (the verify stage is done with it, or the run is over)."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        self.path.unlink(missing_ok=True)

    @property
    def nbytes(self) -> int:
        """Bytes written to the file so far."""
        return self._rows * self.dim * 2

    # -- reading (the verify stage) --------------------------------------------------------------
    def has(self, ids: np.ndarray) -> np.ndarray:
        return self.offset[np.asarray(ids, dtype=np.int64)] >= 0

    def read(self, ids: np.ndarray) -> TokenVectors:
        """The token vectors of ``ids`` as float32, from a mapping opened for this call only (so the
        pages read are not left in the process's RSS)."""
        ids = np.asarray(ids, dtype=np.int64)
        start, length = self.offset[ids].tolist(), self.length[ids].tolist()
        tokens, content = [], []
        if self._rows:
            mm = np.memmap(self.path, dtype=np.float16, mode="r", shape=(self._rows, self.dim))
            try:
                for s, n in zip(start, length, strict=True):
                    tokens.append(mm[s : s + n].astype(np.float32))
                    content.append(self._mask[s : s + n])
            finally:
                del mm
        else:
            tokens = [np.zeros((0, self.dim), np.float32) for _ in start]
            content = [np.zeros(0, bool) for _ in start]
        sentence = np.asarray(self.sentence[ids], dtype=np.float32)
        return TokenVectors(tokens, content, sentence)


def token_pass_backend(encode_backend: str) -> str:
    """The backend a dedupe's verifier runs its token pass on: the encode stage's when it is ONNX
    (the fast runtime that has a token output), else torch."""
    from dupq.backends import ONNX_BACKENDS

    return encode_backend if encode_backend in ONNX_BACKENDS else "torch"


def shares_pass(verifier: Any, embedder: Any, engine: str) -> bool:
    """Whether ``verifier`` (as :func:`dupq.verifier.choose.choose_verifier` gives it: a directory,
    ``"default"`` or a loaded one) would run the very pass the encode stage runs: a late-interaction
    verifier over the stock encoder (or, loaded, over this model), on this backend — then the encode
    pass keeps its token vectors. The Ray engine encodes in other processes: it keeps none."""
    if verifier is None or engine == "ray" or not getattr(embedder, "keeps_tokens", False):
        return False
    if token_pass_backend(embedder.backend) != embedder.backend:
        return False
    if not isinstance(verifier, (str, Path)):
        from dupq.rescore import same_pass

        return same_pass(verifier, embedder)
    from dupq.card import ModelCard
    from dupq.encoder import DEFAULT_ALIASES
    from dupq.verifier.choose import is_stock_encoder
    from dupq.verifier.model import DEFAULT_VERIFIER, default_verifier_dir

    directory = default_verifier_dir() if str(verifier) == DEFAULT_VERIFIER else Path(verifier)
    card = ModelCard.read(directory)
    if card is None or not card.is_verifier or (card.verifier or {}).get("type") == "cross-encoder":
        return False
    return (card.encoder or "default") in DEFAULT_ALIASES and is_stock_encoder(embedder.source)
