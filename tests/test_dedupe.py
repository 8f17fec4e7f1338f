"""Batch deduplication: row accounting, exact pass, grouping (and its chaining guard), --against,
resume after an interruption, file formats, bad input, the CLI, and one real-quality check.

The tiny random model cannot know paraphrases, so semantic grouping is tested on vectors the tests
build: through the library's own search + grouping functions, and end to end with CraftedEmbedder
(the pipeline, file formats and CLI on known vectors). The tiny model runs the paths where no group
depends on its cosines (row accounting, exact pass, resume, work directories).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dupq.cli import app
from dupq.dedupe import (
    DEFAULT_THRESHOLD,
    RESULT_COLUMNS,
    deduplicate,
    group_pairs,
    group_vectors,
    similar_pairs,
)
from dupq.embed import Embedder
from dupq.errors import InputError
from dupq.text import text_key
from tests.optional import import_extra
from tests.tiny_model import sample_questions

THRESHOLD = 0.992  # between the tiny model's near-exact variants (~0.994) and distinct questions

# Known groups: exact variants (case/punctuation) and near variants. The groups are not read off the
# random tiny model's cosines (which move with its initialisation) but built into CraftedEmbedder's vectors.
CRAFTED = [
    ("a1", "How do I learn python fast", "A"),
    ("b1", "Best way to cook rice", "B"),
    ("s1", "how can I learn python fast", None),
    ("a2", "HOW DO I LEARN PYTHON FAST?", "A"),
    ("c1", "How to lose weight fast", "C"),
    ("s2", "How do I learn python quickly", None),
    ("b2", "Best way to cook rice rice", "B"),
    ("s3", "Best way to cook pasta", None),
    ("a3", "How do I learn python fast fast", "A"),
    ("c2", "How to lose weight fast fast", "C"),
    ("b3", "best way to cook rice!!", "B"),
    ("s4", "Why is the sky blue", None),
]


CRAFTED_THRESHOLD = 0.95
#: Near variants with the cosine CraftedEmbedder gives them to their group's first question: 0.9975
#: for a member, 0.90 for the near-misses (s1-s3), just below the threshold; 0 between groups.
NEAR_MISS_OF = {"s1": "A", "s2": "A", "s3": "B"}


def _crafted_vectors(dim: int = 32) -> dict[str, np.ndarray]:
    """Unit vectors per normalised text that put CRAFTED's groups together at CRAFTED_THRESHOLD and
    nothing else: group g's centre is basis vector g, member i leans 0.05 off it along its own axis
    (cosine 0.9975 between members), a near-miss leans 0.9 towards a centre."""
    eye = np.eye(dim, dtype=np.float32)
    centres = {g: eye[i] for i, g in enumerate("ABC")}
    out: dict[str, np.ndarray] = {}
    for i, (rid, text, g) in enumerate(CRAFTED):
        if g is not None:
            v = centres[g] + 0.05 * eye[8 + i]
        elif rid in NEAR_MISS_OF:
            v = 0.9 * centres[NEAR_MISS_OF[rid]] + np.sqrt(1 - 0.81) * eye[8 + i]
        else:
            v = eye[8 + i]
        out.setdefault(text_key(text), (v / np.linalg.norm(v)).astype(np.float32))
    return out


class CraftedEmbedder(Embedder):
    """The tiny model's tokenizer (for lengths), with the vectors of :func:`_crafted_vectors`: the
    expected groups follow from vectors the test built, not from a random model's cosines."""

    VECTORS = _crafted_vectors()

    def encode(self, texts, **kwargs):
        return np.stack([self.VECTORS[text_key(t)] for t in texts]) if len(texts) else np.zeros((0, 32))

    def encode_flagged(self, texts, **kwargs):
        return self.encode(texts), self.token_lengths(texts) > self.max_seq_length

    @property
    def fingerprint(self) -> str:
        return "crafted-vectors-v1"

    @property
    def dim(self) -> int:
        return 32


@pytest.fixture
def crafted(tiny_model) -> CraftedEmbedder:
    return CraftedEmbedder(tiny_model)


