"""The OpenVINO backends on the tiny model: the same vectors as torch (fp32) or close (int8), the IR
cached and reused, re-converted when corrupt or stale, refused when it disagrees with the model, and
used by the Embedder, the verifier's token path and ``dupq dedupe --backend openvino-int8``."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.optional import import_extra

import_extra("openvino", "openvino", module_level=True)
import_extra("nncf", "openvino", module_level=True)
import_extra("onnxruntime", "openvino", module_level=True)

from dupq.backends import available_backends, make_runner  # noqa: E402
from dupq.backends import onnx as onnx_backend  # noqa: E402
from dupq.backends import openvino as ovb  # noqa: E402
from dupq.cli import app  # noqa: E402
from dupq.embed import Embedder  # noqa: E402
from dupq.encoder import load_encoder, model_fingerprint  # noqa: E402
from dupq.errors import DupqError  # noqa: E402
from tests.test_backends import _per_text, _texts  # noqa: E402
from tests.tiny_model import sample_questions  # noqa: E402


@pytest.fixture()
def model_copy(tiny_model_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny model dir, so each test sees its own cache."""
    dst = tmp_path / "model"
    shutil.copytree(tiny_model_dir, dst)
    return dst


@pytest.fixture(scope="module")
def shared_copy(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One copy of the tiny model for the module, with both IRs made once (the export is the slow part)."""
    dst = tmp_path_factory.mktemp("openvino") / "model"
    shutil.copytree(tiny_model_dir, dst)
    model = load_encoder(dst, device="cpu")
    for backend in ovb.OPENVINO_BACKENDS:
        ovb.export_openvino(model, backend)
    return dst


@pytest.fixture()
def cached_copy(shared_copy: Path, tmp_path: Path) -> Path:
    """A private copy of the model *with* its verified cache (the cache is keyed by fingerprint, not path)."""
    dst = tmp_path / "model"
    shutil.copytree(shared_copy, dst)
    return dst


def test_registered_and_available():
    assert {"openvino", "openvino-int8"} <= set(available_backends())


@pytest.mark.parametrize(("backend", "min_mean"), [("openvino", 0.9999), ("openvino-int8", 0.99)])
def test_backend_agrees_with_torch(shared_copy, backend, min_mean):
    model = load_encoder(shared_copy, device="cpu")
    texts = _texts()
    want = _per_text(model, texts)
    emb = Embedder(model, backend=backend)
    got = emb.encode(texts, batch_size=8)
    assert got.shape == want.shape and got.dtype == np.float32
    cos = np.einsum("ij,ij->i", got, want)
    assert cos.mean() >= min_mean and cos.min() >= 0.98, (cos.mean(), cos.min())
    for i, j in [(0, 4), (2, texts.index("x", 3))]:
        assert texts[i] == texts[j] and np.array_equal(got[i], got[j])
    # cached next to the model beside the ONNX export, keyed by fingerprint, verification recorded
    xml = ovb.ir_path(model, backend)
    assert xml.parent == shared_copy / "onnx" and model_fingerprint(model)[:16] in xml.name
    assert xml.with_suffix(".bin").exists()
    meta = json.loads(ovb._meta_path(xml).read_text())
    assert meta["backend"] == backend and meta["probe_mean_cosine"] >= 0.99
    assert ("int8" in meta["weights"]) == backend.endswith("int8")


def test_int8_weights_are_smaller(shared_copy):
    model = load_encoder(shared_copy, device="cpu")
    sizes = {
        b: ovb.export_openvino(model, b).with_suffix(".bin").stat().st_size for b in ovb.OPENVINO_BACKENDS
    }
    assert sizes["openvino-int8"] < 0.6 * sizes["openvino"], sizes


def test_run_tokens_matches_the_onnx_runner(shared_copy):
    """The verifier's token path: token vectors and pooled vectors in one pass, as OnnxRunner gives."""
    model = load_encoder(shared_copy, device="cpu")
    enc = model.tokenizer(sample_questions(6, seed=3), padding=True, return_tensors="np")
    ov_tokens, ov_pooled = make_runner(model, "openvino").run_tokens(enc["input_ids"], enc["attention_mask"])
    ort_tokens, ort_pooled = make_runner(model, "onnx").run_tokens(enc["input_ids"], enc["attention_mask"])
    assert ov_tokens.shape == ort_tokens.shape and ov_tokens.dtype == np.float32
    np.testing.assert_allclose(ov_tokens, ort_tokens, atol=1e-4)
    np.testing.assert_allclose(ov_pooled, ort_pooled, atol=1e-4)


# -- cache ----------------------------------------------------------------------------------------
def test_ir_is_cached_and_int8_reuses_the_onnx_export(model_copy, monkeypatch):
    converts, exports = [], []
    real_convert, real_export = ovb._convert, onnx_backend._torch_export
    monkeypatch.setattr(
        ovb, "_convert", lambda src, b, items=None: (converts.append(b), real_convert(src, b, items))[1]
    )
    monkeypatch.setattr(onnx_backend, "_torch_export", lambda m, p: (exports.append(p), real_export(m, p)))

    first = Embedder(load_encoder(model_copy, device="cpu"), backend="openvino")
    xml = ovb.ir_path(first.model, "openvino")
    mtime = xml.stat().st_mtime_ns
    second = Embedder(load_encoder(model_copy, device="cpu"), backend="openvino")  # as a new process
    assert converts == ["openvino"] and exports and xml.stat().st_mtime_ns == mtime
    np.testing.assert_array_equal(first.encode(["how do i cook rice"]), second.encode(["how do i cook rice"]))
    Embedder(second.model, backend="openvino-int8")
    assert converts == ["openvino", "openvino-int8"] and len(exports) == 1  # one torch export for all


@pytest.mark.parametrize("damage", ["flip-bin", "truncate-bin", "stale-version", "bad-json"])
def test_corrupt_or_stale_ir_is_converted_again(cached_copy, monkeypatch, damage):
    model = load_encoder(cached_copy, device="cpu")
    xml = ovb.ir_path(model, "openvino-int8")
    assert ovb._cached_ok(xml, model_fingerprint(model), "openvino-int8")  # the copied cache is valid
    binf, meta = xml.with_suffix(".bin"), ovb._meta_path(xml)
    if damage == "flip-bin":  # same size, different bytes: only the hash notices
        data = bytearray(binf.read_bytes())
        data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)
        binf.write_bytes(bytes(data))
    elif damage == "truncate-bin":
        binf.write_bytes(binf.read_bytes()[:100])
    elif damage == "stale-version":
        info = json.loads(meta.read_text())
        info["ir_version"] = ovb.IR_VERSION - 1
        meta.write_text(json.dumps(info))
    else:
        meta.write_text("{not json")
    converts = []
    real = ovb._convert
    monkeypatch.setattr(
        ovb, "_convert", lambda src, b, items=None: (converts.append(b), real(src, b, items))[1]
    )
    emb = Embedder(model, backend="openvino-int8")
    assert converts == ["openvino-int8"]
    assert ovb._cached_ok(xml, model_fingerprint(model), "openvino-int8")
    texts = sample_questions(20, seed=1)
    cos = np.einsum("ij,ij->i", emb.encode(texts), _per_text(model, texts))
    assert cos.mean() > 0.99
    assert not list(xml.parent.glob(".*.tmp.*"))  # no temporaries left behind


