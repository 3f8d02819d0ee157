"""Hybrid search over a project: filter, score with BM25 and MiniLM, fuse, optionally rerank, resolve texts."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from ragtune.config import RetrievalSection
from ragtune.corpus.chunking import index_text
from ragtune.errors import RetrievalError
from ragtune.index.analyzer import Analyzer
from ragtune.index.embedder import Embedder
from ragtune.index.index import Filters, Index
from ragtune.retrieval.fusion import get_fusion, top_k
from ragtune.store.db import Store

Mode = Literal["hybrid", "keyword", "dense"]


@dataclass
class Hit:
    """One retrieved chunk, with where it came from (for citations) and how each retriever ranked it."""

    doc_id: str
    version: int
    chunk_id: str
    score: float
    text: str
    title: str = ""
    heading: str = ""
    source: str = ""
    start: int = 0
    end: int = 0
    ranks: dict[str, int | None] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SearchResult:
    hits: list[Hit]
    timings_ms: dict[str, float]
    visible_chunks: int


class Retriever:
    """Searches one project's index.

    >>> retriever = Retriever(project.store, project.index, project.embedder, project.config.retrieval)
    >>> retriever.search("What is the Pro plan's rate limit?", k=3).hits[0].doc_id
    """

    def __init__(self, store: Store, index: Index, embedder: Embedder, settings: RetrievalSection) -> None:
        self.store = store
        self.index = index
        self.embedder = embedder
        self.settings = settings
        self.analyzer = Analyzer()

    def search(
        self,
        query: str,
        k: int | None = None,
        filters: Filters | None = None,
        mode: Mode = "hybrid",
        query_vector: np.ndarray | None = None,
    ) -> SearchResult:
        if not query.strip():
            raise RetrievalError("empty query; ask something")
        k = k or self.settings.k
        filters = filters or Filters()
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        self.index.refresh()
        mask = self.index.table.mask(filters)
        timings["filter"] = _ms(t0)
        positions, scores, ranks = self.rank(query, k, mask, mode, query_vector, timings)
        t1 = time.perf_counter()
        hits = self.resolve(positions, scores, ranks)
        timings["resolve"] = _ms(t1)
        timings["total"] = _ms(t0)
        return SearchResult(hits, timings, int(mask.sum()))

    def search_within(self, query: str, doc_ids: Sequence[str], k: int, filters: Filters | None = None) -> SearchResult:
        """Hybrid search restricted to the chunks of ``doc_ids`` (the oracle arm: gold evidence, best part first)."""
        t0 = time.perf_counter()
        self.index.refresh()
        filters = filters or Filters()
        wanted = set(doc_ids)
        table = self.index.table
        mask = table.mask(filters) & np.fromiter(
            (cid.rsplit("@", 1)[0] in wanted for cid in table.chunk_ids), dtype=bool, count=len(table.chunk_ids)
        )
        timings: dict[str, float] = {"filter": _ms(t0)}
        if not mask.any():
            return SearchResult([], timings | {"total": _ms(t0)}, 0)
        positions, scores, ranks = self.rank(query, k, mask, "hybrid", None, timings)
        hits = self.resolve(positions, scores, ranks)
        timings["total"] = _ms(t0)
        return SearchResult(hits, timings, int(mask.sum()))

    def rank(
        self,
        query: str,
        k: int,
        mask: np.ndarray,
        mode: Mode,
        query_vector: np.ndarray | None = None,
        timings: dict[str, float] | None = None,
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Positions of the best ``k`` visible chunks, their scores, and each retriever's ranking."""
        timings = timings if timings is not None else {}
        s = self.settings
        keyword = dense = None
        t = time.perf_counter()
        if mode in ("hybrid", "keyword"):
            keyword = self.index.bm25(self.analyzer.terms(query), mask)
            timings["keyword"] = _ms(t)
        if mode in ("hybrid", "dense"):
            t = time.perf_counter()
            if self.index.dim and self.index.dim != self.embedder.dim:
                raise RetrievalError(
                    f"the index holds {self.index.dim}-dimensional vectors but the embedder makes {self.embedder.dim}; "
                    "run `ragtune reindex`"
                )
            if query_vector is None:
                query_vector = self.embedder.encode([query])[0]
            timings["embed"] = _ms(t)
            t = time.perf_counter()
            dense = self.index.cosine(query_vector, mask)
            timings["dense"] = _ms(t)
        t = time.perf_counter()
        ranks: dict[str, np.ndarray] = {}
        if keyword is not None:
            ranks["keyword"] = top_k(keyword, s.candidates, mask & (keyword > 0))
        if dense is not None:
            ranks["dense"] = top_k(dense, s.candidates, mask)
        if keyword is not None and dense is not None:
            positions, scores = get_fusion(s.fusion)(
                keyword,
                dense,
                mask,
                max(k, s.rerank_candidates if s.rerank != "none" else k),
                candidates=s.candidates,
                w_keyword=s.keyword_weight,
                w_dense=s.dense_weight,
                rrf_k=s.rrf_k,
            )
            timings["fuse"] = _ms(t)
            if s.rerank != "none":
                from ragtune.retrieval.rerank import get_reranker

                t = time.perf_counter()
                n = s.rerank_candidates
                head, head_scores = get_reranker(s.rerank)(self, query, positions[:n], query_vector)
                # the rest keep their fused order, below every reranked result
                tail = scores[n:] - scores[n:].max() + head_scores.min() - 1.0 if len(scores) > n else scores[n:]
                positions = np.concatenate([head, positions[n:]])
                scores = np.concatenate([head_scores, tail])
                timings["rerank"] = _ms(t)
        elif keyword is not None:
            positions = ranks["keyword"]
            scores = keyword[positions]
        else:
            assert dense is not None
            positions = ranks["dense"]
            scores = dense[positions]
        return positions[:k], np.asarray(scores[:k], dtype=np.float64), ranks

    def resolve(self, positions: np.ndarray, scores: np.ndarray, ranks: dict[str, np.ndarray]) -> list[Hit]:
        """Turn index positions into hits with their text, read from the store in one query."""
        if len(positions) == 0:
            return []
        chunk_ids = [self.index.table.chunk_ids[int(p)] for p in positions]
        rank_of = {name: {int(p): r + 1 for r, p in enumerate(order)} for name, order in ranks.items()}
        marks = ",".join("?" * len(chunk_ids))
        rows = {
            row["chunk_id"]: row
            for row in self.store.db.execute(
                "SELECT c.chunk_id, c.doc_id, c.version, c.start, c.end, c.heading, d.source, v.title, "
                "substr(v.text, c.start + 1, c.end - c.start) AS body "
                f"FROM chunks c JOIN versions v USING (doc_id, version) JOIN documents d USING (doc_id) "
                f"WHERE c.chunk_id IN ({marks})",
                chunk_ids,
            )
        }
        hits = []
        for pos, cid, score in zip(positions, chunk_ids, scores, strict=True):
            row = rows.get(cid)
            if row is None:
                continue  # forgotten since the view was loaded
            hits.append(
                Hit(
                    doc_id=row["doc_id"],
                    version=row["version"],
                    chunk_id=cid,
                    score=round(float(score), 6),
                    text=row["body"],
                    title=row["title"],
                    heading=row["heading"],
                    source=row["source"],
                    start=row["start"],
                    end=row["end"],
                    ranks={name: rank_of[name].get(int(pos)) for name in rank_of},
                )
            )
        return hits

    def chunk_texts(self, positions: Sequence[int]) -> list[str]:
        """The indexed text (heading and body) of chunks, for reranking."""
        return [
            index_text(h.heading, h.text) for h in self.resolve(np.asarray(positions), np.zeros(len(positions)), {})
        ]


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000.0, 3)
