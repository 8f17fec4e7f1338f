"""The verifier's learned head: scikit-learn to fit, plain arrays to store and to run.

A verifier directory must be safe to load and must not depend on the scikit-learn version that
trained it, so the head is never pickled: the fitted model is exported to named numpy arrays
(``head.npz``, loaded with ``allow_pickle=False``) and scored here with numpy alone.

Two kinds, chosen by measurement on dev (``benchmarks/verifier_heads.py``):

* ``gbdt`` — scikit-learn's ``HistGradientBoostingClassifier``; its trees are flattened into arrays;
* ``mlp`` — a small ReLU network (``MLPClassifier``) on standardised features.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dupq.errors import InputError, StoreError

HEAD_FILE = "head.npz"
HEAD_KINDS = ("gbdt", "mlp")


#: Feature rows per block of the tree walk (bounds its memory to a few MB whatever the number of pairs;
#: 1,024 measured fastest here: the walk's gathers stay in cache).
GBDT_BLOCK = 1024


@dataclass
class Head:
    """A fitted head as arrays: ``kind`` plus what :meth:`raw_score` needs for that kind."""

    kind: str
    arrays: dict[str, np.ndarray]

    # -- scoring ----------------------------------------------------------------------------------
    def raw_score(self, x: np.ndarray) -> np.ndarray:
        """The head's log-odds of "duplicate" for each feature row."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != int(self.arrays["n_features"][0]):
            raise ValueError(f"expected (n, {int(self.arrays['n_features'][0])}) features, got {x.shape}")
        if self.kind != "gbdt":
            return self._mlp(x)
        # in row blocks: the walk holds several (rows, trees) arrays, ~10 KB a row for 300 trees, which
        # for a dedupe's 500k candidate pairs at once was 8 GB
        out = np.empty(len(x), dtype=np.float64)
        for start in range(0, len(x), GBDT_BLOCK):
            out[start : start + GBDT_BLOCK] = self._gbdt(x[start : start + GBDT_BLOCK])
        return out

    def probability(self, x: np.ndarray) -> np.ndarray:
        """P(duplicate) for each feature row (the head is trained with log-loss, so this is calibrated)."""
        from scipy.special import expit

        return expit(self.raw_score(x))

    def _gbdt(self, x: np.ndarray) -> np.ndarray:
        """Every tree at once, as one flat array of ``(row, tree)`` walkers, each step moving only the
        walkers not yet at a leaf (one numpy step per level for all trees: the Matcher scores 5 pairs a
        query, where a per-tree loop spent ~25 ms in numpy call overhead for 300 trees). The trees
        are up to ~20 levels deep but most walks end within a few, so stepping only the live walkers
        is ~4x faster on a dedupe's pairs than stepping all of them to the deepest level."""
        a = self.arrays
        roots = a["roots"]
        n, n_features = x.shape
        node = np.tile(roots, n)
        base = np.repeat(np.arange(n, dtype=np.int64) * n_features, len(roots))
        flat = np.ascontiguousarray(x).ravel()
        has_nan = bool(np.isnan(flat).any())
        live = np.flatnonzero(~a["is_leaf"][node])
        while len(live):
            at = node[live]
            v = flat[base[live] + a["feature"][at]]
            go_left = v <= a["threshold"][at]
            if has_nan:
                go_left = np.where(np.isnan(v), a["missing_left"][at], go_left)
            at = np.where(go_left, a["left"][at], a["right"][at])
            node[live] = at
            live = live[~a["is_leaf"][at]]
        return float(a["baseline"][0]) + a["value"][node].reshape(n, len(roots)).sum(axis=1)

    def _mlp(self, x: np.ndarray) -> np.ndarray:
        a = self.arrays
        h = (x - a["mean"]) / a["scale"]
        n_layers = int(a["n_layers"][0])
        for i in range(n_layers):
            h = h @ a[f"w{i}"] + a[f"b{i}"]
            if i < n_layers - 1:
                h = np.maximum(h, 0.0)
        return h[:, 0]

    # -- persistence ------------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write ``head.npz`` (no pickled objects). The caller makes the directory save atomic."""
        np.savez(path, kind=np.array(self.kind), **self.arrays)

    @classmethod
    def load(cls, path: str | Path) -> Head:
        """Read a head written by :meth:`save`; a missing, truncated or foreign file is a ``StoreError``."""
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError) as exc:
            raise StoreError(f"cannot read verifier head {path}: {exc}") from exc
        kind = str(arrays.pop("kind", ""))
        if kind not in HEAD_KINDS or "n_features" not in arrays:
            raise StoreError(f"{path} is not a dupq verifier head (kind {kind!r})")
        return cls(kind, arrays)


