"""The late-interaction verifier: features, the array-exported head, train/save/load/calibration."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from dupq.errors import StoreError
from dupq.evaluation import operating_points
from dupq.verifier import Verifier, train_verifier
from dupq.verifier.features import FEATURE_NAMES, alignment_features, lexical_features
from dupq.verifier.head import Head, _export_mlp, _export_trees, fit_head


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_alignment_sees_a_swap_that_a_mean_vector_cannot():
    rng = np.random.default_rng(0)
    toks = _unit(rng.standard_normal((5, 16)))
    same = alignment_features(toks @ toks.T, np.ones(5, bool), np.ones(5, bool))
    swapped = toks[[0, 3, 2, 1, 4]]  # "from A to B" -> "from B to A": same tokens, other order
    sw = alignment_features(toks @ swapped.T, np.ones(5, bool), np.ones(5, bool))
    names = FEATURE_NAMES[1:8]
    same, sw = dict(zip(names, same, strict=True)), dict(zip(names, sw, strict=True))
    assert same["order_discordance"] == 0.0 and sw["order_discordance"] > 0.2
    assert sw["position_shift"] > same["position_shift"]
    assert np.isclose(sw["maxsim_worst"], 1.0, atol=1e-5)  # every token still has its twin
    assert np.allclose(toks.mean(0), swapped.mean(0))  # what mean pooling sees: nothing


def test_alignment_finds_the_least_matched_token():
    rng = np.random.default_rng(1)
    toks = _unit(rng.standard_normal((4, 32)))
    other = toks.copy()
    other[2] = _unit(rng.standard_normal((1, 32)))[0]  # one slot replaced ("list" -> "string")
    feats = dict(
        zip(
            FEATURE_NAMES[1:8],
            alignment_features(toks @ other.T, np.ones(4, bool), np.ones(4, bool)),
            strict=True,
        )
    )
    assert feats["maxsim_worst"] < 0.6 and feats["unmatched_share"] > 0


def test_lexical_features_numbers_order_and_negation():
    names = FEATURE_NAMES[8:]
    f = dict(
        zip(names, lexical_features("Signs of type 2 diabetes?", "Signs of type 1 diabetes?"), strict=True)
    )
    assert f["number_mismatch"] == 1.0 and f["numbers_present"] == 1.0
    f = dict(
        zip(names, lexical_features("Flights from Paris to Rome", "flights from rome to paris"), strict=True)
    )
    assert f["word_jaccard"] == 1.0 and f["bigram_minus_unigram"] < -0.3
    f = dict(zip(names, lexical_features("Is it safe?", "Is it not safe?"), strict=True))
    assert f["negation_mismatch"] == 1.0
    f = dict(zip(names, lexical_features("How do I learn Python ?", "how do i learn python?"), strict=True))
    assert f["word_jaccard"] == 1.0 and f["bigram_jaccard"] == 1.0 and f["number_mismatch"] == 0.0


def _toy(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, len(FEATURE_NAMES)))
    y = ((x[:, 0] + 0.5 * x[:, 3] - x[:, 6] ** 2 + 0.3 * rng.standard_normal(n)) > 0).astype(int)
    return x, y


def test_exported_trees_score_exactly_like_scikit_learn():
    from sklearn.ensemble import HistGradientBoostingClassifier

    x, y = _toy()
    x[::17, 4] = np.nan  # missing values take the learned side
    with threadpool_limits(limits=1):
        model = HistGradientBoostingClassifier(max_iter=40, random_state=0).fit(x, y)
    head = Head("gbdt", _export_trees(model, x.shape[1]))
    assert np.allclose(head.raw_score(x), model.decision_function(x), atol=1e-9)


def test_exported_network_scores_exactly_like_scikit_learn():
    from sklearn.neural_network import MLPClassifier

    x, y = _toy()
    mean, scale = x.mean(0), x.std(0)
    model = MLPClassifier(hidden_layer_sizes=(8, 4), max_iter=200, random_state=0).fit((x - mean) / scale, y)
    head = Head("mlp", _export_mlp(model, mean, scale))
    assert np.allclose(head.probability(x), model.predict_proba((x - mean) / scale)[:, 1], atol=1e-9)


@pytest.mark.parametrize("kind", ["gbdt", "mlp"])
def test_head_learns_saves_and_loads_without_pickle(kind, tmp_path):
    x, y = _toy(3000)
    head = fit_head(x, y, kind, seed=0)
    p = head.probability(x)
    assert ((p >= 0.5) == y).mean() > 0.85
    head.save(tmp_path / "head.npz")
    with np.load(tmp_path / "head.npz", allow_pickle=False) as z:  # loads with pickling disabled
        assert str(z["kind"]) == kind
    again = Head.load(tmp_path / "head.npz")
    assert np.allclose(again.probability(x), p)
    with pytest.raises(ValueError, match="features"):
        head.raw_score(x[:, :3])


def test_corrupt_head_is_a_store_error(tmp_path):
    bad = tmp_path / "head.npz"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(StoreError, match="head"):
        Head.load(bad)
    np.savez(tmp_path / "other.npz", kind=np.array("forest"))
    with pytest.raises(StoreError, match="not a dupq verifier head"):
        Head.load(tmp_path / "other.npz")


def test_operating_points_on_hand_computed_scores():
    s = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    y = np.array([1, 1, 0, 1, 0, 0])
    pts = operating_points(s, y, precisions=(0.9, 0.7))
    # precision >= 0.9 holds down to 0.8 (2/2); midway to 0.7
    assert pts["precision_0.90"]["threshold"] == pytest.approx(0.75)
    assert pts["precision_0.90"]["recall"] == pytest.approx(2 / 3) and pts["precision_0.90"]["reached"]
    # precision >= 0.7 holds down to 0.6 (3/4 = 0.75), the lowest such cut
    assert pts["precision_0.70"]["threshold"] == pytest.approx(0.55)
    assert pts["best_f1"]["f1"] == pytest.approx(6 / 7)
    assert pts["best_accuracy"]["accuracy"] == pytest.approx(5 / 6)
    unreachable = operating_points(np.array([0.9, 0.8]), np.array([0, 1]), precisions=(0.99,))
    assert unreachable["precision_0.99"]["reached"] is False


def _pairs(n: int, seed: int) -> pd.DataFrame:
    """Duplicates are typo/punctuation variants; non-duplicates swap two slots or change a number."""
    from tests.tiny_model import WORDS

    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        a, b = rng.choice(WORDS, 2, replace=False)
        num = int(rng.integers(2, 9))
        q = f"how do i {rng.choice(WORDS)} {a} to {b} in {num} days"
        if i % 2:
            rows.append((q, q.replace(" days", " days ?").upper(), 1))
        elif i % 4 == 0:
            rows.append((q, q.replace(f"{a} to {b}", f"{b} to {a}"), 0))
        else:
            rows.append((q, q.replace(f"in {num}", f"in {num + 1}"), 0))
    return pd.DataFrame(rows, columns=["question1", "question2", "label"])


@pytest.fixture(scope="module")
def trained(tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("verifier") / "v"
    v = train_verifier(_pairs(160, 0), _pairs(60, 1), out, encoder=tiny_model_dir, show_progress=False)
    return out, v


def test_train_verifier_writes_a_self_contained_directory(trained):
    out, v = trained
    meta = json.loads((out / "dupq.json").read_text())
    assert meta["kind"] == "verifier" and meta["features"] == list(FEATURE_NAMES)
    assert meta["encoder"] == "encoder" and (out / "encoder" / "modules.json").exists()
    assert set(meta["verifier"]["dev_average_precision"]) == {"gbdt", "mlp"}
    assert meta["verifier"]["head"] in {"gbdt", "mlp"}
    assert 0.0 <= meta["threshold"] <= 1.0
    assert {"best_f1", "best_accuracy", "precision_0.90", "precision_0.95"} <= set(meta["operating_points"])
    assert meta["threshold"] == meta["operating_points"]["best_f1"]["threshold"]


def test_verifier_separates_swaps_and_slot_changes_the_cosine_merges(trained):
    out, _ = trained
    v = Verifier.load(out, device="cpu")
    test = _pairs(80, 2)
    scores = v.predict(test.question1.tolist(), test.question2.tolist())
    y = test.label.to_numpy()
    assert ((scores.probability >= v.threshold) == y).mean() >= 0.9
    assert np.array_equal(scores.is_duplicate, scores.probability >= v.threshold)
    # probabilities are calibrated on dev: they rise with the head's score and stay in (0, 1)
    assert ((scores.probability > 0) & (scores.probability < 1)).all()


def test_loaded_verifier_scores_like_the_trained_one(trained):
    out, v = trained
    test = _pairs(20, 3)
    a = v.predict(test.question1.tolist(), test.question2.tolist()).probability
    b = Verifier.load(out, device="cpu").predict(test.question1.tolist(), test.question2.tolist()).probability
    assert np.allclose(a, b, atol=1e-5)
    assert Verifier.load(out, threshold=0.99).threshold == 0.99
    meta = json.loads((out / "dupq.json").read_text())
    p90 = meta["operating_points"]["precision_0.90"]
    want = p90["threshold"] if p90["reached"] else meta["threshold"]
    assert Verifier.load(out, point="precision_0.90").threshold == pytest.approx(want)


def test_a_bi_encoder_directory_is_not_a_verifier(tiny_model_dir, trained, tmp_path):
    with pytest.raises(StoreError, match="not a dupq verifier"):
        Verifier.load(tiny_model_dir)
    out, _ = trained
    meta = json.loads((out / "dupq.json").read_text())
    meta["features"] = meta["features"][:-1]
    bad = tmp_path / "stale"
    bad.mkdir()
    (bad / "dupq.json").write_text(json.dumps(meta))
    (bad / "head.npz").write_bytes((out / "head.npz").read_bytes())
    (bad / "encoder").symlink_to(out / "encoder")
    with pytest.raises(StoreError, match="retrain"):
        Verifier.load(bad)


def test_training_needs_both_classes(tiny_model_dir, tmp_path):
    from dupq.errors import InputError

    one_class = _pairs(20, 0).assign(label=1)
    with pytest.raises(InputError, match="both duplicate and non-duplicate"):
        train_verifier(one_class, _pairs(20, 1), tmp_path / "v", encoder=tiny_model_dir)


def test_matcher_with_a_verifier_rescores_and_keeps_the_cosine(trained, tiny_model_dir):
    from dupq.matcher import Matcher

    out, v = trained
    stored = _pairs(40, 4)
    plain = Matcher(tiny_model_dir, device="cpu")
    verified = Matcher(tiny_model_dir, device="cpu", verifier=out, verify_below=2.0, verify_above=1.01)
    for m in (plain, verified):
        m.add(list(dict.fromkeys(stored.question2)))
    queries = stored.question1.tolist()[:12]
    for q, a, b in zip(queries, plain.match(queries, k=3), verified.match(queries, k=3), strict=True):
        assert {m.id for m in a} == {m.id for m in b}  # same candidates: the retriever is unchanged
        cos = {m.id: m.score for m in a}
        rescored = [m for m in b if not m.exact]  # exact re-posts are answered by hash (score 1.0)
        p = v.predict([q] * len(rescored), [m.text for m in rescored]).probability
        for m, want in zip(rescored, p, strict=True):
            assert m.score == pytest.approx(want, abs=1e-6) and m.probability == m.score
            assert m.similarity == pytest.approx(cos[m.id], abs=1e-5)
            assert m.is_duplicate == (m.score >= v.threshold)
        assert [m.score for m in rescored] == sorted((m.score for m in rescored), reverse=True)
        assert [m.exact for m in b] == sorted((m.exact for m in b), reverse=True)  # exact ones first
    # an exact re-post is still answered by hash, untouched by the verifier
    hit = verified.match(stored.question2.iloc[0])[0]
    assert hit.exact and hit.score == 1.0 and hit.is_duplicate
    assert verified.stats()["verifier"] == str(out)
    dups = verified.match(queries, k=3, only_duplicates=True)
    assert all(m.is_duplicate for r in dups for m in r)


def test_the_matcher_verifies_only_its_band_and_the_cosine_decides_the_rest(trained, tiny_model_dir):
    """The band of dupq.verifier.band: the pairs a dedupe would verify. Outside it the cosine decides
    (a duplicate at/above verify_above, not one below the floor), scored on the verifier's scale."""
    from dupq.errors import InputError
    from dupq.matcher import Matcher

    out, v = trained
    stored = _pairs(40, 4)
    m = Matcher(tiny_model_dir, device="cpu", verifier=out)
    m.add(list(dict.fromkeys(stored.question2)))
    queries = stored.question1.tolist()[:12]
    first = m.match(queries, k=5, exact_first=False)
    sims = np.array([h.similarity for r in first for h in r if not h.exact])
    # the tiny model's cosines crowd near 1: place the band by quantiles (floor = thr - verify_below)
    m.verify_below, thr = 0.0, float(np.quantile(sims, 0.4))
    m.verify_above = float(np.quantile(sims, 0.85))  # the top ones accepted on the cosine
    seen = set()
    for q, r in zip(queries, m.match(queries, k=5, threshold=thr, exact_first=False), strict=True):
        for h in r:
            if h.exact:
                continue
            inside = thr - m.verify_below <= h.similarity < m.verify_above
            seen.add(inside if h.similarity < m.verify_above else "above")
            if inside:
                assert h.decided_by == "verifier"
                assert h.score == pytest.approx(v.predict([q], [h.text]).probability[0], abs=1e-6)
            else:
                assert h.decided_by == "cosine" and h.is_duplicate == (h.similarity >= m.verify_above)
                want = v.cosine_probability(np.array([h.similarity]))
                assert h.probability == pytest.approx(float(want[0]) if want is not None else h.probability)
        assert [(not h.is_duplicate, -h.score) for h in r if not h.exact] == sorted(
            (not h.is_duplicate, -h.score) for h in r if not h.exact
        )
    assert seen == {True, False, "above"}
    with pytest.raises(InputError, match="verify_below"):
        Matcher(tiny_model_dir, device="cpu", verifier=None, verify_below=-0.1)


