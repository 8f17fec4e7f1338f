"""What the README documents about `dupq train` beyond one plain run: early stopping (`--patience`),
the best checkpoint kept, `--resume last`, `--scheduler`, the TensorBoard directory and the sha256
provenance in dupq.json — each checked on the tiny model, so each can fail."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dupq.cli import app
from dupq.training import train_model
from tests.test_training import _config, _pairs, _Spy

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample_pairs.tsv"


def _train(tiny_model_dir: Path, out: Path, *extra: str) -> dict:
    args = ["train", str(SAMPLE), "--out", str(out), "--model", str(tiny_model_dir), "--batch-size", "16"]
    res = CliRunner().invoke(app, [*args, "--loss", "online-contrastive", *extra])
    assert res.exit_code == 0, res.output
    return json.loads((out / "dupq.json").read_text())


def test_patience_stops_early_and_tensorboard_and_sha256_are_written(tiny_model_dir, tmp_path):
    """`--patience 1` with a learning rate of 0 (dev AP never improves): training stops after the
    second evaluation instead of running its 12 steps; TensorBoard logs land in OUT/tensorboard; dupq.json
    names the input by the sha256 of its bytes."""
    out = tmp_path / "m"
    meta = _train(
        tiny_model_dir, out, "--lr", "0", "--max-steps", "12", "--eval-steps", "2", "--patience", "1"
    )
    assert meta["training"]["steps"] == 4, "early stopping did not stop the run"
    assert meta["config"]["patience"] == 1
    assert list((out / "tensorboard").rglob("events.out.tfevents.*")), "no TensorBoard event file"
    assert meta["data"]["sha256"] == hashlib.sha256(SAMPLE.read_bytes()).hexdigest()
    fingerprints = meta["data_fingerprint"]
    assert len(fingerprints["train"]) == 64 and fingerprints["train"] != fingerprints["dev"]
    # patience 0 turns early stopping off: the same run goes the whole way
    off = _train(
        tiny_model_dir,
        tmp_path / "n",
        "--lr",
        "0",
        "--max-steps",
        "6",
        "--eval-steps",
        "2",
        "--patience",
        "0",
        "--no-tensorboard",
    )
    assert off["training"]["steps"] == 6
    assert not (tmp_path / "n" / "tensorboard").exists()


def test_resume_last_and_scheduler_from_the_cli(tiny_model_dir, tmp_path, monkeypatch):
    """`--resume last` picks up the newest checkpoint (step, optimizer) and `--scheduler constant`
    keeps the learning rate flat where the default linear schedule decays it."""
    spy = _Spy(monkeypatch)
    out = tmp_path / "m"
    common = ["--lr", "1e-3", "--warmup-ratio", "0", "--eval-steps", "2", "--no-tensorboard"]
    _train(tiny_model_dir, out, *common, "--max-steps", "2", "--scheduler", "constant")
    assert (out / "checkpoints" / "checkpoint-2").is_dir() and spy.begin["global_step"] == 0
    meta = _train(
        tiny_model_dir, out, *common, "--max-steps", "4", "--scheduler", "constant", "--resume", "last"
    )
    assert spy.begin["global_step"] == 2 and set(spy.begin["optimizer_steps"]) == {2}
    assert meta["training"]["steps"] == 4 and meta["config"]["lr_scheduler"] == "constant"
    state = json.loads((out / "checkpoints" / "checkpoint-4" / "trainer_state.json").read_text())
    rates = [h["learning_rate"] for h in state["log_history"] if "learning_rate" in h]
    assert len(rates) >= 3 and all(r == pytest.approx(1e-3) for r in rates)
    linear = tmp_path / "lin"
    _train(tiny_model_dir, linear, *common, "--max-steps", "4")
    state = json.loads((linear / "checkpoints" / "checkpoint-4" / "trainer_state.json").read_text())
    rates = [h["learning_rate"] for h in state["log_history"] if "learning_rate" in h]
    assert rates == sorted(rates, reverse=True) and rates[-1] < rates[0]


def test_the_best_checkpoint_is_the_model_saved(tiny_model_dir, tmp_path, monkeypatch):
    """The saved model is the checkpoint with the best dev AP, not the last one. The dev AP each
    evaluation reports is scripted (0.5, 0.9, 0.6 at steps 2, 4, 6) so the best is known: step 4."""
    import torch
    from safetensors.torch import load_file

    import dupq.training as training_mod

    real = training_mod._dev_evaluator
    script = iter([0.1, 0.5, 0.9, 0.6])  # before training, then steps 2, 4, 6

    def scripted(dev_pairs, config):
        evaluator = real(dev_pairs, config)
        base = type(evaluator)

        class Scripted(base):
            def __call__(self, *args, **kwargs):
                metrics = super().__call__(*args, **kwargs)
                metrics[self.primary_metric if self.primary_metric in metrics else "dev_cosine_ap"] = next(
                    script, 0.0
                )
                return metrics

        evaluator.__class__ = Scripted
        return evaluator

    monkeypatch.setattr(training_mod, "_dev_evaluator", scripted)
    out = tmp_path / "b"
    cfg = _config(
        tiny_model_dir, "online-contrastive", max_steps=6, eval_steps=2, save_total_limit=3, patience=None
    )
    result = train_model(_pairs(48, seed=1), _pairs(16, seed=2), out, cfg)
    assert result.best_dev_ap == pytest.approx(0.9)
    assert result.metadata["training"]["best_checkpoint"].endswith("checkpoint-4")
    saved = load_file(out / "model.safetensors")
    best = load_file(out / "checkpoints" / "checkpoint-4" / "model.safetensors")
    last = load_file(out / "checkpoints" / "checkpoint-6" / "model.safetensors")
    assert all(torch.equal(saved[k], best[k]) for k in best), "the saved model is not the best checkpoint"
    assert any(not torch.equal(saved[k], last[k]) for k in last)
