"""One typed configuration for a dedupe run — its options declared once, in groups — and the constants
its defaults come from.

:class:`DedupeConfig` is the union of the groups (input/output, model/backend, search, verify,
grouping, report, engine); :func:`dupq.dedupe.deduplicate`'s keyword arguments and the options of
``dupq dedupe`` (:mod:`dupq.cli_dedupe`) are generated from its fields.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from dupq.dedupe.join import JOIN_RECALL
from dupq.dedupe.keep import KeepRule, parse_keep
from dupq.errors import InputError
from dupq.options import BACKEND, VERIFIER, option, shared
from dupq.verifier.band import VERIFY_ABOVE, VERIFY_BELOW, check_band

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


# --- the options, declared once (issue 26) ----------------------------------------------------------
# Each field is one option: its name, type, default and help (and, with flags, its command-line form:
# dupq.options.Flag). DedupeConfig is their union; deduplicate()'s keyword arguments and `dupq dedupe`'s
# options are generated from these fields, so the three cannot drift apart (tests/test_dedupe_options.py).


@dataclass(kw_only=True)
class InputOutput:
    """What is read and what is written (by suffix, atomically)."""

    text_column: str = option(MISSING, "--text-column", "-t", help="Column holding the questions.")
    id_column: str | None = option(None, "--id-column", help="Column naming rows in duplicate_of.")
    out: str | Path | None = option(
        None, "--out", "-o", required=True, help="Output file (every input row + result columns)."
    )
    pairs_out: str | Path | None = option(
        None, "--pairs", param="pairs", help="Also write every pair above the threshold here."
    )
    summary_out: str | Path | None = option(
        None, "--summary", param="summary", help="Summary JSON (default: <out>.summary.json)."
    )
    against: str | Path | pd.DataFrame | None = option(
        None, "--against", help="Existing base: mark rows duplicating it."
    )
    against_text_column: str | None = option(
        None, "--against-text-column", help="Text column of --against (default: --text-column)."
    )
    against_id_column: str | None = option(
        None, "--against-id-column", help="Id column of --against (default: --id-column if present)."
    )
    sep: str | None = option(None, "--sep", help="CSV delimiter (default: detected).")
    encoding: str | None = option(None, "--encoding", help="Text encoding (default: detected).")
    escape_formulas: bool = option(
        False, "--escape-formulas", help="Prefix cells starting with = + - @ with ' (for spreadsheets)."
    )
    keep_only: str | None = option(
        None,
        "--keep-only",
        help="representatives: write one row per group; the others go to <out>.dropped<suffix>.",
    )
    dropped_out: str | Path | None = option(
        None, help="With keep_only: where the other rows go (default: <out stem>.dropped<suffix>)."
    )


@dataclass(kw_only=True)
class ModelBackend:
    """Which model encodes the texts, and on what."""

    model: Any = option(None, "--model", "-m", value_type=str, help="Model directory (default: MiniLM-L6).")
    backend: str = shared(BACKEND)
    device: str | None = option(None, "--device", help="cpu / cuda (default: cuda when available).")
    batch_size: int = option(64, "--batch-size", help="Encoding batch size.")
    dtype: str = option(
        "float16", help="Storage of the embeddings on disk (float16 halves memory; cosine error < 1e-3)."
    )


@dataclass(kw_only=True)
class Search:
    """Which pairs are similar: the threshold and the nearest-neighbour search that finds them."""

    threshold: float | str | None = option(
        "auto", "--threshold", help="Cosine in [-1, 1], or 'auto' (dupq.json's precision-0.90 point)."
    )
    k: int = option(
        DEFAULT_K, "-k", "--k", help="Neighbours per question (range search beyond, if all k match)."
    )
    index: str = option(
        "auto", "--index", "--index-kind", help="auto (flat to 20k texts, join above), flat, join, hnsw, ivf."
    )
    ef_search: int | None = option(
        None,
        "--ef-search",
        value_type=int,
        help="With --index hnsw: the search beam (default 128; 64: ~1.3x faster, pair recall ~0.99).",
    )
    join_recall: float = option(
        JOIN_RECALL,
        "--join-recall",
        help="The join's pair-recall target: its probes are chosen for it (1.0: the most; lower: faster).",
    )
    search_margin: float = option(
        SEARCH_MARGIN,
        "--search-margin",
        help="Keep candidate pairs this far below the threshold in --workdir (re-threshold, what-ifs).",
    )


@dataclass(kw_only=True)
class Verify:
    """The verifier stage: which pairs it decides, and which the cosine decides alone."""

    verifier: Any = shared(VERIFIER)
    verify_below: float = option(
        VERIFY_BELOW, "--verify-below", help="With --verifier: search this far below the threshold."
    )
    verify_above: float = option(
        VERIFY_ABOVE,
        "--verify-above",
        help="With --verifier: pairs at/above this cosine are accepted unverified.",
    )


@dataclass(kw_only=True)
class Grouping:
    """How pairs become groups, and which row survives."""

    cluster: str = option("leader", "--cluster", help="leader (no chaining) or components.")
    keep: str = option(
        "most-neighbours",
        "--keep",
        help="Survivor rule: most-neighbours | first | longest | shortest | most-frequent | "
        "column:NAME[:asc|desc].",
    )
    decisions: str | Path | None = option(
        None, "--decisions", help="Review marks CSV (the report's export): must-link / cannot-link pairs."
    )


@dataclass(kw_only=True)
class Report:
    """The review report."""

    report: str | Path | None = option(
        None, "--report", help="Write the review report here (one self-contained HTML file)."
    )


@dataclass(kw_only=True)
class Engine:
    """Where and how the work runs: locally or on Ray, the work directory, chunking, progress."""

    engine: str = option(
        "local", "--engine", help="local, or ray (encoding on Ray Data, search on Ray tasks)."
    )
    ray_address: str | None = option(None, "--ray-address", help="ray://host:port (or $RAY_ADDRESS).")
    ray_search: str = option(
        "auto",
        "--ray-search",
        help="With --engine ray: partitioned (search on Ray tasks), driver, or auto (partitioned from "
        "200,000 unique texts or with --ray-partitions).",
    )
    ray_partitions: int | None = option(
        None,
        "--ray-partitions",
        value_type=int,
        help="k-means search partitions (default: ~200,000 vectors each).",
    )
    ray_assignments: int = option(
        RAY_ASSIGNMENTS,
        "--ray-assignments",
        help="--index flat/hnsw on Ray: nearest partitions per vector (the join's partitions need none).",
    )
    workdir: str | Path | None = option(
        None, "--workdir", help="Keep embeddings here (resume; re-group without re-encoding)."
    )
    chunk_size: int = option(
        DEFAULT_CHUNK, help="Rows per read chunk and unique texts per encoding shard (the unit of resume)."
    )
    show_progress: bool = option(True, "--quiet", "-q", negate=True, param="quiet", help="No progress bars.")


#: The groups, in the order their options are listed (deduplicate()'s signature, DedupeConfig's fields).
GROUPS = (InputOutput, ModelBackend, Search, Verify, Grouping, Report, Engine)


# dataclasses collect inherited fields from the last base to the first: listed in reverse, the fields
# come in GROUPS order
@dataclass(kw_only=True)
class DedupeConfig(Engine, Report, Grouping, Verify, Search, ModelBackend, InputOutput):
    """Everything a dedupe run is told: the union of the option groups above, checked and normalised
    (paths given as ``str`` are made :class:`~pathlib.Path`, derived output paths filled in). See
    :func:`dupq.dedupe.deduplicate` for what each option does."""

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
        self.verify_below, self.verify_above = check_band(self.verify_below, self.verify_above, max_below=1.0)
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