@pytest.mark.parametrize(("block", "threads"), [(16_384, "1"), (7, "1"), (7, "3")])
def test_indexed_scoring_of_one_text_list_gives_the_pairwise_answers(trained, block, threads, monkeypatch):
    """A dedupe's path (pairs as indices into one list, one token pass per text, words read once per
    text, pairs scored a block at a time, blocks in threads) scores every pair as scoring the pairs one
    by one does."""
    import dupq.verifier.model as model

    monkeypatch.setattr(model, "PAIR_BLOCK", block)
    monkeypatch.setenv("DUPQ_VERIFY_THREADS", threads)
    _, v = trained
    df = _pairs(30, 7)
    texts = list(dict.fromkeys(df.question1.tolist() + df.question2.tolist()))
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, len(texts), 200), rng.integers(0, len(texts), 200)
    got = v.predict_indexed(texts, a, b)
    want = v.predict([texts[i] for i in a], [texts[i] for i in b])
    assert got.similarity == pytest.approx(want.similarity, abs=1e-5)
    assert got.probability == pytest.approx(want.probability, abs=1e-5)
    x = v.features([texts[i] for i in a[:20]], [texts[i] for i in b[:20]])
    from dupq.verifier.features import pair_features

    tv = v.token_vectors(texts)
    one = [
        pair_features(float(tv.sentence[i] @ tv.sentence[j]), tv.tokens[i].astype(np.float32),
                      tv.tokens[j].astype(np.float32), tv.content[i], tv.content[j], texts[i], texts[j])
        for i, j in zip(a[:20], b[:20], strict=True)
    ]  # fmt: skip
    assert x == pytest.approx(np.stack(one), abs=1e-5)


