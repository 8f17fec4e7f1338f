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
  CPU, cached per model and machine;
* ``default`` (what the Matcher, ``dupq dedupe``, ``dupq score`` and the service use unless told):
  ``onnx-int8`` on a CPU — the fastest backend that also gives the verifier its token vectors from the
  same pass (``run_tokens``), measured 3.5× plain torch for the Matcher's p99 — falling back to
  ``torch``, with a one-line note, where onnxruntime is missing or the export does not verify; on a
  GPU, ``torch``. ``$DUPQ_BACKEND`` overrides it.

A runner turns texts (or padded token ids) into pooled, *not yet normalised* float32 vectors; the
:class:`~dupq.embed.Embedder` sorts, batches, normalises and restores the input order around it. The
names and the :class:`Runner` contract are declared once in :mod:`.registry`; :data:`FACTORIES` maps
each name to the function that builds its runner.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from dupq.backends.registry import (
    AUTO,
    BACKEND_CHOICES,
    BACKEND_ENV,
    BACKENDS,
    DEFAULT,
    FAST_DEFAULT,
    ONNX_BACKENDS,
    OPENVINO_BACKENDS,
    TORCH,
    Runner,
    check_backend,
)
from dupq.errors import DupqError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)
_noted: set[str] = set()


def available_backends() -> list[str]:
    """Backends usable in this environment: ``torch`` always; ``onnx*`` with onnx + onnxruntime;
    ``openvino*`` with openvino + nncf as well (they convert the onnxruntime-verified ONNX export)."""
    out = [TORCH]
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


def resolve_backend(
    model: SentenceTransformer, name: str, *, calibration: Sequence[str] | None = None
) -> str:
    """``name`` itself, or the backend ``auto`` (probed once, cached) or ``default`` stands for."""
    check_backend(name)
    if name == DEFAULT:
        return default_backend(model)
    if name != AUTO:
        return name
    if _is_static(model):
        return TORCH  # a static model has one backend worth having (see make_runner)
    from dupq.backends.auto import resolve_auto

    return resolve_auto(model, calibration, make_runner=make_runner, available=available_backends())


def default_backend(model: SentenceTransformer) -> str:
    """What ``default`` stands for with ``model`` here (see the module docstring)."""
    env = os.environ.get(BACKEND_ENV, "").strip()
    if env and env != DEFAULT:
        return resolve_backend(model, check_backend(env))
    if _is_static(model) or str(getattr(model, "device", "cpu")) != "cpu":
        return TORCH
    if FAST_DEFAULT not in available_backends():
        _note_once("onnxruntime is not installed: encoding runs on torch (pip install onnxruntime for ~3x)")
        return TORCH
    from dupq.backends.onnx import export_onnx

    try:
        export_onnx(model, FAST_DEFAULT)  # verified against torch, cached: later calls reuse it
    except DupqError as exc:
        _note_once(f"the {FAST_DEFAULT} export did not verify for this model ({exc}); encoding runs on torch")
        return TORCH
    return FAST_DEFAULT


def _note_once(message: str) -> None:
    if message not in _noted:
        _noted.add(message)
        logger.warning("dupq: %s", message)


def _is_static(model: SentenceTransformer) -> bool:
    return type(next(iter(model.children()), None)).__name__ == "StaticEmbedding"


# -- the registry: one factory per backend family -------------------------------------------------
def _torch_runner(model: SentenceTransformer, name: str, calibration: Sequence[str] | None) -> Runner:
    from dupq.backends.static import StaticRunner, table_only
    from dupq.backends.torch import TorchRunner

    return StaticRunner(model) if table_only(model) else TorchRunner(model)


def _onnx_runner(model: SentenceTransformer, name: str, calibration: Sequence[str] | None) -> Runner:
    from dupq.backends.onnx import OnnxRunner, export_onnx

    return OnnxRunner(model, export_onnx(model, name), device=str(model.device))


def _openvino_runner(model: SentenceTransformer, name: str, calibration: Sequence[str] | None) -> Runner:
    from dupq.backends.openvino import OpenVinoRunner, export_openvino

    return OpenVinoRunner(model, export_openvino(model, name, calibration=calibration))


#: backend name -> factory(model, name, calibration). Every name of ``BACKENDS`` has one (a test).
FACTORIES: dict[str, Callable[..., Runner]] = {
    TORCH: _torch_runner,
    **dict.fromkeys(ONNX_BACKENDS, _onnx_runner),
    **dict.fromkeys(OPENVINO_BACKENDS, _openvino_runner),
}


def make_runner(model: SentenceTransformer, name: str, *, calibration: Sequence[str] | None = None) -> Runner:
    """The runner for backend ``name`` over ``model`` (an export is made, verified and cached on first
    use). ``calibration``: the user's texts, which ``openvino-int8`` is post-training quantised on."""
    name = resolve_backend(model, name, calibration=calibration)
    if name != TORCH and _is_static(model):
        # A static model (dupq distill --kind static) is one table look-up and a mean per question:
        # there is no transformer graph to export or quantise, and torch is already the fast path.
        raise DupqError(
            f"backend {name!r} accelerates transformers; this is a static (token-table) model, which "
            "encodes fastest as it is: use --backend torch"
        )
    return FACTORIES[name](model, name, calibration)


__all__ = [
    "BACKENDS",
    "BACKEND_CHOICES",
    "DEFAULT",
    "FACTORIES",
    "ONNX_BACKENDS",
    "OPENVINO_BACKENDS",
    "Runner",
    "available_backends",
    "check_backend",
    "default_backend",
    "make_runner",
    "resolve_backend",
]
