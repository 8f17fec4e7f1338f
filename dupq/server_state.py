"""The state one ``dupq serve`` app shares between its routes (see :mod:`dupq.server`): the matcher,
its store and persistence mode, the limits, the bearer token, and the save machinery."""

from __future__ import annotations

import contextlib
import hmac
import logging
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI, Request

from dupq.errors import InputError, StoreConflictError

if TYPE_CHECKING:
    from dupq.matcher import Matcher

logger = logging.getLogger("dupq.server")  # the server's log, as before the split

PERSIST_MODES = ("write", "interval", "manual")


class GroupCommit:
    """Saves shared by concurrent writers, keeping "acknowledged means durable".

    A writer applies its change in memory, then calls :meth:`commit`, which returns once a save that
    *started after* the change was applied has finished (or raises that save's error). The first
    waiter saves for everyone whose change was applied by then; writers arriving during that save
    wait for the next one, which one of them runs. N concurrent writes cost about two saves, not N.
    """

    def __init__(self, save: Any) -> None:
        self._save = save
        self._cond = threading.Condition()
        self._applied = 0  # changes applied in memory (sequence numbers)
        self._saved = 0  # every change up to this one is on disk
        self._saving = False
        self._failed: tuple[int, int, BaseException] | None = None  # (from, to, error) of a failed save

    def commit(self) -> None:
        with self._cond:
            self._applied += 1
            mine = self._applied
            while True:
                if self._saved >= mine:
                    return
                if self._failed is not None and self._failed[0] <= mine <= self._failed[1]:
                    raise self._failed[2]
                if not self._saving:
                    break
                self._cond.wait()
            self._saving = True
            first, upto = self._saved + 1, self._applied
        try:
            self._save()
        except BaseException as exc:
            with self._cond:
                self._saving = False
                self._failed = (first, upto, exc)
                self._cond.notify_all()
            raise
        with self._cond:
            self._saving = False
            self._saved = max(self._saved, upto)
            self._cond.notify_all()


class TooLarge(Exception):
    pass


class Unauthorized(Exception):
    pass


class AppContext:
    """What the routes of one app share: the matcher, its store and persistence mode, the limits, the
    bearer token, and the save machinery (dirty flag, save count, group commit, interval saver)."""

    def __init__(
        self,
        matcher: Matcher,
        store_dir: str | Path | None,
        *,
        persist: str,
        save_interval: float,
        max_batch: int,
        max_k: int,
        max_text_chars: int,
        max_body_bytes: int,
        max_in_flight: int,
        token: str | None,
    ) -> None:
        if persist not in PERSIST_MODES:
            raise InputError(f"persist must be one of {PERSIST_MODES}, got {persist!r}")
        if max_in_flight < 1:
            raise InputError(f"max_in_flight must be at least 1, got {max_in_flight}")
        if token is not None and not token.strip():
            raise InputError("token is empty")
        self.matcher = matcher
        self.store = Path(store_dir) if store_dir is not None else None
        self.persist, self.save_interval, self.token = persist, save_interval, token
        self.max_batch, self.max_k, self.max_text_chars = max_batch, max_k, max_text_chars
        self.max_body_bytes, self.max_in_flight = max_body_bytes, max_in_flight
        self.dirty = False
        self.saves = 0
        self._save_lock = threading.Lock()
        self._stop = threading.Event()
        self._committer = GroupCommit(self.save)

    def save(self) -> bool:
        if self.store is None:
            return False
        with self._save_lock:
            # cleared before the save reads the store: a write applied meanwhile sets it again
            self.dirty = False
            try:
                self.matcher.save(self.store)
            except BaseException:
                self.dirty = True
                raise
            self.saves += 1
        return True

    def after_write(self) -> bool:
        if getattr(self.matcher.store, "durable", False):
            return True  # a database store: committed before the Matcher returned
        self.dirty = True
        if self.persist != "write" or self.store is None:
            return False
        self._committer.commit()  # returns once a save that began after this write has finished
        return True

    def _saver_loop(self) -> None:
        while not self._stop.wait(self.save_interval):
            if self.dirty:
                try:
                    self.save()
                except Exception:  # keep serving; the next tick retries
                    logger.exception("periodic save failed")

    @contextlib.asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        thread = None
        if self.store is not None and self.persist == "interval":
            thread = threading.Thread(target=self._saver_loop, name="dupq-saver", daemon=True)
            thread.start()
        yield
        self._stop.set()
        if thread is not None:
            thread.join(timeout=5)
        if self.store is not None and self.dirty:
            try:
                self.save()  # graceful shutdown never loses acknowledged writes
            except StoreConflictError as exc:
                # Changed on disk by someone else: their work wins; ours was never acknowledged as saved.
                logger.error("not saving at shutdown: %s", exc)

    def check_batch(self, items: list, what: str) -> None:
        if not items:
            raise InputError(f"no {what} given", column="questions")
        if len(items) > self.max_batch:
            raise TooLarge(f"{len(items)} {what} in one request; at most {self.max_batch}")

    def check_text(self, t: Any, row: int) -> None:
        if isinstance(t, str) and len(t) > self.max_text_chars:
            raise TooLarge(f"question {row} has {len(t)} characters; at most {self.max_text_chars}")

    def writer_dependencies(self) -> list:
        """``dependencies=`` for the write endpoints: the bearer token, when one is set."""
        expected = self.token.encode() if self.token is not None else None

        def require_token(request: Request) -> None:
            if expected is None:
                return
            header = request.headers.get("authorization", "").strip()
            scheme, _, credentials = header.partition(" ")
            # RFC 7235: the scheme is case-insensitive ("bearer", "BEARER"); the token is not.
            given = credentials.strip().encode() if scheme.lower() == "bearer" else header.encode()
            if not hmac.compare_digest(given, expected) or scheme.lower() != "bearer":
                raise Unauthorized(
                    "this endpoint needs 'Authorization: Bearer <token>'"
                    if not given
                    else "wrong token in the Authorization header"
                )

        return [Depends(require_token)]

    def stats(self) -> dict:
        """``GET /stats``, which anyone who reaches the port may read: the store, model and verifier
        by their directory *names* only (full paths tell a stranger about the host's file system)."""
        out = self.matcher.stats()
        for key in ("model_source", "verifier"):
            if out.get(key):
                out[key] = Path(str(out[key])).name
        out.update(
            store_dir=Path(self.store).name if self.store else None,
            persist=self.persist if self.store else None,
            unsaved_changes=self.dirty,
            saves=self.saves,
            limits={
                "max_batch": self.max_batch,
                "max_k": self.max_k,
                "max_text_chars": self.max_text_chars,
                "max_body_bytes": self.max_body_bytes,
                "max_in_flight": self.max_in_flight,
            },
            auth="bearer token for writes" if self.token is not None else "none",
        )
        return out
