"""Benchmark results carry their provenance, and the mining-only corpus pads with realistic duplicates.

Every script in benchmarks/ writes its JSON through benchmarks/_record.py (command line, git commit, CPU
model and avx/amx flags, load average); a script that writes JSON any other way fails here."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from benchmarks._record import command_line, write_result

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
RESULTS = BENCH / "results"
#: A result is named for what it measured (benchmark, size, configuration), in lower-case words joined by
#: hyphens: ``dedupe-1m-openvino-int8.json``. One file per benchmark and configuration; an older run of the
#: same configuration is replaced, not kept beside it (git history keeps it).
RESULT_NAME = re.compile(r"[a-z0-9]+(?:-[a-z0-9.]+)*\.json")
#: Words that narrate history rather than name a measurement (a whole word of the name, or a run/version
#: number such as ``s6`` or ``v2``, or a date).
HISTORY_WORDS = {
    "session",
    "before",
    "after",
    "fix",
    "fixes",
    "rerun",
    "repeat",
    "retry",
    "old",
    "new",
    "latest",
    "final",
    "fast",
    "slow",
    "eager",
    "bulk",
    "idle",
    "probes",
    "again",
    "tmp",
    "backup",
    "copy",
    "runs",
}


def history_marker(stem: str) -> str | None:
    """The first word of a result's name that narrates history, else ``None``."""
    for word in re.split(r"[-_.]", stem):
        if word in HISTORY_WORDS or re.fullmatch(r"(?:session|s|v|run)\d+|\d{6,8}", word):
            return word
    return None


def test_every_benchmark_writes_through_the_recorder():
    for script in sorted(BENCH.glob("*.py")):
        if script.name.startswith("_"):
            continue
        text = script.read_text()
        assert not re.search(r"\.write_text\(\s*json\.dumps", text), f"{script.name} writes JSON by hand"
        if "json.dump" in text or "atomic_write" in text:
            assert "benchmarks._record" in text, f"{script.name} writes results without their provenance"


def _provenance_gaps(record: object) -> list[str]:
    """What a result lacks of command, commit and CPU model (top level, as write_result writes it; or, for
    a file that merges labelled runs, e.g. server-load.json, in every run)."""
    if not isinstance(record, dict):
        return ["not a JSON object"]
    machine = record.get("machine")
    if isinstance(machine, dict) and record.get("command"):
        return [f"machine.{k}" for k in ("commit", "cpu") if not machine.get(k)]
    runs = record.get("runs")
    if isinstance(runs, dict) and runs and all(isinstance(r, dict) for r in runs.values()):
        return [
            f"runs/{label}/{k}"
            for label, run in runs.items()
            for k in ("command", "served_git_commit", "cpu_model")
            if not run.get(k)
        ]
    return [k for k in ("command", "machine") if not record.get(k)]


def test_every_result_names_what_it_measured_and_carries_its_provenance():
    problems = []
    for path in sorted(RESULTS.glob("*.json")):
        if not RESULT_NAME.fullmatch(path.name):
            problems.append(f"{path.name}: not lower-case-words-with-hyphens.json")
        marker = history_marker(path.stem)
        if marker:
            problems.append(f"{path.name}: names history ({marker!r}), not what was measured")
        gaps = _provenance_gaps(json.loads(path.read_text(encoding="utf-8")))
        if gaps:
            problems.append(f"{path.name}: lacks {', '.join(gaps)}")
    assert len(list(RESULTS.glob("*.json"))) >= 10
    assert not problems, "\n".join(problems)


def test_history_markers_are_caught():
    for name in (
        "dedupe_1m_session6.json",
        "dedupe-1m-before-memory-fixes.json",
        "encode-idle.json",
        "x-rerun.json",
        "dedupe-1m-static-t0704-s6.json",
    ):
        assert history_marker(Path(name).stem) or not RESULT_NAME.fullmatch(name), name
    for name in (
        "dedupe-1m-openvino-int8.json",
        "dedupe-1m-static-t0704.json",
        "calibrate-mqp-onnx-int8.json",
        "ray-search-100k-hnsw-assignments.json",
        "default-verifier.json",
    ):
        assert RESULT_NAME.fullmatch(name) and not history_marker(Path(name).stem), name


def test_write_result_records_command_commit_cpu_and_load(tmp_path):
    out = write_result(
        tmp_path / "r.json", "encode.py", ["--n", "200", "--model", "my model"], {"x": np.float32(1.5)}
    )
    record = json.loads(out.read_text())
    assert record["command"] == "python benchmarks/encode.py --n 200 --model 'my model'"
    m = record["machine"]
    assert re.fullmatch(r"[0-9a-f]{40}", m["commit"] or "0" * 40)
    assert m["cpu"] and isinstance(m["flags"], list) and all(f.startswith(("avx", "amx")) for f in m["flags"])
    assert len(m["load_avg"]) == 3 and isinstance(m["dirty"], (bool, type(None)))
    assert record["x"] == 1.5
    assert command_line("dedupe.py", []) == "python benchmarks/dedupe.py"


def test_a_scripts_own_machine_entry_never_replaces_the_provenance(tmp_path):
    for own in ("Linux-6.18-x86_64", {"platform": "Linux", "cpus": 2, "commit": None}):
        record = json.loads(
            write_result(tmp_path / "r.json", "data.py", [], {"machine": own, "x": 1}).read_text()
        )
        m = record["machine"]
        assert m["cpu"] and "flags" in m and "load_avg" in m and "commit" in m
        assert m["commit"] == write_result.__globals__["machine"]()["commit"]
        assert record["command"] == "python benchmarks/data.py" and record["x"] == 1


def test_mining_only_padding_keeps_the_real_duplicate_rate():
    from benchmarks.dedupe import duplicate_rate, padded_vectors
    from dupq.vectors import l2_normalize

    rng = np.random.default_rng(0)
    dim, n = 64, 3000
    real = l2_normalize(rng.normal(size=(n, dim)).astype(np.float32))
    # a third of the real rows come as near-duplicate pairs (cosine ~0.9): a duplicate rate of ~0.33
    k = n // 6
    real[n - k :] = l2_normalize(
        real[:k] + rng.normal(size=(k, dim)).astype(np.float32) * (0.48 / np.sqrt(dim))
    )
    rate = duplicate_rate(real, 0.75, rng, sample=3000)
    assert 0.3 < rate < 0.36
    vecs, padding = padded_vectors(real, 4 * n, 0.75, rng)
    assert vecs.shape == (4 * n, dim) and np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-5)
    assert np.array_equal(vecs[:n], real)
    assert abs(padding["real_duplicate_rate"] - rate) < 0.03  # its own sample of 2,000 rows
    assert abs(padding["padding_duplicate_rate"] - rate) < 0.05, padding  # not singletons only
