"""``dupq dedupe`` killed for real: SIGKILL mid-shard keeps what was saved, Ctrl-C exits 130.

The in-process tests (test_dedupe.py) raise KeyboardInterrupt between encode calls; these run the CLI
in a child process and signal it while it encodes, as a user's kill or Ctrl-C would. The child slows
each encode call a little and saves after every piece of 16 texts, so the signal lands mid-shard
(one shard holds all the texts) whatever the machine's speed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dupq.cli import app
from dupq.dedupe import deduplicate
from tests.tiny_model import sample_questions

REPO = Path(__file__).resolve().parents[1]
N = 240

CHILD = """
import sys, time
import dupq.dedupe.store as store
store.PIECE = 16
store.SAVE_EVERY_SECONDS = 0.0
from dupq.embed import Embedder
encode = Embedder.encode_flagged
def slow(self, texts, **kw):
    time.sleep(0.15)
    return encode(self, texts, **kw)
Embedder.encode_flagged = slow
from dupq.cli import app
app(sys.argv[1:], prog_name="dupq")
"""


@pytest.fixture
def questions(tmp_path: Path) -> Path:
    texts = list(dict.fromkeys(sample_questions(3 * N, seed=11)))[:N]
    assert len(texts) == N
    path = tmp_path / "q.csv"
    pd.DataFrame({"q": texts}).to_csv(path, index=False)
    return path


def _args(path: Path, model: Path, workdir: Path, out: Path) -> list[str]:
    args = ["dedupe", str(path), "--text-column", "q", "--model", str(model), "--threshold", "0.99"]
    return [*args, "--workdir", str(workdir), "--out", str(out), "--quiet"]


def _start(path: Path, model: Path, workdir: Path, out: Path) -> subprocess.Popen:
    args = _args(path, model, workdir, out)
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_mid_shard(proc: subprocess.Popen, workdir: Path) -> int:
    """Block until some but not all texts are marked done on disk; return how many."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        for done in workdir.glob("emb-*/done.npy"):
            try:
                n = int(np.load(done).sum())
            except (OSError, ValueError):  # replaced under us: read it next time
                continue
            if 0 < n < N // 2:
                return n
        time.sleep(0.02)
    raise AssertionError("the child never got part-way through encoding")


def test_sigkill_mid_shard_then_rerun_resumes(questions, tiny_model_dir, tiny_model, tmp_path):
    workdir, out = tmp_path / "w", tmp_path / "out.csv"
    proc = _start(questions, tiny_model_dir, workdir, out)
    seen = _wait_mid_shard(proc, workdir)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists()  # nothing half-written
    saved = int(np.load(next(workdir.glob("emb-*/done.npy"))).sum())
    assert seen <= saved < N
    # the same command again (in-process: the resume is the point here, not the process)
    rerun = CliRunner().invoke(app, _args(questions, tiny_model_dir, workdir, out))
    assert rerun.exit_code == 0, rerun.output
    summary = json.loads((tmp_path / "out.summary.json").read_text())
    assert summary["embeddings_reused"] == saved and summary["texts_encoded"] == N - saved
    fresh = deduplicate(questions, text_column="q", model=tiny_model, threshold=0.99, show_progress=False)
    got = pd.read_csv(out)
    assert got["group_id"].tolist() == fresh.table["group_id"].tolist()
    np.testing.assert_allclose(got["score"], fresh.table["score"].astype(float), atol=1e-3)


def test_ctrl_c_exits_130_and_keeps_the_work(questions, tiny_model_dir, tmp_path):
    workdir, out = tmp_path / "w", tmp_path / "out.csv"
    proc = _start(questions, tiny_model_dir, workdir, out)
    _wait_mid_shard(proc, workdir)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "rerun the same command to resume" in err
    assert "Traceback" not in err
    assert not out.exists() and any(workdir.glob("emb-*/done.npy"))
