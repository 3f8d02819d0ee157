"""The retrieval benchmark: ragtune's hybrid search and its parts, against bm25s and exact MiniLM search.

:func:`run_beir` ingests a BEIR folder into a throwaway project through the real pipeline and measures, in one run,
nDCG@10, recall@10/100, MRR@10, per-query latency, batched queries/s and indexing rate for every system.
:func:`run_scale` ingests a synthetic corpus of N chunk-sized documents and measures query latency and how soon a
changed document becomes searchable. Both return plain JSON-ready dicts; :func:`check_targets` reads them back
as pass/fail lines against the targets of the retrieval issue.
"""

from __future__ import annotations

import os
import platform
import random
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ragtune import __version__
from ragtune.bench.beir import load_beir
from ragtune.bench.metrics import evaluate, percentile_ms
from ragtune.bench.peers import Bm25sPeer, BruteForceDensePeer, latencies_s
from ragtune.config import RetrievalSection
from ragtune.corpus.forget import forget
from ragtune.corpus.ingest import ingest_documents
from ragtune.corpus.model import RawDocument, Rights
from ragtune.errors import BenchmarkError
from ragtune.index.embedder import Embedder
from ragtune.index.index import Filters
from ragtune.project import Project, init_project
from ragtune.retrieval.search import Mode, Retriever

K = 100  # the deepest cut-off any reported metric reads (recall@100)
WEIGHT_SWEEP = ((0.3, 0.7), (0.4, 0.6), (0.5, 0.5))  # (keyword, dense)
HYBRID_MARGIN = 0.02
Advance = Callable[[int, int], None]  # (documents just done, documents in all)
Row = dict[str, Any]


class Reporter(Protocol):
    """Where a long benchmark says what it is doing; the CLI draws on stderr, tests stay quiet."""

    def phase(self, message: str) -> None: ...

    def bar(self, label: str) -> AbstractContextManager[Advance]: ...


class Quiet:
    """A reporter that reports nothing."""

    def phase(self, message: str) -> None:
        pass

    def bar(self, label: str) -> AbstractContextManager[Advance]:
        return nullcontext(lambda n, total: None)


# -- BEIR ------------------------------------------------------------------------------------------------------


