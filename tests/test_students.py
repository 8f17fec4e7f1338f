"""``dupq distill`` (issue 12, part 2): layers and static students of a tiny teacher, offline.

The teacher is the tiny random BERT with its weights drawn 15x wider than BERT's init (std 0.3 instead
of 0.02): at the stock init a random layer is nearly the identity, so dropping one would change
nothing and "the student learnt" could not fail. Texts and pairs are real files written by the tests.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dupq.cli import app
from dupq.errors import DupqError, InputError
from dupq.students import distill_student
from dupq.students.calibrate import agreement_threshold, recall_threshold
from tests.optional import import_extra
from tests.tiny_model import sample_questions

RUN = CliRunner()


@pytest.fixture(scope="module")
def teacher_dir(tiny_hf_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny BERT with wide random weights, as a sentence-transformers directory."""
    import torch
    from transformers import BertModel

    from dupq.encoder import wrap_transformer

    root = tmp_path_factory.mktemp("teacher")
    model = BertModel.from_pretrained(str(tiny_hf_dir))
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0.0, 0.3)
    model.save_pretrained(str(root / "hf"))
    for f in tiny_hf_dir.iterdir():
        if "token" in f.name or f.name.startswith("vocab"):
            shutil.copy(f, root / "hf" / f.name)
    out = root / "teacher"
    wrap_transformer(str(root / "hf"), device="cpu", local_files_only=True, max_seq_length=64).save(str(out))
    return out


