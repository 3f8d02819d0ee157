"""Traffic coverage with the real MiniLM: a topic of production questions no case covers is found and named."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ragtune.diagnosis import diagnose_run
from ragtune.diagnosis.coverage import kmeans, ks_distance, read_traffic, stored_traffic
from ragtune.errors import HarnessError
from ragtune.traces.store import Trace, save_trace

COVERED = [
    "What's the API rate limit on the Pro plan?", "How many requests per minute can Pro make?",
    "Pro plan rate limit?", "How long does the free trial last?", "How many days is the trial?",
    "When is support open for tickets?", "What hours does support answer tickets?",
    "What uptime is guaranteed on Enterprise?", "How many seats come with the Team plan?",
    "Within how many days can I get a refund?",
]  # fmt: skip
PASSWORDS = [
    "How do I reset my password?", "I forgot my password, how can I change it?",
    "The password reset email never arrived", "Can I change my account password from the app?",
    "My password expired, how do I set a new password?", "Where is the reset password link?",
    "How often must I change my password?", "Password reset link says it is invalid",
]  # fmt: skip


def test_ks_distance_matches_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    a, b = [3, 5, 5, 8, 9, 12], [4, 4, 6, 7, 15, 20, 21]
    assert ks_distance(a, b) == pytest.approx(stats.ks_2samp(a, b).statistic)


def test_kmeans_separates_and_repeats() -> None:
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal([5, 0, 0], 0.3, (20, 3)), rng.normal([0, 5, 0], 0.3, (20, 3))])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    labels, _ = kmeans(x, 2, seed=0)
    assert len(set(labels[:20])) == 1 and len(set(labels[20:])) == 1 and labels[0] != labels[20]
    assert np.array_equal(labels, kmeans(x, 2, seed=0)[0])


def test_an_uncovered_cluster_is_named(world: Any, tmp_path: Path) -> None:
    traffic = tmp_path / "traffic.jsonl"
    traffic.write_text("".join(json.dumps({"question": q}) + "\n" for q in COVERED + PASSWORDS))
    world.config.diagnosis.traffic_clusters = 3
    d = diagnose_run(world, "main", traffic=traffic)
    cov = d.coverage
    assert cov is not None and cov["measured"] and cov["n_traffic"] == 18
    uncovered = [c for c in cov["clusters"] if not c["covered"]]
    assert uncovered, cov["clusters"]
    top = uncovered[0]
    assert "password" in top["name"] and top["size"] >= 6
    assert set(top["examples"]) <= set(PASSWORDS) and top["nearest_case"]["similarity"] < 0.5
    assert all(c["covered"] for c in cov["clusters"] if c is not top or c["name"] != top["name"]) or len(uncovered) == 1
    assert set(cov["length"]) == {"cases", "traffic", "ks", "mismatch"}
    [blocker] = [b for b in d.recommendation.blockers if b["check"] == "traffic_coverage"]
    assert "password" in blocker["message"] and blocker["severity"] == "blocker"  # 8 of 18 questions


def test_traffic_from_stored_traces_and_bad_files(world: Any, tmp_path: Path) -> None:
    for i, (kind, q) in enumerate([("ask", "How do I reset my password?"), ("eval", "x"), ("chat", "Pro rate limit?")]):
        save_trace(world.store, Trace(f"{i:032x}", "2026-01-01T00:00:00+00:00", kind, "rag", q, "a", {}, {}, {},
                                      0, 0, [], []))  # fmt: skip
    assert stored_traffic(world.store) == ["How do I reset my password?", "Pro rate limit?"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "ok"}\n{"q": "no"}\n')
    with pytest.raises(HarnessError, match=r"bad.jsonl:2: no \"question\" string"):
        read_traffic(bad)