class CountingEmbedder(Embedder):
    """The real Embedder, counting the texts it is asked to encode; can fail after N calls (a crash)."""

    def __init__(self, model, fail_after: int | None = None, exc: type[BaseException] = KeyboardInterrupt):
        super().__init__(model)
        self.calls = 0
        self.texts = 0
        self.fail_after = fail_after
        self.exc = exc

    def encode_flagged(self, texts, **kwargs):  # what the dedupe pipeline calls
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise self.exc()
        self.calls += 1
        self.texts += len(texts)
        return super().encode_flagged(texts, **kwargs)


def _groups(df: pd.DataFrame, key: str) -> set[frozenset]:
    """The partition of ``key`` values by group_id (rows without a group left out)."""
    g = df[df["group_id"].notna()]
    return {frozenset(v) for v in g.groupby("group_id")[key].agg(list)}


def _crafted_frame() -> pd.DataFrame:
    return pd.DataFrame({"id": [c[0] for c in CRAFTED], "question": [c[1] for c in CRAFTED]})


def _expected_partition() -> set[frozenset]:
    groups: dict[str, set[str]] = {}
    for rid, _, g in CRAFTED:
        groups.setdefault(g or rid, set()).add(rid)
    return {frozenset(v) for v in groups.values()}


# ------------------------------------------------------------------------------------------------
# grouping on crafted vectors
# ------------------------------------------------------------------------------------------------
def _circle(degrees: list[float]) -> np.ndarray:
    rad = np.radians(degrees)
    return np.stack([np.cos(rad), np.sin(rad)], axis=1).astype(np.float32)


def test_chaining_guard_on_a_crafted_chain():
    # A-B-C-D-E, 30 degrees apart: neighbours have cosine 0.866, two apart 0.5. At 0.8 every link is a
    # duplicate pair but A and C are not duplicates.
    vecs = _circle([0, 30, 60, 90, 120])
    comp = group_vectors(vecs, 0.8, cluster="components")
    assert len(set(comp.tolist())) == 1  # transitive closure chains all five together
    lead = group_vectors(vecs, 0.8, cluster="leader")
    groups = {}
    for i, r in enumerate(lead.tolist()):
        groups.setdefault(r, set()).add(i)
    assert sorted(map(sorted, groups.values())) == [[0, 1, 2], [3, 4]]
    # the guarantee: every member is within the threshold of its representative
    sims = (vecs * vecs[lead]).sum(1)
    assert (sims >= 0.8 - 1e-6).all()
    assert lead[0] != lead[4]


def test_leader_groups_never_hold_a_member_below_threshold_random():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(40, 16))
    vecs = np.concatenate([c + rng.normal(scale=0.35, size=(15, 16)) for c in centres]).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    t = 0.85
    lead = group_vectors(vecs, t, cluster="leader", k=4)  # small k: large neighbourhoods need range search
    comp = group_vectors(vecs, t, cluster="components", k=4)
    sims = (vecs * vecs[lead]).sum(1)
    assert (sims >= t - 1e-5).all()
    # leader groups refine components: two items in one leader group are in one component
    assert all(comp[i] == comp[lead[i]] for i in range(len(vecs)))
    assert len(set(lead.tolist())) >= len(set(comp.tolist()))
    assert len(set(lead.tolist())) < len(vecs)  # and something was grouped


def test_similar_pairs_equals_brute_force_even_beyond_k():
    rng = np.random.default_rng(1)
    base = rng.normal(size=32)
    big = base + rng.normal(scale=0.05, size=(30, 32))  # a 30-member cluster, far more than k=3
    other = rng.normal(size=(50, 32))
    vecs = np.concatenate([big, other]).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    t = 0.9
    a, b, s = similar_pairs(vecs, t, k=3, chunk_size=16)
    sims = vecs @ vecs.T
    iu = np.triu_indices(len(vecs), 1)
    expected = {(int(i), int(j)) for i, j in zip(*iu, strict=True) if sims[i, j] >= t}
    assert len(expected) >= 30 * 29 // 2 - 10
    assert set(zip(a.tolist(), b.tolist(), strict=True)) == expected
    assert np.allclose(s, sims[a, b], atol=1e-5)
    assert (a < b).all()