def test_batched_alignment_features_equal_the_pair_by_pair_ones():
    """alignment_batch pads many pairs into one array; it must give alignment_features' values for
    every pair, including empty sides, sides without content tokens and identical tokens."""
    from dupq.verifier.features import alignment_batch, alignment_features

    rng = np.random.default_rng(1)

    def unit(n: int) -> np.ndarray:
        x = rng.normal(size=(n, 16)).astype(np.float32)
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float16)

    ta, tb, ca, cb = [], [], [], []
    for k in range(300):
        na, nb = (0 if k % 50 == 0 else int(rng.integers(1, 12))), int(rng.integers(0, 12))
        a, b = unit(na), unit(nb)
        if k % 7 == 0 and na and nb:
            b[: min(na, nb)] = a[: min(na, nb)]  # some tokens matched exactly, in order
        ta.append(a)
        tb.append(b)
        ca.append(rng.random(na) < (0.0 if k % 9 == 0 else 0.6))  # every 9th: no content token
        cb.append(rng.random(nb) < 0.6)
    got = alignment_batch(ta, tb, ca, cb)

    def sim(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if not (len(a) and len(b)):
            return np.zeros((0, 0), np.float32)
        return a.astype(np.float32) @ b.astype(np.float32).T

    want = [alignment_features(sim(a, b), x, y) for a, b, x, y in zip(ta, tb, ca, cb, strict=True)]
    assert got == pytest.approx(np.asarray(want, dtype=np.float32), abs=1e-5)


def test_mine_candidates_finds_each_rows_nearest_others():
    from dupq.distill import mine_candidates

    v = _unit(np.array([[1, 0, 0], [0.99, 0.1, 0], [0, 1, 0], [0, 0.98, 0.2], [0, 0, 1]], dtype=np.float32))
    i, j = mine_candidates(v, 1, block=2)
    got = set(zip(i.tolist(), j.tolist(), strict=True))
    assert {(0, 1), (2, 3)} <= got
    assert all(a < b for a, b in got)  # unique, never a row with itself
    assert mine_candidates(v[:1], 3)[0].size == 0


def test_distillation_pairs_are_confident_verifier_labels(trained):
    from dupq.distill import distillation_pairs

    _, v = trained
    qs = _pairs(30, 5)
    questions = qs.question1.tolist() + qs.question2.tolist()
    out = distillation_pairs(v, questions, k=3, positive=0.7, negative=0.3)
    assert len(out) > 0 and (out["augment"] == "distill").all()
    p = v.predict(out.question1.tolist(), out.question2.tolist()).probability
    assert np.array_equal(out["label"].to_numpy(), (p >= 0.7).astype(int))
    assert ((p >= 0.7) | (p <= 0.3)).all()  # unsure pairs are left out
    assert (out.question1 != out.question2).all()


def test_int8_onnx_token_pass_agrees_with_torch(trained, tmp_path, monkeypatch):
    """The verifier's int8 path: the same features (to int8 rounding) and nearly the same decisions."""
    from tests.optional import import_extra

    import_extra("onnxruntime", "onnx")
    monkeypatch.setenv("DUPQ_ONNX_CACHE", str(tmp_path / "onnx-cache"))
    out, v = trained
    fast = Verifier.load(out, backend="onnx-int8")
    exact = Verifier.load(out, backend="onnx")
    test = _pairs(80, 7)
    x_torch = v.features(test.question1, test.question2)
    x_fp32 = exact.features(test.question1, test.question2)
    assert np.allclose(x_fp32, x_torch, atol=1e-3)  # fp32 ONNX: the torch features, not approximately
    x_int8 = fast.features(test.question1, test.question2)
    assert np.corrcoef(x_int8[:, 0], x_torch[:, 0])[0, 1] > 0.95  # the cosine column
    p, q = v.predict(test.question1, test.question2), fast.predict(test.question1, test.question2)
    assert (p.is_duplicate == q.is_duplicate).mean() >= 0.9
    assert fast.backend == "onnx-int8" and "onnx-int8" in repr(fast)


def test_the_tree_walk_matches_a_per_tree_walk_on_every_row():
    """The head walks only the (row, tree) walkers not yet at a leaf; a plain per-tree descent,
    written out here, lands on the same leaves (missing values included)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    x, y = _toy()
    x[::13, 2] = np.nan
    with threadpool_limits(limits=1):
        model = HistGradientBoostingClassifier(max_iter=25, max_leaf_nodes=63, random_state=0).fit(x, y)
    head = Head("gbdt", _export_trees(model, x.shape[1]))
    arr = head.arrays
    want = np.full(len(x), float(arr["baseline"][0]))
    for r, row in enumerate(x):
        for root in arr["roots"]:
            node = int(root)
            while not arr["is_leaf"][node]:
                v = row[arr["feature"][node]]
                left = arr["missing_left"][node] if np.isnan(v) else v <= arr["threshold"][node]
                node = int(arr["left"][node] if left else arr["right"][node])
            want[r] += arr["value"][node]
    assert np.allclose(head.raw_score(x), want, atol=1e-12)
    assert np.allclose(head.raw_score(x[:1]), want[:1], atol=1e-12)  # a Matcher-sized call


def test_the_encode_pass_hands_its_token_vectors_to_a_spill(tiny_model_dir, tmp_path):
    """The Embedder's token sink gets each text's token vectors from the pass that made its pooled
    vector (a repeated text once, at its first position); the spill gives back what the verifier's
    own token pass computes, and nothing for a text it never got."""
    from dupq.dedupe.tokens import TokenSpill
    from dupq.embed import Embedder

    df = _pairs(12, 3)
    texts = df.question1.tolist() + df.question1.tolist()[:3]  # three repeats
    emb = Embedder(tiny_model_dir, device="cpu", batch_size=4)
    assert emb.keeps_tokens
    n = len(texts) + 2  # two slots never written
    spill = TokenSpill(tmp_path, n, emb.dim, emb.model.tokenizer)
    seen: list[int] = []

    def sink(pos, *batch):
        seen.extend(pos.tolist())
        spill.add(pos, *batch)

    vecs, _ = emb.encode_flagged(texts, token_sink=sink)
    assert sorted(seen) == list(range(len(texts) - 3))  # first positions only
    assert np.allclose(vecs, emb.encode(texts), atol=1e-6)
    spill.finish(np.vstack([vecs, np.zeros((2, emb.dim), np.float32)]))
    ids = np.arange(len(texts) - 3)
    assert spill.has(ids).all() and not spill.has(np.array([n - 2, n - 1])).any()
    got = spill.read(ids)
    from dupq.verifier.tokens import encode_tokens

    want = encode_tokens(emb.model, [texts[i] for i in ids])
    for i in range(len(ids)):
        assert got.tokens[i].dtype == np.float32
        assert np.allclose(got.tokens[i], want.tokens[i].astype(np.float32), atol=2e-3)
        assert (got.content[i] == want.content[i]).all()
    assert np.allclose(got.sentence, want.sentence, atol=1e-5)
    spill.remove()
    assert not spill.path.exists()
