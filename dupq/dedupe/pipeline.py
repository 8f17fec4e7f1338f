"""The dedupe pipeline: ``scan → encode → search → group → write``, each stage a function of one config.

The stages live in their own modules (:mod:`~dupq.dedupe.scan`, :mod:`~dupq.dedupe.store`,
:mod:`~dupq.dedupe.search`, :mod:`~dupq.dedupe.group`, :mod:`~dupq.dedupe.write`); this module runs
them in order, times them, and accounts for every row in the summary.
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dupq.card import DEDUPE_POINT
from dupq.dedupe.cache import CandidatePairs, PairCache
from dupq.dedupe.config import DEFAULT_CHUNK, DEFAULT_K, SEARCH_MARGIN, DedupeConfig
from dupq.dedupe.decisions import load_decisions
from dupq.dedupe.group import Groups, group
from dupq.dedupe.join import JOIN_RECALL
from dupq.dedupe.report import ReportInputs, report_data, save_data, write_report
from dupq.dedupe.results import DedupeResult, DedupeSummary
from dupq.dedupe.scan import EMPTY, UNREADABLE, Scan, Source, scan
from dupq.dedupe.search import candidate_pairs, index_kind, match_against
from dupq.dedupe.store import EmbeddingStore, encode, release_memory
from dupq.dedupe.verify import Verification, verifier_threshold, verify_pairs
from dupq.dedupe.write import (
    OutputColumns,
    check_no_result_columns,
    kept_rows,
    output_format,
    pairs_frame,
    write_frame,
    write_table,
)
from dupq.encoder import resolve_threshold
from dupq.errors import InputError
from dupq.io import atomic_write_json
from dupq.tablewriter import check_not_input
from dupq.verifier.choose import choose_verifier, describe

logger = logging.getLogger(__name__)


def deduplicate(
    data: str | Path | pd.DataFrame | Any,
    *,
    text_column: str,
    id_column: str | None = None,
    model: Any = None,
    threshold: float | str | None = "auto",
    cluster: str = "leader",
    k: int = DEFAULT_K,
    against: str | Path | pd.DataFrame | None = None,
    against_text_column: str | None = None,
    against_id_column: str | None = None,
    out: str | Path | None = None,
    pairs_out: str | Path | None = None,
    summary_out: str | Path | None = None,
    workdir: str | Path | None = None,
    engine: str = "local",
    backend: str = "default",
    device: str | None = None,
    batch_size: int = 64,
    chunk_size: int = DEFAULT_CHUNK,
    index: str = "auto",
    ef_search: int | None = None,
    join_recall: float = JOIN_RECALL,
    dtype: str = "float16",
    sep: str | None = None,
    encoding: str | None = None,
    ray_address: str | None = None,
    show_progress: bool = True,
    verifier: Any = "auto",
    verify_below: float = 0.10,
    verify_above: float = 0.98,
    escape_formulas: bool = False,
    keep: str = "most-neighbours",
    search_margin: float = SEARCH_MARGIN,
    decisions: str | Path | None = None,
    keep_only: str | None = None,
    dropped_out: str | Path | None = None,
    report: str | Path | None = None,
    ray_search: str = "auto",
    ray_partitions: int | None = None,
    ray_assignments: int = 2,
) -> DedupeResult:
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
    memory; cosine error < 1e-3). The options are checked as a :class:`~dupq.dedupe.config.DedupeConfig`.

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
    options = dict(locals())
    del options["data"]
    return run(data, DedupeConfig(**options))


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
        has_embeddings = any(workdir.glob("emb-*/done.npy"))
        if cleanup and (cfg.out is None or not has_embeddings):
            shutil.rmtree(workdir, ignore_errors=True)  # nothing worth resuming from
        else:
            logger.warning("dedupe stopped; rerun the same command to resume from %s", workdir)
        raise
    if cleanup:
        shutil.rmtree(workdir, ignore_errors=True)
    return result


@dataclass
class _Encoded:
    """What the encode stage hands on: the stores (new texts, then the base), the threshold and the model."""

    stores: list[EmbeddingStore]
    threshold: float
    threshold_source: str
    model: str
    fingerprint: str
    encoded: int
    reused: int
    backend: str  # the one that ran (``auto`` resolved)
    verifier: Any = None  # what decides (dupq.verifier.choose): None, a directory/"default", or loaded


def _pipeline(data: Any, cfg: DedupeConfig, workdir: Path, timer: StageTimer) -> DedupeResult:
    source, base_source = _sources(data, cfg)
    check_no_result_columns(source.columns, source.path)
    rule = cfg.keep_rule
    new = scan(source, cfg.show_progress, keep_column=rule if rule.kind == "column" else None)
    base = scan(base_source, cfg.show_progress) if base_source is not None else None
    timer.stage("scan")
    match = None
    enc = _encode(new, base, cfg, workdir, timer)
    timer.stage("encode")
    store = enc.stores[0]
    if base is not None:
        match = match_against(new, base, store.vectors, enc.stores[1].vectors, enc.threshold, cfg)
    timer.stage("against")
    search_at = enc.threshold - cfg.verify_below if enc.verifier is not None else enc.threshold
    candidates, reused, search_info = _candidates(store, search_at, cfg)
    pairs = _live_pairs(candidates, search_at, match)
    timer.stage("search")
    verification, pairs_checked = None, pairs
    if enc.verifier is not None:
        pairs, *verification = _verify(pairs, new.texts, enc, cfg)
        timer.stage("verify")
    decisions = load_decisions(cfg.decisions, new) if cfg.decisions is not None else None
    groups = group(
        new,
        store.vectors,
        pairs[:2],
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
    summary = _summary(new, base, columns, groups, pairs, enc, cfg, workdir, timer)
    summary.verification = verification[0] if verification is not None else None
    summary.search_floor = round(candidates.floor, 6)
    summary.pairs_reused = reused
    summary.search_engine = search_info.pop("engine")
    summary.ray_search = search_info or None
    summary.decisions = decisions.summary() if decisions is not None else None
    summary.rows_written, summary.rows_dropped = written.rows_written, written.rows_dropped
    summary.dropped_output = str(cfg.dropped_out) if cfg.dropped_out is not None else None
    if cfg.report is not None or cfg.workdir is not None:
        inputs = ReportInputs(
            new,
            columns,
            candidates,
            match[0] < 0 if match is not None else None,
            enc.threshold,
            cfg.cluster,
            rule,
            decisions,
            _verdicts(candidates, pairs_checked, verification[1], cfg.verify_above)
            if verification is not None
            else None,
            summary.to_dict(),
        )
        _report(inputs, cfg, workdir)
        timer.stage("report")
        summary.seconds = timer.seconds
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


def _verdicts(
    candidates: CandidatePairs,
    checked: tuple[np.ndarray, np.ndarray, np.ndarray],
    result: Verification,
    verify_above: float,
) -> np.ndarray:
    """Per candidate pair: 0 not verified, 1 the verifier accepted it, 2 it rejected it."""
    n = int(max(candidates.a.max(initial=0), candidates.b.max(initial=0))) + 1
    ckey = candidates.a.astype(np.int64) * n + candidates.b.astype(np.int64)
    verified = checked[2] < verify_above
    vkey = checked[0][verified] * n + checked[1][verified]
    order = np.argsort(ckey)
    pos = order[np.searchsorted(ckey, vkey, sorter=order)]
    verdict = np.zeros(len(ckey), dtype=np.int8)
    verdict[pos] = np.where(result.keep[verified], 1, 2)
    return verdict


def _sources(data: Any, cfg: DedupeConfig) -> tuple[Source, Source | None]:
    source = Source(data, cfg.text_column, cfg.id_column, cfg.chunk_size, cfg.sep, cfg.encoding)
    if cfg.against is None:
        return source, None
    base = Source(
        cfg.against,
        cfg.against_text_column or cfg.text_column,
        cfg.against_id_column,
        cfg.chunk_size,
        None,
        None,
        id_optional=cfg.against_id_column is None,
        default_id=cfg.id_column,
    )
    return source, base


def _encode(new: Scan, base: Scan | None, cfg: DedupeConfig, workdir: Path, timer: StageTimer) -> _Encoded:
    """Load the model, resolve the threshold, fill the stores; the model is released on return."""
    from dupq.embed import as_embedder

    # openvino-int8 is post-training quantised on (and auto times the backends on) the run's own texts;
    # the Embedder samples them only for those backends
    embedder = as_embedder(
        cfg.model, device=cfg.device, batch_size=cfg.batch_size, backend=cfg.backend, calibration=new.texts
    )
    threshold, threshold_source = resolve_threshold(cfg.threshold, embedder.source, point=DEDUPE_POINT)
    verifier = choose_verifier(cfg.verifier, embedder.source)
    fp = embedder.fingerprint
    timer.stage("load_model")
    stores = []
    encoded = reused = 0
    for sc in [new] + ([base] if base is not None else []):
        store = EmbeddingStore.open(
            workdir, sc.digest, fp, embedder.backend, len(sc.texts), embedder.dim, cfg.dtype
        )
        reused += int(store.done.sum())
        encoded += encode(store, sc.texts, embedder, cfg)
        stores.append(store)
    model_source, backend = embedder.source or "", embedder.backend
    del embedder  # the model and its runtime are not needed past here: give their memory back
    for st in stores:
        st.reopen_readonly()  # unmaps the pages encoding dirtied; later reads map only what they touch
    release_memory()
    return _Encoded(stores, threshold, threshold_source, model_source, fp, encoded, reused, backend, verifier)


def _candidates(
    store: EmbeddingStore, search_at: float, cfg: DedupeConfig
) -> tuple[CandidatePairs, bool, dict[str, Any]]:
    """Candidate pairs among all unique texts down to ``search_at - search_margin`` (k-NN only below
    ``search_at``): the saved ones when they give every pair at ``search_at`` (a re-threshold), else a
    search of the stored vectors (then saved) — on the driver, or partitioned on Ray
    (:mod:`dupq.dedupe.ray_search`) with ``engine="ray"``. The dict says which ran (``engine``: local,
    driver or ray-partitioned) and, for Ray, its partitions, sizes and times."""
    n = len(store.vectors)
    kind = index_kind(n, cfg.index)
    plan = None
    if cfg.engine == "ray":
        from dupq.dedupe.ray_search import search_plan

        plan = search_plan(n, cfg.ray_search, cfg.ray_partitions, cfg.ray_assignments)
    info: dict[str, Any] = {"engine": "local" if cfg.engine == "local" else "driver"}
    if plan is not None:
        info = {"engine": "ray-partitioned", "partitions": plan.partitions, "assignments": plan.assignments}
    elif cfg.engine == "ray":
        logger.info("search: on the driver (%d unique texts; --ray-search %s)", n, cfg.ray_search)
    extra = plan.cache_key() if plan is not None else {}
    if kind == "join":  # pairs found for another recall are not these pairs
        extra = {**extra, "join_recall": cfg.join_recall}
    cache = PairCache(store.dir, k=cfg.k, index=kind, ef_search=cfg.ef_search, extra=extra or None)
    found = cache.load(search_at)
    if found is not None:
        logger.info("re-using %d candidate pairs saved down to %.3f", len(found.a), found.floor)
        return found, True, info
    floor = max(-1.0, search_at - cfg.search_margin)
    if plan is not None:
        from dupq.dedupe.ray_search import search_store

        found, ray_info = search_store(store.dir, plan, floor, search_at, cfg)
        ray_info.pop("per_partition")  # the sizes and times are summarised; the files keep them
        info.update(ray_info)
    else:
        a, b, s, complete_to = candidate_pairs(
            store.vectors,
            floor,
            range_at=search_at,
            k=cfg.k,
            index=kind,
            chunk_size=cfg.chunk_size,
            show_progress=cfg.show_progress,
            ef_search=cfg.ef_search,
            join_recall=cfg.join_recall,
        )
        found = CandidatePairs(a, b, s, floor, complete_to)
    cache.save(found)
    return found, False, info


def _live_pairs(
    candidates: CandidatePairs, search_at: float, match: tuple[np.ndarray, np.ndarray] | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pairs at or above ``search_at`` between texts not already matched to the base."""
    a, b, s = candidates.above(search_at)
    if match is None:
        return a, b, s
    live = match[0] < 0
    keep = live[a] & live[b]
    return a[keep], b[keep], s[keep]


