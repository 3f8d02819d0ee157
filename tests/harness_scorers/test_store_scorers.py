"""Citation support and retrieval facts against a real project store (real SQLite file, real ingest, real search)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ragtune.corpus.ingest import ingest_paths
from ragtune.corpus.loaders import Defaults
from ragtune.harness.model import Output
from ragtune.harness.scorers import SCORERS, ScoringContext
from ragtune.harness.scorers.citations import sentences_citing
from ragtune.project import Project
from ragtune.retrieval.search import Retriever
from tests.conftest import write
from tests.harness_scorers.fakes import case, output

PRICING = "# Pricing\n\nThe Pro plan allows 600 requests per minute. The Basic plan costs 10 euros per month."
SUPPORT = "# Support\n\nSupport is open on weekdays from nine to five."


@pytest.fixture
def corpus(project: Project, docs: Path) -> dict[str, dict[str, Any]]:
    """Two documents ingested; returns each document's citation as the answer pipeline records it."""
    write(docs / "pricing.md", PRICING)
    write(docs / "support.md", SUPPORT)
    assert ingest_paths(project, [docs], Defaults()).ok
    rows = project.store.db.execute("SELECT chunk_id, doc_id, version FROM chunks ORDER BY doc_id").fetchall()
    return {
        row["doc_id"]: {"doc_id": row["doc_id"], "version": row["version"], "chunk_id": row["chunk_id"]} for row in rows
    }


def cite(answer: str, *cited: tuple[int, dict[str, Any], str]) -> Output:
    return output(answer, citations=[{"n": n, **c, "mode": mode} for n, c, mode in cited])


def support(project: Project, out: Output):  # type: ignore[no-untyped-def]
    return SCORERS["citations.support"](case(answers=["600"]), out, ScoringContext(store=project.store))


def test_sentences_citing_assigns_trailing_markers_to_the_sentence_before() -> None:
    got = sentences_citing("It costs 3.5 euros [1]. Support is open. [2] Also [1, 3] this\nLast [2]")
    assert got == {1: ["It costs 3.5 euros.", "Also this"], 2: ["Support is open.", "Last"], 3: ["Also this"]}


def test_each_citation_checked_against_its_chunk(project: Project, corpus: dict[str, dict[str, Any]]) -> None:
    pricing, support_doc = corpus["docs/pricing.md"], corpus["docs/support.md"]
    good = cite(
        "The Pro plan allows 600 requests per minute [1]. Support is open on weekdays. [2]",
        (1, pricing, "model"),
        (2, support_doc, "model"),
    )
    s = support(project, good)
    assert s.value == 1.0 and s.passed and s.reason.startswith("2 of 2 cited chunks support the answer")
    rows = s.details["citations"]
    assert [r["supported"] for r in rows] == [True, True] and rows[0]["basis"] == "sentence"
    assert rows[0]["overlap"] == 1.0 and rows[0]["chunk_id"] == pricing["chunk_id"]

    swapped = cite(
        "The Pro plan allows 600 requests per minute [2]. Support is open on weekdays [1].",
        (1, pricing, "model"),
        (2, support_doc, "model"),
    )
    bad = support(project, swapped)
    assert bad.value == 0.0 and not bad.passed and "unsupported: [1]" in bad.reason
    assert bad.details["citations"][1]["missing"]  # the pricing terms the support page lacks


def test_attributed_citation_without_markers_uses_the_whole_answer(
    project: Project, corpus: dict[str, dict[str, Any]]
) -> None:
    s = support(project, cite("The Basic plan costs 10 euros per month.", (1, corpus["docs/pricing.md"], "attributed")))
    assert s.passed and s.details["citations"][0]["basis"] == "answer"
    off = support(project, cite("Support answers on weekdays.", (1, corpus["docs/pricing.md"], "attributed")))
    assert not off.passed


