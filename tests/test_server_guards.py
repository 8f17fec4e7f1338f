"""The service's guards (issue 10, item 6), each against a real uvicorn server on 127.0.0.1: the add
answer never 404s, malformed bodies get the error envelope, bearer-token auth for writes, refusal to
bind a public address without a token, a bound on requests in flight (503 + Retry-After), and group
commits that keep "acknowledged means durable"."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import uvicorn
from typer.testing import CliRunner

from dupq.cli import app as cli_app
from dupq.embed import Embedder
from dupq.errors import DupqError
from dupq.matcher import Matcher
from dupq.server import create_app, is_loopback, read_token, serve
from tests.tiny_model import sample_questions

REPO = Path(__file__).resolve().parents[1]
TOKEN = "s3cret-token-for-tests"


@pytest.fixture(scope="module")
def embedder(tiny_model) -> Embedder:
    return Embedder(tiny_model)


@pytest.fixture()
def matcher(embedder) -> Matcher:
    m = Matcher(embedder)
    m.add(sample_questions(30, seed=5))
    return m


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running(app) -> Iterator[str]:
    """``app`` served by a real uvicorn on 127.0.0.1 (in a thread of this process); yields its URL."""
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def _slow_saves(monkeypatch, matcher: Matcher, seconds: float) -> list[tuple[float, set[int]]]:
    """Make every save take ``seconds`` longer; returns a log of (finished at, ids the save covered)."""
    log: list[tuple[float, set[int]]] = []
    real = matcher.save

    def save(directory, **kw):
        covered = set(matcher.ids)  # every change the group commit promised this save was applied
        time.sleep(seconds)
        out = real(directory, **kw)
        log.append((time.monotonic(), covered))
        return out

    monkeypatch.setattr(matcher, "save", save)
    return log


def test_an_add_is_never_answered_404_when_a_delete_follows_it(matcher, tmp_path, monkeypatch):
    _slow_saves(monkeypatch, matcher, 0.5)  # the add's save is slow: the delete lands inside it
    with running(create_app(matcher, tmp_path / "store")) as base, ThreadPoolExecutor(2) as pool:
        add = pool.submit(
            httpx.post,
            f"{base}/questions",
            json={"questions": [{"text": "racing?", "id": 900}]},
            timeout=60,
        )
        deadline = time.monotonic() + 30
        while 900 not in matcher:  # applied in memory, the save still running
            assert time.monotonic() < deadline
            time.sleep(0.01)
        delete = pool.submit(httpx.delete, f"{base}/questions/900", timeout=60)
        r = add.result()
        assert r.status_code == 201, r.text
        assert r.json()["ids"] == [900]
        assert delete.result().status_code == 200


@pytest.mark.parametrize("depth", [5_000, 100_000])
def test_deeply_nested_json_gets_the_error_envelope(matcher, depth):
    body = b'{"questions": ' + b"[" * depth + b"]" * depth + b"}"
    with running(create_app(matcher, None, max_body_bytes=10_000_000)) as base:
        r = httpx.post(
            f"{base}/match", content=body, headers={"content-type": "application/json"}, timeout=60
        )
        assert 400 <= r.status_code < 500, r.text
        err = r.json()["error"]
        assert err["type"] in {"invalid_request", "invalid_input"} and err["message"]
        r = httpx.get(f"{base}/no/such/path", timeout=10)
        assert r.status_code == 404 and r.json()["error"]["type"] == "not_found"
        assert httpx.get(f"{base}/health", timeout=10).status_code == 200  # still serving


def test_writes_need_the_bearer_token(matcher, tmp_path):
    store = tmp_path / "store"
    with running(create_app(matcher, store, token=TOKEN)) as base, httpx.Client(base_url=base) as c:
        good = {"Authorization": f"Bearer {TOKEN}"}
        add = {"questions": [{"text": "who may write here?", "id": 700}]}
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            for method, path, body in (("POST", "/questions", add), ("DELETE", "/questions/1", None)):
                r = c.request(method, path, json=body, headers=headers)
                assert r.status_code == 401, (method, path, headers, r.text)
                assert r.json()["error"]["type"] == "unauthorized"
                assert r.headers["www-authenticate"] == "Bearer"
            assert c.post("/save", headers=headers).status_code == 401
        assert len(matcher) == 30 and not store.exists()  # nothing written by a refused request
        assert c.post("/match", json={"questions": ["reads stay open?"]}).status_code == 200
        assert c.get("/questions/1").status_code == 200 and c.get("/stats").json()["auth"] != "none"
        assert c.post("/questions", json=add, headers=good).status_code == 201
        assert c.delete("/questions/700", headers=good).status_code == 200
        assert c.post("/save", headers=good).json()["saved"] is True


def test_token_sources_and_the_public_bind_refusal(tmp_path, monkeypatch):
    monkeypatch.delenv("DUPQ_TOKEN", raising=False)
    assert read_token(None) is None
    monkeypatch.setenv("DUPQ_TOKEN", " from-env \n")
    assert read_token(None) == "from-env"
    f = tmp_path / "token"
    f.write_text("from-file\n")
    assert read_token(f) == "from-file"
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(DupqError, match="empty"):
        read_token(tmp_path / "empty")
    with pytest.raises(DupqError, match="cannot read"):
        read_token(tmp_path / "missing")

    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3") and not is_loopback("example.org")
    monkeypatch.delenv("DUPQ_TOKEN")
    # refused before anything is loaded or bound (the store does not even exist)
    with pytest.raises(DupqError, match="refusing to serve on 0.0.0.0 without a token"):
        serve(tmp_path / "nowhere", host="0.0.0.0", port=_free_port())
    r = CliRunner().invoke(cli_app, ["serve", "--store", str(tmp_path / "nowhere"), "--host", "0.0.0.0"])
    assert r.exit_code != 0 and "--token-file" in r.output and "--insecure" in r.output


def test_a_real_server_process_with_a_token_file(matcher, tmp_path):
    store = tmp_path / "store"
    matcher.save(store)
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    env.pop("DUPQ_TOKEN", None)
    cmd = [sys.executable, "-m", "dupq.cli", "serve", "--store", str(store), "--port", str(port)]
    proc = subprocess.Popen(
        [*cmd, "--token-file", str(token_file)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.stdout.read()
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, "server did not come up"
            time.sleep(0.3)
        add = {"questions": [{"text": "authorised?", "id": 71}]}
        assert httpx.post(f"{base}/questions", json=add, timeout=30).status_code == 401
        r = httpx.post(
            f"{base}/questions", json=add, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
        )
        assert r.status_code == 201 and r.json()["saved"] is True
    finally:
        proc.kill()  # SIGKILL: no shutdown save; the acknowledged add must already be on disk
        proc.wait()
    assert 71 in Matcher.load(store, matcher.embedder)


def test_requests_over_the_in_flight_bound_get_a_fast_503(matcher, monkeypatch):
    real = matcher.match

    def slow_match(*args, **kwargs):
        time.sleep(1.5)
        return real(*args, **kwargs)

    monkeypatch.setattr(matcher, "match", slow_match)
    with running(create_app(matcher, None, max_in_flight=2)) as base:

        def call(_):
            t = time.monotonic()
            r = httpx.post(f"{base}/match", json={"questions": ["busy?"]}, timeout=60)
            return r, time.monotonic() - t

        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(call, i) for i in range(8)]
            time.sleep(0.5)  # two of them are being worked on now
            h = httpx.get(f"{base}/health", timeout=5)  # liveness is exempt from the bound
            done = [f.result() for f in futures]
        assert h.status_code == 200
        ok = [(r, s) for r, s in done if r.status_code == 200]
        busy = [(r, s) for r, s in done if r.status_code == 503]
        assert len(ok) >= 2 and len(busy) >= 4 and len(ok) + len(busy) == 8, [r.status_code for r, _ in done]
        for r, seconds in busy:
            assert r.headers["retry-after"] == "1" and r.json()["error"]["type"] == "overloaded"
            assert seconds < 1.0  # refused at once, not after queueing
        assert httpx.get(f"{base}/stats", timeout=10).json()["limits"]["max_in_flight"] == 2


def test_concurrent_writes_share_saves_and_each_is_durable_when_acknowledged(
    matcher, embedder, tmp_path, monkeypatch
):
    store = tmp_path / "store"
    log = _slow_saves(monkeypatch, matcher, 0.3)
    with running(create_app(matcher, store, max_in_flight=64)) as base:

        def add(i: int) -> tuple[httpx.Response, float]:
            r = httpx.post(
                f"{base}/questions",
                json={"questions": [{"text": f"concurrent write {i}?", "id": 5000 + i}]},
                timeout=120,
            )
            return r, time.monotonic()

        with ThreadPoolExecutor(20) as pool:
            results = list(pool.map(add, range(20)))
    for r, acked_at in results:
        assert r.status_code == 201 and r.json()["saved"] is True, r.text
        (i,) = r.json()["ids"]
        # acknowledged => a save that covered it had finished before the answer came
        assert any(done <= acked_at and i in covered for done, covered in log), i
    assert len(log) < 10, f"{len(log)} saves for 20 concurrent writes: not grouped"
    assert {5000 + i for i in range(20)} <= set(Matcher.load(store, embedder).ids)
