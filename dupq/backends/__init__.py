"""Encoding backends: one :class:`Runner` protocol, one registry (:func:`make_runner`).

* ``torch`` (:mod:`dupq.backends.torch`): the SentenceTransformer itself — for a static (token
  table) model, its table bagged directly with the tokenising on every core
  (:mod:`dupq.backends.static`);
* ``onnx`` / ``onnx-int8`` (:mod:`dupq.backends.onnx`): the same model exported to ONNX (fp32, or
  with dynamically quantised int8 weights), verified against torch and cached; ``pip install
  dupq[onnx]``;
* ``openvino`` / ``openvino-int8`` (:mod:`dupq.backends.openvino`): that verified ONNX export converted
  to OpenVINO IR (fp32, or NNCF int8: post-training quantised on the user's texts when they are
  given, else weight-only), verified again and cached; ``pip install dupq[openvino]``;
* ``auto`` (:mod:`dupq.backends.auto`): the fastest of those that verify, by a short probe on this
  CPU, cached per model and machine.

A runner turns texts (or padded token ids) into pooled, *not yet normalised* float32 vectors; the
:class:`~dupq.embed.Embedder` sorts, batches, normalises and restores the input order around it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from dupq.errors import DupqError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

#: Every backend name ``Embedder(backend=...)`` and ``--backend`` accept.
BACKENDS = ("torch", "onnx", "onnx-int8", "openvino", "openvino-int8")
ONNX_BACKENDS = ("onnx", "onnx-int8")
OPENVINO_BACKENDS = ("openvino", "openvino-int8")
#: What ``backend=`` / ``--backend`` accept: a backend, or ``auto`` (the fastest verified one here).
BACKEND_CHOICES = (*BACKENDS, "auto")


@runtime_checkable
class Runner(Protocol):
    """Texts in, pooled float32 vectors out; ``run_ids`` (or ``None``) takes padded token ids instead."""

    run_ids: Callable[[np.ndarray, np.ndarray], np.ndarray] | None

    def __call__(self, texts: list[str], batch_size: int) -> np.ndarray: ...


def available_backends() -> list[str]:
    """Backends usable in this environment: ``torch`` always; ``onnx*`` with onnx + onnxruntime;
    ``openvino*`` with openvino + nncf as well (they convert the onnxruntime-verified ONNX export)."""
    out = ["torch"]
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return out
    out += list(ONNX_BACKENDS)
    with contextlib.suppress(ImportError):
        import nncf  # noqa: F401
        import openvino  # noqa: F401

        out += list(OPENVINO_BACKENDS)
    return out


def check_backend(backend: str) -> str:
    """Return ``backend`` if known (``auto`` too), else raise a :class:`DupqError` listing the choices."""
    if backend not in BACKEND_CHOICES:
        raise DupqError(f"unknown backend {backend!r}; choose one of {', '.join(BACKEND_CHOICES)}")
    return backend


def resolve_backend(
    model: SentenceTransformer, name: str, *, calibration: Sequence[str] | None = None
) -> str:
    """``name`` itself, or for ``auto`` the backend it stands for on this machine (probed once, cached)."""
    check_backend(name)
    if name != "auto":
        return name
    if _is_static(model):
        return "torch"  # a static model has one backend worth having (see make_runner)
    from dupq.backends.auto import resolve_auto

    return resolve_auto(model, calibration)


def _is_static(model: SentenceTransformer) -> bool:
    return type(next(iter(model.children()), None)).__name__ == "StaticEmbedding"


def make_runner(model: SentenceTransformer, name: str, *, calibration: Sequence[str] | None = None) -> Runner:
    """The runner for backend ``name`` over ``model`` (an export is made, verified and cached on first
    use). ``calibration``: the user's texts, which ``openvino-int8`` is post-training quantised on."""
    name = resolve_backend(model, name, calibration=calibration)
    if name != "torch" and _is_static(model):
        # A static model (dupq distill --kind static) is one table look-up and a mean per question:
        # there is no transformer graph to export or quantise, and torch is already the fast path.
        raise DupqError(
            f"backend {name!r} accelerates transformers; this is a static (token-table) model, which "
            "encodes fastest as it is: use --backend torch"
        )
    if name == "torch":
        from dupq.backends.static import StaticRunner, table_only
        from dupq.backends.torch import TorchRunner

        return StaticRunner(model) if table_only(model) else TorchRunner(model)
    if name in OPENVINO_BACKENDS:
        from dupq.backends.openvino import OpenVinoRunner, export_openvino

        return OpenVinoRunner(model, export_openvino(model, name, calibration=calibration))
    from dupq.backends.onnx import OnnxRunner, export_onnx

    path = export_onnx(model, name)
    return OnnxRunner(model, path, device=str(model.device))


__all__ = [
    "BACKENDS",
    "BACKEND_CHOICES",
    "ONNX_BACKENDS",
    "OPENVINO_BACKENDS",
    "Runner",
    "available_backends",
    "check_backend",
    "make_runner",
    "resolve_backend",
]
