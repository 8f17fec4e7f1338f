"""Matcher: round trips, exact-hash matches, calibration, bad input, refusal of foreign/corrupt stores,
kill-during-save, concurrent readers and writers, table ingestion, and one real-model quality check."""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from dupq.embed import Embedder
from dupq.errors import InputError, StoreError
from dupq.matcher import DEFAULT_THRESHOLD, Matcher, TruncationWarning, UnknownIdError
from tests.tiny_model import build_tiny_model, sample_questions

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def embedder(tiny_model) -> Embedder:
    return Embedder(tiny_model)


@pytest.fixture(scope="module")
def questions() -> list[str]:
    # unique after normalisation, so exact-hash hits are unambiguous
    seen, out = set(), []
    for q in sample_questions(600, seed=3):
        k = q.lower().rstrip("?")
        if k not in seen:
            seen.add(k)
            out.append(q)
    return out[:300]


@pytest.fixture()
def matcher(embedder, questions) -> Matcher:
    m = Matcher(embedder)
    m.add(questions[:200], metadata=[{"n": i} for i in range(200)])
    return m


def test_add_match_remove_save_load_round_trip(matcher, questions, tmp_path, embedder):
    assert len(matcher) == 200 and matcher.ids == list(range(200))
    res = matcher.match(questions[7], k=3, exact_first=False)
    assert res[0].id == 7 and res[0].exact and res[0].score == 1.0 and res[0].metadata == {"n": 7}
    assert [m.score for m in res] == sorted((m.score for m in res), reverse=True)
    assert res[0].probability is None  # the tiny model carries no calibration
    assert all(m.is_duplicate == (m.score >= DEFAULT_THRESHOLD) for m in res[1:])
    # a new question's scores are the cosine with each stored vector
    q = "How do I cook rice in japan?"
    qv = embedder.encode([q])[0]
    stored = embedder.encode(questions[:200])
    top = matcher.match(q, k=5)
    np.testing.assert_array_equal([m.id for m in top], np.argsort(-(stored @ qv))[:5])
    np.testing.assert_allclose([m.score for m in top], np.sort(stored @ qv)[::-1][:5], atol=1e-5)

    assert matcher.remove([7, 8]) == 2 and len(matcher) == 198 and 7 not in matcher
    assert all(m.id not in (7, 8) for m in matcher.match(questions[7], k=10))
    new_ids = matcher.add(questions[200:203])
    assert new_ids == [200, 201, 202]

    store = tmp_path / "store"
    matcher.save(store)
    assert sorted(p.name for p in store.iterdir()) == ["index.dupqidx", "manifest.json", "questions.parquet"]
    manifest = json.loads((store / "manifest.json").read_text())
    assert manifest["count"] == 201 and manifest["dim"] == embedder.dim
    assert manifest["model_fingerprint"] == embedder.fingerprint
    back = Matcher.load(store, embedder)
    assert len(back) == 201 and back.ids == matcher.ids
    assert back.get(9) == {"id": 9, "text": questions[9], "truncated": False, "metadata": {"n": 9}}
    a = matcher.match(questions[20:30], k=4, exact_first=False)
    b = back.match(questions[20:30], k=4, exact_first=False)
    assert [[m.id for m in r] for r in a] == [[m.id for m in r] for r in b]
    assert back.add(["A brand new question about visas?"]) == [203]  # ids continue after load
    # encoder=None: the model directory recorded in the manifest is used
    assert len(Matcher.load(store)) == 201