def run_beir(
    folder: Path,
    *,
    limit_queries: int | None = None,
    latency_queries: int = 1000,
    rerank_sample: int = 300,
    seed: int = 0,
    reporter: Reporter | None = None,
    embedder: Embedder | None = None,
) -> Row:
    """Benchmark every system on one BEIR split; see the module docstring for what is measured."""
    say = reporter or Quiet()
    started = time.perf_counter()
    data = load_beir(folder)
    qids = sorted(data.queries)
    if limit_queries is not None and limit_queries < len(qids):
        qids = sorted(random.Random(seed).sample(qids, limit_queries))
    corpus_file = Path(folder) / "corpus.jsonl"
    ids = list(data.corpus)
    texts = [f"{title}\n{text}" for title, text in data.corpus.values()]
    rights = Rights(source="beir", license="see data set")
    documents = [
        RawDocument(doc_id, title, text, rights, where=f"{corpus_file.name}:{n}", path=str(corpus_file))
        for n, (doc_id, (title, text)) in enumerate(data.corpus.items(), start=1)
    ]

    with throwaway_project(embedder) as project:
        say.phase(f"loading {project.embedder.name}")
        project.embedder.encode(["warm up"])  # model load is not part of any figure
        say.phase(f"raw MiniLM encoding of {len(texts)} documents (the dense peer's index)")
        dense_peer = BruteForceDensePeer(project.embedder.encode)
        raw_s = [dense_peer.index(ids, texts)]
        with say.bar("ingesting through ragtune") as advance:
            t0 = time.perf_counter()
            ingest = ingest_documents(project, documents, progress=advance, total=len(documents))
            ingest_s = time.perf_counter() - t0
        # Encode again after ingesting, so that a machine slowing down or speeding up mid-run skews the ratio less.
        say.phase(f"raw MiniLM encoding of {len(texts)} documents, again")
        t0 = time.perf_counter()
        project.embedder.encode(texts)
        raw_s.append(time.perf_counter() - t0)
        say.phase("indexing with bm25s")
        bm25_peer = _bm25s()
        bm25_s = bm25_peer.index(ids, texts)
        say.phase(f"embedding {len(qids)} queries")
        t0 = time.perf_counter()
        queries = _Queries(qids, [data.queries[q] for q in qids], {q: data.qrels[q] for q in qids})
        queries.vectors = project.embedder.encode(queries.texts)
        embed_s = time.perf_counter() - t0
        ranker = _Ranker.over(project)
        timed = queries.sample(latency_queries, seed).texts

        systems: list[Row] = []
        for name, mode, changes in ranker.systems():
            say.phase(f"{name}: ranking {len(qids)} queries, then timing {len(timed)} one at a time")
            with ranker.configured(changes):
                run, rank_s = ranker.run(queries, mode)
                samples = ranker.latencies(timed, mode)
            batch_s = rank_s + (embed_s if mode != "keyword" else 0.0)
            config = {k: v for k, v in changes.items() if k != "candidates"}
            row = _system_row(name, "ragtune", run, queries.qrels, samples, len(qids) / batch_s, len(ids) / ingest_s)
            systems.append({**row, "mode": mode, **config})
        for peer, index_s in ((bm25_peer, bm25_s), (dense_peer, raw_s[0])):
            say.phase(f"{peer.name}: searching {len(qids)} queries, then timing {len(timed)} one at a time")
            t0 = time.perf_counter()
            run = dict(zip(qids, peer.search_batch(queries.texts, K), strict=True))
            batch_s = time.perf_counter() - t0
            samples = latencies_s(peer, timed, K)
            systems.append(
                _system_row(peer.name, "peer", run, queries.qrels, samples, len(qids) / batch_s, len(ids) / index_s)
            )

        say.phase("weight sweep")
        sweep = []
        for fusion in ("rrf", "zscore"):
            for w_keyword, w_dense in WEIGHT_SWEEP:
                changes = {"fusion": fusion, "keyword_weight": w_keyword, "dense_weight": w_dense}
                with ranker.configured(changes):
                    run, _ = ranker.run(queries, "hybrid")
                sweep.append({**changes, **_rounded(evaluate(run, queries.qrels))})

        rerank = None
        if rerank_sample > 0:
            picked = queries.sample(rerank_sample, seed + 1)
            say.phase(f"rerank: sentence-maxsim on {len(picked.ids)} queries")
            rerank = _rerank_comparison(ranker, picked)
        batch_size = project.config.embedder.batch_size

    keyword, bm25 = (next(s for s in systems if s["name"] == name) for name in ("ragtune keyword", "bm25s"))
    report: Row = {
        "kind": "beir",
        "dataset": {
            "folder": str(folder),
            "documents": len(documents),
            "chunks": len(ranker.doc_of),
            "queries": len(qids),
            "answerable_queries": len(data.queries),
            "ingest_errors": len(ingest.errors),
        },
        "settings": {
            "k": K,
            "depth_chunks": ranker.depth,
            "latency_queries": len(timed),
            "seed": seed,
            "batch_size": batch_size,
            "default_fusion": _defaults().fusion,
            "candidates": _defaults().candidates,
        },
        "machine": machine(),
        "indexing": {
            "documents": len(documents),
            "chunks": ingest.chunks,
            "ragtune_seconds": round(ingest_s, 3),
            "ragtune_embed_seconds": round(ingest.embed_seconds, 3),
            "ragtune_docs_per_s": round(len(ids) / ingest_s, 2),
            "raw_encode_seconds": [round(t, 3) for t in raw_s],
            "raw_encode_docs_per_s": round(len(ids) / float(np.mean(raw_s)), 2),
            "ratio": round(float(np.mean(raw_s)) / ingest_s, 4),
        },
        "query_embedding": {"seconds": round(embed_s, 3), "queries_per_s": round(len(qids) / embed_s, 2)},
        "systems": systems,
        "keyword_vs_bm25s": {
            "ragtune_keyword_queries_per_s": keyword["queries_per_s"],
            "bm25s_queries_per_s": bm25["queries_per_s"],
            "ratio": round(keyword["queries_per_s"] / bm25["queries_per_s"], 4),
        },
        "weight_sweep": sweep,
        "rerank": rerank,
        "seconds": round(time.perf_counter() - started, 1),
    }
    report["targets"] = check_targets(report)
    return report


