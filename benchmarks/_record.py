"""Provenance for every benchmark result: what was run, on which commit, on which CPU, under what load.

A figure in the README is only as good as the run behind it. Every script in ``benchmarks/`` writes its
JSON through :func:`write_result`, which puts the exact command line (as a shell would re-run it), the git
commit (and whether the tree had uncommitted changes), the CPU model with its SIMD flags (avx*/amx*: what
decides int8 and fp32 speed) and the load average at the start and the end next to the numbers —
so a result can be traced and re-run, and a figure measured on a loaded machine says so.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def command_line(script: str, argv: list[str] | None = None) -> str:
    """``python benchmarks/<script> <args>``, quoted as a shell would need it (``argv``: sys.argv[1:])."""
    args = sys.argv[1:] if argv is None else argv
    return shlex.join(["python", f"benchmarks/{script}", *map(str, args)])


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, check=False)
    except OSError:
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def cpu() -> dict[str, Any]:
    """The CPU model (lscpu, else /proc/cpuinfo) and its avx/amx flags."""
    info: dict[str, Any] = {"model": platform.processor() or "unknown", "flags": []}
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        lscpu = ""
    if not lscpu:
        try:
            lscpu = Path("/proc/cpuinfo").read_text().replace("model name", "Model name")
        except OSError:
            lscpu = ""
    for line in lscpu.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "Model name" and info["model"] in ("unknown", ""):
            info["model"] = value.strip()
        elif key in ("Flags", "flags") and not info["flags"]:
            info["flags"] = sorted(f for f in value.split() if f.startswith(("avx", "amx")))
    return info


def load_average() -> list[float] | None:
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def _commit_now() -> tuple[str | None, bool | None]:
    status = _git("status", "--porcelain", "--untracked-files=no")
    return _git("rev-parse", "HEAD"), (bool(status) if status is not None else None)


#: The commit when the script started (this module is imported first): what a long run measures, even
#: if HEAD moves while it runs (a 1M dedupe takes most of an hour).
_AT_START = _commit_now()


def machine() -> dict[str, Any]:
    """CPU model and flags, core count, platform, load average, and the git commit measured (the one
    checked out when the script started; ``commit_at_end`` as well when HEAD moved during the run)."""
    c = cpu()
    commit, dirty = _AT_START
    out = {
        "cpu": c["model"],
        "flags": c["flags"],
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_avg": load_average(),
        "commit": commit,
        "dirty": dirty,
    }
    end = _commit_now()
    if end != _AT_START:
        out["commit_at_end"], out["dirty_at_end"] = end
    return out


def provenance(
    script: str, argv: list[str] | None = None, *, load_at_start: list[float] | None = None
) -> dict:
    """The fields every result JSON starts with: ``command``, ``machine`` (load at the end as well as at
    the start when ``load_at_start`` is given)."""
    m = machine()
    if load_at_start is not None:
        m["load_avg_start"], m["load_avg_end"] = load_at_start, m["load_avg"]
    return {"command": command_line(script, argv), "machine": m}


def _plain(value: Any) -> Any:
    """numpy scalars and arrays as Python numbers and lists; anything else as its string."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def write_result(
    path: str | Path,
    script: str,
    argv: list[str] | None,
    payload: dict,
    *,
    load_at_start: list[float] | None = None,
) -> Path:
    """Write a benchmark's JSON with its provenance first (atomically: a killed run leaves the old file)."""
    from dupq.io import atomic_write_text

    prov = provenance(script, argv, load_at_start=load_at_start)
    # A script's own "machine" entry (a platform string, or a dict of its own fields) never replaces the
    # provenance: its fields are kept beside commit, CPU and load, which win.
    own = payload.get("machine")
    record = {**prov, **{k: v for k, v in payload.items() if k != "machine"}}
    if isinstance(own, dict):
        record["machine"] = {**own, **prov["machine"]}
    elif own is not None:
        record["machine"] = {**prov["machine"], "reported_by_script": own}
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(record, indent=2, default=_plain) + "\n")
    return out
