"""Evaluation: metrics against hand-computed values, threshold calibration, scorers, reports, CLI."""

from __future__ import annotations

import json
import math
import random
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import sparse
from typer.testing import CliRunner

import dupq
from dupq.datamodels import EvaluationReport, Splits
from dupq.errors import InputError, StoreError
from dupq.evaluation import (
    SRC_ARGUMENT,
    SRC_DEV,
    SRC_EVAL,
    SRC_METADATA,
    Calibration,
    EmbeddingScorer,
    TfidfScorer,
    best_f1_threshold,
    calibrate,
    classification_metrics,
    evaluate,
    pair_similarities,
    retrieval_metrics,
    split_questions,
)
from tests.tiny_model import WORDS

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def make_pairs(rows: list[tuple[str, str, str, str, int]]) -> pd.DataFrame:
    """A canonical pairs frame from (qid1, qid2, question1, question2, label) tuples."""
    df = pd.DataFrame(rows, columns=["qid1", "qid2", "question1", "question2", "label"])
    df["label"] = df["label"].astype("int64")
    df["source_row"] = np.arange(1, len(df) + 1, dtype=np.int64)
    return df


def synthetic_pairs(n: int, seed: int, prefix: str) -> pd.DataFrame:
    """Duplicates: a question and a reordered copy missing one word; non-duplicates: two random questions."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(5, 9))]
        q1 = " ".join(words).capitalize() + "?"
        if i % 2 == 0:
            variant = words[:]
            variant.pop(rng.randrange(len(variant)))
            rng.shuffle(variant)
            q2, label = " ".join(variant).capitalize() + "?", 1
        else:
            q2, label = " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 9))).capitalize() + "?", 0
        rows.append((f"{prefix}{2 * i}", f"{prefix}{2 * i + 1}", q1, q2, label))
    return make_pairs(rows)


@pytest.fixture(scope="module")
def splits() -> dict[str, pd.DataFrame]:
    return {
        "train": synthetic_pairs(60, 1, "tr"),
        "dev": synthetic_pairs(40, 2, "dv"),
        "test": synthetic_pairs(40, 3, "te"),
    }


@pytest.fixture(scope="module")
def trained_like_dir(tiny_model_dir: Path, tiny_hf_dir: Path, tmp_path_factory) -> Path:
    """The tiny model as a training output: a copy with a dupq.json naming its base model."""
    out = tmp_path_factory.mktemp("ft") / "tiny-ft"
    shutil.copytree(tiny_model_dir, out)
    meta = {
        "base_model": str(tiny_hf_dir),
        "threshold": 0.9,
        "calibration": {"threshold": 0.9, "coef": 12.0, "intercept": -10.0, "f1": 0.7},
    }
    (out / "dupq.json").write_text(json.dumps(meta))
    return out


# ---------------------------------------------------------------------------------------------
# Pair classification metrics and calibration, against hand-computed values
# ---------------------------------------------------------------------------------------------
SCORES = [0.9, 0.8, 0.7, 0.6, 0.4, 0.2]
LABELS = [1, 1, 0, 1, 0, 0]


def test_classification_metrics_match_hand_computation():
    m = classification_metrics(SCORES, LABELS, threshold=0.65)
    # predicted duplicate: 0.9 (1), 0.8 (1), 0.7 (0) -> TP 2, FP 1, FN 1 (0.6), TN 2
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (2, 1, 1, 2)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["accuracy"] == pytest.approx(4 / 6)
    # AP = sum over positives of precision at its rank / #positives: ranks 1, 2, 4 -> (1 + 1 + 3/4) / 3
    assert m["average_precision"] == pytest.approx((1 + 1 + 3 / 4) / 3)
    # ROC-AUC = fraction of (positive, negative) pairs ordered correctly: 0.9 and 0.8 beat all 3, 0.6 beats 2
    assert m["roc_auc"] == pytest.approx(8 / 9)
    # the threshold is inclusive: at exactly 0.7 the negative at 0.7 is predicted duplicate
    assert classification_metrics(SCORES, LABELS, 0.7)["fp"] == 1
    assert classification_metrics(SCORES, LABELS, 0.70001)["fp"] == 0


def test_classification_metrics_single_class_and_nothing_predicted():
    m = classification_metrics([0.1, 0.2], [0, 0], threshold=0.5)
    assert math.isnan(m["average_precision"]) and math.isnan(m["roc_auc"])
    assert m["precision"] == 0.0 and m["accuracy"] == 1.0
    with pytest.raises(InputError, match="labels"):
        classification_metrics([0.1, 0.2], [0, 2], threshold=0.5)
    with pytest.raises(InputError, match="2 scores but 3 labels"):
        classification_metrics([0.1, 0.2], [0, 1, 1], threshold=0.5)


def test_best_f1_threshold_by_hand_and_tie_rule():
    # F1 = 2TP / (TP + FP + P) for "score >= cut":
    # cut 0.9: 2/4, 0.8: 4/5, 0.7: 4/6, 0.6: 6/7, 0.4: 6/8, 0.2: 6/9
    threshold, f1 = best_f1_threshold(SCORES, LABELS)
    assert f1 == pytest.approx(6 / 7)
    assert threshold == pytest.approx((0.6 + 0.4) / 2)  # midpoint to the next lower score
    assert classification_metrics(SCORES, LABELS, threshold)["f1"] == pytest.approx(6 / 7)
    # tie: cut 0.9 (2/3) and cut 0.6 (4/6 = 2/3) -> the higher cut wins
    threshold, f1 = best_f1_threshold([0.9, 0.8, 0.7, 0.6], [1, 0, 0, 1])
    assert f1 == pytest.approx(2 / 3)
    assert threshold == pytest.approx(0.85)
    # all predicted duplicate: the lowest score itself
    assert best_f1_threshold([0.3, 0.2], [1, 1]) == (pytest.approx(0.2), pytest.approx(1.0))
    with pytest.raises(InputError, match="no duplicate"):
        best_f1_threshold([0.3, 0.2], [0, 0])


def test_calibrate_threshold_and_platt_probabilities():
    rng = np.random.default_rng(0)
    labels = np.r_[np.ones(300), np.zeros(300)].astype(int)
    scores = np.r_[rng.normal(0.75, 0.1, 300), rng.normal(0.45, 0.12, 300)]
    cal = calibrate(scores, labels)
    assert (cal.threshold, cal.f1) == pytest.approx(best_f1_threshold(scores, labels))
    assert 0.45 < cal.threshold < 0.75
    assert cal.coef > 0
    grid = np.linspace(-1, 1, 101)
    p = cal.probability(grid)
    assert np.all((p > 0) & (p < 1))
    assert np.all(np.diff(p) > 0)
    # calibrated: predicted probabilities match the observed duplicate rate in bins
    probs = cal.probability(scores)
    for lo, hi in [(0.0, 0.3), (0.3, 0.7), (0.7, 1.0)]:
        sel = (probs >= lo) & (probs < hi)
        assert abs(probs[sel].mean() - labels[sel].mean()) < 0.08
    # perfectly separated data still gives finite, monotone probabilities (Platt's smoothed targets)
    sep = calibrate([0.9, 0.8, 0.3, 0.2], [1, 1, 0, 0])
    assert np.isfinite(sep.coef) and sep.coef > 0
    assert 0.5 < sep.probability([0.9])[0] < 1 and 0 < sep.probability([0.2])[0] < 0.5
    assert sep.threshold == pytest.approx(0.55)
    with pytest.raises(InputError, match="one class"):
        calibrate([0.9, 0.8], [1, 1])


def test_calibration_round_trip_and_dupq_json_layout():
    cal = Calibration(threshold=0.8, coef=10.0, intercept=-8.0, f1=0.75)
    d = cal.to_dict()
    assert set(d) == {"threshold", "coef", "intercept", "f1"}
    assert Calibration.from_dict(d) == cal
    # a whole dupq.json: the top-level threshold wins over the stored one
    meta = {"base_model": "x", "threshold": 0.7, "calibration": d}
    assert Calibration.from_dict(meta).threshold == 0.7
    assert Calibration.from_dict(meta).coef == 10.0
    assert cal.probability([0.8])[0] == pytest.approx(1 / (1 + math.exp(-(10 * 0.8 - 8))))
    assert cal.predict([0.79, 0.8]).tolist() == [0, 1]
    with pytest.raises(StoreError, match="calibration"):
        Calibration.from_dict({"threshold": 0.5})


# ---------------------------------------------------------------------------------------------
# Retrieval metrics, against hand-computed values
# ---------------------------------------------------------------------------------------------
def _unit(deg: float) -> np.ndarray:
    return np.array([math.cos(math.radians(deg)), math.sin(math.radians(deg))], dtype=np.float32)


RETRIEVAL_PAIRS = make_pairs(
    [
        ("A", "B", "question a", "question b", 1),
        ("B", "C", "question b", "question c", 1),  # A~B, B~C: C is a duplicate of A by transitivity
        ("D", "E", "question d", "question e", 0),  # D and E are distractors only
        ("A", "D", "question a", "question d", 0),
    ]
)
ANGLES = {"A": 0, "B": 10, "C": 100, "D": 25, "E": 90}


def test_retrieval_metrics_match_hand_computation():
    qs = split_questions(RETRIEVAL_PAIRS)
    assert set(qs["qid"]) == set("ABCDE")
    assert dict(zip(qs["qid"], qs["n_duplicates"], strict=True)) == {"A": 2, "B": 2, "C": 2, "D": 0, "E": 0}
    vectors = np.stack([_unit(ANGLES[q]) for q in qs["qid"]])
    m = retrieval_metrics(vectors, RETRIEVAL_PAIRS)
    # Rankings by angle distance (relevant in caps):
    #   A: B(10) d(25) e(90) C(100)   -> relevant at ranks 1, 4
    #   B: A(10) d(15) e(80) C(90)    -> relevant at ranks 1, 4
    #   C: e(10) d(75) B(90) A(100)   -> relevant at ranks 3, 4
    dcg = lambda ranks: sum(1 / math.log2(r + 1) for r in ranks)  # noqa: E731
    idcg = dcg([1, 2])
    assert m["n_queries"] == 3 and m["n_questions"] == 5
    assert m["recall@1"] == pytest.approx((0.5 + 0.5 + 0) / 3)
    assert m["recall@5"] == pytest.approx(1.0)
    assert m["recall@10"] == pytest.approx(1.0)
    assert m["mrr@10"] == pytest.approx((1 + 1 + 1 / 3) / 3)
    assert m["ndcg@10"] == pytest.approx((dcg([1, 4]) + dcg([1, 4]) + dcg([3, 4])) / 3 / idcg)
    # sparse vectors and one-row blocks give the same numbers
    assert retrieval_metrics(sparse.csr_matrix(vectors), RETRIEVAL_PAIRS, block_size=1) == pytest.approx(m)
    # recall@2 is a proper fraction of the relevant set (A finds B but not C)
    assert retrieval_metrics(vectors, RETRIEVAL_PAIRS, ks=(2,))["recall@2"] == pytest.approx(1 / 3)
    with pytest.raises(InputError, match="5 questions"):
        retrieval_metrics(vectors[:4], RETRIEVAL_PAIRS)


# ---------------------------------------------------------------------------------------------
# Scorers
# ---------------------------------------------------------------------------------------------
LEXICAL = make_pairs(
    [
        (
            "1",
            "2",
            "How do I learn Python programming fast?",
            "Fastest way to learn Python programming?",
            1,
        ),
        ("3", "4", "How can I lose weight quickly?", "Best way to lose weight quickly?", 1),
        ("5", "6", "How do I cook rice in a rice cooker?", "How to cook rice with a rice cooker?", 1),
        ("1", "3", "How do I learn Python programming fast?", "How can I lose weight quickly?", 0),
        ("7", "8", "Where can I buy a cheap laptop?", "Which visa do I need to travel to Japan?", 0),
    ]
)


def test_tfidf_scorer_ranks_lexical_duplicates_first():
    scorer = TfidfScorer()
    scores = scorer.pair_scores(LEXICAL)
    assert scores[:3].min() > scores[3:].max()
    assert scorer.fitted_on.startswith("evaluated questions")
    m = retrieval_metrics(scorer, LEXICAL)
    assert m["n_queries"] == 6
    assert m["recall@1"] == pytest.approx(1.0) and m["mrr@10"] == pytest.approx(1.0)
    # fitted on other texts, the vocabulary is fixed: unseen words do not count
    fixed = TfidfScorer(["python programming learn", "rice cooker cook"])
    assert fixed.pair_scores(LEXICAL)[1] == 0.0  # no known word in the weight-loss pair


def test_embedding_scorer_matches_pair_similarities(tiny_model):
    emb = dupq.Embedder(tiny_model)
    sims = pair_similarities(emb, LEXICAL)
    v1, v2 = emb.encode(LEXICAL["question1"].tolist()), emb.encode(LEXICAL["question2"].tolist())
    np.testing.assert_allclose(sims, np.sum(v1 * v2, axis=1), rtol=1e-5, atol=1e-6)
    scorer = EmbeddingScorer(emb)
    np.testing.assert_allclose(scorer.pair_scores(LEXICAL), sims, rtol=1e-6)
    # identical texts score 1
    same = make_pairs([("1", "2", "How do I learn Python?", "How do I learn Python?", 1)])
    assert pair_similarities(emb, same)[0] == pytest.approx(1.0, abs=1e-5)


def test_bad_pairs_name_row_and_column(tiny_model):
    bad = LEXICAL.copy()
    bad.loc[2, "label"] = 2
    with pytest.raises(InputError) as err:
        pair_similarities(tiny_model, bad)
    assert err.value.row == 3 and err.value.column == "label"
    with pytest.raises(InputError, match="question2"):
        pair_similarities(tiny_model, LEXICAL.drop(columns=["question2"]))


# ---------------------------------------------------------------------------------------------
# evaluate(): thresholds, baselines, report files
# ---------------------------------------------------------------------------------------------
def test_evaluate_writes_report_and_valid_plots(trained_like_dir: Path, splits, tmp_path: Path):
    out = tmp_path / "report"
    report = dupq.evaluate(
        trained_like_dir,
        splits["test"],
        train_pairs=splits["train"],
        dev_pairs=splits["dev"],
        out_dir=out,
        device="cpu",
    )
    assert isinstance(report, EvaluationReport)
    assert report.system_names == ["fine-tuned", "tfidf", "zero-shot"]
    ft, tfidf, zs = (report.system(n) for n in report.system_names)
    # the model's threshold comes from its dupq.json; baselines are calibrated on dev
    assert (ft.threshold, ft.threshold_source) == (0.9, SRC_METADATA)
    assert ft.calibration["coef"] == 12.0
    assert tfidf.threshold_source == SRC_DEV and zs.threshold_source == SRC_DEV
    assert "train questions" in tfidf.description
    assert str(Path(zs.description.split(" (")[0])) == str(
        Path(json.loads((trained_like_dir / "dupq.json").read_text())["base_model"])
    )
    assert report.n_pairs == 40 and report.n_positive == 20 and report.n_questions == 80
    assert report.n_queries == 40 and report.n_clusters == 20
    # TF-IDF finds the reworded duplicates (they share all but one word): a strong, honest baseline
    assert tfidf.classification["average_precision"] > 0.9
    assert tfidf.retrieval["recall@10"] > 0.9
    for s in report.systems:
        assert 0 <= s.classification["f1"] <= 1 and 0 <= s.retrieval["ndcg@10"] <= 1
    # files: json + md + the four plots, all real
    expected = {"report.json", "report.md", "pr_curve", "similarity_hist", "f1_threshold", "tsne"}
    assert set(report.files) == expected
    for key, path in report.files.items():
        assert Path(path).is_file() and Path(path).parent == out, key
        if path.endswith(".png"):
            assert Path(path).read_bytes()[:8] == PNG_MAGIC
            import matplotlib.image

            img = matplotlib.image.imread(path)
            assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    assert not list(out.glob("*.tmp"))
    saved = json.loads((out / "report.json").read_text())
    assert [s["name"] for s in saved["systems"]] == ["fine-tuned", "tfidf", "zero-shot"]
    assert EvaluationReport.from_dict(saved).system("tfidf").retrieval == pytest.approx(tfidf.retrieval)
    md = (out / "report.md").read_text()
    for name in ("fine-tuned", "tfidf", "zero-shot", "![tsne](tsne.png)", "dupq.json"):
        assert name in md
    table = report.format_table()
    assert all(n in table for n in ("fine-tuned", "tfidf", "zero-shot", "R@10", "nDCG@10"))


def test_threshold_precedence_and_notes(tiny_model_dir: Path, trained_like_dir: Path, splits):
    test, dev = splits["test"], splits["dev"]
    # explicit argument beats dupq.json
    r = evaluate(trained_like_dir, test, threshold=0.5, baselines=(), plots=False, device="cpu")
    assert (r.system("fine-tuned").threshold, r.system("fine-tuned").threshold_source) == (0.5, SRC_ARGUMENT)
    assert r.system("fine-tuned").classification["threshold"] == 0.5
    # a Calibration argument also counts as explicit, and brings probabilities (Brier score)
    cal = Calibration(threshold=0.6, coef=5.0, intercept=-3.0, f1=0.5)
    r = evaluate(trained_like_dir, test, calibration=cal, baselines=(), device="cpu")
    assert r.system("fine-tuned").threshold == 0.6 and "brier" in r.system("fine-tuned").classification
    # no dupq.json: calibrated on dev when given ...
    r = evaluate(tiny_model_dir, test, dev_pairs=dev, baselines=("tfidf",), device="cpu")
    ft = r.system("fine-tuned")
    assert ft.threshold_source == SRC_DEV
    emb = dupq.Embedder(tiny_model_dir, device="cpu")
    assert ft.threshold == pytest.approx(calibrate(pair_similarities(emb, dev), dev["label"]).threshold)
    # ... else on the evaluated pairs, flagged as optimistic; TF-IDF fitted on the test questions is noted
    r = evaluate(tiny_model_dir, test, baselines=("tfidf", "zero-shot"), device="cpu")
    assert r.system("fine-tuned").threshold_source == SRC_EVAL
    assert r.system("fine-tuned").classification["f1"] == pytest.approx(
        r.system("fine-tuned").classification["best_f1"]
    )
    notes = " ".join(r.notes)
    assert "optimistic" in notes and "transductive" in notes and "zero-shot baseline skipped" in notes
    assert r.system_names == ["fine-tuned", "tfidf"]
    with pytest.raises(ValueError, match="unknown baseline"):
        evaluate(tiny_model_dir, test, baselines=("bm25",))


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------
def test_cli_evaluate_round_trip(trained_like_dir: Path, splits, tmp_path: Path):
    from dupq.cli import app

    split_dir = Splits(splits["train"], splits["dev"], splits["test"], seed=0).save(tmp_path / "splits")
    runner = CliRunner()
    out = tmp_path / "cli-report"
    res = runner.invoke(
        app,
        ["evaluate", str(trained_like_dir), str(split_dir), "--out", str(out), "--json", "--device", "cpu"],
    )
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert [s["name"] for s in report["systems"]] == ["fine-tuned", "tfidf", "zero-shot"]
    assert report["n_pairs"] == 40 and report["data"]["split"] == "test"
    assert report["systems"][1]["threshold_source"] == SRC_DEV
    assert (out / "report.json").exists() and (out / "tsne.png").exists()

    # a plain pair file, no baselines, table output
    pair_file = tmp_path / "pairs.csv"
    splits["dev"][["question1", "question2", "label"]].to_csv(pair_file, index=False)
    res = runner.invoke(
        app,
        ["evaluate", str(trained_like_dir), str(pair_file), "--no-baselines", "--no-plots",
         "--out", str(tmp_path / "r2"), "--threshold", "0.7", "--device", "cpu"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "fine-tuned" in res.output and "tfidf" not in res.output.split("thresholds:")[0]
    assert "report:" in res.output and (tmp_path / "r2" / "report.md").exists()
    assert not (tmp_path / "r2" / "pr_curve.png").exists()

    # bad input: one clear line, exit code 2
    res = runner.invoke(app, ["evaluate", str(trained_like_dir), str(tmp_path / "nope.tsv")])
    assert res.exit_code == 2 and "nope.tsv" in res.output
    res = runner.invoke(app, ["evaluate", str(trained_like_dir), str(split_dir), "--split", "valid"])
    assert res.exit_code == 2 and "unknown split" in res.output


# ---------------------------------------------------------------------------------------------
# Real model, real data
# ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_zero_shot_default_model_beats_chance_on_mqp(default_model, tiny_model_dir: Path, shared_data: Path):
    from dupq.data import load_pairs

    pairs = load_pairs(shared_data / "medical-question-pairs" / "mqp.tsv").pairs.iloc[:200]
    assert pairs["label"].mean() == pytest.approx(0.5, abs=0.05)
    report = evaluate(
        tiny_model_dir,
        pairs,
        base_model=default_model,
        baselines=("tfidf", "zero-shot"),
        plots=False,
        device="cpu",
    )
    zs = report.system("zero-shot")
    # chance AP = the duplicate rate (~0.5); all-MiniLM-L6-v2 measures AP 0.882, ROC AUC 0.880 on these
    # 200 pairs without fine-tuning, TF-IDF AP 0.723 (fixed model, fixed pairs: the margins are float noise
    # and library drift, not room for a broken pipeline)
    assert zs.classification["average_precision"] == pytest.approx(0.882, abs=0.015)
    assert zs.classification["roc_auc"] == pytest.approx(0.880, abs=0.015)
    assert (
        zs.classification["average_precision"]
        > report.system("tfidf").classification["average_precision"] + 0.1
    )
    assert zs.retrieval["mrr@10"] > report.system("tfidf").retrieval["mrr@10"]


def test_pairs_without_qids_use_normalised_text_as_identity():
    pairs = pd.DataFrame(
        {
            "question1": ["How do I learn Python?", "how do i learn python", "Best rice cooker?"],
            "question2": ["Python for beginners?", "Learning Python fast?", "Cheap laptops?"],
            "label": [1, 1, 0],
        }
    )
    qs = split_questions(pairs)
    # the first two question1 texts differ only in case and punctuation: one question, one cluster of 3
    assert len(qs) == 5
    assert sorted(qs["n_duplicates"].tolist()) == [0, 0, 2, 2, 2]
    assert qs["question"].iloc[0] == "How do I learn Python?"  # the first text seen represents it
    with pytest.raises(InputError, match="one class"):
        evaluate(None, pairs, dev_pairs=pairs[pairs["label"] == 1], baselines=())
