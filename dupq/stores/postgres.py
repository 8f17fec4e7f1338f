"""A Matcher store in PostgreSQL with pgvector: the database a Q&A backend already runs.

One table of questions and a small metadata table, both named from ``table`` (default
``dupq_questions``)::

    dupq_questions      id bigint PK, text, key, truncated, metadata jsonb, embedding vector(dim),
                        added_at timestamptz
                        + HNSW index on embedding (vector_cosine_ops)   -- the nearest-neighbour search
                        + unique index on (key, id)                     -- the exact-duplicate lookup
    dupq_questions_meta key -> jsonb: format, model fingerprint and source, dim, threshold, key rule …
    dupq_questions_id_seq                                               -- ids for add(ids=None)

Why it is built this way:

* **Every write is one transaction.** ``add`` is ``COPY … FROM STDIN`` inside a transaction, ``remove``
  a ``DELETE … RETURNING`` inside one: a writer killed mid-batch (``kill -9``) leaves nothing of the
  batch, and any number of processes on any number of hosts add, delete and match at once without
  conflict errors — the database serialises them row by row, not store by store.
* **The model fingerprint lives in the database.** A Matcher whose model has another fingerprint is
  refused with :class:`~dupq.errors.StoreError`, as the file store's manifest does: vectors of two
  models are not comparable.
* **Exact key by index.** The Matcher stores re-posts (several ids may share one normalised text, as in
  the file store), so the unique index is on ``(key, id)``; a lookup by ``key`` is a prefix scan of it.
  Keys are :func:`dupq.text.text_key`, computed by the Matcher; the rule in force when the store was
  created is recorded as ``key_rule`` (digests of probe texts), and opening a store whose keys were
  made by another rule warns that exact lookups may miss.
* **HNSW, cosine.** ``ef_search`` (``hnsw.ef_search``, set per connection) trades recall for speed;
  :data:`EF_SEARCH` is the measured default (``benchmarks/stores.py``). A bulk load into an empty table
  builds the graph once after the ``COPY`` (much faster than inserting into it row by row), in the same
  transaction.
* **Secrets.** The connection string is never logged or put in an error message (:mod:`dupq.stores.dsn`).

Connections: a small pool per process (at most :data:`POOL_SIZE`; more callers wait), autocommit
outside explicit transactions, so reads see every committed write at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import re
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from dupq.errors import ConflictError, InputError, StoreError, UnknownIdError
from dupq.stores.base import Hit, Row
from dupq.stores.dsn import redact

logger = logging.getLogger(__name__)

FORMAT = "dupq-matcher-postgres"
FORMAT_VERSION = 1
DEFAULT_TABLE = "dupq_questions"
#: HNSW build settings: a graph of degree 16 (pgvector's default) built with a beam of 128 (pgvector's
#: default is 64): at 100k questions ef_construction=64 needed ef_search=200 for recall@5 0.99
#: (benchmarks/results/stores.json); a better graph costs build time once instead of search time always.
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 128
#: ``hnsw.ef_search`` per connection: the search beam. Measured (benchmarks/stores.py,
#: results/stores.json; 1M questions, m=16, ef_construction=128, k=5): recall@5 0.963 at 100, 0.991 at
#: 200, 0.998 at 400 (an earlier build of the same data: 0.978 / 0.993 / 0.998) — 200 is the cheapest
#: value measured with recall@5 >= 0.98; Matcher.match p99 there 19.8 ms with onnx-int8 encoding.
EF_SEARCH = 200
#: A batch at least this large into an *empty* table drops the HNSW index, copies, and builds it once.
BULK_MIN = 20_000
#: Connections one store (one process) opens at most; more concurrent callers wait for one. Bounded so
#: that N server workers never exceed the server's ``max_connections`` (100 by default): 4 x 8 = 32.
POOL_SIZE = 8
#: Testing aid: seconds an ``add`` pauses halfway through its COPY (lets a test kill a writer mid-batch).
_SLOW_ADD_ENV = "DUPQ_SLOW_ADD"
#: Testing aid: a file an ``add`` creates when it reaches that halfway point.
_ADD_MARK_ENV = "DUPQ_ADD_MARK"
_TABLE = re.compile(r"[a-z_][a-z0-9_]{0,40}")
_DDL_LOCK = 0x6475_7071  # "dupq": one advisory lock serialises schema creation between processes


def _driver() -> Any:
    try:
        import psycopg
        from pgvector.psycopg import register_vector  # noqa: F401
    except ImportError:
        raise StoreError(
            "a postgresql:// store needs psycopg and pgvector: pip install 'dupq[postgres]'"
        ) from None
    return psycopg


def describe(dsn: str) -> str:
    """Where ``dsn`` points, without its password: ``user@host:port/dbname``."""
    try:
        from psycopg.conninfo import conninfo_to_dict

        d = conninfo_to_dict(dsn)
    except Exception:
        return "(unparseable connection string)"
    host = d.get("host") or "localhost"
    port = f":{d['port']}" if d.get("port") else ""
    user = f"{d['user']}@" if d.get("user") else ""
    return f"{user}{host}{port}/{d.get('dbname') or d.get('user') or ''}"


def key_rule() -> dict[str, str]:
    """Digests of :func:`dupq.text.text_key` on probe texts: tells one normalisation rule from another."""
    from dupq.text import text_key

    probes = ["How do I learn C#?", "how do I learn C++", "What's  the ÉTÉ café?", "a-b_c/d e.f"]
    return {p: text_key(p) for p in probes}


class _IndexInfo:
    """What ``Matcher.index`` reports for a database store (kind and search parameters)."""

    kind = "pgvector-hnsw"
    requested_kind = "pgvector-hnsw"

    def __init__(self, params: dict[str, Any]) -> None:
        self.params = params

    def __len__(self) -> int:  # not used for searching; a Matcher asks the store
        return 0


class PostgresStore:
    """Questions and vectors in PostgreSQL (see the module docstring). ``dsn``: a connection string
    (already resolved: :func:`dupq.stores.dsn.resolve`); ``ef_search``, ``M``, ``ef_construction``: HNSW
    settings (the latter two apply when the table is created)."""

    durable = True  # a write is committed before add/remove return

    def __init__(
        self,
        dsn: str,
        *,
        table: str = DEFAULT_TABLE,
        ef_search: int | None = None,
        M: int | None = None,  # noqa: N803  (the name every HNSW paper and dupq.index use)
        ef_construction: int | None = None,
        connect_timeout: int = 10,
        pool_size: int = POOL_SIZE,
    ) -> None:
        self._psycopg = _driver()
        if not isinstance(table, str) or not _TABLE.fullmatch(table):
            raise InputError(f"table must match {_TABLE.pattern}, got {table!r}", column="table")
        self._dsn = dsn
        self._timeout = connect_timeout
        self.table = table
        self.where = describe(dsn)
        self.index = _IndexInfo(
            {
                "ef_search": int(ef_search or EF_SEARCH),
                "M": int(M or HNSW_M),
                "ef_construction": int(ef_construction or HNSW_EF_CONSTRUCTION),
            }
        )
        if self.index.params["ef_search"] < 1:
            raise InputError(f"ef_search must be positive, got {ef_search}", column="ef_search")
        self._pool: queue.LifoQueue = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(max(1, int(pool_size)))
        with self._conn() as conn:
            self.meta: dict[str, Any] | None = self._read_meta(conn)

    def __repr__(self) -> str:
        return f"PostgresStore({self.where}, table={self.table})"

    # -- connections --------------------------------------------------------------------------------
    def _connect(self) -> Any:
        psycopg = self._psycopg
        try:
            conn = psycopg.connect(self._dsn, autocommit=True, connect_timeout=self._timeout)
        except Exception as exc:  # ProgrammingError (bad string), OperationalError (unreachable, auth)
            reason = redact(
                str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__, self._dsn
            )
            raise StoreError(
                f"cannot connect to the PostgreSQL store at {describe(self._dsn)}: {reason}"
            ) from None
        self._register(conn)
        conn.execute("SELECT set_config('hnsw.ef_search', %s, false)", (str(self.index.params["ef_search"]),))
        return conn

    @staticmethod
    def _register(conn: Any) -> bool:
        from pgvector.psycopg import register_vector

        if conn.execute("SELECT 1 FROM pg_type WHERE typname = 'vector'").fetchone() is None:
            return False  # the extension is created by bind(); registered then
        register_vector(conn)
        return True

    @contextlib.contextmanager
    def _conn(self) -> Iterator[Any]:
        with self._slots:
            try:
                conn = self._pool.get_nowait()
            except queue.Empty:
                conn = self._connect()
            with self._pooled(conn):
                yield conn

    @contextlib.contextmanager
    def _pooled(self, conn: Any) -> Iterator[None]:
        """Back to the pool after use if still healthy and idle, else closed."""
        try:
            yield
        except self._psycopg.OperationalError as exc:
            conn.close()
            raise StoreError(
                f"PostgreSQL store at {self.where}: {redact(str(exc).strip(), self._dsn)}"
            ) from None
        finally:
            reusable = (
                not conn.closed
                and not conn.broken
                and conn.info.transaction_status == self._psycopg.pq.TransactionStatus.IDLE
            )
            if reusable:
                self._pool.put(conn)
            elif not conn.closed:
                conn.close()

    def close(self) -> None:
        while True:
            try:
                self._pool.get_nowait().close()
            except queue.Empty:
                return

    # -- schema -------------------------------------------------------------------------------------
    def _read_meta(self, conn: Any) -> dict[str, Any] | None:
        if conn.execute("SELECT to_regclass(%s)", (f"{self.table}_meta",)).fetchone()[0] is None:
            return None
        return {k: v for k, v in conn.execute(f"SELECT key, value FROM {self.table}_meta")}

    def bind(
        self,
        *,
        fingerprint: str,
        dim: int,
        model_source: str | None,
        threshold: float,
        calibration: dict[str, float] | None,
    ) -> dict[str, Any]:
        """Create the tables for this model, or check that the existing store was built with it.

        Refuses (:class:`StoreError`) a store of another model or dimension. Creation is serialised
        between processes (an advisory lock), so N workers starting at once create it once."""
        from psycopg.types.json import Jsonb

        with self._conn() as conn:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_DDL_LOCK,))
                meta = self._read_meta(conn)
                if meta is None:
                    meta = {
                        "format": FORMAT,
                        "format_version": FORMAT_VERSION,
                        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                        "model_fingerprint": fingerprint,
                        "model_source": model_source,
                        "dim": int(dim),
                        "metric": "cosine",
                        "threshold": float(threshold),
                        "calibration": calibration,
                        "key_rule": key_rule(),
                        "hnsw": {k: self.index.params[k] for k in ("M", "ef_construction")},
                    }
                    self._create(conn, int(dim))
                    with conn.cursor() as cur:
                        cur.executemany(
                            f"INSERT INTO {self.table}_meta (key, value) VALUES (%s, %s)",
                            [(k, Jsonb(v)) for k, v in meta.items()],
                        )
            self._register(conn)
        self._check(meta, fingerprint, dim, model_source)
        self.meta = meta
        return meta

    def _create(self, conn: Any, dim: int) -> None:
        t, p = self.table, self.index.params
        if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone() is None:
            try:
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            except self._psycopg.Error as exc:
                raise StoreError(
                    f"the pgvector extension is not installed in {self.where} and this role cannot create "
                    f"it ({str(exc).strip().splitlines()[0]}): run CREATE EXTENSION vector as an owner"
                ) from None
        conn.execute(f"CREATE TABLE {t}_meta (key text PRIMARY KEY, value jsonb NOT NULL)")
        conn.execute(f"CREATE SEQUENCE {t}_id_seq MINVALUE 0 START 0")
        conn.execute(
            f"CREATE TABLE {t} (id bigint PRIMARY KEY, text text NOT NULL, key text NOT NULL, "
            f"truncated boolean NOT NULL DEFAULT false, metadata jsonb, embedding vector({dim}) NOT NULL, "
            "added_at timestamptz NOT NULL DEFAULT now())"
        )
        conn.execute(f"CREATE UNIQUE INDEX {t}_key ON {t} (key, id)")
        conn.execute(self._hnsw_ddl())
        logger.info("created the dupq store %s in %s (dim %d, HNSW m=%d)", t, self.where, dim, p["M"])

    def _hnsw_ddl(self) -> str:
        t, p = self.table, self.index.params
        return (
            f"CREATE INDEX {t}_hnsw ON {t} USING hnsw (embedding vector_cosine_ops) "
            f"WITH (m = {int(p['M'])}, ef_construction = {int(p['ef_construction'])})"
        )

    def _check(self, meta: dict[str, Any], fingerprint: str, dim: int, model_source: str | None) -> None:
        if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
            raise StoreError(
                f"{self.table} in {self.where} is not a {FORMAT} v{FORMAT_VERSION} store "
                f"(format {meta.get('format')!r} v{meta.get('format_version')!r})"
            )
        if meta.get("model_fingerprint") != fingerprint:
            stored = str(meta.get("model_fingerprint"))
            raise StoreError(
                f"{self.table} in {self.where} was built with another model (fingerprint {stored[:12]}…, "
                f"from {meta.get('model_source')}); this encoder is {fingerprint[:12]}… ({model_source}). "
                "Vectors of different models are not comparable: open it with the same model, or build "
                "a new store (another table)."
            )
        if meta.get("dim") != dim:
            raise StoreError(f"{self.table} in {self.where}: dimension {meta.get('dim')} != encoder's {dim}")
        if meta.get("key_rule") and meta["key_rule"] != key_rule():
            warnings.warn(
                f"{self.table} in {self.where}: its exact keys were made by another dupq.text.text_key "
                "rule than this dupq's; exact-duplicate lookups may miss until the store is rebuilt",
                stacklevel=4,
            )

    def drop(self) -> None:
        """Delete the store's tables and sequence (everything it holds)."""
        t = self.table
        with self._conn() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_DDL_LOCK,))
            conn.execute(f"DROP TABLE IF EXISTS {t}, {t}_meta")
            conn.execute(f"DROP SEQUENCE IF EXISTS {t}_id_seq")
        self.meta = None

    # -- writes -------------------------------------------------------------------------------------
    def add(self, vectors: np.ndarray, rows: Sequence[Row], ids: Sequence[int] | None) -> list[int]:
        psycopg = self._psycopg
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        for attempt in range(5):
            try:
                return self._add_once(vectors, rows, ids)
            except psycopg.errors.UniqueViolation:
                if ids is not None:  # another writer stored one of these ids since our check
                    raise ConflictError(
                        "an id of this batch was stored by another writer meanwhile (remove it first to "
                        "replace)",
                        column="id",
                    ) from None
                # ids=None collided with explicit ids that another writer stored ahead of the
                # sequence: the sequence has moved past them now, so the next try gets free ids.
                logger.info("id collision on add (try %d); retrying with new ids", attempt + 1)
            except psycopg.DataError as exc:
                raise InputError(f"PostgreSQL refused a value: {str(exc).strip().splitlines()[0]}") from None
        raise StoreError(f"{self.table} in {self.where}: could not assign free ids after 5 tries")

    def _add_once(self, vectors: np.ndarray, rows: Sequence[Row], ids: Sequence[int] | None) -> list[int]:
        from psycopg.types.json import Jsonb

        t, n = self.table, len(rows)
        slow = float(os.environ.get(_SLOW_ADD_ENV, "0") or 0)
        with self._conn() as conn, conn.transaction():
            if ids is None:
                new = [
                    r[0]
                    for r in conn.execute(f"SELECT nextval('{t}_id_seq') FROM generate_series(1, %s)", (n,))
                ]
            else:
                new = [int(i) for i in ids]
                present = [r[0] for r in conn.execute(f"SELECT id FROM {t} WHERE id = ANY(%s)", (new,))]
                if present:
                    first = min(new.index(i) for i in present)
                    raise ConflictError(
                        f"{len(present)} id(s) already stored, e.g. {sorted(present)[:5]} "
                        "(remove them first to replace)",
                        row=first + 1,
                        column="id",
                    )
                # keep add(ids=None) ahead of explicit ids (never moves the sequence back)
                conn.execute(
                    f"SELECT setval('{t}_id_seq', %s, true) WHERE %s > "
                    f"(SELECT CASE WHEN is_called THEN last_value ELSE -1 END FROM {t}_id_seq)",
                    (max(new), max(new)),
                )
            bulk = n >= BULK_MIN and conn.execute(f"SELECT NOT EXISTS (SELECT 1 FROM {t})").fetchone()[0]
            if bulk:  # one graph build after the copy: far faster than n incremental inserts
                conn.execute(f"LOCK TABLE {t} IN ACCESS EXCLUSIVE MODE")
                conn.execute(f"DROP INDEX IF EXISTS {t}_hnsw")
            with (
                conn.cursor() as cur,
                cur.copy(
                    f"COPY {t} (id, text, key, truncated, metadata, embedding) "
                    "FROM STDIN WITH (FORMAT BINARY)"
                ) as copy,
            ):
                copy.set_types(["int8", "text", "text", "bool", "jsonb", "vector"])
                for j, (i, row) in enumerate(zip(new, rows, strict=True)):
                    meta = None if row.metadata is None else Jsonb(row.metadata)
                    copy.write_row((i, row.text, row.key, bool(row.truncated), meta, vectors[j]))
                    if slow and j == n // 2:
                        _mark_halfway()
                        time.sleep(slow)
            if bulk:
                # the whole graph in memory while it is built (else pgvector builds on disk, much slower)
                conn.execute(f"SET LOCAL maintenance_work_mem = '{_graph_mb(n, vectors.shape[1])}MB'")
                conn.execute(self._hnsw_ddl())
        return new

    def remove(self, ids: Sequence[int], *, missing_ok: bool) -> int:
        wanted = [int(i) for i in ids]
        with self._conn() as conn, conn.transaction():
            got = {
                r[0]
                for r in conn.execute(f"DELETE FROM {self.table} WHERE id = ANY(%s) RETURNING id", (wanted,))
            }
            if len(got) < len(wanted) and not missing_ok:
                raise UnknownIdError([i for i in wanted if i not in got])  # rolls the delete back
        return len(got)

    # -- reads --------------------------------------------------------------------------------------
    def exact(self, keys: Sequence[str]) -> list[list[Hit]]:
        if not keys:
            return []
        with self._conn() as conn:
            found = conn.execute(
                f"SELECT key, id, text, truncated, metadata FROM {self.table} "
                "WHERE key = ANY(%s) ORDER BY id",
                (list(dict.fromkeys(keys)),),
            ).fetchall()
        by_key: dict[str, list[Hit]] = {}
        for key, i, text, trunc, meta in found:
            by_key.setdefault(key, []).append(Hit(int(i), 1.0, Row(text, key, bool(trunc), meta)))
        return [list(by_key.get(k, ())) for k in keys]

    def search(self, vectors: np.ndarray, k: int) -> list[list[Hit]]:
        out: list[list[Hit]] = []
        if not len(vectors):
            return out
        k = max(1, int(k))
        sql = (
            f"SELECT id, 1 - (embedding <=> %(q)s) AS score, text, key, truncated, metadata "
            f"FROM {self.table} ORDER BY embedding <=> %(q)s LIMIT %(k)s"
        )
        with self._conn() as conn:
            # HNSW returns at most ef_search rows: a larger k widens the beam for this query only
            wide = k > self.index.params["ef_search"]
            with conn.transaction() if wide else contextlib.nullcontext():
                if wide:
                    conn.execute("SELECT set_config('hnsw.ef_search', %s, true)", (str(min(k, 1000)),))
                for q in np.asarray(vectors, dtype=np.float32):
                    found = conn.execute(sql, {"q": q, "k": k}, binary=True).fetchall()
                    out.append(
                        [
                            Hit(int(i), min(float(s), 1.0), Row(text, key, bool(tr), meta))
                            for i, s, text, key, tr, meta in found
                        ]
                    )
        return out

    def get(self, id_: int) -> Row | None:
        with self._conn() as conn:
            r = conn.execute(
                f"SELECT text, key, truncated, metadata FROM {self.table} WHERE id = %s", (int(id_),)
            ).fetchone()
        return None if r is None else Row(r[0], r[1], bool(r[2]), r[3])

    def __len__(self) -> int:
        with self._conn() as conn:
            return int(conn.execute(f"SELECT count(*) FROM {self.table}").fetchone()[0])

    def __contains__(self, id_: object) -> bool:
        if isinstance(id_, bool) or not isinstance(id_, (int, np.integer)):
            return False
        with self._conn() as conn:
            return bool(
                conn.execute(
                    f"SELECT EXISTS (SELECT 1 FROM {self.table} WHERE id = %s)", (int(id_),)
                ).fetchone()[0]
            )

    def ids(self) -> list[int]:
        with self._conn() as conn:
            return [r[0] for r in conn.execute(f"SELECT id FROM {self.table} ORDER BY id")]

    def stats(self) -> dict[str, Any]:
        t = self.table
        with self._conn() as conn:
            count, distinct, trunc = conn.execute(
                f"SELECT count(*), count(DISTINCT key), count(*) FILTER (WHERE truncated) FROM {t}"
            ).fetchone()
            size = conn.execute("SELECT pg_total_relation_size(%s)", (t,)).fetchone()[0]
        return {
            "store": "postgresql",
            "database": self.where,
            "table": t,
            "count": int(count),
            "distinct_normalised_texts": int(distinct),
            "truncated": int(trunc),
            "index_kind": self.index.kind,
            "index_requested_kind": self.index.requested_kind,
            "index_params": dict(self.index.params),
            "table_bytes": int(size),
        }

    def export(self, batch_size: int = 10_000) -> Iterator[tuple[list[int], np.ndarray, list[Row]]]:
        with self._conn() as conn, conn.transaction(), conn.cursor(name="dupq_export") as cur:
            cur.itersize = batch_size
            cur.execute(f"SELECT id, text, key, truncated, metadata, embedding FROM {self.table} ORDER BY id")
            while rows := cur.fetchmany(batch_size):
                yield (
                    [int(r[0]) for r in rows],
                    np.stack([_as_array(r[5]) for r in rows]),
                    [Row(r[1], r[2], bool(r[3]), r[4]) for r in rows],
                )


def _graph_mb(n: int, dim: int) -> int:
    """Memory for an HNSW build of ``n`` vectors of ``dim``: vectors + neighbour lists, with headroom."""
    return int(min(8192, max(256, n * (4 * dim + 64 * HNSW_M) * 1.3 / 2**20)))


def _as_array(v: Any) -> np.ndarray:
    """A vector column value as float32 (pgvector returns ndarrays for text, ``Vector`` for binary)."""
    return np.asarray(v.to_numpy() if hasattr(v, "to_numpy") else v, dtype=np.float32)


def _mark_halfway() -> None:
    path = os.environ.get(_ADD_MARK_ENV)
    if path:
        with open(path, "w", encoding="utf-8") as f:
            f.write(str(os.getpid()))
