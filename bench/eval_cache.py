"""The generation cache and rescoring, timed: the bundled example's eval (the demo's cases, the handbook as of week 1,
the packaged model) run twice in one process, then the first run rescored.

    .venv/bin/python bench/eval_cache.py                     # 8 demo cases, closed-book and rag
    .venv/bin/python bench/eval_cache.py -n 12 --arms closed-book,oracle,rag --json

The first run generates every answer (and writes the cache); the second, identical, reads them back (the model is
loaded by then: the ratio is what the cache saves, not a load time); the rescore scores the first run's stored
answers again with the default scorers plus content.similarity, generating nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ask_latency import build_week1


def run(n: int, arms: list[str]) -> dict[str, Any]:
    from ragtune.demo import DEMO_MAX_NEW_TOKENS, demo_cases, example_dir
    from ragtune.harness.rescore import rescore_run
    from ragtune.harness.runs import execute_run, load_results, summarize_run
    from ragtune.project import Project

    with tempfile.TemporaryDirectory() as tmp:
        root = build_week1(Path(tmp) / "proj")
        cases = Path(tmp) / "cases.jsonl"
        chosen = demo_cases(example_dir())[:n]
        cases.write_text("".join(json.dumps(c) + "\n" for c in chosen), encoding="utf-8")
        project = Project.open(root)
        project.config.generator.max_new_tokens = DEMO_MAX_NEW_TOKENS
        project.generator.count_tokens("load the model before the clock starts")
        t0 = time.perf_counter()
        execute_run(project, cases, arms, name="first")
        first_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        execute_run(project, cases, arms, name="second")
        second_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        scorers = [*project.config.eval.scorers, "content.similarity"]
        rescore_run(project, "first", scorers, name="first-rescored")
        rescore_s = time.perf_counter() - t0
        a, b = load_results(project.store, "first"), load_results(project.store, "second")
        same = all([r["answer"] for r in a[arm]] == [r["answer"] for r in b[arm]] for arm in arms)
        cached = summarize_run(project, "second")["cached"]
        project.close()
    return {
        "cases": len(chosen),
        "arms": arms,
        "first_s": round(first_s, 2),
        "cached_rerun_s": round(second_s, 2),
        "ratio": round(first_s / second_s, 1) if second_s else None,
        "cached_answers": cached,
        "answers": len(chosen) * len(arms),
        "same_answers": same,
        "rescore_s": round(rescore_s, 2),
        "rescore_scorers": scorers,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=8, help="demo cases (default 8)")
    parser.add_argument("--arms", default="closed-book,rag")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report = run(args.n, args.arms.split(","))
    if args.json:
        print(json.dumps(report, indent=1))
        return
    print(f"{report['cases']} cases x {', '.join(report['arms'])}")
    print(f"first run      {report['first_s']:>8.2f} s")
    print(f"cached re-run  {report['cached_rerun_s']:>8.2f} s  ({report['cached_answers']} of {report['answers']} "
          f"answers from the cache, same answers: {report['same_answers']})")  # fmt: skip
    print(f"ratio          {report['ratio']:>8.1f} x")
    print(f"rescore        {report['rescore_s']:>8.2f} s  ({', '.join(report['rescore_scorers'])})")


if __name__ == "__main__":
    main()
