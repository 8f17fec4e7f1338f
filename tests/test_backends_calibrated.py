"""``openvino-int8`` post-training quantised on the user's own texts, and ``backend="auto"``.

On the tiny model: the calibration sample is spread over the input and deterministic; a calibrated IR
is PTQ (int8 activations too), keyed by its sample, verified, and pruned; one that fails verification
falls back to weight-only and is not re-tried; ``auto`` times every verified backend, picks the fastest,
caches the choice per model and machine, skips a backend that fails; dedupe calibrates on its input.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.optional import import_extra

import_extra("openvino", "openvino", module_level=True)
import_extra("nncf", "openvino", module_level=True)

from dupq.backends import BACKENDS, available_backends, make_runner  # noqa: E402
from dupq.backends import auto as autob  # noqa: E402
from dupq.backends import onnx as onnx_backend  # noqa: E402
from dupq.backends import openvino as ovb  # noqa: E402
from dupq.cli import app  # noqa: E402
from dupq.embed import Embedder  # noqa: E402
from dupq.encoder import load_encoder  # noqa: E402
from dupq.errors import DupqError  # noqa: E402
from tests.test_backends import _per_text  # noqa: E402
from tests.tiny_model import sample_questions  # noqa: E402


def calibrated(xml: Path) -> bool:
    """Whether an IR's name carries a calibration digest (``...-<fp16>-c<digest12>``), read by pattern:
    a fingerprint may itself start with ``c`` (``...-int8-c284…``), so ``"-c" in stem`` is not a test."""
    return re.fullmatch(r"dupq-openvino-int8-[0-9a-f]{16}-c[0-9a-f]{12}", xml.stem) is not None


@pytest.fixture(scope="module")
def shared_copy(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with its fp32 ONNX export made once (each PTQ converts from it)."""
    dst = tmp_path_factory.mktemp("calibrated") / "model"
    shutil.copytree(tiny_model_dir, dst)
    onnx_backend.export_onnx(load_encoder(dst, device="cpu"), "onnx")
    return dst


