"""One typed configuration for a dedupe run, and the constants its defaults come from."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from dupq.dedupe.join import JOIN_RECALL
from dupq.dedupe.keep import KeepRule, parse_keep
from dupq.errors import InputError

#: Exact (flat) search up to this many unique texts; the cell join above (dupq.dedupe.join; pair recall
#: against exact search measured in benchmarks/dedupe.py and benchmarks/ray_search.py).
EXACT_SEARCH_MAX = 20_000
#: Neighbours looked at per text (more are fetched by range search when all k are above the threshold).
DEFAULT_K = 32
#: Rows per read chunk and unique texts per encoding shard (the unit of resume).
DEFAULT_CHUNK = 16_384
#: HNSW search breadth for the batch search (above the Matcher's default: batch search is cheap per query
#: and recall of pairs matters more than latency here).
HNSW_EF_SEARCH = 128
#: HNSW graph settings for the batch index (it lives for one run, so build speed matters more than for
#: the Matcher's long-lived index); pair recall against exact search is measured in benchmarks/dedupe.py.
#: At 60k real-derived vectors: M=16/efC=40 30 s vs M=32/efC=80 46 s vs exact 51 s, pair recall 0.9997.
HNSW_M = 16
#: Pairs are searched this far (cosine) below the threshold and kept in the work directory, so the
#: report's what-if table and a re-run at a threshold down to there need no search (dupq.dedupe.cache).
SEARCH_MARGIN = 0.05
HNSW_EF_CONSTRUCTION = 40
#: ``--engine ray``: the candidate search runs partitioned on Ray (``ray_search="auto"``) from this many
#: unique texts; below it the driver's one search is quick (26 s at 100k, README) and exact up to 20k.
RAY_SEARCH_MIN = 200_000
#: Target vectors per search partition (after each vector is copied into ``ray_assignments`` of them):
#: one partition is one Ray task's index, so this bounds a worker's memory (README, "Scaling out").
RAY_PARTITION_TARGET = 200_000
#: Each vector goes to this many nearest k-means centroids, so a pair across a partition boundary
#: still meets in a partition (tests/test_dedupe_ray.py shows 1 losing such pairs).
RAY_ASSIGNMENTS = 2


@dataclass
class DedupeConfig:
    """Everything a dedupe run is told (see :func:`dupq.dedupe.deduplicate` for each option)."""

    text_column: str
    id_column: str | None = None
    model: Any = None
    threshold: float | str | None = "auto"
    cluster: str = "leader"
    k: int = DEFAULT_K
    against: str | Path | pd.DataFrame | None = None
    against_text_column: str | None = None
    against_id_column: str | None = None
    out: Path | None = None
    pairs_out: Path | None = None
    summary_out: Path | None = None
    workdir: Path | None = None
    engine: str = "local"
    backend: str = "default"
    device: str | None = None
    batch_size: int = 64
    chunk_size: int = DEFAULT_CHUNK
    index: str = "auto"
    ef_search: int | None = None
    join_recall: float = JOIN_RECALL
    dtype: str = "float16"
    sep: str | None = None
    encoding: str | None = None
    ray_address: str | None = None
    show_progress: bool = True
    verifier: Any = "auto"
    verify_below: float = 0.10
    verify_above: float = 0.98
    escape_formulas: bool = False
    keep: str = "most-neighbours"
    search_margin: float = SEARCH_MARGIN
    decisions: Path | None = None
    keep_only: str | None = None
    dropped_out: Path | None = None
    report: Path | None = None
    ray_search: str = "auto"
    ray_partitions: int | None = None
    ray_assignments: int = RAY_ASSIGNMENTS
    keep_rule: KeepRule = field(init=False, repr=False)

    def __post_init__(self) -> None:
        _one_of("cluster", self.cluster, ("leader", "components"))
        _one_of("engine", self.engine, ("local", "ray"))
        _one_of("dtype", self.dtype, ("float16", "float32"))
        _one_of("index", self.index, ("auto", "flat", "hnsw", "ivf", "join"))
        _one_of("ray_search", self.ray_search, ("auto", "partitioned", "driver"))
        if self.ray_partitions is not None and self.ray_partitions < 1:
            raise InputError(f"ray_partitions must be >= 1, got {self.ray_partitions}")
        if self.ray_assignments < 1:
            raise InputError(f"ray_assignments must be >= 1, got {self.ray_assignments}")
        for name in ("k", "chunk_size"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.search_margin <= 1.0:
            raise InputError(f"search_margin must be in [0, 1], got {self.search_margin}")
        if not 0.0 <= self.verify_below <= 1.0:
            raise InputError(f"verify_below must be in [0, 1], got {self.verify_below}")
        if not -1.0 <= self.verify_above <= 1.01:
            raise InputError(
                f"verify_above must be a cosine in [-1, 1] (or 1.01: verify all), got {self.verify_above}"
            )
        self.keep_rule = parse_keep(self.keep)
        if not 0.0 < self.join_recall <= 1.0:
            raise InputError(f"join_recall must be in (0, 1], got {self.join_recall}")
        if self.ef_search is not None and self.ef_search < 1:
            raise InputError(f"ef_search must be >= 1, got {self.ef_search}")
        if self.keep_only not in (None, "representatives"):
            raise InputError(f"keep_only must be 'representatives' (or unset), got {self.keep_only!r}")
        for name in ("out", "pairs_out", "summary_out", "workdir", "decisions", "dropped_out", "report"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                setattr(self, name, Path(value))
        if self.summary_out is None and self.out is not None:
            self.summary_out = self.out.with_suffix(".summary.json")  # deduped.csv -> deduped.summary.json
        if self.keep_only is not None and self.dropped_out is None and self.out is not None:
            self.dropped_out = self.out.with_name(f"{self.out.stem}.dropped{self.out.suffix}")


def _one_of(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise InputError(f"{name} must be {' or '.join(repr(a) for a in allowed)}, got {value!r}")
