"""Harness overhead: a run of N cases x 3 arms (closed-book, prompts, oracle) on zero-cost stand-in models.

Everything measured is harness: case loading, the answering pipeline around the model (prompting, retrieval over
the index with a stand-in embedder, citation checks), scoring, and one committed transaction per result. The
stand-in generator and embedder return at once; the time spent inside them is measured and subtracted anyway.

    PYTHONPATH=src .venv/bin/python bench/harness_overhead.py --cases 1000
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root, _ = init_project(Path(tmp) / "proj")
        project = Project.open(root)
        project.__dict__["embedder"] = HashEmbedder()
        project.__dict__["generator"] = ZeroGenerator()
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
