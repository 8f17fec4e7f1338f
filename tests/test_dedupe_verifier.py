"""Dedupe with a verifier: cosine finds candidates, the verifier decides; the precision-0.90 default."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from dupq.dedupe import deduplicate, group_pairs, similar_pairs
from dupq.dedupe.verify import verifier_threshold
from dupq.embed import Embedder
from dupq.verifier import Verifier, train_verifier
from tests.test_verifier import _pairs


@pytest.fixture(scope="module")
def verifier_dir(tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("dv") / "v"
    train_verifier(_pairs(160, 0), _pairs(60, 1), out, encoder=tiny_model_dir, show_progress=False)
    return out


def _texts() -> list[str]:
    neg = _pairs(60, 6)
    neg = neg[neg.label == 0]
    return list(dict.fromkeys(neg.question1.tolist() + neg.question2.tolist()))


def _partition(labels) -> set[frozenset[int]]:
    groups: dict = {}
    for i, g in enumerate(labels):
        groups.setdefault(g, set()).add(i)
    return {frozenset(s) for s in groups.values()}


def _dedupe_with(verifier, model, workdir, verify_above: float = 1.01):
    """dedupe of :func:`_texts` at 0.95, candidates from 0.80; by default the verifier decides every pair."""
    return deduplicate(
        pd.DataFrame({"question": _texts()}),
        text_column="question",
        model=model,
        threshold=0.95,
        verifier=verifier,
        verify_below=0.15,
        verify_above=verify_above,
        workdir=workdir,
        show_progress=False,
    )


def test_the_verifier_decides_every_candidate_pair(verifier_dir, tiny_model_dir, tmp_path):
    texts = _texts()
    res = _dedupe_with(verifier_dir, tiny_model_dir, tmp_path / "w")  # the verifier decides every candidate
    # the same decision made by hand: candidates at 0.80, kept where the verifier says duplicate
    vecs = Embedder(tiny_model_dir, device="cpu").encode(texts)
    a, b, s = similar_pairs(vecs, 0.80)
    v = Verifier.load(verifier_dir, device="cpu")
    keep = v.predict([texts[i] for i in a], [texts[i] for i in b]).probability >= verifier_threshold(v)
    rep = group_pairs(len(texts), a[keep], b[keep], method="leader", weights=np.ones(len(texts)))
    assert _partition(res.table["group_id"].tolist()) == _partition(rep.tolist())
    info = res.summary.verification
    assert info["candidate_pairs"] == len(a) > 0
    assert info["verified"] == len(a) and info["accepted_by_cosine"] == 0
    assert info["accepted_by_verifier"] == int(keep.sum())
    assert info["accepted_by_verifier"] + info["rejected_by_verifier"] == info["verified"]
    assert res.summary.similar_pairs == int(keep.sum())
    assert "verified" in res.summary.format()
    # the report's what-if row at the threshold used: the verifier's decisions, and how many it overturned
    data = json.loads((tmp_path / "w" / "report-data.json").read_text())
    (current,) = [r for r in data["whatif"] if r["current"]]
    assert current["pairs"] == int(keep.sum())
    assert current["overturned"] == int((~keep & (s >= 0.95)).sum() + (keep & (s < 0.95)).sum())


def test_pairs_above_verify_above_skip_the_verifier(verifier_dir, tiny_model_dir, tmp_path):
    texts = _texts()
    res = _dedupe_with(verifier_dir, tiny_model_dir, tmp_path / "w", verify_above=0.9)
    vecs = Embedder(tiny_model_dir, device="cpu").encode(texts)
    _, _, s = similar_pairs(vecs, 0.80)
    info = res.summary.verification
    assert info["accepted_by_cosine"] == int((s >= 0.9).sum())
    assert info["verified"] == int((s < 0.9).sum())


def test_auto_threshold_is_the_precision_090_point(tiny_model_dir, tmp_path):
    model = tmp_path / "m"
    shutil.copytree(tiny_model_dir, model)
    meta = {
        "threshold": 0.91,
        "operating_points": {"precision_0.90": {"threshold": 0.97, "reached": True}},
    }
    (model / "dupq.json").write_text(json.dumps(meta))
    df = pd.DataFrame({"question": _texts()[:20]})
    res = deduplicate(df, text_column="question", model=model, workdir=tmp_path / "w", show_progress=False)
    assert res.summary.threshold == pytest.approx(0.97)
    assert "precision 0.90" in res.summary.threshold_source
    meta["operating_points"]["precision_0.90"]["reached"] = False  # never reached on dev: best F1
    (model / "dupq.json").write_text(json.dumps(meta))
    res = deduplicate(df, text_column="question", model=model, workdir=tmp_path / "w2", show_progress=False)
    assert res.summary.threshold == pytest.approx(0.91)
    from dupq.matcher import Matcher

    assert Matcher(model, device="cpu").threshold == pytest.approx(0.91)  # the Matcher keeps best F1


def test_bad_verify_options_are_refused(tiny_model_dir):
    from dupq.errors import InputError

    with pytest.raises(InputError, match="verify_below"):
        deduplicate(pd.DataFrame({"q": ["a b"]}), text_column="q", model=tiny_model_dir, verify_below=2)


def test_a_result_column_in_the_input_fails_before_the_model_loads(tmp_path):
    """Issue 10 item 3: the clash is found from the header, not after encoding everything."""
    from dupq.errors import InputError

    path = tmp_path / "q.csv"
    pd.DataFrame({"question": ["How do I sort a list?", "Sorting a list?"], "score": [1, 2]}).to_csv(
        path, index=False
    )
    with pytest.raises(InputError, match="score") as err:
        # a model that does not exist: had the model been loaded first, this would be the error
        deduplicate(path, text_column="question", model=tmp_path / "no-such-model", out=tmp_path / "o.csv")
    assert "q.csv" in str(err.value)
    assert not (tmp_path / "o.csv").exists()
    assert not list(tmp_path.glob(".*dedupe*")) and not list(tmp_path.glob("**/emb-*"))


def test_escape_formulas_only_when_asked(tiny_model_dir, tmp_path):
    """Issue 10 item 9: formula-like text round-trips by default; --escape-formulas defuses it."""
    from typer.testing import CliRunner

    from dupq.cli import app

    texts = ['=HYPERLINK("http://x.example","click")', "@SUM(A1:A9)", "How do I sort a list?"]
    path = tmp_path / "q.csv"
    pd.DataFrame({"question": texts, "note": ["+1", "-2", "plain"]}).to_csv(path, index=False)
    for flag, want_q, want_note in (
        ([], texts, ["+1", "-2", "plain"]),
        (["--escape-formulas"], ["'" + texts[0], "'" + texts[1], texts[2]], ["'+1", "'-2", "plain"]),
    ):
        out = tmp_path / f"o{len(flag)}.csv"
        args = ["dedupe", str(path), "-t", "question", "-o", str(out), "-m", str(tiny_model_dir), "-q", *flag]
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 0, res.output
        back = pd.read_csv(out, dtype=str, keep_default_na=False)
        assert back["question"].tolist() == want_q and back["note"].tolist() == want_note


def _spy_token_passes(monkeypatch) -> list[list[str]]:
    """Record the texts of every verifier token pass (the second transformer pass a dedupe avoids)."""
    calls: list[list[str]] = []
    real = Verifier.token_vectors

    def spy(self, texts, **kwargs):
        calls.append(list(texts))
        return real(self, texts, **kwargs)

    monkeypatch.setattr(Verifier, "token_vectors", spy)
    return calls


def test_the_verifier_reads_the_encode_pass_token_vectors(
    verifier_dir, tiny_model_dir, tmp_path, monkeypatch
):
    """One transformer pass per text: when the verifier runs the dedupe's own model and backend, the
    encode stage keeps each batch's token vectors in the work directory and the verifier reads them
    there — no token pass of its own — and decides every pair as its own pass would."""
    import dupq.dedupe.stages as stages

    v = Verifier.load(verifier_dir, device="cpu")  # its encoder is a copy of the tiny model: same weights
    calls = _spy_token_passes(monkeypatch)
    spilled = []
    real_finish = stages.TokenSpill.finish
    monkeypatch.setattr(
        stages.TokenSpill, "finish", lambda self, s: (spilled.append(self.path), real_finish(self, s))[-1]
    )
    one = _dedupe_with(v, tiny_model_dir, tmp_path / "one")
    assert calls == [] and len(spilled) == 1
    assert not spilled[0].exists()  # removed once verified; the embeddings stay for a rerun
    assert list((tmp_path / "one").glob("emb-*/vectors.npy"))
    monkeypatch.setattr(stages, "shares_pass", lambda *a, **k: False)  # the verifier's own pass
    two = _dedupe_with(v, tiny_model_dir, tmp_path / "two")
    assert len(calls) == 1
    first, second = one.summary.verification, two.summary.verification
    assert first["verified"] == second["verified"] > 0
    assert first["accepted_by_verifier"] == second["accepted_by_verifier"]
    assert _partition(one.table["group_id"].tolist()) == _partition(two.table["group_id"].tolist())


def test_a_resumed_dedupe_gives_the_texts_it_did_not_encode_a_token_pass(
    verifier_dir, tiny_model_dir, tmp_path, monkeypatch
):
    """Texts whose embeddings an earlier run stored were not encoded now, so they have no kept token
    vectors: the verifier encodes exactly those of them that are in a candidate pair."""
    v = Verifier.load(verifier_dir, device="cpu")
    fresh = _dedupe_with(v, tiny_model_dir, tmp_path / "fresh")
    _dedupe_with(None, tiny_model_dir, tmp_path / "w")  # fills the store, verifies nothing
    calls = _spy_token_passes(monkeypatch)
    resumed = _dedupe_with(v, tiny_model_dir, tmp_path / "w")
    assert resumed.summary.embeddings_reused == len(_texts())
    texts = _texts()
    vecs = Embedder(tiny_model_dir, device="cpu").encode(texts)
    a, b, _ = similar_pairs(vecs, 0.80)
    assert len(calls) == 1 and sorted(calls[0]) == sorted({texts[i] for i in np.r_[a, b]})
    assert _partition(fresh.table["group_id"].tolist()) == _partition(resumed.table["group_id"].tolist())


def test_a_dedupe_stopped_after_encoding_keeps_its_embeddings_not_its_token_vectors(
    verifier_dir, tiny_model_dir, tmp_path, monkeypatch
):
    """The kept token vectors serve only the run that wrote them (a rerun encodes nothing, so has none):
    a run stopped after encoding leaves its embeddings to resume from and deletes the token file."""
    import dupq.dedupe.pipeline as pipeline
    from dupq.dedupe.tokens import SPILL_FILE

    def stop(*args, **kwargs):
        assert list((tmp_path / "w").glob(f"emb-*/{SPILL_FILE}"))  # written by the encode pass
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "search_candidates", stop)
    with pytest.raises(KeyboardInterrupt):
        _dedupe_with(Verifier.load(verifier_dir, device="cpu"), tiny_model_dir, tmp_path / "w")
    assert list((tmp_path / "w").glob("emb-*/vectors.npy"))
    assert not list((tmp_path / "w").glob(f"emb-*/{SPILL_FILE}"))


@pytest.mark.parametrize("share_verified", [0.8, 0.3])
def test_verify_pairs_decides_alike_whether_it_scores_all_pairs_or_only_those_below(
    verifier_dir, tiny_model_dir, share_verified
):
    """With most pairs below ``verify_above`` every pair is scored in place (no copies of 40M pairs'
    indices) and the cosine still decides those at or above it; with few, only those are scored.
    Both give the decisions made by hand: the cosine above, the verifier below."""
    from dupq.dedupe.verify import verify_pairs

    texts = _texts()
    vecs = Embedder(tiny_model_dir, device="cpu").encode(texts)
    a, b, s = similar_pairs(vecs, 0.80)
    above = float(np.quantile(s, share_verified))
    v = Verifier.load(verifier_dir, device="cpu")
    t = verifier_threshold(v)
    got = verify_pairs(a, b, s, texts, v, threshold=t, verify_above=above)
    p = v.predict([texts[i] for i in a], [texts[i] for i in b]).probability
    want = (s >= above) | (p >= t)
    assert (got.keep == want).all()
    assert got.by_cosine == int((s >= above).sum()) and got.verified == int((s < above).sum())
    assert got.verified_duplicate == int(((p >= t) & (s < above)).sum())
