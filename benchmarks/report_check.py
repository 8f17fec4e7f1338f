"""``make report-check``: the dedupe review report of a 100k-row run, opened in a real browser.

1. A 100,000-row question file: the real-derived corpus of ``benchmarks/dedupe.py`` (labelled pairs from
   ``../shared/data`` plus real padding sentences and recombinations of them), with some rows repeated
   as exact copies (case and punctuation changed) so the report shows those too.
2. One ``dupq dedupe`` run (default model, ``--backend onnx-int8`` by default) with ``--report`` and a
   ``--workdir``; then two **re-threshold** runs in that workdir (threshold ±0.02), timed: they take the
   saved candidate pairs, so no encoding and no search.
3. The page opened in headless Chromium (Debian's ``chromium``, driven by Playwright with its
   ``executable_path``; nothing is downloaded): the numbers it *shows* (summary, the what-if row of the
   threshold used, the group count) are compared with the summary JSON; search and pages are used; a
   borderline pair is marked "not a duplicate", the marks CSV is exported through the page's button and
   applied with ``--decisions`` (the pair must end up in two groups).
4. ``docs/report.png`` (a screenshot) and ``benchmarks/results/report-check-100k.json`` (page size, the run's
   and the re-threshold runs' seconds, every check) are written; a table is printed.

    python benchmarks/report_check.py [--size 100000] [--backend onnx-int8] [--chromium /usr/bin/chromium]

**Size at scale** (``--scale SIZE …``): whether the page stays bounded as the input grows, now that every
listed row carries its own text (issue 28). For each size, the same corpus (5 % exact copies) is deduped
once with ``--report`` by ``--model`` (a fast one — the static student — where the default transformer
would take ~13 min of both cores at 1M); the page's bytes, per part (groups, borderline pairs, what-if,
histogram), the rows it lists and the report stage's seconds are recorded, and every listed row's text is
checked against the input file (its own text, by id). The result goes into the report benchmark's JSON
(``--out``, by default ``report-check-100k.json``) as ``report_size_at_scale``, with its own command,
commit, CPU
and load; the rest of that file is kept as it was::

    python benchmarks/report_check.py --scale 100000 1000000 --model models/student-static \
        --threshold 0.7037 --backend torch --quiet
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._record import provenance  # noqa: E402
from benchmarks.dedupe import build_corpus  # noqa: E402
from benchmarks.quora_model import write_result  # noqa: E402
from dupq.dedupe import deduplicate  # noqa: E402
from dupq.dedupe.report import parse_report  # noqa: E402

#: Shown-number checks: the page's summary cell (data-key) -> the summary JSON key.
SHOWN = {
    "rows": "rows",
    "unique texts": "unique_texts",
    "groups": "groups",
    "groups with 2+ rows": "duplicate_groups",
    "rows marked duplicate": "rows_marked_duplicate",
    "similar pairs": "similar_pairs",
}


def corpus(size: int, path: Path, copies: float = 0.05, seed: int = 0) -> dict:
    """Write ``size`` rows (``id``, ``question``) to ``path``; a share of them exact copies."""
    n_copies = int(size * copies)
    texts, _, synthetic = build_corpus(size - n_copies, seed=seed)
    rng = random.Random(seed)
    extra = []
    for t in rng.sample(texts, n_copies):
        extra.append(rng.choice([t.upper(), t.lower(), t.rstrip("?.!") + "?!", "  " + t + " "]))
    rows = texts + extra
    order = list(range(len(rows)))
    rng.shuffle(order)
    df = pd.DataFrame({"id": [f"r{i}" for i in range(len(rows))], "question": [rows[i] for i in order]})
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False)
    return {"rows": len(df), "exact_copy_rows": n_copies, "synthetic_padding": synthetic}


def dedupe(path: Path, work: Path, args: argparse.Namespace, **kw) -> tuple[object, float]:
    t0 = time.perf_counter()
    res = deduplicate(
        path,
        text_column="question",
        id_column="id",
        backend=args.backend,
        workdir=work / "dupq-work",
        show_progress=not args.quiet,
        **kw,
    )
    return res, round(time.perf_counter() - t0, 2)


def browse(page_path: Path, summary: dict, shot: Path, chromium: str, downloads: Path) -> dict:
    """Open the page, read what it shows, use search/pages/marks, export the marks, take the screenshot."""
    from playwright.sync_api import sync_playwright

    data = parse_report(page_path.read_text(encoding="utf-8"))
    checks: dict = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 2300}, accept_downloads=True)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        t0 = time.perf_counter()
        page.goto(page_path.resolve().as_uri())
        page.wait_for_function("window.dupqReady === true", timeout=60_000)
        checks["load_s"] = round(time.perf_counter() - t0, 2)
        shown = {k: page.inner_text(f'b[data-key="{k}"]') for k in SHOWN}
        checks["shown_equals_summary"] = {
            k: int(v.replace(",", "")) == summary[SHOWN[k]] for k, v in shown.items()
        }
        current = page.inner_text("#whatif-table tr.current").split("\t")
        nums = [int(c.replace(",", "")) for c in current[1:5]]
        checks["whatif_current_equals_summary"] = nums == [
            summary["similar_pairs"],
            summary["duplicate_groups"],
            summary["rows_marked_duplicate"],
            _largest(data),
        ]
        pager = page.inner_text("#page")
        checks["pager"] = pager
        checks["pager_counts_inline_groups"] = f"({len(data['groups']):,} groups)" in pager
        checks["groups_drawn_first_page"] = page.locator("#group-list .group").count()
        checks["group_rows_inline"] = sum(g["rows"] for g in data["groups"])
        checks["groups_not_inline"] = data["groups_not_inline"]
        page.screenshot(path=str(shot), full_page=False)
        word = data["groups"][0]["kept"]["text"].split()[0] if data["groups"] else ""
        page.fill("#q", word)
        checks["search_hits"] = page.inner_text("#page")
        page.fill("#q", "")
        page.click("#next")
        checks["page_2"] = page.inner_text("#page")
        page.locator("#border-table tr").nth(1).locator("button", has_text="not a duplicate").click()
        with page.expect_download() as dl:
            page.click("#export")
        marks = downloads / "marks.csv"
        dl.value.save_as(str(marks))
        checks["marks_csv"] = marks.read_text(encoding="utf-8").splitlines()[:2]
        checks["page_errors"] = errors
        browser.close()
    return checks


def _largest(data: dict) -> int:
    return max((g["rows"] for g in data["groups"]), default=1)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=100_000)
    ap.add_argument("--backend", default="onnx-int8")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--work", default=str(REPO / "benchmarks" / ".cache" / "report_check"))
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "report-check-100k.json"))
    ap.add_argument("--screenshot", default=str(REPO / "docs" / "report.png"))
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--scale", type=int, nargs="+", help="Only measure the page's size at these row counts.")
    ap.add_argument("--model", default=None, help="Model of the --scale runs (default: the embedded one).")
    ap.add_argument("--threshold", default="auto", help="Threshold of the --scale runs.")
    args = ap.parse_args(argv)
    if args.scale:
        scale(args, argv)
        return
    work = Path(args.work)
    src = work / f"questions-{args.size}.csv"
    made = corpus(args.size, src)
    report = work / "report.html"
    res, first_s = dedupe(src, work, args, out=work / "deduped.csv", report=report)
    summary = json.loads((work / "deduped.summary.json").read_text())
    t = summary["threshold"]
    rethreshold = {}
    for new_t in (round(t + 0.02, 4), round(t - 0.02, 4)):
        again, secs = dedupe(src, work, args, threshold=new_t, out=work / f"deduped-{new_t}.csv")
        s = again.summary
        rethreshold[str(new_t)] = {
            "wall_s": secs,
            "stages_s": s.seconds,
            "pairs_reused": s.pairs_reused,
            "texts_encoded": s.texts_encoded,
            "duplicate_groups": s.duplicate_groups,
            "rows_marked_duplicate": s.rows_marked_duplicate,
        }
    data = parse_report(report.read_text(encoding="utf-8"))
    predicted = {str(r["threshold"]): r for r in data["whatif"]}
    for key, r in rethreshold.items():
        w = predicted.get(key) or predicted.get(str(round(float(key), 2)))
        r["whatif_predicted"] = (
            {"groups": w["groups"], "rows_merged": w["rows_merged"], "texts_cut_at_k": w["texts_cut_at_k"]}
            if w
            else None
        )
    shot = Path(args.screenshot)
    shot.parent.mkdir(parents=True, exist_ok=True)
    checks = browse(report, summary, shot, args.chromium, work)
    decided, _ = dedupe(src, work, args, threshold=t, out=work / "decided.csv", decisions=work / "marks.csv")
    checks["decisions_applied"] = decided.summary.decisions
    mark = pd.read_csv(work / "marks.csv", dtype=str, keep_default_na=False).iloc[0]
    out_rows = pd.read_csv(work / "decided.csv", dtype=str, keep_default_na=False).set_index("id")
    checks["marked_pair_split"] = bool(
        out_rows.loc[mark["qid1"], "group_id"] != out_rows.loc[mark["qid2"], "group_id"]
    )
    payload = {
        "size": args.size,
        "backend": args.backend,
        "corpus": made,
        "report_bytes": report.stat().st_size,
        "report_mb": round(report.stat().st_size / 1e6, 2),
        "first_run": {
            "wall_s": first_s,
            "stages_s": summary["seconds"],
            "threshold": t,
            "texts_encoded": summary["texts_encoded"],
            "embeddings_reused": summary["embeddings_reused"],
        },
        "summary": {
            k: summary[k]
            for k in (
                "rows",
                "unique_texts",
                "groups",
                "duplicate_groups",
                "rows_marked_duplicate",
                "similar_pairs",
                "search_floor",
            )
        },
        "rethreshold": rethreshold,
        "browser": checks,
        "screenshot": str(shot.relative_to(REPO)) if shot.is_relative_to(REPO) else str(shot),
    }
    _table(payload)
    ok = all(checks["shown_equals_summary"].values()) and checks["whatif_current_equals_summary"]
    ok = ok and not checks["page_errors"] and payload["report_mb"] < 5 and checks["marked_pair_split"]
    # a higher threshold always re-uses the saved pairs; a lower one exactly when the what-if row for it
    # said no text's list was cut at k there (else it searches the stored vectors again)
    ok = ok and all(
        r["texts_encoded"] == 0
        and r["pairs_reused"] == (float(key) > t or (r["whatif_predicted"] or {}).get("texts_cut_at_k") == 0)
        for key, r in rethreshold.items()
    )
    payload["ok"] = ok
    out = write_result(args.out, "report_check.py", argv, payload)
    print(f"\nwritten: {out}, {shot}\n{'OK' if ok else 'CHECK FAILED'}")
    if not ok:
        raise SystemExit(1)


def scale(args: argparse.Namespace, argv: list[str] | None) -> None:
    """``--scale``: the page's size (and what fills it) at each row count; see the module docstring."""
    from dupq.io import atomic_write_text

    load_start = [round(x, 2) for x in os.getloadavg()]
    threshold = args.threshold if args.threshold == "auto" else float(args.threshold)
    runs = []
    for size in args.scale:
        work = Path(args.work) / f"scale-{size}"
        src = work / f"questions-{size}.csv"
        made = corpus(size, src)
        page = work / "report.html"
        t0 = time.perf_counter()
        res = deduplicate(
            src,
            text_column="question",
            id_column="id",
            model=args.model,
            threshold=threshold,
            backend=args.backend,
            out=work / "deduped.csv",
            report=page,
            show_progress=not args.quiet,
        )
        wall = round(time.perf_counter() - t0, 2)
        runs.append(_size_record(size, made, page, src, res.summary, wall))
        del res
    payload = {
        **provenance("report_check.py", argv, load_at_start=load_start),
        "what": (
            "one dupq dedupe --report run per size on the report corpus (the dedupe benchmark's "
            "real-derived texts plus 5 % exact copies with case/punctuation/spacing changed), by the model "
            "named; report_bytes is the HTML file, parts_bytes the JSON of each part of its data block; "
            "listed_* count the rows the page lists (each with its own text, checked against the input by "
            "id: own_text_mismatches)"
        ),
        "model": args.model or "default",
        "backend": args.backend,
        "runs": runs,
    }
    largest = max(r["report_bytes"] for r in runs)
    payload["ok"] = largest < 5e6 and all(r["own_text_mismatches"] == 0 for r in runs)
    out = Path(args.out)
    record = json.loads(out.read_text(encoding="utf-8")) if out.exists() else {}
    record["report_size_at_scale"] = payload
    atomic_write_text(out, json.dumps(record, indent=2) + "\n")
    print(f"\n{'rows':>10}{'page MB':>9}{'groups listed':>15}{'of':>8}{'rows listed':>13}{'exact':>8}"
          f"{'report s':>10}{'peak MB':>9}")  # fmt: skip
    for r in runs:
        print(
            f"{r['rows']:>10,}{r['report_mb']:>9}{r['groups_listed']:>15,}{r['duplicate_groups']:>8,}"
            f"{r['listed_rows']:>13,}{r['listed_exact_copies']:>8,}{r['report_stage_s']:>10}{r['peak_rss_mb']:>9,.0f}"
        )
    print(f"\nwritten: {out} (report_size_at_scale)\n{'OK' if payload['ok'] else 'CHECK FAILED'}")
    if not payload["ok"]:
        raise SystemExit(1)


