"""The ``torch`` backend: the SentenceTransformer itself, fed token ids when the model allows it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from dupq.runtime import autocast

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


def model_input_names(model: SentenceTransformer) -> list[str]:
    """Inputs the transformer takes from the tokenizer (``token_type_ids`` only where it exists)."""
    import inspect

    names = ["input_ids", "attention_mask"]
    tok_names = getattr(model.tokenizer, "model_input_names", []) or []
    forward_args = inspect.signature(model[0].auto_model.forward).parameters
    if "token_type_ids" in tok_names and "token_type_ids" in forward_args:
        names.append("token_type_ids")
    return names


def plain_text_transformer(model: SentenceTransformer) -> bool:
    """True for Transformer → Pooling … models with a fast text tokenizer (the tokenise-once path)."""
    first = next(iter(model.children()), None)
    tok = getattr(model, "tokenizer", None)
    return (
        type(first).__name__ == "Transformer"
        and getattr(tok, "is_fast", False)
        and getattr(first, "modalities", ["text"]) == ["text"]
    )


class TorchRunner:
    """Runs the model in PyTorch: ``runner(texts, batch_size)``, and ``run_ids`` for plain text
    transformers (``None`` for other layouts, which go through ``model.encode``)."""

    def __init__(self, model: SentenceTransformer) -> None:
        self.model = model
        self.run_ids = None
        self.run_tokens = None
        if plain_text_transformer(model):
            self.input_names = model_input_names(model)
            self.run_ids = self._run_ids
            self.run_tokens = self._run_tokens

    def _forward(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> dict[str, Any]:
        import torch

        device = self.model.device
        features = {
            "input_ids": torch.from_numpy(input_ids).to(device),
            "attention_mask": torch.from_numpy(attention_mask).to(device),
        }
        if "token_type_ids" in self.input_names:
            features["token_type_ids"] = torch.zeros_like(features["input_ids"])
        with torch.inference_mode(), autocast(str(device)):
            return self.model(features)

    def _run_ids(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        return self._forward(input_ids, attention_mask)["sentence_embedding"].float().cpu().numpy()

    def _run_tokens(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(token vectors ``(batch, tokens, dim)``, pooled vectors) for one padded batch, one pass."""
        out = self._forward(input_ids, attention_mask)
        return out["token_embeddings"].float().cpu().numpy(), out["sentence_embedding"].float().cpu().numpy()

    def __call__(self, texts: list[str], batch_size: int) -> np.ndarray:
        import torch

        with torch.inference_mode(), autocast(str(self.model.device)):
            emb = self.model.encode(
                texts,
                batch_size=batch_size,
                convert_to_numpy=True,
                normalize_embeddings=False,
                show_progress_bar=False,
            )
        return np.asarray(emb, dtype=np.float32)
