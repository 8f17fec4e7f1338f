"""Token vectors from the Siamese encoder: one pass per question, reused for every pair it is in.

The verifier needs each question's contextual token vectors (before pooling) and its pooled sentence
vector. Both come out of the same forward pass the bi-encoder already runs, so verifying costs one
encoder pass per *question*, not per pair — and a question seen in many pairs is encoded once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from tqdm.auto import tqdm

from dupq.encoder import embedding_dim, token_counts
from dupq.verifier.features import content_mask

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


@dataclass
class TokenVectors:
    """Per text: unit token vectors (special tokens dropped), content-token mask, unit sentence vector."""

    tokens: list[np.ndarray]
    content: list[np.ndarray]
    sentence: np.ndarray

    def __len__(self) -> int:
        return len(self.tokens)


class TokenSource(Protocol):
    """Token vectors of the texts of one list, by index: what :meth:`Verifier.predict_indexed` reads
    a block of pairs at a time. A dedupe's source is the encode pass's own output kept in the work
    directory (:class:`dupq.dedupe.tokens.TokenSpill`), so the verifier runs no second pass."""

    def has(self, ids: np.ndarray) -> np.ndarray:
        """Whether each of ``ids`` has token vectors here."""
        ...

    def read(self, ids: np.ndarray) -> TokenVectors:
        """The token vectors of ``ids`` (sorted, unique, all :meth:`has`), tokens as float32."""
        ...


class MemoryTokens:
    """A :class:`TokenSource` over :class:`TokenVectors` held in memory, ``tv`` being those of ``ids``
    (sorted). Tokens are handed out as float32: numpy casts float16 slowly, and a text in many pairs
    of a block is cast once here rather than once per pair."""

    def __init__(self, tv: TokenVectors, ids: np.ndarray) -> None:
        self.tv, self.ids = tv, np.asarray(ids, dtype=np.int64)

    def has(self, ids: np.ndarray) -> np.ndarray:
        pos = np.minimum(np.searchsorted(self.ids, ids), max(len(self.ids) - 1, 0))
        return self.ids[pos] == ids if len(self.ids) else np.zeros(len(ids), dtype=bool)

    def read(self, ids: np.ndarray) -> TokenVectors:
        pos = np.searchsorted(self.ids, ids).tolist()
        return TokenVectors(
            tokens=[self.tv.tokens[i].astype(np.float32) for i in pos],
            content=[self.tv.content[i] for i in pos],
            sentence=self.tv.sentence[pos],
        )


def unit_token_rows(
    emb: np.ndarray, ids: np.ndarray, attn: np.ndarray, special: np.ndarray, content_of: np.ndarray
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Per row of one padded batch: its unit token vectors as float16 (padding and special tokens
    dropped) and their content mask — what the verifier keeps of a text, however it was encoded."""
    emb = emb / np.maximum(np.linalg.norm(emb, axis=-1, keepdims=True), 1e-12)
    keep_all = attn.astype(bool) & ~special[ids]
    for row in range(len(emb)):
        keep = keep_all[row]
        yield emb[row][keep].astype(np.float16), content_of[ids[row][keep]]


