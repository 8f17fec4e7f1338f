"""``dupq serve``: the Matcher behind a small HTTP API (FastAPI + uvicorn).

Endpoints (OpenAPI docs at ``/docs``, schema at ``/openapi.json``):

* ``POST /match`` ``{"questions": [...], "k": 5, "threshold": null}`` → per query the ranked matches;
* ``POST /questions`` ``{"questions": [{"text": ..., "id": 7, "metadata": {...}}]}`` → the stored ids;
* ``DELETE /questions/{id}`` → 200, or 404 for an unknown id;
* ``GET /questions/{id}``, ``GET /health``, ``GET /stats``, ``POST /save``.

Bad input is answered with JSON ``{"error": {"type": ..., "message": ..., "row": ..., "column": ...}}``
and a 4xx code: 422 for invalid questions/ids/parameters, 404 unknown id, 409 id already stored,
413 for a body over ``max_body_bytes`` or a batch over ``max_batch``.

Security and limits:

* **Authentication.** With a token (``token=``; ``dupq serve --token-file FILE`` or ``$DUPQ_TOKEN``)
  the write endpoints (``POST /questions``, ``DELETE /questions/{id}``, ``POST /save``) need
  ``Authorization: Bearer <token>``; without it they answer 401 (``unauthorized``). Reads stay open.
  :func:`serve` refuses to bind an address other than loopback without a token, unless ``insecure``.
* **Backpressure.** At most ``max_in_flight`` requests are worked on at once (``/health`` excepted);
  one more is answered at once with 503 (``overloaded``) and ``Retry-After``, instead of queueing
  until every client times out.
* **Malformed bodies** (bad JSON, JSON nested too deep to parse, …) get the same error envelope.

Persistence (``store_dir`` given), chosen with ``persist``:

* ``"write"`` (default): every ``POST /questions`` / ``DELETE`` is saved *before* it is answered, so
  an acknowledged write survives a crash or restart. Saves are group commits: a write waits for the
  next save that starts after it was applied, and one save covers every write applied meanwhile, so
  concurrent writers share saves instead of queueing one full save each.
* ``"interval"``: a background thread saves every ``save_interval`` seconds when something changed,
  and on shutdown; writes acknowledged since the last save are lost on a crash.
* ``"manual"``: only ``POST /save`` (and shutdown) save.

A store changed on disk by another process since the server loaded it (``dupq index add``) is never
overwritten: the save fails and the request is answered 409 (``store_conflict``); restart the server
to serve the new store.

A PostgreSQL store (``--store postgresql://…``, ``env:NAME``, ``file:PATH``; :mod:`dupq.stores`) has no
save: every write is committed before it is answered (``"saved": true``), and ``workers`` > 1 runs that
many server processes on it (uvicorn's workers, each with its own Matcher and connection pool), which
add, delete and match at once without conflicts. A store directory is owned by one process: one worker.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from dupq._version import __version__
from dupq.errors import ConflictError, DupqError, InputError, StoreConflictError, UnknownIdError
from dupq.matcher import Matcher
from dupq.server_state import PERSIST_MODES as PERSIST_MODES  # re-exported: it was defined here
from dupq.server_state import AppContext, TooLarge, Unauthorized
from dupq.stores import is_database

logger = logging.getLogger(__name__)


class MatchRequest(BaseModel):
    questions: list[Any] = Field(..., description="New questions to look up (strings).")
    k: int = Field(5, description="How many stored questions to return per query.")
    threshold: float | None = Field(None, description="Cosine threshold for is_duplicate (default: model's).")
    only_duplicates: bool = Field(False, description="Drop matches below the threshold.")


class MatchOut(BaseModel):
    id: int
    text: str
    score: float
    probability: float | None
    similarity: float | None = None
    is_duplicate: bool
    exact: bool
    decided_by: str = Field("cosine", description="The stage that decided: exact, verifier or cosine.")
    metadata: dict[str, Any] | None


class QueryOut(BaseModel):
    query: str
    truncated: bool
    matches: list[MatchOut]


class MatchResponse(BaseModel):
    results: list[QueryOut]


class QuestionIn(BaseModel):
    text: Any = Field(..., description="The question text.")
    id: Any = Field(None, description="Non-negative integer id; assigned when omitted.")
    metadata: dict[str, Any] | None = None


class AddRequest(BaseModel):
    questions: list[QuestionIn]


class AddResponse(BaseModel):
    ids: list[int]
    count: int
    truncated: list[int] = Field(..., description="Ids of questions longer than the model reads.")
    saved: bool


class _LimitBody:
    """ASGI middleware: refuse bodies over ``limit`` bytes with 413, whether or not Content-Length is sent."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            await _send_json(send, 413, _err("too_large", f"request body over {self.limit} bytes"))
            return
        seen = 0
        started = responded = False

        async def limited_receive() -> dict:
            # Streams without Content-Length: count as we go; past the limit answer 413 ourselves
            # and tell the app the client left (FastAPI would turn an exception here into a 400).
            nonlocal seen, responded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    if not started and not responded:
                        responded = True
                        await _send_json(
                            send, 413, _err("too_large", f"request body over {self.limit} bytes")
                        )
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: dict) -> None:
            nonlocal started
            if responded:
                return  # the 413 already went out
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not responded:  # after our 413 the app's complaint about the cut-off body is moot
                raise


