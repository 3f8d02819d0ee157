"""Harness overhead: a run of N cases x 3 arms (closed-book, prompts, oracle) on zero-cost stand-in models.

Everything measured is harness: case loading, the answering pipeline around the model (prompting, retrieval over
the index with a stand-in embedder, citation checks), scoring, and one committed transaction per result. The
stand-in generator and embedder return at once; the time spent inside them is measured and subtracted anyway.

    PYTHONPATH=src .venv/bin/python bench/harness_overhead.py --cases 1000
    PYTHONPATH=src .venv/bin/python bench/harness_overhead.py --example 9   # real models on the bundled handbook

``--example N`` runs the first N bundled handbook cases through closed-book, rag and oracle on the packaged
SmolLM2 and MiniLM over all four weeks of the handbook, timing every model call; the rest is harness overhead.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ragtune.corpus.ingest import ingest_paths
from ragtune.corpus.loaders import Defaults
from ragtune.generation.base import Generation, Message
from ragtune.harness.runs import execute_run, summarize_run
from ragtune.project import Project, init_project

MODEL_S = [0.0]  # seconds spent inside the stand-in models


class ZeroGenerator:
    """Answers every prompt with a fixed cited sentence, instantly."""

    name = "zero"
    context_window = 8192

    def identity(self) -> dict[str, str]:
        return {"backend": "zero", "model": "zero"}

    def count_tokens(self, text: str) -> int:
        return len(text) // 4 + 1

    def count_prompt(self, messages: Sequence[Message]) -> int:
        return sum(self.count_tokens(m["content"]) for m in messages)

    def generate(
        self, batch: Sequence[Sequence[Message]], *, max_new_tokens: int | None = None, progress: bool = False
    ) -> list[Generation]:
        t0 = time.perf_counter()
        out = [Generation("The limit is 600 requests per minute [1].", 100, 10, "stop", 0.0) for _ in batch]
        MODEL_S[0] += time.perf_counter() - t0
        return out


class HashEmbedder:
    """Deterministic 32-dimensional vectors from a hash of the text, instantly."""

    name = "hash-32"
    dim = 32

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        t0 = time.perf_counter()
        rows = (
            np.array(
                [np.frombuffer(hashlib.sha256(t.encode()).digest(), dtype=np.uint8)[:32] for t in texts],
                dtype=np.float32,
            ).reshape(len(texts), 32)
            + 1.0
        )
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
        MODEL_S[0] += time.perf_counter() - t0
        return rows

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        spans, start = [], None
        for i, ch in enumerate(text + " "):
            if ch.isspace():
                if start is not None:
                    spans.append((start, i))
                start = None
            elif start is None:
                start = i
        return spans


def example(n: int, max_new_tokens: int) -> dict[str, object]:
    """The first n bundled handbook cases, three arms, real models; model time measured around every call."""
    from ragtune.corpus.model import parse_groups, parse_when
    from ragtune.demo import _apply_week, example_dir

    src = example_dir()
    timeline = json.loads((src / "timeline.json").read_text(encoding="utf-8"))
    sources = json.loads((src / "sources.json").read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory() as tmp:
        root, _ = init_project(Path(tmp) / "proj")
        project = Project.open(root)
        project.config.generator.max_new_tokens = max_new_tokens
        for week_info in timeline["weeks"]:
            _apply_week(src, int(week_info["week"]), root)
            for s in sources:
                defaults = Defaults(source=s["source"], license=s["license"], may_retrieve=s.get("may_retrieve", True),
                                    may_train=s["may_train"], groups=parse_groups(s.get("groups")),
                                    owner=s.get("owner"), valid_from=parse_when(week_info["valid_from"]))  # fmt: skip
                ingest_paths(project, [root / (s.get("folder") or s["file"])], defaults, sync=True)
        gen, emb = project.generator, project.embedder
        real_generate, real_encode = gen.generate, emb.encode

        def timed_generate(*a: object, **k: object) -> list[Generation]:
            t0 = time.perf_counter()
            try:
                return real_generate(*a, **k)  # type: ignore[arg-type]
            finally:
                MODEL_S[0] += time.perf_counter() - t0

        def timed_encode(*a: object, **k: object) -> np.ndarray:
            t0 = time.perf_counter()
            try:
                return real_encode(*a, **k)  # type: ignore[arg-type]
            finally:
                MODEL_S[0] += time.perf_counter() - t0

        gen.count_tokens("warm up")
        emb.encode(["warm up"])  # model loading is not part of a run's steady state
        gen.generate = timed_generate  # type: ignore[method-assign]
        emb.encode = timed_encode  # type: ignore[method-assign]
        cases = Path(tmp) / "cases.jsonl"
        lines = (src / "cases.jsonl").read_text(encoding="utf-8").splitlines()
        cases.write_text("\n".join(lines[:n]) + "\n", encoding="utf-8")
        MODEL_S[0] = 0.0
        t0 = time.perf_counter()
        execute_run(project, cases, ["closed-book", "rag", "oracle"], name="example")
        wall = time.perf_counter() - t0
        summary = summarize_run(project, "example")
        project.close()
    return {
        "example_cases": n,
        "arms": 3,
        "wall_s": round(wall, 2),
        "model_s": round(MODEL_S[0], 2),
        "harness_s": round(wall - MODEL_S[0], 3),
        "harness_share": round((wall - MODEL_S[0]) / wall, 4),
        "accuracy": {a: s["accuracy"]["value"] for a, s in summary["arms"].items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--example", type=int, default=0, help="Run N bundled handbook cases on the real models.")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    args = parser.parse_args()
    if args.example:
        print(json.dumps(example(args.example, args.max_new_tokens), indent=2))
        return
    with tempfile.TemporaryDirectory() as tmp:
        root, _ = init_project(Path(tmp) / "proj")
        project = Project.open(root)
        project.embedder = HashEmbedder()
        project.generator = ZeroGenerator()
        docs = root / "docs"
        docs.mkdir()
        for i in range(20):
            (docs / f"d{i}.md").write_text(f"# Doc {i}\n\nThe limit of plan {i} is {i * 100} requests per minute.\n")
        ingest_paths(project, [docs], Defaults())
        cases = Path(tmp) / "cases.jsonl"
        with cases.open("w") as f:
            for i in range(args.cases):
                case = {"id": f"c{i}", "question": f"What is the limit of plan {i % 20}?",
                        "answers": [f"{(i % 20) * 100} requests per minute"], "stale_answers": ["1 request"],
                        "evidence": [f"docs/d{i % 20}.md"]}  # fmt: skip
                if i % 4 == 0:
                    case["format"] = {"max_words": 12}
                f.write(json.dumps(case) + "\n")
        MODEL_S[0] = 0.0
        t0 = time.perf_counter()
        execute_run(project, cases, ["closed-book", "prompts", "oracle"], name="bench")
        wall = time.perf_counter() - t0
        summary = summarize_run(project, "bench")
        project.close()
    results = args.cases * 3
    print(
        json.dumps(
            {
                "cases": args.cases,
                "arms": 3,
                "results": results,
                "wall_s": round(wall, 2),
                "model_s": round(MODEL_S[0], 3),
                "harness_s": round(wall - MODEL_S[0], 2),
                "harness_ms_per_result": round((wall - MODEL_S[0]) / results * 1000, 3),
                "accuracy": {a: s["accuracy"]["value"] for a, s in summary["arms"].items()},
                "errors": {a: s["errors"] for a, s in summary["arms"].items()},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
