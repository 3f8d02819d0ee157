"""bench/harness_overhead.py runs and stays well inside its budget (1,000 cases x 3 arms < 10 s) when scaled down."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_harness_overhead_bench_small() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    done = subprocess.run(
        [sys.executable, "bench/harness_overhead.py", "--cases", "100"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    report = json.loads(done.stdout)
    assert report["results"] == 300 and report["errors"] == {"closed-book": 0, "prompts": 0, "oracle": 0}
    assert report["wall_s"] < 10 * 300 / 3000 * 3  # the 10 s target pro rata, with room for a busy CI machine