@dataclass
class _Queries:
    """The scored queries with their judgements, and their embeddings once computed (in one batch)."""

    ids: list[str]
    texts: list[str]
    qrels: dict[str, dict[str, int]]
    vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))

    def sample(self, count: int, seed: int) -> _Queries:
        """A seeded subset, in the original order."""
        if count >= len(self.ids):
            return self
        picked = sorted(random.Random(seed).sample(range(len(self.ids)), count))
        ids = [self.ids[i] for i in picked]
        vectors = self.vectors[picked] if len(self.vectors) else self.vectors
        return _Queries(ids, [self.texts[i] for i in picked], {q: self.qrels[q] for q in ids}, vectors)


@dataclass
class _Ranker:
    """ragtune's retriever over every chunk of the throwaway project, ranking documents by their best chunk."""

    retriever: Retriever
    mask: np.ndarray
    doc_of: list[str]  # chunk position -> doc id
    depth: int  # chunks asked for, so that split documents cannot crowd the top K documents out

    @classmethod
    def over(cls, project: Project) -> _Ranker:
        retriever = Retriever(project.store, project.index, project.embedder, project.config.retrieval)
        table = project.index.table
        doc_of = [cid.rsplit("@", 1)[0] for cid in table.chunk_ids]
        depth = min(len(doc_of), K * max(Counter(doc_of).values(), default=1))
        return cls(retriever, table.mask(Filters()), doc_of, depth)

    def systems(self) -> list[tuple[str, Mode, dict[str, Any]]]:
        """ragtune's hybrid under both fusions at the default weights, then each part alone."""
        default = _defaults()
        weights = {"keyword_weight": default.keyword_weight, "dense_weight": default.dense_weight}
        # Alone, a part returns at most `candidates` chunks; more changes no order, only how deep the list goes.
        deep = {"candidates": max(self.depth, default.candidates)}
        return [
            ("ragtune hybrid rrf", "hybrid", {"fusion": "rrf", **weights}),
            ("ragtune hybrid zscore", "hybrid", {"fusion": "zscore", **weights}),
            ("ragtune keyword", "keyword", deep),
            ("ragtune dense", "dense", deep),
        ]

    @contextmanager
    def configured(self, changes: dict[str, Any]) -> Iterator[None]:
        """Set [retrieval] fields for the duration (validated on assignment), then put them back."""
        settings = self.retriever.settings
        before = {key: getattr(settings, key) for key in changes}
        try:
            for key, value in changes.items():
                setattr(settings, key, value)
            yield
        finally:
            for key, value in before.items():
                setattr(settings, key, value)

    def run(self, queries: _Queries, mode: Mode) -> tuple[dict[str, list[str]], float]:
        """Rank every query with its precomputed vector; returns the document run and the ranking seconds.

        Only ``rank`` is timed: turning chunk positions into distinct documents is this benchmark's own work.
        """
        ranked = []
        start = time.perf_counter()
        for text, vector in zip(queries.texts, queries.vectors, strict=True):
            ranked.append(
                self.retriever.rank(text, self.depth, self.mask, mode, None if mode == "keyword" else vector)[0]
            )
        seconds = time.perf_counter() - start
        run = {
            qid: _top_docs([self.doc_of[p] for p in positions.tolist()], K)
            for qid, positions in zip(queries.ids, ranked, strict=True)
        }
        return run, seconds

    def latencies(self, texts: list[str], mode: Mode, k: int = K) -> list[float]:
        """Seconds per ``search`` call, one query at a time, query embedding and text lookup included."""
        samples = []
        for text in texts:
            start = time.perf_counter()
            self.retriever.search(text, k=k, mode=mode)
            samples.append(time.perf_counter() - start)
        return samples