def test_citation_unscored_paths(project: Project, corpus: dict[str, dict[str, Any]]) -> None:
    gone = {"doc_id": "docs/gone.md", "version": 1, "chunk_id": "docs/gone.md@1#0"}
    partly = support(
        project,
        cite("The Pro plan allows 600 requests [1][2].", (1, corpus["docs/pricing.md"], "model"), (2, gone, "model")),
    )
    assert partly.value == 1.0 and "1 not checked" in partly.reason
    assert partly.details["citations"][1]["why"] == "the cited chunk is not in the store"
    only_gone = support(project, cite("Text [1].", (1, gone, "model")))
    assert only_gone.status == "unscored" and "none of the 1 citations could be checked" in only_gone.reason
    assert support(project, output("No citations.")).reason == "the answer cites nothing"
    no_store = SCORERS["citations.support"](case(answers=["x"]), cite("x [1]", (1, gone, "model")), ScoringContext())
    assert no_store.status == "unscored" and "no store" in no_store.reason
    nothing = support(project, cite("[1]", (1, corpus["docs/pricing.md"], "model")))
    assert nothing.status == "unscored" and "no content terms" in nothing.reason


# --- retrieval facts -----------------------------------------------------------------------------------------------


def chunk_log(project: Project, query: str, used: int) -> list[dict[str, Any]]:
    """The trace's chunk log for a real search: the first ``used`` hits in the context, the rest dropped."""
    hits = Retriever(project.store, project.index, project.embedder, project.config.retrieval).search(query, k=5).hits
    log = []
    for i, h in enumerate(hits, start=1):
        entry: dict[str, Any] = {"rank": i, "chunk_id": h.chunk_id, "doc_id": h.doc_id, "version": h.version}
        entry |= {"status": "used"} if i <= used else {"status": "dropped", "reason": "budget"}
        log.append(entry)
    return log


def facts(project: Project | None, evidence: list[str], chunks: list[dict[str, Any]]):  # type: ignore[no-untyped-def]
    ctx = ScoringContext(store=project.store if project else None)
    return SCORERS["retrieval"](case(evidence=evidence), output("x", chunks=chunks), ctx)


def test_gold_in_context_ranked_and_existing(project: Project, corpus: dict[str, dict[str, Any]]) -> None:
    log = chunk_log(project, "How many requests per minute does the Pro plan allow?", used=1)
    assert log[0]["doc_id"] == "docs/pricing.md"
    s = facts(project, ["docs/pricing.md"], log)
    assert s.value == 1.0 and s.passed and s.details["rank"] == 1 and s.details["in_context"] is True
    assert s.details["exists"] is True and s.reason == "a gold chunk reached the context (best gold rank 1)"

    dropped = facts(project, ["docs/support.md"], log)
    assert dropped.value == 0.0 and dropped.details["rank"] == 2 and dropped.details["in_context"] is False
    assert dropped.reason == "gold retrieved at rank 2 but dropped before the context (budget)"


def test_gold_missing_from_results_and_from_the_corpus(
    project: Project, docs: Path, corpus: dict[str, dict[str, Any]]
) -> None:
    log = chunk_log(project, "weekdays support hours", used=1)[:1]
    s = facts(project, ["docs/pricing.md", "docs/never.md"], log)
    assert s.details["rank"] is None and s.value == 0.0
    assert s.details["exists_by_doc"] == {"docs/pricing.md": True, "docs/never.md": False}
    assert "not in the current corpus: docs/never.md" in s.reason and s.details["exists"] is False
    # a retired document (its file gone at a sync) is not in the current corpus either
    (docs / "pricing.md").unlink()
    ingest_paths(project, [docs], Defaults(), sync=True)
    assert facts(project, ["docs/pricing.md"], log).details["exists"] is False


def test_retrieval_unscored_paths_and_no_store() -> None:
    log = [{"rank": 1, "doc_id": "a", "chunk_id": "a@1#0", "status": "used"}]
    assert facts(None, ["a"], []).reason == "the arm retrieved nothing (closed-book, or an empty search)"
    no_evidence = SCORERS["retrieval"](case(answers=["x"]), output("x", chunks=log), ScoringContext())
    assert no_evidence.status == "unscored" and no_evidence.reason == "the case names no gold evidence"
    s = facts(None, ["a"], log)
    assert s.passed and s.details["exists"] is None and "existence not checked (no store)" in s.reason
    # retrieved facts stand even when generation failed afterwards
    errored = SCORERS["retrieval"](case(evidence=["a"]), output("", chunks=log, error="oom"), ScoringContext())
    assert errored.passed
