"""ragtune compare and ragtune check, in process and through the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ragtune.errors import HarnessError
from ragtune.harness.compare import compare_arms
from ragtune.harness.runs import execute_run
from tests.harness_runs.conftest import write_cases
from tests.harness_runs.fakes import SCRIPT, Scripted
from tests.harness_runs.test_kill_resume import CASES, ragtune, small_project  # noqa: F401  (fixture)


def test_error_migration_shows_errors_moving_elsewhere(handbook: Any, cases_file: Path) -> None:
    handbook.generator = Scripted(SCRIPT)
    execute_run(handbook, cases_file, ["closed-book"], name="a")
    # a "fix" that gets the hours right but says the stale rate limit
    handbook.generator = Scripted(
        {"rate limit": "It is 300 requests per minute.", "tickets": "From 8:00 to 18:00.", "capital": "Paris."}
    )
    execute_run(handbook, cases_file, ["closed-book"], name="b")
    rep = compare_arms(handbook.store, ("a", "closed-book"), ("b", "closed-book"), resamples=500)
    assert rep["cases"] == 5
    moved = {m["case_id"]: (m["from"], m["to"]) for m in rep["moved"]}
    assert moved == {"rate": ("correct", "stale"), "hours": ("wrong", "correct"), "fmt": ("format", "correct")}
    assert rep["migration"]["correct"]["stale"] == 1 and rep["migration"]["wrong"]["wrong"] == 1
    acc = rep["metrics"]["accuracy"]
    # accuracy did not move at all: only the matrix shows one error traded for a stale answer
    assert (acc["a"], acc["b"], acc["n"], acc["delta"]) == (0.6, 0.6, 5, 0.0)
    assert acc["ci95"][0] < 0 < acc["ci95"][1]
    assert rep["metrics"]["format_ok"]["delta"] == 1.0
    with pytest.raises(HarnessError, match="run 'a' has no arm 'rag'"):
        compare_arms(handbook.store, ("a", "rag"), ("b", "closed-book"))


def test_check_gates_and_compare_cli(small_project: Path, tmp_path: Path) -> None:  # noqa: F811
    cases = write_cases(tmp_path / "cases.jsonl", CASES)
    assert ragtune(small_project, "eval", str(cases), "--arms", "closed-book,prompts", "--name", "g").returncode == 0
    ok = ragtune(small_project, "check", "g", "--min", "accuracy=0.9", "--max", "p95_ms=1500")
    assert ok.returncode == 0, ok.stderr
    bad = ragtune(small_project, "check", "g", "--min", "accuracy=1.1", "--max", "cost_per_1k=-1", "--arm", "prompts")
    assert bad.returncode == 1
    assert bad.stderr.splitlines()[0] == "prompts: accuracy 1 < 1.1 (min)"
    assert bad.stderr.splitlines()[1].startswith("prompts: cost_per_1k ")
    typo = ragtune(small_project, "check", "g", "--min", "acuracy=1")
    assert typo.returncode == 1 and typo.stderr.startswith("error: --min 'acuracy=1': give METRIC=VALUE")
    none = ragtune(small_project, "check", "g")
    assert none.returncode == 1 and "nothing to check" in none.stderr
    cmp = ragtune(small_project, "compare", "g", "--arms", "closed-book,prompts", "--json")
    assert cmp.returncode == 0, cmp.stderr
    (rep,) = json.loads(cmp.stdout)["comparisons"]
    assert rep["metrics"]["accuracy"]["delta"] == 0 and rep["migration"]["correct"]["correct"] == 13
    shown = ragtune(small_project, "runs", "show", "g")
    assert shown.returncode == 0 and "accuracy 100.0%" in shown.stdout
    listed = ragtune(small_project, "runs", "list", "--json")
    assert [r["run"] for r in json.loads(listed.stdout)["runs"]] == ["g"]
