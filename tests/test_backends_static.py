"""The static model's runner (:mod:`dupq.backends.static`): the table bagged directly, tokenised on
threads — it must give exactly the vectors ``SentenceTransformer.encode`` gives, in input order."""

from __future__ import annotations

import numpy as np
import pytest

from dupq.backends import make_runner
from dupq.backends.static import StaticRunner, table_only
from dupq.backends.torch import TorchRunner
from dupq.embed import Embedder
from dupq.students.static import static_embedding_cls
from tests.tiny_model import sample_questions


@pytest.fixture(scope="module")
def static_model(tiny_model):
    """A static model over the tiny model's WordPiece vocabulary, with a random table."""
    from sentence_transformers import SentenceTransformer

    tok = tiny_model.tokenizer
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(len(tok), 12)).astype(np.float32)
    module = static_embedding_cls()(tok, embedding_weights=weights)
    return SentenceTransformer(modules=[module], device="cpu")


def test_runner_is_chosen_for_a_table_and_not_for_other_layouts(static_model, tiny_model):
    from sentence_transformers.models import Dense

    assert isinstance(make_runner(static_model, "torch"), StaticRunner)
    assert isinstance(make_runner(tiny_model, "torch"), TorchRunner)
    from sentence_transformers import SentenceTransformer

    first = next(iter(static_model.children()))
    with_dense = SentenceTransformer(modules=[first, Dense(12, 4)], device="cpu")
    assert not table_only(with_dense)
    assert isinstance(make_runner(with_dense, "torch"), TorchRunner)


def test_threaded_encode_equals_sentence_transformers_in_input_order(static_model):
    texts = sample_questions(1500, seed=3)
    # repeats, an empty text and a long one: the exact pass, an empty bag and no truncation
    texts = texts + texts[:40] + ["", "what is " * 300]
    want = static_model.encode(texts, convert_to_numpy=True, normalize_embeddings=False)
    runner = StaticRunner(static_model, threads=3)
    got = runner(texts, 64)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(got, StaticRunner(static_model, threads=1)(texts, 64))

    emb = Embedder(static_model)
    vecs = emb.encode(texts)
    norms = np.linalg.norm(want, axis=1, keepdims=True)
    unit = np.divide(want, norms, out=np.zeros_like(want), where=norms > 0)
    np.testing.assert_allclose(vecs, unit, rtol=1e-5, atol=1e-6)


def test_embedder_skips_the_length_sort_for_a_static_model(static_model, monkeypatch):
    emb = Embedder(static_model)
    monkeypatch.setattr(Embedder, "token_lengths", lambda *a: pytest.fail("tokenised twice"))
    assert emb.encode(["how to cook rice", "learn python"]).shape == (2, 12)
