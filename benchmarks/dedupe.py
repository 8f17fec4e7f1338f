"""Batch-dedupe benchmark: ``dupq.deduplicate`` vs sentence-transformers' ``paraphrase_mining`` and
``community_detection`` (and SemHash with the same encoder), default model, this CPU, one run.

Corpus (``--size`` texts): labelled pairs from ``../shared/data`` — MQP same-intent pairs, SemEval-2016
Qatar Living question pairs (PerfectMatch/Relevant = positive, Irrelevant = negative; subject + body),
MRPC paraphrase pairs — take up to half of the corpus; the rest is padding with other real sentences
(STS-B, SICK), then, if still short, recombinations of two padding sentences (counted in the JSON as
``synthetic_padding``). Every text is distinct (by :func:`dupq.text.text_key`).

Measured per system, each in its own subprocess (so peak RSS is that system's own):

* **dupq**: ``deduplicate(corpus.csv, out=deduped.csv)`` end to end (read → exact pass → encode →
  index/search → group → write), with its own stage times — its defaults, the shipped verifier on;
* **dupq-cosine**: the same with ``verifier=None`` (the cosine decides: ``--no-verifier``), the
  alternative to the default, in the same invocation;
* **st-encode**: ``SentenceTransformer.encode`` of the corpus (what ``paraphrase_mining`` does first),
  shared by the three baselines below — their *mining* stage is timed on these embeddings and their
  end-to-end time is encode + mining (exactly what ``util.paraphrase_mining(model, sentences)`` runs);
  ``--share-encoding`` gives them dupq's stored embeddings instead (for sizes where encoding twice
  does not fit the time budget; the encode time then reported for them is dupq's, and marked so);
* **paraphrase_mining**: ``util.paraphrase_mining_embeddings`` (top_k=100, max_pairs=500k: defaults);
  a pair counts as found when it is mined with a score >= the threshold;
* **community_detection**: ``util.community_detection(threshold, min_community_size=2)``;
* **semhash**: ``SemHash.from_embeddings(...).self_deduplicate(threshold)`` (if installed).

Quality: recall of the labelled positive pairs (both texts placed in one group / pair mined) and the
"false merge" rate of the labelled negative pairs, per source. For dupq above its exact-search size
the recall of its HNSW pairs against exact search on the same vectors is measured too.

    python benchmarks/dedupe.py --sizes 10000
    python benchmarks/dedupe.py --sizes 10000 100000 --share-encoding-above 20000
    python benchmarks/dedupe.py --sizes 100000 --systems dupq paraphrase_mining --backend onnx-int8 \
        --share-encoding-above 10000000 --pm-on-dupq-vectors            # + PM on dupq's own vectors
    python benchmarks/dedupe.py --sizes 1000000 --systems dupq --backend onnx-int8   # dupq alone at scale
    python benchmarks/dedupe.py --sizes 100000 --systems dupq dupq-cosine --backend default  # verifier on/off
    python benchmarks/dedupe.py --mining-only 300000 --systems dupq paraphrase_mining
    python benchmarks/dedupe.py --calibrate [--backend onnx-int8]       # the default threshold

Writes ``benchmarks/results/dedupe.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._record import load_average, provenance, write_result  # noqa: E402
from dupq.io import atomic_write_text  # noqa: E402
from dupq.vectors import l2_normalize  # noqa: E402

DATA = REPO.parent / "shared" / "data"
RESULTS = REPO / "benchmarks" / "results" / "dedupe-10k-all-systems.json"
CACHE = REPO / "benchmarks" / ".cache" / "dedupe"
#: ``dupq-cosine``: dupq with ``verifier=None`` (the cosine decides) — the alternative to its default,
#: run side by side in the same invocation.
SYSTEMS = ("dupq", "dupq-cosine", "paraphrase_mining", "community_detection", "semhash", "semhash-static")


def _tsv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE, keep_default_na=False, dtype=str)


def labelled_pairs() -> list[tuple[str, str, int, str]]:
    """``(text_a, text_b, label, source)`` from the shared real pair sets."""
    out = []
    m = _tsv(DATA / "medical-question-pairs" / "mqp.tsv")
    out += [(a, b, int(y), "mqp") for a, b, y in zip(m.question1, m.question2, m.label, strict=True)]
    s = _tsv(DATA / "semeval2016-task3-cqa-subtaskB" / "train-part2.tsv")
    for r in s.itertuples(index=False):
        a = f"{r.orgq_subject} {r.orgq_body}".strip()
        b = f"{r.relq_subject} {r.relq_body}".strip()
        out.append((a, b, int(r.relevance in ("PerfectMatch", "Relevant")), "semeval"))
    for split in ("train", "test"):
        p = _tsv(DATA / "mrpc" / f"{split}.tsv")
        out += [(a, b, int(y), "mrpc") for a, b, y in zip(p.sentence1, p.sentence2, p.label, strict=True)]
    return out


def padding_sentences() -> list[str]:
    texts: list[str] = []
    for f in ("sts-train.tsv", "sts-dev.tsv", "sts-test.tsv"):
        d = _tsv(DATA / "stsbenchmark" / f)
        texts += list(d.sentence1) + list(d.sentence2)
    for f in ("train.tsv", "trial.tsv", "test.tsv"):
        d = _tsv(DATA / "sick" / f)
        texts += list(d.sentence_A) + list(d.sentence_B)
    return texts


def build_corpus(size: int, seed: int = 0) -> tuple[list[str], list[tuple[int, int, int, str]], int]:
    """``(texts, pairs as (i, j, label, source), synthetic padding count)``; all texts distinct."""
    from dupq.text import text_key

    rng = random.Random(seed)
    pairs = labelled_pairs()
    rng.shuffle(pairs)
    texts: list[str] = []
    index: dict[str, int] = {}

    def add(t: str) -> int | None:
        t = t.strip()
        if not t:
            return None
        k = text_key(t)
        if k not in index:
            index[k] = len(texts)
            texts.append(t)
        return index[k]

    out_pairs = []
    budget = size // 2
    for a, b, y, src in pairs:
        if len(texts) >= budget:
            break
        i, j = add(a), add(b)
        if i is not None and j is not None and i != j:
            out_pairs.append((i, j, y, src))
    pad = padding_sentences()
    rng.shuffle(pad)
    for t in pad:
        if len(texts) >= size:
            break
        add(t)
    synthetic = 0
    while len(texts) < size:  # recombine halves of two real sentences: distinct, plausible text
        a, b = rng.choice(pad).split(), rng.choice(pad).split()
        n_before = len(texts)
        add(" ".join(a[: max(1, len(a) // 2)] + b[len(b) // 2 :]))
        synthetic += len(texts) - n_before
    return texts[:size], [p for p in out_pairs if p[0] < size and p[1] < size], synthetic


# ------------------------------------------------------------------------------------------------
# workers (one subprocess per system)
# ------------------------------------------------------------------------------------------------
def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(args: argparse.Namespace) -> dict:
    work = Path(args.work)

    def read_texts() -> list[str]:  # not in the dupq worker: its peak RSS is dedupe's own
        return pd.read_csv(work / "corpus.csv", dtype=str, keep_default_na=False)["question"].tolist()

    t0 = time.perf_counter()
    if args.worker in ("dupq", "dupq-cosine"):
        from dupq.dedupe import deduplicate

        name = args.worker
        res = deduplicate(
            work / "corpus.csv",
            text_column="question",
            out=work / f"deduped-{name}.csv",
            workdir=Path(args.dupq_workdir) if args.dupq_workdir else work / f"{name}-work",
            verifier="auto" if name == "dupq" else None,
            threshold=args.threshold,
            batch_size=args.batch_size,
            backend=args.backend,
            ef_search=args.ef_search,
            show_progress=False,
            model=args.model,
        )
        total = time.perf_counter() - t0
        df = pd.read_csv(work / f"deduped-{name}.csv", dtype=str, keep_default_na=False)
        gid = pd.to_numeric(df["group_id"], errors="coerce")
        groups = np.where(gid.isna(), -1 - np.arange(len(df)), gid.fillna(0)).astype(np.int64)
        s = res.summary
        out = {
            "encode_s": s.seconds.get("encode", 0.0),  # model loading is in load_s (and total_s)
            "load_s": s.seconds.get("load_model", 0.0),
            "mining_s": s.seconds.get("search", 0.0) + s.seconds.get("group", 0.0),
            "total_s": total,
            "stages_s": s.seconds,
            "rss_mb_after_stage": s.rss_mb,
            "index": s.index,
            "groups": s.groups,
            "duplicate_groups": s.duplicate_groups,
            "similar_pairs": s.similar_pairs,
            "texts_encoded": s.texts_encoded,
            "embeddings_reused": s.embeddings_reused,  # > 0: a --keep-embeddings rerun; encode_s is not
            "verification": getattr(s, "verification", None),  # the verifier stage's counts (default: on)
        }
        np.save(work / f"groups-{name}.npy", groups)
        out["peak_rss_mb"] = _peak_mb()  # the dedupe run's own peak, before the checks below
        if name == "dupq" and s.rows <= args.exact_check_max:
            # dupq's pairs above the threshold (what --pairs writes), for pair-level recall; and the
            # recall of the approximate index's pairs against exact search (exact is O(n^2): skipped
            # above --exact-check-max, where it would take longer than the run itself)
            from dupq.dedupe import similar_pairs

            store = next(Path(args.dupq_workdir or work / f"{name}-work").glob("emb-*"))
            vecs = np.load(store / "vectors.npy", mmap_mode="r")
            t1 = time.perf_counter()
            a, b, _ = similar_pairs(vecs, res.summary.threshold, index=s.index, ef_search=args.ef_search)
            approx_s = time.perf_counter() - t1
            np.save(work / "pairs-dupq-pairs.npy", np.stack([a, b], axis=1))
        if name == "dupq" and s.index != "flat" and s.rows <= args.exact_check_max:
            t1 = time.perf_counter()
            ea, eb, _ = similar_pairs(vecs, res.summary.threshold, index="flat")
            exact_s = time.perf_counter() - t1
            found = set(zip(a.tolist(), b.tolist(), strict=True))
            exact = set(zip(ea.tolist(), eb.tolist(), strict=True))
            out["index_pair_recall_vs_exact"] = len(found & exact) / max(len(exact), 1)
            out["search_s_approx_vs_flat"] = [round(approx_s, 2), round(exact_s, 2)]
        return out

    if args.worker == "semhash-static":  # SemHash end to end (its own encode + ANN) with a static model
        from semhash import SemHash

        from dupq.encoder import load_encoder

        texts = read_texts()
        st = load_encoder(args.static_model, device="cpu")

        class _Static:  # SemHash's Encoder protocol over the static model (a table look-up per token)
            def encode(self, inputs, **kwargs):
                return st.encode(
                    list(inputs), batch_size=1024, normalize_embeddings=True, convert_to_numpy=True
                )

        t0 = time.perf_counter()
        sh = SemHash.from_records(texts, model=_Static())
        built = time.perf_counter() - t0
        result = sh.self_deduplicate(threshold=args.threshold)
        total = time.perf_counter() - t0
        pos = {t: i for i, t in enumerate(texts)}
        groups = np.arange(len(texts))
        for d in result.filtered:
            groups[pos[d.record]] = pos[d.duplicate_of]
        np.save(work / "groups-semhash-static.npy", groups)
        return {
            "encode_and_index_s": built,
            "total_s": total,
            "duplicates": len(result.filtered),
            "static_model": str(args.static_model),
            "peak_rss_mb": _peak_mb(),
        }

    if args.worker == "st-encode":
        from dupq.encoder import load_encoder

        model = load_encoder(None, device="cpu")
        texts = read_texts()
        t0 = time.perf_counter()
        emb = model.encode(texts, batch_size=32, convert_to_numpy=True, normalize_embeddings=True)
        enc = time.perf_counter() - t0
        np.save(work / "emb.npy", emb.astype(np.float32))
        return {"encode_s": enc, "peak_rss_mb": _peak_mb()}

    emb = np.load(work / args.emb_file)
    cached = CACHE / f"emb-{len(emb)}.npy"
    if (
        not cached.exists() and not args.mining_only and args.emb_file == "emb.npy"
    ):  # real vectors for later --mining-only runs
        CACHE.mkdir(parents=True, exist_ok=True)
        np.save(cached, emb)
    import torch

    if args.worker == "dupq-mining":  # dupq's search + grouping stage alone, on the same vectors
        from dupq.dedupe import group_pairs, index_kind, similar_pairs

        t0 = time.perf_counter()
        a, b, _ = similar_pairs(emb, args.threshold, ef_search=args.ef_search)
        rep = group_pairs(len(emb), a, b, method="leader")
        mining = time.perf_counter() - t0
        sizes = np.bincount(rep, minlength=len(emb))
        out = {
            "mining_s": mining,
            "index": index_kind(len(emb), "auto"),
            "ef_search": args.ef_search,
            "pairs_above": len(a),
            "duplicate_groups": int((sizes >= 2).sum()),
            "peak_rss_mb": _peak_mb(),
        }
        if out["index"] != "flat" and len(emb) <= args.exact_check_max:  # approximate vs exact pairs
            t1 = time.perf_counter()
            ea, eb, _ = similar_pairs(emb, args.threshold, index="flat")
            out["exact_search_s"] = time.perf_counter() - t1
            exact = set(zip(ea.tolist(), eb.tolist(), strict=True))
            found = set(zip(a.tolist(), b.tolist(), strict=True))
            out["index_pair_recall_vs_exact"] = len(found & exact) / max(len(exact), 1)
        return out

    if args.worker == "paraphrase_mining":
        from sentence_transformers import util

        t0 = time.perf_counter()
        mined = util.paraphrase_mining_embeddings(torch.from_numpy(emb), top_k=100, max_pairs=500_000)
        mining = time.perf_counter() - t0
        pairs = np.array([(i, j) for s, i, j in mined if s >= args.threshold], dtype=np.int64).reshape(-1, 2)
        np.save(work / f"pairs-paraphrase_mining{args.tag}.npy", pairs)
        return {
            "mining_s": mining,
            "pairs_mined": len(mined),
            "pairs_above": len(pairs),
            "peak_rss_mb": _peak_mb(),
        }

    if args.worker == "community_detection":
        from sentence_transformers import util

        t0 = time.perf_counter()
        comms = util.community_detection(
            torch.from_numpy(emb), threshold=args.threshold, min_community_size=2
        )
        mining = time.perf_counter() - t0
        groups = np.arange(len(emb)) + len(emb)
        for g, members in enumerate(comms):
            groups[members] = g
        np.save(work / "groups-community_detection.npy", groups)
        return {"mining_s": mining, "duplicate_groups": len(comms), "peak_rss_mb": _peak_mb()}

    if args.worker == "semhash":
        from semhash import SemHash

        class _Enc:  # SemHash's Encoder protocol; never called (embeddings are given)
            def encode(self, inputs, **kwargs):
                raise RuntimeError("not used")

        texts = read_texts()
        t0 = time.perf_counter()
        sh = SemHash.from_embeddings(emb, texts, model=_Enc())
        result = sh.self_deduplicate(threshold=args.threshold)
        mining = time.perf_counter() - t0
        pos = {t: i for i, t in enumerate(texts)}
        groups = np.arange(len(texts))
        for d in result.filtered:
            groups[pos[d.record]] = pos[d.duplicate_of]
        np.save(work / "groups-semhash.npy", groups)
        return {"mining_s": mining, "duplicates": len(result.filtered), "peak_rss_mb": _peak_mb()}
    raise SystemExit(f"unknown worker {args.worker}")


def run_worker(
    name: str,
    work: Path,
    threshold: float,
    batch_size: int,
    extra: list[str] | None = None,
    time_limit: float | None = None,
) -> dict:
    """One system in its own process; past ``time_limit`` seconds it is stopped and recorded as such."""
    cmd = [sys.executable, __file__, "--worker", name, "--work", str(work), "--threshold", str(threshold)]
    cmd += ["--batch-size", str(batch_size), *(extra or [])]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    t0 = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=time_limit)
    except subprocess.TimeoutExpired:
        stopped = f"not finished in {time_limit:.0f} s: stopped"
        return {"error": stopped, "timed_out": True, "limit_s": time_limit}
    if proc.returncode != 0:
        return {
            "error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"rc {proc.returncode}"
        }
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process_s"] = round(time.perf_counter() - t0, 2)
    # CPU seconds the worker got (user + system): on a shared machine, wall time / CPU time says how
    # much of the wall time was waiting for a core another process held.
    out["process_cpu_s"] = round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 2)
    return out


# ------------------------------------------------------------------------------------------------
# quality
# ------------------------------------------------------------------------------------------------
def pair_quality(pairs: list[tuple[int, int, int, str]], same) -> dict:
    """Recall of positives and false-merge rate of negatives, overall and per source."""
    out: dict = {}
    for src in ["all", *sorted({p[3] for p in pairs})]:
        sel = [p for p in pairs if src in ("all", p[3])]
        pos = [same(i, j) for i, j, y, _ in sel if y == 1]
        neg = [same(i, j) for i, j, y, _ in sel if y == 0]
        out[src] = {
            "recall": round(float(np.mean(pos)), 4) if pos else None,
            "false_merge": round(float(np.mean(neg)), 4) if neg else None,
            "positives": len(pos),
            "negatives": len(neg),
        }
    return out


def quality_of(name: str, work: Path, pairs) -> dict | None:
    """Pair-level quality when ``name`` left mined pairs (``pairs-<name>.npy``), else group-level."""
    f = work / f"pairs-{name}.npy"
    if f.exists():
        found = {(int(a), int(b)) for a, b in np.load(f)}
        return pair_quality(pairs, lambda i, j: (i, j) in found or (j, i) in found)
    f = work / f"groups-{name}.npy"
    if not f.exists():
        return None
    g = np.load(f)
    return pair_quality(pairs, lambda i, j: g[i] == g[j])


# ------------------------------------------------------------------------------------------------
def calibrate(backend: str = "torch", out: Path | None = None) -> dict:
    """Best-F1 and precision/recall per threshold of the default model on MQP (the default threshold),
    with dupq's encoding ``backend`` (``--backend``: how far int8 moves the curve); written to
    ``benchmarks/results/calibrate-mqp-<backend>.json`` so the README's figures trace to a run."""
    from dupq.dedupe import DEFAULT_THRESHOLD
    from dupq.embed import Embedder

    m = _tsv(DATA / "medical-question-pairs" / "mqp.tsv")
    e = Embedder(None, device="cpu", backend=backend)
    cos = (
        e.encode(list(m.question1), show_progress=True) * e.encode(list(m.question2), show_progress=True)
    ).sum(1)
    y = m.label.astype(int).to_numpy()
    print(f"{'threshold':>9} {'precision':>9} {'recall':>7} {'F1':>6}")
    curve = []
    for t in np.round(np.arange(0.60, 0.91, 0.01), 2):
        p = cos >= t
        tp = (p & (y == 1)).sum()
        prec, rec = tp / max(p.sum(), 1), tp / (y == 1).sum()
        f1 = 2 * prec * rec / max(prec + rec, 1e-9)
        curve.append(
            {
                "threshold": float(t),
                "precision": round(float(prec), 4),
                "recall": round(float(rec), 4),
                "f1": round(float(f1), 4),
            }
        )
        print(f"{t:>9.2f} {prec:>9.3f} {rec:>7.3f} {f1:>6.3f}")
    best = max(curve, key=lambda r: r["f1"])
    at_default = next(r for r in curve if abs(r["threshold"] - DEFAULT_THRESHOLD) < 1e-9)
    payload = {
        "benchmark": "dedupe --calibrate: the default model's precision/recall per threshold on MQP",
        "backend": backend,
        "pairs": int(len(y)),
        "default_threshold": DEFAULT_THRESHOLD,
        "at_default": at_default,
        "best_f1": best,
        "curve": curve,
    }
    write_result(out or RESULTS.with_name(f"calibrate-mqp-{backend}.json"), "dedupe.py", None, payload)
    return payload


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000])
    ap.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=SYSTEMS)
    ap.add_argument("--threshold", type=float, default=None, help="default: dupq's DEFAULT_THRESHOLD")
    ap.add_argument("--share-encoding-above", type=int, default=50_000, help="baselines reuse dupq's vectors")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--backend", default="torch", help="dupq's encoding backend (torch | onnx | onnx-int8)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--calibrate", action="store_true")
    ap.add_argument(
        "--mining-only",
        type=int,
        nargs="+",
        default=None,
        metavar="N",
        help="time only the mining/grouping stage at N vectors made from cached real embeddings",
    )
    ap.add_argument(
        "--exact-check-max",
        type=int,
        default=300_000,
        help="measure dupq's HNSW pair recall against exact search up to this size (exact is O(n^2))",
    )
    ap.add_argument(
        "--pm-on-dupq-vectors",
        action="store_true",
        help="also run paraphrase_mining on dupq's stored vectors (separates the backend's effect on "
        "recall from the grouping's)",
    )
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument(
        "--keep-embeddings",
        action="store_true",
        help="keep dupq's work directory in benchmarks/.cache (a rerun then skips encoding: for "
        "iterating on the search/group/write stages at 1M; such a run's encode time is not comparable)",
    )
    ap.add_argument("--ef-search", type=int, default=None, help="dupq's HNSW search beam (default: dupq's)")
    ap.add_argument("--model", default=None, help="dupq's model dir (default: the embedded all-MiniLM-L6-v2)")
    ap.add_argument(
        "--static-model",
        default=None,
        help="semhash-static: the static model dir (a dupq distill --kind static)",
    )
    ap.add_argument(
        "--time-limit",
        type=float,
        default=None,
        help="semhash-static: stop it after this many seconds and record it as not finished",
    )
    ap.add_argument("--dupq-workdir", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--emb-file", default="emb.npy", help=argparse.SUPPRESS)
    ap.add_argument("--tag", default="", help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    args = ap.parse_args()
    load_at_start = load_average()
    if args.worker:
        print(json.dumps(worker(args)))
        return
    if args.calibrate:
        calibrate(args.backend)
        return
    if args.mining_only:
        mining_only(args, load_at_start)
        return
    from dupq.dedupe import DEFAULT_THRESHOLD

    threshold = args.threshold if args.threshold is not None else DEFAULT_THRESHOLD
    results = {
        "benchmark": "dedupe",
        "model": args.model or "all-MiniLM-L6-v2 (embedded default)",
        "threshold": threshold,
        "runs": [],
    }
    if args.out.exists():
        try:
            old = json.loads(args.out.read_text())
            results["runs"] = [r for r in old.get("runs", []) if r["size"] not in args.sizes]
            if old.get("mining_only"):
                results["mining_only"] = old["mining_only"]
        except (OSError, ValueError, KeyError):
            pass
    for size in args.sizes:
        texts, pairs, synthetic = build_corpus(size)
        with tempfile.TemporaryDirectory(prefix="dupq-bench-") as tmp:
            work = Path(tmp)
            pd.DataFrame({"question": texts}).to_csv(work / "corpus.csv", index=False)
            run: dict = {
                "size": size,
                "labelled_pairs": len(pairs),
                "labelled_positives": sum(p[2] for p in pairs),
                "synthetic_padding": synthetic,
                "systems": {},
            }
            print(
                f"\n== {size:,} texts ({len(pairs):,} labelled pairs, {synthetic:,} synthetic padding)",
                flush=True,
            )
            dupq_workdir = (
                CACHE / f"dupq-work-{size}-{args.backend}" if args.keep_embeddings else work / "dupq-work"
            )
            if "dupq" in args.systems:
                r = run_worker(
                    "dupq",
                    work,
                    threshold,
                    args.batch_size,
                    _dupq_args(args, args.exact_check_max, dupq_workdir),
                )
                r["model"] = args.model or "all-MiniLM-L6-v2 (embedded default)"
                r["quality"] = quality_of("dupq", work, pairs)
                r["quality_pairs"] = quality_of("dupq-pairs", work, pairs)  # pair level, as PM is
                run["systems"]["dupq"] = r
                shown = {k: v for k, v in r.items() if not k.startswith("quality")}
                print("dupq", json.dumps(shown), flush=True)
            if "dupq-cosine" in args.systems:  # the same dedupe, the cosine deciding (--no-verifier)
                extra = _dupq_args(args, 0, work / "dupq-cosine-work")
                r = run_worker("dupq-cosine", work, threshold, args.batch_size, extra)
                r["quality"] = quality_of("dupq-cosine", work, pairs)
                run["systems"]["dupq-cosine"] = r
                print("dupq-cosine", json.dumps({k: v for k, v in r.items() if k != "quality"}), flush=True)
            if "semhash-static" in args.systems:
                if not args.static_model:
                    raise SystemExit("--systems semhash-static needs --static-model DIR")
                extra = ["--static-model", str(args.static_model)]
                r = run_worker(
                    "semhash-static", work, threshold, args.batch_size, extra, time_limit=args.time_limit
                )
                if "error" not in r:
                    r["quality"] = quality_of("semhash-static", work, pairs)
                run["systems"]["semhash-static"] = r
                print(
                    "semhash-static", json.dumps({k: v for k, v in r.items() if k != "quality"}), flush=True
                )
            baselines = [s for s in args.systems if s not in ("dupq", "dupq-cosine", "semhash-static")]
            if baselines:
                shared = size > args.share_encoding_above and "dupq" in run["systems"]
                if shared:
                    save_dupq_vectors(dupq_workdir, work / "emb.npy")
                    enc = {"encode_s": run["systems"]["dupq"]["encode_s"], "shared_from": "dupq"}
                else:
                    enc = run_worker("st-encode", work, threshold, args.batch_size)
                run["st_encode"] = enc
                print("st-encode", json.dumps(enc), flush=True)
                for name in baselines:
                    r = run_worker(name, work, threshold, args.batch_size)
                    if "mining_s" in r:
                        r["encode_s"] = enc.get("encode_s")
                        r["total_s"] = r["mining_s"] + (enc.get("encode_s") or 0.0)
                        r["encode_peak_rss_mb"] = enc.get("peak_rss_mb")
                    r["quality"] = quality_of(name, work, pairs)
                    run["systems"][name] = r
                    print(name, json.dumps({k: v for k, v in r.items() if k != "quality"}), flush=True)
            if args.pm_on_dupq_vectors and "dupq" in run["systems"]:
                # paraphrase_mining on the very vectors dupq grouped: any recall gap left is grouping
                save_dupq_vectors(dupq_workdir, work / "emb-dupq.npy")
                tag = "@dupq-vectors"
                extra = ["--emb-file", "emb-dupq.npy", "--tag", tag]
                r = run_worker("paraphrase_mining", work, threshold, args.batch_size, extra=extra)
                if "mining_s" in r:
                    r["encode_s"] = run["systems"]["dupq"]["encode_s"]
                    r["total_s"] = r["mining_s"] + r["encode_s"]
                    r["encode_from"] = "dupq"
                r["quality"] = quality_of(f"paraphrase_mining{tag}", work, pairs)
                run["systems"][f"paraphrase_mining{tag}"] = r
                print(f"paraphrase_mining{tag}", json.dumps({k: v for k, v in r.items() if k != "quality"}))
        results["runs"].append(run)
        results["runs"].sort(key=lambda r: r["size"])
        results.update(provenance("dedupe.py", None, load_at_start=load_at_start))
        atomic_write_text(args.out, json.dumps(results, indent=2) + "\n")
    print_table(results)
    print_mining_table(results)


def _dupq_args(args: argparse.Namespace, exact_check_max: int, workdir: Path) -> list[str]:
    """The worker flags both dupq systems (defaults, ``dupq-cosine``) share."""
    return [
        "--backend",
        args.backend,
        "--exact-check-max",
        str(exact_check_max),
        "--dupq-workdir",
        str(workdir),
        *(["--ef-search", str(args.ef_search)] if args.ef_search else []),
        *(["--model", str(args.model)] if args.model else []),
    ]


def save_dupq_vectors(dupq_workdir: Path, dest: Path) -> None:
    """dupq's stored (float16) vectors as float32 unit rows at ``dest``, for the baselines to mine."""
    store = next(dupq_workdir.glob("emb-*"))
    v = np.load(store / "vectors.npy").astype(np.float32)
    v = l2_normalize(v)
    np.save(dest, v)


def mining_only(args: argparse.Namespace, load_at_start: list[float] | None = None) -> None:
    """Time the mining/grouping stage alone at sizes whose encoding does not fit the time budget.

    Vectors: the largest cached set of real corpus embeddings (written by a full run), padded up to N by
    :func:`padded_vectors` with the real set's duplicate rate (padding of singletons only would favour an
    approximate index: fewer pairs to find). Same vectors for every system, each in its own process; the
    speed ratios are taken within one run (``ratios_vs_paraphrase_mining``), never across runs.
    """
    from dupq.dedupe import DEFAULT_THRESHOLD

    threshold = args.threshold if args.threshold is not None else DEFAULT_THRESHOLD
    cached = sorted(CACHE.glob("emb-*.npy"), key=lambda p: int(p.stem.split("-")[1]))
    if not cached:
        raise SystemExit(f"no cached embeddings in {CACHE}: run a full size first (e.g. --sizes 10000)")
    base = np.load(cached[-1])
    results = json.loads(args.out.read_text()) if args.out.exists() else {"benchmark": "dedupe", "runs": []}
    runs = [r for r in results.get("mining_only", []) if r["size"] not in args.mining_only]
    rng = np.random.default_rng(0)
    wanted = {
        "dupq": "dupq-mining",
        "paraphrase_mining": "paraphrase_mining",
        "community_detection": "community_detection",
    }
    systems = [wanted[s] for s in args.systems if s in wanted]  # --systems picks (semhash: not here)
    for size in args.mining_only:
        vecs, padding = padded_vectors(base, size, threshold, rng)
        run = {"size": size, "base_real_vectors": len(base), "threshold": threshold, "padding": padding}
        run["systems"] = {}
        with tempfile.TemporaryDirectory(prefix="dupq-bench-mining-") as tmp:
            work = Path(tmp)
            np.save(work / "emb.npy", vecs)
            pd.DataFrame({"question": ["-"]}).to_csv(work / "corpus.csv", index=False)
            for name in systems:
                extra = ["--mining-only", "1", "--exact-check-max", str(args.exact_check_max)]
                if args.ef_search:
                    extra += ["--ef-search", str(args.ef_search)]
                r = run_worker(name, work, threshold, args.batch_size, extra=extra)
                run["systems"][name] = r
                print(size, name, json.dumps(r), flush=True)
        pm = run["systems"].get("paraphrase_mining", {}).get("mining_s")
        run["ratios_vs_paraphrase_mining"] = {
            name: round(pm / r["mining_s"], 2)
            for name, r in run["systems"].items()
            if pm and r.get("mining_s")
        }
        runs.append(run)
        results["mining_only"] = sorted(runs, key=lambda r: r["size"])
        results.update(provenance("dedupe.py", None, load_at_start=load_at_start))
        atomic_write_text(args.out, json.dumps(results, indent=2) + "\n")
    print_mining_table(results)


def duplicate_rate(vecs: np.ndarray, threshold: float, rng: np.random.Generator, sample: int = 2000) -> float:
    """Share of texts with at least one other text at cosine >= ``threshold`` (exact search from a
    random sample of ``sample`` rows against all of them)."""
    rows = rng.choice(len(vecs), size=min(sample, len(vecs)), replace=False)
    hits = 0
    for start in range(0, len(rows), 256):
        part = rows[start : start + 256]
        sims = vecs[part].astype(np.float32) @ vecs.astype(np.float32).T
        sims[np.arange(len(part)), part] = -1.0  # not itself
        hits += int((sims >= threshold).any(axis=1).sum())
    return hits / len(rows)


def padded_vectors(
    base: np.ndarray, size: int, threshold: float, rng: np.random.Generator
) -> tuple[np.ndarray, dict]:
    """``base`` (real embeddings) padded to ``size`` rows with the real rows' duplicate rate.

    Each padding "question" is a perturbed copy of a real vector (Gaussian noise of norm ~1.3,
    renormalised: cosine ~0.6 to its source — related text, not a duplicate); with probability
    ``q = r / (2 - r)`` it comes with a near-duplicate (cosine ~(1 + threshold) / 2 to it), so the share
    of padding rows that have a duplicate matches the real share ``r`` (a pair puts 2 rows in, a single
    1: 2q / (1 + q) = r).
    """
    dim = base.shape[1]
    rate = duplicate_rate(base, threshold, rng)
    q = rate / (2 - rate)
    cos = (1 + threshold) / 2
    dup_noise = float(np.sqrt(1 / cos**2 - 1))  # |noise| for cosine `cos` in high dimension
    out = [base.astype(np.float32)]
    n = len(base)
    while n < size:
        m = min(65_536, size - n)
        src = base[rng.integers(0, len(base), m)].astype(np.float32)
        seeds = l2_normalize(src + rng.normal(size=src.shape).astype(np.float32) * (1.3 / np.sqrt(dim)))
        paired = rng.random(m) < q
        twins = seeds[paired] + rng.normal(size=(int(paired.sum()), dim)).astype(np.float32) * (
            dup_noise / np.sqrt(dim)
        )
        block = np.empty((m + int(paired.sum()), dim), dtype=np.float32)
        where = np.arange(m) + np.concatenate([[0], np.cumsum(paired)[:-1]])  # a twin right after its seed
        block[where] = seeds
        block[where[paired] + 1] = l2_normalize(twins)
        out.append(block)
        n += len(block)
    vecs = np.concatenate(out)[:size]
    padding = {
        "rows": int(size - len(base)),
        "real_duplicate_rate": round(rate, 4),
        "pair_probability": round(q, 4),
        "near_duplicate_cosine": round(cos, 3),
        "padding_duplicate_rate": round(duplicate_rate(vecs[len(base) :], threshold, rng), 4)
        if size > len(base)
        else None,
    }
    return vecs, padding


def print_mining_table(results: dict) -> None:
    runs = results.get("mining_only", [])
    if not runs:
        return
    print("\nmining/grouping stage alone (same vectors; perturbed copies of real embeddings)")
    head = f"{'size':>9} {'system':<20} {'mining s':>9} {'PM / this':>9} {'peak MB':>8} {'pairs':>9}"
    print(head)
    print("-" * len(head))
    for run in runs:
        pm = run["systems"].get("paraphrase_mining", {}).get("mining_s")
        for name, r in run["systems"].items():
            if "error" in r:
                print(f"{run['size']:>9,} {name:<20} error: {r['error']}")
                continue
            ratio = f"{pm / r['mining_s']:.1f}x" if pm and r.get("mining_s") else "-"
            pairs = r.get("pairs_above", r.get("duplicate_groups", ""))
            mining, peak = r["mining_s"], r["peak_rss_mb"]
            print(f"{run['size']:>9,} {name:<20} {mining:>9.2f} {ratio:>9} {peak:>8.0f} {pairs!s:>9}")


def print_table(results: dict) -> None:
    cpus = results.get("machine", {}).get("cpus", "?")
    print(f"\nthreshold {results['threshold']}, {cpus} CPUs, {results['model']}")
    head = (
        f"{'size':>8} {'system':<20} {'encode s':>9} {'mining s':>9} {'total s':>9} {'x vs PM':>8} "
        f"{'peak MB':>8} {'recall':>7} {'false merge':>11}"
    )
    print(head)
    print("-" * len(head))
    for run in results["runs"]:
        pm = run["systems"].get("paraphrase_mining", {})
        for name, r in run["systems"].items():
            if "error" in r:
                print(f"{run['size']:>8,} {name:<20} error: {r['error']}")
                continue
            q = (r.get("quality") or {}).get("all", {})
            ratio = pm.get("total_s", 0) / r["total_s"] if pm.get("total_s") and r.get("total_s") else None
            peak = max(r.get("peak_rss_mb") or 0, r.get("encode_peak_rss_mb") or 0)
            enc = r.get("encode_s")
            print(
                f"{run['size']:>8,} {name:<20} {enc if enc is not None else float('nan'):>9.1f} "
                f"{r.get('mining_s', float('nan')):>9.2f} {r.get('total_s', float('nan')):>9.1f} "
                f"{(f'{ratio:.2f}x' if ratio else '-'):>8} {peak:>8.0f} "
                f"{q.get('recall') if q.get('recall') is not None else float('nan'):>7.3f} "
                f"{q.get('false_merge') if q.get('false_merge') is not None else float('nan'):>11.3f}"
            )
        d = run["systems"].get("dupq", {})
        qp = (d.get("quality_pairs") or {}).get("all", {})
        if qp.get("recall") is not None:
            print(
                f"{'':>8} dupq at pair level (its --pairs output, as paraphrase_mining's): "
                f"recall {qp['recall']:.3f}, false merge {qp['false_merge']:.3f}"
            )
        if "index_pair_recall_vs_exact" in d:
            recall = d["index_pair_recall_vs_exact"]
            print(f"{'':>8} dupq {d['index']} pair recall vs exact search: {recall:.4f}")
        c = run["systems"].get("dupq-cosine", {})
        if d.get("total_s") and c.get("total_s"):
            print(
                f"{'':>8} verifier on / off (dupq / dupq-cosine): "
                f"{d['total_s'] / c['total_s']:.2f}x the time, "
                f"{(d.get('peak_rss_mb') or 0) / max(c.get('peak_rss_mb') or 1, 1):.2f}x the peak memory"
            )


if __name__ == "__main__":
    main()