def test_group_pairs_handles_no_pairs_and_weights():
    assert group_pairs(3, np.array([]), np.array([])).tolist() == [0, 1, 2]
    # a star around 1 plus a tie broken by weight: 3-4 linked, 4 has more rows
    rep = group_pairs(5, np.array([0, 1, 3]), np.array([1, 2, 4]), weights=np.array([1, 1, 1, 1, 5]))
    assert rep.tolist() == [1, 1, 1, 4, 4]


# ------------------------------------------------------------------------------------------------
# end to end with the tiny model
# ------------------------------------------------------------------------------------------------
def test_every_row_once_in_order_with_statuses(tiny_model, tmp_path):
    values = [
        "How do I learn python fast",
        None,
        float("nan"),
        "",
        "   ",
        "???",
        "\ufffd\ufffd broken bytes",
        b"\xff\xfe\x00 not utf-8",
        {"not": "text"},
        42,
        "how do i learn python fast!",
        "word " * 200,  # longer than the tiny model's 64 tokens
    ]
    df = pd.DataFrame({"q": values, "extra": range(len(values))}, index=[f"r{i}" for i in range(len(values))])
    res = deduplicate(
        df, text_column="q", model=tiny_model, threshold=THRESHOLD, show_progress=False, chunk_size=5
    )
    out = res.table
    assert list(out.index) == list(df.index)  # every row, once, in order
    assert list(out["extra"]) == list(range(len(values)))  # original columns untouched
    assert list(out.columns) == ["q", "extra", *RESULT_COLUMNS]
    assert list(out["status"]) == [
        "ok",
        "empty",
        "empty",
        "empty",
        "empty",
        "empty",
        "unreadable",
        "unreadable",
        "unreadable",
        "ok",
        "ok",
        "too_long_truncated",
    ]
    no_text = out["status"].isin(["empty", "unreadable"])
    assert out.loc[no_text, "group_id"].isna().all()
    assert out.loc[~no_text, "group_id"].notna().all()
    # the exact variant of row 0 points at it (rows are named by position without an id column)
    assert out.loc["r10", "duplicate_of"] == 0 and out.loc["r10", "score"] == 1.0
    assert bool(out.loc["r0", "is_representative"])
    s = res.summary
    assert s.rows == 12 and s.empty_rows == 5 and s.unreadable_rows == 3 and s.truncated_rows == 1
    assert s.ok_rows + s.truncated_rows + s.empty_rows + s.unreadable_rows == s.rows
    assert s.unique_texts == 3 and s.exact_duplicate_rows == 1 and s.rows_marked_duplicate == 1


def test_classifier_control_characters_and_keys():
    """The printable fast path gives what the per-character count gives; keys are ``text_key``."""
    from dupq.dedupe.scan import EMPTY, UNREADABLE, classify_key

    assert classify_key("a\tb\nc") == (0, "a\tb\nc", text_key("a\tb\nc"))  # tabs/newlines are text
    assert classify_key("caf\u00e9\u00a0menu")[0] == 0  # non-printable to Python (NBSP), not control
    assert classify_key("\x07\x08 hi")[0] == UNREADABLE  # 2 of 5 characters are control characters
    assert classify_key("one \x07 bell in a long enough question")[0] == 0  # under 10 %
    assert classify_key("\U000f0000\U000f0001 x")[0] == UNREADABLE  # private use
    assert classify_key("?!") == (EMPTY, "", "")
    assert classify_key(7) == (0, "7", text_key("7"))


def test_exact_duplicates_cost_no_model_call(tiny_model):
    texts = ["How do I learn python fast", "how do I learn Python fast?", "HOW DO I LEARN PYTHON FAST"] * 4
    texts += ["Best way to cook rice", "best way to cook rice."]
    emb = CountingEmbedder(tiny_model)
    res = deduplicate(
        pd.DataFrame({"q": texts}), text_column="q", model=emb, threshold=THRESHOLD, show_progress=False
    )
    assert emb.texts == 2  # one encode per exact-duplicate key
    out = res.table
    assert out["group_id"].tolist() == [0] * 12 + [1, 1]
    assert out["duplicate_of"].tolist()[1:12] == [0] * 11
    assert (out["score"].dropna() == 1.0).all()
    assert res.summary.exact_duplicate_rows == 12 and res.summary.similar_pairs == 0
    kinds = res.pairs["kind"].value_counts().to_dict()
    assert kinds == {"exact": 12}