def encode_tokens(
    model: SentenceTransformer,
    texts: Sequence[str],
    *,
    batch_size: int = 64,
    show_progress: bool = False,
    runner: Any = None,
) -> TokenVectors:
    """Run ``model`` once over the unique ``texts`` (sorted by token count, so batches pad little).

    ``runner``: an ONNX runner over the same model (``dupq.backends.make_runner(model, "onnx-int8")``)
    whose ``run_tokens`` gives token and pooled vectors in one pass — the verifier's int8 path; by
    default the torch model runs. Token vectors are kept as float16: a question of 20 tokens costs
    15 KB at 384 dimensions, and the alignment features do not notice the rounding.
    """
    import torch

    texts = list(texts)
    unique: dict[str, int] = {}
    inverse = np.fromiter(
        (unique.setdefault(t, len(unique)) for t in texts), dtype=np.int64, count=len(texts)
    )
    uniq = list(unique)
    tok = model.tokenizer
    special, content_of = vocab_masks(tok)
    # by tokens, not characters: batches pad little (int8 token pass ~620 -> ~670 texts/s here)
    lengths = token_counts(tok, uniq) if len(uniq) > 1 else np.zeros(len(uniq), dtype=np.int64)
    order = np.argsort(lengths, kind="stable")
    toks: list[np.ndarray | None] = [None] * len(uniq)
    masks: list[np.ndarray | None] = [None] * len(uniq)
    sent = np.zeros((len(uniq), embedding_dim(model)), dtype=np.float32)
    # the torch forward needs eval mode; an exported runner does not touch the torch model, and
    # eval()/train() walk every submodule (~2 ms a call, paid twice per Matcher query otherwise)
    was_training = model.training and runner is None
    if was_training:
        model.eval()
    try:
        with (
            tqdm(total=len(uniq), desc="token vectors", unit="q", disable=not show_progress) as bar,
            torch.inference_mode(),
        ):
            for start in range(0, len(uniq), batch_size):
                idx = order[start : start + batch_size]
                emb, sv, ids, attn = _batch(model, [uniq[i] for i in idx], runner)
                rows = unit_token_rows(emb, ids, attn, special, content_of)
                for i, (t, m) in zip(idx.tolist(), rows, strict=True):
                    toks[i], masks[i] = t, m
                sent[idx] = sv
                bar.update(len(idx))
    finally:
        if was_training:
            model.train()
    return TokenVectors(
        tokens=[toks[i] for i in inverse],  # type: ignore[misc]
        content=[masks[i] for i in inverse],  # type: ignore[misc]
        sentence=sent[inverse],
    )


#: Per tokenizer (by id): which token ids are special, which carry content — computed once for the
#: vocabulary instead of per token of every text (a Matcher query paid ~1 ms for it).
_VOCAB_MASKS: dict[int, tuple[Any, np.ndarray, np.ndarray]] = {}


def vocab_masks(tok: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(special, content)``: boolean arrays over token ids (:func:`content_mask` of each token)."""
    hit = _VOCAB_MASKS.get(id(tok))
    if hit is not None and hit[0] is tok:
        return hit[1], hit[2]
    size = max(len(tok), max(tok.all_special_ids, default=0) + 1)
    special = np.zeros(size, dtype=bool)
    special[list(tok.all_special_ids)] = True
    content = content_mask(tok.convert_ids_to_tokens(list(range(size))))
    _VOCAB_MASKS[id(tok)] = (tok, special, content)
    return special, content


def _batch(
    model: SentenceTransformer, texts: list[str], runner: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One batch: token vectors (not normalised: :func:`unit_token_rows` does it), unit sentence
    vectors, token ids, attention mask (numpy)."""
    import torch

    from dupq.vectors import l2_normalize

    if runner is not None:
        from dupq.backends.onnx import tokenize_np

        enc = tokenize_np(model, texts)
        emb, sv = runner.run_tokens(enc["input_ids"], enc["attention_mask"])
        return emb, l2_normalize(sv), enc["input_ids"], enc["attention_mask"].astype(bool)
    feats = _preprocess(model, texts)
    out = model(feats)
    emb = out["token_embeddings"].float().cpu().numpy()
    sv = torch.nn.functional.normalize(out["sentence_embedding"].float(), dim=-1).cpu().numpy()
    ids = feats["input_ids"].cpu().numpy()
    return emb, sv, ids, feats["attention_mask"].cpu().numpy().astype(bool)


def _preprocess(model: SentenceTransformer, texts: list[str]) -> dict:
    """A tokenised batch on the device (``preprocess`` in sentence-transformers 6, else ``tokenize``)."""
    fn = getattr(model, "preprocess", None) or model.tokenize
    feats = fn(texts)
    return {k: v.to(model.device) if hasattr(v, "to") else v for k, v in feats.items()}
