"""Two-tier dedupe (issue 12, part 3): a static student picks candidate pairs, the transformer decides.

The transformer is the tiny random BERT; the static tier a Model2Vec student distilled from it. The
thresholds are taken from the data (quantiles of the pairwise cosines), so each expected outcome
follows from the vectors, not from a hope about a random model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dupq.cli import app
from dupq.errors import InputError
from tests.optional import import_extra
from tests.tiny_model import sample_questions

GROUP_COLUMNS = ["group_id", "is_representative", "duplicate_of", "status"]


@pytest.fixture(scope="module")
def questions() -> pd.DataFrame:
    qs = sample_questions(120, seed=11)
    rows = qs + [qs[0], qs[5].lower(), "", qs[7] + " today"]  # exact copies, a blank, a near copy
    return pd.DataFrame({"id": [f"r{i}" for i in range(len(rows))], "question": rows})


@pytest.fixture(scope="module")
def static_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import_extra("model2vec", "distill")
    from dupq.students import distill_student

    out = tmp_path_factory.mktemp("twotier") / "static"
    distill_student(
        tiny_model_dir,
        out,
        texts=sample_questions(200, seed=2),
        kind="static",
        pca_dims=8,
        device="cpu",
        show_progress=False,
    )
    return out


def _cosines(model, texts: list[str]) -> np.ndarray:
    from dupq.embed import Embedder

    vecs = Embedder(model).encode(texts)
    sims = vecs @ vecs.T
    return sims[np.triu_indices(len(texts), k=1)]


def _gap_threshold(sims: np.ndarray) -> float:
    """A threshold with some pairs above it (0.5-3 % of them), placed mid-way in the widest gap between
    two neighbouring cosines there, so no pair sits on the edge."""
    s = np.sort(sims)[::-1]
    lo, hi = max(1, int(0.005 * len(s))), int(0.03 * len(s))
    i = lo + int(np.argmax(s[lo:hi] - s[lo + 1 : hi + 1]))
    return float((s[i] + s[i + 1]) / 2)


@pytest.mark.parametrize("block", [None, 3])  # 3: the candidate pairs' cosines computed in many blocks
def test_candidate_threshold_minus_one_gives_the_one_tier_groups(
    tiny_model_dir, static_dir, questions, monkeypatch, block
):
    from dupq import deduplicate
    from dupq.dedupe import twotier

    if block:
        monkeypatch.setattr(twotier, "PAIR_BLOCK", block)

    texts = list(dict.fromkeys(t for t in questions["question"] if t))
    threshold = _gap_threshold(_cosines(tiny_model_dir, texts))
    common = {"text_column": "question", "id_column": "id", "threshold": threshold, "show_progress": False}
    common["dtype"] = "float32"  # no float16 rounding: the two runs differ only in which pairs they score
    one = deduplicate(questions, model=str(tiny_model_dir), **common)
    two = deduplicate(
        questions, model=str(tiny_model_dir), candidates=str(static_dir), candidate_threshold=-1.0, **common
    )
    assert one.summary.duplicate_groups >= 2  # the comparison means something
    pd.testing.assert_frame_equal(one.table[GROUP_COLUMNS], two.table[GROUP_COLUMNS])
    np.testing.assert_allclose(one.table["score"].astype(float), two.table["score"].astype(float), atol=2e-3)
    assert two.summary.two_tier["texts_not_encoded"] == 0
    assert two.summary.similar_pairs == one.summary.similar_pairs


def test_texts_without_candidates_are_not_encoded(tiny_model_dir, static_dir, questions, monkeypatch):
    from dupq import deduplicate
    from dupq.embed import Embedder
    from dupq.text import text_key

    by_key: dict[str, str] = {}
    for t in questions["question"]:
        if t:
            by_key.setdefault(text_key(t), t)  # dedupe encodes the first text of each normalised key
    texts = list(by_key.values())
    static_sims = _cosines(static_dir, texts)
    cut = float(np.quantile(static_sims, 0.995))
    iu = np.triu_indices(len(texts), k=1)
    hit = static_sims >= cut
    expected = set(iu[0][hit]) | set(iu[1][hit])  # texts in some candidate pair (exact search)
    assert 0 < len(expected) < len(texts)

    seen: list[tuple[str | None, int]] = []
    real = Embedder.encode

    def spy(self, texts_, *a, **k):
        seen.append((self.source, len(texts_)))
        return real(self, texts_, *a, **k)

    monkeypatch.setattr(Embedder, "encode", spy)
    result = deduplicate(
        questions,
        text_column="question",
        id_column="id",
        model=str(tiny_model_dir),
        threshold=0.5,
        candidates=str(static_dir),
        candidate_threshold=cut,
        show_progress=False,
    )
    transformer = [n for src, n in seen if src == str(tiny_model_dir.resolve())]
    assert transformer == [len(expected)]  # one call, only the texts with a candidate
    assert result.summary.texts_encoded == len(expected)
    assert result.summary.two_tier["texts_not_encoded"] == len(texts) - len(expected)
    table = result.table
    assert len(table) == len(questions) and result.summary.rows == len(questions)  # every row accounted
    assert table["status"].tolist().count("empty") == 1
    in_pair = table["is_representative"].astype(str).eq("False")
    assert in_pair.sum() >= 2  # the exact copies (and what the transformer joined among the candidates)


def test_two_tier_refuses_what_it_does_not_combine_with(tiny_model_dir, static_dir, questions):
    from dupq import deduplicate

    with pytest.raises(InputError, match="against"):
        deduplicate(
            questions,
            text_column="question",
            model=str(tiny_model_dir),
            candidates=str(static_dir),
            against=questions,
            show_progress=False,
        )


def test_cli_candidates_uses_the_students_recorded_cut(tiny_model_dir, static_dir, questions, tmp_path):
    import json

    path = tmp_path / "in.csv"
    questions.to_csv(path, index=False)
    out = tmp_path / "out.csv"
    res = CliRunner().invoke(
        app,
        ["dedupe", str(path), "-t", "question", "-o", str(out), "-m", str(tiny_model_dir)]
        + ["--candidates", str(static_dir), "--threshold", "0.9", "--quiet"],
    )
    assert res.exit_code == 0, res.output
    assert "two tiers" in res.output
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    recorded = json.loads((static_dir / "dupq.json").read_text())["two_tier"]["candidate_threshold"]
    assert summary["two_tier"]["candidate_threshold"] == pytest.approx(recorded)
    assert len(pd.read_csv(out)) == len(questions)
