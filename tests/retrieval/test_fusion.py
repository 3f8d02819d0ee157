from __future__ import annotations

import numpy as np

from ragtune.retrieval.fusion import rrf, top_k, zscore


def test_top_k_orders_and_respects_the_mask() -> None:
    scores = np.array([0.1, 0.9, 0.5, 0.9, 0.7])
    assert top_k(scores, 3).tolist() == [1, 3, 4]  # ties by position
    mask = np.array([True, False, True, True, True])
    assert top_k(scores, 10, mask).tolist() == [3, 4, 2, 0]
    assert top_k(scores, 0).tolist() == []


def test_rrf_by_hand() -> None:
    keyword = np.array([3.0, 0.0, 1.0, 2.0])
    dense = np.array([0.1, 0.9, 0.8, 0.2])
    mask = np.ones(4, dtype=bool)
    pos, fused = rrf(keyword, dense, mask, 4, candidates=10, w_keyword=1.0, w_dense=1.0, rrf_k=60)
    expected = {
        0: 1 / 61 + 1 / 64,
        1: 1 / 61,  # no shared term: not a keyword result
        2: 1 / 63 + 1 / 62,
        3: 1 / 62 + 1 / 63,
    }
    assert np.allclose(fused, [expected[int(p)] for p in pos])
    assert pos.tolist()[0] == 0


def test_zscore_by_hand_and_mask() -> None:
    keyword = np.array([2.0, 0.0, 1.0, 5.0])
    dense = np.array([0.5, 0.9, 0.1, 0.3])
    mask = np.array([True, True, True, False])
    pos, fused = zscore(keyword, dense, mask, 3, candidates=10, w_keyword=0.4, w_dense=0.6, rrf_k=60)
    kz = (keyword[:3] - keyword[:3].mean()) / keyword[:3].std()
    dz = (dense[:3] - dense[:3].mean()) / dense[:3].std()
    want = 0.4 * kz + 0.6 * dz
    assert 3 not in pos.tolist()
    assert np.allclose(fused, want[pos])
    assert pos.tolist() == list(np.argsort(-want))
