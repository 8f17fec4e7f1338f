"""`dupq demo` (the pipeline on the bundled samples) runs through and leaves what it announces.

The CLI's demo fine-tunes all-MiniLM-L6-v2 (minutes); this runs the same steps on the tiny model."""

from __future__ import annotations

import json

import pandas as pd
from typer.testing import CliRunner

from dupq.cli import app
from dupq.demo import run_demo


def test_demo_pipeline_on_the_tiny_model(tiny_model_dir, tmp_path):
    paths = run_demo(tmp_path / "demo", base_model=str(tiny_model_dir), epochs=0.1, device="cpu")
    for name in ("model", "verifier", "report", "deduped", "store"):
        assert paths[name].exists(), name
    meta = json.loads((paths["model"] / "dupq.json").read_text())
    assert meta["base_model"] == str(tiny_model_dir) and "threshold" in meta
    deduped = pd.read_csv(paths["deduped"])
    assert {"group_id", "is_representative", "duplicate_of", "score", "status"} <= set(deduped.columns)
    assert (paths["store"] / "manifest.json").exists()


def test_demo_cli_options():
    res = CliRunner().invoke(app, ["demo", "--help"])
    assert res.exit_code == 0 and "--out" in res.output and "--epochs" in res.output