@pytest.fixture(scope="module")
def texts_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("texts") / "questions.csv"
    qs = sample_questions(300, seed=3)
    pd.DataFrame({"id": range(len(qs) + 1), "question": [*qs, ""]}).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def layers_student(teacher_dir: Path, texts_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("students") / "layers"
    distill_student(
        teacher_dir,
        out,
        texts=texts_csv,
        text_column="question",
        kind="layers",
        epochs=2,
        learning_rate=2e-3,
        device="cpu",
        show_progress=False,
    )
    return out


@pytest.fixture(scope="module")
def static_student(teacher_dir: Path, texts_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import_extra("model2vec", "distill")
    out = tmp_path_factory.mktemp("students") / "static"
    distill_student(
        teacher_dir,
        out,
        texts=texts_csv,
        text_column="question",
        kind="static",
        pca_dims=16,
        tune=True,
        epochs=2,
        device="cpu",
        show_progress=False,
    )
    return out


def _meta(path: Path) -> dict:
    return json.loads((path / "dupq.json").read_text(encoding="utf-8"))


# -- layers --------------------------------------------------------------------------------------------
def test_layers_student_has_half_the_layers_and_loads_through_embedder(layers_student, teacher_dir):
    from dupq.embed import Embedder
    from dupq.encoder import load_encoder, model_fingerprint

    student = load_encoder(layers_student, device="cpu")
    assert len(student[0].auto_model.encoder.layer) == 1  # the teacher has 2
    assert student[0].auto_model.config.num_hidden_layers == 1
    vecs = Embedder(student).encode(["how to cook rice", "learn python fast"])
    assert vecs.shape == (2, 32) and np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    meta = _meta(layers_student)
    assert meta["kind"] == "student" and meta["student"]["kind"] == "layers"
    assert meta["student"]["kept_layers"] == [1] and meta["student"]["teacher_layers"] == 2
    teacher = load_encoder(teacher_dir, device="cpu")
    assert meta["teacher"]["fingerprint"] == model_fingerprint(teacher)
    assert meta["teacher"]["path"] == str(teacher_dir.resolve())
    assert meta["texts"]["column"] == "question" and meta["texts"]["rows"] == 301
    assert meta["texts"]["skipped_empty"] == 1 and meta["texts"]["unique_used"] == len(
        set(sample_questions(300, 3))
    )


def test_layers_student_mse_to_teacher_drops_with_training(layers_student):
    """Measured on held-out texts it never trained on: the fit must bring it closer than the copy was."""
    check = _meta(layers_student)["student"]["check"]
    assert check["texts"] == 30
    assert check["mse_after"] < 0.5 * check["mse_before"], check
    assert check["mean_cosine_after"] > check["mean_cosine_before"]


def test_atomic_save_leaves_nothing_beside_the_student(layers_student):
    siblings = {p.name for p in layers_student.parent.iterdir()}
    assert siblings <= {"layers", "layers.lock", ".layers.lock-gate"}, siblings


def test_layers_of_a_static_model_is_a_clear_error(static_student, texts_csv, tmp_path):
    with pytest.raises(DupqError, match="not a transformer"):
        distill_student(
            static_student, tmp_path / "x", texts=texts_csv, text_column="question", show_progress=False
        )
    assert not (tmp_path / "x").exists()


# -- static --------------------------------------------------------------------------------------------
def test_static_student_is_a_model_dir_every_command_takes(static_student, tmp_path):
    from dupq import Matcher, deduplicate
    from dupq.embed import Embedder

    emb = Embedder(static_student)
    vecs = emb.encode(["how to cook rice", "How to cook rice?", "buy cheap laptop"])
    assert vecs.shape == (3, 16) and np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    df = pd.DataFrame({"question": ["how to cook rice", "learn python", "how to cook rice fast", ""]})
    result = deduplicate(df, text_column="question", model=str(static_student), show_progress=False)
    assert len(result.table) == 4 and result.table["status"].tolist()[-1] == "empty"
    m = Matcher(str(static_student))
    m.add(["learn python fast", "cook pasta"])
    hits = m.match(["learn python"], k=1)[0]
    assert len(hits) == 1 and not hits.truncated
    assert m.threshold == pytest.approx(_meta(static_student)["threshold"])
    with pytest.raises(DupqError, match="static"):
        Embedder(static_student, backend="onnx")


def test_static_tuning_brings_cosines_closer_to_the_teacher(static_student):
    meta = _meta(static_student)
    check = meta["student"]["check"]
    assert check["similarity_mse_after"] < 0.5 * check["similarity_mse_before"], check
    assert meta["student"]["pca_dims"] == 16 and meta["embedding_dim"] == 16
    assert meta["student"]["training"]["steps"] > 0


def test_label_free_thresholds_are_recorded(static_student, layers_student):
    for path in (static_student, layers_student):
        meta = _meta(path)
        assert meta["calibration_method"] == "teacher agreement"
        detail = meta["calibration_detail"]
        assert -1 <= meta["threshold"] <= 1 and meta["threshold"] == detail["threshold"]
        assert detail["teacher_threshold"] == meta["teacher"]["threshold"] == 0.75
        assert detail["pairs"] > 0 and 0 < detail["agreement_f1"] <= 1
    tier = _meta(static_student)["two_tier"]
    assert tier["recall"] >= 0.99 and tier["candidate_pairs"] <= tier["mined_pairs"]
    assert "two_tier" not in _meta(layers_student)


# -- calibration, crafted --------------------------------------------------------------------------------
def test_agreement_threshold_follows_a_shifted_student():
    """A student whose cosines are the teacher's minus 0.1 reproduces the teacher at threshold - 0.1."""
    teacher = np.linspace(0.0, 1.0, 201)
    student = teacher - 0.1
    got = agreement_threshold(teacher, student, 0.7)
    assert got["agreement_f1"] == 1.0 and got["reached"]
    assert 0.595 - 1e-9 <= got["threshold"] <= 0.6 + 1e-9  # between the last teacher "no" and first "yes"
    assert got["teacher_duplicates"] == int((teacher >= 0.7).sum())
    none = agreement_threshold(teacher, student, 1.5)
    assert none["threshold"] == 1.5 and none["reached"] is False


def test_recall_threshold_keeps_the_target_share():
    teacher = np.r_[np.ones(100), np.zeros(50)]
    student = np.r_[np.linspace(0.5, 0.99, 100), np.linspace(0.0, 0.6, 50)]
    tier = recall_threshold(teacher, student, 0.9, recall=0.99)
    assert tier["recall"] >= 0.99 and tier["candidate_threshold"] == pytest.approx(student[1])
    assert tier["teacher_duplicates"] == 100
    assert recall_threshold(np.zeros(3), np.zeros(3), 0.9) is None


def test_labelled_pairs_calibrate_like_the_trainer(static_student, teacher_dir, texts_csv, tmp_path):
    """With --pairs the threshold is the best-F1 cut of the saved student's cosines on those pairs."""
    from dupq.embed import Embedder
    from dupq.evaluation.calibration import best_f1_threshold
    from dupq.evaluation.scorers import pair_similarities

    qs = sample_questions(80, seed=9)
    pairs = pd.DataFrame(
        {
            "question1": qs[:40] + qs[40:60],
            "question2": ["Please tell me: " + q.lower() for q in qs[:40]] + qs[60:80],
            "is_duplicate": [1] * 40 + [0] * 20,
        }
    )
    pairs.to_csv(tmp_path / "dev.csv", index=False)
    out = tmp_path / "cal"
    distill_student(
        teacher_dir,
        out,
        texts=texts_csv,
        text_column="question",
        pairs=tmp_path / "dev.csv",
        kind="static",
        pca_dims=16,
        show_progress=False,
    )
    meta = _meta(out)
    assert meta["calibration_method"] == "labelled dev pairs"
    canon = pairs.rename(columns={"is_duplicate": "label"})
    scores = pair_similarities(Embedder(out), canon)
    assert meta["threshold"] == pytest.approx(best_f1_threshold(scores, canon["label"])[0], abs=1e-6)
    assert {"coef", "intercept"} <= set(meta["calibration"]) and "precision_0.90" in meta["operating_points"]
    assert "teacher_average_precision" in meta["calibration_detail"] and "two_tier" in meta


# -- bad input -------------------------------------------------------------------------------------------
def test_bad_texts_files_name_file_row_and_column(teacher_dir, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"q": "how to cook rice"}\n{"q": "learn python"}\n{"q": {"not": "text"}}\n')
    with pytest.raises(InputError) as err:
        distill_student(teacher_dir, tmp_path / "s", texts=bad, text_column="q", show_progress=False)
    assert err.value.row == 3 and err.value.column == "q" and err.value.file == str(bad)
    good = tmp_path / "good.csv"
    pd.DataFrame({"question": ["a b c", "d e f"]}).to_csv(good, index=False)
    with pytest.raises(InputError) as err:
        distill_student(teacher_dir, tmp_path / "s", texts=good, text_column="text", show_progress=False)
    assert err.value.column == "text" and err.value.file == str(good) and "question" in str(err.value)
    with pytest.raises(InputError, match="--texts"):
        distill_student(teacher_dir, tmp_path / "s", show_progress=False)  # no texts, no train split
    assert not (tmp_path / "s").exists()


# -- CLI -------------------------------------------------------------------------------------------------
def test_cli_round_trip_distill_then_dedupe(teacher_dir, tmp_path):
    """`dupq distill` with no --texts learns from the teacher's recorded train split, then the student
    serves `dupq dedupe --model`; a wrong --kind is a one-line error (exit 2)."""
    import_extra("model2vec", "distill")
    teacher = tmp_path / "teacher"
    shutil.copytree(teacher_dir, teacher)
    (teacher / "splits").mkdir()
    qs = sample_questions(60, seed=5)
    split = pd.DataFrame({"question1": qs[:30], "question2": qs[30:], "label": [0] * 30})
    split.to_csv(teacher / "splits" / "train.tsv", sep="\t", index=False)
    out = tmp_path / "student"
    res = RUN.invoke(
        app, ["distill", str(teacher), "--out", str(out), "--kind", "static", "--pca-dims", "8", "-q"]
    )
    assert res.exit_code == 0, res.output
    assert "threshold" in res.output and "teacher agreement" in res.output
    meta = _meta(out)
    assert meta["texts"]["source"] == str(teacher / "splits" / "train.tsv") and meta["embedding_dim"] == 8
    pd.DataFrame({"question": qs[:10] + qs[:3]}).to_csv(tmp_path / "in.csv", index=False)
    res = RUN.invoke(
        app,
        ["dedupe", str(tmp_path / "in.csv"), "-t", "question", "-o", str(tmp_path / "o.csv"), "-m", str(out)]
        + ["--quiet"],
    )
    assert res.exit_code == 0, res.output
    assert len(pd.read_csv(tmp_path / "o.csv")) == 13
    res = RUN.invoke(app, ["distill", str(teacher), "--out", str(tmp_path / "x"), "--kind", "tiny"])
    assert res.exit_code == 2 and "kind" in res.output


def test_evaluate_names_a_student_and_its_teacher(layers_student):
    """`dupq evaluate` on a student says so (it was distilled, not fine-tuned on pairs), and its
    zero-shot baseline is the teacher recorded in its dupq.json."""
    from dupq.evaluation import evaluate

    qs = sample_questions(40, seed=9)
    pairs = pd.DataFrame(
        {"question1": qs[:20], "question2": [*qs[:10], *qs[20:30]], "label": [1] * 10 + [0] * 10}
    )
    report = evaluate(layers_student, pairs, baselines=("zero-shot",), plots=False)
    assert any("layers student distilled from" in n for n in report.notes), report.notes
    assert any("(the teacher)" in s.description for s in report.systems), [
        s.description for s in report.systems
    ]