def _rerank_comparison(ranker: _Ranker, queries: _Queries) -> Row:
    """The default hybrid with and without sentence-maxsim, on the same queries."""
    head = ranker.retriever.settings.rerank_candidates
    without, _ = ranker.run(queries, "hybrid")
    plain_s = ranker.latencies(queries.texts, "hybrid", k=head)
    reranked: dict[str, list[str]] = {}
    rerank_s: list[float] = []
    with ranker.configured({"rerank": "sentence-maxsim"}):
        for qid, text in zip(queries.ids, queries.texts, strict=True):
            # Only the top `rerank_candidates` are reordered; below them the fused order stands.
            start = time.perf_counter()
            hits = ranker.retriever.search(text, k=head, mode="hybrid").hits
            rerank_s.append(time.perf_counter() - start)
            reranked[qid] = _top_docs([*(h.doc_id for h in hits), *without[qid]], K)
    return {
        "queries": len(queries.ids),
        "reranker": "sentence-maxsim",
        "rerank_candidates": head,
        "fusion": ranker.retriever.settings.fusion,
        "without": {"metrics": _rounded(evaluate(without, queries.qrels)), "latency_ms": _latency(plain_s)},
        "with": {"metrics": _rounded(evaluate(reranked, queries.qrels)), "latency_ms": _latency(rerank_s)},
        "latency_k": head,
    }


def _system_row(
    name: str,
    kind: str,
    run: dict[str, list[str]],
    qrels: dict[str, dict[str, int]],
    samples: list[float],
    queries_per_s: float,
    index_docs_per_s: float,
) -> Row:
    return {
        "name": name,
        "kind": kind,
        "metrics": _rounded(evaluate(run, qrels)),
        "latency_ms": _latency(samples),
        "queries_per_s": round(queries_per_s, 2),
        "index_docs_per_s": round(index_docs_per_s, 2),
    }


def _bm25s() -> Bm25sPeer:
    try:
        return Bm25sPeer()
    except ImportError as err:
        raise BenchmarkError(
            f"the bm25s peer needs the {err.name} module; install it with `pip install 'ragtune[bench]'`"
        ) from None


# -- scale -----------------------------------------------------------------------------------------------------

# Function words at the head of the distribution and everyday content words spread through it, so tokenising,
# stop-word removal and stemming meet real English among the made-up words.
_STOPWORDS = ("the", "of", "and", "to", "in", "a", "is", "that", "for", "it", "as", "with", "was", "on", "by", "at")
_ENGLISH_TEXT = """
time year people way day man thing woman life child world school state family student group country problem hand
part place case week company system program question work government number night point home water room mother
area money story fact month lot right study book eye job word business issue side kind head house service friend
father power hour game line end member law car city community name president team minute idea kid body information
back parent face others level office door health person art war history party result change morning reason
research girl guy moment air teacher force education river mountain station market village harbour bridge engine
signal winter summer garden letter window paper council report budget contract storage network
"""
_ENGLISH = tuple(_ENGLISH_TEXT.split())
_ONSETS_TEXT = "b c d f g h j k l m n p r s t v w z br cr dr fl gr pl pr st tr ch sh th"
_ONSETS = tuple(_ONSETS_TEXT.split())
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ea", "io", "ou")
_CODAS = ("", "", "", "", "n", "r", "s", "l", "m", "nd")


