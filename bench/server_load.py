"""`POST /search` under load: a real `ragtune serve` in one process, clients in another.

    .venv/bin/python bench/server_load.py [--requests 400] [--concurrency 1,4] [--json]

Builds the bundled example (the four handbook weeks, as `ragtune demo` ingests them) in a temporary folder, starts
`ragtune serve` on a free loopback port with a token, waits until it has loaded its models, then sends the
example's questions from this process: each level of concurrency is a number of threads, each with its own
keep-alive connection, sharing one queue of requests. Latency is per request, as the client sees it (HTTP, auth,
JSON and the search itself); the server's own search time is reported beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from ragtune.demo import example_dir, run_demo


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def questions() -> list[str]:
    timeline = json.loads((example_dir() / "timeline.json").read_text(encoding="utf-8"))
    return [fact["question"] for fact in timeline["facts"]]


def start_server(project: Path, token: str, log: Any) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "RAGTUNE_API_TOKEN": token, "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "ragtune.cli.main", "serve", "--project", str(project)]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"ragtune serve exited with {proc.returncode}; see {log.name}")
        try:
            if httpx.get(f"{url}/health", timeout=2).json().get("models_loaded"):
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("ragtune serve did not start in 300 s")


def drive(url: str, token: str, qs: list[str], n: int, concurrency: int) -> dict[str, Any]:
    """Send ``n`` searches from ``concurrency`` threads; latencies in ms, as the client measured them."""
    todo: queue.Queue[str] = queue.Queue()
    for i in range(n):
        todo.put(qs[i % len(qs)])
    latencies: list[float] = []
    server_ms: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def client() -> None:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as c:
            while True:
                try:
                    q = todo.get_nowait()
                except queue.Empty:
                    return
                t0 = time.perf_counter()
                reply = c.post("/search", json={"query": q, "k": 5})
                ms = (time.perf_counter() - t0) * 1000
                with lock:
                    if reply.status_code == 200:
                        latencies.append(ms)
                        server_ms.append(reply.json()["timings_ms"]["total"])
                    else:
                        errors.append(f"{reply.status_code} {reply.text[:200]}")

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started

    def pct(xs: list[float], q: float) -> float:
        return round(float(np.percentile(xs, q)), 2) if xs else float("nan")

    return {
        "concurrency": concurrency,
        "requests": n,
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "seconds": round(wall, 2),
        "requests_per_s": round(len(latencies) / wall, 1),
        "p50_ms": pct(latencies, 50),
        "p95_ms": pct(latencies, 95),
        "p99_ms": pct(latencies, 99),
        "server_search_p50_ms": pct(server_ms, 50),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400, help="Measured requests per concurrency level.")
    parser.add_argument("--concurrency", default="1,4", help="Comma-separated numbers of concurrent clients.")
    parser.add_argument("--warmup", type=int, default=20, help="Unmeasured requests sent first.")
    parser.add_argument("--json", action="store_true", help="Print the results as JSON.")
    args = parser.parse_args()
    token = secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory(prefix="ragtune-load-") as tmp:
        t0 = time.perf_counter()
        built = run_demo(Path(tmp) / "handbook")
        build_s = time.perf_counter() - t0
        log = open(Path(tmp) / "serve.log", "w+")  # noqa: SIM115  (the server writes to it until the end)
        proc, url = start_server(Path(built["project"]), token, log)
        try:
            health = httpx.get(f"{url}/health").json()
            qs = questions()
            drive(url, token, qs, args.warmup, 1)
            runs = [drive(url, token, qs, args.requests, int(c)) for c in args.concurrency.split(",")]
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
            log.close()
    result = {
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}",
        "corpus": {"documents": health["documents"], "chunks": health["chunks"], "build_seconds": round(build_s, 1)},
        "questions": len(qs),
        "runs": runs,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{result['machine']}; {health['documents']} documents, {health['chunks']} chunks; {len(qs)} questions")
    print("clients  requests  errors  req/s   p50 ms  p95 ms  p99 ms  server search p50 ms")
    for r in runs:
        print(
            f"{r['concurrency']:>7}  {r['requests']:>8}  {r['errors']:>6}  {r['requests_per_s']:>5}  "
            f"{r['p50_ms']:>6}  {r['p95_ms']:>6}  {r['p99_ms']:>6}  {r['server_search_p50_ms']:>20}"
        )


if __name__ == "__main__":
    main()
