"""The OpenVINO backends: the verified ONNX export converted to OpenVINO IR and run on its CPU plugin.

Why: OpenVINO's CPU plugin fuses the whole BERT block (attention, layer norm, GELU) into its own
kernels and uses VNNI/AMX for int8 where the CPU has them; sentence-transformers publishes 5.29× plain
``encode`` for its OpenVINO int8 path, against ~3.8× for ONNX int8. Issue 12 asks for ≥ 5× on an
AVX-512-VNNI CPU.

How it is kept safe (the same rules as :mod:`dupq.backends.onnx`):

* the IR is converted **locally** from the fp32 ONNX export that :func:`~dupq.backends.onnx.export_onnx`
  already verified (pooling is in the graph; nothing is downloaded; ``optimum-intel`` — which would pin
  transformers — is not needed);
* ``openvino-int8`` is NNCF **post-training quantisation** (``nncf.quantize``, ``ModelType.TRANSFORMER``,
  ``PERFORMANCE`` preset: int8 weights *and* symmetric int8 activations, so the CPU's int8
  dot-product units do the matmuls) calibrated on a
  sample of the **user's own texts** when they are given (``calibration=``; ``dupq dedupe`` passes a
  sample of its input) — measured 1.5× less CPU per question than weight-only int8 at mean cosine 0.998
  to fp32 (``benchmarks/openvino_int8.py``). Without texts it is NNCF **weight-only** int8
  (``nncf.compress_weights``, INT8_ASYM): no data needed, deterministic. A calibrated IR that fails
  verification is not served: weight-only is used instead, with a warning;
* the ``.xml``/``.bin`` pair is **cached** in the same directory as the ONNX exports, named by the model
  fingerprint (and, for a calibrated IR, the sha256 of its calibration texts); the sidecar ``.json``
  records the sha256 of both files, so a truncated or corrupt file is detected and converted again
  rather than served;
* every conversion is **verified** against the torch model on the probe questions (and, when calibrated,
  on user texts held out of the calibration sample): mean cosine ≥ 0.99, min ≥ 0.95, refused otherwise.

Install with ``pip install 'dupq[openvino]'`` (the ONNX export also needs ``dupq[onnx]``'s ``onnx``).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import re
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

import dupq.backends.onnx as onnx_backend
from dupq.backends.registry import OPENVINO_BACKENDS
from dupq.backends.torch import model_input_names
from dupq.encoder import model_fingerprint, model_source
from dupq.errors import DupqError
from dupq.io import atomic_write_json
from dupq.runtime import physical_cores
from dupq.vectors import l2_normalize

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)

#: Bump when the conversion recipe changes, so IR written by an older dupq is rebuilt.
#: 2: from the eager-attention export (one fused attention op), PTQ with the PERFORMANCE preset.
IR_VERSION = 2
#: Texts a calibrated (PTQ) ``openvino-int8`` is quantised on; more gave no measurable gain.
CALIBRATION_TEXTS = 300
#: User texts (not in the calibration sample) a calibrated IR is verified on, besides the probes.
HOLDOUT_TEXTS = 100
#: Calibrated IRs kept per model (one per distinct input sample; the oldest beyond this are deleted).
KEEP_CALIBRATED = 4


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
def ir_path(model: SentenceTransformer, backend: str, calibration_digest: str | None = None) -> Path:
    """The ``.xml`` of ``backend``'s IR of ``model`` (its ``.bin`` and ``.json`` sit next to it); a
    calibrated IR's name carries its calibration digest too."""
    fp = model_fingerprint(model)
    tag = f"-c{calibration_digest[:12]}" if calibration_digest else ""
    return onnx_backend.cache_dir(model) / f"dupq-{backend}-{fp[:16]}{tag}.xml"


def calibration_split(texts: Sequence[str] | None) -> tuple[list[str], list[str]]:
    """(calibration sample, held-out verification texts) from the user's texts, deterministically.

    Evenly spaced over the distinct non-blank texts (not the first N: a file sorted by topic or date
    would calibrate on one corner of it), so the same input always gives the same sample — and so the
    same cached IR on a rerun or a resume.
    """
    if not texts:
        return [], []
    distinct = list(dict.fromkeys(t for t in texts if isinstance(t, str) and t.strip()))
    want = CALIBRATION_TEXTS + HOLDOUT_TEXTS
    if len(distinct) > want:
        picks = np.linspace(0, len(distinct) - 1, want).round().astype(int)
        distinct = [distinct[i] for i in np.unique(picks)]
    held = distinct[CALIBRATION_TEXTS:] if len(distinct) > CALIBRATION_TEXTS else []
    return distinct[:CALIBRATION_TEXTS], held


