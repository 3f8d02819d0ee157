"""Search on the real store and MiniLM: filters apply before ranking, so a filtered chunk can never surface."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragtune.corpus.ingest import ingest_paths
from ragtune.corpus.loaders import Defaults
from ragtune.errors import RetrievalError
from ragtune.index.index import Filters
from ragtune.project import Project
from ragtune.retrieval.search import Retriever
from tests.conftest import write

SECRET = "The finance refund threshold is 500 euros and needs the finance lead's approval."


@pytest.fixture
def corpus(project: Project, docs: Path) -> Retriever:
    write(
        docs / "public" / "pricing.md",
        "# Pricing\n\n## Pro\n\nThe Pro plan costs 49 euros per month.\n\n"
        "## Team\n\nThe Team plan costs 99 euros per month.",
    )
    write(docs / "public" / "support.md", "# Support\n\nSupport answers within four hours on weekdays.")
    write(docs / "finance" / "refunds.txt", SECRET)
    write(docs / "hidden" / "draft.md", "Draft: the refund threshold will become 700 euros.")
    ingest_paths(project, [docs / "public"], Defaults(source="handbook"))
    ingest_paths(project, [docs / "finance"], Defaults(source="finance", groups=("finance",)))
    ingest_paths(project, [docs / "hidden"], Defaults(source="drafts", may_retrieve=False))
    return Retriever(project.store, project.index, project.embedder, project.config.retrieval)


def ids(result) -> list[str]:  # type: ignore[no-untyped-def]
    return [h.doc_id for h in result.hits]


@pytest.mark.parametrize("mode", ["hybrid", "keyword", "dense"])
def test_groups_rights_and_source_filters_hold_in_every_mode(corpus: Retriever, mode: str) -> None:
    query = "refund threshold finance approval"
    # the restricted chunk is the best match, yet without the group it never appears, at any k
    public = ids(corpus.search(query, k=50, mode=mode))  # type: ignore[arg-type]
    assert "docs/finance/refunds.txt" not in public
    assert "docs/hidden/draft.md" not in public
    other = ids(corpus.search(query, k=50, filters=Filters(groups=("sales",)), mode=mode))  # type: ignore[arg-type]
    assert "docs/finance/refunds.txt" not in other
    member = corpus.search(query, k=3, filters=Filters(groups=("finance", "sales")), mode=mode)  # type: ignore[arg-type]
    assert member.hits[0].doc_id == "docs/finance/refunds.txt" and member.hits[0].text == SECRET
    assert "docs/hidden/draft.md" not in ids(
        corpus.search(query, k=50, filters=Filters(groups=("finance",)), mode=mode)
    )  # type: ignore[arg-type]
    only = ids(corpus.search("plan price", k=50, filters=Filters(sources=("handbook",)), mode=mode))  # type: ignore[arg-type]
    assert only and all(i.startswith("docs/public/") for i in only)


def test_hybrid_finds_the_right_section_with_citable_spans(corpus: Retriever, project: Project) -> None:
    hit = corpus.search("How much does the Team plan cost?", k=1).hits[0]
    assert (hit.doc_id, hit.heading) == ("docs/public/pricing.md", "Pricing > Team")
    text = project.store.db.execute("SELECT text FROM versions WHERE doc_id = ?", (hit.doc_id,)).fetchone()[0]
    assert text[hit.start : hit.end] == hit.text == "The Team plan costs 99 euros per month."
    assert hit.chunk_id == f"{hit.doc_id}@1#1" and set(hit.ranks) == {"keyword", "dense"}


def test_bm25_statistics_ignore_hidden_chunks(corpus: Retriever) -> None:
    """Scores equal BM25 over the visible corpus alone: a hidden document changes nothing."""
    index = corpus.index
    terms = corpus.analyzer.terms("refund threshold")
    with_hidden = index.bm25(terms, index.table.mask(Filters(groups=("finance",))))
    without = index.bm25(terms, index.table.mask(Filters()))
    visible = index.table.mask(Filters())
    assert (without[~visible] == 0).all()
    assert with_hidden[index.table.position["docs/finance/refunds.txt@1#0"]] > 0


def test_empty_query_is_refused(corpus: Retriever) -> None:
    with pytest.raises(RetrievalError, match="empty query"):
        corpus.search("   ")


def test_fusion_methods_and_rerank_are_configurable(corpus: Retriever) -> None:
    for fusion in ("rrf", "zscore"):
        corpus.settings.fusion = fusion  # type: ignore[assignment]
        assert corpus.search("Team plan price", k=1).hits[0].heading == "Pricing > Team"
    corpus.settings.rerank = "sentence-maxsim"
    result = corpus.search("How fast does support answer?", k=2)
    assert result.hits[0].doc_id == "docs/public/support.md" and "rerank" in result.timings_ms


def test_rerank_rescores_only_its_candidates(corpus: Retriever) -> None:
    corpus.settings.fusion = "zscore"
    plain = [h.chunk_id for h in corpus.search("plan price support", k=4).hits]
    corpus.settings.rerank = "sentence-maxsim"
    corpus.settings.rerank_candidates = 2
    reranked = corpus.search("plan price support", k=4).hits
    assert sorted(h.chunk_id for h in reranked[:2]) == sorted(plain[:2])  # the head is reordered, never replaced
    assert [h.chunk_id for h in reranked[2:]] == plain[2:]  # the rest keep their fused order
    assert reranked[1].score > reranked[2].score
