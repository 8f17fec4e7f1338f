"""A thin, honest wrapper over FAISS for unit-length embeddings searched by inner product (= cosine).

Three kinds, one interface (:class:`VectorIndex`):

``flat``
    ``IndexIDMap2(IndexFlatIP)``: exact search, no training, native ``remove_ids``. Search time grows
    linearly with the collection (about 0.2 ms per 1k stored 384-d vectors per query here), which is
    why large collections use an approximate kind.
``hnsw``
    ``IndexIDMap2(IndexHNSWFlat)``: a navigable small-world graph; fast and high-recall, incremental
    adds without training. FAISS cannot delete from an HNSW graph, so :meth:`VectorIndex.remove`
    keeps a *tombstone* set that searches exclude through an ``IDSelector`` (no over-fetch needed,
    results stay top-k), and the graph is rebuilt without the tombstones ("compaction") once they
    exceed :data:`COMPACT_TOMBSTONE_RATIO` of the stored vectors, or when a removed id is added again.
``ivf``
    ``IndexIVFFlat`` with a hashtable direct map: k-means cells, search visits ``nprobe`` of
    ``nlist`` cells. Ids are stored natively by IVF (an ``IndexIDMap2`` around an IVF would fall
    out of step on ``remove_ids``, because IVF does not renumber its internal ids). IVF must be
    trained; it trains on the first add that brings enough vectors (:func:`ivf_min_train`). Until
    then an index asked to be IVF *is* exact flat (``kind == "flat"``, ``requested_kind == "ivf"``)
    and converts itself once it has enough vectors.

``auto`` (the default of :meth:`VectorIndex.build` and of :class:`dupq.Matcher`) is exact flat up to
:data:`AUTO_FLAT_MAX` vectors and :data:`AUTO_APPROX_KIND` above; an index that grows past the
cut-off through :meth:`VectorIndex.add` converts itself once (a rebuild, logged).

The defaults below were chosen from ``benchmarks/matcher.py`` (a 500k run, in the git history of
``benchmarks/results/matcher.json``): the cheapest measured settings that reach recall@10 >= 0.98 against
exact search at 500k vectors, and the largest flat size that keeps single-query p99 under 25 ms.

Vectors must be L2-normalised float32 (what :class:`dupq.embed.Embedder` returns); ``add`` checks
it because an un-normalised vector silently breaks "inner product = cosine". A ``VectorIndex`` is
not itself thread-safe for writes; :class:`dupq.matcher.Matcher` wraps it in a readers–writer lock
(FAISS searches are read-only and may run concurrently).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from dupq.errors import StoreError
from dupq.io import atomic_path
from dupq.runtime import allowed_cpus

logger = logging.getLogger(__name__)

KINDS = ("flat", "hnsw", "ivf")
# Defaults measured by benchmarks/matcher.py (git history of results/matcher.json): all-MiniLM-L6-v2
# vectors (384-d), 500k stored, 1000 held-out real questions as queries, k=10, 2 cores under load ~7:
#
#   kind  setting               search p50/p99 ms   recall@10   build s
#   flat  exact                 105.8 / 126.3       1.0000        8.9
#   hnsw  M=32 efC=80 ef=128      0.50 / 4.80       0.9565      355
#   hnsw  M=32 efC=80 ef=256      0.89 / 9.25       0.9809      355
#   ivf   nlist=1414 nprobe=64    7.32 / 12.78      0.9769      104
#   ivf   nlist=1414 nprobe=128  12.95 / 18.84      0.9875      104
#
#: ``auto``: exact flat search up to this many vectors, :data:`AUTO_APPROX_KIND` above. Exact
#: single-query p99 measured: 18 ms at 50k, 29 ms at 100k, 151 ms at 500k — 50k is the largest size
#: measured under the 25 ms p99 target.
AUTO_FLAT_MAX = 50_000
#: The approximate kind ``auto`` switches to: HNSW had the lowest p99 at recall@10 >= 0.98, and needs
#: no training (incremental adds of a live Q&A site just work). Its cost: slower builds, more memory.
AUTO_APPROX_KIND = "hnsw"
#: HNSW graph degree and build-time beam width (M=32/efC=80: a 500k build in ~6 min on 2 busy cores).
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
#: HNSW search beam: the smallest measured value with recall@10 >= 0.98 at 500k (0.981; ef=128: 0.957).
HNSW_EF_SEARCH = 256
#: IVF cells probed per query: the smallest measured value with recall@10 >= 0.98 at 500k (0.988 with
#: nlist=1414; nprobe=64: 0.977). ``nlist`` defaults to :func:`default_nlist` of the training size.
IVF_NPROBE = 128
#: FAISS warns below 39 training points per centroid; below that k-means is poor and recall drops.
IVF_MIN_POINTS_PER_CELL = 39
#: Fewer cells than this make IVF pointless (a flat scan of 1/8 of the data per list): stay flat.
IVF_MIN_NLIST = 8
#: HNSW compaction: rebuild once tombstones exceed this fraction of the stored vectors.
COMPACT_TOMBSTONE_RATIO = 0.2

_MAGIC = b"DUPQIDX1"
_FORMAT_VERSION = 1
_NORM_TOLERANCE = 1e-3


#: Searches of fewer queries than this run on one OpenMP thread. Measured (benchmarks/matcher.py): on a
#: busy 2-core machine a 2-thread parallel region for a single query waits for a descheduled thread
#: and p50 jumps from ~0.3 ms to ~16 ms (HNSW); one thread has nothing to wait for.
SINGLE_THREAD_BELOW = 16
_threads = 1


def set_num_threads(n: int | None = None) -> int:
    """Set the OpenMP thread count FAISS uses for builds and batch searches.

    ``None``: ``$DUPQ_FAISS_THREADS``, else the CPUs this process may use (FAISS's own default counts
    every core of the machine, ignoring CPU affinity and container limits, and more threads than usable
    cores makes spinning threads fight). Small searches always use one thread (:data:`SINGLE_THREAD_BELOW`).
    OpenMP keeps this setting per OS thread, so :class:`VectorIndex` re-applies it on every call.
    """
    global _threads
    if n is None:
        env = os.environ.get("DUPQ_FAISS_THREADS")
        n = int(env) if env else allowed_cpus()
    _threads = max(1, int(n))
    faiss.omp_set_num_threads(_threads)
    return _threads


def _use_threads(n_queries: int | None = None) -> None:
    faiss.omp_set_num_threads(1 if n_queries is not None and n_queries < SINGLE_THREAD_BELOW else _threads)


set_num_threads()


def default_nlist(n: int) -> int:
    """IVF cell count for ``n`` training vectors: ``2*sqrt(n)``, capped so every cell gets at least
    :data:`IVF_MIN_POINTS_PER_CELL` training points.

    FAISS suggests 4–16·sqrt(n) for millions of vectors; at 100k–500k a query's cost is dominated by
    scanning ``nprobe * n / nlist`` vectors plus ``nlist`` centroids, and 2·sqrt(n) keeps k-means
    training (the slow part of building) about 4x cheaper than 4·sqrt(n) at the same recall per scanned
    vector (benchmarks/matcher.py sweeps ``nprobe`` on top of it)."""
    if n <= 0:
        return 0
    return int(max(1, min(2 * math.sqrt(n), n // IVF_MIN_POINTS_PER_CELL, 65536)))


def ivf_min_train(nlist: int | None) -> int:
    """How many vectors an IVF index needs before it trains (else it stays exact flat): 39 per cell,
    with :data:`IVF_MIN_NLIST` cells when ``nlist`` is left to :func:`default_nlist`."""
    return IVF_MIN_POINTS_PER_CELL * (nlist or IVF_MIN_NLIST)


class VectorIndex:
    """FAISS inner-product index over L2-normalised float32 vectors with caller-chosen int64 ids.

    ``kind`` is ``"flat"``, ``"hnsw"``, ``"ivf"`` or ``"auto"`` (see the module docstring); the
    attribute :attr:`kind` is always the kind actually in use and :attr:`requested_kind` what was asked.
    ``params``: ``M``, ``ef_construction``, ``ef_search`` (HNSW); ``nlist``, ``nprobe`` (IVF);
    ``storage``: ``"float32"`` (default) or ``"float16"`` — how the HNSW kind stores its vectors
    (``IndexHNSWSQ`` fp16: half the memory, cosine error ~1e-3, which is what vectors kept as float16
    on disk already carry; the flat and IVF kinds always store float32).
    """

    def __init__(self, dim: int, kind: str = "flat", **params: Any) -> None:
        if kind not in (*KINDS, "auto"):
            raise ValueError(f"unknown index kind {kind!r}; expected one of {(*KINDS, 'auto')}")
        if int(dim) <= 0:
            raise ValueError(f"dim must be positive, got {dim}")
        unknown = set(params) - {"M", "ef_construction", "ef_search", "nlist", "nprobe", "storage"}
        if unknown:
            raise ValueError(f"unknown index parameter(s) {sorted(unknown)}")
        self.dim = int(dim)
        self.requested_kind = kind
        self.params: dict[str, Any] = {
            "M": int(params.get("M", HNSW_M)),
            "ef_construction": int(params.get("ef_construction", HNSW_EF_CONSTRUCTION)),
            "ef_search": int(params.get("ef_search", HNSW_EF_SEARCH)),
            "nlist": int(params["nlist"]) if params.get("nlist") else None,
            "nprobe": int(params.get("nprobe", IVF_NPROBE)),
            "storage": str(params.get("storage", "float32")),
        }
        if self.params["storage"] not in ("float32", "float16"):
            raise ValueError(f"storage must be 'float32' or 'float16', got {self.params['storage']!r}")
        self._ids: set[int] = set()  # live ids
        self._tombstones: set[int] = set()  # HNSW only: stored but removed
        self._selector: Any = None
        # An "ivf" or "auto" index starts exact and converts itself when it has grown enough.
        self.kind = "hnsw" if kind == "hnsw" else "flat"
        self._index = self._new_faiss(self.kind)

    # -- construction -----------------------------------------------------------------------------
    @classmethod
    def build(
        cls, vectors: np.ndarray, ids: np.ndarray | None = None, kind: str = "auto", **params: Any
    ) -> VectorIndex:
        """An index holding ``vectors`` (ids default to ``0..n-1``); ``auto`` picks the kind from ``n``."""
        vectors = _as_matrix(vectors)
        if ids is None:
            ids = np.arange(len(vectors), dtype=np.int64)
        index = cls(vectors.shape[1], kind, **params)
        if kind == "auto" and len(vectors) > AUTO_FLAT_MAX:
            index.kind = AUTO_APPROX_KIND
            index._index = index._new_faiss(index.kind)
        index.add(vectors, ids)
        return index

    def _new_faiss(self, kind: str, nlist: int | None = None) -> Any:
        if kind == "flat":
            return faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
        if kind == "hnsw":
            if self.params.get("storage", "float32") == "float16":
                hnsw = faiss.IndexHNSWSQ(
                    self.dim, faiss.ScalarQuantizer.QT_fp16, self.params["M"], faiss.METRIC_INNER_PRODUCT
                )
            else:
                hnsw = faiss.IndexHNSWFlat(self.dim, self.params["M"], faiss.METRIC_INNER_PRODUCT)
            hnsw.hnsw.efConstruction = self.params["ef_construction"]
            hnsw.hnsw.efSearch = self.params["ef_search"]
            return faiss.IndexIDMap2(hnsw)
        if kind == "ivf":
            assert nlist is not None
            quantizer = faiss.IndexFlatIP(self.dim)
            ivf = faiss.IndexIVFFlat(quantizer, self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
            ivf.own_fields = True
            quantizer.this.disown()
            ivf.cp.spherical = True  # centroids on the unit sphere: the right k-means for cosine
            ivf.cp.niter = 20
            # k-means on at most 64 points per cell: training cost is what makes IVF slow to build, and
            # more points barely move the centroids for unit-sphere text embeddings.
            ivf.cp.max_points_per_centroid = 64
            ivf.set_direct_map_type(faiss.DirectMap.Hashtable)  # reconstruct/remove by id
            ivf.nprobe = self.params["nprobe"]
            return ivf
        raise ValueError(kind)

    # -- writes -----------------------------------------------------------------------------------
    def add(self, vectors: np.ndarray, ids: np.ndarray | Iterable[int]) -> None:
        """Add unit vectors under ``ids`` (unique, not already present: else ``ValueError``)."""
        vectors = _as_matrix(vectors)
        ids = np.ascontiguousarray(
            np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids), np.int64
        )
        if ids.ndim != 1 or len(ids) != len(vectors):
            raise ValueError(f"{len(vectors)} vectors but ids of shape {ids.shape}")
        if vectors.shape[1] != self.dim:
            raise ValueError(f"vectors have dimension {vectors.shape[1]}, index has {self.dim}")
        if len(vectors) == 0:
            return
        if not np.isfinite(vectors).all():
            raise ValueError("vectors contain NaN or infinity")
        norms = np.linalg.norm(vectors, axis=1)
        bad = np.flatnonzero(np.abs(norms - 1.0) > _NORM_TOLERANCE)
        if len(bad):
            raise ValueError(
                f"{len(bad)} vector(s) are not L2-normalised "
                f"(first: row {bad[0]}, norm {norms[bad[0]]:.4f}); "
                "inner product equals cosine only for unit vectors"
            )
        uniq = np.unique(ids)
        if len(uniq) != len(ids):
            vals, counts = np.unique(ids, return_counts=True)
            raise ValueError(f"duplicate ids in one add: {vals[counts > 1][:5].tolist()}")
        id_list = ids.tolist()
        present = [i for i in id_list if i in self._ids]
        if present:
            raise ValueError(f"{len(present)} id(s) already in the index, e.g. {present[:5]}")
        if self._tombstones and not self._tombstones.isdisjoint(id_list):
            self.compact()  # a removed id comes back: drop the dead graph node first
        if self.kind == "ivf" and not self._index.is_trained:
            raise AssertionError("an untrained IVF index is never kept")
        _use_threads()
        self._index.add_with_ids(vectors, ids)
        self._ids.update(id_list)
        self._maybe_convert()

    def remove(self, ids: Iterable[int] | np.ndarray | int) -> int:
        """Remove ``ids``; unknown ids are ignored. Returns how many were removed."""
        if isinstance(ids, (int, np.integer)):
            ids = [int(ids)]
        wanted = {int(i) for i in (ids.tolist() if isinstance(ids, np.ndarray) else ids)}
        hit = wanted & self._ids
        if not hit:
            return 0
        arr = np.fromiter(hit, dtype=np.int64, count=len(hit))
        if self.kind == "hnsw":
            self._tombstones.update(hit)
            self._ids.difference_update(hit)
            self._selector = None
            if len(self._tombstones) > COMPACT_TOMBSTONE_RATIO * self._index.ntotal:
                self.compact()
        else:
            # IVF's hashtable direct map only accepts an IDSelectorArray (which must outlive the call).
            sel = faiss.IDSelectorArray(len(arr), faiss.swig_ptr(arr))
            removed = self._index.remove_ids(sel)
            if removed != len(hit):  # would mean our id set and FAISS disagree: a bug, not bad input
                raise AssertionError(f"FAISS removed {removed} of {len(hit)} ids")
            self._ids.difference_update(hit)
        return len(hit)

    def compact(self) -> None:
        """Rebuild an HNSW graph without its tombstones (no-op for other kinds or without tombstones)."""
        if self.kind != "hnsw" or not self._tombstones:
            return
        _use_threads()
        ids, vecs = self.reconstruct_all()
        logger.info("compacting HNSW index: %d live, %d removed", len(ids), len(self._tombstones))
        self._index = self._new_faiss("hnsw")
        self._tombstones.clear()
        self._selector = None
        if len(ids):
            self._index.add_with_ids(vecs, ids)

    def _maybe_convert(self) -> None:
        n = len(self._ids)
        target = None
        if self.kind == "flat":
            if self.requested_kind == "auto" and n > AUTO_FLAT_MAX:
                target = AUTO_APPROX_KIND
            elif self.requested_kind == "ivf" and n >= ivf_min_train(self.params["nlist"]):
                target = "ivf"
        if target is None:
            return
        _use_threads()
        ids, vecs = self.reconstruct_all()
        logger.info("index grew to %d vectors: converting flat -> %s", n, target)
        if target == "ivf":
            nlist = self.params["nlist"] or default_nlist(n)
            if not self.params["nlist"] and nlist < IVF_MIN_NLIST:
                return
            new = self._new_faiss("ivf", nlist)
            new.train(vecs)
            self.params["nlist"] = nlist
        else:
            new = self._new_faiss(target)
        new.add_with_ids(vecs, ids)
        self._index, self.kind = new, target
        self._selector = None

    def set_search_params(self, *, ef_search: int | None = None, nprobe: int | None = None) -> None:
        """Change the speed/recall trade-off of an existing index (HNSW ``ef_search``, IVF ``nprobe``)."""
        if ef_search is not None:
            self.params["ef_search"] = int(ef_search)
            if self.kind == "hnsw":
                faiss.downcast_index(self._index.index).hnsw.efSearch = int(ef_search)
        if nprobe is not None:
            self.params["nprobe"] = int(nprobe)
            if self.kind == "ivf":
                self._index.nprobe = int(nprobe)

    # -- reads ------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, id_: object) -> bool:
        return isinstance(id_, (int, np.integer)) and int(id_) in self._ids

    def __repr__(self) -> str:
        return f"VectorIndex(kind={self.kind!r}, dim={self.dim}, n={len(self)}, params={self.params})"

    @property
    def ids(self) -> np.ndarray:
        """The live ids (sorted)."""
        return np.sort(np.fromiter(self._ids, dtype=np.int64, count=len(self._ids)))

    def _search_params(self) -> Any:
        if self.kind == "hnsw" and self._tombstones:
            if self._selector is None:
                dead = np.fromiter(self._tombstones, dtype=np.int64, count=len(self._tombstones))
                batch = faiss.IDSelectorBatch(dead)
                sel = faiss.IDSelectorNot(batch)
                self._selector = (batch, sel)  # keep the wrapped selector alive with its wrapper
            return faiss.SearchParametersHNSW(sel=self._selector[1], efSearch=self.params["ef_search"])
        return None

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` by cosine: ``(scores float32 (n,k), ids int64 (n,k))``, best first.

        Where fewer than ``k`` vectors exist the tail is ``id == -1`` with ``score == -inf``.
        """
        queries = _as_matrix(queries)
        if queries.shape[1] != self.dim:
            raise ValueError(f"queries have dimension {queries.shape[1]}, index has {self.dim}")
        if k <= 0:
            raise ValueError(f"k must be positive, got {k}")
        n = len(queries)
        if n == 0 or not self._ids:
            return np.full((n, k), -np.inf, np.float32), np.full((n, k), -1, np.int64)
        params = self._search_params()
        _use_threads(n)
        if params is not None:
            scores, ids = self._index.search(queries, k, params=params)
        else:
            scores, ids = self._index.search(queries, k)
        scores = np.asarray(scores, dtype=np.float32)
        scores[ids < 0] = -np.inf
        return scores, np.asarray(ids, dtype=np.int64)

    def range_search(self, queries: np.ndarray, min_score: float) -> list[tuple[np.ndarray, np.ndarray]]:
        """Every stored vector with cosine ``>= min_score``, per query ``(ids, scores)`` sorted best first.

        Exact for ``flat``; for ``hnsw`` the graph walk visits about ``ef_search`` candidates, and for
        ``ivf`` only ``nprobe`` cells, so very large neighbourhoods can be incomplete there.
        """
        queries = _as_matrix(queries)
        if queries.shape[1] != self.dim:
            raise ValueError(f"queries have dimension {queries.shape[1]}, index has {self.dim}")
        n = len(queries)
        if n == 0 or not self._ids:
            return [(np.zeros(0, np.int64), np.zeros(0, np.float32)) for _ in range(n)]
        if self.kind != "flat":
            return self._range_by_knn(queries, min_score)
        # FAISS keeps scores strictly above the radius for inner product; we promise >=.
        radius = float(np.nextafter(np.float32(min_score), np.float32(-np.inf)))
        params = self._search_params()
        _use_threads(n)
        if params is not None:
            lims, scores, ids = self._index.range_search(queries, radius, params=params)
        else:
            lims, scores, ids = self._index.range_search(queries, radius)
        out = []
        for q in range(n):
            s, i = scores[lims[q] : lims[q + 1]], ids[lims[q] : lims[q + 1]]
            keep = s >= np.float32(min_score)
            s, i = s[keep], i[keep]
            order = np.lexsort((i, -s))
            out.append((np.asarray(i[order], np.int64), np.asarray(s[order], np.float32)))
        return out

    def _range_by_knn(self, queries: np.ndarray, min_score: float) -> list[tuple[np.ndarray, np.ndarray]]:
        """Range search for the approximate kinds as top-k searches with a growing k.

        FAISS's own ``range_search`` on HNSW aborted the process inside ``RangeSearchResult`` on a
        100k-question dedupe run (large neighbourhoods, many queries); k-NN search over the same
        graph (with tombstones already filtered by :meth:`search`) has no such path. A query is
        searched again with 4× the k while all of its k results are still above ``min_score``.
        """
        n = len(queries)
        out: list[tuple[np.ndarray, np.ndarray]] = [(np.zeros(0, np.int64), np.zeros(0, np.float32))] * n
        pending = np.arange(n)
        k = 64
        total = len(self)
        while len(pending):
            k = min(k, total)
            scores, ids = self.search(queries[pending], k)
            again = []
            for row, q in enumerate(pending):
                s, i = scores[row], ids[row]
                valid = i >= 0
                if k < total and valid.all() and s[-1] >= min_score:
                    again.append(q)
                    continue
                keep = valid & (s >= np.float32(min_score))
                s, i = s[keep], i[keep]
                order = np.lexsort((i, -s))
                out[q] = (np.asarray(i[order], np.int64), np.asarray(s[order], np.float32))
            pending = np.asarray(again, dtype=np.int64)
            k *= 4
        return out

    def reconstruct_all(self) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, vectors)`` of every live vector (the index stores them uncompressed)."""
        if self.kind == "ivf":
            from faiss.contrib.inspect_tools import get_invlist

            ids_parts, vec_parts = [], []
            for cell in range(self._index.nlist):
                cids, codes = get_invlist(self._index.invlists, cell)
                ids_parts.append(cids)
                vec_parts.append(codes.view(np.float32).reshape(-1, self.dim))
            ids = np.concatenate(ids_parts) if ids_parts else np.zeros(0, np.int64)
            vecs = np.concatenate(vec_parts) if vec_parts else np.zeros((0, self.dim), np.float32)
        else:
            ntotal = self._index.ntotal
            ids = faiss.vector_to_array(self._index.id_map).astype(np.int64)
            vecs = (
                self._index.index.reconstruct_n(0, ntotal) if ntotal else np.zeros((0, self.dim), np.float32)
            )
        if self._tombstones:
            live = np.fromiter((i in self._ids for i in ids.tolist()), dtype=bool, count=len(ids))
            ids, vecs = ids[live], vecs[live]
        order = np.argsort(ids, kind="stable")
        return ids[order], np.ascontiguousarray(vecs[order], dtype=np.float32)

    def reconstruct(self, ids: Iterable[int]) -> np.ndarray:
        """The stored vectors of ``ids`` (``KeyError`` for an id not in the index)."""
        ids = [int(i) for i in ids]
        out = np.empty((len(ids), self.dim), np.float32)
        for row, i in enumerate(ids):
            if i not in self._ids:
                raise KeyError(i)
            out[row] = self._index.reconstruct(i)
        return out

    def memory_bytes(self) -> int:
        """Size of the serialised FAISS index: a close proxy for its resident memory."""
        return int(faiss.serialize_index(self._index).nbytes)

    # -- persistence ------------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write one self-checking file atomically (temp + rename): header JSON + FAISS bytes + sha256."""
        payload = faiss.serialize_index(self._index)
        header = {
            "format": "dupq-vector-index",
            "format_version": _FORMAT_VERSION,
            "kind": self.kind,
            "requested_kind": self.requested_kind,
            "dim": self.dim,
            "metric": "inner_product",
            "params": self.params,
            "count": len(self),
            "tombstones": sorted(self._tombstones),
            "payload_bytes": int(payload.nbytes),
            "payload_sha256": hashlib.sha256(payload.data).hexdigest(),
        }
        head = json.dumps(header).encode("utf-8")
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            fh.write(_MAGIC)
            fh.write(struct.pack("<Q", len(head)))
            fh.write(head)
            fh.write(payload.data)

    @classmethod
    def load(cls, path: str | Path) -> VectorIndex:
        """Read a file written by :meth:`save`; a short, corrupt or foreign file raises ``StoreError``."""
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise StoreError(f"cannot read index {path}: {exc.strerror}") from exc
        if data[:8] != _MAGIC or len(data) < 16:
            raise StoreError(f"{path} is not a dupq vector index (bad magic or too short)")
        (hlen,) = struct.unpack("<Q", data[8:16])
        try:
            header = json.loads(data[16 : 16 + hlen].decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise StoreError(f"{path}: corrupt index header") from exc
        if header.get("format_version") != _FORMAT_VERSION:
            raise StoreError(f"{path}: unsupported index format version {header.get('format_version')}")
        payload = memoryview(data)[16 + hlen :]
        if len(payload) != header["payload_bytes"]:
            raise StoreError(
                f"{path} is truncated or padded: index payload has {len(payload)} bytes, "
                f"expected {header['payload_bytes']}"
            )
        if hashlib.sha256(payload).hexdigest() != header["payload_sha256"]:
            raise StoreError(f"{path} is corrupt: index checksum mismatch")
        try:
            raw = faiss.deserialize_index(np.frombuffer(payload, dtype=np.uint8))
        except RuntimeError as exc:
            raise StoreError(f"{path}: FAISS cannot read the index: {exc}") from exc
        self = cls.__new__(cls)
        self.dim = int(header["dim"])
        self.kind = header["kind"]
        self.requested_kind = header["requested_kind"]
        self.params = dict(header["params"])
        self._tombstones = {int(i) for i in header["tombstones"]}
        self._selector = None
        # deserialize_index already returns the concrete, owning class. (Never re-wrap it with
        # downcast_index: that proxy does not own the object, which is freed with the original.)
        expected = faiss.IndexIVFFlat if self.kind == "ivf" else faiss.IndexIDMap2
        if not isinstance(raw, expected):
            raise StoreError(f"{path}: holds a {type(raw).__name__}, expected {expected.__name__}")
        if self.kind == "ivf":
            raw.set_direct_map_type(faiss.DirectMap.Hashtable)
            raw.nprobe = self.params["nprobe"]
            live = self._ivf_ids(raw)
        else:
            if self.kind == "hnsw":
                faiss.downcast_index(raw.index).hnsw.efSearch = self.params["ef_search"]
            live = faiss.vector_to_array(raw.id_map).astype(np.int64)
        self._index = raw
        self._ids = set(live.tolist()) - self._tombstones
        if len(self._ids) != header["count"] or raw.d != self.dim:
            raise StoreError(f"{path}: index holds {len(self._ids)} vectors, header says {header['count']}")
        return self

    @staticmethod
    def _ivf_ids(ivf: Any) -> np.ndarray:
        from faiss.contrib.inspect_tools import get_invlist

        parts = [get_invlist(ivf.invlists, c)[0] for c in range(ivf.nlist)]
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def _as_matrix(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1:
        x = x.reshape(1, -1)
    if x.ndim != 2:
        raise ValueError(f"expected a 2-D array of vectors, got shape {x.shape}")
    return np.ascontiguousarray(x)
