"""The reference systems ragtune's retrieval is measured against in the same benchmark run.

Each peer indexes plain texts (the benchmark passes ``title + "\\n" + text`` to every system alike) and
returns doc ids best first. ``index`` returns its wall time in seconds; per-query latency is measured by
timing ``search_one``, see :func:`latencies_s`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from ragtune.errors import RetrievalError

Encode = Callable[[list[str]], npt.NDArray[np.float32]]

# Bound the (queries x docs) score matrix of one dense chunk, so a large query set cannot exhaust memory.
_MAX_SCORES_PER_CHUNK = 16_000_000


class Peer(Protocol):
    """What the benchmark needs from a reference system."""

    name: str

    def index(self, ids: list[str], texts: list[str]) -> float: ...

    def search_batch(self, queries: list[str], k: int) -> list[list[str]]: ...

    def search_one(self, query: str, k: int) -> list[str]: ...


class Bm25sPeer:
    """BM25 from the ``bm25s`` library with its default parameters, English stopwords and Snowball stemming.

    >>> peer = Bm25sPeer(); peer.index(["d1", "d2"], ["cats purr", "dogs bark"])
    >>> peer.search_one("a purring cat", k=1)  # ['d1']
    """

    name = "bm25s"

    def __init__(self) -> None:
        # Imported here: bm25s is an optional extra, and ragtune must start without it.
        import bm25s
        import Stemmer

        self._bm25s = bm25s
        self._stemmer = Stemmer.Stemmer("english")
        self._model: Any = None
        self._ids: list[str] = []

    def index(self, ids: list[str], texts: list[str]) -> float:
        _check_corpus(ids, texts)
        start = time.perf_counter()
        tokens = self._bm25s.tokenize(texts, stopwords="en", stemmer=self._stemmer, show_progress=False)
        model = self._bm25s.BM25()
        model.index(tokens, show_progress=False)
        elapsed = time.perf_counter() - start
        self._model, self._ids = model, list(ids)
        return elapsed

    def search_batch(self, queries: list[str], k: int) -> list[list[str]]:
        if self._model is None:
            raise RetrievalError("the bm25s peer has no index; call index() before searching")
        _check_k(k)
        if not queries:
            return []
        # return_ids=False gives token strings, which retrieve() maps onto the corpus vocabulary; a query whose
        # tokens are all unknown falls back to bm25s's empty token instead of failing.
        tokens = self._bm25s.tokenize(
            queries, stopwords="en", stemmer=self._stemmer, return_ids=False, show_progress=False
        )
        docs, _scores = self._model.retrieve(tokens, k=min(k, len(self._ids)), show_progress=False)
        return [[self._ids[i] for i in row] for row in docs.tolist()]

    def search_one(self, query: str, k: int) -> list[str]:
        return self.search_batch([query], k)[0]


class BruteForceDensePeer:
    """Exact cosine search over every document embedding: the ceiling any approximate dense index aims for.

    ``encode`` must return one L2-normalised float32 row per text, so a dot product is the cosine.

    >>> peer = BruteForceDensePeer(lambda texts: model.encode(texts, normalize_embeddings=True))
    >>> peer.index(ids, texts); peer.search_batch(queries, k=10)
    """

    name = "dense-exact"

    def __init__(self, encode: Encode) -> None:
        self._encode = encode
        self._matrix: npt.NDArray[np.float32] | None = None
        self._ids: list[str] = []

    def index(self, ids: list[str], texts: list[str]) -> float:
        _check_corpus(ids, texts)
        start = time.perf_counter()
        matrix = self._embed(texts)
        elapsed = time.perf_counter() - start
        self._matrix, self._ids = matrix, list(ids)
        return elapsed

    def search_batch(self, queries: list[str], k: int) -> list[list[str]]:
        if self._matrix is None:
            raise RetrievalError("the dense peer has no index; call index() before searching")
        _check_k(k)
        if not queries:
            return []
        vectors = self._embed(queries)
        if vectors.shape[1] != self._matrix.shape[1]:
            raise RetrievalError(
                f"query embeddings have {vectors.shape[1]} dimensions, the index {self._matrix.shape[1]}; "
                "encode queries and documents with the same model"
            )
        k = min(k, len(self._ids))
        chunk = max(1, _MAX_SCORES_PER_CHUNK // len(self._ids))
        results: list[list[str]] = []
        for lo in range(0, len(vectors), chunk):
            scores = vectors[lo : lo + chunk] @ self._matrix.T
            results.extend([self._ids[i] for i in row] for row in _top_k(scores, k))
        return results

    def search_one(self, query: str, k: int) -> list[str]:
        return self.search_batch([query], k)[0]

    def _embed(self, texts: list[str]) -> npt.NDArray[np.float32]:
        vectors = np.asarray(self._encode(texts), dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(texts):
            raise RetrievalError(
                f"the encoder returned shape {vectors.shape} for {len(texts)} texts; it must return one row per text"
            )
        return vectors


def latencies_s(peer: Peer, queries: Sequence[str], k: int) -> list[float]:
    """Time ``peer.search_one`` on each query in turn, in seconds (feed them to ``percentile_ms``)."""
    samples: list[float] = []
    for query in queries:
        start = time.perf_counter()
        peer.search_one(query, k)
        samples.append(time.perf_counter() - start)
    return samples


def _top_k(scores: npt.NDArray[np.float32], k: int) -> npt.NDArray[np.intp]:
    """Column indices of the k best scores per row, best first; equal scores are ordered by index."""
    if k < scores.shape[1]:
        candidates = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    else:
        candidates = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
    picked = np.take_along_axis(scores, candidates, axis=1)
    # lexsort sorts by the last key first: score descending, then index ascending.
    order = np.lexsort((candidates, -picked), axis=1)
    return np.take_along_axis(candidates, order, axis=1)


def _check_corpus(ids: list[str], texts: list[str]) -> None:
    if len(ids) != len(texts):
        raise ValueError(f"{len(ids)} ids for {len(texts)} texts; pass one id per text")
    if not ids:
        raise RetrievalError("cannot index an empty corpus; pass at least one document")
    if len(set(ids)) != len(ids):
        raise RetrievalError("document ids must be unique")


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
