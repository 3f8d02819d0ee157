"""A run killed mid-way (the process dies with no cleanup) and started again finishes with every case once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ragtune.project import Project, init_project
from tests.harness_runs.conftest import write_cases
from tests.harness_runs.fakes import DIE_AFTER

REPO = Path(__file__).resolve().parents[2]
CASES = [{"id": f"c{i:02d}", "question": f"What is the capital number {i}?", "answers": ["Paris"]} for i in range(13)]


def ragtune(project: Path, *args: str, die_after: int = 0) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}", DIE_AFTER: str(die_after)}
    return subprocess.run(
        [sys.executable, "-m", "tests.harness_runs.fakes", "--project", str(project), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def small_project(tmp_path: Path) -> Path:
    root, _ = init_project(tmp_path / "proj")
    config = root / "ragtune.toml"
    text = config.read_text()
    head, sep, tail = text.partition("[eval]")
    config.write_text(head + sep + tail.replace("batch_size = 16", "batch_size = 3", 1))
    return root


def _rows(root: Path, run: str) -> list[tuple[str, str, str]]:
    project = Project.open(root)
    try:
        rows = project.store.db.execute(
            "SELECT arm, case_id, answer FROM run_results WHERE run = ? ORDER BY arm, case_id", (run,)
        ).fetchall()
        return [tuple(r) for r in rows]
    finally:
        project.close()


@pytest.mark.parametrize("die_after", [1, 7, 14, 30])
def test_killed_run_resumes_with_no_case_missing_or_duplicated(small_project: Path, tmp_path: Path, die_after: int) -> None:  # fmt: skip
    cases = write_cases(tmp_path / "cases.jsonl", CASES)
    args = ("eval", str(cases), "--arms", "closed-book,prompts", "--name", "k", "--json")
    killed = ragtune(small_project, *args, die_after=die_after)
    assert killed.returncode == 137, killed.stderr
    partial = _rows(small_project, "k")
    assert len(partial) < 2 * len(CASES)
    check = ragtune(small_project, "check", "k", "--min", "n=1")
    assert check.returncode == 1 and "is unfinished" in check.stderr

    resumed = ragtune(small_project, *args)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["finished"] and {a: s["cases"] for a, s in summary["arms"].items()} == {
        "closed-book": 13,
        "prompts": 13,
    }
    rows = _rows(small_project, "k")
    assert len(rows) == len(set(rows)) == 2 * len(CASES)
    assert set(partial) <= set(rows)  # what was stored before the kill is kept, not redone

    clean = ragtune(small_project, *args[:4], "--name", "clean")
    assert clean.returncode == 0, clean.stderr
    assert [r[1:] for r in _rows(small_project, "clean")] == [r[1:] for r in rows]  # deterministic


def test_resume_with_other_arms_is_refused_in_one_line(small_project: Path, tmp_path: Path) -> None:
    cases = write_cases(tmp_path / "cases.jsonl", CASES)
    assert ragtune(small_project, "eval", str(cases), "--arms", "closed-book", "--name", "x", die_after=4).returncode == 137  # fmt: skip
    again = ragtune(small_project, "eval", str(cases), "--arms", "closed-book,prompts", "--name", "x")
    assert again.returncode == 1
    assert again.stderr.strip().splitlines() == [
        "error: run 'x' was started with arms closed-book, not closed-book,prompts; resume it with --arms "
        "closed-book or give a new --name"
    ]
