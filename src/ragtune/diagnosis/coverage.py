"""Do the cases look like production traffic? Production questions are embedded with the project's embedder
(MiniLM by default) and clustered (spherical k-means, numpy); a cluster whose questions mostly have no case question
within ``[diagnosis] coverage_min_similarity`` cosine is uncovered, and named by its most distinctive words. Question
lengths (words) are compared by quantiles and the two-sample Kolmogorov-Smirnov distance::

    report = traffic_coverage(project.embedder, case_questions, traffic_questions, project.config.diagnosis, seed=0)
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ragtune.config import DiagnosisSection
from ragtune.errors import HarnessError
from ragtune.store.db import Store
from ragtune.traces.store import traffic_questions

if TYPE_CHECKING:
    from ragtune.index.embedder import Embedder

_WORD = re.compile(r"[a-z][a-z0-9'-]+")
_STOP_WORDS = (
    "a an the and or but of to in on at for from by with about as is are was were be been being do does did have "
    "has had what which who whom whose when where why how can could should would will shall may might must i you "
    "he she it we they me my your our their its this that these those there here not no yes if then than so any "
    "all some much many more most get got please tell know want need one"
)
_STOP = frozenset(_STOP_WORDS.split())


def read_traffic(path: Path) -> list[str]:
    """Questions from a JSONL file of ``{"question": ...}`` lines; a bad line is an error naming it."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise HarnessError(f"{path}: cannot read the traffic file ({exc.strerror})") from None
    out = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError as exc:
            raise HarnessError(f'{path}:{number}: not JSON ({exc}); give one {{"question": ...}} per line') from None
        question = item.get("question") if isinstance(item, dict) else None
        if not isinstance(question, str) or not question.strip():
            raise HarnessError(f'{path}:{number}: no "question" string; give one {{"question": ...}} per line')
        out.append(question.strip())
    return out


def stored_traffic(store: Store) -> list[str]:
    """Questions of the server's and `ragtune ask`'s stored traces (kind ask or chat; eval traces are not traffic)."""
    return [q for q in traffic_questions(store) if q.strip()]


def kmeans(x: np.ndarray, k: int, *, seed: int = 0, iterations: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Spherical k-means on unit rows with k-means++ seeding: ``(labels, unit centroids)``; repeatable by seed."""
    n = x.shape[0]
    k = max(1, min(k, n))
    rng = np.random.default_rng(seed)
    centers = [x[int(rng.integers(n))]]
    for _ in range(1, k):
        dist = np.maximum(0.0, 1.0 - np.max(x @ np.array(centers).T, axis=1))
        total = float(dist.sum())
        pick = int(rng.choice(n, p=dist / total)) if total > 0 else int(rng.integers(n))
        centers.append(x[pick])
    c = np.array(centers, dtype=np.float64)
    labels = np.full(n, -1)
    for _ in range(iterations):
        new = np.argmax(x @ c.T, axis=1)
        if np.array_equal(new, labels):
            break
        labels = new
        for j in range(k):
            members = x[labels == j]
            if len(members):
                mean = members.mean(axis=0)
                c[j] = mean / (np.linalg.norm(mean) or 1.0)
    return labels, c


def ks_distance(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the two empirical CDFs."""
    xa, xb = np.sort(np.asarray(a, dtype=np.float64)), np.sort(np.asarray(b, dtype=np.float64))
    grid = np.concatenate([xa, xb])
    fa = np.searchsorted(xa, grid, side="right") / xa.size
    fb = np.searchsorted(xb, grid, side="right") / xb.size
    return float(np.max(np.abs(fa - fb)))


def _words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP]


def _name(members: Sequence[str], everything: Counter[str], n_all: int) -> str:
    """The cluster's most distinctive words: frequent in it, relative to their frequency in all the traffic."""
    inside = Counter(w for q in members for w in set(_words(q)))
    scored = sorted(inside, key=lambda w: (-(inside[w] / len(members) - everything[w] / n_all), w))
    return " / ".join(scored[:3]) or "(no words)"


def _quantiles(values: Sequence[int]) -> dict[str, float]:
    q = np.percentile(np.asarray(values, dtype=np.float64), [10, 50, 90])
    return {"p10": float(q[0]), "p50": float(q[1]), "p90": float(q[2])}


def traffic_coverage(
    embedder: Embedder,
    cases: Sequence[str],
    traffic: Sequence[str],
    settings: DiagnosisSection,
    *,
    seed: int = 0,
    source: str = "",
) -> dict[str, Any]:
    """Topic clusters of the traffic with their coverage by the cases, and the length comparison."""
    if not cases or not traffic:
        why = "no case questions" if not cases else "no production questions"
        return {"measured": False, "reason": why, "source": source}
    vectors = embedder.encode(list(traffic)).astype(np.float64)
    case_vectors = embedder.encode(list(cases)).astype(np.float64)
    nearest = case_vectors @ vectors.T  # (cases, traffic)
    best_case = np.argmax(nearest, axis=0)
    best_sim = nearest[best_case, np.arange(len(traffic))]
    covered_q = best_sim >= settings.coverage_min_similarity
    k = settings.traffic_clusters or min(20, max(1, round((len(traffic) / 2) ** 0.5)))
    labels, centroids = kmeans(vectors, k, seed=seed)
    everything = Counter(w for q in traffic for w in set(_words(q)))
    clusters: list[dict[str, Any]] = []
    for j in range(centroids.shape[0]):
        idx = np.flatnonzero(labels == j)
        if idx.size == 0:
            continue
        members = [traffic[int(i)] for i in idx]
        central = idx[np.argsort(-(vectors[idx] @ centroids[j]))]
        share_covered = float(covered_q[idx].mean())
        top = int(central[0])
        clusters.append({
            "name": _name(members, everything, len(traffic)),
            "size": int(idx.size),
            "share": round(idx.size / len(traffic), 4),
            "covered": share_covered >= 0.5,
            "covered_share": round(share_covered, 4),
            "examples": [traffic[int(i)] for i in central[:3]],
            "nearest_case": {"question": cases[int(best_case[top])], "similarity": round(float(best_sim[top]), 4)},
        })  # fmt: skip
    clusters.sort(key=lambda c: (c["covered"], -c["size"]))
    case_len = [len(q.split()) for q in cases]
    traffic_len = [len(q.split()) for q in traffic]
    ks = ks_distance(case_len, traffic_len)
    return {
        "measured": True,
        "source": source,
        "n_traffic": len(traffic),
        "n_cases": len(cases),
        "min_similarity": settings.coverage_min_similarity,
        "covered_share": round(float(covered_q.mean()), 4),
        "clusters": clusters,
        "length": {
            "cases": _quantiles(case_len),
            "traffic": _quantiles(traffic_len),
            "ks": round(ks, 4),
            "mismatch": ks > settings.length_ks_max,
        },
    }