def test_a_retrained_model_gets_a_new_ir_and_the_old_one_is_removed(cached_copy):
    import torch

    model = load_encoder(cached_copy, device="cpu")
    old = ovb.export_openvino(model, "openvino")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    model._dupq_fingerprint = None
    new = ovb.export_openvino(model, "openvino")
    assert new != old and new.exists() and not old.exists() and not old.with_suffix(".bin").exists()
    texts = sample_questions(20, seed=1)
    cos = np.einsum("ij,ij->i", Embedder(model, backend="openvino").encode(texts), _per_text(model, texts))
    assert cos.min() > 0.9999


# -- refusal --------------------------------------------------------------------------------------
def test_conversion_refused_when_it_disagrees(cached_copy, tmp_path, monkeypatch):
    """A real but wrong IR (converted from another model's ONNX) is refused and leaves no file."""
    import torch

    other = load_encoder(cached_copy, device="cpu")
    with torch.no_grad():
        for p in other.parameters():
            p.copy_(torch.randn_like(p))
    wrong_onnx = tmp_path / "other.onnx"
    onnx_backend._torch_export(other, wrong_onnx)

    real = ovb._convert
    monkeypatch.setattr(ovb, "_convert", lambda src, b, items=None: real(wrong_onnx, b, items))
    model = load_encoder(cached_copy, device="cpu")
    ovb._remove_ir(ovb.ir_path(model, "openvino"))  # not cached: it must be converted
    with pytest.raises(DupqError, match=r"refusing the openvino export .*mean cosine"):
        Embedder(model, backend="openvino")
    xml = ovb.ir_path(model, "openvino")
    assert not xml.exists() and not xml.with_suffix(".bin").exists() and not ovb._meta_path(xml).exists()
    assert not list(xml.parent.glob(".*.tmp.*"))

    monkeypatch.setattr(ovb, "_convert", real)  # fixed converter: the same call now works
    emb = Embedder(model, backend="openvino")
    assert xml.exists() and emb.encode(["why is the sky blue"]).shape == (1, emb.dim)