def fit_head(
    x: np.ndarray,
    y: np.ndarray,
    kind: str = "gbdt",
    *,
    seed: int = 42,
    monotonic: list[int] | None = None,
    max_iter: int = 300,
) -> Head:
    """Fit a head of ``kind`` on features ``x`` and 0/1 labels ``y`` and export it to arrays.

    ``monotonic`` (gbdt only): per feature, +1 / -1 / 0 as scikit-learn's ``monotonic_cst`` — the
    shipped default head is +1 on the cosine, so that a closer pair is never scored less likely a
    duplicate by the trees alone."""
    if kind not in HEAD_KINDS:
        raise InputError(f"unknown head kind {kind!r}; choose one of {', '.join(HEAD_KINDS)}")
    from threadpoolctl import threadpool_limits

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    # One thread: the fit takes seconds, and OpenMP workers spinning on busy cores made it take minutes.
    with threadpool_limits(limits=1):
        return _fit_gbdt(x, y, seed, monotonic, max_iter) if kind == "gbdt" else _fit_mlp(x, y, seed)


def _fit_gbdt(
    x: np.ndarray, y: np.ndarray, seed: int, monotonic: list[int] | None = None, max_iter: int = 300
) -> Head:
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(
        max_iter=max_iter,
        monotonic_cst=monotonic,
        learning_rate=0.05,
        max_leaf_nodes=31,
        l2_regularization=1.0,
        early_stopping=True,
        validation_fraction=0.1,
        n_iter_no_change=20,
        random_state=seed,
    )
    model.fit(x, y)
    return Head("gbdt", _export_trees(model, x.shape[1]))


def _export_trees(model: Any, n_features: int) -> dict[str, np.ndarray]:
    """Concatenate every tree's node table, re-basing child indices, into flat arrays."""
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("value", "feature", "threshold", "left", "right")}
    cols.update(is_leaf=[], missing_left=[])
    roots, offset, depth = [], 0, 0
    for per_class in model._predictors:  # one list of trees per iteration (binary: one tree)
        nodes = per_class[0].nodes
        roots.append(offset)
        leaf = nodes["is_leaf"].astype(bool)
        cols["value"].append(nodes["value"].astype(np.float64))
        cols["feature"].append(nodes["feature_idx"].astype(np.int64))
        cols["threshold"].append(nodes["num_threshold"].astype(np.float64))
        cols["left"].append(np.where(leaf, 0, nodes["left"].astype(np.int64) + offset))
        cols["right"].append(np.where(leaf, 0, nodes["right"].astype(np.int64) + offset))
        cols["is_leaf"].append(leaf)
        cols["missing_left"].append(nodes["missing_go_to_left"].astype(bool))
        depth = max(depth, int(nodes["depth"].max()))
        offset += len(nodes)
    arrays = {k: np.concatenate(v) for k, v in cols.items()}
    arrays.update(
        roots=np.asarray(roots, dtype=np.int64),
        baseline=np.asarray([float(np.ravel(model._baseline_prediction)[0])]),
        max_depth=np.asarray([depth]),
        n_features=np.asarray([n_features]),
    )
    return arrays


def _fit_mlp(x: np.ndarray, y: np.ndarray, seed: int) -> Head:
    from sklearn.neural_network import MLPClassifier

    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale = np.where(scale > 1e-9, scale, 1.0)
    model = MLPClassifier(
        hidden_layer_sizes=(64, 32), alpha=1e-3, max_iter=300, early_stopping=True, random_state=seed
    )
    model.fit((x - mean) / scale, y)
    return Head("mlp", _export_mlp(model, mean, scale))


def _export_mlp(model: Any, mean: np.ndarray, scale: np.ndarray) -> dict[str, np.ndarray]:
    """Weights and biases per layer plus the standardisation the network was trained behind."""
    arrays: dict[str, np.ndarray] = {
        "mean": mean,
        "scale": scale,
        "n_layers": np.asarray([len(model.coefs_)]),
        "n_features": np.asarray([len(mean)]),
    }
    for i, (w, b) in enumerate(zip(model.coefs_, model.intercepts_, strict=True)):
        arrays[f"w{i}"], arrays[f"b{i}"] = w, b
    return arrays
