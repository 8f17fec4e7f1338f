"""Review decisions: a pair marked "not a duplicate" is never grouped, one marked "duplicate" always is;
the marks file is an ordinary labelled pair file that ``dupq train --extra-pairs`` also takes."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dupq.cli import app
from dupq.datamodels import Splits
from dupq.dedupe import deduplicate, similar_pairs
from dupq.dedupe.decisions import Decisions, constrained_leader
from dupq.dedupe.keep import KeepRule, priority
from dupq.errors import InputError
from dupq.training import _with_extra_pairs
from dupq.vectors import connected_components
from tests.test_dedupe import THRESHOLD, _crafted_frame
from tests.test_dedupe_keep import _clustered

MARK_COLUMNS = ["qid1", "qid2", "question1", "question2", "label", "score"]  # the report's export


def _marks(path, rows) -> None:
    pd.DataFrame(rows, columns=MARK_COLUMNS).to_csv(path, index=False)


def _group_of(df: pd.DataFrame, rid: str):
    return df.loc[df["id"] == rid, "group_id"].item()


def test_decisions_end_to_end(tiny_model, tmp_path):
    df = _crafted_frame()
    text = dict(zip(df["id"], df["question"], strict=True))
    marks = tmp_path / "marks.csv"
    _marks(
        marks,
        [
            ("a1", "a3", text["a1"], text["a3"], 0, 0.994),  # grouped by the model: split them
            ("s4", "c1", text["s4"], text["c1"], 1, 0.5),  # far apart: join them
            ("x", "y", "not in the input", text["b1"], 1, 0.9),  # names a text the input lacks
        ],
    )
    kw = dict(
        text_column="question", id_column="id", model=tiny_model, threshold=THRESHOLD, show_progress=False
    )
    before = deduplicate(df, **kw).table
    assert _group_of(before, "a1") == _group_of(before, "a3")
    assert _group_of(before, "s4") != _group_of(before, "c1")
    res = deduplicate(df, decisions=marks, **kw)
    after = res.table
    assert _group_of(after, "a1") == _group_of(after, "a2")  # exact copies stay one text
    assert _group_of(after, "a1") != _group_of(after, "a3")
    assert _group_of(after, "s4") == _group_of(after, "c1") == _group_of(after, "c2")
    assert res.summary.decisions == {
        "file": str(marks),
        "must_link": 1,
        "cannot_link": 1,
        "texts_not_in_input": 1,
        "rows_skipped": 0,
    }
    with pytest.raises(InputError, match="leader"):
        deduplicate(df, decisions=marks, cluster="components", **kw)


def test_conflicting_and_bad_marks_name_the_row(tiny_model, tmp_path):
    df = _crafted_frame()
    t = dict(zip(df["id"], df["question"], strict=True))
    kw = dict(text_column="question", model=tiny_model, threshold=THRESHOLD, show_progress=False)
    chain = tmp_path / "chain.csv"
    _marks(
        chain,
        [
            ("s1", "s2", t["s1"], t["s2"], 1, 0),
            ("s2", "s3", t["s2"], t["s3"], 1, 0),
            ("s1", "s3", t["s1"], t["s3"], 0, 0),
        ],
    )
    with pytest.raises(InputError, match="chain") as exc:
        deduplicate(df, decisions=chain, **kw)
    assert exc.value.row == 3 and exc.value.file == str(chain)
    both = tmp_path / "both.csv"
    _marks(both, [("s1", "s2", t["s1"], t["s2"], 1, 0), ("s2", "s1", t["s2"], t["s1"], 0, 0)])
    with pytest.raises(InputError, match="both") as exc:
        deduplicate(df, decisions=both, **kw)
    assert exc.value.row == 2
    bad = tmp_path / "bad.csv"
    _marks(bad, [("s1", "s2", t["s1"], t["s2"], "maybe", 0)])
    with pytest.raises(InputError) as exc:
        deduplicate(df, decisions=bad, **kw)
    assert exc.value.row == 1 and exc.value.column == "label"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_constraints_always_hold_and_unforced_members_stay_within_the_threshold(seed):
    vecs = _clustered(seed)
    n, t = len(vecs), 0.85
    a, b, _ = similar_pairs(vecs, t, k=6)
    rng = np.random.default_rng(seed)
    sel = rng.choice(len(a), 40, replace=False)
    cannot = (a[sel], b[sel])  # pairs the model links, marked not duplicates
    m1, m2 = rng.choice(n, 15, replace=False), rng.choice(n, 15, replace=False)
    ok = m1 != m2
    must = (np.minimum(m1, m2)[ok], np.maximum(m1, m2)[ok])  # random far pairs, marked duplicates
    # a cannot pair that a chain of must pairs joins would be refused: leave those out
    comp = connected_components(n, must[0], must[1])
    keep_c = comp[cannot[0]] != comp[cannot[1]]
    d = Decisions(must[0], must[1], cannot[0][keep_c], cannot[1][keep_c])
    deg = np.bincount(a, minlength=n) + np.bincount(b, minlength=n)
    rep = constrained_leader(n, a, b, priority(KeepRule("most-neighbours"), deg, np.ones(n, np.int64)), d)
    assert (rep[d.must_a] == rep[d.must_b]).all()
    assert (rep[d.cannot_a] != rep[d.cannot_b]).all()
    forced = np.isin(np.arange(n), np.concatenate([d.must_a, d.must_b]))
    sims = (vecs * vecs[rep]).sum(1)
    assert (sims[~forced] >= t - 1e-5).all()
    assert len(set(rep.tolist())) < n


def test_marks_are_extra_training_pairs_without_dev_test_leaks(tmp_path):
    marks = tmp_path / "marks.csv"
    _marks(
        marks,
        [
            ("1", "2", "how to cook rice", "best way to cook rice", 1, 0.9),
            ("3", "4", "how to cook pasta", "is the sky blue", 0, 0.8),
        ],
    )
    cols = ["qid1", "qid2", "question1", "question2", "label", "source_row"]
    train = pd.DataFrame([("a", "b", "x one", "x two", 1, 1)], columns=cols)
    dev = pd.DataFrame([("c", "d", "Is the sky blue?", "why is the sky blue", 1, 1)], columns=cols)
    splits = Splits(train=train, dev=dev, test=dev.iloc[:0], seed=0)
    out, info = _with_extra_pairs(train, splits, [marks])
    assert len(out) == 2 and info["added"] == 1 and info["left_out_overlapping_dev_test"] == 1
    assert out.iloc[1]["question2"] == "best way to cook rice" and out.iloc[1]["label"] == 1


def test_cli_dedupe_decisions_and_train_extra_pairs(tiny_model_dir, tmp_path):
    path = tmp_path / "q.csv"
    df = _crafted_frame()
    df.to_csv(path, index=False)
    t = dict(zip(df["id"], df["question"], strict=True))
    marks = tmp_path / "marks.csv"
    _marks(marks, [("a1", "a3", t["a1"], t["a3"], 0, 0.99)])
    out = tmp_path / "out.csv"
    r = CliRunner().invoke(
        app,
        [
            "dedupe",
            str(path),
            "-t",
            "question",
            "--id-column",
            "id",
            "-m",
            str(tiny_model_dir),
            "--threshold",
            str(THRESHOLD),
            "-o",
            str(out),
            "-q",
            "--decisions",
            str(marks),
        ],
    )
    assert r.exit_code == 0, r.output
    assert "1 cannot-link" in r.output
    res = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert _group_of(res, "a1") != _group_of(res, "a3")
    from tests.test_training import _pairs

    pairs = tmp_path / "pairs.csv"
    _pairs(24, seed=5).drop(columns="source_row").to_csv(pairs, index=False)
    model = tmp_path / "model"
    r = CliRunner().invoke(
        app,
        [
            "train",
            str(pairs),
            "--out",
            str(model),
            "--model",
            str(tiny_model_dir),
            "--max-steps",
            "2",
            "--batch-size",
            "8",
            "--eval-steps",
            "1",
            "--no-tensorboard",
            "--extra-pairs",
            str(marks),
        ],
    )
    assert r.exit_code == 0, r.output
    meta = json.loads((model / "dupq.json").read_text())
    assert meta["extra_pairs"]["added"] == 1 and meta["extra_pairs"]["files"][0]["path"] == str(marks)
