"""Writes the bad-input corpus beside this file (issue 24) and ``expected.json``: what each file must give.

Run it again after adding a case: ``python tests/data/bad_inputs/generate.py``. The files are checked in,
so the test (``tests/test_bad_inputs.py``) reads fixed bytes, not what today's writer would make.
Each case is one odd or broken file a new user or a hostile tester might hand ``dupq dedupe`` or
``dupq score``, and one of two outcomes: an ``error`` (a one-line message that must contain the text
and name the file, exit code 2, nothing written) or a written file whose ``values`` and ``status`` are
exactly the ones listed — never a silent change, never a traceback.
"""

from __future__ import annotations

import bz2
import gzip
import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
CASES: list[dict] = []


def case(name: str, data: bytes | None, command: str, **expect: object) -> None:
    if data is not None:
        (HERE / name).write_bytes(data)
    CASES.append({"file": name, "command": command, **expect})


def text(s: str) -> bytes:
    return s.encode("utf-8")


# -- 1. short rows never shift -------------------------------------------------------------------
case(
    "short_row.csv",
    text("id,tag,question\n1,a,How?\n2,What is X?\n"),
    "dedupe",
    error="row 2: 2 fields on line 3, but the header has 3",
)
case(
    "short_pair_row.tsv",
    text(
        "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
        "1\t1\t2\tHow do I cook rice?\tHow to cook rice?\t1\n"
        "2\t3\tWhat is X?\tWhat is Y?\t0\n"
    ),
    "score",
    error="row 2: 5 fields on line 3, but the header has 6",
)
case(
    "long_row.csv",
    text("id,question\n1,How do I learn Python fast?,extra\n"),
    "dedupe",
    error="row 1: 3 fields on line 2, but the header has 2",
)
# -- 2. one bad byte never re-decodes the file ---------------------------------------------------------
case(
    "mixed_utf8.csv",
    text("id,question\n1,café au lait?\n") + b"2,caf\xe9 noir?\n",
    "dedupe",
    error="not valid UTF-8 at line 3 (byte offset 34",
)
case(
    "shift_jis.csv",
    "id,question\n1,日本語の質問です\n2,こんにちは\n".encode("shift_jis"),
    "dedupe",
    error="Shift-JIS",
)
case(
    "cp1252.csv",
    "id;question\n1;Café crème – “quoted” €5?\n2;Où est la gare?\n".encode("cp1252"),
    "dedupe",
    values={"question": ["Café crème – “quoted” €5?", "Où est la gare?"]},
    status=["ok", "ok"],
)
case(
    "utf32.csv",
    "id,question\n1,Où est la gare?\n".encode("utf-32"),
    "dedupe",
    values={"question": ["Où est la gare?"], "id": ["1"]},
    status=["ok"],
)
# -- 3. compressed input is judged on its decompressed text -----------------------------------------
case(
    "semicolon.csv.bz2",
    bz2.compress(text("id;question\n1;How do I cook rice?\n2;Why is the sky blue?\n")),
    "dedupe",
    values={"question": ["How do I cook rice?", "Why is the sky blue?"]},
    status=["ok", "ok"],
)
case(
    "dup_header.csv.gz",
    gzip.compress(text("question,question\nHow?,What?\n"), mtime=0),
    "dedupe",
    error="duplicate column name(s) ['question']",
)
# -- 4-5. Parquet ---------------------------------------------------------------------------------------
pq.write_table(
    pa.table({"id": pa.array([1, 2]), "question": pa.array([b"How do I cook rice?", b"Why?"], pa.binary())}),
    HERE / "binary_text.parquet",
)
case(
    "binary_text.parquet",
    None,
    "dedupe",
    values={"question": ["How do I cook rice?", "Why?"]},
    status=["ok", "ok"],
)
pq.write_table(
    pa.table({"id": pa.array([], pa.int64()), "question": pa.array([], pa.string())}), HERE / "empty.parquet"
)
case("empty.parquet", None, "dedupe", values={"id": [], "question": []}, status=[])
pq.write_table(
    pa.Table.from_pandas(
        pd.DataFrame({"question": ["How do I cook rice?", "Why?"]}, index=pd.Index([7, 9], name="id"))
    ),
    HERE / "pandas_index.parquet",
)
case(
    "pandas_index.parquet",
    None,
    "dedupe",
    args=["--id-column", "id"],
    out=".parquet",
    values={"id": [7, 9], "question": ["How do I cook rice?", "Why?"]},
    status=["ok", "ok"],
)
# -- 6. TSV quotes are text unless the file needs them ---------------------------------------------------
case(
    "quoted_text.tsv",
    text('id\tquestion\n1\t"Fully quoted question"\n2\tA "quoted" word\n'),
    "dedupe",
    values={"question": ['"Fully quoted question"', 'A "quoted" word']},
    status=["ok", "ok"],
)
# -- 7. ids keep their type --------------------------------------------------------------------------
case(
    "int_id_null.jsonl",
    text(
        '{"id": 1, "question1": "How do I cook rice?", "question2": "How to cook rice?"}\n'
        '{"id": null, "question1": "Why is the sky blue?", "question2": "Why is the sea blue?"}\n'
        '{"id": 2, "question1": "Best laptop?", "question2": "Best phone?"}\n'
    ),
    "score",
    out=".jsonl",
    values={"id": [1, None, 2]},
    status=["ok", "ok", "ok"],
)
pq.write_table(
    pa.table(
        {
            "id": pa.array([1, None, 2], pa.int64()),
            "question1": ["How do I cook rice?", "Why is the sky blue?", "Best laptop?"],
            "question2": ["How to cook rice?", "Why is the sea blue?", "Best phone?"],
        }
    ),
    HERE / "int_id_null.parquet",
)
case(
    "int_id_null.parquet", None, "score", out=".csv", values={"id": ["1", "", "2"]}, status=["ok", "ok", "ok"]
)
# -- 8. one-line errors, not tracebacks (the unreadable file and directory: tests/test_bad_inputs.py) -----
case(
    "header_only.csv",
    text("question1,question2,is_duplicate\n"),
    "score",
    values={"question1": []},
    status=[],
)
case(
    "one_class.csv",
    text(
        "question1,question2,label\nHow do I cook rice?,How to cook rice?,1\n"
        "Why is the sky blue?,Why is the sky blue!,1\n"
    ),
    "score",
    status=["ok", "exact"],
    stdout="n/a",
)
case("empty.csv", b"", "dedupe", error="the file is empty")
# found by benchmarks/table_fuzz.py: JSON Lines without records has no columns; the error names the one sought
case("empty_pairs.jsonl", b"", "score", error="column 'question1': no question columns found")
case("not_a_table.csv", (HERE / "empty.parquet").read_bytes(), "dedupe", error="looks like a binary file")
case("unclosed_quote.csv", text('id,question\n1,"How do I\n2,What?\n'), "dedupe", error="cannot parse")
case(
    "json_dup_key.jsonl",
    text('{"question": "How?", "question": "What?"}\n'),
    "dedupe",
    error="key 'question' appears twice",
)
# -- 9. noticed along the way -------------------------------------------------------------------------
case(
    "empty_header_name.csv",
    text("id,question,\n1,How do I cook rice?,x\n"),
    "dedupe",
    values={"": ["x"]},
    status=["ok"],
)
case(
    "bad_labels.csv",
    text(
        "question1,question2,label\nHow do I cook rice?,How to cook rice?,yes\n"
        "Why is the sky blue?,Why is the sea blue?,2\nBest laptop?,Best phone?,0\n"
    ),
    "score",
    status=["ok", "ok", "ok"],
    stdout="not counted   2 scored rows whose 'label' is not 0 or 1",
)
case(
    "blank_lines_one_column.csv",
    text("question\nHow do I cook rice?\n\nWhy is the sky blue?\n"),
    "dedupe",
    values={"question": ["How do I cook rice?", "", "Why is the sky blue?"]},
    status=["ok", "empty", "ok"],
)
case(
    "nul_in_text.csv",
    text("id,question\n1,How do I\x00cook?\n2,Why?\n"),
    "dedupe",
    values={"question": ["How do I\x00cook?", "Why?"]},
    status=["unreadable", "ok"],
)

(HERE / "expected.json").write_text(json.dumps(CASES, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
print(f"{len(CASES)} cases written to {HERE}")
