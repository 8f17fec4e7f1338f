"""`dupq score`: every input row back with its columns, bad rows kept with a status, metrics with labels."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from dupq.cli import app
from dupq.score import score_pairs

ROWS = [
    ("1", "How do I learn python fast?", "What is the quickest way to learn python?", "1", "keep-a"),
    ("2", "How do I learn python fast?", "", "0", "keep-b"),  # blank second question
    ("3", "   ", "Best laptop for coding?", "1", "keep-c"),  # whitespace-only first question
    ("4", "Best laptop for coding?", "best laptop for coding", "1", "keep-d"),  # same after normalising
    ("5", "How do I cook rice?", "Why is the sky blue?", "0", "keep-e"),
    ("6", "How do I fix a phone?", "How to repair my phone?", "x", "keep-f"),  # label not 0/1
]


@pytest.fixture()
def pair_file(tmp_path):
    df = pd.DataFrame(ROWS, columns=["pair_id", "question1", "question2", "is_duplicate", "note"])
    path = tmp_path / "pairs.csv"
    df.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("suffix", ["csv", "tsv", "parquet", "jsonl"])
def test_score_round_trip_keeps_every_row_and_column(tiny_model_dir, pair_file, tmp_path, suffix):
    out = tmp_path / f"scored.{suffix}"
    res = score_pairs(pair_file, out, model=tiny_model_dir)
    back = {
        "csv": lambda p: pd.read_csv(p, dtype=str, keep_default_na=False),
        "tsv": lambda p: pd.read_csv(p, sep="\t", dtype=str, keep_default_na=False),
        "parquet": pd.read_parquet,
        "jsonl": lambda p: pd.read_json(p, lines=True, dtype=False),
    }[suffix](out)
    assert len(back) == len(ROWS)
    assert back["note"].astype(str).tolist() == [r[4] for r in ROWS]  # input order and columns kept
    # "is_duplicate" is the input's label column, so every result column is prefixed
    assert back["dupq_status"].tolist() == [
        "ok",
        "missing_text:question2",
        "missing_text:question1",
        "exact",
        "ok",
        "ok",
    ]
    assert back["is_duplicate"].astype(str).tolist() == [r[3] for r in ROWS]  # the label is untouched
    t = res.table
    assert t["dupq_score"].isna().tolist() == [False, True, True, False, False, False]
    assert t.loc[3, "dupq_score"] == 1.0 and bool(t.loc[3, "dupq_is_duplicate"])
    ok = t["dupq_status"] == "ok"
    assert ((t.loc[ok, "dupq_score"] >= -1) & (t.loc[ok, "dupq_score"] <= 1)).all()
    # labelled: metrics over the scored rows with a 0/1 label (rows 1, 4, 5); row 6's "x" is not counted
    assert res.metrics["pairs"] == 3 and res.metrics["unlabelled_or_bad_label"] == 1


def test_score_cli_with_a_verifier(tiny_model_dir, pair_file, tmp_path):
    """With --verifier the verifier decides; the cosine stays in similarity."""
    from dupq.verifier import train_verifier
    from tests.test_verifier import _pairs

    vdir = tmp_path / "v"
    train_verifier(
        _pairs(80, 0), _pairs(40, 1), vdir, encoder=tiny_model_dir, head="gbdt", show_progress=False
    )
    out = tmp_path / "scored.csv"
    res = CliRunner().invoke(
        app,
        ["score", str(pair_file), "--out", str(out), "--model", str(tiny_model_dir), "--verifier", str(vdir)],
    )
    assert res.exit_code == 0, res.output
    assert "decided by the verifier" in res.output and "labelled" in res.output
    back = pd.read_csv(out)
    ok = back["dupq_status"] == "ok"
    thr = json.loads((vdir / "dupq.json").read_text())["threshold"]
    assert (back.loc[ok, "dupq_probability"].between(0, 1)).all()
    assert (back.loc[ok, "dupq_is_duplicate"] == (back.loc[ok, "dupq_score"] >= thr)).all()
    assert not back.loc[ok, "dupq_similarity"].equals(back.loc[ok, "dupq_score"])


def test_score_without_a_clash_uses_plain_names(tiny_model_dir, tmp_path):
    path = tmp_path / "p.jsonl"
    pd.DataFrame({"sentence1": ["How do I sort a list?"], "sentence2": ["Sorting a list?"]}).to_json(
        path, orient="records", lines=True
    )
    res = score_pairs(path, None, model=tiny_model_dir)
    assert list(res.table.columns) == [
        "sentence1",
        "sentence2",
        "similarity",
        "score",
        "probability",
        "is_duplicate",
        "decided_by",
        "status",
    ]
    assert res.metrics == {}


def test_score_errors_name_the_file_and_column(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\nx,y\n")
    res = CliRunner().invoke(app, ["score", str(bad), "--out", str(tmp_path / "o.csv")])
    assert res.exit_code == 2 and "bad.csv" in res.output and "question columns" in res.output
    res = CliRunner().invoke(
        app, ["score", str(bad), "-o", str(tmp_path / "o.csv"), "--question1", "a", "--question2", "zz"]
    )
    assert res.exit_code == 2 and "zz" in res.output


def test_score_with_a_verifier_encodes_each_text_once(tiny_model_dir, pair_file, tmp_path, monkeypatch):
    """The verifier's token pass gives the pooled vectors too: no separate bi-encoder pass, and the
    same similarities and probabilities as the two-pass way."""
    from dupq.embed import Embedder
    from dupq.verifier import Verifier, train_verifier
    from tests.test_verifier import _pairs

    vdir = tmp_path / "v"
    train_verifier(
        _pairs(80, 0), _pairs(40, 1), vdir, encoder=tiny_model_dir, head="gbdt", show_progress=False
    )
    from dupq.text import normalize

    ok = [r for r in ROWS if r[1].strip() and r[2].strip() and normalize(r[1]) != normalize(r[2])]
    a, b = [r[1] for r in ok], [r[2] for r in ok]
    emb = Embedder(tiny_model_dir)
    want_sim = (emb.encode(a) * emb.encode(b)).sum(axis=1)
    want_p = Verifier.load(vdir).predict(a, b).probability

    def no_pass(*args, **kwargs):
        raise AssertionError("a second transformer pass")

    monkeypatch.setattr(Embedder, "encode", no_pass)
    res = score_pairs(pair_file, model=tiny_model_dir, verifier=vdir)
    got = res.table[res.table["dupq_status"] == "ok"]
    assert got["dupq_similarity"].to_numpy() == pytest.approx(want_sim, abs=1e-5)
    assert got["dupq_probability"].to_numpy() == pytest.approx(want_p, abs=1e-6)
