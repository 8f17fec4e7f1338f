"""``dupq serve``: the Matcher behind a small HTTP API (FastAPI + uvicorn).

Endpoints (OpenAPI docs at ``/docs``, schema at ``/openapi.json``):

* ``POST /match`` ``{"questions": [...], "k": 5, "threshold": null}`` → per query the ranked matches;
* ``POST /questions`` ``{"questions": [{"text": ..., "id": 7, "metadata": {...}}]}`` → the stored ids;
* ``DELETE /questions/{id}`` → 200, or 404 for an unknown id;
* ``GET /questions/{id}``, ``GET /health``, ``GET /stats``, ``POST /save``.

Bad input is answered with JSON ``{"error": {"type": ..., "message": ..., "row": ..., "column": ...}}``
and a 4xx code: 422 for invalid questions/ids/parameters, 404 unknown id, 409 id already stored,
413 for a body over ``max_body_bytes`` or a batch over ``max_batch``.

Persistence (``store_dir`` given), chosen with ``persist``:

* ``"write"`` (default): every ``POST /questions`` / ``DELETE`` saves the store *before* it answers,
  so an acknowledged write survives a crash or restart. Costs one full atomic save per write
  request (milliseconds for thousands of questions, about a second per 100k): batch your adds.
* ``"interval"``: a background thread saves every ``save_interval`` seconds when something changed,
  and on shutdown; writes acknowledged since the last save are lost on a crash.
* ``"manual"``: only ``POST /save`` (and shutdown) save.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from dupq.errors import DupqError, InputError, StoreConflictError
from dupq.matcher import Matcher, UnknownIdError

logger = logging.getLogger(__name__)

PERSIST_MODES = ("write", "interval", "manual")


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


async def _send_json(send: Any, status: int, body: dict) -> None:
    import json

    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())],
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
) -> FastAPI:
    """A FastAPI app serving ``matcher`` (see the module docstring for endpoints and persistence)."""
    if persist not in PERSIST_MODES:
        raise ValueError(f"persist must be one of {PERSIST_MODES}, got {persist!r}")
    store = Path(store_dir) if store_dir is not None else None
    state = {"dirty": False, "saves": 0}
    save_lock = threading.Lock()
    stop = threading.Event()

    def save() -> bool:
        if store is None:
            return False
        with save_lock:
            matcher.save(store)
            state["dirty"] = False
            state["saves"] += 1
        return True

    def after_write() -> bool:
        state["dirty"] = True
        return save() if persist == "write" else False

    def saver_loop() -> None:
        while not stop.wait(save_interval):
            if state["dirty"]:
                try:
                    save()
                except Exception:  # keep serving; the next tick retries
                    logger.exception("periodic save failed")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        thread = None
        if store is not None and persist == "interval":
            thread = threading.Thread(target=saver_loop, name="dupq-saver", daemon=True)
            thread.start()
        yield
        stop.set()
        if thread is not None:
            thread.join(timeout=5)
        if store is not None and state["dirty"]:
            try:
                save()  # graceful shutdown never loses acknowledged writes
            except StoreConflictError as exc:
                # Changed on disk by someone else: their work wins; ours was never acknowledged as saved.
                logger.error("not saving at shutdown: %s", exc)

    app = FastAPI(
        title="dupq",
        summary="Has this question been asked before? Semantic duplicate matching over a FAISS index.",
        version=__import__("dupq").__version__,
        lifespan=lifespan,
    )
    app.state.matcher = matcher

    @app.exception_handler(InputError)
    async def _input_error(request: Request, exc: InputError) -> JSONResponse:
        return JSONResponse(
            _err("invalid_input", exc.reason, row=exc.row, column=exc.column),
            status_code=409 if "already stored" in exc.reason else 422,
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

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [{"loc": list(e.get("loc", ())), "msg": e.get("msg")} for e in exc.errors()]
        return JSONResponse(
            _err("invalid_request", "request does not match the schema", details=details), 422
        )

    def check_batch(items: list, what: str) -> None:
        if not items:
            raise InputError(f"no {what} given", column="questions")
        if len(items) > max_batch:
            raise _TooLarge(f"{len(items)} {what} in one request; at most {max_batch}")

    def check_text(t: Any, row: int) -> None:
        if isinstance(t, str) and len(t) > max_text_chars:
            raise _TooLarge(f"question {row} has {len(t)} characters; at most {max_text_chars}")

    @app.exception_handler(_TooLarge)
    async def _too_large(request: Request, exc: _TooLarge) -> JSONResponse:
        return JSONResponse(_err("too_large", str(exc)), status_code=413)

    @app.post("/match", response_model=MatchResponse, summary="Ranked stored questions for new questions")
    def match(req: MatchRequest) -> dict:
        check_batch(req.questions, "questions")
        for r, q in enumerate(req.questions, start=1):
            check_text(q, r)
        if not 1 <= req.k <= max_k:
            raise InputError(f"k must be in 1..{max_k}, got {req.k}", column="k")
        results = matcher.match(
            req.questions, k=req.k, threshold=req.threshold, only_duplicates=req.only_duplicates
        )
        return {"results": [r.to_dict() for r in results]}

    @app.post("/questions", response_model=AddResponse, status_code=201, summary="Store new questions")
    def add(req: AddRequest) -> dict:
        check_batch(req.questions, "questions")
        for r, q in enumerate(req.questions, start=1):
            check_text(q.text, r)
        texts = [q.text for q in req.questions]
        given = [q.id is not None for q in req.questions]
        if any(given) and not all(given):
            raise InputError("give an id for every question or for none", column="id")
        ids = [q.id for q in req.questions] if all(given) else None
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # truncation is reported in the response instead
            new_ids = matcher.add(texts, ids, [q.metadata for q in req.questions])
        saved = after_write()
        truncated = [i for i in new_ids if matcher.get(i)["truncated"]]
        return {"ids": new_ids, "count": len(matcher), "truncated": truncated, "saved": saved}

    @app.get("/questions/{qid}", summary="One stored question")
    def get_question(qid: int) -> dict:
        return matcher.get(qid)

    @app.delete("/questions/{qid}", summary="Remove a stored question")
    def delete(qid: int) -> dict:
        matcher.remove([qid])
        return {"removed": qid, "count": len(matcher), "saved": after_write()}

    @app.get("/health", summary="Liveness and size")
    def health() -> dict:
        return {"status": "ok", "count": len(matcher)}

    @app.get("/stats", summary="Store size, index and model configuration")
    def stats() -> dict:
        out = matcher.stats()
        out.update(
            store_dir=str(store) if store else None,
            persist=persist if store else None,
            unsaved_changes=state["dirty"],
            saves=state["saves"],
            limits={
                "max_batch": max_batch,
                "max_k": max_k,
                "max_text_chars": max_text_chars,
                "max_body_bytes": max_body_bytes,
            },
        )
        return out

    @app.post("/save", summary="Save the store now")
    def save_now() -> dict:
        if store is None:
            return JSONResponse(_err("no_store", "the server was started without a store directory"), 409)
        save()
        return {"saved": True, "store_dir": str(store), "count": len(matcher)}

    app.add_middleware(_LimitBody, limit=max_body_bytes)
    return app


class _TooLarge(Exception):
    pass


def serve(
    store_dir: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    model: str | Path | None = None,
    persist: str = "write",
    save_interval: float = 30.0,
    create: bool = False,
    **app_kwargs: Any,
) -> None:
    """Load (or, with ``create``, start) the store at ``store_dir`` and serve it with uvicorn."""
    import uvicorn

    store = Path(store_dir)
    if (
        create
        and not (store / "manifest.json").exists()
        and not store.with_name(store.name + ".old").exists()
    ):
        matcher = Matcher(model)
        matcher.save(store)
    else:
        matcher = Matcher.load(store, model)
    app = create_app(matcher, store, persist=persist, save_interval=save_interval, **app_kwargs)
    uvicorn.run(app, host=host, port=port, log_level="info")
