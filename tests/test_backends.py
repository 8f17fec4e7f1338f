"""The encode path and the ONNX backends: same vectors as torch, input order kept, exports cached,
re-exported for a changed model, refused when they disagree with the model."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from dupq.backends import available_backends
from dupq.backends import onnx as backends
from dupq.embed import Embedder
from dupq.encoder import load_encoder, model_fingerprint
from dupq.errors import DupqError
from tests.optional import import_extra
from tests.tiny_model import sample_questions


def _texts() -> list[str]:
    """Mixed lengths (1 token … truncated at max_seq_length), exact duplicates, unsorted."""
    qs = sample_questions(60, seed=7)
    long_q = " ".join(["how do i learn python programming fast"] * 30)  # > 64 tokens: truncated
    return [qs[0], long_q, "x", qs[1], qs[0], "", *qs[2:40], long_q, "x", qs[5], *qs[40:]]


def _per_text(model, texts: list[str]) -> np.ndarray:
    """The reference: sentence-transformers' own encode, one text at a time (no padding at all)."""
    return np.vstack([model.encode([t], convert_to_numpy=True, normalize_embeddings=True) for t in texts])


@pytest.fixture()
def model_copy(tiny_model_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny model dir, so each test sees its own ``onnx/`` cache."""
    dst = tmp_path / "model"
    shutil.copytree(tiny_model_dir, dst)
    return dst


@pytest.fixture(scope="module")
def shared_copy(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dst = tmp_path_factory.mktemp("backends") / "model"
    shutil.copytree(tiny_model_dir, dst)
    return dst


# -- the encode path ------------------------------------------------------------------------------
def test_truncation_flags_equal_token_lengths_and_retokenise_only_the_full_ones(tiny_model, monkeypatch):
    texts = _texts()
    emb = Embedder(tiny_model)
    limit = emb.max_seq_length
    lengths = emb.token_lengths(texts)
    exact = next(
        t for t in (" ".join(["why"] * k) for k in range(limit)) if emb.token_lengths([t])[0] == limit
    )
    texts.append(exact)  # exactly at the limit: re-checked, not flagged
    want = np.append(lengths > limit, False)
    assert want.sum() == 2  # the long question, twice
    asked: list[str] = []
    real = Embedder.token_lengths
    monkeypatch.setattr(Embedder, "token_lengths", lambda self, t: asked.extend(t) or real(self, t))
    vecs, flagged = emb.encode_flagged(texts)
    np.testing.assert_array_equal(flagged, want)
    assert sorted(set(asked)) == sorted({texts[1], exact})  # once per unique text at the limit
    np.testing.assert_allclose(vecs, emb.encode(texts), atol=1e-6)


def test_torch_encode_keeps_order_and_encodes_duplicates_once(tiny_model):
    texts = _texts()
    emb = Embedder(tiny_model)
    seen = []
    real = emb._run_ids

    def counting(ids, mask):
        seen.append(len(ids))
        # sorted longest first: each batch is padded only to its own longest text
        assert mask[:, -1].any() and mask.sum(1).max() == ids.shape[1]
        return real(ids, mask)

    emb._run_ids = counting
    got = emb.encode(texts, batch_size=8)
    want = _per_text(tiny_model, texts)
    assert got.shape == (len(texts), emb.dim) and got.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(got, want, atol=2e-5)
    assert sum(seen) == len(set(texts)) < len(texts)  # each distinct text encoded once
    assert max(seen) <= 8


def test_text_fallback_path_matches_token_path(tiny_model):
    texts = _texts()
    fast = Embedder(tiny_model).encode(texts, batch_size=16)
    slow_emb = Embedder(tiny_model)
    slow_emb._run_ids = None  # models without a plain tokenizer go through model.encode
    slow = slow_emb.encode(texts, batch_size=16)
    np.testing.assert_allclose(fast, slow, atol=2e-5)
    assert Embedder(tiny_model).encode([]).shape == (0, fast.shape[1])


def test_encode_mid_training_turns_dropout_off_and_restores_mode(tiny_model):
    texts = sample_questions(30, seed=2)
    want = Embedder(tiny_model).encode(texts)
    tiny_model.train()  # as during training evaluation
    try:
        got = Embedder(tiny_model).encode(texts)
        assert tiny_model.training
    finally:
        tiny_model.eval()
    np.testing.assert_allclose(got, want, atol=1e-6)


# -- backends agree with torch --------------------------------------------------------------------
@pytest.mark.parametrize(("backend", "min_mean"), [("onnx", 0.9999), ("onnx-int8", 0.99)])
def test_backend_agrees_with_torch(shared_copy, backend, min_mean):
    model = load_encoder(shared_copy, device="cpu")
    texts = _texts()
    want = _per_text(model, texts)
    emb = Embedder(model, backend=backend)
    got = emb.encode(texts, batch_size=8)
    assert got.shape == want.shape and got.dtype == np.float32
    cos = np.einsum("ij,ij->i", got, want)
    assert cos.mean() >= min_mean and cos.min() >= 0.98, (cos.mean(), cos.min())
    # duplicates map to identical rows, in input order
    for i, j in [(0, 4), (1, texts.index(texts[1], 2)), (2, texts.index("x", 3))]:
        assert texts[i] == texts[j] and np.array_equal(got[i], got[j])
    # cached next to the model, keyed by its fingerprint, with the verification recorded
    path = backends.exported_path(model, backend)
    assert path.parent == shared_copy / "onnx" and model_fingerprint(model)[:16] in path.name
    meta = backends._meta_path(path).read_text()
    assert '"probe_mean_cosine"' in meta and backend in meta


# -- cache ----------------------------------------------------------------------------------------
def test_export_is_cached_and_redone_for_a_changed_model(model_copy, monkeypatch):
    calls = []
    real = backends._torch_export
    monkeypatch.setattr(backends, "_torch_export", lambda m, p: (calls.append(p), real(m, p)))

    first = Embedder(load_encoder(model_copy, device="cpu"), backend="onnx")
    path = backends.exported_path(first.model, "onnx")
    mtime = path.stat().st_mtime_ns
    second = Embedder(load_encoder(model_copy, device="cpu"), backend="onnx")  # a new process would do this
    assert len(calls) == 1 and path.stat().st_mtime_ns == mtime
    np.testing.assert_array_equal(first.encode(["how do i cook rice"]), second.encode(["how do i cook rice"]))

    # int8 is quantised from the cached fp32 export: no second torch export
    Embedder(second.model, backend="onnx-int8")
    assert len(calls) == 1

    # a retrained model in the same directory: new fingerprint → exported again, old file removed
    changed = load_encoder(model_copy, device="cpu")
    import torch

    with torch.no_grad():
        for p in changed.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    changed._dupq_fingerprint = None
    third = Embedder(changed, backend="onnx")
    new_path = backends.exported_path(changed, "onnx")
    assert len(calls) == 2 and new_path != path and new_path.exists() and not path.exists()
    texts = sample_questions(20, seed=1)
    cos = np.einsum("ij,ij->i", third.encode(texts), _per_text(changed, texts))
    assert cos.min() > 0.9999


def test_cache_falls_back_to_home_when_model_dir_is_read_only(model_copy, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(backends, "_writable", lambda d: not str(d).startswith(str(model_copy)))
    model = load_encoder(model_copy, device="cpu")
    path = backends.export_onnx(model, "onnx")
    fp = model_fingerprint(model)
    assert path.parent == tmp_path / "home" / ".cache" / "dupq" / "onnx" / fp[:16]
    assert not (model_copy / "onnx").exists()


# -- refusal ----------------------------------------------------------------------------------------
def _corrupt(path: Path) -> None:
    """Overwrite every weight matrix of an exported model with noise (a real, broken file)."""
    import onnx
    from onnx import numpy_helper

    rng = np.random.default_rng(0)
    proto = onnx.load(str(path))
    for init in proto.graph.initializer:
        arr = numpy_helper.to_array(init)
        if arr.ndim >= 2:
            if np.issubdtype(arr.dtype, np.integer):
                noise = rng.integers(-100, 100, size=arr.shape).astype(arr.dtype)
            else:
                noise = rng.normal(0, 1, size=arr.shape).astype(arr.dtype)
            init.CopyFrom(numpy_helper.from_array(noise, init.name))
    onnx.save(proto, str(path))


@pytest.mark.parametrize(("backend", "step"), [("onnx", "_torch_export"), ("onnx-int8", "_quantize_int8")])
def test_export_refused_when_it_disagrees(model_copy, monkeypatch, backend, step):
    real = getattr(backends, step)

    def broken(*args):
        real(*args)
        _corrupt(Path(args[-1]))

    monkeypatch.setattr(backends, step, broken)
    model = load_encoder(model_copy, device="cpu")
    with pytest.raises(DupqError, match=r"refusing the .* export .*mean cosine"):
        Embedder(model, backend=backend)
    path = backends.exported_path(model, backend)
    assert not path.exists() and not backends._meta_path(path).exists()
    assert not list(path.parent.glob(f".{path.name}*"))  # no temporary left behind

    monkeypatch.setattr(backends, step, real)  # fixed exporter: the same call now works
    emb = Embedder(model, backend=backend)
    assert path.exists() and emb.encode(["why is the sky blue"]).shape == (1, emb.dim)


# -- errors -----------------------------------------------------------------------------------------
def test_missing_onnxruntime_says_what_to_install(tiny_model, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(DupqError, match=r"pip install 'dupq\[onnx\]'"):
        Embedder(tiny_model, backend="onnx")
    assert available_backends() == ["torch"]


def test_unknown_backend(tiny_model):
    with pytest.raises(DupqError, match="choose one of torch, onnx, onnx-int8"):
        Embedder(tiny_model, backend="tensorrt")


# -- the benchmark (tiny model, 40 real MQP pairs: checks the bookkeeping, not the speed) -----------
def test_bench_encode_end_to_end(model_copy, shared_data, tmp_path):
    import json

    import pandas as pd

    from benchmarks.encode import format_table, load_questions, run_encode_benchmark

    src = shared_data / "medical-question-pairs" / "mqp.tsv"
    data = tmp_path / "data"
    (data / "medical-question-pairs").mkdir(parents=True)
    pd.read_csv(src, sep="\t", quoting=3, keep_default_na=False, dtype=str).head(40).to_csv(
        data / "medical-question-pairs" / "mqp.tsv", sep="\t", index=False, quoting=3
    )
    questions, q1, q2, labels = load_questions(data)
    assert set(q1) | set(q2) == set(questions) and len(labels) == 40

    out = tmp_path / "encode.json"
    result = run_encode_benchmark(
        n=30,
        backends=["plain", "torch", "onnx-int8"],
        model=str(model_copy),
        data_dir=data,
        out=out,
        batch_size=8,
        progress=False,
    )
    assert json.loads(out.read_text())["rows"] == result["rows"]
    rows = {r["backend"]: r for r in result["rows"]}
    assert rows["plain"]["speedup_vs_plain"] == 1.0 and rows["torch"]["ap_delta_vs_fp32"] == 0.0
    assert rows["plain"]["mean_cosine_vs_fp32"] > 0.9999  # plain encode and dupq torch: same vectors
    assert 0.99 < rows["onnx-int8"]["mean_cosine_vs_fp32"] <= 1.0
    assert all(0 <= r["mqp_ap"] <= 100 for r in rows.values())
    # the derived columns are the arithmetic they claim (speed itself belongs in benchmarks/, not here)
    tokens = result["mean_tokens"] * result["questions"]
    for r in rows.values():
        assert r["questions_per_s"] == max(r["all_runs_questions_per_s"])  # best of the repeats
        qps = r["questions_per_s"]
        assert r["speedup_vs_plain"] == pytest.approx(qps / rows["plain"]["questions_per_s"], abs=0.006)
        gflops = result["flops_per_token"] * tokens * qps / result["questions"] / 1e9
        assert r["gflops"] == pytest.approx(gflops, rel=0.02, abs=1e-3)
        assert r["ap_delta_vs_fp32"] == pytest.approx(r["mqp_ap"] - rows["torch"]["mqp_ap"], abs=0.011)
    assert result["cpu"]["peak_fp32_gflops"] > 0 and result["flops_per_token"] > 0
    table = format_table(result)
    assert "onnx-int8" in table and "MFLOP/token" in table


def test_export_traces_eager_attention_and_gives_the_model_back(shared_copy):
    """The export is traced with eager attention (no sdpa ``IsNaN`` guards, which block OpenVINO's
    attention fusion), and the loaded model keeps its own attention implementation afterwards."""
    onnx = import_extra("onnx", "onnx")
    model = load_encoder(shared_copy, device="cpu")
    config = model[0].auto_model.config
    before = config._attn_implementation
    assert before == "sdpa"  # transformers' default: what the export must not trace
    path = backends.export_onnx(model, "onnx")
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert "IsNaN" not in ops and "Softmax" in ops, sorted(ops)
    assert config._attn_implementation == before


def test_threaded_backend_tokenising_gives_the_wrappers_ids(tiny_model, monkeypatch):
    """The Embedder tokenises with a truncating copy of the fast tokenizer's backend, over threads: the
    same ids, in the same order, as the transformers call it replaces — long texts cut at the limit,
    empty ones, non-ASCII — and the model's own tokenizer is left as it was (no truncation set on it)."""
    import dupq.embed as embed

    monkeypatch.setattr(embed, "_MIN_TEXTS_PER_THREAD", 8)  # 200 texts: split over every CPU here
    texts = [*_texts(), "Ünïcödé — вопрос? 問題", "  spaced   out  "] * 2 + sample_questions(100, seed=3)
    emb = Embedder(tiny_model)
    before = tiny_model.tokenizer.backend_tokenizer.truncation
    tokens = emb._tokenize(texts)
    assert tiny_model.tokenizer.backend_tokenizer.truncation == before
    want = tiny_model.tokenizer(
        texts, add_special_tokens=True, truncation=True, max_length=emb.max_seq_length
    )["input_ids"]
    got = [tokens.flat[tokens.offsets[i] : tokens.offsets[i + 1]].tolist() for i in range(len(texts))]
    assert got == want
    assert tokens.length.max() == emb.max_seq_length  # the long text was cut, not kept whole
    # the plain encode path still agrees with sentence-transformers (which tokenises by itself)
    np.testing.assert_allclose(emb.encode(texts[:60]), _per_text(tiny_model, texts[:60]), atol=1e-5)
    # a changed length limit is followed, not the one the copy was made for
    old = tiny_model.max_seq_length
    try:
        tiny_model.max_seq_length = 12
        assert emb._tokenize(texts).length.max() == 12
    finally:
        tiny_model.max_seq_length = old


def test_every_backend_name_has_one_factory_and_runners_keep_the_protocol(tiny_model):
    """The registry is declared once: every name has a factory, and a runner has the whole contract."""
    from dupq.backends import BACKENDS, FACTORIES, Runner, make_runner
    from dupq.backends.registry import BACKEND_CHOICES

    assert set(FACTORIES) == set(BACKENDS) and set(BACKENDS) < set(BACKEND_CHOICES)
    runner = make_runner(tiny_model, "torch")
    assert isinstance(runner, Runner)
    # the torch runner's token output (a dedupe keeps it for the verifier): one pass gives both, the
    # pooled vectors being run_ids' own
    enc = tiny_model.tokenizer(["how do i sort a list", "sort a list"], padding=True, return_tensors="np")
    ids, mask = enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64)
    tokens, pooled = runner.run_tokens(ids, mask)
    assert tokens.shape[:2] == ids.shape and tokens.shape[2] == pooled.shape[1]
    np.testing.assert_allclose(pooled, runner.run_ids(ids, mask), atol=1e-6)
