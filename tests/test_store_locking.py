"""Stores shared between processes (issue 10, item 5): loads never see a save half-done, two writers
never silently lose each other's rows, and the lock really is between processes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from dupq import io as dupq_io
from dupq.cli import app as cli_app
from dupq.embed import Embedder
from dupq.errors import StoreConflictError, StoreError
from dupq.io import lock_path, store_lock
from dupq.matcher import Matcher
from dupq.server import create_app
from tests.tiny_model import sample_questions

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def embedder(tiny_model) -> Embedder:
    return Embedder(tiny_model)


@pytest.fixture()
def store(embedder, tmp_path) -> Path:
    m = Matcher(embedder)
    m.add(sample_questions(40, seed=21))
    return m.save(tmp_path / "store")


def test_loads_never_fail_while_another_thread_saves(embedder, store, monkeypatch):
    # Widen the instant between a save's two renames (old store aside, new one not yet in place),
    # where an unlocked reader found no store, "recovered" the old one and broke the save.
    monkeypatch.setattr(dupq_io, "_between_renames", lambda: time.sleep(0.02))
    writer = Matcher.load(store, embedder)
    stop = threading.Event()
    errors: list[BaseException] = []
    loads = [0]

    def save_loop() -> None:
        try:
            for j in range(40):
                writer.add([f"writer question number {j} about saving?"])
                writer.save(store)
        except BaseException as exc:
            errors.append(exc)
        finally:
            stop.set()

    def load_loop() -> None:
        while not stop.is_set():
            try:
                m = Matcher.load(store, embedder)
                assert len(m) >= 40
                loads[0] += 1
            except BaseException as exc:
                errors.append(exc)
                return

    threads = [threading.Thread(target=save_loop)] + [threading.Thread(target=load_loop) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors[:3]
    assert loads[0] > 10
    assert len(Matcher.load(store, embedder)) == 80


def test_a_writer_refuses_to_overwrite_a_store_changed_since_it_loaded(embedder, store):
    first, second = Matcher.load(store, embedder), Matcher.load(store, embedder)
    first.add(["saved by the first writer?"], ids=[1001])
    first.save(store)
    second.add(["saved by the second writer?"], ids=[1002])
    with pytest.raises(StoreConflictError, match="changed on disk since this Matcher loaded"):
        second.save(store)
    back = Matcher.load(store, embedder)
    assert 1001 in back and 1002 not in back and len(back) == 41  # the first writer's row survived
    # a fresh Matcher does not replace an existing store by accident either ...
    fresh = Matcher(embedder)
    fresh.add(["a fresh one?"])
    with pytest.raises(StoreConflictError, match="did not load"):
        fresh.save(store)
    # ... but may when asked to, and the loser can reload and re-apply
    second = Matcher.load(store, embedder)
    second.add(["saved by the second writer?"], ids=[1002])
    second.save(store)
    assert {1001, 1002} <= set(Matcher.load(store, embedder).ids)
    fresh.save(store, overwrite=True)
    assert len(Matcher.load(store, embedder)) == 1


_WRITER = textwrap.dedent(
    """
    import sys
    from dupq.embed import Embedder
    from dupq.errors import StoreConflictError
    from dupq.matcher import Matcher
    store, model, who, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    emb = Embedder(model)
    conflicts = 0
    for j in range(n):
        while True:  # load, add one row, save; on a conflict reload and try again
            m = Matcher.load(store, emb)
            m.add([f"process {who} question {j}?"], ids=[10_000 * (who + 1) + j])
            try:
                m.save(store)
                break
            except StoreConflictError:
                conflicts += 1
    print("done", who, conflicts, flush=True)
    """
)


def test_concurrent_writer_processes_lose_no_row(embedder, store, tmp_path, tiny_model_dir):
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(store), str(tiny_model_dir), str(w), "8"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(3)
    ]
    outs = [p.communicate(timeout=400) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0 and out.startswith("done"), err[-3000:]
    back = Matcher.load(store, embedder)
    want = {10_000 * (w + 1) + j for w in range(3) for j in range(8)}
    assert want <= set(back.ids) and len(back) == 40 + 24  # every process's every row


_HOLDER = textwrap.dedent(
    """
    import sys, time
    from dupq.io import store_lock
    with store_lock(sys.argv[1], exclusive=True):
        print("locked", flush=True)
        time.sleep(float(sys.argv[2]))
    """
)


def test_the_lock_is_between_processes_and_dies_with_its_holder(embedder, store, tmp_path):
    script = tmp_path / "holder.py"
    script.write_text(_HOLDER)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    holder = subprocess.Popen(
        [sys.executable, str(script), str(store), "600"], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert lock_path(store).exists() and lock_path(store).parent == store.parent
        with pytest.raises(StoreError, match="locked by another process"), store_lock(store, timeout=0.3):
            pass
        with (
            pytest.raises(StoreError, match="locked by another process"),
            store_lock(store, exclusive=False, timeout=0.3),
        ):
            pass
    finally:
        holder.kill()  # SIGKILL: the kernel drops its flock
        holder.wait()
    with store_lock(store, timeout=5):
        pass
    assert len(Matcher.load(store, embedder)) == 40


def test_index_add_beside_a_serving_store_is_not_overwritten(embedder, store, tmp_path, tiny_model_dir):
    served = Matcher.load(store, embedder)
    table = tmp_path / "more.csv"
    table.write_text("id,question\n500,added by index add one?\n501,added by index add two?\n")
    with TestClient(create_app(served, store)) as client:  # persist="write": every add saves
        r = CliRunner().invoke(
            cli_app,
            [
                "index",
                "add",
                str(store),
                str(table),
                "-t",
                "question",
                "--id-column",
                "id",
                "-m",
                str(tiny_model_dir),
            ],
        )
        assert r.exit_code == 0, r.output
        resp = client.post("/questions", json={"questions": [{"text": "added through the server?"}]})
        assert resp.status_code == 409 and resp.json()["error"]["type"] == "store_conflict", resp.text
        assert "changed on disk" in resp.json()["error"]["message"]
    back = Matcher.load(store, embedder)
    assert len(back) == 42  # index add's two rows were not overwritten by the server's save
    assert back.get(501)["text"] == "added by index add two?"


def test_a_steady_stream_of_loads_does_not_starve_a_save(store):
    # Readers whose shared locks always overlap: plain flock would never give the writer a gap.
    stop = threading.Event()
    errors: list[BaseException] = []

    def reader(offset: float) -> None:
        time.sleep(offset)
        try:
            while not stop.is_set():
                with store_lock(store, exclusive=False, timeout=30):
                    time.sleep(0.05)
        except BaseException as exc:
            errors.append(exc)

    readers = [threading.Thread(target=reader, args=(i * 0.02,)) for i in range(4)]
    for t in readers:
        t.start()
    try:
        time.sleep(0.3)
        t0 = time.monotonic()
        with store_lock(store, exclusive=True, timeout=10):
            waited = time.monotonic() - t0
    finally:
        stop.set()
        for t in readers:
            t.join(timeout=30)
    assert not errors, errors
    assert waited < 5, waited
