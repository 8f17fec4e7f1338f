"""``backend="auto"``: the fastest *verified* backend for this model on this CPU, by a short probe.

Why a probe and not a rule: which runtime wins depends on the CPU (int8 matmuls pay only with VNNI/AMX;
OpenVINO's fused kernels pay more on some cores than others), on the model's size and on the library
versions — on the same 2-core machine ``onnx-int8`` measured 1.7–1.9× plain encode on Zen 3 (AVX2) and
3.8× on Zen 5 (AVX-512 VNNI). A rule would be wrong somewhere; ~1 minute of measuring, once, is not.

How:

* every backend this environment has (:func:`dupq.backends.available_backends`) is exported, verified
  against torch (the same checks as when it is asked for by name) and timed on the same length-sorted
  probe texts — the user's own calibration texts when given, else the built-in probe questions;
* timing is round-robin (each round times every backend once) and the best of :data:`ROUNDS` is kept,
  so a burst of load from another process hits every backend alike instead of sinking one;
* a backend whose export fails or is refused is skipped (its reason is logged and recorded);
* the choice is **cached** next to the exports (``dupq-auto.json``), keyed by the model fingerprint and
  this machine's CPU signature (model name, SIMD flags, cores, library versions): a new CPU, a new
  onnxruntime or a retrained model probes again. ``DUPQ_AUTO_REPROBE=1`` forces a new probe.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dupq.encoder import model_fingerprint
from dupq.errors import DupqError
from dupq.io import atomic_write_json
from dupq.runtime import physical_cores

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)

AUTO = "auto"
#: Timing rounds; the best round of each backend counts.
ROUNDS = 3
#: Probe texts per round (the built-in probe questions are repeated up to this).
PROBE_TEXTS = 256
#: SIMD / matrix flags that decide which int8 and fp32 kernels a runtime can use.
_FLAGS = ("avx2", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_int8", "amx_bf16")
_LIBS = ("torch", "onnxruntime", "openvino", "nncf")


def _cpu_model_and_flags() -> tuple[str, list[str]]:
    name, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    name = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:  # not Linux: the name from platform, no flags (the versions still key the cache)
        pass
    return name, sorted(f for f in _FLAGS if f in flags)


def cpu_signature() -> dict[str, Any]:
    """What the fastest backend depends on besides the model: CPU, flags, cores, library versions."""
    name, flags = _cpu_model_and_flags()
    versions = {}
    for lib in _LIBS:
        try:
            versions[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            versions[lib] = None
    return {"cpu": name, "flags": flags, "cores": physical_cores(), "versions": versions}


def _cache_file(model: SentenceTransformer) -> Path:
    from dupq.backends.onnx import cache_dir

    return cache_dir(model) / "dupq-auto.json"


def _key(model: SentenceTransformer, signature: dict[str, Any]) -> str:
    blob = json.dumps({"fingerprint": model_fingerprint(model), "machine": signature}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _read_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def cached_choice(model: SentenceTransformer) -> dict[str, Any] | None:
    """The recorded probe for this model on this machine, if any (what ``auto`` will reuse)."""
    return _read_cache(_cache_file(model)).get(_key(model, cpu_signature()))


def _probe_texts(calibration: Sequence[str] | None) -> list[str]:
    from dupq.backends.onnx import PROBE_QUESTIONS
    from dupq.backends.openvino import calibration_split

    texts = calibration_split(calibration)[0] if calibration else []
    if len(texts) < 32:  # too few of the user's texts to time on: the built-in questions
        texts = list(PROBE_QUESTIONS)
    texts = (texts * (PROBE_TEXTS // len(texts) + 1))[:PROBE_TEXTS]
    return sorted(texts, key=len)  # as the Embedder batches them: by length, so padding is small


def probe(
    model: SentenceTransformer,
    calibration: Sequence[str] | None = None,
    *,
    batch_size: int = 64,
    make_runner: Callable[..., Any],
    available: Sequence[str],
) -> dict[str, Any]:
    """Export, verify and time every ``available`` backend (runners from ``make_runner``: the
    package's registry hands both in, so this module never imports it back); return the record
    (choice, q/s, skipped)."""
    texts = _probe_texts(calibration)
    runners, skipped = {}, {}
    for name in available:
        try:
            runners[name] = make_runner(model, name, calibration=calibration)
            runners[name](texts[:batch_size], batch_size)  # warm-up: first-call allocations
        except Exception as exc:  # noqa: BLE001 - any failure only rules this backend out
            if name == "torch":
                raise
            skipped[name] = f"{type(exc).__name__}: {exc}"[:300]
            logger.info("auto: %s skipped (%s)", name, skipped[name])
    best = dict.fromkeys(runners, float("inf"))
    for _ in range(ROUNDS):
        for name, runner in runners.items():
            t0 = time.perf_counter()
            runner(texts, batch_size)
            best[name] = min(best[name], time.perf_counter() - t0)
    qps = {name: round(len(texts) / max(t, 1e-9), 1) for name, t in best.items()}
    choice = max(qps, key=qps.__getitem__)
    table = ", ".join(f"{n} {q:.0f} q/s" for n, q in sorted(qps.items(), key=lambda kv: -kv[1]))
    logger.info("auto: picked %s (%s)", choice, table)
    return {
        "choice": choice,
        "questions_per_s": qps,
        "skipped": skipped,
        "probe_texts": len(texts),
        "rounds": ROUNDS,
        "machine": cpu_signature(),
        "fingerprint": model_fingerprint(model),
        "probed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def resolve_auto(
    model: SentenceTransformer,
    calibration: Sequence[str] | None = None,
    *,
    force: bool = False,
    make_runner: Callable[..., Any],
    available: Sequence[str],
) -> str:
    """The backend ``auto`` stands for: the cached choice for this model and machine, else a probe
    (:func:`probe`, with the registry's ``make_runner`` and ``available`` backends)."""
    force = force or os.environ.get("DUPQ_AUTO_REPROBE", "") not in ("", "0")
    path = _cache_file(model)
    key = _key(model, cpu_signature())
    if not force:
        hit = _read_cache(path).get(key)
        if isinstance(hit, dict) and isinstance(hit.get("choice"), str):
            return hit["choice"]
    record = probe(model, calibration, make_runner=make_runner, available=available)
    cache = _read_cache(path)
    cache[key] = record
    try:
        atomic_write_json(path, cache)
    except OSError as exc:  # a read-only cache: the choice still stands for this process
        logger.warning("auto: could not cache the probe in %s (%s)", path, exc)
    if record["choice"] not in record["questions_per_s"]:
        raise DupqError(f"auto: no backend could be timed ({record['skipped']})")
    return record["choice"]
