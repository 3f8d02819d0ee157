"""Ranking metrics for retrieval benchmarks, computed the way trec_eval computes them.

A run maps a query id to its ranked doc ids (best first); qrels map a query id to graded judgements. Every
metric is the mean over the queries in the qrels, so a query the system never answered scores 0 instead of
vanishing from the average (trec_eval's ``-c``). A judgement of 0 or below is non-relevant.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from ragtune.errors import BenchmarkError

Run = Mapping[str, Sequence[str]]
Qrels = Mapping[str, Mapping[str, int]]


def ndcg_at_k(run: Run, qrels: Qrels, k: int) -> float:
    """Mean nDCG@k with the judgement as gain and a log2(rank + 1) discount, like trec_eval's ``ndcg_cut``."""
    _check_k(k)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))

    def one(ranked: list[str], judged: Mapping[str, int]) -> float:
        ideal = sorted((rel for rel in judged.values() if rel > 0), reverse=True)[:k]
        if not ideal:
            return 0.0
        gains = [max(judged.get(doc, 0), 0) for doc in ranked[:k]]
        dcg = float(np.dot(gains, discounts[: len(gains)]))
        return dcg / float(np.dot(ideal, discounts[: len(ideal)]))

    return _mean(run, qrels, one)


def recall_at_k(run: Run, qrels: Qrels, k: int) -> float:
    """Mean share of a query's relevant docs found in its top k."""
    _check_k(k)

    def one(ranked: list[str], judged: Mapping[str, int]) -> float:
        relevant = {doc for doc, rel in judged.items() if rel > 0}
        if not relevant:
            return 0.0
        return len(relevant.intersection(ranked[:k])) / len(relevant)

    return _mean(run, qrels, one)


def mrr_at_k(run: Run, qrels: Qrels, k: int) -> float:
    """Mean reciprocal rank of the first relevant doc in the top k (0 when none is there)."""
    _check_k(k)

    def one(ranked: list[str], judged: Mapping[str, int]) -> float:
        for rank, doc in enumerate(ranked[:k], start=1):
            if judged.get(doc, 0) > 0:
                return 1.0 / rank
        return 0.0

    return _mean(run, qrels, one)


def evaluate(run: Run, qrels: Qrels) -> dict[str, float]:
    """The figures a ragtune benchmark reports, keyed ``metric@k``."""
    return {
        "ndcg@10": ndcg_at_k(run, qrels, 10),
        "recall@10": recall_at_k(run, qrels, 10),
        "recall@100": recall_at_k(run, qrels, 100),
        "mrr@10": mrr_at_k(run, qrels, 10),
    }


def percentile_ms(samples_s: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100, linear interpolation) of latencies given in seconds, in milliseconds."""
    if not samples_s:
        raise BenchmarkError("no latency samples to summarise; time at least one query")
    if not 0.0 <= q <= 100.0 or math.isnan(q):
        raise ValueError(f"percentile must be between 0 and 100, got {q}")
    return float(np.percentile(np.asarray(samples_s, dtype=np.float64), q)) * 1000.0


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")


def _mean(run: Run, qrels: Qrels, one: Callable[[list[str], Mapping[str, int]], float]) -> float:
    if not qrels:
        raise BenchmarkError("no judged queries to evaluate; the qrels are empty")
    total = 0.0
    for qid, judged in qrels.items():
        # A doc listed twice would be counted twice; trec_eval keeps one, so do we (the first, best rank).
        ranked = list(dict.fromkeys(run.get(qid, ())))
        total += one(ranked, judged)
    return total / len(qrels)
