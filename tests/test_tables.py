"""The one table reader (issue 10, items 1, 2 and 4): every tool reads a file the same way.

Each case failed before :mod:`dupq.tables` existed: rows with an extra field were silently shifted,
UTF-16 worked in dedupe only, a JSON array crashed, duplicate column names were renamed
``question.1`` (CSV) or crashed (Parquet), and dedupe's own TSV output did not read back.
"""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dupq.data import load_pairs
from dupq.dedupe import RESULT_COLUMNS, deduplicate
from dupq.errors import InputError
from dupq.matcher import Matcher
from dupq.tables import read_table


def _dedupe(path, tiny_model, **kw):
    return deduplicate(path, text_column="question", model=tiny_model, show_progress=False, **kw)


# -- 1. a row with an extra field is an error naming the file and the row -------------------------
@pytest.mark.parametrize(
    "text",
    [
        "id,question\n1,How do I learn Python fast?,extra\n2,What?\n",  # pandas took "1" as an index
        "question\nA q; with, commas, inside\nB\n",  # every question became " inside"
        "id,question\n1,How do I learn Python fast?\n2,What?,extra\n",  # a later row
    ],
)
def test_extra_field_is_an_error_naming_file_and_row(tmp_path, tiny_model, text):
    path = tmp_path / "t.csv"
    path.write_text(text, encoding="utf-8")
    row = 2 if "What?,extra" in text else 1
    for read in (
        lambda: read_table(path),
        lambda: _dedupe(path, tiny_model, out=tmp_path / "o.csv"),
        lambda: Matcher(tiny_model).add_table(path, text_column="question", show_progress=False),
    ):
        with pytest.raises(InputError) as err:
            read()
        assert err.value.file == str(path) and err.value.row == row, str(err.value)
        assert "fields" in str(err.value)
    assert not (tmp_path / "o.csv").exists()


# -- 2. one set of rules: UTF-16, JSON arrays, duplicate column names ---------------------------------
def test_utf16_with_bom_reads_the_same_everywhere(tmp_path, tiny_model):
    questions = tmp_path / "q.csv"
    questions.write_text("id,question\n1,Où est la gare?\n2,Café crème?\n", encoding="utf-16")
    assert read_table(questions)["question"].tolist() == ["Où est la gare?", "Café crème?"]
    assert _dedupe(questions, tiny_model).table["question"].tolist() == ["Où est la gare?", "Café crème?"]
    m = Matcher(tiny_model)
    assert m.add_table(questions, text_column="question", id_column="id", show_progress=False) == [1, 2]
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(
        "question1,question2,label\nOù est la gare?,Où se trouve la gare?,1\n", encoding="utf-16"
    )
    assert load_pairs(pairs).pairs["question1"].tolist() == ["Où est la gare?"]


def test_json_array_is_read_like_json_lines(tmp_path, tiny_model):
    records = [{"id": "a", "question": "How do I learn Python?"}, {"id": "b", "question": "Best rice?"}]
    array, lines = tmp_path / "q.json", tmp_path / "q.jsonl"
    array.write_text(json.dumps(records), encoding="utf-8")
    lines.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    pd.testing.assert_frame_equal(read_table(array), read_table(lines))
    assert _dedupe(array, tiny_model, id_column="id").summary.rows == 2
    pairs = tmp_path / "pairs.json"
    pairs.write_text(json.dumps([{"question1": "a b", "question2": "c d", "label": 1}]), encoding="utf-8")
    assert len(load_pairs(pairs).pairs) == 1


def test_duplicate_column_names_are_an_error(tmp_path, tiny_model):
    csv_path = tmp_path / "dup.csv"
    csv_path.write_text("question,question\nHow do I learn Python?,Best rice?\n", encoding="utf-8")
    parquet_path = tmp_path / "dup.parquet"
    pq.write_table(
        pa.table([pa.array(["a?"]), pa.array(["b?"])], names=["question", "question"]), parquet_path
    )
    for path in (csv_path, parquet_path):
        with pytest.raises(InputError, match="duplicate column name") as err:
            read_table(path)
        assert err.value.column == "question"
        with pytest.raises(InputError, match="duplicate column name"):
            _dedupe(path, tiny_model)
    frame = pd.DataFrame([["a?", "b?"]], columns=["question", "question"])
    with pytest.raises(InputError, match="duplicate column name"):
        _dedupe(frame, tiny_model)


# -- 4. what dupq writes, dupq reads back unchanged -------------------------------------------------
@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet", ".jsonl"])
def test_dedupe_output_reads_back_unchanged(tmp_path, tiny_model, suffix):
    texts = [
        "a tab\there, and a comma",
        'quotes "inside" it',
        '"starts with a quote" and goes on',
        "a newline\nin the middle",
        "plain question?",
        "plain question?",
    ]
    frame = pd.DataFrame({"id": [f"r{i}" for i in range(len(texts))], "question": texts})
    out = tmp_path / f"out{suffix}"
    _dedupe(frame, tiny_model, id_column="id", out=out)
    back = read_table(out)
    assert back["question"].tolist() == texts
    assert back["id"].tolist() == frame["id"].tolist()
    assert list(back.columns) == ["id", "question", *RESULT_COLUMNS]
    assert back["duplicate_of"].tolist()[-1] == "r4"  # the exact copy points at its first row


def test_tsv_with_bare_quotes_still_reads_quotes_as_text(tmp_path):
    path = tmp_path / "glue.tsv"
    path.write_text('id\tquestion\n1\t"Hello" he said\n2\tA "quoted" word\n', encoding="utf-8")
    assert read_table(path)["question"].tolist() == ['"Hello" he said', 'A "quoted" word']
