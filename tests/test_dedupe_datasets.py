"""Datasets in and out: a ``datasets.Dataset`` (and a DataFrame) in, the same rows with every other
column kept out; ``save_to_disk`` directories and Parquet shard directories as input files; and
``keep_only="representatives"``, which writes one row per group and never loses the others."""

from __future__ import annotations

import pandas as pd
import pytest
from datasets import Dataset, DatasetDict
from typer.testing import CliRunner

from dupq.cli import app
from dupq.dedupe import RESULT_COLUMNS, deduplicate
from dupq.errors import InputError
from dupq.tables import TableFile
from tests.test_dedupe import THRESHOLD, _crafted_frame, _expected_partition, _groups


def _frame() -> pd.DataFrame:
    df = _crafted_frame()
    df["votes"] = list(range(len(df)))
    df["lang"] = "en"
    return df


def _run(data, **kw):
    return deduplicate(
        data, text_column="question", id_column="id", threshold=THRESHOLD, show_progress=False, **kw
    )


def test_a_dataset_in_is_a_dataset_out_with_every_column(tiny_model):
    df = _frame()
    res = _run(Dataset.from_pandas(df), model=tiny_model)
    ds = res.dataset
    assert isinstance(ds, Dataset)
    assert ds.column_names == [*df.columns, *RESULT_COLUMNS]
    out = ds.to_pandas()
    assert out["votes"].tolist() == df["votes"].tolist() and set(out["lang"]) == {"en"}
    assert _groups(out, "id") == _expected_partition()
    frame_res = _run(df, model=tiny_model)
    pd.testing.assert_frame_equal(res.table.reset_index(drop=True), frame_res.table.reset_index(drop=True))
    assert res.summary.input == "<Dataset>"


def test_save_to_disk_and_parquet_shard_directories(tiny_model_dir, tmp_path):
    df = _frame()
    disk = tmp_path / "saved"
    Dataset.from_pandas(df).save_to_disk(str(disk))
    shards = tmp_path / "shards"
    shards.mkdir()
    for i, start in enumerate(range(0, len(df), 5)):
        df.iloc[start : start + 5].to_parquet(shards / f"part-{i:03d}.parquet", index=False)
    outs = []
    for src in (disk, shards):
        out = tmp_path / f"{src.name}.csv"
        args = ["dedupe", str(src), "-t", "question", "--id-column", "id", "-m", str(tiny_model_dir)]
        r = CliRunner().invoke(app, [*args, "--threshold", str(THRESHOLD), "-o", str(out), "-q"])
        assert r.exit_code == 0, r.output
        outs.append(pd.read_csv(out, dtype=str, keep_default_na=False))
    pd.testing.assert_frame_equal(outs[0], outs[1])
    assert outs[0]["id"].tolist() == df["id"].tolist()
    assert _groups(outs[0], "id") == _expected_partition()


def test_directory_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="neither"):
        TableFile(tmp_path / "empty")
    two = tmp_path / "two"
    DatasetDict(
        {"train": Dataset.from_dict({"q": ["a"]}), "test": Dataset.from_dict({"q": ["b"]})}
    ).save_to_disk(str(two))
    with pytest.raises(InputError, match="splits"):
        TableFile(two)
    bad = tmp_path / "bad"
    bad.mkdir()
    pd.DataFrame({"q": ["a"]}).to_parquet(bad / "a.parquet")
    pd.DataFrame({"x": ["b"]}).to_parquet(bad / "b.parquet")
    with pytest.raises(InputError, match="differ") as exc:
        TableFile(bad)
    assert exc.value.file.endswith("b.parquet")


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_keep_only_representatives_loses_no_row(tiny_model, tmp_path, suffix):
    df = _frame()
    df.loc[len(df)] = ["e1", "", 99, "en"]  # a row without text is kept: it was never judged a duplicate
    out = tmp_path / f"deduped{suffix}"
    res = _run(df, model=tiny_model, out=out, keep_only="representatives")
    kept = (
        pd.read_parquet(out) if suffix == ".parquet" else pd.read_csv(out, dtype=str, keep_default_na=False)
    )
    dropped_path = tmp_path / f"deduped.dropped{suffix}"
    dropped = (
        pd.read_parquet(dropped_path)
        if suffix == ".parquet"
        else pd.read_csv(dropped_path, dtype=str, keep_default_na=False)
    )
    assert len(kept) == len(_expected_partition()) + 1
    assert sorted(kept["id"].tolist() + dropped["id"].tolist()) == sorted(df["id"].tolist())
    assert "e1" in kept["id"].tolist()
    assert not dropped["is_representative"].astype(str).isin(["True"]).any()
    assert set(dropped["duplicate_of"]) <= set(kept["id"])
    s = res.summary
    assert (s.rows_written, s.rows_dropped, s.dropped_output) == (len(kept), len(dropped), str(dropped_path))
    assert s.rows_written + s.rows_dropped == s.rows
    mem = _run(df, model=tiny_model, keep_only="representatives")
    assert mem.table["id"].tolist() == kept["id"].tolist()
    assert mem.dropped["id"].tolist() == dropped["id"].tolist()
    with pytest.raises(InputError, match="keep_only"):
        _run(df, model=tiny_model, keep_only="everything")
