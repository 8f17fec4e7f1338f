"""The cross-encoder verifier kind: train/save/load/calibration, and the same interface as the other kind."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score

from dupq.errors import StoreError
from dupq.verifier import Verifier
from dupq.verifier.cross import CrossVerifier, is_cross, train_cross_verifier
from tests.test_verifier import _pairs


@pytest.fixture(scope="module")
def cross(tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("cross") / "cv"
    v = train_cross_verifier(
        _pairs(200, 0),
        _pairs(60, 1),
        out,
        encoder=tiny_model_dir,
        epochs=10,
        batch_size=16,
        learning_rate=1e-3,
        show_progress=False,
    )
    return out, v


def test_training_writes_a_calibrated_cross_encoder_directory(cross):
    out, v = cross
    meta = json.loads((out / "dupq.json").read_text())
    assert meta["kind"] == "verifier" and meta["verifier"]["type"] == "cross-encoder" and is_cross(out)
    assert (out / "cross-encoder" / "config.json").exists() and not (out / "head.npz").exists()
    assert {"best_f1", "best_accuracy", "precision_0.90", "precision_0.95"} <= set(meta["operating_points"])
    assert meta["threshold"] == meta["operating_points"]["best_f1"]["threshold"]
    assert meta["training"]["steps"] == 10 * math.ceil(200 / 16)
    assert meta["calibration"]["coef"] > 0  # a higher logit means more likely a duplicate, not less


def test_it_learns_the_pairs_the_cosine_cannot_tell_apart(cross, tiny_model_dir):
    """Held-out swaps and number changes against typo variants: an untrained head scores them at chance."""
    _, v = cross
    test = _pairs(80, 2)
    p = v.predict(test.question1, test.question2).probability
    assert average_precision_score(test.label, p) > 0.9
    assert ((p >= v.threshold) == test.label.to_numpy()).mean() > 0.8


def test_loads_through_verifier_load_and_scores_alike_in_both_orders(cross):
    out, v = cross
    loaded = Verifier.load(out, device="cpu")
    assert isinstance(loaded, CrossVerifier) and loaded.threshold == v.threshold
    test = _pairs(30, 3)
    p = loaded.predict(test.question1, test.question2)
    assert np.allclose(p.probability, v.predict(test.question1, test.question2).probability, atol=1e-6)
    assert np.allclose(p.probability, loaded.predict(test.question2, test.question1).probability, atol=1e-9)
    assert np.isnan(p.similarity).all()  # a cross-encoder computes no cosine; callers keep their own
    strict = Verifier.load(out, point="precision_0.95")
    assert (
        strict.threshold
        == json.loads((out / "dupq.json").read_text())["operating_points"]["precision_0.95"]["threshold"]
        or not strict.metadata["operating_points"]["precision_0.95"]["reached"]
    )


def test_a_cross_encoder_directory_without_its_model_is_a_store_error(cross, tmp_path):
    out, _ = cross
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "dupq.json").write_text((out / "dupq.json").read_text())
    with pytest.raises(StoreError, match="holds no model"):
        Verifier.load(broken)


def test_matcher_and_dedupe_take_a_cross_encoder_verifier(cross, tiny_model_dir, tmp_path):
    from dupq.dedupe import deduplicate
    from dupq.matcher import Matcher

    out, v = cross
    stored = _pairs(30, 4)
    plain = Matcher(tiny_model_dir, device="cpu")
    verified = Matcher(tiny_model_dir, device="cpu", verifier=out, verify_below=2.0, verify_above=1.01)
    for m in (plain, verified):
        m.add(list(dict.fromkeys(stored.question2)))
    q = stored.question1.iloc[0]
    a, b = plain.match(q, k=3), verified.match(q, k=3)
    assert {m.id for m in a} == {m.id for m in b}
    cos = {m.id: m.score for m in a}
    for m in b:
        want = v.predict([q], [m.text]).probability[0]
        assert m.score == pytest.approx(want, abs=1e-6) and m.similarity == pytest.approx(cos[m.id], abs=1e-5)
    texts = list(dict.fromkeys(stored.question1.tolist() + stored.question2.tolist()))
    res = deduplicate(
        pd.DataFrame({"question": texts}),
        text_column="question",
        model=tiny_model_dir,
        threshold=0.95,
        verifier=v,  # a loaded verifier object of this kind, not only a directory
        verify_below=0.15,
        verify_above=1.01,
        workdir=tmp_path / "w",
        show_progress=False,
    )
    info = res.summary.verification
    assert info["candidate_pairs"] > 0 and info["verified"] == info["candidate_pairs"]
    assert len(res.table) == len(texts)


def test_cli_trains_a_cross_encoder_verifier(tiny_model_dir, tmp_path):
    from typer.testing import CliRunner

    from dupq.cli import app

    pairs = _pairs(120, 5)
    # a case/punctuation variant is an exact re-post to the pair loader (dropped): reword positives
    pos = pairs.label == 1
    pairs.loc[pos, "question2"] = pairs.loc[pos, "question1"].str.replace("how do i", "how can i")
    src = tmp_path / "pairs.csv"
    pairs.to_csv(src, index=False)
    out = tmp_path / "cv"
    args = ["train", str(src), "--out", str(out), "--kind", "verifier", "--verifier-head", "cross-encoder"]
    args += ["--model", str(tiny_model_dir), "--epochs", "1", "--batch-size", "16", "--no-tensorboard"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output[-2000:]
    meta = json.loads((out / "dupq.json").read_text())
    assert meta["verifier"]["type"] == "cross-encoder" and meta["split_sizes"]["train"] > 0
    assert meta["training"]["steps"] == math.ceil(meta["split_sizes"]["train"] / 16)
    assert (out / "splits").is_dir() and isinstance(Verifier.load(out), CrossVerifier)