def test_known_groups_on_a_crafted_csv(crafted, tmp_path):
    path = tmp_path / "questions.csv"
    _crafted_frame().to_csv(path, index=False)
    out = tmp_path / "deduped.csv"
    pairs = tmp_path / "pairs.csv"
    res = deduplicate(
        path,
        text_column="question",
        id_column="id",
        model=crafted,
        threshold=CRAFTED_THRESHOLD,
        out=out,
        pairs_out=pairs,
        show_progress=False,
        chunk_size=4,
    )
    assert res.table is None
    df = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert df["id"].tolist() == [c[0] for c in CRAFTED]
    assert _groups(df, "id") == _expected_partition()
    # group ids are numbered by each group's first row
    first_seen = list(dict.fromkeys(df["group_id"]))
    assert first_seen == [str(i) for i in range(len(first_seen))]
    # each group has exactly one representative, and members point at it
    for _, g in df.groupby("group_id"):
        reps = g[g["is_representative"] == "True"]
        assert len(reps) == 1
        others = g[g["is_representative"] != "True"]
        assert (others["duplicate_of"] == reps["id"].iloc[0]).all()
        assert (others["score"].astype(float) >= CRAFTED_THRESHOLD - 1e-3).all()
    p = pd.read_csv(pairs, dtype=str, keep_default_na=False)
    similar = {
        frozenset((a, b)) for a, b, k in zip(p["id_a"], p["id_b"], p["kind"], strict=True) if k == "similar"
    }
    assert similar == {frozenset(("a1", "a3")), frozenset(("b1", "b2")), frozenset(("c1", "c2"))}
    summary = json.loads((tmp_path / "deduped.summary.json").read_text())
    assert summary["rows"] == 12 and summary["groups"] == 7 and summary["duplicate_groups"] == 3
    assert set(summary["seconds"]) >= {"scan", "encode", "search", "group", "write"}
    assert not (tmp_path / ".deduped.csv.dupq-work").exists()  # default workdir removed after success


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl", ".tsv"])
def test_formats_round_trip(crafted, tmp_path, suffix):
    df = _crafted_frame()
    path = tmp_path / f"in{suffix}"
    if suffix == ".parquet":
        df.to_parquet(path, index=False)
    elif suffix == ".jsonl":
        df.to_json(path, orient="records", lines=True)
    else:
        df.to_csv(path, sep="\t", index=False)
    out = tmp_path / f"out{suffix}"
    deduplicate(
        path,
        text_column="question",
        id_column="id",
        model=crafted,
        threshold=CRAFTED_THRESHOLD,
        out=out,
        show_progress=False,
    )
    if suffix == ".parquet":
        got = pd.read_parquet(out)
    elif suffix == ".jsonl":
        got = pd.read_json(out, lines=True, dtype=False)
    else:
        got = pd.read_csv(out, sep="\t", dtype=str)
    assert got["id"].tolist() == df["id"].tolist()
    assert _groups(got, "id") == _expected_partition()


def test_semicolon_latin1_csv_is_detected(tiny_model, tmp_path):
    path = tmp_path / "export.csv"
    path.write_bytes("id;question\n1;Où est la gare?\n2;où est la gare\n3;Café crème\n".encode("latin-1"))
    res = deduplicate(
        path,
        text_column="question",
        id_column="id",
        model=tiny_model,
        threshold=THRESHOLD,
        show_progress=False,
    )
    t = res.table
    assert t["question"].tolist() == ["Où est la gare?", "où est la gare", "Café crème"]
    assert t["duplicate_of"].tolist()[1] == "1"


