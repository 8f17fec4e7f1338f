"""VectorIndex: every kind against exact numpy search, removal, range search, persistence, corruption."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from dupq import index as index_mod
from dupq.errors import StoreError
from dupq.index import VectorIndex, default_nlist, ivf_min_train

DIM = 32
KINDS = ["flat", "hnsw", "ivf"]


def unit(n: int, seed: int = 0, dim: int = DIM) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def exact_topk(base: np.ndarray, base_ids: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    sims = q @ base.T
    return base_ids[np.argsort(-sims, axis=1)[:, :k]]


@pytest.fixture(scope="module")
def data():
    base = unit(3000, 1)
    ids = np.arange(3000, dtype=np.int64) * 7 + 11  # caller ids, not positions
    queries = unit(50, 2)
    return base, ids, queries


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)]))


@pytest.mark.parametrize("kind", KINDS)
def test_search_matches_exact(kind, data):
    base, ids, queries = data
    idx = VectorIndex.build(base, ids, kind=kind, nprobe=64, ef_search=128)
    assert idx.kind == kind and len(idx) == 3000
    scores, found = idx.search(queries, 10)
    assert scores.dtype == np.float32 and found.dtype == np.int64 and found.shape == (50, 10)
    assert np.all(np.diff(scores, axis=1) <= 1e-6)  # best first
    # flat is exact search: every true neighbour, nothing less; the approximate kinds may miss a few
    assert recall(found, exact_topk(base, ids, queries, 10)) >= (1.0 if kind == "flat" else 0.95)
    # the score of each hit is the cosine of that stored vector
    pos = {int(i): p for p, i in enumerate(ids)}
    np.testing.assert_allclose(scores[0], base[[pos[int(i)] for i in found[0]]] @ queries[0], atol=1e-5)
    # a stored vector finds itself first, with score 1
    s, f = idx.search(base[:5], 1)
    assert f[:, 0].tolist() == ids[:5].tolist()
    np.testing.assert_allclose(s[:, 0], 1.0, atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_remove_then_search_and_readd(kind, data):
    base, ids, _ = data
    idx = VectorIndex.build(base, ids, kind=kind, nprobe=64, ef_search=128)
    gone = ids[:10]
    assert idx.remove(np.concatenate([gone, [-5, 999_999_999]])) == 10  # unknown ids ignored
    assert idx.remove(gone) == 0
    assert len(idx) == 2990 and int(gone[0]) not in idx
    _, found = idx.search(base[:10], 5)
    assert not set(found.ravel().tolist()) & set(gone.tolist())
    for ids_, _scores in idx.range_search(base[:10], 0.0):
        assert not set(ids_.tolist()) & set(gone.tolist())
    # a removed id may be added again (HNSW compacts its tombstones first)
    idx.add(base[:1], gone[:1])
    assert len(idx) == 2991
    assert idx.search(base[:1], 1)[1][0, 0] == gone[0]


def test_hnsw_compacts_after_many_removals(data):
    base, ids, queries = data
    idx = VectorIndex.build(base, ids, kind="hnsw")
    idx.remove(ids[:500])
    assert idx._tombstones and idx._index.ntotal == 3000
    idx.remove(ids[500:700])  # 700 > 20% of 3000: rebuilt without the dead nodes
    assert not idx._tombstones and idx._index.ntotal == 2300 and len(idx) == 2300
    live_ids, vecs = idx.reconstruct_all()
    np.testing.assert_array_equal(live_ids, np.sort(ids[700:]))
    np.testing.assert_allclose(vecs, base[700:], atol=1e-6)
    _, found = idx.search(queries, 10)
    assert recall(found, exact_topk(base[700:], ids[700:], queries, 10)) >= 0.9


@pytest.mark.parametrize("kind", KINDS)
def test_range_search(kind, data):
    base, ids, queries = data
    idx = VectorIndex.build(base, ids, kind=kind, nprobe=64, ef_search=256)
    thr = 0.45
    results = idx.range_search(queries[:10], thr)
    sims = queries[:10] @ base.T
    for q, (rid, rs) in enumerate(results):
        assert np.all(rs >= thr) and np.all(np.diff(rs) <= 0)
        truth = set(ids[sims[q] >= thr].tolist())
        assert set(rid.tolist()) <= truth
        if kind == "flat":
            assert set(rid.tolist()) == truth
        elif truth:
            assert len(set(rid.tolist())) / len(truth) >= 0.8


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_round_trip(kind, data, tmp_path):
    base, ids, queries = data
    idx = VectorIndex.build(base, ids, kind=kind, nprobe=32)
    idx.remove(ids[:3])
    path = tmp_path / "idx.dupqidx"
    idx.save(path)
    back = VectorIndex.load(path)
    assert (back.kind, back.dim, len(back), back.params) == (idx.kind, idx.dim, len(idx), idx.params)
    a, b = idx.search(queries, 10), back.search(queries, 10)
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_allclose(a[0], b[0])
    assert int(ids[0]) not in back
    back.add(unit(2, 9), [1, 2])  # still writable after load
    assert len(back) == len(idx) + 2


def test_load_refuses_truncated_and_corrupt(tmp_path, data):
    base, ids, _ = data
    path = tmp_path / "idx"
    VectorIndex.build(base[:200], ids[:200], kind="flat").save(path)
    raw = path.read_bytes()
    (tmp_path / "short").write_bytes(raw[: len(raw) - 100])
    flipped = bytearray(raw)
    flipped[-50] ^= 0xFF
    (tmp_path / "flip").write_bytes(bytes(flipped))
    (tmp_path / "junk").write_bytes(b"not an index at all")
    with pytest.raises(StoreError, match="truncated"):
        VectorIndex.load(tmp_path / "short")
    with pytest.raises(StoreError, match="checksum"):
        VectorIndex.load(tmp_path / "flip")
    with pytest.raises(StoreError, match="not a dupq vector index"):
        VectorIndex.load(tmp_path / "junk")
    with pytest.raises(StoreError, match="cannot read"):
        VectorIndex.load(tmp_path / "missing")


def test_add_validates_input():
    idx = VectorIndex(DIM)
    idx.add(unit(3), [1, 2, 3])
    with pytest.raises(ValueError, match="already in the index"):
        idx.add(unit(1, 5), [2])
    with pytest.raises(ValueError, match="duplicate ids"):
        idx.add(unit(2, 5), [8, 8])
    with pytest.raises(ValueError, match="not L2-normalised"):
        idx.add(unit(1, 5) * 3, [9])
    with pytest.raises(ValueError, match="dimension"):
        idx.add(unit(1, 5, dim=DIM + 1), [9])
    with pytest.raises(ValueError, match="NaN"):
        idx.add(np.full((1, DIM), np.nan, np.float32), [9])
    with pytest.raises(ValueError, match="unknown index kind"):
        VectorIndex(DIM, kind="lsh")
    assert len(idx) == 3  # nothing half-added


def test_empty_and_short_results():
    idx = VectorIndex(DIM, kind="hnsw")
    s, i = idx.search(unit(2), 3)
    assert i.tolist() == [[-1] * 3] * 2 and np.all(np.isneginf(s))
    idx.add(unit(2), [5, 6])
    s, i = idx.search(unit(1, 3), 4)
    assert sorted(i[0, :2].tolist()) == [5, 6] and i[0, 2:].tolist() == [-1, -1]
    assert np.all(np.isneginf(s[0, 2:]))
    assert idx.range_search(unit(1, 3), 2.0)[0][0].size == 0


def test_ivf_stays_flat_until_it_can_train(data):
    base, ids, queries = data
    idx = VectorIndex(DIM, kind="ivf", nlist=16)
    assert ivf_min_train(16) == 16 * 39
    idx.add(base[:100], ids[:100])
    assert idx.kind == "flat" and idx.requested_kind == "ivf"  # too few to train k-means honestly
    idx.add(base[100:1000], ids[100:1000])
    assert idx.kind == "ivf" and idx._index.is_trained and idx.params["nlist"] == 16
    assert len(idx) == 1000
    _, found = idx.search(queries, 5)
    assert found.min() >= 0
    assert default_nlist(100) == 2 and default_nlist(1_000_000) == 2000


def test_auto_converts_past_cutoff(monkeypatch, data):
    base, ids, queries = data
    monkeypatch.setattr(index_mod, "AUTO_FLAT_MAX", 1000)
    assert VectorIndex.build(base[:1000], ids[:1000]).kind == "flat"
    assert VectorIndex.build(base[:1001], ids[:1001]).kind == "hnsw"
    idx = VectorIndex(DIM, kind="auto")
    idx.add(base[:900], ids[:900])
    assert idx.kind == "flat"
    idx.add(base[900:1500], ids[900:1500])
    assert idx.kind == "hnsw" and len(idx) == 1500
    _, found = idx.search(base[:20], 1)
    assert found[:, 0].tolist() == ids[:20].tolist()


def test_hnsw_range_search_finds_large_neighbourhoods_like_exact():
    """Approximate range search grows k until the neighbourhood is exhausted (no cut-off at k)."""
    rng = np.random.default_rng(3)
    base = rng.normal(size=(3000, 32)).astype(np.float32)
    base[:200] = rng.normal(size=32).astype(np.float32) + 0.05 * rng.normal(size=(200, 32))
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    ids = np.arange(len(base), dtype=np.int64) * 7
    hnsw, flat = VectorIndex(32, kind="hnsw"), VectorIndex(32, kind="flat")
    hnsw.add(base, ids)
    flat.add(base, ids)
    got, ref = hnsw.range_search(base[:20], 0.8), flat.range_search(base[:20], 0.8)
    assert len(ref[0][0]) >= 190
    for (gi, gs), (ri, _) in zip(got, ref, strict=True):
        assert set(gi) == set(ri)
        assert np.all(np.diff(gs) <= 0) and np.all(gs >= 0.8)


def test_hnsw_float16_storage_matches_float32_and_persists(data, tmp_path):
    """fp16 storage (what dedupe uses for its float16 store) halves the vectors' memory and changes
    scores by ~1e-3 at most: same neighbours as the float32 graph, and the choice survives a reload."""
    base, ids, queries = data
    full = VectorIndex.build(base, ids, kind="hnsw")
    half = VectorIndex.build(base, ids, kind="hnsw", storage="float16")
    assert isinstance(faiss.downcast_index(half._index.index), faiss.IndexHNSWSQ)
    s32, i32 = full.search(queries, 10)
    s16, i16 = half.search(queries, 10)
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(i32, i16, strict=True)])
    assert overlap >= 0.97
    exact = {int(i): float(s) for i, s in zip(ids, queries[0] @ base.T, strict=True)}
    assert all(abs(exact[int(i)] - float(s)) < 2e-3 for i, s in zip(i16[0], s16[0], strict=True))
    path = tmp_path / "half.index"
    half.save(path)
    back = VectorIndex.load(path)
    assert back.params["storage"] == "float16"
    np.testing.assert_array_equal(back.search(queries, 10)[1], i16)
    with pytest.raises(ValueError, match="storage"):
        VectorIndex(DIM, "hnsw", storage="int8")
