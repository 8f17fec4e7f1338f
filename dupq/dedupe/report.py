"""The review report of a dedupe (``--report report.html``, ``dupq report WORKDIR``): one HTML file.

A person reviewing 50,000 merged support questions would rather look than read a CSV, and their minutes
pay off at the margin. The file is self-contained (inline CSS, JS and SVG; no network) and holds: the run
summary; the histogram of candidate-pair cosines with the threshold marked; a **what-if ladder** — groups,
rows merged, largest group (and pairs a verifier overturned) at thresholds around the one used, computed
by re-grouping the pairs already found (:mod:`dupq.dedupe.cache`), with the survivor rule and review
decisions of the run; the groups, largest first, each with its kept row and every member's score to it
(searchable, paginated; the largest groups inline up to a size budget, the rest counted); and the
**borderline pairs** just above and below the threshold, with buttons to mark each "duplicate" / "not a
duplicate" and export the marks as a CSV that ``dupq dedupe --decisions`` and ``dupq train
--extra-pairs`` read.

Every row the page names is shown with its own id and its own text, as it is in the input: an exact
duplicate ("What causes inflation??" of "What causes inflation?") is a member of its own, marked "exact:
same key as row 74", not folded into its key's first row — a reviewer deciding about a row must see that
row, and case or punctuation can carry meaning an exact-key rule ignores (:mod:`dupq.dedupe.rowtext`).

Everything the page shows comes from one JSON block (``<script type="application/json"
id="dupq-data">``), so tests compare it with the output table. The same data is saved in the work
directory (``report-data.json``), from which ``dupq report WORKDIR`` writes the page again.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dupq.dedupe.group import LeaderLadder, degree_order, group_reps
from dupq.dedupe.report_page import PAGE
from dupq.dedupe.rowtext import row_texts
from dupq.errors import InputError
from dupq.io import atomic_write_text

if TYPE_CHECKING:
    from dupq.dedupe.cache import CandidatePairs
    from dupq.dedupe.decisions import Decisions
    from dupq.dedupe.keep import KeepRule
    from dupq.dedupe.scan import Scan
    from dupq.dedupe.write import OutputColumns

#: Saved in the work directory by every run that keeps one; ``dupq report`` renders it.
DATA_FILE = "report-data.json"
#: Of the data: 2 lists each row with its own text (and ``exact_of``); 1 showed its key's first text.
VERSION = 2
#: Groups shown inline stop at this many, or when their JSON passes :data:`INLINE_BYTES`.
MAX_GROUPS = 5000
INLINE_BYTES = 2_500_000
#: Members listed per group (the rest counted).
MAX_MEMBERS = 200
#: Borderline pairs listed (nearest the threshold, both sides).
BORDERLINE = 300
HIST_BINS = 50


@dataclass(kw_only=True)
class ReportInputs:
    """What a run hands the report: its texts and results, the candidate pairs, and how it grouped
    (keyword-only: ten fields, several of the same type, are easy to pass in the wrong order)."""

    scan: Scan
    columns: OutputColumns
    candidates: CandidatePairs
    live: np.ndarray | None  # bool per text: not matched to the --against base (None: all)
    threshold: float
    cluster: str
    keep: KeepRule | None
    decisions: Decisions | None
    verdicts: np.ndarray | None  # per candidate pair: 0 not verified, 1 accepted, 2 rejected
    summary: dict[str, Any]


def report_data(inp: ReportInputs) -> dict[str, Any]:
    """The JSON-able content of the report (see the module docstring)."""
    a, b, s, verdict = _live_candidates(inp)
    rows = inp.columns.attach(pd.DataFrame(index=pd.RangeIndex(0, inp.scan.n_rows)), 0)
    groups, not_inline = _groups(inp.scan, rows)
    return {
        "format": "dupq-dedupe-report",
        "version": VERSION,
        "summary": inp.summary,
        "threshold": inp.threshold,
        "floor": inp.candidates.floor,
        "histogram": _histogram(s, inp.candidates.floor),
        "whatif": _whatif(inp, a, b, s, verdict),
        "groups": groups,
        "groups_not_inline": not_inline,
        "borderline": _borderline(inp, a, b, s),
    }


def _live_candidates(inp: ReportInputs) -> tuple[np.ndarray, ...]:
    """The candidate pairs between live texts, with their verdicts — the arrays themselves when every
    pair is live (copies of 123M pairs were 2.7 GB of the report's peak with the static student)."""
    c = inp.candidates
    verdict = inp.verdicts if inp.verdicts is not None else np.zeros(len(c.a), np.int8)
    a, b = c.a.astype(np.int64, copy=False), c.b.astype(np.int64, copy=False)
    if inp.live is None:
        return a, b, c.s, verdict
    keep = inp.live[c.a] & inp.live[c.b]
    if keep.all():
        return a, b, c.s, verdict
    return a[keep], b[keep], c.s[keep], verdict[keep]


def _whatif(inp: ReportInputs, a, b, s, verdict) -> list[dict[str, Any]]:
    """Groups at a ladder of thresholds, re-grouping the saved pairs (with a verifier: its decisions
    where this run made them, the cosine elsewhere). Below the threshold, texts whose k nearest
    neighbours all pass a rung have more there than were kept: ``texts_cut_at_k`` counts them (0: the
    row is what a run at that threshold gives; else its pairs are a lower bound and its groups an
    estimate: leader grouping is not monotone in the pairs)."""
    t = inp.threshold
    lo = math.ceil(max(inp.candidates.floor, t - 0.05) * 100 - 1e-6) / 100
    ladder = sorted({round(x, 2) for x in np.arange(lo, min(1.0, t + 0.05) + 1e-9, 0.01)} | {round(t, 6)})
    counts = inp.scan.counts
    # the default grouping (leader, degree order, no review decisions): one set of lists for all rungs
    default = inp.cluster == "leader" and inp.decisions is None and degree_order(inp.keep)
    lists = LeaderLadder(len(counts), a, b) if default and len(ladder) > 1 else None
    out = []
    for x in ladder:
        use = ((s >= np.float32(x)) & (verdict != 2)) | (verdict == 1)
        if lists is not None:
            rep = lists.reps(use, counts)
        else:
            rep = group_reps(inp.scan, (a[use], b[use]), inp.cluster, inp.keep, inp.decisions)
        size = np.bincount(rep, weights=counts, minlength=len(counts)) if len(counts) else np.zeros(1)
        row = {
            "threshold": x,
            "pairs": int(use.sum()),
            "groups": int((size >= 2).sum()),
            "rows_merged": int(counts.sum() - (size > 0).sum()),
            "largest_group": int(size.max()),
            "current": bool(abs(x - t) < 1e-9),
        }
        row["texts_cut_at_k"] = inp.candidates.cut_above(x, inp.live)
        if inp.verdicts is not None:
            row["overturned"] = int(((verdict == 2) & (s >= x)).sum() + ((verdict == 1) & (s < x)).sum())
        out.append(row)
    return out


def _groups(scan: Scan, rows: pd.DataFrame) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Groups of 2+ rows, largest first: the kept row and the members, each row with its own id and its
    own text (an exact duplicate is listed, not folded into its key's first row, and says which row it
    copies); the first :data:`MAX_GROUPS` (and at most :data:`INLINE_BYTES` of them) listed, the rest
    counted.

    The groups are chosen on the scan's texts (a member's size is its key's text, near enough), then
    only the listed rows' own texts are read back (:func:`~dupq.dedupe.rowtext.row_texts`) and the byte
    budget is applied again to what is written, so the bound holds on the real texts."""
    has = rows["group_id"].notna().to_numpy()
    gid = rows["group_id"].to_numpy()[has].astype(np.int64)
    sizes = np.bincount(gid) if len(gid) else np.zeros(0, np.int64)
    multi = np.flatnonzero(sizes >= 2)
    multi = multi[np.lexsort((multi, -sizes[multi]))]
    top = multi[:MAX_GROUPS]
    rank = np.full(len(sizes), -1, dtype=np.int64)
    rank[top] = np.arange(len(top))
    positions = np.flatnonzero(has)
    listed = rank[gid] >= 0  # only the rows of groups that may be listed are gathered
    pos, grank = positions[listed], rank[gid[listed]]
    order = np.argsort(grank, kind="stable")
    bounds = np.searchsorted(grank[order], np.arange(len(top) + 1))
    rep_flag = rows["is_representative"].to_numpy()
    score = rows["score"].to_numpy()
    standing = np.full(scan.n_rows, -1, dtype=np.int64)  # the row whose id names each row's key
    standing[scan.row_uid >= 0] = scan.rep_row[scan.row_uid[scan.row_uid >= 0]]
    view = _RowView(scan, score, rows["duplicate_of"].astype(object).to_numpy(), standing)

    plan, used = [], 0
    for i, g in enumerate(top.tolist()):
        if used > INLINE_BYTES:
            break
        members = pos[order[bounds[i] : bounds[i + 1]]].tolist()
        kept = next((r for r in members if rep_flag[r]), None)
        # best score first; the rows of one key together, the row standing for it first
        others = sorted(
            (r for r in members if not rep_flag[r]),
            key=lambda r: (-score[r], standing[r], standing[r] != r, r),
        )
        plan.append((g, kept, others[:MAX_MEMBERS], max(0, len(others) - MAX_MEMBERS)))
        used += len(json.dumps(view.entry(int(sizes[g]), *plan[-1]), ensure_ascii=False))
    view.own = row_texts(
        scan, [r for _, kept, listed, _ in plan for r in ([kept] if kept is not None else []) + listed]
    )
    out, used = [], 0
    for step in plan:
        if used > INLINE_BYTES:
            break
        entry = view.entry(int(sizes[step[0]]), *step)
        used += len(json.dumps(entry, ensure_ascii=False))
        out.append(entry)
    rest = multi[len(out) :]
    return out, {"groups": int(len(rest)), "rows": int(sizes[rest].sum())}


class _RowView:
    """How the report writes one group: ``kept`` ``{id, text}`` and ``members`` ``[id, text, score to the
    kept row, duplicate_of, exact_of]`` — ``exact_of`` the id of the row standing for the member's
    exact-duplicate key when that is another row (the member is an exact copy of it), else null."""

    def __init__(self, scan: Scan, score: np.ndarray, dup: np.ndarray, standing: np.ndarray) -> None:
        self.scan, self.score, self.dup, self.standing = scan, score, dup, standing
        self.own: dict[int, str] | None = None  # rows' own texts; before they are read, their key's

    def row_id(self, r: int) -> Any:
        ids = self.scan.row_ids
        return ids[r] if ids is not None else r

    def text(self, r: int) -> str:
        return self.own[r] if self.own is not None else self.scan.texts[self.scan.row_uid[r]]

    def entry(self, rows: int, g: int, kept: int | None, listed: list[int], more: int) -> dict[str, Any]:
        standing = self.standing
        return {
            "group_id": g,
            "rows": rows,
            "kept": {"id": self.row_id(kept), "text": self.text(kept)} if kept is not None else None,
            "members": [
                [
                    self.row_id(r),
                    self.text(r),
                    round(float(self.score[r]), 6),
                    _plain(self.dup[r]),
                    self.row_id(int(standing[r])) if standing[r] != r else None,
                ]
                for r in listed
            ],
            "more": more,
        }


def _plain(value: Any) -> Any:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if isinstance(value, np.generic) else value


def _borderline(inp: ReportInputs, a, b, s) -> list[dict[str, Any]]:
    """The pairs nearest the threshold on either side, and whether the run put them in one group. Each
    side is the row standing for its text (its id, and that row's own text), and ``copies_a``/``copies_b``
    count the other rows with the same exact-duplicate key, which a mark on the pair covers too."""
    t = inp.threshold
    scan = inp.scan
    near = nearest(np.abs(s.astype(np.float64) - t), BORDERLINE)
    group = inp.columns.uid_group
    ids_a, ids_b = scan.uid_id(a[near]), scan.uid_id(b[near])
    row_a, row_b = scan.rep_row[a[near]], scan.rep_row[b[near]]
    own = row_texts(scan, np.concatenate([row_a, row_b]))
    return [
        {
            "id_a": _plain(ia),
            "id_b": _plain(ib),
            "text_a": own[ra],
            "text_b": own[rb],
            "copies_a": int(scan.counts[a[i]]) - 1,
            "copies_b": int(scan.counts[b[i]]) - 1,
            "score": round(float(s[i]), 6),
            "above": bool(s[i] >= np.float32(t)),
            "same_group": bool(group[a[i]] == group[b[i]]),
        }
        for i, ia, ib, ra, rb in zip(near.tolist(), ids_a, ids_b, row_a.tolist(), row_b.tolist(), strict=True)
    ]


def nearest(distance: np.ndarray, count: int) -> np.ndarray:
    """Positions of the ``count`` smallest ``distance``, smallest first, ties by position — what a stable
    ``argsort(distance)[:count]`` gives, in linear time (a full sort of 123M pair scores took ~30 s)."""
    if len(distance) > count > 0:
        kth = np.partition(distance, count - 1)[count - 1]
        pick = np.flatnonzero(distance <= kth)  # every tie of the last place, positions ascending
        return pick[np.argsort(distance[pick], kind="stable")][:count]
    return np.argsort(distance, kind="stable")[:count]


def _histogram(s: np.ndarray, floor: float) -> dict[str, Any]:
    lo = max(-1.0, math.floor(floor * 100) / 100)
    counts, edges = np.histogram(s, bins=HIST_BINS, range=(lo, 1.0))
    return {"edges": [round(float(e), 4) for e in edges], "counts": counts.tolist()}


def histogram_svg(hist: dict[str, Any], threshold: float, width: int = 640, height: int = 180) -> str:
    """Bars of the candidate-pair cosines, the threshold as a red line (inline SVG, no script)."""
    counts, edges = hist["counts"], hist["edges"]
    top = max(counts) if counts and max(counts) > 0 else 1
    lo, hi = edges[0], edges[-1]
    pad, plot_h = 30, height - 46
    bar_w = (width - 2 * pad) / max(1, len(counts))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
        f'style="max-width:{width * 1.5:.0f}px" role="img">'
    ]
    for i, c in enumerate(counts):
        h = plot_h * c / top
        x = pad + i * bar_w
        parts.append(
            f'<rect x="{x:.1f}" y="{10 + plot_h - h:.1f}" width="{bar_w - 1:.1f}" height="{h:.1f}" '
            f'fill="#5b8def"><title>{edges[i]:.3f}–{edges[i + 1]:.3f}: {c:,} pairs</title></rect>'
        )
    tx = pad + (threshold - lo) / (hi - lo) * (width - 2 * pad) if hi > lo else pad
    parts.append(
        f'<line x1="{tx:.1f}" x2="{tx:.1f}" y1="5" y2="{10 + plot_h}" stroke="#d33" stroke-width="2"/>'
    )
    parts.append(f'<text x="{tx + 4:.1f}" y="16" fill="#d33" font-size="11">threshold {threshold:.3f}</text>')
    for v in (lo, (lo + hi) / 2, hi):
        x = pad + (v - lo) / (hi - lo) * (width - 2 * pad) if hi > lo else pad
        parts.append(
            f'<text x="{x:.1f}" y="{height - 22}" font-size="10" text-anchor="middle">{v:.2f}</text>'
        )
    parts.append(
        f'<text x="{width / 2:.0f}" y="{height - 4}" font-size="10" text-anchor="middle">cosine of each '
        f"candidate pair ({len(counts)} bars; the tallest: {top:,} pairs)</text>"
    )
    parts.append("</svg>")
    return "".join(parts)


def render_html(data: dict[str, Any]) -> str:
    """The self-contained page: the data as a JSON block, the histogram as SVG, the UI in inline JS."""
    blob = json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")
    title = f"dupq dedupe report — {data['summary'].get('input', '')}"
    return (
        PAGE.replace("__TITLE__", html.escape(title))
        .replace("__HISTOGRAM__", histogram_svg(data["histogram"], data["threshold"]))
        .replace("__DATA__", blob)
    )


def write_report(data: dict[str, Any], path: str | Path) -> Path:
    """Write the page atomically; return its path."""
    path = Path(path)
    atomic_write_text(path, render_html(data))
    return path


def save_data(data: dict[str, Any], workdir: Path) -> None:
    atomic_write_text(workdir / DATA_FILE, json.dumps(data, ensure_ascii=False))


def report_from_workdir(workdir: str | Path, out: str | Path) -> Path:
    """``dupq report WORKDIR``: the page of the last run that used ``WORKDIR``."""
    path = Path(workdir) / DATA_FILE
    if not path.exists():
        raise InputError(
            f"no {DATA_FILE} here: run `dupq dedupe ... --workdir {workdir}` first (runs with a --workdir "
            "keep the report's data there)",
            file=path,
        )
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("version") != VERSION:
        # an older page would show exact duplicates with their key's first text: not what a row holds
        raise InputError(
            f"this {DATA_FILE} has version {data.get('version')!r}, written by an older dupq whose report "
            f"showed exact duplicates with another row's text; re-run `dupq dedupe ... --workdir {workdir}` "
            "(the saved embeddings and pairs are re-used) to write it again",
            file=path,
        )
    return write_report(data, out)


def parse_report(html_text: str) -> dict[str, Any]:
    """The data block of a report page (for tests and scripts that check a page)."""
    start = html_text.index('<script type="application/json" id="dupq-data">') + len(
        '<script type="application/json" id="dupq-data">'
    )
    end = html_text.index("</script>", start)
    return json.loads(html_text[start:end])  # "<\\/" in the block is JSON's escaped "/"
