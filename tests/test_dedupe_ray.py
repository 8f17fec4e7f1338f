"""The Ray engine gives the same groups as the local engine (one small Ray session, 2 CPUs)."""

from __future__ import annotations

import pandas as pd
import pytest

from dupq.dedupe import deduplicate
from tests.optional import import_extra
from tests.test_dedupe import CRAFTED, THRESHOLD, _groups

ray = import_extra("ray", "ray", module_level=True)  # CI installs it: a failure there, a skip elsewhere


@pytest.fixture(scope="module")
def ray_session():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_engine_gives_the_same_output_as_local(ray_session, tiny_model, tmp_path):
    df = pd.DataFrame({"id": [c[0] for c in CRAFTED], "question": [c[1] for c in CRAFTED]})
    df = pd.concat([df, df.assign(id=df["id"] + "x", question=df["question"].str.upper())], ignore_index=True)
    path = tmp_path / "questions.parquet"
    df.to_parquet(path, index=False)
    kw = dict(text_column="question", id_column="id", threshold=THRESHOLD, show_progress=False, chunk_size=5)
    local_res = deduplicate(path, model=tiny_model, **kw)
    local = local_res.table
    n_unique = local_res.summary.unique_texts
    assert n_unique == 10
    workdir = tmp_path / "work"
    res = deduplicate(path, model=tiny_model, engine="ray", workdir=workdir, **kw)
    remote = res.table
    assert res.summary.engine == "ray" and res.summary.texts_encoded == n_unique
    # the texts went through Ray Data as Parquet shards, and came back as Parquet shards
    store = next(workdir.glob("emb-*"))
    assert len(list((store / "texts").glob("*.parquet"))) == 2  # 10 unique texts, shards of 5
    assert list((store / "ray-out").rglob("*.parquet"))
    cols = ["id", "group_id", "is_representative", "duplicate_of", "status"]
    pd.testing.assert_frame_equal(local[cols], remote[cols])
    assert (local["score"].fillna(-1) - remote["score"].fillna(-1)).abs().max() < 2e-3
    # each question and its upper-cased copy share a group (the exact pass; no tiny-model cosine involved)
    groups = _groups(remote, "id")
    assert all(any({i, i + "x"} <= g for g in groups) for i in df["id"].head(len(CRAFTED)))
    # a rerun finds every vector in the workdir and starts no Ray job
    again = deduplicate(path, model=tiny_model, engine="ray", workdir=workdir, **kw)
    assert again.summary.texts_encoded == 0 and again.summary.embeddings_reused == n_unique


def test_engine_ray_from_the_cli(ray_session, tiny_model_dir, tmp_path):
    """`dupq dedupe --engine ray` runs the encode stage on Ray Data (this module's session) and writes
    what the local engine writes."""
    import json

    from typer.testing import CliRunner

    from dupq.cli import app

    path = tmp_path / "q.csv"
    pd.DataFrame({"id": [c[0] for c in CRAFTED], "question": [c[1] for c in CRAFTED]}).to_csv(
        path, index=False
    )
    base = [
        "dedupe",
        str(path),
        "--text-column",
        "question",
        "--id-column",
        "id",
        "--model",
        str(tiny_model_dir),
    ]
    base += ["--threshold", "0.9", "--quiet"]
    runs = {}
    for engine in ("local", "ray"):
        out = tmp_path / f"{engine}.csv"
        res = CliRunner().invoke(app, [*base, "--engine", engine, "--out", str(out)])
        assert res.exit_code == 0, res.output
        runs[engine] = pd.read_csv(out, dtype=str, keep_default_na=False)
    summary = json.loads((tmp_path / "ray.summary.json").read_text())
    assert summary["engine"] == "ray" and summary["texts_encoded"] == summary["unique_texts"] == 10
    assert _groups(runs["ray"], "id") == _groups(runs["local"], "id")