def test_against_marks_rows_duplicating_the_existing_base(crafted, tmp_path):
    base = pd.DataFrame({"id": ["F1", "F2"], "question": ["Best way to cook rice", "Why is the sky blue"]})
    new = pd.DataFrame(
        {
            "id": ["n1", "n2", "n3", "n4", "n5"],
            "question": [
                "best way to cook rice?",  # exact (normalised) match of F1
                "How do I learn python fast",
                "Best way to cook rice rice",  # near-exact match of F1
                "How do I learn python fast fast",  # duplicate inside the new file
                "How to lose weight fast",
            ],
        }
    )
    base_path = tmp_path / "faq.csv"
    base.to_csv(base_path, index=False)
    res = deduplicate(
        new,
        text_column="question",
        id_column="id",
        against=base_path,
        model=crafted,
        threshold=CRAFTED_THRESHOLD,
        show_progress=False,
    )
    t = res.table.set_index("id")
    assert t["duplicate_of_existing"].tolist() == [True, False, True, False, False]
    assert t.loc["n1", "duplicate_of"] == "F1" and t.loc["n1", "score"] == 1.0
    assert t.loc["n3", "duplicate_of"] == "F1" and t.loc["n3", "score"] >= CRAFTED_THRESHOLD
    assert t.loc["n1", "group_id"] == t.loc["n3", "group_id"]
    assert not t.loc["n1", "is_representative"] and not t.loc["n3", "is_representative"]
    assert t.loc["n4", "duplicate_of"] == "n2" and bool(t.loc["n2", "is_representative"])
    assert res.summary.rows_duplicate_of_existing == 2 and res.summary.existing_rows == 2
    assert set(res.pairs.loc[res.pairs["kind"] == "existing", "id_b"]) == {"F1"}


def test_resume_after_interruption_encodes_only_the_rest(tiny_model, tmp_path):
    texts = list(dict.fromkeys(sample_questions(60, seed=3)))[:40]
    assert len({text_key(t) for t in texts}) == 40
    texts += texts[:5]  # some exact duplicates
    path = tmp_path / "q.csv"
    pd.DataFrame({"q": texts}).to_csv(path, index=False)
    out = tmp_path / "out.csv"
    workdir = tmp_path / "work"
    kwargs = dict(
        text_column="q", threshold=THRESHOLD, out=out, workdir=workdir, chunk_size=8, show_progress=False
    )
    crashing = CountingEmbedder(tiny_model, fail_after=3)  # Ctrl-C after 3 shards of 8 texts
    with pytest.raises(KeyboardInterrupt):
        deduplicate(path, model=crashing, **kwargs)
    assert crashing.texts == 24
    assert not out.exists()  # nothing half-written
    rerun = CountingEmbedder(tiny_model)
    res = deduplicate(path, model=rerun, **kwargs)
    assert rerun.texts == 40 - 24  # only the texts not encoded before the interruption
    assert res.summary.texts_encoded == 16 and res.summary.embeddings_reused == 24
    resumed = pd.read_csv(out)
    # the same result as one uninterrupted run
    fresh = deduplicate(path, model=CountingEmbedder(tiny_model), **{**kwargs, "workdir": tmp_path / "w2"})
    assert fresh.summary.texts_encoded == 40
    pd.testing.assert_frame_equal(resumed, pd.read_csv(out))
    # a third run at another threshold re-groups without encoding anything
    again = CountingEmbedder(tiny_model)
    res3 = deduplicate(path, model=again, **{**kwargs, "threshold": 0.9})
    assert again.texts == 0 and res3.summary.embeddings_reused == 40
    assert res3.summary.groups < res.summary.groups


