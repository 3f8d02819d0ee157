"""`ragtune ask` latency by stage, one question at a time, on the bundled handbook as of week 1.

    .venv/bin/python bench/ask_latency.py                       # 40 questions, the local default (smollm2)
    .venv/bin/python bench/ask_latency.py --backend llama-cpp   # the same through llama-cpp-python
    .venv/bin/python bench/ask_latency.py --json > bench/out/ask-latency.json

Builds a project from the handbook's week 1 (as `ragtune demo` ingests it, each source with its rights) in a
temporary folder, or reuses ``--project DIR``. Then, in a fresh process so that no model is loaded yet, it asks one
question cold (model load included: reported on its own), warms up, and asks each question through
``Answerer(project).ask(Question(...))``, one at a time, reading the stage timings each answer's trace carries.
Questions: the facts that change over the four weeks (their week-1 values) and then stable facts, from
``timeline.json``. Accuracy (answers containing the expected value) is a side figure, not a quality benchmark.

Also the helpers bench/generation.py builds its prompts with.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
STAGES = ("retrieve", "rerank", "assemble", "generate", "total")


@dataclass(frozen=True)
class Fact:
    """One handbook question, the value a week-1 answer should contain, and who may read its document."""

    question: str
    value: str
    groups: tuple[str, ...]
    kind: str  # "changing" or "stable"


def handbook_facts(n: int = 40) -> list[Fact]:
    """The first ``n`` questions: every changing fact that has a week-1 value, then stable facts, in file order."""
    from ragtune.demo import example_dir

    timeline = json.loads((example_dir() / "timeline.json").read_text(encoding="utf-8"))
    facts = [
        Fact(f["question"], f["values"]["1"], _groups(f["doc_id"]), "changing")
        for f in timeline["facts"]
        if f["values"].get("1")
    ]
    facts += [
        Fact(f["question"], f["value"], _groups(f["doc_id"]), "stable")
        for f in timeline["stable_facts"]
        if 1 in f["weeks"]
    ]
    return facts[:n]


def _groups(doc_id: str) -> tuple[str, ...]:
    # the finance-only documents are visible only to that group, as in `ragtune demo`
    return ("finance",) if doc_id.startswith("internal/") else ()


def build_week1(folder: Path) -> Path:
    """A project in ``folder`` holding the handbook as of week 1, ingested source by source with its rights."""
    from ragtune.corpus.ingest import ingest_paths
    from ragtune.corpus.loaders import Defaults
    from ragtune.corpus.model import parse_groups, parse_when
    from ragtune.demo import _apply_week, example_dir
    from ragtune.project import Project, init_project

    example = example_dir()
    timeline = json.loads((example / "timeline.json").read_text(encoding="utf-8"))
    sources = json.loads((example / "sources.json").read_text(encoding="utf-8"))
    root, _ = init_project(folder)
    _apply_week(example, 1, root)
    project = Project.open(root)
    valid_from = parse_when(timeline["weeks"][0]["valid_from"])
    for src in sources:
        ingest_paths(
            project,
            [root / (src.get("folder") or src["file"])],
            Defaults(
                source=src["source"],
                license=src["license"],
                may_retrieve=src.get("may_retrieve", True),
                may_train=src["may_train"],
                groups=parse_groups(src.get("groups")),
                owner=src.get("owner"),
                valid_from=valid_from,
            ),
            sync=True,
        )
    project.close()
    return root


_TICK = os.sysconf("SC_CLK_TCK")


def _machine_busy_s() -> float:
    """CPU seconds every process on the machine has used so far (hypervisor steal included), from /proc/stat."""
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, f.readline().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / _TICK


class Meter:
    """Wall time of a block, the cores this process kept busy, and the cores the rest of the machine used.

    On this shared 2-core machine another process's work slows ours far more than its share (torch's and
    llama.cpp's threads wait for each other at every step), so a block during which others used the CPU is
    measured again (see :func:`measured`).
    """

    def __enter__(self) -> Meter:
        self._wall, self._own, self._busy = time.perf_counter(), time.process_time(), _machine_busy_s()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._wall
        own = time.process_time() - self._own
        self.cpu = own / self.wall
        self.others = max(0.0, (_machine_busy_s() - self._busy - own) / self.wall)


PATIENCE_S = float(os.environ.get("RAGTUNE_BENCH_PATIENCE_S", "120"))
"""How long a unit waits for a quiet machine before it runs anyway (lower it when other work shares the machine)."""


def wait_quiet(threshold: float = 0.15, patience_s: float | None = None) -> None:
    """Wait (at most ``patience_s``) until the rest of the machine uses under ``threshold`` cores for a second."""
    deadline = time.monotonic() + (PATIENCE_S if patience_s is None else patience_s)
    while time.monotonic() < deadline:
        with Meter() as m:
            time.sleep(1.0)
        if m.others < threshold:
            return


def measured(fn: Callable[[], T], tries: int = 4, threshold: float = 0.15) -> tuple[T, Meter, int]:
    """Run ``fn`` until the rest of the machine stayed under ``threshold`` cores meanwhile, at most ``tries``
    times; returns the fastest run's result and meter (others only ever slow a run) and the runs it took."""
    runs: list[tuple[T, Meter]] = []
    while len(runs) < tries:
        wait_quiet(threshold)
        with Meter() as m:
            result = fn()
        runs.append((result, m))
        if m.others < threshold:
            break
    result, m = min(runs, key=lambda r: r[1].wall)
    return result, m, len(runs)


