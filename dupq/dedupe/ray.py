"""The Ray engine of ``dupq dedupe``: the encoding stage as a Ray Data job (``--engine ray``).

Encoding is >95% of a dedupe run, and it is embarrassingly parallel, so this is the stage that scales
out. The unique texts are written as Parquet shards ``(uid, text)`` in the work directory; Ray Data
reads them, runs ``map_batches`` on an actor pool (one :class:`dupq.embed.Embedder` per actor, loaded
once; one GPU per actor when the cluster has GPUs) and writes Parquet shards ``(uid, vector bytes,
truncated)``; the driver then copies them into the same memory-mapped store the local engine fills,
and the search/grouping stages run unchanged — so both engines give the same output.

Ray is optional (``pip install "dupq[ray]"``) and imported only here. Locally Ray starts with this
machine's cores; ``address`` / ``$RAY_ADDRESS`` (``ray://head:10001`` or ``auto``) joins a cluster,
in which case the work directory must be on storage every node can read (NFS, a shared volume).
Resume works as for the local engine: output shards already written are ingested first, and only
text shards with missing vectors are sent to Ray again.
"""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from dupq.errors import DupqError

logger = logging.getLogger(__name__)

#: Texts per Ray Data batch (one Embedder.encode call per batch inside an actor).
RAY_BATCH_ROWS = 2048


def require_ray() -> Any:
    """Import Ray, or explain how to get it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise DupqError(
            "the Ray engine needs Ray Data: pip install 'dupq[ray]' (or use --engine local)"
        ) from exc
    return ray


def model_spec(model: Any) -> str | None:
    """What actors load: a model directory (``None`` = the embedded default).

    Actors run in other processes, maybe on other machines, so they get a path, not a Python object.
    """
    from dupq.embed import Embedder
    from dupq.encoder import model_source

    if model is None or isinstance(model, (str, Path)):
        return None if model is None else str(model)
    st = model.model if isinstance(model, Embedder) else model
    source = model_source(st)
    if source is None:
        raise DupqError(
            "the Ray engine loads the model in each actor and needs its directory; this model was not "
            "loaded from one (save it with model.save(DIR) and pass DIR)"
        )
    return source


class EmbedActor:
    """One model per actor, loaded once; encodes Ray Data batches of ``{"uid", "text"}``."""

    def __init__(
        self,
        model: str | None,
        backend: str,
        batch_size: int,
        device: str | None,
        threads: int,
        calibration: list[str] | None = None,
    ) -> None:
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        import torch

        from dupq.embed import Embedder

        if device != "cuda" and threads > 0:
            torch.set_num_threads(threads)
        self.embedder = Embedder(
            model, device=device, batch_size=batch_size, backend=backend, calibration=calibration
        )

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        texts = [str(t) for t in batch["text"]]
        vecs, too_long = self.embedder.encode_flagged(texts)
        blobs = np.empty(len(texts), dtype=object)
        for i, v in enumerate(vecs):
            blobs[i] = v.astype(np.float32).tobytes()
        return {"uid": np.asarray(batch["uid"], dtype=np.int64), "vector": blobs, "truncated": too_long}


def _init_ray(ray: Any, address: str | None) -> bool:
    """Connect or start Ray; return True when this call started it (and so should stop it)."""
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, logging_level=logging.WARNING)
    else:
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level=logging.WARNING)
    return True


def ingest_outputs(store: Any) -> int:
    """Copy every readable Ray output shard into ``store``; return how many vectors were new."""
    import pyarrow.parquet as pq

    out_root = store.dir / "ray-out"
    if not out_root.exists():
        return 0
    dim = store.meta["dim"]
    new = 0
    for path in sorted(out_root.rglob("*.parquet")):
        try:
            table = pq.read_table(path, columns=["uid", "vector", "truncated"])
        except Exception:  # a shard cut short by a kill: its texts are simply encoded again
            logger.warning("ignoring unreadable Ray output shard %s", path)
            continue
        if table.num_rows == 0:
            continue
        uids = table.column("uid").to_numpy().astype(np.int64)
        blobs = table.column("vector").to_pylist()
        vecs = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(blobs), dim)
        truncated = table.column("truncated").to_numpy(zero_copy_only=False).astype(bool)
        new += int((~store.done[uids]).sum())
        store.write_rows(uids, vecs, truncated)
    return new


def encode_store(
    store: Any,
    *,
    model: Any,
    backend: str = "torch",
    batch_size: int = 64,
    address: str | None = None,
    show_progress: bool = True,
    calibration: list[str] | None = None,
) -> int:
    """Fill the not-yet-done rows of a dedupe embeddings store with Ray Data; return how many were encoded."""
    ray = require_ray()
    import pyarrow.parquet as pq

    before = int(store.done.sum())
    ingest_outputs(store)  # a previous, interrupted Ray run may have finished some shards
    texts_dir = store.dir / "texts"
    pending = []
    for path in sorted(texts_dir.glob("part-*.parquet")):
        uids = pq.read_table(path, columns=["uid"]).column("uid").to_numpy()
        if len(uids) and not store.done[uids].all():
            pending.append(str(path))
    if not pending:
        return int(store.done.sum()) - before
    started = _init_ray(ray, address)
    try:
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        cpus = int(resources.get("CPU", 1))
        if gpus >= 1:
            compute = {"num_gpus": 1, "concurrency": gpus}
            device, threads = "cuda", 0
        else:
            # Leave one CPU for reading/writing tasks; give each actor a few intra-op threads.
            per_actor = 1 if cpus <= 2 else min(4, cpus // 2)
            compute = {"num_cpus": per_actor, "concurrency": max(1, (cpus - 1) // per_actor)}
            device, threads = "cpu", per_actor
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = bool(show_progress)
        run_dir = store.dir / "ray-out" / uuid.uuid4().hex[:12]
        logger.info("Ray: %d text shards, %s", len(pending), compute)
        ds = ray.data.read_parquet(pending, columns=["uid", "text"])
        ds = ds.map_batches(
            EmbedActor,
            fn_constructor_kwargs={
                "model": model_spec(model),
                "backend": backend,
                "calibration": calibration,  # the driver's sample: every actor quantises alike
                "batch_size": batch_size,
                "device": device,
                "threads": threads,
            },
            batch_size=RAY_BATCH_ROWS,
            batch_format="numpy",
            **compute,
        )
        ds.write_parquet(str(run_dir))
    finally:
        if started:
            ray.shutdown()
    ingest_outputs(store)
    missing = int((~store.done).sum())
    if missing:
        raise DupqError(f"the Ray job finished but {missing} texts have no vector; rerun to resume")
    return int(store.done.sum()) - before
