"""Issue 24: odd and broken input files never change data silently and never end in a traceback.

The corpus in ``tests/data/bad_inputs/`` (written by its ``generate.py``; ``expected.json`` holds each
file's outcome) goes through ``dupq dedupe`` / ``dupq score`` as a user runs them: either one
``error:`` line naming the file (exit code 2, nothing written), or an output whose rows, values and
statuses are exactly the expected ones. The cases that need a broken machine rather than a broken file
(an unreadable input, an unwritable directory, ``-o`` equal to the input) and the service's two
(``/stats``, the bearer scheme) follow.
"""

from __future__ import annotations

import builtins
import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from dupq.cli import app
from dupq.embed import Embedder
from dupq.matcher import Matcher
from dupq.server import create_app
from dupq.tables import read_table

CORPUS = Path(__file__).resolve().parent / "data" / "bad_inputs"
CASES = json.loads((CORPUS / "expected.json").read_text(encoding="utf-8"))
RUN = CliRunner()


def _args(command: str, src: Path, out: Path, model: Path, extra: list[str]) -> list[str]:
    common = ["--out", str(out), "--model", str(model), "--quiet", *extra]
    if command == "dedupe":
        return ["dedupe", str(src), "--text-column", "question", "--threshold", "0.99", *common]
    return ["score", str(src), *common]


def _error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error: ")]


def _same(got: list, want: list) -> bool:
    """Equal, with every kind of null equal to ``None`` (a Parquet/JSON null may come back as NaN)."""
    return [None if pd.isna(v) else v for v in got] == want


@pytest.mark.parametrize("case", CASES, ids=[c["file"] for c in CASES])
def test_bad_input_corpus(case, tiny_model_dir, tmp_path):
    src = tmp_path / case["file"]
    shutil.copy(CORPUS / case["file"], src)
    before = src.read_bytes()
    out = tmp_path / f"out{case.get('out', '.csv')}"
    r = RUN.invoke(app, _args(case["command"], src, out, tiny_model_dir, case.get("args", [])))
    assert "Traceback" not in r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert src.read_bytes() == before
    if "error" in case:
        errors = _error_lines(r.output)
        assert r.exit_code == 2 and len(errors) == 1, r.output
        assert case["error"] in errors[0] and f"file {src}" in errors[0], errors[0]
        assert not out.exists()
        return
    assert r.exit_code == 0, r.output
    back = read_table(out)
    status = "dupq_status" if "dupq_status" in back.columns else "status"
    assert back[status].tolist() == case["status"]  # every row, in order, with its status
    for column, values in case.get("values", {}).items():
        assert _same(back[column].tolist(), values), (column, back[column].tolist())
    if "stdout" in case:
        assert case["stdout"] in r.output, r.output


def test_corpus_is_what_generate_writes():
    """``expected.json`` names every file in the corpus and every named file exists (a case added by hand
    without ``generate.py``, or a file left behind, fails here)."""
    named = {c["file"] for c in CASES}
    present = {p.name for p in CORPUS.iterdir()} - {"expected.json", "generate.py"}
    assert named == present


def test_short_row_is_refused_by_every_reader(tiny_model, tmp_path):
    """Item 1, in the library too: the short row is named, never shifted into the wrong columns."""
    from dupq.dedupe import deduplicate
    from dupq.score import score_pairs

    path = tmp_path / "q.csv"
    path.write_text("id,tag,question\n1,a,How?\n2,What is X?\n", encoding="utf-8")
    for read in (
        lambda: read_table(path),
        lambda: deduplicate(path, text_column="question", model=tiny_model, show_progress=False),
        lambda: Matcher(tiny_model).add_table(path, text_column="question", show_progress=False),
    ):
        with pytest.raises(Exception, match="2 fields on line 3") as err:
            read()
        assert err.value.row == 2 and err.value.file == str(path)
    pairs = tmp_path / "p.tsv"
    pairs.write_text("question1\tquestion2\tnote\nHow?\tWhat?\tx\nHow?\tWhat?\n", encoding="utf-8")
    with pytest.raises(Exception, match="2 fields on line 3"):
        score_pairs(pairs, model=tiny_model)


def _deny_open(monkeypatch, path: Path) -> None:
    """Make ``path`` unreadable even to root (tests may run as root, where chmod 000 does nothing)."""
    real_open = builtins.open

    def fake_open(file, *args, **kwargs):
        if str(file) == str(path):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr("os.access", lambda p, mode, **kw: str(p) != str(path))


@pytest.mark.parametrize("command", ["dedupe", "score"])
def test_unreadable_input_is_one_line(command, tiny_model_dir, tmp_path, monkeypatch):
    src = tmp_path / "in.csv"
    src.write_text("question,question1,question2\nHow?,How?,What?\n", encoding="utf-8")
    _deny_open(monkeypatch, src)
    r = RUN.invoke(app, _args(command, src, tmp_path / "out.csv", tiny_model_dir, []))
    errors = _error_lines(r.output)
    assert r.exit_code == 2 and len(errors) == 1, r.output
    assert str(src) in errors[0] and "ermission denied" in errors[0]