class SyntheticCorpus:
    """``n`` chunk-sized documents of 30-60 words from a Zipf vocabulary; the same seed gives the same corpus.

    >>> corpus = SyntheticCorpus(100_000, seed=0)
    >>> ingest_documents(project, iter(corpus)); corpus.queries(200)[0]
    """

    def __init__(self, n: int, seed: int = 0, vocabulary: int = 30_000, exponent: float = 1.05) -> None:
        if n < 1:
            raise BenchmarkError(f"a synthetic corpus needs at least one document, got {n}")
        self.n, self.seed = n, seed
        rng = np.random.default_rng(seed)
        made_up = _made_up_words(rng, vocabulary - len(_STOPWORDS) - len(_ENGLISH), set(_ENGLISH))
        # Stop words take the top ranks; English words land at random ranks among the first 3,000.
        words = list(made_up)
        for rank, word in sorted(zip(rng.choice(3000, len(_ENGLISH), replace=False).tolist(), _ENGLISH, strict=True)):
            words.insert(rank, word)
        self.vocabulary = [*_STOPWORDS, *words]
        weights = 1.0 / np.arange(1, len(self.vocabulary) + 1) ** exponent
        self._cdf = np.cumsum(weights) / weights.sum()
        self._rights = Rights(source="synthetic", license="generated")

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[RawDocument]:
        return (self.document(i) for i in range(self.n))

    def doc_id(self, i: int) -> str:
        return f"syn-{i:07d}"

    def words(self, i: int) -> list[str]:
        rng = np.random.default_rng([self.seed, i])
        picks = np.searchsorted(self._cdf, rng.random(int(rng.integers(32, 63))), side="right")
        return [self.vocabulary[p] for p in np.minimum(picks, len(self.vocabulary) - 1)]

    def document(self, i: int) -> RawDocument:
        words = self.words(i)
        title, body = [w for w in words if w not in _STOPWORDS][:2], words[2:]
        sentences = [" ".join(body[s : s + 12]) for s in range(0, len(body), 12)]
        text = " ".join(s[0].upper() + s[1:] + "." for s in sentences)
        return RawDocument(
            doc_id=self.doc_id(i),
            title=" ".join(title).title(),
            text=text,
            rights=self._rights,
            where=f"synthetic:{i}",
            path="synthetic",
        )

    def queries(self, count: int) -> list[str]:
        """Three to five content words of a random document each, so every query has a right answer."""
        rng = random.Random(self.seed)
        out = []
        for _ in range(count):
            content = [w for w in self.words(rng.randrange(self.n))[2:] if w not in _STOPWORDS]
            out.append(" ".join(rng.sample(content, min(len(content), rng.randint(3, 5)))))
        return out


def _made_up_words(rng: np.random.Generator, count: int, avoid: set[str]) -> list[str]:
    """Distinct pronounceable non-words of one to three syllables (two or three MiniLM word pieces, mostly)."""
    seen = set(avoid) | set(_STOPWORDS)
    out: list[str] = []
    while len(out) < count:
        syllables = rng.choice([1, 2, 2, 2, 3], size=count)
        parts = rng.integers(0, [len(_ONSETS), len(_VOWELS), len(_CODAS)], size=(count, 3, 3))
        for n, picks in zip(syllables.tolist(), parts.tolist(), strict=True):
            word = "".join(_ONSETS[o] + _VOWELS[v] + _CODAS[c] for o, v, c in picks[:n])
            if len(word) > 3 and word not in seen and len(out) < count:
                seen.add(word)
                out.append(word)
    return out


