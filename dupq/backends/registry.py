"""The backend registry's declarations: every backend name and the :class:`Runner` contract, once.

A leaf module (it imports no other backend module), so that the backends (:mod:`.onnx`,
:mod:`.openvino`), the probe (:mod:`.auto`) and the package's :func:`dupq.backends.make_runner` all
read the same names without importing each other in a circle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import numpy as np

from dupq.errors import DupqError

TORCH = "torch"
#: ONNX Runtime: the fp32 export and its dynamically quantised int8 weights.
ONNX_BACKENDS = ("onnx", "onnx-int8")
#: OpenVINO IR converted from the verified ONNX export: fp32, and NNCF int8.
OPENVINO_BACKENDS = ("openvino", "openvino-int8")
#: Every backend name ``Embedder(backend=...)`` and ``--backend`` accept.
BACKENDS = (TORCH, *ONNX_BACKENDS, *OPENVINO_BACKENDS)
AUTO = "auto"
DEFAULT = "default"
#: What ``backend=`` / ``--backend`` accept: a backend, ``auto`` (the fastest verified one here) or
#: ``default`` (``onnx-int8`` on a CPU where it verifies, else torch; see :mod:`dupq.backends`).
BACKEND_CHOICES = (*BACKENDS, AUTO, DEFAULT)
#: The backend ``default`` stands for on a CPU when it can.
FAST_DEFAULT = "onnx-int8"
#: Environment variable that names the backend ``default`` stands for.
BACKEND_ENV = "DUPQ_BACKEND"


@runtime_checkable
class Runner(Protocol):
    """What every backend gives the :class:`~dupq.embed.Embedder` and the verifier.

    ``runner(texts, batch_size)``: pooled, not yet normalised float32 vectors. ``run_ids(ids, mask)``
    (or ``None``): the same from padded token ids, so the Embedder tokenises once. ``run_tokens(ids,
    mask)`` (or ``None``): the token vectors *and* the pooled vectors of one forward pass — the
    verifier's token pass, so a question is run through the transformer once for both.
    """

    run_ids: Callable[[np.ndarray, np.ndarray], np.ndarray] | None
    run_tokens: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]] | None

    def __call__(self, texts: list[str], batch_size: int) -> np.ndarray: ...


def check_backend(backend: str) -> str:
    """Return ``backend`` if known (``auto``/``default`` too), else a :class:`DupqError` listing them."""
    if backend not in BACKEND_CHOICES:
        raise DupqError(f"unknown backend {backend!r}; choose one of {', '.join(BACKEND_CHOICES)}")
    return backend
