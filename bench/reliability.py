"""Run the reliability suite and print, per category, how many cases it tried and how many held.

    .venv/bin/python bench/reliability.py            # the table docs/reliability.md keeps
    .venv/bin/python bench/reliability.py --json

Each category is a set of tests; a test that records finer counts (fuzzed examples, randomized requests) through
``tests.reliability.conftest.record`` contributes those, and every test also counts as one case of its category
(held when it passed). Nothing here is hard-coded: the figures are what pytest saw on this run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CATEGORIES: dict[str, list[str]] = {
    "rights that stick (CLI, JSONL, API)": ["tests/corpus/test_sticky_rights.py", "tests/server/test_ingest_rights.py"],
    "no leak through training": ["tests/tuning/test_restricted_training.py"],
    "randomized leak test (HTTP and CLI)": ["tests/reliability/test_leaks.py"],
    "forget reaches every table (byte-level)": [
        "tests/reliability/test_forget_everywhere.py",
        "tests/harness_runs/test_forget_runs.py",
        "tests/tuning/test_forget_models.py",
        "tests/corpus/test_forget.py",
        "tests/tuning/test_lineage.py",
    ],
    "bad input: ingest": ["tests/corpus/test_bad_input.py"],
    "bad input: case files and config": ["tests/harness/test_bad_case_files.py"],
    "property-based fuzzing": ["tests/test_fuzz_inputs.py"],
    "kill -9 and resume": [
        "tests/reliability/test_kill_ingest.py",
        "tests/harness_runs/test_kill_resume.py",
        "tests/tuning/test_train.py::test_sigkilled_process_resumes_to_the_same_result",
        "tests/tuning/test_train.py::test_killed_run_resumes_to_the_same_result",
    ],
    "concurrent writers": ["tests/corpus/test_concurrent_writers.py"],
    "server edges": ["tests/server/test_edges.py"],
    "citations": ["tests/answer/test_citations.py", "tests/answer/test_citation_support.py"],
}


def _file_of(testcase: ET.Element) -> str:
    name = testcase.get("classname", "").replace(".", "/")
    return name + ".py"


def run() -> dict[str, dict[str, int | float]]:
    """Run the suite's reliability tests now and tabulate them."""
    paths = sorted({p for group in CATEGORIES.values() for p in group if (ROOT / p.split("::")[0]).exists()})
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "log.jsonl"
        junit = Path(tmp) / "junit.xml"
        started = time.perf_counter()
        env = {**os.environ, "RAGTUNE_RELIABILITY_LOG": str(log)}
        subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}", *paths],
            cwd=ROOT,
            env=env,
            check=False,
        )
        return tabulate(junit, log, time.perf_counter() - started)


def tabulate(junit: Path, log: Path, seconds: float) -> dict[str, dict[str, int | float]]:
    """Counts per category from a pytest JUnit XML file and the reliability log of the same run."""
    tree = ET.parse(junit)
    recorded = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    out: dict[str, dict[str, int | float]] = {}
    for category, members in CATEGORIES.items():
        tests = held = 0
        for case in tree.iter("testcase"):
            file = _file_of(case)
            node = f"{file}::{case.get('name', '').split('[')[0]}"
            if any(node.startswith(m) if "::" in m else file == m for m in members):
                tests += 1
                held += not any(child.tag in ("failure", "error") for child in case)
        out[category] = {"tests": tests, "tests_held": held}
    for entry in recorded:
        slot = out.setdefault(entry["category"], {})
        slot["tried"] = int(slot.get("tried", 0)) + entry["tried"]
        slot["held"] = int(slot.get("held", 0)) + entry["held"]
    out["_suite"] = {"seconds": round(seconds, 1)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print the counts as JSON")
    parser.add_argument("--junit", type=Path, help="tabulate this JUnit XML of an earlier run instead of running")
    parser.add_argument("--log", type=Path, help="with --junit: that run's RAGTUNE_RELIABILITY_LOG file")
    args = parser.parse_args()
    if args.junit:
        suite = ET.parse(args.junit).getroot()
        seconds = float(next(suite.iter("testsuite")).get("time", 0.0))
        counts = tabulate(args.junit, args.log or Path("/nonexistent"), seconds)
    else:
        counts = run()
    if args.json:
        print(json.dumps(counts, indent=2))
        return
    print("| category | tried | held |")
    print("|---|---|---|")
    for category, c in counts.items():
        if category == "_suite":
            continue
        if "tests" in c:
            print(f"| {category} | {c['tests']} tests | {c['tests_held']} |")
        else:
            print(f"| {category} | {c['tried']} | {c['held']} |")
    print(f"\nsuite wall time: {counts['_suite']['seconds']} s")


if __name__ == "__main__":
    main()