def test_unwritable_output_directory_is_one_line(tiny_model_dir, tmp_path, monkeypatch):
    src = tmp_path / "in.csv"
    src.write_text("question\nHow?\n", encoding="utf-8")
    locked = tmp_path / "locked"
    real_mkdir = Path.mkdir

    def mkdir(self, *args, **kwargs):
        if str(self).startswith(str(locked)):
            raise PermissionError(13, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    r = RUN.invoke(app, _args("dedupe", src, locked / "out.csv", tiny_model_dir, []))
    errors = _error_lines(r.output)
    assert r.exit_code == 2 and len(errors) == 1, r.output
    assert "cannot create the work directory" in errors[0] and str(locked) in errors[0]


@pytest.mark.parametrize("command", ["dedupe", "score"])
def test_out_equal_to_the_input_is_refused(command, tiny_model_dir, tmp_path, monkeypatch):
    src = tmp_path / "in.csv"
    src.write_text("question,question1,question2\nHow?,How?,What?\n", encoding="utf-8")
    before = src.read_bytes()
    monkeypatch.chdir(tmp_path)
    r = RUN.invoke(app, _args(command, src, Path("in.csv"), tiny_model_dir, []))  # the same file, relative
    errors = _error_lines(r.output)
    assert r.exit_code == 2 and len(errors) == 1 and "is the input file" in errors[0], r.output
    assert src.read_bytes() == before


def test_index_build_on_the_bundled_sample_skips_blank_rows(tiny_model_dir, tmp_path):
    """Item 9: the README's `dupq index build data/sample_questions.csv` then `dupq match` works; its
    blank rows are skipped, counted and reported."""
    sample = Path(__file__).resolve().parents[1] / "data" / "sample_questions.csv"
    store = tmp_path / "store"
    r = RUN.invoke(
        app,
        ["index", "build", str(sample), "--text-column", "question", "--id-column", "id", "--out", str(store),
         "--model", str(tiny_model_dir)],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    blank = [i for i, q in enumerate(read_table(sample)["question"], start=1) if not q.strip()]
    assert blank and f"skipped {len(blank)} row(s)" in r.output and str(blank[0]) in r.output
    assert f"stored {len(read_table(sample)) - len(blank)} questions" in r.output
    r = RUN.invoke(app, ["match", "How do I reverse a string in Python?", "--store", str(store)])
    assert r.exit_code == 0, r.output


def test_score_summary_with_one_class_and_other_labels(tiny_model_dir, tmp_path):
    """Item 8/9: one class gives n/a (not a TypeError after the output was written); labels other than
    0/1 are named, not silently left out."""
    from dupq.score import score_pairs

    path = tmp_path / "p.csv"
    path.write_text(
        "question1,question2,label\nHow do I cook rice?,How to cook rice?,1\nWhy?,Why not?,yes\n"
        "Best laptop?,Best phone?,1\n",
        encoding="utf-8",
    )
    res = score_pairs(path, tmp_path / "o.csv", model=tiny_model_dir)
    text = res.format_summary()
    assert "AP n/a" in text and "every labelled pair is class 1" in text
    assert res.other_labels == {"yes": 1} and "'yes': 1" in text


def test_help_shows_default_notes():
    """Item 9: rich took ``[default: …]`` in the help text for markup and dropped it."""
    for command in (["score"], ["index", "build"], ["match"], ["serve"]):
        r = RUN.invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
        assert r.exit_code == 0 and "(default: " in r.output, (command, r.output)
        assert not re.search(r"\w \.\s", r.output)  # "Bi-encoder dir ." where the note was eaten


def test_stats_hides_paths_and_bearer_scheme_is_case_insensitive(tiny_model, tmp_path):
    m = Matcher(Embedder(tiny_model))
    m.add(["How do I cook rice?", "Why is the sky blue?"])
    store = tmp_path / "private" / "store"
    with TestClient(create_app(m, store, token="tok-123")) as c:
        stats = c.get("/stats").json()
        shown = json.dumps(stats)
        assert str(tmp_path) not in shown and stats["store_dir"] == "store"
        for scheme in ("bearer", "BEARER", "Bearer"):
            r = c.post("/questions", json={"questions": [{"text": f"{scheme} may write?"}]},
                       headers={"Authorization": f"{scheme} tok-123"})  # fmt: skip
            assert r.status_code == 201, (scheme, r.text)
        assert c.post("/save", headers={"Authorization": "bearer TOK-123"}).status_code == 401
        assert c.post("/save", headers={"Authorization": "Basic tok-123"}).status_code == 401


def test_score_shows_progress_unless_quiet(tiny_model_dir, tmp_path):
    """Item 9: 3,000 pairs took 81 s in silence; now each text column shows a bar (``--quiet``: none)."""
    path = tmp_path / "p.csv"
    path.write_text("question1,question2\nHow do I cook rice?,How to cook rice?\n", encoding="utf-8")
    loud = RUN.invoke(
        app, ["score", str(path), "-o", str(tmp_path / "a.csv"), "--model", str(tiny_model_dir)]
    )
    quiet = RUN.invoke(
        app, ["score", str(path), "-o", str(tmp_path / "b.csv"), "--model", str(tiny_model_dir), "--quiet"]
    )
    assert loud.exit_code == 0 and quiet.exit_code == 0
    assert "question1: 100%" in loud.output and "question2: 100%" in loud.output, loud.output
    assert "question1: " not in quiet.output
