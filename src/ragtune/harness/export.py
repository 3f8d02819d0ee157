"""A stored run written back out in the shape other evaluation tools read (RAGAS, RAGChecker).

The cases come from the run's case file, which must still have the digest the run recorded; each row carries the
arm's answer, the chunks that reached its context (text read from the store, so a forgotten document's text is
gone from the export too) and the scorers' values::

    rows = export_rows(project.store, "baseline", "rag")
    export_ragas(rows, Path("baseline-rag.jsonl"))
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from ragtune.errors import HarnessError
from ragtune.harness.cases import load_cases
from ragtune.harness.interop import ExportRow, export_ragas, export_ragchecker
from ragtune.harness.model import Output
from ragtune.harness.runs import file_digest, load_run
from ragtune.harness.scorers.base import ScoringContext
from ragtune.store.db import Store

ExportFormat = Literal["ragas", "ragchecker"]


def export_rows(store: Store, run: str, arm: str) -> list[ExportRow]:
    """One row per case of ``arm`` in ``run``, in case-file order."""
    info = load_run(store, run)
    if arm not in info.arms:
        raise HarnessError(f"run {run!r} has no arm {arm!r}; its arms: {', '.join(info.arms)}")
    path = Path(info.cases_path)
    if not path.is_file():
        raise HarnessError(f"{path}: the case file of run {run!r} is gone; restore it to export the run")
    if file_digest(path) != info.cases_digest:
        raise HarnessError(f"{path}: the case file changed since run {run!r}; restore the version it ran on")
    cases = {c.id: c for c in load_cases(path)}
    scores: dict[str, dict[str, float | None]] = {}
    for case_id, scorer, value in store.db.execute(
        "SELECT case_id, scorer, value FROM run_scores WHERE run = ? AND arm = ? AND scorer NOT LIKE 'variant.%'",
        (run, arm),
    ):
        scores.setdefault(case_id, {})[scorer] = value
    chunks = ScoringContext(store=store)  # reads (and caches) chunk text from the store
    rows = []
    for r in store.db.execute(
        "SELECT case_id, answer, error, latency_ms, tokens_in, tokens_out, output FROM run_results "
        "WHERE run = ? AND arm = ? ORDER BY position",
        (run, arm),
    ):
        extra = json.loads(r["output"])
        output = Output(
            r["case_id"], arm, r["answer"], citations=extra.get("citations", []), chunks=extra.get("chunks", []),
            latency_ms=r["latency_ms"], tokens_in=r["tokens_in"], tokens_out=r["tokens_out"], error=r["error"],
        )  # fmt: skip
        contexts = [
            {"doc_id": c["doc_id"], "chunk_id": c["chunk_id"], "text": text[1]}
            for c in output.chunks
            if c.get("status") == "used" and (text := chunks.chunk_text(c["chunk_id"])) is not None
        ]
        rows.append(ExportRow(cases[r["case_id"]], output, contexts, scores.get(r["case_id"], {})))
    return rows


def export_run(store: Store, run: str, arm: str, fmt: ExportFormat, path: Path) -> int:
    """Write ``arm``'s results of ``run`` to ``path`` in ``fmt``; the number of rows written."""
    rows = export_rows(store, run, arm)
    if fmt == "ragas":
        export_ragas(rows, path)
    else:
        export_ragchecker(rows, path)
    return len(rows)
