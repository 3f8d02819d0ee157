"""What one request waits for against what a batch does: an eval of the bundled handbook (week 1) with the
packaged model, each arm's per-request figures (cases timed alone) next to its batch throughput, in one run.

    .venv/bin/python bench/eval_latency.py                    # 12 questions, closed-book and rag, batch 8, sample 4
    .venv/bin/python bench/eval_latency.py -n 24 --sample 6 --json

Before issue 13 every case of a batch was charged the batch's whole wall time; ``charged_before_ms`` shows that
figure (a batch's wall time) beside the request's own, so the size of the old error is read off one run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ask_latency import build_week1, handbook_facts


def run(n: int, sample: int, batch: int, arms: list[str]) -> dict[str, Any]:
    from ragtune.harness.runs import execute_run, load_results, summarize_run
    from ragtune.project import Project

    with tempfile.TemporaryDirectory() as tmp:
        root = build_week1(Path(tmp) / "proj")
        cases = Path(tmp) / "cases.jsonl"
        lines = [{"id": f"q{i}", "question": f.question, "answers": [f.value], "groups": list(f.groups)}
                 for i, f in enumerate(handbook_facts(n))]  # fmt: skip
        cases.write_text("".join(json.dumps(c) + "\n" for c in lines), encoding="utf-8")
        project = Project.open(root)
        project.config.eval.latency_sample = sample
        project.config.eval.batch_size = batch
        project.config.eval.scorers = ["accuracy"]
        execute_run(project, cases, arms, name="latency")
        summary = summarize_run(project, "latency")["arms"]
        results = load_results(project.store, "latency")
        out = {}
        for arm in arms:
            s = summary[arm]
            shares = [r["latency_ms"] for r in results[arm] if r["request_ms"] is None and not r["error"]]
            out[arm] = {
                "p50_ms": s["p50_ms"], "p95_ms": s["p95_ms"], "latency_n": s["latency_n"],
                "answers_per_s": s["throughput"]["answers_per_s"],
                "tokens_out_per_s": s["throughput"]["tokens_out_per_s"],
                # what the old harness charged each case: the wall time of the batch it rode in
                "charged_before_ms": round(max(shares) * min(batch, len(shares)), 1) if shares else None,
            }  # fmt: skip
        project.close()
    return {"cases": n, "batch_size": batch, "latency_sample": sample, "arms": out}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=12, help="questions from the handbook (default 12)")
    parser.add_argument("--sample", type=int, default=4, help="[eval] latency_sample (default 4)")
    parser.add_argument("--batch", type=int, default=8, help="[eval] batch_size (default 8)")
    parser.add_argument("--arms", default="closed-book,rag")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report = run(args.n, args.sample, args.batch, args.arms.split(","))
    if args.json:
        print(json.dumps(report, indent=1))
        return
    print(f"{report['cases']} cases, batch {report['batch_size']}, {report['latency_sample']} timed alone per arm")
    print(f"{'arm':<12} {'p50 ms':>9} {'p95 ms':>9} {'answers/s':>10} {'tokens/s':>9} {'old figure ms':>14}")
    for arm, a in report["arms"].items():
        print(f"{arm:<12} {a['p50_ms'] or 0:>9,.0f} {a['p95_ms'] or 0:>9,.0f} {a['answers_per_s'] or 0:>10.3f} "
              f"{a['tokens_out_per_s'] or 0:>9.1f} {a['charged_before_ms'] or 0:>14,.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