def contains(answer: str, value: str) -> bool:
    """Whether an answer states the expected value (case and spacing ignored)."""
    return " ".join(value.lower().split()) in " ".join(answer.lower().split())


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile, linear between ranks (numpy's default)."""
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def measure(project_dir: Path, n: int, backend: str) -> dict[str, Any]:
    """Cold first ask, warm-up, then each question once; runs in a process where no model is loaded yet."""
    from ragtune.answer.pipeline import Answerer, Question
    from ragtune.project import Project

    project = Project.open(project_dir)
    project.config.generator.backend = backend  # type: ignore[assignment]  # checked by argparse choices
    answerer = Answerer(project)
    facts = handbook_facts(n)

    def ask(fact: Fact) -> dict[str, Any]:
        w, c = time.perf_counter(), time.process_time()
        answer = answerer.ask(Question(fact.question, groups=fact.groups))
        wall = time.perf_counter() - w
        assert answer.trace is not None
        return {
            "question": fact.question,
            "kind": fact.kind,
            "expected": fact.value,
            "answer": answer.answer,
            "correct": contains(answer.answer, fact.value),
            "timings_ms": dict(answer.trace.timings),
            "wall_ms": round(wall * 1000, 1),
            # below ~1.7 with two busy threads, other work took a core during this answer
            "cpu_share": round((time.process_time() - c) / wall, 2),
            "tokens_in": answer.trace.tokens_in,
            "tokens_out": answer.trace.tokens_out,
        }

    cold = ask(Fact("What does the Starter plan cost?", "", (), "warm-up"))  # loads the embedder and the generator
    ask(Fact("Who is the CEO of Brisecourt Labs?", "", (), "warm-up"))
    rows = [ask(f) for f in facts]
    project.close()
    return {"backend": backend, "cold": cold, "rows": rows}


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    rows = result["rows"]
    stages: dict[str, dict[str, float]] = {}
    for stage in (*STAGES, "wall"):
        xs = [r["wall_ms"] if stage == "wall" else r["timings_ms"].get(stage, 0.0) for r in rows]
        stages[stage] = {
            "p50_ms": round(percentile(xs, 50), 1),
            "p95_ms": round(percentile(xs, 95), 1),
            "mean_ms": round(statistics.fmean(xs), 1),
        }
    by_kind = {
        kind: f"{sum(r['correct'] for r in rows if r['kind'] == kind)}/{sum(r['kind'] == kind for r in rows)}"
        for kind in ("changing", "stable")
    }
    return {
        "backend": result["backend"],
        "questions": len(rows),
        "stages": stages,
        "cold": {k: result["cold"][k] for k in ("timings_ms", "wall_ms")},
        "accuracy": round(sum(r["correct"] for r in rows) / len(rows), 3),
        "correct_by_kind": by_kind,
        "tokens_in_mean": round(statistics.fmean(r["tokens_in"] for r in rows), 1),
        "tokens_out_mean": round(statistics.fmean(r["tokens_out"] for r in rows), 1),
        "cpu_share_min": min(r["cpu_share"] for r in rows),
        "disturbed_answers": sum(r["cpu_share"] < 1.7 for r in rows),
    }


def table(summary: dict[str, Any]) -> str:
    s = summary
    lines = [
        f"ragtune ask, backend {s['backend']}, {s['questions']} questions one at a time, model warm",
        f"{'stage':<10}{'p50 ms':>10}{'p95 ms':>10}{'mean ms':>10}",
    ]
    for stage, v in s["stages"].items():
        lines.append(f"{stage:<10}{v['p50_ms']:>10.1f}{v['p95_ms']:>10.1f}{v['mean_ms']:>10.1f}")
    cold = s["cold"]
    lines += [
        f"cold first ask: {cold['wall_ms']:.0f} ms wall ("
        + ", ".join(f"{k} {v:.0f}" for k, v in cold["timings_ms"].items())
        + " ms)",
        f"accuracy (answer contains the expected value): {s['accuracy']:.1%}  "
        f"changing {s['correct_by_kind']['changing']}, stable {s['correct_by_kind']['stable']}",
        f"tokens per answer: {s['tokens_in_mean']:.0f} in, {s['tokens_out_mean']:.0f} out; "
        f"answers disturbed by other work (CPU share < 1.7): {s['disturbed_answers']}",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", type=Path, help="an existing week-1 handbook project (default: build one)")
    parser.add_argument("-n", type=int, default=40, help="questions (default 40)")
    parser.add_argument("--backend", choices=("smollm2", "llama-cpp"), default="smollm2")
    parser.add_argument("--json", action="store_true", help="print JSON (every answer included)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:  # the measuring process: nothing loaded before the cold ask
        print(json.dumps(measure(args.project, args.n, args.backend)))
        return
    with tempfile.TemporaryDirectory(prefix="ragtune-ask-bench-") as tmp:
        project = args.project or build_week1(Path(tmp) / "handbook")
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                "--project",
                str(project),
                "-n",
                str(args.n),
                "--backend",
                args.backend,
            ],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
        )
    if out.returncode:
        sys.exit(f"bench/ask_latency.py: the measuring process failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    summary = summarize(result)
    if args.json:
        print(json.dumps({"summary": summary, "answers": result["rows"], "cold": result["cold"]}, indent=2))
    else:
        print(table(summary))


if __name__ == "__main__":
    main()
