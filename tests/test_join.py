"""The cell join (``dupq.dedupe.join``): the dedupe self-search above 20k texts.

Checked against exact search (FAISS flat range search) on clustered vectors: the pairs it lists are
real (scores are the exact cosines), nearly all exact pairs are found with many cells, every pair is
found with one cell, a float16 memory map reads the same, and the dedupe search stage takes it for
``index="auto"`` above the exact-search size (with ``complete_to`` at the floor, so re-thresholds need
no search).
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

from dupq.dedupe import EXACT_SEARCH_MAX, DedupeConfig, index_kind
from dupq.dedupe.join import best_of_parts, best_per_key, join_pairs, join_plan
from dupq.dedupe.search import candidate_pairs, lookup_kind
from dupq.errors import InputError


def clustered(n: int, dim: int = 48, centres: int = 400, noise: float = 0.35, seed: int = 0) -> np.ndarray:
    """Unit rows around random centres: many pairs above 0.8, in groups of uneven sizes."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, dim)).astype(np.float32)
    pick = np.minimum(rng.geometric(0.5, n), 8) * rng.integers(0, centres // 8, n) % centres
    x = c[pick] + noise * rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def exact_keys(x: np.ndarray, floor: float) -> tuple[np.ndarray, np.ndarray]:
    """Every pair i < j with cosine >= floor, as (key = i * n + j, score), by brute force."""
    sims = x @ x.T
    i, j = np.nonzero(np.triu(sims >= np.float32(floor), 1))
    return i * len(x) + j, sims[i, j]


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    return clustered(6000)


def test_join_finds_nearly_every_exact_pair_and_only_real_ones(data):
    truth, truth_s = exact_keys(data, 0.8)
    assert len(truth) > 20_000
    key, score, reached = join_pairs(data, 0.8, cells=40, probes=6)
    assert reached == 0.8
    assert np.all(np.diff(key) > 0)  # sorted, each pair once
    a, b = key // len(data), key % len(data)
    assert np.all(a < b) and np.all(score >= np.float32(0.8))
    np.testing.assert_allclose(score, np.sum(data[a] * data[b], axis=1), atol=1e-5)  # exact cosines
    assert np.isin(key, truth).all()
    recall = np.isin(truth, key).mean()
    assert recall > 0.99
    # fewer probes miss more: the recall lever is real, not a full scan in disguise
    fewer, _, _ = join_pairs(data, 0.8, cells=40, probes=1)
    assert np.isin(truth, fewer).mean() < recall


def test_one_cell_is_the_exact_all_pairs_join(data):
    truth, truth_s = exact_keys(data[:1500], 0.7)
    key, score, _ = join_pairs(data[:1500], 0.7, cells=1, probes=1)
    np.testing.assert_array_equal(key, truth)
    np.testing.assert_allclose(score, truth_s, atol=1e-5)
    assert join_plan(1000) == (1, 1) and join_plan(1_000_000) == (4000, 32)
    assert join_plan(100_000_000) == (65_536, 32)  # capped: cells grow instead


def test_float16_memory_map_and_unnormalised_rows_read_the_same(data, tmp_path):
    path = tmp_path / "v.npy"
    np.save(path, (data * 3.0).astype(np.float16))  # not unit length: the join normalises
    mapped = np.load(path, mmap_mode="r")
    key16, s16, _ = join_pairs(mapped, 0.8, cells=40, probes=6, chunk_size=1000)
    key32, s32, _ = join_pairs(data, 0.8, cells=40, probes=6)
    clear16, clear32 = key16[s16 >= 0.805], key32[s32 >= 0.805]  # float16 rounding moves the edge only
    assert np.isin(clear16, key32).mean() > 0.995 and np.isin(clear32, key16).mean() > 0.995
    assert s16.dtype == np.float32 and s16.max() <= 1.0 + 1e-3


def test_tiny_inputs():
    assert len(join_pairs(np.ones((1, 4), np.float32), 0.5)[0]) == 0
    key, score, _ = join_pairs(np.ones((2, 4), np.float32), 0.5)
    assert key.tolist() == [1] and score[0] == pytest.approx(1.0)
    k, s = best_per_key(np.array([5, 3, 5, 3], np.int64), np.array([0.8, 0.9, 0.95, 0.7], np.float32))
    assert k.tolist() == [3, 5] and s.tolist() == pytest.approx([0.9, 0.95])


def test_dedupe_search_uses_the_join_above_the_exact_size(monkeypatch):
    import dupq.dedupe.search as search

    n = EXACT_SEARCH_MAX + 1
    assert index_kind(n, "auto") == "join" and index_kind(EXACT_SEARCH_MAX, "auto") == "flat"
    assert lookup_kind(n, "auto") == "hnsw"  # matching against a base needs a real index
    assert index_kind(10, "hnsw") == "hnsw"
    assert DedupeConfig(text_column="q", index="join").index == "join"
    with pytest.raises(InputError, match="index"):
        DedupeConfig(text_column="q", index="graph")
    # the dispatch itself, on a small set (forcing "join"): every pair >= floor, complete to the floor
    x = clustered(3000, seed=2)
    calls = []
    monkeypatch.setattr(search, "join_pairs", lambda *a, **k: calls.append(1) or join_pairs(*a, **k))
    a, b, s, complete = candidate_pairs(x, 0.8, range_at=0.85, k=4, index="join")
    assert calls and np.all(complete == np.float32(0.8))
    truth, _ = exact_keys(x, 0.8)
    assert np.isin(truth, a * len(x) + b).mean() > 0.99  # not cut at k=4: the join lists every pair
    fa, fb, _, _ = candidate_pairs(x, 0.8, range_at=0.85, k=4, index="flat")
    assert len(a) > len(fa)  # flat lists k per row below range_at; the join lists them all


def test_a_band_too_dense_to_keep_is_dropped_and_the_floor_says_so(data, monkeypatch):
    """Below the threshold the join keeps at most JOIN_BAND_PER_ROW pairs per row on average (the k-NN
    search kept k there); past that the band goes, the threshold's pairs stay, and the pairs are
    reported complete only down to the threshold — so a re-threshold below it searches again."""
    import dupq.dedupe.join as join

    full, full_s, reached = join_pairs(data, 0.5, cells=40, probes=6, keep_above=0.9)
    assert reached == 0.5 and (full_s < 0.9).sum() > 20 * len(data)  # a dense band: > 20 pairs per row
    monkeypatch.setattr(join, "JOIN_BAND_PER_ROW", 2)
    monkeypatch.setattr(join, "JOIN_COMPACT", 50_000)  # compact (and check the band) often
    key, score, reached = join_pairs(data, 0.5, cells=40, probes=6, keep_above=0.9)
    assert reached == 0.9 and score.min() >= np.float32(0.9)
    np.testing.assert_array_equal(key, full[full_s >= np.float32(0.9)])  # the threshold's pairs, all kept
    a, b, s, complete = candidate_pairs(data[:3000], 0.5, range_at=0.9, index="join")
    assert np.all(complete == np.float32(0.9)) and s.min() >= np.float32(0.9)


def test_best_per_key_matches_a_groupby_max_for_any_multiplicity():
    """Keys seen once, twice (the usual: once from each row of a pair) or more, in sorted runs or not."""
    import pandas as pd

    rng = np.random.default_rng(4)
    for most in (2, 5):
        key = np.concatenate([rng.integers(0, 3000, 2000) for _ in range(most)])
        if most == 2:
            key = np.concatenate([np.unique(key[:2000]), np.unique(key[2000:])])  # two sorted unique runs
        score = rng.random(len(key)).astype(np.float32)
        k, s = best_per_key(key, score)
        ref = pd.Series(score).groupby(key).max()
        np.testing.assert_array_equal(k, ref.index.to_numpy())
        np.testing.assert_array_equal(s, ref.to_numpy())
        # the consuming form: the same from parts (one part is taken as it is), and the parts are gone
        for cut in ([1000, 2500], []):
            keys, scores = np.split(key.copy(), cut), np.split(score.copy(), cut)
            k2, s2 = best_of_parts(keys, scores)
            assert keys == [] and scores == []
            np.testing.assert_array_equal(k2, k)
            np.testing.assert_array_equal(s2, s)


def test_compaction_in_tiered_runs_keeps_every_pair_once(data, monkeypatch):
    """Many small runs merged size-tiered give exactly the pairs of one final merge."""
    import dupq.dedupe.join as join

    key, score, _ = join_pairs(data, 0.6, cells=40, probes=6)
    monkeypatch.setattr(join, "JOIN_COMPACT", 5_000)  # dozens of runs, merged as they come
    k2, s2, _ = join_pairs(data, 0.6, cells=40, probes=6)
    assert len(key) > 20 * 5_000
    np.testing.assert_array_equal(k2, key)
    np.testing.assert_array_equal(s2, score)


def _rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:")) / 1024


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_release_pages_drops_a_read_maps_resident_pages_and_keeps_its_data(tmp_path):
    """The join reads a store's map once into its float32 copy; the map's pages then leave the process's
    resident memory (they are re-read on access), and only a read-only map is touched."""
    from dupq.vectors import release_pages

    path = tmp_path / "vectors.npy"
    np.save(path, np.random.default_rng(0).standard_normal((40_000, 512)).astype(np.float16))  # 41 MB
    mapped = np.load(path, mmap_mode="r")
    total = float(mapped.astype(np.float32).sum())  # every page read
    before = _rss_mb()
    assert release_pages(mapped[100:])  # a view releases its map too
    assert before - _rss_mb() > 30
    assert float(mapped.astype(np.float32).sum()) == total  # still readable, same data
    assert not release_pages(np.load(path, mmap_mode="c"))  # copy-on-write: its pages may be changes
    assert not release_pages(np.zeros(4))


def test_probes_are_chosen_for_the_recall_target_and_reach_it(monkeypatch):
    """``assign_cells(recall_at=...)`` predicts, from a sample searched exactly, the probes the whole join
    needs for ``JOIN_RECALL``; ``probes_needed`` is exactly when the join finds a pair."""
    from dupq.dedupe import join

    # no clusters: a row's neighbours at 0.8 spread over many cells, so recall grows with the probes
    x = np.random.default_rng(0).standard_normal((8000, 12)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    truth, _ = exact_keys(x, 0.8)
    monkeypatch.setattr(join, "JOIN_RECALL_SAMPLE", 1500)
    chosen = {}
    for target in (0.9, 0.99):
        monkeypatch.setattr(join, "JOIN_RECALL", target)
        _, probe, _ = join.assign_cells(x, 80, 40, recall_at=0.8)
        chosen[target] = probe.shape[1]
        key, _, _ = join_pairs(x, 0.8, cells=80, probes=chosen[target])
        assert np.isin(truth, key).mean() >= target - 0.01  # the sample's estimate holds for all pairs
    assert join.JOIN_MIN_PROBES < chosen[0.9] < chosen[0.99] < 40  # a real lever, below the cap here
    # the join's own default path chooses too (the rows' nearest cells, cut to the chosen width)
    _, full, _ = join.assign_cells(x, 80, 40)
    np.testing.assert_array_equal(probe, full[:, : probe.shape[1]])
    # probes_needed: found with p probes  <=>  needed <= p, checked pair by pair against the lists
    a, b = truth // len(x), truth % len(x)
    need = join.probes_needed(full, a, b)
    for p in (1, 3, 10):
        found = (full[a, :p] == full[b, :1]).any(1) | (full[b, :p] == full[a, :1]).any(1)
        np.testing.assert_array_equal(found, need <= p)
    # nothing at that cosine: the fewest probes; a recall of 1.0: all of them (the caller's own choice)
    assert join.assign_cells(x, 80, 40, recall_at=0.9999)[1].shape[1] == join.JOIN_MIN_PROBES
    assert join.assign_cells(x, 80, 40, recall_at=0.8, recall=1.0)[1].shape[1] == 40
    assert join.assign_cells(x, 80, 40, recall_at=0.8, recall=0.9)[1].shape[1] == chosen[0.9]


def test_a_dense_sample_is_thinned_uniformly(monkeypatch):
    from dupq.dedupe import join

    x = clustered(4000, centres=16, noise=0.05, seed=1)  # nearly every pair above 0.9
    monkeypatch.setattr(join, "JOIN_RECALL_PAIRS", 5000)
    sample = np.arange(0, 4000, 8)
    probe, q, partner, score, rate = join._cells_pass(x, join.train_cells(x, 20), 5, 1000, sample, 0.9)
    assert 2500 <= len(q) <= 10_000  # ~1M pairs in the sample, thinned to within 2x of the cap
    assert np.all(sample[q] != partner)
    assert np.all(np.sum(x[sample[q]] * x[partner], axis=1) >= 0.9 - 1e-5)  # still real pairs
    np.testing.assert_allclose(score, np.sum(x[sample[q]] * x[partner], axis=1), atol=1e-5)
    assert rate < 1 and len(q) / rate > 100_000  # the rate says how many there were
    assert probe.shape == (4000, 5)


def test_a_kept_band_costs_probes_and_a_dense_one_is_dropped_before_the_search(monkeypatch):
    """Saved pairs serve re-thresholds down to the floor, so the probes are chosen for the floor when the
    band is kept; a band the join would drop anyway is dropped up front (the floor becomes the threshold)."""
    from dupq.dedupe import join

    x = np.random.default_rng(0).standard_normal((8000, 12)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    monkeypatch.setattr(join, "JOIN_RECALL_SAMPLE", 1500)
    monkeypatch.setattr(join, "JOIN_CELL_SIZE", 100)  # join_pairs' own plan: 80 cells, up to 40 probes
    monkeypatch.setattr(join, "JOIN_PROBES", 40)
    _, at_threshold, floor = join.assign_cells(x, 80, 40, recall_at=0.8)
    assert floor is None
    _, with_band, floor = join.assign_cells(x, 80, 40, recall_at=0.8, floor=0.75)
    assert floor == 0.75 and with_band.shape[1] > at_threshold.shape[1]
    assert join.join_plan(len(x)) == (80, 40)
    key, score, reached = join_pairs(x, 0.75, keep_above=0.8)  # the default path: probes chosen
    truth, _ = exact_keys(x, 0.75)
    assert reached == 0.75 and np.isin(truth, key).mean() >= 0.98  # the band as complete as the rest
    monkeypatch.setattr(join, "JOIN_BAND_PER_ROW", 1)  # now the band is "too dense": not searched at all
    _, dropped, floor = join.assign_cells(x, 80, 40, recall_at=0.8, floor=0.75)
    assert floor == 0.8 and dropped.shape[1] == at_threshold.shape[1]
    key, score, reached = join_pairs(x, 0.75, keep_above=0.8)
    assert reached == 0.8 and score.min() >= np.float32(0.8)
