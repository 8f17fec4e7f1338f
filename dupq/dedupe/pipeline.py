"""The dedupe pipeline: ``scan → encode → search → group → write``, each stage a function of one config.

The stages live in their own modules (:mod:`~dupq.dedupe.scan`, :mod:`~dupq.dedupe.stages` for encode,
search and verify, :mod:`~dupq.dedupe.group`, :mod:`~dupq.dedupe.write`); this module runs them in
order, times them (:mod:`~dupq.dedupe.timing`), and accounts for every row in the summary.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dupq.dedupe.cache import Pairs
from dupq.dedupe.config import DedupeConfig
from dupq.dedupe.decisions import Decisions, load_decisions
from dupq.dedupe.group import Groups, group
from dupq.dedupe.report import ReportInputs, report_data, save_data, write_report
from dupq.dedupe.results import DedupeResult, DedupeSummary
from dupq.dedupe.scan import EMPTY, UNREADABLE, Scan, Source, scan
from dupq.dedupe.search import index_kind, match_against
from dupq.dedupe.stages import (
    Encoded,
    Searched,
    Verified,
    encode_texts,
    live_pairs,
    search_candidates,
    sources,
    verify,
)
from dupq.dedupe.timing import StageTimer, peak_rss_mb
from dupq.dedupe.tokens import SPILL_FILE
from dupq.dedupe.write import (
    OutputColumns,
    check_no_result_columns,
    kept_rows,
    output_format,
    pairs_frame,
    write_frame,
    write_table,
)
from dupq.errors import InputError
from dupq.io import atomic_write_json
from dupq.tablewriter import check_not_input

__all__ = ["StageTimer", "deduplicate", "peak_rss_mb", "resolve_workdir", "run"]

logger = logging.getLogger(__name__)


def deduplicate(data: str | Path | pd.DataFrame | Any, **options: Any) -> DedupeResult:
    """Find duplicate groups in a table of questions; return (and optionally write) every input row.

    ``data`` is a file (CSV/TSV/Parquet/JSONL, by suffix; delimiter and text encoding are detected
    unless ``sep``/``encoding`` are given), a directory (Parquet shards, or a Hugging Face dataset saved
    with ``save_to_disk``), a DataFrame, or a ``datasets.Dataset`` (``result.dataset`` gives it back
    with the result columns). ``text_column`` holds the questions;
    ``id_column`` (optional) names rows in ``duplicate_of`` — without it rows are named by their
    0-based position in the input.

    ``model``: a model directory, a loaded SentenceTransformer or :class:`~dupq.embed.Embedder`, or
    ``None`` for the embedded default. ``threshold``: a cosine in [-1, 1], or ``"auto"`` for the
    model's dev-calibrated threshold (``dupq.json``), falling back to :data:`DEFAULT_THRESHOLD`.
    ``cluster``: ``"leader"`` (default, no chaining) or ``"components"`` (see :mod:`dupq.dedupe.group`).
    ``against``: an existing base (file or DataFrame); new rows that duplicate one of its rows get
    ``duplicate_of`` = that row's id and ``duplicate_of_existing`` = True.

    ``out``/``pairs_out``/``summary_out`` are written atomically (format by suffix); ``summary_out``
    defaults to ``<out stem>.summary.json`` beside ``out``. ``workdir`` keeps the embeddings between
    runs (resume after an interruption, or re-group at another threshold without re-encoding); by
    default a hidden directory beside ``out`` is used and removed after a successful run.

    ``engine``: ``"local"`` or ``"ray"`` (encoding on Ray Data; ``ray_address`` or ``$RAY_ADDRESS``
    for a cluster; the search too, partitioned over Ray tasks, per ``ray_search``: ``"auto"`` from
    :data:`~dupq.dedupe.config.RAY_SEARCH_MIN` unique texts or when ``ray_partitions`` is given,
    ``"partitioned"`` always, ``"driver"`` never; ``ray_assignments``: nearest partitions per vector,
    :mod:`dupq.dedupe.ray_search`). ``backend``: the Embedder backend (``"torch"``, ``"onnx-int8"`` …).
    ``index``: ``"auto"`` (exact ``"flat"`` up to 20k texts, the cell ``"join"`` of
    :mod:`dupq.dedupe.join` above) | ``"flat"`` | ``"join"`` | ``"hnsw"`` | ``"ivf"``; matching against a
    base uses HNSW where the self-search joins. ``ef_search``: the HNSW search beam
    (default :data:`~dupq.dedupe.config.HNSW_EF_SEARCH`; lower is faster at some pair recall: see the
    README). ``join_recall``: the pair recall the join's probes are chosen for (1.0: always the most
    probes; lower is faster). ``dtype``: storage of the embeddings on disk (``"float16"`` halves
    memory; cosine error < 1e-3). The options are checked as a :class:`~dupq.dedupe.config.DedupeConfig`,
    whose fields declare them: their names, types and defaults are this function's keyword arguments.

    ``threshold="auto"`` takes the model's precision-0.90 operating point on its dev split when its
    ``dupq.json`` has one (a wrong merge costs more than a missed one), else its best-F1 threshold.
    ``verifier`` (a :class:`dupq.verifier.Verifier` or its directory): candidates are searched down to
    ``threshold - verify_below`` and every pair below the cosine ``verify_above`` is decided by the
    verifier at its precision-0.90 point (:mod:`dupq.dedupe.verify`); the summary says how many pairs
    each stage decided. A verifier directory runs its token pass on ``backend`` too (``onnx-int8``:
    int8 for both stages). ``escape_formulas``: prefix output cells that start like a spreadsheet formula
    (``= + - @``) with ``'`` — for files meant for Excel; off by default, so text round-trips exactly.
    ``keep``: the survivor rule — which text represents its group (``most-neighbours``, ``first``,
    ``longest``, ``shortest``, ``most-frequent``, ``column:NAME[:asc|desc]``; :mod:`dupq.dedupe.keep`).
    ``search_margin``: candidate pairs are searched this far below the threshold and kept in ``workdir``;
    a later run there at any threshold down to that floor re-groups without searching
    (:mod:`dupq.dedupe.cache`). ``decisions``: a reviewer's marks (the report's CSV export; a labelled
    pair file): a pair marked duplicate is always grouped, one marked not a duplicate never is
    (:mod:`dupq.dedupe.decisions`). ``keep_only="representatives"``: ``out`` (or ``result.table``)
    holds one row per group plus the rows without text; the other rows go to ``dropped_out`` (default
    ``<out stem>.dropped<suffix>``; ``result.dropped`` without ``out``) with their ``duplicate_of``, and
    the summary counts both, so no row is silently lost. ``report``: write the review report (one
    self-contained HTML file, :mod:`dupq.dedupe.report`); a run with a ``workdir`` also keeps the
    report's data there for ``dupq report WORKDIR``.
    """
    try:
        _SIGNATURE.bind(data, **options)
    except TypeError as exc:  # an unknown or missing keyword, named as deduplicate()'s
        raise TypeError(f"deduplicate(): {exc}") from None
    return run(data, DedupeConfig(**options))


def _signature() -> inspect.Signature:
    """``deduplicate(data, *, <one keyword per DedupeConfig option>)``: what ``help()``, IDEs and
    :func:`inspect.signature` show, generated from the one declaration of the options."""
    data = inspect.Parameter(
        "data", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation="str | Path | pd.DataFrame | Any"
    )
    keywords = [
        inspect.Parameter(
            f.name,
            inspect.Parameter.KEYWORD_ONLY,
            default=inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default,
            annotation=f.type,
        )
        for f in dataclasses.fields(DedupeConfig)
        if f.init
    ]
    return inspect.Signature([data, *keywords], return_annotation="DedupeResult")


_SIGNATURE = _signature()
deduplicate.__signature__ = _SIGNATURE  # type: ignore[attr-defined]


def run(data: str | Path | pd.DataFrame, cfg: DedupeConfig) -> DedupeResult:
    """Run the pipeline on ``data`` under ``cfg``; keep the work directory when there is something to
    resume from, remove it otherwise."""
    inputs = [data, cfg.against, cfg.decisions]
    for target, option in ((cfg.out, "--out"), (cfg.pairs_out, "--pairs"), (cfg.summary_out, "--summary")):
        if target is not None:
            if option != "--summary":
                output_format(target)  # fail before hours of encoding, not after
            check_not_input(target, inputs, option)
    timer = StageTimer()
    workdir, cleanup = resolve_workdir(cfg.workdir, cfg.out)
    try:
        result = _pipeline(data, cfg, workdir, timer)
    except BaseException:
        for spilled in workdir.glob(f"emb-*/{SPILL_FILE}"):  # a rerun re-encodes what it needs tokens of
            spilled.unlink(missing_ok=True)
        has_embeddings = any(workdir.glob("emb-*/done.npy"))
        if cleanup and (cfg.out is None or not has_embeddings):
            shutil.rmtree(workdir, ignore_errors=True)  # nothing worth resuming from
        else:
            logger.warning("dedupe stopped; rerun the same command to resume from %s", workdir)
        raise
    if cleanup:
        shutil.rmtree(workdir, ignore_errors=True)
    return result


def _pipeline(data: Any, cfg: DedupeConfig, workdir: Path, timer: StageTimer) -> DedupeResult:
    source, base_source = sources(data, cfg)
    check_no_result_columns(source.columns, source.path)
    rule = cfg.keep_rule
    new = scan(source, cfg.show_progress, keep_column=rule if rule.kind == "column" else None)
    base = scan(base_source, cfg.show_progress) if base_source is not None else None
    timer.stage("scan")
    match = None
    enc = encode_texts(new, base, cfg, workdir, timer)
    timer.stage("encode")
    store = enc.stores[0]
    if base is not None:
        match = match_against(new, base, store.vectors, enc.stores[1].vectors, enc.threshold, cfg)
    timer.stage("against")
    search_at = enc.threshold - cfg.verify_below if enc.verifier is not None else enc.threshold
    searched = search_candidates(store, search_at, cfg)
    pairs = live_pairs(searched.candidates, search_at, match)
    timer.stage("search")
    verified = None
    if enc.verifier is not None:
        verified = verify(pairs, new.texts, enc, cfg)
        pairs = verified.pairs
        timer.stage("verify")
    decisions = load_decisions(cfg.decisions, new) if cfg.decisions is not None else None
    groups = group(
        new,
        store.vectors,
        (pairs.a, pairs.b),
        cfg.cluster,
        cfg.chunk_size,
        base,
        match,
        keep=rule,
        decisions=decisions,
    )
    timer.stage("group")
    columns = OutputColumns(new, groups, store.truncated)
    written = _write(source, new, base, columns, groups, pairs, cfg)
    timer.stage("write")
    # the summary holds the timer's own dicts: the report stage's time, measured after the report has
    # taken the summary, still reaches the summary written below
    summary = _summary(
        new,
        base,
        columns,
        groups,
        _Stages(enc, searched, pairs, verified, decisions, written),
        cfg,
        workdir,
        timer,
    )
    if cfg.report is not None or cfg.workdir is not None:
        inputs = ReportInputs(
            scan=new,
            columns=columns,
            candidates=searched.candidates,
            live=match[0] < 0 if match is not None else None,
            threshold=enc.threshold,
            cluster=cfg.cluster,
            keep=rule,
            decisions=decisions,
            verdicts=verified.verdicts(searched.candidates, cfg.verify_above)
            if verified is not None
            else None,
            summary=summary.to_dict(),
        )
        _report(inputs, cfg, workdir)
        timer.stage("report")
    if cfg.summary_out is not None:
        atomic_write_json(cfg.summary_out, summary.to_dict())
    return DedupeResult(
        summary=summary,
        table=written.table,
        pairs_factory=written.pairs,
        dropped=written.dropped if cfg.keep_only is not None and cfg.out is None else None,
        out=cfg.out,
        pairs_out=cfg.pairs_out,
        summary_out=cfg.summary_out,
    )


def _report(inputs: ReportInputs, cfg: DedupeConfig, workdir: Path) -> None:
    """Build the report's data; save it in a kept workdir (``dupq report``) and write ``cfg.report``."""
    data = report_data(inputs)
    if cfg.workdir is not None:
        save_data(data, workdir)
    if cfg.report is not None:
        write_report(data, cfg.report)


