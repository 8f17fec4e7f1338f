"""Encoding benchmark: dupq's backends against plain ``SentenceTransformer.encode``, in one run.

    python benchmarks/encode.py                       # everything, ~2-5 min on 2 cores
    python benchmarks/encode.py --n 2000 --repeats 2  # smaller timed set, best of 2 runs
    python benchmarks/encode.py --backends plain,onnx-int8
    python benchmarks/encode.py --backends plain,torch --student layers=models/student-layers \
        static=models/student-static --test-splits     # students of `dupq distill`, side by side

Writes ``benchmarks/results/encode.json`` and prints a table.


What a user would otherwise write is ``SentenceTransformer(model).encode(questions)`` (default
arguments: batch 32). This measures, on the same model, the same CPU and the same real questions:

* throughput (questions/s) of plain encode, dupq ``torch``, ``onnx`` and ``onnx-int8``, ``openvino``
  and ``openvino-int8`` when ``dupq[openvino]`` is installed (and dupq torch on CUDA when a GPU is
  present), and the ratio to plain;
* agreement with fp32 torch (mean / min cosine of each question's vector);
* duplicate-detection quality kept: average precision of cosine similarity on all 3,048 labelled
  Medical Question Pairs, per backend (the target is within 0.5 AP points of fp32);
* students (``--student NAME=DIR``, made by ``dupq distill``): rows ``student-NAME`` encoded with dupq
  torch; their "cosine" is to the teacher (the ``--model``), for the layers student only (a static
  student has its own PCA space: n/a);
* ``--test-splits``: AP on the held-out test pairs of MQP and Quora (split as
  ``benchmarks/quora_model.py`` and ``benchmarks/student_inputs.py`` do), which no student trained on;
* achieved GFLOP/s vs the CPU's peak, so we know how close to the hardware limit we are — over wall
  time, and over the CPU time the process actually got (``time.process_time``), which stays
  meaningful when other work shares the machine.

FLOPs per token of a BERT-style encoder with ``n`` layers, hidden ``h``, FFN ``i``, sequence ``L``:
``n × (2 × (4h² + 2hi) + 4·L·h)`` — the first term is the weight matmuls (Q, K, V, output
projections and the two FFN matrices; 2 FLOPs per multiply-add), the second the attention
scores QKᵀ and the weighted sum AV. Embedding look-ups, layer norms, softmax and GELU are ignored
(< 2 %). Only real (non-padding) tokens are counted, so padding waste shows up as lost efficiency.

Peak: cores × GHz (``cpu MHz`` of /proc/cpuinfo, the nominal clock a VM reports; turbo may be
higher) × 2 FMA units × fp32 lanes (8 for AVX2, 16 for AVX-512) × 2 FLOPs. Int8 peak: with VNNI
(``avx512_vnni``/``avx_vnni``), one ``vpdpbusd`` does 4 multiply-adds per 32-bit lane → 4× the fp32
peak; without VNNI (AVX2 ``vpmaddubsw`` + ``vpmaddwd`` to widen) → 2× the fp32 peak.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from benchmarks._record import provenance  # noqa: E402
from dupq.errors import DupqError  # noqa: E402
from dupq.runtime import physical_cores  # noqa: E402
from dupq.vectors import l2_normalize  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "encode-backends.json"

PLAIN = "plain"
CUDA = "torch-cuda"
STUDENT = "student-"
DEFAULT_BACKENDS = (PLAIN, "torch", "onnx", "onnx-int8")


# -- data ------------------------------------------------------------------------------------------
def _read_tsv(path: Path):
    import pandas as pd

    return pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE, keep_default_na=False, dtype=str)


def find_data_dir(data_dir: str | Path | None = None) -> Path:
    """``data_dir``, else the shared data folder (:func:`dupq.data.shared_data_dir`)."""
    from dupq.data import shared_data_dir

    path = Path(data_dir) if data_dir else shared_data_dir()
    if not (path / "medical-question-pairs" / "mqp.tsv").exists():
        raise DupqError(
            f"benchmark data not found: pass --data DIR holding medical-question-pairs/mqp.tsv ({path})"
        )
    return path


def load_questions(data_dir: Path, seed: int = 0) -> tuple[list[str], list[str], list[str], np.ndarray]:
    """Unique real questions (MQP + SemEval CQA subjects and questions), and the MQP pairs.

    Returns ``(questions, q1, q2, labels)``; every MQP question is in ``questions``.
    """
    mqp = _read_tsv(data_dir / "medical-question-pairs" / "mqp.tsv")
    q1, q2 = mqp["question1"].tolist(), mqp["question2"].tolist()
    labels = mqp["label"].astype(int).to_numpy()
    pool = list(dict.fromkeys(q1 + q2))
    sem = data_dir / "semeval2016-task3-cqa-subtaskB" / "train-part2.tsv"
    if sem.exists():
        s = _read_tsv(sem)
        extra = s["orgq_subject"].tolist() + s["relq_subject"].tolist() + s["orgq_body"].tolist()
        pool += [t for t in dict.fromkeys(extra) if t.strip()]
    pool = list(dict.fromkeys(pool))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(pool))
    return [pool[i] for i in order], q1, q2, labels


# -- machine -------------------------------------------------------------------------------------
def cpu_info() -> dict[str, Any]:
    """Model name, cores, clock and SIMD features, and the fp32 / int8 peaks derived from them."""
    flags: set[str] = set()
    mhz, name = 0.0, platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "flags" and not flags:
                flags = set(value.split())
            elif key == "cpu MHz" and not mhz:
                mhz = float(value)
            elif key == "model name":
                name = value.strip()
    except OSError:
        pass
    cores = physical_cores()
    lanes = 16 if "avx512f" in flags else 8 if "avx2" in flags else 4
    vnni = bool({"avx512_vnni", "avx_vnni"} & flags)
    fma_units = 2
    fp32 = cores * mhz / 1e3 * fma_units * lanes * 2
    int8 = fp32 * (4 if vnni else 2)
    return {
        "model": name,
        "cores": cores,
        "ghz": round(mhz / 1e3, 3),
        "simd": "avx512" if lanes == 16 else "avx2" if lanes == 8 else "sse",
        "vnni": vnni,
        # the SIMD / matrix features the int8 and bf16 kernels dispatch on
        "simd_flags": sorted(f for f in flags if f.startswith(("avx", "amx", "fma", "f16c"))),
        "peak_fp32_gflops": round(fp32, 1),
        "peak_int8_gops": round(int8, 1),
        "peak_assumption": (
            f"{cores} cores x {mhz / 1e3:.2f} GHz x {fma_units} FMA units x {lanes} fp32 lanes x 2; "
            f"int8 = {'4' if vnni else '2'}x fp32 "
            f"({'VNNI vpdpbusd' if vnni else 'no VNNI: vpmaddubsw+vpmaddwd'})"
        ),
    }


def flops_per_token(model, mean_tokens: float) -> float:
    """Forward FLOPs per real token of a BERT-style encoder (formula in the module docstring)."""
    cfg = model[0].auto_model.config
    h, i, n = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    return n * (2 * (4 * h * h + 2 * h * i) + 4 * mean_tokens * h)


# -- measurement ---------------------------------------------------------------------------------
def _encoder_for(
    name: str,
    model,
    batch_size: int,
    students: dict[str, Any] | None = None,
    corpus: list[str] | None = None,
):
    """A function texts → unit vectors for one row of the table, and its setup time.

    ``corpus``: the texts the run encodes — ``openvino-int8`` is quantised on a sample of them and
    ``auto`` probes on them, as ``dupq dedupe`` does with its input (the setup time includes that)."""
    from dupq.embed import Embedder

    t0 = time.perf_counter()
    if name == PLAIN:
        st = model

        def fn(texts):
            return l2_normalize(st.encode(texts, show_progress_bar=False))  # default args: batch 32

    elif name == CUDA:
        from dupq.encoder import load_encoder, model_source

        emb = Embedder(load_encoder(model_source(model), device="cuda"), batch_size=max(batch_size, 256))

        def fn(texts):
            return emb.encode(texts)

    elif name.startswith(STUDENT):
        student, backend = students[name]  # a student runs on the backend its spec names (default torch)
        emb = Embedder(student, backend=backend, batch_size=batch_size, calibration=corpus)

        def fn(texts):
            return emb.encode(texts)

        fn.runs_as = emb.backend

    else:
        emb = Embedder(model, backend=name, batch_size=batch_size, calibration=corpus)

        def fn(texts):
            return emb.encode(texts)

        fn.runs_as = emb.backend  # what "auto" resolved to

    return fn, time.perf_counter() - t0


def run_encode_benchmark(
    *,
    n: int | None = None,
    backends: list[str] | None = None,
    batch_size: int = 64,
    repeats: int = 1,
    model: str | None = None,
    data_dir: str | Path | None = None,
    out: str | Path | None = None,
    progress: bool = True,
    argv: list[str] | None = None,
    students: dict[str, str] | None = None,
    test_splits: bool = False,
) -> dict[str, Any]:
    """Run the benchmark (see module docstring) and return the results; write them to ``out``.

    ``argv``: the script's command-line arguments, recorded as the command that produced the JSON; a
    library call (``argv=None``) records the call with its arguments instead. ``students``: name ->
    student model directory (rows ``student-NAME``); ``test_splits``: AP on the MQP and Quora test
    splits too."""
    import torch
    from sklearn.metrics import average_precision_score

    from dupq.backends import OPENVINO_BACKENDS, available_backends
    from dupq.encoder import load_encoder

    names = list(backends or DEFAULT_BACKENDS)
    if backends is None:
        names += [b for b in OPENVINO_BACKENDS if b in available_backends()]
    if torch.cuda.is_available() and backends is None:
        names.append(CUDA)
    questions, q1, q2, labels = load_questions(find_data_dir(data_dir))
    timed = questions[: n or len(questions)]
    st = load_encoder(model, device="cpu")
    tok_len = np.array(
        [len(x) for x in st.tokenizer(timed, truncation=True, max_length=st.max_seq_length)["input_ids"]]
    )
    mean_tokens = float(tok_len.mean())
    fpt = flops_per_token(st, mean_tokens)
    cpu = cpu_info()
    # NAME=DIR, or NAME=DIR@BACKEND: that student on a backend (e.g. the layers student on openvino-int8)
    student_specs = {k: (v.split("@", 1) + ["torch"])[:2] for k, v in (students or {}).items()}
    students = {k: path for k, (path, _) in student_specs.items()}
    student_models = {
        f"{STUDENT}{k}": (load_encoder(path, device="cpu"), backend)
        for k, (path, backend) in student_specs.items()
    }
    names += list(student_models)
    split_pairs_ = _test_splits(data_dir) if test_splits else {}

    load_start = os.getloadavg() if hasattr(os, "getloadavg") else None
    encoders, setup = {}, {}
    for name in names:
        if progress:
            print(f"[bench-encode] preparing {name} …", flush=True)
        encoders[name], setup[name] = _encoder_for(name, st, batch_size, student_models, corpus=timed)
        encoders[name](timed[:64])  # warm-up (thread pools, kernels, allocator)

    # Interleave repeats so machine-load drift hits every backend alike.
    times: dict[str, list[float]] = {k: [] for k in names}
    cpu_times: dict[str, list[float]] = {k: [] for k in names}
    vectors: dict[str, np.ndarray] = {}
    for r in range(repeats):
        for name in names:
            if progress:
                print(f"[bench-encode] run {r + 1}/{repeats}: {name} on {len(timed)} questions …", flush=True)
            t0, c0 = time.perf_counter(), time.process_time()
            vecs = encoders[name](timed)
            times[name].append(time.perf_counter() - t0)
            cpu_times[name].append(time.process_time() - c0)
            vectors[name] = vecs

    # Quality: AP on all MQP pairs, from each backend's own vectors.
    index = {t: i for i, t in enumerate(timed)}
    rest = [t for t in dict.fromkeys(q1 + q2) if t not in index]
    ref_name = "torch" if "torch" in names else names[0]
    rows = []
    ref = vectors[ref_name]
    for name in names:
        vecs = vectors[name]
        if rest:
            vecs = np.vstack([vecs, encoders[name](rest)])
        lookup = {**index, **{t: len(timed) + i for i, t in enumerate(rest)}}
        a = vecs[[lookup[t] for t in q1]]
        b = vecs[[lookup[t] for t in q2]]
        ap = float(average_precision_score(labels, np.einsum("ij,ij->i", a, b)))
        student = student_models[name][0] if name in student_models else None
        # A student's vectors are not fp32 copies of the teacher's: its cosine to the teacher is reported
        # apart, and only where both share one space (the layers student; a static one has its own).
        same_space = vectors[name].shape == ref.shape
        cos = np.einsum("ij,ij->i", vectors[name], ref) if same_space else None
        row_fpt = fpt if student is None else _student_flops(student, mean_tokens)
        row = {
            "backend": name,
            "runs_as": getattr(encoders[name], "runs_as", name),
            **_speed(  # against the int8 peak when the row runs int8 ("auto" included)
                getattr(encoders[name], "runs_as", name),
                times[name],
                cpu_times[name],
                len(timed),
                row_fpt and row_fpt * tok_len.sum(),
                cpu,
            ),
            "setup_s": round(setup[name], 2),
            "mean_cosine_vs_fp32": None if student is not None else round(float(cos.mean()), 5),
            "min_cosine_vs_fp32": None if student is not None else round(float(cos.min()), 5),
            "mqp_ap": round(100 * ap, 2),
        }
        if student is not None:
            row["model"] = students[name[len(STUDENT) :]]
            row["mean_cosine_vs_teacher"] = round(float(cos.mean()), 5) if cos is not None else None
            row["distilled"] = _distilled(row["model"])
        for split, pairs in split_pairs_.items():
            row[f"{split}_test_ap"] = round(100 * _pairs_ap(encoders[name], pairs), 2)
        rows.append(row)
    plain_qps = next((r["questions_per_s"] for r in rows if r["backend"] == PLAIN), None)
    ref_ap = next(r["mqp_ap"] for r in rows if r["backend"] == ref_name)
    for row in rows:
        row["speedup_vs_plain"] = round(row["questions_per_s"] / plain_qps, 2) if plain_qps else None
        row["ap_delta_vs_fp32"] = round(row["mqp_ap"] - ref_ap, 2)

    call = dict(
        n=n,
        backends=backends,
        batch_size=batch_size,
        repeats=repeats,
        model=model,
        data_dir=data_dir,
        students=students,
        test_splits=test_splits,
    )
    if argv is not None:
        where = provenance("encode.py", argv, load_at_start=list(load_start) if load_start else None)
    else:
        where = provenance("encode.py", [], load_at_start=list(load_start) if load_start else None)
        where["command"] = (
            "benchmarks.encode.run_encode_benchmark(" + ", ".join(f"{k}={v!r}" for k, v in call.items()) + ")"
        )
    result = {
        **where,
        "model": model or "all-MiniLM-L6-v2 (embedded default)",
        "questions": len(timed),
        "mean_tokens": round(mean_tokens, 1),
        "mqp_pairs": len(labels),
        "test_splits": {k: len(v) for k, v in split_pairs_.items()},
        "batch_size": batch_size,
        "repeats": repeats,
        "threads": physical_cores(),
        "flops_per_token": round(fpt),
        "flops_formula": "layers*(2*(4h^2+2h*ffn) + 4*L*h), L = mean real tokens",
        "cpu": cpu,
        "torch": torch.__version__,
        "onnxruntime": _version("onnxruntime"),
        "openvino": _version("openvino"),
        "nncf": _version("nncf"),
        "load_average_start": load_start,
        "load_average_end": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "rows": rows,
    }
    if out:
        from dupq.io import atomic_write_json

        atomic_write_json(out, result)
    return result


def _speed(
    name: str, times: list[float], cpu_times: list[float], n: int, flops: float | None, cpu: dict[str, Any]
) -> dict[str, Any]:
    """Questions/s (best run), CPU seconds and achieved GFLOP/s against the peak (``flops``: ``None``
    for a model without a transformer, whose FLOPs the formula does not cover)."""
    best = min(times)
    gflops = flops / best / 1e9 if flops else None
    peak = cpu["peak_int8_gops"] if name.endswith("int8") else cpu["peak_fp32_gflops"]
    # Against the CPU time the process actually got: robust to other load on a shared machine.
    cpu_s = min(cpu_times)
    cpu_eff = 100 * flops / 1e9 / cpu_s / (peak / cpu["cores"]) if flops and peak and cpu_s else None
    return {
        "questions_per_s": round(n / best, 1),
        "all_runs_questions_per_s": [round(n / t, 1) for t in times],
        "gflops": round(gflops, 3) if gflops else None,
        "pct_of_peak": None if name == CUDA or not gflops or not peak else round(100 * gflops / peak, 1),
        "cpu_s": round(cpu_s, 2),
        "pct_of_peak_per_cpu_s": None if name == CUDA or cpu_eff is None else round(cpu_eff, 1),
    }


def _distilled(model_dir: str) -> dict[str, Any]:
    """What the student's dupq.json says about how it was made (the models themselves are not kept in
    git, so the result JSON carries it): kind, texts, training time, held-out fit, thresholds."""
    from dupq.card import ModelCard

    meta = ModelCard.read_or_empty(model_dir).to_dict()
    student = meta.get("student", {})
    keep = (
        "kind",
        "kept_layers",
        "teacher_layers",
        "pca_dims",
        "dim",
        "seconds",
        "check",
        "model2vec_seconds",
    )
    return {
        "student": {k: student[k] for k in keep if k in student},
        "training": student.get("training"),
        "texts": meta.get("texts"),
        "teacher": meta.get("teacher"),
        "threshold": meta.get("threshold"),
        "calibration_method": meta.get("calibration_method"),
        "calibration_detail": meta.get("calibration_detail"),
        "teacher_agreement": meta.get("teacher_agreement"),
        "two_tier": meta.get("two_tier"),
        "dupq_version": meta.get("dupq_version"),
    }


def _student_flops(model, mean_tokens: float) -> float | None:
    """FLOPs per token of a transformer student (its own layer count); ``None`` for a static one."""
    first = model[0]
    return flops_per_token(model, mean_tokens) if hasattr(first, "auto_model") else None


def _test_splits(data_dir: str | Path | None) -> dict[str, Any]:
    """The MQP and Quora test pairs, split as benchmarks/student_inputs.py splits them."""
    from benchmarks.student_inputs import splits

    if data_dir:
        os.environ["DUPQ_SHARED_DATA"] = str(data_dir)
    return {name: part.test for name, part in splits().items()}


def _pairs_ap(encode, pairs) -> float:
    """Average precision of the cosine of ``encode``'s vectors on labelled ``pairs``."""
    from sklearn.metrics import average_precision_score

    texts = list(dict.fromkeys(pairs["question1"].tolist() + pairs["question2"].tolist()))
    vecs = encode(texts)
    at = {t: i for i, t in enumerate(texts)}
    a = vecs[[at[t] for t in pairs["question1"]]]
    b = vecs[[at[t] for t in pairs["question2"]]]
    return float(average_precision_score(pairs["label"].to_numpy(), np.einsum("ij,ij->i", a, b)))


