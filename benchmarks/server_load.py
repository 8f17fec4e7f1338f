"""Load on ``dupq serve``: requests/s and latency (p50/p99) at 20 and 200 concurrent clients.

Starts a real ``dupq serve`` on 127.0.0.1 (loopback only) over a store of ``--stored`` generated
questions encoded with the real default model, then, per concurrency level, sends a bounded number of
requests (``--requests``, stopped after ``--max-seconds``) from that many concurrent clients: a mix of
single-question ``POST /match`` and, with probability ``--write-fraction``, a single-question
``POST /questions`` (saved before it is answered: ``--persist write``). Every response counts: a 503
(the server's bound on requests in flight) is a fast refusal, reported apart from the 2xx; the client
that got it waits ``Retry-After`` seconds before its next request, as a well-behaved client would.

    python benchmarks/server_load.py --label after                        # this checkout's dupq
    python benchmarks/server_load.py --label before --code /tmp/dupq-main # another checkout's dupq

The client is aiohttp (the ``ray`` extra pulls it in); httpx's async client alone added seconds of p99
at 200 connections on a 2-core machine. ``--trivial`` serves a do-nothing ASGI app instead of dupq,
which measures what the client and uvicorn cost by themselves (the floor under every figure):

    python benchmarks/server_load.py --label client-floor --trivial

``--code`` is the directory holding the ``dupq`` package to serve (its own CLI builds the store and
serves it), so a before/after pair runs the same load against two versions. Prints a table and
merges the run, under its label, into ``benchmarks/results/server-load.json`` with the command line,
the served code's git commit, the CPU model (``lscpu``) and the load average before and after.
The client runs on the same machine as the server, so both share its CPUs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._record import provenance  # noqa: E402

TOKEN = "server-load-benchmark-token"
TOPICS = [
    "learn Python",
    "lose weight",
    "cook rice",
    "get a visa for Japan",
    "improve my English",
    "fix a flat tyre",
    "start a business",
    "train a puppy",
    "grow tomatoes",
    "invest in stocks",
    "write a resume",
    "sleep better",
    "learn the guitar",
    "save money",
    "bake bread",
    "speak in public",
    "run a marathon",
    "paint a room",
]
FORMS = [
    "How do I {t}?",
    "What is the best way to {t}?",
    "How can I {t} quickly?",
    "Any tips to {t} at home?",
    "What should a beginner know to {t}?",
    "Is it hard to {t} on a budget?",
    "Why is it so hard to {t}?",
]


TRIVIAL_APP = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b'{"results": []}'})
"""


def questions(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        t = rng.choice(TOPICS)
        out.append(rng.choice(FORMS).format(t=t) + f" (case {seed}-{i})")
    return out


def cpu_model() -> str:
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or "unknown"


def git_commit(code: Path) -> str | None:
    r = subprocess.run(["git", "-C", str(code), "rev-parse", "HEAD"], capture_output=True, text=True)
    return r.stdout.strip() or None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))] * 1e3, 1)


