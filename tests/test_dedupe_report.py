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
from dupq.dedupe.report import DATA_FILE, parse_report
from dupq.errors import InputError
from tests.conftest import REPO
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
    res, tmp, df = run
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
        assert g["kept"]["text"] == kept["question"].item()  # its own text, not its key's first row's
        texts = dict(zip(rows["id"], rows["question"], strict=True))
        assert all(m[1] == texts[m[0]] for m in g["members"])
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
    copy = [m for g in data["groups"] for m in g["members"] if m[0] == "q-copy"]
    assert [[m[0], m[1], m[4]] for m in copy] == [["q-copy", df.loc[0, "question"].upper(), "q0"]]


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


def test_every_grouped_row_of_the_sample_is_in_the_report_with_its_own_text(tiny_model_dir, tmp_path):
    """Issue 28: a reviewer deciding about a row must see that row. The grouped rows come from the output
    table (whatever the exact-duplicate key joins), and each must be listed with its own id and its own
    text — as ``dupq report WORKDIR`` writes it too — and its text be in the page unescaped."""
    sample = REPO / "data" / "sample_questions.csv"
    r = CliRunner().invoke(
        app,
        ["dedupe", str(sample), "-t", "question", "--id-column", "id", "--model", str(tiny_model_dir),
         "--threshold", "0.99", "-o", str(tmp_path / "out.csv"), "--workdir", str(tmp_path / "work"),
         "--report", str(tmp_path / "r.html"), "--quiet"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["report", str(tmp_path / "work"), "-o", str(tmp_path / "again.html")])
    assert r.exit_code == 0, r.output
    out = pd.read_csv(tmp_path / "out.csv", dtype=str, keep_default_na=False)
    grouped = out[out["group_id"] != ""]
    grouped = grouped[grouped.groupby("group_id")["id"].transform("size") >= 2]
    by_id = grouped.set_index("id")
    for name in ("r.html", "again.html"):
        page = (tmp_path / name).read_text(encoding="utf-8")
        data = parse_report(page)
        assert data["groups_not_inline"] == {"groups": 0, "rows": 0}
        shown = {}
        for g in data["groups"]:
            for row_id, text in [(g["kept"]["id"], g["kept"]["text"])] + [(m[0], m[1]) for m in g["members"]]:
                assert row_id not in shown, row_id  # each row once, under its own id
                shown[row_id] = text
            for m in g["members"]:
                if m[4] is not None:  # an exact copy names a row of its own group with the same score
                    assert by_id.loc[m[4], "group_id"] == str(g["group_id"])
                    assert m[2] == pytest.approx(
                        1.0 if m[4] == g["kept"]["id"] else float(by_id.loc[m[4], "score"])
                    )
        assert shown == dict(zip(grouped["id"], grouped["question"], strict=True))
        for text in grouped["question"]:
            assert json.dumps(text, ensure_ascii=False).replace("</", "<\\/") in page
            if json.dumps(text, ensure_ascii=False)[1:-1] == text:
                assert text in page  # as it is: not HTML-escaped, nothing stripped
    # the sample has exact duplicates that differ from their key's first row: they are listed as such
    copies = [(m, g["kept"]) for g in data["groups"] for m in g["members"] if m[4] is not None]
    assert any(m[1] != (kept["text"] if m[4] == kept["id"] else shown[m[4]]) for m, kept in copies)
    assert "exact: same key as row " in page


def test_a_kept_row_chosen_among_exact_copies_shows_its_own_text(tiny_model, tmp_path):
    """With ``--keep column:…`` the row standing for a text is not always its first row: the kept row,
    and the borderline pair's side, show the text of the row whose id they show."""
    df = pd.DataFrame(
        {
            "id": ["a", "b", "c", "d"],
            "q": ["What causes inflation?", "WHAT CAUSES INFLATION??", "What causes inflation in 2020?", "x"],
            "updated": [1, 5, 3, 2],
        }
    )
    deduplicate(
        df,
        text_column="q",
        id_column="id",
        model=tiny_model,
        threshold=0.0,
        keep="column:updated:desc",
        report=tmp_path / "r.html",
        show_progress=False,
    )
    data = parse_report((tmp_path / "r.html").read_text(encoding="utf-8"))
    kept = {g["kept"]["id"]: g["kept"]["text"] for g in data["groups"]}
    texts = dict(zip(df["id"], df["q"], strict=True))
    assert kept == {k: texts[k] for k in kept} and "b" in kept
    assert [m[:2] + m[4:] for g in data["groups"] for m in g["members"] if m[0] == "a"] == [
        ["a", "What causes inflation?", "b"]
    ]
    sides = [(p["id_a"], p["text_a"], p["copies_a"]) for p in data["borderline"]]
    sides += [(p["id_b"], p["text_b"], p["copies_b"]) for p in data["borderline"]]
    assert sides and all(t == texts[i] for i, t, _ in sides)
    assert {(i, c) for i, _, c in sides if i in ("a", "b")} == {("b", 1)}  # the key's rows: b stands for a


def test_rows_matched_to_an_existing_base_are_listed_with_their_own_texts(tiny_model, tmp_path):
    """A group of rows that duplicate a base row has no kept row in this table: its members are still
    each row as it is, the exact copy marked as such, and ``duplicate_of`` names the base row."""
    base = pd.DataFrame({"id": ["b1", "b2"], "q": ["How do I reset my password?", "Best pizza in Rome"]})
    new = pd.DataFrame(
        {
            "id": ["n1", "n2", "n3"],
            "q": ["how do I reset my password", "HOW DO I RESET MY PASSWORD??", "Cats?"],
        }
    )
    deduplicate(
        new,
        text_column="q",
        id_column="id",
        against=base,
        model=tiny_model,
        threshold=0.999,
        report=tmp_path / "r.html",
        show_progress=False,
    )
    data = parse_report((tmp_path / "r.html").read_text(encoding="utf-8"))
    assert [(g["kept"], g["rows"]) for g in data["groups"]] == [(None, 2)]
    assert [[m[0], m[1], m[3], m[4]] for m in data["groups"][0]["members"]] == [
        ["n1", "how do I reset my password", "b1", None],
        ["n2", "HOW DO I RESET MY PASSWORD??", "b1", "n1"],
    ]


def test_report_data_of_an_older_dupq_is_not_rendered(tmp_path):
    """A version-1 data file listed exact duplicates with their key's first text: rendering it would show
    rows as they are not, so ``dupq report`` asks for a re-run (which re-uses the work directory)."""
    (tmp_path / DATA_FILE).write_text(json.dumps({"version": 1, "summary": {}}), encoding="utf-8")
    r = CliRunner().invoke(app, ["report", str(tmp_path), "-o", str(tmp_path / "x.html")])
    assert r.exit_code == 2 and "version 1" in r.output and "re-run" in r.output
    assert not (tmp_path / "x.html").exists()


def test_row_texts_reads_back_only_what_it_must(tmp_path):
    """Own texts: first rows of a key from the scan, the others from the file, across chunk borders; a
    file changed since the scan is refused rather than shown."""
    from dupq.dedupe.rowtext import row_texts
    from dupq.dedupe.scan import Source, scan

    texts = ["Why?", "why", "Other question", "WHY??", "", "other question!"]
    path = tmp_path / "q.csv"
    pd.DataFrame({"q": texts}).to_csv(path, index=False)
    sc = scan(Source(path, "q", None, 2, None, None), show_progress=False)
    assert sc.counts.sum() == 5
    got = row_texts(sc, [5, 0, 3, 3, 1])
    assert got == {r: texts[r] for r in (0, 1, 3, 5)}
    assert row_texts(sc, []) == {}
    with pytest.raises(ValueError, match="no text"):
        row_texts(sc, [4])
    pd.DataFrame({"q": texts[:3] + ["a different question"] + texts[4:]}).to_csv(path, index=False)
    first_rows = [int(r) for r in sc.first_row]
    assert row_texts(sc, first_rows) == {r: texts[r] for r in first_rows}  # the file is not read
    with pytest.raises(InputError, match="changed") as err:
        row_texts(sc, [3])
    assert err.value.row == 4


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