def _size_record(size: int, made: dict, page: Path, src: Path, summary, wall: float) -> dict:
    """What one --scale run's page holds, and whether each listed row shows the input's text for its id."""
    data = parse_report(page.read_text(encoding="utf-8"))
    shown = []
    for g in data["groups"]:
        if g["kept"]:
            shown.append((g["kept"]["id"], g["kept"]["text"]))
        shown += [(m[0], m[1]) for m in g["members"]]
    shown += [(p["id_a"], p["text_a"]) for p in data["borderline"]] + [
        (p["id_b"], p["text_b"]) for p in data["borderline"]
    ]
    wanted = {i for i, _ in shown}
    text_of = {}
    for chunk in pd.read_csv(src, dtype=str, keep_default_na=False, chunksize=200_000):
        hit = chunk[chunk["id"].isin(wanted)]
        text_of.update(zip(hit["id"], hit["question"], strict=True))
    members = [m for g in data["groups"] for m in g["members"]]
    return {
        "rows": size,
        "corpus": made,
        "report_bytes": page.stat().st_size,
        "report_mb": round(page.stat().st_size / 1e6, 2),
        "parts_bytes": {
            k: len(json.dumps(data[k], ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
            for k in ("summary", "histogram", "whatif", "groups", "borderline")
        },
        "duplicate_groups": summary.duplicate_groups,
        "groups_listed": len(data["groups"]),
        "groups_not_inline": data["groups_not_inline"],
        "largest_group": max((g["rows"] for g in data["groups"]), default=0),
        "listed_rows": sum(len(g["members"]) + (g["kept"] is not None) for g in data["groups"]),
        "listed_exact_copies": sum(m[4] is not None for m in members),
        "members_not_listed": sum(g["more"] for g in data["groups"]),
        "borderline_pairs": len(data["borderline"]),
        "own_text_mismatches": sum(text_of.get(i) != t for i, t in shown),
        "threshold": summary.threshold,
        "unique_texts": summary.unique_texts,
        "exact_duplicate_rows": summary.exact_duplicate_rows,
        "similar_pairs": summary.similar_pairs,
        "rows_marked_duplicate": summary.rows_marked_duplicate,
        "stages_s": summary.seconds,
        "report_stage_s": summary.seconds.get("report"),
        "wall_s": wall,
        "peak_rss_mb": summary.peak_rss_mb,
    }


def _table(p: dict) -> None:
    print(f"\n{'':28}{'value':>14}")
    print(f"{'rows':28}{p['summary']['rows']:>14,}")
    print(f"{'groups with 2+ rows':28}{p['summary']['duplicate_groups']:>14,}")
    print(f"{'report size (MB)':28}{p['report_mb']:>14}")
    print(f"{'first run (s)':28}{p['first_run']['wall_s']:>14}")
    for t, r in p["rethreshold"].items():
        print(
            f"{'re-threshold ' + t + ' (s)':28}{r['wall_s']:>14}"
            f"  (search {r['stages_s'].get('search', 0):.2f}s)"
        )
    b = p["browser"]
    print(f"{'page load in Chromium (s)':28}{b['load_s']:>14}")
    print(f"{'shown numbers = summary':28}{str(all(b['shown_equals_summary'].values())):>14}")
    print(f"{'what-if row = summary':28}{str(b['whatif_current_equals_summary']):>14}")


if __name__ == "__main__":
    main()