async def load(
    base: str, clients: int, total: int, max_seconds: float, write_fraction: float, seed: int
) -> dict:
    """``clients`` concurrent clients (aiohttp: a far lighter client than httpx's async one, which on
    this 2-core machine alone added seconds of p99 at 200 connections), ``total`` requests at most."""
    import aiohttp

    rng = random.Random(seed)
    queries = questions(500, seed=seed + 1)
    sent = 0
    records: list[tuple[str, int, float]] = []  # (kind, status, seconds)
    deadline = time.monotonic() + max_seconds
    auth = {"Authorization": f"Bearer {TOKEN}"}

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal sent
        while sent < total and time.monotonic() < deadline:
            sent += 1
            if rng.random() < write_fraction:
                kind, path, headers = "write", "/questions", auth
                body = {"questions": [{"text": f"new question {seed}-{sent}?"}]}
            else:
                kind, path, headers = "match", "/match", {}
                body = {"questions": [rng.choice(queries)], "k": 5}
            retry_after = 1.0
            t = time.perf_counter()
            try:
                async with session.post(base + path, json=body, headers=headers) as r:
                    await r.read()
                    status = r.status
                    retry_after = float(r.headers.get("retry-after", "1"))
            except (aiohttp.ClientError, asyncio.TimeoutError):
                status = 0  # transport error / timeout
            records.append((kind, status, time.perf_counter() - t))
            if status == 503:  # a well-behaved client waits as told before its next request
                await asyncio.sleep(retry_after)

    connector = aiohttp.TCPConnector(limit=clients + 8)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        t0 = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(clients)))
        elapsed = time.perf_counter() - t0
    ok = [s for _, st, s in records if 200 <= st < 300]
    busy = [s for _, st, s in records if st == 503]
    writes_ok = [s for k, st, s in records if k == "write" and 200 <= st < 300]
    return {
        "clients": clients,
        "requests": len(records),
        "ok": len(ok),
        "rejected_503": len(busy),
        "other_errors": len(records) - len(ok) - len(busy),
        "status_counts": {
            str(st): sum(1 for _, x, _ in records if x == st) for st in sorted({x for _, x, _ in records})
        },
        "elapsed_s": round(elapsed, 2),
        "requests_per_s": round(len(records) / elapsed, 1),
        "ok_per_s": round(len(ok) / elapsed, 1),
        "p50_ms": pct([s for _, _, s in records], 0.50),
        "p99_ms": pct([s for _, _, s in records], 0.99),
        "ok_p50_ms": pct(ok, 0.50),
        "ok_p99_ms": pct(ok, 0.99),
        "rejected_p99_ms": pct(busy, 0.99),
        "writes_ok": len(writes_ok),
        "write_p50_ms": pct(writes_ok, 0.50),
        "write_p99_ms": pct(writes_ok, 0.99),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--label", required=True, help="name of this run in the JSON (e.g. before, after)")
    ap.add_argument("--code", default=str(REPO), help="directory holding the dupq package to serve")
    ap.add_argument("--code-commit", default=None, help="git commit of --code when it is not a checkout")
    ap.add_argument("--model", default=None, help="model directory [default: the embedded MiniLM]")
    ap.add_argument("--stored", type=int, default=2000, help="questions in the store")
    ap.add_argument("--clients", type=int, nargs="+", default=[20, 200])
    ap.add_argument("--requests", type=int, default=600, help="requests per concurrency level (at most)")
    ap.add_argument("--max-seconds", type=float, default=90, help="stop a level after this long")
    ap.add_argument("--write-fraction", type=float, default=0.1)
    ap.add_argument("--serve-args", default="", help="extra arguments for dupq serve (quoted)")
    ap.add_argument("--trivial", action="store_true", help="serve a do-nothing ASGI app (client floor)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "server-load.json"))
    args = ap.parse_args(argv)

    code = Path(args.code).resolve()
    env = {**os.environ, "PYTHONPATH": str(code), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env["DUPQ_TOKEN"] = TOKEN  # versions with auth require it for writes; older ones ignore it
    cli = [sys.executable, "-m", "dupq.cli"]
    model = ["--model", args.model] if args.model else []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="dupq-server-load-") as tmp:
        table = Path(tmp) / "questions.csv"
        import csv

        with open(table, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["id", "question"])
            w.writerows(enumerate(questions(args.stored, seed=0)))
        served = subprocess.run(
            [sys.executable, "-c", "import dupq; print(dupq.__file__)"],
            env=env,
            cwd=tmp,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        print(f"serving {served}", flush=True)
        store = Path(tmp) / "store"
        build = [
            *cli,
            "index",
            "build",
            str(table),
            "-t",
            "question",
            "--id-column",
            "id",
            "--out",
            str(store),
        ]
        serve_cmd = [*cli, "serve", "--store", str(store), "--host", "127.0.0.1", "--port", "PORT", *model]
        serve_cmd += shlex.split(args.serve_args)
        if args.trivial:
            (Path(tmp) / "trivial_app.py").write_text(TRIVIAL_APP)
            served = "trivial_app (no dupq)"
            serve_cmd = [sys.executable, "-m", "uvicorn", "trivial_app:app", "--port", "PORT"]
        else:
            t = time.perf_counter()
            # cwd=tmp: `python -m` puts the working directory first on sys.path, not --code
            subprocess.run([*build, *model], env=env, check=True, capture_output=True, cwd=tmp)
            print(f"store of {args.stored} built in {time.perf_counter() - t:.0f} s", flush=True)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        serve_cmd = [str(port) if a == "PORT" else a for a in serve_cmd]
        log = open(Path(tmp) / "server.log", "w")  # noqa: SIM115 (closed below)
        server = subprocess.Popen(serve_cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp)
        try:
            import httpx

            deadline = time.monotonic() + 180
            while True:
                if server.poll() is not None:
                    raise SystemExit(f"server exited: {(Path(tmp) / 'server.log').read_text()[-2000:]}")
                try:
                    if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("server did not come up")
                time.sleep(0.3)
            for q in questions(10, seed=99):  # warm-up
                httpx.post(f"{base}/match", json={"questions": [q]}, timeout=60)
            levels = []
            for n in args.clients:
                res = asyncio.run(load(base, n, args.requests, args.max_seconds, args.write_fraction, seed=n))
                levels.append(res)
                print(f"  {n} clients: {res['requests']} requests, {res['requests_per_s']} req/s", flush=True)
        finally:
            server.kill()
            server.wait()
            log.close()
    run = {
        "label": args.label,
        **provenance("server_load.py", argv, load_at_start=[round(x, 2) for x in load_before]),
        "served_code": str(code),
        "served_dupq_module": served,
        "served_git_commit": args.code_commit or git_commit(code),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpu_model": cpu_model(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_avg_1m_before": round(load_before[0], 2),
        "load_avg_1m_after": round(os.getloadavg()[0], 2),
        "stored": 0 if args.trivial else args.stored,
        "trivial_app": args.trivial,
        "model": args.model or "embedded all-MiniLM-L6-v2",
        "write_fraction": args.write_fraction,
        "requests_per_level": args.requests,
        "max_seconds_per_level": args.max_seconds,
        "serve_args": args.serve_args,
        "levels": levels,
    }
    header = (
        f"{'label':<8} {'clients':>7} {'reqs':>5} {'ok':>5} {'503':>5} {'err':>4} {'req/s':>7} {'ok/s':>6} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'ok p99':>8} {'write p99':>9}"
    )
    print(header)
    for r in levels:
        print(
            f"{args.label:<8} {r['clients']:>7} {r['requests']:>5} {r['ok']:>5} {r['rejected_503']:>5} "
            f"{r['other_errors']:>4} {r['requests_per_s']:>7} {r['ok_per_s']:>6} {r['p50_ms']!s:>8} "
            f"{r['p99_ms']!s:>8} {r['ok_p99_ms']!s:>8} {r['write_p99_ms']!s:>9}"
        )
    out = Path(args.out)
    data = json.loads(out.read_text()) if out.exists() else {"benchmark": "server_load", "runs": {}}
    data["runs"][args.label] = run
    out.parent.mkdir(parents=True, exist_ok=True)
    from dupq.io import atomic_write_text

    atomic_write_text(out, json.dumps(data, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
