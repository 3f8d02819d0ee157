"""Query embedding + exact dense scan at 100,000 vectors, with numpy's BLAS threads unlimited vs limited to one.

    .venv/bin/python bench/query_threads.py

Why: on 2 cores, BLAS threads left spinning after a scan slow the next MiniLM query embedding (ragtune limits BLAS
to one thread when it loads the model). Each setting runs in its own process, side by side in one invocation.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

CHILD = r"""
import json, os, sys, time
import numpy as np
os.environ["HF_HUB_OFFLINE"] = "1"
from ragtune.index.embedder import SentenceTransformerEmbedder, minilm_path
emb = SentenceTransformerEmbedder(minilm_path())
emb.encode(["warm up"])  # loads the model, which limits BLAS to one thread
if sys.argv[1] == "unlimited":
    from threadpoolctl import threadpool_limits
    threadpool_limits(os.cpu_count(), user_api="blas")  # undo the limit the model load set
vectors = np.random.default_rng(0).standard_normal((100_000, 384)).astype(np.float32)
embed, scan = [], []
for i in range(200):
    t0 = time.perf_counter(); q = emb.encode([f"question {i} about the Pro plan's rate limit"])[0]
    t1 = time.perf_counter(); vectors @ q; t2 = time.perf_counter()
    embed.append(t1 - t0); scan.append(t2 - t1)
p = lambda xs, q: round(float(np.percentile(xs, q)) * 1000, 2)
print(json.dumps({"embed_p50_ms": p(embed, 50), "embed_p95_ms": p(embed, 95), "scan_p50_ms": p(scan, 50),
                  "total_p50_ms": p([a + b for a, b in zip(embed, scan)], 50)}))
"""

if __name__ == "__main__":
    results = {}
    for setting in ("unlimited", "one-thread"):
        out = subprocess.run(
            [sys.executable, "-c", CHILD, setting],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
        )
        results[setting] = json.loads(out.stdout.strip().splitlines()[-1])
    results["ratio_total_p50"] = round(results["unlimited"]["total_p50_ms"] / results["one-thread"]["total_p50_ms"], 2)
    print(json.dumps(results, indent=2))
