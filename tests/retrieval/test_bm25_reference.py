"""ragtune's BM25 checked against the bm25s library on fixed data: the bundled handbook, chunked by ragtune."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ragtune.corpus.chunking import index_text
from ragtune.corpus.ingest import ingest_paths
from ragtune.corpus.loaders import Defaults
from ragtune.demo import example_dir
from ragtune.index.index import Filters
from ragtune.project import Project
from ragtune.retrieval.search import Retriever


def test_scores_match_bm25s(project: Project) -> None:
    bm25s = pytest.importorskip("bm25s", reason="bm25s is in the dev extra")
    import Stemmer

    ingest_paths(project, [example_dir() / "week1" / "handbook"], Defaults())
    retriever = Retriever(project.store, project.index, project.embedder, project.config.retrieval)
    table = project.index.table
    hits = retriever.resolve(np.arange(len(table.chunk_ids)), np.zeros(len(table.chunk_ids)), {})
    assert [h.chunk_id for h in hits] == table.chunk_ids
    texts = [index_text(h.heading, h.text) for h in hits]
    stemmer = Stemmer.Stemmer("english")
    reference = bm25s.BM25(k1=1.5, b=0.75, method="lucene")
    reference.index(bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False), show_progress=False)
    timeline = json.loads((example_dir() / "timeline.json").read_text())
    questions = [f["question"] for f in timeline["facts"] + timeline["stable_facts"]][:40]
    mask = table.mask(Filters())
    for question in questions:
        tokens = bm25s.tokenize([question], stopwords="en", stemmer=stemmer, return_ids=False, show_progress=False)[0]
        tokens = [t for t in tokens if t in reference.vocab_dict]
        want = reference.get_scores(tokens) if tokens else np.zeros(len(texts))
        got = project.index.bm25(retriever.analyzer.terms(question), mask)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=question)
