"""The IR metrics, checked against trec_eval (through pytrec_eval) on fixed data and by hand."""

from __future__ import annotations

import random

import pytest

from ragtune.bench.metrics import evaluate, mrr_at_k, ndcg_at_k, percentile_ms, recall_at_k
from ragtune.errors import BenchmarkError

pytrec_eval = pytest.importorskip("pytrec_eval", reason="install the dev extra (pytrec-eval-terrier)")

Run = dict[str, list[str]]
Qrels = dict[str, dict[str, int]]


def _fixed_data() -> tuple[Run, Qrels]:
    """50 seeded queries over 300 docs with grades 0-2, including the awkward cases on purpose."""
    rng = random.Random(20240611)
    docs = [f"d{i}" for i in range(300)]
    run: Run = {}
    qrels: Qrels = {}
    for q in range(50):
        qid = f"q{q}"
        judged = rng.sample(docs, rng.randint(1, 8))
        qrels[qid] = {doc: rng.choice([0, 1, 1, 2]) for doc in judged}
        qrels[qid][judged[0]] = rng.choice([1, 2])  # at least one relevant doc per query
        if q % 10 == 3:
            continue  # never answered: must count as 0, not drop out of the mean
        ranked = rng.sample(docs, rng.randint(5, 150))
        if q % 7 == 0:
            ranked = [doc for doc in ranked if doc not in qrels[qid]]  # a query with no hits
        elif rng.random() < 0.5:
            # Pull relevant docs into the top 10 so early-rank metrics have something to measure.
            hits = [doc for doc in judged if doc not in ranked[:10]][:3]
            ranked = [d for d in ranked if d not in hits]
            for doc in hits:
                ranked.insert(rng.randint(0, 4), doc)
        run[qid] = ranked
    qrels["q_all_zero"] = {"d1": 0, "d2": 0}  # judged, nothing relevant
    run["q_all_zero"] = ["d1", "d2", "d3"]
    return run, qrels


def _reference(run: Run, qrels: Qrels, measure: str, key: str, cut_run_at: int | None = None) -> float:
    """trec_eval's mean of ``key`` over the qrels' queries, absent queries scoring 0 (trec_eval -c)."""
    # Distinct descending scores pin trec_eval's order to the run's (it would break score ties by doc id).
    scored = {
        qid: {doc: float(len(ranked) - i) for i, doc in enumerate(ranked[:cut_run_at])}
        for qid, ranked in run.items()
        if ranked
    }
    per_query = pytrec_eval.RelevanceEvaluator(qrels, {measure}).evaluate(scored)
    return float(sum(per_query.get(qid, {}).get(key, 0.0) for qid in qrels)) / len(qrels)


@pytest.fixture(scope="module")
def data() -> tuple[Run, Qrels]:
    return _fixed_data()


@pytest.mark.parametrize("k", [1, 3, 10, 100])
def test_ndcg_matches_trec_eval(data: tuple[Run, Qrels], k: int) -> None:
    run, qrels = data
    expected = _reference(run, qrels, f"ndcg_cut.{k}", f"ndcg_cut_{k}")
    assert ndcg_at_k(run, qrels, k) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("k", [1, 5, 10, 100])
def test_recall_matches_trec_eval(data: tuple[Run, Qrels], k: int) -> None:
    run, qrels = data
    expected = _reference(run, qrels, f"recall.{k}", f"recall_{k}")
    assert recall_at_k(run, qrels, k) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("k", [1, 3, 10])
def test_mrr_matches_trec_eval(data: tuple[Run, Qrels], k: int) -> None:
    run, qrels = data
    # trec_eval's recip_rank has no cutoff, so hand it the run already cut at k.
    expected = _reference(run, qrels, "recip_rank", "recip_rank", cut_run_at=k)
    assert mrr_at_k(run, qrels, k) == pytest.approx(expected, abs=1e-6)


def test_fixed_data_exercises_the_edge_cases(data: tuple[Run, Qrels]) -> None:
    run, qrels = data
    assert len(qrels) == 51
    assert any(q not in run for q in qrels)  # unanswered queries
    assert any(q in run and not set(run[q]) & set(qrels[q]) for q in qrels)  # answered, no hits
    assert any(2 in judged.values() for judged in qrels.values())  # graded gains
    assert 0.0 < ndcg_at_k(run, qrels, 10) < 1.0


def test_evaluate_reports_the_benchmark_keys(data: tuple[Run, Qrels]) -> None:
    run, qrels = data
    figures = evaluate(run, qrels)
    assert set(figures) == {"ndcg@10", "recall@10", "recall@100", "mrr@10"}
    assert figures["recall@10"] == recall_at_k(run, qrels, 10)


def test_one_relevant_doc_at_rank_three() -> None:
    run = {"q": ["a", "b", "hit", "c"]}
    qrels = {"q": {"hit": 1}}
    assert mrr_at_k(run, qrels, 10) == pytest.approx(1 / 3)
    assert mrr_at_k(run, qrels, 2) == 0.0
    assert recall_at_k(run, qrels, 3) == 1.0
    assert recall_at_k(run, qrels, 2) == 0.0
    assert ndcg_at_k(run, qrels, 10) == pytest.approx(0.5)  # 1/log2(4) over an ideal of 1/log2(2)


def test_graded_ndcg_by_hand() -> None:
    # Ranked gains (1, 2); ideal (2, 1): (1 + 2/log2 3) / (2 + 1/log2 3).
    run = {"q": ["weak", "strong"]}
    qrels = {"q": {"strong": 2, "weak": 1, "unjudged_zero": 0}}
    expected = (1 + 2 / 1.584962500721156) / (2 + 1 / 1.584962500721156)
    assert ndcg_at_k(run, qrels, 10) == pytest.approx(expected)


def test_half_the_relevant_docs_is_half_recall() -> None:
    assert recall_at_k({"q": ["a", "x", "y"]}, {"q": {"a": 1, "b": 2}}, 3) == 0.5


def test_missing_query_counts_as_zero() -> None:
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}}
    run = {"q1": ["a"]}
    assert mrr_at_k(run, qrels, 10) == 0.5
    assert recall_at_k(run, qrels, 10) == 0.5
    assert ndcg_at_k(run, qrels, 10) == 0.5


def test_duplicate_docs_count_once() -> None:
    assert recall_at_k({"q": ["a", "a"]}, {"q": {"a": 1, "b": 1}}, 10) == 0.5


def test_queries_only_in_the_run_are_ignored() -> None:
    assert mrr_at_k({"q": ["a"], "extra": ["z"]}, {"q": {"a": 1}}, 10) == 1.0


def test_empty_qrels_and_bad_k_are_errors() -> None:
    with pytest.raises(BenchmarkError, match="qrels are empty"):
        ndcg_at_k({}, {}, 10)
    with pytest.raises(ValueError, match="k must be at least 1"):
        recall_at_k({"q": ["a"]}, {"q": {"a": 1}}, 0)


def test_percentile_ms() -> None:
    samples = [0.001, 0.002, 0.003, 0.004, 0.010]
    assert percentile_ms(samples, 50) == pytest.approx(3.0)
    assert percentile_ms(samples, 100) == pytest.approx(10.0)
    assert percentile_ms(samples, 0) == pytest.approx(1.0)
    assert percentile_ms([0.005], 95) == pytest.approx(5.0)
    with pytest.raises(BenchmarkError, match="no latency samples"):
        percentile_ms([], 50)
    with pytest.raises(ValueError, match="between 0 and 100"):
        percentile_ms(samples, 101)
