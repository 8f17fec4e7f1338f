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


def test_every_benchmark_writes_through_the_recorder():
    for script in sorted(BENCH.glob("*.py")):
        if script.name.startswith("_"):
            continue
        text = script.read_text()
        assert not re.search(r"\.write_text\(\s*json\.dumps", text), f"{script.name} writes JSON by hand"
        if "json.dump" in text or "atomic_write" in text:
            assert "benchmarks._record" in text, f"{script.name} writes results without their provenance"


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
