"""A stored run written back out in the shape other evaluation tools read (RAGAS, DeepEval, RAGChecker).

The cases come from the run's case file, which must still have the digest the run recorded; each row carries the
arm's answer, the chunks that reached its context (text read from the store, so a forgotten document's text is
gone from the export too; a passage the case carries as text comes from the case) and the scorers' values::

    rows = export_rows(project.store, "baseline", "rag")
    export_ragas(rows, Path("baseline-rag.jsonl"))
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from ragtune.answer.context import passage_number
from ragtune.errors import HarnessError
from ragtune.harness.cases import load_cases
from ragtune.harness.interop import ExportRow, export_deepeval, export_ragas, export_ragchecker
from ragtune.harness.model import Case, Output
from ragtune.harness.scorers.base import ScoringContext
from ragtune.harness.store import checked_case_file, load_run, result_rows, score_rows
from ragtune.store.db import Store

EXPORTERS: dict[str, Callable[[list[ExportRow], Path], None]] = {
    "ragas": export_ragas,
    "deepeval": export_deepeval,
    "ragchecker": export_ragchecker,
}
SUFFIXES: dict[str, tuple[str, ...]] = {"ragas": (".jsonl", ".csv"), "deepeval": (".json",), "ragchecker": (".json",)}
"""The formats (``ragtune runs export --to``) and the file types each is written as, checked before the run is
read."""


def export_rows(store: Store, run: str, arm: str) -> list[ExportRow]:
    """One row per case of ``arm`` in ``run``, in case-file order."""
    info = load_run(store, run)
    if arm not in info.arms:
        raise HarnessError(f"run {run!r} has no arm {arm!r}; its arms: {', '.join(info.arms)}")
    cases = {c.id: c for c in load_cases(checked_case_file(info, "export the run"))}
    scores: dict[str, dict[str, float | None]] = {}
    for r in score_rows(store, run, arm):
        if not r["scorer"].startswith("variant."):
            scores.setdefault(r["case_id"], {})[r["scorer"]] = r["value"]
    chunks = ScoringContext(store=store)  # reads (and caches) chunk text from the store
    rows = []
    for r in result_rows(store, run, arm):
        extra = json.loads(r["output"])
        output = Output(
            r["case_id"], arm, r["answer"], citations=extra.get("citations", []), chunks=extra.get("chunks", []),
            latency_ms=r["latency_ms"], tokens_in=r["tokens_in"], tokens_out=r["tokens_out"], error=r["error"],
        )  # fmt: skip
        case = cases[r["case_id"]]
        contexts = [
            {"doc_id": c["doc_id"], "chunk_id": c["chunk_id"], "text": text}
            for c in output.chunks
            if c.get("status") == "used" and (text := _context_text(case, chunks, c["chunk_id"])) is not None
        ]
        rows.append(ExportRow(case, output, contexts, scores.get(r["case_id"], {})))
    return rows


def _context_text(case: Case, chunks: ScoringContext, chunk_id: str) -> str | None:
    """A context chunk's text: from the store, or from the case for a passage it carries (``case-passage#N``)."""
    n = passage_number(chunk_id)
    if n is not None:
        return case.evidence_texts[n - 1] if n <= len(case.evidence_texts) else None
    text = chunks.chunk_text(chunk_id)
    return text[1] if text is not None else None


def export_run(store: Store, run: str, arm: str, fmt: str, path: Path) -> int:
    """Write ``arm``'s results of ``run`` to ``path`` in ``fmt``; the number of rows written."""
    if fmt not in EXPORTERS:
        raise HarnessError(f"unknown export format {fmt!r}; known: {', '.join(EXPORTERS)}")
    if path.suffix.lower() not in SUFFIXES[fmt]:
        raise HarnessError(f"{path}: {fmt} export writes {' or '.join(SUFFIXES[fmt])}, not '{path.suffix}'")
    rows = export_rows(store, run, arm)
    EXPORTERS[fmt](rows, path)
    return len(rows)
