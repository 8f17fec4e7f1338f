"""What a user gets with no options: the shipped verifier, the fast backend, the stage that decided.

The shipped verifier is package data (``dupq/verifiers/default``) fit by ``make default-verifier``;
these tests check the file a user installs: it loads without pickle, its recorded hash matches, and it
scores the recipe's own check pairs as the recipe's log (its ``dupq.json``) says it did.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest

from dupq.card import DEDUPE_POINT, MATCH_POINT, ModelCard
from dupq.io import sha256_file
from dupq.verifier.model import default_verifier_dir

SHIPPED = default_verifier_dir()


def test_the_shipped_verifier_is_small_honest_and_pickle_free():
    files = {p.name: p.stat().st_size for p in SHIPPED.iterdir()}
    assert set(files) == {"head.npz", "dupq.json"}, files
    assert sum(files.values()) < 5_000_000, files  # "a few MB at most"
    card = ModelCard.read(SHIPPED)
    assert card is not None and card.is_verifier and card.encoder == "default"
    assert card.provenance["head_sha256"] == sha256_file(SHIPPED / "head.npz")
    with np.load(SHIPPED / "head.npz", allow_pickle=False) as z:  # raises on any pickled object
        assert "n_features" in z.files
    data = {d["name"]: d for d in card.provenance["data"]}
    assert {"quora", "paws-qqp", "paws-wiki", "mqp", "semeval"} <= set(data)
    for d in data.values():
        assert d["licence"] and d["pairs"]["train"] > 0 and d["pairs"]["dev"] > 0
    assert card.provenance["command"].startswith("python benchmarks/default_verifier.py")
    assert card.point(MATCH_POINT) is not None and DEDUPE_POINT in card.operating_points
    assert (card.verifier or {}).get("guard"), "the cosine guard is part of the shipped decision"


@pytest.mark.slow
def test_the_shipped_verifier_scores_its_check_pairs_as_recorded(default_model):
    from dupq.verifier import Verifier

    v = Verifier.load("default", encoder=default_model)
    assert v.encoder is default_model  # the stock encoder is shared, not loaded twice
    checks = ModelCard.read(SHIPPED).provenance["checks"]
    got = v.predict([c["question1"] for c in checks], [c["question2"] for c in checks]).probability
    want = np.array([c["probability"] for c in checks])
    np.testing.assert_allclose(got, want, atol=2e-3)


def test_a_tampered_head_is_refused(tmp_path):
    import shutil

    from dupq.errors import StoreError
    from dupq.verifier import Verifier

    copy = tmp_path / "v"
    shutil.copytree(SHIPPED, copy)
    with np.load(copy / "head.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["baseline"] = arrays["baseline"] + 1.0
    np.savez(copy / "head.npz", **arrays)
    with pytest.raises(StoreError, match="sha256"):
        Verifier.load(copy)


@pytest.mark.slow
def test_matcher_defaults_to_the_shipped_verifier_and_says_so(default_model):
    from dupq.matcher import Matcher

    m = Matcher(default_model)
    assert m.verifier is not None and m.verifier.source == str(SHIPPED)
    m.add(["How do I delete a local branch in git?", "What is the capital of France?"])
    hits = m.match("How do I remove a branch from the remote repository?", k=2)
    by = {h.text: h.decided_by for h in hits}
    assert by["How do I delete a local branch in git?"] == "verifier"  # in the band: verified
    assert by["What is the capital of France?"] == "cosine"  # far below it: the cosine says no, unverified
    assert not any(h.is_duplicate for h in hits)  # local vs remote: the planted near-miss of the demo
    assert Matcher(default_model, verifier=None).verifier is None
    same = m.match("how do i delete a local branch in git", k=1)[0]
    assert same.exact and same.decided_by == "exact"


def test_auto_uses_a_model_directory_s_own_verifier_and_none_for_other_encoders(tiny_model_dir, tmp_path):
    import shutil

    from dupq.verifier.choose import choose_verifier

    assert choose_verifier("auto", tiny_model_dir) is None  # the shipped head reads the stock encoder only
    assert choose_verifier(None, None) is None and choose_verifier("none", None) is None
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    shutil.copytree(SHIPPED, model / "verifier")
    assert choose_verifier("auto", model) == model / "verifier"
    assert choose_verifier("default", tiny_model_dir) == "default"


def test_the_default_backend_is_onnx_int8_with_torch_as_the_noted_fallback(tiny_model, monkeypatch, caplog):
    import dupq.backends as backends

    monkeypatch.delenv("DUPQ_BACKEND", raising=False)
    if "onnx-int8" in backends.available_backends():
        assert backends.resolve_backend(tiny_model, "default") in ("onnx-int8", "torch")
    monkeypatch.setattr(backends, "available_backends", lambda: ["torch"])
    backends._noted.clear()
    with caplog.at_level(logging.WARNING, logger="dupq.backends"):
        assert backends.resolve_backend(tiny_model, "default") == "torch"
        assert backends.resolve_backend(tiny_model, "default") == "torch"
    notes = [r.getMessage() for r in caplog.records if "onnxruntime" in r.getMessage()]
    assert len(notes) == 1, notes  # one line, once
    monkeypatch.setenv("DUPQ_BACKEND", "torch")
    assert backends.resolve_backend(tiny_model, "default") == "torch"


def test_score_says_which_stage_decided_each_row(tiny_model, tmp_path):
    from dupq.score import score_pairs

    path = tmp_path / "pairs.csv"
    pd.DataFrame(
        {"question1": ["What is C#?", "What is C#?", "  "], "question2": ["what is c#", "What is C++?", "x"]}
    ).to_csv(path, index=False)
    table = score_pairs(path, model=tiny_model).table
    assert table["decided_by"].tolist()[:2] == ["exact", "cosine"]  # tiny model: no verifier (auto)
    assert pd.isna(table["decided_by"].iloc[2]) and table["status"].iloc[2].startswith("missing_text")


def test_dedupe_summary_says_which_stage_decided(tiny_model, tmp_path):
    from dupq.dedupe import deduplicate

    res = deduplicate(
        pd.DataFrame({"q": ["How do I learn Python?", "how do i learn python", "What is C#?"]}),
        text_column="q",
        model=tiny_model,
        show_progress=False,
        summary_out=tmp_path / "s.json",
    )
    assert "decided by         the cosine alone" in res.summary.format()
    assert json.loads((tmp_path / "s.json").read_text())["verification"] is None


def test_one_pass_queries_give_the_two_pass_answers(tiny_model_dir, tmp_path, monkeypatch):
    """With a verifier on the same model and backend, a query is encoded once (its token vectors and
    its pooled vector from one pass); the answers are those of encoding it twice."""
    from dupq.matcher import Matcher
    from dupq.verifier import train_verifier
    from tests.test_verifier import _pairs

    vdir = tmp_path / "v"
    train_verifier(_pairs(120, 0), _pairs(60, 1), vdir, encoder=tiny_model_dir, show_progress=False)
    m = Matcher(tiny_model_dir, verifier=vdir)
    stored = [f"How do I cook {w} rice in a {p}?" for w in ("brown", "white", "wild") for p in ("pot", "pan")]
    m.add(stored)
    assert m._one_pass()
    calls = []
    real = m.embedder.encode_flagged
    monkeypatch.setattr(m.embedder, "encode_flagged", lambda *a, **k: calls.append(a) or real(*a, **k))
    queries = ["How do I cook brown rice in a pan?", "how to cook wild rice"]
    one = m.match(queries, k=4, exact_first=False)
    assert not calls  # the queries were not encoded a second time
    monkeypatch.setattr(Matcher, "_one_pass", lambda self: False)
    two = m.match(queries, k=4, exact_first=False)
    for a, b in zip(one, two, strict=True):
        assert [x.id for x in a] == [x.id for x in b]
        np.testing.assert_allclose([x.score for x in a], [x.score for x in b], atol=1e-5)
        np.testing.assert_allclose([x.similarity for x in a], [x.similarity for x in b], atol=1e-5)
