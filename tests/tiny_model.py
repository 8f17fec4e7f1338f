"""A tiny random BERT with its own WordPiece vocabulary, built on the fly so tests never download.

It is a real transformer and a real tokenizer (same code paths as all-MiniLM-L6-v2), only small:
2 layers, hidden size 32, a vocabulary trained on a few hundred questions. Building it takes about a
second; tests share one copy per session.
"""

from __future__ import annotations

import random
from pathlib import Path

WORDS = (
    "how what why when where which who can do does is are should i you we my the a an to of in on for "
    "with learn python java code programming language best way make money online lose weight fast "
    "gain muscle cook rice pasta travel japan visa passport buy cheap laptop phone android iphone fix "
    "error install windows linux mac improve english speaking writing skills start business invest "
    "stock market bitcoin sleep better reduce stress find job interview prepare university study "
    "abroad become data scientist engineer doctor write resume get rid of acne hair loss"
).split()


def sample_questions(n: int = 400, seed: int = 0) -> list[str]:
    """Random question-like strings over a small vocabulary (enough to train a WordPiece model)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        k = rng.randint(4, 12)
        out.append(" ".join(rng.choice(WORDS) for _ in range(k)).capitalize() + "?")
    return out


def build_tiny_model(out_dir: str | Path, seed: int = 0) -> Path:
    """Write a tiny BERT + WordPiece tokenizer as a sentence-transformers directory; return it."""
    import torch
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, trainers
    from tokenizers.models import WordPiece
    from tokenizers.processors import TemplateProcessing
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    out_dir = Path(out_dir)
    hf_dir = out_dir.parent / (out_dir.name + "-hf")
    hf_dir.mkdir(parents=True, exist_ok=True)

    tok = Tokenizer(WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    trainer = trainers.WordPieceTrainer(vocab_size=400, special_tokens=specials)
    tok.train_from_iterator(sample_questions(600, seed) + [" ".join(WORDS)], trainer=trainer)
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=64,
    )
    fast.save_pretrained(hf_dir)

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(hf_dir)

    from dupq.encoder import wrap_transformer

    wrap_transformer(str(hf_dir), device="cpu", local_files_only=True, max_seq_length=64).save(str(out_dir))
    return out_dir
