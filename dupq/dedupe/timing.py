"""Wall time and memory per stage of a dedupe run, for its summary and the benchmarks.

Kept apart from :mod:`~dupq.dedupe.pipeline` because measuring is its own job, not a stage: the
pipeline only marks where each stage ends.
"""

from __future__ import annotations

import contextlib
import os
import resource
import time


class StageTimer:
    """Wall time, RSS and peak RSS at the end of each stage (for the summary and the benchmark)."""

    def __init__(self) -> None:
        self.t = time.perf_counter()
        self.seconds: dict[str, float] = {}
        self.rss_mb: dict[str, float] = {}

    def stage(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = round(self.seconds.get(name, 0.0) + now - self.t, 3)
        self.t = now
        self.rss_mb[name] = round(_rss_mb(), 1)

    def peak_mb(self) -> float:
        return round(peak_rss_mb(), 1)


def _rss_mb() -> float:
    with contextlib.suppress(Exception):
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    return peak_rss_mb()


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if os.uname().sysname == "Darwin" else peak / 1024
