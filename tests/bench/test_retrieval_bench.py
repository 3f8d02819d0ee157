"""The retrieval benchmark end to end on a tiny BEIR folder and a tiny synthetic corpus, with the real MiniLM."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ragtune.bench.retrieval import SyntheticCorpus, run_beir, run_scale
from ragtune.cli.main import main

CORPUS = [
    ("normans", "Normans", "The Normans gave their name to Normandy, a region in northern France."),
    ("oxygen", "Oxygen", "Oxygen is a chemical element with symbol O and atomic number 8."),
    ("amazon", "Amazon rainforest", "The Amazon rainforest covers most of the Amazon basin of South America."),
    ("huguenots", "Huguenots", "The Huguenots were French Protestants who followed the teachings of John Calvin."),
    ("complexity", "Complexity theory", "Complexity theory classifies computational problems by difficulty."),
    ("rhine", "Rhine", "The Rhine flows from the Swiss Alps to the North Sea through Germany."),
]
QUERIES = {
    "q1": ("In what country is Normandy located?", "normans"),
    "q2": ("What is the atomic number of oxygen?", "oxygen"),
    "q3": ("Which basin does the rainforest cover?", "amazon"),
    "q4": ("Whose teachings did the Huguenots follow?", "huguenots"),
}
METRICS = {"ndcg@10", "recall@10", "recall@100", "mrr@10"}


@pytest.fixture
def beir(tmp_path: Path) -> Path:
    folder = tmp_path / "tiny_beir"
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": i, "title": t, "text": x}) + "\n" for i, t, x in CORPUS), encoding="utf-8"
    )
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": q, "text": text}) + "\n" for q, (text, _) in QUERIES.items()), encoding="utf-8"
    )
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t1\n" for q, (_, d) in QUERIES.items()), encoding="utf-8"
    )
    return folder


def _assert_metrics(metrics: dict[str, float]) -> None:
    assert set(metrics) == METRICS
    assert all(0.0 <= value <= 1.0 for value in metrics.values())


@pytest.mark.slow
def test_beir_report_covers_every_system_with_sane_figures(beir: Path, embedder: Any) -> None:
    report = run_beir(beir, latency_queries=3, rerank_sample=2, embedder=embedder)
    json.dumps(report, allow_nan=False)  # plain JSON, no NaN or infinity
    assert report["dataset"] == {
        "folder": str(beir),
        "documents": 6,
        "chunks": 6,
        "queries": 4,
        "answerable_queries": 4,
        "ingest_errors": 0,
    }
    names = [s["name"] for s in report["systems"]]
    assert names == [
        "ragtune hybrid rrf",
        "ragtune hybrid zscore",
        "ragtune keyword",
        "ragtune dense",
        "bm25s",
        "dense-exact",
    ]
    for system in report["systems"]:
        _assert_metrics(system["metrics"])
        assert system["metrics"]["recall@100"] == 1.0  # six documents: everything is in the top 100
        assert 0.0 < system["latency_ms"]["p50"] <= system["latency_ms"]["p95"]
        assert system["latency_ms"]["queries"] == 3
        assert system["queries_per_s"] > 0 and system["index_docs_per_s"] > 0
    # The answers share words with their passages, so keyword search finds every one first.
    assert report["systems"][2]["metrics"]["mrr@10"] == 1.0
    assert [(r["fusion"], r["keyword_weight"]) for r in report["weight_sweep"]] == [
        ("rrf", 0.3),
        ("rrf", 0.4),
        ("rrf", 0.5),
        ("zscore", 0.3),
        ("zscore", 0.4),
        ("zscore", 0.5),
    ]
    for row in report["weight_sweep"]:
        _assert_metrics({m: row[m] for m in METRICS})
    assert report["rerank"]["queries"] == 2
    _assert_metrics(report["rerank"]["with"]["metrics"])
    _assert_metrics(report["rerank"]["without"]["metrics"])
    assert report["indexing"]["ratio"] > 0 and report["keyword_vs_bm25s"]["ratio"] > 0
    assert [t["target"].split(" ")[0] for t in report["targets"]] == ["hybrid", "hybrid", "keyword", "indexing"]
    assert all(isinstance(t["passed"], bool) and t["detail"] for t in report["targets"])


def test_synthetic_corpus_is_deterministic_and_chunk_sized() -> None:
    corpus = SyntheticCorpus(40, seed=3)
    docs = list(corpus)
    assert len(docs) == len(corpus) == 40
    assert [d.doc_id for d in docs] == [f"syn-{i:07d}" for i in range(40)]
    assert docs == list(SyntheticCorpus(40, seed=3))
    assert [d.text for d in SyntheticCorpus(40, seed=4)] != [d.text for d in docs]
    assert all(30 <= len(d.text.split()) <= 60 and d.title for d in docs)
    assert corpus.document(17) == docs[17]  # any document can be rebuilt alone, without the ones before it
    assert corpus.queries(5) == SyntheticCorpus(40, seed=3).queries(5)
    assert all(3 <= len(q.split()) <= 5 for q in corpus.queries(20))
    # Zipf-like: a few words carry much of the text, and most of the vocabulary is rare.
    words = [w.strip(".").lower() for d in docs for w in d.text.split()]
    top = max(words.count(w) for w in set(words))
    assert top > 0.03 * len(words) and len(set(words)) > 0.3 * len(words)


@pytest.mark.slow
def test_scale_mode_measures_freshness_and_forgetting(embedder: Any) -> None:
    report = run_scale(300, queries=20, embedder=embedder)
    json.dumps(report, allow_nan=False)
    assert report["corpus"]["documents"] == 300 and report["corpus"]["chunks"] >= 300
    for mode in ("hybrid", "keyword", "dense"):
        latency = report["query_latency_ms"][mode]
        assert 0.0 < latency["p50"] <= latency["p95"] and latency["queries"] == 20
    fresh = report["freshness"]
    assert fresh["updated"] and fresh["found"] and fresh["old_version_hidden"]
    assert 0.0 < fresh["ingest_seconds"] <= fresh["seconds_to_searchable"]
    assert report["forget"]["gone_from_search"] and report["forget"]["segments_rewritten"] >= 1
    assert report["corpus"]["chunks_after"] == report["corpus"]["chunks"]  # one changed in, one forgotten out
    assert [t["passed"] for t in report["targets"]] == [t["value"] <= t["threshold"] for t in report["targets"]]


def test_cli_needs_something_to_run(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "retrieval"])
    assert exit_.value.code == 1
    assert capsys.readouterr().err.strip() == "error: nothing to run; pass --beir DIR, --scale N, or both"


def test_cli_reports_a_missing_folder_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "retrieval", "--beir", str(tmp_path / "absent"), "--json"])
    assert exit_.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "no such folder" in err[0]


@pytest.mark.slow
def test_cli_json_report(beir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "retrieval", "--beir", str(beir), "--rerank-sample", "0", "--latency-queries", "2", "--json"])
    assert exit_.value.code == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {"beir"} and report["beir"]["rerank"] is None
    assert len(report["beir"]["systems"]) == 6
