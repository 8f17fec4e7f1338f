"""Training: every loss trains and lowers dev loss; dupq.json carries the calibrated operating point."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dupq.cli import app
from dupq.losses import LOSSES, LossSpec, build_datasets
from dupq.training import TrainConfig, train_model
from tests.tiny_model import WORDS

REPO = Path(__file__).resolve().parents[1]


def _pairs(n_groups: int, seed: int) -> pd.DataFrame:
    """Lexical duplicates (same words, 1-3 dropped, shuffled) and hard negatives (1-3 words replaced).

    A random tiny BERT sees both kinds as similar at first, so every loss has something to learn and
    the dev split (disjoint questions) measures whether it generalised.
    """
    rng = random.Random(seed)
    rows = []
    for g in range(n_groups):
        words = rng.sample(WORDS, 8)
        anchor = " ".join(words) + "?"
        kept = words[:]
        for _ in range(rng.randint(1, 3)):
            kept.pop(rng.randrange(len(kept)))
        rng.shuffle(kept)
        positive = " ".join(kept) + "?"
        changed = words[:]
        for i in rng.sample(range(8), rng.randint(1, 3)):
            changed[i] = rng.choice(WORDS)
        negative = " ".join(changed) + "?"
        rows.append((f"a{seed}-{g}", f"p{seed}-{g}", anchor, positive, 1))
        rows.append((f"a{seed}-{g}", f"n{seed}-{g}", anchor, negative, 0))
    df = pd.DataFrame(rows, columns=["qid1", "qid2", "question1", "question2", "label"])
    df["source_row"] = np.arange(1, len(df) + 1)
    return df


@pytest.fixture(scope="module")
def pair_splits():
    return _pairs(48, seed=1), _pairs(16, seed=2)


def _config(model_dir: Path, loss: str, **kw) -> TrainConfig:
    base = dict(
        base_model=str(model_dir),
        loss=loss,
        max_steps=6,
        batch_size=16,
        learning_rate=2e-3,
        warmup_ratio=0.0,
        eval_steps=3,
        save_total_limit=1,
        tensorboard=False,
        show_progress=False,
        max_seq_length=32,
    )
    base.update(kw)
    return TrainConfig(**base)


def _dev_ap(model, dev_pairs: pd.DataFrame) -> float:
    """AP of the cosine on dev under the data's own labels (1 = duplicate), measured outside training."""
    from sklearn.metrics import average_precision_score

    from dupq.embed import Embedder
    from dupq.evaluation import pair_similarities

    return float(average_precision_score(dev_pairs["label"], pair_similarities(Embedder(model), dev_pairs)))


@pytest.fixture(scope="module")
def base_dev_ap(tiny_model, pair_splits) -> float:
    return _dev_ap(tiny_model, pair_splits[1])


@pytest.mark.parametrize("loss", LOSSES)
def test_each_loss_trains_and_lowers_dev_loss(loss, tiny_model_dir, pair_splits, tmp_path):
    train_pairs, dev_pairs = pair_splits
    result = train_model(train_pairs, dev_pairs, tmp_path / "out", _config(tiny_model_dir, loss))
    assert result.steps == 6
    assert result.dev_loss_before is not None and result.dev_loss_after is not None
    before, after = result.dev_loss_before, result.dev_loss_after
    assert after < before, (loss, before, after)
    meta = json.loads((tmp_path / "out" / "dupq.json").read_text())
    assert meta["loss"]["name"] == loss
    assert (tmp_path / "out" / "modules.json").exists()


@pytest.mark.parametrize("loss", ["cosine", "contrastive", "online-contrastive"])
def test_fine_tuning_on_separable_pairs_raises_dev_ap(
    loss, tiny_model_dir, pair_splits, base_dev_ap, tmp_path
):
    """A loss measured under its own labels falls even with the label convention inverted (1 read as
    "different"); dev AP under the data's labels (1 = duplicate) does not. 12 steps on the separable
    pairs raise it by 0.09-0.20 over the untrained model's ~0.51-0.54 (measured over tiny models of
    several sessions; the tokenizer's training makes each session's tiny model a little different)."""
    train_pairs, dev_pairs = pair_splits
    cfg = _config(tiny_model_dir, loss, max_steps=12, eval_steps=6)
    train_model(train_pairs, dev_pairs, tmp_path / "out", cfg)
    tuned_ap = _dev_ap(str(tmp_path / "out"), dev_pairs)
    assert tuned_ap > base_dev_ap + 0.05, (loss, base_dev_ap, tuned_ap)


