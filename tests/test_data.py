"""dupq.data: readers on files in the real schemas, row-level validation, leakage-free splits, CLI."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dupq.cli import app
from dupq.data import (
    load_hf_pairs,
    load_pairs,
    load_shared,
    pairs_from_hf,
    question_components,
    split_pairs,
)
from dupq.datamodels import PAIR_COLUMNS, PairData, Splits
from dupq.errors import DupqError, InputError, StoreError
from dupq.text import text_key

FIXTURES = Path(__file__).resolve().parent / "fixtures"
REPO = Path(__file__).resolve().parents[1]
SAMPLE_PAIRS = REPO / "data" / "sample_pairs.tsv"


def _accounted(data: PairData) -> None:
    """Every input row is either a kept pair or has a reported issue — never both, never neither."""
    kept = set(data.pairs["source_row"])
    flagged = set(data.rows_with_issues)
    assert not kept & flagged
    assert kept | flagged == set(range(1, data.n_input_rows + 1))
    assert len(data.pairs) + len(flagged) == data.n_input_rows


def _assert_canonical(df: pd.DataFrame) -> None:
    assert list(df.columns) == PAIR_COLUMNS
    assert df["label"].dtype == np.int64 and set(df["label"]) <= {0, 1}
    assert df["source_row"].dtype == np.int64
    for c in ("qid1", "qid2", "question1", "question2"):
        assert all(isinstance(v, str) and v.strip() for v in df[c]), c


# --- readers on real-schema fixtures ---------------------------------------------------------------


def test_quora_original_tsv_with_quoted_tabs_newlines_and_quotes():
    path = FIXTURES / "quora_duplicate_questions.tsv"
    data = load_pairs(path)
    assert data.fmt == "quora"
    assert data.n_input_rows == 7 and len(data.pairs) == 7 and data.issues == []
    _assert_canonical(data.pairs)
    p = data.pairs.set_index("source_row")
    assert p.loc[2, "question1"] == 'What does "idempotent" mean?'
    assert p.loc[3, "question1"] == "How do I cook rice?\nI always burn it."
    assert p.loc[5, "question2"] == "What is\tRayleigh scattering?"
    assert p.loc[7, "question2"] == '"Quoted" start: is this parsed?'
    # The same question keeps its Quora qid across pairs.
    assert p.loc[1, "qid1"] == p.loc[4, "qid1"] == "1"
    assert list(p["label"]) == [1, 1, 0, 0, 0, 1, 0]
    assert data.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_kaggle_csv_all_fields_quoted_and_empty_question_reported():
    data = load_pairs(FIXTURES / "kaggle_train.csv")
    assert data.fmt == "kaggle"
    assert data.n_input_rows == 6 and len(data.pairs) == 5
    p = data.pairs.set_index("source_row")
    assert p.loc[1, "question1"] == "What is the best way to invest in the stock market, in India?"
    assert p.loc[2, "question1"] == 'Which one dissolves in water quickly, sugar, salt or "baking soda"?'
    assert p.loc[4, "question1"] == "How do I write\na multi-line question?"
    [issue] = data.issues
    assert (issue.row, issue.column, issue.kind) == (5, "question2", "missing_text")
    _accounted(data)


@pytest.mark.parametrize("name, n", [("train.tsv", 5), ("dev.tsv", 3)])
def test_glue_qqp_plain_tsv_keeps_quotes_as_characters(name, n):
    data = load_pairs(FIXTURES / "glue_qqp" / name)
    assert data.fmt == "glue"
    assert len(data.pairs) == n == data.n_input_rows
    _assert_canonical(data.pairs)
    texts = set(data.pairs["question1"]) | set(data.pairs["question2"])
    if name == "train.tsv":
        assert '"Big Bang" theory: what came before it?' in texts
        assert 'What happened before the "Big Bang"?' in texts
        assert list(data.pairs["qid1"])[:2] == ["303345", "69383"]
    else:
        assert 'What does the phrase "break a leg" mean?' in texts


@pytest.mark.parametrize(
    "path, words", [(FIXTURES / "glue_qqp" / "test.tsv", "GLUE"), (FIXTURES / "kaggle_test.csv", "Kaggle")]
)
def test_unlabelled_test_files_are_refused_clearly(path, words):
    with pytest.raises(InputError) as err:
        load_pairs(path)
    assert words in str(err.value) and "no labels" in str(err.value)
    assert err.value.file == str(path) and err.value.column == "is_duplicate"


def test_mrpc_original_layout_with_bom():
    data = load_pairs(FIXTURES / "msr_paraphrase_train.txt")
    assert data.fmt == "mrpc" and len(data.pairs) == 2
    assert list(data.pairs["qid1"]) == ["702876", "2108705"]
    assert list(data.pairs["label"]) == [1, 0]
    assert data.pairs["question1"][0].startswith("Amrozi accused")


def test_generic_jsonl_detects_sentence_columns_and_bool_labels():
    data = load_pairs(FIXTURES / "generic_pairs.jsonl")
    assert data.fmt == "generic" and len(data.pairs) == 4
    assert list(data.pairs["label"]) == [1, 0, 0, 1]
    # No qid column: qids come from the normalised text, so a repeated question shares its qid.
    assert data.pairs["qid1"][0] == data.pairs["qid1"][1] == text_key("How do I bake bread?")
    _assert_canonical(data.pairs)


def test_generic_parquet_with_named_columns_and_bad_rows(tmp_path):
    path = tmp_path / "pairs.parquet"
    pd.DataFrame(
        {
            "query": ["How do I learn Rust?", None, "What is a VPN?", "Is tea healthy?"],
            "candidate": [
                "Best way to learn Rust?",
                "Why is the sea salty?",
                "How does a VPN work?",
                "Is tea good?",
            ],
            "dup": [1, 0, 3, 1],
            "qa": [10, 11, 12, 13],
            "qb": [20, 21, 22, 23],
        }
    ).to_parquet(path)
    data = load_pairs(path, question1="query", question2="candidate", label="dup", qid1="qa", qid2="qb")
    assert data.fmt == "generic" and data.n_input_rows == 4
    assert list(data.pairs["source_row"]) == [1, 4]
    assert list(data.pairs["qid1"]) == ["10", "13"]
    assert [(i.row, i.column, i.kind) for i in data.issues] == [
        (2, "query", "missing_text"),
        (3, "dup", "bad_label"),
    ]
    _accounted(data)
    with pytest.raises(InputError) as err:
        load_pairs(path)  # no recognisable column names and none given
    assert "question columns" in str(err.value) and str(path) in str(err.value)


def test_generic_tsv_written_by_pandas_round_trips_quoted_text(tmp_path):
    texts = [
        'He said "hi"\tthen left?',
        "line one\nline two?",
        '"Leading quote" question?',
        "plain question?",
    ]
    df = pd.DataFrame({"text1": texts, "text2": [t + " (b)" for t in texts], "label": [1, 0, 1, 0]})
    path = tmp_path / "custom.tsv"
    df.to_csv(path, sep="\t", index=False)
    data = load_pairs(path)
    assert data.fmt == "generic"
    assert list(data.pairs["question1"]) == texts
    assert list(data.pairs["question2"]) == [t + " (b)" for t in texts]


def test_compressed_downloads_are_read_directly(tmp_path):
    import gzip
    import zipfile

    zipped = tmp_path / "train.csv.zip"  # how Kaggle ships it
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.write(FIXTURES / "kaggle_train.csv", "train.csv")
    data = load_pairs(zipped)
    assert data.fmt == "kaggle" and len(data.pairs) == 5 and data.rows_with_issues == [5]
    gz = tmp_path / "quora_duplicate_questions.tsv.gz"
    gz.write_bytes(gzip.compress((FIXTURES / "quora_duplicate_questions.tsv").read_bytes()))
    assert load_pairs(gz).pairs.equals(load_pairs(FIXTURES / "quora_duplicate_questions.tsv").pairs)
    broken = tmp_path / "pairs.tsv.gz"
    broken.write_bytes(b"not gzip")
    with pytest.raises(InputError, match="cannot decompress"):
        load_pairs(broken)


@pytest.mark.parametrize(
    "fixture, fmt",
    [
        ("quora_duplicate_questions.tsv", "quora"),
        ("kaggle_train.csv", "kaggle"),
        ("glue_qqp/train.tsv", "glue"),
        ("msr_paraphrase_train.txt", "mrpc"),
        ("generic_pairs.jsonl", "generic"),
        ("bad_empty_questions.csv", "generic"),
    ],
)
def test_auto_detection_by_header(fixture, fmt, tmp_path):
    assert load_pairs(FIXTURES / fixture).fmt == fmt
    # Without the telling file name, Quora's TSV is still told from GLUE's by its CSV quoting.
    renamed = tmp_path / ("pairs" + Path(fixture).suffix)
    shutil.copy(FIXTURES / fixture, renamed)
    assert load_pairs(renamed).fmt == fmt


def test_shared_sets_are_detected_by_header(shared_data):
    assert load_pairs(shared_data / "medical-question-pairs" / "mqp.tsv").fmt == "mqp"
    assert load_pairs(shared_data / "mrpc" / "test.tsv").fmt == "mrpc"
    assert load_pairs(shared_data / "semeval2016-task3-cqa-subtaskB" / "train-part2.tsv").fmt == "semeval-cqa"


def test_explicit_format_with_wrong_file_names_the_missing_column():
    with pytest.raises(InputError) as err:
        load_pairs(FIXTURES / "generic_pairs.jsonl", fmt="quora")
    assert "generic_pairs.jsonl" in str(err.value)
    with pytest.raises(InputError) as err:
        load_pairs(FIXTURES / "msr_paraphrase_train.txt", fmt="glue")
    assert err.value.column == "question1" and "msr_paraphrase_train.txt" in str(err.value)
    with pytest.raises(InputError, match="unknown format"):
        load_pairs(FIXTURES / "kaggle_train.csv", fmt="excel")


# --- bad input ----------------------------------------------------------------------------------


def test_missing_column_names_file_and_column():
    path = FIXTURES / "bad_missing_column.tsv"
    with pytest.raises(InputError) as err:
        load_pairs(path, fmt="quora")
    assert err.value.column == "is_duplicate" and err.value.file == str(path)
    assert str(path) in str(err.value) and "'is_duplicate'" in str(err.value)
    # Auto-detection falls back to generic, which cannot find a label column either.
    with pytest.raises(InputError) as err:
        load_pairs(path)
    assert err.value.column == "label" and "is_duplicate" in str(err.value)


def test_bad_labels_are_reported_by_row():
    data = load_pairs(FIXTURES / "bad_labels.tsv")
    assert [(i.row, i.kind, i.column) for i in data.issues] == [
        (r, "bad_label", "is_duplicate") for r in (2, 4, 5, 6, 7)
    ]
    assert [i.value for i in data.issues] == ["'2'", "'yes'", "''", "'-1'", "'1.5'"]
    assert list(data.pairs["source_row"]) == [1, 3, 8]
    assert data.summary()["issues"] == {"bad_label": 5}
    _accounted(data)


def test_empty_and_whitespace_questions_are_reported_but_na_strings_are_text():
    data = load_pairs(FIXTURES / "bad_empty_questions.csv")
    assert [(i.row, i.column) for i in data.issues] == [
        (2, "question1"),
        (3, "question2"),
        (4, "question1"),
        (4, "question2"),
    ]
    assert {i.kind for i in data.issues} == {"missing_text"}
    assert data.rows_with_issues == [2, 3, 4]
    # "NA" and "null" are questions a person could type, not missing values.
    kept = data.pairs.set_index("source_row")
    assert (kept.loc[6, "question1"], kept.loc[6, "question2"]) == ("NA", "null")
    assert data.summary()["issues"] == {"missing_text": 3}
    _accounted(data)


def test_self_pairs_by_qid_and_by_normalised_text():
    data = load_pairs(FIXTURES / "bad_self_pairs.tsv")
    got = [(i.row, i.kind, i.column) for i in data.issues]
    assert got == [(2, "self_pair", "qid2"), (3, "self_pair", "question2"), (5, "self_pair", "question2")]
    assert list(data.pairs["source_row"]) == [1, 4]
    _accounted(data)


def test_malformed_rows_are_reported_not_dropped():
    data = load_pairs(FIXTURES / "bad_malformed.tsv")
    assert data.fmt == "glue" and data.n_input_rows == 4
    assert [(i.row, i.kind) for i in data.issues] == [(2, "malformed_row"), (4, "malformed_row")]
    assert "5 fields, expected 6" in data.issues[0].value
    _accounted(data)


def test_unclosed_quote_is_reported_not_glued_silently(tmp_path, caplog):
    path = tmp_path / "quora_duplicate_questions.tsv"
    path.write_text(
        "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
        "0\t1\t2\tHow do I learn Go?\tBest way to learn Go?\t1\n"
        '1\t3\t4\t"Unclosed quote here?\tWhat is Go?\t0\n'
        "2\t5\t6\tWhere is Peru?\tWhere is Chile?\t0\n",
        encoding="utf-8",
    )
    with caplog.at_level("WARNING", logger="dupq.data"):
        data = load_pairs(path)
    assert "irregular quoting near line" in caplog.text
    assert data.pairs["source_row"].tolist() == [1]
    assert [(i.row, i.kind) for i in data.issues] == [(2, "malformed_row")]
    assert "spans 2 lines (unclosed quote?)" in data.issues[0].value  # the swallowed row is visible
    _accounted(data)


def test_non_utf8_file_names_the_line_and_reads_with_encoding():
    path = FIXTURES / "bad_latin1.csv"
    with pytest.raises(InputError) as err:
        load_pairs(path)
    assert "line 3" in str(err.value) and str(path) in str(err.value) and "encoding" in str(err.value)
    data = load_pairs(path, encoding="latin-1")
    assert data.pairs["question1"][1] == "Qu'est-ce qu'un café crème ?"


@pytest.mark.parametrize(
    "fixture, row, column",
    [
        ("bad_labels.tsv", 2, "is_duplicate"),
        ("bad_empty_questions.csv", 2, "question1"),
        ("bad_self_pairs.tsv", 2, "qid2"),
        ("bad_malformed.tsv", 2, None),
        ("kaggle_train.csv", 5, "question2"),
    ],
)
def test_strict_mode_raises_at_first_bad_row(fixture, row, column):
    path = FIXTURES / fixture
    with pytest.raises(InputError) as err:
        load_pairs(path, strict=True)
    e = err.value
    assert (e.file, e.row, e.column) == (str(path), row, column)
    msg = str(e)
    assert str(path) in msg and f"row {row}" in msg and (column is None or repr(column) in msg)


def test_report_lists_kinds_and_first_rows():
    report = load_pairs(FIXTURES / "bad_labels.tsv").report()
    assert "8 rows read, 3 pairs kept, 5 rows excluded" in report
    assert "bad_label: 5 rows (rows 2, 4, 5, 6, 7)" in report


# --- shared real sets --------------------------------------------------------------------------------


def test_load_shared_sets(shared_data, monkeypatch):
    monkeypatch.setenv("DUPQ_SHARED_DATA", str(shared_data))
    mqp = load_shared("mqp")
    assert (mqp.n_input_rows, len(mqp.pairs), mqp.pairs["label"].sum()) == (3048, 3048, 1524)
    semeval = load_shared("semeval-cqa")
    assert semeval.n_input_rows == 670 and int(semeval.pairs["label"].sum()) == 296
    # Subject and body make one question text.
    first = semeval.pairs.iloc[0]
    assert first["question1"].startswith("which mobile is best under 2000QR. i want to buy new mobile")
    # MQP's original headerless CSV reads to the same pairs as the TSV.
    original = load_pairs(shared_data / "medical-question-pairs" / "mqp_original.csv", fmt="mqp")
    assert original.pairs[["question1", "question2", "label"]].equals(
        mqp.pairs[["question1", "question2", "label"]]
    )
    mrpc = load_shared("mrpc")
    assert mrpc.n_input_rows == 4076
    for d in (mqp, semeval, mrpc):
        _accounted(d)
    with pytest.raises(DupqError, match="unknown shared data set"):
        load_shared("quora")


# --- Hugging Face -----------------------------------------------------------------------------------


def test_hf_offline_failure_names_the_data_set(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DupqError) as err:
        load_hf_pairs("sentence-transformers/quora-duplicates")
    assert "sentence-transformers/quora-duplicates" in str(err.value)
    with pytest.raises(DupqError) as err:
        load_hf_pairs("glue/qqp", split="dev")
    assert "nyu-mll/glue" in str(err.value) and "validation" in str(err.value)


def test_pairs_from_hf_in_both_hub_schemas():
    import datasets

    st = datasets.Dataset.from_dict(
        {
            "sentence1": ["How do I learn Go?", "Why is the sky blue?", "What is a mortgage?"],
            "sentence2": ["What's the best way to learn Go?", "How do airplanes fly?", "What is a mortgage?"],
            "label": [1, 0, 1],
        }
    )
    data = pairs_from_hf(st, source="hf:sentence-transformers/quora-duplicates")
    assert len(data.pairs) == 2 and [(i.row, i.kind) for i in data.issues] == [(3, "self_pair")]
    assert data.sha256 and len(data.sha256) == 64
    _accounted(data)

    features = datasets.Features(
        {
            "question1": datasets.Value("string"),
            "question2": datasets.Value("string"),
            "label": datasets.ClassLabel(names=["not_duplicate", "duplicate"]),
            "idx": datasets.Value("int32"),
        }
    )
    glue = datasets.Dataset.from_dict(
        {
            "question1": ["How do I cook quinoa?", "What is Kotlin?", "Is coffee bad?"],
            "question2": ["How should quinoa be cooked?", "What is Java?", "Is coffee unhealthy?"],
            "label": [1, 0, -1],
            "idx": [0, 1, 2],
        },
        features=features,
    )
    data = pairs_from_hf(glue, source="hf:glue/qqp")
    assert list(data.pairs["label"]) == [1, 0]
    assert [(i.row, i.kind, i.column) for i in data.issues] == [(3, "bad_label", "label")]
    unlabelled = datasets.Dataset.from_dict(
        {"question1": ["a?"], "question2": ["b?"], "label": [-1], "idx": [0]}, features=features
    )
    with pytest.raises(DupqError, match="no labels"):
        pairs_from_hf(unlabelled, source="hf:glue/qqp[test]")


# --- splits ------------------------------------------------------------------------------------------


def _assert_component_disjoint(splits: Splits) -> None:
    seen_qid: dict[str, str] = {}
    seen_text: dict[str, str] = {}
    for name, df in splits.items():
        for qid, text in zip(
            pd.concat([df["qid1"], df["qid2"]]), pd.concat([df["question1"], df["question2"]]), strict=True
        ):
            assert seen_qid.setdefault(qid, name) == name, f"qid {qid} in {seen_qid[qid]} and {name}"
            key = text_key(text)
            assert seen_text.setdefault(key, name) == name, f"{text!r} in {seen_text[key]} and {name}"


def _assert_fractions(splits: Splits, n: int, tol: float) -> None:
    assert sum(len(df) for _, df in splits.items()) == n
    assert abs(len(splits.dev) / n - 0.1) <= tol and abs(len(splits.test) / n - 0.1) <= tol


def _rows(splits: Splits) -> dict[str, list[int]]:
    return {name: sorted(df["source_row"]) for name, df in splits.items()}


def test_sample_data_splits_are_component_disjoint_and_reproducible():
    data = load_pairs(SAMPLE_PAIRS)
    assert data.fmt == "quora" and len(data.pairs) >= 400 and data.issues == []
    assert 0.33 <= data.summary()["duplicate_rate"] <= 0.41
    s1 = split_pairs(data, seed=42)
    _assert_component_disjoint(s1)
    _assert_fractions(s1, len(data.pairs), tol=0.04)
    assert all(0 < df["label"].mean() < 1 for _, df in s1.items())  # each split has both classes
    all_rows = sorted(r for rows in _rows(s1).values() for r in rows)
    assert all_rows == sorted(data.pairs["source_row"])  # every pair in exactly one split
    assert _rows(split_pairs(data, seed=42)) == _rows(s1)
    s2 = split_pairs(data, seed=7)
    _assert_component_disjoint(s2)
    assert _rows(s2) != _rows(s1)
    assert s1.info["components"] >= 30


def test_real_mqp_splits_are_component_disjoint_where_random_pair_splits_leak(shared_data):
    data = load_pairs(shared_data / "medical-question-pairs" / "mqp.tsv")
    splits = split_pairs(data, dev=0.1, test=0.1, seed=3)
    _assert_component_disjoint(splits)
    _assert_fractions(splits, len(data.pairs), tol=0.02)
    assert _rows(split_pairs(data, seed=3)) == _rows(splits)
    assert _rows(split_pairs(data, seed=4)) != _rows(splits)
    # The naive alternative: a random pair split shares questions between train and test.
    rng = np.random.default_rng(3)
    perm = rng.permutation(len(data.pairs))
    train, test = data.pairs.iloc[perm[:2440]], data.pairs.iloc[perm[2440:2744]]
    shared = set(train["question1"]) & (set(test["question1"]) | set(test["question2"]))
    assert len(shared) > 50


def test_giant_component_stays_in_train():
    hub = "What is the meaning of life?"
    rows = [("h", f"g{i}", hub, f"Giant question number {i}?", i % 2) for i in range(60)]
    rows += [(f"a{i}", f"b{i}", f"Small question {i} A?", f"Small question {i} B?", i % 2) for i in range(40)]
    df = pd.DataFrame(rows, columns=["qid1", "qid2", "question1", "question2", "label"])
    df["source_row"] = range(1, len(df) + 1)
    splits = split_pairs(df, dev=0.1, test=0.1, seed=0)
    assert splits.info["largest_component"] == 60 and splits.info["largest_component_split"] == "train"
    assert (splits.train["qid1"] == "h").sum() == 60
    assert len(splits.dev) == 10 and len(splits.test) == 10
    _assert_component_disjoint(splits)


def test_components_join_questions_by_normalised_text_as_well_as_qid():
    df = pd.DataFrame(
        {
            "qid1": ["1", "3", "5"],
            "qid2": ["2", "4", "6"],
            "question1": ["How do I learn Python?", "how do i learn python", "Where is Peru?"],
            "question2": ["Best Python course?", "Python for beginners?", "Where is Chile?"],
            "label": [1, 1, 0],
        }
    )
    comp = question_components(df)
    assert comp[0] == comp[1] != comp[2]


def test_split_rejects_bad_fractions():
    df = load_pairs(FIXTURES / "quora_duplicate_questions.tsv").pairs
    with pytest.raises(InputError):
        split_pairs(df, dev=0.6, test=0.5)
    with pytest.raises(InputError):
        split_pairs(df, dev=-0.1)


def test_splits_save_load_round_trip(tmp_path):
    data = load_pairs(FIXTURES / "quora_duplicate_questions.tsv")
    splits = split_pairs(data, dev=0.2, test=0.2, seed=1)
    out = splits.save(tmp_path / "splits")
    assert sorted(p.name for p in out.iterdir()) == ["dev.tsv", "split_summary.json", "test.tsv", "train.tsv"]
    summary = json.loads((out / "split_summary.json").read_text())
    assert summary["seed"] == 1 and set(summary["splits"]) == {"train", "dev", "test"}
    assert summary["splits"]["train"]["pairs"] == len(splits.train)
    loaded = Splits.load(out)
    assert loaded.seed == 1 and loaded.summary()["splits"] == splits.summary()["splits"]
    for (name, a), (_, b) in zip(splits.items(), loaded.items(), strict=True):
        pd.testing.assert_frame_equal(a.reset_index(drop=True), b, check_dtype=False, obj=name)
        assert list(b.columns) == PAIR_COLUMNS and b["label"].dtype == np.int64
    # Texts with tabs, newlines and quotes survive the TSV round trip.
    texts = {t for _, d in loaded.items() for t in (*d["question1"], *d["question2"])}
    assert {"How do I cook rice?\nI always burn it.", "What is\tRayleigh scattering?"} <= texts
    assert '"Quoted" start: is this parsed?' in texts
    # The saved files are readable as a generic pairs file too.
    assert len(load_pairs(out / "train.tsv").pairs) == len(splits.train)
    # A file from another save is noticed.
    (out / "dev.tsv").write_text((out / "test.tsv").read_text())
    with pytest.raises(StoreError, match="dev.tsv"):
        Splits.load(out)


def test_format_summary_table():
    splits = split_pairs(load_pairs(SAMPLE_PAIRS), seed=42)
    table = splits.format_summary()
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["split", "pairs", "share"]
    assert [ln.split()[0] for ln in lines[1:4]] == ["train", "dev", "test"]
    assert lines[1].split()[1] == str(len(splits.train))
    assert "seed 42" in lines[-1]


# --- CLI -----------------------------------------------------------------------------------------


def test_cli_data_inspect_and_split(tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["data", "inspect", str(FIXTURES / "bad_labels.tsv")])
    assert res.exit_code == 0, res.output
    assert "3 pairs kept" in res.output and "bad_label: 5 rows" in res.output
    res = runner.invoke(app, ["data", "inspect", str(FIXTURES / "bad_labels.tsv"), "--json"])
    assert res.exit_code == 0
    out = json.loads(res.stdout[res.stdout.index("{") :])
    assert out["pairs"] == 3 and [r["row"] for r in out["issue_rows"]] == [2, 4, 5, 6, 7]
    res = runner.invoke(
        app, ["data", "inspect", str(FIXTURES / "bad_missing_column.tsv"), "--format", "quora"]
    )
    assert res.exit_code == 2 and "is_duplicate" in res.output and "bad_missing_column.tsv" in res.output

    target = tmp_path / "splits"
    res = runner.invoke(app, ["data", "split", str(SAMPLE_PAIRS), "--out", str(target), "--seed", "5"])
    assert res.exit_code == 0, res.output
    assert "train" in res.output and "seed 5" in res.output
    loaded = Splits.load(target)
    assert loaded.seed == 5
    assert _rows(loaded) == _rows(split_pairs(load_pairs(SAMPLE_PAIRS), seed=5))
    _assert_component_disjoint(loaded)


def test_cli_split_generic_file_with_named_columns(tmp_path):
    src = tmp_path / "faq.csv"
    rows = [(f"How do I do task {i}?", f"What is the way to do task {i}?", i % 2) for i in range(30)]
    pd.DataFrame(rows, columns=["asked", "existing", "same"]).to_csv(src, index=False)
    res = CliRunner().invoke(
        app,
        ["data", "split", str(src), "--out", str(tmp_path / "s"), "--question1", "asked"]
        + ["--question2", "existing", "--label", "same", "--dev", "0.2", "--test", "0.2"],
    )
    assert res.exit_code == 0, res.output
    loaded = Splits.load(tmp_path / "s")
    assert [len(df) for _, df in loaded.items()] == [18, 6, 6]


def test_sample_questions_file_has_planted_groups_and_blank_rows():
    with open(REPO / "data" / "sample_questions.csv", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    with open(REPO / "data" / "sample_questions_groups.csv", encoding="utf-8", newline="") as fh:
        groups = {r["id"]: r["group"] for r in csv.DictReader(fh)}
    assert 250 <= len(rows) <= 350 and set(groups) == {r["id"] for r in rows}
    blank = [r for r in rows if not r["question"].strip()]
    assert 3 <= len(blank) <= 6 and all(groups[r["id"]] == "" for r in blank)
    keys = [text_key(r["question"]) for r in rows if r["question"].strip()]
    assert len(keys) - len(set(keys)) >= 8  # exact / case / punctuation variants
    by_group: dict[str, int] = {}
    for g in groups.values():
        if g:
            by_group[g] = by_group.get(g, 0) + 1
    assert sum(1 for n in by_group.values() if n >= 2) >= 20


def test_split_keys_are_the_exact_key_of_every_sample_text():
    """Splits join questions by :func:`dupq.text.text_key`: the same key as dedupe and the Matcher."""
    from dupq.text import normalize, normalized_key

    data = load_pairs(SAMPLE_PAIRS)
    texts = [*data.pairs["question1"], *data.pairs["question2"]]
    assert [text_key(t) for t in texts] == [normalized_key(normalize(t)) for t in texts]