def calibration_digest(calibration: Sequence[str]) -> str:
    """sha256 of the calibration texts (the cache key of a calibrated IR)."""
    h = hashlib.sha256()
    for t in calibration:
        h.update(t.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()


def _meta_path(xml: Path) -> Path:
    return xml.with_suffix(".json")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _cached_ok(xml: Path, fingerprint: str, backend: str, digest: str | None = None) -> bool:
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
        and info.get("calibration_sha256") == digest
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
    _remove(xml, xml.with_suffix(".bin"), _meta_path(xml), _refusal_path(xml))


def _remove_stale(directory: Path, backend: str, keep: Path, fingerprint: str) -> None:
    """Delete this backend's IR of *other* fingerprints (a retrained model in the same dir), and all but
    the :data:`KEEP_CALIBRATED` newest calibrated IRs of this one (each input file calibrates its own).

    Names are matched exactly (``dupq-openvino-<fp>`` must not match ``dupq-openvino-int8-<fp>``).
    """
    pattern = re.compile(rf"dupq-{re.escape(backend)}-([0-9a-f]{{16}})(-c[0-9a-f]{{12}})?")
    calibrated = []
    for old in directory.glob(f"dupq-{backend}-*.xml"):
        m = pattern.fullmatch(old.stem)
        if m is None or old == keep:
            continue
        if m.group(1) != fingerprint[:16]:
            _remove_ir(old)
        elif m.group(2):
            calibrated.append(old)
    calibrated.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    kept = pattern.fullmatch(keep.stem)
    room = KEEP_CALIBRATED - (1 if kept and kept.group(2) else 0)
    for old in calibrated[max(room, 0) :]:
        _remove_ir(old)


# -- conversion -----------------------------------------------------------------------------------
def _calibration_items(model: SentenceTransformer, calibration: Sequence[str]) -> list[dict[str, np.ndarray]]:
    """The calibration texts as graph feeds, in padded batches of 8 (as the benchmark measured)."""
    names = model_input_names(model)
    items = []
    for start in range(0, len(calibration), 8):
        enc = onnx_backend.tokenize_np(model, list(calibration[start : start + 8]))
        items.append(onnx_backend.graph_feeds(names, enc["input_ids"], enc["attention_mask"]))
    return items


def _convert(onnx_file: Path, backend: str, items: list[dict[str, np.ndarray]] | None = None):
    """The OpenVINO model for ``backend`` from the verified fp32 ONNX file: fp32, or int8 — PTQ on the
    calibration ``items`` when given, else weight-only."""
    ov = _require_openvino()
    ov_model = ov.convert_model(str(onnx_file))
    if backend != "openvino-int8":
        return ov_model
    try:
        import nncf
    except ImportError as exc:
        raise DupqError("openvino-int8 needs nncf: pip install 'dupq[openvino]'") from exc
    # NNCF logs a statistics table and progress bars to stdout (its "nncf" logger): not ours to print.
    nncf_log = logging.getLogger("nncf")
    level = nncf_log.level
    nncf_log.setLevel(logging.ERROR)
    try:
        # ... and rich progress bars straight to sys.stdout (not through the logger): swallowed too.
        sink = io.StringIO()
        with (
            onnx_backend.warnings_silenced(),
            contextlib.redirect_stdout(sink),
            contextlib.redirect_stderr(sink),
        ):
            if items:
                return nncf.quantize(
                    ov_model,
                    nncf.Dataset(items),
                    model_type=nncf.ModelType.TRANSFORMER,
                    # symmetric activations: no zero-point correction in the int8 matmuls — +4 % median
                    # over MIXED in an 8-round A/B on real questions (Zen 5), MQP AP 89.22 vs 89.25
                    preset=nncf.QuantizationPreset.PERFORMANCE,
                    subset_size=len(items),
                )
            return nncf.compress_weights(ov_model, mode=nncf.CompressWeightsMode.INT8_ASYM)
    finally:
        nncf_log.setLevel(level)


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


def export_openvino(
    model: SentenceTransformer,
    backend: str = "openvino",
    *,
    calibration: Sequence[str] | None = None,
    force: bool = False,
) -> Path:
    """Convert (or reuse the verified cached IR of) ``model`` for ``backend``; return the ``.xml``.

    ``calibration``: the user's texts (any number; a sample of :data:`CALIBRATION_TEXTS` is taken) to
    post-training-quantise ``openvino-int8`` on; without them it is weight-only int8. A calibrated IR
    that disagrees with torch is not served: weight-only int8 is returned instead (with a warning, and
    the refusal is remembered so the next run does not quantise again). Raises :class:`DupqError` —
    and leaves no file behind — when the IR still disagrees with the torch model.
    """
    if backend not in OPENVINO_BACKENDS:
        raise DupqError(f"{backend!r} is not an openvino backend ({', '.join(OPENVINO_BACKENDS)})")
    calib, held = calibration_split(calibration) if backend == "openvino-int8" else ([], [])
    if calib:
        digest = calibration_digest(calib)
        xml = ir_path(model, backend, digest)
        if force or not _refused(xml, model_fingerprint(model), digest):
            try:
                return _export(model, backend, calib, held, force=force)
            except DupqError as exc:
                _remember_refusal(xml, model_fingerprint(model), digest, str(exc))
                logger.warning("%s Serving weight-only int8 instead.", exc)
    return _export(model, backend, [], [], force=force)


def _refusal_path(xml: Path) -> Path:
    return xml.with_suffix(".refused.json")


def _refused(xml: Path, fingerprint: str, digest: str) -> bool:
    """A calibrated IR for this model and sample was already refused (verification failed)."""
    try:
        info = json.loads(_refusal_path(xml).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    return (
        info.get("fingerprint") == fingerprint
        and info.get("calibration_sha256") == digest
        and info.get("ir_version") == IR_VERSION
    )


def _remember_refusal(xml: Path, fingerprint: str, digest: str, why: str) -> None:
    with contextlib.suppress(OSError):
        atomic_write_json(
            _refusal_path(xml),
            {"fingerprint": fingerprint, "calibration_sha256": digest, "ir_version": IR_VERSION, "why": why},
        )


def _export(
    model: SentenceTransformer, backend: str, calib: list[str], held: list[str], *, force: bool
) -> Path:
    """One conversion (PTQ when ``calib`` is non-empty), verified on the probes + ``held``, cached."""
    ov = _require_openvino()
    fp = model_fingerprint(model)
    digest = calibration_digest(calib) if calib else None
    xml = ir_path(model, backend, digest)
    if not force and _cached_ok(xml, fp, backend, digest):
        return xml
    src = onnx_backend.export_onnx(model, "onnx", force=force)
    xml.parent.mkdir(parents=True, exist_ok=True)
    probes = list(onnx_backend.PROBE_QUESTIONS) + held
    t0 = time.perf_counter()
    # Two files cannot be replaced atomically together: write both under a temporary stem, verify,
    # move the .bin then the .xml, and write the .json (with both hashes) last — it is what marks the
    # pair as valid, so a crash in between leaves a pair that _cached_ok rejects.
    tmp_xml = xml.with_name(f".{xml.stem}.{os.getpid()}.tmp.xml")
    try:
        items = _calibration_items(model, calib) if calib else None
        _save(_convert(src, backend, items), tmp_xml)
        mean_cos, min_cos = probe_agreement(model, tmp_xml, probes)
        if not (mean_cos >= onnx_backend.MIN_MEAN_COSINE and min_cos >= onnx_backend.MIN_MIN_COSINE):
            what = f"{backend} (calibrated on {len(calib)} texts)" if calib else backend
            raise DupqError(
                f"refusing the {what} export of {model_source(model) or 'the model'}: its embeddings "
                f"disagree with the torch model on {len(probes)} probe questions "
                f"(mean cosine {mean_cos:.4f} < {onnx_backend.MIN_MEAN_COSINE} or min {min_cos:.4f} < "
                f"{onnx_backend.MIN_MIN_COSINE}). Use --backend torch (or openvino instead of openvino-int8)."
            )
        _remove(_meta_path(xml))  # invalidate the old pair before replacing its files
        os.replace(tmp_xml.with_suffix(".bin"), xml.with_suffix(".bin"))
        os.replace(tmp_xml, xml)
    finally:
        _remove(tmp_xml, tmp_xml.with_suffix(".bin"))
    if not backend.endswith("int8"):
        weights = "fp32"
    elif calib:
        weights = f"int8 weights + activations (nncf PTQ, TRANSFORMER, PERFORMANCE, {len(calib)} texts)"
    else:
        weights = "int8 (nncf.compress_weights INT8_ASYM)"
    atomic_write_json(
        _meta_path(xml),
        {
            "backend": backend,
            "fingerprint": fp,
            "ir_version": IR_VERSION,
            "source": model_source(model),
            "from_onnx": src.name,
            "weights": weights,
            "quantization": ("ptq" if calib else "weight-only") if backend.endswith("int8") else None,
            "calibration_sha256": digest,
            "calibration_texts": len(calib),
            "xml_sha256": _sha256(xml),
            "bin_sha256": _sha256(xml.with_suffix(".bin")),
            "probe_mean_cosine": round(mean_cos, 6),
            "probe_min_cosine": round(min_cos, 6),
            "probe_questions": len(probes),
            "openvino": ov.__version__ if hasattr(ov, "__version__") else ov.get_version(),
            "export_seconds": round(time.perf_counter() - t0, 2),
        },
    )
    _remove_stale(xml.parent, backend, keep=xml, fingerprint=fp)
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
