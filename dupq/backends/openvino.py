"""The OpenVINO backends: the verified ONNX export converted to OpenVINO IR and run on its CPU plugin.

Why: OpenVINO's CPU plugin fuses the whole BERT block (attention, layer norm, GELU) into its own
kernels and uses VNNI/AMX for int8 where the CPU has them; sentence-transformers publishes 5.29× plain
``encode`` for its OpenVINO int8 path, against ~3.8× for ONNX int8. Issue 12 asks for ≥ 5× on an
AVX-512-VNNI CPU.

How it is kept safe (the same rules as :mod:`dupq.backends.onnx`):

* the IR is converted **locally** from the fp32 ONNX export that :func:`~dupq.backends.onnx.export_onnx`
  already verified (pooling is in the graph; nothing is downloaded; ``optimum-intel`` — which would pin
  transformers — is not needed);
* ``openvino-int8`` is NNCF **weight-only** int8 (``nncf.compress_weights``, INT8_ASYM): no
  calibration data, so it is deterministic and cannot be skewed by an unrepresentative sample; the
  activations stay fp32 (see the README for how it compares with full post-training quantisation);
* the ``.xml``/``.bin`` pair is **cached** in the same directory as the ONNX exports, named by the model
  fingerprint; the sidecar ``.json`` records the sha256 of both files, so a truncated or corrupt file
  is detected and converted again rather than served;
* every conversion is **verified** against the torch model on the probe questions (mean cosine ≥ 0.99,
  min ≥ 0.95) and refused otherwise.

Install with ``pip install 'dupq[openvino]'`` (the ONNX export also needs ``dupq[onnx]``'s ``onnx``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dupq.backends import onnx as onnx_backend
from dupq.backends.torch import model_input_names
from dupq.encoder import model_fingerprint, model_source
from dupq.errors import DupqError
from dupq.io import atomic_write_json
from dupq.runtime import physical_cores
from dupq.vectors import l2_normalize

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)

#: The backends this module runs.
OPENVINO_BACKENDS = ("openvino", "openvino-int8")
#: Bump when the conversion recipe changes, so IR written by an older dupq is rebuilt.
IR_VERSION = 1


def _require_openvino():
    try:
        import openvino
    except ImportError as exc:
        raise DupqError(
            "the openvino backends need openvino and nncf: pip install 'dupq[openvino]' "
            "(or use --backend torch)"
        ) from exc
    return openvino


# -- cache ----------------------------------------------------------------------------------------
def ir_path(model: SentenceTransformer, backend: str) -> Path:
    """The ``.xml`` of ``backend``'s IR of ``model`` (its ``.bin`` and ``.json`` sit next to it)."""
    fp = model_fingerprint(model)
    return onnx_backend.cache_dir(model) / f"dupq-{backend}-{fp[:16]}.xml"


def _meta_path(xml: Path) -> Path:
    return xml.with_suffix(".json")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _cached_ok(xml: Path, fingerprint: str, backend: str) -> bool:
    """The cached IR is for this model, this backend and this recipe, and its files are intact."""
    meta, binf = _meta_path(xml), xml.with_suffix(".bin")
    if not (xml.exists() and binf.exists() and meta.exists()):
        return False
    try:
        info = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    if not (
        info.get("fingerprint") == fingerprint
        and info.get("backend") == backend
        and info.get("ir_version") == IR_VERSION
    ):
        return False
    # A hash check costs ~0.1 s per 100 MB; a half-written or bit-flipped .bin would otherwise load
    # (OpenVINO does not checksum weights) and give wrong vectors with no error.
    return info.get("xml_sha256") == _sha256(xml) and info.get("bin_sha256") == _sha256(binf)


def _remove(*paths: Path) -> None:
    for p in paths:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def _remove_ir(xml: Path) -> None:
    _remove(xml, xml.with_suffix(".bin"), _meta_path(xml))


def _remove_stale(directory: Path, backend: str, keep: Path) -> None:
    """Delete this backend's IR of *other* fingerprints (a retrained model in the same dir)."""
    for old in directory.glob(f"dupq-{backend}-*.xml"):
        if old != keep:
            _remove_ir(old)