def run_scale(
    n: int,
    *,
    queries: int = 200,
    seed: int = 0,
    reporter: Reporter | None = None,
    embedder: Embedder | None = None,
) -> Row:
    """Ingest ``n`` synthetic documents, then time searches, one document's update and one forget."""
    say = reporter or Quiet()
    started = time.perf_counter()
    corpus = SyntheticCorpus(n, seed)
    with throwaway_project(embedder) as project:
        say.phase(f"loading {project.embedder.name}")
        project.embedder.encode(["warm up"])
        sample = [corpus.document(i) for i in range(min(n, 2000))]
        t0 = time.perf_counter()
        project.embedder.encode([f"{d.title}\n{d.text}" for d in sample])
        raw_rate = len(sample) / (time.perf_counter() - t0)
        with say.bar(f"ingesting {n:,} synthetic documents") as advance:
            t0 = time.perf_counter()
            ingest = ingest_documents(project, iter(corpus), progress=advance, total=n)
            ingest_s = time.perf_counter() - t0
        if ingest.errors:
            raise BenchmarkError(f"synthetic ingest failed: {ingest.errors[0]['message']}")
        retriever = Retriever(project.store, project.index, project.embedder, project.config.retrieval)
        asked = corpus.queries(queries)
        retriever.search(asked[0])  # page the vectors in, as a running service would have them
        say.phase(f"timing {len(asked)} queries per mode, one at a time")
        latency: Row = {}
        stages: dict[str, list[float]] = {}
        modes: tuple[Mode, ...] = ("hybrid", "keyword", "dense")
        for mode in modes:
            samples = []
            for query in asked:
                t0 = time.perf_counter()
                result = retriever.search(query, k=10, mode=mode)
                samples.append(time.perf_counter() - t0)
                if mode == "hybrid":
                    for stage, ms in result.timings_ms.items():
                        stages.setdefault(stage, []).append(ms)
            latency[mode] = _latency(samples)
        say.phase("freshness: changing one document")
        freshness = _freshness(project, retriever, corpus, random.Random(seed + 2).randrange(n))
        say.phase("forgetting one document")
        forgetting = _forgetting(project, retriever, corpus, random.Random(seed + 3).randrange(n))
        chunks, segments = len(project.index), len(project.index.segments)
    report: Row = {
        "kind": "scale",
        "corpus": {
            "documents": n,
            "chunks": ingest.chunks,
            "chunks_after": chunks,
            "segments": segments,
            "vocabulary": len(corpus.vocabulary),
            "seed": seed,
        },
        "machine": machine(),
        "indexing": {
            "seconds": round(ingest_s, 1),
            "embed_seconds": round(ingest.embed_seconds, 1),
            "docs_per_s": round(n / ingest_s, 2),
            "raw_encode_docs_per_s": round(raw_rate, 2),
            "raw_sample": len(sample),
        },
        "query_latency_ms": {**latency, "queries": len(asked), "k": 10},
        "hybrid_stages_p50_ms": {s: round(float(np.median(v)), 3) for s, v in stages.items()},
        "freshness": freshness,
        "forget": forgetting,
        "seconds": round(time.perf_counter() - started, 1),
    }
    report["targets"] = check_targets(report)
    return report


def _freshness(project: Project, retriever: Retriever, corpus: SyntheticCorpus, i: int) -> Row:
    """Seconds from the start of ingesting one changed document until both retrievers return its new version."""
    old = corpus.document(i)
    marker = f"freshmark{corpus.seed}x{i}"
    changed = replace(old, text=f"{old.text} {marker.capitalize()}.")
    start = time.perf_counter()
    ingest = ingest_documents(project, [changed])
    ingest_s = time.perf_counter() - start
    found = False
    # Keyword search proves the new text is indexed, dense search (on the full text) that its vector is; under
    # rank fusion a one-word query could rightly rank another chunk first, so neither check uses hybrid.
    while not found and time.perf_counter() - start < 30.0:
        by_word = retriever.search(marker, k=1, mode="keyword").hits
        by_text = retriever.search(changed.text, k=1, mode="dense").hits
        found = all(h and (h[0].doc_id, h[0].version) == (changed.doc_id, 2) for h in (by_word, by_text))
    searchable_s = time.perf_counter() - start
    old_gone = all(
        h.version != 1 for h in retriever.search(old.text, k=10, mode="dense").hits if h.doc_id == old.doc_id
    )
    return {
        "doc_id": changed.doc_id,
        "updated": ingest.updated == [changed.doc_id],
        "found": found,
        "old_version_hidden": old_gone,
        "ingest_seconds": round(ingest_s, 4),
        "seconds_to_searchable": round(searchable_s, 4),
    }


def _forgetting(project: Project, retriever: Retriever, corpus: SyntheticCorpus, i: int) -> Row:
    doc = corpus.document(i)
    start = time.perf_counter()
    receipt = forget(project, [doc.doc_id])
    seconds = time.perf_counter() - start
    hits = retriever.search(doc.text, k=10, mode="hybrid").hits
    return {
        "doc_id": doc.doc_id,
        "seconds": round(seconds, 3),
        "segments_rewritten": receipt.segments_rewritten,
        "gone_from_search": all(h.doc_id != doc.doc_id for h in hits),
    }


# -- targets and shared helpers --------------------------------------------------------------------------------


