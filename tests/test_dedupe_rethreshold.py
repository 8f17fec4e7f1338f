"""Re-thresholding from the work directory: the saved candidate pairs answer any threshold down to their
floor without a search, and a threshold below the floor searches the stored vectors again (no
re-encoding); either way the output equals a fresh run at that threshold."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from dupq.cli import app
from dupq.dedupe import RESULT_COLUMNS, deduplicate
from tests.tiny_model import sample_questions


def _questions() -> pd.DataFrame:
    qs = sample_questions(240, seed=3)
    variants = [q[:-1] + " " + q[:-1].split()[-1] + "?" for q in qs[:60]]  # a repeated last word
    more = [q[:-1] + " " + q.split()[0].lower() + "?" for q in qs[:30]]  # a repeated first word
    texts = qs + variants + more
    return pd.DataFrame({"id": [f"q{i}" for i in range(len(texts))], "question": texts})


def _run(model, df, threshold, **kw):
    kw.setdefault("k", 3)
    return deduplicate(
        df,
        text_column="question",
        id_column="id",
        model=model,
        threshold=threshold,
        show_progress=False,
        **kw,
    )


@pytest.mark.parametrize("keep", ["most-neighbours", "longest"])
def test_rethreshold_equals_a_fresh_run(tiny_model, tmp_path, keep):
    df = _questions()
    work = tmp_path / "work"
    first = _run(tiny_model, df, 0.985, workdir=work, keep=keep)
    assert not first.summary.pairs_reused and first.summary.search_floor == pytest.approx(0.935)
    for t in (0.99, 0.97, 0.95, 0.90):
        again = _run(tiny_model, df, t, workdir=work, keep=keep)
        assert again.summary.texts_encoded == 0
        if t > 0.985:  # a higher threshold: always the saved pairs, no search
            assert again.summary.pairs_reused
        fresh = _run(tiny_model, df, t, keep=keep)
        assert not fresh.summary.pairs_reused
        assert again.summary.groups == fresh.summary.groups
        assert again.summary.similar_pairs == fresh.summary.similar_pairs
        pd.testing.assert_frame_equal(again.table, fresh.table)
        assert again.summary.duplicate_groups > 0


def test_lower_thresholds_reuse_the_pairs_when_k_was_enough(tiny_model, tmp_path):
    df = _questions()
    work = tmp_path / "work"
    # k = 3: the tiny model's cosines are all high, so most texts' 3 neighbours all pass 0.95 and their
    # lists are cut there: a run at 0.95 must search again (and still equals a fresh run, above)
    _run(tiny_model, df, 0.985, workdir=work)
    assert not _run(tiny_model, df, 0.95, workdir=work).summary.pairs_reused
    # k >= the number of texts: every list is complete down to the floor, so lower thresholds reuse too
    work = tmp_path / "work-all"
    big = dict(k=len(df))
    _run(tiny_model, df, 0.985, workdir=work, **big)
    for t in (0.97, 0.95):
        again = _run(tiny_model, df, t, workdir=work, **big)
        assert again.summary.pairs_reused
        pd.testing.assert_frame_equal(again.table, _run(tiny_model, df, t, **big).table)
    below = _run(tiny_model, df, 0.90, workdir=work, **big)  # below the floor 0.935: search again
    assert not below.summary.pairs_reused and below.summary.texts_encoded == 0
    assert _run(tiny_model, df, 0.86, workdir=work, **big).summary.pairs_reused  # the new floor: 0.85


def test_cli_rethreshold_says_it_reused_the_pairs(tiny_model_dir, tmp_path):
    path = tmp_path / "q.csv"
    _questions().to_csv(path, index=False)
    args = ["dedupe", str(path), "-t", "question", "--id-column", "id", "-m", str(tiny_model_dir), "-q"]
    args += ["--workdir", str(tmp_path / "w")]
    r = CliRunner().invoke(app, [*args, "--threshold", "0.985", "-o", str(tmp_path / "a.csv")])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, [*args, "--threshold", "0.99", "-o", str(tmp_path / "b.csv")])
    assert r.exit_code == 0, r.output
    assert "re-used: no search" in r.output
    out = pd.read_csv(tmp_path / "b.csv", dtype=str, keep_default_na=False)
    assert list(out.columns) == ["id", "question", *RESULT_COLUMNS]


def test_pairs_saved_for_one_join_recall_are_not_reused_for_another(tiny_model, tmp_path):
    import inspect

    from dupq.cli_dedupe import dedupe as dedupe_command
    from dupq.dedupe import DedupeConfig
    from dupq.dedupe.join import JOIN_RECALL
    from dupq.errors import InputError

    df = _questions()
    work = tmp_path / "work"
    first = _run(tiny_model, df, 0.985, workdir=work, index="join")
    assert not first.summary.pairs_reused
    assert _run(tiny_model, df, 0.985, workdir=work, index="join").summary.pairs_reused
    other = _run(tiny_model, df, 0.985, workdir=work, index="join", join_recall=1.0)
    assert not other.summary.pairs_reused and other.summary.texts_encoded == 0
    for bad in (0.0, 1.5):
        with pytest.raises(InputError, match="join_recall"):
            DedupeConfig(text_column="q", join_recall=bad)
    # the CLI spells the default out (it does not import the join): it must be the join's
    default = inspect.signature(dedupe_command).parameters["join_recall"].default.default
    assert default == JOIN_RECALL == DedupeConfig(text_column="q").join_recall
