"""HTTP API: endpoints and error codes in-process (TestClient), durability of acknowledged writes, and
one real uvicorn process on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from dupq.embed import Embedder
from dupq.matcher import Matcher
from dupq.server import create_app
from tests.tiny_model import sample_questions

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def embedder(tiny_model) -> Embedder:
    return Embedder(tiny_model)


@pytest.fixture()
def matcher(embedder) -> Matcher:
    m = Matcher(embedder)
    m.add(sample_questions(50, seed=4), metadata=[{"n": i} for i in range(50)])
    return m


def test_match_add_delete_and_stats(matcher, tmp_path, embedder):
    store = tmp_path / "store"
    with TestClient(create_app(matcher, store, max_batch=10)) as client:
        assert client.get("/health").json() == {"status": "ok", "count": 50}
        q = sample_questions(50, seed=4)[3]
        r = client.post("/match", json={"questions": [q, "a brand new question?"], "k": 3})
        assert r.status_code == 200
        res = r.json()["results"]
        assert res[0]["matches"][0] == {
            "id": 3,
            "text": q,
            "score": 1.0,
            "similarity": 1.0,  # main's Match carries the bi-encoder cosine since the verifier (f0e40c3)
            "probability": None,
            "is_duplicate": True,
            "exact": True,
            "decided_by": "exact",  # which stage decided (issue 23)
            "metadata": {"n": 3},
        }
        assert len(res[1]["matches"]) == 3 and res[1]["query"] == "a brand new question?"

        r = client.post(
            "/questions",
            json={"questions": [{"text": "How to bake bread?", "id": 500, "metadata": {"tag": "food"}}]},
        )
        assert r.status_code == 201 and r.json() == {
            "ids": [500],
            "count": 51,
            "truncated": [],
            "saved": True,
        }
        # acknowledged => already on disk (persist="write")
        assert len(Matcher.load(store, embedder)) == 51
        assert client.get("/questions/500").json()["metadata"] == {"tag": "food"}
        r = client.post("/questions", json={"questions": [{"text": "auto id please?"}]})
        assert r.json()["ids"] == [501]

        assert client.delete("/questions/500").json() == {"removed": 500, "count": 51, "saved": True}
        assert 500 not in Matcher.load(store, embedder)
        stats = client.get("/stats").json()
        assert stats["count"] == 51 and stats["index_kind"] == "flat" and stats["saves"] == 3
        assert client.get("/openapi.json").json()["paths"]["/match"]["post"]
        assert client.get("/docs").status_code == 200


def test_error_codes(matcher):
    with TestClient(create_app(matcher, None, max_batch=3, max_text_chars=100, max_body_bytes=4000)) as c:

        def err(resp, code, kind):
            assert resp.status_code == code, resp.text
            assert resp.json()["error"]["type"] == kind, resp.json()
            return resp.json()["error"]

        e = err(c.post("/match", json={"questions": ["ok?", ""]}), 422, "invalid_input")
        assert e["row"] == 2 and e["column"] == "text" and "empty" in e["message"]
        err(c.post("/match", json={"questions": ["ok?", 7]}), 422, "invalid_input")
        err(c.post("/match", json={"questions": []}), 422, "invalid_input")
        err(c.post("/match", json={"questions": ["ok?"], "k": 0}), 422, "invalid_input")
        err(c.post("/match", json={"questions": ["ok?"], "k": 1000}), 422, "invalid_input")
        err(c.post("/match", json={"questions": ["ok?"], "threshold": 5}), 422, "invalid_input")
        err(c.post("/match", json={"k": 3}), 422, "invalid_request")
        err(
            c.post("/match", content=b"{not json", headers={"content-type": "application/json"}),
            422,
            "invalid_request",
        )
        err(c.post("/match", json={"questions": ["a?", "b?", "c?", "d?"]}), 413, "too_large")
        err(c.post("/match", json={"questions": ["x" * 101]}), 413, "too_large")
        err(c.post("/match", json={"questions": ["x" * 90] * 3 + ["y" * 5000]}), 413, "too_large")  # body
        # body limit also without Content-Length (chunked upload)
        big = iter([b'{"questions": ["', b"z" * 5000, b'"]}'])
        err(c.post("/match", content=big, headers={"content-type": "application/json"}), 413, "too_large")

        err(c.post("/questions", json={"questions": [{"text": "dup id?", "id": 3}]}), 409, "invalid_input")
        err(
            c.post("/questions", json={"questions": [{"text": "a?", "id": 9}, {"text": "b?"}]}),
            422,
            "invalid_input",
        )
        err(c.post("/questions", json={"questions": [{"text": "a?", "id": -2}]}), 422, "invalid_input")
        err(
            c.post("/questions", json={"questions": [{"text": "a?", "id": 8}, {"text": "b?", "id": 8}]}),
            422,
            "invalid_input",
        )
        err(c.post("/questions", json={"questions": [{"text": "  "}]}), 422, "invalid_input")
        err(c.delete("/questions/123456"), 404, "not_found")
        err(c.get("/questions/123456"), 404, "not_found")
        err(c.delete("/questions/abc"), 422, "invalid_request")
        err(c.post("/save"), 409, "no_store")
        assert c.get("/health").json()["count"] == 50  # nothing changed by any rejected request


def test_interval_and_shutdown_persistence(matcher, tmp_path, embedder):
    store = tmp_path / "store"
    matcher.save(store)
    app = create_app(matcher, store, persist="interval", save_interval=0.2)
    with TestClient(app) as c:
        assert c.post("/questions", json={"questions": [{"text": "periodic one?"}]}).json()["saved"] is False
        deadline = time.monotonic() + 20
        while len(Matcher.load(store, embedder)) != 51:
            assert time.monotonic() < deadline, "periodic save did not happen"
            time.sleep(0.1)
    manual = create_app(matcher, store, persist="manual")
    with TestClient(manual) as c:
        c.post("/questions", json={"questions": [{"text": "manual one?"}]})
        assert len(Matcher.load(store, embedder)) == 51
        assert c.post("/save").json()["count"] == 52
        assert len(Matcher.load(store, embedder)) == 52
        c.post("/questions", json={"questions": [{"text": "saved at shutdown?"}]})
    assert len(Matcher.load(store, embedder)) == 53  # the lifespan saves unsaved writes on shutdown


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_real_uvicorn_process(matcher, tmp_path, tiny_model_dir):
    store = tmp_path / "store"
    matcher.save(store)
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "dupq.cli", "serve", "--store", str(store), "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.stdout.read()
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not come up"
            time.sleep(0.3)
        with httpx.Client(base_url=base, timeout=30) as client:
            q = sample_questions(50, seed=4)[10]
            r = client.post("/match", json={"questions": [q], "k": 2})
            assert r.status_code == 200 and r.json()["results"][0]["matches"][0]["id"] == 10
            r = client.post("/questions", json={"questions": [{"text": "served question?", "id": 77}]})
            assert r.status_code == 201 and r.json()["saved"]
            assert client.post("/match", json={"questions": [""]}).status_code == 422
            assert client.delete("/questions/999").status_code == 404
    finally:
        # SIGKILL, not SIGTERM: a graceful shutdown saves whatever the persist mode, so only a kill shows
        # that persist="write" (the default) had the add on disk before it was acknowledged
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    # the acknowledged add is in the store a fresh process loads
    assert 77 in Matcher.load(store, Embedder(tiny_model_dir))
