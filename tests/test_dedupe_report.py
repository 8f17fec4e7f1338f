"""The review report: one self-contained HTML file whose data block matches the output table and the
summary JSON — every group, its kept row and each member's score; the what-if ladder equals fresh runs."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dupq.cli import app
from dupq.dedupe import deduplicate
from dupq.dedupe.report import parse_report
from tests.test_dedupe_rethreshold import _questions

THRESHOLD = 0.985


@pytest.fixture(scope="module")
def run(tiny_model, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    df = _questions()
    df.loc[len(df)] = ["q-copy", df.loc[0, "question"].upper()]  # an exact copy: score 1.0 to its text
    df.loc[len(df)] = ["q-empty", ""]
    res = deduplicate(
        df,
        text_column="question",
        id_column="id",
        model=tiny_model,
        threshold=THRESHOLD,
        k=len(df),  # every text's list complete down to the floor: each what-if row is exact
        out=tmp / "out.csv",
        report=tmp / "report.html",
        workdir=tmp / "work",
        show_progress=False,
    )
    return res, tmp, df


def test_every_group_and_score_matches_the_output_table(run):
    res, tmp, _ = run
    page = (tmp / "report.html").read_text(encoding="utf-8")
    data = parse_report(page)
    out = pd.read_csv(tmp / "out.csv", dtype=str, keep_default_na=False)
    grouped = out[out["group_id"] != ""]
    sizes = grouped.groupby("group_id").size()
    multi = sizes[sizes >= 2]
    assert data["groups_not_inline"] == {"groups": 0, "rows": 0}
    assert len(data["groups"]) == len(multi) == res.summary.duplicate_groups > 0
    assert [g["rows"] for g in data["groups"]] == sorted(multi.tolist(), reverse=True)
    for g in data["groups"]:
        rows = grouped[grouped["group_id"] == str(g["group_id"])]
        kept = rows[rows["is_representative"] == "True"]
        assert g["kept"]["id"] == kept["id"].item()
        assert g["kept"]["text"].lower() == kept["question"].item().lower()
        members = {m[0]: m[2] for m in g["members"]}
        expected = dict(
            zip(
                rows.loc[rows["is_representative"] == "False", "id"],
                rows.loc[rows["is_representative"] == "False", "score"].astype(float),
                strict=True,
            )
        )
        assert members == pytest.approx(expected, abs=1e-6)
        assert all(m[3] == g["kept"]["id"] for m in g["members"])
    assert any(m[0] == "q-copy" and m[2] == 1.0 for g in data["groups"] for m in g["members"])


def test_the_numbers_equal_the_summary_json_and_the_what_ifs_equal_fresh_runs(run, tiny_model):
    res, tmp, df = run
    data = parse_report((tmp / "report.html").read_text(encoding="utf-8"))
    summary = json.loads((tmp / "out.summary.json").read_text())
    for key in (
        "rows",
        "unique_texts",
        "groups",
        "duplicate_groups",
        "rows_marked_duplicate",
        "similar_pairs",
    ):
        assert data["summary"][key] == summary[key], key
    current = [r for r in data["whatif"] if r["current"]]
    assert len(current) == 1
    c = current[0]
    assert (c["pairs"], c["groups"], c["rows_merged"]) == (
        summary["similar_pairs"],
        summary["duplicate_groups"],
        summary["rows_marked_duplicate"],
    )
    assert [r["threshold"] for r in data["whatif"]][:2] == [0.94, 0.95]  # down to the search floor
    assert all(r["texts_cut_at_k"] == 0 for r in data["whatif"])  # k covers every text: all rows exact
    for r in data["whatif"]:
        if r["threshold"] in (0.95, 0.99):
            fresh = deduplicate(
                df,
                text_column="question",
                id_column="id",
                model=tiny_model,
                threshold=r["threshold"],
                k=len(df),
                show_progress=False,
            ).summary
            assert (r["pairs"], r["groups"], r["rows_merged"]) == (
                fresh.similar_pairs,
                fresh.duplicate_groups,
                fresh.rows_marked_duplicate,
            )
    hist = data["histogram"]
    assert sum(hist["counts"]) >= data["whatif"][0]["pairs"] > c["pairs"]  # every candidate down to the floor
    assert len(hist["counts"]) == len(hist["edges"]) - 1


def test_borderline_pairs_sit_on_both_sides_of_the_threshold(run):
    _, tmp, _ = run
    data = parse_report((tmp / "report.html").read_text(encoding="utf-8"))
    border = data["borderline"]
    assert border and any(p["above"] for p in border) and any(not p["above"] for p in border)
    for p in border:
        assert p["above"] == (p["score"] >= THRESHOLD - 1e-6)
        assert {"id_a", "id_b", "text_a", "text_b", "same_group"} <= set(p)
    distance = sorted(abs(p["score"] - THRESHOLD) for p in border)
    assert distance[0] < 0.01


def test_the_page_is_self_contained_and_dupq_report_rewrites_it(run, tmp_path):
    _, tmp, _ = run
    page = (tmp / "report.html").read_text(encoding="utf-8")
    assert "<svg" in page and "threshold" in page
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=|url\(|@import|fetch\(", page)
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", page)
    r = CliRunner().invoke(app, ["report", str(tmp / "work"), "-o", str(tmp_path / "again.html")])
    assert r.exit_code == 0, r.output
    assert parse_report((tmp_path / "again.html").read_text(encoding="utf-8")) == parse_report(page)
    r = CliRunner().invoke(app, ["report", str(tmp_path), "-o", str(tmp_path / "x.html")])
    assert r.exit_code == 2 and "report-data.json" in r.output


def test_texts_cannot_break_out_of_the_data_block(tiny_model, tmp_path):
    df = pd.DataFrame({"q": ["What is </script><script>alert(1)</script>?", "What is </script> ?", "other"]})
    deduplicate(
        df, text_column="q", model=tiny_model, threshold=0.5, report=tmp_path / "r.html", show_progress=False
    )
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert page.count("</script>") == 2  # the data block's and the UI script's own
    texts = {m[1] for g in parse_report(page)["groups"] for m in g["members"]}
    texts |= {g["kept"]["text"] for g in parse_report(page)["groups"]}
    assert "What is </script><script>alert(1)</script>?" in texts


def test_large_runs_list_the_top_groups_and_count_the_rest(tiny_model, tmp_path, monkeypatch):
    import dupq.dedupe.report as report

    monkeypatch.setattr(report, "MAX_GROUPS", 3)
    monkeypatch.setattr(report, "MAX_MEMBERS", 1)
    res = deduplicate(
        _questions(),
        text_column="question",
        model=tiny_model,
        threshold=0.95,
        k=3,
        report=tmp_path / "r.html",
        show_progress=False,
    )
    data = parse_report((tmp_path / "r.html").read_text(encoding="utf-8"))
    assert len(data["groups"]) == 3
    assert data["groups_not_inline"]["groups"] == res.summary.duplicate_groups - 3
    listed = sum(g["rows"] for g in data["groups"])
    assert (
        listed + data["groups_not_inline"]["rows"]
        == res.summary.rows_marked_duplicate + res.summary.duplicate_groups
    )
    assert all(len(g["members"]) == 1 and g["more"] == g["rows"] - 2 for g in data["groups"])
    # k = 3 under the tiny model's high cosines: below the threshold the rungs are lower bounds, and say so
    cut = {r["threshold"]: r["texts_cut_at_k"] for r in data["whatif"]}
    assert cut[0.95] == 0 and cut[0.96] == 0 and cut[min(cut)] > 0


def test_nearest_is_a_stable_argsort_prefix():
    """The borderline pairs' selection equals a stable full sort's first ``count`` (ties included)."""
    from dupq.dedupe.report import nearest

    rng = np.random.default_rng(0)
    for n, count in [(1000, 300), (50, 300), (1000, 1), (0, 300)]:
        d = rng.integers(0, 40, n).astype(np.float64) / 40  # many ties
        np.testing.assert_array_equal(nearest(d, count), np.argsort(d, kind="stable")[:count])


def test_leader_ladder_gives_group_pairs_groups_on_every_subset():
    """The what-if ladder's shared neighbour lists, masked per threshold, group exactly as a fresh
    leader pass on that threshold's pairs (with text weights, as the report passes them)."""
    from dupq.dedupe.group import LeaderLadder, group_pairs, neighbour_lists

    rng = np.random.default_rng(1)
    n = 400
    key = np.unique(rng.integers(0, n * n, 6000))
    a, b = key // n, key % n
    a, b = np.minimum(a, b)[a != b], np.maximum(a, b)[a != b]
    key = np.unique(a * n + b)
    a, b = key // n, key % n
    score = rng.random(len(a)).astype(np.float32)
    weights = rng.integers(1, 4, n)
    ladder = LeaderLadder(n, a, b)
    for x in (0.0, 0.3, 0.6, 0.9, 1.1):
        use = score >= np.float32(x)
        expected = group_pairs(n, a[use], b[use], weights=weights)
        np.testing.assert_array_equal(ladder.reps(use, weights), expected)
    with pytest.raises(ValueError, match="distinct"):
        neighbour_lists(n, np.array([1, 1]), np.array([2, 2]), with_pairs=True)