def test_metadata_threshold_is_dev_best_f1(tiny_model_dir, pair_splits, tmp_path):
    """The stored threshold is the best-F1 cut on dev similarities of the saved (best) model."""
    from dupq.embed import Embedder
    from dupq.evaluation import pair_similarities

    train_pairs, dev_pairs = pair_splits
    out = tmp_path / "m"
    result = train_model(train_pairs, dev_pairs, out, _config(tiny_model_dir, "online-contrastive"))
    meta = result.metadata
    keys = ("base_model", "loss", "config", "threshold", "calibration", "data_fingerprint", "split_sizes")
    assert all(key in meta for key in keys)
    scores = pair_similarities(Embedder(out, device="cpu"), dev_pairs)
    labels = dev_pairs["label"].to_numpy()
    t = meta["threshold"]

    def f1(th: float) -> float:
        pred = scores >= th
        tp = int(np.sum(pred & (labels == 1)))
        fp = int(np.sum(pred & (labels == 0)))
        fn = int(np.sum(~pred & (labels == 1)))
        return 2 * tp / max(2 * tp + fp + fn, 1)

    best = max(f1(float(s)) for s in scores)
    # The stored threshold came from the in-memory model, these scores from the reloaded one: re-encoding
    # moves cosines by float noise (~1e-7), which can flip a near-tie at the cut. Best F1 within 1e-5 of t.
    assert max(f1(t - 1e-5), f1(t), f1(t + 1e-5)) == pytest.approx(best, abs=1e-6)
    assert meta["calibration"]["coef"] > 0, "P(duplicate) must grow with similarity"
    assert meta["data_fingerprint"]["train"] != meta["data_fingerprint"]["dev"]


