"""Stage 2, **encode**: the resumable embedding store and the encoding loop that fills it.

The unique texts are encoded through :class:`dupq.embed.Embedder` (sorted by length, batched, with a
progress bar) into a memory-mapped array in the work directory, shard by shard. A per-text "done"
marker is saved after each shard, keyed by a fingerprint of the unique texts, the model's weights, the
backend and the storage dtype; an interrupted run (Ctrl-C, kill, crash) resumes from the embeddings
already written. ``engine="ray"`` runs this stage on Ray Data (:mod:`dupq.dedupe.ray`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm.auto import tqdm

from dupq.io import atomic_path, atomic_write_json

#: Progress is made durable (vectors flushed, ``done.npy`` replaced) at the end of every shard and, within
#: a shard, once this many seconds have passed: a kill loses at most about this much encoding.
SAVE_EVERY_SECONDS = 30.0
#: Texts encoded per call inside a shard (the granularity of the time-based saves).
PIECE = 2048

if TYPE_CHECKING:
    from dupq.dedupe.config import DedupeConfig
    from dupq.dedupe.tokens import TokenSpill
    from dupq.embed import Embedder

logger = logging.getLogger(__name__)


class EmbeddingStore:
    """Embeddings of one list of unique texts under one model, memory-mapped, with per-text done flags.

    Files: ``meta.json`` (what the vectors are of), ``vectors.npy`` (a memory-mapped ``.npy``),
    ``done.npy`` / ``truncated.npy`` (bool per text, replaced atomically after each shard), and for
    the Ray engine ``texts/`` and ``ray-out/`` (Parquet shards). The directory name is derived from
    the fingerprint, so a changed input or model can never pick up stale vectors.
    """

    def __init__(self, directory: Path, meta: dict) -> None:
        self.dir = directory
        self.meta = meta
        n, dim = meta["n"], meta["dim"]
        vec_path = directory / "vectors.npy"
        if n == 0:
            self.vectors = np.zeros((0, dim), dtype=meta["dtype"])
        elif vec_path.exists():
            self.vectors = np.load(vec_path, mmap_mode="r+")
        else:
            self.vectors = np.lib.format.open_memmap(vec_path, mode="w+", dtype=meta["dtype"], shape=(n, dim))
        self.done = self._load_flags("done.npy", n)
        self.truncated = self._load_flags("truncated.npy", n)

    @classmethod
    def open(
        cls, workdir: Path, digest: str, model_fp: str, backend: str, n: int, dim: int, dtype: str
    ) -> EmbeddingStore:
        key = hashlib.sha256(f"{digest}|{model_fp}|{backend}|{dtype}|{n}|{dim}".encode()).hexdigest()
        directory = workdir / f"emb-{key[:24]}"
        meta = {
            "format": "dupq-dedupe-embeddings",
            "version": 1,
            "key": key,
            "texts_sha256": digest,
            "model_fingerprint": model_fp,
            "backend": backend,
            "dtype": dtype,
            "n": n,
            "dim": dim,
        }
        meta_path = directory / "meta.json"
        if directory.exists():
            try:
                old = json.loads(meta_path.read_text(encoding="utf-8"))
                vec = np.load(directory / "vectors.npy", mmap_mode="r") if n else None
                ok = old == meta and (vec is None or (vec.shape == (n, dim) and vec.dtype == np.dtype(dtype)))
            except (OSError, ValueError):
                ok = False
            if not ok:
                logger.warning("discarding an incompatible or damaged embeddings store at %s", directory)
                shutil.rmtree(directory)
        if not directory.exists():
            directory.mkdir(parents=True)
            atomic_write_json(meta_path, meta)
        store = cls(directory, meta)
        if store.done.any():
            logger.info("resuming: %d of %d embeddings already in %s", int(store.done.sum()), n, directory)
        return store

    def _load_flags(self, name: str, n: int) -> np.ndarray:
        path = self.dir / name
        if path.exists():
            try:
                flags = np.load(path)
                if flags.shape == (n,) and flags.dtype == bool:
                    return flags
            except (OSError, ValueError):
                pass
        return np.zeros(n, dtype=bool)

    def reopen_readonly(self) -> None:
        """Swap the writable memmap for per-read mappings (:class:`MappedRows`) once encoding is done."""
        if isinstance(self.vectors, np.memmap):
            self.vectors.flush()
            path = Path(self.vectors.filename)
            self.vectors = MappedRows(path)

    def pending_shards(self, chunk: int) -> list[tuple[int, int]]:
        """``(start, stop)`` of each shard with at least one text not encoded yet."""
        n = self.meta["n"]
        return [(s, min(s + chunk, n)) for s in range(0, n, chunk) if not self.done[s : s + chunk].all()]

    def write_rows(self, uids: np.ndarray, vectors: np.ndarray, truncated: np.ndarray) -> None:
        """Store scattered rows' vectors, flush them, then mark them done (Ray output shards)."""
        self.vectors[uids] = vectors.astype(self.vectors.dtype)
        self.mark_done(uids, truncated)

    def mark_done(self, uids: np.ndarray, truncated: np.ndarray) -> None:
        if isinstance(self.vectors, np.memmap):
            self.vectors.flush()
        self.done[uids] = True
        self.truncated[uids] = truncated
        self._save_flags("truncated.npy", self.truncated)
        self._save_flags("done.npy", self.done)

    def _save_flags(self, name: str, flags: np.ndarray) -> None:
        with atomic_path(self.dir / name) as tmp, open(tmp, "wb") as fh:
            np.save(fh, flags)

    def write_text_shards(self, texts: list[str], chunk: int) -> list[Path]:
        """Parquet shards ``(uid, text)`` for engines that read texts from files (Ray)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        tdir = self.dir / "texts"
        tdir.mkdir(exist_ok=True)
        paths = []
        for i, start in enumerate(range(0, len(texts), chunk)):
            path = tdir / f"part-{i:06d}-{chunk}.parquet"
            if not path.exists():
                table = pa.table(
                    {
                        "uid": pa.array(np.arange(start, min(start + chunk, len(texts)), dtype=np.int64)),
                        "text": pa.array(texts[start : start + chunk], type=pa.string()),
                    }
                )
                with atomic_path(path) as tmp:
                    pq.write_table(table, tmp)
            paths.append(path)
        return paths


class Subset:
    """Rows ``rows`` of a (memory-mapped) array, sliceable like an array (for the search stage)."""

    def __init__(self, array: np.ndarray, rows: np.ndarray) -> None:
        self.array, self.rows = array, rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, item: slice) -> np.ndarray:
        return self.array[self.rows[item]]

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.rows), self.array.shape[1])

    @property
    def dtype(self) -> np.dtype:
        return self.array.dtype


class MappedRows:
    """Read-only rows of a ``.npy`` file, memory-mapped only for the duration of each read.

    A long-lived memmap keeps every page it has touched resident, and counted in the process's RSS
    (the whole 768 MB of a 1M-row float16 store once search has read it all); mapping per read keeps
    RSS to the rows being read, for one ``mmap`` call per chunk of rows.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        m = np.load(path, mmap_mode="r")
        self.shape: tuple[int, int] = m.shape
        self.dtype = m.dtype
        del m

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, item: Any) -> np.ndarray:
        m = np.load(self.path, mmap_mode="r")
        try:
            return np.array(m[item])
        finally:
            del m


