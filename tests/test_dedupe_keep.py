"""Survivor rules (``--keep``): each rule picks its group's best text, and the leader grouping's
no-chaining guarantee (every member within the threshold of its representative) holds for all of them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dupq.dedupe import deduplicate, group_vectors
from dupq.dedupe.keep import KEEP_RULES, parse_keep, value_ranks
from dupq.errors import InputError
from tests.test_dedupe import THRESHOLD, _crafted_frame, _groups

RULES = [*KEEP_RULES, "column:votes", "column:votes:desc"]


def _clustered(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(30, 16))
    vecs = np.concatenate([c + rng.normal(scale=0.35, size=(12, 16)) for c in centres]).astype(np.float32)
    return vecs / np.linalg.norm(vecs, axis=1, keepdims=True)


@pytest.mark.parametrize("rule", RULES)
def test_every_rule_keeps_the_no_chaining_guarantee_and_the_best_member(rule):
    vecs = _clustered()
    n = len(vecs)
    rng = np.random.default_rng(1)
    texts = ["x" * int(m) for m in rng.integers(5, 60, size=n)]
    votes = rng.integers(0, 1000, size=n).tolist()
    weights = rng.integers(1, 4, size=n)
    t = 0.85
    rep = group_vectors(vecs, t, k=4, keep=rule, texts=texts, values=votes, weights=weights)
    sims = (vecs * vecs[rep]).sum(1)
    assert (sims >= t - 1e-5).all(), rule  # no member below the threshold to its representative
    assert len(set(rep.tolist())) < n  # something was grouped
    key = {
        "first": lambda i: i,
        "longest": lambda i: -len(texts[i]),
        "shortest": lambda i: len(texts[i]),
        "most-frequent": lambda i: -weights[i],
        "column:votes": lambda i: votes[i],
        "column:votes:desc": lambda i: -votes[i],
    }.get(rule)
    if key is None:
        return  # most-neighbours: the degree order, covered by test_dedupe
    for r in set(rep.tolist()):
        members = np.flatnonzero(rep == r)
        assert key(r) == min(key(int(m)) for m in members), (rule, r, members)


def test_parse_keep_and_value_ranks():
    assert str(parse_keep("column:created:at:desc")) == "column:created:at:desc"
    assert parse_keep("column:votes").descending is False
    for bad in ("biggest", "column:", ""):
        with pytest.raises(InputError, match="keep"):
            parse_keep(bad)
    # numbers compare as numbers (10 > 9), text as text; empty values always lose
    assert value_ranks(["9", "10", "", None], descending=True).tolist()[:2] == [1, 0]
    assert value_ranks(["9", "10", "", None], descending=False).tolist()[:2] == [0, 1]
    ranks = value_ranks(["2024-01-02", "2023-12-31", ""], descending=False)
    assert ranks[1] < ranks[0] < ranks[2]


EXPECTED_REPS = {  # representative id of groups A, B, C of the crafted file under each rule
    "first": {"a1", "b1", "c1"},
    "longest": {"a3", "b2", "c2"},
    "shortest": {"a1", "b1", "c1"},
    "most-frequent": {"a1", "b1"},  # C's two texts tie on rows: the default order decides
    "column:votes:desc": {"a2", "b3", "c2"},  # a2/b3 are exact copies of a1/b1 with more votes
}


@pytest.mark.parametrize("rule", sorted(EXPECTED_REPS))
def test_keep_rules_end_to_end(tiny_model, rule):
    df = _crafted_frame()
    df["votes"] = [1, 1, 0, 9, 1, 0, 2, 0, 3, 5, 7, 0]
    res = deduplicate(
        df,
        text_column="question",
        id_column="id",
        model=tiny_model,
        threshold=THRESHOLD,
        keep=rule,
        show_progress=False,
    )
    out = res.table
    reps = set(out.loc[out["is_representative"], "id"])
    assert EXPECTED_REPS[rule] <= reps
    assert res.summary.keep == str(parse_keep(rule))
    base = deduplicate(
        df, text_column="question", id_column="id", model=tiny_model, threshold=THRESHOLD, show_progress=False
    )
    assert _groups(out, "id") == _groups(base.table, "id")  # these groups are cliques: same partition
    for _, row in out[~out["is_representative"] & out["group_id"].notna()].iterrows():
        rep = out[(out["group_id"] == row["group_id"]) & out["is_representative"]]["id"].item()
        assert row["duplicate_of"] == rep
    assert "votes" in out.columns


def test_keep_column_must_exist(tiny_model):
    with pytest.raises(InputError, match="nope") as exc:
        deduplicate(
            _crafted_frame(),
            text_column="question",
            model=tiny_model,
            keep="column:nope",
            show_progress=False,
        )
    assert exc.value.column == "nope"
    with pytest.raises(InputError, match="keep"):
        deduplicate(pd.DataFrame({"q": ["a"]}), text_column="q", model=tiny_model, keep="best")
