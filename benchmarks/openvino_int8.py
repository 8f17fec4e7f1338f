"""Which int8 recipe ``openvino-int8`` should use: NNCF weight-only int8 vs full post-training quantisation.

    python benchmarks/openvino_int8.py                 # 300 calibration + 800 timed questions
    python benchmarks/openvino_int8.py --calib 200 --n 400

Issue 12 asks for whichever is faster at equal quality. Weight-only (``nncf.compress_weights``, what
``openvino-int8`` ships) needs no data; PTQ (``nncf.quantize``, ``ModelType.TRANSFORMER``) also
quantises activations, so the CPU's int8 (VNNI) matrix units can be used, but it needs a calibration
sample of the user's own texts. Both are made from the same verified fp32 IR of the embedded
all-MiniLM-L6-v2, run through the same Embedder path (length-sorted batches of 64), and compared on
CPU seconds (robust on a shared machine), wall time, and cosine to fp32 torch on held-out questions
(calibration and timed questions do not overlap). Writes
``benchmarks/results/openvino-int8-ptq-vs-weight-only.json``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from benchmarks._record import load_average, write_result  # noqa: E402
from benchmarks.encode import find_data_dir, load_questions  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "openvino-int8-ptq-vs-weight-only.json"


def _ptq(model, fp32_xml: Path, calib: list[str], out_xml: Path) -> None:
    """Full PTQ of the fp32 IR on ``calib`` (batches of 8, padded), saved to ``out_xml``."""
    import nncf
    import openvino as ov

    from dupq.backends.torch import model_input_names

    names = model_input_names(model)
    items = []
    for start in range(0, len(calib), 8):
        enc = model.tokenizer(calib[start : start + 8], padding=True, truncation=True, return_tensors="np")
        feed = {
            "input_ids": enc["input_ids"].astype(np.int64),
            "attention_mask": enc["attention_mask"].astype(np.int64),
        }
        if "token_type_ids" in names:
            feed["token_type_ids"] = np.zeros_like(feed["input_ids"])
        items.append(feed)
    logging.getLogger("nncf").setLevel(logging.ERROR)
    quantized = nncf.quantize(
        ov.Core().read_model(str(fp32_xml)),
        nncf.Dataset(items),
        model_type=nncf.ModelType.TRANSFORMER,
        subset_size=len(items),
    )
    ov.save_model(quantized, str(out_xml), compress_to_fp16=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calib", type=int, default=300, help="calibration questions for PTQ")
    ap.add_argument("--n", type=int, default=800, help="timed, held-out questions")
    ap.add_argument("--data", default=None, help="folder holding medical-question-pairs/")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()

    from dupq.backends.openvino import OpenVinoRunner, export_openvino
    from dupq.embed import Embedder
    from dupq.encoder import load_encoder

    load_start = load_average()
    questions = load_questions(find_data_dir(args.data))[0]
    calib, timed = questions[: args.calib], questions[args.calib : args.calib + args.n]
    model = load_encoder(None, device="cpu")
    ref = Embedder(model).encode(timed)
    fp32_xml = export_openvino(model, "openvino")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        ptq_xml = Path(tmp) / "ptq.xml"
        _ptq(model, fp32_xml, calib, ptq_xml)
        ptq_s = time.perf_counter() - t0
        variants = {
            "fp32": fp32_xml,
            "weight-only int8 (shipped)": export_openvino(model, "openvino-int8"),
            "ptq int8": ptq_xml,
        }
        rows = []
        for name, xml in variants.items():
            emb = Embedder(model)
            emb._run_ids = OpenVinoRunner(model, xml).run_ids  # the Embedder path, this IR
            emb.encode(timed[:64])  # warm-up
            best = None
            for _ in range(2):
                w0, c0 = time.perf_counter(), time.process_time()
                vecs = emb.encode(timed)
                wall, cpu_s = time.perf_counter() - w0, time.process_time() - c0
                best = (wall, cpu_s) if best is None or cpu_s < best[1] else best
            cos = np.einsum("ij,ij->i", vecs, ref)
            rows.append(
                {
                    "variant": name,
                    "questions_per_s": round(len(timed) / best[0], 1),
                    "questions_per_cpu_s": round(len(timed) / best[1], 1),
                    "cpu_s": round(best[1], 2),
                    "mean_cosine_vs_fp32": round(float(cos.mean()), 5),
                    "min_cosine_vs_fp32": round(float(cos.min()), 5),
                    "bin_mb": round(Path(xml).with_suffix(".bin").stat().st_size / 1e6, 1),
                }
            )
            print(rows[-1], flush=True)
    payload = {
        "model": "all-MiniLM-L6-v2 (embedded default)",
        "calibration_questions": len(calib),
        "timed_questions": len(timed),
        "ptq_seconds": round(ptq_s, 1),
        "best_of": 2,
        "rows": rows,
    }
    write_result(args.out, "openvino_int8.py", sys.argv[1:], payload, load_at_start=load_start)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