def release_memory() -> None:
    """Collect garbage and hand freed heap back to the OS (glibc keeps it otherwise), so the peak
    RSS of a large run is the index and the pairs, not the model that is no longer used."""
    import gc

    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


def _encode_shard(
    store: EmbeddingStore,
    texts: list[str],
    uids: np.ndarray,
    embedder: Embedder,
    cfg: DedupeConfig,
    bar: Any,
    spill: TokenSpill | None,
) -> int:
    """Encode one shard's pending texts in pieces; mark them done every :data:`SAVE_EVERY_SECONDS`
    and at the end (a shard of 16k texts can take minutes on a CPU)."""
    unsaved: list[tuple[np.ndarray, np.ndarray]] = []
    last_save = time.monotonic()
    for p in range(0, len(uids), PIECE):
        sel = uids[p : p + PIECE]
        piece = [texts[i] for i in sel]
        sink = None if spill is None else (lambda pos, *batch, sel=sel: spill.add(sel[pos], *batch))
        vectors, too_long = embedder.encode_flagged(piece, batch_size=cfg.batch_size, token_sink=sink)
        store.vectors[sel] = vectors.astype(store.vectors.dtype)
        unsaved.append((sel, too_long))
        bar.update(len(sel))
        if time.monotonic() - last_save >= SAVE_EVERY_SECONDS or p + PIECE >= len(uids):
            store.mark_done(np.concatenate([u for u, _ in unsaved]), np.concatenate([t for _, t in unsaved]))
            unsaved, last_save = [], time.monotonic()
    return len(uids)


def encode(
    store: EmbeddingStore,
    texts: list[str],
    embedder: Embedder,
    cfg: DedupeConfig,
    spill: TokenSpill | None = None,
) -> int:
    """Encode the texts of ``store`` that are not done yet; return how many were encoded.

    ``spill``: where the same pass's token vectors go, for the verifier (:mod:`dupq.dedupe.tokens`)."""
    chunk = cfg.chunk_size
    pending = store.pending_shards(chunk)
    if not pending:
        return 0
    if cfg.engine == "ray":
        from dupq.dedupe.ray import encode_store

        store.write_text_shards(texts, chunk)
        return encode_store(
            store,
            model=embedder,
            backend=embedder.backend,  # auto resolved once here, not probed again in every actor
            calibration=embedder.calibration,
            batch_size=cfg.batch_size,
            address=cfg.ray_address,
            show_progress=cfg.show_progress,
        )
    todo = sum(int((~store.done[start:stop]).sum()) for start, stop in pending)
    encoded = 0
    with tqdm(
        total=len(texts), initial=len(texts) - todo, desc="encoding", unit="q", disable=not cfg.show_progress
    ) as bar:
        for start, stop in pending:
            encoded += _encode_shard(
                store, texts, start + np.flatnonzero(~store.done[start:stop]), embedder, cfg, bar, spill
            )
    return encoded
