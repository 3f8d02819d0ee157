"""Optional rerank stage, offline on CPU.

``sentence-maxsim`` rescores the fused candidates by the MiniLM similarity of their best-matching sentence (plus the
whole chunk's), which favours a chunk holding one sentence that answers the query over one that is merely on topic.
It is kept off by default: docs/benchmarks.md records whether it helps on the SQuAD set.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from ragtune.errors import RetrievalError
from ragtune.index.embedder import Embedder
from ragtune.index.index import Index


class Candidates(Protocol):
    """What a reranker reads: the embedder, the index, and the texts of candidate chunks (a Retriever is one)."""

    embedder: Embedder
    index: Index

    def chunk_texts(self, positions: Sequence[int]) -> list[str]: ...


Reranker = Callable[[Candidates, str, np.ndarray, "np.ndarray | None"], tuple[np.ndarray, np.ndarray]]
_RERANKERS: dict[str, Reranker] = {}
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


def register_reranker(name: str) -> Callable[[Reranker], Reranker]:
    def deco(fn: Reranker) -> Reranker:
        _RERANKERS[name] = fn
        return fn

    return deco


def get_reranker(name: str) -> Reranker:
    try:
        return _RERANKERS[name]
    except KeyError:
        raise RetrievalError(f"unknown reranker {name!r}; known: {', '.join(sorted(_RERANKERS))}") from None


@register_reranker("sentence-maxsim")
def sentence_maxsim(
    retriever: Candidates, query: str, positions: np.ndarray, query_vector: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    if len(positions) == 0:
        return positions, np.zeros(0)
    qv = query_vector if query_vector is not None else retriever.embedder.encode([query])[0]
    texts = retriever.chunk_texts([int(p) for p in positions])
    sentences: list[str] = []
    owner: list[int] = []
    for i, text in enumerate(texts):
        for sentence in _SENTENCE.split(text):
            if len(sentence.split()) >= 3:
                sentences.append(sentence)
                owner.append(i)
    best = np.full(len(positions), -1.0)
    if sentences:
        sims = retriever.embedder.encode(sentences) @ qv
        np.maximum.at(best, np.asarray(owner), sims)
    whole = retriever.index.cosine(qv, np.ones(len(retriever.index), dtype=bool))[positions]
    scores = 0.5 * best + 0.5 * whole
    order = np.argsort(-scores, kind="stable")
    return positions[order], scores[order]