class _InFlightLimit:
    """ASGI middleware: at most ``limit`` HTTP requests in flight; one more gets 503 + ``Retry-After``
    at once. Runs on the event loop (one thread), so a plain counter is exact. ``/health`` is exempt
    (a liveness probe must not fail because the server is busy)."""

    def __init__(self, app: Any, limit: int, retry_after: int = 1) -> None:
        self.app, self.limit, self.retry_after = app, limit, retry_after
        self.in_flight = 0

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("path") == "/health":
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            await _send_json(
                send,
                503,
                _err("overloaded", f"{self.limit} requests in flight; retry after {self.retry_after} s"),
                headers=[(b"retry-after", str(self.retry_after).encode())],
            )
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


async def _send_json(send: Any, status: int, body: dict, headers: list | None = None) -> None:
    import json

    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
            + (headers or []),
        }
    )
    await send({"type": "http.response.body", "body": data})


def _err(kind: str, message: str, **extra: Any) -> dict:
    return {"error": {"type": kind, "message": message, **{k: v for k, v in extra.items() if v is not None}}}


def create_app(
    matcher: Matcher,
    store_dir: str | Path | None = None,
    *,
    persist: str = "write",
    save_interval: float = 30.0,
    max_batch: int = 256,
    max_k: int = 100,
    max_text_chars: int = 5000,
    max_body_bytes: int = 2_000_000,
    max_in_flight: int = 32,
    token: str | None = None,
) -> FastAPI:
    """A FastAPI app serving ``matcher`` (see the module docstring for endpoints, security, limits and
    persistence). ``token``: bearer token required by the write endpoints (``None``: none required)."""
    ctx = AppContext(
        matcher,
        store_dir,
        persist=persist,
        save_interval=save_interval,
        max_batch=max_batch,
        max_k=max_k,
        max_text_chars=max_text_chars,
        max_body_bytes=max_body_bytes,
        max_in_flight=max_in_flight,
        token=token,
    )
    app = FastAPI(
        title="dupq",
        summary="Has this question been asked before? Semantic duplicate matching over a FAISS index.",
        version=__version__,
        lifespan=ctx.lifespan,
    )
    app.state.matcher = matcher
    _add_error_handlers(app)
    # registration order is the order of /openapi.json's paths
    _add_match_route(app, ctx)
    _add_question_routes(app, ctx)
    _add_service_routes(app, ctx)
    app.add_middleware(_LimitBody, limit=max_body_bytes)
    app.add_middleware(_InFlightLimit, limit=max_in_flight)  # outermost: refuses before any work
    return app


