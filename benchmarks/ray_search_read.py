"""Peak memory of a Ray search task's read of its partition: one memory mapping vs one per chunk.

A partition's member rows are scattered over the whole vectors file. Read through one mapping
(``MappedRows(path)[rows]``, what ``dupq.dedupe.ray_search`` did at first), every file page those rows
touch stays mapped, and counted in the worker's RSS, until the read ends; read per chunk
(``read_partition``), only one chunk's pages are. Each way runs in a fresh process (its own peak).

    python benchmarks/ray_search_read.py --vectors V.npy --members members-00001.npy

``--vectors``/``--members``: a vectors ``.npy`` and a partition's ``members-P.npy`` from a
``benchmarks/ray_search.py`` work directory. Writes ``benchmarks/results/ray-search-read-chunks.json``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._record import load_average, write_result  # noqa: E402


def _measure(vectors: str, members: str, how: str, queue: multiprocessing.Queue) -> None:
    from dupq.dedupe.ray_search import read_partition
    from dupq.dedupe.store import MappedRows

    rows = np.load(members)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    vecs = MappedRows(Path(vectors))[rows] if how == "one_mapping" else read_partition(Path(vectors), rows)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put(
        {
            "rows": len(rows),
            "array_mb": round(vecs.nbytes / 2**20, 1),
            "peak_increase_mb": round(after - before, 1),
        }
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vectors", type=Path, required=True)
    ap.add_argument("--members", type=Path, required=True)
    ap.add_argument(
        "--out", type=Path, default=REPO / "benchmarks" / "results" / "ray-search-read-chunks.json"
    )
    args = ap.parse_args()
    load_start = load_average()
    ctx = multiprocessing.get_context("spawn")
    result: dict = {"vectors_file_mb": round(args.vectors.stat().st_size / 2**20, 1)}
    for how in ("one_mapping", "per_chunk"):
        queue = ctx.Queue()
        child = ctx.Process(target=_measure, args=(str(args.vectors), str(args.members), how, queue))
        child.start()
        result[how] = queue.get()
        child.join()
        print(how, result[how])
    write_result(args.out, "ray_search_read.py", None, result, load_at_start=load_start)


if __name__ == "__main__":
    main()
