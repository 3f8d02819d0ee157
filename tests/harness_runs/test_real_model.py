"""A small case file through closed-book, oracle and rag on the real packaged SmolLM2 and a real store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ragtune.harness.runs import execute_run, load_results, summarize_run
from tests.harness_runs.conftest import CASES, write_cases


@pytest.mark.slow
def test_real_model_three_arms(handbook: Any, generator: Any, tmp_path: Path) -> None:
    handbook.generator = generator
    cases = write_cases(tmp_path / "cases.jsonl", [CASES[0], CASES[2]])
    execute_run(handbook, cases, ["closed-book", "oracle", "rag"], name="real")
    results = load_results(handbook.store, "real")
    for arm in ("closed-book", "oracle", "rag"):
        assert [r["case_id"] for r in results[arm]] == ["rate", "hours"]
        assert all(r["answer"] and r["error"] is None and r["tokens_out"] > 0 for r in results[arm])
        assert all(r["cpu_s"] > 0 and r["cost_usd"] > 0 for r in results[arm])  # priced from CPU seconds
    summary = summarize_run(handbook, "real")
    for s in summary["arms"].values():
        assert s["n"] == 2 and s["p95_ms"] > 0 and s["accuracy"]["ci95"] is not None
    # with the right document in its prompt the small model reads the figure off it
    assert summary["arms"]["oracle"]["accuracy"]["value"] >= summary["arms"]["closed-book"]["accuracy"]["value"]