def check_targets(report: Row) -> list[Row]:
    """The issue's targets as ``{"target", "passed", "value", "threshold", "detail"}``, for either mode's report."""
    out: list[Row] = []
    if report["kind"] == "beir":
        systems = {s["name"]: s for s in report["systems"]}
        kw, dense = (systems[f"ragtune {p}"]["metrics"]["ndcg@10"] for p in ("keyword", "dense"))
        default = report["settings"]["default_fusion"]
        for fusion in ("rrf", "zscore"):
            hybrid = systems[f"ragtune hybrid {fusion}"]["metrics"]["ndcg@10"]
            best = max(kw, dense)
            out.append(
                _target(
                    f"hybrid ({fusion}{', default' if fusion == default else ''}) nDCG@10 >= best part + {HYBRID_MARGIN}",
                    hybrid,
                    best + HYBRID_MARGIN,
                    f"hybrid {hybrid:.4f}, keyword {kw:.4f}, dense {dense:.4f}: margin {hybrid - best:+.4f}",
                )
            )
        ratio = report["keyword_vs_bm25s"]
        out.append(
            _target(
                "keyword queries/s >= 0.5 x bm25s",
                ratio["ratio"],
                0.5,
                f"{ratio['ragtune_keyword_queries_per_s']:.0f} vs {ratio['bm25s_queries_per_s']:.0f} q/s",
            )
        )
        idx = report["indexing"]
        out.append(
            _target(
                "indexing >= 0.9 x raw MiniLM encoding",
                idx["ratio"],
                0.9,
                f"{idx['ragtune_docs_per_s']:.1f} vs {idx['raw_encode_docs_per_s']:.1f} docs/s",
            )
        )
    else:
        n = report["corpus"]["chunks"]
        p50 = report["query_latency_ms"]["hybrid"]["p50"]
        out.append(
            _target(
                f"hybrid query p50 <= 50 ms at {n:,} chunks",
                p50,
                50.0,
                f"p50 {p50:.1f} ms, p95 {report['query_latency_ms']['hybrid']['p95']:.1f} ms",
                at_most=True,
            )
        )
        fresh = report["freshness"]
        row = _target(
            "one changed document searchable <= 1 s after ingest starts",
            fresh["seconds_to_searchable"],
            1.0,
            f"{fresh['seconds_to_searchable']:.3f} s (ingest {fresh['ingest_seconds']:.3f} s)"
            + ("" if fresh["found"] else "; the new version was never found"),
            at_most=True,
        )
        out.append({**row, "passed": row["passed"] and fresh["found"]})
    return out


def _target(name: str, value: float, threshold: float, detail: str, *, at_most: bool = False) -> Row:
    passed = value <= threshold if at_most else value >= threshold
    return {"target": name, "passed": bool(passed), "value": value, "threshold": threshold, "detail": detail}


@contextmanager
def throwaway_project(embedder: Embedder | None = None) -> Iterator[Project]:
    """A fresh project in a temporary folder, deleted afterwards; ``embedder`` shares an already loaded model."""
    with tempfile.TemporaryDirectory(prefix="ragtune-bench-") as tmp:
        root, _ = init_project(Path(tmp) / "project")
        project = Project.open(root)
        if embedder is not None:
            project.embedder = embedder  # fills the cached property, so no second model loads
        try:
            yield project
        finally:
            project.close()


def _defaults() -> RetrievalSection:
    """[retrieval] as a fresh ragtune.toml has it, whatever this run has changed."""
    return RetrievalSection.model_validate({})


def machine() -> Row:
    import torch

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "load_average": [round(x, 2) for x in os.getloadavg()],  # other work on the machine skews every timing
        "ragtune": __version__,
        "date": datetime.now(UTC).replace(microsecond=0).isoformat(),
    }


def _top_docs(doc_ids: Iterator[str] | Sequence[str], k: int) -> list[str]:
    """The first ``k`` distinct documents, each at the rank of its best chunk."""
    seen: dict[str, None] = {}
    for doc_id in doc_ids:
        seen.setdefault(doc_id, None)
        if len(seen) == k:
            break
    return list(seen)


def _latency(samples: list[float]) -> Row:
    return {
        "p50": round(percentile_ms(samples, 50), 3),
        "p95": round(percentile_ms(samples, 95), 3),
        "mean": round(1000.0 * sum(samples) / len(samples), 3),
        "queries": len(samples),
    }


def _rounded(metrics: dict[str, float]) -> dict[str, float]:
    return {name: round(value, 4) for name, value in metrics.items()}
