"""Off a terminal, long work prints plain progress lines on stderr (issue 13, point 7): CI logs need them, and a rich
bar would be raw escape codes there. Quick work prints nothing."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ragtune.cli.common import _duration, progress_lines
from ragtune.project import init_project
from tests.harness_runs.conftest import write_cases

REPO = Path(__file__).resolve().parents[2]


def test_lines_at_most_every_interval_and_a_last_one(capsys: pytest.CaptureFixture[str]) -> None:
    with progress_lines("evaluating", every_s=0) as advance:
        for _ in range(4):
            advance(1, 4)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("evaluating: 1/4 (25%), 0 s elapsed, about ")
    assert lines[-1].startswith("evaluating: 4/4 (100%), ") and "left" not in lines[-1]
    assert len(lines) == 5  # one per step, and the last


def test_quick_work_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    with progress_lines("evaluating", every_s=60) as advance:
        advance(3, 3)
    assert capsys.readouterr().err == ""


def test_durations_read_as_people_write_them() -> None:
    assert (_duration(4.4), _duration(75), _duration(3 * 3600 + 5 * 60)) == ("4 s", "1 min 15 s", "3 h 05 min")


def test_eval_off_a_terminal_prints_progress_lines(tmp_path: Path) -> None:
    root, _ = init_project(tmp_path / "proj")
    cases = write_cases(tmp_path / "cases.jsonl",
                        [{"id": f"c{i}", "question": f"Capital number {i}?", "answers": ["Paris"]} for i in range(4)])  # fmt: skip
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}", "RAGTUNE_PROGRESS_EVERY": "0"}
    done = subprocess.run(
        [sys.executable, "-m", "tests.harness_runs.fakes", "--project", str(root), "eval", str(cases),
         "--arms", "closed-book", "--name", "p"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("evaluating: ")]
    assert lines and lines[-1].startswith("evaluating: 4/4 (100%)"), done.stderr
    assert "\x1b[" not in done.stderr  # no terminal escape codes in a log
    assert all(re.match(r"evaluating: \d+/4 \(\d+%\), ", line) for line in lines)
    # under --json, stdout stays one JSON document
    again = subprocess.run(
        [sys.executable, "-m", "tests.harness_runs.fakes", "--project", str(root), "runs", "show", "p", "--json"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert json.loads(again.stdout)["run"] == "p"