def test_exact_duplicates_found_by_hash_without_the_model(matcher, questions, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("the model must not run for an exact duplicate")

    monkeypatch.setattr(matcher.embedder, "encode_flagged", boom)
    variant = "  " + questions[11].upper().replace("?", " !!") + "  "
    res = matcher.match(variant, k=5)
    assert [m.id for m in res] == [11] and res[0].exact and res[0].score == 1.0
    monkeypatch.undo()
    res = matcher.match(variant, k=5, exact_first=False)  # also encoded: filled to k
    assert res[0].id == 11 and len(res) == 5 and not any(m.exact for m in res[1:])
    # two stored questions with the same normalised text are both exact hits
    matcher.add([questions[11].lower()], ids=[5000])
    assert [m.id for m in matcher.match(questions[11], k=5)] == [11, 5000]


def test_batch_queries_are_encoded_together(matcher, questions, monkeypatch):
    calls = []
    real = matcher.embedder.encode_flagged
    monkeypatch.setattr(
        matcher.embedder, "encode_flagged", lambda texts, **kw: calls.append(len(texts)) or real(texts)
    )
    res = matcher.match(["brand new one?", questions[3], "another new question here?"], k=2)
    assert calls == [2]  # one model call for the two non-exact queries
    assert [r.query for r in res] == ["brand new one?", questions[3], "another new question here?"]
    assert res[1][0].id == 3


def test_from_model_uses_calibration_and_threshold(tiny_model_dir, tmp_path, questions):
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    with pytest.warns(UserWarning, match="no dupq.json"):
        plain = Matcher.from_model(model_dir)
    assert plain.threshold == DEFAULT_THRESHOLD and plain.probability(0.9) is None
    (model_dir / "dupq.json").write_text(
        json.dumps({"threshold": 0.93, "calibration": {"coef": 12.0, "intercept": -10.0}})
    )
    m = Matcher.from_model(model_dir)
    assert m.threshold == 0.93
    m.add(questions[:50])
    res = m.match("How do I learn python fast?", k=5)
    for match in res:
        assert match.probability == pytest.approx(1 / (1 + math.exp(-(12.0 * match.score - 10.0))))
        assert match.is_duplicate == (match.score >= 0.93)
    override = m.match("How do I learn python fast?", k=5, threshold=-1.0)
    assert all(x.is_duplicate for x in override)
    assert all(x.score >= 0.93 for x in m.match("How do I learn python fast?", k=5, only_duplicates=True))
    m.save(tmp_path / "store")
    back = Matcher.load(tmp_path / "store")
    assert back.threshold == 0.93 and back.calibration == {"coef": 12.0, "intercept": -10.0}


@pytest.mark.parametrize(
    "texts, ids, metadata, match",
    [
        (["ok question?", ""], None, None, "row 2, column 'text': question is empty"),
        (["ok question?", "   \n"], None, None, "question is empty"),
        (["ok question?", 42], None, None, "row 2, column 'text': question is int"),
        (["?!?"], None, None, "no letters or digits"),
        (["a?", "b?"], [1, 1], None, "row 2, column 'id': id 1 repeats row 1"),
        (["a?", "b?"], [1], None, "2 questions but 1 ids"),
        (["a?"], [-3], None, "not a non-negative integer|out of range"),
        (["a?"], [True], None, "boolean"),
        (["a?"], ["x1"], None, "not a non-negative integer"),
        (["a?"], [0], None, "already stored"),
        (["a?"], None, ["not a dict"], "metadata is str"),
        (["a?"], None, [{"x": object()}], "not JSON-serialisable"),
    ],
)
def test_bad_input_rejects_the_whole_batch(matcher, texts, ids, metadata, match):
    with pytest.raises(InputError, match=match):
        matcher.add(texts, ids, metadata)
    assert len(matcher) == 200  # nothing half-added


def test_bad_queries(matcher):
    for bad, msg in [("", "empty"), (None, "NoneType"), (["fine?", 3], "row 2")]:
        with pytest.raises(InputError, match=msg):
            matcher.match(bad)
    with pytest.raises(InputError, match="k must be"):
        matcher.match("fine?", k=0)
    with pytest.raises(InputError, match="threshold"):
        matcher.match("fine?", threshold=3)
    assert matcher.match([], k=3) == []


def test_remove_unknown_ids(matcher):
    with pytest.raises(UnknownIdError, match="1 unknown id") as err:
        matcher.remove([1, 2, 99999])
    assert err.value.ids == [99999] and len(matcher) == 200  # nothing removed
    assert matcher.remove([1, 99999], missing_ok=True) == 1 and len(matcher) == 199
    assert matcher.remove(2) == 1


def test_over_long_texts_are_truncated_and_reported(matcher, tmp_path, embedder):
    long_text = "how do i learn python " * 40  # far beyond the tiny model's 64 tokens
    with pytest.warns(TruncationWarning, match="1 of 2 text"):
        ids = matcher.add([long_text, "short question?"])
    assert matcher.get(ids[0])["truncated"] and not matcher.get(ids[1])["truncated"]
    with pytest.warns(TruncationWarning):
        res = matcher.match([long_text + " more", "short?"], k=1)
    assert res[0].truncated and not res[1].truncated
    matcher.save(tmp_path / "s")
    assert Matcher.load(tmp_path / "s", embedder).stats()["truncated"] == 1


def test_refuses_store_of_another_model(matcher, tmp_path):
    matcher.save(tmp_path / "store")
    other = Embedder(build_tiny_model(tmp_path / "other", seed=1))
    with pytest.raises(StoreError, match="built with another model"):
        Matcher.load(tmp_path / "store", other)


def test_refuses_corrupt_or_short_files(matcher, tmp_path, embedder):
    good = tmp_path / "good"
    matcher.save(good)

    def damaged(name: str, fn) -> Path:
        d = tmp_path / f"bad-{name}-{fn.__name__}"
        shutil.copytree(good, d)
        p = d / name
        fn(p)
        return d

    def truncate(p: Path) -> None:
        p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])

    def flip(p: Path) -> None:
        b = bytearray(p.read_bytes())
        b[len(b) // 2] ^= 0x01
        p.write_bytes(bytes(b))

    def delete(p: Path) -> None:
        p.unlink()

    cases = [
        ("questions.parquet", truncate, "truncated or replaced"),
        ("questions.parquet", flip, "checksum"),
        ("index.dupqidx", truncate, "truncated or replaced"),
        ("index.dupqidx", flip, "checksum"),
        ("index.dupqidx", delete, "missing index.dupqidx"),
        ("manifest.json", truncate, "unreadable manifest"),
        ("manifest.json", delete, "no manifest.json"),
    ]
    for name, fn, msg in cases:
        with pytest.raises(StoreError, match=msg):
            Matcher.load(damaged(name, fn), embedder)
    with pytest.raises(StoreError, match="no such store"):
        Matcher.load(tmp_path / "nowhere", embedder)


_SAVER = textwrap.dedent(
    """
    import sys, time
    from dupq.matcher import Matcher
    store, start, step = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    m = Matcher.load(store)
    i = start
    while True:
        m.add([f"generated question number {j} about python?" for j in range(i, i + step)],
              ids=list(range(i, i + step)))
        i += step
        print("saving", len(m), flush=True)
        m.save(store)
        print("saved", len(m), flush=True)
    """
)


def _spawn(tmp_path: Path, store: Path, start: int, step: int, env_extra: dict) -> subprocess.Popen:
    script = tmp_path / "saver.py"
    script.write_text(_SAVER)
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", **env_extra}
    return subprocess.Popen(
        [sys.executable, str(script), str(store), str(start), str(step)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_kill_during_save_keeps_previous_store(embedder, tiny_model_dir, tmp_path):
    store = tmp_path / "store"
    m = Matcher(embedder)
    m.add([f"stored question {i} about cooking rice?" for i in range(1500)])
    m.save(store)

    # 1. Deterministic: the save is slowed (DUPQ_SLOW_SAVE) and killed while its temp dir is half-written.
    proc = _spawn(tmp_path, store, 10_000, 500, {"DUPQ_SLOW_SAVE": "5"})
    try:
        assert proc.stdout.readline().startswith("saving 2000"), proc.stderr.read()
        deadline = time.monotonic() + 60
        while not list(tmp_path.glob(".store.*.tmp/index.dupqidx")):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    back = Matcher.load(store, embedder)
    assert len(back) == 1500 and back.get(1499)["text"] == "stored question 1499 about cooking rice?"

    # 2. Random: saves in a loop, SIGKILLed at random instants (also between the two renames).
    rng = random.Random(0)
    last_saved = 1500
    for _round in range(2):
        proc = _spawn(tmp_path, store, 20_000 + 1000 * _round, 7, {})
        lines = []
        try:
            while len(lines) < 4:  # let a couple of saves complete
                line = proc.stdout.readline()
                assert line, proc.stderr.read()
                lines.append(line.split())
            time.sleep(rng.uniform(0.0, 0.3))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        rest = proc.stdout.read().split("\n")
        lines += [ln.split() for ln in rest if ln]
        saved = [int(n) for word, n in lines if word == "saved"]
        saving = [int(n) for word, n in lines if word == "saving"]
        back = Matcher.load(store, embedder)  # never a broken store
        # either the last completed save or the one in flight when the process died
        assert len(back) in {saved[-1], saving[-1]}, (len(back), lines[-3:])
        assert len(back) > last_saved
        last_saved = len(back)


def test_concurrent_match_add_remove(embedder, questions):
    m = Matcher(embedder)
    base = questions[:100]
    m.add(base)
    expected_text = dict(enumerate(base))
    errors: list[BaseException] = []
    stop = threading.Event()
    written: list[int] = []

    def reader(seed: int) -> None:
        rng = random.Random(seed)
        try:
            while not stop.is_set():
                picks = rng.sample(range(100), 4)
                res = m.match([base[i] for i in picks], k=3, exact_first=False)
                for i, r in zip(picks, res, strict=True):
                    assert r[0].id == i and r[0].score == 1.0  # stored questions never disappear
                    for match in r:  # every id seen has its own text, never a half-added row
                        assert expected_text.get(match.id, match.text) == match.text
        except BaseException as exc:  # noqa: BLE001 - collected and re-raised in the main thread
            errors.append(exc)

    def writer(w: int) -> None:
        try:
            for j in range(15):
                ids = [10_000 * (w + 1) + j * 3 + t for t in range(3)]
                texts = [f"writer {w} question {j} {t} about learning java?" for t in range(3)]
                for i, t in zip(ids, texts, strict=True):
                    expected_text[i] = t
                m.add(texts, ids=ids)
                m.remove(ids[:1])
                written.extend(ids[1:])
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    readers = [threading.Thread(target=reader, args=(s,)) for s in range(3)]
    writers = [threading.Thread(target=writer, args=(w,)) for w in range(2)]
    for t in readers + writers:
        t.start()
    for t in writers:
        t.join(timeout=120)
    stop.set()
    for t in readers:
        t.join(timeout=60)
    assert not errors, errors[0]
    assert len(m) == 100 + len(written) == 100 + 2 * 15 * 2
    assert set(m.ids) == set(range(100)) | set(written)
    for i in written[:10]:
        assert m.match(expected_text[i], k=1)[0].id == i


def test_add_table_errors_name_file_row_column(embedder, tmp_path):
    m = Matcher(embedder)
    good = tmp_path / "q.csv"
    good.write_text("id,question,topic\n10,How do I learn python?,code\n11,Best way to cook rice?,food\n")
    assert m.add_table(good, text_column="question", id_column="id", metadata_columns=["topic"]) == [10, 11]
    assert m.get(11)["metadata"] == {"topic": "food"}
    with pytest.raises(InputError, match="column 'text_col'") as err:
        m.add_table(good, text_column="text_col")
    assert err.value.file == str(good)
    # a row without text is skipped and reported (issue 24: as dedupe's "empty"), never an error
    blank = tmp_path / "blank.csv"
    blank.write_text("id,question\n1,How?\n2,\n3,  \n4,?!\n")
    other = Matcher(embedder)
    assert other.add_table(blank, text_column="question", id_column="id") == [1]
    assert other.skipped_rows == [2, 3, 4] and len(other) == 1
    rep = tmp_path / "rep.tsv"  # rows named as in the file, after a skipped one
    rep.write_text("id\tquestion\n1\ta?\n2\t\n1\tb?\n")
    with pytest.raises(InputError, match=r"row 3, column 'id': id 1 repeats row 1"):
        m.add_table(rep, text_column="question", id_column="id")
    clash = tmp_path / "clash.csv"
    clash.write_text("id,question\n50,new one?\n10,already there?\n")
    with pytest.raises(InputError, match=r"clash.csv, row 2, column 'id': 1 id\(s\) already stored"):
        m.add_table(clash, text_column="question", id_column="id")
    assert len(m) == 2


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_index_kinds_round_trip(embedder, questions, kind, tmp_path):
    m = Matcher(embedder, index_kind=kind, index_params={"nlist": 4} if kind == "ivf" else None)
    m.add(questions[:300])
    assert m.index.kind == kind
    m.remove([0, 1])
    m.save(tmp_path / "s")
    back = Matcher.load(tmp_path / "s", embedder)
    assert back.index.kind == kind and len(back) == 298
    assert back.match(questions[5], k=1, exact_first=False)[0].id == 5


@pytest.mark.slow
def test_default_model_ranks_paraphrase_above_unrelated(default_model):
    m = Matcher(default_model)
    m.add(
        [
            "What is the best way to learn Python programming?",
            "How can I lose weight quickly?",
            "What is the capital of Australia?",
            "How do I fix a flat bicycle tyre?",
        ]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", TruncationWarning)
        res = m.match("How should a beginner start learning to code in Python?", k=4)
    assert res[0].id == 0 and not res[0].exact
    assert res[0].score > res[1].score + 0.2
    # the decision is the shipped verifier's at its best-F1 point; this paraphrase sits near that point
    # (P 0.47 against 0.49 with the head refit on both token passes), so only the rule is asserted here
    assert res[0].decided_by == "verifier" and res[0].is_duplicate == (res[0].score >= m.verifier.threshold)
    assert not res[1].is_duplicate
    weight = m.match("What are fast ways to shed pounds?", k=4)
    assert weight[0].id == 1
