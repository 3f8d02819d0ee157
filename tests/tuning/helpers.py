"""Small builders shared by the tuning tests: documents with rights, case files, chat JSONL, traces."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ragtune.corpus.ingest import ingest_paths
from ragtune.corpus.loaders import Defaults
from ragtune.project import Project
from ragtune.traces.store import Trace, save_trace
from tests.conftest import write


def add_docs(project: Project, docs: Path, texts: dict[str, str], *, may_train: bool = True) -> None:
    """Ingest ``{name: text}`` under ``docs/`` (ids ``docs/NAME``) with the given training right."""
    paths = [write(docs / name, text) for name, text in texts.items()]
    report = ingest_paths(project, paths, Defaults(may_train=may_train))
    assert report.ok, report.errors


def case_file(path: Path, cases: list[dict[str, Any]]) -> Path:
    return write(path, "".join(json.dumps(c) + "\n" for c in cases))


def chat(question: str, answer: str, **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}], **extra}


def chat_file(path: Path, lines: list[dict[str, Any]]) -> Path:
    return write(path, "".join(json.dumps(line) + "\n" for line in lines))


def add_trace(project: Project, trace_id: str, question: str, answer: str, used: list[tuple[str, int]]) -> None:
    chunks = [
        {"rank": i + 1, "chunk_id": f"{d}@{v}#0", "doc_id": d, "version": v, "score": 1.0, "status": "used", "n": i + 1}
        for i, (d, v) in enumerate(used)
    ]
    save_trace(
        project.store,
        Trace(trace_id, "2026-01-05T10:00:00+00:00", "ask", "rag", question, answer, {}, {}, {"total": 1.0}, 1, 1,
              chunks, []),
    )  # fmt: skip