class _Spy:
    """A trainer callback (riding on the early-stopping slot) that records, when training begins, the
    global step, the optimizer's step count and a copy of the weights: what resuming restored."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import dupq.training as training_mod

        self.begin: dict = {}
        real = training_mod._early_stopping
        spy = self

        def patched(patience: int):
            callback = real(patience)
            base = type(callback)

            class Recording(base):
                def on_train_begin(self, args, state, control, model=None, optimizer=None, **kw):
                    steps = (
                        [int(s["step"]) for s in optimizer.state.values() if "step" in s] if optimizer else []
                    )
                    spy.begin = {
                        "global_step": state.global_step,
                        "optimizer_steps": steps,
                        "weights": {k: v.detach().clone() for k, v in model.state_dict().items()},
                    }
                    return super().on_train_begin(args, state, control, **kw)

            callback.__class__ = Recording
            return callback

        monkeypatch.setattr(training_mod, "_early_stopping", patched)


def test_resume_from_last_checkpoint(tiny_model_dir, pair_splits, tmp_path, monkeypatch):
    """Resuming restores the checkpoint's weights, optimizer state and step, and the loss curve goes on
    from there: the resumed run ends where one uninterrupted run of the same length ends (constant
    learning rate, so the two schedules agree step for step)."""
    import torch
    from safetensors.torch import load_file

    train_pairs, dev_pairs = pair_splits
    spy = _Spy(monkeypatch)
    kw = dict(lr_scheduler="constant", patience=10, save_total_limit=3)
    out = tmp_path / "r"
    train_model(train_pairs, dev_pairs, out, _config(tiny_model_dir, "cosine", max_steps=3, **kw))
    base_weights = spy.begin["weights"]
    checkpoint = out / "checkpoints" / "checkpoint-3"
    # transformers 5.3 (pinned below 5.4 by model2vec[distill]) writes LayerNorm weights under their legacy
    # names (gamma / beta) and maps them back on load: compare under the module's own names
    legacy = {".LayerNorm.gamma": ".LayerNorm.weight", ".LayerNorm.beta": ".LayerNorm.bias"}

    def module_name(key: str) -> str:
        for old, new in legacy.items():
            if key.endswith(old):
                return key[: -len(old)] + new
        return key

    saved = {f"0.model.{module_name(k)}": v for k, v in load_file(checkpoint / "model.safetensors").items()}
    assert set(saved) <= set(base_weights)
    assert any(not torch.equal(v, base_weights[k]) for k, v in saved.items())  # it holds trained weights

    cfg = _config(tiny_model_dir, "cosine", max_steps=6, **kw)
    result = train_model(train_pairs, dev_pairs, out, cfg, resume_from_checkpoint=True)
    begin = spy.begin
    assert begin["global_step"] == 3, "training restarted at step 0 instead of the checkpoint's step 3"
    assert begin["optimizer_steps"] and set(begin["optimizer_steps"]) == {3}, "optimizer state not restored"
    assert all(torch.equal(v, begin["weights"][k]) for k, v in saved.items()), "not the checkpoint's weights"
    assert result.steps == 6
    assert result.dev_loss_before is None  # not re-measured on resume
    # the loss curve continues: logged steps 1..6 once each, and the same end as an uninterrupted run
    logged = [h["step"] for h in result.history if "loss" in h]
    assert logged == sorted(set(logged)) and logged[0] < 3 < logged[-1] == 6
    straight = train_model(train_pairs, dev_pairs, tmp_path / "straight", cfg)
    assert result.dev_loss_after == pytest.approx(straight.dev_loss_after, rel=1e-4)


def test_bad_training_input(tiny_model_dir, pair_splits, tmp_path):
    train_pairs, dev_pairs = pair_splits
    with pytest.raises(ValueError, match="dev split"):
        train_model(train_pairs, dev_pairs[dev_pairs.label == 1], tmp_path, _config(tiny_model_dir, "mnrl"))
    with pytest.raises(ValueError, match="unknown loss"):
        LossSpec(name="hinge")
    with pytest.raises(ValueError, match="distance"):
        LossSpec(name="contrastive", distance="hamming")


def test_dataset_layouts(pair_splits):
    train_pairs, _ = pair_splits
    mnrl = build_datasets(train_pairs, LossSpec("mnrl"))
    assert mnrl.column_names == ["anchor", "positive"] and len(mnrl) == int(train_pairs.label.sum())
    trip = build_datasets(train_pairs, LossSpec("triplet"))
    neg = train_pairs[train_pairs.label == 0]
    negatives = dict(zip(neg.question1, neg.question2, strict=True))
    # hard negatives: each anchor's labelled non-duplicate partner is used when it exists
    assert all(negatives[a] == n for a, n in zip(trip["anchor"], trip["negative"], strict=True))
    multi = build_datasets(train_pairs, LossSpec("mnrl+online-contrastive"))
    assert set(multi) == {"mnrl", "online_contrastive"}
    cos = build_datasets(train_pairs, LossSpec("cosine"))
    assert isinstance(cos["label"][0], float)


def test_cli_train_then_evaluate(tiny_model_dir, tmp_path):
    """`dupq train` on the bundled sample → `dupq evaluate` on its held-out split."""
    runner = CliRunner()
    out = tmp_path / "model"
    res = runner.invoke(
        app,
        [
            "train",
            str(REPO / "data" / "sample_pairs.tsv"),
            "--out",
            str(out),
            "--model",
            str(tiny_model_dir),
            "--max-steps",
            "4",
            "--batch-size",
            "16",
            "--eval-steps",
            "2",
            "--loss",
            "online-contrastive",
            "--no-tensorboard",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "threshold" in res.output
    meta = json.loads((out / "dupq.json").read_text())
    assert meta["data"]["format"] == "quora"
    rows_in_file = len(pd.read_csv(REPO / "data" / "sample_pairs.tsv", sep="\t", quoting=3, dtype=str))
    assert meta["data"]["input_rows"] == rows_in_file == 430
    # every row read lands in exactly one split or is excluded with a reason: none lost, none counted twice
    assert sum(meta["split_sizes"].values()) + meta["data"]["excluded_rows"] == rows_in_file
    assert (out / "splits" / "test.tsv").exists()

    report_dir = tmp_path / "report"
    args = ["evaluate", str(out), str(out / "splits"), "--out", str(report_dir)]
    res = runner.invoke(app, [*args, "--base-model", str(tiny_model_dir)])
    assert res.exit_code == 0, res.output
    report = json.loads((report_dir / "report.json").read_text())
    text = json.dumps(report)
    assert "tfidf" in text and "zero-shot" in text


def test_cli_train_reports_bad_input(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("id\tqid1\tquestion1\n1\t2\thello\n")
    res = CliRunner().invoke(app, ["train", str(bad), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2
    assert "bad.tsv" in res.output


def test_metadata_keeps_precision_operating_points_and_a_forgetting_check(
    tiny_model_dir, pair_splits, tmp_path
):
    """dupq.json: thresholds for precision 0.90/0.95 on dev (dedupe's default) and AP vs the base model."""
    from dupq.embed import Embedder
    from dupq.evaluation import pair_similarities

    train_pairs, dev_pairs = pair_splits
    general = _pairs(12, seed=7)
    out = tmp_path / "op"
    result = train_model(
        train_pairs,
        dev_pairs,
        out,
        _config(tiny_model_dir, "online-contrastive"),
        general_pairs={"other": general},
    )
    points = result.metadata["operating_points"]
    scores = pair_similarities(Embedder(out, device="cpu"), dev_pairs)
    labels = dev_pairs["label"].to_numpy()
    for target in (0.90, 0.95):
        p = points[f"precision_{target:.2f}"]
        pred = scores >= p["threshold"]
        precision = (labels[pred] == 1).mean() if pred.any() else 0.0
        if p["reached"]:
            assert precision >= target
            # the lowest such threshold: one step lower (the next score down) falls below the target
            below = scores[scores < p["threshold"]]
            if len(below):
                lower = scores >= below.max()
                assert (labels[lower] == 1).mean() < target or lower.sum() == pred.sum()
    assert points["best_f1"]["threshold"] == pytest.approx(result.metadata["threshold"])
    forgetting = result.metadata["forgetting"]
    assert set(forgetting) == {"dev", "other"}
    for f in forgetting.values():
        assert f["delta"] == pytest.approx(f["ap"] - f["base_ap"])
        assert f["forgot"] == (f["delta"] < -0.01)
    assert "AP on other" in result.format_summary()


def test_cli_train_verifier_with_near_miss_augmentation(tiny_model_dir, tmp_path):
    """`dupq train --kind verifier --augment near-miss`: a verifier dir, splits, and what was added."""
    from dupq.verifier import Verifier

    out = tmp_path / "verifier"
    res = CliRunner().invoke(
        app,
        [
            "train",
            str(REPO / "data" / "sample_pairs.tsv"),
            "--out",
            str(out),
            "--model",
            str(tiny_model_dir),
            "--kind",
            "verifier",
            "--augment",
            "near-miss",
            "--verifier-head",
            "gbdt",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "verifier head" in res.output
    meta = json.loads((out / "dupq.json").read_text())
    assert meta["kind"] == "verifier" and meta["verifier"]["head"] == "gbdt"
    assert meta["augment"]["pairs_added"] == sum(meta["augment"]["by_rule"].values()) > 0
    assert (out / "splits" / "test.tsv").exists()
    v = Verifier.load(out, device="cpu")
    assert v.predict(
        ["How do I sort a list in Python?"], ["How do I sort a list in Java?"]
    ).probability.shape == (1,)
    bad = CliRunner().invoke(
        app,
        ["train", str(REPO / "data" / "sample_pairs.tsv"), "-o", str(tmp_path / "x"), "--augment", "shuffle"],
    )
    assert bad.exit_code == 2 and "near-miss" in bad.output