def _verify(
    pairs: tuple[np.ndarray, np.ndarray, np.ndarray],
    texts: list[str],
    enc: _Encoded,
    cfg: DedupeConfig,
) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], dict[str, Any], Verification]:
    """The verifier decides the candidate pairs below ``verify_above``; keep the ones it accepts
    (and return the summary's counts and the per-pair decisions, for the report)."""
    from dupq.backends import ONNX_BACKENDS
    from dupq.verifier import Verifier

    threshold, verifier = enc.threshold, enc.verifier
    if isinstance(verifier, (str, Path)):
        # the token pass on the encode stage's fast runtime where it has one (ONNX), else torch
        backend = enc.backend if enc.backend in ONNX_BACKENDS else "torch"
        verifier = Verifier.load(verifier, device=cfg.device, backend=backend)
    v_thr = verifier_threshold(verifier)
    result = verify_pairs(
        pairs[0],
        pairs[1],
        pairs[2],
        texts,
        verifier,
        threshold=v_thr,
        verify_above=cfg.verify_above,
        show_progress=cfg.show_progress,
    )
    keep = result.keep
    info = {
        "decided_by": describe(verifier),
        "verifier": verifier.source,
        "verifier_threshold": v_thr,
        "candidate_pairs": int(len(keep)),
        "searched_from": float(threshold - cfg.verify_below),
        "verify_above": cfg.verify_above,
        "accepted_by_cosine": result.by_cosine,
        "verified": result.verified,
        "accepted_by_verifier": result.verified_duplicate,
        "rejected_by_verifier": result.verified - result.verified_duplicate,
    }
    return (pairs[0][keep], pairs[1][keep], pairs[2][keep]), info, result


def _write(
    source: Source,
    new: Scan,
    base: Scan | None,
    columns: OutputColumns,
    groups: Groups,
    pairs: tuple[np.ndarray, np.ndarray, np.ndarray],
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
        return pairs_frame(new, base, pairs[0], pairs[1], pairs[2], matched, match_score)

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


def _summary(
    new: Scan,
    base: Scan | None,
    columns: OutputColumns,
    groups: Groups,
    pairs: tuple[np.ndarray, np.ndarray, np.ndarray],
    enc: _Encoded,
    cfg: DedupeConfig,
    workdir: Path,
    timer: StageTimer,
) -> DedupeSummary:
    """Row accounting (``ok + truncated + empty + unreadable == rows``), groups and provenance."""
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
        similar_pairs=len(pairs[0]),
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
