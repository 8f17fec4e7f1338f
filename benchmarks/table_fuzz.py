"""The nightly-style run of issue 24's property test: many random tables through dupq's writer and reader,
``dupq dedupe`` and ``dupq score`` (:mod:`tests.table_fuzz`), with the outcome counts in JSON.

    python benchmarks/table_fuzz.py   # 10,000 examples per check (hours: a dedupe run is ~0.5 s)
    python benchmarks/table_fuzz.py --examples 10000 --dedupe-examples 300 --score-examples 1000

Each example ends ``ok`` (every row back once, in order, every value unchanged) or ``refused: <reason>``
(a one-line error naming the file and the row or column, for a reason the table has). A failure —
a silent change, a traceback, an undeserved error — is shrunk by Hypothesis to a minimal table, and
recorded in ``failures`` (the run goes on with the next check). Writes
``benchmarks/results/table-fuzz.json`` (provenance: :mod:`benchmarks._record`).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hypothesis import HealthCheck, given, settings  # noqa: E402

from benchmarks._record import write_result  # noqa: E402
from tests.table_fuzz import cases, check_dedupe, check_roundtrip, check_score  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "table-fuzz.json"


def run_check(name: str, purpose: str, examples: int, check, *args) -> dict:
    """Run one property for ``examples`` random tables; the outcome counts, seconds and any failure."""
    counts: Counter[str] = Counter()

    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(case=cases(purpose))
    def prop(case) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            counts[check(case, Path(tmp), *args)] += 1

    t0 = time.perf_counter()
    failure = None
    try:
        prop()
    except Exception as exc:  # the shrunk counterexample: recorded, and the other checks still run
        failure = "".join(traceback.format_exception_only(type(exc), exc)).strip()[-4000:]
    seconds = time.perf_counter() - t0
    print(f"{name:<10} {sum(counts.values()):>6} tables in {seconds:7.1f} s: {dict(counts)}", flush=True)
    if failure:
        print(f"{name:<10} FAILED: {failure}", flush=True)
    return {
        "examples_requested": examples,
        "examples_run": sum(counts.values()),
        "outcomes": dict(sorted(counts.items())),
        "silent_changes_or_tracebacks": 1 if failure else 0,
        "failure": failure,
        "seconds": round(seconds, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--examples", type=int, default=10_000, help="writer -> reader tables")
    ap.add_argument("--dedupe-examples", type=int, default=10_000, help="tables through dupq dedupe")
    ap.add_argument("--score-examples", type=int, default=10_000, help="tables through dupq score")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    logging.disable(logging.WARNING)  # cp1252 guesses and skipped rows: counted, not printed per table

    from dupq.encoder import load_encoder
    from tests.tiny_model import build_tiny_model

    with tempfile.TemporaryDirectory() as tmp:
        model = load_encoder(build_tiny_model(Path(tmp) / "tiny"), device="cpu")
        checks = {"roundtrip": run_check("roundtrip", "plain", args.examples, check_roundtrip)}
        if args.dedupe_examples:
            checks["dedupe"] = run_check("dedupe", "dedupe", args.dedupe_examples, check_dedupe, model)
        if args.score_examples:
            checks["score"] = run_check("score", "score", args.score_examples, check_score, model)
    payload = {
        "what": "issue 24 property test: random tables (CSV/TSV/JSONL/Parquet, gz/bz2) through dupq's "
        "writer+reader, dupq dedupe and dupq score (tiny random BERT); every row back unchanged or a "
        "one-line error naming file and row/column",
        "checks": checks,
        "total_examples": sum(c["examples_run"] for c in checks.values()),
        "silent_changes_or_tracebacks": sum(c["silent_changes_or_tracebacks"] for c in checks.values()),
    }
    print(f"written: {write_result(args.out, 'table_fuzz.py', None, payload)}")


if __name__ == "__main__":
    main()