def _write(
    source: Source,
    new: Scan,
    base: Scan | None,
    columns: OutputColumns,
    groups: Groups,
    pairs: Pairs,
    cfg: DedupeConfig,
) -> _Written:
    """Write (or build) the output table (only the representatives with ``keep_only``; the others to
    ``dropped_out`` / ``result.dropped``) and the pairs (a factory unless ``pairs_out`` is given)."""
    done = _Written()
    if cfg.out is not None:
        done.rows_written, done.rows_dropped = write_table(
            source, columns, cfg.out, cfg.show_progress, escape=cfg.escape_formulas, dropped=cfg.dropped_out
        )
    else:
        table = pd.concat([columns.attach(c, r0) for r0, c in source.chunks()], ignore_index=False)
        if source.frame is not None and len(table) == len(source.frame):
            table.index = source.frame.index
        if cfg.keep_only is not None:
            keep = kept_rows(table)
            table, done.dropped = table[keep], table[~keep]
        done.table, done.rows_written, done.rows_dropped = table, len(table), len(done.dropped)
    matched = groups.matched
    match_score = groups.score  # for a text matched to the base, its score is the match's cosine

    def build_pairs() -> pd.DataFrame:  # built only when asked for (it holds both texts of every pair)
        return pairs_frame(new, base, pairs.a, pairs.b, pairs.s, matched, match_score)

    done.pairs = build_pairs
    if cfg.pairs_out is not None:
        done.pairs = build_pairs()
        write_frame(done.pairs, cfg.pairs_out)
    return done


