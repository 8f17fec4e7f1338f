"""`dupq index build/add`, `dupq match`: the commands a user runs, on real files and the tiny model."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from dupq.cli import app
from dupq.matcher import Matcher

runner = CliRunner()


def test_index_build_add_match(tiny_model_dir, tmp_path):
    q = tmp_path / "questions.csv"
    q.write_text(
        "id,question,topic\n1,How do I learn Python?,code\n2,Best way to cook rice?,food\n"
        "3,How to lose weight fast?,health\n"
    )
    more = tmp_path / "more.tsv"
    more.write_text("id\tquestion\n4\tHow can I learn python quickly?\n")
    store = tmp_path / "store"

    r = runner.invoke(
        app,
        ["index", "build", str(q), "--text-column", "question", "--id-column", "id",
         "--metadata-column", "topic", "--model", str(tiny_model_dir), "--out", str(store)],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "stored 3 questions" in r.output

    r = runner.invoke(
        app, ["index", "add", str(store), str(more), "--text-column", "question", "--id-column", "id"]
    )
    assert r.exit_code == 0, r.output
    assert "added 1 questions" in r.output and "now holds 4" in r.output

    r = runner.invoke(app, ["match", "how do i learn python", "--store", str(store), "-k", "2"])
    assert r.exit_code == 0, r.output
    assert "query: how do i learn python" in r.output
    top = next(line for line in r.output.splitlines() if line.strip().startswith("1 "))
    assert top.split()[5] == "exact", top  # the "by" column: the exact key decided

    r = runner.invoke(app, ["match", "How to lose weight fast", "--store", str(store), "-k", "1", "--json"])
    out = json.loads(r.stdout)
    assert out[0]["matches"][0]["id"] == 3 and out[0]["matches"][0]["metadata"] == {"topic": "health"}

    # errors: one line naming file/row/column, exit code 2, store unchanged
    # a row without text is skipped and reported, as dedupe marks it "empty" (issue 24)
    blank = tmp_path / "blank.csv"
    blank.write_text("id,question\n5,\n")
    r = runner.invoke(
        app, ["index", "add", str(store), str(blank), "--text-column", "question", "--id-column", "id"]
    )
    assert r.exit_code == 0 and "added 0 questions" in r.output, r.output
    assert "skipped 1 row(s) of" in r.output and "blank.csv without text (rows 1)" in r.output
    bad = tmp_path / "bad.csv"
    bad.write_text("id,question\nfive,What is it?\n")
    r = runner.invoke(
        app, ["index", "add", str(store), str(bad), "--text-column", "question", "--id-column", "id"]
    )
    assert r.exit_code == 2 and "bad.csv, row 1, column 'id'" in r.output, r.output
    r = runner.invoke(app, ["index", "add", str(store), str(more), "--text-column", "nope"])
    assert r.exit_code == 2 and "more.tsv" in r.output and "column 'nope'" in r.output
    r = runner.invoke(
        app, ["index", "add", str(store), str(more), "--text-column", "question", "--id-column", "id"]
    )
    assert r.exit_code == 2 and "already stored" in r.output
    assert len(Matcher.load(store)) == 4
    r = runner.invoke(app, ["match", "x?", "--store", str(tmp_path / "nowhere")])
    assert r.exit_code == 2 and "no such store" in r.output
