"""What a dedupe run returns: :class:`DedupeSummary` (row accounting, groups, time and memory per stage)
and :class:`DedupeResult` (the summary plus the table and the pairs, or where they were written)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd


@dataclass
class DedupeSummary:
    """What ``dupq dedupe`` did: row accounting, groups, the threshold used, time and memory per stage.

    Row accounting always adds up: ``ok_rows + truncated_rows + empty_rows + unreadable_rows == rows``.
    ``texts_encoded`` counts model calls made by *this* run; ``embeddings_reused`` those found in the
    work directory (a resumed or re-grouped run).
    """

    rows: int
    ok_rows: int
    truncated_rows: int
    empty_rows: int
    unreadable_rows: int
    unique_texts: int
    exact_duplicate_rows: int
    groups: int
    duplicate_groups: int
    rows_marked_duplicate: int
    rows_duplicate_of_existing: int
    similar_pairs: int
    threshold: float
    threshold_source: str
    cluster: str
    k: int
    index: str
    engine: str
    backend: str
    model: str
    model_fingerprint: str
    texts_encoded: int
    embeddings_reused: int
    existing_rows: int | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    rss_mb: dict[str, float] = field(default_factory=dict)
    peak_rss_mb: float = 0.0
    input: str = ""
    output: str | None = None
    pairs_output: str | None = None
    workdir: str | None = None
    verification: dict[str, Any] | None = None
    keep: str = "most-neighbours"
    search_floor: float | None = None
    pairs_reused: bool = False
    decisions: dict[str, Any] | None = None
    rows_written: int = 0
    rows_dropped: int = 0
    dropped_output: str | None = None
    search_engine: str = "local"
    ray_search: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        d = asdict(self)
        d["total_seconds"] = round(sum(self.seconds.values()), 3)
        return d

    def format(self) -> str:
        """A short human report for the terminal."""
        lines = [
            f"rows               {self.rows:>12,}",
            f"  with text        {self.ok_rows + self.truncated_rows:>12,}"
            + (f"  ({self.truncated_rows:,} truncated to the model's length)" if self.truncated_rows else ""),
            f"  empty            {self.empty_rows:>12,}",
            f"  unreadable       {self.unreadable_rows:>12,}",
            f"unique texts       {self.unique_texts:>12,}"
            f"  ({self.exact_duplicate_rows:,} exact-duplicate rows)",
            f"groups             {self.groups:>12,}  ({self.duplicate_groups:,} with 2+ rows)",
            f"rows duplicate     {self.rows_marked_duplicate:>12,}"
            + (
                f"  ({self.rows_duplicate_of_existing:,} of the existing base)"
                if self.existing_rows is not None
                else ""
            ),
            f"similar pairs      {self.similar_pairs:>12,}"
            f"  (cosine >= {self.threshold:.3f}, {self.threshold_source}"
            + (
                f"; saved pairs reach down to {self.search_floor:.3f}"
                + (", re-used: no search" if self.pairs_reused else "")
                if self.search_floor is not None
                else ""
            )
            + ")",
            *self._verification_lines(),
            *(
                [
                    f"decisions          {self.decisions['must_link']:,} must-link, "
                    f"{self.decisions['cannot_link']:,} cannot-link pairs from {self.decisions['file']}"
                    + (
                        f" ({self.decisions['texts_not_in_input']:,} name texts not in this input)"
                        if self.decisions["texts_not_in_input"]
                        else ""
                    )
                ]
                if self.decisions
                else []
            ),
            f"grouping           {self.cluster}, keep {self.keep}, k={self.k}, index {self.index}, "
            f"engine {self.engine} (search {self.search_engine}), "
            f"backend {self.backend}",
            f"encoded            {self.texts_encoded:>12,}"
            f"  ({self.embeddings_reused:,} reused from the workdir)",
            "time               "
            + ", ".join(f"{k} {v:.1f}s" for k, v in self.seconds.items())
            + f"  (total {sum(self.seconds.values()):.1f}s)",
            f"peak RSS           {self.peak_rss_mb:>10,.0f} MB",
        ]
        if self.output:
            lines.append(f"output             {self.output}")
        if self.dropped_output or self.rows_dropped:
            lines.append(
                f"kept only reps     {self.rows_written:>12,}  rows written, {self.rows_dropped:,} duplicate "
                f"rows to {self.dropped_output or 'result.dropped'}"
            )
        if self.pairs_output:
            lines.append(f"pairs              {self.pairs_output}")
        return "\n".join(lines)

    def _verification_lines(self) -> list[str]:
        v = self.verification
        if not v:
            return ["decided by         the cosine alone (no verifier)"]
        return [
            f"decided by         {v.get('decided_by', 'verifier')} below cosine {v['verify_above']:.2f}, "
            "the cosine at or above it, the exact key for exact copies",
            f"verified           {v['verified']:>12,}  candidate pairs with cosine in "
            f"[{v['searched_from']:.3f}, {v['verify_above']:.3f}) by the verifier (P >= "
            f"{v['verifier_threshold']:.3f}): {v['accepted_by_verifier']:,} accepted, "
            f"{v['rejected_by_verifier']:,} rejected; {v['accepted_by_cosine']:,} accepted on the cosine",
        ]


@dataclass
class DedupeResult:
    """The result of :func:`dupq.deduplicate`.

    ``table`` is every input row with the result columns when no output file was asked for (else
    ``None``: the rows are in ``out`` and :meth:`read` loads them). ``pairs`` lists every pair above
    the threshold (``id_a``, ``id_b``, ``score``, ``kind`` = similar | exact | existing, texts).

    ``pairs`` is built on first access, not by the run: with both texts per row it can be larger
    than everything else a run holds (7.7M similar pairs at 1M rows: ~1.4 GB), and most callers
    only want the rows. ``pairs_factory`` is what builds it (``pairs`` given directly also works).
    """

    summary: DedupeSummary
    table: pd.DataFrame | None
    pairs_factory: Callable[[], pd.DataFrame] | pd.DataFrame = field(repr=False)
    out: Path | None = None
    pairs_out: Path | None = None
    summary_out: Path | None = None
    dropped: pd.DataFrame | None = None

    @property
    def pairs(self) -> pd.DataFrame:
        """Every pair above the threshold (built once, on first access)."""
        if not isinstance(self.pairs_factory, pd.DataFrame):
            self.pairs_factory = self.pairs_factory()
        return self.pairs_factory

    @property
    def dataset(self) -> Any:
        """The output rows as a ``datasets.Dataset`` (every input column kept, plus the result columns):
        what a Dataset passed to :func:`~dupq.dedupe.deduplicate` comes back as."""
        from datasets import Dataset

        return Dataset.from_pandas(self.read(), preserve_index=False)

    def read(self) -> pd.DataFrame:
        """The output rows: ``table``, or the ``out`` file read back (all columns as text)."""
        if self.table is not None:
            return self.table
        if self.out is None:
            raise ValueError("this result has neither a table nor an output file")
        from dupq.tables import read_table

        return read_table(self.out)

    def groups(self, text_column: str, min_size: int = 2) -> list[list[str]]:
        """Texts per group with at least ``min_size`` rows, largest first (for a quick look)."""
        df = self.read()
        df = df[df["group_id"].notna() & (df["group_id"].astype(str) != "")]
        sizes = df.groupby("group_id")[text_column].agg(list)
        out = [list(v) for v in sizes if len(v) >= min_size]
        return sorted(out, key=len, reverse=True)