# -- conversion -----------------------------------------------------------------------------------
def _convert(onnx_file: Path, backend: str):
    """The OpenVINO model for ``backend`` from the verified fp32 ONNX file (fp32 or int8 weights)."""
    ov = _require_openvino()
    ov_model = ov.convert_model(str(onnx_file))
    if backend == "openvino-int8":
        try:
            import nncf
        except ImportError as exc:
            raise DupqError("openvino-int8 needs nncf: pip install 'dupq[openvino]'") from exc
        # NNCF logs a statistics table and progress bars to stdout (its "nncf" logger): not ours to print.
        nncf_log = logging.getLogger("nncf")
        level = nncf_log.level
        nncf_log.setLevel(logging.ERROR)
        try:
            with onnx_backend.warnings_silenced():
                ov_model = nncf.compress_weights(ov_model, mode=nncf.CompressWeightsMode.INT8_ASYM)
        finally:
            nncf_log.setLevel(level)
    return ov_model


def _save(ov_model, tmp_xml: Path) -> None:
    """Write the IR uncompressed (``compress_to_fp16=False``: fp32 weights stay fp32)."""
    ov = _require_openvino()
    ov.save_model(ov_model, str(tmp_xml), compress_to_fp16=False)


def probe_agreement(
    model: SentenceTransformer, xml: Path, questions: Sequence[str] = onnx_backend.PROBE_QUESTIONS
) -> tuple[float, float]:
    """(mean, min) cosine between the IR at ``xml`` and the torch model on ``questions``."""
    import torch

    with torch.inference_mode():
        ref = model.encode(
            list(questions),
            batch_size=16,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
    got = l2_normalize(OpenVinoRunner(model, xml)(list(questions), 16))
    cos = np.einsum("ij,ij->i", ref.astype(np.float32), got)
    if not np.all(np.isfinite(cos)):
        return float("nan"), float("nan")
    return float(cos.mean()), float(cos.min())


def export_openvino(model: SentenceTransformer, backend: str = "openvino", *, force: bool = False) -> Path:
    """Convert (or reuse the verified cached IR of) ``model`` for ``backend``; return the ``.xml``.

    Raises :class:`DupqError` — and leaves no file behind — when the IR disagrees with the torch
    model on the probe questions.
    """
    if backend not in OPENVINO_BACKENDS:
        raise DupqError(f"{backend!r} is not an openvino backend ({', '.join(OPENVINO_BACKENDS)})")
    ov = _require_openvino()
    fp = model_fingerprint(model)
    xml = ir_path(model, backend)
    if not force and _cached_ok(xml, fp, backend):
        return xml
    src = onnx_backend.export_onnx(model, "onnx", force=force)
    xml.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    # Two files cannot be replaced atomically together: write both under a temporary stem, verify,
    # move the .bin then the .xml, and write the .json (with both hashes) last — it is what marks the
    # pair as valid, so a crash in between leaves a pair that _cached_ok rejects.
    tmp_xml = xml.with_name(f".{xml.stem}.{os.getpid()}.tmp.xml")
    try:
        _save(_convert(src, backend), tmp_xml)
        mean_cos, min_cos = probe_agreement(model, tmp_xml)
        if not (mean_cos >= onnx_backend.MIN_MEAN_COSINE and min_cos >= onnx_backend.MIN_MIN_COSINE):
            raise DupqError(
                f"refusing the {backend} export of {model_source(model) or 'the model'}: its embeddings "
                f"disagree with the torch model on {len(onnx_backend.PROBE_QUESTIONS)} probe questions "
                f"(mean cosine {mean_cos:.4f} < {onnx_backend.MIN_MEAN_COSINE} or min {min_cos:.4f} < "
                f"{onnx_backend.MIN_MIN_COSINE}). Use --backend torch (or openvino instead of openvino-int8)."
            )
        _remove(_meta_path(xml))  # invalidate the old pair before replacing its files
        os.replace(tmp_xml.with_suffix(".bin"), xml.with_suffix(".bin"))
        os.replace(tmp_xml, xml)
    finally:
        _remove(tmp_xml, tmp_xml.with_suffix(".bin"))
    atomic_write_json(
        _meta_path(xml),
        {
            "backend": backend,
            "fingerprint": fp,
            "ir_version": IR_VERSION,
            "source": model_source(model),
            "from_onnx": src.name,
            "weights": "int8 (nncf.compress_weights INT8_ASYM)" if backend.endswith("int8") else "fp32",
            "xml_sha256": _sha256(xml),
            "bin_sha256": _sha256(xml.with_suffix(".bin")),
            "probe_mean_cosine": round(mean_cos, 6),
            "probe_min_cosine": round(min_cos, 6),
            "probe_questions": len(onnx_backend.PROBE_QUESTIONS),
            "openvino": ov.__version__ if hasattr(ov, "__version__") else ov.get_version(),
            "export_seconds": round(time.perf_counter() - t0, 2),
        },
    )
    _remove_stale(xml.parent, backend, keep=xml)
    logger.info("converted %s to %s (probe cosine mean %.4f, min %.4f)", backend, xml, mean_cos, min_cos)
    return xml


# -- runtime --------------------------------------------------------------------------------------
def compile_config(threads: int | None = None) -> dict[str, Any]:
    """CPU plugin settings: LATENCY hint (one stream: the Embedder sends one batch at a time),
    ``threads`` = physical cores, and fp32 inference precision.

    fp32 precision is explicit because on CPUs with AMX/AVX-512-BF16 the plugin would otherwise run in
    bf16 by default — faster, but not what was verified, and not "the fp32 vectors" ``openvino``
    promises. (THROUGHPUT, i.e. several streams, only pays with concurrent requests.)
    """
    return {
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_NUM_THREADS": int(threads or physical_cores()),
        "INFERENCE_PRECISION_HINT": "f32",
    }


class OpenVinoRunner:
    """Runs an OpenVINO IR encoder: ``runner(texts, batch_size)`` or ``runner.run_ids(ids, mask)``.

    The same interface as :class:`~dupq.backends.onnx.OnnxRunner`, so the Embedder and the verifier's
    token path use it unchanged.
    """

    def __init__(self, model: SentenceTransformer, xml: str | Path, *, threads: int | None = None) -> None:
        ov = _require_openvino()
        self.model = model
        self.path = Path(xml)
        self.input_names = model_input_names(model)
        core = ov.Core()
        self.compiled = core.compile_model(core.read_model(str(self.path)), "CPU", compile_config(threads))
        # One infer request, reused (its buffers are allocated once); unlike an onnxruntime session it is
        # not safe to share between threads, so calls are serialised (the server encodes from threads).
        self.request = self.compiled.create_infer_request()
        self._lock = threading.Lock()
        outputs = [o.get_any_name() for o in self.compiled.outputs]
        self._pooled = self.compiled.outputs[outputs.index("sentence_embedding")]
        self._tokens = self.compiled.outputs[outputs.index("token_embeddings")]

    def _feeds(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> dict[str, Any]:
        return onnx_backend.graph_feeds(self.input_names, input_ids, attention_mask)

    def run_ids(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """Pooled (not normalised) float32 vectors for one padded batch."""
        feeds = self._feeds(input_ids, attention_mask)
        with self._lock:
            out = self.request.infer(feeds)
            # copy: the request's output buffer is reused by the next call
            return np.array(out[self._pooled], dtype=np.float32, copy=True)

    def run_tokens(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(token vectors ``(batch, tokens, dim)``, pooled vectors) for one padded batch, one pass."""
        feeds = self._feeds(input_ids, attention_mask)
        with self._lock:
            out = self.request.infer(feeds)
            return (
                np.array(out[self._tokens], dtype=np.float32, copy=True),
                np.array(out[self._pooled], dtype=np.float32, copy=True),
            )

    def __call__(self, texts: list[str], batch_size: int) -> np.ndarray:
        return onnx_backend.encode_batches(self, texts, batch_size)
