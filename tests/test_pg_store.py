"""The Matcher on PostgreSQL + pgvector (issue 27), against a real server: ``pgserver`` starts one in a
temporary directory (its wheel ships PostgreSQL with pgvector; no system install), each test gets its
own database, and the module fixture stops the server. Without the ``postgres`` extra these tests skip
with the reason (fail in CI, which sets ``DUPQ_REQUIRE_EXTRAS``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest
from typer.testing import CliRunner

from tests.optional import import_extra

pgserver = import_extra("pgserver", "postgres", module_level=True)
psycopg = import_extra("psycopg", "postgres", module_level=True)
import_extra("pgvector", "postgres", module_level=True)

from dupq.cli import app as cli_app  # noqa: E402
from dupq.embed import Embedder  # noqa: E402
from dupq.errors import ConflictError, InputError, StoreError, UnknownIdError  # noqa: E402
from dupq.matcher import Matcher  # noqa: E402
from dupq.stores.dsn import redact, resolve  # noqa: E402
from tests.tiny_model import build_tiny_model, sample_questions  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pg(tmp_path_factory):
    """A real PostgreSQL server (pgserver, unix socket only), stopped and deleted after the module."""
    server = pgserver.get_server(tmp_path_factory.mktemp("pg") / "data", cleanup_mode="delete")
    try:
        yield server
    finally:
        server.cleanup()


def _new_database(pg) -> str:
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg.get_uri(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return pg.get_uri(database=name)


@pytest.fixture()
def url(pg) -> str:
    """A connection string to a fresh, empty database on the test server."""
    return _new_database(pg)


@pytest.fixture(scope="module")
def embedder(tiny_model) -> Embedder:
    return Embedder(tiny_model)


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", **extra}


def test_add_match_delete_like_the_file_store(url, embedder):
    qs = sample_questions(120, seed=3)
    db = Matcher(embedder, store=url)
    mem = Matcher(embedder, index_kind="flat")
    meta = [{"n": i} for i in range(len(qs))]
    assert db.add(qs, metadata=meta) == mem.add(qs, metadata=meta) == list(range(120))
    assert len(db) == 120 and 7 in db and 1000 not in db
    assert db.get(7) == mem.get(7)
    # an exact re-post is found by its key (no model call), with score 1.0
    r = db.match(qs[5].upper(), k=3)
    assert r[0].id == 5 and r[0].exact and r[0].score == 1.0
    # semantic matches: the same ranking as exact search over the same vectors (a small HNSW is exact)
    queries = ["how do i learn python code fast?", "cheap laptop for travel to japan?", "best way to invest?"]
    for a, b in zip(db.match(queries, k=5), mem.match(queries, k=5), strict=True):
        assert [m.id for m in a] == [m.id for m in b]
        np.testing.assert_allclose([m.score for m in a], [m.score for m in b], atol=1e-5)
    # deletes are all-or-nothing; a removed id is gone from every read path
    with pytest.raises(UnknownIdError):
        db.remove([3, 999])
    assert 3 in db
    assert db.remove([3, 4]) == 2 and db.remove([4, 999], missing_ok=True) == 0
    assert 3 not in db and len(db) == 118
    with pytest.raises(UnknownIdError):
        db.get(3)
    assert all(m.id != 3 for m in db.match(qs[3], k=10))
    # explicit ids: a stored one is a conflict and the batch adds nothing; ids=None never reuses
    with pytest.raises(ConflictError):
        db.add(["a brand new question?", "another one?"], ids=[500, 7])
    assert 500 not in db
    assert db.add(["explicit id question?"], ids=[500]) == [500]
    assert db.add(["next auto id question?"]) == [501]
    with pytest.raises(InputError):
        db.add(["ok question?", "   "])
    assert len(db) == 120
    # the store is in the database, not in this process: a new Matcher sees all of it
    again = Matcher.load(url, embedder)
    assert again.ids == db.ids and again.threshold == db.threshold
    assert again.stats()["store"] == "postgresql" and again.index.kind == "pgvector-hnsw"


def test_a_matcher_with_another_model_is_refused(url, embedder, tmp_path):
    Matcher(embedder, store=url).add(sample_questions(5))
    other = Embedder(build_tiny_model(tmp_path / "other", seed=1))
    assert other.fingerprint != embedder.fingerprint
    with pytest.raises(StoreError, match="built with another model"):
        Matcher(other, store=url)
    with pytest.raises(StoreError, match="built with another model"):
        Matcher.load(url, other)


def test_bad_connection_strings_give_one_line_without_the_password(tmp_path, embedder, monkeypatch):
    secret = "hunter2-sekrit"
    cases = [
        f"postgresql://bob:{secret}@/nodb?host={tmp_path}/nowhere",  # no server there
        f"postgresql://bob:{secret}@localhost:notaport/db",  # not a connection string libpq accepts
    ]
    for dsn in cases:
        with pytest.raises(StoreError) as info:
            Matcher(embedder, store=dsn)
        msg = str(info.value)
        assert "\n" not in msg and secret not in msg and "PostgreSQL" in msg, msg
    monkeypatch.setenv("DUPQ_TEST_DSN", cases[0])
    result = CliRunner().invoke(cli_app, ["match", "a question?", "--store", "env:DUPQ_TEST_DSN"])
    assert result.exit_code == 2
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: cannot connect") and secret not in result.output
    with pytest.raises(StoreError, match="not set"):
        Matcher(embedder, store="env:DUPQ_NO_SUCH_VARIABLE")


def test_connection_string_from_environment_or_file(tmp_path, monkeypatch):
    dsn = "postgresql://u:pw-123@db.example/questions"
    monkeypatch.setenv("DUPQ_X", dsn)
    (tmp_path / "dsn").write_text(dsn + "\n")
    assert resolve("env:DUPQ_X") == resolve(f"file:{tmp_path / 'dsn'}") == dsn
    assert "pw-123" not in redact(f"failed for {dsn} and password=pw-123 host=x", dsn)
    (tmp_path / "bad").write_text("not a url\n")
    with pytest.raises(StoreError, match="does not hold a postgresql"):
        resolve(f"file:{tmp_path / 'bad'}")


WRITER = textwrap.dedent(
    """
    import json, sys
    from dupq.matcher import Matcher
    url, model, worker, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    m = Matcher(model, store=url)
    acked, deleted = [], []
    for j in range(rounds):
        ids = m.add([f"worker {worker} question {j} part {p} about python?" for p in range(3)])
        acked += ids                               # acknowledged: add returned
        m.match([f"worker {worker} question {j}?"], k=3)
        if j % 4 == 3:
            m.remove([ids[0]])
            deleted.append(ids[0])
    print(json.dumps({"acked": acked, "deleted": deleted}))
    """
)


def test_four_writer_processes_lose_nothing_and_never_conflict(url, embedder, tiny_model_dir, tmp_path):
    Matcher(embedder, store=url)  # created once up front (creation is also safe when raced)
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), url, str(tiny_model_dir), str(w), "12"],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(4)
    ]
    acked, deleted = set(), set()
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
        got = json.loads(out.strip().splitlines()[-1])
        acked.update(got["acked"])
        deleted.update(got["deleted"])
    assert len(acked) == 4 * 12 * 3  # no id handed out twice
    assert set(Matcher.load(url, embedder).ids) == acked - deleted


KILLED = textwrap.dedent(
    """
    import sys
    from dupq.matcher import Matcher
    m = Matcher(sys.argv[2], store=sys.argv[1])
    m.add([f"batch question {i} about java code?" for i in range(200)])
    print("finished")  # must never happen: the parent kills this process mid-batch
    """
)


def test_a_writer_killed_mid_batch_leaves_no_partial_batch(url, embedder, tiny_model_dir, tmp_path):
    m = Matcher(embedder, store=url)
    m.add(sample_questions(10))
    script, mark = tmp_path / "killed.py", tmp_path / "halfway"
    script.write_text(KILLED)
    proc = subprocess.Popen(
        [sys.executable, str(script), url, str(tiny_model_dir)],
        env=_env(DUPQ_SLOW_ADD="60", DUPQ_ADD_MARK=str(mark)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not mark.exists():  # half the batch has been sent inside its transaction
            assert proc.poll() is None, proc.stderr.read()[-2000:]
            assert time.monotonic() < deadline, "the writer never reached the middle of its batch"
            time.sleep(0.1)
        with psycopg.connect(url, autocommit=True) as conn:  # its transaction is open right now
            states = [
                r[0] for r in conn.execute("SELECT state FROM pg_stat_activity WHERE pid <> pg_backend_pid()")
            ]
        assert "idle in transaction" in states or "active" in states, states
    finally:
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
    assert "finished" not in out
    # the server aborts the dead client's transaction: nothing of the batch, and no lock left behind
    deadline = time.monotonic() + 30
    while True:
        with psycopg.connect(url, autocommit=True) as conn:
            left = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction'")
            if left.fetchone()[0] == 0 or time.monotonic() > deadline:
                break
        time.sleep(0.2)
    assert len(m) == 10
    assert not any("batch question" in m.get(i)["text"] for i in m.ids)
    assert len(m.add(["after the crash?"])) == 1 and len(m) == 11


def test_index_build_and_copy_between_directory_and_database(pg, url, embedder, tiny_model_dir, tmp_path):
    qs = sample_questions(40, seed=8)
    (tmp_path / "q.csv").write_text("question\n" + "\n".join(qs) + "\n")
    env = {"DUPQ_TEST_STORE": url, "DUPQ_TEST_STORE2": _new_database(pg)}
    run = CliRunner(env=env).invoke
    model = ["--model", str(tiny_model_dir)]
    r = run(
        cli_app,
        [
            "index",
            "build",
            str(tmp_path / "q.csv"),
            "-t",
            "question",
            "--store",
            "env:DUPQ_TEST_STORE",
            *model,
        ],
    )
    assert r.exit_code == 0, r.output
    assert "stored 40 questions in the PostgreSQL store" in r.output and url not in r.output
    r = run(
        cli_app,
        [
            "index",
            "build",
            str(tmp_path / "q.csv"),
            "-t",
            "question",
            "--store",
            "env:DUPQ_TEST_STORE",
            *model,
        ],
    )
    assert r.exit_code == 2 and "already holds 40" in r.output  # a second build never doubles the store
    # database -> directory -> another database: same ids, same vectors, same answers
    assert run(cli_app, ["index", "copy", "env:DUPQ_TEST_STORE", str(tmp_path / "dir")]).exit_code == 0
    r = run(cli_app, ["index", "copy", str(tmp_path / "dir"), "env:DUPQ_TEST_STORE2"])
    assert r.exit_code == 0 and "copied 40" in r.output, r.output
    stores = [
        Matcher.load(url, embedder),
        Matcher.load(tmp_path / "dir", embedder),
        Matcher.load(env["DUPQ_TEST_STORE2"], embedder),
    ]
    assert stores[0].ids == stores[1].ids == stores[2].ids == list(range(40))
    query = "how to learn python and java code?"
    answers = [[(m.id, round(m.score, 4)) for m in s.match(query, k=5)] for s in stores]
    assert answers[0] == answers[1] == answers[2]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_four_serve_workers_on_one_store_lose_no_write(url, embedder, tiny_model_dir):
    Matcher(embedder, store=url).add(sample_questions(20, seed=5))
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dupq.cli",
            "serve",
            "--store",
            "env:DUPQ_TEST_STORE",
            "--workers",
            "4",
            "--port",
            str(port),
            "--model",
            str(tiny_model_dir),
            "--ef-search",
            "50",
        ],
        env=_env(DUPQ_TEST_STORE=url),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while True:
            assert proc.poll() is None, proc.stdout.read()[-3000:]
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not come up"
            time.sleep(0.5)
        assert httpx.get(f"{base}/stats").json()["index_params"]["ef_search"] == 50
        workers = [c for c in psutil.Process(proc.pid).children(recursive=True) if "python" in c.name()]
        assert len(workers) >= 4, workers

        import concurrent.futures as cf

        def client(c: int) -> tuple[list[int], list[int], list[int]]:
            acked, deleted, codes = [], [], []
            with httpx.Client(base_url=base, timeout=60) as http:
                for j in range(10):
                    body = {
                        "questions": [{"text": f"client {c} asks question {j} part {p}?"} for p in range(2)]
                    }
                    r = http.post("/questions", json=body)
                    codes.append(r.status_code)
                    if r.status_code == 201:
                        assert r.json()["saved"] is True
                        acked += r.json()["ids"]
                    codes.append(
                        http.post(
                            "/match", json={"questions": [f"client {c} question {j}?"], "k": 3}
                        ).status_code
                    )
                    if j % 3 == 2:
                        r = http.delete(f"/questions/{acked[-1]}")
                        codes.append(r.status_code)
                        if r.status_code == 200:
                            deleted.append(acked[-1])
            return acked, deleted, codes

        with cf.ThreadPoolExecutor(8) as pool:
            results = list(pool.map(client, range(8)))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
    codes = [c for _, _, cs in results for c in cs]
    assert set(codes) <= {200, 201}, sorted(set(codes))  # no 409 conflict, no 5xx
    acked = [i for a, _, _ in results for i in a]
    deleted = {i for _, d, _ in results for i in d}
    assert len(acked) == len(set(acked)) == 8 * 10 * 2
    assert set(Matcher.load(url, embedder).ids) == (set(range(20)) | set(acked)) - deleted


def test_ef_search_is_tunable_and_a_large_k_still_gets_k_matches(url, embedder):
    m = Matcher(embedder, store=url, index_params={"ef_search": 10})
    m.add(sample_questions(120, seed=9))
    with m.store._conn() as conn:
        assert conn.execute("SHOW hnsw.ef_search").fetchone()[0] == "10"
    # HNSW returns at most ef_search rows; a k above it widens the beam for that query
    assert len(m.match("how to learn python?", k=30)) == 30
    with pytest.raises(InputError, match="ef_search"):
        Matcher(embedder, store=url, index_params={"ef_search": -1})
    with pytest.raises(InputError, match="unknown PostgreSQL store parameter"):
        Matcher(embedder, store=url, index_params={"nprobe": 8})


def test_opening_a_database_without_a_store_and_serving_a_directory_with_workers(url, embedder, tmp_path):
    with pytest.raises(StoreError, match="no dupq store"):
        Matcher.load(url, embedder)
    Matcher(embedder).save(tmp_path / "store")
    r = CliRunner().invoke(cli_app, ["serve", "--store", str(tmp_path / "store"), "--workers", "2"])
    assert r.exit_code == 2 and "needs a PostgreSQL store" in r.output
