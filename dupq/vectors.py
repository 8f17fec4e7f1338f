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


def connected_components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Component label (``0 .. components-1``) of each of ``n`` nodes linked by edges ``(a[i], b[i])``."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components as _cc

    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n, n)).tocsr()
    _, labels = _cc(graph, directed=False)
    return labels