def test_missing_openvino_says_what_to_install(tiny_model, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)
    with pytest.raises(DupqError, match=r"pip install 'dupq\[openvino\]'"):
        Embedder(tiny_model, backend="openvino")
    assert "openvino" not in available_backends() and "onnx-int8" in available_backends()


# -- end to end -----------------------------------------------------------------------------------
def test_dedupe_cli_with_openvino_int8_gives_the_torch_groups(cached_copy, tmp_path):
    from tests.test_dedupe import THRESHOLD, _crafted_frame, _groups

    path = tmp_path / "questions.csv"
    _crafted_frame().to_csv(path, index=False)
    runs = {}
    for backend in ("torch", "openvino-int8"):
        out = tmp_path / f"deduped-{backend}.csv"
        args = ["dedupe", str(path), "--text-column", "question", "--id-column", "id", "--out", str(out)]
        args += ["--model", str(cached_copy), "--threshold", str(THRESHOLD), "--backend", backend, "--quiet"]
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 0, res.output
        runs[backend] = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert _groups(runs["openvino-int8"], "id") == _groups(runs["torch"], "id")
    assert list((cached_copy / "onnx").glob("dupq-openvino-int8-*.xml"))


def test_export_onnx_cli_prebuilds_the_openvino_ir(cached_copy):
    """``dupq export-onnx MODEL --backend openvino-int8`` (a Docker build step) reuses or makes the IR."""
    res = CliRunner().invoke(app, ["export-onnx", str(cached_copy), "--backend", "openvino-int8"])
    assert res.exit_code == 0, res.output
    assert "dupq-openvino-int8-" in res.output and "probe cosine vs torch: mean" in res.output


def test_runner_is_safe_to_share_between_threads(cached_copy):
    """The server encodes from several threads; one shared infer request must not mix their batches."""
    from concurrent.futures import ThreadPoolExecutor

    model = load_encoder(cached_copy, device="cpu")
    runner = make_runner(model, "openvino")
    batches = [sample_questions(8, seed=s) for s in range(8)]
    want = [runner(b, 8) for b in batches]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda b: runner(b, 8), batches * 3))
    for i, g in enumerate(got):
        np.testing.assert_array_equal(g, want[i % len(batches)])


def test_ir_fuses_attention(shared_copy):
    """The IR has OpenVINO's fused attention op (the eager-attention export), not the sdpa guards."""
    import openvino as ov

    model = load_encoder(shared_copy, device="cpu")
    for backend in ovb.OPENVINO_BACKENDS:
        ir = ov.Core().read_model(str(ovb.export_openvino(model, backend)))
        ops = {op.get_type_name() for op in ir.get_ops()}
        assert "ScaledDotProductAttention" in ops and "IsNaN" not in ops, (backend, sorted(ops))