def test_progress_inside_a_shard_is_saved_by_time(tiny_model, tmp_path, monkeypatch):
    """Issue 10 item 8: a kill mid-shard keeps what was encoded before the last timed save."""
    from dupq.dedupe import store as store_mod

    monkeypatch.setattr(store_mod, "PIECE", 8)  # 8 texts per encode call inside the shard
    monkeypatch.setattr(store_mod, "SAVE_EVERY_SECONDS", 0.0)  # save after every piece
    texts = list(dict.fromkeys(sample_questions(60, seed=4)))[:40]
    path = tmp_path / "q.csv"
    pd.DataFrame({"q": texts}).to_csv(path, index=False)
    kwargs = dict(text_column="q", threshold=THRESHOLD, workdir=tmp_path / "w", show_progress=False)
    crashing = CountingEmbedder(tiny_model, fail_after=3)  # one shard of 40 (chunk 16,384): dies after 24
    with pytest.raises(KeyboardInterrupt):
        deduplicate(path, model=crashing, out=tmp_path / "o.csv", **kwargs)
    rerun = CountingEmbedder(tiny_model)
    res = deduplicate(path, model=rerun, out=tmp_path / "o.csv", **kwargs)
    assert rerun.texts == 16 and res.summary.embeddings_reused == 24  # the whole shard is not redone
    fresh = deduplicate(path, model=CountingEmbedder(tiny_model), **{**kwargs, "workdir": tmp_path / "w2"})
    assert fresh.table["group_id"].tolist() == pd.read_csv(tmp_path / "o.csv")["group_id"].tolist()


def _perturbed(model_dir):
    """The tiny model with one weight nudged: a "fine-tuned" model with the same tokenizer and shapes."""
    import torch

    from dupq.encoder import load_encoder

    model = load_encoder(model_dir, device="cpu")
    with torch.no_grad():
        next(model.parameters()).add_(1e-3)
    return model


@pytest.mark.parametrize("change", ["nothing", "model", "text", "backend", "dtype"])
def test_work_directory_is_reused_only_for_the_same_texts_model_and_backend(
    change, tiny_model, tiny_model_dir, tmp_path
):
    """The embeddings in a work directory are reused by an identical rerun, and by nothing else: a
    changed model (same shapes, other weights), input text, backend or storage dtype encodes afresh."""
    texts = ["a question", "another one", "a third question"]
    kw = dict(text_column="q", threshold=0.9, workdir=tmp_path / "w", show_progress=False)
    first = deduplicate(pd.DataFrame({"q": texts}), model=tiny_model, **kw)
    assert first.summary.texts_encoded == 3 and first.summary.embeddings_reused == 0
    model, frame, extra = tiny_model, pd.DataFrame({"q": texts}), {}
    if change == "model":
        model = _perturbed(tiny_model_dir)
    elif change == "text":
        frame = pd.DataFrame({"q": [*texts[:2], "a third question, edited"]})
    elif change == "backend":
        import shutil

        import_extra("onnxruntime", "onnx")
        model, extra = (
            shutil.copytree(tiny_model_dir, tmp_path / "model"),
            {"backend": "onnx"},
        )  # export beside it
    elif change == "dtype":
        extra = {"dtype": "float32"}
    again = deduplicate(frame, model=model, **kw, **extra)
    stores = list((tmp_path / "w").glob("emb-*"))
    if change == "nothing":
        assert again.summary.texts_encoded == 0 and again.summary.embeddings_reused == 3
        assert len(stores) == 1
    else:
        assert again.summary.embeddings_reused == 0, f"a changed {change} reused stale embeddings"
        assert again.summary.texts_encoded == 3 and len(stores) == 2


def test_onnx_backend_gives_the_torch_groups_in_its_own_store(tiny_model_dir, tmp_path):
    """``backend="onnx"`` runs the same pipeline on the exported model: same groups as torch at the
    crafted threshold, and its embeddings live in a store of their own (never mixed with torch's)."""
    import shutil

    import_extra("onnxruntime", "onnx")  # CI installs it: a failure there, a skip elsewhere
    model_dir = tmp_path / "model"  # a private copy: the export is cached next to the model
    shutil.copytree(tiny_model_dir, model_dir)
    path = tmp_path / "questions.csv"
    _crafted_frame().to_csv(path, index=False)
    runs = {}
    for backend in ("torch", "onnx"):
        res = deduplicate(
            path,
            text_column="question",
            id_column="id",
            model=model_dir,
            threshold=THRESHOLD,
            backend=backend,
            out=tmp_path / f"deduped-{backend}.csv",
            workdir=tmp_path / "w",
            show_progress=False,
        )
        assert res.summary.rows == len(CRAFTED)
        runs[backend] = pd.read_csv(tmp_path / f"deduped-{backend}.csv", dtype=str, keep_default_na=False)
    # the same groups from both runtimes (which groups, on the random tiny model, is not the point here;
    # the exact variants are grouped whatever its weights)
    groups = _groups(runs["onnx"], "id")
    assert groups == _groups(runs["torch"], "id")
    assert any({"a1", "a2"} <= g for g in groups) and any({"b1", "b3"} <= g for g in groups)
    scores = [runs[b]["score"].replace("", "nan").astype(float).to_numpy() for b in ("torch", "onnx")]
    np.testing.assert_allclose(scores[0], scores[1], atol=2e-3, equal_nan=True)
    assert len(list((tmp_path / "w").glob("emb-*"))) == 2  # one store per backend
    assert list((model_dir / "onnx").glob("*.onnx"))  # the export, cached beside the model


