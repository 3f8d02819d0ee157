"""Fusing keyword and dense rankings into one.

Two methods, both weighted: reciprocal rank fusion (robust to score scales, ignores score gaps) and a convex
combination of per-query z-scored scores (keeps how far ahead a result is). Hidden chunks never take part.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

_FUSIONS: dict[str, Callable[..., tuple[np.ndarray, np.ndarray]]] = {}


def register_fusion(
    name: str,
) -> Callable[[Callable[..., tuple[np.ndarray, np.ndarray]]], Callable[..., tuple[np.ndarray, np.ndarray]]]:
    def deco(fn: Callable[..., tuple[np.ndarray, np.ndarray]]) -> Callable[..., tuple[np.ndarray, np.ndarray]]:
        _FUSIONS[name] = fn
        return fn

    return deco


def get_fusion(name: str) -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    return _FUSIONS[name]


def top_k(scores: np.ndarray, k: int, mask: np.ndarray | None = None) -> np.ndarray:
    """Positions of the ``k`` best scores, best first; masked-out positions are never returned."""
    candidates = np.flatnonzero(mask) if mask is not None else np.arange(len(scores))
    if len(candidates) == 0 or k <= 0:
        return np.zeros(0, dtype=np.int64)
    values = scores[candidates]
    part = np.argpartition(-values, k - 1)[:k] if len(candidates) > k else np.arange(len(candidates))
    order = part[np.lexsort((candidates[part], -values[part]))]
    return candidates[order]


@register_fusion("rrf")
def rrf(
    keyword: np.ndarray,
    dense: np.ndarray,
    mask: np.ndarray,
    k: int,
    *,
    candidates: int,
    w_keyword: float,
    w_dense: float,
    rrf_k: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted reciprocal rank fusion of each retriever's top ``candidates``."""
    fused = np.zeros(len(mask), dtype=np.float64)
    kw_mask = mask & (keyword > 0)  # a chunk sharing no term with the query is not a keyword result
    for weight, scores, m in ((w_keyword, keyword, kw_mask), (w_dense, dense, mask)):
        if weight == 0:
            continue
        ranked = top_k(scores, candidates, m)
        fused[ranked] += weight / (rrf_k + np.arange(1, len(ranked) + 1))
    positions = top_k(fused, k, mask & (fused > 0))
    return positions, fused[positions]


def _z(scores: np.ndarray, mask: np.ndarray) -> np.ndarray:
    values = scores[mask].astype(np.float64)
    out = np.zeros(len(scores), dtype=np.float64)
    if values.size == 0:
        return out
    std = values.std()
    if std > 0:
        out[mask] = (values - values.mean()) / std
    return out


@register_fusion("zscore")
def zscore(
    keyword: np.ndarray,
    dense: np.ndarray,
    mask: np.ndarray,
    k: int,
    *,
    candidates: int,
    w_keyword: float,
    w_dense: float,
    rrf_k: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Convex combination of z-scored BM25 and cosine scores over all visible chunks."""
    fused = w_keyword * _z(keyword, mask) + w_dense * _z(dense, mask)
    positions = top_k(fused, k, mask)
    return positions, fused[positions]