def _version(module: str) -> str | None:
    try:
        return __import__(module).__version__
    except ImportError:
        return None


def format_table(result: dict[str, Any]) -> str:
    """The results as a fixed-width table (what the CLI and the script print)."""
    splits = list(result.get("test_splits") or {})
    head = (
        f"{'backend':<15} {'q/s':>8} {'x plain':>8} {'mean cos':>9} {'min cos':>8} "
        f"{'MQP AP':>7} {'dAP':>6} {'GFLOP/s':>8} {'% peak':>7} {'%/cpu-s':>8}"
        + "".join(f" {s + ' test AP':>14}" for s in splits)
    )
    lines = [head, "-" * len(head)]
    for r in result["rows"]:
        ratio = f"{r['speedup_vs_plain']:.2f}" if r["speedup_vs_plain"] is not None else "-"
        mean = (
            r["mean_cosine_vs_fp32"]
            if r["mean_cosine_vs_fp32"] is not None
            else r.get("mean_cosine_vs_teacher")
        )
        mean = "n/a" if mean is None else f"{mean:.5f}" + ("t" if r["mean_cosine_vs_fp32"] is None else "")
        low = "n/a" if r["min_cosine_vs_fp32"] is None else f"{r['min_cosine_vs_fp32']:.5f}"
        lines.append(
            f"{r['backend']:<15} {r['questions_per_s']:>8.1f} {ratio:>8} {mean:>9} {low:>8} "
            f"{r['mqp_ap']:>7.2f} {r['ap_delta_vs_fp32']:>+6.2f} {_num(r['gflops']):>8} "
            f"{_num(r['pct_of_peak']):>7} {_num(r.get('pct_of_peak_per_cpu_s')):>8}"
            + "".join(f" {r[s + '_test_ap']:>14.2f}" for s in splits)
        )
    c = result["cpu"]
    lines.append("")
    lines.append(
        f"{result['questions']} questions (mean {result['mean_tokens']} tokens), "
        f"batch {result['batch_size']}, "
        f"{result['threads']} threads, best of {result['repeats']}; AP on {result['mqp_pairs']} MQP pairs; "
        f"load average {_load(result['load_average_start'])} → {_load(result['load_average_end'])}"
    )
    if any(r["backend"].startswith(STUDENT) for r in result["rows"]):
        lines.append(
            "student rows: 'mean cos' marked t is the cosine to the teacher (--model), n/a for a static "
            "student (its own PCA space); they encode with dupq torch"
        )
    lines.append(
        "% peak: achieved FLOP/s over wall time vs the whole CPU's peak (int8 rows vs the int8 peak); "
        "%/cpu-s: the same FLOPs over the CPU time the process got vs per-core peak (robust to other load)"
    )
    lines.append(
        f"{result['flops_per_token'] / 1e6:.1f} MFLOP/token; peak fp32 {c['peak_fp32_gflops']} GFLOP/s, "
        f"int8 {c['peak_int8_gops']} Gop/s ({c['peak_assumption']}); {c['model']}"
    )
    return "\n".join(lines)


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