def test_output_is_atomic_on_failure(tiny_model, tmp_path):
    out = tmp_path / "out.csv"
    out.write_text("previous good output\n")
    df = pd.DataFrame({"q": ["x y z", "a b c"], "group_id": [1, 2]})  # clashes with a result column
    with pytest.raises(InputError, match="group_id"):
        deduplicate(df, text_column="q", model=tiny_model, threshold=0.9, out=out, show_progress=False)
    assert out.read_text() == "previous good output\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.csv.") and p.suffix == ".tmp"] == []


def test_bad_input_errors_name_file_row_and_column(tiny_model, tmp_path):
    p = tmp_path / "q.csv"
    p.write_text("id,question\n1,hello there\n")
    with pytest.raises(InputError) as e:
        deduplicate(p, text_column="text", model=tiny_model, show_progress=False)
    assert e.value.column == "text" and "question" in str(e.value) and str(p) in str(e.value)

    bad = tmp_path / "bad.csv"
    bad.write_text("id,question\n1,fine\n2,also fine\n3,too,many,fields\n")
    with pytest.raises(InputError) as e:
        deduplicate(bad, text_column="question", model=tiny_model, show_progress=False)
    assert e.value.row == 3 and str(bad) in str(e.value)

    dup = tmp_path / "dup.csv"
    dup.write_text("id,question\n1,a\n2,b\n1,c\n")
    with pytest.raises(InputError) as e:
        deduplicate(dup, text_column="question", id_column="id", model=tiny_model, show_progress=False)
    assert e.value.row == 3 and e.value.column == "id"

    binary = tmp_path / "image.csv"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    with pytest.raises(InputError, match="binary"):
        deduplicate(binary, text_column="question", model=tiny_model, show_progress=False)

    js = tmp_path / "q.jsonl"
    js.write_text('{"question": "ok"}\n{"question": broken}\n')
    with pytest.raises(InputError) as e:
        deduplicate(js, text_column="question", model=tiny_model, show_progress=False)
    assert e.value.row == 2

    with pytest.raises(InputError, match="threshold"):
        deduplicate(pd.DataFrame({"q": ["a"]}), text_column="q", model=tiny_model, threshold=1.5)
    with pytest.raises(InputError, match="suffix"):
        deduplicate(pd.DataFrame({"q": ["a"]}), text_column="q", model=tiny_model, out=tmp_path / "out.xlsx")


def test_threshold_auto_reads_the_model_metadata(tiny_model_dir, tmp_path):
    import shutil

    model_dir = tmp_path / "tuned"
    shutil.copytree(tiny_model_dir, model_dir)
    (model_dir / "dupq.json").write_text(json.dumps({"threshold": 0.9876}))
    res = deduplicate(
        pd.DataFrame({"q": ["a b", "c d"]}), text_column="q", model=str(model_dir), show_progress=False
    )
    assert res.summary.threshold == pytest.approx(0.9876)
    assert "dupq.json" in res.summary.threshold_source


