"""The Ray engine gives the same groups as the local engine (one small Ray session, 2 CPUs): the
encoding on Ray Data, and the partitioned search (dupq.dedupe.ray_search) on vectors the tests build,
with duplicate pairs that straddle a k-means partition boundary."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dupq.dedupe import deduplicate
from dupq.dedupe.search import candidate_pairs
from dupq.text import text_key
from tests.optional import import_extra
from tests.test_dedupe import CRAFTED, THRESHOLD, CraftedEmbedder, _groups

ray = import_extra("ray", "ray", module_level=True)  # CI installs it: a failure there, a skip elsewhere


@pytest.fixture(scope="module")
def ray_session():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_engine_gives_the_same_output_as_local(ray_session, tiny_model, tmp_path):
    df = pd.DataFrame({"id": [c[0] for c in CRAFTED], "question": [c[1] for c in CRAFTED]})
    df = pd.concat([df, df.assign(id=df["id"] + "x", question=df["question"].str.upper())], ignore_index=True)
    path = tmp_path / "questions.parquet"
    df.to_parquet(path, index=False)
    kw = dict(text_column="question", id_column="id", threshold=THRESHOLD, show_progress=False, chunk_size=5)
    local_res = deduplicate(path, model=tiny_model, **kw)
    local = local_res.table
    n_unique = local_res.summary.unique_texts
    assert n_unique == 10
    workdir = tmp_path / "work"
    res = deduplicate(path, model=tiny_model, engine="ray", workdir=workdir, **kw)
    remote = res.table
    assert res.summary.engine == "ray" and res.summary.texts_encoded == n_unique
    assert res.summary.search_engine == "driver"  # 10 texts: below RAY_SEARCH_MIN, searched on the driver
    # the texts went through Ray Data as Parquet shards, and came back as Parquet shards
    store = next(workdir.glob("emb-*"))
    assert len(list((store / "texts").glob("*.parquet"))) == 2  # 10 unique texts, shards of 5
    assert list((store / "ray-out").rglob("*.parquet"))
    cols = ["id", "group_id", "is_representative", "duplicate_of", "status"]
    pd.testing.assert_frame_equal(local[cols], remote[cols])
    assert (local["score"].fillna(-1) - remote["score"].fillna(-1)).abs().max() < 2e-3
    # each question and its upper-cased copy share a group (the exact pass; no tiny-model cosine involved)
    groups = _groups(remote, "id")
    assert all(any({i, i + "x"} <= g for g in groups) for i in df["id"].head(len(CRAFTED)))
    # a rerun finds every vector in the workdir and starts no Ray job
    again = deduplicate(path, model=tiny_model, engine="ray", workdir=workdir, **kw)
    assert again.summary.texts_encoded == 0 and again.summary.embeddings_reused == n_unique


def test_engine_ray_from_the_cli(ray_session, tiny_model_dir, tmp_path):
    """`dupq dedupe --engine ray` runs the encode stage on Ray Data (this module's session) and writes
    what the local engine writes."""
    import json

    from typer.testing import CliRunner

    from dupq.cli import app

    path = tmp_path / "q.csv"
    pd.DataFrame({"id": [c[0] for c in CRAFTED], "question": [c[1] for c in CRAFTED]}).to_csv(
        path, index=False
    )
    base = [
        "dedupe",
        str(path),
        "--text-column",
        "question",
        "--id-column",
        "id",
        "--model",
        str(tiny_model_dir),
    ]
    base += ["--threshold", "0.9", "--quiet"]
    runs = {}
    for engine in ("local", "ray"):
        out = tmp_path / f"{engine}.csv"
        res = CliRunner().invoke(app, [*base, "--engine", engine, "--out", str(out)])
        assert res.exit_code == 0, res.output
        runs[engine] = pd.read_csv(out, dtype=str, keep_default_na=False)
    summary = json.loads((tmp_path / "ray.summary.json").read_text())
    assert summary["engine"] == "ray" and summary["texts_encoded"] == summary["unique_texts"] == 10
    assert _groups(runs["ray"], "id") == _groups(runs["local"], "id")


# -- the partitioned search ---------------------------------------------------------------------------
BRIDGE_THRESHOLD = 0.95


def _bridge_vectors(dim: int = 16, per: int = 30, seed: int = 0) -> np.ndarray:
    """Three clusters (around basis vectors 0, 1, 2; 30 members each, some pairs above the threshold)
    and, between each two clusters, a *bridge pair*: two vectors at cosine ~0.99, one leaning to each
    cluster, so with 3 k-means partitions each bridge straddles a boundary — its texts' nearest
    centroids differ, their two nearest are the same two. The last 6 rows are the 3 bridge pairs."""
    rng = np.random.default_rng(seed)
    eye = np.eye(dim, dtype=np.float32)
    parts = []
    for c in range(3):
        noise = rng.standard_normal((per, dim - 6)).astype(np.float32)
        members = np.tile(eye[c], (per, 1))
        members[:, 6:] += 0.35 * noise / np.linalg.norm(noise, axis=1, keepdims=True)
        parts.append(members)
    for n, (x, y) in enumerate([(0, 1), (1, 2), (0, 2)]):
        w = 0.1 * eye[3 + n]
        parts.append(np.stack([0.53 * eye[x] + 0.47 * eye[y] + w, 0.47 * eye[x] + 0.53 * eye[y] + w]))
    v = np.concatenate(parts)
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


BRIDGES = {(90, 91), (92, 93), (94, 95)}


def _pairs(a: np.ndarray, b: np.ndarray) -> set[tuple[int, int]]:
    return set(zip(a.tolist(), b.tolist(), strict=True))


def _search(path: Path, workdir: Path, assignments: int = 2) -> tuple:
    from dupq.dedupe.ray_search import SearchParams, SearchPlan, partitioned_search

    params = SearchParams(BRIDGE_THRESHOLD, BRIDGE_THRESHOLD, 32, "auto", None, 16_384)
    return partitioned_search(path, workdir, SearchPlan(3, assignments), params, show_progress=False)


@pytest.fixture(scope="module")
def bridge(ray_session, tmp_path_factory):
    """The bridge vectors as a .npy, their exact pairs, and one partitioned search of them."""
    root = tmp_path_factory.mktemp("bridge")
    vectors = _bridge_vectors()
    path = root / "vectors.npy"
    np.save(path, vectors)
    a, b, _, _ = candidate_pairs(vectors, BRIDGE_THRESHOLD, index="flat")
    exact = _pairs(a, b)
    assert exact >= BRIDGES and len(exact) > len(BRIDGES)  # the data has pairs inside clusters too
    return path, exact, _search(path, root / "work")


def test_partitioned_search_finds_every_exact_pair_including_across_boundaries(bridge):
    _, exact, (pairs, info) = bridge
    assert _pairs(pairs.a, pairs.b) == exact
    assert info["partitions"] == 3 and info["assignments"] == 2 and info["partitions_searched"] == 3
    # each vector is in 2 partitions: pairs are found twice, and kept once (with their cosine)
    assert info["pairs_found_more_than_once"] > 0
    assert info["pairs_unique"] == len(pairs.a) == info["pairs_found"] - info["pairs_found_more_than_once"]
    assert (pairs.a < pairs.b).all() and np.all(pairs.s >= BRIDGE_THRESHOLD)
    assert sum(p["vectors"] for p in info["per_partition"]) == 2 * 96
    assert all(p["peak_rss_mb"] > 0 and p["index"] == "flat" for p in info["per_partition"])


def test_one_nearest_partition_loses_the_pairs_across_a_boundary(bridge, tmp_path):
    """Why each vector goes to its 2 nearest centroids: with 1, each bridge pair's texts land in
    different partitions and the pair is never searched; everything else is still found."""
    path, exact, _ = bridge
    pairs, info = _search(path, tmp_path, assignments=1)
    assert info["pairs_found_more_than_once"] == 0
    assert exact - _pairs(pairs.a, pairs.b) == BRIDGES


def test_partition_pair_files_are_reused_on_a_rerun(bridge):
    """A partition whose Parquet exists is not searched again; a missing one is (resume after a kill)."""
    path, exact, (_, info) = bridge
    root = Path(info["dir"])
    assert sorted(p.name for p in root.glob("pairs-*.parquet")) == [
        f"pairs-0000{i}.parquet" for i in range(3)
    ]
    (root / "pairs-00001.parquet").unlink()
    kept = {p: p.stat().st_mtime_ns for p in root.glob("pairs-*.parquet")}
    pairs, again = _search(path, root.parent)
    assert again["dir"] == info["dir"]
    assert again["partitions_searched"] == 1 and again["partitions_reused"] == 2
    assert {p: p.stat().st_mtime_ns for p in kept} == kept
    assert _pairs(pairs.a, pairs.b) == exact


class BridgeEmbedder(CraftedEmbedder):
    """Texts ``question 000`` … ``question 095`` with the bridge vectors (groups follow from them)."""

    VECTORS = {text_key(f"question {i:03d}"): v for i, v in enumerate(_bridge_vectors())}

    @property
    def fingerprint(self) -> str:
        return "bridge-vectors-v1"

    @property
    def dim(self) -> int:
        return 16


def test_ray_partitioned_search_gives_the_local_groups(ray_session, tiny_model, tmp_path):
    """End to end: the Ray engine's partitioned search (3 partitions forced on 96 texts) writes the
    groups the local engine writes, bridge pairs included; with 1 assignment it would not."""
    emb = BridgeEmbedder(tiny_model)
    df = pd.DataFrame(
        {"id": [f"r{i}" for i in range(96)], "question": [f"question {i:03d}" for i in range(96)]}
    )
    kw = dict(text_column="question", id_column="id", model=emb, threshold=BRIDGE_THRESHOLD)
    kw.update(show_progress=False, workdir=tmp_path / "work")
    local = deduplicate(df, **kw)  # fills the workdir: the Ray runs below encode nothing (no model dir)
    ray_res = deduplicate(df, engine="ray", ray_partitions=3, **kw)
    s = ray_res.summary
    assert s.texts_encoded == 0 and s.search_engine == "ray-partitioned"
    assert s.ray_search["partitions"] == 3 and s.ray_search["assignments"] == 2
    assert s.similar_pairs == local.summary.similar_pairs
    assert _groups(ray_res.table, "id") == _groups(local.table, "id")
    assert s.rows == s.ok_rows == 96  # every row accounted for
    one = deduplicate(df, engine="ray", ray_partitions=3, ray_assignments=1, **kw)
    assert one.summary.similar_pairs == local.summary.similar_pairs - len(BRIDGES)
    assert _groups(one.table, "id") != _groups(local.table, "id")


def test_ray_search_options_from_the_cli(ray_session, tiny_model_dir, tmp_path):
    """`--engine ray --ray-search partitioned --ray-partitions 3`: the search runs on Ray and the output
    equals the local engine's; the summary JSON says which search ran."""
    from typer.testing import CliRunner

    from dupq.cli import app

    path = tmp_path / "q.csv"
    pd.DataFrame({"id": [c[0] for c in CRAFTED], "question": [c[1] for c in CRAFTED]}).to_csv(
        path, index=False
    )
    base = ["dedupe", str(path), "-t", "question", "--id-column", "id", "--model", str(tiny_model_dir)]
    base += ["--threshold", str(THRESHOLD), "--quiet", "--workdir", str(tmp_path / "work")]
    ray_args = ["--engine", "ray", "--ray-search", "partitioned", "--ray-partitions", "3"]
    runs = {}
    for name, extra in (("local", []), ("ray", ray_args)):
        out = tmp_path / f"{name}.csv"
        res = CliRunner().invoke(app, [*base, *extra, "--out", str(out)])
        assert res.exit_code == 0, res.output
        runs[name] = pd.read_csv(out, dtype=str, keep_default_na=False)
    summary = json.loads((tmp_path / "ray.summary.json").read_text())
    assert summary["search_engine"] == "ray-partitioned" and summary["ray_search"]["partitions"] == 3
    local = json.loads((tmp_path / "local.summary.json").read_text())
    assert local["search_engine"] == "local" and local["ray_search"] is None
    assert _groups(runs["ray"], "id") == _groups(runs["local"], "id")
    assert summary["similar_pairs"] == local["similar_pairs"]


# -- the partitioned cell join ------------------------------------------------------------------------
def test_partitioned_cell_join_gives_exactly_the_local_joins_pairs(ray_session, tmp_path, monkeypatch):
    """Above the exact size the Ray search splits the local join itself: partitions are groups of the
    join's cells, every probe lands in exactly one of them, so the pairs equal the driver's join
    (same cells, same probes) — not a partition-boundary approximation of it."""
    import dupq.dedupe.join as join
    from dupq.dedupe.ray_search import SearchParams, SearchPlan, partitioned_search
    from tests.test_join import clustered

    monkeypatch.setattr(join, "JOIN_CELL_SIZE", 100)  # 40 cells × 6 probes on 4,000 rows (driver-side plan)
    monkeypatch.setattr(join, "JOIN_PROBES", 6)
    vectors = clustered(4000, dim=32, seed=5)
    path = tmp_path / "vectors.npy"
    np.save(path, vectors.astype(np.float16))
    mapped = np.load(path, mmap_mode="r")
    key, score, _ = join.join_pairs(mapped, 0.8, keep_above=0.85)
    params = SearchParams(0.8, 0.85, 32, "join", None, 16_384)
    pairs, info = partitioned_search(path, tmp_path / "work", SearchPlan(4, 2), params, show_progress=False)
    assert info["mode"] == "partitioned cells" and info["partitions_searched"] == 4
    got = pairs.a * len(vectors) + pairs.b
    np.testing.assert_array_equal(got, key)
    np.testing.assert_allclose(pairs.s, score, atol=1e-6)
    # a pair is found once per direction whose probe reaches the other's cell: twice across partitions
    assert info["pairs_unique"] == len(key) == info["pairs_found"] - info["pairs_found_more_than_once"]
    per = info["per_partition"]
    assert sum(p["data_rows"] for p in per) == len(vectors)  # each row stored in one partition
    # each probe in one partition; the probes a row gets are chosen for JOIN_RECALL, as the local join's
    width = sum(p["query_probes"] for p in per) / len(vectors)
    assert width == int(width) and join.JOIN_MIN_PROBES <= width <= 6
    assert all(p["index"] == "join" for p in per) and np.all(pairs.complete_to == np.float32(0.8))
    truth = np.triu(vectors @ vectors.T >= 0.8, 1)
    assert np.isin(np.flatnonzero(truth.ravel()), got).mean() > 0.99


def _cell_setup(tmp_path, monkeypatch, n=4000, seed=5):
    import dupq.dedupe.join as join
    from tests.test_join import clustered

    monkeypatch.setattr(join, "JOIN_CELL_SIZE", 100)
    monkeypatch.setattr(join, "JOIN_PROBES", 6)
    path = tmp_path / "vectors.npy"
    np.save(path, clustered(n, dim=32, seed=seed).astype(np.float16))
    return join, path, np.load(path, mmap_mode="r")


@pytest.mark.parametrize("floor, threshold", [(0.8, 0.85), (0.3, 0.85)])
def test_ray_plan_chooses_the_local_joins_probes_and_floor(
    ray_session, tmp_path, monkeypatch, floor, threshold
):
    """The probes and the floor come from histograms the probe tasks send back instead of pairs: the
    same choice as the local join's, which sees the sample's pairs themselves — with the band kept, and
    with a band so wide (down to 0.3 on clustered vectors) that both drop it before searching."""
    from dupq.dedupe.ray_search import SearchParams, SearchPlan, partitioned_search

    join, path, mapped = _cell_setup(tmp_path, monkeypatch)
    cells, probes = join.join_plan(len(mapped))
    _, local_probe, local_floor = join.assign_cells(
        mapped, cells, probes, recall_at=threshold, recall=None, floor=floor
    )
    params = SearchParams(floor, threshold, 32, "join", None, 16_384)
    pairs, info = partitioned_search(path, tmp_path / "work", SearchPlan(4, 2), params, show_progress=False)
    plan = info["plan"]  # plan.json, as the summary and the benchmark report it
    assert (plan["probes"], plan["floor"]) == (local_probe.shape[1], local_floor)
    assert plan["probe_tasks"] == 1 and plan["probe_width"] == probes
    assert (local_floor == threshold) == (floor == 0.3)  # the wide band is dropped, the narrow one kept
    assert float(pairs.complete_to.min()) == np.float32(local_floor)


def test_probe_tasks_bucket_every_probe_once_and_a_finished_task_is_not_run_again(
    ray_session, tmp_path, monkeypatch
):
    """Rows split over several probe tasks (bucket files per task and partition) give the same pairs as
    one task; after a kill, tasks whose done.json exists are reused and only the missing one runs."""
    import shutil

    import dupq.dedupe.ray_plan as ray_plan
    from dupq.dedupe.ray_search import SearchParams, SearchPlan, partitioned_search

    join, path, mapped = _cell_setup(tmp_path, monkeypatch, n=5000, seed=7)
    key, score, _ = join.join_pairs(mapped, 0.8, keep_above=0.85)
    # 5,000 rows: tasks of 2,048, 2,048 and 904 rows (a worker reads its range in one chunk)
    monkeypatch.setattr(ray_plan, "PROBE_CHUNK", 1024)
    monkeypatch.setattr(ray_plan, "PROBE_TASK_ROWS", 2048)
    params = SearchParams(0.8, 0.85, 32, "join", None, 16_384)
    work = tmp_path / "work"
    pairs, info = partitioned_search(path, work, SearchPlan(3, 2), params, show_progress=False)
    root = Path(info["dir"])
    assert json.loads((root / "plan.json").read_text())["probe_tasks"] == 3
    np.testing.assert_array_equal(pairs.a * len(mapped) + pairs.b, key)
    np.testing.assert_allclose(pairs.s, score, atol=1e-6)
    # each row's probes are in exactly one bucket of one task: together, rows × probes
    buckets = [ray_plan.partition_probes(root, p, 3, 32) for p in range(3)]
    width = json.loads((root / "plan.json").read_text())["probe_width"]
    assert sum(len(b["q_rows"]) for b in buckets) == len(mapped) * width
    assert np.array_equal(np.sort(np.concatenate([b["d_rows"] for b in buckets])), np.arange(len(mapped)))

    # a kill after two probe tasks: the plan and the third task's files are gone, the pairs too
    kept = {t: (root / f"probes-{t:05d}" / "done.json").stat().st_mtime_ns for t in (0, 1)}
    cells = {f: (root / f).stat().st_mtime_ns for f in ("centroids.npy", "groups.npy", "sample_probe.npy")}
    shutil.rmtree(root / "probes-00002")
    for f in [root / "plan.json", *root.glob("pairs-*.parquet")]:
        f.unlink()
    again, _ = partitioned_search(path, work, SearchPlan(3, 2), params, show_progress=False)
    assert {t: (root / f"probes-{t:05d}" / "done.json").stat().st_mtime_ns for t in (0, 1)} == kept
    assert (root / "probes-00002" / "done.json").exists()
    # the cells the finished tasks bucketed by are reused, not trained again
    assert {f: (root / f).stat().st_mtime_ns for f in cells} == cells
    np.testing.assert_array_equal(again.a * len(mapped) + again.b, key)


def test_a_join_of_fewer_cells_than_partitions_leaves_some_empty(ray_session, tmp_path):
    """1,000 rows with the join forced: one cell (an exact all-pairs join) and 3 partitions — two of them
    get nothing to search, and the pairs are still exactly the local join's."""
    import dupq.dedupe.join as join
    from dupq.dedupe.ray_search import SearchParams, SearchPlan, partitioned_search
    from tests.test_join import clustered

    path = tmp_path / "vectors.npy"
    np.save(path, clustered(1000, dim=32, seed=5).astype(np.float16))
    key, _, _ = join.join_pairs(np.load(path, mmap_mode="r"), 0.8, keep_above=0.85)
    params = SearchParams(0.8, 0.85, 32, "join", None, 16_384)
    pairs, info = partitioned_search(path, tmp_path / "work", SearchPlan(3, 2), params, show_progress=False)
    assert (info["plan"]["cells"], info["plan"]["probes"]) == (1, 1)
    assert sorted(p["vectors"] for p in info["per_partition"]) == [0, 0, 1000]
    np.testing.assert_array_equal(pairs.a * 1000 + pairs.b, key)