@pytest.fixture()
def model_copy(shared_copy: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "model"
    shutil.copytree(shared_copy, dst)
    return dst


# -- the calibration sample -----------------------------------------------------------------------
def test_calibration_sample_is_spread_over_the_input_and_deterministic():
    texts = [f"question number {i} about topic {i % 37}" for i in range(5000)] + ["", "   "]
    calib, held = ovb.calibration_split(texts)
    assert len(calib) == ovb.CALIBRATION_TEXTS and len(held) == ovb.HOLDOUT_TEXTS
    assert not set(calib) & set(held) and "" not in calib and "   " not in calib + held
    index = {t: i for i, t in enumerate(texts)}
    picked = sorted(index[t] for t in calib + held)
    assert picked[0] == 0 and picked[-1] == 4999  # both ends, not the first 400 rows
    assert max(np.diff(picked)) <= 5000 // (len(picked) - 1) + 1  # evenly spaced
    assert ovb.calibration_split(texts) == (calib, held)
    assert ovb.calibration_split(calib + held) == (calib, held)  # what Ray actors get back
    assert ovb.calibration_split(["a", "b", "a"]) == (["a", "b"], [])
    assert ovb.calibration_split(None) == ([], [])


# -- PTQ ------------------------------------------------------------------------------------------
def test_int8_is_quantised_on_the_users_texts(model_copy):
    model = load_encoder(model_copy, device="cpu")
    texts = sample_questions(600, seed=3)
    calib, _ = ovb.calibration_split(texts)
    emb = Embedder(model, backend="openvino-int8", calibration=texts)
    xml = ovb.ir_path(model, "openvino-int8", ovb.calibration_digest(calib))
    meta = json.loads(ovb._meta_path(xml).read_text())
    assert meta["quantization"] == "ptq" and meta["calibration_texts"] == len(calib)
    assert meta["calibration_sha256"] == ovb.calibration_digest(calib)
    assert meta["probe_questions"] == len(onnx_backend.PROBE_QUESTIONS) + ovb.HOLDOUT_TEXTS
    # activations quantised: the graph has FakeQuantize nodes, weight-only has none
    weight_only = ovb.export_openvino(model, "openvino-int8")
    assert weight_only != xml and not calibrated(weight_only)
    assert "FakeQuantize" in xml.read_text() and "FakeQuantize" not in weight_only.read_text()
    others = sample_questions(80, seed=99)
    cos = np.einsum("ij,ij->i", emb.encode(others), _per_text(model, others))
    assert cos.mean() >= 0.99 and cos.min() >= 0.95, (cos.mean(), cos.min())
    # the same texts again (another process, a resume): the cached IR, not a new quantisation
    mtime = xml.stat().st_mtime_ns
    assert Embedder(load_encoder(model_copy, device="cpu"), backend="openvino-int8", calibration=texts)
    assert xml.stat().st_mtime_ns == mtime


def test_old_calibrations_are_pruned_and_other_backends_kept(model_copy, monkeypatch):
    monkeypatch.setattr(ovb, "KEEP_CALIBRATED", 2)
    model = load_encoder(model_copy, device="cpu")
    keep = [ovb.export_openvino(model, "openvino"), ovb.export_openvino(model, "openvino-int8")]
    made = [
        ovb.export_openvino(model, "openvino-int8", calibration=sample_questions(60, seed=s)) for s in (1, 2)
    ]
    newest = ovb.export_openvino(model, "openvino-int8", calibration=sample_questions(60, seed=3))
    assert len({*made, newest}) == 3 and all(calibrated(p) for p in [*made, newest])
    left = sorted(p.name for p in (model_copy / "onnx").glob("dupq-openvino-int8-*-c*.xml"))
    assert left == sorted([made[1].name, newest.name])  # the oldest calibration went
    assert all(p.exists() and p.with_suffix(".bin").exists() for p in keep)  # fp32 and weight-only kept


def test_fp32_export_no_longer_deletes_the_int8_one_beside_it(model_copy):
    """``dupq-onnx-*`` once also matched ``dupq-onnx-int8-*``: each fp32 export removed the int8 one."""
    model = load_encoder(model_copy, device="cpu")
    int8 = onnx_backend.export_onnx(model, "onnx-int8")
    onnx_backend.export_onnx(model, "onnx", force=True)
    xml8 = ovb.export_openvino(model, "openvino-int8")
    ovb.export_openvino(model, "openvino", force=True)
    assert int8.exists() and xml8.exists() and xml8.with_suffix(".bin").exists()


def test_a_refused_calibration_falls_back_to_weight_only_once(model_copy, tmp_path, monkeypatch, caplog):
    """PTQ that disagrees with torch is not served; weight-only is, and the refusal is remembered."""
    import torch

    model = load_encoder(model_copy, device="cpu")
    other = load_encoder(model_copy, device="cpu")
    with torch.no_grad():
        for p in other.parameters():
            p.copy_(torch.randn_like(p))
    wrong_onnx = tmp_path / "other.onnx"
    onnx_backend._torch_export(other, wrong_onnx)
    texts = sample_questions(200, seed=5)
    real, calls = ovb._convert, []

    def broken_ptq(src, backend, items=None):  # a real quantisation, of the wrong model
        calls.append(bool(items))
        return real(wrong_onnx if items else src, backend, items)

    monkeypatch.setattr(ovb, "_convert", broken_ptq)
    with caplog.at_level(logging.WARNING, logger="dupq.backends.openvino"):
        xml = ovb.export_openvino(model, "openvino-int8", calibration=texts)
    assert not calibrated(xml)  # dupq-openvino-int8-<fp>: the weight-only IR
    assert json.loads(ovb._meta_path(xml).read_text())["quantization"] == "weight-only"
    assert calls == [True, False] and "weight-only int8 instead" in caplog.text
    assert not [p for p in (model_copy / "onnx").glob("*.xml") if calibrated(p)]  # no calibrated IR left
    again = ovb.export_openvino(model, "openvino-int8", calibration=texts)
    assert again == xml and calls == [True, False]  # neither quantised nor converted again


# -- auto -----------------------------------------------------------------------------------------
def test_auto_times_every_backend_picks_the_fastest_and_caches(model_copy, monkeypatch):
    model = load_encoder(model_copy, device="cpu")
    texts = sample_questions(300, seed=8)
    emb = Embedder(model, backend="auto", calibration=texts)
    assert emb.requested_backend == "auto" and emb.backend in BACKENDS
    record = autob.cached_choice(model)
    assert record is not None and set(record["questions_per_s"]) == set(available_backends())
    assert emb.backend == max(record["questions_per_s"], key=record["questions_per_s"].get)
    assert record["machine"]["cores"] >= 1 and record["probe_texts"] == autob.PROBE_TEXTS
    np.testing.assert_allclose(emb.encode(texts[:5]), _per_text(model, texts[:5]), atol=0.05)

    monkeypatch.setattr(autob, "ROUNDS", 1)  # the re-probes below only need to happen, not to be precise
    probes = []
    real_probe = autob.probe
    monkeypatch.setattr(autob, "probe", lambda *a, **k: (probes.append(1), real_probe(*a, **k))[1])
    assert Embedder(model, backend="auto").backend == emb.backend and probes == []  # cached
    sig = autob.cpu_signature()
    monkeypatch.setattr(autob, "cpu_signature", lambda: {**sig, "flags": ["another", "cpu"]})
    Embedder(model, backend="auto")
    assert probes == [1]  # another CPU: probed again, and both machines are in the cache
    cache = json.loads((model_copy / "onnx" / "dupq-auto.json").read_text())
    assert len(cache) == 2
    monkeypatch.setenv("DUPQ_AUTO_REPROBE", "1")
    Embedder(model, backend="auto")
    assert probes == [1, 1]


def test_auto_skips_a_backend_that_fails(model_copy, monkeypatch):
    model = load_encoder(model_copy, device="cpu")

    def refuse(*a, **k):
        raise DupqError("refusing the openvino export: test")

    monkeypatch.setattr(ovb, "export_openvino", refuse)
    record = autob.probe(model, make_runner=make_runner, available=available_backends())
    assert set(record["skipped"]) == {"openvino", "openvino-int8"}
    assert "refusing" in record["skipped"]["openvino"] and record["choice"] in ("torch", "onnx", "onnx-int8")


def test_unknown_backend_lists_auto(tiny_model):
    with pytest.raises(DupqError, match=r"choose one of .*openvino-int8, auto"):
        Embedder(tiny_model, backend="fastest")


def test_export_cli_auto_prints_the_probe(model_copy):
    res = CliRunner().invoke(app, ["export-onnx", str(model_copy), "--backend", "auto"])
    assert res.exit_code == 0, res.output
    rows = [line for line in res.output.splitlines() if " q/s" in line]
    assert len(rows) == len(available_backends()) and sum("<- auto" in r for r in rows) == 1
    assert "<- auto" in rows[0]  # sorted fastest first


def test_dedupe_calibrates_on_its_input_and_records_the_backend_that_ran(model_copy, tmp_path):
    from tests.test_dedupe import THRESHOLD, _crafted_frame, _groups

    frame = _crafted_frame()
    path = tmp_path / "questions.csv"
    frame.to_csv(path, index=False)
    runs = {}
    for backend in ("torch", "openvino-int8", "auto"):
        out = tmp_path / f"deduped-{backend}.csv"
        args = ["dedupe", str(path), "--text-column", "question", "--id-column", "id", "--out", str(out)]
        args += ["--model", str(model_copy), "--threshold", str(THRESHOLD), "--backend", backend, "--quiet"]
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 0, res.output
        runs[backend] = pd.read_csv(out, dtype=str, keep_default_na=False)
        summary = json.loads(out.with_name(out.stem + ".summary.json").read_text())
        assert summary["backend"] in BACKENDS and (backend == "auto" or summary["backend"] == backend)
    assert _groups(runs["openvino-int8"], "id") == _groups(runs["torch"], "id") == _groups(runs["auto"], "id")
    calibrated = list((model_copy / "onnx").glob("dupq-openvino-int8-*-c*.json"))
    assert len(calibrated) == 1
    meta = json.loads(calibrated[0].read_text())
    assert meta["quantization"] == "ptq" and 0 < meta["calibration_texts"] <= frame["question"].nunique()


def test_pruning_reads_names_by_pattern_for_a_fingerprint_starting_with_c(tmp_path, monkeypatch):
    """A fingerprint may start with ``c`` (``...-int8-c284…``): the weight-only IR is not taken for a
    calibrated one, so it does not use up a calibration's place (the CI run that found the test bug)."""
    monkeypatch.setattr(ovb, "KEEP_CALIBRATED", 2)
    fp = "c284c46ea53f3947" + "0" * 48
    weight_only = tmp_path / f"dupq-openvino-int8-{fp[:16]}.xml"
    made = [tmp_path / f"dupq-openvino-int8-{fp[:16]}-c{d * 12}.xml" for d in "abc"]
    for i, p in enumerate([weight_only, *made]):
        for suffix in (".xml", ".bin", ".json"):
            p.with_suffix(suffix).write_text("x")
        os.utime(p, (1_000_000 + i, 1_000_000 + i))
    ovb._remove_stale(tmp_path, "openvino-int8", keep=weight_only, fingerprint=fp)
    assert weight_only.exists() and not calibrated(weight_only)
    assert [p.exists() for p in made] == [False, True, True]  # the 2 newest calibrations stay
