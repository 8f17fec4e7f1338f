"""Pure array helpers shared by the embedder, dedupe, evaluation and the benchmarks.

One L2 normalisation (:func:`l2_normalize`, and :func:`unit_rows` for a chunk of a store) and one
connected-components helper
(:func:`connected_components`), so every module rounds and groups the same way.
"""

from __future__ import annotations

import numpy as np


def l2_normalize(x: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
    """float32 unit rows of ``x`` (rows of zeros stay zero).

    float16 storage rounds norms by ~1e-4 and FAISS adds check unit length, so vectors read back from a
    store are normalised again before use. ``out=x`` normalises a float32 array in place.
    """
    if out is None:
        x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if out is not None:
        return np.divide(x, np.maximum(norms, 1e-12), out=out)
    return x / np.maximum(norms, 1e-12)


def unit_rows(vectors, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` of ``vectors`` (an array or a memory map, any float dtype) as contiguous
    float32 unit vectors — how every search reads a chunk of stored vectors."""
    return np.ascontiguousarray(l2_normalize(vectors[start:stop]))


def release_pages(vectors) -> bool:
    """Drop the resident pages of a read-only memory map from this process; True when it did.

    Why: a store's float16 vectors are memory-mapped, and once a pass has read them all their pages count
    in the process's resident memory (768 MB at 1M × 384) although the data is in the page cache and
    re-read on the next access. The cell join holds its own float32 copy after the first pass, so the
    mapping's pages are dead weight at the join's peak. Only ``mode="r"`` maps are released (dropping a
    copy-on-write map's pages would discard its changes); anything else is left alone.
    """
    import mmap

    base = vectors
    while base is not None and not isinstance(base, np.memmap):
        base = getattr(base, "base", None)
    if base is None or getattr(base, "mode", None) != "r":
        return False
    handle = getattr(base, "_mmap", None)
    if handle is None or not hasattr(handle, "madvise") or not hasattr(mmap, "MADV_DONTNEED"):
        return False
    try:
        handle.madvise(mmap.MADV_DONTNEED)
    except (OSError, ValueError):
        return False
    return True


def connected_components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Component label (``0 .. components-1``) of each of ``n`` nodes linked by edges ``(a[i], b[i])``."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components as _cc

    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n, n)).tocsr()
    _, labels = _cc(graph, directed=False)
    return labels