@dataclass
class _Written:
    """What the write stage produced: the table (without ``out``), dropped rows, the pairs (or a
    factory), and the row counts written to the output and to the dropped rows."""

    table: pd.DataFrame | None = None
    dropped: pd.DataFrame = field(default_factory=pd.DataFrame)
    pairs: Any = None
    rows_written: int = 0
    rows_dropped: int = 0


@dataclass
class _Stages:
    """What the stages after the scan found, for the summary."""

    enc: Encoded
    searched: Searched
    pairs: Pairs  # the similar pairs the groups were built from
    verified: Verified | None
    decisions: Decisions | None
    written: _Written


def _summary(
    new: Scan,
    base: Scan | None,
    columns: OutputColumns,
    groups: Groups,
    stages: _Stages,
    cfg: DedupeConfig,
    workdir: Path,
    timer: StageTimer,
) -> DedupeSummary:
    """Row accounting (``ok + truncated + empty + unreadable == rows``), groups and provenance."""
    enc, searched, written = stages.enc, stages.searched, stages.written
    n = len(new.texts)
    truncated = enc.stores[0].truncated
    ok_rows = int((new.row_code == 0).sum())
    n_trunc_rows = int(truncated[new.row_uid[new.row_uid >= 0]].sum()) if n else 0
    sizes = np.bincount(groups.group, weights=new.counts, minlength=groups.n_groups) if n else np.zeros(0)
    return DedupeSummary(
        rows=new.n_rows,
        ok_rows=ok_rows - n_trunc_rows,
        truncated_rows=n_trunc_rows,
        empty_rows=int((new.row_code == EMPTY).sum()),
        unreadable_rows=int((new.row_code == UNREADABLE).sum()),
        unique_texts=n,
        exact_duplicate_rows=ok_rows - n,
        groups=groups.n_groups,
        duplicate_groups=int((sizes >= 2).sum()),
        rows_marked_duplicate=ok_rows - int(columns.row_is_rep().sum()),
        rows_duplicate_of_existing=int(new.counts[groups.matched >= 0].sum()) if base is not None else 0,
        similar_pairs=len(stages.pairs.a),
        threshold=enc.threshold,
        threshold_source=enc.threshold_source,
        cluster=cfg.cluster,
        keep=str(cfg.keep_rule),
        k=cfg.k,
        index=index_kind(n, cfg.index),
        engine=cfg.engine,
        backend=enc.backend,
        model=enc.model,
        model_fingerprint=enc.fingerprint,
        texts_encoded=enc.encoded,
        embeddings_reused=enc.reused,
        existing_rows=base.n_rows if base is not None else None,
        seconds=timer.seconds,
        rss_mb=timer.rss_mb,
        peak_rss_mb=timer.peak_mb(),
        input=str(new.source.path) if new.source.path is not None else new.source.name,
        output=str(cfg.out) if cfg.out is not None else None,
        pairs_output=str(cfg.pairs_out) if cfg.pairs_out is not None else None,
        workdir=str(workdir),
        verification=stages.verified.info if stages.verified is not None else None,
        search_floor=round(searched.candidates.floor, 6),
        pairs_reused=searched.reused,
        search_engine=searched.engine,
        ray_search=searched.ray,
        decisions=stages.decisions.summary() if stages.decisions is not None else None,
        rows_written=written.rows_written,
        rows_dropped=written.rows_dropped,
        dropped_output=str(cfg.dropped_out) if cfg.dropped_out is not None else None,
    )


def resolve_workdir(workdir: str | Path | None, out: Path | None) -> tuple[Path, bool]:
    """The work directory and whether to delete it after a successful run; one that cannot be created
    (an unwritable output directory) is an :class:`InputError` naming it, before any work."""
    if workdir is not None:
        return _make_dir(Path(workdir), "--workdir"), False
    if out is not None:
        return _make_dir(out.parent / f".{out.name}.dupq-work", "--out"), True
    return Path(tempfile.mkdtemp(prefix="dupq-dedupe-")), True


def _make_dir(path: Path, option: str) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(
            f"cannot create the work directory: {exc.strerror or exc}; choose a writable {option}",
            file=path,
        ) from exc
    if not os.access(path, os.W_OK | os.X_OK):
        raise InputError(f"the work directory is not writable; choose a writable {option}", file=path)
    return path