def _add_error_handlers(app: FastAPI) -> None:
    """Every error in the one envelope ``{"error": {"type", "message", ...}}`` with its status code."""

    @app.exception_handler(InputError)
    async def _input_error(request: Request, exc: InputError) -> JSONResponse:
        status = 409 if isinstance(exc, ConflictError) else 422
        return JSONResponse(
            _err("invalid_input", exc.reason, row=exc.row, column=exc.column), status_code=status
        )

    @app.exception_handler(UnknownIdError)
    async def _unknown(request: Request, exc: UnknownIdError) -> JSONResponse:
        return JSONResponse(_err("not_found", str(exc), ids=exc.ids), status_code=404)

    @app.exception_handler(StoreConflictError)
    async def _conflict(request: Request, exc: StoreConflictError) -> JSONResponse:
        # Someone else (``dupq index add``, another server) saved the store since this server loaded
        # it: the server refuses to overwrite their work. Its in-memory change is not saved.
        return JSONResponse(_err("store_conflict", str(exc)), status_code=409)

    @app.exception_handler(DupqError)
    async def _dupq(request: Request, exc: DupqError) -> JSONResponse:
        return JSONResponse(_err(type(exc).__name__, str(exc)), status_code=500)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # FastAPI's own refusals (a body it cannot parse — e.g. JSON nested too deep —, an unknown
        # path or method) in the same envelope as every other error.
        kinds = {400: "invalid_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed"}
        return JSONResponse(
            _err(kinds.get(exc.status_code, "http_error"), str(exc.detail)),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Unauthorized)
    async def _unauthorized(request: Request, exc: Unauthorized) -> JSONResponse:
        return JSONResponse(
            _err("unauthorized", str(exc)), status_code=401, headers={"WWW-Authenticate": "Bearer"}
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [{"loc": list(e.get("loc", ())), "msg": e.get("msg")} for e in exc.errors()]
        return JSONResponse(
            _err("invalid_request", "request does not match the schema", details=details), 422
        )

    @app.exception_handler(TooLarge)
    async def _too_large(request: Request, exc: TooLarge) -> JSONResponse:
        return JSONResponse(_err("too_large", str(exc)), status_code=413)


def _add_match_route(app: FastAPI, ctx: AppContext) -> None:
    """``POST /match``."""

    @app.post("/match", response_model=MatchResponse, summary="Ranked stored questions for new questions")
    def match(req: MatchRequest) -> dict:
        ctx.check_batch(req.questions, "questions")
        for r, q in enumerate(req.questions, start=1):
            ctx.check_text(q, r)
        if not 1 <= req.k <= ctx.max_k:
            raise InputError(f"k must be in 1..{ctx.max_k}, got {req.k}", column="k")
        results = ctx.matcher.match(
            req.questions, k=req.k, threshold=req.threshold, only_duplicates=req.only_duplicates
        )
        return {"results": [r.to_dict() for r in results]}


def _add_question_routes(app: FastAPI, ctx: AppContext) -> None:
    """``POST /questions`` (token), ``GET /questions/{id}``, ``DELETE /questions/{id}`` (token)."""
    matcher, writer = ctx.matcher, ctx.writer_dependencies()

    @app.post(
        "/questions",
        response_model=AddResponse,
        status_code=201,
        summary="Store new questions",
        dependencies=writer,
    )
    def add(req: AddRequest) -> dict:
        ctx.check_batch(req.questions, "questions")
        for r, q in enumerate(req.questions, start=1):
            ctx.check_text(q.text, r)
        texts = [q.text for q in req.questions]
        given = [q.id is not None for q in req.questions]
        if any(given) and not all(given):
            raise InputError("give an id for every question or for none", column="id")
        ids = [q.id for q in req.questions] if all(given) else None
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # truncation is reported in the response instead
            # flags straight from the add: reading the rows back could race a DELETE of them (404)
            new_ids, flags = matcher._add(texts, ids, [q.metadata for q in req.questions])
        saved = ctx.after_write()
        truncated = [i for i, t in zip(new_ids, flags, strict=True) if t]
        return {"ids": new_ids, "count": len(matcher), "truncated": truncated, "saved": saved}

    @app.get("/questions/{qid}", summary="One stored question")
    def get_question(qid: int) -> dict:
        return matcher.get(qid)

    @app.delete("/questions/{qid}", summary="Remove a stored question", dependencies=writer)
    def delete(qid: int) -> dict:
        matcher.remove([qid])
        return {"removed": qid, "count": len(matcher), "saved": ctx.after_write()}


def _add_service_routes(app: FastAPI, ctx: AppContext) -> None:
    """``GET /health``, ``GET /stats``, ``POST /save`` (token)."""

    @app.get("/health", summary="Liveness and size")
    def health() -> dict:
        return {"status": "ok", "count": len(ctx.matcher)}

    @app.get("/stats", summary="Store size, index and model configuration")
    def stats() -> dict:
        return ctx.stats()

    @app.post("/save", summary="Save the store now", dependencies=ctx.writer_dependencies())
    def save_now() -> dict:
        if getattr(ctx.matcher.store, "durable", False):  # a database store: nothing to save
            return {"saved": True, "store_dir": None, "count": len(ctx.matcher)}
        if ctx.store is None:
            return JSONResponse(_err("no_store", "the server was started without a store directory"), 409)
        ctx.save()
        return {"saved": True, "store_dir": str(ctx.store), "count": len(ctx.matcher)}


def read_token(token_file: str | Path | None = None) -> str | None:
    """The bearer token: the first line of ``token_file``, else ``$DUPQ_TOKEN``, else ``None``."""
    if token_file is not None:
        try:
            text = Path(token_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise DupqError(f"cannot read the token file {token_file}: {exc.strerror}") from exc
        token = text.strip().splitlines()[0].strip() if text.strip() else ""
        if not token:
            raise DupqError(f"the token file {token_file} is empty")
        return token
    token = os.environ.get("DUPQ_TOKEN", "").strip()
    return token or None


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` serves this machine only (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


#: The environment variable that hands :func:`serve`'s settings to its worker processes (it may hold a
#: connection string: an environment, unlike a command line, is not visible to other users).
_WORKER_CONFIG_ENV = "DUPQ_SERVE_WORKER_CONFIG"


def app_from_env() -> FastAPI:
    """uvicorn's app factory in each worker process of ``serve(workers=N)``: settings from the env."""
    cfg = json.loads(os.environ[_WORKER_CONFIG_ENV])
    store, model, create, params = (
        cfg.pop("store"),
        cfg.pop("model"),
        cfg.pop("create"),
        cfg.pop("index_params"),
    )
    chosen = {"verifier": cfg.pop("verifier", "auto"), "backend": cfg.pop("backend", "default")}
    matcher = (
        Matcher(model, store=store, index_params=params, **chosen)
        if create
        else Matcher.load(store, model, index_params=params, **chosen)
    )
    return create_app(matcher, None, **cfg)


def serve(
    store_dir: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    model: str | Path | None = None,
    persist: str = "write",
    save_interval: float = 30.0,
    create: bool = False,
    token: str | None = None,
    insecure: bool = False,
    verifier: Any = "auto",
    backend: str = "default",
    workers: int = 1,
    ef_search: int | None = None,
    **app_kwargs: Any,
) -> None:
    """Load (or, with ``create``, start) the store at ``store_dir`` and serve it with uvicorn.

    Binding an address other than loopback needs a ``token`` (writes need it), or ``insecure=True``.
    ``verifier``/``backend``: as for :class:`~dupq.matcher.Matcher` (the shipped verifier and the
    fast backend by default).
    ``store_dir`` may name a PostgreSQL store (:mod:`dupq.stores.dsn`); only then may ``workers`` > 1, and
    ``ef_search`` set its HNSW search beam.
    """
    import uvicorn

    if not is_loopback(host) and token is None and not insecure:
        raise DupqError(
            f"refusing to serve on {host} without a token: anyone who can reach it could add, delete "
            "and overwrite questions. Give --token-file FILE (or set DUPQ_TOKEN), or --insecure to "
            "accept that."
        )
    if workers < 1:
        raise InputError(f"workers must be at least 1, got {workers}", column="workers")
    if is_database(store_dir):
        store_spec = str(store_dir)
        # opened (and, with create, made) once here: a bad store fails before any worker starts
        params = {"ef_search": int(ef_search)} if ef_search is not None else None
        first = (
            Matcher(model, store=store_spec, index_params=params, verifier=verifier, backend=backend)
            if create
            else Matcher.load(store_spec, model, index_params=params, verifier=verifier, backend=backend)
        )
        if workers == 1:
            app = create_app(first, None, token=token, **app_kwargs)
            uvicorn.run(app, host=host, port=port, log_level="info")
            return
        first.store.close()
        os.environ[_WORKER_CONFIG_ENV] = json.dumps(
            {
                "store": store_spec,
                "model": None if model is None else str(model),
                "create": False,
                "index_params": params,
                "token": token,
                # a directory or "auto"/"default"/None: what each worker resolves for itself
                "verifier": None if verifier is None else str(getattr(verifier, "source", verifier)),
                "backend": backend,
                **app_kwargs,
            }
        )
        uvicorn.run(
            "dupq.server:app_from_env", factory=True, workers=workers, host=host, port=port, log_level="info"
        )
        return
    if ef_search is not None:
        raise DupqError("--ef-search applies to a PostgreSQL store (a store directory keeps its own)")
    if workers != 1:
        raise DupqError(
            f"--workers {workers} needs a PostgreSQL store: a store directory is owned by one process "
            "(see docs/deployment.md)"
        )
    store = Path(store_dir)
    if (
        create
        and not (store / "manifest.json").exists()
        and not store.with_name(store.name + ".old").exists()
    ):
        matcher = Matcher(model, verifier=verifier, backend=backend)
        matcher.save(store)
    else:
        matcher = Matcher.load(store, model, verifier=verifier, backend=backend)
    app = create_app(matcher, store, persist=persist, save_interval=save_interval, token=token, **app_kwargs)
    uvicorn.run(app, host=host, port=port, log_level="info")