def test_cli_dedupe(crafted, tiny_model_dir, tmp_path, monkeypatch):
    path = tmp_path / "questions.csv"
    _crafted_frame().to_csv(path, index=False)
    out = tmp_path / "deduped.csv"
    pairs = tmp_path / "pairs.csv"
    monkeypatch.setattr("dupq.embed.as_embedder", lambda *a, **k: crafted)  # the CLI, on known vectors
    runner = CliRunner()
    args = [
        "dedupe",
        str(path),
        "--text-column",
        "question",
        "--id-column",
        "id",
        "--model",
        str(tiny_model_dir),
    ]
    args += ["--threshold", str(CRAFTED_THRESHOLD), "--out", str(out), "--pairs", str(pairs), "--quiet"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "groups" in r.output and "unique texts" in r.output
    df = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert _groups(df, "id") == _expected_partition()
    assert pairs.exists() and (tmp_path / "deduped.summary.json").exists()
    r = runner.invoke(app, ["dedupe", str(path), "--text-column", "nope", "--out", str(out), "--quiet"])
    assert r.exit_code == 2 and "nope" in r.output
    r = runner.invoke(app, [*args[:8], "--threshold", "high", "--out", str(out)])
    assert r.exit_code == 2 and "threshold" in r.output


@pytest.mark.slow
def test_real_paraphrases_with_the_default_model(default_model):
    questions = [
        "How can I learn Python quickly?",
        "What is the fastest way to learn Python?",
        "How do I lose weight fast?",
        "What is the quickest way to lose weight?",
        "What is the capital of France?",
        "How do I learn Python quickly??",
        "Which city is the capital of Australia?",
    ]
    res = deduplicate(
        pd.DataFrame({"q": questions}), text_column="q", model=default_model, show_progress=False
    )
    assert res.summary.threshold == DEFAULT_THRESHOLD
    t = res.table
    g = t["group_id"].tolist()
    assert g[0] == g[1] == g[5]
    assert g[2] == g[3]
    assert len({g[0], g[2], g[4], g[6]}) == 4
    assert not math.isnan(t["score"][1]) and t["score"][1] >= DEFAULT_THRESHOLD


def test_pairs_frame_is_built_only_when_asked_for(tiny_model, tmp_path):
    """The pairs table (both texts of every pair) can outweigh the rest of a big run: a run without
    ``pairs_out`` must not build it; the first ``result.pairs`` access does."""
    df = _crafted_frame()
    res = deduplicate(df, text_column="question", model=tiny_model, threshold=THRESHOLD, show_progress=False)
    assert callable(res.pairs_factory)
    pairs = res.pairs
    assert isinstance(res.pairs_factory, pd.DataFrame) and res.pairs is pairs
    assert set(pairs["kind"]) == {"similar", "exact"}
    with_file = deduplicate(
        df,
        text_column="question",
        model=tiny_model,
        threshold=THRESHOLD,
        pairs_out=tmp_path / "pairs.csv",
        show_progress=False,
    )
    assert isinstance(with_file.pairs_factory, pd.DataFrame)
    assert len(pd.read_csv(tmp_path / "pairs.csv")) == len(with_file.pairs) == len(pairs)


def test_float16_store_gets_a_float16_hnsw_graph():
    from dupq.dedupe.search import build_index

    rng = np.random.default_rng(0)
    v = rng.standard_normal((500, 16)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    assert (
        build_index(v.astype(np.float16), index="hnsw", chunk_size=100, show_progress=False).params["storage"]
        == "float16"
    )
    assert build_index(v, index="hnsw", chunk_size=100, show_progress=False).params["storage"] == "float32"


def test_ef_search_reaches_the_hnsw_index(tiny_model, monkeypatch):
    import dupq.dedupe.search as dd
    from dupq.dedupe.config import HNSW_EF_SEARCH

    v = np.random.default_rng(1).standard_normal((300, 16)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    assert dd.build_index(v, index="hnsw", chunk_size=100, show_progress=False).params["ef_search"] == (
        HNSW_EF_SEARCH
    )
    seen = []
    real = dd.build_index

    def spy(*args, **kwargs):
        index = real(*args, **kwargs)
        seen.append(index.params["ef_search"])
        return index

    monkeypatch.setattr(dd, "build_index", spy)
    df = _crafted_frame()
    kw = {"text_column": "question", "model": tiny_model, "threshold": THRESHOLD, "show_progress": False}
    deduplicate(df, index="hnsw", ef_search=24, **kw)
    assert seen == [24]
    with pytest.raises(ValueError, match="ef_search"):
        deduplicate(df, ef_search=0, **kw)