def _load(avg) -> str:
    return f"{avg[0]:.1f}" if avg else "?"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=None, help="timed questions (default: all ~5,200)")
    ap.add_argument(
        "--backends",
        default=None,
        help="comma list of plain,torch,onnx,onnx-int8,openvino,openvino-int8,torch-cuda",
    )
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=1, help="interleaved runs per backend; best is reported")
    ap.add_argument("--model", default=None, help="model dir (default: embedded all-MiniLM-L6-v2)")
    ap.add_argument("--data", default=None, help="folder holding medical-question-pairs/ (../shared/data)")
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument(
        "--student",
        nargs="*",
        default=[],
        metavar="NAME=DIR",
        help="students of `dupq distill` to add as rows student-NAME (cosine: to the teacher --model)",
    )
    ap.add_argument("--test-splits", action="store_true", help="AP on the MQP and Quora test splits too")
    args = ap.parse_args()
    students = {}
    for item in args.student:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            ap.error(f"--student takes NAME=DIR, not {item!r}")
        students[name] = path
    result = run_encode_benchmark(
        n=args.n,
        backends=args.backends.split(",") if args.backends else None,
        batch_size=args.batch_size,
        repeats=args.repeats,
        model=args.model,
        data_dir=args.data,
        out=args.out,
        argv=sys.argv[1:],
        students=students,
        test_splits=args.test_splits,
    )
    print(format_table(result))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
